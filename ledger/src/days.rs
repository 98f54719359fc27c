//! Business dates: which WITA business date each approved purchase belongs to, and what each
//! date not settled yet holds per E-Warong, kept as purchases and reversals are applied.
//!
//! A purchase belongs to the business date on which it was accepted, under the settlement
//! cut-over in force then ([`crate::Record::Cutover`]; midnight before the first one). A
//! reversal of a purchase whose date is not settled yet counts on that date; one whose date is
//! settled already counts as an *adjustment* on the first date after it not settled yet. So
//! settling a date reads these sums, never a purchase, and purchases may leave memory before
//! their date is settled ([`crate::window`]).

use crate::day::{Day, WITA_OFFSET_SECONDS};
use crate::ids::{MerchantId, ProgramCode, TransferId};
use crate::money::Money;
use crate::record::{DayLine, PocketAmount, Record, ReversalEffect, ReversalRecord};
use crate::state::State;
use crate::totals::{add_to, sub_from};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Seconds in a day.
const SECONDS_PER_DAY: i64 = 86_400;

/// The cut-over before any is journaled: a business day ends at the midnight at its end.
pub const CUTOVER_SECONDS_DEFAULT: u32 = 86_400;

/// One E-Warong's sums of a terminal batch or of a business date.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSums {
    /// Approved purchases, reversed ones included.
    pub purchase_count: u32,
    /// Their amount.
    pub purchase_amount: Money,
    /// Reversed purchases among them.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: Money,
    /// Purchases minus reversals, per program.
    pub net: BTreeMap<ProgramCode, Money>,
    /// Purchases of settled dates reversed since (business dates only).
    pub adjustment_count: u32,
    /// Their amount.
    pub adjustment_amount: Money,
    /// Their amount per program: taken back from `net`.
    pub adjusted: BTreeMap<ProgramCode, Money>,
}

impl LineSums {
    /// What the line moves per program as a record holds it: `net` minus `adjusted`, non-zero
    /// amounts only, in code order.
    pub fn net_amounts(&self) -> Vec<PocketAmount> {
        let mut net = self.net.clone();
        for (program, amount) in &self.adjusted {
            sub_from(net.entry(program.clone()).or_default(), *amount);
        }
        net.into_iter()
            .filter(|(_, amount)| *amount != Money::ZERO)
            .map(|(program, amount)| PocketAmount { program, amount })
            .collect()
    }

    /// Adds an approved purchase.
    pub fn purchase(&mut self, amount: Money, legs: &[PocketAmount]) {
        self.purchase_count += 1;
        add_to(&mut self.purchase_amount, amount);
        for leg in legs {
            add_to(self.net.entry(leg.program.clone()).or_default(), leg.amount);
        }
    }

    /// Takes a reversed purchase back: as a reversal on its own date, or as an adjustment.
    pub fn reversal(&mut self, amount: Money, legs: &[PocketAmount], adjustment: bool) {
        let (count, total, per_program) = if adjustment {
            (
                &mut self.adjustment_count,
                &mut self.adjustment_amount,
                &mut self.adjusted,
            )
        } else {
            (
                &mut self.reversal_count,
                &mut self.reversal_amount,
                &mut self.net,
            )
        };
        *count += 1;
        add_to(total, amount);
        for leg in legs {
            let entry = per_program.entry(leg.program.clone()).or_default();
            if adjustment {
                add_to(entry, leg.amount);
            } else {
                sub_from(entry, leg.amount);
            }
        }
    }

    /// Moves the adjustments out of these sums (a line that cannot take them yet).
    pub fn take_adjustments(&mut self) -> LineSums {
        LineSums {
            adjustment_count: std::mem::take(&mut self.adjustment_count),
            adjustment_amount: std::mem::take(&mut self.adjustment_amount),
            adjusted: std::mem::take(&mut self.adjusted),
            ..LineSums::default()
        }
    }

    /// Adds the adjustments of `other` into these sums.
    pub fn absorb_adjustments(&mut self, other: &LineSums) {
        self.adjustment_count += other.adjustment_count;
        add_to(&mut self.adjustment_amount, other.adjustment_amount);
        for (program, amount) in &other.adjusted {
            add_to(self.adjusted.entry(program.clone()).or_default(), *amount);
        }
    }
}

/// The business-date book of the projection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessDays {
    /// Cut-overs journaled: (in force from, UTC seconds; seconds after midnight a business day
    /// ends), oldest first.
    pub cutovers: Vec<(i64, u32)>,
    /// What each business date not settled yet holds, per E-Warong.
    pub unsettled: BTreeMap<Day, BTreeMap<MerchantId, LineSums>>,
    /// The terminal batches closed (0500) on each business date, by the date of their close:
    /// what the reconciliation of a date compares with the terminals' totals.
    pub closed_batches: BTreeMap<Day, Vec<(crate::ids::TerminalId, u64)>>,
    /// Whether a date has been settled by date ([`crate::Record::DaySettlement`]): from then
    /// on no batch settlement can follow, and closed terminal batches wait for nothing.
    pub by_date: bool,
}

impl BusinessDays {
    /// The cut-over in force at `unix_seconds`.
    pub fn cutover_at(&self, unix_seconds: i64) -> u32 {
        self.cutovers
            .iter()
            .rev()
            .find(|(from, _)| *from <= unix_seconds)
            .map_or(CUTOVER_SECONDS_DEFAULT, |(_, seconds)| *seconds)
    }

    /// The cut-over in force now (the last journaled).
    pub fn cutover(&self) -> u32 {
        self.cutovers
            .last()
            .map_or(CUTOVER_SECONDS_DEFAULT, |(_, seconds)| *seconds)
    }

    /// The business date of a purchase accepted at `unix_seconds`: the day D with
    /// `start(D) + cutover - 1 day <= t < start(D) + cutover`.
    pub fn date_of(&self, unix_seconds: i64) -> Day {
        let cutover = i64::from(self.cutover_at(unix_seconds));
        Day::wita_of_unix_seconds(unix_seconds - cutover + SECONDS_PER_DAY)
    }

    /// When business date `date` ends under the cut-over in force now (UTC seconds).
    pub fn end_of(&self, date: Day) -> i64 {
        i64::from(date.0) * SECONDS_PER_DAY - WITA_OFFSET_SECONDS + i64::from(self.cutover())
    }

    /// The sums of `merchant` on `date`, created empty.
    pub fn sums(&mut self, date: Day, merchant: &MerchantId) -> &mut LineSums {
        self.unsettled
            .entry(date)
            .or_default()
            .entry(merchant.clone())
            .or_default()
    }

    /// Takes back what a terminal batch settled the old way ([`crate::Record::Settlement`])
    /// held on each date: those purchases are settled.
    pub fn settled_by_batch(&mut self, batch: &BTreeMap<(Day, MerchantId), LineSums>) {
        for ((date, merchant), sums) in batch {
            let Some(merchants) = self.unsettled.get_mut(date) else {
                continue;
            };
            if let Some(day) = merchants.get_mut(merchant) {
                day.purchase_count = day.purchase_count.saturating_sub(sums.purchase_count);
                sub_from(&mut day.purchase_amount, sums.purchase_amount);
                day.reversal_count = day.reversal_count.saturating_sub(sums.reversal_count);
                sub_from(&mut day.reversal_amount, sums.reversal_amount);
                for (program, amount) in &sums.net {
                    sub_from(day.net.entry(program.clone()).or_default(), *amount);
                }
                if day.purchase_count == 0 && day.adjustment_count == 0 {
                    merchants.remove(merchant);
                }
            }
            if merchants.is_empty() {
                self.unsettled.remove(date);
            }
        }
    }
}

impl State {
    /// Whether business date `date` is settled (by date, or by batch before that).
    pub fn is_settled(&self, date: Day) -> bool {
        self.transfers.contains_key(&TransferId::settlement(date))
    }

    /// The first date after `date` not settled yet.
    pub fn next_unsettled_after(&self, date: Day) -> Day {
        let mut next = Day(date.0 + 1);
        while self.is_settled(next) {
            next = Day(next.0 + 1);
        }
        next
    }

    /// The date an approved purchase accepted at `unix_seconds` counts on: its business date,
    /// or, when that is settled already (a node whose clock is behind), the next one not.
    pub(crate) fn purchase_date(&self, unix_seconds: i64) -> Day {
        let date = self.days.date_of(unix_seconds);
        if self.is_settled(date) {
            self.next_unsettled_after(date)
        } else {
            date
        }
    }

    /// The legs of `record` when it is a reversal of a purchase whose business date is
    /// settled already (an adjustment of a later date), else none.
    pub(crate) fn late_reversal_legs(&self, record: &Record) -> Vec<PocketAmount> {
        let Record::Reversal(ReversalRecord {
            original,
            effect: ReversalEffect::Reversed { legs, .. },
        }) = record
        else {
            return Vec::new();
        };
        match self.purchase(original) {
            Some(purchase) if self.is_settled(self.days.date_of(purchase.at_unix_seconds)) => {
                legs.clone()
            }
            _ => Vec::new(),
        }
    }

    /// How far below zero a program's giro account may go: by the adjustments not settled yet
    /// (with `late`, those the record being applied adds). A reversal of a purchase whose date
    /// is settled returns the money to the card from the giro account, which gave it to the
    /// E-Warong already; the adjustment of a later date returns it from the E-Warong's payable
    /// account. Meanwhile the giro account is short by exactly that, and by nothing else.
    pub(crate) fn giro_floor(&self, program: &ProgramCode, late: &[PocketAmount]) -> Money {
        let pending = self
            .days
            .unsettled
            .values()
            .flat_map(|merchants| merchants.values())
            .filter_map(|sums| sums.adjusted.get(program).copied())
            .chain(
                late.iter()
                    .filter(|leg| leg.program == *program)
                    .map(|leg| leg.amount),
            );
        Money::checked_sum(pending)
            .and_then(Money::checked_neg)
            .unwrap_or(Money::ZERO)
    }

    /// Takes back a purchase of business date `date` reversed now: a reversal on that date, or
    /// an adjustment on the next date not settled when `date` is.
    pub(crate) fn date_reversal(
        &mut self,
        date: Day,
        merchant: &MerchantId,
        amount: Money,
        legs: &[PocketAmount],
    ) {
        if self.is_settled(date) {
            let next = self.next_unsettled_after(date);
            self.days.sums(next, merchant).reversal(amount, legs, true);
        } else {
            self.days.sums(date, merchant).reversal(amount, legs, false);
        }
    }

    /// The lines of business date `date`'s settlement as the journal has them now, and the
    /// E-Warong whose adjustments wait for a later date: adjustments larger than what the
    /// E-Warong is owed on the date (its line would be negative) join the next date not
    /// settled, so the bank is never asked to pay a negative amount.
    pub fn day_lines(&self, date: Day) -> (Vec<DayLine>, Vec<MerchantId>) {
        let none = BTreeMap::new();
        let sums = self.days.unsettled.get(&date).unwrap_or(&none);
        let mut merchants: BTreeSet<&MerchantId> = sums.keys().collect();
        merchants.extend(
            self.carried
                .iter()
                .filter(|(_, carried)| carried.is_positive())
                .map(|(merchant, _)| merchant),
        );
        let (mut lines, mut deferred) = (Vec::new(), Vec::new());
        for merchant in merchants {
            let carried = self
                .carried
                .get(merchant)
                .copied()
                .filter(|c| c.is_positive())
                .unwrap_or(Money::ZERO);
            let mut line = sums.get(merchant).cloned().unwrap_or_default();
            let amount = |line: &LineSums| {
                Money::checked_sum(
                    line.net_amounts()
                        .iter()
                        .map(|net| net.amount)
                        .chain(std::iter::once(carried)),
                )
            };
            if line.adjustment_count > 0 && amount(&line).is_none_or(|a| a.is_negative()) {
                line.take_adjustments();
                deferred.push(merchant.clone());
            }
            if line.purchase_count == 0 && line.adjustment_count == 0 && carried == Money::ZERO {
                continue;
            }
            lines.push(DayLine {
                merchant: merchant.clone(),
                purchase_count: line.purchase_count,
                purchase_amount: line.purchase_amount,
                reversal_count: line.reversal_count,
                reversal_amount: line.reversal_amount,
                adjustment_count: line.adjustment_count,
                adjustment_amount: line.adjustment_amount,
                net: line.net_amounts(),
                carried,
                amount: amount(&line).unwrap_or(Money::ZERO),
            });
        }
        (lines, deferred)
    }

    /// The effects of business date `date`'s settlement (journaled as `lines`, already in
    /// `transfers`): its sums leave, deferred adjustments join the next date not settled,
    /// carried amounts are paid with it, and from the first one on terminal batches wait for
    /// no settlement.
    pub(crate) fn settle_date(&mut self, date: Day, lines: &[DayLine], at_unix_seconds: i64) {
        let mut sums = self.days.unsettled.remove(&date).unwrap_or_default();
        let next = self.next_unsettled_after(date);
        for (merchant, line_sums) in &mut sums {
            let line = lines.iter().find(|l| l.merchant == *merchant);
            if line.is_none_or(|l| l.adjustment_count < line_sums.adjustment_count) {
                let adjustments = line_sums.take_adjustments();
                self.days
                    .sums(next, merchant)
                    .absorb_adjustments(&adjustments);
            }
        }
        for line in lines {
            if line.carried.is_positive() {
                self.carried.remove(&line.merchant);
            }
            for net in &line.net {
                add_to(
                    &mut self.totals.program(at_unix_seconds, &net.program).settled,
                    net.amount,
                );
            }
        }
        if !self.days.by_date {
            self.days.by_date = true;
            // No batch settlement can follow: closed batches but each terminal's last leave.
            self.batch_sums.clear();
            self.settled_batches.clear();
            let mut terminals: Vec<_> = self.terminals.keys().cloned().collect();
            terminals.sort();
            for terminal in terminals {
                if let Some(batches) = self.terminals.get_mut(&terminal) {
                    let keep = batches.closed.len().saturating_sub(1);
                    for closed in batches.closed.drain(..keep) {
                        self.departed_batches.push((terminal.clone(), closed));
                    }
                }
            }
        }
    }

    /// The amount of `merchant`'s line in business date `date`'s settlement, either kind.
    pub fn settlement_line_amount(&self, date: Day, merchant: &MerchantId) -> Option<Money> {
        let (_, lines) = self
            .transfers
            .get(&TransferId::settlement(date))?
            .settlement()?;
        lines
            .into_iter()
            .find(|(m, _, _)| *m == merchant)
            .map(|(_, amount, _)| amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_business_date_ends_at_its_cutover() {
        let date = Day::parse_iso("2026-12-07").unwrap();
        // 2026-12-07 00:00 WITA is 2026-12-06T16:00:00Z.
        let midnight = i64::from(date.0) * SECONDS_PER_DAY - WITA_OFFSET_SECONDS;
        let mut days = BusinessDays::default();
        assert_eq!(days.date_of(midnight), date);
        assert_eq!(days.date_of(midnight + SECONDS_PER_DAY - 1), date);
        assert_eq!(days.end_of(date), midnight + SECONDS_PER_DAY);
        // From 22:00 on, a purchase belongs to the next date.
        days.cutovers.push((midnight, 22 * 3600));
        assert_eq!(days.date_of(midnight + 22 * 3600 - 1), date);
        assert_eq!(days.date_of(midnight + 22 * 3600), Day(date.0 + 1));
        assert_eq!(days.end_of(date), midnight + 22 * 3600);
        // Before the cut-over was journaled, midnight still dates purchases.
        assert_eq!(days.date_of(midnight - 3600), Day(date.0 - 1));
    }
}
