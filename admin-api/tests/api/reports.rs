//! Reports through the API: every bad query, body and role gets its 4xx; a year-end close is
//! refused before the pockets expire and for a day still to come, and answers the same close
//! when repeated; the public summary needs no token.

use serde_json::json;

use crate::Api;

#[tokio::test]
async fn reports_and_closes_refuse_what_they_must_and_repeat_what_they_did() {
    let api = Api::start("reports").await;
    // The fixed clock is 2026-11-29 (WITA); the program's pockets expired on the 27th.
    api.post(
        "dinsos",
        "/api/v1/programs",
        json!({"code": "OLD2026", "name": "Old", "budget_year": 2026,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 3, "pocket_expires_at": "2026-11-27"}),
    )
    .await
    .expect(201);
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
