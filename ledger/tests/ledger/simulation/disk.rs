//! The simulated journal disk: the faults it injects and what a power loss takes.

use super::*;

/// What the journal's disk does with one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// Written and synced.
    None,
    /// `ENOSPC`: nothing written.
    NoSpace,
    /// Part of the write reached the file, then an error.
    ShortWrite,
    /// Written and synced whole, but the caller was told it failed (a lost acknowledgement).
    AckLost,
    /// Part of the write reached the file and the machine lost power at that byte.
    TornThenPowerLoss,
    /// `fsync` said yes without syncing: the write is lost if power fails before an honest
    /// sync of the file.
    LyingSync,
    /// The disk is gone (unplugged, a cluster down): nothing written, and neither writes nor
    /// reads work for the next 1 to 40 steps of the simulation (hours to a week of its clock).
    Gone,
}

/// Counts of what one seed did, for the report.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    pub(super) operations: u64,
    pub(super) appends: u64,
    pub(super) no_space: u64,
    pub(super) short_writes: u64,
    pub(super) acks_lost: u64,
    pub(super) torn: u64,
    pub(super) lies: u64,
    pub(super) outages: u64,
    pub(super) power_losses: u64,
    pub(super) clean_restarts: u64,
    pub(super) moves: u64,
    pub(super) approvals: u64,
    /// Approvals acknowledged on a lying sync and gone after a power loss: the one loss a
    /// single disk cannot prevent (counted, never hidden).
    pub(super) approvals_lost_to_lies: u64,
    pub(super) midnights: u64,
}

impl Counts {
    pub(super) fn failed_writes(&self) -> u64 {
        self.no_space + self.short_writes + self.acks_lost + self.torn + self.outages
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.operations += o.operations;
        self.appends += o.appends;
        self.no_space += o.no_space;
        self.short_writes += o.short_writes;
        self.acks_lost += o.acks_lost;
        self.torn += o.torn;
        self.lies += o.lies;
        self.outages += o.outages;
        self.power_losses += o.power_losses;
        self.clean_restarts += o.clean_restarts;
        self.moves += o.moves;
        self.approvals += o.approvals;
        self.approvals_lost_to_lies += o.approvals_lost_to_lies;
        self.midnights += o.midnights;
    }
}

/// The journal's disk: decides each write's fault from its own seeded stream, and remembers
/// what a power loss takes away.
#[derive(Debug)]
pub(super) struct Disk {
    pub(super) random: Random,
    /// Faults only once the city is set up.
    pub(super) faulty: bool,
    /// The file's length before the first write a lying sync acknowledged that no honest sync
    /// has covered since: a power loss cuts the file somewhere after it.
    pub(super) unsynced_from: Option<u64>,
    /// A torn write happened: the power is off until the simulation restarts the ledger.
    pub(super) powered_off: bool,
    /// Steps of the simulation the disk stays gone ([`Fault::Gone`]).
    pub(super) gone_for: u32,
    pub(super) counts: Counts,
}

impl Disk {
    pub(super) fn new(seed: u64) -> Disk {
        Disk {
            random: Random(seed.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1),
            faulty: false,
            unsynced_from: None,
            powered_off: false,
            gone_for: 0,
            counts: Counts::default(),
        }
    }

    pub(super) fn next_fault(&mut self) -> Fault {
        self.counts.appends += 1;
        if !self.faulty {
            return Fault::None;
        }
        match self.random.below(100) {
            0..=2 => Fault::NoSpace,
            3..=4 => Fault::ShortWrite,
            5..=6 => Fault::AckLost,
            7 => Fault::TornThenPowerLoss,
            8..=10 => Fault::LyingSync,
            11 => Fault::Gone,
            _ => Fault::None,
        }
    }

    /// A length in `from..=to` drawn from the disk's stream.
    pub(super) fn cut_between(&mut self, from: u64, to: u64) -> u64 {
        from + self.random.below(to - from + 1)
    }
}

/// The file journal on a [`Disk`].
#[derive(Debug)]
pub(super) struct SimJournal {
    pub(super) inner: FileJournal,
    pub(super) path: PathBuf,
    pub(super) disk: Arc<Mutex<Disk>>,
}

pub(super) fn file_len(path: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

pub(super) fn cut(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

impl JournalStore for SimJournal {
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> std::io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        if disk.powered_off {
            return Err(std::io::Error::other("simulated: the machine is off"));
        }
        if disk.gone_for > 0 {
            return Err(std::io::Error::other("simulated: the disk is gone"));
        }
        let fault = disk.next_fault();
        trace(format_args!(
            "  append of {} entries: {fault:?}",
            entries.len()
        ));
        let before = file_len(&self.path)?;
        if fault == Fault::Gone {
            disk.counts.outages += 1;
            disk.gone_for = 1 + disk.random.below(40) as u32;
            return Err(std::io::Error::other("simulated: the disk is gone"));
        }
        if fault == Fault::NoSpace {
            disk.counts.no_space += 1;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "simulated: no space left on device",
            ));
        }
        self.inner.append_durable(entries)?;
        let after = file_len(&self.path)?;
        match fault {
            Fault::None => {
                // An honest sync makes everything before it durable too.
                disk.unsynced_from = None;
                Ok(())
            }
            Fault::LyingSync => {
                disk.counts.lies += 1;
                disk.unsynced_from.get_or_insert(before);
                Ok(())
            }
            Fault::AckLost => {
                disk.counts.acks_lost += 1;
                disk.unsynced_from = None;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "simulated: written, acknowledgement lost",
                ))
            }
            Fault::ShortWrite | Fault::TornThenPowerLoss => {
                let len = disk.cut_between(before, after - 1);
                cut(&self.path, len)?;
                if fault == Fault::ShortWrite {
                    disk.counts.short_writes += 1;
                    disk.unsynced_from = None;
                    Err(std::io::Error::other("simulated: short write"))
                } else {
                    disk.counts.torn += 1;
                    disk.powered_off = true;
                    Err(std::io::Error::other("simulated: power lost mid-write"))
                }
            }
            Fault::NoSpace | Fault::Gone => unreachable!("answered above"),
        }
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
        let disk = self.disk.lock().unwrap();
        if disk.powered_off || disk.gone_for > 0 {
            return Err(std::io::Error::other("simulated: the disk cannot be read"));
        }
        drop(disk);
        self.inner.replay(visit)
    }

    fn replay_from(
        &mut self,
        offset: u64,
        sequence: u64,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
        self.inner.replay_from(offset, sequence, visit)
    }

    fn snapshot_file(&self) -> Option<&Path> {
        self.inner.snapshot_file()
    }

    /// At once: the simulation's steps are microseconds apart, so the second submission after
    /// a failure recovers.
    fn recovery_interval(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    fn cut_tail(&mut self, found: &Break, bytes_max: u64) -> std::io::Result<Option<PathBuf>> {
        self.inner.cut_tail(found, bytes_max)
    }
}

/// The power fails: the file keeps what was honestly synced and, of what a lying sync
/// acknowledged since, a prefix cut at any byte.
pub(super) fn lose_power(dir: &Path, disk: &Mutex<Disk>, model: &mut Model, counts: &mut Counts) {
    let mut disk = disk.lock().unwrap();
    trace(format_args!(
        "  power lost, unsynced from {:?}",
        disk.unsynced_from
    ));
    let path = dir.join("journal.log");
    if let Some(from) = disk.unsynced_from.take() {
        let len = file_len(&path).unwrap();
        let keep = disk.cut_between(from, len);
        cut(&path, keep).unwrap();
    } else {
        // Nothing a lie acknowledged is at risk.
        for sent in &mut model.sent {
            sent.on_a_lie = false;
        }
    }
    disk.powered_off = false;
    counts.power_losses += 1;
}
