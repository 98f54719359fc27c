//! A read cache in front of any [`Registry`] for the three records every 0200 reads and that
//! change only by an operator's hand: terminals, E-Warong and beneficiaries.
//!
//! - Every write through this process ([`Registry::apply`]) empties the cache, whatever its
//!   outcome, so a suspension or revocation made here is seen by the next request.
//! - A write by another process (another switch node on the same Scylla keyspace) is seen
//!   here after at most [`REGISTRY_CACHE_TTL`].
//! - Only records found are cached (a terminal created anywhere is usable at once), at most
//!   [`REGISTRY_CACHE_ENTRIES_MAX`] per kind; a full kind is emptied.
//! - Cards are never cached: their wrong-PIN count changes on every PIN check and is written
//!   with compare-and-set against what was read.
//! - A read that raced a write is not cached: each entry records the cache's generation
//!   before the read, and is stored only if no write happened meanwhile.

use super::{
    ApiToken, AuditEntry, Beneficiary, Card, Determination, Merchant, Nik, Pan, Program, Registry,
    RegistryError, RegistryOp, Terminal,
};
use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a cached terminal, E-Warong or beneficiary is trusted: the longest another node's
/// change takes to be seen here.
pub const REGISTRY_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries per kind; past it the kind is emptied and refilled.
pub const REGISTRY_CACHE_ENTRIES_MAX: usize = 200_000;

/// One kind of cached record.
struct Shelf<K, V> {
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Shelf<K, V> {
    fn new() -> Shelf<K, V> {
        Shelf {
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < REGISTRY_CACHE_TTL)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, value: V, read_at: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= REGISTRY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, (read_at, value));
    }

    fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The cache around a registry.
pub struct CachedRegistry {
    inner: Arc<dyn Registry>,
    /// Bumped by every write, before and after it.
    generation: AtomicU64,
    terminals: Shelf<TerminalId, Terminal>,
    merchants: Shelf<MerchantId, Merchant>,
    beneficiaries: Shelf<String, Beneficiary>,
}

impl fmt::Debug for CachedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRegistry")
            .field("inner", &self.inner)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CachedRegistry {
    /// A cache in front of `inner`.
    pub fn new(inner: Arc<dyn Registry>) -> CachedRegistry {
        CachedRegistry {
            inner,
            generation: AtomicU64::new(0),
            terminals: Shelf::new(),
            merchants: Shelf::new(),
            beneficiaries: Shelf::new(),
        }
    }

    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.terminals.clear();
        self.merchants.clear();
        self.beneficiaries.clear();
    }

    /// Reads through `shelf`: a fresh entry, or the inner registry's answer (cached when found
    /// and no write happened during the read).
    async fn through<K, V, F>(
        &self,
        shelf: &Shelf<K, V>,
        key: &K,
        read: F,
    ) -> Result<Option<V>, RegistryError>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: std::future::Future<Output = Result<Option<V>, RegistryError>>,
    {
        if let Some(value) = shelf.get(key) {
            return Ok(Some(value));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let read_at = Instant::now();
        let found = read.await?;
        if let Some(value) = &found
            && self.generation.load(Ordering::Acquire) == generation
        {
            shelf.put(key.clone(), value.clone(), read_at);
        }
        Ok(found)
    }
}

#[async_trait]
impl Registry for CachedRegistry {
    async fn apply(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        // Before: a read in flight now will not be cached. After: nothing read before the
        // write outlives it.
        self.forget();
        let result = self.inner.apply(ops).await;
        self.forget();
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
        let key = ssn.to_string();
        self.through(&self.beneficiaries, &key, self.inner.beneficiary(ssn))
            .await
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
        self.inner.card_by_pan(pan).await
    }

    async fn cards(&self) -> Result<Vec<Card>, RegistryError> {
        self.inner.cards().await
    }

    async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, RegistryError> {
        self.through(&self.merchants, id, self.inner.merchant(id))
            .await
    }

    async fn merchants(&self) -> Result<Vec<Merchant>, RegistryError> {
        self.inner.merchants().await
    }

    async fn terminal(&self, id: &TerminalId) -> Result<Option<Terminal>, RegistryError> {
        self.through(&self.terminals, id, self.inner.terminal(id))
            .await
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

    async fn audit(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, RegistryError> {
        self.inner.audit(from, limit).await
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

    #[tokio::test]
    async fn a_write_here_is_seen_at_once_and_one_elsewhere_within_the_ttl() {
        let (dir, inner) = registry("ttl");
        let cached = CachedRegistry::new(inner.clone());
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
