//! Reports through the API: every bad query, body and role gets its 4xx; a year-end close is
//! refused before the pockets expire and for a day still to come, and answers the same close
//! when repeated; the public summary needs no token.

use serde_json::json;

use crate::Api;

#[tokio::test]
async fn reports_and_closes_refuse_what_they_must_and_repeat_what_they_did() {
    let api = Api::start("reports").await;
    // The fixed clock is 2026-11-29 (WITA); the program's pockets expired on the 27th.
    define_program(&api, ("OLD2026", "Old"), "100000.00", "2026-11-27").await;
    api.post(
        "dinsos",
        "/api/v1/programs/OLD2026/funding",
        json!({"amount": "250000.00", "reference": "APBD-OLD"}),
    )
    .await
    .expect(201);

    let close = "/api/v1/programs/OLD2026/close";
    for (role, body, status, code) in [
        ("bank", json!({"as_of": "2026-11-28"}), 403, "forbidden"),
        ("auditor", json!({"as_of": "2026-11-28"}), 403, "forbidden"),
        ("dinsos", json!({"as_of": "28-11-2026"}), 400, "malformed"),
        (
            "dinsos",
            json!({"as_of": "2026-11-28", "x": 1}),
            400,
            "malformed",
        ),
        ("dinsos", json!({}), 400, "malformed"),
        // On its last day a pocket may still be spent; tomorrow has not come.
        ("dinsos", json!({"as_of": "2026-11-27"}), 422, "refused"),
        ("dinsos", json!({"as_of": "2026-11-30"}), 422, "refused"),
    ] {
        api.post(role, close, body.clone())
            .await
            .expect_error(status, code);
    }
    api.post(
        "dinsos",
        "/api/v1/programs/NOPE/close",
        json!({"as_of": "2026-11-28"}),
    )
    .await
    .expect_error(404, "not_found");
    let first = api
        .post("dinsos", close, json!({"as_of": "2026-11-28"}))
        .await;
    let first = first.expect(201).clone();
    assert_eq!(first["returned"], "0.00", "{first}");
    assert_eq!(first["for_treasury"], "250000.00", "{first}");
    let again = api
        .post("dinsos", close, json!({"as_of": "2026-11-28"}))
        .await;
    assert_eq!(again.expect(200), &first);
    let audit = api.all("auditor", "/api/v1/audit").await;
    assert!(
        audit
            .iter()
            .any(|line| line["action"] == "programs.close" && line["outcome"] == "refused"),
        "refusals are audited too"
    );

    let report = "/api/v1/reports/semester";
    for query in [
        "",
        "?year=2026",
        "?half=2",
        "?year=1999&half=2",
        "?year=2026&half=3",
        "?year=2026&half=2&format=pdf",
        "?year=abc&half=2",
        "?year=2026&half=2&extra=1",
    ] {
        api.get("auditor", &format!("{report}{query}"))
            .await
            .expect_error(400, "malformed");
        // The role comes first: the bank is refused whatever it asks.
        api.get("bank", &format!("{report}{query}"))
            .await
            .expect_error(403, "forbidden");
    }
    for (format, content_type) in [
        ("json", "application/json"),
        ("csv", "text/csv"),
        ("html", "text/html"),
    ] {
        for role in ["auditor", "walikota", "dinsos", "admin"] {
            let answer = api
                .get(role, &format!("{report}?year=2026&half=2&format={format}"))
                .await;
            answer.expect(200);
            assert!(answer.content_type.starts_with(content_type), "{format}");
        }
    }
    let json = api
        .get("walikota", &format!("{report}?year=2026&half=2"))
        .await;
    let json = json.expect(200);
    assert_eq!(
        (json["from"].clone(), json["to"].clone()),
        (json!("2026-07-01"), json!("2026-12-31"))
    );
    assert_eq!(json["totals"]["funded"], "250000.00");
    assert_eq!(json["totals"]["giro_balance"], "250000.00");
    // The first half of the year saw nothing, and its balances are those of June.
    let first_half = api
        .get("walikota", &format!("{report}?year=2026&half=1"))
        .await;
    let first_half = first_half.expect(200);
    assert_eq!(first_half["totals"]["funded"], "0.00");
    assert_eq!(first_half["totals"]["giro_balance"], "0.00");

    let public = api.send("GET", "/api/v1/public/summary", None, None).await;
    let public = public.expect(200);
    assert_eq!(public["total"]["people_determined"], 0);
    assert_eq!(public["total"]["suppressed"], false);
}

/// The public summary needs no token, so anyone may call it in a loop: it is made at most once
/// every `PUBLIC_SUMMARY_MAX_AGE_SECONDS` and served as made in between.
#[tokio::test]
async fn the_public_summary_is_made_again_only_after_its_max_age() {
    let api = Api::start("public-summary").await;
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": "SUM2026", "name": "Summary", "budget_year": 2026,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"}),
    )
    .await
    .expect(201);
    let summary = || async { api.send("GET", "/api/v1/public/summary", None, None).await };
    let first = summary().await;
    let first = first.expect(200).clone();
    // No beneficiary yet: the program's row says so.
    assert_eq!(first["programs"][0]["name"], "SUM2026", "{first}");
    assert_eq!(first["programs"][0]["people_determined"], 0, "{first}");

    // Something changes; within the max age the summary is the one already made.
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": "SUM2027", "name": "Later", "budget_year": 2027,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2027-12-31"}),
    )
    .await
    .expect(201);
    api.advance_clock(ssn_admin_api::PUBLIC_SUMMARY_MAX_AGE_SECONDS - 1);
    let cached = summary().await;
    assert_eq!(cached.expect(200), &first);

    // Past it, a new one, with the change and its own time.
    api.advance_clock(1);
    let fresh = summary().await;
    let fresh = fresh.expect(200);
    assert_eq!(
        fresh["programs"].as_array().map(Vec::len),
        Some(2),
        "{fresh}"
    );
    assert_ne!(fresh["generated_at"], first["generated_at"]);
}

/// The transaction listing reads the log a chunk at a time and builds views only for the page
/// asked: pages still cut the same list, in journal order, with the same total, and filters
/// still hold on the pages they do not build.
/// A semester report asked in a loop is made once per max age, in whichever format: within
/// it every caller gets the report already made (its `generated_at` says when), after it a
/// new one with what changed.
#[tokio::test]
async fn a_semester_report_is_made_again_only_after_its_max_age() {
    let api = Api::start("report-cache").await;
    let program = |code: &str| {
        json!({"code": code, "name": "Cached", "budget_year": 2026,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"})
    };
    api.post("dinsos", "/api/v1/programs", program("REP2026"))
        .await
        .expect(201);
    let report = "/api/v1/reports/semester?year=2026&half=2";
    let first = api.get("auditor", report).await.expect(200).clone();
    let programs = |body: &serde_json::Value| body["programs"].as_array().map(Vec::len);
    assert_eq!(programs(&first), Some(1), "{first}");
    api.post("dinsos", "/api/v1/programs", program("REP2027"))
        .await
        .expect(201);
    api.advance_clock(ssn_admin_api::SEMESTER_REPORT_MAX_AGE_SECONDS - 1);
    let cached = api.get("walikota", report).await;
    assert_eq!(cached.expect(200), &first);
    let csv = api
        .send(
            "GET",
            &format!("{report}&format=csv"),
            Some("auditor"),
            None,
        )
        .await;
    assert!(
        csv.text().contains("REP2026") && !csv.text().contains("REP2027"),
        "{}",
        csv.text()
    );
    api.advance_clock(1);
    let fresh = api.get("auditor", report).await;
    let fresh = fresh.expect(200);
    assert_eq!(programs(fresh), Some(2), "{fresh}");
    assert_ne!(fresh["generated_at"], first["generated_at"]);
}

#[tokio::test]
async fn transaction_pages_cut_the_log_in_order_with_their_total() {
    use ssn_ledger::{
        DeclineRequest, Fingerprint, MerchantId, Money, PurchaseKey, ResponseCode, Rrn, Stan,
        TerminalId, TransmissionTime,
    };
    let api = Api::start("transaction-pages").await;
    // Seven declined purchases on two terminals (journaled like any authorization), with a
    // funding in the middle: eight entries in all.
    let decline = |n: u32| DeclineRequest {
        key: PurchaseKey {
            terminal: TerminalId::new(format!("T000000{}", n % 2)).unwrap(),
            stan: Stan::new(format!("{n:06}")).unwrap(),
            transmitted: TransmissionTime::new("1129100000").unwrap(),
        },
        fingerprint: Fingerprint::of(&n),
        card: n.is_multiple_of(3).then_some(ssn_ledger::CardId(42)),
        merchant: MerchantId::new("EWARONG00000001").unwrap(),
        amount: Money::from_minor(1_000_000),
        code: ResponseCode::new("14").unwrap(),
        rrn: Rrn::new(format!("{n:012}")).unwrap(),
        at_unix_seconds: crate::NOW_UNIX_SECONDS,
    };
    for n in 1..=4 {
        api.ledger.record_decline(decline(n)).await.unwrap();
    }
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": "PAGE2026", "name": "Pages", "budget_year": 2026,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"}),
    )
    .await
    .expect(201);
    api.post(
        "dinsos",
        "/api/v1/programs/PAGE2026/funding",
        json!({"amount": "250000.00", "reference": "APBD-PAGE"}),
    )
    .await
    .expect(201);
    for n in 5..=7 {
        api.ledger.record_decline(decline(n)).await.unwrap();
    }

    let stans = |items: &serde_json::Value| -> Vec<String> {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                item["stan"]
                    .as_str()
                    .unwrap_or(item["kind"].as_str().unwrap())
                    .to_string()
            })
            .collect()
    };
    let mut seen = Vec::new();
    for page in 1..=3 {
        let answer = api
            .get(
                "auditor",
                &format!("/api/v1/transactions?page={page}&page_size=3"),
            )
            .await;
        let body = answer.expect(200);
        assert_eq!(body["total"], 8, "{body}");
        seen.extend(stans(body));
    }
    assert_eq!(
        seen,
        [
            "000001", "000002", "000003", "000004", "funding", "000005", "000006", "000007"
        ]
    );
    // One terminal's purchases, second page of two: the filter counts what it skips.
    let answer = api
        .get(
            "auditor",
            "/api/v1/transactions?terminal_id=T0000001&page=2&page_size=2",
        )
        .await;
    let body = answer.expect(200);
    assert_eq!(body["total"], 4, "{body}");
    assert_eq!(stans(body), ["000005", "000007"]);
    // Past the last page: empty, with the total.
    let answer = api
        .get("auditor", "/api/v1/transactions?page=9&page_size=3")
        .await;
    let body = answer.expect(200);
    assert_eq!(body["total"], 8);
    assert!(body["items"].as_array().unwrap().is_empty());
    // Without filters a page is read where it is; with a window it is found by scanning the
    // log; with a card, from the card's own transfers: the same entries every way.
    let unfiltered = api.all("auditor", "/api/v1/transactions").await;
    let scanned = api
        .all(
            "auditor",
            "/api/v1/transactions?from=2000-01-01&to=2099-12-31",
        )
        .await;
    assert_eq!(unfiltered, scanned);
    assert_eq!(unfiltered.len(), 8);
    let cards: std::collections::BTreeSet<u64> = unfiltered
        .iter()
        .filter_map(|item| item["card_id"].as_u64())
        .collect();
    assert!(!cards.is_empty());
    for card in cards {
        let by_card = api
            .all("auditor", &format!("/api/v1/transactions?card_id={card}"))
            .await;
        let expected: Vec<_> = scanned
            .iter()
            .filter(|item| item["card_id"].as_u64() == Some(card))
            .cloned()
            .collect();
        assert_eq!(by_card, expected, "card {card}");
    }
}

/// The semester report for the agencies that write it (Pasal 13(3)): Diskominfo reads it;
/// people and cards are counted as of the semester's last day, whenever the report is made;
/// the printable page is in Bahasa Indonesia with numbers that never wrap; cards never used
/// are counted per kecamatan and program, their list is its own CSV.
#[tokio::test]
async fn a_semester_report_counts_people_and_cards_as_of_its_last_day() {
    use crate::dtsen::{csv, person};
    let api = Api::start("report-as-of").await;
    // 2026-06-15 10:00 WITA: the first half of the year.
    api.clock
        .store(1_781_488_800, std::sync::atomic::Ordering::SeqCst);
    sembako(&api).await;
    let people: Vec<_> = (1..=5).map(|n| person(n, &format!("Warga {n}"))).collect();
    let file = csv(&people.iter().collect::<Vec<_>>());
    api.post_csv("diskominfo", "/api/v1/beneficiaries/import", &file)
        .await
        .expect(200);
    let ssn = |n: u32| format!("SSN00000000{n}");
    verify_and_validate(&api, 5).await;
    let decree = |number: &str, ssns: Vec<String>| {
        json!({"decree_number": number, "decree_date": "2026-06-15",
               "program_code": "SEMBAKO", "ssns": ssns})
    };
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree("188.45/6/2026", vec![ssn(1), ssn(2), ssn(3)]),
    )
    .await
    .expect(201);
    let mut cards = Vec::new();
    for n in [1, 2] {
        let issued = api
            .post("diskominfo", "/api/v1/cards", json!({"ssn": ssn(n)}))
            .await;
        cards.push(issued.expect(201)["card_id"].as_u64().unwrap());
    }
    api.post(
        "diskominfo",
        &format!("/api/v1/cards/{}/deliver", cards[0]),
        json!({}),
    )
    .await
    .expect(200);

    // 2026-07-10: one person revoked, two others determined, the second card delivered, money.
    api.clock
        .store(1_783_648_800, std::sync::atomic::Ordering::SeqCst);
    api.post(
        "walikota",
        &format!("/api/v1/beneficiaries/{}/revoke", ssn(3)),
        json!({"program_code": "SEMBAKO", "decree_number": "188.45/7/2026",
               "reason": "pindah domisili"}),
    )
    .await
    .expect(200);
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree("188.45/8/2026", vec![ssn(4), ssn(5)]),
    )
    .await
    .expect(201);
    api.post(
        "diskominfo",
        &format!("/api/v1/cards/{}/deliver", cards[1]),
        json!({}),
    )
    .await
    .expect(200);
    // A refresh moves the first person to another kecamatan.
    let mut moved = people[0].clone();
    moved.kecamatan = "Sambutan".into();
    moved.kelurahan = "Sungai Kapih".into();
    api.post_csv(
        "diskominfo",
        "/api/v1/beneficiaries/import",
        &csv(&[&moved]),
    )
    .await
    .expect(200);
    api.post(
        "dinsos",
        "/api/v1/programs/SEMBAKO/funding",
        json!({"amount": "1000000.00", "reference": "APBD-2026-7"}),
    )
    .await
    .expect(201);
    api.post(
        "dinsos",
        "/api/v1/disbursements",
        json!({"program_code": "SEMBAKO", "period": "2026-07"}),
    )
    .await
    .expect(201);

    let counts = |report: &serde_json::Value| {
        let t = &report["totals"];
        let p = &report["programs"][0];
        (
            [
                &t["people_determined"],
                &t["cards_issued"],
                &t["cards_delivered"],
            ]
            .map(|v| v.as_u64()),
            [
                &p["people_determined"],
                &p["cards_issued"],
                &p["cards_delivered"],
            ]
            .map(|v| v.as_u64()),
        )
    };
    // Made in July, the first half still counts what its last day held: the three of the
    // June decree (one revoked since), two cards, one delivered.
    let first = api
        .get("diskominfo", "/api/v1/reports/semester?year=2026&half=1")
        .await;
    let first = first.expect(200);
    let june = [Some(3), Some(2), Some(1)];
    assert_eq!(counts(first), (june, june), "{first}");
    // Everyone lived in Palaran then.
    assert_eq!(first["kecamatan"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["kecamatan"][0]["kecamatan"], "Palaran");
    assert_eq!(first["kecamatan"][0]["people_determined"], 3);
    let second = api
        .get("diskominfo", "/api/v1/reports/semester?year=2026&half=2")
        .await;
    let second = second.expect(200).clone();
    let december = [Some(4), Some(2), Some(2)];
    assert_eq!(counts(&second), (december, december), "{second}");
    let areas: Vec<(&str, u64, u64)> = second["kecamatan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kecamatan"].as_str().unwrap(),
                k["people_determined"].as_u64().unwrap(),
                k["cards_issued"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(areas, [("Palaran", 3, 1), ("Sambutan", 1, 1)]);

    // Cards never used: counted per kecamatan and program; the list is its own CSV.
    assert_eq!(
        second["cards_never_used"],
        json!({"count": 2, "balance": "400000.00", "by_kecamatan": [
            {"kecamatan": "Palaran", "cards": 1, "balance": "200000.00",
             "programs": [{"program_code": "SEMBAKO", "cards": 1}]},
            {"kecamatan": "Sambutan", "cards": 1, "balance": "200000.00",
             "programs": [{"program_code": "SEMBAKO", "cards": 1}]}]})
    );
    let list = "/api/v1/reports/semester/cards-never-used";
    let csv_answer = api.get("dinsos", &format!("{list}?year=2026&half=2")).await;
    csv_answer.expect(200);
    assert!(csv_answer.content_type.starts_with("text/csv"));
    assert_eq!(
        csv_answer.text(),
        format!(
            "card_id,ssn,kecamatan,kelurahan,programs,status,balance\n\
             {},SSN000000001,Sambutan,Sungai Kapih,SEMBAKO,active,200000.00\n\
             {},SSN000000002,Palaran,Rawa Makmur,SEMBAKO,active,200000.00\n",
            cards[0], cards[1]
        )
    );
    for query in [
        "",
        "?year=2026",
        "?year=2026&half=3",
        "?year=2026&half=2&format=csv",
    ] {
        api.get("dinsos", &format!("{list}{query}"))
            .await
            .expect_error(400, "malformed");
        api.get("bank", &format!("{list}{query}"))
            .await
            .expect_error(403, "forbidden");
    }
    let csv_report = api
        .get(
            "diskominfo",
            "/api/v1/reports/semester?year=2026&half=2&format=csv",
        )
        .await;
    assert!(
        csv_report
            .text()
            .contains("cards_never_used_kecamatan,Sambutan,program:SEMBAKO,1\n"),
        "{}",
        csv_report.text()
    );

    // The printable page: Bahasa Indonesia throughout, numbers whole, no card listed.
    let page = api
        .get(
            "walikota",
            "/api/v1/reports/semester?year=2026&half=2&format=html",
        )
        .await;
    page.expect(200);
    let html = page.text();
    for heading in [
        "1. Ringkasan",
        "2. Per program",
        "3. Per kecamatan",
        "4. Pembelian per jenis komoditas",
        "5. Kartu yang belum pernah dipakai",
        "6. Pengecualian",
    ] {
        assert!(html.contains(&format!("<h2>{heading}</h2>")), "{heading}");
    }
    for english in [
        "Totals",
        "People",
        "Cards",
        "Money",
        "Funded",
        "Disbursed",
        "Spent",
        "Unspent",
        "Reversed",
        "Returned",
        "Delivered",
        "Exceptions",
        "Balance",
        "Figure",
        "Value",
        "Category",
        "Purchases",
        "Kind",
        "Closed",
        "Journal",
        "never used",
        "rice",
        "Semester report",
        " made ",
    ] {
        assert!(!html.contains(english), "English in the page: {english}");
    }
    assert!(html.contains("td.num { white-space: nowrap;"));
    assert!(html.contains("<td class=\"num\">200.000</td>"), "{html}");
    let plain_numbers = html
        .split("<td>")
        .skip(1)
        .filter(|cell| {
            let cell = &cell[..cell.find("</td>").unwrap()];
            cell.trim_start_matches("Rp ")
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                && !cell.is_empty()
        })
        .count();
    assert_eq!(
        plain_numbers, 0,
        "every number cell is one that never wraps"
    );
    assert!(!html.contains(&format!("<td>{}</td>", cards[0])));
}

/// Lost, stolen, damaged and replaced cards, PIN lockouts, E-Warong and duplicate NIKs at
/// import are counted as of the semester's last day: a report on January-June made later
/// counts neither a card lost in August, a PIN locked then nor an E-Warong appointed then,
/// and counts what was so in June even when it changed since; the next semester counts them
/// as they were on its own last day (a PIN unlocked in January still locked). A NIK of an earlier file is a refresh, not a
/// duplicate.
#[tokio::test]
async fn exceptions_and_e_warong_are_counted_as_of_the_semesters_last_day() {
    use crate::dtsen::{csv, person};
    use std::sync::atomic::Ordering::SeqCst;
    let api = Api::start("report-exceptions-as-of").await;
    // 2026-06-15 10:00 WITA.
    let june = 1_781_488_800;
    api.clock.store(june, SeqCst);
    sembako(&api).await;
    let people: Vec<_> = (1..=3).map(|n| person(n, &format!("Warga {n}"))).collect();
    // The first file names the first person twice: one duplicate.
    let file = csv(&[&people[0], &people[1], &people[2], &people[0]]);
    let imported = api
        .post_csv("diskominfo", "/api/v1/beneficiaries/import", &file)
        .await;
    assert_eq!(
        imported.expect(200)["duplicates"].as_array().unwrap().len(),
        1
    );
    let ssn = |n: u32| format!("SSN00000000{n}");
    verify_and_validate(&api, 3).await;
    api.post(
        "walikota",
        "/api/v1/determinations",
        json!({"decree_number": "188.45/6/2026", "decree_date": "2026-06-15",
               "program_code": "SEMBAKO", "ssns": [ssn(1), ssn(2), ssn(3)]}),
    )
    .await
    .expect(201);
    let mut cards = Vec::new();
    for n in 1..=3 {
        let issued = api
            .post("diskominfo", "/api/v1/cards", json!({"ssn": ssn(n)}))
            .await;
        let card = issued.expect(201)["card_id"].as_u64().unwrap();
        on_card(&api, card, "deliver", json!({}), 200).await;
        cards.push(card);
    }
    let appoint = |id: &str, kecamatan: &str| {
        json!({"merchant_id": id, "name": format!("Warung {id}"), "kind": "kube",
               "kecamatan": kecamatan, "kelurahan": "Rawa Makmur",
               "settlement_account": "0012345678"})
    };
    api.post(
        "bank",
        "/api/v1/merchants",
        appoint("EWARONG00000001", "Palaran"),
    )
    .await
    .expect(201);
    // In June the first card is reported damaged and the second's PIN is locked at a terminal.
    on_card(&api, cards[0], "report", json!({"kind": "damaged"}), 200).await;
    lock_pin(&api, cards[1], june).await;

    // 2026-08-10: the damaged card replaced, the third card lost, its PIN and the new card's
    // locked; a second E-Warong appointed, the first suspended; a refresh naming the first
    // person again (a new address) and the second twice.
    let august = 1_786_334_400;
    api.clock.store(august, SeqCst);
    let replacement = on_card(&api, cards[0], "replace", json!({}), 201).await;
    on_card(&api, cards[2], "report", json!({"kind": "lost"}), 200).await;
    lock_pin(&api, cards[2], august).await;
    lock_pin(&api, replacement["card_id"].as_u64().unwrap(), august).await;
    api.post(
        "bank",
        "/api/v1/merchants",
        appoint("EWARONG00000002", "Sambutan"),
    )
    .await
    .expect(201);
    api.post(
        "bank",
        "/api/v1/merchants/EWARONG00000001/suspend",
        json!({}),
    )
    .await
    .expect(200);
    let mut moved = people[0].clone();
    moved.address = "Jl. Baru No. 9".into();
    let refreshed = api
        .post_csv(
            "diskominfo",
            "/api/v1/beneficiaries/import",
            &csv(&[&moved, &people[1], &people[1]]),
        )
        .await;
    let refreshed = refreshed.expect(200);
    assert_eq!(
        refreshed["updated"].as_array().unwrap().len(),
        1,
        "{refreshed}"
    );
    assert_eq!(
        refreshed["duplicates"].as_array().unwrap().len(),
        1,
        "{refreshed}"
    );

    // 2027-01-05: the second card's PIN is reset (unlocked); the reports are made on the
    // 10th.
    api.clock.store(1_799_114_400, SeqCst);
    on_card(&api, cards[1], "pin-reset", json!({}), 200).await;
    api.clock.store(1_799_546_400, SeqCst);
    let exceptions = |report: &serde_json::Value| {
        let e = &report["exceptions"];
        [
            "cards_lost",
            "cards_stolen",
            "cards_damaged",
            "cards_replaced",
            "pin_locked_cards",
            "duplicate_nik_rows",
        ]
        .map(|field| e[field].as_u64().unwrap())
    };
    let e_warong = |report: &serde_json::Value| {
        let areas: Vec<(String, u64)> = report["kecamatan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let name = k["kecamatan"].as_str().unwrap().to_string();
                (name, k["e_warong_active"].as_u64().unwrap())
            })
            .collect();
        (report["totals"]["e_warong_active"].as_u64().unwrap(), areas)
    };
    let first = api
        .get("diskominfo", "/api/v1/reports/semester?year=2026&half=1")
        .await;
    let first = first.expect(200);
    // June: one damaged card not yet replaced, one PIN locked, one file's one duplicate.
    assert_eq!(exceptions(first), [0, 0, 1, 0, 1, 1], "{first}");
    assert_eq!(e_warong(first), (1, vec![("Palaran".into(), 1)]), "{first}");
    let second = api
        .get("diskominfo", "/api/v1/reports/semester?year=2026&half=2")
        .await;
    let second = second.expect(200);
    // December: the damaged card is replaced (no longer counted damaged), the third lost,
    // three PINs locked (June's reset only in January); the known NIK is no duplicate.
    assert_eq!(exceptions(second), [1, 0, 0, 1, 3, 1], "{second}");
    assert_eq!(
        e_warong(second),
        (1, vec![("Palaran".into(), 0), ("Sambutan".into(), 1)]),
        "{second}"
    );
    assert_eq!(second["totals"]["cards_issued"], 4, "{second}");
    assert_eq!(first["totals"]["cards_issued"], 3, "{first}");
}

/// Program SEMBAKO (Rp 200,000 of food category `01`, pockets until 2026-12-31), made by
/// Dinas Sosial.
pub(crate) async fn sembako(api: &Api) {
    define_program(api, ("SEMBAKO", "Sembako"), "200000.00", "2026-12-31").await;
}

/// A 2026 program `(code, name)` of food category `01` without basket, `benefit` a card (and
/// the largest purchase), pockets until `expires`, made by Dinas Sosial.
async fn define_program(api: &Api, (code, name): (&str, &str), benefit: &str, expires: &str) {
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": code, "name": name, "budget_year": 2026,
               "benefit_amount": benefit, "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": benefit,
               "purchases_per_day_max": 3, "pocket_expires_at": expires}),
    )
    .await
    .expect(201);
}

/// Dinas Sosial verifies and validates the people imported first, `SSN000000001` to
/// `count`.
async fn verify_and_validate(api: &Api, count: u32) {
    for n in 1..=count {
        for step in ["verify", "validate"] {
            api.post(
                "dinsos",
                &format!("/api/v1/beneficiaries/SSN00000000{n}/{step}"),
                json!({"approved": true}),
            )
            .await
            .expect(200);
        }
    }
}

/// Diskominfo's `action` on card `card` with `body`, answered `status`: the answer.
async fn on_card(
    api: &Api,
    card: u64,
    action: &str,
    body: serde_json::Value,
    status: u16,
) -> serde_json::Value {
    let answer = api
        .post(
            "diskominfo",
            &format!("/api/v1/cards/{card}/{action}"),
            body,
        )
        .await;
    answer.expect(status).clone()
}

/// Three wrong PINs in a row on `card` at `at` (UTC seconds), recorded as the switch records
/// them: the PIN locks.
async fn lock_pin(api: &Api, card: u64, at: i64) {
    for _ in 0..ssn_ledger::WRONG_PIN_COUNT_MAX {
        api.ledger
            .record_pin_check(ssn_ledger::CardId(card), false, at)
            .await
            .unwrap();
    }
    let locked = api.get("auditor", &format!("/api/v1/cards/{card}")).await;
    assert_eq!(locked.expect(200)["pin_locked"], true);
}
