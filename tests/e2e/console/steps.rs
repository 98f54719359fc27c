//! The steps the console's flow is made of: visiting a page and checking it (its heading, no
//! browser console error, every control labelled), signing in and out, the notices, and the
//! same over plain HTTP for what a browser would not send (a form without its CSRF token).

use std::path::Path;

use serde_json::json;

use crate::browser::Browser;

/// A signed-in browser's page checks: the URL, a heading, and no console errors.
pub(super) async fn visit(browser: &Browser, url: &str, heading: &str) {
    browser.open(url).await;
    check_page(browser, heading).await;
}

pub(super) async fn check_page(browser: &Browser, heading: &str) {
    check_answer(browser, heading, None).await;
}

/// The page's heading, every control labelled, and no console errors but the one of its
/// refusal with `status` (chromium logs a page answered 4xx as a failed resource).
pub(super) async fn check_answer(browser: &Browser, heading: &str, status: Option<u16>) {
    let h1 = browser.text("h1").await;
    assert_eq!(h1, heading, "on {}", browser.url().await);
    let errors = browser.console_errors().await;
    let expected = |e: &String| status.is_some_and(|s| e.contains(&format!("status of {s}")));
    assert!(
        errors.iter().all(expected),
        "console errors on {}: {errors:?}",
        browser.url().await
    );
    let unlabelled = browser
        .script("return [...document.querySelectorAll('input:not([type=hidden]),select,textarea')].filter(e => !e.labels || e.labels.length === 0).map(e => e.name);")
        .await;
    assert_eq!(unlabelled, json!([]), "on {}", browser.url().await);
    if status.is_none() {
        shot(browser, &heading.to_lowercase().replace(' ', "-")).await;
    }
}

/// With `SSN_CONSOLE_SCREENSHOTS=<dir>`, a PNG of the page (the docs' screenshots).
pub(super) async fn shot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SSN_CONSOLE_SCREENSHOTS") {
        browser
            .screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")))
            .await;
    }
}

pub(super) async fn sign_in(browser: &Browser, base: &str, token: &str) {
    visit(browser, &format!("{base}/console/masuk"), "Masuk").await;
    browser.fill("#token", token).await;
    browser.submit("main form button[type=submit]").await;
    check_page(browser, "Dasbor").await;
}

pub(super) async fn sign_out(browser: &Browser) {
    browser.submit("header form button").await;
    check_page(browser, "Masuk").await;
}

/// The notice of the page shown, which must say the action was done.
pub(super) async fn expect_done(browser: &Browser) {
    let notice = browser.text(".notice").await;
    assert!(notice.starts_with("Berhasil"), "{notice}");
}

/// The notice of the page shown, which must say the action was refused for `reason`.
pub(super) async fn expect_refused(browser: &Browser, reason: &str) {
    let notice = browser.text(".notice").await;
    assert!(
        notice.starts_with("Ditolak") && notice.contains(reason),
        "{notice}"
    );
}

/// Presses the submit button of the form whose hidden `action` is `action`.
pub(super) async fn press(browser: &Browser, action: &str) {
    browser
        .submit(&format!(r#"form:has(input[value="{action}"]) button"#))
        .await;
}

/// Presses the button of the form of `action`, and checks the page it leads to (`heading`)
/// says the action was done.
pub(super) async fn act(browser: &Browser, action: &str, heading: &str) {
    press(browser, action).await;
    check_page(browser, heading).await;
    expect_done(browser).await;
}

/// Chooses the file at `path` in the file input `input` and presses the button of the form
/// of `action`.
pub(super) async fn send_file(browser: &Browser, input: &str, path: &Path, action: &str) {
    browser.upload(input, path).await;
    press(browser, action).await;
}

/// The beneficiaries page listing the people in `status`.
pub(super) async fn people(browser: &Browser, base: &str, status: &str) {
    let url = format!("{base}/console/penerima?status={status}");
    visit(browser, &url, "Penerima manfaat").await;
}

/// Signs the person out and the next one, with `token`, in.
pub(super) async fn hand_over(browser: &Browser, base: &str, token: &str) {
    sign_out(browser).await;
    sign_in(browser, base, token).await;
}

/// Ticks the person `ssn` on the beneficiaries list and presses the bulk button `action`.
pub(super) async fn tick_and_press(browser: &Browser, ssn: &str, action: &str) {
    browser.click(&format!("#pick-{ssn}")).await;
    browser
        .submit(&format!(r#"button[value="{action}"]"#))
        .await;
    check_page(browser, "Penerima manfaat").await;
    expect_done(browser).await;
}

/// A signed-in session over plain HTTP: its cookie and its forms' CSRF token.
pub(super) struct HttpSession {
    pub(super) http: reqwest::Client,
    pub(super) cookie: String,
    pub(super) csrf: String,
}

impl HttpSession {
    /// Signs in over plain HTTP as the sign-in form does.
    pub(super) async fn sign_in(base: &str, token: &str) -> HttpSession {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http
            .get(format!("{base}/console/masuk"))
            .send()
            .await
            .unwrap();
        let set = form.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let bound = set.split(';').next().unwrap().to_string();
        let csrf = csrf_of(&form.text().await.unwrap());
        let signed = http
            .post(format!("{base}/console/masuk"))
            .header("cookie", &bound)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303);
        let session = signed.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            session.contains("HttpOnly")
                && session.contains("SameSite=Strict")
                && session.contains("Max-Age="),
            "{session}"
        );
        let cookie = session.split(';').next().unwrap().to_string();
        let dashboard = http
            .get(format!("{base}/console"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let csrf = csrf_of(&dashboard.text().await.unwrap());
        HttpSession { http, cookie, csrf }
    }

    /// Posts the urlencoded `form` to `path` with this session's cookie; status and page.
    pub(super) async fn post(&self, base: &str, path: &str, form: &str) -> (u16, String) {
        let answer = self
            .http
            .post(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }
}

/// The CSRF token of the first form of a page.
fn csrf_of(page: &str) -> String {
    page.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))
        .to_string()
}
