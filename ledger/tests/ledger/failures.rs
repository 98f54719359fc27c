//! When the journal cannot write, nothing is acknowledged and nothing moves; once the store
//! is back, the journal recovers by itself, without reopening the ledger.

use crate::support::*;
use ssn_ledger::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A file journal that fails every write once `failing` is set, like a full or vanished disk;
/// with `written_anyway`, the failed write reached the disk whole and only its
/// acknowledgement was lost (a cluster's timeout after the replicas had it). While failing,
/// reading fails too, like a cluster that is down.
#[derive(Debug)]
struct FailingJournal {
    inner: FileJournal,
    failing: Arc<AtomicBool>,
    written_anyway: bool,
}

impl JournalStore for FailingJournal {
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> std::io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            if self.written_anyway {
                self.inner.append_durable(entries)?;
            }
            return Err(std::io::Error::other("disk gone"));
        }
        self.inner.append_durable(entries)
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk gone"));
        }
        self.inner.replay(visit)
    }

    fn cut_tail(
        &mut self,
        found: &Break,
        bytes_max: u64,
    ) -> std::io::Result<Option<std::path::PathBuf>> {
        self.inner.cut_tail(found, bytes_max)
    }
}

/// A ledger on a [`FailingJournal`] with one card holding Rp 300,000.
async fn funded_ledger(
    dir: &TempDir,
    written_anyway: bool,
) -> (Ledger, Arc<AtomicBool>, Arc<MemoryBalances>, CardId) {
    let failing = Arc::new(AtomicBool::new(false));
    let journal = Box::new(FailingJournal {
        inner: FileJournal::open(&dir.0.join("journal.log")).unwrap(),
        failing: Arc::clone(&failing),
        written_anyway,
    });
    let (ledger, balances, card) = funded_ledger_on(dir, journal).await;
    (ledger, failing, balances, card)
}

/// Sends `request` until it is approved, for at most `RECOVERY_DEADLINE`; every other
/// answer on the way must be `Unavailable` (`91`).
async fn approved_after_recovery(ledger: &Ledger, request: &PurchaseRequest) -> Authorization {
    const RECOVERY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
    const POLL: std::time::Duration = std::time::Duration::from_millis(50);
    let deadline = std::time::Instant::now() + RECOVERY_DEADLINE;
    loop {
        match ledger.authorize_purchase(request.clone()).await {
            Ok(approved) => return approved,
            Err(LedgerError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            other => panic!("expected approval after recovery, got {other:?}"),
        }
    }
}

/// Makes the journal fail and sends a purchase: `91`, and the store's debit is undone (the
/// cache still holds what the journal holds). Returns the purchase.
async fn purchase_while_failing(
    ledger: &Ledger,
    failing: &AtomicBool,
    balances: &MemoryBalances,
    card: CardId,
) -> PurchaseRequest {
    failing.store(true, Ordering::SeqCst);
    let request = purchase_at(key(1, 1), card, rp(10_000), None, t0());
    let answer = ledger.authorize_purchase(request.clone()).await;
    assert!(
        matches!(answer, Err(LedgerError::Unavailable(_))),
        "{answer:?}"
    );
    assert_eq!(
        balances.pockets(card).await.unwrap()[0].balance,
        rp(300_000)
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_write_acknowledges_nothing_and_moves_nothing() {
    let dir = TempDir::new("failing");
    let (ledger, failing, balances, card) = funded_ledger(&dir, false).await;
    let request = purchase_while_failing(&ledger, &failing, &balances, card).await;
    // Right after a failed write nothing more is accepted, and nothing is answered from a
    // projection that may hold the unwritten purchase: not even its duplicate.
    let later = ledger
        .authorize_purchase(purchase_at(key(1, 2), card, rp(1_000), None, t0()))
        .await;
    assert!(
        matches!(later, Err(LedgerError::Unavailable(_))),
        "{later:?}"
    );
    assert_eq!(
        ledger
            .lookup_purchase(&request.key, &request.fingerprint)
            .await,
        PurchaseLookup::New
    );

    // The disk is back: the ledger recovers by itself, and the failed purchase never happened.
    failing.store(false, Ordering::SeqCst);
    let approved = approved_after_recovery(&ledger, &request).await;
    assert_eq!(approved.response.code, ResponseCode::APPROVED);
    assert!(!approved.duplicate);
    assert_eq!(ledger.pockets(card).await.unwrap()[0].balance, rp(290_000));
    assert!(ledger.cache_differences().await.unwrap().is_empty());
    assert!(ledger.journal_stats().recoveries.load(Ordering::Relaxed) >= 1);
    drop(ledger);

    // Reopened: the same books.
    let ledger = Ledger::open(LedgerConfig::embedded(&dir.0)).await.unwrap();
    let again = ledger.authorize_purchase(request).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(ledger.pockets(card).await.unwrap()[0].balance, rp(290_000));
    drop(ledger);
    verify(&dir.0).unwrap();
}

/// A write that reached the disk but failed to say so: nobody was told it was approved, so
/// recovery sets its entries aside like a torn write, and the retry moves the money once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_acknowledgement_was_lost_is_set_aside_on_recovery() {
    let dir = TempDir::new("failing-written");
    let (ledger, failing, balances, card) = funded_ledger(&dir, true).await;
    let request = purchase_while_failing(&ledger, &failing, &balances, card).await;

    failing.store(false, Ordering::SeqCst);
    let approved = approved_after_recovery(&ledger, &request).await;
    assert!(!approved.duplicate, "the lost write was set aside");
    assert_eq!(
        ledger
            .journal_stats()
            .recovered_torn
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(ledger.pockets(card).await.unwrap()[0].balance, rp(290_000));
    assert!(ledger.cache_differences().await.unwrap().is_empty());
    drop(ledger);

    let report = verify(&dir.0).unwrap();
    let ledger = Ledger::open(LedgerConfig::embedded(&dir.0)).await.unwrap();
    assert_eq!(ledger.pockets(card).await.unwrap()[0].balance, rp(290_000));
    assert_eq!(ledger.state().entries, report.entries);
    // The set-aside write is kept beside the journal for auditors.
    let kept = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("journal.torn-"));
    assert!(kept);
}
