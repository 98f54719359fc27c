//! Settlement through the API: a day of purchases on two E-Warong (one terminal closed its
//! batch, one never did) is settled into the bank's file, whose every detail line and trailer
//! are checked against the journal; the bank's confirmation pays one line and rejects the
//! other, which stays payable.

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
    crate::buy(
        &api,
        (card, 1),
        ("EWARONG00000011", "EWR11001"),
        10_000,
        crate::NOW_UNIX_SECONDS,
    )
    .await;
    crate::buy(
        &api,
        (card, 2),
        ("EWARONG00000011", "EWR11001"),
        20_000,
        crate::NOW_UNIX_SECONDS,
    )
    .await;
    crate::buy(
        &api,
        (card, 3),
        ("EWARONG00000012", "EWR12001"),
        5_000,
        crate::NOW_UNIX_SECONDS,
    )
    .await;
    ledger
        .reverse_purchase(ReversalRequest {
            original: PurchaseKey {
                terminal: TerminalId::new("EWR11001").unwrap(),
                stan: Stan::new("000002").unwrap(),
                transmitted: TransmissionTime::new("1129020000").unwrap(),
            },
            card: Some(card),
            amount: rp(20_000),
            at_unix_seconds: crate::NOW_UNIX_SECONDS,
        })
        .await
        .unwrap();
    // The first E-Warong's terminal closes its batch; the second's never does.
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
            at_unix_seconds: crate::NOW_UNIX_SECONDS,
        })
        .await
        .unwrap();

    // The fixed clock is 2026-11-29 10:00 WITA: that day has not ended yet.
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
    assert_eq!(
        settlement["batches"], 2,
        "the closed batch and the forced close"
    );
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

    // The file: header, details, trailer; every figure from the journal; the hash over the
    // details; byte for byte the same on a second read.
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
        "D|EWARONG00000011|Warung EWARONG00000011|ACC11|2|30000.00|1|20000.00|0.00|10000.00"
    );
    assert_eq!(
        lines[2],
        "D|EWARONG00000012|Warung EWARONG00000012|ACC12|1|5000.00|0|0.00|0.00|5000.00"
    );
    let details = format!("{}\n{}\n", lines[1], lines[2]);
    let digest = hex(&Sha256::digest(details.as_bytes()));
    assert_eq!(lines[3], format!("T|2|15000.00|{digest}"));
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
    // The three-way comparison: the batch the terminal never closed and the rejected line
    // are the differences; the closed batch matched its 0500 totals.
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
        vec![
            (
                "batch_not_closed".to_string(),
                "EWARONG00000012".to_string()
            ),
            ("bank_rejected".to_string(), "EWARONG00000012".to_string()),
        ]
    );
    let batches = reconciliation["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert!(
        batches
            .iter()
            .any(|b| b["terminal_id"] == "EWR11001" && b["matched"] == true)
    );
    api.get("auditor", "/api/v1/reconciliation?business_date=2026-11-27")
        .await
        .expect_error(404, "not_found");

    let state = ledger.state();
    let m11 = MerchantId::new("EWARONG00000011").unwrap();
    let m12 = MerchantId::new("EWARONG00000012").unwrap();
    assert_eq!(state.balance(&Account::Payable(m11.clone())), Money::ZERO);
    assert_eq!(state.balance(&Account::PaidOut(m11)), rp(10_000));
    assert_eq!(state.balance(&Account::Payable(m12.clone())), rp(5_000));
    assert_eq!(state.carried.get(&m12), Some(&rp(5_000)));
    assert_eq!(state.sum_of_balances(), Some(Money::ZERO));
}
