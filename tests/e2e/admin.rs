//! The admin API's whole lifecycle through a real `ssn-switch serve` on an empty data directory
//! (no demo city): tokens per role, a program, a CSV import, verification, validation and a
//! decree, cards issued and delivered, funding and a disbursement, an E-Warong with a terminal
//! whose keys this test made, then real 0200/0400 traffic in both wire profiles, and what the
//! API reads back from the journal: pockets, statements and transactions. Then the card
//! incidents an operator handles: a lost card and its replacement, a PIN lockout and its reset,
//! a suspended terminal. The switch is stopped with SIGTERM and its journal must verify.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use ssn_codec::{Message, MessageView, Mti, Profile};
use ssn_hsm::{EncryptedPinBlock, MasterKey, Pin, Pvki, SoftHsm, TdesKey, WrappedKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::peers::workspace_root;

/// Every wait ends by this deadline: a broken switch fails the test rather than hangs it.
const DEADLINE: Duration = Duration::from_secs(30);
/// The first admin token, given to the switch through `SSN_BOOTSTRAP_TOKEN`.
pub(crate) const BOOTSTRAP: &str = "e2e-admin-bootstrap-secret";

const PROGRAM: &str = "SEMBAKO";
/// The benefit per card and period: Rp 300.000,00 in minor units.
const BENEFIT: i64 = 30_000_000;
const MERCHANT_ID: &str = "EWARONG00000051";
const TERMINAL_ID: &str = "EWR51001";
/// What a `bcd` answer's TPDU must be: the request's (`60 0001 0000`) with the NIIs swapped.
const REQUEST_TPDU: [u8; 5] = [0x60, 0x00, 0x01, 0x00, 0x00];
const ANSWER_TPDU: [u8; 5] = [0x60, 0x00, 0x00, 0x00, 0x01];

/// Three people of Samarinda as the Portal Data SSN exports them, plus a row whose NIK has an
/// impossible date (day 32) and a repeat of the first NIK under another name.
pub(crate) const CSV: &str = "\
nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil
6472034102850001,6472030101090001,Siti Aminah,1985-02-01,P,Jl. Pahlawan No. 12,Samarinda Ulu,Air Hitam,1
6472051507700002,6472050202100002,Budi Santoso,1970-07-15,L,Jl. Cendana Gg. 3,Samarinda Ilir,Sidodamai,2
6472107112620003,6472100303110003,Rahmawati,1962-12-31,P,Jl. Poros Loa Janan,Loa Janan Ilir,Simpang Tiga,1
6472033202850004,6472030404120004,Andi Wijaya,1985-02-32,L,Jl. Juanda No. 5,Samarinda Ulu,Air Hitam,3
6472034102850001,6472030101090001,Siti Aminah Binti Ali,1985-02-01,P,Jl. Pahlawan No. 12,Samarinda Ulu,Air Hitam,1
";
pub(crate) const NIKS: [&str; 3] = ["6472034102850001", "6472051507700002", "6472107112620003"];

#[tokio::test]
async fn a_city_goes_from_an_empty_switch_to_purchases_incidents_and_a_verified_journal() {
    let mut switch = Switch::start();
    let api = Api::new(&switch.admin);

    // ---------------------------------------------------------------- access and tokens
    let (status, body) = api.request("GET", "/programs", None, None).await;
    assert_eq!(status, 401, "no token: {body}");
    assert_eq!(body["error"], "unauthorized", "{body}");
    let mut tokens = std::collections::HashMap::new();
    for role in ["diskominfo", "dinsos", "walikota", "bank"] {
        let secret = api.token(&format!("{role}-operator-1"), role).await;
        tokens.insert(role, secret);
    }
    let (diskominfo, dinsos, walikota, bank) = (
        tokens["diskominfo"].as_str(),
        tokens["dinsos"].as_str(),
        tokens["walikota"].as_str(),
        tokens["bank"].as_str(),
    );

    // ---------------------------------------------------------------- program (dinsos)
    let program = json!({
        "code": PROGRAM,
        "name": "Bantuan Sembako Kota Samarinda",
        "budget_year": 2026,
        "benefit_amount": rupiah(BENEFIT),
        "allowed_categories": ["01", "02", "07"],
        "basket_required": true,
        "purchase_amount_max": "100000.00",
        "purchases_per_day_max": 20,
        // Far away, so that the pockets stay spendable whenever the test runs.
        "pocket_expires_at": "2099-12-31",
    });
    let (status, body) = api
        .request("POST", "/programs", Some(diskominfo), Some(&program))
        .await;
    assert_eq!(status, 403, "diskominfo may not define programs: {body}");
    let created = api
        .expect(201, "POST", "/programs", dinsos, program.clone())
        .await;
    assert_eq!(created["code"], PROGRAM, "{created}");
    assert_eq!(created["benefit_amount"], "300000.00", "{created}");
    // Food and staples only: a program that allows a non-food category (90-99) is refused.
    let mut smokes = program.clone();
    smokes["code"] = json!("ROKOK");
    smokes["allowed_categories"] = json!(["01", "91"]);
    let refused = api.expect(422, "POST", "/programs", dinsos, smokes).await;
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("category 91 is not food")),
        "{refused}"
    );

    // ---------------------------------------------------------------- import (diskominfo)
    let report = api.import(diskominfo, CSV).await;
    assert_eq!(report["rows"], 5, "{report}");
    assert_eq!(report["imported"], 3, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{report}");
    assert_eq!(
        rejected[0]["row"], 5,
        "the impossible date, line 5: {report}"
    );
    let duplicates = report["duplicates"].as_array().unwrap();
    assert_eq!(duplicates.len(), 1, "{report}");
    assert_eq!(duplicates[0]["row"], 6, "{report}");
    assert_eq!(duplicates[0]["nik"], NIKS[0], "{report}");

    let imported = api
        .expect_get("/beneficiaries?status=imported", dinsos)
        .await;
    assert_eq!(imported["total"], 3, "{imported}");
    let mut ssns = Vec::new();
    for nik in NIKS {
        let person = imported["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["nik"] == nik)
            .unwrap_or_else(|| panic!("{nik} imported: {imported}"));
        ssns.push(person["ssn"].as_str().unwrap().to_string());
    }
    assert_eq!(
        duplicates[0]["existing"], ssns[0],
        "the repeated NIK points at the person imported from line 2"
    );

    // ---------------------------------------------------------------- verify, validate
    for ssn in &ssns {
        for (step, after) in [("verify", "verified"), ("validate", "validated")] {
            let person = api
                .expect(
                    200,
                    "POST",
                    &format!("/beneficiaries/{ssn}/{step}"),
                    dinsos,
                    json!({"approved": true, "note": "checked at the kelurahan office"}),
                )
                .await;
            assert_eq!(person["status"], after, "{step} {ssn}: {person}");
        }
    }

    // ---------------------------------------------------------------- decree (walikota)
    let decree = api
        .expect(
            201,
            "POST",
            "/determinations",
            walikota,
            json!({
                "decree_number": "100.3.3.2/070/HK-KS/XI/2026",
                "decree_date": "2026-11-20",
                "program_code": PROGRAM,
                "ssns": ssns,
            }),
        )
        .await;
    assert!(decree["id"].is_u64(), "{decree}");
    let determined = api
        .expect_get("/beneficiaries?status=determined", walikota)
        .await;
    assert_eq!(determined["total"], 3, "{determined}");
    // The bank reads people, masked.
    let seen_by_bank = api
        .expect_get(&format!("/beneficiaries/{}", ssns[0]), bank)
        .await;
    assert_eq!(seen_by_bank["status"], "determined", "{seen_by_bank}");
    assert_eq!(
        seen_by_bank["enrolments"],
        json!([PROGRAM]),
        "{seen_by_bank}"
    );
    assert_ne!(seen_by_bank["nik"], NIKS[0], "masked for the bank");
    assert_ne!(seen_by_bank["name"], "Siti Aminah", "masked for the bank");

    // ---------------------------------------------------------------- cards (diskominfo)
    let mut cards = Vec::new();
    for ssn in &ssns {
        let issued = api
            .expect(201, "POST", "/cards", diskominfo, json!({"ssn": ssn}))
            .await;
        let card = Card::issued(&issued);
        assert_eq!(issued["status"], "issued", "{issued}");
        assert_eq!(issued["ssn"], ssn.as_str(), "{issued}");
        cards.push(card);
    }
    let (status, body) = api.issue_card(diskominfo, &ssns[0]).await;
    assert_eq!(status, 409, "one live card per person: {body}");
    for card in &cards {
        let delivered = api
            .expect(
                200,
                "POST",
                &format!("/cards/{}/deliver", card.id),
                diskominfo,
                json!({}),
            )
            .await;
        assert_eq!(delivered["status"], "active", "{delivered}");
        assert_ne!(delivered["pan"], card.pan.as_str(), "a read masks the PAN");
    }

    // ---------------------------------------------------------------- money (dinsos)
    let funded = api
        .expect(
            201,
            "POST",
            &format!("/programs/{PROGRAM}/funding"),
            dinsos,
            json!({"amount": "1000000.00", "reference": "SP2D-2026-SMD-0001"}),
        )
        .await;
    assert_eq!(funded["giro_balance"], "1000000.00", "{funded}");
    // A period that begins after the pockets expire would credit money nobody can spend.
    let late = api
        .expect(
            422,
            "POST",
            "/disbursements",
            dinsos,
            json!({"program_code": PROGRAM, "period": "2100-01"}),
        )
        .await;
    assert!(
        late["message"]
            .as_str()
            .is_some_and(|m| m.contains("after the program's pockets expire")),
        "{late}"
    );
    let disbursed = api
        .expect(
            201,
            "POST",
            "/disbursements",
            dinsos,
            json!({"program_code": PROGRAM, "period": "2026-11"}),
        )
        .await;
    assert_eq!(disbursed["cards"], 3, "{disbursed}");
    assert_eq!(disbursed["total"], "900000.00", "{disbursed}");
    let giro = api
        .expect_get(&format!("/programs/{PROGRAM}"), dinsos)
        .await;
    assert_eq!(giro["giro_balance"], "100000.00", "{giro}");
    for card in &cards {
        assert_eq!(api.pocket_total(card.id, dinsos).await, BENEFIT);
    }

    // ---------------------------------------------------------------- E-Warong (bank)
    let merchant = api
        .expect(
            201,
            "POST",
            "/merchants",
            bank,
            json!({
                "merchant_id": MERCHANT_ID,
                "name": "E-Warong Mawar Air Hitam",
                "kind": "mikro",
                "kecamatan": "Samarinda Ulu",
                "kelurahan": "Air Hitam",
                "settlement_account": "0051234567",
            }),
        )
        .await;
    assert_eq!(merchant["status"], "active", "{merchant}");
    let tmk = TdesKey::generate().expect("a TMK");
    let tpk = TdesKey::generate().expect("a TPK");
    let tpk_kcv = tpk.check_value().to_string();
    let terminal = |tpk_kcv: &str| {
        json!({
            "terminal_id": TERMINAL_ID,
            "merchant_id": MERCHANT_ID,
            "tmk": tmk.reveal_hex().as_str(),
            "tmk_kcv": tmk.check_value().to_string(),
            "tpk": tpk.reveal_hex().as_str(),
            "tpk_kcv": tpk_kcv,
        })
    };
    let (status, body) = api
        .request(
            "POST",
            "/terminals",
            Some(bank),
            Some(&terminal(&other_check_value(&tpk_kcv))),
        )
        .await;
    assert_eq!(
        status, 422,
        "a TPK whose check value does not match: {body}"
    );
    let installed = api
        .expect(201, "POST", "/terminals", bank, terminal(&tpk_kcv))
        .await;
    assert_eq!(installed["status"], "active", "{installed}");
    assert_eq!(
        installed["tpk_kcv"].as_str().map(str::to_ascii_uppercase),
        Some(tpk_kcv.to_ascii_uppercase()),
        "{installed}"
    );

    // ---------------------------------------------------------------- purchases, both profiles
    let mut bcd = Terminal::connect(&switch.bcd, Profile::Bcd, &tpk).await;
    let mut ascii = Terminal::connect(&switch.ascii, Profile::Ascii, &tpk).await;
    let [siti, budi, rahma] = &cards[..] else {
        unreachable!("three cards")
    };

    let first = Purchase::new(siti, &[("01", 3_000_000), ("02", 1_500_000)]);
    let answer = bcd.purchase(&first).await;
    assert_eq!(code(&answer), "00", "bcd purchase");
    assert_eq!(
        balance(&answer),
        BENEFIT - 4_500_000,
        "DE54 after the first"
    );
    assert_eq!(text(&answer, 38).len(), 6, "an authorization id");
    let first_rrn = text(&answer, 37);

    let second = Purchase::new(siti, &[("07", 2_750_000)]);
    let answer = ascii.purchase(&second).await;
    assert_eq!(code(&answer), "00", "ascii purchase");
    assert_eq!(
        balance(&answer),
        BENEFIT - 7_250_000,
        "DE54 after the second"
    );
    let second_rrn = text(&answer, 37);
    assert_ne!(first_rrn, second_rrn, "RRNs are unique");

    let mut wrong = Purchase::new(siti, &[("01", 1_000_000)]);
    wrong.pin = switch.wrong_pin(siti);
    let answer = bcd.purchase(&wrong).await;
    assert_eq!(code(&answer), "55", "a wrong PIN");
    assert!(!answer.has(38), "no authorization id on a decline");
    let wrong_rrn = text(&answer, 37);

    // What the API reads from the journal: the card, its statement, the terminal's traffic.
    assert_eq!(api.pocket_total(siti.id, bank).await, BENEFIT - 7_250_000);
    let statement = api.statement(siti.id, bank).await;
    let lines = statement.as_array().unwrap();
    assert_eq!(
        lines.len(),
        4,
        "disbursement, two purchases, a decline: {statement}"
    );
    assert_eq!(lines[0]["kind"], "disbursement", "{statement}");
    assert_eq!(lines[0]["amount"], "300000.00", "{statement}");
    assert_eq!(lines[0]["period"], "2026-11", "{statement}");
    for (rrn, amount, answered, moved) in [
        (&first_rrn, 4_500_000, "00", -4_500_000),
        (&second_rrn, 2_750_000, "00", -2_750_000),
        (&wrong_rrn, 1_000_000, "55", 0),
    ] {
        let line = line_with_rrn(&statement, rrn);
        assert_eq!(line["kind"], "purchase", "{line}");
        assert_eq!(line["response_code"], answered, "{line}");
        assert_eq!(line["requested"], rupiah(amount), "{line}");
        assert_eq!(line["amount"], rupiah(moved), "{line}");
        assert_eq!(line["terminal_id"], TERMINAL_ID, "{line}");
        assert_eq!(line["merchant_id"], MERCHANT_ID, "{line}");
        assert_eq!(line["reversed"], false, "{line}");
    }
    assert_eq!(
        check_running_balance(&statement),
        BENEFIT - 7_250_000,
        "{statement}"
    );

    let traffic = api
        .expect_get(&format!("/transactions?terminal_id={TERMINAL_ID}"), bank)
        .await;
    assert_eq!(traffic["total"], 3, "{traffic}");
    for (p, rrn, answered) in [
        (&first, &first_rrn, "00"),
        (&second, &second_rrn, "00"),
        (&wrong, &wrong_rrn, "55"),
    ] {
        let item = line_with_rrn(&traffic["items"], rrn);
        assert_eq!(item["kind"], "purchase", "{item}");
        assert_eq!(item["response_code"], answered, "{item}");
        assert_eq!(item["stan"], p.stan.as_str(), "{item}");
        assert_eq!(item["amount"], rupiah(p.amount()), "{item}");
        assert_eq!(item["card_id"], siti.id, "{item}");
        assert_eq!(item["merchant_id"], MERCHANT_ID, "{item}");
        let pan = item["pan"].as_str().expect("a masked PAN");
        assert!(pan.contains('*') && pan != siti.pan, "masked: {item}");
        assert_eq!(answered == "00", item["authorization_id"].is_string());
    }

    // ---------------------------------------------------------------- reversal (0400)
    let answer = ascii.reverse(&second).await;
    assert_eq!(answer.mti().as_str(), "0410");
    assert_eq!(code(&answer), "00", "reversal");
    assert_eq!(api.pocket_total(siti.id, bank).await, BENEFIT - 4_500_000);
    let statement = api.statement(siti.id, bank).await;
    assert_eq!(line_with_rrn(&statement, &second_rrn)["reversed"], true);
    assert_eq!(line_with_rrn(&statement, &first_rrn)["reversed"], false);
    let last = statement.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "reversal", "{statement}");
    assert_eq!(last["amount"], "27500.00", "{statement}");
    assert_eq!(last["terminal_id"], TERMINAL_ID, "{statement}");
    assert_eq!(
        check_running_balance(&statement),
        BENEFIT - 4_500_000,
        "{statement}"
    );
    let traffic = api
        .expect_get(&format!("/transactions?terminal_id={TERMINAL_ID}"), bank)
        .await;
    assert_eq!(traffic["total"], 4, "{traffic}");
    let reversal = traffic["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "reversal")
        .unwrap_or_else(|| panic!("the reversal is listed: {traffic}"));
    assert_eq!(reversal["rrn"], second_rrn.as_str(), "{reversal}");
    assert_eq!(reversal["amount"], "27500.00", "{reversal}");
    assert_eq!(
        line_with_rrn(&traffic["items"], &second_rrn)["reversed"],
        true,
        "{traffic}"
    );

    // ---------------------------------------------------------------- lost, then replaced
    let reported = api
        .expect(
            200,
            "POST",
            &format!("/cards/{}/report", siti.id),
            diskominfo,
            json!({"kind": "lost"}),
        )
        .await;
    assert_eq!(reported["status"], "lost", "{reported}");
    let answer = bcd
        .purchase(&Purchase::new(siti, &[("01", 1_000_000)]))
        .await;
    assert_eq!(code(&answer), "41", "a lost card");
    // Her money is on the lost card: a new issue would strand it, so only a replacement may
    // give her a card (a personalization batch skips her too).
    let (status, body) = api.issue_card(diskominfo, &ssns[0]).await;
    assert_eq!(status, 409, "{body}");
    let replace = format!("POST /cards/{}/replace", siti.id);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&replace)),
        "{body}"
    );
    let batch = api
        .http
        .post(format!("{}/cards/batch", api.base))
        .bearer_auth(diskominfo)
        .json(&json!({"program_code": PROGRAM}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status().as_u16(), 201);
    let file = batch.text().await.unwrap();
    assert_eq!(
        file, "card_id,ssn,name,pan,expiry,pin\r\n",
        "a batch issued a card to the holder of a lost one"
    );

    let replacement = api
        .expect(
            201,
            "POST",
            &format!("/cards/{}/replace", siti.id),
            diskominfo,
            json!({}),
        )
        .await;
    assert_eq!(replacement["replaces"], siti.id, "{replacement}");
    assert_eq!(replacement["status"], "issued", "{replacement}");
    assert_eq!(
        replacement["moved"],
        json!([{"program_code": PROGRAM, "amount": rupiah(BENEFIT - 4_500_000)}]),
        "{replacement}"
    );
    let new_siti = Card::issued(&replacement);
    assert_ne!(new_siti.pan, siti.pan, "a new PAN");
    let answer = ascii
        .purchase(&Purchase::new(&new_siti, &[("01", 1_000_000)]))
        .await;
    assert_eq!(code(&answer), "62", "not delivered yet");
    api.expect(
        200,
        "POST",
        &format!("/cards/{}/deliver", new_siti.id),
        diskominfo,
        json!({}),
    )
    .await;
    let answer = ascii
        .purchase(&Purchase::new(&new_siti, &[("02", 1_000_000)]))
        .await;
    assert_eq!(code(&answer), "00", "the new card spends the moved balance");
    assert_eq!(balance(&answer), BENEFIT - 5_500_000);
    for terminal in [&mut bcd, &mut ascii] {
        let answer = terminal
            .purchase(&Purchase::new(siti, &[("01", 1_000_000)]))
            .await;
        assert_eq!(code(&answer), "41", "the old card stays lost");
    }
    let old = api.expect_get(&format!("/cards/{}", siti.id), bank).await;
    assert_eq!(old["status"], "lost", "{old}");
    assert_eq!(old["replaced_by"], new_siti.id, "{old}");
    assert_eq!(pockets_sum(&old), 0, "{old}");
    let old_statement = api.statement(siti.id, bank).await;
    assert_eq!(check_running_balance(&old_statement), 0, "{old_statement}");
    let moved_out: Vec<&Value> = old_statement
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "replacement_out")
        .collect();
    assert_eq!(moved_out.len(), 1, "{old_statement}");
    assert_eq!(
        moved_out[0]["amount"],
        rupiah(-(BENEFIT - 4_500_000)),
        "{old_statement}"
    );
    assert_eq!(
        api.pocket_total(new_siti.id, bank).await,
        BENEFIT - 5_500_000
    );
    let new_statement = api.statement(new_siti.id, bank).await;
    assert_eq!(
        new_statement[0]["kind"], "replacement_in",
        "{new_statement}"
    );
    assert_eq!(
        check_running_balance(&new_statement),
        BENEFIT - 5_500_000,
        "{new_statement}"
    );

    // ---------------------------------------------------------------- PIN lockout and reset
    let mut wrong = Purchase::new(budi, &[("01", 1_000_000)]);
    wrong.pin = switch.wrong_pin(budi);
    for expected in ["55", "55", "75"] {
        let attempt = Purchase {
            stan: next_stan(),
            ..wrong.clone()
        };
        assert_eq!(code(&bcd.purchase(&attempt).await), expected, "wrong PINs");
    }
    let right = Purchase::new(budi, &[("01", 1_000_000)]);
    assert_eq!(code(&ascii.purchase(&right).await), "75", "locked");
    let locked = api.expect_get(&format!("/cards/{}", budi.id), bank).await;
    assert_eq!(locked["pin_locked"], true, "{locked}");
    let reset = api
        .expect(
            200,
            "POST",
            &format!("/cards/{}/pin-reset", budi.id),
            diskominfo,
            json!({}),
        )
        .await;
    assert_eq!(reset["card_id"], budi.id, "{reset}");
    let new_pin = reset["pin"].as_str().expect("the new PIN").to_string();
    assert!(
        (4..=6).contains(&new_pin.len()) && new_pin.bytes().all(|b| b.is_ascii_digit()),
        "{reset}"
    );
    let unlocked = api.expect_get(&format!("/cards/{}", budi.id), bank).await;
    assert_eq!(unlocked["pin_locked"], false, "{unlocked}");
    let mut after_reset = Purchase::new(budi, &[("07", 1_500_000)]);
    after_reset.pin = new_pin;
    let answer = ascii.purchase(&after_reset).await;
    assert_eq!(code(&answer), "00", "the new PIN");
    assert_eq!(balance(&answer), BENEFIT - 1_500_000);

    // ---------------------------------------------------------------- one person revoked (walikota)
    let giro_before = minor(
        &api.expect_get(&format!("/programs/{PROGRAM}"), dinsos)
            .await["giro_balance"],
    );
    let revoked = api
        .expect(
            200,
            "POST",
            &format!("/beneficiaries/{}/revoke", ssns[2]),
            walikota,
            json!({"program_code": PROGRAM, "decree_number": "188.45/90/HK-KS/2026",
                   "reason": "pindah domisili"}),
        )
        .await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(minor(&revoked["returned"]), BENEFIT, "{revoked}");
    assert_eq!(api.pocket_total(rahma.id, dinsos).await, 0);
    let giro_after = minor(
        &api.expect_get(&format!("/programs/{PROGRAM}"), dinsos)
            .await["giro_balance"],
    );
    assert_eq!(giro_after, giro_before + BENEFIT);
    // Her card no longer pays: she is no longer a determined beneficiary (§6 order 12).
    let answer = ascii
        .purchase(&Purchase::new(rahma, &[("01", 1_000_000)]))
        .await;
    assert_eq!(code(&answer), "62", "a revoked beneficiary's card");

    // ---------------------------------------------------------------- E-Warong and terminals change
    let corrected = api
        .expect(
            200,
            "PATCH",
            &format!("/merchants/{MERCHANT_ID}"),
            bank,
            json!({"settlement_account": "0059876543", "name": "E-Warong Mawar"}),
        )
        .await;
    assert_eq!(corrected["settlement_account"], "0059876543", "{corrected}");
    assert_eq!(corrected["kecamatan"], "Samarinda Ulu", "{corrected}");
    let (status, body) = api
        .request(
            "PATCH",
            &format!("/merchants/{MERCHANT_ID}"),
            Some(dinsos),
            Some(&json!({"name": "Toko Lain"})),
        )
        .await;
    assert_eq!(status, 403, "E-Warong are the bank's: {body}");
    let audit = api
        .expect_get("/audit?actor=bank-operator-1&page_size=1000", bank)
        .await;
    let update = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["action"] == "merchants.update")
        .unwrap_or_else(|| panic!("no merchants.update line: {audit}"));
    assert_eq!(
        update["target"],
        format!(
            "merchant {MERCHANT_ID}: name: 'E-Warong Mawar Air Hitam' -> 'E-Warong Mawar'; \
             settlement_account: '0051234567' -> '0059876543'"
        ),
        "{update}"
    );
    // The terminal moves to another E-Warong with its keys: its requests now carry that DE42.
    const SECOND_MERCHANT: &str = "EWARONG00000052";
    api.appoint_merchant(bank, SECOND_MERCHANT, "Palaran").await;
    let moved = api
        .expect(
            200,
            "PATCH",
            &format!("/terminals/{TERMINAL_ID}"),
            bank,
            json!({"merchant_id": SECOND_MERCHANT}),
        )
        .await;
    assert_eq!(moved["merchant_id"], SECOND_MERCHANT, "{moved}");
    assert_eq!(
        moved["tpk_kcv"], installed["tpk_kcv"],
        "keys unchanged: {moved}"
    );
    let mut at_second = Terminal::connect_as(
        &switch.bcd,
        Profile::Bcd,
        &tpk,
        TERMINAL_ID,
        SECOND_MERCHANT,
    )
    .await;
    let mut p = Purchase::new(budi, &[("01", 1_000_000)]);
    p.pin = after_reset.pin.clone();
    assert_eq!(code(&bcd.purchase(&p).await), "03", "the old DE42");
    let mut p = Purchase::new(budi, &[("01", 1_000_000)]);
    p.pin = after_reset.pin.clone();
    assert_eq!(code(&at_second.purchase(&p).await), "00", "the new DE42");
    let spent_at_second = 1_000_000;
    let (status, body) = api
        .request(
            "PATCH",
            &format!("/terminals/{TERMINAL_ID}"),
            Some(bank),
            Some(&json!({"merchant_id": "EWARONG00009999"})),
        )
        .await;
    assert_eq!(status, 422, "no such E-Warong: {body}");

    // ---------------------------------------------------------------- suspended terminal
    let suspended = api
        .expect(
            200,
            "POST",
            &format!("/terminals/{TERMINAL_ID}/suspend"),
            bank,
            json!({}),
        )
        .await;
    assert_eq!(suspended["status"], "suspended", "{suspended}");
    for terminal in [&mut bcd, &mut ascii] {
        let mut p = Purchase::new(budi, &[("01", 1_000_000)]);
        p.pin = after_reset.pin.clone();
        assert_eq!(
            code(&terminal.purchase(&p).await),
            "58",
            "suspended terminal"
        );
    }
    assert_eq!(
        api.pocket_total(budi.id, bank).await,
        BENEFIT - 1_500_000 - spent_at_second
    );

    // ---------------------------------------------------------------- stop and verify
    drop((bcd, ascii));
    let status = switch.stop();
    assert!(status.success(), "SIGTERM: {status}\n{}", switch.log());
    let verified = Command::new(switch_binary())
        .args(["verify", "--data-dir"])
        .arg(&switch.data_dir)
        .output()
        .expect("ssn-switch verify runs");
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && stdout.starts_with("ok:"),
        "verify: {}\n{stdout}{}",
        verified.status,
        String::from_utf8_lossy(&verified.stderr)
    );
}

// -------------------------------------------------------------------------------- HTTP

/// The admin API at one address.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// `http://ADDR/api/v1`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn new(admin: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("an HTTP client"),
            base: format!("http://{admin}/api/v1"),
        }
    }

    /// One request; the status and the JSON answer (`Null` when the body is not JSON).
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the admin API answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("the answer's body");
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// `POST /cards` for `ssn`, whatever it answers.
    pub(crate) async fn issue_card(&self, token: &str, ssn: &str) -> (u16, Value) {
        self.request("POST", "/cards", Some(token), Some(&json!({ "ssn": ssn })))
            .await
    }

    /// A request that must answer `status`; its JSON.
    pub(crate) async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> Value {
        let (got, answer) = self.request(method, path, Some(token), Some(&body)).await;
        assert_eq!(got, status, "{method} {path} {body}: {answer}");
        answer
    }

    /// A new token named `name` with `role`, made by the bootstrap admin: its secret.
    pub(crate) async fn token(&self, name: &str, role: &str) -> String {
        let body = json!({"name": name, "role": role});
        let created = self.expect(201, "POST", "/tokens", BOOTSTRAP, body).await;
        assert_eq!(created["role"], role, "{created}");
        let secret = created["token"].as_str().expect("the secret").to_string();
        assert!(!secret.is_empty() && secret != BOOTSTRAP, "{created}");
        secret
    }

    pub(crate) async fn expect_get(&self, path: &str, token: &str) -> Value {
        let (got, answer) = self.request("GET", path, Some(token), None).await;
        assert_eq!(got, 200, "GET {path}: {answer}");
        answer
    }

    pub(crate) async fn import(&self, token: &str, csv: &str) -> Value {
        let request = self
            .http
            .post(format!("{}/beneficiaries/import", self.base))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv.to_string());
        let (status, answer) = self.send(request).await;
        assert_eq!(status, 200, "import: {answer}");
        answer
    }

    /// Appoints an E-Warong in `kecamatan` (as `token`, a bank or admin token).
    pub(crate) async fn appoint_merchant(&self, token: &str, merchant_id: &str, kecamatan: &str) {
        self.expect(
            201,
            "POST",
            "/merchants",
            token,
            json!({"merchant_id": merchant_id, "name": format!("Warung {merchant_id}"),
                   "kind": "kube", "kecamatan": kecamatan, "kelurahan": "Rawa Makmur",
                   "settlement_account": format!("ACC{}", &merchant_id[12..])}),
        )
        .await;
    }

    /// Installs a terminal at an E-Warong with fresh keys; its TPK, for PIN blocks.
    pub(crate) async fn install_terminal(
        &self,
        token: &str,
        terminal_id: &str,
        merchant_id: &str,
    ) -> TdesKey {
        let (tmk, tpk) = (TdesKey::generate().unwrap(), TdesKey::generate().unwrap());
        self.expect(
            201,
            "POST",
            "/terminals",
            token,
            json!({"terminal_id": terminal_id, "merchant_id": merchant_id,
                   "tmk": tmk.reveal_hex().as_str(), "tmk_kcv": tmk.check_value().to_string(),
                   "tpk": tpk.reveal_hex().as_str(), "tpk_kcv": tpk.check_value().to_string()}),
        )
        .await;
        tpk
    }

    /// The sum of a card's pockets, in minor units.
    async fn pocket_total(&self, card_id: u64, token: &str) -> i64 {
        let card = self.expect_get(&format!("/cards/{card_id}"), token).await;
        assert_eq!(card["card_id"], card_id, "{card}");
        pockets_sum(&card)
    }

    /// Every line of a card's statement.
    async fn statement(&self, card_id: u64, token: &str) -> Value {
        let page = self
            .expect_get(&format!("/cards/{card_id}/statement?page_size=1000"), token)
            .await;
        assert_eq!(
            page["total"].as_u64(),
            page["items"].as_array().map(|i| i.len() as u64),
            "one page holds it all: {page}"
        );
        page["items"].clone()
    }
}

fn pockets_sum(card: &Value) -> i64 {
    card["pockets"]
        .as_array()
        .unwrap_or_else(|| panic!("pockets: {card}"))
        .iter()
        .map(|p| {
            assert_eq!(p["program_code"], PROGRAM, "{card}");
            minor(&p["balance"])
        })
        .sum()
}

/// Each line's `balance_after` is the previous one plus its `amount`; the last one's.
fn check_running_balance(statement: &Value) -> i64 {
    let mut balance = 0;
    for line in statement.as_array().unwrap() {
        balance += minor(&line["amount"]);
        assert_eq!(minor(&line["balance_after"]), balance, "{line}");
    }
    balance
}

fn line_with_rrn<'a>(lines: &'a Value, rrn: &str) -> &'a Value {
    let found: Vec<&Value> = lines
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rrn"] == rrn && l["kind"] == "purchase")
        .collect();
    assert_eq!(found.len(), 1, "one purchase with RRN {rrn}: {lines}");
    found[0]
}

/// Rupiah as the API writes them, from minor units.
/// UTC seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

/// The WITA date (`YYYY-MM-DD`) of a UTC instant, as the switch's business days count.
pub(crate) fn wita_date(unix_seconds: i64) -> String {
    ssn_ledger::Day::wita_of_unix_seconds(unix_seconds).to_string()
}

/// A test that settles or reports by day does not start this close to midnight WITA: each
/// ends well within it (the whole e2e binary takes about 4 minutes), so its purchases fall
/// on one day.
const DAY_END_MARGIN_SECONDS: i64 = 300;

/// Waits until today (WITA) is past the test switches' cut-over (00:01), so that yesterday
/// can be settled, and not within [`DAY_END_MARGIN_SECONDS`] of its end (at most about 7
/// minutes, only for a run that starts between 23:55 and 00:02 WITA).
pub(crate) fn wait_past_cutover() {
    loop {
        let second_of_day = (now() + ssn_ledger::WITA_OFFSET_SECONDS).rem_euclid(86_400);
        if (120..86_400 - DAY_END_MARGIN_SECONDS).contains(&second_of_day) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
}

pub(crate) fn rupiah(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Minor units from the API's rupiah string (always two decimals).
pub(crate) fn minor(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("money: {value}"));
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, cents) = digits
        .split_once('.')
        .filter(|(_, c)| c.len() == 2)
        .unwrap_or_else(|| panic!("money with two decimals: {text}"));
    let value = whole.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap();
    if negative { -value } else { value }
}

/// A 6-hex-digit check value that is not `kcv`.
fn other_check_value(kcv: &str) -> String {
    let first = if kcv.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &kcv[1..])
}

// -------------------------------------------------------------------------------- ISO 8583

/// A card as issued: the only time the API shows the full PAN and the PIN.
#[derive(Clone, Debug)]
pub(crate) struct Card {
    pub(crate) id: u64,
    pub(crate) pan: String,
    pub(crate) expiry: String,
    pub(crate) pin: String,
}

impl Card {
    pub(crate) fn issued(answer: &Value) -> Card {
        let card = Card {
            id: answer["card_id"].as_u64().expect("card_id"),
            pan: answer["pan"].as_str().expect("the full PAN").to_string(),
            expiry: answer["expiry"].as_str().expect("expiry").to_string(),
            pin: answer["pin"].as_str().expect("the PIN").to_string(),
        };
        assert!(
            card.pan.len() == 16 && card.pan.starts_with("604872") && luhn_valid(&card.pan),
            "a 16-digit PAN under the BIN with its check digit: {answer}"
        );
        assert!(
            card.expiry.len() == 4 && card.expiry.bytes().all(|b| b.is_ascii_digit()),
            "YYMM: {answer}"
        );
        assert!(
            card.pin.len() == 6 && card.pin.bytes().all(|b| b.is_ascii_digit()),
            "a 6-digit PIN: {answer}"
        );
        card
    }
}

fn luhn_valid(pan: &str) -> bool {
    let sum: u32 = pan
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn next_stan() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static STAN: AtomicU32 = AtomicU32::new(1);
    format!("{:06}", STAN.fetch_add(1, Ordering::SeqCst))
}

/// A purchase (DE3 `000000`) with a basket (DE48) whose items make DE4.
#[derive(Clone, Debug)]
pub(crate) struct Purchase {
    card: Card,
    pin: String,
    basket: Vec<(&'static str, i64)>,
    stan: String,
}

/// DE7 of every purchase: the key of a purchase is (DE41, DE11, DE7), and DE11 is unique here.
const TRANSMITTED: &str = "1129101500";

impl Purchase {
    pub(crate) fn new(card: &Card, basket: &[(&'static str, i64)]) -> Purchase {
        Purchase {
            card: card.clone(),
            pin: card.pin.clone(),
            basket: basket.to_vec(),
            stan: next_stan(),
        }
    }

    pub(crate) fn amount(&self) -> i64 {
        self.basket.iter().map(|(_, amount)| amount).sum()
    }

    /// The same purchase keyed with another PIN (a fresh STAN: a new attempt).
    pub(crate) fn with_pin(card: &Card, basket: &[(&'static str, i64)], pin: &str) -> Purchase {
        Purchase {
            pin: pin.to_string(),
            ..Purchase::new(card, basket)
        }
    }
}

/// One connection to one listener, as an EDC terminal of the E-Warong.
pub(crate) struct Terminal {
    stream: TcpStream,
    profile: Profile,
    tpk: TdesKey,
    terminal_id: String,
    merchant_id: String,
}

impl Terminal {
    pub(crate) async fn connect(addr: &str, profile: Profile, tpk: &TdesKey) -> Terminal {
        Terminal::connect_as(addr, profile, tpk, TERMINAL_ID, MERCHANT_ID).await
    }

    /// A terminal with its own DE41 of the E-Warong `merchant_id`.
    pub(crate) async fn connect_as(
        addr: &str,
        profile: Profile,
        tpk: &TdesKey,
        terminal_id: &str,
        merchant_id: &str,
    ) -> Terminal {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Terminal {
            stream,
            profile,
            tpk: TdesKey::from_hex(tpk.reveal_hex().as_str()).unwrap(),
            terminal_id: terminal_id.to_string(),
            merchant_id: merchant_id.to_string(),
        }
    }

    /// Sends one framed request (§1) and reads its answer, keep-alives skipped.
    async fn exchange(&mut self, message: &Message) -> MessageView {
        let header = match self.profile {
            Profile::Bcd => 2,
            Profile::Ascii => 4,
        };
        let mut wire = BytesMut::new();
        wire.put_bytes(0, header);
        if self.profile == Profile::Bcd {
            wire.put_slice(&REQUEST_TPDU);
        }
        message.encode(self.profile, &mut wire);
        let len = wire.len() - header;
        match self.profile {
            Profile::Bcd => wire[..2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes()),
            Profile::Ascii => wire[..4].copy_from_slice(format!("{len:04}").as_bytes()),
        }
        self.stream.write_all(&wire).await.expect("send");

        let answer = tokio::time::timeout(DEADLINE, async {
            loop {
                let mut head = vec![0u8; header];
                self.stream.read_exact(&mut head).await.expect("a length");
                let len = match self.profile {
                    Profile::Bcd => usize::from(u16::from_be_bytes([head[0], head[1]])),
                    Profile::Ascii => std::str::from_utf8(&head)
                        .ok()
                        .and_then(|h| h.parse().ok())
                        .unwrap_or_else(|| panic!("an ascii length header: {head:?}")),
                };
                if len == 0 {
                    continue; // keep-alive
                }
                let mut frame = vec![0u8; len];
                self.stream.read_exact(&mut frame).await.expect("a frame");
                let body = match self.profile {
                    Profile::Bcd => {
                        assert_eq!(frame[..5], ANSWER_TPDU, "the TPDU with its NIIs swapped");
                        frame.split_off(5)
                    }
                    Profile::Ascii => frame,
                };
                return MessageView::decode(self.profile, Bytes::from(body))
                    .unwrap_or_else(|e| panic!("the switch answered a malformed message: {e:?}"));
            }
        })
        .await
        .expect("an answer within the deadline");
        assert_eq!(
            answer.stan().map(|s| s.to_vec()),
            message.get(11).map(|s| s.to_vec()),
            "the answer matches the request's DE11"
        );
        assert_eq!(
            answer.text(41),
            message.get(41),
            "the answer matches the request's DE41"
        );
        answer
    }

    fn purchase_message(&self, p: &Purchase) -> Message {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        let pin = Pin::new(&p.pin).unwrap();
        let block = EncryptedPinBlock::encrypt(&pin, &p.card.pan, &self.tpk).unwrap();
        m.set(2, p.card.pan.as_bytes()).unwrap();
        m.set(3, b"000000").unwrap();
        m.set_number(4, u64::try_from(p.amount()).unwrap()).unwrap();
        m.set(7, TRANSMITTED.as_bytes()).unwrap();
        m.set(11, p.stan.as_bytes()).unwrap();
        m.set(12, b"101500").unwrap();
        m.set(13, b"1129").unwrap();
        m.set(14, p.card.expiry.as_bytes()).unwrap();
        m.set(22, b"021").unwrap();
        m.set(25, b"00").unwrap();
        m.set(
            35,
            format!("{}={}101", p.card.pan, p.card.expiry).as_bytes(),
        )
        .unwrap();
        m.set(41, self.terminal_id.as_bytes()).unwrap();
        m.set(42, self.merchant_id.as_bytes()).unwrap();
        // §4: `B1`, the item count, then category n2 + quantity n2 + amount n12 per item.
        let mut de48 = format!("B1{:02}", p.basket.len());
        for (category, amount) in &p.basket {
            de48.push_str(&format!("{category}01{amount:012}"));
        }
        m.set(48, de48.as_bytes()).unwrap();
        m.set(49, b"360").unwrap();
        m.set(52, block.as_bytes()).unwrap();
        m
    }

    pub(crate) async fn purchase(&mut self, p: &Purchase) -> MessageView {
        let m = self.purchase_message(p);
        let answer = self.exchange(&m).await;
        assert_eq!(answer.mti().as_str(), "0210");
        assert_eq!(text(&answer, 37).len(), 12, "every answer carries an RRN");
        answer
    }

    /// A 0400 naming `p` in DE90 (§3.4).
    pub(crate) async fn reverse(&mut self, p: &Purchase) -> MessageView {
        let mut m = Message::new(Mti::REVERSAL_REQUEST);
        m.set(2, p.card.pan.as_bytes()).unwrap();
        m.set(3, b"000000").unwrap();
        m.set_number(4, u64::try_from(p.amount()).unwrap()).unwrap();
        m.set(7, b"1129101600").unwrap();
        m.set(11, next_stan().as_bytes()).unwrap();
        m.set(41, self.terminal_id.as_bytes()).unwrap();
        m.set(42, self.merchant_id.as_bytes()).unwrap();
        m.set(49, b"360").unwrap();
        m.set(
            90,
            format!("0200{}{TRANSMITTED}{}", p.stan, "0".repeat(22)).as_bytes(),
        )
        .unwrap();
        self.exchange(&m).await
    }

    /// A 0500 batch close (§3.5) with DE60 and the totals the terminal printed (DE63: sales
    /// count n3, amount n12, reversal count n3, amount n12).
    pub(crate) async fn close_batch(
        &mut self,
        batch_number: &str,
        totals: (u32, i64, u32, i64),
    ) -> MessageView {
        let mut m = Message::new(Mti::RECONCILIATION_REQUEST);
        m.set(3, b"920000").unwrap();
        m.set(7, b"1129220000").unwrap();
        m.set(11, next_stan().as_bytes()).unwrap();
        m.set(41, self.terminal_id.as_bytes()).unwrap();
        m.set(42, self.merchant_id.as_bytes()).unwrap();
        m.set(60, batch_number.as_bytes()).unwrap();
        let (sales, sales_amount, reversals, reversal_amount) = totals;
        m.set(
            63,
            format!("{sales:03}{sales_amount:012}{reversals:03}{reversal_amount:012}").as_bytes(),
        )
        .unwrap();
        self.exchange(&m).await
    }
}

pub(crate) fn text(answer: &MessageView, n: u8) -> String {
    String::from_utf8(answer.text(n).unwrap_or_default().to_vec()).unwrap()
}

pub(crate) fn code(answer: &MessageView) -> String {
    text(answer, 39)
}

/// DE54's available balance, in minor units (§5).
fn balance(answer: &MessageView) -> i64 {
    let de54 = text(answer, 54);
    assert_eq!(de54.len(), 20, "DE54 {de54:?}");
    assert_eq!(&de54[..8], "0002360C", "DE54 {de54:?}");
    de54[8..].parse().unwrap()
}

// -------------------------------------------------------------------------------- the switch

/// A running `ssn-switch serve` on an empty data directory of its own. `stop` ends it with
/// SIGTERM; Drop kills it by PID (SIGKILL) if it still runs, shows its log when the test
/// failed, and removes its directory and log either way.
pub(crate) struct Switch {
    child: Child,
    pub(crate) data_dir: PathBuf,
    log_path: PathBuf,
    pub(crate) bcd: String,
    pub(crate) ascii: String,
    pub(crate) admin: String,
}

impl Switch {
    pub(crate) fn start() -> Switch {
        // A business day ends one minute after midnight, so a test can settle yesterday
        // (most of which is today's calendar day: see `wait_past_cutover`).
        Switch::start_with_cutover("00:01")
    }

    /// A switch whose business days end at `cutover` (WITA `HH:MM`).
    pub(crate) fn start_with_cutover(cutover: &str) -> Switch {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ssn-admin-e2e-{}-{run}", std::process::id());
        let data_dir = std::env::temp_dir().join(&name);
        let log_path = std::env::temp_dir().join(format!("{name}.log"));
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&log_path);
        let mut switch = Switch {
            child: Switch::spawn(&data_dir, &log_path, cutover),
            data_dir,
            log_path,
            bcd: String::new(),
            ascii: String::new(),
            admin: String::new(),
        };
        switch.read_ports();
        switch
    }

    /// Stops this switch (SIGTERM) and starts it again on its data directory, its business
    /// days now ending at `cutover`.
    pub(crate) fn restart(&mut self, cutover: &str) {
        assert!(self.stop().success(), "{}", self.log());
        self.child = Switch::spawn(&self.data_dir, &self.log_path, cutover);
        self.read_ports();
    }

    fn spawn(data_dir: &Path, log_path: &Path, cutover: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("switch log file");
        let mut command = Command::new(switch_binary());
        // Nothing from the caller's environment configures this switch but what is set here.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SSN_") {
                command.env_remove(key);
            }
        }
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--bcd-listen",
                "127.0.0.1:0",
                "--ascii-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--log",
                "warn",
            ])
            .env("SSN_BOOTSTRAP_TOKEN", BOOTSTRAP)
            .env("SSN_SETTLEMENT_CUTOVER", cutover)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ssn-switch starts")
    }

    /// Reads the one JSON line the switch prints once it listens, with a deadline.
    fn read_ports(&mut self) {
        let stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no listening line in {DEADLINE:?}\n{}", self.log()));
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("listening line {line:?}: {e}\n{}", self.log()));
        assert_eq!(ready["event"], "listening", "{line}");
        let address = |key: &str| {
            ready[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {line}"))
                .to_string()
        };
        self.bcd = address("bcd");
        self.ascii = address("ascii");
        self.admin = address("admin");
    }

    /// SIGTERM to this process by its PID, then waits (with the deadline) for it to exit.
    /// A PIN this switch refuses for `card`, from its own keys (`SoftHsm::refused_pin`): a
    /// PIN that merely differs from the right one shares its PVV about once in 10,000.
    pub(crate) fn wrong_pin(&self, card: &Card) -> String {
        let read = |name: &str| std::fs::read_to_string(self.data_dir.join(name)).expect(name);
        let hsm = SoftHsm::new(MasterKey::from_hex(read("master.key").trim()).unwrap());
        let pvk = WrappedKey::from_hex(read("pvk.key").trim()).unwrap();
        let pin = Pin::new(&card.pin).unwrap();
        let wrong = hsm.refused_pin(&pvk, &pin, &card.pan, Pvki::ONE).unwrap();
        wrong.reveal().to_string()
    }

    pub(crate) fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {pid}");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the switch's status") {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the switch did not stop within {DEADLINE:?} of SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the switch has written on stderr so far.
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("switch log (stderr):\n{}", self.log());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// `target/debug/ssn-switch` of this workspace, brought up to date once per test process by
/// `cargo build -p ssn-switch` (a no-op when it is), so that the test never runs a stale
/// switch when only this package was built.
pub(crate) fn switch_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| root.join(dir))
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ssn-switch"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p ssn-switch failed");
        let binary = target.join("debug/ssn-switch");
        assert!(binary.exists(), "no switch at {}", binary.display());
        binary
    })
}
