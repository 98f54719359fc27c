//! Issue 8's day: real terminals in both profiles buy and reverse at two E-Warong; one
//! terminal closes its batch out of balance, the other never closes it; the bank's file is
//! checked line by line against the journal (through `/transactions`) and by its trailer and
//! hash; the bank rejects one line, which is carried into the next settlement's file and
//! nowhere twice; the books balance and the journal verifies.

use std::collections::HashMap;
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssn_codec::Profile;

use crate::admin::{
    Api, BOOTSTRAP, CSV, Card, Purchase, Switch, Terminal, code, minor, now, rupiah,
    wait_past_cutover, wita_date,
};

const M1: &str = "EWARONG00000061";
const M2: &str = "EWARONG00000062";
const T1: &str = "EWR61001";
const T2: &str = "EWR62001";

/// Net approved purchases (asked amount, not reversed) per E-Warong, from the journal.
async fn journal_net(api: &Api, merchant: &str) -> (u64, i64, u64, i64) {
    let page = api
        .expect_get(
            &format!("/transactions?merchant_id={merchant}&page_size=1000"),
            BOOTSTRAP,
        )
        .await;
    let (mut count, mut amount, mut reversed, mut reversed_amount) = (0, 0, 0, 0);
    for t in page["items"].as_array().unwrap() {
        if t["kind"] == "purchase" && t["response_code"] == "00" {
            count += 1;
            amount += minor(&t["amount"]);
            if t["reversed"] == true {
                reversed += 1;
                reversed_amount += minor(&t["amount"]);
            }
        }
    }
    (count, amount, reversed, reversed_amount)
}

async fn file(api: &Api, date: &str) -> Vec<String> {
    let (status, _) = api
        .request(
            "GET",
            &format!("/settlements/{date}"),
            Some(BOOTSTRAP),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let text = reqwest::Client::new()
        .get(format!("{}/settlements/{date}/file", api.base()))
        .bearer_auth(BOOTSTRAP)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().map(str::to_string).collect()
}

fn check_trailer(lines: &[String]) -> HashMap<String, Vec<String>> {
    let details: Vec<&String> = lines.iter().filter(|l| l.starts_with("D|")).collect();
    let trailer: Vec<&str> = lines.last().unwrap().split('|').collect();
    assert_eq!(trailer[0], "T");
    assert_eq!(trailer[1], details.len().to_string());
    let total: i64 = details
        .iter()
        .map(|d| minor(&json!(d.split('|').nth(9).unwrap())))
        .sum();
    assert_eq!(trailer[2], rupiah(total));
    let mut hashed = String::new();
    for d in &details {
        hashed.push_str(d);
        hashed.push('\n');
    }
    assert_eq!(
        trailer[3],
        ssn_ledger::hex(&Sha256::digest(hashed.as_bytes()))
    );
    details
        .iter()
        .map(|d| {
            let fields: Vec<String> = d.split('|').map(str::to_string).collect();
            (fields[1].clone(), fields)
        })
        .collect()
}

async fn confirm(api: &Api, date: &str, text: &str) -> (u16, Value) {
    let request = reqwest::Client::new()
        .post(format!("{}/settlements/{date}/confirmation", api.base()))
        .bearer_auth(BOOTSTRAP)
        .header("content-type", "text/plain")
        .body(text.to_string());
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_day_is_settled_filed_confirmed_and_a_rejected_line_carried_once() {
    // Today must be past its cut-over (00:01 WITA) to be settled at the end of the test.
    wait_past_cutover();
    let mut switch = Switch::start();
    let api = Api::new(&switch.admin);
    let admin = BOOTSTRAP;

    // A small city through the API (the bootstrap admin may do every role's step).
    let program = json!({
        "code": "SEMBAKO", "name": "Sembako", "budget_year": 2026,
        "benefit_amount": "300000.00", "allowed_categories": ["01", "02"],
        "basket_required": true, "purchase_amount_max": "100000.00",
        "purchases_per_day_max": 20, "pocket_expires_at": "2099-12-31"
    });
    api.expect(201, "POST", "/programs", admin, program).await;
    let report = api.import(admin, CSV).await;
    let people = api
        .expect_get("/beneficiaries?status=imported", admin)
        .await;
    let ssns: Vec<String> = people["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ssn"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ssns.len() as u64, report["imported"].as_u64().unwrap());
    for ssn in &ssns {
        for step in ["verify", "validate"] {
            api.expect(
                200,
                "POST",
                &format!("/beneficiaries/{ssn}/{step}"),
                admin,
                json!({"approved": true}),
            )
            .await;
        }
    }
    api.expect(
        201,
        "POST",
        "/determinations",
        admin,
        json!({"decree_number": "SK-1", "decree_date": "2026-11-01", "program_code": "SEMBAKO", "ssns": ssns}),
    )
    .await;
    let mut cards = Vec::new();
    for ssn in &ssns {
        let issued = api
            .expect(201, "POST", "/cards", admin, json!({"ssn": ssn}))
            .await;
        let card = Card::issued(&issued);
        api.expect(
            200,
            "POST",
            &format!("/cards/{}/deliver", card.id),
            admin,
            json!({}),
        )
        .await;
        cards.push(card);
    }
    api.expect(
        201,
        "POST",
        "/programs/SEMBAKO/funding",
        admin,
        json!({"amount": "900000.00", "reference": "APBD-1"}),
    )
    .await;
    api.expect(
        201,
        "POST",
        "/disbursements",
        admin,
        json!({"program_code": "SEMBAKO", "period": "2026-11"}),
    )
    .await;
    let mut keys = Vec::new();
    for (m, t) in [(M1, T1), (M2, T2)] {
        api.appoint_merchant(admin, m, "Palaran").await;
        keys.push(api.install_terminal(admin, t, m).await);
    }

    // Day one: EWR61001 on bcd, EWR62001 on ascii.
    let mut t1 = Terminal::connect_as(&switch.bcd, Profile::Bcd, &keys[0], T1, M1).await;
    let mut t2 = Terminal::connect_as(&switch.ascii, Profile::Ascii, &keys[1], T2, M2).await;
    let p1 = Purchase::new(&cards[0], &[("01", 1_000_000)]);
    let p2 = Purchase::new(&cards[1], &[("01", 1_500_000), ("02", 500_000)]);
    let p3 = Purchase::new(&cards[2], &[("02", 1_500_000)]);
    let p4 = Purchase::new(&cards[0], &[("01", 500_000)]);
    for p in [&p1, &p2] {
        assert_eq!(code(&t1.purchase(p).await), "00");
    }
    for p in [&p3, &p4] {
        assert_eq!(code(&t2.purchase(p).await), "00");
    }
    assert_eq!(code(&t1.reverse(&p2).await), "00");
    // EWR61001 closes out of balance (it missed the reversal): 95, the journal's totals win.
    assert_eq!(
        code(&t1.close_batch("000001", (2, 3_000_000, 0, 0)).await),
        "95"
    );
    // EWR62001 never closes its batch.

    let yesterday = wita_date(now() - 86_400);
    let today = wita_date(now());
    let settled = api
        .expect(
            201,
            "POST",
            "/settlements",
            admin,
            json!({"business_date": yesterday}),
        )
        .await;
    assert_eq!(settled["batches"], 2, "{settled}");
    let day1 = file(&api, &yesterday).await;
    let lines = check_trailer(&day1);
    assert_eq!(lines.len(), 2);
    for (merchant, fields) in &lines {
        let (count, amount, reversed, reversed_amount) = journal_net(&api, merchant).await;
        assert_eq!(fields[4], count.to_string(), "{fields:?}");
        assert_eq!(fields[5], rupiah(amount), "{fields:?}");
        assert_eq!(fields[6], reversed.to_string(), "{fields:?}");
        assert_eq!(fields[7], rupiah(reversed_amount), "{fields:?}");
        assert_eq!(fields[8], "0.00");
        assert_eq!(fields[9], rupiah(amount - reversed_amount));
    }
    assert_eq!(lines[M1][9], rupiah(p1.amount()));
    assert_eq!(lines[M2][9], rupiah(p3.amount() + p4.amount()));

    // Reconciliation before the bank answers: the out-of-balance batch, the batch the
    // settlement closed, and two lines without an answer.
    let reconciliation = api
        .expect_get(&format!("/reconciliation?business_date={yesterday}"), admin)
        .await;
    let mut kinds: Vec<String> = reconciliation["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "bank_no_answer",
            "bank_no_answer",
            "batch_not_closed",
            "batch_out_of_balance"
        ]
    );

    // The bank pays M1 and rejects M2.
    let answer = format!(
        "{M1}|{}|PAID|BPD-0001\n{M2}|{}|REJECTED|BPD-0002\n",
        lines[M1][9], lines[M2][9]
    );
    let (status, body) = confirm(&api, &yesterday, &answer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["paid"].clone(), body["rejected"].clone()),
        (json!(1), json!(1))
    );

    // Day two: one more purchase at M1, batch closed in balance; settle today.
    let p5 = Purchase::new(&cards[1], &[("01", 250_000)]);
    assert_eq!(code(&t1.purchase(&p5).await), "00");
    assert_eq!(
        code(&t1.close_batch("000002", (1, 250_000, 0, 0)).await),
        "00"
    );
    api.expect(
        201,
        "POST",
        "/settlements",
        admin,
        json!({"business_date": today}),
    )
    .await;
    let day2 = file(&api, &today).await;
    let lines2 = check_trailer(&day2);
    // M1: only the new purchase; its paid day-one amount is not in the file again.
    assert_eq!(lines2[M1][8], "0.00");
    assert_eq!(lines2[M1][9], rupiah(p5.amount()));
    // M2: nothing new, the rejected line carried once.
    assert_eq!(lines2[M2][4], "0");
    assert_eq!(lines2[M2][8], lines[M2][9]);
    assert_eq!(lines2[M2][9], lines[M2][9]);
    let (status, body) = confirm(
        &api,
        &today,
        &format!(
            "{M1}|{}|PAID|BPD-0003\n{M2}|{}|PAID|BPD-0004\n",
            lines2[M1][9], lines2[M2][9]
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Every rupiah spent was paid out exactly once: day one's M1 line plus day two's lines.
    let paid_total =
        minor(&json!(lines[M1][9])) + minor(&json!(lines2[M1][9])) + minor(&json!(lines2[M2][9]));
    assert_eq!(
        paid_total,
        p1.amount() + p3.amount() + p4.amount() + p5.amount()
    );

    // The journal verifies after a clean stop.
    assert!(switch.stop().success());
    let verify = Command::new(crate::admin::switch_binary())
        .args(["verify", "--data-dir"])
        .arg(&switch.data_dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
