//! The working set: what the projection keeps in memory, and how the rest moves to history on
//! disk ([`crate::history`]).
//!
//! Memory keeps pockets and balances, per-card counters, terminal batches not settled yet
//! (and each terminal's last) with their settlement sums, and the purchases, reversals and
//! tombstones accepted after a *cutoff*: at
//! most [`WORKING_SET_SECONDS`] ago, and later when more than a cap of purchases
//! ([`WORKING_SET_PURCHASES_MAX`]) would otherwise stay, so memory is bounded by time at the
//! program's volume and by count at benchmark rates. A record leaves once both its acceptance
//! time and its key's DE7 are before the cutoff; the log and each card's transfers leave in
//! order. A purchase still in an open batch may leave too: settlement reads the batch's sums,
//! and a late reversal of it brings it back from history (`State::restore`).
//!
//! Lookups rely on one rule: a purchase key whose DE7 lies after the *horizon* (the latest
//! cutoff ever used), at most [`RECENT_SECONDS`] before now and [`FUTURE_SECONDS`] after, is
//! *recent*, and memory alone answers for it: nothing recent ever left. Any other key is also
//! looked up in history. New purchases carry recent keys (unless a terminal's clock is behind
//! the horizon), so the hot path does not read the disk; a duplicate or reversal of an old
//! purchase costs one indexed read. DE7 has no year: a key is read as the instant nearest
//! now, so the same terminal, STAN and DE7 a year later is a new purchase (the STAN has
//! wrapped long before).

use crate::history::{LogRow, Moved};
use crate::ids::{CardId, PurchaseKey, TransferId, TransmissionTime};
use crate::record::{Record, ReversalEffect};
use crate::state::State;
use std::collections::HashSet;

/// How long purchases, reversals and tombstones stay in memory at most (acceptance time and
/// DE7 both) while there are fewer than [`WORKING_SET_PURCHASES_MAX`]: three days, so at the
/// program's volume the current and previous business day are always there.
pub const WORKING_SET_SECONDS: i64 = 3 * 86_400;
/// Purchases the working set keeps at most (about 1 KB each) before its cutoff moves closer to
/// now: past it the mover takes the oldest until an eighth of the cap is free.
pub const WORKING_SET_PURCHASES_MAX: usize = 131_072;
/// Keys whose DE7 is at most this old are answered from memory alone.
pub const RECENT_SECONDS: i64 = 2 * 86_400;
// What leaves memory is never recent later: its DE7 is older than the working set.
const _: () = assert!(WORKING_SET_SECONDS > RECENT_SECONDS);
/// Keys whose DE7 is at most this far ahead of now (a terminal's clock running fast) are
/// answered from memory alone.
pub const FUTURE_SECONDS: i64 = 86_400;
/// Rows examined per look at the projection while moving: bounds how long the mover holds
/// the projection's lock, which the journal's sequencer (every purchase) waits for.
pub const MOVE_ROWS_MAX: usize = 2_048;
/// How often the ledger moves what has left the working set.
pub const MOVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The UTC instant nearest `now` whose month, day and time are DE7's (`MMDDhhmmss`, UTC);
/// `None` when DE7 is no date in the years around now.
pub fn transmitted_at(transmitted: &TransmissionTime, now: i64) -> Option<i64> {
    let text = transmitted.as_str();
    let field = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let (month, day) = (field(0..2)?, field(2..4)?);
    let (hour, minute, second) = (field(4..6)?, field(6..8)?, field(8..10)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (year, _, _) = crate::day::Day(i32::try_from(now.div_euclid(86_400)).ok()?).ymd();
    let time = i64::from(hour * 3600 + minute * 60 + second);
    [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| crate::day::Day::from_ymd(y, month, day))
        .map(|d| i64::from(d.0) * 86_400 + time)
        .min_by_key(|at| (at - now).abs())
}

/// The time to move what has left the working set as of: the newest journal entry's
/// acceptance time, never ahead of this machine's clock. Lookups ask as of a request's time,
/// which is the clock's; records made with a clock of their own (a test's, a history
/// writer's) never leave memory ahead of their time.
pub fn move_time(live: &std::sync::RwLock<State>) -> i64 {
    let newest = live.read().unwrap_or_else(|p| p.into_inner()).newest_at;
    newest.min(clock_now())
}

/// This machine's clock, in UTC seconds.
pub fn clock_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether memory alone answers for this key at `now`, given the working set's `horizon`
/// ([`State::horizon`]; see the module docs).
pub fn is_recent(key: &PurchaseKey, now: i64, horizon: i64) -> bool {
    transmitted_at(&key.transmitted, now)
        .is_some_and(|at| (now - RECENT_SECONDS).max(horizon) <= at && at <= now + FUTURE_SECONDS)
}

/// Whether a key's DE7 (read at `now`) is before `cutoff`, so its records may leave memory.
fn key_is_before(key: &PurchaseKey, now: i64, cutoff: i64) -> bool {
    transmitted_at(&key.transmitted, now).is_none_or(|at| at < cutoff)
}

/// Whether a record other than a purchase or reversal leaves memory with time: the per-card
/// ones (disbursements, year-end closes, revocations), whose lookups (a repeated call, a
/// duplicate from another node) consult history too ([`crate::state::State::apply`]).
pub fn moves_by_time(record: &Record) -> bool {
    matches!(
        record,
        Record::Disbursement { .. } | Record::ProgramClose { .. } | Record::Revocation { .. }
    )
}

/// What may happen to a record of the log that has left memory's log.
enum Fate {
    /// It moves to history now.
    Moves,
    /// It stays in memory for now (batch not settled, or its DE7 is recent).
    Stays,
    /// Nothing else of it is in memory (not a purchase or reversal, or gone already).
    Nothing,
}

impl State {
    /// Decides one record named by the log (entry `number`, when it leaves with it), adding it
    /// to `moved` when it leaves (accepted before `moved.cutoff`, its key's DE7 too).
    fn decide(&self, id: &TransferId, number: Option<u64>, now: i64, moved: &mut Moved) -> Fate {
        let cutoff = moved.cutoff;
        if let Some(purchase) = self.purchases.get(id) {
            if purchase.at_unix_seconds >= cutoff
                || !key_is_before(&purchase.record.key, now, cutoff)
            {
                return Fate::Stays;
            }
            moved.purchases.push((*id, purchase.clone(), number));
            return Fate::Moves;
        }
        let at = self.transfer_times.get(id).copied().unwrap_or_default();
        let record = match self.transfers.get(id) {
            Some(record @ Record::Reversal(reversal)) => (record, reversal),
            // Per-card records, the large ones (a disbursement names every card): they leave
            // by acceptance time. Other records (funding, replacements, settlements, payouts)
            // are small and stay.
            Some(record) if moves_by_time(record) => {
                if at >= cutoff {
                    return Fate::Stays;
                }
                moved.transfers.push((*id, at, record.clone()));
                return Fate::Moves;
            }
            _ => return Fate::Nothing,
        };
        let (record, reversal) = record;
        if at >= cutoff || !key_is_before(&reversal.original, now, cutoff) {
            return Fate::Stays;
        }
        if reversal.effect == ReversalEffect::Tombstone {
            moved
                .tombstones
                .push(TransferId::purchase(&reversal.original));
        }
        moved.transfers.push((*id, at, record.clone()));
        Fate::Moves
    }

    /// The cutoff at `now`: [`WORKING_SET_SECONDS`] ago, or later when more than
    /// `purchases_max` purchases are in memory (then the acceptance time of the log entry
    /// past the oldest excess, so about an eighth of the cap is freed), never after now.
    fn cutoff(&self, now: i64, purchases_max: usize) -> i64 {
        let by_time = now - WORKING_SET_SECONDS;
        let held = self.purchases.len();
        if held <= purchases_max {
            return by_time;
        }
        let excess = held - purchases_max + purchases_max / 8;
        let by_count = self
            .log
            .get(excess.min(self.log.len().saturating_sub(1)))
            .map_or(by_time, |(at, _)| *at);
        by_time.max(by_count).min(now)
    }

    /// The log row of entry `id`, with what the transaction listing filters on.
    pub fn log_row(&self, at_unix_seconds: i64, id: &TransferId) -> LogRow {
        let mut row = LogRow {
            at_unix_seconds,
            id: *id,
            card: None,
            merchant: None,
            terminal: None,
        };
        if let Some(purchase) = self.purchases.get(id) {
            row.card = purchase.record.card;
            row.merchant = Some(purchase.record.merchant.clone());
            row.terminal = Some(purchase.record.key.terminal.clone());
        } else if let Some(Record::Reversal(reversal)) = self.transfers.get(id) {
            row.terminal = Some(reversal.original.terminal.clone());
            if let ReversalEffect::Reversed { card, .. } = &reversal.effect {
                row.card = Some(*card);
            }
        }
        row
    }

    /// The cards a log entry touched (a superset is fine: only their rows at `index` count).
    fn cards_of(&self, id: &TransferId) -> Vec<CardId> {
        if let Some(purchase) = self.purchases.get(id) {
            return purchase.record.card.into_iter().collect();
        }
        match self.transfers.get(id) {
            Some(Record::Reversal(reversal)) => match &reversal.effect {
                ReversalEffect::Reversed { card, .. } => vec![*card],
                ReversalEffect::Tombstone => Vec::new(),
            },
            Some(Record::Disbursement { credits, .. }) => credits.iter().map(|(c, _)| *c).collect(),
            Some(Record::Replacement {
                old_card, new_card, ..
            }) => vec![*old_card, *new_card],
            Some(Record::ProgramClose { returns, .. } | Record::Revocation { returns, .. }) => {
                returns.iter().map(|(c, _)| *c).collect()
            }
            _ => Vec::new(),
        }
    }

    /// What may move to history at `now` (keeping at most about `purchases_max` purchases):
    /// first up to `max` of the records that stayed behind earlier ([`State::pinned`]), then
    /// up to `max` entries of the log before the cutoff and before log index `durable_end`
    /// (entries from there on may not be in the journal yet: [`crate::journal::InFlight`]),
    /// with every record of theirs that may leave. Reads only; [`State::forget`] drops what
    /// [`crate::history::History::store`] has stored.
    pub fn movable(&self, now: i64, purchases_max: usize, max: usize, durable_end: u64) -> Moved {
        let mut moved = Moved {
            log_from: self.log_base,
            cutoff: self.cutoff(now, purchases_max),
            ..Moved::default()
        };
        moved.batches = self.departed_batches[..self.departed_batches.len().min(max)].to_vec();
        // The batches closed on each settled date: its reconciliation reads them from history.
        let mut closed = 0;
        for (date, batches) in &self.days.closed_batches {
            if closed + batches.len() > max && closed > 0 {
                break;
            }
            if self.is_settled(*date) {
                closed += batches.len();
                moved.closed_on.push((*date, batches.clone()));
            }
        }
        moved.pinned_checked = self.pinned.len().min(max);
        for id in &self.pinned[..moved.pinned_checked] {
            if let Fate::Stays = self.decide(id, None, now, &mut moved) {
                moved.pinned.push(*id);
            }
        }
        let durable =
            usize::try_from(durable_end.saturating_sub(self.log_base)).unwrap_or(usize::MAX);
        // Card rows taken: at most `max` a round too, so a record naming every card (a
        // disbursement) leaves in slices over several rounds instead of in one.
        let mut card_rows = 0usize;
        for (i, (at, id)) in self.log.iter().enumerate().take(max.min(durable)) {
            // The log moves in order up to its first purchase or reversal inside the working
            // set; other entries (funding, disbursements: their records stay in memory) never
            // hold it back.
            let held = self.purchases.contains_key(id)
                || matches!(self.transfers.get(id), Some(Record::Reversal(_)));
            if *at >= moved.cutoff && held {
                break;
            }
            let index = self.log_base + i as u64;
            let cards = self.cards_of(id);
            // Cards of `log[0]` whose rows left in earlier slices.
            let done = if i == 0 {
                self.card_rows_moved.min(cards.len())
            } else {
                0
            };
            let room = max.saturating_sub(card_rows);
            if cards.len() - done > room {
                if i == 0 {
                    self.card_rows_of(&cards[done..done + room], index, &mut moved);
                    moved.card_slice = Some(done + room);
                }
                break;
            }
            card_rows += cards.len() - done;
            moved.log.push(self.log_row(*at, id));
            self.card_rows_of(&cards[done..], index, &mut moved);
            if let Fate::Stays = self.decide(id, Some(index), now, &mut moved) {
                moved.pinned.push(*id);
            }
        }
        moved
    }

    /// Adds the rows of log entry `index` of each of `cards` to `moved`.
    fn card_rows_of(&self, cards: &[CardId], index: u64, moved: &mut Moved) {
        for card in cards {
            let Some(state) = self.cards.get(card) else {
                continue;
            };
            let from = state.history.partition_point(|row| row.index < index);
            for row in state.history[from..]
                .iter()
                .take_while(|r| r.index == index)
            {
                moved.card_log.push((*card, *row));
            }
        }
    }

    /// Drops from memory what `moved` took to history (after it is stored there).
    pub fn forget(&mut self, moved: &Moved) {
        for (id, purchase, _) in &moved.purchases {
            // Unless it changed since it was copied (a late reversal brought it back from
            // history and reversed it): then it stays, and moves again later.
            if self.purchases.get(id) == Some(purchase) {
                self.purchases.remove(id);
            }
        }
        self.horizon = self.horizon.max(moved.cutoff);
        // Departed batches are only ever appended to, and only this drops them.
        if self.departed_batches.starts_with(&moved.batches) {
            self.departed_batches.drain(..moved.batches.len());
        }
        for (id, _, _) in &moved.transfers {
            self.transfers.remove(id);
            self.transfer_times.remove(id);
        }
        for id in &moved.tombstones {
            self.tombstones.remove(id);
        }
        for (date, batches) in &moved.closed_on {
            // Those closed on the date since (a terminal whose clock is behind) stay for the
            // next round.
            if let Some(list) = self.days.closed_batches.get_mut(date) {
                let gone: HashSet<&(crate::ids::TerminalId, u64)> = batches.iter().collect();
                list.retain(|batch| !gone.contains(&batch));
                if list.is_empty() {
                    self.days.closed_batches.remove(date);
                }
            }
        }
        let checked = moved.pinned_checked.min(self.pinned.len());
        self.pinned.drain(..checked);
        self.pinned.extend(moved.pinned.iter().copied());
        if moved.log_from != self.log_base {
            return;
        }
        if let Some(done) = moved.card_slice {
            // A slice of `log[0]`'s card rows (the entry itself stays).
            let index = self.log_base;
            for (card, _) in &moved.card_log {
                if let Some(state) = self.cards.get_mut(card) {
                    let keep = state.history.partition_point(|row| row.index <= index);
                    state.history.drain(..keep);
                }
            }
            self.card_rows_moved = done;
            return;
        }
        if moved.log.is_empty() {
            return;
        }
        let count = moved.log.len().min(self.log.len());
        self.log.drain(..count);
        self.log_base += count as u64;
        self.card_rows_moved = 0;
        let cards: HashSet<CardId> = moved.card_log.iter().map(|(card, _)| *card).collect();
        for card in cards {
            if let Some(state) = self.cards.get_mut(&card) {
                let keep = state
                    .history
                    .partition_point(|row| row.index < self.log_base);
                state.history.drain(..keep);
            }
        }
    }

    /// Moves everything that may leave at `now` to `history`: the snapshot thread, on a
    /// projection of its own replayed from the journal (all of it durable).
    pub fn move_all(
        &mut self,
        history: &crate::history::History,
        now: i64,
    ) -> Result<u64, crate::history::HistoryError> {
        let state = std::cell::RefCell::new(self);
        move_rounds(
            history,
            || {
                state
                    .borrow()
                    .movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX)
            },
            |moved| state.borrow_mut().forget(moved),
        )
    }
}

/// Moves what may leave memory in rounds until a round finds nothing more: each round looks
/// (`movable`), stores it in `history`, then drops it (`forget`); the last makes history
/// durable ([`crate::history::History::sync`]). Returns the rows moved. The ledger runs this
/// with each step under its own hold of the projection's lock.
pub fn move_rounds(
    history: &crate::history::History,
    mut movable: impl FnMut() -> Moved,
    mut forget: impl FnMut(&Moved),
) -> Result<u64, crate::history::HistoryError> {
    let mut rows = 0u64;
    loop {
        let moved = movable();
        history.store(&moved)?;
        forget(&moved);
        rows += moved.len() as u64;
        // A round with no log entries in which every record looked at stayed is the last:
        // the log is inside the working set and what is pinned must wait.
        if moved.log.is_empty()
            && moved.card_slice.is_none()
            && moved.batches.is_empty()
            && moved.closed_on.is_empty()
            && moved.pinned.len() == moved.pinned_checked
        {
            history.sync()?;
            return Ok(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;

    fn utc(iso: &str, hour: i64) -> i64 {
        i64::from(Day::parse_iso(iso).unwrap().0) * 86_400 + hour * 3600
    }

    fn de7(text: &str) -> TransmissionTime {
        TransmissionTime::new(text).unwrap()
    }

    #[test]
    fn de7_is_read_as_the_instant_nearest_now() {
        let now = utc("2025-10-15", 2);
        assert_eq!(transmitted_at(&de7("1015020000"), now), Some(now));
        let written = TransmissionTime::of_unix_seconds(now + 3_723);
        assert_eq!(written, de7("1015030203"));
        // Across new year, both ways.
        let new_year = utc("2026-01-01", 0) + 10;
        assert_eq!(
            transmitted_at(&de7("1231235959"), new_year),
            Some(new_year - 11)
        );
        assert_eq!(
            transmitted_at(&de7("0101000010"), utc("2025-12-31", 23)),
            Some(new_year)
        );
        // 29 February exists only in leap years.
        assert_eq!(
            transmitted_at(&de7("0229000000"), utc("2025-03-01", 0)),
            Some(utc("2024-02-29", 0))
        );
        for impossible in [
            "1315020000",
            "0015020000",
            "1032020000",
            "1015240000",
            "1015026000",
        ] {
            assert_eq!(transmitted_at(&de7(impossible), now), None, "{impossible}");
        }
    }

    #[test]
    fn recent_keys_are_those_memory_alone_answers_for() {
        let now = utc("2025-10-15", 2);
        let key = |text: &str| PurchaseKey {
            terminal: crate::ids::TerminalId::new("T0000001").unwrap(),
            stan: crate::ids::Stan::new("000001").unwrap(),
            transmitted: de7(text),
        };
        let none = 0;
        assert!(is_recent(&key("1015020000"), now, none));
        assert!(is_recent(&key("1013030000"), now, none));
        assert!(!is_recent(&key("1013010000"), now, none));
        assert!(is_recent(&key("1016010000"), now, none));
        assert!(!is_recent(&key("1016030000"), now, none));
        assert!(!is_recent(&key("1399999999"), now, none));
        // After a cutoff an hour ago, keys before it may be in history.
        let horizon = now - 3_600;
        assert!(is_recent(&key("1015013000"), now, horizon));
        assert!(!is_recent(&key("1015005959"), now, horizon));
    }
}
