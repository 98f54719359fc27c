//! The misuse monitor end to end: wrong PINs on several cards at one terminal, sent as real
//! ISO 8583 purchases, raise a PIN-guessing alert that `GET /alerts` shows with masked cards
//! and the declines' DE37 as evidence; Dinas Sosial confirms it, the bank suspends the
//! E-Warong from it, and the E-Warong's terminal is then declined as §6 says (`03`).

use std::time::Instant;

use serde_json::{Value, json};
use ssn_codec::Profile;

use super::e2e::{ACTIVE, Backend, DEADLINE, Purchase, Switch, code, text};

/// The admin API's bootstrap token of this test's switch.
const ADMIN_TOKEN: &str = "alerts-e2e-admin-token";

/// Calls the admin API; the answer's status and JSON body.
async fn call(method: &str, url: String, token: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let answer = request.bearer_auth(token).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A new token of `role`, made with the bootstrap token.
async fn token(admin: &str, role: &str) -> String {
    let body = json!({"name": format!("alerts-e2e-{role}"), "role": role});
    let url = format!("http://{admin}/api/v1/tokens");
    let (status, made) = call("POST", url, ADMIN_TOKEN, Some(body)).await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn wrong_pins_across_cards_are_alerted_reviewed_and_the_e_warong_suspended() {
    let data_dir = std::env::temp_dir().join(format!("ssn-e2e-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let switch = Switch::launch_with(
        data_dir,
        Backend::Embedded,
        12,
        Vec::new(),
        &[("SSN_BOOTSTRAP_TOKEN", ADMIN_TOKEN)],
    );
    let admin = switch.admin().to_string();
    let mut terminal = switch.terminal(Profile::Bcd, ACTIVE).await;
    let cards: Vec<_> = (0..3).map(|i| switch.regular(false, i)).collect();
    // An honest purchase first: it is no part of the pattern.
    let honest = terminal
        .purchase(&Purchase::new(&switch.regular(false, 3), 10_000))
        .await;
    assert_eq!(code(&honest), "00");
    // Two wrong PINs on each of three cards (the third in a row would lock a card).
    let mut declined = Vec::new();
    for card in &cards {
        for _ in 0..2 {
            let mut guess = Purchase::new(card, 10_000);
            guess.pin = switch.wrong_pin(card);
            let answer = terminal.purchase(&guess).await;
            assert_eq!(code(&answer), "55");
            declined.push(text(&answer, 37));
        }
    }

    let auditor = token(&admin, "auditor").await;
    let list = format!("http://{admin}/api/v1/alerts?rule=pin_guessing");
    let started = Instant::now();
    let alert = loop {
        let (status, page) = call("GET", list.clone(), &auditor, None).await;
        assert_eq!(status, 200, "{page}");
        if let Some(alert) = page["items"].as_array().and_then(|items| items.first()) {
            assert_eq!(page["total"], 1, "{page}");
            break alert.clone();
        }
        assert!(started.elapsed() < DEADLINE, "no alert within {DEADLINE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["terminal_id"], terminal.id.as_str());
    assert_eq!(alert["merchant_id"], terminal.merchant.as_str());
    let shown: Vec<String> = alert["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pan"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown.len(), 3, "{alert}");
    for (pan, card) in shown.iter().zip(&cards) {
        assert_ne!(pan, &card.pan, "a PAN is shown masked");
        assert!(pan.contains("******"), "{pan}");
        assert_eq!(pan[..6], card.pan[..6]);
        assert_eq!(pan[pan.len() - 4..], card.pan[card.pan.len() - 4..]);
    }
    let evidence: Vec<String> = alert["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rrn"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        evidence, declined,
        "the evidence is the six declines, oldest first"
    );
    let id = alert["id"].as_str().unwrap().to_string();

    // Only Dinas Sosial reviews; only a confirmed alert suspends.
    let bank = token(&admin, "bank").await;
    let suspend = format!("http://{admin}/api/v1/alerts/{id}/suspend-merchant");
    let (status, refused) = call("POST", suspend.clone(), &bank, None).await;
    assert_eq!(status, 409, "{refused}");
    let dinsos = token(&admin, "dinsos").await;
    let review = json!({"status": "confirmed", "note": "cards held by the shop's cashier"});
    let url = format!("http://{admin}/api/v1/alerts/{id}/review");
    let (status, reviewed) = call("POST", url, &dinsos, Some(review)).await;
    assert_eq!(status, 200, "{reviewed}");
    assert_eq!(reviewed["status"], "confirmed");

    let (status, merchant) = call("POST", suspend, &bank, None).await;
    assert_eq!(status, 200, "{merchant}");
    let after = terminal
        .purchase(&Purchase::new(&switch.regular(false, 3), 10_000))
        .await;
    assert_eq!(
        code(&after),
        "03",
        "the suspended E-Warong's terminal is declined"
    );
}
