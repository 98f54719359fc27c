//! NIK (Nomor Induk Kependudukan) checks. A NIK is 16 digits: province (2), city (2),
//! kecamatan (2), day of birth (2, plus 40 for women), month (2), year (2), serial (4, from
//! 0001). It has no check digit, so the date is what catches a mistyped one.

use ssn_ledger::{Day, Sex};

/// What a NIK says about its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NikFacts {
    /// Day of the month of birth.
    pub day: u32,
    /// Month of birth.
    pub month: u32,
    /// Last two digits of the year of birth.
    pub year_2: u32,
    /// Day of birth plus 40: a woman.
    pub female: bool,
}

fn digits(text: &str) -> u32 {
    text.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0'))
}

/// Checks the shape and date of a NIK on its own.
pub fn parse(nik: &str) -> Result<NikFacts, &'static str> {
    if nik.len() != 16 || !nik.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a NIK is 16 digits");
    }
    if &nik[0..2] == "00" || &nik[2..4] == "00" || &nik[4..6] == "00" {
        return Err("a NIK's region code (province, city, kecamatan) cannot be 00");
    }
    if &nik[12..16] == "0000" {
        return Err("a NIK's serial starts at 0001");
    }
    let raw_day = digits(&nik[6..8]);
    let month = digits(&nik[8..10]);
    let year_2 = digits(&nik[10..12]);
    let (day, female) = if raw_day > 40 {
        (raw_day - 40, true)
    } else {
        (raw_day, false)
    };
    // The century is not in the NIK: the date must exist in one of the two candidates.
    let real = [1900, 2000]
        .iter()
        .any(|century| Day::from_ymd(century + year_2 as i32, month, day).is_some());
    if !real {
        return Err("a NIK's date part (day, +40 for women; month; year) is not a real date");
    }
    Ok(NikFacts {
        day,
        month,
        year_2,
        female,
    })
}

/// Checks a NIK against the birth date and sex recorded with it.
pub fn check_against(nik: &str, birth_date: Day, sex: Sex) -> Result<(), &'static str> {
    let facts = parse(nik)?;
    let (year, month, day) = birth_date.ymd();
    if facts.day != day || facts.month != month || facts.year_2 != year.rem_euclid(100) as u32 {
        return Err("the NIK's date part does not match birth_date");
    }
    if facts.female != (sex == Sex::Female) {
        return Err("the NIK's day of birth (+40 for women) does not match sex");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_niks_pass() {
        // Samarinda Ulu, a woman born 1 February 1985, serial 0001.
        let facts = parse("6472034102850001").unwrap();
        assert_eq!(
            facts,
            NikFacts {
                day: 1,
                month: 2,
                year_2: 85,
                female: true
            }
        );
        let born = Day::from_ymd(1985, 2, 1).unwrap();
        assert!(check_against("6472034102850001", born, Sex::Female).is_ok());
        assert!(check_against("6472034102850001", born, Sex::Male).is_err());
        assert!(check_against("6472030102850001", born, Sex::Male).is_ok());
        // 29 February exists in 2000 (and not in 1900): accepted.
        assert!(parse("6472032902000001").is_ok());
    }

    #[test]
    fn bad_niks_fail() {
        for bad in [
            "647203410285000",   // 15 digits
            "64720341028500011", // 17
            "647203410285000A",
            "6472033202850001", // day 32
            "6472037202850001", // day 72 (32 + 40)
            "6472030013850001", // month 13, day 00
            "6472033102850001", // 31 February
            "6472033002850001", // 30 February
            "6472034102850000", // serial 0000
            "0072034102850001", // province 00
            "6400034102850001", // kecamatan 00
            "6472032902010001", // 29 February 1901 / 2001
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
