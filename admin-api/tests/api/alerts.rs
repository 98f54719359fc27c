//! The misuse monitor's alerts through HTTP (issue 22): a split purchase raises an alert the
//! follower stores; every role lists and reads it with PANs masked, filtered and paged; Dinas
//! Sosial reviews it once, audited without the note; the bank suspends the E-Warong from it
//! only once it is confirmed; bad input is a JSON 4xx.

use serde_json::json;
use ssn_ledger::monitor::{MonitorConfig, MonitorFollower};
use ssn_ledger::*;

use crate::{Api, NOW_UNIX_SECONDS};

const PROGRAM: &str = "AWAS2026";
const FIRST_CARD: u64 = 2_001;
const TERMINAL: &str = "EWR22001";
const MERCHANT: &str = "EWARONG00000022";

/// A city of two cards at one E-Warong; card 2001 buys twice within minutes, together above
/// the per-purchase maximum (100,000). Returns the stored alert's id.
async fn split_purchase(api: &Api) -> String {
    let code = ProgramCode::new(PROGRAM).unwrap();
    api.ledger
        .define_program(Program {
            purchase_amount_max: Money::from_minor(100_000 * 100),
            ..crate::program(PROGRAM, 200_000, "2026-12-31")
        })
        .await
        .unwrap();
    let mut ops = crate::shop(MERCHANT, TERMINAL);
    for n in 0..2 {
        ops.extend(crate::carded_person(n, &code, FIRST_CARD + n));
    }
    api.ledger.registry().apply(ops).await.unwrap();
    api.post(
        "dinsos",
        &format!("/api/v1/programs/{PROGRAM}/funding"),
        json!({"amount": "1000000.00", "reference": "APBD-AWAS"}),
    )
    .await
    .expect(201);
    api.post(
        "dinsos",
        "/api/v1/disbursements",
        json!({"program_code": PROGRAM, "period": "2026-11"}),
    )
    .await
    .expect(201);
    let start = NOW_UNIX_SECONDS - 3_600;
    crate::buy(
        api,
        (CardId(FIRST_CARD + 1), 1),
        (MERCHANT, TERMINAL),
        50_000,
        start,
    )
    .await;
    for (stan, minutes) in [(2, 5), (3, 9)] {
        let card = (CardId(FIRST_CARD), stan);
        crate::buy(
            api,
            card,
            (MERCHANT, TERMINAL),
            60_000,
            start + 60 * minutes,
        )
        .await;
    }
    let mut follower = MonitorFollower::new(MonitorConfig::default());
    let round = follower.round(&api.ledger).await.unwrap();
    assert_eq!(round.stored.len(), 1, "{:?}", round.stored);
    round.stored[0].id.clone()
}

#[tokio::test]
async fn alerts_are_listed_reviewed_once_and_suspend_their_e_warong() {
    let api = Api::start("alerts").await;
    let id = split_purchase(&api).await;

    // Every role reads it; the card's PAN is masked.
    for role in crate::ROLES {
        let page = api.get(role, "/api/v1/alerts").await;
        let body = page.expect(200);
        assert_eq!(body["total"], 1, "{body}");
        let alert = &body["items"][0];
        assert_eq!(alert["id"], id.as_str());
        assert_eq!(alert["rule"], "split_purchase");
        assert_eq!(alert["status"], "open");
        assert_eq!(alert["merchant_id"], MERCHANT);
        assert_eq!(alert["terminal_id"], TERMINAL);
        assert_eq!(alert["cards"][0]["card_id"], FIRST_CARD);
        let pan = alert["cards"][0]["pan"].as_str().unwrap();
        assert!(pan.contains("******") && pan.ends_with("2001"), "{pan}");
        assert!(!body.to_string().contains("6048720000002001"), "{body}");
        assert_eq!(alert["evidence"].as_array().unwrap().len(), 2, "{alert}");
        assert_eq!(alert["evidence"][0]["rrn"], "000000000002");
    }
    let one = api.get("bank", &format!("/api/v1/alerts/{id}")).await;
    assert_eq!(one.expect(200)["score_percent"], 120);

    // Filters.
    for (query, total) in [
        ("rule=split_purchase", 1),
        ("rule=sweep", 0),
        ("status=open", 1),
        ("status=confirmed", 0),
        ("merchant_id=EWARONG00000022", 1),
        ("merchant_id=EWARONG00000099", 0),
        ("from=2026-11-29&to=2026-11-29", 1),
        ("from=2026-11-30", 0),
        ("page=2&page_size=1", 1),
    ] {
        let page = api.get("auditor", &format!("/api/v1/alerts?{query}")).await;
        assert_eq!(page.expect(200)["total"], total, "{query}");
    }
    for query in [
        "rule=nope",
        "status=closed",
        "merchant_id=short",
        "from=29-11-2026",
        "page=0",
        "page_size=1001",
    ] {
        let page = api.get("auditor", &format!("/api/v1/alerts?{query}")).await;
        page.expect_error(400, "malformed");
    }
    for missing in ["00ff", "not-hex", &"f".repeat(65)] {
        let answer = api
            .get("auditor", &format!("/api/v1/alerts/{missing}"))
            .await;
        answer.expect_error(404, "not_found");
    }

    // The bank cannot suspend from an open alert; the refusal is audited.
    let suspend = format!("/api/v1/alerts/{id}/suspend-merchant");
    api.send("POST", &suspend, Some("bank"), None)
        .await
        .expect_error(409, "conflict");

    // Dinas Sosial reviews it: bad input is a 400, the review happens once.
    let review = format!("/api/v1/alerts/{id}/review");
    for bad in [
        json!({"status": "open", "note": "x"}),
        json!({"status": "confirmed", "note": "  "}),
        json!({"status": "confirmed", "note": "x".repeat(1_001)}),
        json!({"status": "confirmed"}),
        json!({"status": "confirmed", "note": "x", "extra": 1}),
    ] {
        api.post("dinsos", &review, bad)
            .await
            .expect_error(400, "malformed");
    }
    api.post("bank", &review, json!({"status": "confirmed", "note": "x"}))
        .await
        .expect_error(403, "forbidden");
    let note = "the owner kept four cards behind the counter";
    let reviewed = api
        .post(
            "dinsos",
            &review,
            json!({"status": "confirmed", "note": note}),
        )
        .await;
    let body = reviewed.expect(200);
    assert_eq!(body["status"], "confirmed");
    assert_eq!(body["note"], note);
    assert_eq!(body["reviewed_by"], "dinsos-operator");
    api.post(
        "dinsos",
        &review,
        json!({"status": "dismissed", "note": "no"}),
    )
    .await
    .expect_error(409, "conflict");

    // Now the bank suspends the E-Warong it names, through the E-Warong's own suspension.
    let suspended = api.send("POST", &suspend, Some("bank"), None).await;
    assert_eq!(suspended.expect(200)["status"], "suspended");
    let merchant = api
        .get("auditor", &format!("/api/v1/merchants/{MERCHANT}"))
        .await;
    assert_eq!(merchant.expect(200)["status"], "suspended");
    api.send("POST", &suspend, Some("bank"), None)
        .await
        .expect_error(409, "conflict");

    let audit = api.all("auditor", "/api/v1/audit").await;
    let lines: Vec<String> = audit
        .iter()
        .filter(|l| {
            let action = l["action"].as_str().unwrap();
            action == "alerts.review" || action == "merchants.suspend"
        })
        .map(|l| format!("{} {} {}", l["action"], l["target"], l["outcome"]))
        .collect();
    assert!(!format!("{audit:?}").contains(note), "{lines:?}");
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("merchants.suspend")
            && l.contains(&format!("alert {id}"))
            && l.ends_with("\"ok\"")),
        "{lines:?}"
    );

    // The semester report counts it.
    let report = api
        .get("auditor", "/api/v1/reports/semester?year=2026&half=2")
        .await;
    let alerts = &report.expect(200)["alerts"];
    assert_eq!(alerts["rules"][3]["rule"], "split_purchase");
    assert_eq!(alerts["rules"][3]["confirmed"], 1);
    assert_eq!(alerts["merchants_confirmed"][0], MERCHANT);
}

/// More alerts than a page: the pages of `GET /alerts`, read one after the other, hold every
/// alert once, newest first, and a filter's pages hold exactly its alerts.
#[tokio::test]
async fn more_alerts_than_a_page_are_listed_page_by_page() {
    use ssn_ledger::monitor::{Alert, Evidence, Rule};
    let api = Api::start("alerts-pages").await;
    let merchant = MerchantId::new(MERCHANT).unwrap();
    let alerts: Vec<AlertRecord> = (0..120u64)
        .map(|n| {
            AlertRecord::open(Alert {
                id: format!("{n:032x}"),
                rule: if n % 3 == 0 { Rule::Price } else { Rule::Sweep },
                merchant: Some(merchant.clone()),
                terminal: None,
                program: None,
                cards: Vec::new(),
                evidence: vec![Evidence {
                    position: n,
                    rrn: Rrn::new(format!("{n:012}")).unwrap(),
                }],
                score_percent: 100,
                // Three alerts at each second, ordered by id within it.
                fired_at_unix_seconds: NOW_UNIX_SECONDS - 86_400 + (n / 3) as i64,
                summary: "seen".into(),
            })
        })
        .collect();
    let inserts = alerts
        .iter()
        .map(|a| RegistryOp::Insert(RegistryRecord::Alert(a.clone())))
        .collect();
    api.ledger.registry().apply(inserts).await.unwrap();
    let newest_first = |rule: Option<Rule>| -> Vec<String> {
        let mut ids: Vec<&AlertRecord> = alerts
            .iter()
            .filter(|a| rule.is_none_or(|r| a.alert.rule == r))
            .collect();
        ids.sort_by(|a, b| AlertCursor::after(b).cmp(&AlertCursor::after(a)));
        ids.into_iter().map(|a| a.alert.id.clone()).collect()
    };
    for (query, rule) in [("", None), ("rule=price&", Some(Rule::Price))] {
        let mut listed: Vec<String> = Vec::new();
        for page in 1..=3 {
            let url = format!("/api/v1/alerts?{query}page={page}&page_size=50");
            let answer = api.get("auditor", &url).await;
            let body = answer.expect(200);
            assert_eq!(body["total"], newest_first(rule).len() as u64, "{url}");
            listed.extend(
                body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["id"].as_str().unwrap().to_string()),
            );
        }
        assert_eq!(listed, newest_first(rule), "{query}");
    }
}
