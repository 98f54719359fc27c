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
use crate::state::{Applied, CardTransfer, ClosedBatch, State};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, MutexGuard};

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

/// DE60 of a batch the settlement closed because its terminal had not (no terminal totals).
pub const SETTLEMENT_BATCH_NUMBER: &str = "SETTLEMENT";

/// A business day's settlement as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementOutcome {
    /// Transfer id.
    pub id: TransferId,
    /// The WITA business date.
    pub business_date: Day,
    /// The batches settled.
    pub batches: Vec<(TerminalId, u64)>,
    /// One line per E-Warong.
    pub lines: Vec<crate::record::SettlementLine>,
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
        })
        .await?;
        ledger.snapshotter =
            Some(crate::snapshot::Snapshotter::start(config.data_dir.clone()).map_err(io)?);
        Ok(ledger)
    }

    /// Opens the ledger on stores the caller built: another journal store (Scylla), or test
    /// doubles that fail on purpose.
    pub async fn open_with(stores: LedgerStores) -> Result<Ledger, LedgerError> {
        let LedgerStores {
            journal,
            registry,
            balances,
        } = stores;
        let (journal, open_report) = Journal::open(journal)?;
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
            .filter_map(|(id, how)| {
                let transfer = match how {
                    CardTransfer::Credit => SnapshotTransfer::Credit,
                    CardTransfer::Drain => match state.transfers.get(id) {
                        Some(Record::Replacement { moves, .. }) => {
                            SnapshotTransfer::Drain(moves.clone())
                        }
                        Some(Record::ProgramClose {
                            program, returns, ..
                        }) => SnapshotTransfer::Drain(
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

    /// Checks 2 and 3 of §6 for a purchase key: duplicate, conflict or tombstone. Waits for a
    /// request with the same key that is still in flight, so a duplicate is only ever answered
    /// from a durable original.
    pub async fn lookup_purchase(
        &self,
        key: &PurchaseKey,
        fingerprint: &Fingerprint,
    ) -> PurchaseLookup {
        let id = TransferId::purchase(key);
        let _guard = self.purchase_lock(&id).await;
        if self.settled_books().await.is_err() {
            // Nothing to answer from; the authorization that follows answers `91`.
            return PurchaseLookup::New;
        }
        let state = self.journal.state();
        match state.purchases.get(&id) {
            Some(found) if found.record.fingerprint == *fingerprint => {
                PurchaseLookup::Duplicate(found.record.response.clone())
            }
            Some(_) => PurchaseLookup::Conflict,
            None if state.tombstones.contains(&id) => PurchaseLookup::Tombstoned,
            None => PurchaseLookup::New,
        }
    }

    /// The stored answer to a purchase key, whatever its content (for operators and reports).
    pub fn find_authorization(&self, key: &PurchaseKey) -> Option<AuthResponse> {
        self.journal
            .state()
            .purchase(key)
            .map(|p| p.record.response.clone())
    }

    /// The stored answer for a duplicate, `Err(Conflict)` for other content, `None` for new.
    fn duplicate_of(
        &self,
        key: &PurchaseKey,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Authorization>, LedgerError> {
        let state = self.journal.state();
        match state.purchase(key) {
            Some(found) if found.record.fingerprint == *fingerprint => Ok(Some(Authorization {
                response: found.record.response.clone(),
                legs: found.record.legs.clone(),
                duplicate: true,
            })),
            Some(_) => Err(LedgerError::Conflict(
                "same terminal, STAN and DE7 with other content".into(),
            )),
            None => Ok(None),
        }
    }

    fn tombstoned(&self, key: &PurchaseKey) -> bool {
        self.journal
            .state()
            .tombstones
            .contains(&TransferId::purchase(key))
    }

    /// Authorizes a purchase: the switch's one call on the hot path. Handles duplicates (same
    /// answer again), conflicts (`Err(Conflict)` → `94`), tombstones (`05`), basket and limits
    /// (`57`, `61`, `65`), balance (`51`), and approves only once the debit is durable in the
    /// journal. Every answer, approval or decline, is journaled for later duplicates.
    pub async fn authorize_purchase(
        &self,
        request: PurchaseRequest,
    ) -> Result<Authorization, LedgerError> {
        if !request.amount.is_positive() {
            return Err(LedgerError::Invalid(
                "a purchase amount must be positive".into(),
            ));
        }
        let id = TransferId::purchase(&request.key);
        let _guard = self.purchase_lock(&id).await;
        self.settled_books().await?;
        // One look at the projection for checks 2 and 3 and the card's pockets: the journal's
        // sequencer takes the same lock to apply each batch, so every look costs.
        let mut precheck = self.precheck(&id, &request)?;
        if matches!(&precheck, Precheck::New { card_programs } if card_programs.is_empty()) {
            // No pockets here: the card may have been funded through another node since the
            // last poll of its chain.
            self.follow_others().await?;
            precheck = self.precheck(&id, &request)?;
        }
        let card_programs = match precheck {
            Precheck::Duplicate(duplicate) => return Ok(duplicate),
            Precheck::Tombstoned => {
                return self
                    .journal_decision(&request, ResponseCode::DO_NOT_HONOUR, None)
                    .await;
            }
            Precheck::New { card_programs } => card_programs,
        };
        self.know_programs(&card_programs.iter().collect::<Vec<_>>())
            .await?;
        let Some((allowed, amount_max, daily_max)) =
            self.eligible(&card_programs, request.basket.as_deref())
        else {
            return self
                .journal_decision(&request, ResponseCode::NOT_PERMITTED, None)
                .await;
        };
        if request.amount > amount_max {
            return self
                .journal_decision(&request, ResponseCode::EXCEEDS_AMOUNT_LIMIT, None)
                .await;
        }
        let debit_request = DebitRequest {
            id,
            card: request.card,
            amount: request.amount,
            today: Day::wita_of_unix_seconds(request.at_unix_seconds),
            allowed: &allowed,
            daily_max,
            rrn: &request.rrn,
            authorization_id: &request.authorization_id,
            attempt: self.attempts.next(),
        };
        // An earlier attempt of this purchase whose outcome is unknown is voided first, so
        // this attempt never adopts a decision that is about to be undone.
        self.resolve_doubt(&id).await?;
        if self.doubts.full() {
            return Err(LedgerError::Unavailable(format!(
                "{} debits in doubt wait for the balance store",
                self.doubts.len()
            )));
        }
        let debit = match self.debit(&debit_request).await {
            Err(fenced @ StoreError::Fenced { .. }) => {
                self.recover_fenced(fenced).await?;
                self.debit(&debit_request).await?
            }
            other => other?,
        };
        // A replayed decision was made by another node (a terminal retrying elsewhere) or is
        // ours (a retried script whose first reply was lost). Another node's may already be
        // in its chain: follow, and answer from the journal when it is there.
        if debit.replayed {
            self.follow_others().await?;
            if let Precheck::Duplicate(duplicate) = self.precheck(&id, &request)? {
                return Ok(duplicate);
            }
        }
        // Not journaled by anyone yet: it still has to be.
        self.journal_decision(
            &request,
            debit.debit.response.code,
            Some((debit.debit, debit_request.attempt)),
        )
        .await
    }

    /// Asks the balance store to debit. An attempt whose outcome the store did not tell (no
    /// answer in time, or an answer that cannot be read) may still run: it is held in doubt
    /// until it is voided (the `doubt` module).
    async fn debit(&self, request: &DebitRequest<'_>) -> Result<DebitOutcome, StoreError> {
        let outcome = self.balances.debit(request).await;
        if let Err(StoreError::Unavailable(_) | StoreError::Malformed(_)) = &outcome {
            self.doubts.add(
                request.id,
                Attempt {
                    card: request.card,
                    attempt: request.attempt,
                    rrn: request.rrn.clone(),
                },
            );
        }
        outcome
    }

    /// Voids the attempts of one purchase whose outcome is unknown, under the purchase's
    /// lock and with the books settled. An attempt whose own decision is journaled (another
    /// node answered a retry with it) belongs to the books and is left alone.
    async fn resolve_doubt(&self, id: &TransferId) -> Result<(), LedgerError> {
        let mut attempts = self.doubts.take(id);
        if attempts.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.follow_others().await {
            self.doubts.put_back(*id, attempts);
            return Err(error);
        }
        let journaled = self
            .journal
            .state()
            .purchases
            .get(id)
            .map(|p| p.record.response.rrn.clone());
        while let Some(attempt) = attempts.pop() {
            if journaled.as_ref() == Some(&attempt.rrn) {
                continue;
            }
            if let Err(error) = self.void_attempt(*id, &attempt).await {
                attempts.push(attempt);
                self.doubts.put_back(*id, attempts);
                return Err(error);
            }
        }
        Ok(())
    }

    async fn void_attempt(&self, id: TransferId, attempt: &Attempt) -> Result<(), LedgerError> {
        match self
            .balances
            .void_debit(attempt.card, id, attempt.attempt)
            .await
        {
            Err(fenced @ StoreError::Fenced { .. }) => {
                // The card is rebuilt from the journal at our generation first; an attempt that
                // arrives after the void is then refused.
                self.recover_fenced(fenced).await?;
                Ok(self
                    .balances
                    .void_debit(attempt.card, id, attempt.attempt)
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Resolves debits in doubt (the `doubt` module): voids, in the balance store, each debit
    /// attempt whose outcome the ledger could not learn, so the store comes back to the
    /// journal's truth without a restart. Returns how many remain; `Unavailable` while the
    /// store or the journal is still away (what was not resolved is tried again next time).
    /// The switch calls this every [`crate::DOUBT_RESOLVE_INTERVAL`].
    pub async fn resolve_debits_in_doubt(&self) -> Result<usize, LedgerError> {
        for id in self.doubts.ids(DOUBT_RESOLVE_BATCH_MAX) {
            let _guard = self.purchase_lock(&id).await;
            self.settled_books().await?;
            self.resolve_doubt(&id).await?;
        }
        Ok(self.doubts.len())
    }

    /// Debit attempts in doubt now (also the gauge `ssn_debits_in_doubt`).
    pub fn debits_in_doubt(&self) -> usize {
        self.doubts.len()
    }

    /// Journals the decision on a purchase and answers once it is durable.
    async fn journal_decision(
        &self,
        request: &PurchaseRequest,
        code: ResponseCode,
        debit: Option<(StoredDebit, u64)>,
    ) -> Result<Authorization, LedgerError> {
        let attempt = debit.as_ref().map(|(_, attempt)| *attempt);
        let (response, legs, day) = match debit {
            Some((debit, _)) => (debit.response, debit.legs, debit.day),
            None => (
                AuthResponse {
                    code,
                    rrn: request.rrn.clone(),
                    authorization_id: None,
                    balance_after: None,
                },
                Vec::new(),
                Day::wita_of_unix_seconds(request.at_unix_seconds),
            ),
        };
        let record = PurchaseRecord {
            key: request.key.clone(),
            fingerprint: request.fingerprint,
            card: Some(request.card),
            merchant: request.merchant.clone(),
            amount: request.amount,
            day,
            response: response.clone(),
            legs: legs.clone(),
            basket: if legs.is_empty() {
                Vec::new()
            } else {
                request.basket.clone().unwrap_or_default()
            },
        };
        let entry = Entry {
            at_unix_seconds: request.at_unix_seconds,
            record: Record::Purchase(record),
        };
        if let Err(error) = self.journal.append(entry).await {
            if let Some(attempt) = attempt {
                // Not journaled, so this attempt's decision must not stand: a retry decides
                // afresh. If the void fails too, the attempt is held in doubt until it works.
                // (A decision another attempt made and this one replayed is that attempt's.)
                let id = TransferId::purchase(&request.key);
                let attempt = Attempt {
                    card: request.card,
                    attempt,
                    rrn: request.rrn.clone(),
                };
                if self.void_attempt(id, &attempt).await.is_err() {
                    self.doubts.add(id, attempt);
                }
            }
            return Err(error.into());
        }
        Ok(Authorization {
            response,
            legs,
            duplicate: false,
        })
    }

    /// The programs whose pockets may pay for this basket on this card, with the highest
    /// per-purchase and per-day limits among them; `None` when there are none (`57`).
    fn eligible(
        &self,
        card_programs: &[ProgramCode],
        basket: Option<&[BasketLine]>,
    ) -> Option<(Vec<ProgramCode>, Money, u32)> {
        let programs = self.programs_read();
        let eligible: Vec<&Program> = card_programs
            .iter()
            .filter_map(|code| programs.get(code))
            .filter(|program| match basket {
                Some(items) => program.allows(items.iter().map(|item| item.category.as_str())),
                None => !program.basket_required,
            })
            .collect();
        let amount_max = eligible.iter().map(|p| p.purchase_amount_max).max()?;
        let daily_max = eligible.iter().map(|p| p.purchases_per_day_max).max()?;
        Some((
            eligible.iter().map(|p| p.code.clone()).collect(),
            amount_max,
            daily_max,
        ))
    }

    /// Checks 2 and 3 of §6 and the card's programs, under one read of the projection.
    fn precheck(
        &self,
        id: &TransferId,
        request: &PurchaseRequest,
    ) -> Result<Precheck, LedgerError> {
        let state = self.journal.state();
        if let Some(found) = state.purchases.get(id) {
            if found.record.fingerprint != request.fingerprint {
                return Err(LedgerError::Conflict(
                    "same terminal, STAN and DE7 with other content".into(),
                ));
            }
            return Ok(Precheck::Duplicate(Authorization {
                response: found.record.response.clone(),
                legs: found.record.legs.clone(),
                duplicate: true,
            }));
        }
        if state.tombstones.contains(id) {
            return Ok(Precheck::Tombstoned);
        }
        let card_programs = state
            .cards
            .get(&request.card)
            .map(|c| c.pockets.keys().cloned().collect())
            .unwrap_or_default();
        Ok(Precheck::New { card_programs })
    }

    /// Records a decline the switch decided itself, so a duplicate gets the same answer. A
    /// tombstone wins (`05`, check 3 of §6 comes first); an earlier answer to the same key is
    /// returned as a duplicate.
    pub async fn record_decline(
        &self,
        request: DeclineRequest,
    ) -> Result<Authorization, LedgerError> {
        let id = TransferId::purchase(&request.key);
        let _guard = self.purchase_lock(&id).await;
        self.settled_books().await?;
        if let Some(duplicate) = self.duplicate_of(&request.key, &request.fingerprint)? {
            return Ok(duplicate);
        }
        let code = if self.tombstoned(&request.key) {
            ResponseCode::DO_NOT_HONOUR
        } else {
            request.code
        };
        if code == ResponseCode::APPROVED {
            return Err(LedgerError::Invalid("an approval is not a decline".into()));
        }
        let response = AuthResponse {
            code,
            rrn: request.rrn.clone(),
            authorization_id: None,
            balance_after: None,
        };
        let record = PurchaseRecord {
            key: request.key.clone(),
            fingerprint: request.fingerprint,
            card: request.card,
            merchant: request.merchant.clone(),
            amount: request.amount,
            day: Day::wita_of_unix_seconds(request.at_unix_seconds),
            response: response.clone(),
            legs: Vec::new(),
            basket: Vec::new(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record: Record::Purchase(record),
            })
            .await?;
        Ok(Authorization {
            response,
            legs: Vec::new(),
            duplicate: false,
        })
    }

    /// A balance inquiry (DE3 `310000`): the spendable balance, from the balance store.
    pub async fn balance(&self, card: CardId, at_unix_seconds: i64) -> Result<Money, LedgerError> {
        let pockets = self.balances.pockets(card).await?;
        spendable(&pockets, Day::wita_of_unix_seconds(at_unix_seconds))
            .ok_or_else(|| LedgerError::Internal("balance overflow".into()))
    }

    /// The card's pockets as the balance store has them, earliest expiry first.
    pub async fn pockets(&self, card: CardId) -> Result<Vec<PocketBalance>, LedgerError> {
        Ok(self.balances.pockets(card).await?)
    }

    /// Reverses a purchase exactly once (§3.4).
    pub async fn reverse_purchase(
        &self,
        request: ReversalRequest,
    ) -> Result<ReversalOutcome, LedgerError> {
        let _terminal = self.terminal_lock(&request.original.terminal).await;
        let _purchase = self
            .purchase_lock(&TransferId::purchase(&request.original))
            .await;
        self.settled_books().await?;
        let mut decision = self.reversal_decision(&request)?;
        if matches!(decision, Err(ReversalOutcome::Tombstoned)) {
            // The original may have been approved on another node since the last poll.
            self.follow_others().await?;
            decision = self.reversal_decision(&request)?;
        }
        let (card, legs) = match decision {
            Ok(reversible) => reversible,
            Err(ReversalOutcome::Tombstoned) => {
                if self.tombstoned(&request.original) {
                    return Ok(ReversalOutcome::Tombstoned);
                }
                let record = Record::Reversal(ReversalRecord {
                    original: request.original.clone(),
                    effect: ReversalEffect::Tombstone,
                });
                self.journal
                    .append(Entry {
                        at_unix_seconds: request.at_unix_seconds,
                        record,
                    })
                    .await?;
                return Ok(ReversalOutcome::Tombstoned);
            }
            Err(outcome) => return Ok(outcome),
        };
        let effect = ReversalEffect::Reversed {
            card,
            legs: legs.clone(),
        };
        let record = Record::Reversal(ReversalRecord {
            original: request.original.clone(),
            effect,
        });
        self.journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record,
            })
            .await?;
        let credits = self.credits_for(card, &legs);
        self.credit_store(TransferId::reversal(&request.original), &credits)
            .await?;
        Ok(ReversalOutcome::Reversed(legs))
    }

    /// What a reversal would do: `Ok` with the card and legs to give back, or the outcome
    /// that moves nothing (`Tombstoned` meaning "the original is unknown").
    #[allow(clippy::type_complexity)]
    fn reversal_decision(
        &self,
        request: &ReversalRequest,
    ) -> Result<Result<(CardId, Vec<PocketAmount>), ReversalOutcome>, LedgerError> {
        let state = self.journal.state();
        let Some(original) = state.purchase(&request.original) else {
            return Ok(Err(ReversalOutcome::Tombstoned));
        };
        let record = &original.record;
        if record.response.code != ResponseCode::APPROVED {
            return Ok(Err(ReversalOutcome::OriginalDeclined));
        }
        if record.card != request.card || record.amount != request.amount {
            return Ok(Err(ReversalOutcome::Mismatch));
        }
        if original.reversed {
            return Ok(Err(ReversalOutcome::AlreadyReversed));
        }
        let open = state
            .terminals
            .get(&request.original.terminal)
            .and_then(|t| t.open)
            .map(|(sequence, _)| sequence);
        if original.batch_sequence != open {
            return Ok(Err(ReversalOutcome::Settled));
        }
        // Approved records always carry their card (checked when journaled).
        let card = record
            .card
            .ok_or_else(|| LedgerError::Internal("approved purchase without card".into()))?;
        Ok(Ok((card, record.legs.clone())))
    }

    fn credits_for(&self, card: CardId, legs: &[PocketAmount]) -> Vec<PocketCredit> {
        legs.iter()
            .map(|leg| PocketCredit {
                card,
                program: leg.program.clone(),
                expires: self.expiry_of(&leg.program),
                amount: leg.amount,
            })
            .collect()
    }

    /// Credits the store after the journal has the credit. A card the store fences as not
    /// ours is rebuilt from the journal, which already includes this credit, so it is not
    /// credited a second time.
    async fn credit_store(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<(), LedgerError> {
        let not_ours = self.balances.credit(id, credits).await?;
        if not_ours.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<CardSnapshot> = {
            let state = self.journal.state();
            not_ours
                .iter()
                .map(|card| self.snapshot(&state, *card))
                .collect()
        };
        self.balances.rebuild(&snapshots).await?;
        Ok(())
    }

    /// Closes the terminal's open batch on the journal's totals (§3.5). A repeat of the last
    /// close (same DE60, nothing approved since) returns the same outcome.
    pub async fn close_batch(
        &self,
        request: BatchCloseRequest,
    ) -> Result<BatchCloseOutcome, LedgerError> {
        let _terminal = self.terminal_lock(&request.terminal).await;
        self.settled_books().await?;
        // The batch's purchases may have been made on other nodes: count them all.
        self.follow_others().await?;
        {
            let state = self.journal.state();
            if let Some(batches) = state.terminals.get(&request.terminal)
                && batches.open.is_none()
                && let Some(last) = batches.closed.last()
                && last.batch_number == request.batch_number
                && last.terminal_totals == request.terminal_totals
            {
                return Ok(BatchCloseOutcome {
                    matched: last.switch_totals == last.terminal_totals,
                    batch: last.clone(),
                });
            }
        }
        let record = Record::BatchClose {
            terminal: request.terminal.clone(),
            batch_number: request.batch_number.clone(),
            terminal_totals: request.terminal_totals,
        };
        match self
            .journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record,
            })
            .await?
        {
            Applied::BatchClosed(batch) => Ok(BatchCloseOutcome {
                matched: batch.switch_totals == batch.terminal_totals,
                batch,
            }),
            Applied::Done => Err(LedgerError::Internal(
                "batch close applied without closing".into(),
            )),
        }
    }

    /// The totals of the terminal's open batch (zeros when none is open).
    pub fn open_batch_totals(&self, terminal: &TerminalId) -> BatchTotals {
        self.journal
            .state()
            .terminals
            .get(terminal)
            .and_then(|t| t.open)
            .map(|(_, totals)| totals)
            .unwrap_or_default()
    }

    /// Registers a program (admin API `POST /programs`).
    pub async fn define_program(&self, program: Program) -> Result<(), LedgerError> {
        self.registry
            .apply(vec![RegistryOp::Insert(RegistryRecord::Program(
                program.clone(),
            ))])
            .await?;
        self.programs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(program.code.clone(), program);
        Ok(())
    }

    /// Money from the city budget into the program's giro account, idempotent on `reference`.
    pub async fn fund_program(
        &self,
        program: &ProgramCode,
        amount: Money,
        reference: &str,
        at_unix_seconds: i64,
    ) -> Result<TransferId, LedgerError> {
        if !amount.is_positive() {
            return Err(LedgerError::Invalid(
                "a funding amount must be positive".into(),
            ));
        }
        let _admin = self.admin_lock.lock().await;
        // Money another node moved (funding, disbursements, purchases) counts here too.
        self.follow_others().await?;
        let id = TransferId::funding(reference);
        let record = Record::Funding {
            reference: reference.to_string(),
            program: program.clone(),
            amount,
        };
        if let Some(existing) = self.journal.state().transfers.get(&id) {
            return if *existing == record {
                Ok(id)
            } else {
                Err(LedgerError::Conflict(format!(
                    "funding {reference} exists with other content"
                )))
            };
        }
        self.know_programs(&[program]).await?;
        if !self.programs_read().contains_key(program) {
            return Err(LedgerError::NotFound(format!("program {program}")));
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(id)
    }

    /// Credits the program's benefit to every determined beneficiary with a live card, from the
    /// giro account, all or nothing; idempotent on (program, period).
    pub async fn disburse(
        &self,
        program: &ProgramCode,
        period: &str,
        at_unix_seconds: i64,
    ) -> Result<DisbursementOutcome, LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Money another node moved (funding, disbursements, purchases) counts here too.
        self.follow_others().await?;
        let id = TransferId::disbursement(program, period);
        let existing = match self.journal.state().transfers.get(&id) {
            Some(Record::Disbursement { credits, .. }) => Some(credits.clone()),
            _ => None,
        };
        let credits = match existing {
            Some(credits) => credits,
            None => {
                self.journal_disbursement(program, period, at_unix_seconds)
                    .await?
            }
        };
        // Also on a repeat: the store may have missed the first time's credits, and credits
        // are idempotent per (card, transfer).
        let pocket_credits: Vec<PocketCredit> = credits
            .iter()
            .map(|(card, amount)| PocketCredit {
                card: *card,
                program: program.clone(),
                expires: self.expiry_of(program),
                amount: *amount,
            })
            .collect();
        self.credit_store(id, &pocket_credits).await?;
        let total = Money::checked_sum(credits.iter().map(|(_, amount)| *amount))
            .ok_or_else(|| LedgerError::Internal("overflow".into()))?;
        Ok(DisbursementOutcome {
            id,
            cards: credits.len(),
            total,
        })
    }

    async fn journal_disbursement(
        &self,
        program: &ProgramCode,
        period: &str,
        at_unix_seconds: i64,
    ) -> Result<Vec<(CardId, Money)>, LedgerError> {
        self.know_programs(&[program]).await?;
        let definition = self
            .programs_read()
            .get(program)
            .cloned()
            .ok_or_else(|| LedgerError::NotFound(format!("program {program}")))?;
        let cards = self.live_cards_of(program).await?;
        let credits: Vec<(CardId, Money)> = cards
            .into_iter()
            .map(|card| (card, definition.benefit_amount))
            .collect();
        let total = Money::checked_sum(credits.iter().map(|(_, a)| *a))
            .ok_or_else(|| LedgerError::Refused("total overflows".into()))?;
        let giro = self
            .journal
            .state()
            .balance(&crate::record::Account::Giro(program.clone()));
        if giro < total {
            return Err(LedgerError::Refused(format!(
                "giro account holds {giro}, the disbursement needs {total}"
            )));
        }
        if credits.is_empty() {
            return Err(LedgerError::Refused(
                "no determined beneficiary of the program has a live card".into(),
            ));
        }
        let record = Record::Disbursement {
            program: program.clone(),
            period: period.to_string(),
            credits: credits.clone(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(credits)
    }

    /// Cards that receive a program's disbursement: the live card of every beneficiary
    /// determined for the program.
    async fn live_cards_of(&self, program: &ProgramCode) -> Result<Vec<CardId>, LedgerError> {
        let beneficiaries = self.registry.beneficiaries().await?;
        let enrolled: std::collections::HashSet<String> = beneficiaries
            .into_iter()
            .filter(|b| {
                b.status == crate::registry::BeneficiaryStatus::Determined
                    && b.enrolments.contains(program)
            })
            .map(|b| b.ssn)
            .collect();
        let mut cards: Vec<CardId> = self
            .registry
            .cards()
            .await?
            .into_iter()
            .filter(|c| {
                enrolled.contains(&c.ssn)
                    && matches!(
                        c.status,
                        CardStatus::Issued | CardStatus::Active | CardStatus::Blocked
                    )
            })
            .map(|c| c.card_id)
            .collect();
        cards.sort();
        Ok(cards)
    }

    /// Moves every pocket of `old_card` to `new_card`, exactly once. The old card is marked
    /// replaced in the registry first, so the switch stops authorizing it before its pockets
    /// are emptied.
    pub async fn replace_card(
        &self,
        old_card: CardId,
        new_card: CardId,
        at_unix_seconds: i64,
    ) -> Result<Vec<PocketAmount>, LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Money another node moved (funding, disbursements, purchases) counts here too.
        self.follow_others().await?;
        let id = TransferId::replacement(old_card);
        let existing = match self.journal.state().transfers.get(&id) {
            Some(Record::Replacement {
                new_card: recorded,
                moves,
                ..
            }) => Some((*recorded, moves.clone())),
            _ => None,
        };
        if let Some((recorded, moves)) = existing {
            if recorded != new_card {
                return Err(LedgerError::Conflict(format!(
                    "card {old_card} was replaced by another card"
                )));
            }
            self.credit_store(id, &self.credits_for(new_card, &moves))
                .await?;
            return Ok(moves);
        }
        self.mark_replaced(old_card, new_card).await?;
        let moves = self.drain_store(old_card, id, None).await?;
        let record = Record::Replacement {
            old_card,
            new_card,
            moves: moves.clone(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        self.credit_store(id, &self.credits_for(new_card, &moves))
            .await?;
        Ok(moves)
    }

    async fn mark_replaced(&self, old_card: CardId, new_card: CardId) -> Result<(), LedgerError> {
        let old: Card = self
            .registry
            .card(old_card)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("card {old_card}")))?;
        if self.registry.card(new_card).await?.is_none() {
            return Err(LedgerError::NotFound(format!("card {new_card}")));
        }
        if old.replaced_by == Some(new_card) {
            return Ok(());
        }
        let mut replaced = old.clone();
        // A lost or stolen card keeps saying so (`41`/`43`) after its replacement.
        if !matches!(old.status, CardStatus::Lost | CardStatus::Stolen) {
            replaced.status = CardStatus::Replaced;
        }
        replaced.replaced_by = Some(new_card);
        self.registry
            .apply(vec![RegistryOp::Replace {
                expected: RegistryRecord::Card(old),
                new: RegistryRecord::Card(replaced),
            }])
            .await?;
        Ok(())
    }

    /// Records the result of a PIN check on `card` (§8: a correct PIN resets the count; the
    /// third wrong one in a row locks the PIN). The registry write is a compare-and-set, so
    /// two terminals checking the same card at once both count. A locked PIN stays locked
    /// whatever is entered, until an operator resets it.
    pub async fn record_pin_check(
        &self,
        card: CardId,
        correct: bool,
    ) -> Result<PinOutcome, LedgerError> {
        let current = self
            .registry
            .card(card)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("card {card}")))?;
        self.record_pin_check_from(&current, correct).await
    }

    /// [`Ledger::record_pin_check`] for a card the caller has just read (the switch reads it
    /// by PAN for the same request): one registry read fewer when nothing changed meanwhile;
    /// the compare-and-set still sees any change, and then the card is read again.
    pub async fn record_pin_check_from(
        &self,
        seen: &Card,
        correct: bool,
    ) -> Result<PinOutcome, LedgerError> {
        let card = seen.card_id;
        // A right PIN on a card with no wrong ones, nearly every purchase, copies nothing.
        let mut reread: Option<Card> = None;
        for attempt in 0..PIN_UPDATE_ATTEMPTS_MAX {
            if attempt > 0 {
                reread = Some(
                    self.registry
                        .card(card)
                        .await?
                        .ok_or_else(|| LedgerError::NotFound(format!("card {card}")))?,
                );
            }
            let current = reread.as_ref().unwrap_or(seen);
            if current.pin_locked() {
                return Ok(PinOutcome::Locked);
            }
            let (count, outcome) = match correct {
                true => (0, PinOutcome::Correct),
                false if current.wrong_pin_count + 1 >= crate::registry::WRONG_PIN_COUNT_MAX => {
                    (crate::registry::WRONG_PIN_COUNT_MAX, PinOutcome::Locked)
                }
                false => (current.wrong_pin_count + 1, PinOutcome::Wrong),
            };
            if count == current.wrong_pin_count {
                return Ok(outcome);
            }
            let mut updated = current.clone();
            updated.wrong_pin_count = count;
            let op = RegistryOp::Replace {
                expected: RegistryRecord::Card(current.clone()),
                new: RegistryRecord::Card(updated),
            };
            match self.registry.apply(vec![op]).await {
                Ok(()) => return Ok(outcome),
                Err(RegistryError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(LedgerError::Unavailable(format!(
            "card {card} changed {PIN_UPDATE_ATTEMPTS_MAX} times during one PIN check"
        )))
    }

    /// Settles a WITA business day (admin API `POST /settlements`): closes every terminal
    /// batch still open (DE60 [`SETTLEMENT_BATCH_NUMBER`], no terminal totals), then journals
    /// one [`Record::Settlement`] over every closed batch not settled yet, moving each
    /// E-Warong's net per program from the giro accounts to its payable account, with the
    /// amounts the bank rejected before carried into its line. Idempotent per date: a second
    /// call (or a rerun after a crash between the two steps) returns the settlement journaled
    /// first and never moves money twice.
    pub async fn settle(
        &self,
        business_date: Day,
        at_unix_seconds: i64,
    ) -> Result<SettlementOutcome, LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Batches and purchases of other nodes count too.
        self.follow_others().await?;
        if let Some(done) = self.settlement(business_date) {
            return Ok(done);
        }
        let open: Vec<TerminalId> = {
            let state = self.journal.state();
            let mut open: Vec<TerminalId> = state
                .terminals
                .iter()
                .filter(|(_, batches)| batches.open.is_some())
                .map(|(terminal, _)| terminal.clone())
                .collect();
            open.sort();
            open
        };
        for terminal in open {
            let _terminal = self.terminal_lock(&terminal).await;
            let still_open = self
                .journal
                .state()
                .terminals
                .get(&terminal)
                .is_some_and(|b| b.open.is_some());
            if still_open {
                self.journal
                    .append(Entry {
                        at_unix_seconds,
                        record: Record::BatchClose {
                            terminal,
                            batch_number: SETTLEMENT_BATCH_NUMBER.to_string(),
                            terminal_totals: BatchTotals::default(),
                        },
                    })
                    .await?;
            }
        }
        let record = {
            let state = self.journal.state();
            let batches = state.unsettled_batches();
            let lines = state.settlement_lines(&batches);
            Record::Settlement {
                business_date,
                batches,
                lines,
            }
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        self.settlement(business_date).ok_or_else(|| {
            LedgerError::Internal("a settlement the journal accepted is not in it".into())
        })
    }

    /// The settlement of a business day, if the journal has one.
    pub fn settlement(&self, business_date: Day) -> Option<SettlementOutcome> {
        let state = self.journal.state();
        let id = TransferId::settlement(business_date);
        match state.transfers.get(&id) {
            Some(Record::Settlement { batches, lines, .. }) => Some(SettlementOutcome {
                id,
                business_date,
                batches: batches.clone(),
                lines: lines.clone(),
                at_unix_seconds: state.transfer_times.get(&id).copied().unwrap_or(0),
            }),
            _ => None,
        }
    }

    /// Records the bank's answer to one settlement line (admin API `POST
    /// /settlements/{date}/confirmation`): paid moves the line's amount from the E-Warong's
    /// payable account out of the books (`Account::PaidOut`); rejected leaves it payable and
    /// the next settlement carries it. Idempotent per (date, E-Warong); another answer for the
    /// same line is a conflict; a line that does not exist, or another amount, is refused.
    pub async fn record_payout(
        &self,
        business_date: Day,
        merchant: &MerchantId,
        amount: Money,
        paid: bool,
        bank_reference: &str,
        at_unix_seconds: i64,
    ) -> Result<(), LedgerError> {
        let _admin = self.admin_lock.lock().await;
        let record = Record::Payout {
            business_date,
            merchant: merchant.clone(),
            amount,
            paid,
            bank_reference: bank_reference.to_string(),
        };
        let id = TransferId::payout(business_date, merchant);
        {
            let state = self.journal.state();
            if let Some(existing) = state.transfers.get(&id) {
                return if *existing == record {
                    Ok(())
                } else {
                    Err(LedgerError::Conflict(format!(
                        "the {business_date} line of {merchant} was confirmed already, with other content"
                    )))
                };
            }
            let line = match state.transfers.get(&TransferId::settlement(business_date)) {
                Some(Record::Settlement { lines, .. }) => {
                    lines.iter().find(|l| l.merchant == *merchant).cloned()
                }
                _ => {
                    return Err(LedgerError::Refused(format!(
                        "no settlement for {business_date}"
                    )));
                }
            };
            match line {
                None => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} settlement has no line for {merchant}"
                    )));
                }
                Some(line) if line.amount != amount => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} line of {merchant} is {}, not {amount}",
                        line.amount
                    )));
                }
                Some(_) => {}
            }
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(())
    }

    /// The year-end close of a program (Pasal 5, 14): every pocket of the program, expired
    /// by `as_of`, goes back to the program's giro account. Idempotent per (program, as_of):
    /// a repeat returns the first close. A later close sweeps what reversals of purchases made
    /// before expiry credited to expired pockets since.
    ///
    /// Each pocket is emptied in the balance store first (no purchase can spend an expired
    /// pocket, so nothing races with it but a reversal's credit), then the close is journaled
    /// with what the store took; a retry drains nothing more and journals the same amounts.
    pub async fn close_program(
        &self,
        program: &ProgramCode,
        as_of: Day,
        at_unix_seconds: i64,
    ) -> Result<ProgramCloseOutcome, LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Money another node moved (funding, disbursements, purchases) counts here too.
        self.follow_others().await?;
        let id = TransferId::program_close(program, as_of);
        if let Some(outcome) = self.program_close(program, as_of) {
            return Ok(outcome);
        }
        self.know_programs(&[program]).await?;
        let expires = self
            .programs_read()
            .get(program)
            .map(|p| p.pocket_expires_at)
            .ok_or_else(|| LedgerError::NotFound(format!("program {program}")))?;
        if as_of <= expires {
            return Err(LedgerError::Refused(format!(
                "pockets of {program} may be spent until {expires}: close as of a later day"
            )));
        }
        if as_of > Day::wita_of_unix_seconds(at_unix_seconds) {
            return Err(LedgerError::Refused(format!(
                "{as_of} is in the future: a close is as of today or an earlier day"
            )));
        }
        let mut holders: Vec<CardId> = {
            let state = self.journal.state();
            state
                .cards
                .iter()
                .filter(|(_, card)| card.pockets.get(program).is_some_and(|b| b.is_positive()))
                .map(|(card, _)| *card)
                .collect()
        };
        holders.sort();
        let mut returns = Vec::with_capacity(holders.len());
        for card in holders {
            let taken = self.drain_store(card, id, Some(program)).await?;
            let amount = Money::checked_sum(taken.iter().map(|t| t.amount))
                .ok_or_else(|| LedgerError::Internal("overflow".into()))?;
            if amount.is_positive() {
                returns.push((card, amount));
            }
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record: Record::ProgramClose {
                    program: program.clone(),
                    as_of,
                    returns,
                },
            })
            .await?;
        let mut outcome = self
            .program_close(program, as_of)
            .ok_or_else(|| LedgerError::Internal("journaled close not in the projection".into()))?;
        outcome.created = true;
        Ok(outcome)
    }

    /// A program's close as of a day, as journaled.
    pub fn program_close(&self, program: &ProgramCode, as_of: Day) -> Option<ProgramCloseOutcome> {
        let id = TransferId::program_close(program, as_of);
        let state = self.journal.state();
        let Some(Record::ProgramClose { returns, .. }) = state.transfers.get(&id) else {
            return None;
        };
        Some(ProgramCloseOutcome {
            id,
            as_of,
            returns: returns.clone(),
            returned: Money::checked_sum(returns.iter().map(|(_, amount)| *amount))?,
            at_unix_seconds: state.transfer_times.get(&id).copied().unwrap_or_default(),
            created: false,
        })
    }

    /// Drains a card's pockets (one program's when given) in the balance store, rebuilding
    /// the card first when this generation of the cache does not hold it.
    async fn drain_store(
        &self,
        card: CardId,
        id: TransferId,
        program: Option<&ProgramCode>,
    ) -> Result<Vec<PocketAmount>, LedgerError> {
        match self.balances.drain(card, id, program).await {
            Err(fenced @ StoreError::Fenced { .. }) => {
                self.recover_fenced(fenced).await?;
                Ok(self.balances.drain(card, id, program).await?)
            }
            other => Ok(other?),
        }
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
            let mut cached: Vec<(ProgramCode, Money)> = self
                .balances
                .pockets(card)
                .await?
                .into_iter()
                .map(|p| (p.program, p.balance))
                .collect();
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
