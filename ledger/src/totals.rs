//! Running totals by half-year: the read model the semester report, the public summary and a
//! program's close read instead of walking all of history.
//!
//! [`State::apply`](crate::State::apply) adds each record's flows to the [`Period`] (WITA
//! half-year) in which the journal accepted it: per program (funded, disbursed, spent,
//! reversed, returned by a close or a revocation, settled), per commodity category, the E-Warong that sold,
//! and per card (in [`crate::CardState::flows`]). A balance at a period's end is the sum of
//! the flows of every period up to it. So a report over a period costs O(programs +
//! categories + cards × periods), whatever the number of purchases ever made, and the totals
//! take memory per card and half-year, not per purchase.
//!
//! Every figure is an integer sum of journaled amounts, so what the totals say is exactly what
//! a walk of the journal says (`tests/e2e/report.rs` recomputes the report from the journal
//! file; the unit tests here compare with a walk of [`crate::State::log`]).

use crate::day::Day;
use crate::ids::{MerchantId, ProgramCode, TerminalId};
use crate::money::Money;
use crate::state::ClosedBatch;
use std::collections::{BTreeMap, BTreeSet};

/// A calendar half-year of WITA days: `2 × year` for January-June, one more for July-December.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Period(pub i32);

impl Period {
    /// The earliest period: every flow is at or after it.
    pub const FIRST: Period = Period(i32::MIN);

    /// The half-year of a WITA day.
    pub fn of_day(day: Day) -> Period {
        let (year, month, _) = day.ymd();
        Period(year * 2 + i32::from(month > 6))
    }

    /// The half-year containing the UTC instant `unix_seconds` in WITA.
    pub fn of_unix_seconds(unix_seconds: i64) -> Period {
        Period::of_day(Day::wita_of_unix_seconds(unix_seconds))
    }

    /// Half `half` (1 or 2) of `year`.
    pub fn half_of(year: i32, half: u8) -> Period {
        Period(year * 2 + i32::from(half == 2))
    }
}

/// What moved through one program's accounts in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramFlows {
    /// Funding → giro.
    pub funded: Money,
    /// Giro → pockets.
    pub disbursed: Money,
    /// Pockets → giro by approved purchases (gross: reversed ones included).
    pub spent: Money,
    /// Giro → pockets by reversals accepted in the period.
    pub reversed: Money,
    /// Pockets → giro: expired ones by a year-end close, revoked enrolments' by a revocation.
    pub returned: Money,
    /// Giro → payable by settlements.
    pub settled: Money,
}

impl ProgramFlows {
    /// The change of the giro account's balance.
    pub fn giro_change(&self) -> Option<Money> {
        self.funded
            .checked_sub(self.disbursed)?
            .checked_add(self.spent)?
            .checked_sub(self.reversed)?
            .checked_add(self.returned)?
            .checked_sub(self.settled)
    }

    /// The change of the program's pockets, all cards together.
    pub fn pockets_change(&self) -> Option<Money> {
        self.disbursed
            .checked_sub(self.spent)?
            .checked_add(self.reversed)?
            .checked_sub(self.returned)
    }

    /// Spent and not reversed, less what settlements paid on: what the program owes E-Warong.
    pub fn owed_change(&self) -> Option<Money> {
        self.spent
            .checked_sub(self.reversed)?
            .checked_sub(self.settled)
    }

    fn add(&mut self, other: &ProgramFlows) {
        for (total, part) in [
            (&mut self.funded, other.funded),
            (&mut self.disbursed, other.disbursed),
            (&mut self.spent, other.spent),
            (&mut self.reversed, other.reversed),
            (&mut self.returned, other.returned),
            (&mut self.settled, other.settled),
        ] {
            add_to(total, part);
        }
    }
}

/// One commodity category's purchases in a period (§4's DE48 categories; `--` for purchases
/// without a basket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CategoryTotals {
    /// Basket items.
    pub items: u64,
    /// Purchases with at least one item of the category.
    pub purchases: u64,
    /// The items' amounts.
    pub amount: Money,
    /// Of that amount, what belongs to purchases reversed since (whenever the reversal came).
    pub reversed: Money,
}

/// What moved through one card's pockets in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardFlows {
    /// Credited by disbursements.
    pub disbursed: Money,
    /// Debited by approved purchases.
    pub spent: Money,
    /// Credited by reversals.
    pub reversed: Money,
    /// Taken by a year-end close.
    pub returned: Money,
    /// The change of the card's pockets, replacements included.
    pub change: Money,
    /// Money arrived (a disbursement or a replacement's balance).
    pub credited: bool,
    /// An approved purchase was made.
    pub used: bool,
}

impl CardFlows {
    fn add(&mut self, other: &CardFlows) {
        for (total, part) in [
            (&mut self.disbursed, other.disbursed),
            (&mut self.spent, other.spent),
            (&mut self.reversed, other.reversed),
            (&mut self.returned, other.returned),
            (&mut self.change, other.change),
        ] {
            add_to(total, part);
        }
        self.credited |= other.credited;
        self.used |= other.used;
    }
}

/// The totals of one period.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PeriodTotals {
    /// Per program.
    pub programs: BTreeMap<ProgramCode, ProgramFlows>,
    /// Per category code.
    pub categories: BTreeMap<String, CategoryTotals>,
    /// E-Warong with an approved purchase (ordered, so a snapshot is the same bytes for the
    /// same totals).
    pub selling: BTreeSet<MerchantId>,
    /// Exception batches closed in the period.
    pub exceptions: ExceptionBatches,
}

/// Exception batches a period keeps at most (the latest; it counts them all): what a semester
/// report lists.
pub const EXCEPTION_BATCHES_KEPT: usize = 1_000;

/// Terminal batches whose close is an exception a report lists: closed by a settlement with
/// sales on them (the terminal never sent its 0500), or closed by the terminal on totals that
/// differ from the journal's.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExceptionBatches {
    /// How many there were.
    pub count: u64,
    /// The latest [`EXCEPTION_BATCHES_KEPT`], ordered by close time, terminal and sequence.
    pub latest: Vec<(TerminalId, ClosedBatch)>,
}

impl ExceptionBatches {
    fn add(&mut self, terminal: &TerminalId, closed: &ClosedBatch) {
        self.count += 1;
        let key =
            |(t, c): &(TerminalId, ClosedBatch)| (c.closed_at_unix_seconds, t.clone(), c.sequence);
        let row = (terminal.clone(), closed.clone());
        let at = self.latest.partition_point(|r| key(r) <= key(&row));
        self.latest.insert(at, row);
        if self.latest.len() > EXCEPTION_BATCHES_KEPT {
            self.latest.remove(0);
        }
    }
}

/// Whether a closed batch is an exception ([`ExceptionBatches`]).
pub fn is_exception(closed: &ClosedBatch) -> bool {
    if closed.batch_number == crate::SETTLEMENT_BATCH_NUMBER {
        closed.switch_totals.sales_count > 0
    } else {
        closed.terminal_totals != closed.switch_totals
    }
}

/// The running totals of every period with a flow.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// By period.
    pub periods: BTreeMap<Period, PeriodTotals>,
}

/// The totals of a window of periods `first..=last`, and balances at the end of `last`.
#[derive(Clone, Debug, Default)]
pub struct WindowTotals {
    /// Flows within the window per program.
    pub programs: BTreeMap<ProgramCode, ProgramFlows>,
    /// Giro balances at the window's end per program.
    pub giro: BTreeMap<ProgramCode, Money>,
    /// Pockets at the window's end per program, all cards together.
    pub pockets: BTreeMap<ProgramCode, Money>,
    /// Per category, within the window.
    pub categories: BTreeMap<String, CategoryTotals>,
    /// E-Warong that sold within the window.
    pub selling: BTreeSet<MerchantId>,
    /// Exception batches closed within the window: all counted, the latest
    /// [`EXCEPTION_BATCHES_KEPT`] of each period listed.
    pub exceptions: ExceptionBatches,
}

/// Adds `amount` (possibly negative) to `total`: sums of amounts the journal accepted, so each
/// fits, and so does every sum of them.
pub(crate) fn add_to(total: &mut Money, amount: Money) {
    *total = total.checked_add(amount).unwrap_or(*total);
}

impl Totals {
    fn period(&mut self, at_unix_seconds: i64) -> &mut PeriodTotals {
        self.periods
            .entry(Period::of_unix_seconds(at_unix_seconds))
            .or_default()
    }

    /// A program's flows in the period of `at_unix_seconds`, to add to.
    pub(crate) fn program(
        &mut self,
        at_unix_seconds: i64,
        program: &ProgramCode,
    ) -> &mut ProgramFlows {
        let period = self.period(at_unix_seconds);
        if !period.programs.contains_key(program) {
            period
                .programs
                .insert(program.clone(), ProgramFlows::default());
        }
        period
            .programs
            .get_mut(program)
            .expect("inserted just above")
    }

    /// A terminal batch closed: counted and kept if it is an exception ([`is_exception`]).
    pub(crate) fn batch_closed(&mut self, terminal: &TerminalId, closed: &ClosedBatch) {
        if is_exception(closed) {
            self.period(closed.closed_at_unix_seconds)
                .exceptions
                .add(terminal, closed);
        }
    }

    /// An approved purchase: its items by category, and the E-Warong that sold.
    pub(crate) fn sold(
        &mut self,
        at_unix_seconds: i64,
        merchant: &MerchantId,
        basket: &[crate::BasketLine],
        amount: Money,
    ) {
        let period = self.period(at_unix_seconds);
        if !period.selling.contains(merchant) {
            period.selling.insert(merchant.clone());
        }
        for_categories(basket, amount, |category, amount, first| {
            let row = category_row(period, category);
            row.items += 1;
            row.purchases += u64::from(first);
            add_to(&mut row.amount, amount);
        });
    }

    /// A reversal of a purchase accepted at `at_unix_seconds`: its categories' reversed amount.
    pub(crate) fn unsold(
        &mut self,
        at_unix_seconds: i64,
        basket: &[crate::BasketLine],
        amount: Money,
    ) {
        let period = self.period(at_unix_seconds);
        for_categories(basket, amount, |category, amount, _| {
            add_to(&mut category_row(period, category).reversed, amount);
        });
    }

    /// Flows within `first..=last` and balances at the end of `last`.
    pub fn window(&self, first: Period, last: Period) -> WindowTotals {
        let mut window = WindowTotals::default();
        for (period, totals) in self.periods.range(..=last) {
            let within = *period >= first;
            for (program, flows) in &totals.programs {
                add_to(
                    window.giro.entry(program.clone()).or_default(),
                    flows.giro_change().unwrap_or_default(),
                );
                add_to(
                    window.pockets.entry(program.clone()).or_default(),
                    flows.pockets_change().unwrap_or_default(),
                );
                let row = window.programs.entry(program.clone()).or_default();
                if within {
                    row.add(flows);
                }
            }
            if within {
                for (category, row) in &totals.categories {
                    let total = window.categories.entry(category.clone()).or_default();
                    total.items += row.items;
                    total.purchases += row.purchases;
                    add_to(&mut total.amount, row.amount);
                    add_to(&mut total.reversed, row.reversed);
                }
                window.selling.extend(totals.selling.iter().cloned());
                window.exceptions.count += totals.exceptions.count;
                window
                    .exceptions
                    .latest
                    .extend(totals.exceptions.latest.iter().cloned());
            }
        }
        window
    }

    /// What a program owes E-Warong now: purchases not reversed less what settlements took.
    pub fn owed(&self, program: &ProgramCode) -> Money {
        let mut owed = Money::ZERO;
        for totals in self.periods.values() {
            if let Some(change) = totals
                .programs
                .get(program)
                .and_then(ProgramFlows::owed_change)
            {
                add_to(&mut owed, change);
            }
        }
        owed
    }
}

/// The category of purchases without a basket.
pub const NO_BASKET: &str = "--";

fn category_row<'a>(period: &'a mut PeriodTotals, category: &str) -> &'a mut CategoryTotals {
    if !period.categories.contains_key(category) {
        period
            .categories
            .insert(category.to_string(), CategoryTotals::default());
    }
    period
        .categories
        .get_mut(category)
        .expect("inserted just above")
}

/// Calls `visit(category, amount, first item of its category in this basket)` per item; a
/// purchase without a basket counts whole under [`NO_BASKET`].
fn for_categories(
    basket: &[crate::BasketLine],
    amount: Money,
    mut visit: impl FnMut(&str, Money, bool),
) {
    if basket.is_empty() {
        visit(NO_BASKET, amount, true);
        return;
    }
    for (i, item) in basket.iter().enumerate() {
        let first = basket[..i].iter().all(|b| b.category != item.category);
        visit(&item.category, item.amount, first);
    }
}

/// A card's flows within `first..=last`; `change`, `credited` and `used` up to `last`. `None`
/// when the card had no flow up to `last`.
pub fn card_window(
    flows: &[(Period, CardFlows)],
    first: Period,
    last: Period,
) -> Option<CardFlows> {
    let mut window: Option<CardFlows> = None;
    for (period, part) in flows.iter().take_while(|(period, _)| *period <= last) {
        let total = window.get_or_insert_with(CardFlows::default);
        if *period >= first {
            total.add(part);
        } else {
            add_to(&mut total.change, part.change);
            total.credited |= part.credited;
            total.used |= part.used;
        }
    }
    window
}

/// A card's flows in the period of `at_unix_seconds`, to add to (`flows` is oldest first, and
/// the journal applies entries in order, so the period is the last one or a new one).
pub(crate) fn card_flows(
    flows: &mut Vec<(Period, CardFlows)>,
    at_unix_seconds: i64,
) -> &mut CardFlows {
    let period = Period::of_unix_seconds(at_unix_seconds);
    let position = match flows.iter().rposition(|(p, _)| *p <= period) {
        Some(i) if flows[i].0 == period => i,
        Some(i) => {
            flows.insert(i + 1, (period, CardFlows::default()));
            i + 1
        }
        None => {
            flows.insert(0, (period, CardFlows::default()));
            0
        }
    };
    &mut flows[position].1
}

/// Subtracts `amount` from `total`.
pub(crate) fn sub_from(total: &mut Money, amount: Money) {
    *total = total.checked_sub(amount).unwrap_or(*total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_wita_half_years() {
        let day = |iso| Day::parse_iso(iso).unwrap();
        assert_eq!(Period::of_day(day("2025-06-30")), Period::half_of(2025, 1));
        assert_eq!(Period::of_day(day("2025-07-01")), Period::half_of(2025, 2));
        assert_eq!(Period::of_day(day("2026-01-01")), Period::half_of(2026, 1));
        assert!(Period::half_of(2025, 2) < Period::half_of(2026, 1));
        // 2025-06-30 16:00 UTC is 2025-07-01 00:00 WITA.
        let midnight_wita = i64::from(day("2025-07-01").0) * 86_400 - 8 * 3600;
        assert_eq!(
            Period::of_unix_seconds(midnight_wita - 1),
            Period::half_of(2025, 1)
        );
        assert_eq!(
            Period::of_unix_seconds(midnight_wita),
            Period::half_of(2025, 2)
        );
    }

    #[test]
    fn a_card_window_sums_within_and_carries_balances_from_before() {
        let at = |iso: &str| i64::from(Day::parse_iso(iso).unwrap().0) * 86_400;
        let mut flows = Vec::new();
        let rp = Money::from_minor;
        let first = card_flows(&mut flows, at("2025-03-01"));
        first.disbursed = rp(100);
        first.change = rp(100);
        first.credited = true;
        let second = card_flows(&mut flows, at("2025-08-01"));
        second.spent = rp(30);
        second.change = rp(-30);
        second.used = true;
        // Out of order (another node's entry, merged later): kept sorted.
        let early = card_flows(&mut flows, at("2024-12-01"));
        early.returned = rp(1);
        assert_eq!(
            flows.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [
                Period::half_of(2024, 2),
                Period::half_of(2025, 1),
                Period::half_of(2025, 2)
            ]
        );
        let h2 = Period::half_of(2025, 2);
        let window = card_window(&flows, h2, h2).unwrap();
        assert_eq!(window.spent, rp(30));
        assert_eq!(window.disbursed, Money::ZERO);
        assert_eq!(window.change, rp(70));
        assert!(window.credited && window.used);
        let h1 = Period::half_of(2025, 1);
        let window = card_window(&flows, h1, h1).unwrap();
        assert_eq!(window.change, rp(100));
        assert!(!window.used);
        assert!(card_window(&flows, Period::FIRST, Period::half_of(2024, 1)).is_none());
    }
}
