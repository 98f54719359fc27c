//! The redb registry: unique keys and indexes, compare-and-set, all-or-nothing, tokens, audit,
//! and the wrong-PIN count on top of it.

use crate::support::*;
use ssn_ledger::*;
use std::sync::Arc;

fn beneficiary(ssn: &str, nik: &str) -> Beneficiary {
    Beneficiary {
        ssn: ssn.into(),
        nik: Nik(nik.into()),
        kk: Kk("6472010101000001".into()),
        name: "Siti".into(),
        birth_date: day("1980-05-01"),
        sex: Sex::Female,
        address: "Jl. Contoh".into(),
        kecamatan: "Palaran".into(),
        kelurahan: "Rawa Makmur".into(),
        desil: 1,
        status: BeneficiaryStatus::Imported,
        enrolments: Vec::new(),
        possible_duplicate: false,
        import_batch: 1,
        absent_from_dtsen: false,
        enrolment_history: Vec::new(),
        past_kecamatan: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_keys_compare_and_set_and_all_or_nothing() {
    let dir = TempDir::new("registry");
    let registry = RedbRegistry::open(&dir.0.join("registry.redb")).unwrap();
    let first = beneficiary("SSN1", "6472014105800001");
    registry
        .apply(vec![RegistryOp::Insert(RegistryRecord::Beneficiary(
            first.clone(),
        ))])
        .await
        .unwrap();
    // Same NIK under another SSN: a duplicate person, refused.
    let twin = beneficiary("SSN2", "6472014105800001");
    let refused = registry
        .apply(vec![RegistryOp::Insert(RegistryRecord::Beneficiary(twin))])
        .await;
    assert!(
        matches!(refused, Err(RegistryError::Conflict(_))),
        "{refused:?}"
    );
    // All or nothing: a good insert next to a bad one leaves no trace.
    let good = beneficiary("SSN3", "6472014105800003");
    let again = beneficiary("SSN1", "6472014105800009");
    let refused = registry
        .apply(vec![
            RegistryOp::Insert(RegistryRecord::Beneficiary(good)),
            RegistryOp::Insert(RegistryRecord::Beneficiary(again)),
        ])
        .await;
    assert!(refused.is_err());
    assert_eq!(registry.beneficiary("SSN3").await.unwrap(), None);
    assert_eq!(
        registry
            .beneficiary_by_nik(&Nik("6472014105800001".into()))
            .await
            .unwrap(),
        Some(first.clone())
    );

    // Compare-and-set: a writer that read an older version loses.
    let mut verified = first.clone();
    verified.status = BeneficiaryStatus::Verified;
    let cas = |expected: &Beneficiary, new: &Beneficiary| RegistryOp::Replace {
        expected: RegistryRecord::Beneficiary(expected.clone()),
        new: RegistryRecord::Beneficiary(new.clone()),
    };
    registry.apply(vec![cas(&first, &verified)]).await.unwrap();
    let mut rejected = first.clone();
    rejected.status = BeneficiaryStatus::Rejected;
    assert!(matches!(
        registry.apply(vec![cas(&first, &rejected)]).await,
        Err(RegistryError::Conflict(_))
    ));
    assert_eq!(
        registry.beneficiary("SSN1").await.unwrap().unwrap().status,
        BeneficiaryStatus::Verified
    );
    assert!(BeneficiaryStatus::Verified.may_become(BeneficiaryStatus::Validated));
    assert!(!BeneficiaryStatus::Imported.may_become(BeneficiaryStatus::Determined));

    assert_eq!(registry.next_number("ssn").await.unwrap(), 1);
    assert_eq!(registry.next_number("ssn").await.unwrap(), 2);
    assert_eq!(registry.next_number("card").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_found_by_hash_and_the_audit_log_appends() {
    let dir = TempDir::new("registry-tokens");
    let registry = RedbRegistry::open(&dir.0.join("registry.redb")).unwrap();
    let token = ApiToken {
        name: "bootstrap".into(),
        role: Role::Admin,
        token_hash: [7; 32],
        expires_at: None,
    };
    registry
        .apply(vec![RegistryOp::Insert(RegistryRecord::Token(
            token.clone(),
        ))])
        .await
        .unwrap();
    assert_eq!(
        registry.token_by_hash(&[7; 32]).await.unwrap(),
        Some(token.clone())
    );
    assert!(
        !format!("{token:?}").contains("7, 7"),
        "a token's Debug shows no hash"
    );
    registry
        .apply(vec![RegistryOp::DeleteToken("bootstrap".into())])
        .await
        .unwrap();
    assert_eq!(registry.token_by_hash(&[7; 32]).await.unwrap(), None);
    assert!(
        registry
            .apply(vec![RegistryOp::DeleteToken("bootstrap".into())])
            .await
            .is_err()
    );

    for action in ["tokens.create", "tokens.delete"] {
        let entry = AuditEntry {
            at_unix_seconds: t0(),
            token_name: "bootstrap".into(),
            role: Role::Admin,
            action: action.into(),
            target: "bootstrap".into(),
            outcome: "ok".into(),
        };
        registry
            .apply(vec![RegistryOp::Audit(entry)])
            .await
            .unwrap();
    }
    let audit = registry.audit(1, 10).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .map(|(n, e)| (*n, e.action.as_str()))
            .collect::<Vec<_>>(),
        [(1, "tokens.create"), (2, "tokens.delete")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_found_by_pan_and_card_data_is_masked() {
    let mut world = World::new(Backend::Embedded).await;
    let card = world.card(&[]).await;
    let stored = world.ledger.registry().card(card).await.unwrap().unwrap();
    let by_pan = world
        .ledger
        .registry()
        .card_by_pan(&stored.pan)
        .await
        .unwrap();
    assert_eq!(by_pan.as_ref().map(|c| c.card_id), Some(card));
    let shown = format!("{stored:?}");
    assert!(!shown.contains(stored.pan.expose()), "{shown}");
    assert!(shown.contains("604872******"), "{shown}");
    assert!(!shown.contains(stored.pvv.expose()), "{shown}");
    // A second card with the same PAN is refused.
    let mut copy = stored.clone();
    copy.card_id = CardId(999);
    let refused = world
        .ledger
        .registry()
        .apply(vec![RegistryOp::Insert(RegistryRecord::Card(copy))])
        .await;
    assert!(
        matches!(refused, Err(RegistryError::Conflict(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_wrong_pin_locks_and_a_correct_one_resets() {
    let mut world = World::new(Backend::Embedded).await;
    let card = world.card(&[]).await;
    let ledger = &world.ledger;
    assert_eq!(
        ledger.record_pin_check(card, false, 0).await.unwrap(),
        PinOutcome::Wrong
    );
    assert_eq!(
        ledger.record_pin_check(card, true, 0).await.unwrap(),
        PinOutcome::Correct
    );
    assert_eq!(
        ledger
            .registry()
            .card(card)
            .await
            .unwrap()
            .unwrap()
            .wrong_pin_count,
        0
    );
    assert_eq!(
        ledger.record_pin_check(card, false, 0).await.unwrap(),
        PinOutcome::Wrong
    );
    assert_eq!(
        ledger.record_pin_check(card, false, 0).await.unwrap(),
        PinOutcome::Wrong
    );
    assert_eq!(
        ledger.record_pin_check(card, false, 0).await.unwrap(),
        PinOutcome::Locked
    );
    assert_eq!(
        ledger.record_pin_check(card, true, 0).await.unwrap(),
        PinOutcome::Locked,
        "locked stays locked"
    );

    // Concurrent wrong PINs on one card all count: the third locks, whoever it is.
    let other = world.card(&[]).await;
    let world = Arc::new(world);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let world = Arc::clone(&world);
            tokio::spawn(async move {
                world
                    .ledger
                    .record_pin_check(other, false, 0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == PinOutcome::Wrong).count(),
        2,
        "{outcomes:?}"
    );
    assert!(
        world
            .ledger
            .registry()
            .card(other)
            .await
            .unwrap()
            .unwrap()
            .pin_locked()
    );
}
