//! Token hygiene: a token created with an expiry is refused (401) from then on, and a rotation
//! gives the same name and role a new secret while the old one stops working.

use serde_json::json;

use crate::Api;

/// What `GET /programs` answers with this `Authorization` header.
async fn status(api: &Api, authorization: &str) -> u16 {
    api.send_with("GET", "/api/v1/programs", Some(authorization), None)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn a_token_expires_and_a_rotated_secret_replaces_the_old() {
    let api = Api::start("tokens").await;
    // The fixed clock is 2026-11-29 10:00 WITA.
    for past in ["2026-11-29T09:59:59+08:00", "2026-11-29T01:00:00Z"] {
        api.post(
            "admin",
            "/api/v1/tokens",
            json!({"name": "late", "role": "auditor", "expires_at": past}),
        )
        .await
        .expect_error(400, "malformed");
    }
    api.post(
        "admin",
        "/api/v1/tokens",
        json!({"name": "late", "role": "auditor", "expires_at": "29-11-2026"}),
    )
    .await
    .expect_error(400, "malformed");
    let created = api
        .post(
            "admin",
            "/api/v1/tokens",
            json!({"name": "inspektorat-2026", "role": "auditor",
                   "expires_at": "2026-11-29T11:00:00+08:00"}),
        )
        .await;
    let created = created.expect(201).clone();
    assert_eq!(created["expires_at"], "2026-11-29T11:00:00+08:00");
    let secret = format!("Bearer {}", created["token"].as_str().unwrap());
    assert_eq!(status(&api, &secret).await, 200);
    // One second before its expiry it works; at it, it does not.
    api.advance_clock(3_599);
    assert_eq!(status(&api, &secret).await, 200);
    api.advance_clock(1);
    assert_eq!(status(&api, &secret).await, 401);
    // Rotated: a new secret, a new expiry; the old secret is unknown.
    let rotated = api
        .post(
            "admin",
            "/api/v1/tokens/inspektorat-2026/rotate",
            json!({"expires_at": "2026-12-31T23:59:59+08:00"}),
        )
        .await;
    let rotated = rotated.expect(200).clone();
    assert_eq!(rotated["role"], "auditor");
    let new_secret = format!("Bearer {}", rotated["token"].as_str().unwrap());
    assert_ne!(new_secret, secret);
    assert_eq!(status(&api, &new_secret).await, 200);
    assert_eq!(status(&api, &secret).await, 401);
    api.post(
        "auditor",
        "/api/v1/tokens/inspektorat-2026/rotate",
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    api.post("admin", "/api/v1/tokens/nobody/rotate", json!({}))
        .await
        .expect_error(404, "not_found");
    let listed = api.all("admin", "/api/v1/tokens").await;
    let listed = listed
        .iter()
        .find(|t| t["name"] == "inspektorat-2026")
        .unwrap();
    assert_eq!(listed["expires_at"], "2026-12-31T23:59:59+08:00");
    assert!(listed.get("token").is_none());
    let audit = api.all("auditor", "/api/v1/audit").await;
    assert!(audit.iter().any(|l| l["action"] == "tokens.rotate"));
}

/// Past `AUTH_FAILURES_FREE` failed authentications from one address in a window, each further
/// 401 to that address is held back (at least `AUTH_FAILURE_DELAY`, doubling), so guessing
/// tokens slows down; other addresses are not held.
#[tokio::test]
async fn repeated_failed_authentications_from_one_address_are_slowed_down() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use ssn_admin_api::{AUTH_FAILURE_DELAY, AUTH_FAILURES_FREE};
    use tower::ServiceExt;
    let api = Api::start("auth-failures").await;
    let guess = |from: [u8; 4]| {
        let mut request = Request::builder()
            .uri("/api/v1/programs")
            .header("Authorization", "Bearer ssn_guess")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(std::net::SocketAddr::from((from, 40_000))));
        let router = api.router.clone();
        async move {
            let started = std::time::Instant::now();
            let status = router.oneshot(request).await.unwrap().status().as_u16();
            (status, started.elapsed())
        }
    };
    let attacker = [10, 0, 0, 9];
    for _ in 0..AUTH_FAILURES_FREE {
        assert_eq!(guess(attacker).await.0, 401);
    }
    let (status, held) = guess(attacker).await;
    assert_eq!(status, 401);
    assert!(held >= AUTH_FAILURE_DELAY, "held {held:?}");
    let (status, held) = guess(attacker).await;
    assert_eq!(status, 401);
    assert!(held >= 2 * AUTH_FAILURE_DELAY, "held {held:?}");
    // Another address has its own count.
    assert_eq!(guess([10, 0, 0, 10]).await.0, 401);
}
