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
//! [`State::log_base`]: crate::state::State::log_base

use crate::ids::{CardId, MerchantId, TerminalId, TransferId};
use crate::record::Record;
use crate::state::{CardRow, CardTransfer, ClosedBatch, PurchaseState};
use ::redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

/// The file, in the data directory.
pub const HISTORY_FILE: &str = "history.redb";
/// redb's page cache (and write buffer) for the history file: lookups of old keys are rare,
/// and the operating system's page cache holds the file's hot pages outside the process. It
/// fills as the mover writes, so it is part of the switch's resident memory once it runs:
/// small, so that memory stays flat (64 MiB showed as +8 MB a minute for eight minutes).
pub const HISTORY_CACHE_BYTES: usize = 16 << 20;

type Id = [u8; 16];
/// Purchases by row number, in the order they left memory: inserts append.
const PURCHASE_ROWS: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("purchase_rows");
/// Each purchase's row number by its id: small entries, so random inserts touch few pages.
const PURCHASES_BY_ID: TableDefinition<'static, Id, u64> = TableDefinition::new("purchases_by_id");
/// Records other than purchases that left memory (reversals, disbursements, year-end closes,
/// revocations), by transfer id, with when they were accepted. (Named for its first kind.)
const TRANSFERS: TableDefinition<'static, Id, &'static [u8]> = TableDefinition::new("reversals");
const TOMBSTONES: TableDefinition<'static, Id, ()> = TableDefinition::new("tombstones");
const LOG: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("log");
const CARD_LOG: TableDefinition<'static, (u64, u64), (u8, Id)> = TableDefinition::new("card_log");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
/// Settled terminal batches by (DE41, switch-side sequence).
const BATCHES: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("batches");
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
    /// Purchases whose batch is settled (or declines), old enough.
    pub purchases: Vec<(TransferId, PurchaseState)>,
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
}

impl Moved {
    /// Whether there is nothing to move.
    pub fn is_empty(&self) -> bool {
        self.purchases.is_empty()
            && self.transfers.is_empty()
            && self.tombstones.is_empty()
            && self.log.is_empty()
            && self.batches.is_empty()
    }

    /// Rows in it.
    pub fn len(&self) -> usize {
        self.purchases.len()
            + self.transfers.len()
            + self.tombstones.len()
            + self.log.len()
            + self.card_log.len()
            + self.batches.len()
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
            txn.open_table(PURCHASE_ROWS).map_err(storage)?;
            txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
            txn.open_table(TRANSFERS).map_err(storage)?;
            txn.open_table(TOMBSTONES).map_err(storage)?;
            txn.open_table(LOG).map_err(storage)?;
            txn.open_table(CARD_LOG).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
            txn.open_table(BATCHES).map_err(storage)?;
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
        {
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
            let mut rows = txn.open_table(PURCHASE_ROWS).map_err(storage)?;
            let mut by_id = txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
            let mut next = meta
                .get(PURCHASE_ROWS_NEXT)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            for (id, purchase) in &moved.purchases {
                // A purchase is kept as it was accepted, unreversed, and only once: whether it
                // is reversed is its reversal's row, which lookups consult, so a replay that
                // brings it back (`State::restore`) never finds a reversal from its future.
                if by_id.get(id.0).map_err(storage)?.is_some() {
                    continue;
                }
                let accepted = PurchaseState {
                    reversed: false,
                    ..purchase.clone()
                };
                let bytes = postcard::to_stdvec(&accepted).expect("a purchase encodes");
                rows.insert(next, bytes.as_slice()).map_err(storage)?;
                by_id.insert(id.0, next).map_err(storage)?;
                next += 1;
            }
            meta.insert(PURCHASE_ROWS_NEXT, next).map_err(storage)?;
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
            let mut card_log = txn.open_table(CARD_LOG).map_err(storage)?;
            for (card, row) in moved.card_log.iter().filter(|(_, row)| row.index >= held) {
                card_log
                    .insert((card.0, row.index), (how_byte(row.how), row.id.0))
                    .map_err(storage)?;
            }
            let mut batches = txn.open_table(BATCHES).map_err(storage)?;
            for (terminal, closed) in &moved.batches {
                let bytes = postcard::to_stdvec(closed).expect("a batch encodes");
                batches
                    .insert((terminal.as_str(), closed.sequence), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
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
        let by_id = txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
        let Some(row) = by_id.get(id.0).map_err(storage)? else {
            return Ok(None);
        };
        let rows = txn.open_table(PURCHASE_ROWS).map_err(storage)?;
        let bytes = rows
            .get(row.value())
            .map_err(storage)?
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

    /// Purchases held (for operators and tests).
    pub fn purchases_held(&self) -> Result<u64, HistoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PURCHASES_BY_ID).map_err(storage)?;
        table.len().map_err(storage)
    }
}
