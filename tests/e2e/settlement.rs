//! A business date settled strictly by date, through real terminals in both profiles: the
//! switch restarts with a cut-over a minute or two ahead; before it, terminals buy and
//! reverse at two E-Warong (one closes its batch out of balance) and the date cannot be
//! settled (422); after it, a purchase of the next date, then the date's settlement holds
//! exactly its own purchases; the other terminal reverses a purchase of the settled date and
//! closes its batch that evening on its whole batch (`00`); the bank's file is checked line by
//! line (exactly the spec's fields) against the journal and by its trailer and hash; the
//! reconciliation shows the terminals' and the journal's view; a restart answers the same
//! settlement; the books balance and the journal verifies. (The next date's file, with the
//! adjustment and the carried rejected line, is the admin API's test: its cut-over is
//! tomorrow.)

use std::collections::HashMap;
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssn_codec::Profile;

use crate::admin::{
    Api, BOOTSTRAP, CSV, Card, Purchase, Switch, Terminal, code, minor, now, rupiah,
    wait_past_cutover,
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
    assert_eq!(trailer.len(), 7, "{trailer:?}");
    assert_eq!(trailer[1], details.len().to_string());
    let total: i64 = details
        .iter()
        .map(|d| minor(&json!(d.split('|').nth(8).unwrap())))
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

/// WITA `HH:MM` of the whole minute one to two minutes from now, and that instant.
fn cutover_soon() -> (String, i64) {
    let now = now();
    let local = (now + ssn_ledger::WITA_OFFSET_SECONDS).rem_euclid(86_400);
    let minute = local / 60 + 2;
    let at = now - local + minute * 60;
    (format!("{:02}:{:02}", minute / 60, minute % 60), at)
}

#[tokio::test]
async fn a_business_date_is_settled_by_date_filed_confirmed_and_reconciled() {
    // Not near midnight: the cut-over this test sets is later today (WITA).
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

    // The switch restarts with its business day ending a minute or two from now: the
    // cut-over is journaled, so today's purchases from here on belong to today (D).
    let (cutover, cutover_at) = cutover_soon();
    switch.restart(&cutover);
    let api = Api::new(&switch.admin);
    let today = ssn_ledger::Day::wita_of_unix_seconds(now()).to_string();

    // D: EWR61001 on bcd, EWR62001 on ascii.
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
    // D has not ended: refused, saying when it does.
    let (status, refused) = api
        .request(
            "POST",
            "/settlements",
            Some(admin),
            Some(&json!({"business_date": today})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        now() < cutover_at,
        "the purchases of D took longer than the minute to its cut-over"
    );

    // After the cut-over: a purchase of D+1 at the second E-Warong, then D is settled.
    while now() < cutover_at {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let p5 = Purchase::new(&cards[1], &[("01", 250_000)]);
    assert_eq!(code(&t2.purchase(&p5).await), "00");
    let settled = api
        .expect(
            201,
            "POST",
            "/settlements",
            admin,
            json!({"business_date": today}),
        )
        .await;
    assert_eq!(settled["batches"], 0, "{settled}");
    let again = api
        .expect(
            200,
            "POST",
            "/settlements",
            admin,
            json!({"business_date": today}),
        )
        .await;
    assert_eq!(again, settled);
    let day1 = file(&api, &today).await;
    let lines = check_trailer(&day1);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        day1.last().unwrap().split('|').skip(4).collect::<Vec<_>>(),
        ["0", "0.00", "0.00"]
    );
    // Exactly the spec's fields: merchant id, name, account, purchase count and amount,
    // reversal count and amount, net amount.
    let merchant_name = |m: &str| format!("Warung {m}");
    assert_eq!(
        lines[M1].len(),
        9,
        "D + merchant, name, account, 2 purchase, 2 reversal, net: {:?}",
        lines[M1]
    );
    assert_eq!(lines[M1][2], merchant_name(M1), "{:?}", lines[M1]);
    assert_eq!(
        lines[M1][4..],
        [
            "2".to_string(),
            rupiah(p1.amount() + p2.amount()),
            "1".to_string(),
            rupiah(p2.amount()),
            rupiah(p1.amount()),
        ]
    );
    // D's purchases only: p5 (D+1's) is not in the file.
    assert_eq!(
        lines[M2][4..],
        [
            "2".to_string(),
            rupiah(p3.amount() + p4.amount()),
            "0".to_string(),
            "0.00".to_string(),
            rupiah(p3.amount() + p4.amount()),
        ]
    );
    let (count, _, _, _) = journal_net(&api, M2).await;
    assert_eq!(count, 3, "the journal holds p5 too");

    // That evening, after D was settled: EWR62001 reverses p4 (a purchase of the settled
    // date, its batch still open: an adjustment of the next date) and closes its batch on
    // its whole batch, D's and D+1's purchases alike: 00.
    assert_eq!(code(&t2.reverse(&p4).await), "00");
    assert_eq!(
        code(
            &t2.close_batch("000001", (2, p3.amount() + p5.amount(), 1, p4.amount()))
                .await
        ),
        "00"
    );

    // Reconciliation before the bank answers: the terminals' view (EWR61001's batch closed
    // on D, out of balance; EWR62001 closed after D's cut-over, so on D+1) and the journal's
    // lines without an answer.
    let reconciliation = api
        .expect_get(&format!("/reconciliation?business_date={today}"), admin)
        .await;
    let batches = reconciliation["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{reconciliation}");
    assert_eq!(batches[0]["terminal_id"], T1);
    let mut kinds: Vec<String> = reconciliation["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["bank_no_answer", "bank_no_answer", "batch_out_of_balance"]
    );

    // The bank pays M1 and rejects M2 (it stays payable for the next date's file).
    let answer = format!(
        "{M1}|{}|PAID|BPD-0001\n{M2}|{}|REJECTED|BPD-0002\n",
        lines[M1][8], lines[M2][8]
    );
    let (status, body) = confirm(&api, &today, &answer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["paid"].clone(), body["rejected"].clone()),
        (json!(1), json!(1))
    );

    // A restart replays the journal: the same settlement and file, byte for byte.
    drop(t1);
    drop(t2);
    switch.restart(&cutover);
    let api = Api::new(&switch.admin);
    let after = api
        .expect_get(&format!("/settlements/{today}"), admin)
        .await;
    assert_eq!(after["lines"], body["settlement"]["lines"]);
    assert_eq!(file(&api, &today).await, day1);

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
