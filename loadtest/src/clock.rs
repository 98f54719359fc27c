//! ISO 8583 date and time fields from Unix time, without a calendar crate: DE7 in UTC, DE12 and
//! DE13 in Samarinda local time (WITA, UTC+8).

/// Seconds WITA is ahead of UTC.
pub const WITA_OFFSET_SECONDS: i64 = 8 * 3600;

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn two(out: &mut [u8], value: u32) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

/// `(MMDD, hhmmss)` of `unix_seconds` shifted by `offset_seconds`.
fn parts(unix_seconds: i64, offset_seconds: i64) -> ([u8; 4], [u8; 6]) {
    let t = unix_seconds + offset_seconds;
    let (_, month, day) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400) as u32;
    let mut date = [0u8; 4];
    two(&mut date[0..2], month);
    two(&mut date[2..4], day);
    let mut time = [0u8; 6];
    two(&mut time[0..2], secs / 3600);
    two(&mut time[2..4], secs / 60 % 60);
    two(&mut time[4..6], secs % 60);
    (date, time)
}

/// DE7, transmission date and time: `MMDDhhmmss` in UTC.
pub fn de7(unix_seconds: i64) -> [u8; 10] {
    let (date, time) = parts(unix_seconds, 0);
    let mut out = [0u8; 10];
    out[..4].copy_from_slice(&date);
    out[4..].copy_from_slice(&time);
    out
}

/// DE12 (`hhmmss`) and DE13 (`MMDD`), local time in Samarinda.
pub fn de12_de13(unix_seconds: i64) -> ([u8; 6], [u8; 4]) {
    let (date, time) = parts(unix_seconds, WITA_OFFSET_SECONDS);
    (time, date)
}

/// Whole seconds since the Unix epoch.
pub fn unix_seconds_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_known_instants() {
        // 2026-11-29T22:30:45Z is 2026-11-30 06:30:45 in Samarinda.
        let t = 1_795_991_445;
        assert_eq!(&de7(t), b"1129223045");
        let (time, date) = de12_de13(t);
        assert_eq!(&time, b"063045");
        assert_eq!(&date, b"1130");
        assert_eq!(&de7(0), b"0101000000");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(&de7(1_709_208_000), b"0229120000");
    }
}
