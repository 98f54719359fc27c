//! The balance store: the hot path's atomic check-and-debit per card.
//!
//! Two implementations pass the same contract tests: [`MemoryBalances`] (embedded, the default)
//! and [`RedisBalances`]. Either is a cache of the journal: it is rebuilt from the journal's
//! projection when the ledger opens, and it is never the only copy of money. Debits go to the
//! store first (that is where the atomic decision happens) and then to the journal; credits go
//! to the journal first and then to the store, so a store that lags the journal only ever holds
//! less money than the journal, never more.

mod memory;
mod redis;

pub use memory::{MEMORY_SHARDS, MemoryBalances};
pub use redis::{
    REDIS_AMOUNT_MINOR_MAX, REDIS_DEBIT_QUEUE_MAX, REDIS_PIPELINE_COMMANDS_MAX,
    REDIS_PIPELINES_IN_FLIGHT_MAX, REDIS_SCRIPTS_IN_FLIGHT_MAX, RedisBalances, RedisConfig,
    redis_debit_script,
};

use crate::day::Day;
use crate::ids::{AuthorizationId, CardId, ProgramCode, Rrn, TransferId};
use crate::money::Money;
use crate::record::{AuthResponse, PocketAmount};
use async_trait::async_trait;
use std::fmt;

/// A purchase debit as the store decides it.
#[derive(Debug, Clone)]
pub struct DebitRequest<'a> {
    /// The purchase's transfer id: the store's idempotency key.
    pub id: TransferId,
    /// The card.
    pub card: CardId,
    /// DE4; positive.
    pub amount: Money,
    /// The WITA day: pockets expiring before it are not spent, and the daily count is per day.
    pub today: Day,
    /// Programs whose pockets may pay (those allowing every basket category).
    pub allowed: &'a [ProgramCode],
    /// Most approved purchases per day for this card and basket.
    pub daily_max: u32,
    /// DE37 to store with the outcome.
    pub rrn: &'a Rrn,
    /// DE38 to store with an approval.
    pub authorization_id: &'a AuthorizationId,
    /// This attempt's own tag, never 0 and never reused (the ledger numbers its attempts from
    /// a random start): stored with the decision it makes, and what a void names.
    pub attempt: u64,
}

/// What the store decided for a debit, and kept under the debit's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDebit {
    /// The answer: `00`, `51` or `65`.
    pub response: AuthResponse,
    /// Pockets debited, earliest expiry first; empty for a decline.
    pub legs: Vec<PocketAmount>,
    /// The day counted, for undoing the daily count.
    pub day: Day,
}

/// The outcome of [`BalanceStore::debit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitOutcome {
    /// The decision.
    pub debit: StoredDebit,
    /// True when the store already had a decision under this id (a retried call) and returned
    /// it without changing anything.
    pub replayed: bool,
}

/// A pocket's balance and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PocketBalance {
    /// The program.
    pub program: ProgramCode,
    /// Last WITA day it may be spent.
    pub expires: Day,
    /// Balance.
    pub balance: Money,
}

/// A credit to one pocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PocketCredit {
    /// The card.
    pub card: CardId,
    /// The program, with the pocket's expiry for ordering.
    pub program: ProgramCode,
    /// Last WITA day the pocket may be spent.
    pub expires: Day,
    /// Positive.
    pub amount: Money,
}

/// Everything a store keeps for one card, as the journal says it should be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CardSnapshot {
    /// The card.
    pub card: CardId,
    /// Its pockets, earliest expiry first.
    pub pockets: Vec<PocketBalance>,
    /// The WITA day `purchases_today` counts.
    pub day: Day,
    /// Approved purchases on `day`.
    pub purchases_today: u32,
    /// Every transfer that touched the card: debits with their decision, other transfers
    /// (credits, drains) with what they moved, so a retried script recognises them.
    pub transfers: Vec<(TransferId, SnapshotTransfer)>,
}

/// A transfer as remembered in a card snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotTransfer {
    /// A purchase decision.
    Debit(StoredDebit),
    /// A credit (disbursement, reversal, replacement's receiving side).
    Credit,
    /// The card's pockets moved away (replacement's giving side).
    Drain(Vec<PocketAmount>),
}

/// Why a store call failed. Each means "nothing changed or it is unknown whether it did": the
/// switch answers `91`, and the ledger's next open rebuilds the store from the journal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or answered with an error.
    #[error("balance store unavailable: {0}")]
    Unavailable(String),
    /// The card's cache entry belongs to another (older or newer) generation of the cache.
    #[error("card {card} is cached by generation {found:?}, not ours ({ours})")]
    Fenced {
        /// The card.
        card: CardId,
        /// The generation stored with the card, `None` when the card is not cached at all.
        found: Option<u64>,
        /// This store's generation.
        ours: u64,
    },
    /// The store holds something it cannot parse (a bug or a foreign writer).
    #[error("balance store holds malformed data for card {0}")]
    Malformed(CardId),
    /// An amount beyond what the store can hold exactly.
    #[error("amount out of the store's range")]
    AmountOutOfRange,
}

/// Storage for card pockets with an atomic per-card check-and-debit.
#[async_trait]
pub trait BalanceStore: Send + Sync + fmt::Debug {
    /// Atomically, for one card: if a decision is stored under `request.id` return it;
    /// otherwise decline `65` when the daily count is reached, `51` when the allowed,
    /// unexpired pockets hold less than the amount, else debit them earliest expiry first;
    /// store the decision under the id. Safe to retry.
    async fn debit(&self, request: &DebitRequest<'_>) -> Result<DebitOutcome, StoreError>;

    /// Voids debit attempt `attempt` ([`DebitRequest::attempt`]) of transfer `id`: when the
    /// decision stored under `id` is that attempt's, it is undone (pockets, daily count and
    /// the decision itself); and the attempt is marked so that its request, if it is still on
    /// its way to the store (a debit answered `91` while the store was reachable but silent),
    /// does nothing when it arrives. A decision another attempt made is left alone. Called
    /// when a debit's journal write was refused, and for every debit whose outcome the ledger
    /// could not learn (the ledger's `doubt` module). Safe to retry.
    async fn void_debit(
        &self,
        card: CardId,
        id: TransferId,
        attempt: u64,
    ) -> Result<(), StoreError>;

    /// Credits pockets, idempotent per (card, id). Returns the cards it did not credit because
    /// this generation of the cache does not hold them (never cached, or cached by an older
    /// generation): the caller rebuilds those from the journal, which already has the credit.
    /// A card held by a newer generation is an error ([`StoreError::Fenced`]).
    async fn credit(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<Vec<CardId>, StoreError>;

    /// Atomically takes every pocket of `card` (only `program`'s when given) to zero and
    /// returns what it took; a retry with the same id returns the same amounts and takes
    /// nothing more.
    async fn drain(
        &self,
        card: CardId,
        id: TransferId,
        program: Option<&ProgramCode>,
    ) -> Result<Vec<PocketAmount>, StoreError>;

    /// The card's pockets, earliest expiry first.
    async fn pockets(&self, card: CardId) -> Result<Vec<PocketBalance>, StoreError>;

    /// Drops the idempotency records of transfers that have left the ledger's working set
    /// ([`crate::window`]): the ledger answers for them from history now, so no debit or
    /// credit with their ids reaches the store again. Best effort; a store that keeps them
    /// (Redis, in its own memory) loses nothing by it.
    fn forget(&self, _transfers: &[(CardId, TransferId)]) {}

    /// Replaces what the store holds for these cards with the snapshots, unless a newer
    /// generation of the cache already holds them (the fence).
    async fn rebuild(&self, cards: &[CardSnapshot]) -> Result<(), StoreError>;

    /// Starts a new generation: cards cached by older ones are rebuilt before use.
    async fn begin_generation(&self) -> Result<(), StoreError>;

    /// At open: adopts the generation other ledgers sharing this store use, or starts one
    /// when there is none (or when the store is not shared). True when it started one, so
    /// the caller must rebuild every card.
    async fn join_generation(&self) -> Result<bool, StoreError> {
        self.begin_generation().await?;
        Ok(true)
    }
}

/// The spendable balance of pockets on `today`: the sum of the unexpired ones.
pub fn spendable(pockets: &[PocketBalance], today: Day) -> Option<Money> {
    Money::checked_sum(
        pockets
            .iter()
            .filter(|p| p.expires >= today)
            .map(|p| p.balance),
    )
}

/// Orders pockets the way purchases spend them: earliest expiry first, then program code.
pub fn sort_pockets(pockets: &mut [PocketBalance]) {
    pockets.sort_by(|a, b| (a.expires, &a.program).cmp(&(b.expires, &b.program)));
}

/// Decides a debit against pockets (sorted, earliest expiry first). Shared by the memory store
/// and the tests of the Redis script, so both follow one rule.
pub fn decide_debit(
    pockets: &mut [PocketBalance],
    purchases_today: u32,
    request: &DebitRequest<'_>,
) -> StoredDebit {
    let decline = |code| StoredDebit {
        response: AuthResponse {
            code,
            rrn: request.rrn.clone(),
            authorization_id: None,
            balance_after: None,
        },
        legs: Vec::new(),
        day: request.today,
    };
    if purchases_today >= request.daily_max {
        return decline(crate::record::ResponseCode::EXCEEDS_FREQUENCY_LIMIT);
    }
    let usable =
        |p: &PocketBalance| p.expires >= request.today && request.allowed.contains(&p.program);
    let available = Money::checked_sum(pockets.iter().filter(|p| usable(p)).map(|p| p.balance));
    if available.is_none_or(|available| available < request.amount) {
        // With what this basket could spend, so the shop can take items off and try again.
        let mut short = decline(crate::record::ResponseCode::INSUFFICIENT_FUNDS);
        short.response.balance_after = available;
        return short;
    }
    let mut left = request.amount;
    let mut legs = Vec::new();
    for pocket in pockets.iter_mut().filter(|p| usable(p)) {
        if !left.is_positive() {
            break;
        }
        let take = left.min(pocket.balance);
        if take.is_positive() {
            // take <= balance and take <= left: neither subtraction can go below zero.
            pocket.balance = pocket
                .balance
                .checked_sub(take)
                .expect("take is at most the balance");
            left = left
                .checked_sub(take)
                .expect("take is at most what is left");
            legs.push(PocketAmount {
                program: pocket.program.clone(),
                amount: take,
            });
        }
    }
    StoredDebit {
        response: AuthResponse {
            code: crate::record::ResponseCode::APPROVED,
            rrn: request.rrn.clone(),
            authorization_id: Some(request.authorization_id.clone()),
            balance_after: spendable(pockets, request.today),
        },
        legs,
        day: request.today,
    }
}
