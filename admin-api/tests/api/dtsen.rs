//! DTSEN refreshes (Pasal 6(2)): a re-import updates the changed fields of known NIKs and
//! answers row by row; a full refresh marks the people it does not name for review and
//! revokes no one; and the quarterly refresh the agencies run, end to end, with the audit
//! lines of every read and change.

use serde_json::{Value, json};

use crate::lifecycle::{Person as Row, nik};
use crate::{Api, carded_person, program};

const HEADER: &str = "nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil";

/// Person `n` (1 to 27): born on day `n` of January 1980, with a family card of their own.
pub(crate) fn person(n: u32, name: &str) -> Row {
    let female = n.is_multiple_of(2);
    Row {
        nik: nik(1, n, 1, 1980, female, &format!("{n:04}")),
        kk: format!("6472010000{n:06}"),
        name: name.into(),
        birth_date: format!("1980-01-{n:02}"),
        female,
        address: format!("Jl. Pahlawan No. {n}"),
        kecamatan: "Palaran".into(),
        kelurahan: "Rawa Makmur".into(),
        desil: 2,
    }
}

/// Someone else with `row`'s name and birth date: another NIK (`serial`) and family card.
fn namesake(row: &Row, serial: u32) -> Row {
    let day: u32 = row.birth_date[8..].parse().unwrap();
    Row {
        nik: nik(1, day, 1, 1980, row.female, &format!("{serial:04}")),
        kk: format!("6472019999{serial:06}"),
        address: format!("Gg. Lain No. {serial}"),
        ..row.clone()
    }
}

pub(crate) fn csv(rows: &[&Row]) -> String {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        text.push_str(&row.line());
    }
    text
}

async fn import(api: &Api, mode: Option<&str>, rows: &[&Row]) -> Value {
    let uri = match mode {
        Some(mode) => format!("/api/v1/beneficiaries/import?mode={mode}"),
        None => "/api/v1/beneficiaries/import".to_string(),
    };
    api.post_csv("diskominfo", &uri, &csv(rows))
        .await
        .expect(200)
        .clone()
}

/// The audit lines written since the last call, as (action, role, target, outcome), as an
/// admin reads them (with personal data).
struct AuditTail(u64);

impl AuditTail {
    async fn start(api: &Api) -> AuditTail {
        let last = api.all("admin", "/api/v1/audit").await.len() as u64;
        AuditTail(last)
    }

    async fn new_lines(&mut self, api: &Api) -> Vec<(String, String, String, String)> {
        let lines = api.all("admin", "/api/v1/audit").await;
        let text = |line: &Value, field: &str| line[field].as_str().unwrap().to_string();
        let new = lines
            .iter()
            .filter(|line| line["seq"].as_u64().unwrap() > self.0)
            .map(|line| {
                (
                    text(line, "action"),
                    text(line, "role"),
                    text(line, "target"),
                    text(line, "outcome"),
                )
            })
            .collect();
        self.0 = lines.len() as u64;
        new
    }
}

fn line(action: &str, role: &str, target: &str, outcome: &str) -> (String, String, String, String) {
    (action.into(), role.into(), target.into(), outcome.into())
}

/// The audit line of a change Diskominfo's import made to a person.
fn updated(target: &str) -> (String, String, String, String) {
    line("beneficiaries.update", "diskominfo", target, "ok")
}

/// The audit line of a person's absence mark changed by a full refresh.
fn absence(ssn: &str, before: bool) -> (String, String, String, String) {
    updated(&format!(
        "beneficiary {ssn}: absent_from_dtsen: '{before}' -> '{}'",
        !before
    ))
}

fn ssns(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ssn"].as_str().unwrap().to_string())
        .collect()
}

/// A known NIK is no longer a duplicate: its changed fields are updated (the answer names
/// them, the audit line has each before and after, like a correction), an identical row is
/// unchanged, a NIK twice in one file is still a duplicate, and sending the file again
/// changes nothing.
#[tokio::test]
async fn a_refresh_updates_what_changed_and_answers_row_by_row() {
    let api = Api::start("dtsen-refresh").await;
    let people: Vec<Row> = [
        "Ahmad Hidayat",
        "Siti Aminah",
        "Budi Santoso",
        "Dewi Lestari",
    ]
    .iter()
    .zip(1..)
    .map(|(name, n)| person(n, name))
    .collect();
    let first = import(&api, None, &people.iter().collect::<Vec<_>>()).await;
    assert_eq!(first["imported"], 4, "{first}");
    assert_eq!(first["batch_id"], 1, "{first}");

    let mut moved = people[1].clone();
    moved.address = "Jl. Cendana No. 7".into();
    moved.kecamatan = "Sambutan".into();
    moved.kelurahan = "Sungai Kapih".into();
    let mut renamed = people[2].clone();
    renamed.name = "Budi Santosa".into();
    renamed.kk = "6472010000999999".into();
    renamed.desil = 5;
    let newcomer = person(5, "Rina Wijaya");
    let mut bad = person(6, "Joko Susanto");
    bad.desil = 11;
    let mut tail = AuditTail::start(&api).await;
    let refresh = [&people[0], &moved, &renamed, &newcomer, &people[1], &bad];
    let answer = import(&api, None, &refresh).await;
    assert_eq!(
        answer,
        json!({
            "mode": "partial",
            "batch_id": 2,
            "rows": 6,
            "imported": 1,
            "updated": [
                {"row": 3, "nik": moved.nik, "ssn": "SSN000000002",
                 "fields": ["address", "kecamatan", "kelurahan"]},
                {"row": 4, "nik": renamed.nik, "ssn": "SSN000000003",
                 "fields": ["name", "kk", "desil"]},
            ],
            "unchanged": 1,
            "duplicates": [{"row": 6, "nik": people[1].nik, "existing": "SSN000000002"}],
            "possible_duplicates": [],
            "rejected": [{"row": 7, "reason": "desil is a welfare decile, 1 to 10"}],
            "absent": [],
        })
    );
    assert_eq!(
        tail.new_lines(&api).await,
        [
            updated(
                "beneficiary SSN000000002: address: 'Jl. Pahlawan No. 2' -> 'Jl. Cendana No. 7'; \
                 kecamatan: 'Palaran' -> 'Sambutan'; kelurahan: 'Rawa Makmur' -> 'Sungai Kapih'"
            ),
            updated(
                "beneficiary SSN000000003: name: 'Budi Santoso' -> 'Budi Santosa'; \
                 kk: '6472010000000003' -> '6472010000999999'; desil: '2' -> '5'"
            ),
            line(
                "beneficiaries.import",
                "diskominfo",
                "partial import batch 2",
                "ok: 6 rows, 1 imported, 2 updated, 1 unchanged, 1 duplicates, 0 possible \
                 duplicates, 1 rejected"
            ),
        ]
    );
    let person = api
        .get("dinsos", "/api/v1/beneficiaries/SSN000000002")
        .await;
    let person = person.expect(200);
    assert_eq!(
        (
            &person["address"],
            &person["kecamatan"],
            &person["kelurahan"],
            &person["import_batch"]
        ),
        (
            &json!("Jl. Cendana No. 7"),
            &json!("Sambutan"),
            &json!("Sungai Kapih"),
            &json!(1)
        ),
        "updated in place, still of the import that brought the person in"
    );
    assert_eq!(api.all("dinsos", "/api/v1/beneficiaries").await.len(), 5);

    // The same file again: nothing changes, nobody is new.
    let mut tail = AuditTail::start(&api).await;
    let again = import(&api, None, &refresh).await;
    assert_eq!(
        (
            &again["imported"],
            &again["updated"],
            &again["unchanged"],
            &again["batch_id"]
        ),
        (&json!(0), &json!([]), &json!(4), &Value::Null),
        "{again}"
    );
    assert_eq!(again["duplicates"], answer["duplicates"]);
    let lines = tail.new_lines(&api).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, "beneficiaries.import");

    // A renamed person who now shares a name and birth date with another NIK is flagged.
    let mut namesake = namesake(&people[3], 77);
    namesake.name = "Temp".into();
    import(&api, None, &[&namesake]).await;
    namesake.name = people[3].name.clone();
    let flagged = import(&api, None, &[&namesake]).await;
    assert_eq!(
        flagged["possible_duplicates"],
        json!([{"row": 2, "nik": namesake.nik, "ssn": "SSN000000006",
                "matches": ["SSN000000004"]}])
    );
    assert_eq!(
        flagged["updated"][0]["fields"],
        json!(["name", "possible_duplicate"])
    );
}

/// A full refresh lists the people of earlier imports it does not name and marks them for
/// review (`GET /beneficiaries?absent_from_dtsen=true`); nobody is revoked, a partial import
/// marks nobody, and the mark is cleared when a later refresh names the person again.
#[tokio::test]
async fn a_full_refresh_marks_the_absent_for_review_and_revokes_no_one() {
    let api = Api::start("dtsen-full").await;
    let sembako = program("SEMBAKO", 200_000, "2026-12-31");
    let mut ops = vec![ssn_ledger::RegistryOp::Insert(
        ssn_ledger::RegistryRecord::Program(sembako.clone()),
    )];
    ops.extend(carded_person(1, &sembako.code, 1));
    api.ledger.registry().apply(ops).await.unwrap();
    let people: Vec<Row> = (1..=3).map(|n| person(n, &format!("Warga {n}"))).collect();
    import(&api, None, &people.iter().collect::<Vec<_>>()).await;

    // A mode that is neither: 400 for Diskominfo, 403 for anyone else whatever the mode.
    let message = api
        .post_csv(
            "diskominfo",
            "/api/v1/beneficiaries/import?mode=everything",
            &csv(&[&people[0]]),
        )
        .await
        .expect_error(400, "malformed");
    assert!(message.contains("mode"), "{message}");
    api.post_csv(
        "dinsos",
        "/api/v1/beneficiaries/import?mode=everything",
        &csv(&[&people[0]]),
    )
    .await
    .expect_error(403, "forbidden");

    // A full refresh of a file without rows would mark everyone: refused.
    api.post_csv(
        "diskominfo",
        "/api/v1/beneficiaries/import?mode=full",
        &csv(&[]),
    )
    .await
    .expect_error(422, "refused");
    // A partial import marks nobody.
    let partial = import(&api, Some("partial"), &[&people[0]]).await;
    assert_eq!(partial["absent"], json!([]));
    let absent_list = "/api/v1/beneficiaries?absent_from_dtsen=true";
    assert_eq!(
        api.get("auditor", absent_list).await.expect(200)["total"],
        0
    );

    let mut tail = AuditTail::start(&api).await;
    let full = import(&api, Some("full"), &[&people[0], &people[1]]).await;
    assert_eq!(full["mode"], "full");
    assert_eq!(full["unchanged"], 2);
    assert_eq!(
        full["absent"],
        json!([
            {"ssn": "SSN000000003", "status": "imported", "enrolments": []},
            {"ssn": "SSN900000001", "status": "determined", "enrolments": ["SEMBAKO"]},
        ])
    );
    assert_eq!(
        tail.new_lines(&api).await,
        [
            absence("SSN000000003", false),
            absence("SSN900000001", false),
            line(
                "beneficiaries.import",
                "diskominfo",
                "full import (nothing new)",
                "ok: 2 rows, 0 imported, 0 updated, 2 unchanged, 0 duplicates, 0 possible \
                 duplicates, 0 rejected, 2 absent"
            ),
        ]
    );
    let absent = api.get("auditor", absent_list).await;
    assert_eq!(ssns(absent.expect(200)), ["SSN000000003", "SSN900000001"]);
    assert_eq!(absent.body["items"][1]["absent_from_dtsen"], true);
    let present = api
        .get("auditor", "/api/v1/beneficiaries?absent_from_dtsen=false")
        .await;
    assert_eq!(ssns(present.expect(200)), ["SSN000000001", "SSN000000002"]);
    // Nobody is revoked: the determined person keeps the enrolment and the card works.
    let determined = api
        .get("auditor", "/api/v1/beneficiaries/SSN900000001")
        .await;
    assert_eq!(determined.expect(200)["status"], "determined");
    assert_eq!(determined.body["enrolments"], json!(["SEMBAKO"]));
    assert_eq!(
        api.get("auditor", "/api/v1/cards/1").await.expect(200)["status"],
        "active"
    );
    api.get("auditor", "/api/v1/beneficiaries?absent_from_dtsen=maybe")
        .await
        .expect_error(400, "malformed");

    // Still absent in a later full refresh: listed again, no second audit line; named again:
    // the mark is cleared.
    let mut tail = AuditTail::start(&api).await;
    let later = import(&api, Some("full"), &people.iter().collect::<Vec<_>>()).await;
    assert_eq!(
        later["updated"],
        json!([{"row": 4, "nik": people[2].nik, "ssn": "SSN000000003",
                "fields": ["absent_from_dtsen"]}])
    );
    assert_eq!(
        later["absent"],
        json!([{"ssn": "SSN900000001", "status": "determined", "enrolments": ["SEMBAKO"]}])
    );
    let lines = tail.new_lines(&api).await;
    assert_eq!(lines[0], absence("SSN000000003", true));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        ssns(api.get("auditor", absent_list).await.expect(200)),
        ["SSN900000001"]
    );
}

/// The quarterly refresh as the agencies run it: an import with two possible duplicates,
/// resolved one each way; a decree; a full refresh with changed addresses, a person moved onto
/// another's family card (a family duplicate the next decree refuses), and people absent from
/// the new file; and an audit line for every change and every read of personal data.
#[tokio::test]
async fn quarterly_refresh() {
    let api = Api::start("dtsen-quarterly").await;
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": "KELUARGA", "name": "Sembako keluarga", "budget_year": 2026,
               "benefit_amount": "200000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "200000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31",
               "beneficiary_unit": "family"}),
    )
    .await
    .expect(201);
    let mut audit = AuditTail::start(&api).await;

    // ------------------------------------------------------------ the first quarter's file
    let a: Vec<Row> = [
        "Ahmad Hidayat",
        "Siti Aminah",
        "Budi Santoso",
        "Dewi Lestari",
        "Rahmat Hakim",
    ]
    .iter()
    .zip(1..)
    .map(|(name, n)| person(n, name))
    .collect();
    let twin_distinct = namesake(&a[0], 501);
    let mut twin_same = namesake(&a[1], 502);
    twin_same.name = twin_same.name.to_uppercase();
    let first: Vec<&Row> = a.iter().chain([&twin_distinct, &twin_same]).collect();
    let imported = import(&api, None, &first).await;
    assert_eq!(imported["imported"], 7, "{imported}");
    assert_eq!(
        imported["possible_duplicates"],
        json!([
            {"row": 7, "nik": twin_distinct.nik, "ssn": "SSN000000006", "matches": ["SSN000000001"]},
            {"row": 8, "nik": twin_same.nik, "ssn": "SSN000000007", "matches": ["SSN000000002"]},
        ])
    );
    assert_eq!(
        audit.new_lines(&api).await,
        [line(
            "beneficiaries.import",
            "diskominfo",
            "partial import batch 1",
            "ok: 7 rows, 7 imported, 0 updated, 0 unchanged, 0 duplicates, 2 possible \
             duplicates, 0 rejected"
        )]
    );

    // ------------------------------------------------------------ possible duplicates
    let resolve = |ssn: &str| format!("/api/v1/beneficiaries/{ssn}/resolve");
    api.post(
        "dinsos",
        &resolve("SSN000000006"),
        json!({"distinct": true, "note": "lain orang tua, dicek di kelurahan"}),
    )
    .await
    .expect(200);
    let same = api
        .post(
            "dinsos",
            &resolve("SSN000000007"),
            json!({"same_person_as": "SSN000000002", "note": "satu orang, dua NIK"}),
        )
        .await;
    assert_eq!(same.expect(200)["status"], "rejected");
    assert_eq!(
        audit.new_lines(&api).await,
        [
            line(
                "beneficiaries.resolve",
                "dinsos",
                "beneficiary SSN000000006: distinct: lain orang tua, dicek di kelurahan",
                "ok"
            ),
            line(
                "beneficiaries.resolve",
                "dinsos",
                "beneficiary SSN000000007: same person as SSN000000002: satu orang, dua NIK",
                "ok"
            ),
        ]
    );

    // ------------------------------------------------------------ verification, decree
    let valid = ["1", "2", "3", "4", "5", "6"].map(|n| format!("SSN00000000{n}"));
    for ssn in &valid {
        for step in ["verify", "validate"] {
            api.post(
                "dinsos",
                &format!("/api/v1/beneficiaries/{ssn}/{step}"),
                json!({"approved": true}),
            )
            .await
            .expect(200);
        }
    }
    let lines = audit.new_lines(&api).await;
    let expected: Vec<_> = valid
        .iter()
        .flat_map(|ssn| {
            ["verify", "validate"]
                .map(|step| line(&format!("beneficiaries.{step}"), "dinsos", ssn, "approved"))
        })
        .collect();
    assert_eq!(lines, expected);
    let decree = |number: &str, ssns: &[&str]| {
        json!({"decree_number": number, "decree_date": "2026-11-28",
               "program_code": "KELUARGA", "ssns": ssns})
    };
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree(
            "188.45/1/2026",
            &[
                "SSN000000001",
                "SSN000000002",
                "SSN000000003",
                "SSN000000006",
            ],
        ),
    )
    .await
    .expect(201);
    assert_eq!(
        audit.new_lines(&api).await,
        [line(
            "determinations.create",
            "walikota",
            "determination 1 (decree 188.45/1/2026 program KELUARGA)",
            "ok"
        )]
    );

    // ------------------------------------------------------------ the next quarter: full
    let mut moved = a[0].clone();
    moved.address = "Jl. Cendana No. 7".into();
    let mut other_area = a[1].clone();
    other_area.kecamatan = "Sambutan".into();
    other_area.kelurahan = "Sungai Kapih".into();
    let mut into_family = a[3].clone();
    into_family.kk = a[0].kk.clone();
    let newcomer = person(9, "Rina Wijaya");
    let second = [
        &moved,
        &other_area,
        &a[2],
        &into_family,
        &twin_distinct,
        &newcomer,
        &a[0],
    ];
    let refreshed = import(&api, Some("full"), &second).await;
    assert_eq!(
        refreshed,
        json!({
            "mode": "full",
            "batch_id": 2,
            "rows": 7,
            "imported": 1,
            "updated": [
                {"row": 2, "nik": moved.nik, "ssn": "SSN000000001", "fields": ["address"]},
                {"row": 3, "nik": other_area.nik, "ssn": "SSN000000002",
                 "fields": ["kecamatan", "kelurahan"]},
                {"row": 5, "nik": into_family.nik, "ssn": "SSN000000004", "fields": ["kk"]},
            ],
            "unchanged": 2,
            "duplicates": [{"row": 8, "nik": a[0].nik, "existing": "SSN000000001"}],
            "possible_duplicates": [],
            "rejected": [],
            "absent": [
                {"ssn": "SSN000000005", "status": "validated", "enrolments": []},
                {"ssn": "SSN000000007", "status": "rejected", "enrolments": []},
            ],
        })
    );
    assert_eq!(
        audit.new_lines(&api).await,
        [
            updated(
                "beneficiary SSN000000001: address: 'Jl. Pahlawan No. 1' -> 'Jl. Cendana No. 7'"
            ),
            updated(
                "beneficiary SSN000000002: kecamatan: 'Palaran' -> 'Sambutan'; \
                 kelurahan: 'Rawa Makmur' -> 'Sungai Kapih'"
            ),
            updated(&format!(
                "beneficiary SSN000000004: kk: '{}' -> '{}'",
                a[3].kk, a[0].kk
            )),
            absence("SSN000000005", false),
            absence("SSN000000007", false),
            line(
                "beneficiaries.import",
                "diskominfo",
                "full import batch 2",
                "ok: 7 rows, 1 imported, 3 updated, 2 unchanged, 1 duplicates, 0 possible \
                 duplicates, 0 rejected, 2 absent"
            ),
        ]
    );

    // The family duplicate: the person moved onto a determined family's card is refused.
    let refused = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree("188.45/2/2026", &["SSN000000004"]),
        )
        .await;
    let message = refused.expect_error(422, "refused");
    assert!(
        message.contains("SSN000000004's family already has KELUARGA through SSN000000001"),
        "{message}"
    );
    assert_eq!(
        audit.new_lines(&api).await,
        [line(
            "determinations.create",
            "walikota",
            "decree 188.45/2/2026 program KELUARGA",
            "refused"
        )]
    );

    // ------------------------------------------------------------ Dinas Sosial reviews
    let review = api
        .get("dinsos", "/api/v1/beneficiaries?absent_from_dtsen=true")
        .await;
    assert_eq!(ssns(review.expect(200)), ["SSN000000005", "SSN000000007"]);
    assert_eq!(review.body["items"][0]["name"], "Rahmat Hakim");
    let person = api
        .get("dinsos", "/api/v1/beneficiaries/SSN000000001")
        .await;
    let person = person.expect(200);
    assert_eq!(person["address"], "Jl. Cendana No. 7");
    assert_eq!(person["status"], "determined");
    assert_eq!(person["enrolments"], json!(["KELUARGA"]));
    // The auditor's masked view is not a read of personal data.
    let masked = api
        .get("auditor", "/api/v1/beneficiaries?absent_from_dtsen=true")
        .await;
    assert_eq!(masked.expect(200)["items"][0]["name"], "R. H.");
    // Nor does the auditor read the refresh's values in the audit log: only what changed.
    let withheld: Vec<Value> = api
        .all("auditor", "/api/v1/audit")
        .await
        .into_iter()
        .filter(|l| l["action"] == "beneficiaries.update" && l["role"] == "diskominfo")
        .map(|l| l["target"].clone())
        .collect();
    assert_eq!(
        withheld,
        [
            "beneficiary SSN000000001: address (values withheld)",
            "beneficiary SSN000000002: kecamatan, kelurahan (values withheld)",
            "beneficiary SSN000000004: kk (values withheld)",
            "beneficiary SSN000000005: absent_from_dtsen (values withheld)",
            "beneficiary SSN000000007: absent_from_dtsen (values withheld)",
        ]
    );
    assert_eq!(
        audit.new_lines(&api).await,
        [
            line(
                "beneficiaries.list",
                "dinsos",
                "SSN000000005 SSN000000007",
                "read"
            ),
            line("beneficiaries.read", "dinsos", "SSN000000001", "read"),
        ]
    );

    // ------------------------------------------------------------ back in the next file
    let third = [
        &moved,
        &other_area,
        &a[2],
        &into_family,
        &a[4],
        &twin_distinct,
        &newcomer,
    ];
    let back = import(&api, Some("full"), &third).await;
    assert_eq!(
        back["updated"],
        json!([{"row": 6, "nik": a[4].nik, "ssn": "SSN000000005",
                "fields": ["absent_from_dtsen"]}])
    );
    assert_eq!(
        back["absent"],
        json!([{"ssn": "SSN000000007", "status": "rejected", "enrolments": []}])
    );
    assert_eq!(
        audit.new_lines(&api).await,
        [
            absence("SSN000000005", true),
            line(
                "beneficiaries.import",
                "diskominfo",
                "full import (nothing new)",
                "ok: 7 rows, 0 imported, 1 updated, 6 unchanged, 0 duplicates, 0 possible \
                 duplicates, 0 rejected, 1 absent"
            ),
        ]
    );
}
