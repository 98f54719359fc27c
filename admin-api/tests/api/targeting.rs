//! A program's own rules at determination: paid per family (one person per family card, KK)
//! and on target (a highest welfare decile, Pasal 3c). A decree that breaks them is refused
//! whole (422), naming every person and why.

use serde_json::json;
use ssn_ledger::*;

use crate::Api;

/// A validated person of family card `kk` in welfare decile `desil`.
fn person(n: u64, kk: &str, desil: u8) -> RegistryOp {
    RegistryOp::Insert(RegistryRecord::Beneficiary(Beneficiary {
        ssn: format!("SSN7000000{n:02}"),
        nik: Nik(format!("64720141018700{n:02}")),
        kk: Kk(kk.into()),
        name: format!("Warga {n}"),
        birth_date: Day::parse_iso("1980-01-01").unwrap(),
        sex: Sex::Female,
        address: "Jl. Pahlawan".into(),
        kecamatan: "Palaran".into(),
        kelurahan: "Rawa Makmur".into(),
        desil,
        status: BeneficiaryStatus::Validated,
        enrolments: Vec::new(),
        possible_duplicate: false,
        import_batch: 1,
        absent_from_dtsen: false,
        enrolment_history: Vec::new(),
        past_kecamatan: Vec::new(),
    }))
}

#[tokio::test]
async fn a_family_program_on_target_refuses_a_second_family_member_and_the_better_off() {
    let api = Api::start("targeting").await;
    let created = api
        .post(
            "dinsos",
            "/api/v1/programs",
            json!({"code": "KELUARGA", "name": "Sembako keluarga", "budget_year": 2026,
                   "benefit_amount": "200000.00", "allowed_categories": ["01"],
                   "basket_required": false, "purchase_amount_max": "200000.00",
                   "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31",
                   "beneficiary_unit": "family", "desil_max": 4}),
        )
        .await;
    let created = created.expect(201);
    assert_eq!(
        (
            created["beneficiary_unit"].clone(),
            created["desil_max"].clone()
        ),
        (json!("family"), json!(4))
    );
    for bad in [
        json!({"beneficiary_unit": "clan"}),
        json!({"desil_max": 11}),
    ] {
        let mut body = json!({"code": "X", "name": "X", "budget_year": 2026,
            "benefit_amount": "1.00", "allowed_categories": ["01"], "basket_required": false,
            "purchase_amount_max": "1.00", "purchases_per_day_max": 1,
            "pocket_expires_at": "2026-12-31"});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        api.post("dinsos", "/api/v1/programs", body)
            .await
            .expect_error(400, "malformed");
    }
    let family_a = "6472010000000101";
    api.ledger
        .registry()
        .apply(vec![
            person(1, family_a, 2),
            person(2, family_a, 3),
            person(3, "6472010000000102", 6),
            person(4, "6472010000000103", 1),
        ])
        .await
        .unwrap();
    let decree = |ssns: &[&str]| {
        json!({"decree_number": "188.45/9/2026", "decree_date": "2026-11-28",
               "program_code": "KELUARGA", "ssns": ssns})
    };
    let refused = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree(&["SSN700000001", "SSN700000002"]),
        )
        .await;
    let message = refused.expect_error(422, "refused");
    assert!(
        message.contains("SSN700000002 and SSN700000001 are one family"),
        "{message}"
    );
    let refused = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree(&["SSN700000003"]),
        )
        .await;
    let message = refused.expect_error(422, "refused");
    assert!(
        message.contains("SSN700000003 is in desil 6, above the program's 4"),
        "{message}"
    );
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree(&["SSN700000001", "SSN700000004"]),
    )
    .await
    .expect(201);
    let refused = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree(&["SSN700000002"]),
        )
        .await;
    let message = refused.expect_error(422, "refused");
    assert!(
        message.contains("SSN700000002's family already has KELUARGA through SSN700000001"),
        "{message}"
    );
}

/// A possible duplicate (same name and birth date under another NIK) is settled before money:
/// a decree naming an unsettled one is refused whole (422); Dinas Sosial settles it as a
/// distinct person, or as the same person as another record, which rejects it.
#[tokio::test]
async fn possible_duplicates_are_resolved_before_a_decree() {
    let api = Api::start("duplicates").await;
    crate::reports::sembako(&api).await;
    let flagged = |n: u64| {
        let RegistryOp::Insert(RegistryRecord::Beneficiary(mut b)) =
            person(n, &format!("64720100000002{n:02}"), 1)
        else {
            unreachable!()
        };
        b.possible_duplicate = true;
        RegistryOp::Insert(RegistryRecord::Beneficiary(b))
    };
    api.ledger
        .registry()
        .apply(vec![
            person(5, "6472010000000205", 1),
            flagged(6),
            flagged(7),
        ])
        .await
        .unwrap();
    let decree = |ssns: &[&str]| {
        json!({"decree_number": "188.45/10/2026", "decree_date": "2026-11-28",
               "program_code": "SEMBAKO", "ssns": ssns})
    };
    let refused = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree(&["SSN700000005", "SSN700000006"]),
        )
        .await;
    let message = refused.expect_error(422, "refused");
    assert!(
        message.contains("SSN700000006 is a possible duplicate"),
        "{message}"
    );
    let resolve = |ssn: &str| format!("/api/v1/beneficiaries/{ssn}/resolve");
    api.post("dinsos", &resolve("SSN700000006"), json!({"note": "?"}))
        .await
        .expect_error(400, "malformed");
    api.post(
        "bank",
        &resolve("SSN700000006"),
        json!({"distinct": true, "note": "x"}),
    )
    .await
    .expect_error(403, "forbidden");
    let settled = api
        .post(
            "dinsos",
            &resolve("SSN700000006"),
            json!({"distinct": true, "note": "different KK and parents; checked at the kelurahan"}),
        )
        .await;
    assert_eq!(settled.expect(200)["possible_duplicate"], false);
    api.post(
        "dinsos",
        &resolve("SSN700000006"),
        json!({"distinct": true, "note": "again"}),
    )
    .await
    .expect_error(409, "conflict");
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree(&["SSN700000005", "SSN700000006"]),
    )
    .await
    .expect(201);
    // The same person as another record: rejected, and no decree can name it.
    let rejected = api
        .post(
            "dinsos",
            &resolve("SSN700000007"),
            json!({"same_person_as": "SSN700000005", "note": "one person, two NIKs"}),
        )
        .await;
    assert_eq!(rejected.expect(200)["status"], "rejected");
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree(&["SSN700000007"]),
    )
    .await
    .expect_error(409, "conflict");
    // Dinas Sosial's notes are free text about people: the auditor reads the outcomes only.
    let audit = api.all("auditor", "/api/v1/audit").await;
    let resolutions: Vec<&str> = audit
        .iter()
        .filter(|l| l["action"] == "beneficiaries.resolve" && l["outcome"] == "ok")
        .map(|l| l["target"].as_str().unwrap())
        .collect();
    assert!(
        resolutions
            .contains(&"beneficiary SSN700000007: same person as SSN700000005 (note withheld)"),
        "{resolutions:?}"
    );
    assert!(
        resolutions.iter().all(|t| !t.contains("two NIKs")),
        "{resolutions:?}"
    );
    let full = api.all("dinsos", "/api/v1/audit").await;
    assert!(full.iter().any(|l| {
        l["action"] == "beneficiaries.resolve"
            && l["target"]
                == "beneficiary SSN700000007: same person as SSN700000005: one person, two NIKs"
    }));
}

/// Diskominfo's `PATCH` of person 8.
async fn patch(api: &Api, body: serde_json::Value) -> crate::Answer {
    api.send(
        "PATCH",
        "/api/v1/beneficiaries/SSN700000008",
        Some("diskominfo"),
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

/// Diskominfo corrects one person; the audit line names each field before and after, and
/// fields that are the NIK's own cannot be sent.
#[tokio::test]
async fn a_person_is_corrected_with_an_audit_of_before_and_after() {
    let api = Api::start("corrections").await;
    api.ledger
        .registry()
        .apply(vec![person(8, "6472010000000208", 3)])
        .await
        .unwrap();
    let path = "/api/v1/beneficiaries/SSN700000008";
    api.send(
        "PATCH",
        path,
        Some("dinsos"),
        Some(("application/json", b"{}".to_vec())),
    )
    .await
    .expect_error(403, "forbidden");
    for bad in [
        json!({"desil": 11}),
        json!({"kk": "123"}),
        json!({"birth_date": "1990-01-01"}),
    ] {
        patch(&api, bad).await.expect_error(400, "malformed");
    }
    let corrected = patch(&api, json!({"address": "Jl. Baru 1", "desil": 2})).await;
    let corrected = corrected.expect(200);
    assert_eq!(
        (corrected["address"].clone(), corrected["desil"].clone()),
        (json!("Jl. Baru 1"), json!(2))
    );
    let audit = api.all("admin", "/api/v1/audit").await;
    let line = audit
        .iter()
        .find(|l| l["action"] == "beneficiaries.update")
        .expect("the correction's audit line");
    // Roles without personal data read which fields changed, not their values.
    let withheld = api.all("auditor", "/api/v1/audit").await;
    let withheld = withheld
        .iter()
        .find(|l| l["action"] == "beneficiaries.update")
        .expect("the correction's audit line");
    assert_eq!(
        withheld["target"],
        "beneficiary SSN700000008: address, desil (values withheld)"
    );
    assert_eq!(
        line["target"],
        "beneficiary SSN700000008: address: 'Jl. Pahlawan' -> 'Jl. Baru 1'; desil: '3' -> '2'"
    );

    // A new name that is another NIK's, with the same birth date: a possible duplicate, as
    // an import would flag it.
    api.ledger
        .registry()
        .apply(vec![person(9, "6472010000000209", 3)])
        .await
        .unwrap();
    let renamed = patch(&api, json!({"name": "WARGA  9"})).await;
    assert_eq!(renamed.expect(200)["possible_duplicate"], true);
    let audit = api.all("admin", "/api/v1/audit").await;
    assert_eq!(
        audit.last().unwrap()["target"],
        "beneficiary SSN700000008: name: 'Warga 8' -> 'WARGA  9'; possible_duplicate: 'false' \
         -> 'true'"
    );
}
