//! Following other nodes' chains (Scylla mode): the follower thread applies what they
//! journaled, on request and every [`JOURNAL_FOLLOW_INTERVAL`].

use super::*;

/// Most entries of one other chain read and applied in one round of following: bounds the
/// rows one read asks the cluster for and how long the projection's lock is held for them.
pub const JOURNAL_FOLLOW_BATCH_ENTRIES: usize = 1_024;

/// Between two polls of the other chains when no caller asks sooner: how stale a node's view
/// of the other nodes' purchases (duplicates, batch totals, settlement) may be.
pub const JOURNAL_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Callers waiting for the next follow at once; one more is answered
/// [`JournalError::Busy`] (`91`).
pub const JOURNAL_FOLLOW_WAITERS_MAX: usize = 1_024;

/// Rounds of [`JOURNAL_FOLLOW_BATCH_ENTRIES`] one follow reads for its waiters before it
/// answers them, so a node far behind does not keep a batch close waiting forever.
pub const JOURNAL_FOLLOW_ROUNDS_MAX: usize = 16;

/// A caller of [`Journal::follow`] waiting for the follower's answer.
pub(super) type FollowReply = oneshot::Sender<Result<u64, JournalError>>;

/// Another chain's entries read in one round: the chain, where the projection was when they
/// were read, the last hash learned on the way, and the entries with their sequences and
/// hashes.
pub(super) type FollowedRead = (String, FollowedChain, Option<Hash>, Vec<(u64, Hash, Entry)>);

/// The follower thread: polls the other chains and applies what they gained to the
/// projection, merged in the order opening uses; answers [`Journal::follow`] callers.
pub(super) struct Follower {
    /// Reads the other chains.
    pub(super) source: Box<dyn ChainFollower>,
    /// Callers of [`Journal::follow`], bounded by [`JOURNAL_FOLLOW_WAITERS_MAX`].
    pub(super) requests: Receiver<FollowReply>,
    /// The projection, shared with the sequencer.
    pub(super) state: Arc<RwLock<State>>,
    /// Shared with the handle; set here when another chain changed under what was applied.
    pub(super) poisoned: Arc<AtomicBool>,
}

impl Follower {
    pub(super) fn run(mut self) {
        loop {
            let mut waiting = Vec::new();
            match self.requests.recv_timeout(JOURNAL_FOLLOW_INTERVAL) {
                Ok(reply) => waiting.push(reply),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(reply) = self.requests.try_recv() {
                waiting.push(reply);
            }
            let rounds = if waiting.is_empty() {
                1
            } else {
                JOURNAL_FOLLOW_ROUNDS_MAX
            };
            let mut outcome = Ok(0u64);
            for _ in 0..rounds {
                match self.follow_once() {
                    Ok((found, more)) => {
                        outcome = outcome.map(|total| total + found);
                        if !more {
                            break;
                        }
                    }
                    Err(error) => {
                        metrics::counter!("ssn_journal_follow_failures").increment(1);
                        outcome = Err(error.to_string());
                        break;
                    }
                }
            }
            for reply in waiting {
                let _ = reply.send(outcome.clone().map_err(JournalError::Follow));
            }
        }
    }

    /// One round: reads each other chain from where the projection is and applies what it
    /// can. Returns the entries applied and whether a chain had more than one round holds.
    fn follow_once(&mut self) -> Result<(u64, bool), JournalError> {
        if self.poisoned.load(Ordering::Acquire) {
            // The recovery that clears the flag reloads every chain anyway.
            return Ok((0, false));
        }
        let names = self.source.chains()?;
        let cursors: Vec<(String, FollowedChain)> = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            names
                .into_iter()
                .map(|name| {
                    let cursor = state.followed.get(&name).copied().unwrap_or_default();
                    (name, cursor)
                })
                .collect()
        };
        let mut reads: Vec<FollowedRead> = Vec::with_capacity(cursors.len());
        let mut more = false;
        for (name, cursor) in cursors {
            // Read at open without its hash: read the last applied entry again to learn it.
            let from = match cursor.last_hash {
                None => cursor.next_sequence.saturating_sub(1).max(1),
                Some(_) => cursor.next_sequence,
            };
            let read = self
                .source
                .read_from(&name, from, JOURNAL_FOLLOW_BATCH_ENTRIES)?;
            more |= read.len() >= JOURNAL_FOLLOW_BATCH_ENTRIES;
            let mut last_hash = cursor.last_hash;
            let mut learned = None;
            let mut entries = Vec::new();
            for (expected, encoded) in (from..).zip(read) {
                if encoded.sequence != expected || !encoded.hash_is_intact() {
                    break;
                }
                if last_hash.is_some_and(|hash| hash != encoded.previous_hash) {
                    // The other node set aside a failed batch this projection had already
                    // applied and wrote other entries in its place: what was applied is no
                    // longer durable. Reload everything, as after a failed write of our own.
                    self.poisoned.store(true, Ordering::Release);
                    metrics::counter!("ssn_journal_follow_reloads").increment(1);
                    return Ok((0, false));
                }
                if expected < cursor.next_sequence {
                    learned = Some(encoded.hash);
                    last_hash = learned;
                    continue;
                }
                let Ok(entry) = encoded.decode() else {
                    break;
                };
                last_hash = Some(encoded.hash);
                entries.push((encoded.sequence, encoded.hash, entry));
            }
            reads.push((name, cursor, learned, entries));
        }
        Ok((self.apply(reads), more))
    }

    /// Applies what one round read, merged like [`apply_merged`]: earliest acceptance time,
    /// then chain name, then sequence; an entry that breaks an invariant waits while another
    /// chain progresses, and stays for the next round otherwise. A chain whose place in the
    /// projection moved since it was read (a recovery reloaded it) is left for the next round.
    fn apply(&self, mut reads: Vec<FollowedRead>) -> u64 {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if self.poisoned.load(Ordering::Acquire) {
            return 0;
        }
        reads.retain(|(name, cursor, _, _)| {
            state.followed.get(name).copied().unwrap_or_default() == *cursor
        });
        for (name, cursor, learned, _) in &reads {
            if cursor.last_hash.is_none() && learned.is_some() {
                state.followed.insert(
                    name.clone(),
                    FollowedChain {
                        next_sequence: cursor.next_sequence,
                        last_hash: *learned,
                    },
                );
            }
        }
        reads.sort_by(|a, b| a.0.cmp(&b.0));
        let mut next = vec![0usize; reads.len()];
        let mut waiting = vec![false; reads.len()];
        let mut applied = 0u64;
        loop {
            let candidate = reads
                .iter()
                .enumerate()
                .filter(|(i, _)| !waiting[*i])
                .filter_map(|(i, read)| {
                    read.3
                        .get(next[i])
                        .map(|(_, _, entry)| ((entry.at_unix_seconds, i), i))
                })
                .min();
            let Some((_, i)) = candidate else {
                break;
            };
            let (sequence, hash, entry) = &reads[i].3[next[i]];
            match state.apply(entry) {
                Ok(_) => {
                    state.followed.insert(
                        reads[i].0.clone(),
                        FollowedChain {
                            next_sequence: sequence + 1,
                            last_hash: Some(*hash),
                        },
                    );
                    next[i] += 1;
                    applied += 1;
                    waiting.iter_mut().for_each(|w| *w = false);
                }
                Err(_) => waiting[i] = true,
            }
        }
        if waiting.iter().any(|w| *w) {
            metrics::counter!("ssn_journal_follow_waiting").increment(1);
        }
        applied
    }
}
