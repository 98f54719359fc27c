//! The admin API's integration tests: the real router in-process over a real embedded ledger
//! (journal, redb registry, memory balances) and a real soft HSM, driven with real HTTP
//! requests through `tower::ServiceExt::oneshot`. Nothing is mocked; the clock is fixed so
//! every answer is deterministic.
//!
//! - `roles`: every endpoint of the served OpenAPI document against every role and without a
//!   token.
//! - `lifecycle`: a file of 1,000 people from import to cards, money, replacement and audit.

mod alerts;
mod console;
mod dtsen;
mod lifecycle;
mod reports;
mod roles;
mod settlement;
mod statements;
mod targeting;
mod terminals;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use ssn_admin_api::{AdminConfig, AdminState};
use ssn_hsm::{KeyUsage, MasterKey, SoftHsm};
use ssn_ledger::{Ledger, LedgerConfig};
use tower::ServiceExt;

/// The fixed clock: 2026-11-29 02:00:00 UTC, 10:00 WITA.
pub const NOW_UNIX_SECONDS: i64 = 1_795_917_600;
/// The bootstrap admin's secret.
pub const ADMIN_SECRET: &str = "admin-secret";
/// The roles of the spec, `admin` first.
pub const ROLES: [&str; 6] = [
    "admin",
    "diskominfo",
    "dinsos",
    "walikota",
    "bank",
    "auditor",
];
/// Largest answer body read.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "ssn-admin-api-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An answer: status, the `Content-Type`, the body as JSON (or a JSON string of its text when
/// it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// The body's text when it was not JSON (a CSV file).
    pub fn text(&self) -> &str {
        self.body.as_str().unwrap_or_default()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        &self.body
    }

    /// Asserts an error answer: the status and the spec's body with exactly `error` and
    /// `message`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        self.expect(status);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let object = self.body.as_object().expect("an error body is an object");
        assert_eq!(object.len(), 2, "{}", self.body);
        assert_eq!(object["error"], code, "{}", self.body);
        let message = object["message"].as_str().expect("message is text");
        assert!(!message.is_empty());
        message.to_string()
    }
}

/// The service under test and what it runs on. Fields drop in order: the router and ledger
/// before their directory.
#[derive(Debug)]
pub struct Api {
    pub router: Router,
    pub ledger: Arc<Ledger>,
    /// Secrets of one token per role, by role name (`admin` is the bootstrap token).
    pub tokens: std::collections::HashMap<&'static str, String>,
    /// The API's clock (UTC seconds): [`NOW_UNIX_SECONDS`] until a test moves it.
    pub clock: Arc<std::sync::atomic::AtomicI64>,
    _dir: TempDir,
}

impl Api {
    /// A fresh ledger, HSM and router, the bootstrap admin and one token per role (created
    /// through `POST /tokens`).
    pub async fn start(label: &str) -> Api {
        let dir = TempDir::new(label);
        let ledger = Arc::new(
            Ledger::open(LedgerConfig::embedded(dir.0.clone()))
                .await
                .expect("open the ledger"),
        );
        let hsm = Arc::new(SoftHsm::new(MasterKey::generate().expect("a master key")));
        let pvk = hsm.generate_key(KeyUsage::Pvk).expect("a PVK");
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(NOW_UNIX_SECONDS));
        let state = AdminState {
            clock: {
                let clock = Arc::clone(&clock);
                Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst))
            },
            ..AdminState::new(ledger.clone(), hsm, pvk, AdminConfig::default())
        };
        assert_eq!(
            ssn_admin_api::bootstrap(&ledger, Some(ADMIN_SECRET))
                .await
                .expect("bootstrap"),
            ssn_admin_api::Bootstrap::FromEnvironment
        );
        let mut api = Api {
            router: ssn_admin_api::router(state),
            ledger,
            tokens: Default::default(),
            clock,
            _dir: dir,
        };
        api.tokens.insert("admin", ADMIN_SECRET.to_string());
        for role in &ROLES[1..] {
            let answer = api
                .post(
                    "admin",
                    "/api/v1/tokens",
                    json!({"name": format!("{role}-operator"), "role": role}),
                )
                .await;
            let body = answer.expect(201);
            assert_eq!(body["name"], format!("{role}-operator"));
            assert_eq!(body["role"], *role);
            let secret = body["token"].as_str().expect("the secret").to_string();
            api.tokens.insert(role, secret);
        }
        api
    }

    /// Sends a request with the role's token (or none), a body and its content type.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        role: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let authorization = role.map(|role| format!("Bearer {}", self.tokens[role]));
        self.send_with(method, uri, authorization.as_deref(), body)
            .await
    }

    /// Sends a request with this `Authorization` header (or none).
    pub async fn send_with(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = match body {
            Some((content_type, bytes)) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => request.body(Body::empty()),
        }
        .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), RESPONSE_BYTES_MAX)
            .await
            .expect("the body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// Moves the API's clock `seconds` on.
    pub fn advance_clock(&self, seconds: i64) {
        self.clock
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn get(&self, role: &str, uri: &str) -> Answer {
        self.send("GET", uri, Some(role), None).await
    }

    pub async fn post(&self, role: &str, uri: &str, body: Value) -> Answer {
        self.send(
            "POST",
            uri,
            Some(role),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    pub async fn post_csv(&self, role: &str, uri: &str, csv: &str) -> Answer {
        self.send(
            "POST",
            uri,
            Some(role),
            Some(("text/csv", csv.as_bytes().to_vec())),
        )
        .await
    }

    /// Every item of a list endpoint, page by page.
    pub async fn all(&self, role: &str, uri: &str) -> Vec<Value> {
        let separator = if uri.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1.. {
            let answer = self
                .get(role, &format!("{uri}{separator}page={page}&page_size=1000"))
                .await;
            let body = answer.expect(200);
            let total = body["total"].as_u64().expect("total");
            items.extend(body["items"].as_array().expect("items").iter().cloned());
            if items.len() as u64 >= total || body["items"].as_array().unwrap().is_empty() {
                assert_eq!(items.len() as u64, total, "{uri}");
                break;
            }
        }
        items
    }
}

/// A Luhn check written here, not borrowed from the codec under test.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Rupiah text from minor units: `"300000.00"`.
pub fn rupiah(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Minor units from rupiah text.
pub fn minor(text: &Value) -> i64 {
    let text = text.as_str().unwrap_or_else(|| panic!("an amount: {text}"));
    let (whole, fraction) = text.split_once('.').expect("two decimals");
    assert_eq!(fraction.len(), 2, "{text}");
    let whole: i64 = whole.parse().expect("digits");
    let sign = if text.starts_with('-') { -1 } else { 1 };
    whole * 100 + sign * fraction.parse::<i64>().expect("digits")
}

#[test]
fn luhn_and_money_helpers() {
    assert!(luhn_valid("4111111111111111"));
    assert!(!luhn_valid("4111111111111112"));
    assert_eq!(rupiah(30_000_000), "300000.00");
    assert_eq!(minor(&json!("300000.05")), 30_000_005);
    assert_eq!(minor(&json!("-300000.05")), -30_000_005);
}

/// Registry ops for an E-Warong `merchant` (DE42) with one terminal `terminal` (keys that
/// are never used: these tests authorize through the ledger, not the host).
pub fn shop(merchant: &str, terminal: &str) -> Vec<ssn_ledger::RegistryOp> {
    use ssn_ledger::*;
    let key = EncryptedKey {
        ciphertext: vec![0; 8],
        kcv: "000000".into(),
    };
    vec![
        RegistryOp::Insert(RegistryRecord::Merchant(Merchant {
            merchant_id: MerchantId::new(merchant).unwrap(),
            name: format!("Warung {merchant}"),
            kind: MerchantKind::Kube,
            kecamatan: "Palaran".into(),
            kelurahan: "Rawa Makmur".into(),
            settlement_account: format!("ACC{}", &merchant[13..]),
            active: true,
            appointed_on: None,
            changes: Vec::new(),
        })),
        RegistryOp::Insert(RegistryRecord::Terminal(Terminal {
            terminal_id: TerminalId::new(terminal).unwrap(),
            merchant_id: MerchantId::new(merchant).unwrap(),
            tmk: key.clone(),
            tpk: key,
            active: true,
            tak: None,
        })),
    ]
}

/// Registry ops for person `n` (`SSN9000000nn`), determined for `program`, with active card
/// `card`.
pub fn carded_person(
    n: u64,
    program: &ssn_ledger::ProgramCode,
    card: u64,
) -> Vec<ssn_ledger::RegistryOp> {
    use ssn_ledger::*;
    let ssn = format!("SSN9000000{n:02}");
    vec![
        RegistryOp::Insert(RegistryRecord::Beneficiary(Beneficiary {
            ssn: ssn.clone(),
            nik: Nik(format!("64720141018000{n:02}")),
            kk: Kk(format!("64720100000000{n:02}")),
            name: format!("Penerima {n}"),
            birth_date: Day::parse_iso("1980-01-01").unwrap(),
            sex: Sex::Female,
            address: "Jl. Pahlawan".into(),
            kecamatan: "Palaran".into(),
            kelurahan: "Rawa Makmur".into(),
            desil: 1,
            status: BeneficiaryStatus::Determined,
            enrolments: vec![program.clone()],
            possible_duplicate: false,
            import_batch: 1,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        })),
        RegistryOp::Insert(RegistryRecord::Card(Card {
            card_id: CardId(card),
            ssn,
            pan: Pan(format!("60487200000{card:05}")),
            expiry: "3112".into(),
            status: CardStatus::Active,
            pvv: Pvv("1234".into()),
            wrong_pin_count: 0,
            replaced_by: None,
            issued_on: None,
            delivered_on: None,
            changes: Vec::new(),
        })),
    ]
}

/// An approved purchase through the ledger (the switch's checks are the switch tests'):
/// `rupiah` on `card` at E-Warong `merchant`'s `terminal`, accepted at `at`. Its request.
pub async fn buy(
    api: &Api,
    (card, stan): (ssn_ledger::CardId, u32),
    (merchant, terminal): (&str, &str),
    rupiah: i64,
    at: i64,
) -> ssn_ledger::PurchaseRequest {
    use ssn_ledger::*;
    let (_, month, day) = Day(i32::try_from(at.div_euclid(86_400)).unwrap()).ymd();
    let seconds = at.rem_euclid(86_400);
    let transmitted = format!(
        "{month:02}{day:02}{:02}{:02}{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    );
    let request = PurchaseRequest {
        key: PurchaseKey {
            terminal: TerminalId::new(terminal).unwrap(),
            stan: Stan::new(format!("{stan:06}")).unwrap(),
            transmitted: TransmissionTime::new(transmitted).unwrap(),
        },
        fingerprint: Fingerprint::of(&(card, stan, rupiah)),
        card,
        merchant: MerchantId::new(merchant).unwrap(),
        amount: Money::from_minor(rupiah * 100),
        basket: None,
        rrn: Rrn::new(format!("{stan:012}")).unwrap(),
        authorization_id: AuthorizationId::new(format!("{stan:06}")).unwrap(),
        at_unix_seconds: at,
        enrolments: None,
    };
    let answer = api
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();
    assert_eq!(answer.response.code, ResponseCode::APPROVED, "stan {stan}");
    request
}

/// A program of food category `01` only, without basket, benefit `benefit_rupiah`, pockets
/// expiring on `expires` (ISO).
pub fn program(code: &str, benefit_rupiah: i64, expires: &str) -> ssn_ledger::Program {
    use ssn_ledger::*;
    Program {
        code: ProgramCode::new(code).unwrap(),
        name: format!("Program {code}"),
        budget_year: 2026,
        benefit_amount: Money::from_minor(benefit_rupiah * 100),
        allowed_categories: vec!["01".into()],
        basket_required: false,
        purchase_amount_max: Money::from_minor(benefit_rupiah * 100),
        purchases_per_day_max: 100,
        pocket_expires_at: Day::parse_iso(expires).unwrap(),
        beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
        desil_max: None,
    }
}
