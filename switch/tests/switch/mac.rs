//! §10 message authentication against a real `ssn-switch serve --demo`: the demo's terminal
//! with a TAK MACs its requests, in both profiles. The MACs here are computed the way a jPOS
//! terminal computes them (the encoded message with the MAC field set, less the MAC field's
//! last 8 bytes or 16 hex digits), not with the switch's own `mac` module.

use bytes::Bytes;
use ssn_codec::{Message, MessageView, Profile};
use ssn_hsm::{KeyChange, TdesKey, retail_mac};

use super::e2e::{
    ACTIVE, Backend, Purchase, SEMBAKO, Switch, Terminal, WITH_TAK, code, sample, text,
};

const PROFILES: [Profile; 2] = [Profile::Bcd, Profile::Ascii];

/// Wire bytes of the 8-byte MAC field at the end of a message in `profile`.
fn mac_wire_bytes(profile: Profile) -> usize {
    match profile {
        Profile::Bcd => 8,
        Profile::Ascii => 16,
    }
}

/// DE128 when a field of 65-128 is present, DE64 otherwise.
fn mac_field(fields: impl Fn(u8) -> bool) -> u8 {
    if (65..=128).any(fields) { 128 } else { 64 }
}

/// `message` with its MAC under `tak`.
fn signed(mut message: Message, profile: Profile, tak: &TdesKey) -> Message {
    let field = mac_field(|n| message.has(n));
    message.set(field, &[0; 8]).unwrap();
    let wire = message.to_bytes(profile);
    let mac = retail_mac(tak, &wire[..wire.len() - mac_wire_bytes(profile)]);
    message.set(field, &mac).unwrap();
    message
}

/// Whether `answer` carries a MAC that verifies under `tak`.
fn verifies(answer: &MessageView, profile: Profile, tak: &TdesKey) -> bool {
    let field = mac_field(|n| answer.has(n));
    let Some(mac) = answer.binary::<8>(field) else {
        return false;
    };
    let bytes: &Bytes = answer.bytes();
    retail_mac(tak, &bytes[..bytes.len() - mac_wire_bytes(profile)]) == mac
}

async fn scrape(switch: &Switch) -> String {
    reqwest::get(format!("http://{}/metrics", switch.admin()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap()
}

fn refused(metrics: &str, reason: &str) -> f64 {
    sample(
        metrics,
        "ssn_mac_refused_total",
        &[&format!("reason=\"{reason}\"")],
    )
}

#[tokio::test]
async fn a_tak_terminal_is_served_when_its_mac_verifies_and_refused_63_when_not() {
    let switch = Switch::start(Backend::Embedded);
    let before = scrape(&switch).await;
    for (i, profile) in PROFILES.into_iter().enumerate() {
        let mut t: Terminal = switch.terminal(profile, WITH_TAK).await;
        let tak = t.tak.take().expect("the demo terminal has a TAK");
        let card = switch.regular(false, i);

        // Sign-on: 0810 echoes DE70, so its MAC is in DE128.
        let answer = t
            .exchange(&signed(t.network_message("001"), profile, &tak))
            .await;
        assert_eq!(code(&answer), "00", "{profile:?} sign-on");
        assert!(answer.has(128) && !answer.has(64), "{profile:?}");
        assert!(verifies(&answer, profile, &tak), "{profile:?} 0810 MAC");

        // A purchase: its MAC in DE64, and so the answer's.
        let purchase = Purchase::new(&card, 1_000_000);
        let answer = t
            .exchange(&signed(t.purchase_message(&purchase), profile, &tak))
            .await;
        assert_eq!(code(&answer), "00", "{profile:?} purchase");
        assert!(answer.has(64) && !answer.has(128), "{profile:?}");
        assert!(verifies(&answer, profile, &tak), "{profile:?} 0210 MAC");

        // A wrong MAC, a MAC over other content, and none at all: 63, no MAC on the answer,
        // nothing moves, and the same request rightly MACed afterwards is served.
        let second = Purchase::new(&card, 2_000_000);
        let mut wrong = signed(t.purchase_message(&second), profile, &tak);
        let mut mac = wrong.get(64).unwrap().to_vec();
        mac[0] ^= 0x80;
        wrong.set(64, &mac).unwrap();
        let mut changed = signed(t.purchase_message(&second), profile, &tak);
        changed.set_number(4, 2_000_001).unwrap();
        let missing = t.purchase_message(&second);
        for (what, request) in [("wrong", wrong), ("changed", changed), ("missing", missing)] {
            let answer = t.exchange(&request).await;
            assert_eq!(code(&answer), "63", "{profile:?} {what}");
            assert!(!answer.has(64) && !answer.has(128), "{profile:?} {what}");
        }
        let answer = t
            .exchange(&signed(t.purchase_message(&second), profile, &tak))
            .await;
        assert_eq!(code(&answer), "00", "{profile:?} after the refusals");
        assert!(verifies(&answer, profile, &tak));
        let inquiry = {
            let mut m = t.purchase_message(&Purchase::new(&card, 0));
            m.set(3, b"310000").unwrap();
            m.remove(4);
            signed(m, profile, &tak)
        };
        let answer = t.exchange(&inquiry).await;
        assert_eq!(code(&answer), "00");
        assert_eq!(
            text(&answer, 54)[8..].parse::<u64>().unwrap(),
            SEMBAKO - 3_000_000,
            "{profile:?}: only the two served purchases moved money"
        );
    }
    let after = scrape(&switch).await;
    // Per profile: a wrong MAC and a changed message are wrong, one is missing.
    assert_eq!(
        refused(&after, "wrong") - refused(&before, "wrong"),
        4.0,
        "{after}"
    );
    assert_eq!(
        refused(&after, "missing") - refused(&before, "missing"),
        2.0,
        "{after}"
    );
}

#[tokio::test]
async fn a_mac_from_a_terminal_without_a_tak_is_12() {
    let switch = Switch::start(Backend::Embedded);
    for profile in PROFILES {
        let mut t = switch.terminal(profile, ACTIVE).await;
        assert!(t.tak.is_none());
        let someone_elses = TdesKey::generate().unwrap();
        let answer = t
            .exchange(&signed(t.network_message("301"), profile, &someone_elses))
            .await;
        assert_eq!(code(&answer), "12", "{profile:?} DE128");
        let card = switch.regular(false, 0);
        let purchase = t.purchase_message(&Purchase::new(&card, 1_000_000));
        let answer = t.exchange(&signed(purchase, profile, &someone_elses)).await;
        assert_eq!(code(&answer), "12", "{profile:?} DE64");
    }
}

#[tokio::test]
async fn a_key_change_sends_a_new_tpk_and_tak_and_the_old_tak_gets_63() {
    for (i, profile) in PROFILES.into_iter().enumerate() {
        // A switch per profile: the first key change replaces the manifest's keys.
        let switch = Switch::start(Backend::Embedded);
        let mut t = switch.terminal(profile, WITH_TAK).await;
        let old_tak = t.tak.take().unwrap();
        let answer = t
            .exchange(&signed(t.network_message("101"), profile, &old_tak))
            .await;
        assert_eq!(code(&answer), "00", "{profile:?} key change");
        // The answer is MACed with the TAK the terminal still holds.
        assert!(verifies(&answer, profile, &old_tak), "{profile:?}");

        // DE48: TPK under the TMK (32), its check value (6), TAK under the TMK (32), its
        // check value (6).
        let de48 = text(&answer, 48);
        assert_eq!(de48.len(), 76, "{de48}");
        let (tpk, tak) = KeyChange::open(&t.tmk, &de48).expect("DE48 opens under the TMK");
        let tak = tak.expect("a new TAK");
        assert_eq!(de48[32..38], tpk.check_value().to_string());
        assert_eq!(de48[70..76], tak.check_value().to_string());
        assert_eq!(de48[..38], KeyChange::encode(&t.tmk, &tpk, None));
        assert_eq!(
            de48[38..],
            KeyChange::encode(&t.tmk, &tak, None),
            "the TAK half is laid out as a key of its own"
        );
        assert_ne!(tak.reveal_hex(), old_tak.reveal_hex());

        // From now on: the new TPK and the new TAK; the old TAK is refused.
        t.tpk = tpk;
        let card = switch.regular(false, i);
        let purchase = Purchase::new(&card, 1_000_000);
        let answer = t
            .exchange(&signed(t.purchase_message(&purchase), profile, &tak))
            .await;
        assert_eq!(code(&answer), "00", "{profile:?} under the new keys");
        assert!(verifies(&answer, profile, &tak));
        assert!(!verifies(&answer, profile, &old_tak));
        let stale = Purchase::new(&card, 1_000_000);
        let answer = t
            .exchange(&signed(t.purchase_message(&stale), profile, &old_tak))
            .await;
        assert_eq!(code(&answer), "63", "{profile:?} under the old TAK");
    }
}
