//! `verify` finds any flipped byte, and the binary reports it.

use crate::support::*;
use ssn_ledger::*;
use std::path::Path;
use std::process::Command;

/// A small xorshift: the tests need reproducible randomness, not good randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn journal_with_activity() -> World {
    let mut world = World::new(Backend::Embedded).await;
    let program = world.program("SSN2025", Rules::default()).await;
    let card = world.card(&[&program]).await;
    world.fund(&program, rp(300_000)).await;
    world.disburse(&program, "2025-10").await;
    for amount in 1..=20 {
        world
            .ledger
            .authorize_purchase(world.purchase(card, rp(amount), None))
            .await
            .unwrap();
    }
    world
}

fn run_verify(dir: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ssn-ledger"))
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run ssn-ledger");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_any_flipped_byte() {
    let world = journal_with_activity().await;
    let dir = world.dir.0.clone();
    let World {
        ledger, dir: keep, ..
    } = world;
    drop(ledger);
    let report = verify(&dir).expect("an untouched journal verifies");
    assert_eq!(report.entries, 22);
    assert_eq!(run_verify(&dir).0, 0);

    let path = dir.join("journal.log");
    let pristine = std::fs::read(&path).unwrap();
    let mut rng = Rng(0x5eed_0001);
    // Every byte position class: magic, frame headers, bodies, hashes, the last entry.
    let mut positions: Vec<usize> = (0..40)
        .map(|_| rng.below(pristine.len() as u64) as usize)
        .collect();
    positions.extend([0, 8, 12, pristine.len() - 1, pristine.len() - 40]);
    for position in positions {
        let mut damaged = pristine.clone();
        damaged[position] ^= 1 << rng.below(8);
        std::fs::write(&path, &damaged).unwrap();
        let result = verify(&dir);
        assert!(
            matches!(result, Err(VerifyError::Broken(_))),
            "flip at byte {position} went unnoticed: {result:?}"
        );
    }
    let mut damaged = pristine.clone();
    damaged[pristine.len() / 2] ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();
    let (status, stdout) = run_verify(&dir);
    assert_eq!(status, 1, "{stdout}");
    assert!(stdout.contains("BROKEN"), "{stdout}");
    // Opening refuses a journal broken in the middle: that is damage, not a torn write.
    let reopened = Ledger::open(LedgerConfig::embedded(&dir)).await;
    assert!(
        matches!(reopened, Err(LedgerError::Unavailable(_))),
        "{reopened:?}"
    );
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_sets_aside_a_torn_last_write() {
    let world = journal_with_activity().await;
    let World { ledger, dir, .. } = world;
    drop(ledger);
    let path = dir.0.join("journal.log");
    let pristine = std::fs::read(&path).unwrap();
    // Half of the last frame reached the disk.
    std::fs::write(&path, &pristine[..pristine.len() - 30]).unwrap();
    assert!(matches!(
        verify(&dir.0),
        Err(VerifyError::Broken(Break {
            kind: BreakKind::Truncated,
            ..
        }))
    ));
    let ledger = Ledger::open(LedgerConfig::embedded(&dir.0)).await.unwrap();
    let (torn, side) = ledger
        .open_report()
        .torn_tail
        .clone()
        .expect("a torn tail was set aside");
    assert_eq!(torn.kind, BreakKind::Truncated);
    assert!(side.exists());
    assert_eq!(ledger.state().entries, 21);
    drop(ledger);
    assert_eq!(verify(&dir.0).unwrap().entries, 21);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// The journal reader is a parser of untrusted bytes (a copy handed to an auditor, a
    /// damaged disk): whatever follows the magic, verify answers and never panics, and a file
    /// without a single whole entry never verifies as more than empty.
    #[test]
    fn verify_never_panics_on_arbitrary_bytes(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let dir = TempDir::new("proptest-verify");
        let mut bytes = JOURNAL_MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        std::fs::write(dir.0.join("journal.log"), &bytes).unwrap();
        match verify(&dir.0) {
            Ok(report) => proptest::prop_assert!(tail.is_empty() && report.entries == 0),
            Err(VerifyError::Broken(_)) => {}
            Err(other) => proptest::prop_assert!(false, "unexpected: {other}"),
        }
    }
}

/// A record journaled twice (on Scylla, a terminal's retry on another node answered there
/// from Redis) is kept once when identical, whenever each copy was accepted; other content
/// under the same transfer id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_record_journaled_twice_is_kept_once() {
    let world = journal_with_activity().await;
    let World {
        ledger, dir: keep, ..
    } = world;
    drop(ledger);
    let mut entries = Vec::new();
    let mut journal = FileJournal::open(&keep.0.join("journal.log")).unwrap();
    let end = journal
        .replay(&mut |entry, _| {
            entries.push(entry.decode().unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(end, None);
    let mut state = State::default();
    for entry in &entries {
        state.apply(entry).unwrap();
    }
    let balances = |state: &State| {
        let mut all: Vec<(String, Money)> = state
            .accounts
            .iter()
            .map(|(account, money)| (format!("{account:?}"), *money))
            .collect();
        for (card, card_state) in &state.cards {
            for (program, money) in &card_state.pockets {
                all.push((format!("{card:?}/{program:?}"), *money));
            }
        }
        all.sort();
        all
    };
    let before = balances(&state);
    let purchases_before = state.purchases.len();
    let log_before = state.log.len();
    for entry in &entries {
        // Again, accepted by another node a second later.
        let mut again = entry.clone();
        again.at_unix_seconds += 1;
        if matches!(again.record, Record::BatchClose { .. }) {
            continue;
        }
        assert_eq!(state.apply(&again), Ok(Applied::Done), "{:?}", again.record);
    }
    assert_eq!(balances(&state), before);
    assert_eq!(state.purchases.len(), purchases_before);
    assert_eq!(state.log.len(), log_before);
    assert_eq!(state.sum_of_balances(), Some(Money::ZERO));

    // Other content under an id already applied is a conflict, purchase or not.
    let purchase = entries
        .iter()
        .find(|entry| {
            matches!(&entry.record, Record::Purchase(p) if p.response.code == ResponseCode::APPROVED)
        })
        .unwrap();
    let mut other = purchase.clone();
    if let Record::Purchase(p) = &mut other.record {
        p.response.rrn = Rrn::new("999999999999").unwrap();
    }
    assert!(matches!(
        state.apply(&other),
        Err(InvariantError::DuplicateTransfer(_))
    ));
    let funding = entries
        .iter()
        .find(|entry| matches!(entry.record, Record::Funding { .. }))
        .unwrap();
    let mut other = funding.clone();
    if let Record::Funding { amount, .. } = &mut other.record {
        *amount = rp(1);
    }
    assert!(matches!(
        state.apply(&other),
        Err(InvariantError::DuplicateTransfer(_))
    ));
}
