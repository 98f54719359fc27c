//! The ledger: the one object the switch and the admin API call. It owns the journal, the
//! registry and the balance store, and it is where the order of operations that keeps them
//! consistent lives (see the crate docs).

use crate::balances::{
    BalanceStore, CardSnapshot, DebitOutcome, DebitRequest, MemoryBalances, PocketBalance,
    PocketCredit, RedisBalances, RedisConfig, SnapshotTransfer, StoreError, StoredDebit, spendable,
};
use crate::day::Day;
use crate::doubt::{Attempt, Attempts, DOUBT_RESOLVE_BATCH_MAX, Doubts};
use crate::ids::{
    AuthorizationId, CardId, Fingerprint, MerchantId, ProgramCode, PurchaseKey, Rrn, TerminalId,
    TransferId,
};
use crate::journal::{FileJournal, Journal, JournalError, OpenReport, ensure_dir, journal_path};
use crate::money::Money;
use crate::record::{
    AuthResponse, BasketLine, BatchTotals, Entry, PocketAmount, PurchaseRecord, Record,
    ResponseCode, ReversalEffect, ReversalRecord,
};
use crate::registry::{
    CachedRegistry, Card, CardStatus, Program, RedbRegistry, Registry, RegistryError, RegistryOp,
    RegistryRecord,
};
use crate::state::{Applied, CardRow, CardTransfer, ClosedBatch, PurchaseState, State};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, MutexGuard};

mod batches;
pub use batches::OpenBatch;
mod cards;
mod programs;
mod purchase;
mod reversal;
mod working_set;

/// Stripes of the per-purchase lock. Two concurrent requests for the same purchase id (a
/// duplicate, or a reversal racing its original) serialize on one stripe; unrelated purchases
/// share a stripe with probability in-flight / stripes, so this is sized well above the
/// in-flight count at the benchmark's concurrency.
pub const PURCHASE_LOCK_STRIPES: usize = 65_536;
/// Stripes of the per-terminal lock that serializes a terminal's reversals and batch closes.
pub const TERMINAL_LOCK_STRIPES: usize = 1_024;

/// Compare-and-set retries of one wrong-PIN count update before giving up (`91`): only
/// concurrent checks of the same card conflict, and each retry sees their result.
pub const PIN_UPDATE_ATTEMPTS_MAX: usize = 8;

/// Log entries [`Ledger::log_entries`] copies per hold of the projection's read lock: the
/// sequencer's next batch waits for at most this many record copies (a few tens of µs).
pub const LOG_ENTRIES_PER_HOLD_MAX: usize = 256;

/// Where balances are kept for the hot path.
#[derive(Clone, Debug)]
pub enum BalanceBackend {
    /// In this process's memory (the default).
    Embedded,
    /// In Redis.
    Redis(RedisConfig),
}

/// How to open a ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// Directory holding `journal.log`, `registry.redb` and `ledger-id`.
    pub data_dir: PathBuf,
    /// Where the hot path's balances live.
    pub balances: BalanceBackend,
}

impl LedgerConfig {
    /// An embedded ledger in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> LedgerConfig {
        LedgerConfig {
            data_dir: data_dir.into(),
            balances: BalanceBackend::Embedded,
        }
    }
}

/// The three stores a ledger runs on.
#[derive(Debug)]
pub struct LedgerStores {
    /// Where journal entries go.
    pub journal: Box<dyn crate::journal::JournalStore>,
    /// People, cards, merchants, terminals, tokens, audit.
    pub registry: Arc<dyn Registry>,
    /// The hot path's balances.
    pub balances: Arc<dyn BalanceStore>,
    /// Where what leaves the working set goes ([`crate::window`]); `None` keeps all of it in
    /// memory.
    pub history: Option<Arc<crate::history::History>>,
}

/// What a PIN check did to a card's wrong-PIN count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// Correct: the count is back to zero.
    Correct,
    /// Wrong, and the PIN is not locked yet: `55`.
    Wrong,
    /// Wrong for the third time in a row (or already locked): `75`.
    Locked,
}

/// Errors of ledger operations, each with the answer the front doors give.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Same business key, different content: DE39 `94`, HTTP 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The journal or balance store cannot be reached or is full: DE39 `91`, HTTP 503. Nothing
    /// was acknowledged.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A named thing does not exist: HTTP 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// A business rule refuses it (e.g. the giro account cannot cover a disbursement): HTTP 422.
    #[error("refused: {0}")]
    Refused(String),
    /// The request is malformed: DE39 `30`, HTTP 400.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Anything unexpected, including a broken invariant: DE39 `96`, HTTP 500.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<JournalError> for LedgerError {
    fn from(error: JournalError) -> LedgerError {
        match error {
            JournalError::Invariant(e) => {
                LedgerError::Internal(format!("journal refused a record: {e}"))
            }
            other => LedgerError::Unavailable(other.to_string()),
        }
    }
}

impl From<StoreError> for LedgerError {
    fn from(error: StoreError) -> LedgerError {
        match error {
            StoreError::Malformed(_) | StoreError::AmountOutOfRange => {
                LedgerError::Internal(error.to_string())
            }
            other => LedgerError::Unavailable(other.to_string()),
        }
    }
}

impl From<RegistryError> for LedgerError {
    fn from(error: RegistryError) -> LedgerError {
        match error {
            RegistryError::Conflict(m) => LedgerError::Conflict(m),
            RegistryError::NotFound(m) => LedgerError::NotFound(m),
            RegistryError::Storage(m) => LedgerError::Unavailable(m),
            RegistryError::Corrupt(m) => {
                LedgerError::Internal(format!("registry holds an undecodable {m}"))
            }
        }
    }
}

/// The card holder as the switch read them with the card: only the pockets of programs they are
/// enrolled in may pay, so a revoked enrolment stops spending at once, before its money is
/// returned. Shared, not copied: the registry cache's record.
#[derive(Clone)]
pub struct Enrolments(pub std::sync::Arc<crate::registry::Beneficiary>);

impl Enrolments {
    /// Whether the holder is enrolled in `program`.
    pub fn include(&self, program: &ProgramCode) -> bool {
        self.0.enrolments.contains(program)
    }
}

impl std::fmt::Debug for Enrolments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The programs only: the record holds personal data.
        f.debug_tuple("Enrolments")
            .field(&self.0.enrolments)
            .finish()
    }
}

/// A purchase (0200, processing code `000000`) the switch has already checked for everything
/// up to and including the PIN (§6 orders 1 and 4-14).
#[derive(Clone, Debug)]
pub struct PurchaseRequest {
    /// DE41 + DE11 + DE7.
    pub key: PurchaseKey,
    /// SHA-256 of the request's content as the switch defines it for §7 (e.g. DE2, DE3, DE4,
    /// DE12-14, DE42, DE48, DE49): same key with another fingerprint is `94`.
    pub fingerprint: Fingerprint,
    /// The card DE2 resolved to.
    pub card: CardId,
    /// DE42.
    pub merchant: MerchantId,
    /// DE4, positive.
    pub amount: Money,
    /// The DE48 basket, `None` when there is none.
    pub basket: Option<Vec<BasketLine>>,
    /// DE37 for this answer; a duplicate gets the original's instead.
    pub rrn: Rrn,
    /// DE38 for an approval; a duplicate gets the original's instead.
    pub authorization_id: AuthorizationId,
    /// When the switch received it (UTC seconds); its WITA day is the day of the daily limit.
    pub at_unix_seconds: i64,
    /// The holder's enrolments: only those programs' pockets pay. `None` lets every pocket
    /// of the card pay (tools that write history, tests of the ledger alone).
    pub enrolments: Option<Enrolments>,
}

/// A purchase the switch declined itself (orders 4-14 of §6, e.g. `55` wrong PIN), recorded
/// so a duplicate gets the same answer after a restart.
#[derive(Clone, Debug)]
pub struct DeclineRequest {
    /// DE41 + DE11 + DE7.
    pub key: PurchaseKey,
    /// As for [`PurchaseRequest::fingerprint`].
    pub fingerprint: Fingerprint,
    /// The card, when DE2 resolved to one.
    pub card: Option<CardId>,
    /// DE42.
    pub merchant: MerchantId,
    /// DE4.
    pub amount: Money,
    /// DE39 given.
    pub code: ResponseCode,
    /// DE37 given.
    pub rrn: Rrn,
    /// When (UTC seconds).
    pub at_unix_seconds: i64,
}

/// The answer to a purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// DE39, DE37, DE38, DE54: what to send, byte for byte the same for every duplicate.
    pub response: AuthResponse,
    /// Pockets debited; empty for a decline.
    pub legs: Vec<PocketAmount>,
    /// True when this is the stored answer to an earlier request with the same key.
    pub duplicate: bool,
}

/// What the journal knows about a purchase key, for the switch's checks 2 and 3 of §6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurchaseLookup {
    /// Nothing: a new purchase.
    New,
    /// Answered before with the same content: send this again.
    Duplicate(AuthResponse),
    /// Answered before with other content: `94`.
    Conflict,
    /// Its reversal arrived first: `05`.
    Tombstoned,
}

/// A reversal (0400/0401/0420/0421).
#[derive(Clone, Debug)]
pub struct ReversalRequest {
    /// The original's DE41 + DE11 + DE7 (from DE90).
    pub original: PurchaseKey,
    /// The card DE2 resolved to, `None` if unknown.
    pub card: Option<CardId>,
    /// DE4.
    pub amount: Money,
    /// When (UTC seconds).
    pub at_unix_seconds: i64,
}

/// What a reversal did (§3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversalOutcome {
    /// The money went back to the card, now.
    Reversed(Vec<PocketAmount>),
    /// It had been reversed before: nothing moved.
    AlreadyReversed,
    /// The original was declined: nothing moved.
    OriginalDeclined,
    /// The original is unknown: a tombstone now stands for it.
    Tombstoned,
    /// DE2 or DE4 differ from the original: `12`.
    Mismatch,
    /// The original is in a closed batch: `12`.
    Settled,
}

impl ReversalOutcome {
    /// DE39 for the 0410/0430.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            ReversalOutcome::Mismatch | ReversalOutcome::Settled => ResponseCode(*b"12"),
            _ => ResponseCode::APPROVED,
        }
    }
}

/// A batch close (0500).
#[derive(Clone, Debug)]
pub struct BatchCloseRequest {
    /// DE41.
    pub terminal: TerminalId,
    /// DE60.
    pub batch_number: String,
    /// DE63.
    pub terminal_totals: BatchTotals,
    /// When (UTC seconds).
    pub at_unix_seconds: i64,
}

/// The outcome of a batch close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCloseOutcome {
    /// The batch as closed, on the journal's totals.
    pub batch: ClosedBatch,
    /// True when the terminal's totals equal the journal's (`00`), false for `95`.
    pub matched: bool,
}

/// DE60 of a batch a settlement by batch closed because its terminal had not (no terminal
/// totals): journals from before settlement by date hold them.
pub const SETTLEMENT_BATCH_NUMBER: &str = "SETTLEMENT";

/// A business day's settlement as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementOutcome {
    /// Transfer id.
    pub id: TransferId,
    /// The WITA business date.
    pub business_date: Day,
    /// The batches a settlement by batch settled (empty for one by date).
    pub batches: Vec<(TerminalId, u64)>,
    /// One line per E-Warong.
    pub lines: Vec<crate::record::DayLine>,
    /// When the journal accepted it.
    pub at_unix_seconds: i64,
}

/// A program's year-end close as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramCloseOutcome {
    /// Transfer id.
    pub id: TransferId,
    /// The WITA day the close is as of.
    pub as_of: Day,
    /// What each card's expired pocket returned to the giro account, by card id.
    pub returns: Vec<(CardId, Money)>,
    /// Their total.
    pub returned: Money,
    /// When the journal accepted it.
    pub at_unix_seconds: i64,
    /// False when the close was journaled by an earlier call.
    pub created: bool,
}

/// A revocation as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationOutcome {
    /// Transfer id.
    pub id: TransferId,
    /// What each card's pocket of the program returned to the giro account, by card id.
    pub returns: Vec<(CardId, Money)>,
    /// Their total.
    pub returned: Money,
    /// False when the revocation was journaled by an earlier call.
    pub created: bool,
}

/// The outcome of a disbursement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisbursementOutcome {
    /// Transfer id.
    pub id: TransferId,
    /// Cards credited.
    pub cards: usize,
    /// Total credited.
    pub total: Money,
}

/// What the projection says about a purchase before it is decided.
enum Precheck {
    /// Answered before with the same content.
    Duplicate(Authorization),
    /// Its reversal came first.
    Tombstoned,
    /// New: these are the programs the card has pockets in.
    New {
        /// Program codes of the card's pockets.
        card_programs: Vec<ProgramCode>,
    },
}

/// The ledger.
pub struct Ledger {
    /// The journal and its projection: the books.
    journal: Journal,
    /// People, cards, merchants, terminals, tokens, audit (behind the read cache).
    registry: Arc<CachedRegistry>,
    /// The hot path's balances: a cache of the journal.
    balances: Arc<dyn BalanceStore>,
    /// Programs by code, read on every purchase; refreshed whenever the ledger writes one,
    /// and from the registry when a code is missing (defined by another node).
    programs: RwLock<HashMap<ProgramCode, Program>>,
    /// See [`PURCHASE_LOCK_STRIPES`].
    purchase_locks: Box<[Mutex<()>]>,
    /// See [`TERMINAL_LOCK_STRIPES`].
    terminal_locks: Box<[Mutex<()>]>,
    /// Serializes money moves that are not purchases (funding, disbursement, replacement):
    /// rare, and simplest to reason about one at a time.
    admin_lock: Mutex<()>,
    /// What opening the journal found.
    open_report: OpenReport,
    /// Debit attempts whose outcome the balance store did not tell (the `doubt` module).
    doubts: Doubts,
    /// Numbers each debit attempt.
    attempts: Attempts,
    /// Takes snapshots of the projection beside it (file journals only).
    snapshotter: Option<crate::snapshot::Snapshotter>,
    /// What has left the working set.
    history: Option<Arc<crate::history::History>>,
    /// Moves what leaves the working set to `history` (held for its thread, stopped on drop).
    _mover: Option<working_set::Mover>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the projection or the lock stripes: they are large, and the projection holds
        // card data.
        f.debug_struct("Ledger")
            .field("balances", &self.balances)
            .field("entries", &self.journal.state().entries)
            .field("poisoned", &self.journal.is_poisoned())
            .finish_non_exhaustive()
    }
}

fn stripe(id: &impl Hash, stripes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    (hasher.finish() % stripes as u64) as usize
}

impl Ledger {
    /// Opens (or creates) the ledger: replays the journal (setting aside a torn last write),
    /// opens the registry, and rebuilds the balance store from the journal.
    pub async fn open(config: LedgerConfig) -> Result<Ledger, LedgerError> {
        let io = |e: std::io::Error| LedgerError::Unavailable(format!("data directory: {e}"));
        ensure_dir(&config.data_dir).map_err(io)?;
        let ledger_id = ledger_id(&config.data_dir).map_err(io)?;
        let journal = FileJournal::open(&journal_path(&config.data_dir)).map_err(io)?;
        let registry = Arc::new(RedbRegistry::open(&config.data_dir.join("registry.redb"))?);
        let history = Arc::new(crate::history::History::open(&config.data_dir)?);
        let balances: Arc<dyn BalanceStore> = match &config.balances {
            BalanceBackend::Embedded => Arc::new(MemoryBalances::new()),
            BalanceBackend::Redis(redis) => {
                let mut redis = redis.clone();
                redis.key_prefix = format!("{}{}:", redis.key_prefix, ledger_id);
                Arc::new(RedisBalances::connect(&redis).await?)
            }
        };
        let mut ledger = Ledger::open_with(LedgerStores {
            journal: Box::new(journal),
            registry,
            balances,
            history: Some(Arc::clone(&history)),
        })
        .await?;
        ledger.snapshotter = Some(
            crate::snapshot::Snapshotter::start(
                config.data_dir.clone(),
                history,
                ledger.journal.shared_state(),
            )
            .map_err(io)?,
        );
        Ok(ledger)
    }

    /// Opens the ledger on stores the caller built: another journal store (Scylla), or test
    /// doubles that fail on purpose.
    pub async fn open_with(stores: LedgerStores) -> Result<Ledger, LedgerError> {
        let LedgerStores {
            journal,
            registry,
            balances,
            history,
        } = stores;
        let (journal, open_report) = Journal::open(journal, history.clone())?;
        let mover = match &history {
            Some(history) => Some(
                working_set::Mover::start(
                    journal.shared_state(),
                    journal.in_flight(),
                    Arc::clone(history),
                    Arc::clone(&balances),
                )
                .map_err(|e| LedgerError::Internal(format!("starting the history thread: {e}")))?,
            ),
            None => None,
        };
        let registry = Arc::new(CachedRegistry::new(registry));
        let programs = registry
            .programs()
            .await?
            .into_iter()
            .map(|p| (p.code.clone(), p))
            .collect();
        let ledger = Ledger {
            journal,
            registry,
            balances,
            programs: RwLock::new(programs),
            purchase_locks: (0..PURCHASE_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            terminal_locks: (0..TERMINAL_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            admin_lock: Mutex::new(()),
            open_report,
            doubts: Doubts::default(),
            attempts: Attempts::default(),
            snapshotter: None,
            history,
            _mover: mover,
        };
        if ledger.balances.join_generation().await? {
            ledger.rebuild_cards().await?;
        }
        Ok(ledger)
    }

    /// What opening the journal found (entries replayed, a torn tail set aside).
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// The least time between two of the journal's syncs
    /// ([`crate::JOURNAL_SYNC_INTERVAL_MIN_DEFAULT`]).
    pub fn set_journal_sync_interval_min(&self, interval: std::time::Duration) {
        self.journal.set_sync_interval_min(interval);
    }

    /// Counters of the journal's work (batches, entries, time in fsync).
    pub fn journal_stats(&self) -> &crate::journal::JournalStats {
        self.journal.stats()
    }

    /// Reads the registry's terminals, E-Warong, cards and beneficiaries into its cache (on the
    /// embedded registry; nothing on a shared one): a switch calls this before it listens.
    /// Returns how many records were cached.
    pub async fn warm_registry_cache(&self) -> Result<usize, LedgerError> {
        Ok(self.registry.warm().await?)
    }

    /// The registry's read cache itself, for the switch's hot path: its `*_shared` reads hand
    /// out the cached records without copying them.
    pub fn registry_cache(&self) -> &CachedRegistry {
        &self.registry
    }

    /// The registry, for the admin API's reads and writes of non-money records.
    pub fn registry(&self) -> &dyn Registry {
        self.registry.as_ref()
    }

    /// The journal's projection, for reports. Hold it briefly: the journal writer waits for it.
    pub fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.journal.state()
    }

    /// Starts a new cache generation and rebuilds every card in the balance store from the
    /// journal. Callable any time (e.g. after Redis lost its data); on a store shared by
    /// several nodes it fences every other node until restarted (the `balances::redis` docs).
    /// Opening does this only when it finds no generation to adopt.
    pub async fn rebuild_cache(&self) -> Result<(), LedgerError> {
        self.balances.begin_generation().await?;
        self.rebuild_cards().await
    }

    /// Rebuilds every card the projection knows in this generation of the balance store.
    async fn rebuild_cards(&self) -> Result<(), LedgerError> {
        let snapshots = {
            let state = self.journal.state();
            let cards: Vec<CardId> = state.cards.keys().copied().collect();
            cards
                .iter()
                .map(|card| self.snapshot(&state, *card))
                .collect::<Vec<_>>()
        };
        self.balances.rebuild(&snapshots).await?;
        Ok(())
    }

    fn expiry_of(&self, program: &ProgramCode) -> Day {
        // A pocket of a program the registry does not know cannot be spent by a purchase (no
        // program allows its basket), so its expiry only orders it: put it last.
        self.programs_read()
            .get(program)
            .map_or(Day(i32::MAX), |p| p.pocket_expires_at)
    }

    fn programs_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ProgramCode, Program>> {
        self.programs.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the programs from the registry again when one of `codes` is not known here:
    /// another node defined it (nodes on one Scylla keyspace share the registry).
    async fn know_programs(&self, codes: &[&ProgramCode]) -> Result<(), LedgerError> {
        if codes
            .iter()
            .all(|code| self.programs_read().contains_key(*code))
        {
            return Ok(());
        }
        let programs: HashMap<ProgramCode, Program> = self
            .registry
            .programs()
            .await?
            .into_iter()
            .map(|p| (p.code.clone(), p))
            .collect();
        *self.programs.write().unwrap_or_else(|p| p.into_inner()) = programs;
        Ok(())
    }

    /// Applies what the other nodes' chains hold beyond this projection (nothing to do for a
    /// journal with one writer): called before an answer that must count records another
    /// node may have journaled since the follower's last poll.
    async fn follow_others(&self) -> Result<(), LedgerError> {
        self.journal.follow().await?;
        Ok(())
    }

    fn snapshot(&self, state: &State, card: CardId) -> CardSnapshot {
        let Some(card_state) = state.cards.get(&card) else {
            return CardSnapshot {
                card,
                ..CardSnapshot::default()
            };
        };
        let pockets = card_state
            .pockets
            .iter()
            .map(|(program, balance)| PocketBalance {
                program: program.clone(),
                expires: self.expiry_of(program),
                balance: *balance,
            })
            .collect();
        let transfers = card_state
            .history
            .iter()
            .filter_map(|CardRow { id, how, .. }| {
                let transfer = match how {
                    CardTransfer::Credit => SnapshotTransfer::Credit,
                    CardTransfer::Drain => match state.transfers.get(id) {
                        Some(Record::Replacement { moves, .. }) => {
                            SnapshotTransfer::Drain(moves.clone())
                        }
                        Some(
                            Record::ProgramClose {
                                program, returns, ..
                            }
                            | Record::Revocation {
                                program, returns, ..
                            },
                        ) => SnapshotTransfer::Drain(
                            returns
                                .iter()
                                .filter(|(returned, _)| *returned == card)
                                .map(|(_, amount)| PocketAmount {
                                    program: program.clone(),
                                    amount: *amount,
                                })
                                .collect(),
                        ),
                        _ => return None,
                    },
                    CardTransfer::Purchase => {
                        let purchase = &state.purchases.get(id)?.record;
                        SnapshotTransfer::Debit(StoredDebit {
                            response: purchase.response.clone(),
                            legs: purchase.legs.clone(),
                            day: purchase.day,
                        })
                    }
                };
                Some((*id, transfer))
            })
            .collect();
        CardSnapshot {
            card,
            pockets,
            day: card_state.day,
            purchases_today: card_state.purchases_today,
            transfers,
        }
    }

    /// Rebuilds one card the store has fenced as not ours (never cached, or by an older
    /// generation). A card cached by a *newer* generation means this process is stale.
    async fn recover_fenced(&self, error: StoreError) -> Result<(), LedgerError> {
        match error {
            StoreError::Fenced { card, found, ours } if found.is_none_or(|found| found < ours) => {
                // Another node may have journaled records of this card since the last poll:
                // the card is rebuilt from everything durable, not from a stale view.
                self.follow_others().await?;
                let snapshot = self.snapshot(&self.journal.state(), card);
                self.balances.rebuild(&[snapshot]).await?;
                Ok(())
            }
            other => Err(other.into()),
        }
    }

    /// An admin operation's turn: one at a time (the admin lock), deciding from a projection
    /// that holds only what is durable ([`Ledger::settled_books`]) and everything the other
    /// nodes journaled (money another node moved counts here too).
    async fn admin_turn(&self) -> Result<MutexGuard<'_, ()>, LedgerError> {
        let turn = self.admin_lock.lock().await;
        self.settled_books().await?;
        self.follow_others().await?;
        Ok(turn)
    }

    /// Waits until the projection holds only what is durable. After a failed journal write it
    /// may hold records that were never written (the sequencer applied them first), so nothing
    /// is answered from it until the journal has recovered; the barrier is also what starts a
    /// recovery once [`crate::JOURNAL_RECOVERY_INTERVAL`] has passed. `Unavailable` (`91`)
    /// while the store is still gone.
    async fn settled_books(&self) -> Result<(), LedgerError> {
        if self.journal.is_poisoned() {
            self.journal.barrier().await?;
        }
        Ok(())
    }

    async fn purchase_lock(&self, id: &TransferId) -> MutexGuard<'_, ()> {
        self.purchase_locks[stripe(id, PURCHASE_LOCK_STRIPES)]
            .lock()
            .await
    }

    async fn terminal_lock(&self, terminal: &TerminalId) -> MutexGuard<'_, ()> {
        self.terminal_locks[stripe(terminal, TERMINAL_LOCK_STRIPES)]
            .lock()
            .await
    }

    /// Compares the balance store with the journal for every card the journal knows and
    /// returns the cards that differ. Empty when the cache is exact.
    pub async fn cache_differences(&self) -> Result<Vec<CardId>, LedgerError> {
        let expected: Vec<(CardId, Vec<(ProgramCode, Money)>)> = {
            let state = self.journal.state();
            state
                .cards
                .iter()
                .map(|(card, c)| {
                    (
                        *card,
                        c.pockets.iter().map(|(p, m)| (p.clone(), *m)).collect(),
                    )
                })
                .collect()
        };
        let mut differing = Vec::new();
        for (card, mut pockets) in expected {
            let cached = match self.balances.pockets(card).await {
                // Not cached by this generation at all.
                Err(StoreError::Fenced { .. }) => {
                    differing.push(card);
                    continue;
                }
                other => other?,
            };
            let mut cached: Vec<(ProgramCode, Money)> =
                cached.into_iter().map(|p| (p.program, p.balance)).collect();
            pockets.sort();
            cached.sort();
            if pockets != cached {
                differing.push(card);
            }
        }
        Ok(differing)
    }
}

/// The ledger's id, created once per data directory: it namespaces its keys in a shared Redis.
fn ledger_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("ledger-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut hasher = Sha256::new();
            hasher.update(format!("{:?}", std::time::SystemTime::now()));
            hasher.update(std::process::id().to_le_bytes());
            hasher.update(data_dir.to_string_lossy().as_bytes());
            let id = crate::ids::hex(&hasher.finalize()[..8]);
            std::fs::write(&path, &id)?;
            std::fs::File::open(&path)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}
