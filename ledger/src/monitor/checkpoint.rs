//! The monitor's checkpoint: how far it read the transaction log and the windows its rules
//! hold, so a restart resumes there instead of replaying all of history (issue 17).
//!
//! The windows are short (minutes to a week; a card's dormancy is one small row per card),
//! so a checkpoint is bounded by the city, not by its age. It is stored in the registry
//! ([`crate::Registry::set_monitor_checkpoint`]) under the node's name: on the embedded store
//! one row of the registry's file, in Scylla mode chunks in the keyspace.
//!
//! A checkpoint also names the last entry it covers (its fingerprint). On the embedded store
//! the log's numbers never change; in Scylla mode a node that restarts merges the chains
//! again and may number the entries near its checkpoint in another order, so the follower
//! looks for that entry around the recorded position ([`MONITOR_RESUME_SEARCH_ENTRIES`])
//! and resumes after it; a checkpoint whose entry is not found, or that does not decode
//! (written by another version), is set aside and the log replayed from its start.

use super::{Monitor, MonitorConfig, rules::Rules};
use crate::ids::Fingerprint;
use crate::record::Entry;
use serde::{Deserialize, Serialize};

/// The layout of a checkpoint's bytes; another layout is not read (the log is replayed).
const CHECKPOINT_FORMAT: u32 = 1;

/// Entries on each side of a checkpoint's position searched for the entry it names.
pub const MONITOR_RESUME_SEARCH_ENTRIES: u64 = 4_096;

/// What a checkpoint holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// [`CHECKPOINT_FORMAT`] when written.
    format: u32,
    /// The log position after the last entry observed.
    next_position: u64,
    /// The fingerprint of that last entry, to find it again if the log was renumbered.
    last_entry: Option<[u8; 32]>,
    /// Records observed, for pruning.
    observed: u64,
    /// The rules' windows.
    rules: Rules,
}

/// A checkpoint read back: where to resume and the monitor to resume with.
pub(super) struct Resumed {
    /// The monitor as checkpointed (its next position as recorded).
    pub monitor: Monitor,
    /// The last entry the checkpoint covers, if any.
    pub last_entry: Option<Fingerprint>,
}

/// The fingerprint a checkpoint names an entry by.
pub(super) fn entry_fingerprint(entry: &Entry) -> Fingerprint {
    Fingerprint::of(entry)
}

impl Monitor {
    /// The checkpoint of this monitor, whose last observed entry is `last_entry`.
    pub(super) fn checkpoint(&self, last_entry: Option<Fingerprint>) -> Vec<u8> {
        let stored = StoredRef {
            format: CHECKPOINT_FORMAT,
            next_position: self.next_position,
            last_entry: last_entry.map(|f| f.0),
            observed: self.observed,
            rules: &self.rules,
        };
        // The windows are plain data; postcard cannot fail on them.
        postcard::to_stdvec(&stored).expect("the monitor's windows encode")
    }

    /// The monitor a checkpoint holds, with `config` in force; `None` if the bytes are not a
    /// checkpoint of this version.
    pub(super) fn resume(config: MonitorConfig, bytes: &[u8]) -> Option<Resumed> {
        let stored: Stored = postcard::from_bytes(bytes).ok()?;
        if stored.format != CHECKPOINT_FORMAT {
            return None;
        }
        Some(Resumed {
            monitor: Monitor {
                config,
                rules: stored.rules,
                observed: stored.observed,
                next_position: stored.next_position,
            },
            last_entry: stored.last_entry.map(Fingerprint),
        })
    }

    /// Moves where the next entry is expected (a renumbered log: the entry the checkpoint
    /// names was found at `next_position - 1`).
    pub(super) fn resume_at(&mut self, next_position: u64) {
        self.next_position = next_position;
    }
}

/// [`Stored`] by reference, for writing without cloning the windows.
#[derive(Serialize)]
struct StoredRef<'a> {
    format: u32,
    next_position: u64,
    last_entry: Option<[u8; 32]>,
    observed: u64,
    rules: &'a Rules,
}
