//! Debits in doubt: attempts whose outcome the ledger could not learn.
//!
//! A debit is decided in the balance store before it is journaled. When the store does not
//! answer in time (Redis reachable but silent: a stalled network path, a failover), the
//! purchase is answered `91`, but the script may still be on its way and run later, taking
//! money the journal never records. The same holds when the journal refused a debit and undoing
//! it in the store failed too. Each such attempt (transfer id, card, and the attempt's own
//! tag) is kept here until the store has voided it
//! ([`crate::BalanceStore::void_debit`]): undone if it ran, refused if it arrives later. So
//! every card's pockets come back to the journal's truth without a restart.
//!
//! An attempt is resolved by [`crate::Ledger::resolve_debits_in_doubt`] (the switch calls it
//! every [`DOUBT_RESOLVE_INTERVAL`]), and always before another attempt of the same purchase is
//! sent, under the purchase's lock, so a retry never adopts a decision that will be voided.
//! Attempts are numbered from a random start per ledger ([`Attempts`]), so a tag names one
//! attempt across restarts and nodes sharing one Redis.
//!
//! At most [`DEBITS_IN_DOUBT_MAX`] attempts are held; past that no debit is sent (`91`) until
//! some are resolved, because an attempt that could not be recorded could not be voided.

use crate::ids::{CardId, Rrn, TransferId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Most debit attempts in doubt held at once; past it purchases answer `91` before any debit
/// is sent, until the store answers again and they are resolved.
pub const DEBITS_IN_DOUBT_MAX: usize = 65_536;
/// Most purchases whose attempts one call of `resolve_debits_in_doubt` resolves.
pub const DOUBT_RESOLVE_BATCH_MAX: usize = 4_096;
/// How often the switch asks the ledger to resolve debits in doubt.
pub const DOUBT_RESOLVE_INTERVAL: Duration = Duration::from_millis(250);

/// One debit attempt whose outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The card it would debit.
    pub card: CardId,
    /// The attempt's own tag ([`crate::DebitRequest::attempt`]): what a void names.
    pub attempt: u64,
    /// The RRN it carried: a journaled purchase with this RRN is this attempt's decision.
    pub rrn: Rrn,
}

/// The attempts in doubt, by transfer id, and how many there are (read on every purchase
/// without the lock).
#[derive(Debug, Default)]
pub(crate) struct Doubts {
    attempts: Mutex<HashMap<TransferId, Vec<Attempt>>>,
    count: AtomicUsize,
}

impl Doubts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TransferId, Vec<Attempt>>> {
        // Every change is one insert or remove: a panic cannot leave it half-done.
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many attempts are in doubt.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// True when no more attempts may be sent.
    pub fn full(&self) -> bool {
        self.len() >= DEBITS_IN_DOUBT_MAX
    }

    /// Records an attempt whose outcome is unknown.
    pub fn add(&self, id: TransferId, attempt: Attempt) {
        let mut attempts = self.lock();
        let of_id = attempts.entry(id).or_default();
        if !of_id.contains(&attempt) {
            of_id.push(attempt);
            let count = self.count.fetch_add(1, Ordering::AcqRel) + 1;
            metrics::gauge!("ssn_debits_in_doubt").set(count as f64);
        }
    }

    /// Takes the attempts of one transfer to resolve them (empty when there are none). They
    /// still count as in doubt until [`Doubts::settled`] or [`Doubts::put_back`].
    pub fn take(&self, id: &TransferId) -> Vec<Attempt> {
        if self.len() == 0 {
            return Vec::new();
        }
        self.lock().remove(id).unwrap_or_default()
    }

    /// Puts back taken attempts that could not be resolved yet.
    pub fn put_back(&self, id: TransferId, attempts: Vec<Attempt>) {
        if !attempts.is_empty() {
            self.lock().entry(id).or_default().extend(attempts);
        }
    }

    /// `resolved` taken attempts are resolved: no longer in doubt.
    pub fn settled(&self, resolved: usize) {
        if resolved > 0 {
            let count = self.count.fetch_sub(resolved, Ordering::AcqRel) - resolved;
            metrics::gauge!("ssn_debits_in_doubt").set(count as f64);
        }
    }

    /// The transfer ids with attempts in doubt, at most `max`.
    pub fn ids(&self, max: usize) -> Vec<TransferId> {
        self.lock().keys().take(max).copied().collect()
    }
}

/// Numbers debit attempts: a random start per ledger (the standard library's per-process
/// random hash keys, mixed with the clock), then one more each time. Never 0, which stands
/// for "no attempt" (a decision rebuilt from the journal).
#[derive(Debug)]
pub(crate) struct Attempts(AtomicU64);

impl Default for Attempts {
    fn default() -> Attempts {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Attempts(AtomicU64::new(hasher.finish()))
    }
}

impl Attempts {
    /// The next attempt's tag.
    pub fn next(&self) -> u64 {
        loop {
            let tag = self.0.fetch_add(1, Ordering::Relaxed);
            if tag != 0 {
                return tag;
            }
        }
    }
}
