//! The working set and history ([`crate::window`], [`crate::history`]): the thread that moves
//! what has left the working set to disk, and the lookups that reach history for old keys.

use super::*;
use crate::history::{History, HistoryError, LogRow, Moved};
use crate::journal::InFlight;
use crate::window::{
    MOVE_INTERVAL, MOVE_ROWS_MAX, WORKING_SET_PURCHASES_MAX, is_recent, move_rounds, move_time,
};
use std::sync::atomic::{AtomicBool, Ordering};

impl From<HistoryError> for LedgerError {
    fn from(error: HistoryError) -> LedgerError {
        match error {
            HistoryError::Storage(m) => LedgerError::Unavailable(m),
            other => LedgerError::Internal(other.to_string()),
        }
    }
}

/// The transfers whose idempotency records the balance store may drop once `moved` is gone.
fn forgotten(moved: &Moved) -> Vec<(CardId, TransferId)> {
    let purchases = moved
        .purchases
        .iter()
        .filter_map(|(id, p, _)| p.record.card.map(|card| (card, *id)));
    // A disbursement, close or revocation that left memory is never sent to the store again
    // (a repeated call answers from history), so the store may drop its per-card records.
    let transfers = moved
        .transfers
        .iter()
        .flat_map(|(id, _, record)| match record {
            Record::Reversal(ReversalRecord {
                effect: ReversalEffect::Reversed { card, .. },
                ..
            }) => vec![(*card, *id)],
            Record::Disbursement {
                credits: per_card, ..
            }
            | Record::ProgramClose {
                returns: per_card, ..
            }
            | Record::Revocation {
                returns: per_card, ..
            } => per_card.iter().map(|(card, _)| (*card, *id)).collect(),
            _ => Vec::new(),
        });
    purchases.chain(transfers).collect()
}

/// One move at `now`: rounds of [`MOVE_ROWS_MAX`] rows, each looked at under the projection's
/// read lock, made durable in history with no lock held, then dropped under the write lock.
fn move_now(
    state: &RwLock<State>,
    in_flight: &InFlight,
    history: &History,
    balances: &dyn BalanceStore,
    now: i64,
    purchases_max: usize,
) -> Result<u64, HistoryError> {
    let rows = move_rounds(
        history,
        || {
            let held = std::time::Instant::now();
            let state = state.read().unwrap_or_else(|p| p.into_inner());
            // Under the projection's lock, where the sequencer records what it applies.
            let moved = state.movable(now, purchases_max, MOVE_ROWS_MAX, in_flight.durable_end());
            drop(state);
            metrics::histogram!("ssn_history_move_lock_seconds", "hold" => "read")
                .record(held.elapsed());
            moved
        },
        |moved| {
            let held = std::time::Instant::now();
            state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .forget(moved);
            metrics::histogram!("ssn_history_move_lock_seconds", "hold" => "write")
                .record(held.elapsed());
            balances.forget(&forgotten(moved));
        },
    )?;
    let held = state
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .purchases
        .len();
    metrics::gauge!("ssn_working_set_purchases").set(held as f64);
    metrics::counter!("ssn_history_rows_moved_total").increment(rows);
    Ok(rows)
}

/// The ledger's mover thread: every [`MOVE_INTERVAL`] it moves what has left the working set.
/// Dropping it stops the thread (a move in progress finishes its round first).
#[derive(Debug)]
pub(super) struct Mover {
    stop: Arc<AtomicBool>,
    wake: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mover {
    pub(super) fn start(
        state: Arc<RwLock<State>>,
        in_flight: Arc<InFlight>,
        history: Arc<History>,
        balances: Arc<dyn BalanceStore>,
    ) -> std::io::Result<Mover> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ssn-history".into())
            .spawn(move || {
                crate::priority::lower_this_thread(crate::priority::BACKGROUND_NICE);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    woken.recv_timeout(MOVE_INTERVAL)
                {
                    if stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    let moved = move_now(
                        &state,
                        &in_flight,
                        &history,
                        balances.as_ref(),
                        move_time(&state),
                        WORKING_SET_PURCHASES_MAX,
                    );
                    if let Err(error) = moved {
                        metrics::counter!("ssn_history_failures_total").increment(1);
                        tracing::warn!(%error, "moving the working set to history");
                    }
                }
            })?;
        Ok(Mover {
            stop,
            wake: Some(wake),
            thread: Some(thread),
        })
    }
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Ledger {
    /// Moves what has left the working set at `now` (UTC seconds) to history, keeping at most
    /// about `purchases_max` purchases in memory, as the mover thread does every
    /// [`MOVE_INTERVAL`] (with [`WORKING_SET_PURCHASES_MAX`]); returns the rows moved. Without
    /// history (a ledger opened on stores the caller built) nothing moves.
    pub fn move_to_history(&self, now: i64, purchases_max: usize) -> Result<u64, LedgerError> {
        let Some(history) = &self.history else {
            return Ok(0);
        };
        Ok(move_now(
            &self.journal.shared_state(),
            &self.journal.in_flight(),
            history,
            self.balances.as_ref(),
            now,
            purchases_max,
        )?)
    }

    /// History on disk, when the ledger has one.
    pub fn history(&self) -> Option<&History> {
        self.history.as_deref()
    }

    /// History, when the ledger has one and `key` is not recent at `now` given the working
    /// set's `horizon`: only then may history hold its purchase or tombstone
    /// ([`crate::window`]); a recent key is answered from memory alone.
    pub(super) fn history_for(
        &self,
        key: &PurchaseKey,
        now: i64,
        horizon: i64,
    ) -> Option<&History> {
        self.history
            .as_deref()
            .filter(|_| !is_recent(key, now, horizon))
    }

    /// A purchase the working set does not hold, from history, when its key is not recent at
    /// `now`.
    pub(super) fn purchase_in_history(
        &self,
        key: &PurchaseKey,
        now: i64,
    ) -> Result<Option<PurchaseState>, LedgerError> {
        let horizon = self.journal.state().horizon;
        match self.history_for(key, now, horizon) {
            Some(history) => self.purchase_from_history(history, &TransferId::purchase(key)),
            None => Ok(None),
        }
    }

    /// A purchase from history, reversed if a reversal of it is known: history keeps a
    /// purchase as it was accepted, and its reversal is a record of its own.
    pub(super) fn purchase_from_history(
        &self,
        history: &History,
        id: &TransferId,
    ) -> Result<Option<PurchaseState>, LedgerError> {
        let Some(mut found) = history.purchase(id)? else {
            return Ok(None);
        };
        if !found.reversed {
            let reversal = TransferId::reversal(&found.record.key);
            let reversed = |record: &Record| {
                matches!(
                    record,
                    Record::Reversal(ReversalRecord {
                        effect: ReversalEffect::Reversed { .. },
                        ..
                    })
                )
            };
            let in_memory = self.journal.state().transfers.get(&reversal).map(reversed);
            found.reversed = match in_memory {
                Some(reversed) => reversed,
                None => history
                    .transfer(&reversal)?
                    .is_some_and(|(_, record)| reversed(&record)),
            };
        }
        Ok(Some(found))
    }

    /// Whether a tombstone stands for this key, in memory or (for a key not recent at `now`)
    /// in history.
    pub(super) fn tombstoned(&self, key: &PurchaseKey, now: i64) -> Result<bool, LedgerError> {
        let id = TransferId::purchase(key);
        let horizon = {
            let state = self.journal.state();
            if state.tombstones.contains(&id) {
                return Ok(true);
            }
            state.horizon
        };
        match self.history_for(key, now, horizon) {
            Some(history) => Ok(history.tombstoned(&id)?),
            None => Ok(false),
        }
    }

    /// A purchase by id, from memory or history, whatever its age (for operators and the
    /// admin API's reads).
    pub fn purchase_by_id(&self, id: &TransferId) -> Result<Option<PurchaseState>, LedgerError> {
        if let Some(found) = self.journal.state().purchases.get(id) {
            return Ok(Some(found.clone()));
        }
        match &self.history {
            Some(history) => self.purchase_from_history(history, id),
            None => Ok(None),
        }
    }

    /// A transfer other than a purchase by id, with when it was accepted, from memory or
    /// history.
    pub fn transfer_by_id(&self, id: &TransferId) -> Result<Option<(i64, Record)>, LedgerError> {
        {
            let state = self.journal.state();
            if let Some(record) = state.transfers.get(id) {
                let at = state.transfer_times.get(id).copied().unwrap_or_default();
                return Ok(Some((at, record.clone())));
            }
        }
        match &self.history {
            Some(history) => Ok(history.transfer(id)?),
            None => Ok(None),
        }
    }

    /// Every transfer that touched a card, oldest first: history's, then memory's.
    pub fn card_transfers(&self, card: CardId) -> Result<Vec<CardRow>, LedgerError> {
        let (base, recent) = {
            let state = self.journal.state();
            let recent = state
                .cards
                .get(&card)
                .map(|c| c.history.clone())
                .unwrap_or_default();
            (state.log_base, recent)
        };
        // Up to and with the log's first entry: a slice of its rows may have left already
        // (`State::card_rows_moved`); memory's rows follow the last one history has.
        let mut rows = match &self.history {
            Some(history) => history.card_log(card, base.saturating_add(1))?,
            None => Vec::new(),
        };
        let last = rows.last().map(|row| row.index);
        rows.extend(
            recent
                .into_iter()
                .filter(|row| last.is_none_or(|last| row.index > last)),
        );
        Ok(rows)
    }

    /// Rows in the transaction log, history's and the working set's.
    pub fn log_len(&self) -> u64 {
        let state = self.journal.state();
        state.log_base + state.log.len() as u64
    }

    /// Up to `max` rows of the transaction log from number `from` on, oldest first, from
    /// history or the working set; empty past the end.
    pub fn log_rows(&self, from: u64, max: usize) -> Result<Vec<LogRow>, LedgerError> {
        {
            let state = self.journal.state();
            if from >= state.log_base {
                let start = usize::try_from(from - state.log_base)
                    .unwrap_or(usize::MAX)
                    .min(state.log.len());
                return Ok(state
                    .log
                    .range(start..)
                    .take(max)
                    .map(|(at, id)| state.log_row(*at, id))
                    .collect());
            }
        }
        match &self.history {
            Some(history) => Ok(history.log(from, from.saturating_add(max as u64))?),
            None => Ok(Vec::new()),
        }
    }

    /// Up to `max` entries of the transaction log from number `from` on, each with its
    /// number, oldest first: what the misuse monitor reads. The working set's are copied at
    /// most [`LOG_ENTRIES_PER_HOLD_MAX`] per hold of the projection's read lock (the
    /// sequencer waits for its write lock while a copy runs); older ones come from history,
    /// one lookup each. Batch closes and cut-overs are not in the log; neither is anything
    /// here.
    pub fn log_entries(&self, from: u64, max: usize) -> Result<Vec<(u64, Entry)>, LedgerError> {
        let mut entries: Vec<(u64, Entry)> = Vec::new();
        let (mut next, mut rows) = (from, 0usize);
        while rows < max {
            let state = self.journal.state();
            if next < state.log_base {
                // Moved to history (before this call or between two holds): read there.
                break;
            }
            let start = usize::try_from(next - state.log_base).unwrap_or(usize::MAX);
            if start >= state.log.len() {
                return Ok(entries);
            }
            let take = (max - rows)
                .min(LOG_ENTRIES_PER_HOLD_MAX)
                .min(state.log.len() - start);
            for ((at, id), number) in state.log.range(start..).take(take).zip(next..) {
                let record = match state.purchases.get(id) {
                    Some(purchase) => Record::Purchase(purchase.record.clone()),
                    None => match state.transfers.get(id) {
                        Some(record) => record.clone(),
                        None => continue,
                    },
                };
                let entry = Entry {
                    at_unix_seconds: *at,
                    record,
                };
                entries.push((number, entry));
            }
            rows += take;
            next += take as u64;
        }
        if rows >= max {
            return Ok(entries);
        }
        for (row, number) in self.log_rows(next, max - rows)?.into_iter().zip(next..) {
            let record = match self.purchase_by_id(&row.id)? {
                Some(purchase) => Record::Purchase(purchase.record),
                None => match self.transfer_by_id(&row.id)? {
                    Some((_, record)) => record,
                    None => continue,
                },
            };
            let entry = Entry {
                at_unix_seconds: row.at_unix_seconds,
                record,
            };
            entries.push((number, entry));
        }
        Ok(entries)
    }
}
