//! The console (`/console`) over plain HTTP through the real router: signing in and out, the
//! session cookie's attributes and expiry, a role refused a page, CSRF refusals that change
//! nothing, and a console action that is audited under the person's own token, as the same
//! API call would be. (The whole flow in a real browser is `tests/e2e/console.rs`.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::Api;

/// The console's session life (8 hours).
const SESSION_SECONDS: i64 = 8 * 3600;

/// An answer of the console: status, `Location`, `Set-Cookie` and the page.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    location: String,
    cookie: String,
    html: String,
}

async fn send(api: &Api, method: &str, uri: &str, cookie: &str, form: &str) -> Page {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let header_text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (location, cookie) = (
        header_text(header::LOCATION),
        header_text(header::SET_COOKIE),
    );
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    Page {
        status,
        location,
        cookie,
        html: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The value of the form's hidden `csrf` field.
fn csrf(html: &str) -> String {
    html.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_string()
}

/// `name=value` of a `Set-Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

/// Signs in as `role`; the session cookie (`name=value`) and the dashboard's CSRF token.
async fn sign_in(api: &Api, role: &str) -> (String, String) {
    let form = send(api, "GET", "/console/masuk", "", "").await;
    assert_eq!(form.status, StatusCode::OK);
    let bound = pair(&form.cookie);
    let body = format!("csrf={}&token={}", csrf(&form.html), api.tokens[role]);
    let signed = send(api, "POST", "/console/masuk", &bound, &body).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
    assert_eq!(signed.location, "/console");
    let session = pair(&signed.cookie);
    let dashboard = send(api, "GET", "/console", &session, "").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.html);
    (session, csrf(&dashboard.html))
}

#[tokio::test]
async fn signing_in_gives_a_strict_http_only_session_that_expires_and_ends_at_sign_out() {
    let api = Api::start("console-session").await;
    let away = send(&api, "GET", "/console", "", "").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location, "/console/masuk");

    let form = send(&api, "GET", "/console/masuk", "", "").await;
    assert!(form.html.contains(r#"<html lang="id">"#) && form.html.contains("Token akses"));
    let bound = pair(&form.cookie);
    // Without the form's token, and with a token nobody has: refused, no session.
    let body = format!("token={}", api.tokens["dinsos"]);
    let refused = send(&api, "POST", "/console/masuk", &bound, &body).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.cookie.starts_with("konsol_masuk="),
        "{}",
        refused.cookie
    );
    let body = format!("csrf={}&token=not-a-token", csrf(&form.html));
    let refused = send(&api, "POST", "/console/masuk", &bound, &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.html.contains("Token tidak dikenal"),
        "{}",
        refused.html
    );

    let body = format!("csrf={}&token={}", csrf(&form.html), api.tokens["dinsos"]);
    let signed = send(&api, "POST", "/console/masuk", &bound, &body).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        signed.cookie.split_once('=').map(|(name, _)| name),
        Some("konsol_sesi")
    );
    let attributes = signed.cookie.split_once(';').unwrap().1;
    assert_eq!(
        attributes,
        format!(" Path=/console; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict")
    );
    assert!(
        !signed.cookie.contains(&api.tokens["dinsos"]),
        "the token stays in the server"
    );
    let session = pair(&signed.cookie);
    let dashboard = send(&api, "GET", "/console", &session, "").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard.html.contains("dinsos-operator"));

    // Sign out: the session is gone.
    let body = format!("csrf={}", csrf(&dashboard.html));
    let out = send(&api, "POST", "/console/keluar", &session, &body).await;
    assert_eq!(
        (out.status, out.location.as_str()),
        (StatusCode::SEE_OTHER, "/console/masuk")
    );
    assert!(out.cookie.contains("Max-Age=0"), "{}", out.cookie);
    let after = send(&api, "GET", "/console", &session, "").await;
    assert_eq!(after.location, "/console/masuk");

    // A session lasts SESSION_SECONDS.
    let (session, _) = sign_in(&api, "dinsos").await;
    api.advance_clock(SESSION_SECONDS - 1);
    assert_eq!(
        send(&api, "GET", "/console", &session, "").await.status,
        StatusCode::OK
    );
    api.advance_clock(1);
    let expired = send(&api, "GET", "/console", &session, "").await;
    assert_eq!(expired.location, "/console/masuk");
}

#[tokio::test]
async fn a_role_sees_only_its_pages_and_a_form_without_its_csrf_token_changes_nothing() {
    let api = Api::start("console-roles").await;
    let (bank, bank_csrf) = sign_in(&api, "bank").await;
    let dashboard = send(&api, "GET", "/console", &bank, "").await;
    assert!(dashboard.html.contains(r#"href="/console/ewarong""#));
    assert!(!dashboard.html.contains(r#"href="/console/kartu""#));
    let refused = send(&api, "GET", "/console/kartu", &bank, "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.html.contains("Peran Anda tidak berhak"),
        "{}",
        refused.html
    );
    let refused = send(
        &api,
        "POST",
        "/console/kartu",
        &bank,
        &format!("csrf={bank_csrf}&action=issue&ssn=1"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let appoint = "action=appoint&merchant_id=EWARONG00000091&name=Warung+Konsol&kind=kube&kecamatan=Palaran&kelurahan=Rawa+Makmur&settlement_account=0011";
    // Without the CSRF token, and with another session's: refused, nothing appointed.
    let (other, other_csrf) = sign_in(&api, "bank").await;
    assert_ne!(other, bank);
    for form in [appoint.to_string(), format!("csrf={other_csrf}&{appoint}")] {
        let refused = send(&api, "POST", "/console/ewarong", &bank, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.html.contains("Formulir ini kedaluwarsa"),
            "{}",
            refused.html
        );
    }
    api.get("admin", "/api/v1/merchants/EWARONG00000091")
        .await
        .expect(404);

    // With it: appointed through the API, audited under the bank's own token.
    let with_token = format!("csrf={bank_csrf}&{appoint}");
    let done = send(&api, "POST", "/console/ewarong", &bank, &with_token).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    assert!(done.html.contains("Berhasil."), "{}", done.html);
    api.get("admin", "/api/v1/merchants/EWARONG00000091")
        .await
        .expect(200);
    let audit = api.get("admin", "/api/v1/audit?actor=bank-operator").await;
    let lines = audit.expect(200)["items"].as_array().unwrap().clone();
    assert!(
        lines.iter().any(|l| l["target"]
            .as_str()
            .unwrap_or_default()
            .contains("EWARONG00000091")),
        "{lines:?}"
    );
    // The same action again: the API's own refusal (a duplicate), shown with its reason.
    let again = send(&api, "POST", "/console/ewarong", &bank, &with_token).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);
    assert!(again.html.contains("Ditolak"), "{}", again.html);
    // A page of the console that does not exist is the console's 404, not the API's JSON.
    let missing = send(&api, "GET", "/console/tidak-ada", &bank, "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.html.contains("Halaman tidak ditemukan"));
}
