//! The monitor beside the switch: it follows the ledger's transaction log, feeds the rules and
//! stores what they raise in the registry.
//!
//! It reads the log after the fact ([`Ledger::log_entries`]), so no purchase waits for it: a
//! slow monitor lags, it never slows the switch. The log is the projection's, and in Scylla
//! mode every node applies every node's records to its projection as it follows their
//! chains, so every node's monitor sees the whole city. A follower made by
//! [`MonitorFollower::resume`] writes a checkpoint of its windows under the node's name every
//! [`MONITOR_CHECKPOINT_INTERVAL`] (or [`MONITOR_CHECKPOINT_EVERY_ENTRIES`]) once its alerts
//! are stored, and a restart resumes after it: only the log past the checkpoint is read
//! again. Alerts keep their ids across replays and one already stored is not stored again
//! (nor counted again), so nodes that each raise an alert store it once.

use super::checkpoint::{MONITOR_RESUME_SEARCH_ENTRIES, entry_fingerprint};
use super::{Alert, Monitor, MonitorConfig};
use crate::ids::{Fingerprint, ProgramCode};
use crate::ledger::{Ledger, LedgerError};
use crate::money::Money;
use crate::record::Entry;
use crate::registry::{AlertRecord, RegistryError, RegistryOp, RegistryRecord};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Log entries read per round.
pub const MONITOR_BATCH_ENTRIES_MAX: usize = 4_096;
/// How long the follower waits after a round that caught up with the log.
pub const MONITOR_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Alerts stored with one registry write, at most.
pub const MONITOR_ALERTS_PER_WRITE_MAX: usize = 256;
/// Alerts raised but not stored yet (the registry is failing); more are dropped and counted.
pub const MONITOR_PENDING_ALERTS_MAX: usize = 1_024;
/// Least time between two checkpoints: a restart reads again at most what came in since.
pub const MONITOR_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// Entries observed that make a checkpoint due before [`MONITOR_CHECKPOINT_INTERVAL`].
pub const MONITOR_CHECKPOINT_EVERY_ENTRIES: u64 = 262_144;

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Alerts stored for the first time.
    pub stored: Vec<Alert>,
    /// The log position the round read from.
    pub read_from: u64,
    /// Log entries the round read.
    pub read: u64,
    /// Whether the round read everything the log held.
    pub caught_up: bool,
    /// Whether the round wrote a checkpoint.
    pub checkpointed: bool,
    /// The registry refused a write; the alerts not stored wait for the next round.
    pub storage_error: Option<LedgerError>,
}

/// A [`Monitor`] following one ledger.
#[derive(Debug)]
pub struct MonitorFollower {
    /// The rules and their windows.
    monitor: Monitor,
    /// Each program's per-purchase maximum, re-read every round (programs are few).
    limits: HashMap<ProgramCode, Money>,
    /// Raised, not stored yet, oldest first.
    pending: VecDeque<Alert>,
    /// Alerts dropped because `pending` was full.
    dropped: u64,
    /// The name its checkpoints are stored under; `None`: it keeps none.
    node: Option<String>,
    /// The fingerprint of the last entry observed, which a checkpoint names.
    last_entry: Option<Fingerprint>,
    /// The position the last checkpoint covers, and when it was written.
    checkpointed: (u64, Instant),
}

impl MonitorFollower {
    /// A follower that starts from the log's beginning and keeps no checkpoint.
    pub fn new(config: MonitorConfig) -> MonitorFollower {
        // Every rule's counter from the start, so a scrape shows the zeros too.
        for rule in super::Rule::ALL {
            metrics::counter!("ssn_alerts_total", "rule" => rule.as_str()).increment(0);
        }
        MonitorFollower {
            monitor: Monitor::new(config),
            limits: HashMap::new(),
            pending: VecDeque::new(),
            dropped: 0,
            node: None,
            last_entry: None,
            checkpointed: (0, Instant::now()),
        }
    }

    /// A follower that resumes from `node`'s checkpoint in the ledger's registry (from the
    /// log's beginning when there is none, or it cannot be used) and keeps writing it.
    pub async fn resume(
        config: MonitorConfig,
        node: &str,
        ledger: &Ledger,
    ) -> Result<MonitorFollower, LedgerError> {
        let mut follower = MonitorFollower::new(config.clone());
        follower.node = Some(node.to_string());
        let Some(bytes) = ledger.registry().monitor_checkpoint(node).await? else {
            return Ok(follower);
        };
        let Some(resumed) = Monitor::resume(config, &bytes) else {
            tracing::warn!(
                node,
                "the monitor's checkpoint is of another version: replaying"
            );
            return Ok(follower);
        };
        let mut monitor = resumed.monitor;
        let recorded = monitor.next_position();
        if let Some(last) = resumed.last_entry {
            let ledger_read = || find_entry(ledger, recorded, &last);
            let found = match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::CurrentThread => ledger_read()?,
                _ => tokio::task::block_in_place(ledger_read)?,
            };
            let Some(position) = found else {
                tracing::warn!(
                    node,
                    position = recorded,
                    "the monitor's checkpoint names an entry the log does not hold there: replaying"
                );
                return Ok(follower);
            };
            monitor.resume_at(position + 1);
        }
        follower.checkpointed = (monitor.next_position(), Instant::now());
        follower.last_entry = resumed.last_entry;
        follower.monitor = monitor;
        Ok(follower)
    }

    /// The rules' state, for the list of cards never used.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Alerts dropped so far because the registry failed for too long.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes the checkpoint now (a follower made by [`MonitorFollower::new`] keeps none).
    /// Alerts raised but not stored yet are not covered: the checkpoint waits for them.
    pub async fn checkpoint(&mut self, ledger: &Ledger) -> Result<bool, LedgerError> {
        let Some(node) = &self.node else {
            return Ok(false);
        };
        if !self.pending.is_empty() {
            return Ok(false);
        }
        let bytes = self.monitor.checkpoint(self.last_entry);
        metrics::gauge!("ssn_monitor_checkpoint_bytes").set(bytes.len() as f64);
        ledger
            .registry()
            .set_monitor_checkpoint(node, bytes)
            .await?;
        self.checkpointed = (self.monitor.next_position(), Instant::now());
        Ok(true)
    }

    /// Reads what the log holds past what was observed (at most
    /// [`MONITOR_BATCH_ENTRIES_MAX`]), feeds the rules, stores the alerts raised, and writes
    /// the checkpoint when one is due.
    pub async fn round(&mut self, ledger: &Ledger) -> Result<Round, LedgerError> {
        for program in ledger.registry().programs().await? {
            self.limits
                .insert(program.code, program.purchase_amount_max);
        }
        let from = self.monitor.next_position();
        let read = || ledger.log_entries(from, MONITOR_BATCH_ENTRIES_MAX);
        // Older entries come from history on disk: not on an async worker others wait for.
        let entries: Vec<(u64, Entry)> = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => read()?,
            _ => tokio::task::block_in_place(read)?,
        };
        let caught_up = entries.len() < MONITOR_BATCH_ENTRIES_MAX;
        let observed_end = entries.last().map_or(from, |(position, _)| position + 1);
        // How far the rules are behind the log: what an operator watches to see the monitor lag.
        let behind = ledger.log_len().saturating_sub(observed_end);
        metrics::gauge!("ssn_monitor_behind_entries").set(behind as f64);
        if let Some((_, last)) = entries.last() {
            self.last_entry = Some(entry_fingerprint(last));
        }
        for (position, entry) in &entries {
            for alert in self.monitor.observe(*position, entry, &self.limits) {
                if self.pending.len() >= MONITOR_PENDING_ALERTS_MAX {
                    self.dropped = self.dropped.saturating_add(1);
                    metrics::counter!("ssn_alerts_dropped_total").increment(1);
                } else {
                    self.pending.push_back(alert);
                }
            }
        }
        let mut round = Round {
            read_from: from,
            read: entries.len() as u64,
            caught_up,
            ..Round::default()
        };
        // One registry write for the round's alerts; one at a time only when some were
        // stored before (a restart's replay, or another node), so those are told apart.
        while !self.pending.is_empty() {
            let take = self.pending.len().min(MONITOR_ALERTS_PER_WRITE_MAX);
            let inserts: Vec<RegistryOp> = self
                .pending
                .iter()
                .take(take)
                .map(|alert| {
                    RegistryOp::Insert(RegistryRecord::Alert(AlertRecord::open(alert.clone())))
                })
                .collect();
            match ledger.registry().apply(inserts).await {
                Ok(()) => {
                    for alert in self.pending.drain(..take) {
                        metrics::counter!("ssn_alerts_total", "rule" => alert.rule.as_str())
                            .increment(1);
                        round.stored.push(alert);
                    }
                }
                Err(RegistryError::Conflict(_)) => {
                    if let Err(error) = self.store_one_by_one(ledger, take, &mut round).await {
                        round.storage_error = Some(error);
                        break;
                    }
                }
                Err(error) => {
                    round.storage_error = Some(error.into());
                    break;
                }
            }
        }
        let (covered, at) = self.checkpointed;
        let new = self.monitor.next_position().saturating_sub(covered);
        let due = new >= MONITOR_CHECKPOINT_EVERY_ENTRIES
            || (new > 0 && at.elapsed() >= MONITOR_CHECKPOINT_INTERVAL);
        if due && round.storage_error.is_none() {
            match self.checkpoint(ledger).await {
                Ok(written) => round.checkpointed = written,
                Err(error) => round.storage_error = Some(error),
            }
        }
        Ok(round)
    }

    /// Stores the first `count` pending alerts one write each, skipping those stored before.
    async fn store_one_by_one(
        &mut self,
        ledger: &Ledger,
        count: usize,
        round: &mut Round,
    ) -> Result<(), LedgerError> {
        for _ in 0..count {
            let Some(alert) = self.pending.front() else {
                break;
            };
            let insert =
                RegistryOp::Insert(RegistryRecord::Alert(AlertRecord::open(alert.clone())));
            match ledger.registry().apply(vec![insert]).await {
                Ok(()) => {
                    metrics::counter!("ssn_alerts_total", "rule" => alert.rule.as_str())
                        .increment(1);
                    round.stored.extend(self.pending.pop_front());
                }
                // Stored before: by this node before a restart, or by another node.
                Err(RegistryError::Conflict(_)) => {
                    self.pending.pop_front();
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// Where the entry fingerprinted `last` is in the log: at `recorded - 1` when the log kept its
/// numbers, else within [`MONITOR_RESUME_SEARCH_ENTRIES`] of it.
fn find_entry(
    ledger: &Ledger,
    recorded: u64,
    last: &Fingerprint,
) -> Result<Option<u64>, LedgerError> {
    let Some(expected) = recorded.checked_sub(1) else {
        return Ok(None);
    };
    let is_last = |entry: &Entry| entry_fingerprint(entry) == *last;
    if let Some((position, entry)) = ledger.log_entries(expected, 1)?.first()
        && *position == expected
        && is_last(entry)
    {
        return Ok(Some(expected));
    }
    let mut from = expected.saturating_sub(MONITOR_RESUME_SEARCH_ENTRIES);
    let end = expected.saturating_add(MONITOR_RESUME_SEARCH_ENTRIES);
    while from <= end {
        let entries = ledger.log_entries(from, MONITOR_BATCH_ENTRIES_MAX)?;
        let Some((after, _)) = entries.last() else {
            break;
        };
        let next = after + 1;
        if let Some((position, _)) = entries
            .iter()
            .find(|(position, entry)| *position <= end && is_last(entry))
        {
            return Ok(Some(*position));
        }
        from = next;
    }
    Ok(None)
}
