//! Moving an embedded ledger onto Scylla: the journal file's entries byte for byte (same
//! sequence numbers, same hashes, so the chain and its published last hash stay valid) into
//! the node's chain, and every registry record, audit entry and sequence into the keyspace.

use super::{ScyllaCluster, ScyllaConfig, ScyllaError};
use crate::journal::{EncodedEntry, JOURNAL_BATCH_RECORDS_MAX, JournalStore, journal_path};
use crate::registry::{RedbRegistry, Registry, RegistryError, RegistryOp, RegistryRecord};
use std::path::Path;

/// Registry changes per `apply` while importing: far below the intent limit.
const IMPORT_OPS_PER_APPLY: usize = 500;
/// The registry's named sequences (SSN numbers, card ids, determinations, import batches).
const SEQUENCES: [&str; 4] = ["ssn", "card", "determination", "import_batch"];

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// False when the chain already had entries (an earlier import): nothing was copied.
    pub imported: bool,
    /// Journal entries copied.
    pub entries: u64,
    /// Registry records and audit entries copied.
    pub records: u64,
}

fn registry(error: RegistryError) -> ScyllaError {
    match error {
        RegistryError::Corrupt(what) => ScyllaError::Corrupt(what),
        other => ScyllaError::Cluster(other.to_string()),
    }
}

/// Copies the embedded ledger in `data_dir` into `config`'s keyspace and chain, unless the
/// chain already has entries. The embedded ledger must not be open elsewhere.
pub async fn import_embedded(
    config: &ScyllaConfig,
    data_dir: &Path,
) -> Result<ImportReport, ScyllaError> {
    let cluster = ScyllaCluster::connect(config.clone()).await?;
    let mut journal = cluster.journal().await?;
    if !journal.is_empty()? {
        return Ok(ImportReport {
            imported: false,
            entries: 0,
            records: 0,
        });
    }
    let target = cluster.registry().await?;
    let source = RedbRegistry::open(&data_dir.join("registry.redb")).map_err(registry)?;
    let mut ops: Vec<RegistryOp> = Vec::new();
    let upsert = |record| RegistryOp::Upsert(record);
    ops.extend(
        source
            .programs()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Program(r))),
    );
    ops.extend(
        source
            .beneficiaries()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Beneficiary(r))),
    );
    ops.extend(
        source
            .cards()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Card(r))),
    );
    ops.extend(
        source
            .merchants()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Merchant(r))),
    );
    ops.extend(
        source
            .terminals()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Terminal(r))),
    );
    ops.extend(
        source
            .host_keys()
            .await
            .map_err(registry)?
            .map(|r| upsert(RegistryRecord::HostKeys(r))),
    );
    ops.extend(
        source
            .tokens()
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Token(r))),
    );
    ops.extend(
        source
            .alerts(
                &crate::registry::AlertFilter::default(),
                None,
                0,
                usize::MAX,
            )
            .await
            .map_err(registry)?
            .into_iter()
            .map(|r| upsert(RegistryRecord::Alert(r))),
    );
    let mut sequences = Vec::new();
    for name in SEQUENCES {
        // `next_numbers(name, 0)` reads the next number without taking it.
        let next = source.next_numbers(name, 0).await.map_err(registry)?;
        sequences.push((name, next.saturating_sub(1)));
    }
    let determinations = sequences
        .iter()
        .find(|(n, _)| *n == "determination")
        .map_or(0, |(_, last)| *last);
    for id in 1..=determinations {
        if let Some(d) = source.determination(id).await.map_err(registry)? {
            ops.push(upsert(RegistryRecord::Determination(d)));
        }
    }
    let mut from = 1;
    loop {
        let audit = source
            .audit(from, IMPORT_OPS_PER_APPLY)
            .await
            .map_err(registry)?;
        let Some((last, _)) = audit.last() else { break };
        from = last + 1;
        ops.extend(audit.into_iter().map(|(_, entry)| RegistryOp::Audit(entry)));
    }
    let records = ops.len() as u64;
    for chunk in ops.chunks(IMPORT_OPS_PER_APPLY) {
        target.apply(chunk.to_vec()).await.map_err(registry)?;
    }
    for (name, last) in sequences {
        target.set_sequence(name, last).await.map_err(registry)?;
    }
    let entries = copy_journal(data_dir, &mut journal)?;
    Ok(ImportReport {
        imported: true,
        entries,
        records,
    })
}

/// Copies the journal file's entries, checked whole first, in batches.
fn copy_journal(data_dir: &Path, journal: &mut super::ScyllaJournal) -> Result<u64, ScyllaError> {
    let mut entries: Vec<EncodedEntry> = Vec::new();
    let end = crate::journal::read_frames(&journal_path(data_dir), &mut |entry, _| {
        entries.push(entry);
        Ok(())
    })
    .map_err(|e| ScyllaError::Cluster(format!("reading the journal file: {e}")))?;
    if let Some(found) = end {
        return Err(ScyllaError::Config(format!(
            "the journal file is broken at {found}: open the embedded ledger once (it sets a torn tail aside) or repair it first"
        )));
    }
    for batch in entries.chunks(JOURNAL_BATCH_RECORDS_MAX) {
        journal
            .append_durable(batch)
            .map_err(|e| ScyllaError::Cluster(e.to_string()))?;
    }
    Ok(entries.len() as u64)
}
