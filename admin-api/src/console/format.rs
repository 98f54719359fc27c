//! Money, dates and times the Indonesian way, from the API's own strings: `"1250000.00"` is
//! `Rp 1.250.000`, `2026-11-29` is `29 Nov 2026`, `2026-11-29T10:05:00+08:00` is
//! `29 Nov 2026 10.05 WITA`. What is not in the API's shape is shown as it came (escaped by
//! the caller), never dropped.

use super::i18n::Lang;

/// Months as the language abbreviates them.
fn month(lang: Lang, number: u32) -> Option<&'static str> {
    let names = match lang {
        Lang::Id => [
            "Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des",
        ],
        Lang::En => [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ],
    };
    names
        .get(usize::try_from(number).ok()?.checked_sub(1)?)
        .copied()
}

/// Rupiah with `.` between thousands and `,` before cents (shown only when not zero):
/// `"1250000.00"` → `Rp 1.250.000`, `"12.50"` → `Rp 12,50`, `"-300.00"` → `-Rp 300`.
pub fn rupiah(amount: &str) -> String {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, cents) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || !(cents.is_empty() || plain(cents)) {
        return amount.to_string();
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    if cents.bytes().any(|b| b != b'0') {
        grouped.push(',');
        grouped.push_str(cents);
    }
    format!("{sign}Rp {grouped}")
}

/// A day `YYYY-MM-DD` as `29 Nov 2026`.
pub fn day(lang: Lang, iso: &str) -> String {
    let parts: Vec<&str> = iso.splitn(3, '-').collect();
    let parsed = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => m
            .parse::<u32>()
            .ok()
            .and_then(|m| month(lang, m))
            .zip(d.parse::<u32>().ok())
            .map(|(name, d)| format!("{d} {name} {y}")),
        _ => None,
    };
    parsed.unwrap_or_else(|| iso.to_string())
}

/// A WITA time `2026-11-29T10:05:00+08:00` as `29 Nov 2026 10.05 WITA` (Indonesian) or
/// `29 Nov 2026 10:05 WITA` (English).
pub fn time(lang: Lang, iso: &str) -> String {
    let Some((date, rest)) = iso.split_once('T') else {
        return iso.to_string();
    };
    let clock = rest.get(..5).filter(|c| {
        c.as_bytes().get(2) == Some(&b':') && c.bytes().filter(u8::is_ascii_digit).count() == 4
    });
    match (clock, rest.ends_with("+08:00")) {
        (Some(clock), true) => {
            let clock = match lang {
                Lang::Id => clock.replace(':', "."),
                Lang::En => clock.to_string(),
            };
            format!("{} {clock} WITA", day(lang, date))
        }
        _ => iso.to_string(),
    }
}

/// Turns what a person types as rupiah (`Rp 1.250.000`, `1.250.000`, `1250000`, `12,50`)
/// into the API's amount string (`1250000.00`); `None` when it is not an amount, so the form
/// says so instead of sending a guess.
pub fn amount_input(typed: &str) -> Option<String> {
    let typed = typed.trim();
    let typed = typed
        .strip_prefix("Rp")
        .or_else(|| typed.strip_prefix("rp"))
        .unwrap_or(typed)
        .trim();
    let (whole, cents) = typed.split_once(',').unwrap_or((typed, ""));
    let groups: Vec<&str> = whole.split('.').collect();
    let grouped_well = groups.len() == 1
        || (groups[0].len() <= 3
            && !groups[0].is_empty()
            && groups[1..].iter().all(|g| g.len() == 3));
    let whole: String = groups.concat();
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(&whole) || !digits(cents) || cents.len() > 2 || !grouped_well {
        return None;
    }
    Some(format!("{whole}.{cents:0<2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupiah_groups_thousands_with_dots_and_shows_cents_only_when_there_are_some() {
        assert_eq!(rupiah("1250000.00"), "Rp 1.250.000");
        assert_eq!(rupiah("300000.00"), "Rp 300.000");
        assert_eq!(rupiah("999.00"), "Rp 999");
        assert_eq!(rupiah("1000.00"), "Rp 1.000");
        assert_eq!(rupiah("0.00"), "Rp 0");
        assert_eq!(rupiah("12.50"), "Rp 12,50");
        assert_eq!(rupiah("-300.00"), "-Rp 300");
        assert_eq!(rupiah("123456789012.00"), "Rp 123.456.789.012");
        // Not an amount: shown as it came.
        assert_eq!(rupiah("abc"), "abc");
        assert_eq!(rupiah(""), "");
    }

    #[test]
    fn days_are_day_month_year_with_the_languages_month_names() {
        assert_eq!(day(Lang::Id, "2026-11-29"), "29 Nov 2026");
        assert_eq!(day(Lang::Id, "2026-08-01"), "1 Agu 2026");
        assert_eq!(day(Lang::En, "2026-08-01"), "1 Aug 2026");
        assert_eq!(day(Lang::Id, "2026-12-31"), "31 Des 2026");
        assert_eq!(day(Lang::Id, "2026-13-01"), "2026-13-01");
        assert_eq!(day(Lang::Id, "yesterday"), "yesterday");
    }

    #[test]
    fn times_are_wita_with_the_languages_clock() {
        assert_eq!(
            time(Lang::Id, "2026-11-29T10:05:00+08:00"),
            "29 Nov 2026 10.05 WITA"
        );
        assert_eq!(
            time(Lang::En, "2026-05-03T23:59:59+08:00"),
            "3 May 2026 23:59 WITA"
        );
        // Another zone is not WITA: shown as it came.
        assert_eq!(
            time(Lang::Id, "2026-11-29T10:05:00Z"),
            "2026-11-29T10:05:00Z"
        );
    }

    #[test]
    fn typed_amounts_become_the_apis_strings_or_nothing() {
        assert_eq!(amount_input("Rp 1.250.000").as_deref(), Some("1250000.00"));
        assert_eq!(amount_input("1250000").as_deref(), Some("1250000.00"));
        assert_eq!(amount_input(" 300.000 ").as_deref(), Some("300000.00"));
        assert_eq!(amount_input("12,5").as_deref(), Some("12.50"));
        assert_eq!(amount_input("12,50").as_deref(), Some("12.50"));
        assert_eq!(amount_input("1.25"), None);
        assert_eq!(amount_input("12,505"), None);
        assert_eq!(amount_input("-5"), None);
        assert_eq!(amount_input(""), None);
        assert_eq!(amount_input("Rp"), None);
    }
}
