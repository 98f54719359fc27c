//! History on disk: what has left the working set ([`crate::window`]) — purchases, reversals,
//! tombstones, the transaction log, each card's transfers and settled terminal batches — in
//! indexed tables of one redb file beside the journal (`history.redb`).
//!
//! History is derived from the journal, which stays the system of record: every row here was
//! first applied to the projection from a journal entry, and is written before it is dropped
//! from memory (made durable by [`History::sync`] at the end of each move, always before a
//! snapshot that relies on it is written). Rows are never changed once written, and a purchase
//! is kept as it was accepted, unreversed (its reversal is a row of its own): the ledger's
//! mover and the snapshot thread, whose projection lags, may both move the same records, and a
//! replay that brings a purchase back (`State::restore`) must not find a reversal from its
//! future.
//!
//! The log is numbered: entry `i` of the projection's log ([`State::log_base`] + position)
//! is row `i` here, and `log_len` says how many rows are contiguous from 0. A snapshot that
//! has moved more of its log than this file holds cannot be used (the file was lost or is
//! older): the ledger then replays the journal from its start.
//!
//! What is written per purchase is appended, never inserted at a random place: its row keyed
//! by its log number, its log row. The two indexes a purchase adds to (by id; each card's
//! transfers by card) are [`runs`], sorted runs written whole per move and merged lazily, so
//! a move costs a few sequential writes per purchase instead of random B-tree inserts (the
//! mover cost a quarter of the switch's CPU at 12,000 purchases a second: BENCHMARKS.md). A
//! file written before the runs (its `purchases_by_id` and `card_log` tables) is read as it
//! is: lookups consult those tables too, and new rows go to the runs.
//!
//! [`State::log_base`]: crate::state::State::log_base

use crate::day::Day;
use crate::ids::{CardId, MerchantId, TerminalId, TransferId};
use crate::record::Record;
use crate::state::{CardRow, CardTransfer, ClosedBatch, PurchaseState};
use ::redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::path::{Path, PathBuf};

pub mod runs;
use runs::{KEY_BYTES, RunIndex};

/// The file, in the data directory.
pub const HISTORY_FILE: &str = "history.redb";
/// redb's page cache (and write buffer) for the history file: lookups of old keys are rare,
/// and the operating system's page cache holds the file's hot pages outside the process. It
/// fills as the mover writes, so it is part of the switch's resident memory once it runs:
/// small, so that memory stays flat (64 MiB showed as +8 MB a minute for eight minutes).
pub const HISTORY_CACHE_BYTES: usize = 16 << 20;

type Id = [u8; 16];
/// Purchases by log number: those that leave memory with their log entry (nearly all), in
/// log order, so inserts append.
const PURCHASES_BY_LOG: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("purchases_by_log");
/// Purchases by row number, in the order they left memory: those that left after their log
/// entry (pinned: [`crate::state::State::pinned`]), and every purchase of a file written
/// before [`PURCHASES_BY_LOG`].
const PURCHASE_ROWS: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("purchase_rows");
/// Each purchase's row number by its id, in a file written before [`ID_INDEX`]: read, no
/// longer written.
const PURCHASES_BY_ID: TableDefinition<'static, Id, u64> = TableDefinition::new("purchases_by_id");
/// Where each purchase is, by its id: entries of the id (16 bytes) and its [`Location`]
/// (8 bytes, big-endian).
const ID_INDEX: RunIndex = RunIndex {
    chunks: TableDefinition::new("id_chunks"),
    runs: TableDefinition::new("id_runs"),
    width: KEY_BYTES + 8,
};
/// Each card's transfers: entries of the card and log number (8 bytes each, big-endian), how
/// (1 byte) and the transfer id (16 bytes).
const CARD_INDEX: RunIndex = RunIndex {
    chunks: TableDefinition::new("card_chunks"),
    runs: TableDefinition::new("card_runs"),
    width: KEY_BYTES + 1 + 16,
};
/// In an [`ID_INDEX`] location, the bit that says the rest is a [`PURCHASE_ROWS`] row number
/// (else it is a log number of [`PURCHASES_BY_LOG`]).
const LOCATION_ROW: u64 = 1 << 63;
/// Records other than purchases that left memory (reversals, disbursements, year-end closes,
/// revocations), by transfer id, with when they were accepted. (Named for its first kind.)
const TRANSFERS: TableDefinition<'static, Id, &'static [u8]> = TableDefinition::new("reversals");
const TOMBSTONES: TableDefinition<'static, Id, ()> = TableDefinition::new("tombstones");
const LOG: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("log");
/// Each card's transfers, in a file written before [`CARD_INDEX`]: read, no longer written.
const CARD_LOG: TableDefinition<'static, (u64, u64), (u8, Id)> = TableDefinition::new("card_log");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
/// Settled terminal batches by (DE41, switch-side sequence).
const BATCHES: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("batches");
/// The terminal batches closed on each settled business date (DE41, switch-side sequence), by
/// (date, position in the order they closed): what the date's reconciliation compares.
const CLOSED_ON: TableDefinition<'static, (i32, u64), (&'static str, u64)> =
    TableDefinition::new("closed_on");
const LOG_LEN: &str = "log_len";
const PURCHASE_ROWS_NEXT: &str = "purchase_rows_next";

/// One row of the transaction log on disk: what the admin API's listing filters on, so a
/// page is found without reading each record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRow {
    /// When the journal accepted it (UTC seconds).
    pub at_unix_seconds: i64,
    /// The transfer.
    pub id: TransferId,
    /// The card of a purchase or reversal, if any.
    pub card: Option<CardId>,
    /// The E-Warong of a purchase (`None` for anything else: a row with one is a purchase).
    pub merchant: Option<MerchantId>,
    /// The terminal of a purchase or reversal.
    pub terminal: Option<TerminalId>,
}

/// What leaves memory in one move, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Moved {
    /// Purchases whose batch is settled (or declines), old enough, each with its log number
    /// when it leaves with its log entry (`None`: its log entry left before it).
    pub purchases: Vec<(TransferId, PurchaseState, Option<u64>)>,
    /// Records other than purchases (reversals, disbursements, closes, revocations), with when
    /// they were accepted, by transfer id.
    pub transfers: Vec<(TransferId, i64, Record)>,
    /// Tombstones, by the purchase id they stand for.
    pub tombstones: Vec<TransferId>,
    /// Records accepted before this time (and whose key's DE7 is before it) leave; it
    /// becomes the working set's horizon ([`crate::window`]).
    pub cutoff: i64,
    /// The log number of `log[0]`.
    pub log_from: u64,
    /// A prefix of the projection's log.
    pub log: Vec<LogRow>,
    /// Every card transfer of those log entries.
    pub card_log: Vec<(CardId, CardRow)>,
    /// How many of [`State::pinned`]'s first ids were looked at.
    ///
    /// [`State::pinned`]: crate::state::State::pinned
    pub pinned_checked: usize,
    /// The ids looked at that stay in memory although their log entry has left (the new end
    /// of `State::pinned`).
    pub pinned: Vec<TransferId>,
    /// Settled batches that left their terminal's list: a prefix of
    /// `State::departed_batches`.
    pub batches: Vec<(TerminalId, ClosedBatch)>,
    /// Set when `card_log` is a slice of the rows of the log's first entry (one naming more
    /// cards than a round takes) and `log` is empty: how many of its cards' rows have left
    /// with this one ([`State::card_rows_moved`]).
    ///
    /// [`State::card_rows_moved`]: crate::state::State::card_rows_moved
    pub card_slice: Option<usize>,
    /// The batches closed on business dates settled since, in the order they closed: a
    /// prefix of `BusinessDays::closed_batches`' settled dates.
    pub closed_on: Vec<(Day, Vec<(TerminalId, u64)>)>,
}

impl Moved {
    /// Whether there is nothing to move.
    pub fn is_empty(&self) -> bool {
        self.purchases.is_empty()
            && self.transfers.is_empty()
            && self.tombstones.is_empty()
            && self.log.is_empty()
            && self.card_log.is_empty()
            && self.batches.is_empty()
            && self.closed_on.is_empty()
    }

    /// Rows in it.
    pub fn len(&self) -> usize {
        self.purchases.len()
            + self.transfers.len()
            + self.tombstones.len()
            + self.log.len()
            + self.card_log.len()
            + self.batches.len()
            + self
                .closed_on
                .iter()
                .map(|(_, batches)| batches.len())
                .sum::<usize>()
    }
}

/// Why history cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file cannot be opened, read or written.
    #[error("history: {0}")]
    Storage(String),
    /// A row cannot be decoded.
    #[error("history holds an undecodable {0}")]
    Corrupt(&'static str),
    /// A move would leave a gap in the log.
    #[error("history's log holds {held} entries; a move from entry {from} would leave a gap")]
    Gap {
        /// Rows held.
        held: u64,
        /// Where the move starts.
        from: u64,
    },
}

fn storage(error: impl Into<::redb::Error>) -> HistoryError {
    HistoryError::Storage(error.into().to_string())
}

/// An [`ID_INDEX`] entry.
fn id_entry(id: &TransferId, location: u64) -> [u8; KEY_BYTES + 8] {
    let mut entry = [0; KEY_BYTES + 8];
    entry[..KEY_BYTES].copy_from_slice(&id.0);
    entry[KEY_BYTES..].copy_from_slice(&location.to_be_bytes());
    entry
}

/// A [`CARD_INDEX`] entry.
fn card_entry(card: CardId, row: &CardRow) -> [u8; KEY_BYTES + 17] {
    let mut entry = [0; KEY_BYTES + 17];
    entry[..8].copy_from_slice(&card.0.to_be_bytes());
    entry[8..16].copy_from_slice(&row.index.to_be_bytes());
    entry[16] = how_byte(row.how);
    entry[17..].copy_from_slice(&row.id.0);
    entry
}

/// The row of a [`CARD_INDEX`] entry.
fn card_row(entry: &[u8]) -> Result<CardRow, HistoryError> {
    let number = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().unwrap_or_default());
    let mut id = [0; 16];
    id.copy_from_slice(&entry[17..33]);
    Ok(CardRow {
        index: number(&entry[8..16]),
        id: TransferId(id),
        how: how_of(entry[16])?,
    })
}

fn how_byte(how: CardTransfer) -> u8 {
    match how {
        CardTransfer::Purchase => 0,
        CardTransfer::Credit => 1,
        CardTransfer::Drain => 2,
    }
}

fn how_of(byte: u8) -> Result<CardTransfer, HistoryError> {
    match byte {
        0 => Ok(CardTransfer::Purchase),
        1 => Ok(CardTransfer::Credit),
        2 => Ok(CardTransfer::Drain),
        _ => Err(HistoryError::Corrupt("card transfer")),
    }
}

/// The history file.
pub struct History {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

impl History {
    /// Opens (or creates) the history of the ledger in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<History, HistoryError> {
        let path = data_dir.join(HISTORY_FILE);
        let db = Database::builder()
            .set_cache_size(HISTORY_CACHE_BYTES)
            .create(&path)
            .map_err(storage)?;
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_quick_repair(true);
        {
            txn.open_table(PURCHASES_BY_LOG).map_err(storage)?;
            txn.open_table(PURCHASE_ROWS).map_err(storage)?;
            txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
            ID_INDEX.create(&txn).map_err(storage)?;
            CARD_INDEX.create(&txn).map_err(storage)?;
            txn.open_table(TRANSFERS).map_err(storage)?;
            txn.open_table(TOMBSTONES).map_err(storage)?;
            txn.open_table(LOG).map_err(storage)?;
            txn.open_table(CARD_LOG).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
            txn.open_table(BATCHES).map_err(storage)?;
            txn.open_table(CLOSED_ON).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(History { db, path })
    }

    /// A new, empty history of the ledger in `data_dir`, replacing any there: for a ledger
    /// that replays its whole journal at every start (on ScyllaDB), whose history is only
    /// what moves after that start.
    pub fn open_fresh(data_dir: &Path) -> Result<History, HistoryError> {
        match std::fs::remove_file(data_dir.join(HISTORY_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(HistoryError::Storage(e.to_string())),
        }
        History::open(data_dir)
    }

    /// Writes `moved` in one transaction, visible to every read from now on; durable with the
    /// next [`History::sync`]. The rows may leave the projection's memory once this returns:
    /// until the sync a crash loses them here, but then the projection is rebuilt from a
    /// snapshot made after its own sync and the journal after it, which hold them again.
    pub fn store(&self, moved: &Moved) -> Result<(), HistoryError> {
        if moved.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(::redb::Durability::None)
            .map_err(|e| HistoryError::Storage(e.to_string()))?;
        let held = {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let held = meta.get(LOG_LEN).map_err(storage)?.map_or(0, |v| v.value());
            if !moved.log.is_empty() {
                if moved.log_from > held {
                    return Err(HistoryError::Gap {
                        held,
                        from: moved.log_from,
                    });
                }
                let end = moved.log_from + moved.log.len() as u64;
                if end > held {
                    meta.insert(LOG_LEN, end).map_err(storage)?;
                }
            }
            held
        };
        store_purchases(&txn, &moved.purchases, held)?;
        {
            let mut transfers = txn.open_table(TRANSFERS).map_err(storage)?;
            for (id, at, record) in &moved.transfers {
                let bytes = postcard::to_stdvec(&(at, record)).expect("a record encodes");
                transfers.insert(id.0, bytes.as_slice()).map_err(storage)?;
            }
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(storage)?;
            for id in &moved.tombstones {
                tombstones.insert(id.0, ()).map_err(storage)?;
            }
            // Log rows below `held` (and their card rows, stored with them) are here already,
            // the same: the snapshot thread moves what the ledger's mover moved before it.
            let mut log = txn.open_table(LOG).map_err(storage)?;
            for (i, row) in moved.log.iter().enumerate() {
                let number = moved.log_from + i as u64;
                if number < held {
                    continue;
                }
                let bytes = postcard::to_stdvec(row).expect("a log row encodes");
                log.insert(number, bytes.as_slice()).map_err(storage)?;
            }
            let mut batches = txn.open_table(BATCHES).map_err(storage)?;
            for (terminal, closed) in &moved.batches {
                let bytes = postcard::to_stdvec(closed).expect("a batch encodes");
                batches
                    .insert((terminal.as_str(), closed.sequence), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        store_closed_on(&txn, &moved.closed_on)?;
        let cards: Vec<u8> = moved
            .card_log
            .iter()
            .filter(|(_, row)| row.index >= held)
            .flat_map(|(card, row)| card_entry(*card, row))
            .collect();
        CARD_INDEX.add(&txn, cards).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// Makes everything stored so far durable, with the allocator state saved beside it so
    /// that opening the file after a crash takes no repair walk over it (redb's quick repair:
    /// a history file grows to gigabytes).
    pub fn sync(&self) -> Result<(), HistoryError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_quick_repair(true);
        txn.commit().map_err(storage)
    }

    /// Log entries held, contiguous from 0.
    pub fn log_len(&self) -> Result<u64, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta.get(LOG_LEN).map_err(storage)?.map_or(0, |v| v.value()))
    }

    /// A purchase that left memory.
    pub fn purchase(&self, id: &TransferId) -> Result<Option<PurchaseState>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let location = locate(
            &txn.open_table(PURCHASES_BY_ID).map_err(storage)?,
            &txn.open_table(ID_INDEX.runs).map_err(storage)?,
            &txn.open_table(ID_INDEX.chunks).map_err(storage)?,
            id,
        )?;
        let Some(location) = location else {
            return Ok(None);
        };
        let bytes = if location & LOCATION_ROW == 0 {
            txn.open_table(PURCHASES_BY_LOG)
                .map_err(storage)?
                .get(location)
                .map_err(storage)?
        } else {
            txn.open_table(PURCHASE_ROWS)
                .map_err(storage)?
                .get(location & !LOCATION_ROW)
                .map_err(storage)?
        }
        .ok_or(HistoryError::Corrupt("purchase row"))?;
        postcard::from_bytes(bytes.value())
            .map(Some)
            .map_err(|_| HistoryError::Corrupt("purchase"))
    }

    /// A record other than a purchase that left memory, with when it was accepted.
    pub fn transfer(&self, id: &TransferId) -> Result<Option<(i64, Record)>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(TRANSFERS).map_err(storage)?;
        match table.get(id.0).map_err(storage)? {
            Some(bytes) => postcard::from_bytes(bytes.value())
                .map(Some)
                .map_err(|_| HistoryError::Corrupt("transfer")),
            None => Ok(None),
        }
    }

    /// Whether a tombstone for this purchase id left memory.
    pub fn tombstoned(&self, id: &TransferId) -> Result<bool, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(TOMBSTONES).map_err(storage)?;
        Ok(table.get(id.0).map_err(storage)?.is_some())
    }

    /// Log rows `from..to` (as many as are held), in order.
    pub fn log(&self, from: u64, to: u64) -> Result<Vec<LogRow>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(LOG).map_err(storage)?;
        let mut rows = Vec::new();
        for item in table.range(from..to).map_err(storage)? {
            let (_, bytes) = item.map_err(storage)?;
            rows.push(
                postcard::from_bytes(bytes.value())
                    .map_err(|_| HistoryError::Corrupt("log row"))?,
            );
        }
        Ok(rows)
    }

    /// A card's transfers with log numbers below `before`, oldest first.
    pub fn card_log(&self, card: CardId, before: u64) -> Result<Vec<CardRow>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(CARD_LOG).map_err(storage)?;
        let mut rows = Vec::new();
        for item in table
            .range((card.0, 0)..(card.0, before))
            .map_err(storage)?
        {
            let (key, value) = item.map_err(storage)?;
            let (_, index) = key.value();
            let (how, id) = value.value();
            rows.push(CardRow {
                index,
                id: TransferId(id),
                how: how_of(how)?,
            });
        }
        let found = CARD_INDEX
            .find(
                &txn.open_table(CARD_INDEX.runs).map_err(storage)?,
                &txn.open_table(CARD_INDEX.chunks).map_err(storage)?,
                &card.0.to_be_bytes(),
            )
            .map_err(storage)?;
        for entry in found.chunks_exact(CARD_INDEX.width) {
            let row = card_row(entry)?;
            if row.index < before {
                rows.push(row);
            }
        }
        // The file's older table holds older rows; the runs hold each row once, sorted.
        rows.dedup_by_key(|row| row.index);
        Ok(rows)
    }

    /// A settled terminal batch that left memory.
    pub fn closed_batch(
        &self,
        terminal: &TerminalId,
        sequence: u64,
    ) -> Result<Option<ClosedBatch>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(BATCHES).map_err(storage)?;
        match table.get((terminal.as_str(), sequence)).map_err(storage)? {
            Some(bytes) => postcard::from_bytes(bytes.value())
                .map(Some)
                .map_err(|_| HistoryError::Corrupt("batch")),
            None => Ok(None),
        }
    }

    /// The batches closed on settled business date `date` that left memory, in the order
    /// they closed.
    pub fn closed_on(&self, date: Day) -> Result<Vec<(TerminalId, u64)>, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(CLOSED_ON).map_err(storage)?;
        let mut batches = Vec::new();
        for item in table
            .range((date.0, 0)..=(date.0, u64::MAX))
            .map_err(storage)?
        {
            let (_, value) = item.map_err(storage)?;
            let (terminal, sequence) = value.value();
            let terminal =
                TerminalId::new(terminal).map_err(|_| HistoryError::Corrupt("closed batch"))?;
            batches.push((terminal, sequence));
        }
        Ok(batches)
    }

    /// Purchases held (for operators and tests).
    pub fn purchases_held(&self) -> Result<u64, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
        let runs = txn.open_table(ID_INDEX.runs).map_err(storage)?;
        Ok(table.len().map_err(storage)? + ID_INDEX.held(&runs).map_err(storage)?)
    }
}

/// Stores the purchases of a move whose log starts at `held`, each once, as it was accepted,
/// unreversed: whether it is reversed is its reversal's row, which lookups consult, so a
/// replay that brings it back (`State::restore`) never finds a reversal from its future.
///
/// A purchase that leaves with a log entry at or past `held` is not here (what is here left
/// with its log entry, or after it); one before is looked for by its log number, and one
/// pinned (or not found so) by its id: the snapshot thread moves again what the ledger's
/// mover moved, and a purchase a late reversal brought back leaves again.
fn store_purchases(
    txn: &WriteTransaction,
    purchases: &[(TransferId, PurchaseState, Option<u64>)],
    held: u64,
) -> Result<(), HistoryError> {
    let mut index = Vec::with_capacity(purchases.len() * ID_INDEX.width);
    {
        let mut by_log = txn.open_table(PURCHASES_BY_LOG).map_err(storage)?;
        let mut rows = txn.open_table(PURCHASE_ROWS).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        let mut next = meta
            .get(PURCHASE_ROWS_NEXT)
            .map_err(storage)?
            .map_or(0, |v| v.value());
        for (id, purchase, number) in purchases {
            let stored = match number {
                Some(number) if *number >= held => false,
                Some(number) if by_log.get(*number).map_err(storage)?.is_some() => true,
                _ => locate(
                    &txn.open_table(PURCHASES_BY_ID).map_err(storage)?,
                    &txn.open_table(ID_INDEX.runs).map_err(storage)?,
                    &txn.open_table(ID_INDEX.chunks).map_err(storage)?,
                    id,
                )?
                .is_some(),
            };
            if stored {
                continue;
            }
            let accepted = PurchaseState {
                reversed: false,
                ..purchase.clone()
            };
            let bytes = postcard::to_stdvec(&accepted).expect("a purchase encodes");
            let location = match number {
                Some(number) => {
                    by_log.insert(*number, bytes.as_slice()).map_err(storage)?;
                    *number
                }
                None => {
                    rows.insert(next, bytes.as_slice()).map_err(storage)?;
                    next += 1;
                    LOCATION_ROW | (next - 1)
                }
            };
            index.extend_from_slice(&id_entry(id, location));
        }
        meta.insert(PURCHASE_ROWS_NEXT, next).map_err(storage)?;
    }
    ID_INDEX.add(txn, index).map_err(storage)
}

/// Adds the batches closed on settled dates after those of each date held already (the
/// snapshot thread moves again what the ledger's mover moved).
fn store_closed_on(
    txn: &WriteTransaction,
    closed_on: &[(Day, Vec<(TerminalId, u64)>)],
) -> Result<(), HistoryError> {
    let mut table = txn.open_table(CLOSED_ON).map_err(storage)?;
    for (date, batches) in closed_on {
        let mut held = std::collections::HashSet::new();
        for item in table
            .range((date.0, 0)..=(date.0, u64::MAX))
            .map_err(storage)?
        {
            let (_, value) = item.map_err(storage)?;
            let (terminal, sequence) = value.value();
            held.insert((terminal.to_string(), sequence));
        }
        let mut next = held.len() as u64;
        for (terminal, sequence) in batches {
            if held.insert((terminal.as_str().to_string(), *sequence)) {
                table
                    .insert((date.0, next), (terminal.as_str(), *sequence))
                    .map_err(storage)?;
                next += 1;
            }
        }
    }
    Ok(())
}

/// Where purchase `id` is: a [`PURCHASE_ROWS`] row (with [`LOCATION_ROW`]) or a log number.
fn locate(
    legacy: &impl ReadableTable<Id, u64>,
    runs: &impl ReadableTable<u64, u64>,
    chunks: &impl ReadableTable<(u64, [u8; KEY_BYTES]), &'static [u8]>,
    id: &TransferId,
) -> Result<Option<u64>, HistoryError> {
    if let Some(row) = legacy.get(id.0).map_err(storage)? {
        return Ok(Some(LOCATION_ROW | row.value()));
    }
    let found = ID_INDEX.find(runs, chunks, &id.0).map_err(storage)?;
    Ok(found
        .get(KEY_BYTES..ID_INDEX.width)
        .map(|location| u64::from_be_bytes(location.try_into().unwrap_or_default())))
}
