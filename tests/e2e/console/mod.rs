//! Konsol, the agencies' web console, in a real headless chromium against a real
//! `ssn-switch serve`, the whole flow with each step signed in as the role that does it:
//! Dinas Sosial creates the program; Diskominfo uploads the CSV file (a file that is not text
//! and one that is not DTSEN's first, refused with a message), then a second file of possible
//! duplicates; Dinas Sosial settles those (one distinct, one the same person), verifies and
//! validates; the Mayor's office decrees; Diskominfo issues (PAN and PIN shown once) and
//! delivers the card; Dinas Sosial funds and disburses; the bank appoints an E-Warong and
//! installs its terminal with keys and check values typed into the forms, and sees its open
//! batch after a purchase over ISO 8583; it suspends and activates the terminal and the
//! E-Warong. The business date then ends at a cut-over already past (the switch restarted
//! with an earlier `--settlement-cutover`, as an operator would), so the bank settles at once,
//! downloads the file, uploads the bank's confirmation file and reads the reconciliation.
//! Diskominfo blocks, unblocks, resets the PIN (the new PIN buys), reports the card lost and
//! replaces it (the pockets move). The auditor reads the dashboard, the records and the
//! semester report. Every page visited is checked for its own content, for browser console
//! errors and for unlabelled controls; a role is refused a page and a form it may not use;
//! English is selectable; focus is visible from the keyboard; every page fits a phone's
//! width. A form posted without its CSRF token is refused (plain HTTP) and changes nothing.

mod steps;

use serde_json::json;
use ssn_codec::Profile;
use ssn_hsm::TdesKey;
use ssn_ledger::{Day, WITA_OFFSET_SECONDS};

use crate::admin::{
    Api, BOOTSTRAP, CSV, Card, NIKS, Purchase, Switch, Terminal, code, now, wait_past_cutover,
};
use crate::browser::Browser;
use steps::{
    HttpSession, act, check_answer, check_page, expect_done, expect_refused, hand_over, people,
    press, send_file, shot, sign_in, sign_out, tick_and_press, visit,
};

const MERCHANT: &str = "EWARONG00000071";
const TERMINAL: &str = "EWR71001";

/// Two people imported again under other NIKs (same name and birth date): possible duplicates.
const DUPLICATES_CSV: &str = "\
nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil
6472051507700009,6472050202100009,Budi Santoso,1970-07-15,L,Jl. Cendana Gg. 5,Samarinda Ilir,Sidodamai,2
6472107112620008,6472100303110008,Rahmawati,1962-12-31,P,Jl. Poros Loa Janan,Loa Janan Ilir,Simpang Tiga,1
";

/// The cut-over that makes `date` (the purchases' business date under a midnight cut-over,
/// their WITA calendar date) already ended: the whole WITA minute just begun while it is
/// still `date`, midnight once it is later. An earlier cut-over is an operator's change like
/// any other (journaled, in force from the restart); purchases keep the date they had.
fn cutover_passed(date: Day) -> String {
    loop {
        let now = now();
        if Day::wita_of_unix_seconds(now) != date {
            return "00:00".into();
        }
        let minute = (now + WITA_OFFSET_SECONDS).rem_euclid(86_400) / 60;
        // `00:00` is the midnight at the date's end, not its start.
        if minute > 0 {
            return format!("{:02}:{:02}", minute / 60, minute % 60);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A file of the test's own, removed with the directory when the test ends.
struct Files(std::path::PathBuf);

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!("ssn-konsol-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Not a CSV: the first bytes of a PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";

#[tokio::test]
async fn the_agencies_run_the_whole_flow_from_the_console_in_a_browser() {
    // Purchases on one business date, their calendar date (a midnight cut-over): not within
    // minutes of midnight WITA.
    wait_past_cutover();
    let mut switch = Switch::start_with_cutover("00:00");
    let mut api = Api::new(&switch.admin);
    let mut base = format!("http://{}", switch.admin);
    let files = Files::new();
    let mut tokens = std::collections::HashMap::new();
    for role in ["diskominfo", "dinsos", "walikota", "bank", "auditor"] {
        tokens.insert(role, api.token(&format!("{role}-konsol"), role).await);
    }

    let browser = Browser::start().await;
    // Not signed in: the sign-in page, in Indonesian.
    browser.open(&format!("{base}/console")).await;
    assert!(browser.url().await.ends_with("/console/masuk"));
    check_page(&browser, "Masuk").await;

    // Dinas Sosial: the program's terms, amounts typed the Indonesian way.
    sign_in(&browser, &base, &tokens["dinsos"]).await;
    visit(
        &browser,
        &format!("{base}/console/program"),
        "Program dan dana",
    )
    .await;
    for (field, value) in [
        ("#code", "SEMBAKO"),
        ("#name", "Sembako"),
        ("#budget_year", "2026"),
        ("#benefit_amount", "Rp 300.000"),
        ("#allowed_categories", "01, 02"),
        ("#purchase_amount_max", "Rp 100.000"),
        ("#purchases_per_day_max", "20"),
        ("#pocket_expires_at", "2099-12-31"),
    ] {
        browser.fill(field, value).await;
    }
    act(&browser, "create", "Program dan dana").await;
    assert!(browser.text("main .table").await.contains("Rp 300.000"));
    let program = api.expect_get("/programs/SEMBAKO", BOOTSTRAP).await;
    assert_eq!(
        (
            &program["benefit_amount"],
            &program["purchase_amount_max"],
            &program["allowed_categories"],
            &program["basket_required"]
        ),
        (
            &json!("300000.00"),
            &json!("100000.00"),
            &json!(["01", "02"]),
            &json!(true)
        ),
        "{program}"
    );

    // Diskominfo uploads the file: one that is not text and one that is not DTSEN's are
    // refused with a message; then three people, a bad date and a repeated NIK, row by row;
    // then two possible duplicates.
    hand_over(&browser, &base, &tokens["diskominfo"]).await;
    visit(
        &browser,
        &format!("{base}/console/penerima"),
        "Penerima manfaat",
    )
    .await;
    let import = |name: &'static str, bytes: &'static [u8]| {
        let (browser, path) = (&browser, files.write(name, bytes));
        async move {
            send_file(browser, "#csv_file", &path, "import").await;
            check_page(browser, "Penerima manfaat").await;
        }
    };
    import("foto.png", PNG).await;
    expect_refused(&browser, "bukan berkas teks").await;
    import("lain.csv", b"nama,alamat\nSiti,Jl. A\n").await;
    expect_refused(&browser, "the header lacks column").await;
    let (status, none) = api
        .request("GET", "/beneficiaries", Some(BOOTSTRAP), None)
        .await;
    assert_eq!((status, &none["total"]), (200, &json!(0)), "{none}");
    import("dtsen.csv", CSV.as_bytes()).await;
    expect_done(&browser).await;
    assert_eq!(browser.text("#imported").await, "3");
    let report = browser.text("#import-report + p + .table").await;
    assert!(
        report.contains("NIK sudah ada") && report.contains("Ditolak"),
        "{report}"
    );
    import("ganda.csv", DUPLICATES_CSV.as_bytes()).await;
    expect_done(&browser).await;
    assert_eq!(browser.text("#imported").await, "2");
    let report = browser.text("#import-report + p + .table").await;
    assert_eq!(report.matches("Kemungkinan ganda").count(), 2, "{report}");
    sign_out(&browser).await;
    let ssn_of = |nik: &'static str| {
        let api = &api;
        async move {
            let found = api
                .expect_get(&format!("/beneficiaries?q={nik}"), BOOTSTRAP)
                .await;
            found["items"][0]["ssn"].as_str().unwrap().to_string()
        }
    };
    let ssn = ssn_of(NIKS[0]).await;
    let rahmawati = ssn_of(NIKS[2]).await;
    let (budi_again, rahmawati_again) = (
        ssn_of("6472051507700009").await,
        ssn_of("6472107112620008").await,
    );

    // Dinas Sosial settles the possible duplicates (different people; the same person, whose
    // second record is rejected), then verifies and validates.
    sign_in(&browser, &base, &tokens["dinsos"]).await;
    people(&browser, &base, "imported").await;
    browser.choose("#flagged", &budi_again).await;
    browser.fill("#resolve_note", "KK dan alamat berbeda").await;
    browser.submit("#resolve button").await;
    check_page(&browser, "Penerima manfaat").await;
    expect_done(&browser).await;
    browser.choose("#flagged", &rahmawati_again).await;
    browser.click("#outcome-same").await;
    browser.fill("#same_person_as", &rahmawati).await;
    browser.fill("#resolve_note", "NIK lama salah ketik").await;
    browser.submit("#resolve button").await;
    check_page(&browser, "Penerima manfaat").await;
    expect_done(&browser).await;
    assert_eq!(browser.count("#resolve").await, 0, "nobody left to settle");
    let person = |ssn: String| {
        let api = &api;
        async move {
            api.expect_get(&format!("/beneficiaries/{ssn}"), BOOTSTRAP)
                .await
        }
    };
    let (budi, again) = (person(budi_again).await, person(rahmawati_again).await);
    assert_eq!(budi["possible_duplicate"], false, "{budi}");
    assert_eq!(budi["status"], "imported", "{budi}");
    assert_eq!(again["status"], "rejected", "{again}");
    tick_and_press(&browser, &ssn, "verify").await;
    people(&browser, &base, "verified").await;
    tick_and_press(&browser, &ssn, "validate").await;
    hand_over(&browser, &base, &tokens["walikota"]).await;
    people(&browser, &base, "validated").await;
    browser.click(&format!("#pick-{ssn}")).await;
    browser.fill("#decree_number", "SK-KONSOL-1").await;
    browser.fill("#decree_date", "2026-11-01").await;
    browser.choose("#program_code", "SEMBAKO").await;
    browser.submit(r#"button[value="decree"]"#).await;
    check_page(&browser, "Penerima manfaat").await;
    expect_done(&browser).await;
    assert_eq!(person(ssn.clone()).await["status"], "determined");

    // The cards page and its forms are refused to the bank.
    hand_over(&browser, &base, &tokens["bank"]).await;
    assert_eq!(browser.count(r#"nav a[href="/console/ewarong"]"#).await, 1);
    assert_eq!(browser.count(r#"nav a[href="/console/kartu"]"#).await, 0);
    browser.open(&format!("{base}/console/kartu")).await;
    check_answer(
        &browser,
        "Peran Anda tidak berhak membuka halaman ini.",
        Some(403),
    )
    .await;
    hand_over(&browser, &base, &tokens["diskominfo"]).await;
    visit(&browser, &format!("{base}/console/kartu"), "Kartu").await;
    browser.fill("#ssn", &ssn).await;
    act(&browser, "issue", "Kartu").await;
    let card = Card::issued(&json!({
        "card_id": browser.text("#new-card-id").await.parse::<u64>().unwrap(),
        "pan": browser.text("#new-pan").await,
        "expiry": browser.text("#new-expiry").await,
        "pin": browser.text("#new-pin").await,
    }));
    assert_eq!(browser.text("#card-status").await, "issued");
    act(&browser, "deliver", "Kartu").await;
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

    // Dinas Sosial: money from the city budget, typed the Indonesian way, then the benefit.
    hand_over(&browser, &base, &tokens["dinsos"]).await;
    visit(
        &browser,
        &format!("{base}/console/program"),
        "Program dan dana",
    )
    .await;
    browser.fill("#amount", "12,345").await;
    browser.fill("#reference", "APBD-K1").await;
    press(&browser, "fund").await;
    expect_refused(&browser, "bukan jumlah rupiah").await;
    browser.fill("#amount", "Rp 900.000").await;
    browser.fill("#reference", "APBD-K1").await;
    act(&browser, "fund", "Program dan dana").await;
    assert!(browser.text("main .table").await.contains("Rp 900.000"));
    browser.choose("#disburse-program", "SEMBAKO").await;
    browser.fill("#period", "2026-11").await;
    act(&browser, "disburse", "Program dan dana").await;
    assert_eq!(browser.text("#disbursed-cards").await, "1");
    assert_eq!(browser.text("#disbursed-total").await, "Rp 300.000");

    // The bank: an E-Warong and a terminal (a wrong check value first: refused).
    hand_over(&browser, &base, &tokens["bank"]).await;
    let merchants = format!("{base}/console/ewarong");
    visit(&browser, &merchants, "E-Warong dan terminal").await;
    browser.fill("#merchant_id", MERCHANT).await;
    browser.fill("#name", "Warung Konsol").await;
    browser.choose("#kind", "kube").await;
    browser.fill("#kecamatan", "Palaran").await;
    browser.fill("#kelurahan", "Rawa Makmur").await;
    browser.fill("#settlement_account", "ACC071").await;
    act(&browser, "appoint", "E-Warong dan terminal").await;
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
        if tpk_kcv == "000000" {
            press(&browser, "install").await;
            check_answer(&browser, "E-Warong dan terminal", Some(422)).await;
            expect_refused(&browser, "").await;
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
            act(&browser, "install", "E-Warong dan terminal").await;
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

    // A purchase from the terminal: the bank's dashboard shows its batch open.
    let mut edc = Terminal::connect_as(&switch.bcd, Profile::Bcd, &tpk, TERMINAL, MERCHANT).await;
    let purchase = Purchase::new(&card, &[("01", 1_250_000), ("02", 500_000)]);
    assert_eq!(code(&edc.purchase(&purchase).await), "00");
    let purchased_on = Day::wita_of_unix_seconds(now());
    drop(edc);
    visit(&browser, &format!("{base}/console"), "Dasbor").await;
    assert_eq!(browser.text("#open-batches").await, "1");
    let open = browser.text("#open-batches-title + .table").await;
    assert!(
        open.contains(TERMINAL) && open.contains("Rp 17.500"),
        "{open}"
    );

    // The bank suspends the terminal and the E-Warong, and activates them again.
    for (field, id, path) in [
        ("terminal_id", TERMINAL, format!("/terminals/{TERMINAL}")),
        ("merchant_id", MERCHANT, format!("/merchants/{MERCHANT}")),
    ] {
        visit(&browser, &merchants, "E-Warong dan terminal").await;
        for status in ["suspended", "active"] {
            browser
                .submit(&format!(
                    r#"form.inline:has(input[name="{field}"][value="{id}"]) button"#
                ))
                .await;
            check_page(&browser, "E-Warong dan terminal").await;
            expect_done(&browser).await;
            let row = browser
                .text(&format!(r#"tr:has(input[name="{field}"][value="{id}"])"#))
                .await;
            assert!(row.contains(status), "{row}");
            assert_eq!(api.expect_get(&path, BOOTSTRAP).await["status"], status);
        }
    }

    // The business date ends at a cut-over already past: the switch restarts with it (the
    // console's sessions end with the process), and the bank settles the date at once,
    // downloads the file and uploads the bank's confirmation file (a file that is not text
    // first: refused); the reconciliation shows what is left.
    switch.restart(&cutover_passed(purchased_on));
    api = Api::new(&switch.admin);
    base = format!("http://{}", switch.admin);
    let date = purchased_on.to_string();
    sign_in(&browser, &base, &tokens["bank"]).await;
    visit(
        &browser,
        &format!("{base}/console/setelmen?tanggal={date}"),
        "Setelmen harian",
    )
    .await;
    act(&browser, "run", "Setelmen harian").await;
    assert_eq!(browser.text("#settlement-total").await, "Rp 17.500");
    let file = browser
        .download(&format!("{base}/console/setelmen/berkas?tanggal={date}"))
        .await;
    let line = file
        .lines()
        .find(|l| l.starts_with(&format!("D|{MERCHANT}|")))
        .unwrap_or_else(|| panic!("{file}"));
    let net = line.split('|').nth(8).unwrap();
    assert_eq!(net, "17500.00", "{line}");
    let answer_file = files.write("jawaban.png", PNG);
    send_file(&browser, "#confirmation_file", &answer_file, "confirm").await;
    check_answer(&browser, "Setelmen harian", Some(422)).await;
    expect_refused(&browser, "bukan berkas teks").await;
    let answer = format!("{MERCHANT}|{net}|PAID|BPD-K1\n");
    let answer_file = files.write("jawaban.txt", answer.as_bytes());
    send_file(&browser, "#confirmation_file", &answer_file, "confirm").await;
    check_page(&browser, "Setelmen harian").await;
    expect_done(&browser).await;
    let settled = api
        .expect_get(&format!("/settlements/{date}"), BOOTSTRAP)
        .await;
    assert_eq!(settled["lines"][0]["payout"]["status"], "PAID", "{settled}");
    assert_eq!(browser.text("#settlement-status").await, "confirmed");
    assert!(
        browser.count("main table").await >= 2,
        "lines and differences"
    );

    // Diskominfo: block and unblock, a new PIN (which then buys), the statement the
    // Indonesian way; the card reported lost and replaced, its pockets on the new card.
    hand_over(&browser, &base, &tokens["diskominfo"]).await;
    let card_page = format!("{base}/console/kartu?kartu={}", card.id);
    visit(&browser, &card_page, "Kartu").await;
    let card_status = |id: u64| {
        let api = &api;
        async move { api.expect_get(&format!("/cards/{id}"), BOOTSTRAP).await["status"].clone() }
    };
    browser
        .fill(&format!("#reason-{}", card.id), "Diminta pemilik")
        .await;
    act(&browser, "block", "Kartu").await;
    assert_eq!(browser.text("#card-status").await, "blocked");
    assert_eq!(card_status(card.id).await, "blocked");
    act(&browser, "unblock", "Kartu").await;
    assert_eq!(browser.text("#card-status").await, "active");
    assert_eq!(card_status(card.id).await, "active");
    act(&browser, "pin-reset", "Kartu").await;
    let pin = browser.text("#new-pin").await;
    assert!(
        (4..=6).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()),
        "{pin}"
    );
    let mut edc = Terminal::connect_as(&switch.bcd, Profile::Bcd, &tpk, TERMINAL, MERCHANT).await;
    let with_new_pin = Purchase::with_pin(&card, &[("01", 100_000)], &pin);
    assert_eq!(code(&edc.purchase(&with_new_pin).await), "00");
    drop(edc);
    visit(&browser, &card_page, "Kartu").await;
    let statement = browser.text("main").await;
    for shown in ["Rp 17.500", "Rp 1.000", "Rp 281.500", "WITA"] {
        assert!(statement.contains(shown), "{shown}: {statement}");
    }
    browser.choose(&format!("#kind-{}", card.id), "lost").await;
    act(&browser, "report", "Kartu").await;
    assert_eq!(browser.text("#card-status").await, "lost");
    browser
        .fill(&format!("#replace-pin-{}", card.id), "135790")
        .await;
    act(&browser, "replace", "Kartu").await;
    assert_eq!(browser.text("#new-pin").await, "135790");
    let new_card: u64 = browser.text("#new-card-id").await.parse().unwrap();
    assert_ne!(new_card, card.id);
    assert_eq!(browser.text("#card-status").await, "issued");
    assert!(browser.text("main").await.contains("Rp 281.500"));
    assert_eq!(card_status(card.id).await, "lost");
    assert_eq!(card_status(new_card).await, "issued");

    // The auditor: the dashboard, the records, the semester report; English; the keyboard.
    hand_over(&browser, &base, &tokens["auditor"]).await;
    assert_eq!(browser.text("#purchases").await, "2");
    assert_eq!(browser.text("#amount").await, "Rp 18.500");
    assert_eq!(browser.text("#active-terminals").await, "1");
    assert_eq!(browser.text("#open-batches").await, "1");
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
    let (year, month, _) = Day::wita_of_unix_seconds(now()).ymd();
    let half = if month <= 6 { 1 } else { 2 };
    visit(
        &browser,
        &format!("{base}/console/laporan?year={year}&half={half}"),
        "Laporan semester",
    )
    .await;
    assert_eq!(browser.count("iframe[title]").await, 1);
    // The printable report is the API's own page: no console error there either (the
    // browser's request for /favicon.ico is answered).
    browser
        .open(&format!(
            "{base}/console/laporan/cetak?year={year}&half={half}"
        ))
        .await;
    let printed = browser.text("body").await;
    assert!(printed.to_lowercase().contains("sembako"), "{printed}");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
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
    // The keyboard: the first Tab reaches the skip link; each control reached is drawn with
    // a visible focus ring.
    for tab in 0..6 {
        browser.press("\u{E004}").await;
        let focus = browser
            .script("const e = document.activeElement; return [e.className, e.tagName, getComputedStyle(e).outlineStyle];")
            .await;
        if tab == 0 {
            assert_eq!(focus[0], "skip", "{focus}");
        }
        assert_ne!(focus[2], "none", "{focus}");
    }
    // Every page at a phone's width (as admin, who may open them all): nothing wider than
    // the screen.
    hand_over(&browser, &base, BOOTSTRAP).await;
    browser.resize(390, 844).await;
    for (page, heading) in [
        ("/console".to_string(), "Dasbor"),
        ("/console/penerima".to_string(), "Penerima manfaat"),
        ("/console/program".to_string(), "Program dan dana"),
        (format!("/console/kartu?kartu={new_card}"), "Kartu"),
        ("/console/ewarong".to_string(), "E-Warong dan terminal"),
        (
            format!("/console/setelmen?tanggal={date}"),
            "Setelmen harian",
        ),
        ("/console/laporan".to_string(), "Laporan semester"),
        ("/console/transaksi".to_string(), "Transaksi"),
        ("/console/audit".to_string(), "Log audit"),
    ] {
        browser.open(&format!("{base}{page}")).await;
        assert_eq!(browser.text("h1").await, heading, "{page}");
        let overflow = browser
            .script("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(overflow.as_i64().unwrap_or(1) <= 0, "{page}: {overflow}");
        shot(
            &browser,
            &format!("{}-ponsel", heading.to_lowercase().replace(' ', "-")),
        )
        .await;
    }
    browser.resize(1280, 800).await;
    sign_out(&browser).await;
    browser.quit().await;

    // Plain HTTP: a form without its CSRF token is refused and the card is not blocked; the
    // bank's own session, with its token, may not post the cards' forms either.
    let diskominfo = HttpSession::sign_in(&base, &tokens["diskominfo"]).await;
    let block = format!("action=block&card_id={new_card}&reason=test");
    let (status, page) = diskominfo.post(&base, "/console/kartu", &block).await;
    assert_eq!(status, 403);
    assert!(page.contains("Formulir ini kedaluwarsa"), "{page}");
    let bank = HttpSession::sign_in(&base, &tokens["bank"]).await;
    let (status, page) = bank
        .post(
            &base,
            "/console/kartu",
            &format!("csrf={}&{block}", bank.csrf),
        )
        .await;
    assert_eq!(status, 403);
    assert!(page.contains("Peran Anda tidak berhak membuka"), "{page}");
    assert_eq!(card_status(new_card).await, "issued");
    // With its token the same form does what it says.
    let (status, _) = diskominfo
        .post(
            &base,
            "/console/kartu",
            &format!("csrf={}&{block}", diskominfo.csrf),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(card_status(new_card).await, "blocked");
    // The sign-in form without its token is refused too.
    let (status, _) = diskominfo
        .post(
            &base,
            "/console/masuk",
            &format!("token={}", tokens["diskominfo"]),
        )
        .await;
    assert_eq!(status, 403);
}
