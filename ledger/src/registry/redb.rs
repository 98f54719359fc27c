//! The embedded registry on redb. redb commits are durable on return (its default
//! `Durability::Immediate`), which is what the admin API's 201s promise.
//!
//! Every record is stored as postcard bytes under a string key; unique secondary keys (a
//! beneficiary's NIK, a card's PAN, a token's hash) live in index tables written in the same
//! transaction. Calls run on tokio's blocking pool because a commit waits for fsync.

use super::Stored;
use super::{
    AlertCursor, AlertFilter, AlertIndexRow, AlertRecord, ApiToken, AuditEntry, Beneficiary, Card,
    Determination, HOST_KEYS_KEY, HostKeys, Merchant, Nik, Pan, Program, Registry, RegistryError,
    RegistryOp, RegistryRecord, Terminal,
};
use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use async_trait::async_trait;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

type Bytes = TableDefinition<'static, &'static str, &'static [u8]>;
type Index = TableDefinition<'static, &'static str, &'static str>;

const PROGRAMS: Bytes = TableDefinition::new("programs");
const BENEFICIARIES: Bytes = TableDefinition::new("beneficiaries");
const DETERMINATIONS: Bytes = TableDefinition::new("determinations");
const CARDS: Bytes = TableDefinition::new("cards");
const MERCHANTS: Bytes = TableDefinition::new("merchants");
const TERMINALS: Bytes = TableDefinition::new("terminals");
const TOKENS: Bytes = TableDefinition::new("tokens");
const HOST_KEYS: Bytes = TableDefinition::new("host_keys");
const ALERTS: Bytes = TableDefinition::new("alerts");
const NIK_INDEX: Index = TableDefinition::new("beneficiaries_by_nik");
const PAN_INDEX: Index = TableDefinition::new("cards_by_pan");
const TOKEN_INDEX: Index = TableDefinition::new("tokens_by_hash");
const AUDIT: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit");
const SEQUENCES: TableDefinition<'static, &'static str, u64> = TableDefinition::new("sequences");
/// Alerts by (when they fired, id): each row is the alert's [`AlertIndexRow`].
const ALERTS_BY_TIME: TableDefinition<'static, (i64, &'static str), &'static [u8]> =
    TableDefinition::new("alerts_by_time");
/// The misuse monitor's checkpoint, by node.
const MONITOR_CHECKPOINTS: Bytes = TableDefinition::new("monitor_checkpoints");

/// Most records one `apply` may carry: a determination for every beneficiary of a large
/// program still fits, and one transaction stays a bounded amount of memory.
pub const REGISTRY_OPS_PER_APPLY_MAX: usize = 200_000;

/// The embedded registry.
#[derive(Debug, Clone)]
pub struct RedbRegistry {
    /// The database, shared with the blocking pool.
    db: Arc<Database>,
}

fn storage(error: impl Into<::redb::Error>) -> RegistryError {
    RegistryError::Storage(error.into().to_string())
}

fn encode(record: &impl serde::Serialize) -> Vec<u8> {
    // Registry records are plain data; postcard cannot fail on them.
    postcard::to_stdvec(record).expect("registry records encode")
}

fn decode<T: super::Stored>(bytes: &[u8], what: &'static str) -> Result<T, RegistryError> {
    T::from_stored(bytes).ok_or(RegistryError::Corrupt(what))
}

/// Where a record lives: its table, key, and unique index entry if it has one.
struct Placement {
    table: Bytes,
    key: String,
    index: Option<(Index, String)>,
    what: &'static str,
}

fn placement(record: &RegistryRecord) -> Placement {
    match record {
        RegistryRecord::HostKeys(_) => Placement {
            table: HOST_KEYS,
            key: HOST_KEYS_KEY.to_string(),
            index: None,
            what: "host keys",
        },
        RegistryRecord::Program(p) => Placement {
            table: PROGRAMS,
            key: p.code.to_string(),
            index: None,
            what: "program",
        },
        RegistryRecord::Beneficiary(b) => Placement {
            table: BENEFICIARIES,
            key: b.ssn.clone(),
            index: Some((NIK_INDEX, b.nik.expose().to_string())),
            what: "beneficiary",
        },
        RegistryRecord::Determination(d) => Placement {
            table: DETERMINATIONS,
            key: d.id.to_string(),
            index: None,
            what: "determination",
        },
        RegistryRecord::Card(c) => Placement {
            table: CARDS,
            key: c.card_id.0.to_string(),
            index: Some((PAN_INDEX, c.pan.expose().to_string())),
            what: "card",
        },
        RegistryRecord::Merchant(m) => Placement {
            table: MERCHANTS,
            key: m.merchant_id.to_string(),
            index: None,
            what: "merchant",
        },
        RegistryRecord::Terminal(t) => Placement {
            table: TERMINALS,
            key: t.terminal_id.to_string(),
            index: None,
            what: "terminal",
        },
        RegistryRecord::Token(t) => Placement {
            table: TOKENS,
            key: t.name.clone(),
            index: Some((TOKEN_INDEX, crate::ids::hex(&t.token_hash))),
            what: "token",
        },
        RegistryRecord::Alert(a) => Placement {
            table: ALERTS,
            key: a.alert.id.clone(),
            index: None,
            what: "alert",
        },
    }
}

fn stored_bytes(record: &RegistryRecord) -> Vec<u8> {
    match record {
        RegistryRecord::HostKeys(k) => encode(k),
        RegistryRecord::Program(p) => encode(p),
        RegistryRecord::Beneficiary(b) => encode(b),
        RegistryRecord::Determination(d) => encode(d),
        RegistryRecord::Card(c) => encode(c),
        RegistryRecord::Merchant(m) => encode(m),
        RegistryRecord::Terminal(t) => encode(t),
        RegistryRecord::Token(t) => encode(t),
        RegistryRecord::Alert(a) => encode(a),
    }
}

/// How a put treats what is already there.
enum Mode<'a> {
    Insert,
    Replace(&'a RegistryRecord),
    Upsert,
}

fn put(
    txn: &WriteTransaction,
    record: &RegistryRecord,
    mode: Mode<'_>,
) -> Result<(), RegistryError> {
    let place = placement(record);
    let mut table = txn.open_table(place.table).map_err(storage)?;
    let current: Option<Vec<u8>> = table
        .get(place.key.as_str())
        .map_err(storage)?
        .map(|v| v.value().to_vec());
    match (&mode, &current) {
        (Mode::Insert, Some(_)) => {
            return Err(RegistryError::Conflict(format!(
                "{} {} exists",
                place.what, place.key
            )));
        }
        (Mode::Replace(_), None) => {
            return Err(RegistryError::NotFound(format!(
                "{} {}",
                place.what, place.key
            )));
        }
        (Mode::Replace(expected), Some(bytes)) if !expected.is_stored_as(bytes) => {
            return Err(RegistryError::Conflict(format!(
                "{} {} changed meanwhile",
                place.what, place.key
            )));
        }
        _ => {}
    }
    if let Some((index_table, index_key)) = &place.index {
        let mut index = txn.open_table(*index_table).map_err(storage)?;
        let owner: Option<String> = index
            .get(index_key.as_str())
            .map_err(storage)?
            .map(|v| v.value().to_string());
        if owner.as_deref().is_some_and(|owner| owner != place.key) {
            // Not naming the index key: it is a NIK, a PAN or a token hash.
            return Err(RegistryError::Conflict(format!(
                "another {} has the same unique number",
                place.what
            )));
        }
        let old_index_key = match &mode {
            Mode::Replace(expected) => placement(expected).index.map(|(_, key)| key),
            _ => None,
        };
        if let Some(old) = old_index_key.filter(|old| old != index_key) {
            index.remove(old.as_str()).map_err(storage)?;
        }
        index
            .insert(index_key.as_str(), place.key.as_str())
            .map_err(storage)?;
    }
    table
        .insert(place.key.as_str(), stored_bytes(record).as_slice())
        .map_err(storage)?;
    if let RegistryRecord::Alert(alert) = record {
        index_alert(txn, alert)?;
    }
    Ok(())
}

/// Writes `alert`'s row of the index by time (its key never changes; its status does).
fn index_alert(txn: &WriteTransaction, alert: &AlertRecord) -> Result<(), RegistryError> {
    let mut index = txn.open_table(ALERTS_BY_TIME).map_err(storage)?;
    let key = (alert.alert.fired_at_unix_seconds, alert.alert.id.as_str());
    index
        .insert(key, AlertIndexRow::of(alert).encode().as_slice())
        .map_err(storage)?;
    Ok(())
}

/// What the index by time holds of `filter` after `after`, newest first: each alert's key,
/// with the first `skip` left out and at most `limit` kept (`usize::MAX` and a count: all).
fn alert_keys(
    db: &Database,
    filter: &AlertFilter,
    after: Option<&AlertCursor>,
    skip: u64,
    limit: usize,
) -> Result<(u64, Vec<(i64, String)>), RegistryError> {
    let txn = db.begin_read().map_err(storage)?;
    let index = txn.open_table(ALERTS_BY_TIME).map_err(storage)?;
    let lower = match filter.fired_from {
        i64::MIN => Bound::Unbounded,
        from => Bound::Included((from, "")),
    };
    let upper = match (after, filter.fired_to.checked_add(1)) {
        (Some(cursor), Some(end)) if end <= cursor.fired_at_unix_seconds => {
            Bound::Excluded((end, ""))
        }
        (Some(cursor), _) => Bound::Excluded((cursor.fired_at_unix_seconds, cursor.id.as_str())),
        (None, Some(end)) => Bound::Excluded((end, "")),
        (None, None) => Bound::Unbounded,
    };
    let (mut matched, mut keys) = (0u64, Vec::new());
    for row in index
        .range::<(i64, &str)>((lower, upper))
        .map_err(storage)?
        .rev()
    {
        let (key, value) = row.map_err(storage)?;
        let (fired_at, id) = key.value();
        let row = AlertIndexRow::decode(value.value()).ok_or(RegistryError::Corrupt("alert"))?;
        if !filter.admits(fired_at, &row) {
            continue;
        }
        matched += 1;
        if matched > skip {
            if keys.len() >= limit {
                continue;
            }
            keys.push((fired_at, id.to_string()));
        }
    }
    Ok((matched, keys))
}

fn apply_op(txn: &WriteTransaction, op: &RegistryOp) -> Result<(), RegistryError> {
    match op {
        RegistryOp::Insert(record) => put(txn, record, Mode::Insert),
        RegistryOp::Upsert(record) => put(txn, record, Mode::Upsert),
        RegistryOp::Replace { expected, new } => put(txn, new, Mode::Replace(expected)),
        RegistryOp::DeleteToken(name) => {
            let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
            let removed = tokens
                .remove(name.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_vec());
            let token: ApiToken = decode(
                &removed.ok_or_else(|| RegistryError::NotFound(format!("token {name}")))?,
                "token",
            )?;
            drop(tokens);
            let mut index = txn.open_table(TOKEN_INDEX).map_err(storage)?;
            index
                .remove(crate::ids::hex(&token.token_hash).as_str())
                .map_err(storage)?;
            Ok(())
        }
        RegistryOp::Audit(entry) => {
            let mut audit = txn.open_table(AUDIT).map_err(storage)?;
            let next = audit
                .last()
                .map_err(storage)?
                .map_or(1, |(k, _)| k.value() + 1);
            audit
                .insert(next, encode(entry).as_slice())
                .map_err(storage)?;
            Ok(())
        }
    }
}

/// Fills the index by time from the alerts a registry stored before it had one (once: an
/// index that holds rows is kept).
fn index_alerts_stored_before(txn: &WriteTransaction) -> Result<(), RegistryError> {
    let empty = txn
        .open_table(ALERTS_BY_TIME)
        .map_err(storage)?
        .first()
        .map_err(storage)?
        .is_none();
    if !empty {
        return Ok(());
    }
    let alerts = txn.open_table(ALERTS).map_err(storage)?;
    for row in alerts.iter().map_err(storage)? {
        let (_, value) = row.map_err(storage)?;
        index_alert(txn, &decode::<AlertRecord>(value.value(), "alert")?)?;
    }
    Ok(())
}

impl RedbRegistry {
    /// Opens or creates the registry database at `path`.
    pub fn open(path: &Path) -> Result<RedbRegistry, RegistryError> {
        let db = Database::create(path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        for table in [
            PROGRAMS,
            BENEFICIARIES,
            DETERMINATIONS,
            CARDS,
            MERCHANTS,
            TERMINALS,
            TOKENS,
            HOST_KEYS,
            ALERTS,
        ] {
            txn.open_table(table).map_err(storage)?;
        }
        for index in [NIK_INDEX, PAN_INDEX, TOKEN_INDEX] {
            txn.open_table(index).map_err(storage)?;
        }
        txn.open_table(AUDIT).map_err(storage)?;
        txn.open_table(SEQUENCES).map_err(storage)?;
        txn.open_table(MONITOR_CHECKPOINTS).map_err(storage)?;
        index_alerts_stored_before(&txn)?;
        txn.commit().map_err(storage)?;
        Ok(RedbRegistry { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| RegistryError::Storage(format!("registry task failed: {e}")))?
    }

    /// Reads one record (reads are fast enough for the async caller: no fsync, no lock wait).
    fn get<T: Stored>(
        &self,
        table: Bytes,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, RegistryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(table).map_err(storage)?;
        match table.get(key).map_err(storage)? {
            Some(bytes) => decode(bytes.value(), what).map(Some),
            None => Ok(None),
        }
    }

    fn get_by_index<T: Stored>(
        &self,
        index: Index,
        table: Bytes,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, RegistryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let index = txn.open_table(index).map_err(storage)?;
        let Some(primary) = index
            .get(key)
            .map_err(storage)?
            .map(|v| v.value().to_string())
        else {
            return Ok(None);
        };
        let table = txn.open_table(table).map_err(storage)?;
        match table.get(primary.as_str()).map_err(storage)? {
            Some(bytes) => decode(bytes.value(), what).map(Some),
            None => Err(RegistryError::Corrupt(what)),
        }
    }

    /// Every record of a table, read on the blocking pool: a whole table (100,000 people) takes
    /// long enough to hold up the purchases queued on an async worker.
    async fn all<T: Stored + Send + 'static>(
        &self,
        table: Bytes,
        what: &'static str,
    ) -> Result<Vec<T>, RegistryError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(storage)?;
            let table = txn.open_table(table).map_err(storage)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(storage)? {
                let (_, value) = row.map_err(storage)?;
                out.push(decode(value.value(), what)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| RegistryError::Storage(format!("reading {what}s: {e}")))?
    }
}

#[async_trait]
impl Registry for RedbRegistry {
    fn exclusive(&self) -> bool {
        // redb locks its file: a second open, by this process or another, is refused.
        true
    }

    async fn apply(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        if ops.len() > REGISTRY_OPS_PER_APPLY_MAX {
            return Err(RegistryError::Conflict(format!(
                "more than {REGISTRY_OPS_PER_APPLY_MAX} changes at once"
            )));
        }
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(storage)?;
            for op in &ops {
                // Dropping an uncommitted transaction aborts it: an error leaves nothing behind.
                apply_op(&txn, op)?;
            }
            txn.commit().map_err(storage)
        })
        .await
    }

    async fn next_number(&self, sequence: &str) -> Result<u64, RegistryError> {
        let sequence = sequence.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(storage)?;
            let next = {
                let mut table = txn.open_table(SEQUENCES).map_err(storage)?;
                let next = table
                    .get(sequence.as_str())
                    .map_err(storage)?
                    .map_or(1, |v| v.value() + 1);
                table.insert(sequence.as_str(), next).map_err(storage)?;
                next
            };
            txn.commit().map_err(storage)?;
            Ok(next)
        })
        .await
    }

    async fn next_numbers(&self, sequence: &str, count: u64) -> Result<u64, RegistryError> {
        let sequence = sequence.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(storage)?;
            let first = {
                let mut table = txn.open_table(SEQUENCES).map_err(storage)?;
                let last = table
                    .get(sequence.as_str())
                    .map_err(storage)?
                    .map_or(0, |v| v.value());
                let first = last.checked_add(1).ok_or_else(|| {
                    RegistryError::Storage(format!("sequence {sequence} exhausted"))
                })?;
                let new_last = last.checked_add(count).ok_or_else(|| {
                    RegistryError::Storage(format!("sequence {sequence} exhausted"))
                })?;
                table.insert(sequence.as_str(), new_last).map_err(storage)?;
                first
            };
            txn.commit().map_err(storage)?;
            Ok(first)
        })
        .await
    }

    async fn program(&self, code: &ProgramCode) -> Result<Option<Program>, RegistryError> {
        self.get(PROGRAMS, code.as_str(), "program")
    }

    async fn programs(&self) -> Result<Vec<Program>, RegistryError> {
        self.all(PROGRAMS, "program").await
    }

    async fn beneficiary(&self, ssn: &str) -> Result<Option<Beneficiary>, RegistryError> {
        self.get(BENEFICIARIES, ssn, "beneficiary")
    }

    async fn beneficiary_by_nik(&self, nik: &Nik) -> Result<Option<Beneficiary>, RegistryError> {
        self.get_by_index(NIK_INDEX, BENEFICIARIES, nik.expose(), "beneficiary")
    }

    async fn beneficiaries(&self) -> Result<Vec<Beneficiary>, RegistryError> {
        self.all(BENEFICIARIES, "beneficiary").await
    }

    async fn determination(&self, id: u64) -> Result<Option<Determination>, RegistryError> {
        self.get(DETERMINATIONS, &id.to_string(), "determination")
    }

    async fn card(&self, card: CardId) -> Result<Option<Card>, RegistryError> {
        self.get(CARDS, &card.0.to_string(), "card")
    }

    async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, RegistryError> {
        self.get_by_index(PAN_INDEX, CARDS, pan.expose(), "card")
    }

    async fn cards(&self) -> Result<Vec<Card>, RegistryError> {
        self.all(CARDS, "card").await
    }

    async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, RegistryError> {
        self.get(MERCHANTS, id.as_str(), "merchant")
    }

    async fn merchants(&self) -> Result<Vec<Merchant>, RegistryError> {
        self.all(MERCHANTS, "merchant").await
    }

    async fn terminal(&self, id: &TerminalId) -> Result<Option<Terminal>, RegistryError> {
        self.get(TERMINALS, id.as_str(), "terminal")
    }

    async fn host_keys(&self) -> Result<Option<HostKeys>, RegistryError> {
        self.get(HOST_KEYS, HOST_KEYS_KEY, "host keys")
    }

    async fn terminals(&self) -> Result<Vec<Terminal>, RegistryError> {
        self.all(TERMINALS, "terminal").await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, RegistryError> {
        self.get_by_index(TOKEN_INDEX, TOKENS, &crate::ids::hex(hash), "token")
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, RegistryError> {
        self.all(TOKENS, "token").await
    }

    async fn audit(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, RegistryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(AUDIT).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(storage)?.take(limit) {
            let (key, value) = row.map_err(storage)?;
            out.push((key.value(), decode(value.value(), "audit entry")?));
        }
        Ok(out)
    }

    async fn audit_last(&self) -> Result<u64, RegistryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(AUDIT).map_err(storage)?;
        Ok(table.last().map_err(storage)?.map_or(0, |(k, _)| k.value()))
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, RegistryError> {
        self.get(ALERTS, id, "alert")
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        after: Option<&AlertCursor>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, RegistryError> {
        let (filter, after) = (filter.clone(), after.cloned());
        self.blocking(move |db| {
            let (_, keys) = alert_keys(db, &filter, after.as_ref(), skip, limit)?;
            let txn = db.begin_read().map_err(storage)?;
            let alerts = txn.open_table(ALERTS).map_err(storage)?;
            let mut out = Vec::with_capacity(keys.len());
            for (_, id) in keys {
                let bytes = alerts
                    .get(id.as_str())
                    .map_err(storage)?
                    .ok_or(RegistryError::Corrupt("alert index"))?;
                out.push(decode(bytes.value(), "alert")?);
            }
            Ok(out)
        })
        .await
    }

    async fn alerts_count(&self, filter: &AlertFilter) -> Result<u64, RegistryError> {
        let filter = filter.clone();
        self.blocking(move |db| Ok(alert_keys(db, &filter, None, 0, 0)?.0))
            .await
    }

    async fn monitor_checkpoint(&self, node: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(MONITOR_CHECKPOINTS).map_err(storage)?;
        Ok(table
            .get(node)
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }

    async fn set_monitor_checkpoint(
        &self,
        node: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let node = node.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(MONITOR_CHECKPOINTS)
                .map_err(storage)?
                .insert(node.as_str(), bytes.as_slice())
                .map_err(storage)?;
            txn.commit().map_err(storage)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;
    use crate::registry::CardStatus;
    use crate::registry::dated::{card_v2_bytes, merchant_v1_bytes, sample_card, sample_merchant};

    /// A card and an E-Warong stored by the version before dated changes (their bytes as it
    /// wrote them) load from the database, count as they are whatever the day, and can be
    /// changed: the change is then dated.
    #[tokio::test]
    async fn records_stored_before_dated_changes_load_and_change() {
        let dir = std::env::temp_dir().join(format!("ssn-redb-old-layouts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let registry = RedbRegistry::open(&dir.join("registry.redb")).unwrap();
        let day = |text: &str| Day::parse_iso(text).unwrap();
        let mut stored_card = sample_card();
        stored_card.status = CardStatus::Active;
        stored_card.delivered_on = Some(day("2026-01-11"));
        let stored_merchant = sample_merchant();
        let txn = registry.db.begin_write().unwrap();
        let key = stored_card.card_id.0.to_string();
        txn.open_table(CARDS)
            .unwrap()
            .insert(key.as_str(), card_v2_bytes(&stored_card).as_slice())
            .unwrap();
        txn.open_table(PAN_INDEX)
            .unwrap()
            .insert(stored_card.pan.expose(), key.as_str())
            .unwrap();
        txn.open_table(MERCHANTS)
            .unwrap()
            .insert(
                stored_merchant.merchant_id.as_str(),
                merchant_v1_bytes(&stored_merchant).as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();

        let card = registry.card_by_pan(&stored_card.pan).await.unwrap();
        let card = card.expect("the card loads");
        assert_eq!(card, stored_card);
        assert_eq!(registry.cards().await.unwrap(), vec![card.clone()]);
        let merchant_id = stored_merchant.merchant_id.clone();
        let merchant = registry.merchant(&merchant_id).await.unwrap().unwrap();
        assert_eq!(merchant, stored_merchant);
        assert_eq!(registry.merchants().await.unwrap(), vec![merchant.clone()]);
        assert!(merchant.active_on(day("2020-01-01")));

        let mut lost = card.clone();
        lost.set_status(CardStatus::Lost, day("2026-10-05"));
        let mut suspended = merchant.clone();
        suspended.set_active(false, day("2026-09-01"));
        registry
            .apply(vec![
                RegistryOp::Replace {
                    expected: RegistryRecord::Card(card),
                    new: RegistryRecord::Card(lost.clone()),
                },
                RegistryOp::Replace {
                    expected: RegistryRecord::Merchant(merchant),
                    new: RegistryRecord::Merchant(suspended.clone()),
                },
            ])
            .await
            .unwrap();
        let card = registry.card(lost.card_id).await.unwrap().unwrap();
        assert_eq!(card, lost);
        assert_eq!(card.status_on(day("2026-06-30")), CardStatus::Active);
        assert_eq!(card.status_on(day("2026-12-31")), CardStatus::Lost);
        let merchant = registry.merchant(&merchant_id).await.unwrap().unwrap();
        assert_eq!(merchant, suspended);
        assert!(merchant.active_on(day("2026-06-30")));
        assert!(!merchant.active_on(day("2026-12-31")));
        drop(registry);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
