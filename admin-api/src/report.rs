//! The semester report to the Mayor (Pasal 13(3)) and the public summary, computed from the
//! journal's projection and the registry.
//!
//! Money comes from the journal only, through the running totals the projection keeps by WITA
//! half-year ([`ssn_ledger::totals`]): flows (funded, disbursed, spent, reversed, returned by a
//! year-end close, settled) are those accepted within the semester; balances (unspent pockets,
//! giro accounts) are the sums of every half-year's flows up to the semester's end. So a report
//! costs O(programs + categories + cards × half-years), never O(purchases). People and cards
//! are counted as of the window's last day, from the days the registry records: an enrolment's
//! beginning and end, a move, a card's issue, delivery, status changes, PIN locks and unlocks
//! and replacement, an E-Warong's appointment, suspensions and activations
//! ([`ssn_ledger::CardChange`], [`ssn_ledger::MerchantChange`]). Records written before the
//! registry kept those days count as they are when the report is made.
//!
//! A duplicate NIK at import is a row whose NIK an earlier row of the same file named (the
//! import answers it `duplicate`); a NIK of an earlier file is a refresh (`updated` or
//! `unchanged`), never a duplicate. The semester counts the `duplicate` rows of the imports
//! whose audit line (dated) falls within it, each import's own: a file sent twice counts twice,
//! as it was twice sent with the repeat.
//!
//! Every figure is an integer sum, so per-program rows add up to the totals exactly and the
//! journal can be re-walked to check them (`tests/e2e/report.rs` does).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use ssn_ledger::totals::{CardFlows, Period, WindowTotals, card_window};
use ssn_ledger::{
    AuditEntry, Beneficiary, Card, CardId, CardStatus, ClosedBatch, Day, Merchant, MerchantId,
    Money, Program, SETTLEMENT_BATCH_NUMBER, State, Terminal, TerminalId,
};
use utoipa::ToSchema;

use crate::support::{wita_day_start, wita_time};

/// People in a cell below which the public summary shows no figure (statistical disclosure
/// control: a count or amount over fewer people could be traced to a household).
pub const PUBLIC_CELL_MIN: u64 = 5;

/// Exception batches a semester report lists at most (the latest; it counts them all): a city
/// whose terminals never send their 0500 has one per terminal and day, and the reconciliation
/// of each business date lists every one.
pub const REPORT_BATCHES_LISTED_MAX: usize = ssn_ledger::totals::EXCEPTION_BATCHES_KEPT;

/// The latest instant a report counts people and cards at (9999-12-31): a window open to the
/// future counts them as they are now.
const AS_OF_UNIX_SECONDS_MAX: i64 = 253_402_271_999;

/// Audit lines read per registry call while the report looks for imports.
pub const AUDIT_PAGE: usize = 1_000;

/// The category of purchases made without a DE48 basket.
pub use ssn_ledger::totals::NO_BASKET;

/// A category's name from the host interface's catalogue (§4).
pub fn category_name(code: &str) -> &'static str {
    match code {
        "01" => "rice",
        "02" => "eggs",
        "03" => "animal protein",
        "04" => "plant protein",
        "05" => "vegetables",
        "06" => "fruit",
        "07" => "cooking oil",
        "08" => "sugar",
        "09" => "spices",
        NO_BASKET => "no basket sent",
        c if c >= "90" => "non-food",
        _ => "other food and staples",
    }
}

/// A calendar half-year in WITA days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semester {
    /// The year.
    pub year: i32,
    /// 1 (January-June) or 2 (July-December).
    pub half: u8,
}

impl Semester {
    /// The first day.
    pub fn first_day(self) -> Day {
        let month = if self.half == 1 { 1 } else { 7 };
        Day::parse_iso(&format!("{:04}-{month:02}-01", self.year)).unwrap_or_default()
    }

    /// The last day.
    pub fn last_day(self) -> Day {
        let (month, day) = if self.half == 1 { (6, 30) } else { (12, 31) };
        Day::parse_iso(&format!("{:04}-{month:02}-{day:02}", self.year)).unwrap_or_default()
    }

    /// The first UTC second and the last.
    pub fn window(self) -> (i64, i64) {
        (
            wita_day_start(self.first_day()),
            wita_day_start(self.last_day()) + 86_399,
        )
    }
}

/// Money flows and balances of one row (a program, a kecamatan, or all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flows {
    /// Funding received in the semester (programs and totals only).
    pub funded: Money,
    /// Credited to pockets in the semester.
    pub disbursed: Money,
    /// Approved purchases in the semester (gross: reversed ones included).
    pub spent: Money,
    /// Reversals in the semester.
    pub reversed: Money,
    /// Pockets returned to giro in the semester: expired ones by a year-end close, revoked
    /// enrolments' by the Mayor's decree.
    pub returned: Money,
    /// Netted to E-Warong payable accounts by settlements in the semester.
    pub settled: Money,
    /// Pocket balances at the end of the semester.
    pub unspent: Money,
    /// Giro balances at the end of the semester (programs and totals only).
    pub giro_balance: Money,
}

/// Registry counts of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct People {
    /// Beneficiaries determined (enrolled, for a program row).
    pub people_determined: u64,
    /// Cards of those beneficiaries, any status.
    pub cards_issued: u64,
    /// Of those, cards handed over (any status but `issued`).
    pub cards_delivered: u64,
}

/// What the report computes, in minor units, before it is written in any format.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Per program, by code: name, people, flows.
    pub programs: BTreeMap<String, (String, People, Flows)>,
    /// Per kecamatan, by name: people, flows, E-Warong active, E-Warong transacting.
    pub kecamatan: BTreeMap<String, (People, Flows, u64, u64)>,
    /// Everything: people (each person once), flows, E-Warong active, transacting.
    pub totals: (People, Flows, u64, u64),
    /// Per commodity category: items, purchases, amount, reversed amount.
    pub categories: BTreeMap<String, (u64, u64, Money, Money)>,
    /// Cards credited and never used by the end of the semester, with a balance, by card id.
    pub never_used: Vec<NeverUsedCard>,
    /// Terminal batches closed in the semester whose totals differ from the journal's, or
    /// closed by settlement because the terminal never sent its 0500: the latest
    /// [`REPORT_BATCHES_LISTED_MAX`], oldest first.
    pub batch_exceptions: Vec<BatchException>,
    /// How many such batches the semester had.
    pub batch_exceptions_total: u64,
    /// Cards whose PIN was locked at the end of the window's last day.
    pub pin_locked: u64,
    /// Cards by status at the end of the window's last day: lost, stolen, damaged.
    pub lost: u64,
    /// Stolen.
    pub stolen: u64,
    /// Damaged.
    pub damaged: u64,
    /// Cards another card had replaced by then.
    pub replaced: u64,
    /// Import rows in the window answered `duplicate`: their NIK was in an earlier row of the
    /// same file (a NIK of an earlier file is a refresh, not a duplicate).
    pub duplicate_nik_rows: u64,
    /// Rows rejected at import in the semester (bad NIK, bad date, ...).
    pub rejected_rows: u64,
    /// Beneficiaries flagged at import as possible duplicates (same name and birth date).
    pub possible_duplicates: u64,
}

/// A card that received money and made no approved purchase by the end of the semester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeverUsedCard {
    /// The card.
    pub card: CardId,
    /// Its holder's SSN number.
    pub ssn: String,
    /// The holder's kecamatan.
    pub kecamatan: String,
    /// The holder's kelurahan.
    pub kelurahan: String,
    /// The programs the holder was enrolled in at the end of the semester.
    pub programs: Vec<String>,
    /// The card's status at the end of the semester.
    pub status: CardStatus,
    /// Its pockets at the end of the semester.
    pub balance: Money,
}

/// A batch the reconciliation would list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct BatchException {
    /// `out_of_balance` or `closed_by_settlement`.
    pub kind: String,
    /// DE41.
    pub terminal_id: String,
    /// DE42 of the terminal's E-Warong.
    pub merchant_id: String,
    /// DE60 as sent (`SETTLEMENT` for a close forced by settlement).
    pub batch_number: String,
    /// When it closed (WITA).
    pub closed_at: String,
    /// Approved purchases the terminal counted.
    pub terminal_sales_count: u32,
    /// Their amount.
    pub terminal_sales_amount: String,
    /// Approved, unreversed purchases the journal holds.
    pub journal_sales_count: u32,
    /// Their amount.
    pub journal_sales_amount: String,
}

/// The registry as the report reads it.
pub struct RegistryView<'a> {
    /// Programs.
    pub programs: &'a [Program],
    /// Beneficiaries.
    pub beneficiaries: &'a [Beneficiary],
    /// Cards.
    pub cards: &'a [Card],
    /// E-Warong.
    pub merchants: &'a [Merchant],
    /// Terminals.
    pub terminals: &'a [Terminal],
    /// Audit lines of imports in the semester.
    pub imports: &'a [AuditEntry],
}

fn add(total: &mut Money, amount: Money) {
    // Sums of journaled amounts: each fits, and so does any sum the journal accepted.
    *total = total.checked_add(amount).unwrap_or(*total);
}

/// What a report reads from the journal's projection for a window. The projection's lock,
/// which the journal's sequencer (and so every purchase) waits for, is held for one read of
/// the totals and then for chunks of [`REPORT_READ_CHUNK`] cards at a time, never
/// for the whole walk: each card's figures are exact as of the moment its chunk was read, so
/// while purchases go on the kecamatan rows (sums over cards) may differ from the program rows
/// (one read) by what was accepted during the read, milliseconds; a past semester's figures
/// no longer move and agree exactly. It costs O(programs + categories + cards × half-years);
/// exception batches come with the totals, counted whole and the latest listed.
#[derive(Debug, Default)]
pub struct JournalView {
    /// Flows within the window and balances at its end.
    totals: WindowTotals,
    /// Each card's flows within the window (`change`, `credited`, `used` up to its end).
    cards: Vec<(CardId, CardFlows)>,
    /// Batches closed within the window out of balance or by a settlement: the latest, by
    /// close time.
    batches: Vec<(TerminalId, ClosedBatch)>,
    /// How many such batches the window had.
    batches_total: u64,
}

/// Cards a report reads per hold of the projection's lock.
pub const REPORT_READ_CHUNK: usize = 4_096;

impl JournalView {
    /// Reads the window `(first, last UTC second)` out of the projection, each `read()` one
    /// short hold of its lock.
    pub fn read<'a>(
        read: &dyn Fn() -> std::sync::RwLockReadGuard<'a, State>,
        window: (i64, i64),
    ) -> JournalView {
        let (start, end) = window;
        let (first, last) = periods(window);
        let (mut totals, card_ids) = {
            let state = read();
            (
                state.totals.window(first, last),
                state.cards.keys().copied().collect::<Vec<_>>(),
            )
        };
        let mut cards = Vec::with_capacity(card_ids.len());
        for chunk in card_ids.chunks(REPORT_READ_CHUNK) {
            let state = read();
            cards.extend(chunk.iter().filter_map(|card| {
                let flows = &state.cards.get(card)?.flows;
                Some((*card, card_window(flows, first, last)?))
            }));
        }
        // Reports are over semesters, which are the totals' periods: the count is exact.
        let exceptions = std::mem::take(&mut totals.exceptions);
        let batches = exceptions
            .latest
            .into_iter()
            .filter(|(_, closed)| (start..=end).contains(&closed.closed_at_unix_seconds))
            .collect();
        let batches_total = exceptions.count;
        JournalView {
            totals,
            cards,
            batches,
            batches_total,
        }
    }
}

/// The half-years a window covers.
fn periods((start, end): (i64, i64)) -> (Period, Period) {
    let first = if start == i64::MIN {
        Period::FIRST
    } else {
        Period::of_unix_seconds(start)
    };
    (first, Period::of_unix_seconds(end))
}

/// Computes the report's figures for `window` (first and last UTC second). Balances are at
/// the window's end; flows are within it.
pub fn compute(journal: &JournalView, registry: &RegistryView<'_>, window: (i64, i64)) -> Figures {
    let (start, end) = window;
    // People and cards are counted as they were at the end of the window's last day, each
    // person where they lived then (their money too).
    let as_of = Day::wita_of_unix_seconds(end.min(AS_OF_UNIX_SECONDS_MAX));
    let holder: HashMap<&str, &Beneficiary> = registry
        .beneficiaries
        .iter()
        .map(|b| (b.ssn.as_str(), b))
        .collect();
    let card_kecamatan: HashMap<CardId, &str> = registry
        .cards
        .iter()
        .map(|c| {
            let kecamatan = holder
                .get(c.ssn.as_str())
                .map_or("(unknown)", |b| b.kecamatan_on(as_of));
            (c.card_id, kecamatan)
        })
        .collect();
    let kecamatan_of = |card: &CardId| -> String {
        card_kecamatan
            .get(card)
            .copied()
            .unwrap_or("(unknown)")
            .to_string()
    };
    let enrolled: HashMap<&str, Vec<String>> = registry
        .beneficiaries
        .iter()
        .map(|b| {
            let programs = b.enrolments_on(as_of);
            (
                b.ssn.as_str(),
                programs.iter().map(|p| p.as_str().to_string()).collect(),
            )
        })
        .collect();
    let mut figures = Figures::default();
    // Money from the journal's running totals by half-year: flows within the window, balances
    // at its end, whatever the number of purchases ever made.
    let totals = &journal.totals;
    let mut programs: BTreeMap<String, Flows> = BTreeMap::new();
    for (code, flows) in &totals.programs {
        programs.insert(
            code.as_str().into(),
            Flows {
                funded: flows.funded,
                disbursed: flows.disbursed,
                spent: flows.spent,
                reversed: flows.reversed,
                returned: flows.returned,
                settled: flows.settled,
                unspent: totals.pockets.get(code).copied().unwrap_or_default(),
                giro_balance: totals.giro.get(code).copied().unwrap_or_default(),
            },
        );
    }
    let mut kecamatan: BTreeMap<String, Flows> = BTreeMap::new();
    let mut pockets: HashMap<CardId, Money> = HashMap::new();
    let mut credited: HashSet<CardId> = HashSet::new();
    let mut used: HashSet<CardId> = HashSet::new();
    for (card, flows) in &journal.cards {
        let area = kecamatan.entry(kecamatan_of(card)).or_default();
        add(&mut area.disbursed, flows.disbursed);
        add(&mut area.spent, flows.spent);
        add(&mut area.reversed, flows.reversed);
        add(&mut area.returned, flows.returned);
        add(&mut area.unspent, flows.change);
        pockets.insert(*card, flows.change);
        if flows.credited {
            credited.insert(*card);
        }
        if flows.used {
            used.insert(*card);
        }
    }
    for (category, row) in &totals.categories {
        figures.categories.insert(
            category.clone(),
            (row.items, row.purchases, row.amount, row.reversed),
        );
    }
    let transacting = &totals.selling;

    // People and cards from the registry.
    let mut program_people: BTreeMap<String, People> = BTreeMap::new();
    let mut area_people: BTreeMap<String, People> = BTreeMap::new();
    let mut total_people = People::default();
    let no_programs = Vec::new();
    let programs_of = |ssn: &str| enrolled.get(ssn).unwrap_or(&no_programs);
    for beneficiary in registry.beneficiaries {
        let programs = programs_of(&beneficiary.ssn);
        if !programs.is_empty() {
            total_people.people_determined += 1;
            area_people
                .entry(beneficiary.kecamatan_on(as_of).to_string())
                .or_default()
                .people_determined += 1;
            for program in programs {
                program_people
                    .entry(program.clone())
                    .or_default()
                    .people_determined += 1;
            }
        }
    }
    for card in registry.cards {
        let Some(beneficiary) = holder.get(card.ssn.as_str()) else {
            continue;
        };
        let programs = programs_of(&beneficiary.ssn);
        let balance = pockets.get(&card.card_id).copied().unwrap_or(Money::ZERO);
        if credited.contains(&card.card_id)
            && !used.contains(&card.card_id)
            && balance.is_positive()
        {
            figures.never_used.push(NeverUsedCard {
                card: card.card_id,
                ssn: beneficiary.ssn.clone(),
                kecamatan: beneficiary.kecamatan_on(as_of).to_string(),
                kelurahan: beneficiary.kelurahan.clone(),
                programs: programs.clone(),
                status: card.status_on(as_of),
                balance,
            });
        }
        if card.issued_on.is_some_and(|day| day > as_of) {
            continue;
        }
        // As the card's dated changes say it was at the end of the last day.
        match card.status_on(as_of) {
            CardStatus::Lost => figures.lost += 1,
            CardStatus::Stolen => figures.stolen += 1,
            CardStatus::Damaged => figures.damaged += 1,
            _ => {}
        }
        figures.replaced += u64::from(card.replaced_on(as_of));
        figures.pin_locked += u64::from(card.pin_locked_on(as_of));
        let delivered = u64::from(match (card.issued_on, card.delivered_on) {
            (_, Some(day)) => day <= as_of,
            // Delivered before the registry recorded the day, if at all.
            (None, None) => card.status != CardStatus::Issued,
            (Some(_), None) => false,
        });
        for people in std::iter::once(&mut total_people).chain(std::iter::once(
            area_people
                .entry(beneficiary.kecamatan_on(as_of).to_string())
                .or_default(),
        )) {
            people.cards_issued += 1;
            people.cards_delivered += delivered;
        }
        for program in programs {
            let people = program_people.entry(program.clone()).or_default();
            people.cards_issued += 1;
            people.cards_delivered += delivered;
        }
    }
    figures.never_used.sort_by_key(|card| card.card);
    figures.possible_duplicates = registry
        .beneficiaries
        .iter()
        .filter(|b| b.possible_duplicate)
        .count() as u64;
    for line in registry.imports {
        if line.action == "beneficiaries.import" && (start..=end).contains(&line.at_unix_seconds) {
            let (duplicates, rejected) = import_counts(&line.outcome);
            figures.duplicate_nik_rows += duplicates;
            figures.rejected_rows += rejected;
        }
    }

    // E-Warong.
    let mut area_merchants: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut active, mut trading) = (0, 0);
    for merchant in registry.merchants.iter().filter(|m| m.appointed_by(as_of)) {
        let row = area_merchants
            .entry(merchant.kecamatan.clone())
            .or_default();
        let is_active = u64::from(merchant.active_on(as_of));
        let is_trading = u64::from(transacting.contains(&merchant.merchant_id));
        row.0 += is_active;
        row.1 += is_trading;
        active += is_active;
        trading += is_trading;
    }

    // Batches.
    let terminal_merchant: HashMap<&TerminalId, &MerchantId> = registry
        .terminals
        .iter()
        .map(|t| (&t.terminal_id, &t.merchant_id))
        .collect();
    let mut batches: Vec<(i64, BatchException)> = Vec::new();
    for (terminal, closed) in &journal.batches {
        let kind = if closed.batch_number == SETTLEMENT_BATCH_NUMBER {
            "closed_by_settlement"
        } else {
            "out_of_balance"
        };
        batches.push((
            closed.closed_at_unix_seconds,
            BatchException {
                kind: kind.into(),
                terminal_id: terminal.as_str().into(),
                merchant_id: terminal_merchant
                    .get(terminal)
                    .map_or_else(String::new, |m| m.as_str().into()),
                batch_number: closed.batch_number.clone(),
                closed_at: wita_time(closed.closed_at_unix_seconds),
                terminal_sales_count: closed.terminal_totals.sales_count,
                terminal_sales_amount: closed.terminal_totals.sales_amount.to_string(),
                journal_sales_count: closed.switch_totals.sales_count,
                journal_sales_amount: closed.switch_totals.sales_amount.to_string(),
            },
        ));
    }
    batches.sort_by(|a, b| (a.0, &a.1.terminal_id).cmp(&(b.0, &b.1.terminal_id)));
    figures.batch_exceptions_total = journal.batches_total.max(batches.len() as u64);
    let listed_from = batches.len().saturating_sub(REPORT_BATCHES_LISTED_MAX);
    figures.batch_exceptions = batches.drain(listed_from..).map(|(_, b)| b).collect();

    // Rows: every program of the registry (and any the journal names), every kecamatan with
    // people, money or E-Warong.
    let names: HashMap<&str, &str> = registry
        .programs
        .iter()
        .map(|p| (p.code.as_str(), p.name.as_str()))
        .collect();
    let codes: BTreeSet<String> = registry
        .programs
        .iter()
        .map(|p| p.code.as_str().to_string())
        .chain(programs.keys().cloned())
        .collect();
    let mut total_flows = Flows::default();
    for code in codes {
        let flows = programs.get(&code).copied().unwrap_or_default();
        for (total, part) in [
            (&mut total_flows.funded, flows.funded),
            (&mut total_flows.disbursed, flows.disbursed),
            (&mut total_flows.spent, flows.spent),
            (&mut total_flows.reversed, flows.reversed),
            (&mut total_flows.returned, flows.returned),
            (&mut total_flows.settled, flows.settled),
            (&mut total_flows.unspent, flows.unspent),
            (&mut total_flows.giro_balance, flows.giro_balance),
        ] {
            add(total, part);
        }
        let name = names.get(code.as_str()).copied().unwrap_or("").to_string();
        let people = program_people.get(&code).copied().unwrap_or_default();
        figures.programs.insert(code, (name, people, flows));
    }
    let areas: BTreeSet<String> = area_people
        .keys()
        .chain(kecamatan.keys())
        .chain(area_merchants.keys())
        .cloned()
        .collect();
    for area in areas {
        let people = area_people.get(&area).copied().unwrap_or_default();
        let flows = kecamatan.get(&area).copied().unwrap_or_default();
        let (active, trading) = area_merchants.get(&area).copied().unwrap_or_default();
        figures
            .kecamatan
            .insert(area, (people, flows, active, trading));
    }
    figures.totals = (total_people, total_flows, active, trading);
    figures
}

/// Duplicate and rejected rows from an import's audit outcome (`ok: R rows, I imported, D
/// duplicates, P possible duplicates, X rejected`); zeros for anything else.
pub fn import_counts(outcome: &str) -> (u64, u64) {
    let Some(rest) = outcome.strip_prefix("ok: ") else {
        return (0, 0);
    };
    let mut duplicates = 0;
    let mut rejected = 0;
    for part in rest.split(", ") {
        let Some((number, what)) = part.split_once(' ') else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match what {
            "duplicates" => duplicates = number,
            "rejected" => rejected = number,
            _ => {}
        }
    }
    (duplicates, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_outcomes_are_read_back() {
        assert_eq!(
            import_counts(
                "ok: 12 rows, 7 imported, 3 duplicates, 1 possible duplicates, 2 rejected"
            ),
            (3, 2)
        );
        assert_eq!(import_counts("conflict"), (0, 0));
    }

    #[test]
    fn semesters_cover_the_year() {
        let first = Semester {
            year: 2026,
            half: 1,
        };
        let second = Semester {
            year: 2026,
            half: 2,
        };
        assert_eq!(first.first_day().to_string(), "2026-01-01");
        assert_eq!(first.last_day().to_string(), "2026-06-30");
        assert_eq!(second.first_day().to_string(), "2026-07-01");
        assert_eq!(second.last_day().to_string(), "2026-12-31");
        assert_eq!(first.window().1 + 1, second.window().0);
    }

    /// A semester with more exception batches than a report lists: it counts them all and
    /// lists the latest, oldest first.
    #[test]
    fn a_report_lists_the_latest_exception_batches_and_counts_all() {
        use ssn_ledger::BatchTotals;
        let extra = 7;
        let batches = (0..REPORT_BATCHES_LISTED_MAX + extra)
            .map(|i| {
                let sold = BatchTotals {
                    sales_count: 1,
                    ..BatchTotals::default()
                };
                let closed = ClosedBatch {
                    sequence: 1,
                    batch_number: format!("{i:06}"),
                    switch_totals: sold,
                    terminal_totals: BatchTotals::default(),
                    closed_at_unix_seconds: 1_000 + i as i64,
                };
                (TerminalId::new(format!("T{i:07}")).unwrap(), closed)
            })
            .collect();
        let journal = JournalView {
            batches,
            ..JournalView::default()
        };
        let registry = RegistryView {
            programs: &[],
            beneficiaries: &[],
            cards: &[],
            merchants: &[],
            terminals: &[],
            imports: &[],
        };
        let figures = compute(&journal, &registry, (0, i64::MAX));
        assert_eq!(
            figures.batch_exceptions_total,
            (REPORT_BATCHES_LISTED_MAX + extra) as u64
        );
        assert_eq!(figures.batch_exceptions.len(), REPORT_BATCHES_LISTED_MAX);
        assert_eq!(
            figures.batch_exceptions[0].batch_number,
            format!("{extra:06}")
        );
        assert!(
            figures
                .batch_exceptions
                .windows(2)
                .all(|w| w[0].closed_at < w[1].closed_at)
        );
    }

    #[test]
    fn categories_have_names() {
        assert_eq!(category_name("01"), "rice");
        assert_eq!(category_name("95"), "non-food");
        assert_eq!(category_name(NO_BASKET), "no basket sent");
    }
}
