//! A demo city: two programs, E-Warong with terminals, and beneficiaries with cards in every
//! state the host interface has an answer for, written through the ledger's own calls so it
//! is exactly what the admin API will create. `ssn-switch serve --demo` provisions it into a
//! new data directory and writes a manifest (PANs, PINs, clear terminal keys) beside it, for
//! trying the switch by hand and for the end-to-end tests. Demo data only: a real deployment
//! gets its keys from the bank and its people from the Portal Data SSN.

use serde::Serialize;
use ssn_codec::Pan;
use ssn_hsm::{KeyUsage, Pin, Pvki, SoftHsm, TdesKey, WrappedKey};
use ssn_ledger::{
    Beneficiary, BeneficiaryStatus, Card, CardId, CardStatus, Day, EncryptedKey, Kk, Ledger,
    LedgerError, Merchant, MerchantId, MerchantKind, Money, Nik, Program, ProgramCode, RegistryOp,
    RegistryRecord, Sex, Terminal, TerminalId,
};

/// The issuer BIN of demo cards.
pub const DEMO_BIN: &str = "604872";

/// Why the demo could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The ledger refused.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The registry refused.
    #[error("registry: {0}")]
    Registry(#[from] ssn_ledger::RegistryError),
    /// Key or PIN material could not be made.
    #[error("hsm: {0}")]
    Hsm(#[from] ssn_hsm::HsmError),
    /// A built identifier was refused (a bug in this module).
    #[error("identifier: {0}")]
    Id(#[from] ssn_ledger::InvalidId),
}

/// What the demo created, with the secrets a person needs to use it.
#[derive(Debug, Serialize)]
pub struct Manifest {
    /// The programs, by code.
    pub programs: Vec<String>,
    /// Terminals with their clear keys (TMK, TPK, and the TAK of the last) as 32 hex characters.
    pub terminals: Vec<DemoTerminal>,
    /// Cards with their PINs.
    pub cards: Vec<DemoCard>,
}

/// A demo terminal.
#[derive(Debug, Serialize)]
pub struct DemoTerminal {
    /// DE41.
    pub terminal_id: String,
    /// DE42 of its E-Warong.
    pub merchant_id: String,
    /// Terminal master key, clear hex (demo only).
    pub tmk: String,
    /// Terminal PIN key, clear hex (demo only).
    pub tpk: String,
    /// Terminal authentication key, clear hex (demo only), for the one terminal that MACs its
    /// messages; absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tak: Option<String>,
    /// False for the suspended terminal (`58`).
    pub active: bool,
    /// False when its E-Warong is suspended (`03`).
    pub merchant_active: bool,
}

/// A demo card.
#[derive(Debug, Serialize)]
pub struct DemoCard {
    /// Internal id.
    pub card_id: u64,
    /// PAN in full (demo only).
    pub pan: String,
    /// YYMM.
    pub expiry: String,
    /// The PIN (demo only).
    pub pin: String,
    /// What the card is for: `regular`, `lost`, `stolen`, `blocked`, `not_delivered`,
    /// `expired`, `revoked`, `pin_locked`.
    pub kind: String,
    /// Programs whose pockets it holds.
    pub programs: Vec<String>,
}

/// How big a city.
#[derive(Clone, Copy, Debug)]
pub struct DemoSize {
    /// Regular, usable cards.
    pub regular_cards: u32,
}

fn program(
    code: &str,
    name: &str,
    benefit: i64,
    categories: &[&str],
    basket_required: bool,
    per_day: u32,
    expires: Day,
) -> Result<Program, DemoError> {
    Ok(Program {
        code: ProgramCode::new(code)?,
        name: name.into(),
        budget_year: 2026,
        benefit_amount: Money::from_minor(benefit),
        allowed_categories: categories.iter().map(|c| c.to_string()).collect(),
        basket_required,
        purchase_amount_max: Money::from_minor(benefit),
        purchases_per_day_max: per_day,
        pocket_expires_at: expires,
        beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
        desil_max: None,
    })
}

/// A NIK of Samarinda (64.72), kecamatan 01-10, born 1 January 1970 (+40 for women).
fn nik(serial: u32, female: bool) -> String {
    let kecamatan = serial % 10 + 1;
    let day = if female { 41 } else { 1 };
    format!("6472{kecamatan:02}{day:02}0170{:04}", serial % 10_000)
}

/// Terminal `EWR{merchant}{number:04}` with new random keys (and a TAK when `with_tak`), as the
/// registry stores it and as the manifest shows it (at an active E-Warong).
fn demo_terminal(
    hsm: &SoftHsm,
    merchant_id: &MerchantId,
    merchant: u32,
    number: u32,
    active: bool,
    with_tak: bool,
) -> Result<(Terminal, DemoTerminal), DemoError> {
    let wrap = |usage, key: &TdesKey| -> Result<EncryptedKey, DemoError> {
        let wrapped = hsm.import_key(usage, &key.reveal_hex(), &key.check_value().to_string())?;
        Ok(EncryptedKey {
            ciphertext: wrapped.as_bytes().to_vec(),
            kcv: key.check_value().to_string(),
        })
    };
    let tmk = TdesKey::generate()?;
    let tpk = TdesKey::generate()?;
    let tak = if with_tak {
        Some(TdesKey::generate()?)
    } else {
        None
    };
    let terminal_id = TerminalId::new(format!("EWR{merchant}{number:04}"))?;
    let terminal = Terminal {
        terminal_id: terminal_id.clone(),
        merchant_id: merchant_id.clone(),
        tmk: wrap(KeyUsage::Tmk, &tmk)?,
        tpk: wrap(KeyUsage::Tpk, &tpk)?,
        active,
        tak: tak.as_ref().map(|k| wrap(KeyUsage::Tak, k)).transpose()?,
    };
    let demo = DemoTerminal {
        terminal_id: terminal_id.as_str().into(),
        merchant_id: merchant_id.as_str().into(),
        tmk: tmk.reveal_hex().to_string(),
        tpk: tpk.reveal_hex().to_string(),
        tak: tak.map(|k| k.reveal_hex().to_string()),
        active,
        merchant_active: true,
    };
    Ok((terminal, demo))
}

/// Provisions the demo city into an empty ledger and returns its manifest.
pub async fn provision(
    ledger: &Ledger,
    hsm: &SoftHsm,
    pvk: &WrappedKey,
    size: DemoSize,
    now: i64,
) -> Result<Manifest, DemoError> {
    let expires = Day::from_ymd(2027, 12, 31).unwrap_or(Day(0));
    let expires_early = Day::from_ymd(2027, 6, 30).unwrap_or(Day(0));
    let sembako = program(
        "SEMBAKO",
        "Bantuan sembako SSN",
        30_000_000,
        &["01", "02", "03", "04", "05", "06", "07", "08", "09"],
        false,
        3,
        expires,
    )?;
    let lansia = program(
        "LANSIA",
        "Tambahan lansia: beras dan telur",
        10_000_000,
        &["01", "02"],
        true,
        1,
        expires_early,
    )?;
    let registry = ledger.registry();
    ledger.define_program(sembako.clone()).await?;
    ledger.define_program(lansia.clone()).await?;

    // E-Warong: one active with three terminals (one suspended) and a fourth that MACs its
    // messages, one suspended with one.
    let mut ops = Vec::new();
    let mut terminals = Vec::new();
    for (m, active) in [(1u32, true), (2, false)] {
        let merchant_id = MerchantId::new(format!("EWARONG{m:08}"))?;
        ops.push(RegistryOp::Insert(RegistryRecord::Merchant(Merchant {
            merchant_id: merchant_id.clone(),
            name: format!("E-Warong Demo {m}"),
            kind: MerchantKind::Kube,
            kecamatan: "6472040".into(),
            kelurahan: "Sidodadi".into(),
            settlement_account: format!("00110{m:05}"),
            active,
            appointed_on: None,
            changes: Vec::new(),
        })));
        let count = if active { 3 } else { 1 };
        for t in 1..=count {
            let terminal_active = !(active && t == 3);
            let (terminal, demo) = demo_terminal(hsm, &merchant_id, m, t, terminal_active, false)?;
            ops.push(RegistryOp::Insert(RegistryRecord::Terminal(terminal)));
            terminals.push(DemoTerminal {
                merchant_active: active,
                ..demo
            });
        }
    }
    // Last, so the terminals above keep their places in the manifest: one that MACs its
    // messages (host interface §10), at the active E-Warong.
    let merchant_id = MerchantId::new(format!("EWARONG{:08}", 1))?;
    let (terminal, demo) = demo_terminal(hsm, &merchant_id, 1, 4, true, true)?;
    ops.push(RegistryOp::Insert(RegistryRecord::Terminal(terminal)));
    terminals.push(demo);
    registry.apply(ops).await?;

    // Beneficiaries and cards: the regular ones, then one of each special state.
    let specials = [
        "lost",
        "stolen",
        "blocked",
        "not_delivered",
        "expired",
        "revoked",
        "pin_locked",
    ];
    let kinds: Vec<&str> = (0..size.regular_cards)
        .map(|_| "regular")
        .chain(specials)
        .collect();
    // Numbers from the registry's sequences, as the admin API takes them, so people and cards
    // added later through the API never collide with the demo's.
    let first_ssn = registry.next_numbers("ssn", kinds.len() as u64).await?;
    let first_card = registry.next_numbers("card", kinds.len() as u64).await?;
    let mut cards = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let serial = i as u32 + 1;
        let ssn_number = first_ssn + i as u64;
        let card_number = first_card + i as u64;
        let female = serial.is_multiple_of(2);
        let ssn = format!("SSN{ssn_number:09}");
        let mut enrolments = vec![sembako.code.clone()];
        if serial % 2 == 1 {
            enrolments.push(lansia.code.clone());
        }
        let beneficiary = Beneficiary {
            ssn: ssn.clone(),
            nik: Nik(nik(serial, female)),
            kk: Kk(format!("6472{:012}", serial)),
            name: format!("Warga Demo {serial}"),
            birth_date: Day::from_ymd(1970, 1, 1).unwrap_or(Day(0)),
            sex: if female { Sex::Female } else { Sex::Male },
            address: format!("Jl. Demo No. {serial}"),
            kecamatan: format!("64720{}", serial % 10),
            kelurahan: "Demo".into(),
            desil: 1,
            status: if kind == "revoked" {
                BeneficiaryStatus::Revoked
            } else {
                BeneficiaryStatus::Determined
            },
            enrolments: enrolments.clone(),
            possible_duplicate: false,
            import_batch: 0,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        };
        let body = format!("{DEMO_BIN}{card_number:09}");
        let pan = Pan::with_check_digit(body.as_bytes()).map_err(|_| ssn_ledger::InvalidId {
            kind: "PAN",
            reason: "demo PAN",
        })?;
        let pin = Pin::new(&format!("{:04}", 1000 + serial % 9000))?;
        let pvv = hsm.generate_pvv(pvk, &pin, pan.reveal(), Pvki::ONE)?;
        let status = match kind {
            "lost" => CardStatus::Lost,
            "stolen" => CardStatus::Stolen,
            "blocked" => CardStatus::Blocked,
            "not_delivered" => CardStatus::Issued,
            _ => CardStatus::Active,
        };
        let expiry = if kind == "expired" { "2401" } else { "2912" };
        let card = Card {
            card_id: CardId(card_number),
            ssn: ssn.clone(),
            pan: ssn_ledger::Pan(pan.reveal().into()),
            expiry: expiry.into(),
            status,
            pvv: ssn_ledger::Pvv(pvv.as_str().into()),
            wrong_pin_count: if kind == "pin_locked" {
                ssn_ledger::WRONG_PIN_COUNT_MAX
            } else {
                0
            },
            replaced_by: None,
            issued_on: None,
            delivered_on: None,
            changes: Vec::new(),
        };
        registry
            .apply(vec![
                RegistryOp::Insert(RegistryRecord::Beneficiary(beneficiary)),
                RegistryOp::Insert(RegistryRecord::Card(card)),
            ])
            .await?;
        cards.push(DemoCard {
            card_id: card_number,
            pan: pan.reveal().into(),
            expiry: expiry.into(),
            pin: pin.reveal().into(),
            kind: kind.into(),
            programs: enrolments.iter().map(|p| p.as_str().to_string()).collect(),
        });
    }

    // Money: fund each program for its cards, and pay the first month.
    for program in [&sembako, &lansia] {
        let budget = program
            .benefit_amount
            .minor()
            .saturating_mul(i64::from(size.regular_cards) + 8);
        ledger
            .fund_program(
                &program.code,
                Money::from_minor(budget),
                &format!("APBD-2026-{}", program.code),
                now,
            )
            .await?;
        ledger.disburse(&program.code, "2026-11", now).await?;
    }
    Ok(Manifest {
        programs: vec![sembako.code.as_str().into(), lansia.code.as_str().into()],
        terminals,
        cards,
    })
}
