//! The record format: frames, entries, their hash chain, and reading frames back.

use super::*;

/// One entry as stored: position in the chain, the previous hash, the body and its own hash.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedEntry {
    /// 1 for the first entry, then +1 each.
    pub sequence: u64,
    /// The previous entry's hash (zeros for the first).
    pub previous_hash: Hash,
    /// The postcard-encoded [`Entry`].
    pub body: Vec<u8>,
    /// SHA-256 over sequence, previous hash and body.
    pub hash: Hash,
}

impl fmt::Debug for EncodedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedEntry")
            .field("sequence", &self.sequence)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl EncodedEntry {
    /// Builds the entry that follows `previous_hash` at `sequence`.
    pub fn new(sequence: u64, previous_hash: Hash, body: Vec<u8>) -> EncodedEntry {
        let hash = Self::compute_hash(sequence, &previous_hash, &body);
        EncodedEntry {
            sequence,
            previous_hash,
            body,
            hash,
        }
    }

    fn compute_hash(sequence: u64, previous_hash: &Hash, body: &[u8]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(sequence.to_le_bytes());
        hasher.update(previous_hash);
        hasher.update(body);
        hasher.finalize().into()
    }

    /// True when the stored hash matches the content.
    pub fn hash_is_intact(&self) -> bool {
        Self::compute_hash(self.sequence, &self.previous_hash, &self.body) == self.hash
    }

    /// Bytes of this entry's frame in a journal file.
    pub fn frame_len(&self) -> u64 {
        (4 + PAYLOAD_HEADER_BYTES + self.body.len() + HASH_BYTES) as u64
    }

    /// Decodes the body.
    pub fn decode(&self) -> Result<Entry, postcard::Error> {
        postcard::from_bytes(&self.body)
    }
}

/// Where the chain broke, for `verify` and for refusing to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The sequence number the broken entry has or should have had.
    pub sequence: u64,
    /// Byte offset of the entry's frame in the journal file (0 for stores without offsets).
    pub offset: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} at byte {}: {}",
            self.sequence, self.offset, self.kind
        )
    }
}

/// The ways an entry can be broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// The file does not start with [`JOURNAL_MAGIC`].
    #[error("not a journal file (bad magic)")]
    BadMagic,
    /// The file ends inside a frame.
    #[error("the file ends inside the entry")]
    Truncated,
    /// A frame length of zero or above [`JOURNAL_ENTRY_BYTES_MAX`].
    #[error("implausible entry length {0}")]
    ImplausibleLength(u64),
    /// The entry's content does not match its own hash.
    #[error("content does not match the entry's hash")]
    HashMismatch,
    /// The entry does not carry the previous entry's hash.
    #[error("previous-hash link does not match the entry before")]
    ChainMismatch,
    /// The sequence number is not the one after the previous entry's.
    #[error("sequence number {0} out of order")]
    SequenceMismatch(u64),
    /// The body is intact but does not decode.
    #[error("body does not decode: {0}")]
    Undecodable(String),
    /// The entry breaks a ledger invariant when replayed.
    #[error("{0}")]
    Invariant(InvariantError),
}

impl BreakKind {
    /// Breaks a crash can cause: the last write torn, short or half-persisted. A hash that
    /// matches but links wrongly, or an intact entry that breaks an invariant, is not one.
    pub(crate) fn may_be_torn_write(&self) -> bool {
        matches!(
            self,
            BreakKind::Truncated | BreakKind::ImplausibleLength(_) | BreakKind::HashMismatch
        )
    }

    /// An intact entry that does not apply: after a snapshot, the snapshot may be what is
    /// wrong (history that cannot be read is no sign of it).
    pub(crate) fn is_snapshot_mismatch(&self) -> bool {
        matches!(self, BreakKind::Invariant(error)
            if !matches!(error, InvariantError::HistoryUnreadable(..)))
    }
}

/// Reads every frame of the journal file at `path`. Used by opening and by `verify`.
pub(crate) fn read_frames(
    path: &Path,
    visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
) -> io::Result<Option<Break>> {
    read_frames_from(path, 0, 1, visit)
}

/// [`read_frames`] from the frame of entry `sequence` at byte `offset` (0: the file's start,
/// magic included).
pub(crate) fn read_frames_from(
    path: &Path,
    offset: u64,
    sequence: u64,
    visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
) -> io::Result<Option<Break>> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let (mut offset, mut expected_sequence) = (offset, sequence);
    if offset > 0 {
        if offset > file_len {
            return Ok(Some(Break {
                sequence,
                offset,
                kind: BreakKind::Truncated,
            }));
        }
        file.seek(io::SeekFrom::Start(offset))?;
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if offset == 0 {
        let mut magic = [0u8; 8];
        if reader.read_exact(&mut magic).is_err() || magic != JOURNAL_MAGIC {
            return Ok(Some(Break {
                sequence: 1,
                offset: 0,
                kind: BreakKind::BadMagic,
            }));
        }
        offset = JOURNAL_MAGIC.len() as u64;
    }
    loop {
        if offset == file_len {
            return Ok(None);
        }
        let broken = |kind| {
            Ok(Some(Break {
                sequence: expected_sequence,
                offset,
                kind,
            }))
        };
        let mut length = [0u8; 4];
        if reader.read_exact(&mut length).is_err() {
            return broken(BreakKind::Truncated);
        }
        let payload_len = u64::from(u32::from_le_bytes(length));
        if payload_len < PAYLOAD_HEADER_BYTES as u64
            || payload_len > (PAYLOAD_HEADER_BYTES + JOURNAL_ENTRY_BYTES_MAX) as u64
        {
            return broken(BreakKind::ImplausibleLength(payload_len));
        }
        let frame_len = 4 + payload_len + HASH_BYTES as u64;
        if offset + frame_len > file_len {
            return broken(BreakKind::Truncated);
        }
        // Bounded by JOURNAL_ENTRY_BYTES_MAX just above.
        let mut payload = vec![0u8; payload_len as usize];
        reader.read_exact(&mut payload)?;
        let mut hash = [0u8; HASH_BYTES];
        reader.read_exact(&mut hash)?;
        let body = payload.split_off(PAYLOAD_HEADER_BYTES);
        let sequence = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let previous_hash: Hash = payload[8..].try_into().expect("32 bytes");
        let entry = EncodedEntry {
            sequence,
            previous_hash,
            body,
            hash,
        };
        if let Err(found) = visit(entry, offset) {
            return Ok(Some(found));
        }
        offset += frame_len;
        expected_sequence += 1;
    }
}

/// The end of the chain: what the next entry must link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The next entry's sequence number.
    pub next_sequence: u64,
    /// The last entry's hash (zeros before the first).
    pub last_hash: Hash,
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead {
            next_sequence: 1,
            last_hash: [0; HASH_BYTES],
        }
    }
}
