//! The monitor beside the switch: it follows the ledger's transaction log, feeds the rules and
//! stores what they raise in the registry.
//!
//! It reads the log after the fact ([`Ledger::log_entries`]), so no purchase waits for it: a
//! slow monitor lags, it never slows the switch. The log is the projection's, and in Scylla
//! mode every node applies every node's records to its projection as it follows their
//! chains, so every node's monitor sees the whole city. A restart replays the log from the
//! start; alerts keep their ids across replays and one already stored is not stored again
//! (nor counted again), so nodes that each raise an alert store it once.

use super::{Alert, Monitor, MonitorConfig};
use crate::ids::ProgramCode;
use crate::ledger::{Ledger, LedgerError};
use crate::money::Money;
use crate::record::Entry;
use crate::registry::{AlertRecord, RegistryError, RegistryOp, RegistryRecord};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Log entries read per round.
pub const MONITOR_BATCH_ENTRIES_MAX: usize = 4_096;
/// How long the follower waits after a round that caught up with the log.
pub const MONITOR_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Alerts stored with one registry write, at most.
pub const MONITOR_ALERTS_PER_WRITE_MAX: usize = 256;
/// Alerts raised but not stored yet (the registry is failing); more are dropped and counted.
pub const MONITOR_PENDING_ALERTS_MAX: usize = 1_024;

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Alerts stored for the first time.
    pub stored: Vec<Alert>,
    /// Whether the round read everything the log held.
    pub caught_up: bool,
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
}

impl MonitorFollower {
    /// A follower that starts from the log's beginning.
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
        }
    }

    /// The rules' state, for the list of cards never used.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Alerts dropped so far because the registry failed for too long.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Reads what the log holds past what was observed (at most
    /// [`MONITOR_BATCH_ENTRIES_MAX`]), feeds the rules, and stores the alerts raised.
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
