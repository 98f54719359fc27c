//! Reading a store back into a projection: from a snapshot or the chain's start, one chain
//! or several merged, with a torn tail set aside.

use super::*;

/// Reads a chain's entries, checking the chain and each hash, and hands each decoded entry
/// to `apply`, whose refusal is a [`BreakKind::Invariant`] break. An entry at sequence
/// `stop_at` or later ends the replay as if the store ended inside it
/// ([`BreakKind::Truncated`]): recovery uses it to treat a failed batch's entries as the torn
/// write they are, even when all of them reached the store.
pub(crate) fn replay_until(
    store: &mut dyn JournalStore,
    stop_at: Option<u64>,
    apply: &mut dyn FnMut(Entry) -> Result<(), InvariantError>,
) -> io::Result<(ChainHead, Option<Break>)> {
    replay_after(store, None, stop_at, apply)
}

/// [`replay_until`] after a snapshot's position (`None`: from the chain's start).
pub(crate) fn replay_after(
    store: &mut dyn JournalStore,
    start: Option<&crate::snapshot::Position>,
    stop_at: Option<u64>,
    apply: &mut dyn FnMut(Entry) -> Result<(), InvariantError>,
) -> io::Result<(ChainHead, Option<Break>)> {
    let mut head = start.map_or_else(ChainHead::default, |p| p.head());
    let mut visit = |entry: EncodedEntry, offset| {
        let broken = |kind| Break {
            sequence: head.next_sequence,
            offset,
            kind,
        };
        if stop_at.is_some_and(|stop| head.next_sequence >= stop) {
            return Err(broken(BreakKind::Truncated));
        }
        if !entry.hash_is_intact() {
            return Err(broken(BreakKind::HashMismatch));
        }
        if entry.sequence != head.next_sequence {
            return Err(broken(BreakKind::SequenceMismatch(entry.sequence)));
        }
        if entry.previous_hash != head.last_hash {
            return Err(broken(BreakKind::ChainMismatch));
        }
        let decoded = entry
            .decode()
            .map_err(|e| broken(BreakKind::Undecodable(e.to_string())))?;
        apply(decoded).map_err(|e| broken(BreakKind::Invariant(e)))?;
        head = ChainHead {
            next_sequence: entry.sequence + 1,
            last_hash: entry.hash,
        };
        Ok(())
    };
    let end = match start {
        Some(position) => {
            store.replay_from(position.next_offset, position.next_sequence, &mut visit)?
        }
        None => store.replay(&mut visit)?,
    };
    Ok((head, end))
}

/// The snapshots beside the journal file `file`, newest first, that the file still continues
/// ([`crate::snapshot::continues`]) and whose log history holds (`history_log_len` entries:
/// a snapshot that moved more of its log to history than history has cannot be used);
/// unreadable ones are passed over.
pub(super) fn usable_snapshots(
    file: PathBuf,
    history_log_len: u64,
) -> impl Iterator<Item = crate::snapshot::Snapshot> {
    let dir = file.parent().map(|d| d.join(crate::snapshot::SNAPSHOT_DIR));
    dir.and_then(|dir| crate::snapshot::newest_first(&dir).ok())
        .into_iter()
        .flatten()
        .filter(move |snapshot| {
            snapshot.state.log_base <= history_log_len
                && crate::snapshot::continues(&file, &snapshot.position).unwrap_or(false)
        })
}

/// A store read back: the projection, the chain's end and the torn write set aside, if any.
pub(super) struct Loaded {
    /// Everything durable, applied.
    pub(super) state: State,
    /// Where the next entry goes.
    pub(super) head: ChainHead,
    /// What was set aside, and where it was kept.
    pub(super) torn_tail: Option<(Break, PathBuf)>,
    /// Entries of the shared snapshot it started from, if any.
    pub(super) from_shared: Option<u64>,
}

/// Replays `store` into a fresh projection (entries from `stop_at` on count as torn) and
/// sets aside a torn tail; anything else broken is [`JournalError::Corrupt`].
pub(super) fn load(
    store: &mut dyn JournalStore,
    stop_at: Option<u64>,
) -> Result<Loaded, JournalError> {
    load_after(store, None, None, stop_at)
}

/// [`load`] from a snapshot the caller checked continues in `store` (one chain only).
pub(super) fn load_after(
    store: &mut dyn JournalStore,
    snapshot: Option<crate::snapshot::Snapshot>,
    history: Option<Arc<crate::history::History>>,
    stop_at: Option<u64>,
) -> Result<Loaded, JournalError> {
    // A store several nodes share keeps its own snapshots; one that covers entries a
    // recovery treats as torn (`stop_at`) is not used.
    let shared = match snapshot {
        Some(_) => None,
        None => store.shared_snapshot()?.filter(|shared| {
            let own = ChainPosition::covered_of(&shared.chains, store.chain_name());
            stop_at.is_none_or(|stop| own < stop)
        }),
    };
    let positions = shared.as_ref().map_or_else(Vec::new, |s| s.chains.clone());
    let from_shared = shared.as_ref().map(SharedSnapshot::covered);
    let others = match &shared {
        Some(shared) => store.other_chains_after(&shared.chains)?,
        None => store.other_chains()?,
    };
    let (mut state, start) = match (snapshot, shared) {
        (Some(snapshot), _) if others.is_empty() => (snapshot.state, Some(snapshot.position)),
        (_, Some(shared)) => {
            let start = ChainPosition::position_of(&shared.chains, store.chain_name());
            let mut state = shared.state;
            // The writer's view of the other chains; this node's is set below.
            state.followed.clear();
            (state, start)
        }
        _ => (State::default(), None),
    };
    // A reversal after the snapshot may need a purchase the snapshot left in history.
    state.history = history;
    let mut own = Vec::new();
    let mut replayed = 0u64;
    let (head, end) = if others.is_empty() {
        replay_after(store, start.as_ref(), stop_at, &mut |entry| {
            state.apply_owned(entry)?;
            replayed += 1;
            // However long the journal after the snapshot, the projection stays about the
            // working set's size while it is replayed (as the snapshot thread's copy does).
            if replayed.is_multiple_of(crate::snapshot::REPLAY_MOVE_EVERY_ENTRIES)
                && let Some(history) = state.history.clone()
            {
                let now = state.newest_at.min(crate::window::clock_now());
                if let Err(error) = state.move_all(&history, now) {
                    tracing::warn!(%error, "moving to history while the journal is replayed");
                }
            }
            Ok(())
        })?
    } else {
        // Entries of this chain may depend on other chains' (a purchase here spending a
        // disbursement journaled by another node): read first, apply merged below.
        replay_after(store, start.as_ref(), stop_at, &mut |entry| {
            own.push(entry);
            Ok(())
        })?
    };
    let torn_tail = match end {
        None => None,
        Some(found) if found.kind.may_be_torn_write() => {
            match store.cut_tail(&found, JOURNAL_TORN_TAIL_BYTES_MAX)? {
                Some(side) => Some((found, side)),
                None => return Err(JournalError::Corrupt(found)),
            }
        }
        Some(found) => return Err(JournalError::Corrupt(found)),
    };
    if !others.is_empty() {
        let followed: Vec<(String, FollowedChain)> = others
            .iter()
            .map(|(name, entries)| {
                let base = positions.iter().find(|p| p.chain == *name);
                let cursor = match (entries.is_empty(), base) {
                    (true, None) => FollowedChain::default(),
                    (true, Some(base)) => FollowedChain {
                        next_sequence: base.next_sequence,
                        last_hash: Some(base.last_hash),
                    },
                    (false, _) => FollowedChain {
                        next_sequence: ChainPosition::covered_of(&positions, name)
                            + entries.len() as u64
                            + 1,
                        last_hash: None,
                    },
                };
                (name.clone(), cursor)
            })
            .collect();
        let mut chains = others;
        chains.push((store.chain_name().to_string(), own));
        apply_merged(&mut state, chains).map_err(|(_, found)| JournalError::Corrupt(found))?;
        state.followed.extend(followed);
    }
    Ok(Loaded {
        state,
        head,
        torn_tail,
        from_shared,
    })
}

/// Applies several chains' entries to `state` in the order every node and `verify` agree on:
/// the earliest acceptance time first, then the chain's name, then its sequence. Clocks of
/// different nodes differ, so an entry that breaks an invariant may only be early (a purchase
/// on one node spending a disbursement another node journaled on a clock behind): its chain
/// waits while the others go on, and only an entry no other chain's progress can help is a
/// break, reported with its chain's name.
pub(crate) fn apply_merged(
    state: &mut State,
    mut chains: Vec<(String, Vec<Entry>)>,
) -> Result<(), (String, Break)> {
    chains.sort_by(|a, b| a.0.cmp(&b.0));
    // Each chain's next entry, by position.
    let mut next = vec![0usize; chains.len()];
    let mut waiting = vec![false; chains.len()];
    loop {
        let candidate = chains
            .iter()
            .enumerate()
            .filter(|(i, _)| !waiting[*i])
            .filter_map(|(i, (_, entries))| {
                entries
                    .get(next[i])
                    .map(|entry| ((entry.at_unix_seconds, i, next[i]), i))
            })
            .min();
        let Some((_, i)) = candidate else {
            break;
        };
        let entry = chains[i].1[next[i]].clone();
        match state.apply_owned(entry) {
            Ok(_) => {
                next[i] += 1;
                waiting.iter_mut().for_each(|w| *w = false);
            }
            Err(_) => waiting[i] = true,
        }
    }
    for (i, (name, entries)) in chains.iter().enumerate() {
        if let Some(entry) = entries.get(next[i]) {
            let error = match state.apply(entry) {
                Err(error) => error,
                Ok(_) => continue,
            };
            return Err((
                name.clone(),
                Break {
                    sequence: next[i] as u64 + 1,
                    offset: 0,
                    kind: BreakKind::Invariant(error),
                },
            ));
        }
    }
    Ok(())
}
