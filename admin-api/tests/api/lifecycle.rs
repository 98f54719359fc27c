//! The lifecycle the way the agencies work it: Diskominfo imports a file of 1,000 people with
//! planted problems, Dinas Sosial verifies and validates, the Mayor determines by decree, Dinas
//! Sosial funds and disburses, Diskominfo issues, delivers, blocks, replaces and resets cards;
//! and every step is checked against the journal, the books and the audit log.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use crate::{Api, luhn_valid, minor, rupiah};

const PROGRAM: &str = "SEMBAKO2026";
const OTHER_PROGRAM: &str = "LANSIA2026";
const BIN: &str = "604872";
const HEADER: &str = "nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil";
const BENEFIT_MINOR: i64 = 30_000_000;
/// The answer's `at` for everything done at the fixed clock.
const NOW_WITA: &str = "2026-11-29T10:00:00+08:00";

const KECAMATAN: [&str; 10] = [
    "Palaran",
    "Samarinda Seberang",
    "Samarinda Ulu",
    "Samarinda Ilir",
    "Samarinda Utara",
    "Sungai Kunjang",
    "Sambutan",
    "Sungai Pinang",
    "Samarinda Kota",
    "Loa Janan Ilir",
];
/// Men at even places, women at odd places: person `i` is a woman when `i` is odd.
const FIRST: [&str; 20] = [
    "Ahmad", "Siti", "Budi", "Nur", "Rahmat", "Aminah", "Joko", "Dewi", "Hendra", "Fitri", "Agus",
    "Rina", "Bambang", "Wati", "Yusuf", "Ratna", "Slamet", "Sri", "Rudi", "Lestari",
];
const LAST: [&str; 50] = [
    "Hidayat",
    "Saputra",
    "Wijaya",
    "Kurniawan",
    "Santoso",
    "Pratama",
    "Nugroho",
    "Setiawan",
    "Siregar",
    "Lubis",
    "Hasibuan",
    "Nasution",
    "Rahman",
    "Hakim",
    "Syahputra",
    "Gunawan",
    "Susanto",
    "Firmansyah",
    "Ramadhan",
    "Maulana",
    "Purnomo",
    "Utomo",
    "Wibowo",
    "Hartono",
    "Sembiring",
    "Tarigan",
    "Ginting",
    "Pane",
    "Harahap",
    "Daulay",
    "Aritonang",
    "Simatupang",
    "Sinaga",
    "Panjaitan",
    "Situmorang",
    "Manurung",
    "Sitompul",
    "Tambunan",
    "Pardede",
    "Hutapea",
    "Rangkuti",
    "Batubara",
    "Matondang",
    "Pohan",
    "Ritonga",
    "Dalimunthe",
    "Effendi",
    "Iskandar",
    "Yulianto",
    "Anwar",
];

/// One row of the file as the test made it.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub(crate) nik: String,
    pub(crate) kk: String,
    pub(crate) name: String,
    pub(crate) birth_date: String,
    pub(crate) female: bool,
    pub(crate) address: String,
    pub(crate) kecamatan: String,
    pub(crate) kelurahan: String,
    pub(crate) desil: u8,
}

impl Person {
    /// The person as a line of the Portal Data SSN's export.
    pub(crate) fn line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{}\n",
            self.nik,
            self.kk,
            self.name,
            self.birth_date,
            if self.female { "P" } else { "L" },
            self.address,
            self.kecamatan,
            self.kelurahan,
            self.desil
        )
    }
}

/// A NIK: Samarinda (64.72), the kecamatan, the day (+40 for women), month, year, serial.
/// A NIK of Samarinda (6472) for a person born on that day, +40 for women.
pub(crate) fn nik(
    kecamatan: usize,
    day: u32,
    month: u32,
    year: i32,
    female: bool,
    serial: &str,
) -> String {
    let day = if female { day + 40 } else { day };
    format!(
        "6472{kecamatan:02}{day:02}{month:02}{:02}{serial}",
        year.rem_euclid(100)
    )
}

fn person(i: usize) -> Person {
    let kecamatan = i % 10 + 1;
    let female = i % 2 == 1;
    let year = 1950 + (i % 50) as i32;
    let month = ((i / 7) % 12 + 1) as u32;
    let day = (i % 28 + 1) as u32;
    Person {
        nik: nik(
            kecamatan,
            day,
            month,
            year,
            female,
            &format!("{:04}", i + 1),
        ),
        kk: format!("6472{kecamatan:02}{:010}", 100_000 + i),
        name: format!("{} {}", FIRST[i % 20], LAST[i / 20 % 50]),
        birth_date: format!("{year:04}-{month:02}-{day:02}"),
        female,
        address: format!("Jl. Merdeka No. {}", i + 1),
        kecamatan: KECAMATAN[kecamatan - 1].to_string(),
        kelurahan: format!("Kelurahan {}", i % 6 + 1),
        desil: (i % 4 + 1) as u8,
    }
}

/// What the test planted in the file, by line (the header is line 1).
struct File {
    csv: String,
    rows: u64,
    /// Rows that are people, imported on the first import, in file order.
    imported: Vec<(u64, Person)>,
    /// (line, NIK) of rows repeating an earlier row's NIK.
    repeats: Vec<(u64, String)>,
    /// (line, NIK, NIK of the person with the same name and birth date).
    possible: Vec<(u64, String, String)>,
    /// (line, reason).
    rejected: Vec<(u64, String)>,
}

/// A bad row of kind `b % 5`, with the reason the API must give.
fn bad_row(b: usize) -> (Person, &'static str) {
    let mut p = person(900 + b);
    p.name = format!("Salah Nik {b}");
    let serial = format!("{:04}", 7000 + b);
    let not_real = "a NIK's date part (day, +40 for women; month; year) is not a real date";
    match b % 5 {
        0 => {
            p.nik.pop();
            (p, "a NIK is 16 digits")
        }
        1 => {
            // Day 32 (72 for a woman).
            p.female = (b / 5) % 2 == 1;
            p.birth_date = "1980-01-31".into();
            p.nik = nik(3, 32, 1, 1980, p.female, &serial);
            (p, not_real)
        }
        2 => {
            p.female = false;
            p.birth_date = "1980-02-28".into();
            p.nik = nik(3, 31, 2, 1980, false, &serial);
            (p, not_real)
        }
        3 => {
            p.female = true;
            p.birth_date = "1985-02-01".into();
            p.nik = nik(3, 1, 2, 1985, true, "0000");
            (p, "a NIK's serial starts at 0001")
        }
        _ => {
            p.female = false;
            p.birth_date = "1980-03-16".into();
            p.nik = nik(3, 15, 3, 1980, false, &serial);
            (p, "the NIK's date part does not match birth_date")
        }
    }
}

/// 1,000 rows: 950 people, and after every 19th a planted row, cycling through a repeat of an
/// earlier NIK, a bad NIK, a repeat, a bad NIK, and a possible duplicate (an earlier person's
/// name and birth date under a new NIK; every other one in capitals).
fn make_file() -> File {
    let mut file = File {
        csv: format!("{HEADER}\n"),
        rows: 0,
        imported: Vec::new(),
        repeats: Vec::new(),
        possible: Vec::new(),
        rejected: Vec::new(),
    };
    let mut line = 1u64;
    let mut planted = 0usize;
    for i in 0..950 {
        let p = person(i);
        line += 1;
        file.csv.push_str(&p.line());
        file.imported.push((line, p));
        if i % 19 != 18 {
            continue;
        }
        let j = planted;
        planted += 1;
        line += 1;
        match j % 5 {
            0 | 2 => {
                let earlier = person(i - 5);
                file.csv.push_str(&earlier.line());
                file.repeats.push((line, earlier.nik));
            }
            1 | 3 => {
                let (p, reason) = bad_row(file.rejected.len());
                file.csv.push_str(&p.line());
                file.rejected.push((line, reason.to_string()));
            }
            _ => {
                let original = person(i - 3);
                let (y, m, d) = split_date(&original.birth_date);
                let mut twin = original.clone();
                twin.nik = nik(
                    (i - 3) % 10 + 1,
                    d,
                    m,
                    y,
                    original.female,
                    &format!("{:04}", 5000 + j),
                );
                twin.kk = format!("6472{:02}{:010}", (i - 3) % 10 + 1, 900_000 + j);
                if j % 10 == 4 {
                    twin.name = original.name.to_uppercase();
                }
                twin.address = format!("Gg. Lain No. {j}");
                file.csv.push_str(&twin.line());
                file.possible
                    .push((line, twin.nik.clone(), original.nik.clone()));
                file.imported.push((line, twin));
            }
        }
    }
    file.rows = line - 1;
    assert_eq!(file.rows, 1000);
    assert_eq!(
        (
            file.imported.len(),
            file.repeats.len(),
            file.possible.len(),
            file.rejected.len()
        ),
        (960, 20, 10, 20)
    );
    file
}

fn split_date(text: &str) -> (i32, u32, u32) {
    let parts: Vec<&str> = text.split('-').collect();
    (
        parts[0].parse().unwrap(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    )
}

fn strs(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("text").to_string())
        .collect()
}

/// Checks an issued card's answer and returns (card id, PAN, PIN).
#[track_caller]
fn check_issued(card: &Value, ssn: &str) -> (u64, String, String) {
    assert_eq!(card["ssn"], ssn);
    assert_eq!(card["status"], "issued");
    // 2026-11 plus 60 months.
    assert_eq!(card["expiry"], "3111");
    let pan = card["pan"].as_str().expect("the full PAN").to_string();
    check_pan(&pan);
    let pin = card["pin"].as_str().expect("the PIN").to_string();
    assert!(
        (4..=6).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()),
        "{pin}"
    );
    (card["card_id"].as_u64().expect("card_id"), pan, pin)
}

#[track_caller]
fn check_pan(pan: &str) {
    assert_eq!(pan.len(), 16, "{pan}");
    assert!(pan.bytes().all(|b| b.is_ascii_digit()), "{pan}");
    assert!(pan.starts_with(BIN), "{pan}");
    assert!(luhn_valid(pan), "{pan} fails the Luhn check");
}

fn masked_pan(pan: &str) -> String {
    format!("{}******{}", &pan[..6], &pan[12..])
}

/// Sum of a card's pockets, in minor units.
async fn card_total(api: &Api, card_id: u64) -> i64 {
    let card = api
        .get("auditor", &format!("/api/v1/cards/{card_id}"))
        .await;
    card.expect(200)["pockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| minor(&p["balance"]))
        .sum()
}

/// Every card's pockets together, the program's giro balance, and what it was funded with.
async fn books(api: &Api) -> (i64, i64, i64) {
    let mut pockets = 0i64;
    for card in api.all("auditor", "/api/v1/cards").await {
        pockets += card_total(api, card["card_id"].as_u64().unwrap()).await;
    }
    let program = api
        .get("auditor", &format!("/api/v1/programs/{PROGRAM}"))
        .await;
    let giro = minor(&program.expect(200)["giro_balance"]);
    (pockets, giro, minor(&program.body["funded"]))
}

async fn status_of(api: &Api, ssn: &str) -> (String, Vec<String>) {
    let b = api
        .get("dinsos", &format!("/api/v1/beneficiaries/{ssn}"))
        .await;
    let b = b.expect(200);
    (
        b["status"].as_str().unwrap().to_string(),
        strs(&b["enrolments"]),
    )
}

#[tokio::test]
async fn lifecycle_of_a_thousand_people() {
    let api = Api::start("lifecycle").await;
    let file = make_file();

    // ------------------------------------------------------------------ import
    let report = api
        .post_csv("diskominfo", "/api/v1/beneficiaries/import", &file.csv)
        .await;
    let report = report.expect(200).clone();
    assert_eq!(report["rows"], 1000);
    assert_eq!(report["imported"], 960);
    assert!(report["batch_id"].is_u64(), "{}", report["batch_id"]);

    // Every person imported, with an SSN given in file order.
    let people = api.all("dinsos", "/api/v1/beneficiaries").await;
    assert_eq!(people.len(), 960);
    let by_nik: HashMap<String, &Value> = people
        .iter()
        .map(|b| (b["nik"].as_str().unwrap().to_string(), b))
        .collect();
    assert_eq!(by_nik.len(), 960, "one beneficiary per NIK");
    let mut ssn_of: HashMap<String, String> = HashMap::new();
    let mut previous = String::new();
    let possible_niks: HashSet<&str> = file.possible.iter().map(|p| p.1.as_str()).collect();
    for (line, p) in &file.imported {
        let b = by_nik
            .get(&p.nik)
            .unwrap_or_else(|| panic!("line {line}: {} not imported", p.nik));
        let ssn = b["ssn"].as_str().unwrap().to_string();
        assert!(
            ssn > previous,
            "SSNs follow the file: {ssn} after {previous}"
        );
        previous = ssn.clone();
        assert_eq!(b["kk"], p.kk.as_str());
        assert_eq!(b["name"], p.name.as_str());
        assert_eq!(b["birth_date"], p.birth_date.as_str());
        assert_eq!(b["sex"], if p.female { "P" } else { "L" });
        assert_eq!(b["address"], p.address.as_str());
        assert_eq!(b["kecamatan"], p.kecamatan.as_str());
        assert_eq!(b["kelurahan"], p.kelurahan.as_str());
        assert_eq!(b["desil"], p.desil);
        assert_eq!(b["status"], "imported");
        assert_eq!(b["enrolments"], json!([]));
        assert_eq!(b["import_batch"], report["batch_id"]);
        assert_eq!(
            b["possible_duplicate"],
            possible_niks.contains(p.nik.as_str()),
            "line {line}"
        );
        ssn_of.insert(p.nik.clone(), ssn);
    }

    // The report, row by row.
    let expected_duplicates: Vec<Value> = file
        .repeats
        .iter()
        .map(|(line, nik)| json!({"row": line, "nik": nik, "existing": ssn_of[nik]}))
        .collect();
    assert_eq!(report["duplicates"], json!(expected_duplicates));
    let expected_possible: Vec<Value> = file
        .possible
        .iter()
        .map(|(line, nik, original)| {
            json!({"row": line, "nik": nik, "ssn": ssn_of[nik], "matches": [ssn_of[original]]})
        })
        .collect();
    assert_eq!(report["possible_duplicates"], json!(expected_possible));
    let expected_rejected: Vec<Value> = file
        .rejected
        .iter()
        .map(|(line, reason)| json!({"row": line, "reason": reason}))
        .collect();
    assert_eq!(report["rejected"], json!(expected_rejected));

    // `q` finds a person by NIK, by SSN and by part of the name.
    let (_, first) = &file.imported[0];
    let found = api
        .get("dinsos", &format!("/api/v1/beneficiaries?q={}", first.nik))
        .await;
    assert_eq!(found.expect(200)["total"], 1);
    assert_eq!(found.body["items"][0]["ssn"], ssn_of[&first.nik].as_str());
    let found = api
        .get(
            "dinsos",
            &format!("/api/v1/beneficiaries?q={}", ssn_of[&first.nik]),
        )
        .await;
    assert_eq!(found.expect(200)["total"], 1);
    let palaran = api
        .get(
            "auditor",
            "/api/v1/beneficiaries?kecamatan=Palaran&page_size=1",
        )
        .await;
    let palaran_count = file
        .imported
        .iter()
        .filter(|(_, p)| p.kecamatan == "Palaran")
        .count();
    assert_eq!(palaran.expect(200)["total"], palaran_count);
    assert_eq!(palaran.body["page_size"], 1);
    assert_eq!(palaran.body["page"], 1);

    // ------------------------------------------------------------------ re-import
    let again = api
        .post_csv("diskominfo", "/api/v1/beneficiaries/import", &file.csv)
        .await;
    let again = again.expect(200);
    assert_eq!(again["rows"], 1000);
    assert_eq!(again["imported"], 0);
    assert_eq!(again["batch_id"], Value::Null);
    // Every known NIK is unchanged; only the rows repeating a NIK of the file are duplicates.
    assert_eq!(again["mode"], "partial");
    assert_eq!(again["unchanged"], 960);
    assert_eq!(again["updated"], json!([]));
    assert_eq!(again["absent"], json!([]));
    assert_eq!(again["duplicates"], json!(expected_duplicates));
    assert_eq!(again["possible_duplicates"], json!([]));
    assert_eq!(again["rejected"], json!(expected_rejected));
    assert_eq!(api.all("dinsos", "/api/v1/beneficiaries").await, people);

    // A file without the header the Portal Data SSN writes is malformed, not a 500.
    api.post_csv(
        "diskominfo",
        "/api/v1/beneficiaries/import",
        "nik,name\n6472010101800001,Budi\n",
    )
    .await
    .expect_error(400, "malformed");

    // ------------------------------------------------------------------ verify, validate
    let cohort: Vec<String> = file.imported[..60]
        .iter()
        .map(|(_, p)| ssn_of[&p.nik].clone())
        .collect();
    let note = "tidak ditemukan di alamat";
    for (i, ssn) in cohort.iter().enumerate() {
        let approved = i < 55;
        let answer = api
            .post(
                "dinsos",
                &format!("/api/v1/beneficiaries/{ssn}/verify"),
                json!({"approved": approved, "note": if approved { "" } else { note }}),
            )
            .await;
        let b = answer.expect(200);
        assert_eq!(b["status"], if approved { "verified" } else { "rejected" });
    }
    for (i, ssn) in cohort[..55].iter().enumerate() {
        let approved = i < 50;
        let answer = api
            .post(
                "dinsos",
                &format!("/api/v1/beneficiaries/{ssn}/validate"),
                json!({"approved": approved, "note": if approved { "" } else { note }}),
            )
            .await;
        assert_eq!(
            answer.expect(200)["status"],
            if approved { "validated" } else { "rejected" }
        );
    }
    let listed = api
        .get("auditor", "/api/v1/beneficiaries?status=validated")
        .await;
    assert_eq!(listed.expect(200)["total"], 50);
    let listed = api
        .get("auditor", "/api/v1/beneficiaries?status=rejected")
        .await;
    assert_eq!(listed.expect(200)["total"], 10);
    let listed = api
        .get("auditor", "/api/v1/beneficiaries?status=imported")
        .await;
    assert_eq!(listed.expect(200)["total"], 900);

    // Illegal transitions: 409, nothing changes.
    let imported_one = ssn_of[&file.imported[100].1.nik].clone();
    let message = api
        .post(
            "dinsos",
            &format!("/api/v1/beneficiaries/{imported_one}/validate"),
            json!({"approved": true}),
        )
        .await
        .expect_error(409, "conflict");
    assert!(message.contains(&imported_one), "{message}");
    assert_eq!(status_of(&api, &imported_one).await.0, "imported");
    api.post(
        "dinsos",
        &format!("/api/v1/beneficiaries/{}/verify", cohort[0]),
        json!({"approved": true}),
    )
    .await
    .expect_error(409, "conflict");
    assert_eq!(status_of(&api, &cohort[0]).await.0, "validated");
    api.post(
        "dinsos",
        "/api/v1/beneficiaries/SSN999999999/verify",
        json!({"approved": true}),
    )
    .await
    .expect_error(404, "not_found");
    api.post(
        "dinsos",
        &format!("/api/v1/beneficiaries/{imported_one}/verify"),
        json!({"approved": "yes"}),
    )
    .await
    .expect_error(400, "malformed");

    // ------------------------------------------------------------------ program and funding
    let program = json!({
        "code": PROGRAM, "name": "Bantuan Sembako Samarinda 2026", "budget_year": 2026,
        "benefit_amount": "300000.00", "allowed_categories": ["01", "02", "03", "04", "05"],
        "basket_required": false, "purchase_amount_max": "300000.00",
        "purchases_per_day_max": 3, "pocket_expires_at": "2026-12-31"
    });
    let created = api
        .post("dinsos", "/api/v1/programs", program.clone())
        .await;
    let created = created.expect(201);
    assert_eq!(created["code"], PROGRAM);
    assert_eq!(created["benefit_amount"], "300000.00");
    assert_eq!(created["giro_balance"], "0.00");
    api.post("dinsos", "/api/v1/programs", program)
        .await
        .expect_error(409, "conflict");
    let first_funding = json!({"amount": "5000000.00", "reference": "SP2D-2026-001"});
    let funded = api
        .post(
            "dinsos",
            &format!("/api/v1/programs/{PROGRAM}/funding"),
            first_funding.clone(),
        )
        .await;
    let funded = funded.expect(201).clone();
    assert_eq!(
        funded,
        json!({"reference": "SP2D-2026-001", "program_code": PROGRAM,
               "amount": "5000000.00", "giro_balance": "5000000.00"})
    );
    let repeated = api
        .post(
            "dinsos",
            &format!("/api/v1/programs/{PROGRAM}/funding"),
            first_funding,
        )
        .await;
    assert_eq!(*repeated.expect(200), funded);
    api.post(
        "dinsos",
        &format!("/api/v1/programs/{PROGRAM}/funding"),
        json!({"amount": "6000000.00", "reference": "SP2D-2026-001"}),
    )
    .await
    .expect_error(409, "conflict");
    let shown = api
        .get("auditor", &format!("/api/v1/programs/{PROGRAM}"))
        .await;
    assert_eq!(shown.expect(200)["giro_balance"], "5000000.00");
    assert_eq!(shown.body["funded"], "5000000.00");

    // ------------------------------------------------------------------ decrees
    let decree = |number: &str, program: &str, ssns: &[String]| {
        json!({"decree_number": number, "decree_date": "2026-11-20",
               "program_code": program, "ssns": ssns})
    };
    // One rejected SSN (and one never validated) refuses the whole decree.
    for outsider in [&cohort[57], &imported_one] {
        let mut ssns = cohort[..40].to_vec();
        ssns.insert(20, outsider.clone());
        let message = api
            .post(
                "walikota",
                "/api/v1/determinations",
                decree("100.3.3.2/1/HK-KS/XI/2026", PROGRAM, &ssns),
            )
            .await
            .expect_error(409, "conflict");
        assert!(message.contains(outsider.as_str()), "{message}");
        for ssn in &cohort[..40] {
            assert_eq!(
                status_of(&api, ssn).await,
                ("validated".to_string(), vec![])
            );
        }
    }
    let determined = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree("100.3.3.2/2/HK-KS/XI/2026", PROGRAM, &cohort[..40]),
        )
        .await;
    let determined = determined.expect(201).clone();
    assert_eq!(strs(&determined["ssns"]), cohort[..40].to_vec());
    assert_eq!(determined["revoked"], false);
    assert_eq!(determined["decree_date"], "2026-11-20");
    let determination_id = determined["id"].as_u64().unwrap();
    let shown = api
        .get(
            "auditor",
            &format!("/api/v1/determinations/{determination_id}"),
        )
        .await;
    assert_eq!(*shown.expect(200), determined);
    for ssn in &cohort[..40] {
        assert_eq!(
            status_of(&api, ssn).await,
            ("determined".to_string(), vec![PROGRAM.to_string()])
        );
    }
    // The same person twice for one program is refused; for another program it is fine.
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree("100.3.3.2/3/HK-KS/XI/2026", PROGRAM, &cohort[..1]),
    )
    .await
    .expect_error(409, "conflict");
    let mut other = json!({
        "code": OTHER_PROGRAM, "name": "Lansia 2026", "budget_year": 2026,
        "benefit_amount": "100000.00", "allowed_categories": ["01"],
        "basket_required": false, "purchase_amount_max": "100000.00",
        "purchases_per_day_max": 1, "pocket_expires_at": "2026-12-31"
    });
    api.post("dinsos", "/api/v1/programs", other.take())
        .await
        .expect(201);
    api.post(
        "walikota",
        "/api/v1/determinations",
        decree("100.3.3.2/4/HK-KS/XI/2026", OTHER_PROGRAM, &cohort[..1]),
    )
    .await
    .expect(201);
    assert_eq!(
        status_of(&api, &cohort[0]).await,
        (
            "determined".to_string(),
            vec![PROGRAM.to_string(), OTHER_PROGRAM.to_string()]
        )
    );

    // ------------------------------------------------------------------ cards
    let single = api
        .post(
            "diskominfo",
            "/api/v1/cards",
            json!({"ssn": cohort[0], "pin": "2468"}),
        )
        .await;
    let (first_card, first_pan, first_pin) = check_issued(single.expect(201), &cohort[0]);
    assert_eq!(first_pin, "2468");
    let message = api
        .post("diskominfo", "/api/v1/cards", json!({"ssn": cohort[0]}))
        .await
        .expect_error(409, "conflict");
    assert!(message.contains(&first_card.to_string()), "{message}");
    api.post("diskominfo", "/api/v1/cards", json!({"ssn": cohort[45]}))
        .await
        .expect_error(409, "conflict");
    api.post(
        "diskominfo",
        "/api/v1/cards",
        json!({"ssn": cohort[1], "pin": "12"}),
    )
    .await
    .expect_error(400, "malformed");

    let batch = api
        .post(
            "diskominfo",
            "/api/v1/cards/batch",
            json!({"program_code": PROGRAM}),
        )
        .await;
    batch.expect(201);
    assert!(
        batch.content_type.starts_with("text/csv"),
        "{}",
        batch.content_type
    );
    let lines: Vec<&str> = batch.text().lines().collect();
    assert_eq!(lines[0], "card_id,ssn,name,pan,expiry,pin");
    assert_eq!(lines.len(), 40, "a header and 39 cards");
    let name_of: HashMap<&str, &str> = file
        .imported
        .iter()
        .map(|(_, p)| (ssn_of[&p.nik].as_str(), p.name.as_str()))
        .collect();
    // (card id, ssn, pan) of every card, the single one first.
    let mut cards: Vec<(u64, String, String)> = vec![(first_card, cohort[0].clone(), first_pan)];
    for (line, ssn) in lines[1..].iter().zip(&cohort[1..40]) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 6, "{line}");
        assert_eq!(fields[1], ssn.as_str());
        assert_eq!(fields[2], name_of[ssn.as_str()]);
        check_pan(fields[3]);
        assert_eq!(fields[4], "3111");
        assert!(fields[5].len() == 6 && fields[5].bytes().all(|b| b.is_ascii_digit()));
        cards.push((
            fields[0].parse().unwrap(),
            ssn.clone(),
            fields[3].to_string(),
        ));
    }
    let pans: HashSet<&str> = cards.iter().map(|c| c.2.as_str()).collect();
    let ids: HashSet<u64> = cards.iter().map(|c| c.0).collect();
    assert_eq!((pans.len(), ids.len()), (40, 40), "PANs and ids are unique");
    let second_batch = api
        .post(
            "diskominfo",
            "/api/v1/cards/batch",
            json!({"program_code": PROGRAM}),
        )
        .await;
    assert_eq!(
        second_batch.expect(201).as_str().unwrap().lines().count(),
        1
    );
    // A card's view masks the PAN and never shows a PIN.
    for (card_id, ssn, pan) in &cards {
        let view = api.get("dinsos", &format!("/api/v1/cards/{card_id}")).await;
        let view = view.expect(200);
        assert_eq!(view["ssn"], ssn.as_str());
        assert_eq!(view["pan"], masked_pan(pan));
        assert_eq!(view["status"], "issued");
        assert!(view.get("pin").is_none());
        assert!(!view.to_string().contains(pan.as_str()));
    }
    let listed = api.all("bank", "/api/v1/cards").await;
    assert_eq!(listed.len(), 40);

    // ------------------------------------------------------------------ disbursement
    let period = json!({"program_code": PROGRAM, "period": "2026-11"});
    let message = api
        .post("dinsos", "/api/v1/disbursements", period.clone())
        .await
        .expect_error(422, "refused");
    assert!(message.contains("giro"), "{message}");
    for (card_id, ..) in &cards {
        assert_eq!(card_total(&api, *card_id).await, 0);
    }
    api.get(
        "auditor",
        &format!("/api/v1/disbursements/{PROGRAM}.2026-11"),
    )
    .await
    .expect_error(404, "not_found");
    api.post(
        "dinsos",
        &format!("/api/v1/programs/{PROGRAM}/funding"),
        json!({"amount": "10000000.00", "reference": "SP2D-2026-002"}),
    )
    .await
    .expect(201);
    let disbursed = api
        .post("dinsos", "/api/v1/disbursements", period.clone())
        .await;
    let disbursed = disbursed.expect(201).clone();
    assert_eq!(disbursed["id"], format!("{PROGRAM}.2026-11"));
    assert_eq!(disbursed["cards"], 40);
    assert_eq!(disbursed["total"], rupiah(40 * BENEFIT_MINOR));
    assert_eq!(disbursed["benefit_amount"], "300000.00");
    assert_eq!(disbursed["at"], NOW_WITA);
    let repeated = api.post("dinsos", "/api/v1/disbursements", period).await;
    assert_eq!(*repeated.expect(200), disbursed);
    let shown = api
        .get(
            "auditor",
            &format!("/api/v1/disbursements/{PROGRAM}.2026-11"),
        )
        .await;
    assert_eq!(*shown.expect(200), disbursed);
    api.post(
        "dinsos",
        "/api/v1/disbursements",
        json!({"program_code": PROGRAM, "period": "2026-13"}),
    )
    .await
    .expect_error(400, "malformed");
    let shown = api
        .get("auditor", &format!("/api/v1/programs/{PROGRAM}"))
        .await;
    assert_eq!(shown.expect(200)["giro_balance"], "3000000.00");
    assert_eq!(shown.body["funded"], "15000000.00");
    for (card_id, ..) in &cards {
        let view = api
            .get("auditor", &format!("/api/v1/cards/{card_id}"))
            .await;
        assert_eq!(
            view.expect(200)["pockets"],
            json!([{"program_code": PROGRAM, "balance": "300000.00", "expires_at": "2026-12-31"}])
        );
        let statement = api
            .get("auditor", &format!("/api/v1/cards/{card_id}/statement"))
            .await;
        let statement = statement.expect(200);
        assert_eq!(statement["total"], 1);
        let line = &statement["items"][0];
        assert_eq!(line["kind"], "disbursement");
        assert_eq!(line["amount"], "300000.00");
        assert_eq!(line["balance_after"], "300000.00");
        assert_eq!(line["period"], "2026-11");
        assert_eq!(line["at"], NOW_WITA);
    }

    // ------------------------------------------------------------------ delivery, block
    for (card_id, ..) in &cards {
        let delivered = api
            .post(
                "diskominfo",
                &format!("/api/v1/cards/{card_id}/deliver"),
                json!({}),
            )
            .await;
        assert_eq!(delivered.expect(200)["status"], "active");
    }
    api.post(
        "diskominfo",
        &format!("/api/v1/cards/{first_card}/deliver"),
        json!({}),
    )
    .await
    .expect_error(409, "conflict");
    let blocked_card = cards[1].0;
    let uri = |card: u64, action: &str| format!("/api/v1/cards/{card}/{action}");
    let blocked = api
        .post(
            "diskominfo",
            &uri(blocked_card, "block"),
            json!({"reason": "dipegang pendamping"}),
        )
        .await;
    assert_eq!(blocked.expect(200)["status"], "blocked");
    api.post(
        "diskominfo",
        &uri(blocked_card, "block"),
        json!({"reason": "lagi"}),
    )
    .await
    .expect_error(409, "conflict");
    let unblocked = api
        .post("diskominfo", &uri(blocked_card, "unblock"), json!({}))
        .await;
    assert_eq!(unblocked.expect(200)["status"], "active");
    api.post("diskominfo", &uri(blocked_card, "unblock"), json!({}))
        .await
        .expect_error(409, "conflict");
    api.post(
        "diskominfo",
        &uri(blocked_card, "report"),
        json!({"kind": "misplaced"}),
    )
    .await
    .expect_error(400, "malformed");

    // ------------------------------------------------------------------ loss and replacement
    let (lost_card, lost_ssn, lost_pan) = cards[2].clone();
    let reported = api
        .post(
            "diskominfo",
            &uri(lost_card, "report"),
            json!({"kind": "lost"}),
        )
        .await;
    assert_eq!(reported.expect(200)["status"], "lost");
    let replaced = api
        .post("diskominfo", &uri(lost_card, "replace"), json!({}))
        .await;
    let replaced = replaced.expect(201).clone();
    let (new_card, new_pan, _) = check_issued(&replaced, &lost_ssn);
    assert_ne!(new_pan, lost_pan);
    assert_eq!(replaced["replaces"], lost_card);
    assert_eq!(
        replaced["moved"],
        json!([{"program_code": PROGRAM, "amount": "300000.00"}])
    );
    let old = api
        .get("auditor", &format!("/api/v1/cards/{lost_card}"))
        .await;
    let old = old.expect(200);
    assert_eq!(old["status"], "lost", "a lost card stays lost");
    assert_eq!(old["replaced_by"], new_card);
    assert_eq!(card_total(&api, lost_card).await, 0);
    assert_eq!(card_total(&api, new_card).await, BENEFIT_MINOR);
    let statement = api
        .get("auditor", &format!("/api/v1/cards/{lost_card}/statement"))
        .await;
    let kinds: Vec<(String, String, String)> = statement.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().into(),
                l["amount"].as_str().unwrap().into(),
                l["balance_after"].as_str().unwrap().into(),
            )
        })
        .collect();
    let kinds: Vec<(&str, &str, &str)> = kinds
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("disbursement", "300000.00", "300000.00"),
            ("replacement_out", "-300000.00", "0.00"),
        ]
    );
    let statement = api
        .get("auditor", &format!("/api/v1/cards/{new_card}/statement"))
        .await;
    let statement = statement.expect(200);
    assert_eq!(statement["total"], 1);
    assert_eq!(statement["items"][0]["kind"], "replacement_in");
    assert_eq!(statement["items"][0]["amount"], "300000.00");
    assert_eq!(statement["items"][0]["balance_after"], "300000.00");
    api.post("diskominfo", &uri(lost_card, "replace"), json!({}))
        .await
        .expect_error(409, "conflict");
    api.post(
        "diskominfo",
        &uri(lost_card, "block"),
        json!({"reason": "x"}),
    )
    .await
    .expect_error(409, "conflict");
    // The holder has a live card again: no third one.
    api.post("diskominfo", "/api/v1/cards", json!({"ssn": lost_ssn}))
        .await
        .expect_error(409, "conflict");
    // A worn card replaced without a report says `replaced`.
    let (worn_card, worn_ssn, _) = cards[3].clone();
    let worn = api
        .post(
            "diskominfo",
            &uri(worn_card, "replace"),
            json!({"pin": "9753"}),
        )
        .await;
    let (worn_new, _, worn_pin) = check_issued(worn.expect(201), &worn_ssn);
    assert_eq!(worn_pin, "9753");
    let old = api
        .get("auditor", &format!("/api/v1/cards/{worn_card}"))
        .await;
    assert_eq!(old.expect(200)["status"], "replaced");
    assert_eq!(card_total(&api, worn_new).await, BENEFIT_MINOR);

    // The journal holds both moves; `card_id` filters the transaction list.
    let touching = api
        .all("bank", &format!("/api/v1/transactions?card_id={lost_card}"))
        .await;
    let kinds: Vec<&str> = touching
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["disbursement", "replacement"]);
    assert_eq!(touching[0]["amount"], "300000.00");
    assert_eq!(touching[0]["card_id"], lost_card);
    assert_eq!(touching[0]["pan"], masked_pan(&lost_pan));
    assert_eq!(touching[1]["amount"], "300000.00");
    assert_eq!(
        touching[1]["reference"],
        format!("card {lost_card} to card {new_card}")
    );
    let other_card = cards[10].0;
    let touching = api
        .all(
            "bank",
            &format!("/api/v1/transactions?card_id={other_card}"),
        )
        .await;
    assert_eq!(touching.len(), 1);
    assert_eq!(touching[0]["kind"], "disbursement");
    assert_eq!(touching[0]["card_id"], other_card);
    let everything = api.all("auditor", "/api/v1/transactions").await;
    let kinds: Vec<&str> = everything
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "funding",
            "funding",
            "disbursement",
            "replacement",
            "replacement"
        ]
    );
    assert_eq!(everything[2]["cards"], 40);
    assert_eq!(everything[2]["amount"], rupiah(40 * BENEFIT_MINOR));
    for t in &everything {
        if let Some(pan) = t.get("pan").and_then(Value::as_str) {
            assert!(pan.contains("******"), "{pan}");
        }
    }

    // ------------------------------------------------------------------ PIN reset
    let reset = api
        .post(
            "diskominfo",
            &uri(new_card, "pin-reset"),
            json!({"pin": "1357"}),
        )
        .await;
    assert_eq!(
        *reset.expect(200),
        json!({"card_id": new_card, "pin": "1357"})
    );
    let reset = api
        .post("diskominfo", &uri(new_card, "pin-reset"), json!({}))
        .await;
    let pin = reset.expect(200)["pin"].as_str().unwrap().to_string();
    assert!(pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()));
    api.post("diskominfo", &uri(lost_card, "pin-reset"), json!({}))
        .await
        .expect_error(409, "conflict");
    api.post(
        "diskominfo",
        &uri(new_card, "pin-reset"),
        json!({"pin": "12ab"}),
    )
    .await
    .expect_error(400, "malformed");
    api.post("diskominfo", &uri(999_999, "pin-reset"), json!({}))
        .await
        .expect_error(404, "not_found");

    // ------------------------------------------------------------------ the books
    let (pockets, giro, funded) = books(&api).await;
    assert_eq!(funded, 1_500_000_000);
    assert_eq!(pockets, 40 * BENEFIT_MINOR);
    assert_eq!(pockets + giro, funded, "pockets + giro = funded");

    // ------------------------------------------------------------------ revocation
    let late = api
        .post(
            "walikota",
            "/api/v1/determinations",
            decree("100.3.3.2/5/HK-KS/XI/2026", PROGRAM, &cohort[40..50]),
        )
        .await;
    let late_id = late.expect(201)["id"].as_u64().unwrap();
    assert_ne!(late_id, determination_id);
    let revoked = api
        .post(
            "walikota",
            &format!("/api/v1/determinations/{late_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.expect(200)["revoked"], true);
    for ssn in &cohort[40..50] {
        assert_eq!(status_of(&api, ssn).await, ("revoked".to_string(), vec![]));
    }
    api.post(
        "walikota",
        &format!("/api/v1/determinations/{late_id}/revoke"),
        json!({}),
    )
    .await
    .expect_error(409, "conflict");
    api.post("diskominfo", "/api/v1/cards", json!({"ssn": cohort[40]}))
        .await
        .expect_error(409, "conflict");
    let shown = api
        .get("auditor", &format!("/api/v1/determinations/{late_id}"))
        .await;
    assert_eq!(shown.expect(200)["revoked"], true);
    api.get("auditor", "/api/v1/determinations/424242")
        .await
        .expect_error(404, "not_found");

    // One person revoked by decree (deceased): the pocket's money goes back to giro at once,
    // the card's statement shows it, and the books still add up.
    let cards = api.all("auditor", "/api/v1/cards").await;
    let card = cards
        .iter()
        .find(|c| c["status"] == "active")
        .expect("an active card");
    let (card_id, ssn) = (
        card["card_id"].as_u64().unwrap(),
        card["ssn"].as_str().unwrap(),
    );
    let pocket = |card: &Value| -> i64 {
        card["pockets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["program_code"] == PROGRAM)
            .map(|p| minor(&p["balance"]))
            .sum()
    };
    let before = api
        .get("auditor", &format!("/api/v1/cards/{card_id}"))
        .await;
    let held = pocket(before.expect(200));
    let others = card_total(&api, card_id).await - held;
    assert!(held > 0);
    let revocation = json!({
        "program_code": PROGRAM, "decree_number": "188.45/77/HK-KS/2026", "reason": "meninggal dunia"
    });
    let path = format!("/api/v1/beneficiaries/{ssn}/revoke");
    api.post("dinsos", &path, revocation.clone())
        .await
        .expect_error(403, "forbidden");
    let revoked = api.post("walikota", &path, revocation.clone()).await;
    let revoked = revoked.expect(200).clone();
    assert_eq!(minor(&revoked["returned"]), held, "{revoked}");
    assert_eq!(revoked["cards"][0]["card_id"], card_id, "{revoked}");
    // Only this program's pocket: another program's stays.
    assert_eq!(card_total(&api, card_id).await, others);
    let (status, enrolments) = status_of(&api, ssn).await;
    assert_eq!(revoked["status"], status.as_str(), "{revoked}");
    assert!(!enrolments.iter().any(|p| p == PROGRAM), "{enrolments:?}");
    let statement = api
        .get("auditor", &format!("/api/v1/cards/{card_id}/statement"))
        .await;
    let statement = statement.expect(200).to_string();
    assert!(statement.contains("revocation"), "{statement}");
    // A repeat answers the same and moves nothing; another decree for a person no longer
    // enrolled is a conflict.
    let again = api.post("walikota", &path, revocation.clone()).await;
    assert_eq!(again.expect(200), &revoked);
    let mut other = revocation.clone();
    other["decree_number"] = json!("188.45/78/HK-KS/2026");
    api.post("walikota", &path, other)
        .await
        .expect_error(409, "conflict");
    let (pockets, giro, _) = books(&api).await;
    assert_eq!(pockets, 40 * BENEFIT_MINOR - held);
    assert_eq!(
        pockets + giro,
        funded,
        "pockets + giro = funded after a revocation"
    );

    // ------------------------------------------------------------------ masking
    // Roles without personal data see nothing a NIK could be rebuilt from (UU 27/2022).
    let (_, holder) = &file.imported[0];
    let region = |number: &str| format!("{}**********", &number[..6]);
    let initials = |name: &str| {
        name.split_whitespace()
            .map(|w| format!("{}.", w.chars().next().unwrap()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for role in crate::ROLES {
        let seen = api
            .get(role, &format!("/api/v1/beneficiaries/{}", cohort[0]))
            .await;
        let seen = seen.expect(200);
        let full = matches!(role, "admin" | "diskominfo" | "dinsos" | "walikota");
        let expect = |text: &str, masked: String| if full { text.to_string() } else { masked };
        assert_eq!(
            seen["nik"],
            expect(&holder.nik, region(&holder.nik)),
            "{role}"
        );
        assert_eq!(seen["kk"], expect(&holder.kk, region(&holder.kk)), "{role}");
        assert_eq!(
            seen["name"],
            expect(&holder.name, initials(&holder.name)),
            "{role}"
        );
        for personal in ["birth_date", "sex", "address"] {
            assert_eq!(seen[personal].is_null(), !full, "{role} {personal}: {seen}");
        }
        let page = api.get(role, "/api/v1/beneficiaries?page_size=5").await;
        let text = page.expect(200).to_string();
        assert_eq!(text.contains(&holder.nik), full, "{role}");
        assert_eq!(text.contains(&holder.name), full, "{role}");
        assert_eq!(
            text.contains(&holder.nik[6..12]),
            full,
            "{role}: birth date digits"
        );
        // Their search finds one person by SSN number or card id, never by name or NIK.
        let by_name = api
            .get(
                role,
                &format!(
                    "/api/v1/beneficiaries?q={}",
                    holder.name.split(' ').next().unwrap()
                ),
            )
            .await;
        assert_eq!(by_name.expect(200)["total"] == 0, !full, "{role} by name");
        let by_ssn = api
            .get(role, &format!("/api/v1/beneficiaries?q={}", cohort[0]))
            .await;
        assert_eq!(by_ssn.expect(200)["total"], 1, "{role} by SSN");
    }
    let card = api.all("auditor", "/api/v1/cards").await[0].clone();
    let by_card = api
        .get(
            "bank",
            &format!("/api/v1/beneficiaries?q={}", card["card_id"]),
        )
        .await;
    assert_eq!(
        by_card.expect(200)["items"][0]["ssn"],
        card["ssn"],
        "bank by card id"
    );

    // ------------------------------------------------------------------ the audit log
    let audit = api.all("auditor", "/api/v1/audit").await;
    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &audit {
        assert_eq!(line["at"], NOW_WITA);
        let actor = line["actor"].as_str().unwrap();
        let role = line["role"].as_str().unwrap();
        assert_eq!(
            actor,
            if role == "admin" {
                "bootstrap".to_string()
            } else {
                format!("{role}-operator")
            }
        );
        assert!(!line["target"].as_str().unwrap().is_empty());
        outcomes
            .entry(format!("{} by {role}", line["action"].as_str().unwrap()))
            .or_default()
            .push(line["outcome"].as_str().unwrap().to_string());
    }
    let seqs: Vec<u64> = audit.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let count = |action: &str, outcome: &str| {
        outcomes
            .get(action)
            .map_or(0, |o| o.iter().filter(|x| x.as_str() == outcome).count())
    };
    let rejected_note = format!("rejected: {note}");
    assert_eq!(outcomes["tokens.create by admin"].len(), 5);
    assert_eq!(
        outcomes["beneficiaries.import by diskominfo"],
        [
            "ok: 1000 rows, 960 imported, 0 updated, 0 unchanged, 20 duplicates, 10 possible \
             duplicates, 20 rejected",
            "ok: 1000 rows, 0 imported, 0 updated, 960 unchanged, 20 duplicates, 0 possible \
             duplicates, 20 rejected",
            "malformed",
        ]
    );
    assert_eq!(count("beneficiaries.verify by dinsos", "approved"), 55);
    assert_eq!(count("beneficiaries.verify by dinsos", &rejected_note), 5);
    assert_eq!(count("beneficiaries.verify by dinsos", "conflict"), 1);
    assert_eq!(outcomes["beneficiaries.verify by dinsos"].len(), 61);
    assert_eq!(count("beneficiaries.validate by dinsos", "approved"), 50);
    assert_eq!(count("beneficiaries.validate by dinsos", &rejected_note), 5);
    assert_eq!(count("beneficiaries.validate by dinsos", "conflict"), 1);
    assert_eq!(outcomes["beneficiaries.validate by dinsos"].len(), 56);
    assert_eq!(
        outcomes["programs.create by dinsos"],
        ["ok", "conflict", "ok"]
    );
    assert_eq!(
        outcomes["programs.fund by dinsos"],
        ["ok", "ok", "conflict", "ok"]
    );
    assert_eq!(
        outcomes["determinations.create by walikota"],
        ["conflict", "conflict", "ok", "conflict", "ok", "ok"]
    );
    assert_eq!(
        outcomes["determinations.revoke by walikota"],
        ["ok", "conflict"]
    );
    assert_eq!(
        outcomes["beneficiaries.revoke by walikota"],
        ["ok", "conflict"]
    );
    // The decree's (no cards), the person's, and its repeat.
    assert_eq!(
        outcomes["revocations.return by walikota"],
        ["ok", "ok", "ok"]
    );
    assert_eq!(
        outcomes["cards.issue by diskominfo"],
        ["ok", "conflict", "conflict", "conflict", "conflict"]
    );
    assert_eq!(outcomes["cards.batch by diskominfo"], ["ok"]);
    assert_eq!(
        outcomes["disbursements.create by dinsos"],
        ["refused", "ok", "ok"]
    );
    assert_eq!(count("cards.deliver by diskominfo", "ok"), 40);
    assert_eq!(count("cards.deliver by diskominfo", "conflict"), 1);
    assert_eq!(
        outcomes["cards.block by diskominfo"],
        ["blocked: dipegang pendamping", "conflict", "conflict"]
    );
    assert_eq!(outcomes["cards.unblock by diskominfo"], ["ok", "conflict"]);
    assert_eq!(outcomes["cards.report by diskominfo"], ["lost"]);
    assert_eq!(
        outcomes["cards.replace by diskominfo"],
        ["ok", "conflict", "ok"]
    );
    assert_eq!(
        outcomes["cards.replace.pockets by diskominfo"],
        ["ok", "ok"]
    );
    assert_eq!(
        outcomes["cards.pin_reset by diskominfo"],
        ["ok", "ok", "conflict"]
    );
    // Reads leave no line.
    assert!(outcomes.keys().all(|k| !k.starts_with("GET")));
    let by_actor = api
        .all("auditor", "/api/v1/audit?actor=walikota-operator")
        .await;
    // Its changes, the revocations' lines, and its four reads of personal data in full.
    assert_eq!(by_actor.len(), 8 + 5 + 4);
    let reads: Vec<&Value> = by_actor
        .iter()
        .filter(|l| l["action"] == "beneficiaries.read")
        .collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(
        (reads[0]["target"].clone(), reads[0]["outcome"].clone()),
        (json!(cohort[0]), json!("read"))
    );
    // Roles without personal data leave no read lines: they see none.
    assert!(
        audit
            .iter()
            .all(|l| !(l["role"] == "bank" || l["role"] == "auditor")
                || !l["action"].as_str().unwrap().starts_with("beneficiaries."))
    );
    assert!(by_actor.iter().all(|l| l["role"] == "walikota"));
    let today = api
        .all("auditor", "/api/v1/audit?from=2026-11-29&to=2026-11-29")
        .await;
    // Unfiltered pages are read where they are, filtered ones by scanning: the same lines.
    assert_eq!(today, audit);
    let mut paged = Vec::new();
    for page in 1.. {
        let body = api
            .get("auditor", &format!("/api/v1/audit?page={page}&page_size=7"))
            .await;
        let body = body.expect(200);
        assert_eq!(body["total"].as_u64(), Some(audit.len() as u64));
        let items = body["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        paged.extend(items.iter().cloned());
    }
    assert_eq!(paged, audit);
    let yesterday = api
        .all("auditor", "/api/v1/audit?from=2026-11-28&to=2026-11-28")
        .await;
    assert!(yesterday.is_empty());
}
