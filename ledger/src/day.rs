//! Calendar days in Samarinda local time (WITA, UTC+8), the unit of daily limits, pocket expiry
//! and business dates. Kept as a day number so comparisons are integer comparisons.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Seconds WITA is ahead of UTC.
pub const WITA_OFFSET_SECONDS: i64 = 8 * 3600;

const SECONDS_PER_DAY: i64 = 86_400;

/// A calendar day: days since 1970-01-01. The default is 1970-01-01, earlier than any day the
/// ledger records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Day(pub i32);

impl Day {
    /// The WITA day that contains the UTC instant `unix_seconds`.
    pub fn wita_of_unix_seconds(unix_seconds: i64) -> Day {
        let days = (unix_seconds + WITA_OFFSET_SECONDS).div_euclid(SECONDS_PER_DAY);
        // i32 days cover ±5.8 million years; an instant outside that is a caller bug.
        Day(i32::try_from(days).expect("instant within ±5.8 million years"))
    }

    /// The day of a proleptic Gregorian date, `None` for an impossible date.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        // Howard Hinnant's days_from_civil.
        let y = i64::from(if month <= 2 { year - 1 } else { year });
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        i32::try_from(era * 146_097 + doe - 719_468).ok().map(Day)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse_iso(text: &str) -> Option<Day> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let year = text[0..4].parse().ok()?;
        let month = text[5..7].parse().ok()?;
        let day = text[8..10].parse().ok()?;
        Day::from_ymd(year, month, day)
    }

    /// (year, month, day) of this day.
    pub fn ymd(self) -> (i32, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        (y, m, d)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Day({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wita_day_starts_at_16_utc() {
        // 2025-10-01T15:59:59Z is still 2025-10-01 23:59:59 WITA; one second later is the 2nd.
        let first = Day::parse_iso("2025-10-01").unwrap();
        let at = 1_759_334_399; // 2025-10-01T15:59:59Z
        assert_eq!(Day::wita_of_unix_seconds(at), first);
        assert_eq!(Day::wita_of_unix_seconds(at + 1), Day(first.0 + 1));
    }

    #[test]
    fn iso_round_trips_and_rejects_impossible_dates() {
        for text in ["1970-01-01", "2024-02-29", "2025-12-31", "2000-03-01"] {
            assert_eq!(Day::parse_iso(text).unwrap().to_string(), text);
        }
        assert_eq!(Day::parse_iso("1970-01-01"), Some(Day(0)));
        assert!(Day::parse_iso("2025-02-29").is_none());
        assert!(Day::parse_iso("2025-13-01").is_none());
    }
}
