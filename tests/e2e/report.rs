//! The semester report, the year-end close and the public summary against a real switch.
//!
//! A semester of the program's life is built through the public interfaces only (the admin
//! API and EDC terminals in both profiles): people in three kecamatan (two of them with fewer
//! than five), two programs (one whose pockets expired yesterday), cards delivered and not,
//! purchases with baskets, a reversal, a PIN locked, a card lost and replaced, a batch out of
//! balance and one never closed, a settlement and the old program's close. Then every figure
//! of the report, in JSON, CSV and HTML, is checked against a computation of its own over the
//! journal file (read with the ledger's file reader, after SIGTERM); the HTML is rendered by
//! headless Chromium (Debian's `chromium`) with no network, to a PNG, and checked for its
//! charts and for anything wider than an A4 page; and the public summary is searched for every
//! NIK, KK, name and PAN of the seed and for figures about fewer than five people.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use ssn_codec::Profile;
use ssn_ledger::{
    CardId, Day, Entry, FileJournal, JournalStore, Money, PurchaseKey, Record, ResponseCode,
    ReversalEffect, WITA_OFFSET_SECONDS,
};

use crate::admin::{
    Api, BOOTSTRAP, Card, Purchase, Switch, Terminal, code, now, switch_binary, wait_past_cutover,
    wita_date,
};

const M1: &str = "EWARONG00000071";
const M2: &str = "EWARONG00000072";
const M3: &str = "EWARONG00000073";
const T1: &str = "EWR71001";
const T2: &str = "EWR72001";
/// Seconds Chromium may take to render a page.
const CHROMIUM_SECONDS_MAX: u64 = 60;

/// One person of the seed.
struct Person {
    nik: String,
    kk: String,
    name: &'static str,
    kecamatan: &'static str,
}

const NAMES: [&str; 14] = [
    "Siti Nurhaliza",
    "Bambang Supriadi",
    "Dewi Lestari",
    "Ahmad Fauzi",
    "Rina Marlina",
    "Joko Prasetyo",
    "Sri Wahyuni",
    "Hendra Gunawan",
    "Yuliana Putri",
    "Agus Salim",
    "Fitri Handayani",
    "Rudi Hartono",
    "Wulan Sari",
    "Darmawan Saputra",
];

/// Eight people in Palaran (64.72.01), four in Sungai Kunjang (.06), two in Samarinda Kota
/// (.09): the last two kecamatan are small cells for the public summary.
fn people() -> Vec<Person> {
    (0..14)
        .map(|i| {
            let (kecamatan, code) = match i {
                0..=7 => ("Palaran", "01"),
                8..=11 => ("Sungai Kunjang", "06"),
                _ => ("Samarinda Kota", "09"),
            };
            let female = i % 2 == 0;
            let day = 1 + i as u32;
            Person {
                nik: format!(
                    "6472{code}{:02}0380{:04}",
                    day + if female { 40 } else { 0 },
                    71 + i
                ),
                kk: format!("6472{code}0101{:06}", 500 + i),
                name: NAMES[i],
                kecamatan,
            }
        })
        .collect()
}

fn csv(people: &[Person]) -> String {
    let mut csv = String::from("nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil\n");
    for (i, p) in people.iter().enumerate() {
        let sex = if i % 2 == 0 { "P" } else { "L" };
        csv.push_str(&format!(
            "{},{},{},1980-03-{:02},{sex},Jl. Contoh No. {i},{},Kelurahan {},1\n",
            p.nik,
            p.kk,
            p.name,
            1 + i,
            p.kecamatan,
            p.kecamatan
        ));
    }
    // A NIK already in the file under another name (a duplicate), and an impossible date.
    csv.push_str(&format!(
        "{},{},Siti N. Binti Ahmad,1980-03-01,P,Jl. Lain,Palaran,Rawa Makmur,1\n",
        people[0].nik, people[0].kk
    ));
    csv.push_str("6472013203800099,6472010101099999,Tanpa Tanggal,1980-03-32,L,Jl. X,Palaran,Simpang Pasir,2\n");
    csv
}

/// First and last UTC second of a range of WITA dates.
fn window(from: &str, to: &str) -> (i64, i64) {
    let start = |date: &str| {
        let day = Day::parse_iso(date).expect("a date");
        i64::from(day.0) * 86_400 - WITA_OFFSET_SECONDS
    };
    (start(from), start(to) + 86_399)
}

/// What the journal says, computed here without the report's code.
#[derive(Default, Debug)]
struct Expected {
    /// Per program: funded, disbursed, spent, reversed, returned, settled, unspent, giro.
    programs: BTreeMap<String, [Money; 8]>,
    /// Per kecamatan: disbursed, spent, reversed, returned, unspent.
    kecamatan: BTreeMap<String, [Money; 5]>,
    /// Per category: items, purchases, amount, reversed.
    categories: BTreeMap<String, (u64, u64, Money, Money)>,
    /// Cards credited, never used, with a balance: card → balance.
    never_used: BTreeMap<u64, Money>,
    /// E-Warong with an approved purchase.
    transacting: HashSet<String>,
}

fn plus(a: &mut Money, b: Money) {
    *a = a.checked_add(b).unwrap();
}

fn minus(a: &mut Money, b: Money) {
    *a = a.checked_sub(b).unwrap();
}

fn expected(entries: &[Entry], window: (i64, i64), area: &HashMap<u64, String>) -> Expected {
    let mut e = Expected::default();
    let reversed: HashSet<PurchaseKey> = entries
        .iter()
        .filter_map(|entry| match &entry.record {
            Record::Reversal(r) if matches!(r.effect, ReversalEffect::Reversed { .. }) => {
                Some(r.original.clone())
            }
            _ => None,
        })
        .collect();
    let mut balances: HashMap<u64, Money> = HashMap::new();
    let mut credited = HashSet::new();
    let mut used = HashSet::new();
    let zero8 = [Money::ZERO; 8];
    let zero5 = [Money::ZERO; 5];
    for entry in entries {
        if entry.at_unix_seconds > window.1 {
            continue;
        }
        let within = entry.at_unix_seconds >= window.0;
        let kec = |card: &CardId| area.get(&card.0).cloned().expect("every card's kecamatan");
        match &entry.record {
            Record::Funding {
                program, amount, ..
            } => {
                let row = e.programs.entry(program.to_string()).or_insert(zero8);
                plus(&mut row[7], *amount);
                if within {
                    plus(&mut row[0], *amount);
                }
            }
            Record::Disbursement {
                program, credits, ..
            } => {
                for (card, amount) in credits {
                    credited.insert(card.0);
                    plus(balances.entry(card.0).or_default(), *amount);
                    let row = e.programs.entry(program.to_string()).or_insert(zero8);
                    minus(&mut row[7], *amount);
                    plus(&mut row[6], *amount);
                    let k = e.kecamatan.entry(kec(card)).or_insert(zero5);
                    plus(&mut k[4], *amount);
                    if within {
                        plus(&mut row[1], *amount);
                        plus(&mut k[0], *amount);
                    }
                }
            }
            Record::Purchase(p) => {
                if p.response.code != ResponseCode::APPROVED || p.legs.is_empty() {
                    continue;
                }
                let card = p.card.expect("an approved purchase has a card");
                used.insert(card.0);
                for leg in &p.legs {
                    minus(balances.entry(card.0).or_default(), leg.amount);
                    let row = e.programs.entry(leg.program.to_string()).or_insert(zero8);
                    plus(&mut row[7], leg.amount);
                    minus(&mut row[6], leg.amount);
                    let k = e.kecamatan.entry(kec(&card)).or_insert(zero5);
                    minus(&mut k[4], leg.amount);
                    if within {
                        plus(&mut row[2], leg.amount);
                        plus(&mut k[1], leg.amount);
                    }
                }
                if within {
                    e.transacting.insert(p.merchant.to_string());
                    let was_reversed = reversed.contains(&p.key);
                    let mut seen = HashSet::new();
                    for item in &p.basket {
                        let row = e.categories.entry(item.category.clone()).or_insert((
                            0,
                            0,
                            Money::ZERO,
                            Money::ZERO,
                        ));
                        row.0 += 1;
                        if seen.insert(item.category.clone()) {
                            row.1 += 1;
                        }
                        plus(&mut row.2, item.amount);
                        if was_reversed {
                            plus(&mut row.3, item.amount);
                        }
                    }
                }
            }
            Record::Reversal(r) => {
                if let ReversalEffect::Reversed { card, legs } = &r.effect {
                    for leg in legs {
                        plus(balances.entry(card.0).or_default(), leg.amount);
                        let row = e.programs.entry(leg.program.to_string()).or_insert(zero8);
                        minus(&mut row[7], leg.amount);
                        plus(&mut row[6], leg.amount);
                        let k = e.kecamatan.entry(kec(card)).or_insert(zero5);
                        plus(&mut k[4], leg.amount);
                        if within {
                            plus(&mut row[3], leg.amount);
                            plus(&mut k[2], leg.amount);
                        }
                    }
                }
            }
            Record::Replacement {
                old_card,
                new_card,
                moves,
            } => {
                credited.insert(new_card.0);
                for leg in moves {
                    minus(balances.entry(old_card.0).or_default(), leg.amount);
                    plus(balances.entry(new_card.0).or_default(), leg.amount);
                }
            }
            // A revocation returns pockets to giro as a close does (the report's `returned`).
            Record::ProgramClose {
                program, returns, ..
            }
            | Record::Revocation {
                program, returns, ..
            } => {
                for (card, amount) in returns {
                    minus(balances.entry(card.0).or_default(), *amount);
                    let row = e.programs.entry(program.to_string()).or_insert(zero8);
                    plus(&mut row[7], *amount);
                    minus(&mut row[6], *amount);
                    let k = e.kecamatan.entry(kec(card)).or_insert(zero5);
                    minus(&mut k[4], *amount);
                    if within {
                        plus(&mut row[4], *amount);
                        plus(&mut k[3], *amount);
                    }
                }
            }
            Record::Settlement { .. } | Record::DaySettlement { .. } => {
                let (_, lines) = entry.record.settlement().unwrap();
                for net in lines.iter().flat_map(|(_, _, nets)| nets.iter()) {
                    let row = e.programs.entry(net.program.to_string()).or_insert(zero8);
                    minus(&mut row[7], net.amount);
                    if within {
                        plus(&mut row[5], net.amount);
                    }
                }
            }
            Record::Payout { .. } | Record::BatchClose { .. } | Record::Cutover { .. } => {}
        }
    }
    for card in credited {
        let balance = balances.get(&card).copied().unwrap_or(Money::ZERO);
        if !used.contains(&card) && balance.is_positive() {
            e.never_used.insert(card, balance);
        }
    }
    e
}

fn read_journal(data_dir: &Path) -> Vec<Entry> {
    let mut journal = FileJournal::open(&data_dir.join("journal.log")).expect("the journal file");
    let mut entries = Vec::new();
    let broken = journal
        .replay(&mut |encoded, _| {
            entries.push(encoded.decode().expect("every entry decodes"));
            Ok(())
        })
        .expect("the journal reads");
    assert!(broken.is_none(), "the journal is whole: {broken:?}");
    entries
}

/// Rupiah as the HTML writes them: `Rp 1.519.200.000`.
fn rp_html(amount: Money) -> String {
    let whole = (amount.minor() / 100).to_string();
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    format!("Rp {out}")
}

/// Rupiah as the HTML's tables under a `(Rp)` heading write them: `1.519.200.000`.
fn amount_html(amount: Money) -> String {
    rp_html(amount).trim_start_matches("Rp ").to_string()
}

/// The cells of every HTML table row whose first cell is `first`, in page order (number
/// cells, which never wrap, are read like the others).
fn html_rows(html: &str, first: &str) -> Vec<Vec<String>> {
    let html = html.replace("<td class=\"num\">", "<td>");
    let start = format!("<tr><td>{first}</td>");
    let rows: Vec<Vec<String>> = html
        .match_indices(&start)
        .map(|(at, _)| {
            let row = &html[at + "<tr><td>".len()..];
            let row = &row[..row.find("</td></tr>").unwrap()];
            row.split("</td><td>").map(str::to_string).collect()
        })
        .collect();
    assert!(!rows.is_empty(), "no row {first:?} in the HTML");
    rows
}

/// The cells of the first HTML table row whose first cell is `first`.
fn html_row(html: &str, first: &str) -> Vec<String> {
    html_rows(html, first).swap_remove(0)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test]
async fn a_semester_is_reported_closed_and_published_without_personal_data() {
    // Today must be past its cut-over (00:01 WITA) so yesterday can be settled.
    wait_past_cutover();
    let mut switch = Switch::start();
    let api = Api::new(&switch.admin);
    let admin = BOOTSTRAP;
    let today = wita_date(now());
    let yesterday = wita_date(now() - 86_400);

    // ------------------------------------------------------------------ programs and people
    api.expect(
        201,
        "POST",
        "/programs",
        admin,
        json!({"code": "SEMBAKO", "name": "Sembako", "budget_year": 2026,
               "benefit_amount": "300000.00", "allowed_categories": ["01", "02", "07", "08"],
               "basket_required": true, "purchase_amount_max": "200000.00",
               "purchases_per_day_max": 20, "pocket_expires_at": "2099-12-31"}),
    )
    .await;
    api.expect(
        201,
        "POST",
        "/programs",
        admin,
        json!({"code": "LAMA", "name": "Program lama", "budget_year": 2026,
               "benefit_amount": "100000.00", "allowed_categories": ["01"],
               "basket_required": false, "purchase_amount_max": "100000.00",
               "purchases_per_day_max": 5, "pocket_expires_at": yesterday}),
    )
    .await;
    let seed = people();
    let imported = api.import(admin, &csv(&seed)).await;
    assert_eq!(imported["imported"], 14, "{imported}");
    assert_eq!(imported["duplicates"].as_array().unwrap().len(), 1);
    assert_eq!(imported["rejected"].as_array().unwrap().len(), 1);
    let mut ssns = Vec::new();
    for person in &seed {
        let found = api
            .expect_get(&format!("/beneficiaries?q={}", person.nik), admin)
            .await;
        ssns.push(found["items"][0]["ssn"].as_str().unwrap().to_string());
    }
    for ssn in &ssns {
        for step in ["verify", "validate"] {
            api.expect(
                200,
                "POST",
                &format!("/beneficiaries/{ssn}/{step}"),
                admin,
                json!({"approved": true}),
            )
            .await;
        }
    }
    for (decree, program, who) in [
        ("SK-1", "SEMBAKO", &ssns[..]),
        ("SK-2", "LAMA", &ssns[..10]),
    ] {
        api.expect(
            201,
            "POST",
            "/determinations",
            admin,
            json!({"decree_number": decree, "decree_date": "2026-07-01",
                   "program_code": program, "ssns": who}),
        )
        .await;
    }
    let mut cards = Vec::new();
    // Card id → the holder's kecamatan, for the journal-side computation.
    let mut area: HashMap<u64, String> = HashMap::new();
    for (i, ssn) in ssns.iter().enumerate() {
        let card = Card::issued(
            &api.expect(201, "POST", "/cards", admin, json!({"ssn": ssn}))
                .await,
        );
        if i < 12 {
            api.expect(
                200,
                "POST",
                &format!("/cards/{}/deliver", card.id),
                admin,
                json!({}),
            )
            .await;
        }
        area.insert(card.id, seed[i].kecamatan.to_string());
        cards.push(card);
    }

    // ------------------------------------------------------------------ money
    for (program, amount) in [("SEMBAKO", "5000000.00"), ("LAMA", "1000000.00")] {
        api.expect(
            201,
            "POST",
            &format!("/programs/{program}/funding"),
            admin,
            json!({"amount": amount, "reference": format!("APBD-{program}")}),
        )
        .await;
        api.expect(
            201,
            "POST",
            "/disbursements",
            admin,
            json!({"program_code": program, "period": "2026-07"}),
        )
        .await;
    }
    for (m, kecamatan) in [(M1, "Palaran"), (M2, "Palaran"), (M3, "Sungai Kunjang")] {
        api.appoint_merchant(admin, m, kecamatan).await;
    }
    let keys = [
        api.install_terminal(admin, T1, M1).await,
        api.install_terminal(admin, T2, M2).await,
    ];

    // ------------------------------------------------------------------ the E-Warong trade
    let mut t1 = Terminal::connect_as(&switch.bcd, Profile::Bcd, &keys[0], T1, M1).await;
    let mut t2 = Terminal::connect_as(&switch.ascii, Profile::Ascii, &keys[1], T2, M2).await;
    let p1 = Purchase::new(&cards[0], &[("01", 5_000_000), ("07", 2_000_000)]);
    let p2 = Purchase::new(&cards[1], &[("02", 3_000_000)]);
    let p5 = Purchase::new(&cards[4], &[("01", 2_000_000)]);
    for p in [&p1, &p2, &p5] {
        assert_eq!(code(&t1.purchase(p).await), "00");
    }
    assert_eq!(code(&t1.reverse(&p5).await), "00");
    let p3 = Purchase::new(&cards[2], &[("01", 10_000_000), ("08", 1_500_000)]);
    let p4 = Purchase::new(&cards[3], &[("07", 4_000_000)]);
    let p6 = Purchase::new(&cards[6], &[("02", 1_000_000)]);
    for p in [&p3, &p4, &p6] {
        assert_eq!(code(&t2.purchase(p).await), "00");
    }
    // A non-food basket is refused and moves nothing.
    assert_eq!(
        code(
            &t2.purchase(&Purchase::new(&cards[5], &[("95", 500_000)]))
                .await
        ),
        "57"
    );
    // Three wrong PINs lock card 7.
    let wrong = switch.wrong_pin(&cards[7]);
    for expected in ["55", "55", "75"] {
        let p = Purchase::with_pin(&cards[7], &[("01", 100_000)], &wrong);
        assert_eq!(code(&t2.purchase(&p).await), expected);
    }
    // Card 8 is lost and replaced: its pockets move to the new card, which is never used.
    api.expect(
        200,
        "POST",
        &format!("/cards/{}/report", cards[8].id),
        admin,
        json!({"kind": "lost"}),
    )
    .await;
    let replacement = Card::issued(
        &api.expect(
            201,
            "POST",
            &format!("/cards/{}/replace", cards[8].id),
            admin,
            json!({}),
        )
        .await,
    );
    area.insert(replacement.id, seed[8].kecamatan.to_string());
    // T1 closes out of balance (it missed the reversal); T2 never closes.
    assert_eq!(
        code(&t1.close_batch("000001", (3, 10_000_000, 0, 0)).await),
        "95"
    );
    api.expect(
        201,
        "POST",
        "/settlements",
        admin,
        json!({"business_date": yesterday}),
    )
    .await;

    // ------------------------------------------------------------------ year-end close
    let (status, refused) = api
        .request(
            "POST",
            "/programs/SEMBAKO/close",
            Some(admin),
            Some(&json!({"as_of": today})),
        )
        .await;
    assert_eq!(
        status, 422,
        "pockets still spendable cannot close: {refused}"
    );
    let closed = api
        .expect(
            201,
            "POST",
            "/programs/LAMA/close",
            admin,
            json!({"as_of": today}),
        )
        .await;
    assert_eq!(closed["cards"], 10, "{closed}");
    assert_eq!(closed["returned"], "1000000.00", "{closed}");
    let returned_cards: HashSet<u64> = closed["returns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["card_id"].as_u64().unwrap())
        .collect();
    let mut holders: HashSet<u64> = cards[..10].iter().map(|c| c.id).collect();
    holders.remove(&cards[8].id);
    holders.insert(replacement.id);
    assert_eq!(
        returned_cards, holders,
        "the lost card's pocket went with it"
    );
    // LAMA never paid anything: its whole funding goes back to the treasury.
    assert_eq!(closed["giro_balance"], "1000000.00", "{closed}");
    assert_eq!(closed["for_treasury"], "1000000.00", "{closed}");
    let again = api
        .expect(
            200,
            "POST",
            "/programs/LAMA/close",
            admin,
            json!({"as_of": today}),
        )
        .await;
    assert_eq!(again, closed, "a repeated close is the same close");

    // ------------------------------------------------------------------ the reports
    let year: u16 = today[..4].parse().unwrap();
    let half = if today[5..7].parse::<u8>().unwrap() <= 6 {
        1
    } else {
        2
    };
    let query = format!("/reports/semester?year={year}&half={half}");
    let report = api.expect_get(&query, admin).await;
    let text = |format: &'static str| {
        let url = format!("{}{query}&format={format}", api.base());
        async move {
            let answer = reqwest::Client::new()
                .get(url)
                .bearer_auth(BOOTSTRAP)
                .send()
                .await
                .expect("the report");
            assert_eq!(answer.status().as_u16(), 200);
            let content_type = answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                content_type.starts_with(&format!("text/{format}")),
                "{content_type}"
            );
            answer.text().await.unwrap()
        }
    };
    let report_csv = text("csv").await;
    let report_html = text("html").await;
    // The list of cards never used is its own CSV, for Dinas Sosial.
    let never_used_csv = reqwest::Client::new()
        .get(format!(
            "{}/reports/semester/cards-never-used?year={year}&half={half}",
            api.base()
        ))
        .bearer_auth(BOOTSTRAP)
        .send()
        .await
        .expect("the list of cards never used")
        .text()
        .await
        .unwrap();
    let (status, public) = api.request("GET", "/public/summary", None, None).await;
    assert_eq!(status, 200, "{public}");
    // The bank may not read the report; nobody without a token may.
    let (status, _) = api.request("GET", &query, None, None).await;
    assert_eq!(status, 401);

    // ------------------------------------------------------------------ stop, verify, re-walk
    drop((t1, t2));
    let stopped = switch.stop();
    assert!(stopped.success(), "SIGTERM: {stopped}\n{}", switch.log());
    let verified = Command::new(switch_binary())
        .args(["verify", "--data-dir"])
        .arg(&switch.data_dir)
        .output()
        .expect("ssn-switch verify runs");
    assert!(
        verified.status.success(),
        "the books balance after the close: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let entries = read_journal(&switch.data_dir);
    let span = window(
        report["from"].as_str().unwrap(),
        report["to"].as_str().unwrap(),
    );
    let e = expected(&entries, span, &area);

    check_json(&report, &e, &seed, &cards, &never_used_csv);
    let csv_rows = check_csv(&report_csv, &report);
    assert!(csv_rows > 100, "{csv_rows} CSV rows");
    check_html(&report_html, &e);
    render(&report_html, &switch.data_dir);
    check_public(&public, &seed, &cards, &replacement);
}

fn money(value: &Value) -> Money {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("an amount: {value}"));
    let (whole, cents) = text.split_once('.').unwrap();
    Money::from_minor(whole.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap())
}

fn check_json(report: &Value, e: &Expected, seed: &[Person], cards: &[Card], never_used_csv: &str) {
    let fields = [
        "funded",
        "disbursed",
        "spent",
        "reversed",
        "returned",
        "settled",
        "unspent",
        "giro_balance",
    ];
    let programs = report["programs"].as_array().unwrap();
    assert_eq!(programs.len(), e.programs.len(), "{report}");
    let mut totals = [Money::ZERO; 8];
    for row in programs {
        let code = row["program_code"].as_str().unwrap();
        let want = e.programs[code];
        for (i, field) in fields.iter().enumerate() {
            assert_eq!(money(&row[*field]), want[i], "{code} {field}");
            plus(&mut totals[i], want[i]);
        }
    }
    for (i, field) in fields.iter().enumerate() {
        assert_eq!(money(&report["totals"][*field]), totals[i], "total {field}");
    }
    // The seed's own figures: money of the trade, and the close of LAMA.
    assert_eq!(
        money(&report["totals"]["spent"]),
        Money::from_minor(28_500_000)
    );
    assert_eq!(
        money(&report["totals"]["reversed"]),
        Money::from_minor(2_000_000)
    );
    assert_eq!(
        money(&report["totals"]["returned"]),
        Money::from_minor(100_000_000)
    );

    let areas = report["kecamatan"].as_array().unwrap();
    let names: Vec<&str> = areas
        .iter()
        .map(|k| k["kecamatan"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Palaran", "Samarinda Kota", "Sungai Kunjang"]);
    for row in areas {
        let name = row["kecamatan"].as_str().unwrap();
        let want = e.kecamatan.get(name).copied().unwrap_or([Money::ZERO; 5]);
        for (i, field) in ["disbursed", "spent", "reversed", "returned", "unspent"]
            .iter()
            .enumerate()
        {
            assert_eq!(money(&row[*field]), want[i], "{name} {field}");
        }
        let indices: Vec<usize> = (0..seed.len())
            .filter(|&i| seed[i].kecamatan == name)
            .collect();
        let people = indices.len() as u64;
        // Card 8 (Sungai Kunjang) was replaced: its holder has two cards, the lost one
        // delivered, the new one not yet.
        let issued = people + u64::from(name == "Sungai Kunjang");
        let delivered = indices.iter().filter(|&&i| i < 12).count() as u64;
        assert_eq!(row["people_determined"], people, "{name}");
        assert_eq!(row["cards_issued"], issued, "{name}");
        assert_eq!(row["cards_delivered"], delivered, "{name}");
        let (active, trading) = match name {
            "Palaran" => (2, 2),
            "Sungai Kunjang" => (1, 0),
            _ => (0, 0),
        };
        assert_eq!(row["e_warong_active"], active, "{name}");
        assert_eq!(row["e_warong_transacting"], trading, "{name}");
    }
    assert_eq!(report["totals"]["people_determined"], 14);
    assert_eq!(report["totals"]["cards_issued"], 15);
    assert_eq!(report["totals"]["e_warong_active"], 3);
    assert_eq!(
        report["totals"]["e_warong_transacting"],
        e.transacting.len() as u64
    );
    let sembako = programs
        .iter()
        .find(|p| p["program_code"] == "SEMBAKO")
        .unwrap();
    assert_eq!(sembako["people_determined"], 14);
    let lama = programs
        .iter()
        .find(|p| p["program_code"] == "LAMA")
        .unwrap();
    assert_eq!(lama["people_determined"], 10);
    assert_eq!(
        lama["cards_issued"], 11,
        "LAMA's ten holders, one with two cards"
    );

    let categories = report["categories"].as_array().unwrap();
    assert_eq!(categories.len(), e.categories.len(), "{report}");
    for row in categories {
        let code = row["category"].as_str().unwrap();
        let (items, purchases, amount, reversed) = e.categories[code];
        assert_eq!(row["items"], items, "{code}");
        assert_eq!(row["purchases"], purchases, "{code}");
        assert_eq!(money(&row["amount"]), amount, "{code}");
        assert_eq!(money(&row["reversed"]), reversed, "{code}");
    }
    let category_total = Money::checked_sum(e.categories.values().map(|c| c.2)).unwrap();
    assert_eq!(category_total, money(&report["totals"]["spent"]));

    let mut lines = never_used_csv.lines();
    assert_eq!(
        lines.next(),
        Some("card_id,ssn,kecamatan,kelurahan,programs,status,balance")
    );
    let never_used: BTreeMap<u64, Money> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 7, "{line}");
            let (whole, cents) = cells[6].split_once('.').unwrap();
            let balance = Money::from_minor(
                whole.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap(),
            );
            (cells[0].parse().unwrap(), balance)
        })
        .collect();
    assert_eq!(never_used, e.never_used);
    let per_area: u64 = report["cards_never_used"]["by_kecamatan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|area| area["cards"].as_u64().unwrap())
        .sum();
    assert_eq!(per_area, e.never_used.len() as u64);
    assert_eq!(
        report["cards_never_used"]["count"],
        e.never_used.len() as u64
    );
    // Cards 5, 7 (locked), 9, 10, 11, the two never delivered, and the replacement.
    assert_eq!(e.never_used.len(), 8, "{:?}", e.never_used);
    assert!(e.never_used.contains_key(&cards[12].id));

    let x = &report["exceptions"];
    assert_eq!(x["pin_locked_cards"], 1);
    assert_eq!(x["cards_lost"], 1);
    assert_eq!(x["cards_replaced"], 1);
    assert_eq!(x["duplicate_nik_rows"], 1);
    assert_eq!(x["rejected_rows"], 1);
    let mut batches: Vec<(String, String)> = x["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["terminal_id"].as_str().unwrap().to_string(),
                b["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    batches.sort();
    // T2 never closed its batch, and settlement by date closes none.
    assert_eq!(batches, [(T1.to_string(), "out_of_balance".to_string())]);
}

/// Every CSV row equals the JSON's figure; answers how many rows there were.
fn check_csv(text: &str, report: &Value) -> usize {
    let mut rows: HashMap<(String, String, String), String> = HashMap::new();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("section,key,field,value"));
    let mut count = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 4, "{line}");
        rows.insert(
            (cells[0].into(), cells[1].into(), cells[2].into()),
            cells[3].into(),
        );
        count += 1;
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let get = |section: &str, key: &str, field: &str| {
        rows.get(&(section.into(), key.into(), field.into()))
            .cloned()
            .unwrap_or_else(|| panic!("no CSV row {section},{key},{field}"))
    };
    for (field, value) in report["totals"].as_object().unwrap() {
        assert_eq!(get("total", "", field), scalar(value), "total {field}");
    }
    for (list, section, key) in [
        ("programs", "program", "program_code"),
        ("kecamatan", "kecamatan", "kecamatan"),
        ("categories", "category", "category"),
    ] {
        for row in report[list].as_array().unwrap() {
            let k = row[key].as_str().unwrap();
            for (field, value) in row.as_object().unwrap() {
                if field != key {
                    assert_eq!(
                        get(section, k, field),
                        scalar(value),
                        "{section} {k} {field}"
                    );
                }
            }
        }
    }
    for area in report["cards_never_used"]["by_kecamatan"]
        .as_array()
        .unwrap()
    {
        let k = area["kecamatan"].as_str().unwrap();
        assert_eq!(
            get("cards_never_used_kecamatan", k, "cards"),
            scalar(&area["cards"])
        );
        assert_eq!(
            get("cards_never_used_kecamatan", k, "balance"),
            scalar(&area["balance"])
        );
    }
    for field in [
        "pin_locked_cards",
        "cards_lost",
        "cards_replaced",
        "duplicate_nik_rows",
    ] {
        assert_eq!(
            get("exceptions", "", field),
            scalar(&report["exceptions"][field])
        );
    }
    count
}

/// The HTML's tables carry the journal's figures.
fn check_html(html: &str, e: &Expected) {
    let html = &html.replace("<td class=\"num\">", "<td>");
    for (code, name) in [("SEMBAKO", "Sembako"), ("LAMA", "Program lama")] {
        // The program's second row is in the money table.
        let cells = html_rows(html, &format!("{code} {}", esc(name))).swap_remove(1);
        let want = e.programs[code];
        // The money table: funded, disbursed, spent, reversed, returned, unspent.
        let amounts: Vec<String> = [0, 1, 2, 3, 4, 6]
            .iter()
            .map(|&i| amount_html(want[i]))
            .collect();
        assert_eq!(cells[1..], amounts[..], "{code}: {cells:?}");
    }
    for (name, want) in &e.kecamatan {
        let cells = html_row(html, name);
        assert_eq!(
            cells[4..7],
            [
                amount_html(want[0]),
                amount_html(want[1]),
                amount_html(want[4])
            ],
            "{name}: {cells:?}"
        );
    }
    let spent = Money::checked_sum(e.programs.values().map(|p| p[2])).unwrap();
    assert_eq!(html_row(html, "Dibelanjakan")[1], rp_html(spent));
    for (code, (items, purchases, amount, reversed)) in &e.categories {
        let label = html
            .split("<tr><td>")
            .find(|row| row.starts_with(&format!("{code} ")))
            .unwrap_or_else(|| panic!("no category row {code}"));
        let cells: Vec<&str> = label[..label.find("</td></tr>").unwrap()]
            .split("</td><td>")
            .collect();
        assert_eq!(
            cells[1..],
            [
                items.to_string(),
                purchases.to_string(),
                amount_html(*amount),
                amount_html(*reversed)
            ],
            "category {code}"
        );
    }
    // Self-contained: nothing to fetch.
    for outside in [
        "http:", "https:", "src=", "<link", "<script", "@import", "url(",
    ] {
        assert!(
            !html.contains(outside),
            "the report refers outside: {outside}"
        );
    }
    for chart in [
        "chart-programs",
        "chart-kecamatan",
        "chart-categories",
        "chart-never-used",
    ] {
        assert!(html.contains(&format!("id=\"{chart}\"")), "{chart}");
    }
}

/// Headless Chromium with every network path closed: a PNG of the page, and the page's own
/// measure of anything wider than an A4 page (794 CSS pixels) and of its charts.
fn render(html: &str, dir: &Path) {
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let probe = dir.join("report-probe.html");
    let script = r#"<script>
const width = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > width + 0.5 ||
               (e.tagName === 'TD' && e.scrollWidth > e.clientWidth + 1))
  .map(e => e.tagName + (e.id ? '#' + e.id : ''));
const charts = [...document.querySelectorAll('figure.chart')]
  .filter(f => { const s = f.querySelector('svg'); const r = s && s.getBoundingClientRect();
                 return r && r.width > 100 && r.height > 20 && s.querySelectorAll('rect').length > 0; })
  .map(f => f.id);
document.body.setAttribute('data-probe', JSON.stringify({width, scroll: document.documentElement.scrollWidth,
  wide, charts, resources: performance.getEntriesByType('resource').length}));
</script></body>"#;
    std::fs::write(&probe, html.replace("</body>", script)).unwrap();
    let png = dir.join("report.png");
    let chromium = |extra: &[&str], target: &Path| {
        let mut command = Command::new("chromium");
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            &format!("--timeout={}", CHROMIUM_SECONDS_MAX * 1000),
        ]);
        command
            .args(extra)
            .arg(format!("file://{}", target.display()));
        let output = command.output().unwrap_or_else(|e| {
            panic!("Debian's chromium must be installed (scripts/test.sh installs it): {e}")
        });
        assert!(
            output.status.success(),
            "chromium: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The whole report in one picture: A4 width, tall enough for every section.
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=794,3400",
        ],
        &page,
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the PNG");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert_eq!(width, 794, "rendered at A4 width");
    assert!(
        bytes.len() > 20_000,
        "a page with content: {} bytes",
        bytes.len()
    );

    let dom = chromium(
        &[
            "--dump-dom",
            "--virtual-time-budget=5000",
            "--window-size=794,1123",
        ],
        &probe,
    );
    let at = dom.find("data-probe=\"").expect("the probe ran") + "data-probe=\"".len();
    let probe_json = dom[at..dom[at..].find('"').unwrap() + at].replace("&quot;", "\"");
    let probe: Value = serde_json::from_str(&probe_json).unwrap();
    assert_eq!(
        probe["wide"],
        json!([]),
        "nothing wider than the page: {probe}"
    );
    assert!(
        probe["scroll"].as_u64() <= probe["width"].as_u64(),
        "no horizontal scroll: {probe}"
    );
    assert_eq!(
        probe["charts"],
        json!([
            "chart-programs",
            "chart-kecamatan",
            "chart-categories",
            "chart-never-used"
        ]),
        "every chart is drawn: {probe}"
    );
    assert_eq!(
        probe["resources"], 0,
        "nothing loaded from anywhere: {probe}"
    );
}

fn check_public(public: &Value, seed: &[Person], cards: &[Card], replacement: &Card) {
    let text = public.to_string();
    for person in seed {
        for secret in [&person.nik, &person.kk] {
            assert!(
                !text.contains(secret.as_str()),
                "a NIK or KK in the summary"
            );
        }
        assert!(!text.contains(person.name), "a name in the summary");
        for word in person.name.split(' ') {
            assert!(
                !text.contains(word),
                "part of a name in the summary: {word}"
            );
        }
    }
    for card in cards.iter().chain(std::iter::once(replacement)) {
        assert!(!text.contains(&card.pan), "a PAN in the summary");
    }
    // No figure about one to four people: such rows are withheld, and the seed's two small
    // kecamatan are.
    let rows = public["kecamatan"]
        .as_array()
        .unwrap()
        .iter()
        .chain(public["programs"].as_array().unwrap())
        .chain(std::iter::once(&public["total"]));
    for row in rows {
        for field in ["people_determined", "cards_delivered"] {
            if let Some(n) = row[field].as_u64() {
                assert!(n == 0 || n >= 5, "a small cell: {row}");
            }
        }
        if row["suppressed"] == true {
            for field in ["people_determined", "disbursed", "spent", "unspent"] {
                assert!(row[field].is_null(), "{row}");
            }
        }
    }
    let withheld: Vec<&str> = public["kecamatan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["suppressed"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(withheld, ["Samarinda Kota", "Sungai Kunjang"]);
    assert_eq!(public["total"]["people_determined"], 14);
    assert_eq!(public["suppression_threshold"], 5);
}
