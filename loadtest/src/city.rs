//! The synthetic city: programs, beneficiaries determined and carded, funded and disbursed,
//! E-Warong with terminals and their keys, provisioned through the ledger's own calls (the
//! pattern of `ssn-switch`'s demo city). The admin API will be the front door for this once it
//! exists; until then the harness writes into the data directory before the switch starts.
//!
//! [`City`] is what a run needs and a real deployment never has in one place: clear PINs and
//! clear terminal keys. It is written next to the data directory for load testing only.

use serde::{Deserialize, Serialize};
use ssn_codec::Pan;
use ssn_hsm::{KeyUsage, Pin, Pvki, SoftHsm, TdesKey, WrappedKey};
use ssn_ledger::{
    Beneficiary, BeneficiaryStatus, Card, CardId, CardStatus, Day, EncryptedKey, Kk, Ledger,
    Merchant, MerchantId, MerchantKind, Money, Nik, Program, ProgramCode, RegistryOp,
    RegistryRecord, Sex, Terminal, TerminalId,
};

use crate::Error;

/// The issuer BIN of load-test cards (the demo city uses 604872).
pub const CITY_BIN: &str = "604873";
/// A BIN no card of the city has: PANs from it answer `14`.
pub const UNKNOWN_BIN: &str = "604879";
/// Cards registered per registry transaction while seeding (two records each).
pub const SEED_CARDS_PER_APPLY: usize = 5_000;
/// Each card's benefit per program, in minor units: Rp 10,000,000 for the everyday program,
/// far above a real month's benefit so that a benchmark measures the switch, not `51`.
pub const BENEFIT_MINOR: i64 = 1_000_000_000;
/// Highest amount of one purchase the city's programs allow (Rp 1,000,000).
pub const PURCHASE_AMOUNT_MAX_MINOR: i64 = 100_000_000;
/// Daily purchase count limit of the city's programs: high, so `65` does not cap a benchmark.
pub const PURCHASES_PER_DAY_MAX: u32 = 1_000_000;
/// The city file's version: 2 added each card's `wrong_pin` (version 1 files are refused;
/// seeding again takes seconds).
pub const CITY_FILE_VERSION: u32 = 2;

/// How big a city.
#[derive(Clone, Copy, Debug)]
pub struct CitySize {
    /// Beneficiaries, one card each.
    pub cards: u32,
    /// E-Warong.
    pub merchants: u32,
    /// Terminals, spread evenly over the E-Warong.
    pub terminals: u32,
}

/// What a run needs: the city's terminals with their clear keys and its cards with their PINs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct City {
    /// [`CITY_FILE_VERSION`].
    pub version: u32,
    /// Program codes.
    pub programs: Vec<String>,
    /// E-Warong ids (DE42).
    pub merchants: Vec<String>,
    /// Terminals, in order; a run with `--terminals N` uses the first N.
    pub terminals: Vec<CityTerminal>,
    /// Cards, in order.
    pub cards: Vec<CityCard>,
}

/// A terminal of the city.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CityTerminal {
    /// DE41.
    pub terminal_id: String,
    /// DE42 of its E-Warong.
    pub merchant_id: String,
    /// Terminal master key, clear hex (load testing only).
    pub tmk: String,
    /// Terminal PIN key, clear hex (load testing only).
    pub tpk: String,
}

/// A card of the city.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CityCard {
    /// The ledger's card id.
    pub card_id: u64,
    /// PAN in full (load testing only).
    pub pan: String,
    /// YYMM.
    pub expiry: String,
    /// The PIN (load testing only).
    pub pin: String,
    /// A PIN the switch refuses for this card ([`SoftHsm::refused_pin`]: not merely another
    /// PIN, one whose PVV differs), for the `wrong_pin` mix.
    pub wrong_pin: String,
}

impl City {
    /// Checks what a run relies on: ids of the right shape, keys that parse, at least one
    /// terminal and one card.
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != CITY_FILE_VERSION {
            return Err(Error::Invalid(format!(
                "city file version {} (this harness reads {CITY_FILE_VERSION})",
                self.version
            )));
        }
        if self.terminals.is_empty() || self.cards.is_empty() {
            return Err(Error::Invalid("the city has no terminal or no card".into()));
        }
        for t in &self.terminals {
            if t.terminal_id.len() != 8 || t.merchant_id.len() != 15 {
                return Err(Error::Invalid(format!(
                    "terminal {} / merchant {}: DE41 is 8 characters, DE42 15",
                    t.terminal_id, t.merchant_id
                )));
            }
            TdesKey::from_hex(&t.tpk)?;
        }
        for c in &self.cards {
            Pin::new(&c.pin)?;
            Pin::new(&c.wrong_pin)?;
            Pan::from_digits(c.pan.as_bytes())
                .map_err(|_| Error::Invalid(format!("card {}: PAN", c.card_id)))?;
        }
        Ok(())
    }
}

fn program(
    code: &str,
    name: &str,
    categories: &[&str],
    basket_required: bool,
) -> Result<Program, Error> {
    Ok(Program {
        code: ProgramCode::new(code)?,
        name: name.into(),
        budget_year: 2026,
        benefit_amount: Money::from_minor(BENEFIT_MINOR),
        allowed_categories: categories.iter().map(|c| c.to_string()).collect(),
        basket_required,
        purchase_amount_max: Money::from_minor(PURCHASE_AMOUNT_MAX_MINOR),
        purchases_per_day_max: PURCHASES_PER_DAY_MAX,
        pocket_expires_at: Day::from_ymd(2027, 12, 31).unwrap_or(Day(0)),
        beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
        desil_max: None,
    })
}

/// A NIK of Samarinda (64.72) unique for every serial below 33.6 million: the serial's digits
/// spread over kecamatan, birth day, month and the 4-digit serial; women get day + 40.
fn nik(serial: u32, female: bool) -> String {
    let rest = serial / 10_000;
    let kecamatan = rest % 10 + 1;
    let day = (rest / 10) % 28 + 1 + if female { 40 } else { 0 };
    let month = (rest / 280) % 12 + 1;
    format!(
        "6472{kecamatan:02}{day:02}{month:02}70{:04}",
        serial % 10_000
    )
}

/// A Luhn-valid PAN: `bin`, 9 digits of `serial`, check digit.
pub fn pan_of(bin: &str, serial: u64) -> Result<Pan, Error> {
    let body = format!("{bin}{:09}", serial % 1_000_000_000);
    Pan::with_check_digit(body.as_bytes()).map_err(|_| Error::Invalid("PAN body".into()))
}

/// Provisions a city into an empty ledger and returns what a run needs. `pvk` is the issuer
/// PVK the switch will verify PINs with (wrapped under the same master key as `hsm`'s).
pub async fn seed(
    ledger: &Ledger,
    hsm: &SoftHsm,
    pvk: &WrappedKey,
    size: CitySize,
    period: &str,
    now: i64,
) -> Result<City, Error> {
    if size.cards == 0 || size.merchants == 0 || size.terminals < size.merchants {
        return Err(Error::Invalid(
            "a city needs cards, E-Warong, and at least one terminal per E-Warong".into(),
        ));
    }
    if size.terminals > 999_999 || size.merchants > 9_999_999 || size.cards > 33_000_000 {
        return Err(Error::Invalid(
            "the city is larger than its identifiers".into(),
        ));
    }
    if !ledger.registry().programs().await?.is_empty() {
        return Err(Error::Invalid(
            "the data directory already holds a city: seed into a new one".into(),
        ));
    }
    let everyday = program(
        "SEMBAKO",
        "Bantuan sembako SSN",
        &["01", "02", "03", "04", "05", "06", "07", "08", "09"],
        false,
    )?;
    let elderly = program(
        "LANSIA",
        "Tambahan lansia: beras dan telur",
        &["01", "02"],
        true,
    )?;
    ledger.define_program(everyday.clone()).await?;
    ledger.define_program(elderly.clone()).await?;

    // E-Warong and their terminals.
    let mut ops = Vec::new();
    let mut merchants = Vec::new();
    for m in 1..=size.merchants {
        let merchant_id = MerchantId::new(format!("LTWARONG{m:07}"))?;
        ops.push(RegistryOp::Insert(RegistryRecord::Merchant(Merchant {
            merchant_id: merchant_id.clone(),
            name: format!("E-Warong Uji {m}"),
            kind: MerchantKind::Kube,
            kecamatan: format!("64720{}", m % 10),
            kelurahan: "Uji".into(),
            settlement_account: format!("0020{m:07}"),
            active: true,
            appointed_on: None,
            changes: Vec::new(),
        })));
        merchants.push(merchant_id.as_str().to_string());
    }
    let mut terminals = Vec::new();
    for t in 0..size.terminals {
        let merchant = &merchants[(t % size.merchants) as usize];
        let terminal_id = TerminalId::new(format!("LT{:06}", t + 1))?;
        let tmk = TdesKey::generate()?;
        let tpk = TdesKey::generate()?;
        let wrap = |usage, key: &TdesKey| -> Result<EncryptedKey, Error> {
            let check = key.check_value().to_string();
            let wrapped = hsm.import_key(usage, &key.reveal_hex(), &check)?;
            Ok(EncryptedKey {
                ciphertext: wrapped.as_bytes().to_vec(),
                kcv: check,
            })
        };
        ops.push(RegistryOp::Insert(RegistryRecord::Terminal(Terminal {
            terminal_id: terminal_id.clone(),
            merchant_id: MerchantId::new(merchant.clone())?,
            tmk: wrap(KeyUsage::Tmk, &tmk)?,
            tpk: wrap(KeyUsage::Tpk, &tpk)?,
            active: true,
            tak: None,
        })));
        terminals.push(CityTerminal {
            terminal_id: terminal_id.as_str().into(),
            merchant_id: merchant.clone(),
            tmk: tmk.reveal_hex().to_string(),
            tpk: tpk.reveal_hex().to_string(),
        });
    }
    ledger.registry().apply(ops).await?;

    // Beneficiaries, determined, each with an active card; odd serials also in LANSIA.
    let mut cards = Vec::with_capacity(size.cards as usize);
    let serials: Vec<u32> = (1..=size.cards).collect();
    for chunk in serials.chunks(SEED_CARDS_PER_APPLY) {
        let mut ops = Vec::with_capacity(chunk.len() * 2);
        for &serial in chunk {
            let female = serial % 2 == 0;
            let ssn = format!("SSN{serial:09}");
            let mut enrolments = vec![everyday.code.clone()];
            if serial % 2 == 1 {
                enrolments.push(elderly.code.clone());
            }
            ops.push(RegistryOp::Insert(RegistryRecord::Beneficiary(
                Beneficiary {
                    ssn: ssn.clone(),
                    nik: Nik(nik(serial, female)),
                    kk: Kk(format!("6472{serial:012}")),
                    name: format!("Warga Uji {serial}"),
                    birth_date: Day::from_ymd(1970, 1, 1).unwrap_or(Day(0)),
                    sex: if female { Sex::Female } else { Sex::Male },
                    address: format!("Jl. Uji No. {serial}"),
                    kecamatan: format!("64720{}", serial % 10),
                    kelurahan: "Uji".into(),
                    desil: 1,
                    status: BeneficiaryStatus::Determined,
                    enrolments,
                    possible_duplicate: false,
                    import_batch: 0,
                    absent_from_dtsen: false,
                    enrolment_history: Vec::new(),
                    past_kecamatan: Vec::new(),
                },
            )));
            let pan = pan_of(CITY_BIN, u64::from(serial))?;
            let pin = Pin::new(&format!("{:04}", 1000 + serial % 9000))?;
            let pvv = hsm.generate_pvv(pvk, &pin, pan.reveal(), Pvki::ONE)?;
            let wrong = hsm.refused_pin(pvk, &pin, pan.reveal(), Pvki::ONE)?;
            ops.push(RegistryOp::Insert(RegistryRecord::Card(Card {
                card_id: CardId(u64::from(serial)),
                ssn,
                pan: ssn_ledger::Pan(pan.reveal().into()),
                expiry: "2912".into(),
                status: CardStatus::Active,
                pvv: ssn_ledger::Pvv(pvv.as_str().into()),
                wrong_pin_count: 0,
                replaced_by: None,
                issued_on: None,
                delivered_on: None,
                changes: Vec::new(),
            })));
            cards.push(CityCard {
                card_id: u64::from(serial),
                pan: pan.reveal().into(),
                expiry: "2912".into(),
                pin: pin.reveal().into(),
                wrong_pin: wrong.reveal().into(),
            });
        }
        ledger.registry().apply(ops).await?;
    }

    // Money: fund each program for its cards and pay one period.
    for program in [&everyday, &elderly] {
        let budget = BENEFIT_MINOR
            .checked_mul(i64::from(size.cards))
            .ok_or_else(|| Error::Invalid("budget overflows".into()))?;
        ledger
            .fund_program(
                &program.code,
                Money::from_minor(budget),
                &format!("LOADTEST-{}-{period}", program.code),
                now,
            )
            .await?;
        ledger.disburse(&program.code, period, now).await?;
    }
    Ok(City {
        version: CITY_FILE_VERSION,
        programs: vec![everyday.code.as_str().into(), elderly.code.as_str().into()],
        merchants,
        terminals,
        cards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn niks_are_unique_and_sixteen_digits() {
        let mut seen = std::collections::HashSet::new();
        for serial in 1..=120_000u32 {
            let n = nik(serial, serial % 2 == 0);
            assert_eq!(n.len(), 16, "{n}");
            assert!(seen.insert(n));
        }
    }

    #[test]
    fn pans_are_luhn_valid() {
        for serial in [1u64, 99_999, 100_000] {
            let pan = pan_of(CITY_BIN, serial).unwrap();
            assert!(pan.luhn_valid());
            assert_eq!(pan.len(), 16);
        }
    }
}
