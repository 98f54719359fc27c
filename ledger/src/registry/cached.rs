//! A read cache in front of any [`Registry`] for the four records every 0200 reads: the
//! terminal, its E-Warong, the card (by PAN) and its beneficiary.
//!
//! Two modes, chosen by [`Registry::exclusive`]:
//! - **Exclusive** (the embedded redb registry, which no other process can open while this one
//!   holds it): entries are kept until this process writes the record, and cards are cached
//!   too. Every write through [`Registry::apply`] removes the records it touches, whatever its
//!   outcome, so a suspension, a block or a wrong-PIN count made here is seen by the next read.
//! - **Shared** (Scylla: other switch nodes write the same registry): terminals, E-Warong and
//!   beneficiaries only, each trusted for [`REGISTRY_CACHE_TTL`] (the longest another node's
//!   change takes to be seen here); every write through this process empties the cache. Cards
//!   are not cached: their wrong-PIN count changes on every PIN check on any node and is
//!   written with compare-and-set against what was read.
//!
//! In both modes only records found are cached (a terminal created anywhere is usable at
//! once), at most [`REGISTRY_CACHE_ENTRIES_MAX`] per kind (a full kind is emptied), and a read
//! that raced a write is not cached: each read notes the cache's generation before it starts,
//! and stores its answer only if no write began or ended meanwhile (checked under the shelf's
//! lock, which the write's removal takes too).

use super::{
    AlertCursor, AlertFilter, AlertRecord, ApiToken, AuditEntry, Beneficiary, Card, Determination,
    HostKeys, Merchant, Nik, Pan, Program, Registry, RegistryError, RegistryOp, RegistryRecord,
    Terminal,
};
use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use async_trait::async_trait;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a cached terminal, E-Warong or beneficiary is trusted in front of a shared
/// registry: the longest another node's change takes to be seen here.
pub const REGISTRY_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries per kind; past it the kind is emptied and refilled.
pub const REGISTRY_CACHE_ENTRIES_MAX: usize = 200_000;

/// One kind of cached record, shared: a hit costs a reference count, not a clone.
struct Shelf<K, V> {
    entries: RwLock<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Eq + Hash + Clone, V> Shelf<K, V> {
    fn new() -> Shelf<K, V> {
        Shelf {
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// A fresh entry: any age when `ttl` is `None`.
    fn get<Q>(&self, key: &Q, ttl: Option<Duration>) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| ttl.is_none_or(|ttl| at.elapsed() < ttl))
            .map(|(_, value)| Arc::clone(value))
    }

    /// Stores what a read found, unless a write began or ended since the read started
    /// (`generation` is what the cache's counter said then).
    fn put(&self, key: K, value: Arc<V>, read_at: Instant, generation: u64, now: &AtomicU64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if now.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= REGISTRY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, (read_at, value));
    }

    fn remove(&self, key: &K) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Puts `records` on `shelf` (at most half its limit), sized once.
fn fill<K: Eq + Hash + Clone, V>(
    shelf: &Shelf<K, V>,
    records: Vec<V>,
    key: impl Fn(&V) -> K,
) -> usize {
    let now = Instant::now();
    let mut entries = shelf.entries.write().unwrap_or_else(|p| p.into_inner());
    let room = REGISTRY_CACHE_ENTRIES_MAX / 2;
    entries.reserve(records.len().min(room));
    let before = entries.len();
    for record in records.into_iter().take(room) {
        entries.insert(key(&record), (now, Arc::new(record)));
    }
    entries.len() - before
}

/// The key of a cached record that a write touches.
enum Touched {
    Terminal(TerminalId),
    Merchant(MerchantId),
    Beneficiary(String),
    Card(Pan),
}

/// The cached records `ops` write (both sides of a replace).
fn touched(ops: &[RegistryOp]) -> Vec<Touched> {
    let key = |record: &RegistryRecord| match record {
        RegistryRecord::Terminal(t) => Some(Touched::Terminal(t.terminal_id.clone())),
        RegistryRecord::Merchant(m) => Some(Touched::Merchant(m.merchant_id.clone())),
        RegistryRecord::Beneficiary(b) => Some(Touched::Beneficiary(b.ssn.clone())),
        RegistryRecord::Card(c) => Some(Touched::Card(c.pan.clone())),
        RegistryRecord::HostKeys(_)
        | RegistryRecord::Program(_)
        | RegistryRecord::Determination(_)
        | RegistryRecord::Token(_)
        | RegistryRecord::Alert(_) => None,
    };
    let mut out = Vec::new();
    for op in ops {
        match op {
            RegistryOp::Insert(record) | RegistryOp::Upsert(record) => out.extend(key(record)),
            RegistryOp::Replace { expected, new } => {
                out.extend(key(expected));
                out.extend(key(new));
            }
            RegistryOp::DeleteToken(_) | RegistryOp::Audit(_) => {}
        }
    }
    out
}

/// The cache around a registry.
pub struct CachedRegistry {
    inner: Arc<dyn Registry>,
    /// `None` in front of an exclusive registry: entries live until this process writes.
    ttl: Option<Duration>,
    /// Bumped by every write, before and after it.
    generation: AtomicU64,
    terminals: Shelf<TerminalId, Terminal>,
    merchants: Shelf<MerchantId, Merchant>,
    beneficiaries: Shelf<String, Beneficiary>,
    /// Only in front of an exclusive registry.
    cards: Option<Shelf<Pan, Card>>,
}

impl fmt::Debug for CachedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRegistry")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CachedRegistry {
    /// A cache in front of `inner`, in the mode its [`Registry::exclusive`] calls for.
    pub fn new(inner: Arc<dyn Registry>) -> CachedRegistry {
        let exclusive = inner.exclusive();
        CachedRegistry::with_mode(inner, exclusive)
    }

    /// A cache in the given mode whatever `inner` says (tests of the shared mode on redb).
    fn with_mode(inner: Arc<dyn Registry>, exclusive: bool) -> CachedRegistry {
        CachedRegistry {
            inner,
            ttl: (!exclusive).then_some(REGISTRY_CACHE_TTL),
            generation: AtomicU64::new(0),
            terminals: Shelf::new(),
            merchants: Shelf::new(),
            beneficiaries: Shelf::new(),
            cards: exclusive.then(Shelf::new),
        }
    }

    /// Fills the cache from the inner registry before traffic arrives, so that the first
    /// purchase of each card after a start reads no disk and the shelves never grow (and
    /// rehash, under their locks) while serving. Exclusive mode only (a shared registry's
    /// entries would expire within the TTL anyway); at most half of
    /// [`REGISTRY_CACHE_ENTRIES_MAX`] per kind, leaving room for what is created later.
    /// Returns how many records it cached.
    pub async fn warm(&self) -> Result<usize, RegistryError> {
        let Some(cards) = &self.cards else {
            return Ok(0);
        };
        let generation = self.generation.load(Ordering::Acquire);
        let mut total = 0;
        total += fill(&self.terminals, self.inner.terminals().await?, |t| {
            t.terminal_id.clone()
        });
        total += fill(&self.merchants, self.inner.merchants().await?, |m| {
            m.merchant_id.clone()
        });
        total += fill(cards, self.inner.cards().await?, |c| c.pan.clone());
        total += fill(
            &self.beneficiaries,
            self.inner.beneficiaries().await?,
            |b| b.ssn.clone(),
        );
        // Filled from reads that a write may have raced: start again empty rather than keep
        // them (the next reads fill the cache one record at a time).
        if self.generation.load(Ordering::Acquire) != generation {
            self.terminals.clear();
            self.merchants.clear();
            cards.clear();
            self.beneficiaries.clear();
            return Ok(0);
        }
        Ok(total)
    }

    /// After a write: removes what it touched (exclusive), or everything (shared).
    fn forget(&self, touched: &[Touched]) {
        if self.ttl.is_some() {
            self.terminals.clear();
            self.merchants.clear();
            self.beneficiaries.clear();
            return;
        }
        for key in touched {
            match key {
                Touched::Terminal(id) => self.terminals.remove(id),
                Touched::Merchant(id) => self.merchants.remove(id),
                Touched::Beneficiary(ssn) => self.beneficiaries.remove(ssn),
                Touched::Card(pan) => {
                    if let Some(cards) = &self.cards {
                        cards.remove(pan);
                    }
                }
            }
        }
    }

    /// Reads through `shelf`: a fresh entry, or the inner registry's answer (cached when found
    /// and no write happened during the read).
    /// The key is borrowed (`&str` for an SSN): a hit allocates nothing.
    async fn through<K, Q, V, F>(
        &self,
        shelf: &Shelf<K, V>,
        key: &Q,
        read: F,
    ) -> Result<Option<Arc<V>>, RegistryError>
    where
        K: Eq + Hash + Clone + Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: std::future::Future<Output = Result<Option<V>, RegistryError>>,
    {
        if let Some(value) = shelf.get(key, self.ttl) {
            return Ok(Some(value));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let read_at = Instant::now();
        // Reads that reach the store: what a purchase costs the registry (benchmarks).
        metrics::counter!("ssn_registry_store_reads_total").increment(1);
        let found = read.await?.map(Arc::new);
        if let Some(value) = &found {
            shelf.put(
                key.to_owned(),
                Arc::clone(value),
                read_at,
                generation,
                &self.generation,
            );
        }
        Ok(found)
    }

    /// A terminal, shared (the switch's hot path: no copy of the record).
    pub async fn terminal_shared(
        &self,
        id: &TerminalId,
    ) -> Result<Option<Arc<Terminal>>, RegistryError> {
        self.through(&self.terminals, id, self.inner.terminal(id))
            .await
    }

    /// An E-Warong, shared.
    pub async fn merchant_shared(
        &self,
        id: &MerchantId,
    ) -> Result<Option<Arc<Merchant>>, RegistryError> {
        self.through(&self.merchants, id, self.inner.merchant(id))
            .await
    }

    /// A beneficiary by SSN number, shared.
    pub async fn beneficiary_shared(
        &self,
        ssn: &str,
    ) -> Result<Option<Arc<Beneficiary>>, RegistryError> {
        self.through(&self.beneficiaries, ssn, self.inner.beneficiary(ssn))
            .await
    }

    /// A card by PAN, shared (read from the store each time in the shared mode).
    pub async fn card_by_pan_shared(&self, pan: &Pan) -> Result<Option<Arc<Card>>, RegistryError> {
        match &self.cards {
            Some(cards) => self.through(cards, pan, self.inner.card_by_pan(pan)).await,
            None => {
                metrics::counter!("ssn_registry_store_reads_total").increment(1);
                Ok(self.inner.card_by_pan(pan).await?.map(Arc::new))
            }
        }
    }
}

#[async_trait]
impl Registry for CachedRegistry {
    async fn apply(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        // Before: a read in flight now will not be cached. After, then the removal: nothing
        // read before the write outlives it (a read's store checks the generation under the
        // shelf's lock, which the removal takes after the second bump).
        self.generation.fetch_add(1, Ordering::AcqRel);
        let touched = match self.ttl {
            Some(_) => Vec::new(),
            None => touched(&ops),
        };
        let result = self.inner.apply(ops).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.forget(&touched);
        result
    }

    async fn next_number(&self, sequence: &str) -> Result<u64, RegistryError> {
        self.inner.next_number(sequence).await
    }

    async fn next_numbers(&self, sequence: &str, count: u64) -> Result<u64, RegistryError> {
        self.inner.next_numbers(sequence, count).await
    }

    async fn program(&self, code: &ProgramCode) -> Result<Option<Program>, RegistryError> {
        self.inner.program(code).await
    }

    async fn programs(&self) -> Result<Vec<Program>, RegistryError> {
        self.inner.programs().await
    }

    async fn beneficiary(&self, ssn: &str) -> Result<Option<Beneficiary>, RegistryError> {
        Ok(self
            .beneficiary_shared(ssn)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    async fn beneficiary_by_nik(&self, nik: &Nik) -> Result<Option<Beneficiary>, RegistryError> {
        self.inner.beneficiary_by_nik(nik).await
    }

    async fn beneficiaries(&self) -> Result<Vec<Beneficiary>, RegistryError> {
        self.inner.beneficiaries().await
    }

    async fn determination(&self, id: u64) -> Result<Option<Determination>, RegistryError> {
        self.inner.determination(id).await
    }

    async fn card(&self, card: CardId) -> Result<Option<Card>, RegistryError> {
        self.inner.card(card).await
    }

    async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, RegistryError> {
        Ok(self
            .card_by_pan_shared(pan)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    async fn cards(&self) -> Result<Vec<Card>, RegistryError> {
        self.inner.cards().await
    }

    async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, RegistryError> {
        Ok(self.merchant_shared(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn merchants(&self) -> Result<Vec<Merchant>, RegistryError> {
        self.inner.merchants().await
    }

    async fn terminal(&self, id: &TerminalId) -> Result<Option<Terminal>, RegistryError> {
        Ok(self.terminal_shared(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn terminals(&self) -> Result<Vec<Terminal>, RegistryError> {
        self.inner.terminals().await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, RegistryError> {
        self.inner.token_by_hash(hash).await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, RegistryError> {
        self.inner.tokens().await
    }

    async fn host_keys(&self) -> Result<Option<HostKeys>, RegistryError> {
        self.inner.host_keys().await
    }

    async fn audit(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, RegistryError> {
        self.inner.audit(from, limit).await
    }

    async fn audit_last(&self) -> Result<u64, RegistryError> {
        self.inner.audit_last().await
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, RegistryError> {
        self.inner.alert(id).await
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        after: Option<&AlertCursor>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, RegistryError> {
        self.inner.alerts(filter, after, skip, limit).await
    }

    async fn alerts_count(&self, filter: &AlertFilter) -> Result<u64, RegistryError> {
        self.inner.alerts_count(filter).await
    }

    async fn monitor_checkpoint(&self, node: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        self.inner.monitor_checkpoint(node).await
    }

    async fn set_monitor_checkpoint(
        &self,
        node: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        self.inner.set_monitor_checkpoint(node, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{EncryptedKey, RedbRegistry, RegistryRecord};

    fn terminal(active: bool) -> Terminal {
        let key = EncryptedKey {
            ciphertext: vec![1, 2, 3],
            kcv: "ABCDEF".into(),
        };
        Terminal {
            terminal_id: TerminalId::new("EWR00001").unwrap(),
            merchant_id: MerchantId::new("EWARONG00000001").unwrap(),
            tmk: key.clone(),
            tpk: key,
            active,
            tak: None,
        }
    }

    fn registry(label: &str) -> (std::path::PathBuf, Arc<dyn Registry>) {
        let dir = std::env::temp_dir().join(format!(
            "ssn-cached-registry-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let inner = RedbRegistry::open(&dir.join("registry.redb")).unwrap();
        (dir, Arc::new(inner))
    }

    fn suspend() -> RegistryOp {
        RegistryOp::Replace {
            expected: RegistryRecord::Terminal(terminal(true)),
            new: RegistryRecord::Terminal(terminal(false)),
        }
    }

    fn card(wrong_pin_count: u8) -> Card {
        Card {
            card_id: CardId(7),
            ssn: "SSN000000007".into(),
            pan: Pan("6048720000000070".into()),
            expiry: "3012".into(),
            status: crate::registry::CardStatus::Active,
            pvv: crate::registry::Pvv("1234".into()),
            wrong_pin_count,
            replaced_by: None,
            issued_on: None,
            delivered_on: None,
            changes: Vec::new(),
        }
    }

    /// Suspends the terminal and counts a wrong PIN on the card straight in the store.
    async fn change_behind_the_cache(inner: &dyn Registry) {
        let wrong_pin = RegistryOp::Replace {
            expected: RegistryRecord::Card(card(0)),
            new: RegistryRecord::Card(card(1)),
        };
        inner.apply(vec![suspend(), wrong_pin]).await.unwrap();
    }

    #[tokio::test]
    async fn an_exclusive_registry_is_cached_until_this_process_writes_the_record() {
        let (dir, inner) = registry("exclusive");
        assert!(inner.exclusive());
        // redb's lock is what makes it exclusive: nobody else can open the file meanwhile.
        assert!(RedbRegistry::open(&dir.join("registry.redb")).is_err());
        let cached = CachedRegistry::new(inner.clone());
        let id = terminal(true).terminal_id;
        let pan = card(0).pan;
        inner
            .apply(vec![
                RegistryOp::Insert(RegistryRecord::Terminal(terminal(true))),
                RegistryOp::Insert(RegistryRecord::Card(card(0))),
            ])
            .await
            .unwrap();
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        assert_eq!(cached.card_by_pan(&pan).await.unwrap(), Some(card(0)));

        // Written behind the cache's back (which no real process can do): both entries
        // outlive the shared mode's TTL, which is what makes them cheap.
        change_behind_the_cache(inner.as_ref()).await;
        tokio::time::sleep(REGISTRY_CACHE_TTL + Duration::from_millis(100)).await;
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        assert_eq!(cached.card_by_pan(&pan).await.unwrap(), Some(card(0)));

        // A write through the cache removes exactly the records it touches, refused or not:
        // the card's compare-and-set fails (the store has count 1), and the next read sees
        // the store; the terminal, untouched, is still the cached one.
        let refused = cached
            .apply(vec![RegistryOp::Replace {
                expected: RegistryRecord::Card(card(0)),
                new: RegistryRecord::Card(card(2)),
            }])
            .await;
        assert!(refused.is_err());
        assert_eq!(cached.card_by_pan(&pan).await.unwrap(), Some(card(1)));
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        cached
            .apply(vec![RegistryOp::Replace {
                expected: RegistryRecord::Card(card(1)),
                new: RegistryRecord::Card(card(2)),
            }])
            .await
            .unwrap();
        assert_eq!(cached.card_by_pan(&pan).await.unwrap(), Some(card(2)));
        let _ = cached.apply(vec![suspend()]).await;
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(false)));
        drop((cached, inner));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn warming_reads_every_record_once_and_only_in_front_of_an_exclusive_registry() {
        let (dir, inner) = registry("warm");
        inner
            .apply(vec![
                RegistryOp::Insert(RegistryRecord::Terminal(terminal(true))),
                RegistryOp::Insert(RegistryRecord::Card(card(0))),
            ])
            .await
            .unwrap();
        assert_eq!(
            CachedRegistry::with_mode(inner.clone(), false)
                .warm()
                .await
                .unwrap(),
            0
        );
        let cached = CachedRegistry::new(inner.clone());
        assert_eq!(cached.warm().await.unwrap(), 2);
        // Changed behind the cache after warming: the warmed records answer, so they came
        // from the warm-up and not from a read now.
        change_behind_the_cache(inner.as_ref()).await;
        let id = terminal(true).terminal_id;
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        assert_eq!(
            cached.card_by_pan(&card(0).pan).await.unwrap(),
            Some(card(0))
        );
        drop((cached, inner));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_write_here_is_seen_at_once_and_one_elsewhere_within_the_ttl() {
        let (dir, inner) = registry("ttl");
        let cached = CachedRegistry::with_mode(inner.clone(), false);
        let id = terminal(true).terminal_id;
        // Not found is not cached: a terminal installed elsewhere is usable at once.
        assert_eq!(cached.terminal(&id).await.unwrap(), None);
        inner
            .apply(vec![RegistryOp::Insert(RegistryRecord::Terminal(
                terminal(true),
            ))])
            .await
            .unwrap();
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));

        // Suspended by another process (straight into the store): the cache still says
        // active, until its entry is older than the TTL.
        inner.apply(vec![suspend()]).await.unwrap();
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        tokio::time::sleep(REGISTRY_CACHE_TTL + Duration::from_millis(100)).await;
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(false)));

        // Activated through the cache: seen by the very next read.
        cached
            .apply(vec![RegistryOp::Replace {
                expected: RegistryRecord::Terminal(terminal(false)),
                new: RegistryRecord::Terminal(terminal(true)),
            }])
            .await
            .unwrap();
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(true)));
        // A refused write empties the cache too.
        inner.apply(vec![suspend()]).await.unwrap();
        assert!(cached.apply(vec![suspend()]).await.is_err());
        assert_eq!(cached.terminal(&id).await.unwrap(), Some(terminal(false)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
