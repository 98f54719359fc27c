//! Every endpoint against every role. The table below must cover exactly the operations of
//! the served OpenAPI document, so an endpoint added without a row fails here.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use ssn_hsm::TdesKey;

use crate::{Api, ROLES};

/// Who may call an operation besides `admin` (who may call everything).
#[derive(Clone, Copy, Debug)]
enum May {
    /// A read: every role.
    Everyone,
    /// Only `admin`.
    AdminOnly,
    /// `admin` and this role.
    Role(&'static str),
    /// `admin` and these roles.
    Roles(&'static [&'static str]),
    /// Anyone, with no token at all.
    Public,
}

/// The body an allowed caller sends: something valid enough to reach the handler's work.
enum Send {
    Nothing,
    Json(Value),
    Csv(String),
}

struct Row {
    method: &'static str,
    /// As in the OpenAPI document (relative to `/api/v1`).
    path: &'static str,
    may: May,
    body: Send,
}

/// The resources the rows' paths point at.
struct Fixtures {
    ssn: String,
    card_id: u64,
    determination_id: u64,
    terminal_tmk: (String, String),
    terminal_tpk: (String, String),
}

const PROGRAM: &str = "ROLES1";
const MERCHANT: &str = "EWARONG00000001";
const TERMINAL: &str = "EWR00001";
const TABLE_TOKEN: &str = "table-token";
/// A business day whose cut-over has passed at the tests' fixed clock.
const SETTLED_DAY: &str = "2026-11-28";

fn csv_person(nik: &str, name: &str) -> String {
    format!(
        "nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil\n\
         {nik},6472010000000001,{name},1980-01-01,L,Jl. Pahlawan 1,Palaran,Rawa Makmur,1\n"
    )
}

fn table(f: &Fixtures) -> Vec<Row> {
    use May::*;
    let row = |method, path, may, body| Row {
        method,
        path,
        may,
        body,
    };
    let program = json!({
        "code": "ROLES2", "name": "Table program", "budget_year": 2026,
        "benefit_amount": "300000.00", "allowed_categories": ["01"], "basket_required": false,
        "purchase_amount_max": "300000.00", "purchases_per_day_max": 3,
        "pocket_expires_at": "2026-12-31"
    });
    vec![
        row(
            "POST",
            "/tokens",
            AdminOnly,
            Send::Json(json!({"name": TABLE_TOKEN, "role": "auditor"})),
        ),
        row("GET", "/tokens", Everyone, Send::Nothing),
        row("DELETE", "/tokens/{name}", AdminOnly, Send::Nothing),
        row(
            "POST",
            "/tokens/{name}/rotate",
            AdminOnly,
            Send::Json(json!({})),
        ),
        row("POST", "/programs", Role("dinsos"), Send::Json(program)),
        row("GET", "/programs", Everyone, Send::Nothing),
        row("GET", "/programs/{code}", Everyone, Send::Nothing),
        row(
            "POST",
            "/programs/{code}/funding",
            Role("dinsos"),
            Send::Json(json!({"amount": "100.00", "reference": "TABLE-1"})),
        ),
        row(
            "POST",
            "/beneficiaries/import",
            Role("diskominfo"),
            Send::Csv(csv_person("6472010101800002", "Table Person")),
        ),
        row("GET", "/beneficiaries", Everyone, Send::Nothing),
        row("GET", "/beneficiaries/{ssn}", Everyone, Send::Nothing),
        row(
            "PATCH",
            "/beneficiaries/{ssn}",
            Role("diskominfo"),
            Send::Json(json!({"address": "Jl. Baru 1"})),
        ),
        row(
            "POST",
            "/beneficiaries/{ssn}/verify",
            Role("dinsos"),
            Send::Json(json!({"approved": true})),
        ),
        row(
            "POST",
            "/beneficiaries/{ssn}/validate",
            Role("dinsos"),
            Send::Json(json!({"approved": true})),
        ),
        row(
            "POST",
            "/determinations",
            Role("walikota"),
            Send::Json(json!({
                "decree_number": "TABLE/1", "decree_date": "2026-11-01",
                "program_code": PROGRAM, "ssns": [f.ssn]
            })),
        ),
        row("GET", "/determinations/{id}", Everyone, Send::Nothing),
        row(
            "POST",
            "/determinations/{id}/revoke",
            Role("walikota"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/beneficiaries/{ssn}/resolve",
            Role("dinsos"),
            Send::Json(json!({"distinct": true, "note": "checked the KK"})),
        ),
        row(
            "POST",
            "/beneficiaries/{ssn}/revoke",
            Role("walikota"),
            Send::Json(json!({
                "program_code": PROGRAM, "decree_number": "188.45/1/2026", "reason": "pindah"
            })),
        ),
        row(
            "POST",
            "/cards",
            Role("diskominfo"),
            Send::Json(json!({"ssn": f.ssn})),
        ),
        row("GET", "/cards", Everyone, Send::Nothing),
        row(
            "POST",
            "/cards/batch",
            Role("diskominfo"),
            Send::Json(json!({"program_code": PROGRAM})),
        ),
        row("GET", "/cards/{card_id}", Everyone, Send::Nothing),
        row("GET", "/cards/{card_id}/statement", Everyone, Send::Nothing),
        row(
            "POST",
            "/cards/{card_id}/deliver",
            Role("diskominfo"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/cards/{card_id}/block",
            Role("diskominfo"),
            Send::Json(json!({"reason": "table"})),
        ),
        row(
            "POST",
            "/cards/{card_id}/unblock",
            Role("diskominfo"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/cards/{card_id}/report",
            Role("diskominfo"),
            Send::Json(json!({"kind": "damaged"})),
        ),
        row(
            "POST",
            "/cards/{card_id}/replace",
            Role("diskominfo"),
            Send::Json(json!({})),
        ),
        row(
            "POST",
            "/cards/{card_id}/pin-reset",
            Role("diskominfo"),
            Send::Json(json!({"pin": "1234"})),
        ),
        row(
            "POST",
            "/disbursements",
            Role("dinsos"),
            Send::Json(json!({"program_code": PROGRAM, "period": "2026-11"})),
        ),
        row("GET", "/disbursements/{id}", Everyone, Send::Nothing),
        row(
            "POST",
            "/settlements",
            Role("bank"),
            Send::Json(json!({"business_date": SETTLED_DAY})),
        ),
        row(
            "GET",
            "/settlements/{business_date}",
            Everyone,
            Send::Nothing,
        ),
        row(
            "GET",
            "/settlements/{business_date}/file",
            Everyone,
            Send::Nothing,
        ),
        row(
            "POST",
            "/settlements/{business_date}/confirmation",
            Role("bank"),
            Send::Csv(format!("{MERCHANT}|0.00|PAID|BANK-REF-1\n")),
        ),
        row("GET", "/reconciliation", Everyone, Send::Nothing),
        row("GET", "/batches", Everyone, Send::Nothing),
        row(
            "GET",
            "/reports/semester",
            Roles(&["auditor", "walikota", "dinsos", "diskominfo"]),
            Send::Nothing,
        ),
        row(
            "GET",
            "/reports/semester/cards-never-used",
            Roles(&["auditor", "walikota", "dinsos", "diskominfo"]),
            Send::Nothing,
        ),
        row(
            "POST",
            "/programs/{code}/close",
            Role("dinsos"),
            Send::Json(json!({"as_of": SETTLED_DAY})),
        ),
        row("GET", "/public/summary", Public, Send::Nothing),
        row(
            "POST",
            "/merchants",
            Role("bank"),
            Send::Json(json!({
                "merchant_id": "EWARONG00000002", "name": "Warung Dua", "kind": "kube",
                "kecamatan": "Palaran", "kelurahan": "Rawa Makmur",
                "settlement_account": "0012345678"
            })),
        ),
        row("GET", "/merchants", Everyone, Send::Nothing),
        row("GET", "/merchants/{merchant_id}", Everyone, Send::Nothing),
        row(
            "PATCH",
            "/merchants/{merchant_id}",
            Role("bank"),
            Send::Json(json!({"name": "E-Warong Mawar"})),
        ),
        row(
            "POST",
            "/merchants/{merchant_id}/suspend",
            Role("bank"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/merchants/{merchant_id}/activate",
            Role("bank"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/terminals",
            Role("bank"),
            Send::Json(json!({
                "terminal_id": "EWR00002", "merchant_id": MERCHANT,
                "tmk": f.terminal_tmk.0, "tmk_kcv": f.terminal_tmk.1,
                "tpk": f.terminal_tpk.0, "tpk_kcv": f.terminal_tpk.1
            })),
        ),
        row("GET", "/terminals", Everyone, Send::Nothing),
        row("GET", "/terminals/{terminal_id}", Everyone, Send::Nothing),
        row(
            "PATCH",
            "/terminals/{terminal_id}",
            Role("bank"),
            Send::Json(json!({"merchant_id": MERCHANT})),
        ),
        row(
            "POST",
            "/terminals/{terminal_id}/suspend",
            Role("bank"),
            Send::Nothing,
        ),
        row(
            "POST",
            "/terminals/{terminal_id}/activate",
            Role("bank"),
            Send::Nothing,
        ),
        row("GET", "/transactions", Everyone, Send::Nothing),
        row("GET", "/audit", Everyone, Send::Nothing),
        row("GET", "/alerts", Everyone, Send::Nothing),
        row("GET", "/alerts/{alert_id}", Everyone, Send::Nothing),
        row(
            "POST",
            "/alerts/{alert_id}/review",
            Role("dinsos"),
            Send::Json(json!({"status": "dismissed", "note": "checked"})),
        ),
        row(
            "POST",
            "/alerts/{alert_id}/suspend-merchant",
            Role("bank"),
            Send::Nothing,
        ),
    ]
}

fn concrete(path: &str, f: &Fixtures) -> String {
    let path = path
        .replace("{name}", TABLE_TOKEN)
        .replace("{code}", PROGRAM)
        .replace("{ssn}", &f.ssn)
        .replace("{card_id}", &f.card_id.to_string())
        .replace("{merchant_id}", MERCHANT)
        .replace("{terminal_id}", TERMINAL)
        .replace("{business_date}", SETTLED_DAY)
        .replace("{alert_id}", "0badc0de");
    let path = if path.starts_with("/determinations/") {
        path.replace("{id}", &f.determination_id.to_string())
    } else {
        path.replace("{id}", &format!("{PROGRAM}.2026-11"))
    };
    assert!(!path.contains('{'), "{path}");
    if path == "/reports/semester" {
        return format!("/api/v1{path}?year=2026&half=2&format=html");
    }
    if path == "/reports/semester/cards-never-used" {
        return format!("/api/v1{path}?year=2026&half=2");
    }
    if path == "/reconciliation" {
        return format!("/api/v1{path}?business_date={SETTLED_DAY}");
    }
    format!("/api/v1{path}")
}

fn key_pair() -> (String, String) {
    let key = TdesKey::generate().expect("a key");
    (key.reveal_hex().to_string(), key.check_value().to_string())
}

/// One of each resource the rows point at, made through the API by the roles that may.
async fn fixtures(api: &Api) -> Fixtures {
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({
            "code": PROGRAM, "name": "Roles program", "budget_year": 2026,
            "benefit_amount": "300000.00", "allowed_categories": ["01", "02"],
            "basket_required": false, "purchase_amount_max": "300000.00",
            "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"
        }),
    )
    .await
    .expect(201);
    let report = api
        .post_csv(
            "diskominfo",
            "/api/v1/beneficiaries/import",
            &csv_person("6472010101800001", "Roles Person"),
        )
        .await;
    assert_eq!(report.expect(200)["imported"], 1);
    let people = api.all("dinsos", "/api/v1/beneficiaries").await;
    let ssn = people[0]["ssn"].as_str().unwrap().to_string();
    for step in ["verify", "validate"] {
        api.post(
            "dinsos",
            &format!("/api/v1/beneficiaries/{ssn}/{step}"),
            json!({"approved": true}),
        )
        .await
        .expect(200);
    }
    let determination = api
        .post(
            "walikota",
            "/api/v1/determinations",
            json!({"decree_number": "ROLES/1", "decree_date": "2026-11-01",
                   "program_code": PROGRAM, "ssns": [ssn]}),
        )
        .await;
    let determination_id = determination.expect(201)["id"].as_u64().unwrap();
    let card = api
        .post("diskominfo", "/api/v1/cards", json!({"ssn": ssn}))
        .await;
    let card_id = card.expect(201)["card_id"].as_u64().unwrap();
    api.post(
        "dinsos",
        &format!("/api/v1/programs/{PROGRAM}/funding"),
        json!({"amount": "1000000.00", "reference": "ROLES-FUND"}),
    )
    .await
    .expect(201);
    api.post(
        "bank",
        "/api/v1/merchants",
        json!({"merchant_id": MERCHANT, "name": "Warung Satu", "kind": "mikro",
               "kecamatan": "Palaran", "kelurahan": "Rawa Makmur",
               "settlement_account": "0011223344"}),
    )
    .await
    .expect(201);
    let (tmk, tpk) = (key_pair(), key_pair());
    api.post(
        "bank",
        "/api/v1/terminals",
        json!({"terminal_id": TERMINAL, "merchant_id": MERCHANT,
               "tmk": tmk.0, "tmk_kcv": tmk.1, "tpk": tpk.0, "tpk_kcv": tpk.1}),
    )
    .await
    .expect(201);
    Fixtures {
        ssn,
        card_id,
        determination_id,
        terminal_tmk: key_pair(),
        terminal_tpk: key_pair(),
    }
}

/// The (method, path) of every operation the served document lists.
async fn documented(api: &Api) -> BTreeSet<(String, String)> {
    let answer = api.get("auditor", "/api/v1/openapi.json").await;
    let document = answer.expect(200);
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
            if let Some(operation) = item.get(method) {
                // Every operation but the public summary needs the bearer token.
                assert_eq!(
                    operation.get("security").is_some(),
                    !path.starts_with("/public/"),
                    "{method} {path}: security requirement"
                );
                operations.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_endpoint_against_every_role() {
    let api = Api::start("roles").await;
    let f = fixtures(&api).await;
    let rows = table(&f);

    let in_table: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(in_table.len(), rows.len(), "a row is in the table twice");
    let served = documented(&api).await;
    let missing: Vec<_> = served.difference(&in_table).collect();
    let extra: Vec<_> = in_table.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the table must cover exactly the served operations; without a row: {missing:?}; \
         rows for no served operation: {extra:?}"
    );

    let mut checked = 0;
    for row in &rows {
        let uri = concrete(row.path, &f);
        let body = match &row.body {
            Send::Nothing => None,
            Send::Json(value) => Some(("application/json", value.to_string().into_bytes())),
            Send::Csv(text) => Some(("text/csv", text.as_bytes().to_vec())),
        };
        let what = format!("{} {}", row.method, row.path);

        if let May::Public = row.may {
            // No token needed, and any header is ignored.
            for authorization in [None, Some("Bearer ssn_not_a_token")] {
                let answer = api
                    .send_with(row.method, &uri, authorization, body.clone())
                    .await;
                assert_eq!(answer.status.as_u16(), 200, "{what}: {}", answer.body);
            }
        } else {
            // No token, a token nobody issued, and a header that is not a bearer token: 401.
            let answer = api.send(row.method, &uri, None, body.clone()).await;
            answer.expect_error(401, "unauthorized");
            for authorization in ["Bearer ssn_not_a_token", "Basic YWRtaW46c2VjcmV0"] {
                api.send_with(row.method, &uri, Some(authorization), body.clone())
                    .await
                    .expect_error(401, "unauthorized");
            }
        }

        for role in ROLES {
            let allowed = match row.may {
                May::Everyone | May::Public => true,
                May::Roles(roles) => role == "admin" || roles.contains(&role),
                May::AdminOnly => role == "admin",
                May::Role(r) => role == "admin" || role == r,
            };
            let answer = api.send(row.method, &uri, Some(role), body.clone()).await;
            if allowed {
                let status = answer.status.as_u16();
                assert!(
                    !matches!(status, 401 | 403 | 405 | 500),
                    "{what} as {role}: {status} {}",
                    answer.body
                );
                if status == 404 {
                    // A handler's 404 about the resource, never the router's fallback.
                    assert_ne!(
                        answer.body["message"], "no such resource",
                        "{what} as {role} did not reach a handler"
                    );
                }
            } else {
                assert_eq!(
                    answer.status.as_u16(),
                    403,
                    "{what} as {role}: {}",
                    answer.body
                );
                let message = answer.expect_error(403, "forbidden");
                assert!(message.contains(role), "{what} as {role}: {message}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, rows.len() * ROLES.len());

    // A body that is not JSON is the JSON 400, never a 500, for every operation taking one.
    for row in &rows {
        if let Send::Json(_) = row.body {
            let answer = api
                .send(
                    row.method,
                    &concrete(row.path, &f),
                    Some("admin"),
                    Some(("application/json", b"{\"not json".to_vec())),
                )
                .await;
            assert_eq!(
                answer.status.as_u16(),
                400,
                "{} {}: {}",
                row.method,
                row.path,
                answer.body
            );
            answer.expect_error(400, "malformed");
        }
    }
}

#[tokio::test]
async fn bad_queries_paths_and_bodies_are_json_errors() {
    let api = Api::start("queries").await;
    for uri in [
        "/api/v1/beneficiaries?page=0",
        "/api/v1/beneficiaries?page_size=1001",
        "/api/v1/beneficiaries?page=abc",
        "/api/v1/beneficiaries?status=alive",
        "/api/v1/cards?page_size=0",
        "/api/v1/cards/1/statement?page=0",
        "/api/v1/transactions?card_id=abc",
        "/api/v1/transactions?from=2026-13-01",
        "/api/v1/transactions?merchant_id=short",
        "/api/v1/audit?to=yesterday",
    ] {
        let answer = api.get("auditor", uri).await;
        assert_eq!(answer.status.as_u16(), 400, "{uri}: {}", answer.body);
        answer.expect_error(400, "malformed");
    }
    for uri in [
        "/api/v1/beneficiaries/SSN000000042",
        "/api/v1/cards/abc",
        "/api/v1/cards/18446744073709551616",
        "/api/v1/programs/nope",
        "/api/v1/determinations/-1",
        "/api/v1/disbursements/NOPE",
        "/api/v1/merchants/x",
        "/api/v1/terminals/EWR99999",
        "/api/v1/no-such-thing",
    ] {
        let answer = api.get("auditor", uri).await;
        assert_eq!(answer.status.as_u16(), 404, "{uri}: {}", answer.body);
        answer.expect_error(404, "not_found");
    }
    // A decree may name up to 150,000 people: 100,000 SSNs (1.5 MB of JSON) pass the body
    // limit and are refused only for what they name.
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({
            "code": "BIG", "name": "Big", "budget_year": 2026, "benefit_amount": "1.00",
            "allowed_categories": ["01"], "basket_required": false,
            "purchase_amount_max": "1.00", "purchases_per_day_max": 1,
            "pocket_expires_at": "2026-12-31"
        }),
    )
    .await
    .expect(201);
    let ssns: Vec<String> = (0..100_000).map(|n| format!("SSN9{n:08}")).collect();
    let message = api
        .post(
            "walikota",
            "/api/v1/determinations",
            json!({"decree_number": "BIG/1", "decree_date": "2026-11-01",
                   "program_code": "BIG", "ssns": ssns}),
        )
        .await
        .expect_error(409, "conflict");
    assert!(
        message.contains("SSN900000000 is not a beneficiary"),
        "{message}"
    );
    // Elsewhere a body over 1 MiB is refused with the JSON error, not a 500.
    let big = api
        .post(
            "dinsos",
            "/api/v1/programs",
            json!({"code": "X", "name": "x".repeat(1_100_000)}),
        )
        .await;
    assert!(
        matches!(big.status.as_u16(), 400 | 413),
        "{}: {}",
        big.status,
        big.body
    );
    big.expect_error(big.status.as_u16(), "malformed");

    let listed = api.get("auditor", "/api/v1/beneficiaries").await;
    assert_eq!(
        *listed.expect(200),
        json!({"items": [], "page": 1, "page_size": 50, "total": 0})
    );
    assert_eq!(
        api.get("auditor", "/api/v1/determinations/1").await.status,
        404,
        "the refused decree left nothing"
    );
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_401_and_health_needs_none() {
    let api = Api::start("tokens").await;
    for header in ["Bearer ", "admin-secret"] {
        api.send_with("GET", "/api/v1/programs", Some(header), None)
            .await
            .expect_error(401, "unauthorized");
    }
    for path in ["/healthz", "/readyz"] {
        api.send("GET", path, None, None).await.expect(200);
    }
    // A deleted token stops working at once.
    let created = api
        .post(
            "admin",
            "/api/v1/tokens",
            json!({"name": "short-lived", "role": "auditor"}),
        )
        .await;
    let secret = created.expect(201)["token"].as_str().unwrap().to_string();
    let listed = api.get("auditor", "/api/v1/tokens").await;
    let names: Vec<&str> = listed.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"short-lived") && names.contains(&"bootstrap"));
    assert!(
        !listed.body.to_string().contains(&secret),
        "a listed token shows its secret"
    );
    api.send("DELETE", "/api/v1/tokens/short-lived", Some("admin"), None)
        .await
        .expect(204);
    api.send_with(
        "GET",
        "/api/v1/programs",
        Some(&format!("Bearer {secret}")),
        None,
    )
    .await
    .expect_error(401, "unauthorized");
    // A second token of the same name is a conflict; a bad role is malformed.
    api.post(
        "admin",
        "/api/v1/tokens",
        json!({"name": "dinsos-operator", "role": "dinsos"}),
    )
    .await
    .expect_error(409, "conflict");
    api.post(
        "admin",
        "/api/v1/tokens",
        json!({"name": "x", "role": "mayor"}),
    )
    .await
    .expect_error(400, "malformed");
}
