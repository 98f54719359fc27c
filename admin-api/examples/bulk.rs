//! Bulk operations through the admin API, in-process: import 100,000 people in one CSV, verify
//! and validate them, determine them by one decree, issue 100,000 cards with one
//! `POST /cards/batch`, fund the program and disburse to every card. Prints the wall time of
//! each step. The router is the real one over a real embedded ledger in a temp dir (journal
//! with fsync, redb registry, memory balances) and a soft HSM; requests go through
//! `tower::ServiceExt::oneshot`, so HTTP parsing on a socket is not included.
//!
//! Verification and validation go through the API one request at a time for the first
//! `VERIFY_THROUGH_API` people (measured and printed); the rest are set to `validated` with
//! one registry write straight to the ledger, because one request per person per step is an
//! operator's pace, not a bulk path (the API has no bulk verify).
//!
//! Run: `cargo run --release -p ssn-admin-api --example bulk [-- PEOPLE [VERIFY_THROUGH_API]]`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use ssn_admin_api::{AdminConfig, AdminState};
use ssn_hsm::{KeyUsage, MasterKey, SoftHsm};
use ssn_ledger::{BeneficiaryStatus, Ledger, LedgerConfig, RegistryOp, RegistryRecord};
use tower::ServiceExt;

const PEOPLE_DEFAULT: usize = 100_000;
const VERIFY_THROUGH_API_DEFAULT: usize = 1_000;
const PROGRAM: &str = "BULK2026";
const ADMIN_SECRET: &str = "bulk-admin-secret";
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

struct Client {
    router: Router,
    tokens: std::collections::HashMap<&'static str, String>,
}

impl Client {
    async fn send(
        &self,
        role: &str,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.tokens[role]),
            )
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), RESPONSE_BYTES_MAX)
            .await
            .expect("the body");
        (status, bytes.to_vec())
    }

    async fn json(&self, role: &str, uri: &str, body: Value, expect: StatusCode) -> Value {
        let (status, bytes) = self
            .send(
                role,
                "POST",
                uri,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, expect, "POST {uri}: {text}");
        serde_json::from_slice(&bytes).unwrap_or(Value::String(text.into_owned()))
    }
}

fn person_line(i: usize) -> String {
    let kecamatan = i % 10 + 1;
    let female = i % 2 == 1;
    let year = 1940 + (i % 60);
    let month = (i / 28) % 12 + 1;
    let day = i % 28 + 1;
    // (kecamatan, serial) is unique below 99,990 people; past that the day of birth differs
    // (99,990 is not a multiple of 28), so every NIK is unique below 199,980.
    let serial = (i / 10) % 9999 + 1;
    let nik = format!(
        "6472{kecamatan:02}{:02}{month:02}{:02}{serial:04}",
        if female { day + 40 } else { day },
        year % 100
    );
    format!(
        "{nik},6472{kecamatan:02}{:010},Penerima {i},{year}-{month:02}-{day:02},{},Jl. Bulk {i},Kecamatan {kecamatan},Kelurahan {},{}\n",
        i,
        if female { "P" } else { "L" },
        i % 59 + 1,
        i % 4 + 1
    )
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let people: usize = args
        .next()
        .map(|a| a.parse().expect("PEOPLE is a number"))
        .unwrap_or(PEOPLE_DEFAULT);
    let through_api: usize = args
        .next()
        .map(|a| a.parse().expect("VERIFY_THROUGH_API is a number"))
        .unwrap_or(VERIFY_THROUGH_API_DEFAULT)
        .min(people);

    let dir = std::env::temp_dir().join(format!(
        "ssn-admin-api-bulk-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("the temp dir");
    let ledger = Arc::new(
        Ledger::open(LedgerConfig::embedded(dir.clone()))
            .await
            .expect("open the ledger"),
    );
    let hsm = Arc::new(SoftHsm::new(MasterKey::generate().expect("a master key")));
    let pvk = hsm.generate_key(KeyUsage::Pvk).expect("a PVK");
    let state = AdminState::new(ledger.clone(), hsm, pvk, AdminConfig::default());
    ssn_admin_api::bootstrap(&ledger, Some(ADMIN_SECRET))
        .await
        .expect("bootstrap");
    let mut client = Client {
        router: ssn_admin_api::router(state),
        tokens: [("admin", ADMIN_SECRET.to_string())].into_iter().collect(),
    };
    for role in ["diskominfo", "dinsos", "walikota", "auditor"] {
        let created = client
            .json(
                "admin",
                "/api/v1/tokens",
                json!({"name": format!("{role}-bulk"), "role": role}),
                StatusCode::CREATED,
            )
            .await;
        client
            .tokens
            .insert(role, created["token"].as_str().unwrap().to_string());
    }

    // ---------------------------------------------------------------- import
    let mut csv = String::from("nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil\n");
    for i in 0..people {
        csv.push_str(&person_line(i));
    }
    let csv_bytes = csv.len();
    let start = Instant::now();
    let (status, body) = client
        .send(
            "diskominfo",
            "POST",
            "/api/v1/beneficiaries/import",
            "text/csv",
            csv.into_bytes(),
        )
        .await;
    let import_s = seconds(start);
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let report: Value = serde_json::from_slice(&body).expect("the report");
    assert_eq!(report["imported"], people, "{}", report["rejected"]);
    println!(
        "import: {people} rows ({:.1} MB CSV) in {import_s:.2} s ({:.0} rows/s)",
        csv_bytes as f64 / 1e6,
        people as f64 / import_s
    );

    // ---------------------------------------------------------------- verify and validate
    let mut everyone: Vec<_> = ledger
        .registry()
        .beneficiaries()
        .await
        .expect("the registry");
    everyone.sort_by(|a, b| a.ssn.cmp(&b.ssn));
    let ssns: Vec<String> = everyone.iter().map(|b| b.ssn.clone()).collect();
    let start = Instant::now();
    for ssn in &ssns[..through_api] {
        for step in ["verify", "validate"] {
            client
                .json(
                    "dinsos",
                    &format!("/api/v1/beneficiaries/{ssn}/{step}"),
                    json!({"approved": true}),
                    StatusCode::OK,
                )
                .await;
        }
    }
    let verify_s = seconds(start);
    println!(
        "verify + validate through the API: {through_api} people ({} requests) in {verify_s:.2} s ({:.0} requests/s)",
        2 * through_api,
        (2 * through_api) as f64 / verify_s.max(1e-9)
    );
    let start = Instant::now();
    let ops: Vec<RegistryOp> = everyone[through_api..]
        .iter()
        .map(|b| {
            let mut next = b.clone();
            next.status = BeneficiaryStatus::Validated;
            RegistryOp::Replace {
                expected: RegistryRecord::Beneficiary(b.clone()),
                new: RegistryRecord::Beneficiary(next),
            }
        })
        .collect();
    let rest = ops.len();
    if !ops.is_empty() {
        ledger.registry().apply(ops).await.expect("set validated");
    }
    println!(
        "validated the other {rest} with one registry write (not through the API) in {:.2} s",
        seconds(start)
    );
    drop(everyone);

    // ---------------------------------------------------------------- program, decree
    client
        .json(
            "dinsos",
            "/api/v1/programs",
            json!({
                "code": PROGRAM, "name": "Bulk benchmark", "budget_year": 2026,
                "benefit_amount": "300000.00", "allowed_categories": ["01"],
                "basket_required": false, "purchase_amount_max": "300000.00",
                "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"
            }),
            StatusCode::CREATED,
        )
        .await;
    let start = Instant::now();
    let decree = client
        .json(
            "walikota",
            "/api/v1/determinations",
            json!({"decree_number": "BULK/1", "decree_date": "2026-11-01",
                   "program_code": PROGRAM, "ssns": ssns}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(decree["ssns"].as_array().map(Vec::len), Some(people));
    println!(
        "determination: one decree of {people} in {:.2} s",
        seconds(start)
    );

    // ---------------------------------------------------------------- cards
    let start = Instant::now();
    let (status, file) = client
        .send(
            "diskominfo",
            "POST",
            "/api/v1/cards/batch",
            "application/json",
            json!({"program_code": PROGRAM}).to_string().into_bytes(),
        )
        .await;
    let batch_s = seconds(start);
    assert_eq!(status, StatusCode::CREATED);
    let cards = file.iter().filter(|b| **b == b'\n').count() - 1;
    assert_eq!(cards, people);
    println!(
        "batch issue: {cards} cards (PAN, PVV, personalization file of {:.1} MB) in {batch_s:.2} s ({:.0} cards/s)",
        file.len() as f64 / 1e6,
        cards as f64 / batch_s
    );

    // ---------------------------------------------------------------- money
    let needed_minor = 30_000_000i64 * people as i64;
    let start = Instant::now();
    client
        .json(
            "dinsos",
            &format!("/api/v1/programs/{PROGRAM}/funding"),
            json!({"amount": format!("{}.{:02}", needed_minor / 100, needed_minor % 100),
                   "reference": "BULK-SP2D-1"}),
            StatusCode::CREATED,
        )
        .await;
    println!("funding: {:.3} s", seconds(start));
    let start = Instant::now();
    let disbursed = client
        .json(
            "dinsos",
            "/api/v1/disbursements",
            json!({"program_code": PROGRAM, "period": "2026-11"}),
            StatusCode::CREATED,
        )
        .await;
    let disburse_s = seconds(start);
    assert_eq!(disbursed["cards"], people);
    println!(
        "disbursement: {} cards, total {} in {disburse_s:.2} s ({:.0} cards/s)",
        disbursed["cards"],
        disbursed["total"],
        people as f64 / disburse_s
    );
    let start = Instant::now();
    let again = client
        .json(
            "dinsos",
            "/api/v1/disbursements",
            json!({"program_code": PROGRAM, "period": "2026-11"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(again, disbursed);
    println!(
        "disbursement repeated (idempotent, 200): {:.2} s",
        seconds(start)
    );

    // ---------------------------------------------------------------- reports
    for (what, uri) in [
        (
            "semester report (json)",
            "/api/v1/reports/semester?year=2026&half=2",
        ),
        (
            "semester report (html)",
            "/api/v1/reports/semester?year=2026&half=2&format=html",
        ),
        ("public summary", "/api/v1/public/summary"),
    ] {
        let start = Instant::now();
        let (status, bytes) = client
            .send("auditor", "GET", uri, "application/json", Vec::new())
            .await;
        assert_eq!(status, StatusCode::OK, "{what}");
        println!(
            "{what}: {:.2} s ({:.1} MB)",
            seconds(start),
            bytes.len() as f64 / 1e6
        );
    }

    drop(client);
    drop(ledger);
    let _ = std::fs::remove_dir_all(&dir);
}
