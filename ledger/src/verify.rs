//! `verify`: recomputes the hash chain and every balance from a journal file alone, and
//! reports the first break. It never changes the file (opening the ledger is what sets aside a
//! torn tail), so an auditor can run it on a copy.

use crate::journal::{Break, ChainHead, JournalStore, journal_path, replay_until};
use crate::money::Money;
use crate::record::Account;
use crate::state::State;
use std::path::Path;

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// The last entry's hash: publish it, and any later tampering with the entries before it
    /// shows.
    pub last_hash: [u8; 32],
    /// Accounts with a balance (pockets included).
    pub accounts: usize,
    /// Money funded into programs so far (minus the funding source's balance).
    pub funded: Money,
    /// Snapshots in force (the journal continues them) found equal to the replay at their
    /// position ([`crate::snapshot`]).
    pub snapshots: usize,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read the journal: {0}")]
    Io(#[from] std::io::Error),
    /// The chain, an entry or an invariant broke here.
    #[error("journal broken at {0}")]
    Broken(Break),
    /// Replayed whole, but the balances do not sum to zero or an account is negative.
    #[error("balances are inconsistent: {0}")]
    Balances(String),
    /// A snapshot the journal continues holds another state than the replay at its position.
    #[error("snapshot {0} differs from the journal's replay at its position")]
    Snapshot(std::path::PathBuf),
}

/// Verifies the journal in `data_dir`.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, VerifyError> {
    let path = journal_path(data_dir);
    if !path.exists() {
        return Err(VerifyError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no journal.log in the data directory",
        )));
    }
    // Snapshots in force, by the entry count they cover: each is read (and its checksum
    // checked) only when the replay gets there, compared, and dropped, so verify holds at
    // most one beside the replay.
    let mut snapshots: Vec<(std::path::PathBuf, crate::snapshot::Position)> =
        crate::snapshot::positions(&data_dir.join(crate::snapshot::SNAPSHOT_DIR))?
            .into_iter()
            .filter(|(_, p)| crate::snapshot::continues(&path, p).unwrap_or(false))
            .collect();
    snapshots.sort_by_key(|(_, p)| std::cmp::Reverse(p.next_sequence));
    let mut checked = 0;
    let mut differing = None;
    let mut store = ReadOnly(path);
    let mut state = State::default();
    let (head, end): (ChainHead, Option<Break>) = replay_until(&mut store, None, &mut |entry| {
        state.apply_owned(entry)?;
        while let Some((_, next)) = snapshots.last()
            && next.next_sequence - 1 <= state.entries
        {
            let (file, position) = snapshots.pop().expect("just seen");
            if position.next_sequence - 1 != state.entries {
                continue;
            }
            // A file whose checksum fails is never loaded by opening either: not checked.
            let Ok(snapshot) = crate::snapshot::read(&file) else {
                continue;
            };
            if snapshot.position == position
                && crate::snapshot::is_working_set_of(&snapshot.state, &state)
            {
                checked += 1;
            } else if differing.is_none() {
                differing = Some(file);
            }
        }
        Ok(())
    })?;
    if let Some(found) = end {
        return Err(VerifyError::Broken(found));
    }
    if let Some(path) = differing {
        return Err(VerifyError::Snapshot(path));
    }
    check_balances(&state)?;
    let funded = state
        .balance(&Account::FundingSource)
        .checked_neg()
        .unwrap_or(Money::ZERO);
    let pockets: usize = state.cards.values().map(|c| c.pockets.len()).sum();
    Ok(VerifyReport {
        entries: state.entries,
        last_hash: head.last_hash,
        accounts: state.accounts.len() + pockets,
        funded,
        snapshots: checked,
    })
}

/// Hands every entry of the journal in `data_dir` to `visit`, in order, each hash and the
/// chain checked, in bounded memory: what tools read when they need every record ever made
/// (the projection holds only the working set). A broken chain is an error after the entries
/// before the break were visited.
pub fn read_journal(
    data_dir: &Path,
    visit: &mut dyn FnMut(&crate::Entry),
) -> Result<u64, VerifyError> {
    let mut store = ReadOnly(journal_path(data_dir));
    let (head, end) = replay_until(&mut store, None, &mut |entry| {
        visit(&entry);
        Ok(())
    })?;
    match end {
        Some(found) => Err(VerifyError::Broken(found)),
        None => Ok(head.next_sequence - 1),
    }
}

/// The ledger's global invariants over a whole projection.
pub fn check_balances(state: &State) -> Result<(), VerifyError> {
    match state.sum_of_balances() {
        Some(sum) if sum == Money::ZERO => {}
        Some(sum) => {
            return Err(VerifyError::Balances(format!(
                "balances sum to {sum}, not zero"
            )));
        }
        None => {
            return Err(VerifyError::Balances(
                "the sum of balances overflows".into(),
            ));
        }
    }
    if let Some((account, balance)) = state.accounts.iter().find(|(a, b)| {
        // A giro account may be short by the adjustments not settled yet (`giro_floor`).
        let within_floor = match a {
            crate::record::Account::Giro(program) => **b >= state.giro_floor(program, &[]),
            _ => false,
        };
        b.is_negative() && !a.may_be_negative() && !within_floor
    }) {
        return Err(VerifyError::Balances(format!(
            "{account:?} is at {balance}"
        )));
    }
    for (card, card_state) in &state.cards {
        if let Some((program, balance)) = card_state.pockets.iter().find(|(_, b)| b.is_negative()) {
            return Err(VerifyError::Balances(format!(
                "pocket {program} of card {card} is at {balance}"
            )));
        }
    }
    Ok(())
}

/// The file journal read without opening it for writing.
#[derive(Debug)]
struct ReadOnly(std::path::PathBuf);

impl JournalStore for ReadOnly {
    fn append_durable(&mut self, _: &[crate::journal::EncodedEntry]) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "verify never writes",
        ))
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(crate::journal::EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
        crate::journal::read_frames(&self.0, visit)
    }

    fn cut_tail(&mut self, _: &Break, _: u64) -> std::io::Result<Option<std::path::PathBuf>> {
        Ok(None)
    }
}
