//! Sorted runs: an index of history written as whole sorted runs instead of one B-tree insert
//! per row, so moving a purchase costs no random write.
//!
//! Each move adds one run: its entries sorted by key, stored as chunks of at most
//! [`CHUNK_ENTRIES`] in one redb table keyed by (run, first key of the chunk). A lookup reads,
//! in each run, the one chunk whose key range holds the key (a card's rows: the chunks from
//! there on while they hold the card). Runs are merged lazily, as a binary counter adds: a new
//! run is merged with the one before it while that one is less than twice its size (and the
//! sum within [`RUN_ENTRIES_MAX`]), so each entry is rewritten about log₂(runs' size / move)
//! times, sequentially, and a history of n entries has about n / [`RUN_ENTRIES_MAX`] +
//! log₂([`RUN_ENTRIES_MAX`] / move) runs to look in.
//!
//! An entry is fixed-width bytes whose first [`KEY_BYTES`] are its key (big-endian numbers
//! compare as their bytes); entries with the same key and content are kept once.

use ::redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

/// Bytes of an entry's key: what chunks are keyed and ordered by.
pub const KEY_BYTES: usize = 16;
/// Entries per chunk (one redb value): a lookup reads one chunk per run.
pub const CHUNK_ENTRIES: usize = 128;
/// Entries a merge makes at most: a run this large is never merged again. Bounds what one
/// move holds in memory while it merges (two runs' entries, then the merged run's pages).
pub const RUN_ENTRIES_MAX: u64 = 1 << 19;

/// A chunk: (run, first key) → entries.
pub type Chunks = TableDefinition<'static, (u64, [u8; KEY_BYTES]), &'static [u8]>;
/// The runs of an index: run → entries held, oldest run first.
pub type Runs = TableDefinition<'static, u64, u64>;

/// One index kept as sorted runs.
#[derive(Clone, Copy)]
pub struct RunIndex {
    /// Its chunks.
    pub chunks: Chunks,
    /// Its runs.
    pub runs: Runs,
    /// Bytes of an entry, key included.
    pub width: usize,
}

impl std::fmt::Debug for RunIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunIndex")
            .field("chunks", &self.chunks.to_string())
            .field("width", &self.width)
            .finish()
    }
}

type Error = ::redb::Error;

/// The first key of a chunk's bytes.
fn first_key(chunk: &[u8]) -> [u8; KEY_BYTES] {
    let mut key = [0; KEY_BYTES];
    key.copy_from_slice(&chunk[..KEY_BYTES]);
    key
}

impl RunIndex {
    /// Opens (creates) the index's tables in `txn`.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), Error> {
        txn.open_table(self.chunks)?;
        txn.open_table(self.runs)?;
        Ok(())
    }

    /// Adds `entries` (each `width` bytes, in any order) as a new run, then merges as the
    /// module docs say.
    pub fn add(&self, txn: &WriteTransaction, mut entries: Vec<u8>) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        entries = self.sorted(entries);
        let mut runs = txn.open_table(self.runs)?;
        let mut chunks = txn.open_table(self.chunks)?;
        let next = runs.last()?.map_or(0, |(run, _)| run.value() + 1);
        self.write_run(&mut chunks, &mut runs, next, &entries)?;
        loop {
            let listed: Vec<(u64, u64)> = runs
                .iter()?
                .rev()
                .take(2)
                .map(|item| item.map(|(run, held)| (run.value(), held.value())))
                .collect::<Result<_, _>>()?;
            let [(newer, newer_held), (older, older_held)] = listed[..] else {
                return Ok(());
            };
            if older_held >= 2 * newer_held || older_held + newer_held > RUN_ENTRIES_MAX {
                return Ok(());
            }
            let mut merged = self.read_run(&chunks, older)?;
            merged.extend(self.read_run(&chunks, newer)?);
            let merged = self.sorted(merged);
            for run in [older, newer] {
                chunks.retain_in((run, [0; KEY_BYTES])..=(run, [0xff; KEY_BYTES]), |_, _| {
                    false
                })?;
                runs.remove(run)?;
            }
            // The merged run takes the older one's place (and number): runs stay in age order.
            self.write_run(&mut chunks, &mut runs, older, &merged)?;
        }
    }

    /// Entries sorted by their bytes, each kept once.
    fn sorted(&self, entries: Vec<u8>) -> Vec<u8> {
        let mut rows: Vec<&[u8]> = entries.chunks_exact(self.width).collect();
        rows.sort_unstable();
        rows.dedup();
        rows.concat()
    }

    fn write_run(
        &self,
        chunks: &mut Table<(u64, [u8; KEY_BYTES]), &[u8]>,
        runs: &mut Table<u64, u64>,
        run: u64,
        entries: &[u8],
    ) -> Result<(), Error> {
        for chunk in entries.chunks(CHUNK_ENTRIES * self.width) {
            chunks.insert((run, first_key(chunk)), chunk)?;
        }
        runs.insert(run, (entries.len() / self.width) as u64)?;
        Ok(())
    }

    fn read_run(
        &self,
        chunks: &Table<(u64, [u8; KEY_BYTES]), &[u8]>,
        run: u64,
    ) -> Result<Vec<u8>, Error> {
        let mut entries = Vec::new();
        for item in chunks.range((run, [0; KEY_BYTES])..=(run, [0xff; KEY_BYTES]))? {
            entries.extend_from_slice(item?.1.value());
        }
        Ok(entries)
    }

    /// Every entry whose key starts with `prefix`, from every run, in key order (each once).
    pub fn find(
        &self,
        runs: &impl ReadableTable<u64, u64>,
        chunks: &impl ReadableTable<(u64, [u8; KEY_BYTES]), &'static [u8]>,
        prefix: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut low = [0u8; KEY_BYTES];
        low[..prefix.len()].copy_from_slice(prefix);
        let mut found = Vec::new();
        for run in runs.iter()? {
            let run = run?.0.value();
            // The chunk holding the first such key starts at or before it; later chunks that
            // start with the prefix may hold more.
            let start = chunks
                .range((run, [0; KEY_BYTES])..=(run, low))?
                .next_back()
                .transpose()?
                .map_or(low, |(key, _)| key.value().1);
            for item in chunks.range((run, start)..=(run, [0xff; KEY_BYTES]))? {
                let (key, chunk) = item?;
                if key.value().1[..prefix.len()] > *prefix {
                    break;
                }
                found.extend(
                    chunk
                        .value()
                        .chunks_exact(self.width)
                        .filter(|entry| entry.starts_with(prefix))
                        .flatten(),
                );
            }
        }
        Ok(self.sorted(found))
    }

    /// Entries held, over every run.
    pub fn held(&self, runs: &impl ReadableTable<u64, u64>) -> Result<u64, Error> {
        let mut held = 0;
        for item in runs.iter()? {
            held += item?.1.value();
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redb::{Database, ReadableDatabase};

    const INDEX: RunIndex = RunIndex {
        chunks: TableDefinition::new("chunks"),
        runs: TableDefinition::new("runs"),
        width: KEY_BYTES + 4,
    };

    /// An entry: key `(group, n)` (8 bytes each, big-endian), then 4 bytes of value.
    fn entry(group: u64, n: u64) -> Vec<u8> {
        let mut entry = group.to_be_bytes().to_vec();
        entry.extend_from_slice(&n.to_be_bytes());
        entry.extend_from_slice(&((n * 7) as u32).to_be_bytes());
        entry
    }

    /// Moves of a few hundred entries each, over a thousand groups, some entries written
    /// twice: every lookup finds exactly its group's entries, in order, each once, and the
    /// runs stay as few as merging as a binary counter makes them.
    #[test]
    fn runs_find_every_entry_once_and_stay_few() {
        let dir = std::env::temp_dir().join(format!("ssn-runs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = Database::create(dir.join("runs.redb")).unwrap();
        let mut expected: std::collections::BTreeMap<u64, Vec<Vec<u8>>> = Default::default();
        let mut n = 0u64;
        let moves = 64u64;
        for round in 0..moves {
            let txn = db.begin_write().unwrap();
            INDEX.create(&txn).unwrap();
            let mut entries = Vec::new();
            for _ in 0..300 + round % 7 {
                let group = n.wrapping_mul(7_919) % 1_000;
                entries.extend(entry(group, n));
                expected.entry(group).or_default().push(entry(group, n));
                n += 1;
            }
            // The snapshot thread's move repeats some of the ledger's.
            entries.extend(entry((n - 1).wrapping_mul(7_919) % 1_000, n - 1));
            INDEX.add(&txn, entries).unwrap();
            txn.commit().unwrap();
        }
        let txn = db.begin_read().unwrap();
        let runs = txn.open_table(INDEX.runs).unwrap();
        let chunks = txn.open_table(INDEX.chunks).unwrap();
        assert_eq!(INDEX.held(&runs).unwrap(), n);
        let listed = runs.iter().unwrap().count();
        assert!(listed <= 7, "{listed} runs after {moves} moves");
        for group in [0u64, 1, 499, 998, 999, 1_000] {
            let found = INDEX.find(&runs, &chunks, &group.to_be_bytes()).unwrap();
            let want: Vec<u8> = expected
                .get(&group)
                .into_iter()
                .flatten()
                .flatten()
                .copied()
                .collect();
            assert_eq!(found, want, "group {group}");
        }
        // A whole key finds its one entry.
        let key = &expected[&499][1][..KEY_BYTES];
        assert_eq!(INDEX.find(&runs, &chunks, key).unwrap(), expected[&499][1]);
        drop((runs, chunks, txn, db));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
