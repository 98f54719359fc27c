//! Konsol, the agencies' web console, in a real headless chromium against a real
//! `ssn-switch serve`, the whole flow with each step signed in as the role that does it:
//! Diskominfo imports the CSV (the per-row report), Dinas Sosial verifies and validates, the
//! Mayor's office decrees, Diskominfo issues (PAN and PIN shown once) and delivers the card,
//! Dinas Sosial funds and disburses, the bank appoints an E-Warong and installs its terminal
//! with keys and check values typed into the forms; the terminal buys over ISO 8583; after
//! the business day's cut-over the bank settles, downloads the file, uploads the bank's
//! confirmation and reads the reconciliation; the auditor reads the dashboard and the
//! semester report. Every page visited is checked for its own content and for browser console
//! errors; a role is refused a page it may not open; English is selectable; the pages work
//! from the keyboard with a visible focus and at phone width. A form posted without its CSRF
//! token is refused (plain HTTP) and changes nothing.

use serde_json::{Value, json};
use ssn_codec::Profile;
use ssn_hsm::TdesKey;

use crate::admin::{
    Api, BOOTSTRAP, CSV, Card, NIKS, Purchase, Switch, Terminal, code, now, wait_past_cutover,
};
use crate::browser::Browser;

const MERCHANT: &str = "EWARONG00000071";
const TERMINAL: &str = "EWR71001";

/// A signed-in browser's page checks: the URL, a heading, and no console errors.
async fn visit(browser: &Browser, url: &str, heading: &str) {
    browser.open(url).await;
    check_page(browser, heading).await;
}

async fn check_page(browser: &Browser, heading: &str) {
    check_answer(browser, heading, None).await;
}

/// The page's heading, and no console errors but the one of its refusal with `status`
/// (chromium may log a page answered 4xx as a failed resource).
async fn check_answer(browser: &Browser, heading: &str, status: Option<u16>) {
    let h1 = browser.text("h1").await;
    assert_eq!(h1, heading, "on {}", browser.url().await);
    let errors = browser.console_errors().await;
    let expected = |e: &String| status.is_some_and(|s| e.contains(&format!("status of {s}")));
    assert!(
        errors.iter().all(expected),
        "console errors on {}: {errors:?}",
        browser.url().await
    );
    if status.is_none() {
        shot(browser, &heading.to_lowercase().replace(' ', "-")).await;
    }
}

/// With `SSN_CONSOLE_SCREENSHOTS=<dir>`, a PNG of the page (the docs' screenshots).
async fn shot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SSN_CONSOLE_SCREENSHOTS") {
        browser
            .screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")))
            .await;
    }
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    visit(browser, &format!("{base}/console/masuk"), "Masuk").await;
    browser.fill("#token", token).await;
    browser.submit("main form button[type=submit]").await;
    check_page(browser, "Dasbor").await;
}

async fn sign_out(browser: &Browser) {
    browser.submit("header form button").await;
    check_page(browser, "Masuk").await;
}

/// The notice of the page shown, which must say the action was done.
async fn expect_done(browser: &Browser) {
    let notice = browser.text(".notice").await;
    assert!(notice.starts_with("Berhasil"), "{notice}");
}

/// Ticks the person `ssn` on the beneficiaries list and presses the bulk button `action`.
async fn tick_and_press(browser: &Browser, ssn: &str, action: &str) {
    browser.click(&format!("#pick-{ssn}")).await;
    browser
        .submit(&format!(r#"button[value="{action}"]"#))
        .await;
    check_page(browser, "Penerima manfaat").await;
    expect_done(browser).await;
}

/// Minutes from now to the cut-over of the test's business day: the steps before the
/// purchase (about a minute in a browser on a loaded machine) must fit.
const CUTOVER_MINUTES: i64 = 5;

/// WITA `HH:MM` of the whole minute [`CUTOVER_MINUTES`] to one more from now, and that
/// instant; waits first until that is before midnight (at most about 8 minutes, only for a
/// run that starts just before midnight WITA).
fn cutover_soon() -> (String, i64) {
    wait_past_cutover();
    let local = loop {
        let local = (now() + ssn_ledger::WITA_OFFSET_SECONDS).rem_euclid(86_400);
        if local < 86_400 - (CUTOVER_MINUTES + 2) * 60 {
            break local;
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    };
    let now = now();
    let local = local.max((now + ssn_ledger::WITA_OFFSET_SECONDS).rem_euclid(86_400));
    let minute = local / 60 + CUTOVER_MINUTES;
    let at = now - local + minute * 60;
    (format!("{:02}:{:02}", minute / 60, minute % 60), at)
}

#[tokio::test]
async fn the_agencies_run_the_whole_flow_from_the_console_in_a_browser() {
    // The business day ends a few minutes from now, so that the test settles today.
    let (cutover, cutover_at) = cutover_soon();
    let switch = Switch::start_with_cutover(&cutover);
    let api = Api::new(&switch.admin);
    let base = format!("http://{}", switch.admin);
    let today = ssn_ledger::Day::wita_of_unix_seconds(now()).to_string();
    let mut tokens = std::collections::HashMap::new();
    for role in ["diskominfo", "dinsos", "walikota", "bank", "auditor"] {
        let created = api
            .expect(
                201,
                "POST",
                "/tokens",
                BOOTSTRAP,
                json!({"name": format!("{role}-konsol"), "role": role}),
            )
            .await;
        tokens.insert(role, created["token"].as_str().unwrap().to_string());
    }
    // The program's terms are the API's part here (the console's form is the same call).
    let program = json!({
        "code": "SEMBAKO", "name": "Sembako", "budget_year": 2026,
        "benefit_amount": "300000.00", "allowed_categories": ["01", "02"],
        "basket_required": true, "purchase_amount_max": "100000.00",
        "purchases_per_day_max": 20, "pocket_expires_at": "2099-12-31"
    });
    api.expect(201, "POST", "/programs", &tokens["dinsos"], program)
        .await;

    let browser = Browser::start().await;
    // Not signed in: the sign-in page, in Indonesian.
    browser.open(&format!("{base}/console")).await;
    assert!(browser.url().await.ends_with("/console/masuk"));
    check_page(&browser, "Masuk").await;

    // Diskominfo imports the file: three people, a bad date and a repeated NIK, row by row.
    sign_in(&browser, &base, &tokens["diskominfo"]).await;
    visit(
        &browser,
        &format!("{base}/console/penerima"),
        "Penerima manfaat",
    )
    .await;
    browser.fill("#csv", CSV).await;
    browser
        .submit(r#"form:has(input[value="import"]) button"#)
        .await;
    check_page(&browser, "Penerima manfaat").await;
    assert_eq!(browser.text("#imported").await, "3");
    let report = browser.text("#import-report + p + .table").await;
    assert!(
        report.contains("NIK sudah ada") && report.contains("Ditolak"),
        "{report}"
    );
    sign_out(&browser).await;
    let person = api
        .expect_get(&format!("/beneficiaries?q={}", NIKS[0]), BOOTSTRAP)
        .await;
    let ssn = person["items"][0]["ssn"].as_str().unwrap().to_string();

    // Dinas Sosial verifies, then validates; the Mayor's office decrees.
    sign_in(&browser, &base, &tokens["dinsos"]).await;
    visit(
        &browser,
        &format!("{base}/console/penerima?status=imported"),
        "Penerima manfaat",
    )
    .await;
    tick_and_press(&browser, &ssn, "verify").await;
    visit(
        &browser,
        &format!("{base}/console/penerima?status=verified"),
        "Penerima manfaat",
    )
    .await;
    tick_and_press(&browser, &ssn, "validate").await;
    sign_out(&browser).await;
    sign_in(&browser, &base, &tokens["walikota"]).await;
    visit(
        &browser,
        &format!("{base}/console/penerima?status=validated"),
        "Penerima manfaat",
    )
    .await;
    browser.click(&format!("#pick-{ssn}")).await;
    browser.fill("#decree_number", "SK-KONSOL-1").await;
    browser.fill("#decree_date", "2026-11-01").await;
    browser.choose("#program_code", "SEMBAKO").await;
    browser.submit(r#"button[value="decree"]"#).await;
    check_page(&browser, "Penerima manfaat").await;
    expect_done(&browser).await;
    let decreed = api
        .expect_get(&format!("/beneficiaries/{ssn}"), BOOTSTRAP)
        .await;
    assert_eq!(decreed["status"], "determined", "{decreed}");
    sign_out(&browser).await;

    // Diskominfo: the cards page is refused to the bank, so first the bank's menu.
    sign_in(&browser, &base, &tokens["bank"]).await;
    assert_eq!(browser.count(r#"nav a[href="/console/ewarong"]"#).await, 1);
    assert_eq!(browser.count(r#"nav a[href="/console/kartu"]"#).await, 0);
    browser.open(&format!("{base}/console/kartu")).await;
    check_answer(
        &browser,
        "Peran Anda tidak berhak membuka halaman ini.",
        Some(403),
    )
    .await;
    sign_out(&browser).await;
    sign_in(&browser, &base, &tokens["diskominfo"]).await;
    visit(&browser, &format!("{base}/console/kartu"), "Kartu").await;
    browser.fill("#ssn", &ssn).await;
    browser
        .submit(r#"form:has(input[value="issue"]) button"#)
        .await;
    check_page(&browser, "Kartu").await;
    let card = Card::issued(&json!({
        "card_id": browser.text("#new-card-id").await.parse::<u64>().unwrap(),
        "pan": browser.text("#new-pan").await,
        "expiry": api.expect_get(&format!("/cards?ssn={ssn}"), BOOTSTRAP).await["items"][0]["expiry"],
        "pin": browser.text("#new-pin").await,
    }));
    assert_eq!(browser.text("#card-status").await, "issued");
    browser
        .submit(r#"form:has(input[value="deliver"]) button"#)
        .await;
    check_page(&browser, "Kartu").await;
    assert_eq!(browser.text("#card-status").await, "active");
    // Found by SSN number: the masked PAN only, after the one answer that issued it.
    visit(
        &browser,
        &format!("{base}/console/kartu?cari={ssn}"),
        "Kartu",
    )
    .await;
    let found = browser.text("main .table").await;
    assert!(
        found.contains(&format!("{}******{}", &card.pan[..6], &card.pan[12..])),
        "{found}"
    );
    assert!(!found.contains(&card.pan), "{found}");
    sign_out(&browser).await;

    // Dinas Sosial: money from the city budget, typed the Indonesian way, then the benefit.
    sign_in(&browser, &base, &tokens["dinsos"]).await;
    visit(
        &browser,
        &format!("{base}/console/program"),
        "Program dan dana",
    )
    .await;
    browser.fill("#amount", "12,345").await;
    browser.fill("#reference", "APBD-K1").await;
    browser
        .submit(r#"form:has(input[value="fund"]) button"#)
        .await;
    let refused = browser.text(".notice").await;
    assert!(refused.contains("bukan jumlah rupiah"), "{refused}");
    browser.fill("#amount", "Rp 900.000").await;
    browser.fill("#reference", "APBD-K1").await;
    browser
        .submit(r#"form:has(input[value="fund"]) button"#)
        .await;
    check_page(&browser, "Program dan dana").await;
    expect_done(&browser).await;
    assert!(browser.text("main .table").await.contains("Rp 900.000"));
    browser.choose("#disburse-program", "SEMBAKO").await;
    browser.fill("#period", "2026-11").await;
    browser
        .submit(r#"form:has(input[value="disburse"]) button"#)
        .await;
    check_page(&browser, "Program dan dana").await;
    expect_done(&browser).await;
    assert_eq!(browser.text("#disbursed-cards").await, "1");
    assert_eq!(browser.text("#disbursed-total").await, "Rp 300.000");
    sign_out(&browser).await;

    // The bank: an E-Warong and a terminal (a wrong check value first: refused).
    sign_in(&browser, &base, &tokens["bank"]).await;
    visit(
        &browser,
        &format!("{base}/console/ewarong"),
        "E-Warong dan terminal",
    )
    .await;
    browser.fill("#merchant_id", MERCHANT).await;
    browser.fill("#name", "Warung Konsol").await;
    browser.choose("#kind", "kube").await;
    browser.fill("#kecamatan", "Palaran").await;
    browser.fill("#kelurahan", "Rawa Makmur").await;
    browser.fill("#settlement_account", "ACC071").await;
    browser
        .submit(r#"form:has(input[value="appoint"]) button"#)
        .await;
    check_page(&browser, "E-Warong dan terminal").await;
    expect_done(&browser).await;
    let (tmk, tpk) = (TdesKey::generate().unwrap(), TdesKey::generate().unwrap());
    for tpk_kcv in ["000000".to_string(), tpk.check_value().to_string()] {
        browser.fill("#terminal_id", TERMINAL).await;
        browser.fill("#terminal-merchant", MERCHANT).await;
        browser.fill("#tmk", tmk.reveal_hex().as_str()).await;
        browser
            .fill("#tmk_kcv", &tmk.check_value().to_string())
            .await;
        browser.fill("#tpk", tpk.reveal_hex().as_str()).await;
        browser.fill("#tpk_kcv", &tpk_kcv).await;
        browser
            .submit(r#"form:has(input[value="install"]) button"#)
            .await;
        if tpk_kcv == "000000" {
            check_answer(&browser, "E-Warong dan terminal", Some(422)).await;
            let notice = browser.text(".notice").await;
            assert!(notice.starts_with("Ditolak"), "{notice}");
            let (status, _) = api
                .request(
                    "GET",
                    &format!("/terminals/{TERMINAL}"),
                    Some(BOOTSTRAP),
                    None,
                )
                .await;
            assert_eq!(status, 404, "a refused install installs nothing");
        } else {
            check_page(&browser, "E-Warong dan terminal").await;
            expect_done(&browser).await;
        }
    }
    let terminal = api
        .expect_get(&format!("/terminals/{TERMINAL}"), BOOTSTRAP)
        .await;
    assert_eq!(
        terminal["tpk_kcv"],
        tpk.check_value().to_string(),
        "{terminal}"
    );

    // A purchase from the terminal, before the day's cut-over.
    let mut edc = Terminal::connect_as(&switch.bcd, Profile::Bcd, &tpk, TERMINAL, MERCHANT).await;
    let purchase = Purchase::new(&card, &[("01", 1_250_000), ("02", 500_000)]);
    assert_eq!(code(&edc.purchase(&purchase).await), "00");
    assert!(
        now() < cutover_at,
        "the steps before the purchase took longer than the cut-over"
    );

    // The bank settles today once its cut-over has passed, downloads the file and uploads
    // the bank's confirmation; the reconciliation shows what is left.
    while now() < cutover_at {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    visit(
        &browser,
        &format!("{base}/console/setelmen?tanggal={today}"),
        "Setelmen harian",
    )
    .await;
    browser
        .submit(r#"form:has(input[value="run"]) button"#)
        .await;
    check_page(&browser, "Setelmen harian").await;
    expect_done(&browser).await;
    assert_eq!(browser.text("#settlement-total").await, "Rp 17.500");
    let file = browser
        .download(&format!("{base}/console/setelmen/berkas?tanggal={today}"))
        .await;
    let line = file
        .lines()
        .find(|l| l.starts_with(&format!("D|{MERCHANT}|")))
        .unwrap_or_else(|| panic!("{file}"));
    let net = line.split('|').nth(8).unwrap();
    assert_eq!(net, "17500.00", "{line}");
    browser
        .fill("#confirmation", &format!("{MERCHANT}|{net}|PAID|BPD-K1"))
        .await;
    browser
        .submit(r#"form:has(input[value="confirm"]) button"#)
        .await;
    check_page(&browser, "Setelmen harian").await;
    expect_done(&browser).await;
    let settled = api
        .expect_get(&format!("/settlements/{today}"), BOOTSTRAP)
        .await;
    assert_eq!(settled["lines"][0]["payout"]["status"], "PAID", "{settled}");
    assert!(
        browser.count("main table").await >= 2,
        "lines and differences"
    );
    sign_out(&browser).await;

    // The card's statement, the Indonesian way.
    sign_in(&browser, &base, &tokens["diskominfo"]).await;
    visit(
        &browser,
        &format!("{base}/console/kartu?kartu={}", card.id),
        "Kartu",
    )
    .await;
    let statement = browser.text("main").await;
    assert!(statement.contains("Rp 17.500"), "{statement}");
    assert!(statement.contains("Rp 282.500"), "{statement}");
    assert!(statement.contains("WITA"), "{statement}");
    sign_out(&browser).await;

    // The auditor: the dashboard, the records, the semester report; English; the keyboard;
    // phone width.
    sign_in(&browser, &base, &tokens["auditor"]).await;
    assert_eq!(browser.text("#purchases").await, "1");
    assert_eq!(browser.text("#amount").await, "Rp 17.500");
    assert_eq!(browser.text("#active-terminals").await, "1");
    assert_eq!(browser.count(r#"nav a[href="/console/kartu"]"#).await, 0);
    visit(
        &browser,
        &format!("{base}/console/transaksi?terminal_id={TERMINAL}"),
        "Transaksi",
    )
    .await;
    assert!(browser.text("main .table").await.contains("Rp 17.500"));
    visit(
        &browser,
        &format!("{base}/console/audit?actor=walikota-konsol"),
        "Log audit",
    )
    .await;
    let audit = browser.text("main .table").await;
    assert!(
        audit.contains("walikota-konsol") && !audit.contains("bank-konsol"),
        "{audit}"
    );
    let (year, month, _) = ssn_ledger::Day::wita_of_unix_seconds(now()).ymd();
    let half = if month <= 6 { 1 } else { 2 };
    visit(
        &browser,
        &format!("{base}/console/laporan?year={year}&half={half}"),
        "Laporan semester",
    )
    .await;
    assert_eq!(browser.count("iframe[title]").await, 1);
    browser
        .open(&format!(
            "{base}/console/laporan/cetak?year={year}&half={half}"
        ))
        .await;
    let printed = browser.text("body").await;
    assert!(printed.to_lowercase().contains("sembako"), "{printed}");
    // The report is the API's page, without an icon of its own: the browser's request for
    // /favicon.ico is its only failure allowed.
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.contains("favicon.ico")),
        "{errors:?}"
    );
    visit(&browser, &format!("{base}/console"), "Dasbor").await;
    browser
        .submit(r#"header a[href="/console/bahasa?ke=en"]"#)
        .await;
    check_page(&browser, "Dashboard").await;
    assert!(browser.text("main").await.contains("Today"));
    browser
        .submit(r#"header a[href="/console/bahasa?ke=id"]"#)
        .await;
    check_page(&browser, "Dasbor").await;
    // The keyboard: the first Tab reaches the skip link, drawn with a visible focus ring.
    browser.press("\u{E004}").await;
    let focus = browser
        .script("const e = document.activeElement; return [e.className, getComputedStyle(e).outlineStyle];")
        .await;
    assert_eq!(focus[0], "skip", "{focus}");
    assert_ne!(focus[1], "none", "{focus}");
    // Every control of the pages with the most forms has a label; nothing is wider than a
    // phone's screen.
    for page in ["/console", "/console/transaksi", "/console/laporan"] {
        browser.open(&format!("{base}{page}")).await;
        let unlabelled = browser
            .script("return [...document.querySelectorAll('input:not([type=hidden]),select,textarea')].filter(e => !e.labels || e.labels.length === 0).map(e => e.name);")
            .await;
        assert_eq!(unlabelled, json!([]), "{page}");
    }
    browser.resize(390, 844).await;
    for page in ["/console", "/console/transaksi"] {
        browser.open(&format!("{base}{page}")).await;
        let overflow = browser
            .script("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(overflow.as_i64().unwrap_or(1) <= 0, "{page}: {overflow}");
    }
    browser.resize(1280, 800).await;
    sign_out(&browser).await;
    browser.quit().await;

    // A form without its CSRF token (plain HTTP): refused, and the card is not blocked.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = http_sign_in(&http, &base, &tokens["diskominfo"]).await;
    let refused = http
        .post(format!("{base}/console/kartu"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("action=block&card_id={}&reason=test", card.id))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Formulir ini kedaluwarsa"), "{page}");
    let after: Value = api
        .expect_get(&format!("/cards/{}", card.id), BOOTSTRAP)
        .await;
    assert_eq!(after["status"], "active", "{after}");
    // The sign-in form without its token is refused too.
    let refused = http
        .post(format!("{base}/console/masuk"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", tokens["diskominfo"]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// Signs in over plain HTTP as the sign-in form does; the session cookie.
async fn http_sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
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
    let page = form.text().await.unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
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
    session.split(';').next().unwrap().to_string()
}
