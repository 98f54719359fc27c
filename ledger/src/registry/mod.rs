//! The registry: people, cards, merchants, terminals, tokens, the misuse monitor's alerts and
//! the audit log — everything the ledger keeps that is not money. Behind the [`Registry`]
//! trait; [`RedbRegistry`] is the embedded implementation.
//!
//! Writes go through [`Registry::apply`], one all-or-nothing list of [`RegistryOp`]s, with
//! `Insert` (fails if the key exists) and `Replace` (fails unless the stored record is the
//! expected one) for the admin API's 409s and for compare-and-set without locks. That one call
//! is also what a Scylla implementation maps onto a logged batch.

mod alerts;
mod cached;
mod dated;
mod redb;
mod types;

pub(crate) use self::alerts::AlertIndexRow;
pub use self::alerts::{AlertCursor, AlertFilter, AlertRecord, AlertStatus};
pub use self::cached::{CachedRegistry, REGISTRY_CACHE_ENTRIES_MAX, REGISTRY_CACHE_TTL};
pub use self::redb::{REGISTRY_OPS_PER_APPLY_MAX, RedbRegistry};
pub use dated::*;
pub use types::*;

use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use async_trait::async_trait;
use std::fmt;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An `Insert` found the key taken, or a `Replace` found another record than expected.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A `Replace` or `Delete` found nothing.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database failed.
    #[error("registry storage: {0}")]
    Storage(String),
    /// A stored value does not decode.
    #[error("registry holds an undecodable {0}")]
    Corrupt(&'static str),
}

/// One step of an all-or-nothing registry write.
// Ops are built per admin request, not per purchase: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryOp {
    /// Store a record that must not exist yet (by its key, or by a unique index such as a
    /// beneficiary's NIK or a card's PAN).
    Insert(RegistryRecord),
    /// Store a record whose current value must be `expected`.
    Replace {
        /// What the caller read.
        expected: RegistryRecord,
        /// What to store instead.
        new: RegistryRecord,
    },
    /// Store a record whatever is there.
    Upsert(RegistryRecord),
    /// Remove an API token.
    DeleteToken(String),
    /// Append to the audit log.
    Audit(AuditEntry),
}

/// The registry.
#[async_trait]
pub trait Registry: Send + Sync + fmt::Debug {
    /// Applies every op or none.
    async fn apply(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError>;
    /// Hands out the next number of a named sequence (SSN numbers, card ids, ...), from 1.
    async fn next_number(&self, sequence: &str) -> Result<u64, RegistryError>;
    /// Hands out `count` consecutive numbers of a named sequence at once and returns the first
    /// (an import of 100,000 people takes one write, not 100,000). `count` 0 returns the next
    /// number without taking it. Stores with a cheaper way than a loop override this.
    async fn next_numbers(&self, sequence: &str, count: u64) -> Result<u64, RegistryError> {
        let first = self.next_number(sequence).await?;
        for _ in 1..count {
            self.next_number(sequence).await?;
        }
        Ok(first)
    }

    /// The host's keys, once recorded.
    async fn host_keys(&self) -> Result<Option<HostKeys>, RegistryError>;
    /// A program.
    async fn program(&self, code: &ProgramCode) -> Result<Option<Program>, RegistryError>;
    /// Every program.
    async fn programs(&self) -> Result<Vec<Program>, RegistryError>;
    /// A beneficiary by SSN number.
    async fn beneficiary(&self, ssn: &str) -> Result<Option<Beneficiary>, RegistryError>;
    /// A beneficiary by NIK.
    async fn beneficiary_by_nik(&self, nik: &Nik) -> Result<Option<Beneficiary>, RegistryError>;
    /// Every beneficiary (the admin API filters and pages).
    async fn beneficiaries(&self) -> Result<Vec<Beneficiary>, RegistryError>;
    /// A determination.
    async fn determination(&self, id: u64) -> Result<Option<Determination>, RegistryError>;
    /// A card by id.
    async fn card(&self, card: CardId) -> Result<Option<Card>, RegistryError>;
    /// A card by PAN: the switch's lookup for every 0200.
    async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, RegistryError>;
    /// Every card.
    async fn cards(&self) -> Result<Vec<Card>, RegistryError>;
    /// A merchant.
    async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, RegistryError>;
    /// Every merchant.
    async fn merchants(&self) -> Result<Vec<Merchant>, RegistryError>;
    /// A terminal.
    async fn terminal(&self, id: &TerminalId) -> Result<Option<Terminal>, RegistryError>;
    /// Every terminal.
    async fn terminals(&self) -> Result<Vec<Terminal>, RegistryError>;
    /// A token by the hash of its secret.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, RegistryError>;
    /// Every token.
    async fn tokens(&self) -> Result<Vec<ApiToken>, RegistryError>;
    /// Audit entries with sequence numbers in `from..`, at most `limit`.
    async fn audit(&self, from: u64, limit: usize)
    -> Result<Vec<(u64, AuditEntry)>, RegistryError>;
    /// The last audit sequence number given (entries are numbered from 1; 0 when none).
    async fn audit_last(&self) -> Result<u64, RegistryError>;
    /// An alert by id.
    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, RegistryError>;
    /// Alerts `filter` wants, newest first (by when they fired, then id, both descending):
    /// those after `after` (the last of the previous page), less the first `skip` of them, at
    /// most `limit`. The store reads its index by time for the filter and only the alerts
    /// returned.
    async fn alerts(
        &self,
        filter: &AlertFilter,
        after: Option<&AlertCursor>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, RegistryError>;
    /// How many alerts `filter` wants (the index by time only, no alert read).
    async fn alerts_count(&self, filter: &AlertFilter) -> Result<u64, RegistryError>;
    /// The misuse monitor's checkpoint stored under `node`.
    async fn monitor_checkpoint(&self, node: &str) -> Result<Option<Vec<u8>>, RegistryError>;
    /// Stores the misuse monitor's checkpoint under `node`, replacing the previous one whole
    /// (a crash meanwhile leaves the previous one).
    async fn set_monitor_checkpoint(&self, node: &str, bytes: Vec<u8>)
    -> Result<(), RegistryError>;

    /// Whether no other process can write this store while this handle is open (an embedded
    /// file locked by this process). A read cache in front of it may then keep what it read
    /// until this process writes; a shared store (Scylla) answers `false`.
    fn exclusive(&self) -> bool {
        false
    }
}
