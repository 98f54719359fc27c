//! The sequencer and sync threads: group commit of submitted records.

use super::*;

/// Work for the sync thread, in the order the sequencer produced it.
pub(super) enum SyncWork {
    /// Write this batch and answer its callers.
    Batch(PreparedBatch),
    /// Re-read the store after a failed write (everything sent before has been answered).
    Recover(SyncSender<Result<Loaded, JournalError>>),
}

/// A batch checked, applied and encoded, on its way to the disk.
pub(super) struct PreparedBatch {
    /// The entries to write, chained.
    pub(super) entries: Vec<EncodedEntry>,
    /// Who to answer, with what, once the entries are durable.
    pub(super) replies: Vec<(Reply, Result<Applied, JournalError>)>,
    /// Batches recorded in [`InFlight`] that this one carries (merged ones count each).
    pub(super) in_flight: usize,
}

/// The sequencer thread: checks each record against the invariants, applies it to the
/// projection, encodes and chains it. It never waits for the disk.
pub(super) struct Sequencer {
    /// Submissions, bounded by JOURNAL_QUEUE_RECORDS_MAX.
    pub(super) receiver: Receiver<Submission>,
    /// To the sync thread, bounded by JOURNAL_BATCHES_IN_FLIGHT_MAX.
    pub(super) prepared: SyncSender<SyncWork>,
    /// The projection it keeps current.
    pub(super) state: Arc<RwLock<State>>,
    /// Shared with the handle.
    pub(super) poisoned: Arc<AtomicBool>,
    /// The chain's end.
    pub(super) head: ChainHead,
    /// After a failed write: when the next recovery may be tried.
    pub(super) recovery_due: Option<Instant>,
    /// The store's [`JournalStore::recovery_interval`].
    pub(super) recovery_interval: Duration,
    /// Shared with the handle.
    pub(super) stats: Arc<JournalStats>,
    /// Shared with the sync thread and the mover.
    pub(super) in_flight: Arc<InFlight>,
}

impl Sequencer {
    pub(super) fn run(mut self) {
        let mut batch: Vec<Submission> = Vec::with_capacity(JOURNAL_BATCH_RECORDS_MAX);
        while let Ok(first) = self.receiver.recv() {
            batch.push(first);
            while batch.len() < JOURNAL_BATCH_RECORDS_MAX {
                match self.receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let prepared = self.prepare(&mut batch);
            if let Err(mpsc::SendError(SyncWork::Batch(prepared))) =
                self.prepared.send(SyncWork::Batch(prepared))
            {
                // The sync thread is gone (it only stops when this thread does): answer anyway.
                for (reply, _) in prepared.replies {
                    let _ = reply.send(Err(JournalError::Closed));
                }
            }
        }
    }

    /// After a failed write, once [`JOURNAL_RECOVERY_INTERVAL`] has passed: has the sync
    /// thread re-read the store, and puts the projection and chain end it found in place of
    /// the ones that include the unwritten batches. True when the journal may write again.
    fn recover(&mut self) -> bool {
        let now = Instant::now();
        match self.recovery_due {
            None => {
                self.recovery_due = Some(now + self.recovery_interval);
                return false;
            }
            Some(due) if now < due => return false,
            Some(_) => {}
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let loaded = match self.prepared.send(SyncWork::Recover(reply)) {
            Ok(()) => answer.recv().ok(),
            Err(_) => None,
        };
        let Some(Ok(loaded)) = loaded else {
            self.recovery_due = Some(Instant::now() + self.recovery_interval);
            return false;
        };
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The full replay holds everything again; history stays where it is.
        let history = state.history.take();
        *state = loaded.state;
        state.history = history;
        self.head = loaded.head;
        // Cleared under the projection's lock: a reader that sees the flag clear sees the
        // rebuilt projection.
        self.poisoned.store(false, Ordering::Release);
        // Everything sent before the recovery has been answered: nothing is in flight.
        self.in_flight.recovered();
        drop(state);
        self.recovery_due = None;
        self.stats.recoveries.fetch_add(1, Ordering::Relaxed);
        if loaded.torn_tail.is_some() {
            self.stats.recovered_torn.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    fn prepare(&mut self, batch: &mut Vec<Submission>) -> PreparedBatch {
        let mut replies = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        if self.poisoned.load(Ordering::Acquire) && !self.recover() {
            for submission in batch.drain(..) {
                replies.push((submission.into_reply(), Err(JournalError::Poisoned)));
            }
            return PreparedBatch {
                entries,
                replies,
                in_flight: 0,
            };
        }
        let bodies: Vec<Result<Vec<u8>, JournalError>> = batch.iter().map(encode).collect();
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = std::time::Instant::now();
        // Recorded before anyone else can see the batch's entries.
        self.in_flight
            .applied(state.log_base + state.log.len() as u64);
        for (position, (submission, body)) in batch.drain(..).zip(bodies).enumerate() {
            if position > 0 && position % JOURNAL_APPLY_CHUNK_RECORDS == 0 {
                // Let waiting readers (every purchase's precheck) in between chunks.
                drop(state);
                state = self
                    .state
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let (entry, reply) = match submission {
                Submission::Barrier { reply } => {
                    replies.push((reply, Ok(Applied::Done)));
                    continue;
                }
                Submission::Record { entry, reply } => (entry, reply),
            };
            let outcome = body.and_then(|body| {
                let applied = state.apply_owned(*entry)?;
                let encoded = EncodedEntry::new(self.head.next_sequence, self.head.last_hash, body);
                self.head = ChainHead {
                    next_sequence: self.head.next_sequence + 1,
                    last_hash: encoded.hash,
                };
                entries.push(encoded);
                Ok(applied)
            });
            replies.push((reply, outcome));
        }
        let (entries_held, purchases_held) = (state.entries, state.purchases.len());
        drop(state);
        self.stats
            .apply_nanos
            .fetch_add(locked.elapsed().as_nanos() as u64, Ordering::Relaxed);
        // For operators (the switch exports them), set outside the projection's lock: what
        // the projection holds in memory; it keeps every purchase, so both grow with the
        // journal (a restart replays it all).
        metrics::gauge!("ssn_projection_entries").set(entries_held as f64);
        metrics::gauge!("ssn_projection_purchases").set(purchases_held as f64);
        PreparedBatch {
            entries,
            replies,
            in_flight: 1,
        }
    }
}

/// The sync thread: writes each prepared batch with one write and one fdatasync, then answers.
pub(super) struct Syncer {
    /// From the sequencer.
    pub(super) prepared: Receiver<SyncWork>,
    /// Where entries go.
    pub(super) store: Box<dyn JournalStore>,
    /// The least time between the starts of two syncs, in nanoseconds; set by the handle.
    pub(super) sync_interval_min: Arc<AtomicU64>,
    /// Shared with the handle and the sequencer; set here, cleared by the sequencer.
    pub(super) poisoned: Arc<AtomicBool>,
    /// The first sequence number of the first batch whose write failed, until recovered:
    /// from there on the store holds nothing anybody was told about.
    pub(super) failed_from: Option<u64>,
    /// Shared with the handle.
    pub(super) stats: Arc<JournalStats>,
    /// Shared with the sequencer and the mover.
    pub(super) in_flight: Arc<InFlight>,
}

impl Syncer {
    pub(super) fn run(mut self) {
        // Work taken from the channel while gathering a batch that belongs to the next round.
        let mut carried: Option<SyncWork> = None;
        // When the last sync started.
        let mut last_sync: Option<Instant> = None;
        loop {
            let work = match carried.take() {
                Some(work) => work,
                None => match self.prepared.recv() {
                    Ok(work) => work,
                    Err(_) => break,
                },
            };
            let mut batch = match work {
                SyncWork::Batch(batch) => batch,
                SyncWork::Recover(reply) => {
                    let loaded = load(self.store.as_mut(), self.failed_from);
                    if loaded.is_ok() {
                        self.failed_from = None;
                    }
                    let _ = reply.send(loaded);
                    continue;
                }
            };
            // Too soon after the last sync: wait for more to share this one.
            let interval = Duration::from_nanos(self.sync_interval_min.load(Ordering::Relaxed));
            if let Some(due) = last_sync.map(|last| last + interval) {
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                }
            }
            // Batches the sequencer finished while the last write was syncing go out with this
            // one: one write and one fdatasync for all of them, in order. A recovery request
            // waits for the next round, behind everything sent before it.
            while carried.is_none() && batch.entries.len() < JOURNAL_BATCH_RECORDS_MAX {
                match self.prepared.try_recv() {
                    Ok(SyncWork::Batch(next))
                        if batch.entries.len() + next.entries.len()
                            <= JOURNAL_BATCH_RECORDS_MAX =>
                    {
                        batch.entries.extend(next.entries);
                        batch.replies.extend(next.replies);
                        batch.in_flight += next.in_flight;
                    }
                    Ok(other) => carried = Some(other),
                    Err(_) => break,
                }
            }
            let written = if self.failed_from.is_some() {
                // After a failed write the chain on disk ends somewhere unknown: writing later
                // batches would leave a gap. Refuse everything until reopened.
                Err(None)
            } else if batch.entries.is_empty() {
                Ok(())
            } else {
                let started = std::time::Instant::now();
                last_sync = Some(started);
                let written = self.store.append_durable(&batch.entries);
                let elapsed = started.elapsed();
                self.stats
                    .sync_nanos
                    .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
                // For operators (the switch exports them): how well group commit batches,
                // and what one durable write costs.
                metrics::histogram!("ssn_journal_batch_records").record(batch.entries.len() as f64);
                metrics::histogram!("ssn_journal_sync_seconds").record(elapsed.as_secs_f64());
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .entries
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                written.map_err(|e| Some(Arc::new(e)))
            };
            if written.is_ok() {
                self.in_flight.written(batch.in_flight);
            } else {
                if self.failed_from.is_none() {
                    self.failed_from = batch.entries.first().map(|entry| entry.sequence);
                }
                self.poisoned.store(true, Ordering::Release);
            }
            for (reply, outcome) in batch.replies {
                let outcome = match &written {
                    Ok(()) => outcome,
                    Err(Some(error)) => Err(JournalError::WriteFailed(Arc::clone(error))),
                    Err(None) => Err(JournalError::Poisoned),
                };
                // A caller that stopped waiting (timed out, cancelled) is no reason to stop.
                let _ = reply.send(outcome);
            }
        }
    }
}

impl Submission {
    fn into_reply(self) -> Reply {
        match self {
            Submission::Record { reply, .. } | Submission::Barrier { reply } => reply,
        }
    }
}

pub(super) fn encode(submission: &Submission) -> Result<Vec<u8>, JournalError> {
    match submission {
        Submission::Barrier { .. } => Ok(Vec::new()),
        Submission::Record { entry, .. } => {
            let body = postcard::to_extend(entry, Vec::with_capacity(JOURNAL_BODY_BYTES_TYPICAL))
                .map_err(|e| JournalError::Encoding(e.to_string()))?;
            if body.len() > JOURNAL_ENTRY_BYTES_MAX {
                return Err(JournalError::Encoding(format!(
                    "{} bytes is above the limit",
                    body.len()
                )));
            }
            Ok(body)
        }
    }
}
