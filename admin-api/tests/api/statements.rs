//! Statements that add up (issue 19): a whole program year of one city — monthly
//! disbursements, purchases and reversals, a card lost and replaced (with a reversal after the
//! replacement), a person revoked by decree, and the year-end close — and for every card its
//! statement's running balance, line by line, ends at the card's pockets, before the close and
//! after it.

use serde_json::{Value, json};
use ssn_ledger::*;

use crate::Api;

const PROGRAM: &str = "TAHUN2026";
const PEOPLE: u64 = 8;
/// Cards inserted directly get ids from here, clear of the API's card sequence.
const FIRST_CARD: u64 = 1_001;
const TERMINAL: &str = "EWR21001";
const MERCHANT: &str = "EWARONG00000021";

/// 10:00 WITA on a day of 2026 or 2027.
fn at(iso: &str) -> i64 {
    let day = Day::parse_iso(iso).unwrap();
    i64::from(day.0) * 86_400 + 2 * 3_600
}

fn minor(value: &Value) -> i64 {
    let text = value.as_str().unwrap();
    let (whole, cents) = text.split_once('.').unwrap();
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    whole.parse::<i64>().unwrap() * 100 + sign * cents.parse::<i64>().unwrap()
}

/// Moves the API's clock to `unix_seconds` (forward or back).
fn set_clock(api: &Api, unix_seconds: i64) {
    let now = api.clock.load(std::sync::atomic::Ordering::SeqCst);
    api.advance_clock(unix_seconds - now);
}

async fn city(api: &Api) -> ProgramCode {
    let code = ProgramCode::new(PROGRAM).unwrap();
    api.ledger
        .define_program(crate::program(PROGRAM, 200_000, "2026-12-31"))
        .await
        .unwrap();
    let mut ops = crate::shop(MERCHANT, TERMINAL);
    for n in 0..PEOPLE {
        ops.extend(crate::carded_person(n, &code, FIRST_CARD + n));
    }
    api.ledger.registry().apply(ops).await.unwrap();
    api.post(
        "dinsos",
        &format!("/api/v1/programs/{PROGRAM}/funding"),
        json!({"amount": "100000000.00", "reference": "APBD-2026-TAHUN"}),
    )
    .await
    .expect(201);
    code
}

/// Every card's statement, line by line, adds up to its `balance_after`s and ends at the
/// card's pockets. Returns the cards checked.
async fn assert_statements_add_up(api: &Api) -> usize {
    let cards = api.all("auditor", "/api/v1/cards").await;
    for card in &cards {
        let id = card["card_id"].as_u64().unwrap();
        let card = api.get("auditor", &format!("/api/v1/cards/{id}")).await;
        let pockets: i64 = card.expect(200)["pockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| minor(&p["balance"]))
            .sum();
        let lines = api
            .all("auditor", &format!("/api/v1/cards/{id}/statement"))
            .await;
        let mut running = 0i64;
        for line in &lines {
            running += minor(&line["amount"]);
            assert_eq!(minor(&line["balance_after"]), running, "card {id}: {line}");
        }
        assert_eq!(running, pockets, "card {id} ends at its pockets: {lines:?}");
    }
    cards.len()
}

#[tokio::test]
async fn a_program_year_of_statements_adds_up_for_every_card() {
    let api = Api::start("statements").await;
    set_clock(&api, at("2026-01-05"));
    let program = city(&api).await;
    let mut stan = 0u32;
    let mut bought: Vec<(CardId, PurchaseRequest)> = Vec::new();
    let mut cards: Vec<CardId> = (0..PEOPLE).map(|n| CardId(FIRST_CARD + n)).collect();
    for month in 1..=12u32 {
        let day = format!("2026-{month:02}-05");
        set_clock(&api, at(&day));
        api.post(
            "dinsos",
            "/api/v1/disbursements",
            json!({"program_code": PROGRAM, "period": format!("2026-{month:02}")}),
        )
        .await
        .expect(201);
        for (i, card) in cards.clone().into_iter().enumerate() {
            // The revoked person's card pays nothing from month 7 on; it is not used.
            if i == 3 && month >= 7 {
                continue;
            }
            for k in 0..2 {
                stan += 1;
                let rupiah = 10_000 + 1_000 * i64::from(month) + 500 * k + i as i64;
                let request = crate::buy(
                    &api,
                    (card, stan),
                    (MERCHANT, TERMINAL),
                    rupiah,
                    at(&day) + 60 * i64::from(stan),
                )
                .await;
                bought.push((card, request));
            }
        }
        // One reversal a month, of the first purchase of the month.
        let (card, first) =
            bought[bought.len() - 2 * cards.len() + usize::from(month >= 7)].clone();
        let reversed = api
            .ledger
            .reverse_purchase(ReversalRequest {
                original: first.key.clone(),
                card: Some(card),
                amount: first.amount,
                at_unix_seconds: at(&day) + 50_000,
            })
            .await
            .unwrap();
        assert!(
            matches!(reversed, ReversalOutcome::Reversed(_)),
            "{reversed:?}"
        );
        if month == 6 {
            // Person 3 moved away: revoked by decree.
            api.post(
                "walikota",
                "/api/v1/beneficiaries/SSN900000003/revoke",
                json!({"program_code": PROGRAM, "decree_number": "188.45/66/2026",
                       "reason": "pindah domisili"}),
            )
            .await
            .expect(200);
        }
        if month == 8 {
            // Person 4's card is lost and replaced; a purchase of the old card is reversed
            // after the replacement, and credits the new card.
            let old = cards[4];
            let last_of_old = bought
                .iter()
                .rev()
                .find(|(c, _)| *c == old)
                .unwrap()
                .1
                .clone();
            api.post(
                "diskominfo",
                &format!("/api/v1/cards/{}/report", old.0),
                json!({"kind": "lost"}),
            )
            .await
            .expect(200);
            let replacement = api
                .post(
                    "diskominfo",
                    &format!("/api/v1/cards/{}/replace", old.0),
                    json!({}),
                )
                .await;
            let new = CardId(replacement.expect(201)["card_id"].as_u64().unwrap());
            let reversed = api
                .ledger
                .reverse_purchase(ReversalRequest {
                    original: last_of_old.key.clone(),
                    card: Some(old),
                    amount: last_of_old.amount,
                    at_unix_seconds: at(&day) + 60_000,
                })
                .await
                .unwrap();
            assert!(
                matches!(reversed, ReversalOutcome::Reversed(_)),
                "{reversed:?}"
            );
            cards[4] = new;
        }
    }
    // Before the close: every card's statement ends at its pockets.
    set_clock(&api, at("2026-12-31"));
    assert_eq!(
        assert_statements_add_up(&api).await,
        PEOPLE as usize + 1,
        "every card, the replacement included"
    );
    // The year-end close takes what is left back to giro; the statements say so.
    set_clock(&api, at("2027-01-02"));
    let close = api
        .post(
            "dinsos",
            &format!("/api/v1/programs/{PROGRAM}/close"),
            json!({"as_of": "2027-01-01"}),
        )
        .await;
    assert!(minor(&close.expect(201)["returned"]) > 0);
    assert_statements_add_up(&api).await;
    for card in api.all("auditor", "/api/v1/cards").await {
        let id = card["card_id"].as_u64().unwrap();
        let card = api.get("auditor", &format!("/api/v1/cards/{id}")).await;
        let card = card.expect(200);
        assert!(
            card["pockets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| minor(&p["balance"]) == 0 || p["program_code"] != program.as_str()),
            "{card}"
        );
    }
}
