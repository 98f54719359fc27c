//! Settlement through the API: a business date of purchases on two E-Warong (one terminal
//! closed its batch, one did not) is settled into the bank's file the next morning without
//! that morning's purchase, every detail line and the trailer checked; the bank's
//! confirmation pays one line and rejects the other, which joins the next date's file with a
//! reversal of a settled purchase as an adjustment; terminal batches stay the terminals'.

use serde_json::json;
use sha2::{Digest, Sha256};
use ssn_ledger::*;

use crate::Api;

fn rp(rupiah: i64) -> Money {
    Money::from_minor(rupiah * 100)
}

#[tokio::test]
async fn a_day_is_settled_into_the_bank_file_and_confirmed() {
    let api = Api::start("settle").await;
    let ledger = &api.ledger;
    let code = ProgramCode::new("SETTLE1").unwrap();
    ledger
        .define_program(crate::program("SETTLE1", 300_000, "2099-12-31"))
        .await
        .unwrap();
    let mut ops = crate::shop("EWARONG00000011", "EWR11001");
    ops.extend(crate::shop("EWARONG00000012", "EWR12001"));
    ops.extend(crate::carded_person(1, &code, 900));
    ledger.registry().apply(ops).await.unwrap();
    ledger
        .fund_program(&code, rp(300_000), "APBD-SETTLE", crate::NOW_UNIX_SECONDS)
        .await
        .unwrap();
    ledger
        .disburse(&code, "2026-11", crate::NOW_UNIX_SECONDS)
        .await
        .unwrap();

    let card = CardId(900);
    let day = 86_400;
    // 2026-11-28 (D) 10:00 WITA, and the API's clock, 2026-11-29 (D+1) 10:00 WITA.
    let d = crate::NOW_UNIX_SECONDS - day;
    let now = crate::NOW_UNIX_SECONDS;
    let (m11, m12) = (
        ("EWARONG00000011", "EWR11001"),
        ("EWARONG00000012", "EWR12001"),
    );
    crate::buy(&api, (card, 1), m11, 10_000, d).await;
    let p2 = crate::buy(&api, (card, 2), m11, 20_000, d + 60).await;
    let p3 = crate::buy(&api, (card, 3), m12, 5_000, d + 120).await;
    ledger
        .reverse_purchase(ReversalRequest {
            original: p2.key,
            card: Some(card),
            amount: rp(20_000),
            at_unix_seconds: d + 180,
        })
        .await
        .unwrap();
    // D's evening: the first E-Warong's terminal closes its batch; the second's does not.
    ledger
        .close_batch(BatchCloseRequest {
            terminal: TerminalId::new("EWR11001").unwrap(),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals {
                sales_count: 1,
                sales_amount: rp(10_000),
                reversal_count: 1,
                reversal_amount: rp(20_000),
            },
            at_unix_seconds: d + 8 * 3600,
        })
        .await
        .unwrap();
    // D+1's morning, before D is settled: a purchase that is D+1's, not D's.
    crate::buy(&api, (card, 4), m11, 7_000, now - 60).await;

    // D+1 has not ended yet (10:00 WITA, cut-over at midnight).
    api.post(
        "bank",
        "/api/v1/settlements",
        json!({"business_date": "2026-11-29"}),
    )
    .await
    .expect_error(422, "refused");
    let created = api
        .post(
            "bank",
            "/api/v1/settlements",
            json!({"business_date": "2026-11-28"}),
        )
        .await;
    let settlement = created.expect(201).clone();
    assert_eq!(settlement["status"], "settled");
    assert_eq!(settlement["batches"], 0, "no batch is settled or closed");
    assert_eq!(settlement["line_count"], 2);
    assert_eq!(settlement["total_net_amount"], "15000.00");
    let again = api
        .post(
            "bank",
            "/api/v1/settlements",
            json!({"business_date": "2026-11-28"}),
        )
        .await;
    assert_eq!(again.expect(200), &settlement, "a repeat answers the same");
    // The second terminal's batch is still open with D's purchase: no settlement closed it.
    assert_eq!(
        ledger
            .open_batch_totals(&TerminalId::new("EWR12001").unwrap())
            .sales_amount,
        rp(5_000)
    );
    // Both terminals' open batches, by terminal id: the first's since its 0500 (D+1's
    // purchase), the second's since D; any role reads them, a page at a time.
    let open = api.get("auditor", "/api/v1/batches?status=open").await;
    let open = open.expect(200);
    assert_eq!(open["total"], 2, "{open}");
    let item = |i: usize| {
        (
            open["items"][i]["terminal_id"].clone(),
            open["items"][i]["merchant_id"].clone(),
            open["items"][i]["journal_totals"]["sales_amount"].clone(),
        )
    };
    assert_eq!(item(0), (json!("EWR11001"), json!(m11.0), json!("7000.00")));
    assert_eq!(item(1), (json!("EWR12001"), json!(m12.0), json!("5000.00")));
    assert_eq!(
        open["items"][0]["sequence"].as_u64(),
        Some(open["items"][1]["sequence"].as_u64().unwrap() + 1),
        "{open}"
    );
    let second = api.get("bank", "/api/v1/batches?page=2&page_size=1").await;
    assert_eq!(second.expect(200)["items"][0]["terminal_id"], "EWR12001");
    api.get("bank", "/api/v1/batches?status=closed")
        .await
        .expect_error(400, "malformed");

    // The file: header, details with exactly the spec's fields, trailer; every figure from
    // the journal; the hash over the details; byte for byte the same on a second read.
    let file = api
        .get("auditor", "/api/v1/settlements/2026-11-28/file")
        .await;
    let text = file.text().to_string();
    assert_eq!(
        api.get("auditor", "/api/v1/settlements/2026-11-28/file")
            .await
            .text(),
        text
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("H|SSN-SAMARINDA|2026-11-28|1|"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "D|EWARONG00000011|Warung EWARONG00000011|ACC11|2|30000.00|1|20000.00|10000.00"
    );
    assert_eq!(
        lines[2],
        "D|EWARONG00000012|Warung EWARONG00000012|ACC12|1|5000.00|0|0.00|5000.00"
    );
    let details = format!("{}\n{}\n", lines[1], lines[2]);
    let digest = hex(&Sha256::digest(details.as_bytes()));
    assert_eq!(lines[3], format!("T|2|15000.00|{digest}|0|0.00|0.00"));
    {
        let state = ledger.state();
        let payable = |m: &str| state.balance(&Account::Payable(MerchantId::new(m).unwrap()));
        assert_eq!(payable("EWARONG00000011"), rp(10_000));
        assert_eq!(payable("EWARONG00000012"), rp(5_000));
        assert_eq!(state.sum_of_balances(), Some(Money::ZERO));
    }

    // The bank: a wrong amount is refused whole; then one line paid, one rejected.
    api.post_csv(
        "bank",
        "/api/v1/settlements/2026-11-28/confirmation",
        "EWARONG00000011|9999.00|PAID|B-1\n",
    )
    .await
    .expect_error(422, "refused");
    api.post_csv(
        "auditor",
        "/api/v1/settlements/2026-11-28/confirmation",
        "EWARONG00000011|10000.00|PAID|B-1\n",
    )
    .await
    .expect_error(403, "forbidden");
    let confirmed = api
        .post_csv(
            "bank",
            "/api/v1/settlements/2026-11-28/confirmation",
            "EWARONG00000011|10000.00|PAID|B-1\nEWARONG00000012|5000.00|REJECTED|B-2\n",
        )
        .await;
    let confirmed = confirmed.expect(200);
    assert_eq!(
        (confirmed["paid"].clone(), confirmed["rejected"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(confirmed["settlement"]["status"], "confirmed");
    // The three-way comparison: the terminals' view (the batch closed on D, matched) and
    // the journal's and bank's (the rejected line is the difference).
    let reconciliation = api
        .get("auditor", "/api/v1/reconciliation?business_date=2026-11-28")
        .await;
    let reconciliation = reconciliation.expect(200);
    assert_eq!(reconciliation["status"], "differences");
    let kinds: Vec<(String, String)> = reconciliation["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["merchant_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("bank_rejected".to_string(), "EWARONG00000012".to_string())]
    );
    let batches = reconciliation["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0]["terminal_id"], "EWR11001");
    assert_eq!(batches[0]["matched"], true);
    api.get("auditor", "/api/v1/reconciliation?business_date=2026-11-27")
        .await
        .expect_error(404, "not_found");

    // D+1: the second E-Warong's D purchase is reversed (D is settled: an adjustment of D+1),
    // it sells 8,000, and its terminal closes that evening on its whole batch.
    ledger
        .reverse_purchase(ReversalRequest {
            original: p3.key,
            card: Some(card),
            amount: rp(5_000),
            at_unix_seconds: now + 3600,
        })
        .await
        .unwrap();
    crate::buy(&api, (card, 5), m12, 8_000, now + 7200).await;
    let evening = ledger
        .close_batch(BatchCloseRequest {
            terminal: TerminalId::new("EWR12001").unwrap(),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals {
                sales_count: 1,
                sales_amount: rp(8_000),
                reversal_count: 1,
                reversal_amount: rp(5_000),
            },
            at_unix_seconds: now + 10 * 3600,
        })
        .await
        .unwrap();
    assert!(evening.matched, "{evening:?}");
    api.advance_clock(day);
    api.post(
        "bank",
        "/api/v1/settlements",
        json!({"business_date": "2026-11-29"}),
    )
    .await
    .expect(201);
    let text = api
        .get("auditor", "/api/v1/settlements/2026-11-29/file")
        .await
        .text()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("H|SSN-SAMARINDA|2026-11-29|2|"));
    assert_eq!(
        lines[1],
        "D|EWARONG00000011|Warung EWARONG00000011|ACC11|1|7000.00|0|0.00|7000.00"
    );
    // 8,000 sold − 5,000 adjustment + 5,000 carried from D's rejected line.
    assert_eq!(
        lines[2],
        "D|EWARONG00000012|Warung EWARONG00000012|ACC12|1|8000.00|0|0.00|8000.00"
    );
    let details = format!("{}\n{}\n", lines[1], lines[2]);
    let digest = hex(&Sha256::digest(details.as_bytes()));
    assert_eq!(lines[3], format!("T|2|15000.00|{digest}|1|5000.00|5000.00"));
    let view = api.get("auditor", "/api/v1/settlements/2026-11-29").await;
    let view = view.expect(200);
    assert_eq!(view["lines"][1]["adjustment_count"], 1);
    assert_eq!(view["lines"][1]["adjustment_amount"], "5000.00");
    assert_eq!(view["lines"][1]["carried"], "5000.00");
    let reconciliation = api
        .get("auditor", "/api/v1/reconciliation?business_date=2026-11-29")
        .await;
    let batches = reconciliation.expect(200)["batches"].clone();
    assert_eq!(batches.as_array().unwrap().len(), 1, "{batches}");
    assert_eq!(batches[0]["terminal_id"], "EWR12001");
    assert_eq!(batches[0]["matched"], true);

    let state = ledger.state();
    let m11 = MerchantId::new("EWARONG00000011").unwrap();
    let m12 = MerchantId::new("EWARONG00000012").unwrap();
    assert_eq!(state.balance(&Account::Payable(m11.clone())), rp(7_000));
    assert_eq!(state.balance(&Account::PaidOut(m11)), rp(10_000));
    assert_eq!(state.balance(&Account::Payable(m12.clone())), rp(8_000));
    assert!(!state.carried.contains_key(&m12));
    assert_eq!(state.sum_of_balances(), Some(Money::ZERO));
}
