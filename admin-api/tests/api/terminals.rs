//! `POST /terminals` with a TAK (host interface §10): checked against its check value like the
//! TMK and TPK, stored wrapped, shown by its check value only.

use serde_json::{Value, json};
use ssn_hsm::{KeyUsage, TdesKey, WrappedKey};
use ssn_ledger::TerminalId;

use crate::Api;

const MERCHANT: &str = "EWARONG00000077";

fn key_pair() -> (String, String) {
    let key = TdesKey::generate().expect("a key");
    (key.reveal_hex().to_string(), key.check_value().to_string())
}

fn terminal(id: &str, tak: Option<(&str, &str)>) -> Value {
    let (tmk, tpk) = (key_pair(), key_pair());
    let mut body = json!({"terminal_id": id, "merchant_id": MERCHANT,
        "tmk": tmk.0, "tmk_kcv": tmk.1, "tpk": tpk.0, "tpk_kcv": tpk.1});
    if let Some((tak, tak_kcv)) = tak {
        body["tak"] = json!(tak);
        body["tak_kcv"] = json!(tak_kcv);
    }
    body
}

#[tokio::test]
async fn a_terminal_is_installed_with_a_tak_checked_against_its_check_value() {
    let api = Api::start("terminal-tak").await;
    api.post(
        "bank",
        "/api/v1/merchants",
        json!({"merchant_id": MERCHANT, "name": "Warung TAK", "kind": "mikro",
               "kecamatan": "Palaran", "kelurahan": "Rawa Makmur",
               "settlement_account": "0011223377"}),
    )
    .await
    .expect(201);
    let (tak, tak_kcv) = key_pair();
    let wrong_kcv = if tak_kcv == "000000" {
        "000001"
    } else {
        "000000"
    };

    let refused = api
        .post(
            "bank",
            "/api/v1/terminals",
            terminal("EWRTAK01", Some((&tak, wrong_kcv))),
        )
        .await
        .expect_error(422, "refused");
    assert!(refused.contains("tak_kcv"), "{refused}");
    let malformed = api
        .post(
            "bank",
            "/api/v1/terminals",
            terminal("EWRTAK01", Some((&tak[..30], &tak_kcv))),
        )
        .await
        .expect_error(400, "malformed");
    assert!(malformed.contains("tak"), "{malformed}");
    let mut half = terminal("EWRTAK01", None);
    half["tak"] = json!(tak);
    let alone = api
        .post("bank", "/api/v1/terminals", half)
        .await
        .expect_error(400, "malformed");
    assert!(alone.contains("tak_kcv"), "{alone}");
    // Nothing of the refused requests was stored.
    api.get("bank", "/api/v1/terminals/EWRTAK01")
        .await
        .expect(404);

    let installed = api
        .post(
            "bank",
            "/api/v1/terminals",
            terminal("EWRTAK01", Some((&tak.to_lowercase(), &tak_kcv))),
        )
        .await
        .expect(201)
        .clone();
    assert_eq!(installed["tak_kcv"], tak_kcv.as_str(), "{installed}");
    assert!(
        !installed.to_string().contains(&tak),
        "the key is never shown"
    );
    let read = api.get("auditor", "/api/v1/terminals/EWRTAK01").await;
    assert_eq!(read.expect(200)["tak_kcv"], tak_kcv.as_str());

    // Stored wrapped as a TAK, and a terminal without one has none (and shows none).
    let stored = api
        .ledger
        .registry()
        .terminal(&TerminalId::new("EWRTAK01").unwrap())
        .await
        .unwrap()
        .unwrap();
    let wrapped = WrappedKey::from_slice(&stored.tak.expect("a TAK").ciphertext).unwrap();
    assert_eq!(wrapped.usage(), KeyUsage::Tak);
    let plain = api
        .post("bank", "/api/v1/terminals", terminal("EWRTAK02", None))
        .await
        .expect(201)
        .clone();
    assert!(plain.get("tak_kcv").is_none(), "{plain}");
}
