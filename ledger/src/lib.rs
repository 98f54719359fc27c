//! # ssn-ledger: the system of record for people, cards and money
//!
//! The ledger owns all persistent state of the SSN switch. The switch (ISO 8583) and the admin
//! API are its two front doors; both call [`Ledger`], and neither touches storage directly.
//!
//! ## Bird's-eye view
//!
//! ```text
//!   switch ──┐                         ┌── Journal (append-only file, hash chain, group commit)
//!            ├── Ledger ── decisions ──┼── BalanceStore (MemoryBalances | RedisBalances): cache
//!   admin ───┘                         └── Registry (RedbRegistry): people, cards, terminals...
//! ```
//!
//! - **Money** is [`Money`]: integer minor units (IDR sen) with checked arithmetic only; there
//!   is no `impl Add`, and no float anywhere near it.
//! - **Double entry.** Every [`Record`] in the journal moves money between [`Account`]s through
//!   legs derived from the record itself ([`Record::legs`]): the Bank Penyalur's funding source,
//!   each program's giro account, each card's pocket per program, each E-Warong's payable
//!   account. Funding moves funding source → giro; a disbursement giro → pockets; a purchase
//!   pockets → giro (the giro account at the bank still holds spent money until settlement pays
//!   the E-Warong, which is why settlement moves giro → payable, per business date); a reversal
//!   the reverse (after its date was settled, an adjustment of a later date's line moves it
//!   payable → giro); a
//!   replacement old pockets → new pockets; a program's year-end close
//!   ([`Ledger::close_program`]) its expired pockets → giro. An approved purchase keeps its
//!   DE48 basket item by item, for the reports.
//! - **Idempotency.** Every transfer's [`TransferId`] is derived from its business key (purchase:
//!   DE41 + DE11 + DE7; funding: reference; disbursement: program + period; replacement: old
//!   card; reversal: its original's key, which is what makes reversal exactly-once). A retry with
//!   the same content gets the original result; with other content, [`LedgerError::Conflict`].
//! - **Every authorization is journaled**, approvals and declines alike, with what the switch
//!   assigned (RRN, authorization id, code, balance after), so a duplicate gets the same bytes
//!   back after any restart. Reversal tombstones are journal records too.
//!
//! ## The hot path: one call per purchase
//!
//! The switch checks the message, terminal, merchant, card and PIN (§6 orders 1, 4-14 of the
//! host interface; [`Ledger::lookup_purchase`] answers orders 2 and 3 up front when it wants
//! them), then calls [`Ledger::authorize_purchase`], which:
//!
//! 1. takes the purchase id's lock stripe (a duplicate in flight, or a reversal racing its
//!    original, waits for the first to finish);
//! 2. answers a duplicate from the journal's projection, or `Conflict`, or `05` for a tombstone;
//! 3. picks the card's pockets whose program allows the basket (`57` if none) and the highest
//!    limits among them (`61`);
//! 4. asks the balance store to check and debit atomically (`65`, `51`, or the legs: earliest
//!    expiry first, expired pockets never spent, several pockets if needed);
//! 5. journals the decision and waits until its batch is fsynced; only then returns.
//!
//! If the journal refuses or fails, the store's debit is voided and the caller gets
//! [`LedgerError::Unavailable`] (`91`): nothing is acknowledged that is not durable. A debit
//! the store did not answer in time (Redis reachable but silent) is answered `91` too, and
//! since its script may still run later, the attempt is held *in doubt* until the store has
//! voided it (undone if it ran, refused if it arrives later: each attempt has its own tag,
//! [`DebitRequest::attempt`]); a retry of the purchase voids it first, and
//! [`Ledger::resolve_debits_in_doubt`] (called by the switch every
//! [`DOUBT_RESOLVE_INTERVAL`]) voids the rest, so the cache comes back to the journal's truth
//! without a restart. After a
//! failed write nothing is answered from the projection (it may hold the unwritten batch)
//! until the journal has recovered by itself: at least [`JOURNAL_RECOVERY_INTERVAL`] later it
//! re-reads the store, sets aside what the failed batch left there, and rebuilds the
//! projection from what is durable.
//!
//! Other calls the switch makes: [`Ledger::record_decline`] (a decline it decided itself, so
//! duplicates repeat it), [`Ledger::record_pin_check`] (the wrong-PIN count: `55`/`75`),
//! [`Ledger::balance`] (balance inquiry), [`Ledger::reverse_purchase`],
//! [`Ledger::close_batch`], and [`Ledger::registry`] for card (by PAN), terminal and merchant
//! lookups. The admin API uses [`Ledger::define_program`], [`Ledger::fund_program`],
//! [`Ledger::disburse`], [`Ledger::replace_card`] and the registry's [`RegistryOp`]s; the
//! Scylla stores plug in through [`Ledger::open_with`].
//!
//! ## Ordering rules that keep the three stores consistent
//!
//! - **Debits: store first, then journal** (a replacement's and a close's drains too). The store is where the atomic per-card decision
//!   happens (a mutex per shard in memory; one Lua script in Redis). The journal is then the
//!   record. A crash in between loses a debit nobody was told about; at the next open the
//!   store is rebuilt from the journal and the debit is gone. A debit whose answer never came
//!   is voided by its attempt's tag (the `doubt` module), never left to land unrecorded. A
//!   drain (replacement, close) that timed out is not voided: it can only lower a card that
//!   is being replaced or pockets already expired, and the retried operation journals it
//!   ([`Ledger::cache_differences`] lists such a card until then).
//! - **Credits: journal first, then store.** A store that missed a credit holds less than the
//!   journal, never more; a retry of the operation re-sends the credit (idempotent per card and
//!   transfer), and every open rebuilds the store anyway.
//! - **The journal's projection ([`State`]) is applied by the journal's sequencer before the
//!   batch is written**, with every invariant checked first ([`State::apply`]): a record that would take
//!   a pocket (or a giro or payable account) below zero, double a transfer id, or reverse
//!   something not reversible is refused and never written. The sum of all balances is zero by
//!   construction of the legs, and [`verify`] checks it.
//!
//! ## Storage
//!
//! - [`Journal`] over a [`JournalStore`] ([`FileJournal`] here; a Scylla store implements the
//!   same three calls). A sequencer thread takes everything queued (bounded by
//!   [`JOURNAL_QUEUE_RECORDS_MAX`]; a full queue answers `91` rather than wait), up to
//!   [`JOURNAL_BATCH_RECORDS_MAX`] records, checks and applies them; a sync thread makes each
//!   batch durable with one write and one `fdatasync` while the next batch is prepared (batches
//!   that queued meanwhile share the next write). Each entry carries the previous entry's
//!   SHA-256 and its own; [`verify`] (and `ssn-ledger verify --data-dir DIR`) recomputes the
//!   chain and every balance and reports the first break. Opening sets aside a torn last write
//!   (kept beside the journal as `journal.torn-OFFSET` for auditors) and refuses anything else
//!   that is broken.
//! - **Snapshots** ([`snapshot`]): the projection in a canonical encoding with the chain
//!   position it covers, in `DATA_DIR/snapshots/`. Opening loads the newest one the journal
//!   still continues (its last entry at its offset with its hash) and replays only what
//!   follows; a damaged, unfinished or stale one is skipped. The ledger takes the next one on
//!   its own thread from the previous one and the journal file, never under the projection's
//!   lock, once the journal has grown by [`snapshot::SNAPSHOT_EVERY_BYTES`]; `verify` checks
//!   every snapshot in force against its full replay.
//! - **A bounded working set** ([`window`], [`history`]): memory keeps balances, counters,
//!   batches and the last purchases (at most three days, at most ~131,000); older purchases,
//!   reversals, tombstones, the log and card transfers move to `DATA_DIR/history.redb`, where
//!   duplicates and late reversals of old keys, statements and transaction pages find them.
//!   A snapshot holds the working set only.
//! - [`BalanceStore`]: [`MemoryBalances`] (default) or [`RedisBalances`]. Both are caches of the
//!   journal, rebuilt from it at open (on Scylla only by the node that finds no generation:
//!   [`RedisConfig::shared_generation`]), and fenced by a generation number in Redis so a
//!   stale process or rebuild cannot overwrite newer state (see the `balances::redis` docs).
//! - **On ScyllaDB** ([`scylla_stores`] + [`Ledger::open_with`]): a [`ScyllaJournal`] and a
//!   [`ScyllaRegistry`] in one keyspace, balances in Redis under the keyspace's name, and no
//!   data directory at all. See "Running on ScyllaDB" below.
//! - [`Registry`]: [`RedbRegistry`] (redb, pinned exactly), with all-or-nothing
//!   [`RegistryOp`] lists for the admin API's compare-and-set writes. Terminal keys are stored
//!   encrypted as the switch hands them over; tokens as SHA-256 hashes; `Debug` masks PANs,
//!   NIKs, KKs and PVVs.
//!
//! ## Code map
//!
//! - `money`, `day`, `ids`: [`Money`], WITA [`Day`]s, identifiers and business keys; every
//!   [`TransferId`] is derived here.
//! - `record`: what the journal holds ([`Record`], [`Entry`]) and the legs each record implies.
//! - `state`: the journal's projection ([`State`]); [`State::apply`] is the one place balances
//!   change and invariants are checked.
//! - `days`: business dates ([`BusinessDays`]): the cut-overs journaled, which date each
//!   approved purchase belongs to, and per date not settled yet and E-Warong what its
//!   settlement line needs (purchases, reversals, adjustments), kept by [`State::apply`].
//! - `totals`: running totals per WITA half-year (per program, category, E-Warong and card),
//!   kept by [`State::apply`]: what reports read instead of walking all of history.
//! - `journal`: the [`Journal`] (`mod.rs`) over `format` (frames and the hash chain),
//!   `store` (the [`JournalStore`] trait and the file store), `replay` (reading a store back,
//!   torn tails, merging several chains), `writer` (the sequencer and sync threads: group
//!   commit) and `follow` (other nodes' chains).
//! - `doubt`: debit attempts whose outcome the store did not tell, held until voided.
//! - `snapshot`: snapshots of the projection beside the journal file, taken on the ledger's
//!   own thread and loaded at open when the journal still continues them.
//! - `window`: what the working set keeps, the cutoff and horizon, which keys memory alone
//!   answers for, and how records move out ([`State::movable`], [`State::forget`]).
//! - `history`: the redb file of what left the working set, and its lookups; `history/runs.rs`
//!   its indexes by id and by card, written as sorted runs per move and merged lazily.
//! - `ledger/working_set.rs`: the mover thread and the ledger's lookups that reach history.
//! - [`priority`]: the lower CPU priority (nice 10) of background threads: the mover, the
//!   snapshot thread, and the switch's admin API runtime.
//! - `verify`: the auditor's check, the library half of `ssn-ledger verify`.
//! - `balances`: the [`BalanceStore`] trait, the shared debit rule ([`decide_debit`]), the
//!   memory store and the Redis store with its Lua scripts and debit pipeline.
//! - `registry`: records of people, cards, merchants, terminals, tokens and audit; the
//!   [`Registry`] trait and the redb store.
//! - `ledger`: [`Ledger`], the two front doors' one object, and the ordering rules below:
//!   `mod.rs` holds opening, the requests and answers and what every operation shares (locks,
//!   following, rebuilding a card); one module per operation: `purchase` (with declines,
//!   balance inquiries and debits in doubt), `reversal`, `batches` (batch close, settlement,
//!   payouts), `programs` (definition, funding, disbursement, year-end close) and `cards`
//!   (replacement, wrong-PIN counts).
//! - `scylla`: the Scylla journal store, its shared snapshots and registry, the schema and
//!   its migrations, the driver's own runtime, and [`verify`] following a data directory's
//!   pointer to Scylla.
//!
//! ## Architecture invariants
//!
//! - The ledger knows nothing about ISO 8583 bytes or HTTP: it takes typed requests and
//!   returns typed answers; response codes are two ASCII characters it stores, not a protocol.
//! - Redis is never the only copy of money: everything in it can be rebuilt from the journal.
//! - The library reads no environment, flags or files other than its data directory; binaries
//!   pass a [`LedgerConfig`].
//! - Time comes from the caller (`at_unix_seconds`): days are WITA ([`Day`]), so tests and
//!   replays are deterministic.
//!
//! ## Running on ScyllaDB
//!
//! - **Schema**: [`ScyllaCluster::connect`] creates the keyspace (replication from
//!   [`ScyllaConfig::replication`]) and applies the migrations it has not recorded in
//!   `schema_migrations` ([`SCHEMA_VERSION`]); a newer schema than the program knows is refused.
//! - **Journal**: the same entries, hashes and chain as the file, one row per entry (a large
//!   body in parts of [`SCYLLA_ENTRY_PART_BYTES`]) keyed `((chain, bucket), sequence, part)`;
//!   a bucket is [`SCYLLA_JOURNAL_PARTITION_ENTRIES`] consecutive entries, so partitions are
//!   bounded. Writes are plain inserts (a group commit's rows in single-partition unlogged
//!   batches of [`SCYLLA_JOURNAL_BATCH_ROWS_MAX`]), idempotent (a retry writes the same bytes
//!   under the same key), at `LOCAL_QUORUM` unless configured otherwise: no lightweight transaction on the
//!   purchase path, because the journal's sequencer is its chain's only writer. A failed batch
//!   may leave some of its entries: replay stops at the first missing one and opening sets the
//!   rest aside in `journal_torn`, as the file journal does with a torn write. [`verify`]
//!   checks a Scylla chain when the data directory holds a [`SCYLLA_POINTER_FILE`].
//! - **Shared snapshots**: a node opens from the newest complete snapshot in the keyspace
//!   that every chain still continues ([`JournalStore::shared_snapshot`], [`ChainPosition`])
//!   and replays only each chain's tail after it; each node's snapshot thread
//!   ([`SharedSnapshotTaker`]) takes the next once the projection holds
//!   [`SHARED_SNAPSHOT_EVERY_ENTRIES`] more, from the newest snapshot and the chains (never
//!   the live projection). Chunks first, the catalog row last: a crash while one is written
//!   leaves the previous in force (see the `scylla::snapshots` docs).
//! - **Registry**: the same records and bytes as redb; `apply` stays all-or-nothing with a
//!   lease (one LWT) and a redo intent (see the `scylla::registry` docs). Only registry writes
//!   (admin API, wrong-PIN counts) take the lease; reads never do.
//! - **Outage**: a failed batch write leaves the journal refusing (`91`) until it recovers
//!   (see the hot path above): the driver reconnects by itself, and the first request at least
//!   [`JOURNAL_RECOVERY_INTERVAL`] after the failure re-reads the chain, moves the failed
//!   batch's rows to `journal_torn` and resumes, without a restart.
//! - **Durability**: a journal write is acknowledged when the configured consistency level has
//!   it in its commit logs; with Cassandra's default `commitlog_sync: periodic` that is not an
//!   fsync, so a production cluster needs replicas in separate failure domains (or
//!   `commitlog_sync: batch`).
//! - **Several nodes at the same time** (ARCHITECTURE.md "Running on ScyllaDB"): each node
//!   appends to its own chain (`chain` = `--node-id`), so nodes never contend for a sequence
//!   number, and Redis stays the per-card decision point (its debit script keeps each
//!   transfer's decision, so a retry elsewhere is answered the same and moves no money twice).
//!   Opening reads every chain of the keyspace ([`JournalStore::other_chains`]: the others as
//!   far as they are whole) and applies them merged, earliest acceptance time first, then
//!   chain name, then sequence; an entry that breaks an invariant only waits while another
//!   chain can progress (clocks differ: a purchase may carry an earlier time than the
//!   disbursement it spends). [`verify`] merges the same way. A transfer id journaled by two
//!   nodes with identical content is kept once ([`State::apply`]).
//!   - *One generation*: nodes on a keyspace share its Redis prefix and generation; only a
//!     node that finds none rebuilds the cards, and a new one on a live prefix
//!     ([`Ledger::rebuild_cache`], an operator's act) fences every running node until restarted.
//!   - *Following*: while running, a follower thread ([`JournalStore::follower`],
//!     [`ChainFollower`]) reads every other chain from where the projection is
//!     ([`State::followed`]), at most [`JOURNAL_FOLLOW_BATCH_ENTRIES`] per chain every
//!     [`JOURNAL_FOLLOW_INTERVAL`], and applies the entries in the same merged order, checking
//!     each chain's hashes; a chain that no longer links to what was applied (another node set
//!     aside a failed batch) makes the journal reload everything, as after a failed write.
//!     [`Journal::follow`] does one round on demand: a batch close, a settlement, funding, a
//!     disbursement, a replacement, a program's close, a reversal whose original is not
//!     found, a purchase on a card with no pockets here, a purchase Redis has a decision for,
//!     and a card to rebuild call it first. Programs missing here are read again from the
//!     registry.
//!
//! ## Limits
//!
//! | name | value | why |
//! |---|---|---|
//! | [`JOURNAL_BATCH_RECORDS_MAX`] | 8,192 | records per fsync |
//! | [`JOURNAL_QUEUE_RECORDS_MAX`] | 65,536 | records waiting for the sequencer; full answers `91` |
//! | [`JOURNAL_BATCHES_IN_FLIGHT_MAX`] | 2 | prepared batches waiting for fsync |
//! | [`JOURNAL_SYNC_INTERVAL_MIN_DEFAULT`] | 1 ms | least time between the starts of two syncs |
//! | [`JOURNAL_APPLY_CHUNK_RECORDS`] | 256 | records applied per hold of the projection lock |
//! | [`JOURNAL_RECOVERY_INTERVAL`] | 1 s | between a failed write (or recovery) and the next recovery |
//! | [`JOURNAL_FOLLOW_INTERVAL`] | 250 ms | between polls of the other nodes' chains |
//! | [`JOURNAL_FOLLOW_BATCH_ENTRIES`] | 1,024 | entries of one other chain per round of following |
//! | [`JOURNAL_FOLLOW_ROUNDS_MAX`] | 16 | rounds one on-demand follow reads before it answers |
//! | [`JOURNAL_FOLLOW_WAITERS_MAX`] | 1,024 | callers waiting for a follow; one more answers `91` |
//! | [`JOURNAL_ENTRY_BYTES_MAX`] | 16 MiB | one entry (a disbursement to ~1M cards) |
//! | [`JOURNAL_TORN_TAIL_BYTES_MAX`] | 64 MiB | what opening may set aside as a torn write |
//! | [`DEBITS_IN_DOUBT_MAX`] | 65,536 | debit attempts in doubt; past it no debit is sent (`91`) |
//! | [`DOUBT_RESOLVE_INTERVAL`] | 250 ms | between the switch's rounds of voiding them |
//! | [`DOUBT_RESOLVE_BATCH_MAX`] | 4,096 | purchases whose attempts one round voids |
//! | [`snapshot::SNAPSHOT_EVERY_BYTES`] | 64 MiB | journal growth that makes the ledger take a snapshot |
//! | [`snapshot::REPLAY_MOVE_EVERY_ENTRIES`] | 65,536 | a replay with history at hand (the snapshot thread's, opening's) moves what left the working set this often, so it holds about the working set |
//! | [`snapshot::SNAPSHOT_CHECK_INTERVAL`] | 10 s | between looks at the journal's size |
//! | [`snapshot::SNAPSHOT_SPACING`] | 5 min | least time between two snapshots the ledger takes |
//! | [`snapshot::SNAPSHOTS_KEPT`] | 2 | snapshot files kept |
//! | [`PURCHASE_LOCK_STRIPES`] | 65,536 | per-purchase lock stripes |
//! | [`TERMINAL_LOCK_STRIPES`] | 1,024 | per-terminal lock stripes (reversal, batch close) |
//! | [`PIN_UPDATE_ATTEMPTS_MAX`] | 8 | compare-and-set retries of a wrong-PIN count |
//! | [`MEMORY_SHARDS`] | 256 | card shards of the memory store |
//! | [`REDIS_AMOUNT_MINOR_MAX`] | 10^14 − 1 | Lua numbers are doubles printed with 14 digits |
//! | [`REDIS_PIPELINE_COMMANDS_MAX`] | 256 | debit scripts per pipeline (one write, one read) |
//! | [`REDIS_PIPELINES_IN_FLIGHT_MAX`] | 4 | debit pipelines in flight |
//! | [`REDIS_DEBIT_QUEUE_MAX`] | 16,384 | debits waiting for a pipeline; full answers `91` |
//! | [`REDIS_SCRIPTS_IN_FLIGHT_MAX`] | 256 | scripts in flight for a disbursement or rebuild |
//! | [`REGISTRY_OPS_PER_APPLY_MAX`] | 200,000 | records in one registry transaction |
//! | [`WRONG_PIN_COUNT_MAX`] | 3 | wrong PINs that lock the PIN |
//! | [`REGISTRY_CACHE_TTL`] | 1 s | a terminal, E-Warong or beneficiary changed by another node is seen here |
//! | [`REGISTRY_CACHE_ENTRIES_MAX`] | 200,000 | cached records per kind; then the kind is emptied |
//! | [`SCYLLA_JOURNAL_PARTITION_ENTRIES`] | 65,536 | journal entries per partition of a chain |
//! | [`SCYLLA_ENTRY_PART_BYTES`] | 1 MiB | largest part of an entry body in one row |
//! | [`SCYLLA_WRITES_IN_FLIGHT_MAX`] | 128 | inserts in flight for one batch or registry change |
//! | [`SCYLLA_REQUEST_TIMEOUT_DEFAULT`] | 5 s | one CQL request; then `91` |
//! | [`SCYLLA_CONNECT_TIMEOUT`] | 120 s | connecting and creating or migrating the schema at open |
//! | [`SCYLLA_REGISTRY_BUCKETS`] | 64 | partitions per registry record kind |
//! | [`SCYLLA_AUDIT_PARTITION_ENTRIES`] | 4,096 | audit entries per partition |
//! | [`SCYLLA_REGISTRY_INTENT_BYTES_MAX`] | 8 MiB | one registry change on Scylla |
//! | [`SCYLLA_REGISTRY_LEASE_TTL_SECONDS`] | 30 | a dead writer's lease expires |
//! | [`SCYLLA_REGISTRY_LEASE_WAIT_MAX`] | 5 s | waiting for the registry's lease; then unavailable |
//! | [`SCYLLA_DRIVER_THREADS`] | 2 | threads of the driver's own runtime |
//! | [`window::WORKING_SET_SECONDS`] | 3 days | purchases, reversals, tombstones stay in memory at most this long |
//! | [`window::WORKING_SET_PURCHASES_MAX`] | 131,072 | purchases in memory before the cutoff moves closer |
//! | [`window::RECENT_SECONDS`], [`window::FUTURE_SECONDS`] | 2 days, 1 day | DE7 window answered from memory alone |
//! | [`window::MOVE_INTERVAL`], [`window::MOVE_ROWS_MAX`] | 10 s, 2,048 | the mover's period, and log entries and card rows per lock hold |
//! | [`history::runs::CHUNK_ENTRIES`], [`history::runs::RUN_ENTRIES_MAX`] | 128, 524,288 | entries per value of history's sorted runs; entries a merge makes at most |
//! | [`history::HISTORY_CACHE_BYTES`] | 16 MiB | redb's page cache for `history.redb` (part of resident memory once the mover has run) |
//!
//! ## Back of the envelope
//!
//! - A purchase entry is about 200 bytes on disk; 1,688 families making two purchases a day is
//!   under 1 MB of journal a day, so replaying a whole year at open takes seconds.
//! - `fdatasync` on the project machine takes 1-4 ms whatever the size; at 100,000 purchases a
//!   second that is a few hundred records per fsync, well within [`JOURNAL_BATCH_RECORDS_MAX`].
//! - The projection keeps at most three days and ~131,000 authorizations (about 1 KB each
//!   with indexes, [`window`]); older ones are on disk in [`history`] (~300 bytes each with
//!   their log and card rows). The program's real volume is thousands a day.
//! - Binaries should use a thread-caching allocator (the benchmark uses mimalloc): callers
//!   allocate records and the journal threads free them, which glibc's malloc serializes.
//!
//! ## Not yet
//!
//! - A transaction listing's total counts every log row (history on disk, off the lock):
//!   O(history) per request until per-day counts exist. Terminals whose clock is behind the
//!   working set's horizon (seconds at benchmark rates) cost a history read per purchase.
//!   An identical purchase record journaled by two nodes is recognised only while the first
//!   is in memory (nothing moves on Scylla yet).
//! - On ScyllaDB nothing moves to history and there are no snapshots yet (every node replays
//!   every chain), and on every backend a recovery after a failed write replays the whole
//!   journal. Redis keeps each transfer's decision in the card's hash forever (its memory,
//!   not the switch's). `verify` replays into one full projection (memory grows with history)
//!   and checks a snapshot's records against it, not that what it moved is in history.
//! - On Scylla, a node killed between a Redis debit and its journal write leaves that card's
//!   cache below the journal until the terminal retries or an operator rebuilds the cache: with
//!   one shared generation a restart no longer rebuilds the cards. A follower reads every
//!   other chain's newest partition on each poll, whatever the load; no backoff yet.

mod balances;
mod day;
mod days;
mod doubt;
pub mod history;
mod ids;
mod journal;
mod ledger;
mod money;
pub mod monitor;
pub mod priority;
mod record;
mod registry;
mod scylla;
pub mod snapshot;
mod state;
pub mod testing;
pub mod totals;
mod verify;
pub mod window;

pub use balances::{
    BalanceStore, CardSnapshot, DebitOutcome, DebitRequest, MEMORY_SHARDS, MemoryBalances,
    PocketBalance, PocketCredit, REDIS_AMOUNT_MINOR_MAX, REDIS_DEBIT_QUEUE_MAX,
    REDIS_PIPELINE_COMMANDS_MAX, REDIS_PIPELINES_IN_FLIGHT_MAX, REDIS_SCRIPTS_IN_FLIGHT_MAX,
    RedisBalances, RedisConfig, SnapshotTransfer, StoreError, StoredDebit, decide_debit,
    redis_debit_script, sort_pockets, spendable,
};
pub use day::{Day, WITA_OFFSET_SECONDS};
pub use days::{BusinessDays, CUTOVER_SECONDS_DEFAULT, LineSums};
pub use doubt::{DEBITS_IN_DOUBT_MAX, DOUBT_RESOLVE_BATCH_MAX, DOUBT_RESOLVE_INTERVAL};
pub use ids::{
    AuthorizationId, CardId, Fingerprint, InvalidId, MerchantId, PROGRAM_CODE_BYTES_MAX,
    ProgramCode, PurchaseKey, Rrn, Stan, TerminalId, TransferId, TransmissionTime, hex,
};
pub use journal::{
    Break, BreakKind, ChainFollower, ChainHead, ChainPosition, EncodedEntry, FileJournal,
    FollowedChain, Hash, JOURNAL_APPLY_CHUNK_RECORDS, JOURNAL_BATCH_RECORDS_MAX,
    JOURNAL_BATCHES_IN_FLIGHT_MAX, JOURNAL_ENTRY_BYTES_MAX, JOURNAL_FOLLOW_BATCH_ENTRIES,
    JOURNAL_FOLLOW_INTERVAL, JOURNAL_FOLLOW_ROUNDS_MAX, JOURNAL_FOLLOW_WAITERS_MAX, JOURNAL_MAGIC,
    JOURNAL_QUEUE_RECORDS_MAX, JOURNAL_RECOVERY_INTERVAL, JOURNAL_SYNC_INTERVAL_MIN_DEFAULT,
    JOURNAL_TORN_TAIL_BYTES_MAX, Journal, JournalError, JournalStats, JournalStore, OpenReport,
    SHARED_SNAPSHOT_CHECK_INTERVAL, SHARED_SNAPSHOT_EVERY_ENTRIES, SHARED_SNAPSHOT_SPACING,
    SharedSnapshot, SharedSnapshotTaker,
};
pub use ledger::{
    Authorization, BalanceBackend, BatchCloseOutcome, BatchCloseRequest, DeclineRequest,
    DisbursementOutcome, Enrolments, LOG_ENTRIES_PER_HOLD_MAX, Ledger, LedgerConfig, LedgerError,
    LedgerStores, OpenBatch, PIN_UPDATE_ATTEMPTS_MAX, PURCHASE_LOCK_STRIPES, PinOutcome,
    ProgramCloseOutcome, PurchaseLookup, PurchaseRequest, ReversalOutcome, ReversalRequest,
    RevocationOutcome, SETTLEMENT_BATCH_NUMBER, SettlementOutcome, TERMINAL_LOCK_STRIPES,
};
pub use money::Money;
pub use record::{
    Account, AuthResponse, BasketLine, BatchTotals, DayLine, Entry, Leg, PocketAmount,
    PurchaseRecord, Record, ResponseCode, ReversalEffect, ReversalRecord, SettledLine,
    SettlementLine,
};
pub use registry::*;
pub use scylla::{
    Consistency, ImportReport, SCHEMA_VERSION, SCYLLA_ALERT_PERIOD_SECONDS,
    SCYLLA_AUDIT_PARTITION_ENTRIES, SCYLLA_CONNECT_TIMEOUT, SCYLLA_DRIVER_THREADS,
    SCYLLA_ENTRY_PART_BYTES, SCYLLA_JOURNAL_BATCH_BYTES_MAX, SCYLLA_JOURNAL_BATCH_ROWS_MAX,
    SCYLLA_JOURNAL_PARTITION_ENTRIES, SCYLLA_KEYSPACE_BYTES_MAX, SCYLLA_POINTER_FILE,
    SCYLLA_REGISTRY_BUCKETS, SCYLLA_REGISTRY_INTENT_BYTES_MAX, SCYLLA_REGISTRY_LEASE_TTL_SECONDS,
    SCYLLA_REGISTRY_LEASE_WAIT_MAX, SCYLLA_REQUEST_TIMEOUT_DEFAULT, SCYLLA_SNAPSHOT_CHUNK_BYTES,
    SCYLLA_SNAPSHOTS_KEPT, SCYLLA_WRITES_IN_FLIGHT_MAX, ScyllaCluster, ScyllaConfig, ScyllaError,
    ScyllaJournal, ScyllaRegistry, import_embedded, scylla_stores, take_shared_snapshot, verify,
    verify_scylla,
};
pub use state::{
    Applied, CardRow, CardState, CardTransfer, ClosedBatch, InvariantError, PURCHASE_SHARDS,
    PurchaseState, Purchases, State, TerminalBatches,
};
pub use verify::{VerifyError, VerifyReport, check_balances, read_journal};
