//! Snapshots shared by the nodes of one keyspace (Scylla mode): the thread that takes them.
//!
//! Any node may take one: it reads the newest complete snapshot and every chain's entries
//! after it, as far as each chain is whole, into a private projection (never the live one,
//! never under its lock) and writes the next. Nodes that take one at about the same time
//! each write a complete snapshot of their own; readers take the newest complete one, so the
//! only cost of a race is the work done twice.

use super::*;

/// How often the thread compares the projection with the newest shared snapshot.
pub const SHARED_SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Entries the projection holds beyond the newest shared snapshot that make a node take the
/// next one (a node that replayed this many at open takes one at once, so the next node to
/// join does not replay them again).
pub const SHARED_SNAPSHOT_EVERY_ENTRIES: u64 = 50_000;
/// Least time between two snapshots one node takes: each replays the chains after the newest
/// and writes the whole projection, so at high rates they stay occasional.
pub const SHARED_SNAPSHOT_SPACING: Duration = Duration::from_secs(300);

/// The thread's state.
pub(super) struct SharedSnapshotThread {
    /// Reads the chains and snapshots, writes snapshots.
    pub(super) taker: Box<dyn SharedSnapshotTaker>,
    /// Disconnected when the journal closes.
    pub(super) stopped: Receiver<()>,
    /// The live projection, read only for its entry count.
    pub(super) state: Arc<RwLock<State>>,
    /// Entries opening replayed after the snapshot it started from.
    pub(super) replayed_at_open: u64,
}

impl SharedSnapshotThread {
    pub(super) fn run(mut self) {
        crate::priority::lower_this_thread(crate::priority::BACKGROUND_NICE);
        let mut last_taken: Option<Instant> = None;
        // A node that replayed a long history at open takes a snapshot at once.
        let mut due_now = self.replayed_at_open >= SHARED_SNAPSHOT_EVERY_ENTRIES;
        loop {
            if !due_now {
                match self.stopped.recv_timeout(SHARED_SNAPSHOT_CHECK_INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
            due_now = false;
            if last_taken.is_some_and(|at| at.elapsed() < SHARED_SNAPSHOT_SPACING) {
                continue;
            }
            let entries = self.state.read().unwrap_or_else(|p| p.into_inner()).entries;
            let covered = match self.taker.covered() {
                Ok(covered) => covered,
                Err(error) => {
                    tracing::warn!(%error, "reading the shared snapshots");
                    continue;
                }
            };
            if entries < covered.saturating_add(SHARED_SNAPSHOT_EVERY_ENTRIES) {
                continue;
            }
            let started = Instant::now();
            last_taken = Some(started);
            let stopped = &self.stopped;
            let stop = || matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Disconnected));
            match self.taker.take(&stop) {
                Ok(Some(covered)) => {
                    tracing::info!(
                        covered,
                        seconds = started.elapsed().as_secs_f64(),
                        "shared snapshot written"
                    );
                    metrics::counter!("ssn_snapshots_taken_total").increment(1);
                    metrics::gauge!("ssn_snapshot_entries").set(covered as f64);
                    metrics::gauge!("ssn_snapshot_seconds").set(started.elapsed().as_secs_f64());
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "taking a shared snapshot");
                    metrics::counter!("ssn_snapshot_failures_total").increment(1);
                }
            }
        }
    }
}
