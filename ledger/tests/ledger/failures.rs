//! When the journal cannot write, nothing is acknowledged and nothing moves.

use crate::support::*;
use ssn_ledger::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A file journal that fails every write once `failing` is set, like a full or vanished disk.
#[derive(Debug)]
struct FailingJournal {
    inner: FileJournal,
    failing: Arc<AtomicBool>,
}

impl JournalStore for FailingJournal {
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> std::io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk gone"));
        }
        self.inner.append_durable(entries)
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_write_acknowledges_nothing_and_moves_nothing() {
    let dir = TempDir::new("failing");
    let failing = Arc::new(AtomicBool::new(false));
    let balances = Arc::new(MemoryBalances::new());
    let stores = LedgerStores {
        journal: Box::new(FailingJournal {
            inner: FileJournal::open(&dir.0.join("journal.log")).unwrap(),
            failing: Arc::clone(&failing),
        }),
        registry: Arc::new(RedbRegistry::open(&dir.0.join("registry.redb")).unwrap()),
        balances: balances.clone(),
    };
    let ledger = Ledger::open_with(stores).await.unwrap();
    let program = ProgramCode::new("SSN2025").unwrap();
    ledger
        .define_program(Program {
            code: program.clone(),
            name: "SSN".into(),
            budget_year: 2025,
            benefit_amount: rp(300_000),
            allowed_categories: vec!["01".into()],
            basket_required: false,
            purchase_amount_max: rp(1_000_000),
            purchases_per_day_max: 10,
            pocket_expires_at: day("2025-12-31"),
        })
        .await
        .unwrap();
    let card = CardId(1);
    ledger
        .registry()
        .apply(enrolment(1, std::slice::from_ref(&program)))
        .await
        .unwrap();
    ledger
        .fund_program(&program, rp(300_000), "F1", t0())
        .await
        .unwrap();
    ledger.disburse(&program, "2025-10", t0()).await.unwrap();

    failing.store(true, Ordering::SeqCst);
    let request = purchase_at(key(1, 1), card, rp(10_000), None, t0());
    let answer = ledger.authorize_purchase(request.clone()).await;
    assert!(
        matches!(answer, Err(LedgerError::Unavailable(_))),
        "{answer:?}"
    );
    // The store's debit was undone: the cache still holds what the journal holds.
    assert_eq!(
        balances.pockets(card).await.unwrap()[0].balance,
        rp(300_000)
    );
    // Once a write failed, nothing more is accepted until the ledger is reopened.
    failing.store(false, Ordering::SeqCst);
    let later = ledger
        .authorize_purchase(purchase_at(key(1, 2), card, rp(1_000), None, t0()))
        .await;
    assert!(
        matches!(later, Err(LedgerError::Unavailable(_))),
        "{later:?}"
    );
    drop(ledger);

    // Reopened: the failed purchase never happened, and it can be made now.
    let ledger = Ledger::open(LedgerConfig::embedded(&dir.0)).await.unwrap();
    assert_eq!(ledger.find_authorization(&request.key), None);
    let approved = ledger.authorize_purchase(request).await.unwrap();
    assert_eq!(approved.response.code, ResponseCode::APPROVED);
    assert_eq!(ledger.pockets(card).await.unwrap()[0].balance, rp(290_000));
    drop(ledger);
    verify(&dir.0).unwrap();
}
