//! A small world to test in: a ledger in a fresh data directory, with helpers to define
//! programs, enrol beneficiaries with cards, fund and disburse, and build requests.

use ssn_ledger::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the Redis tests find their server.
pub const REDIS_URL_VAR: &str = "SSN_TEST_REDIS_URL";
/// Where the Scylla tests find their CQL node (`host:port`, comma-separated).
pub const CASSANDRA_NODES_VAR: &str = "SSN_TEST_CASSANDRA_NODES";

/// The store backends every contract test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Journal file, redb registry, balances in memory.
    Embedded,
    /// Journal file, redb registry, balances in Redis.
    Redis,
    /// Journal and registry in Scylla (Cassandra in tests), balances in Redis: no data
    /// directory at all.
    Scylla,
}

pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| {
        panic!("{REDIS_URL_VAR} is not set: run ./scripts/test.sh, which starts redis-server for these tests")
    })
}

pub fn cassandra_nodes() -> Vec<String> {
    let nodes = std::env::var(CASSANDRA_NODES_VAR).unwrap_or_else(|_| {
        panic!("{CASSANDRA_NODES_VAR} is not set: run ./scripts/test.sh, which starts Cassandra for these tests")
    });
    nodes.split(',').map(str::to_string).collect()
}

/// A keyspace of its own for each test world, the same for every reopen of that world and
/// different in every test process (a developer's Cassandra outlives test runs).
pub fn keyspace_for(data_dir: &Path) -> String {
    static SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| format!("{:?}", std::time::SystemTime::now()));
    let digest = Fingerprint::of(&(salt, data_dir.to_string_lossy().to_string()));
    format!("t{}", &hex(&digest.0)[..20])
}

impl Backend {
    /// The config of the file-based backends.
    pub fn config(self, data_dir: &Path) -> LedgerConfig {
        match self {
            Backend::Embedded => LedgerConfig::embedded(data_dir),
            Backend::Redis => LedgerConfig {
                data_dir: data_dir.to_path_buf(),
                balances: BalanceBackend::Redis(RedisConfig::new(redis_url(), "ssn-test:")),
            },
            Backend::Scylla => panic!("a Scylla ledger has no LedgerConfig: use Backend::open"),
        }
    }

    /// Opens the world's ledger on this backend; `data_dir` names its keyspace on Scylla.
    pub async fn open(self, data_dir: &Path) -> Ledger {
        match self {
            Backend::Embedded | Backend::Redis => Ledger::open(self.config(data_dir))
                .await
                .expect("open ledger"),
            Backend::Scylla => {
                let config = ScyllaConfig::new(cassandra_nodes(), keyspace_for(data_dir));
                // So that `verify(data_dir)` checks this world's chain.
                config.save_pointer(data_dir).expect("pointer file");
                let redis = RedisConfig::new(redis_url(), "ssn-test:");
                let mut stores = scylla_stores(config, &redis).await.expect("Scylla stores");
                // As the switch does: a history of the node's own, afresh at each start.
                stores.history = Some(Arc::new(
                    ssn_ledger::history::History::open_fresh(data_dir).expect("history"),
                ));
                Ledger::open_with(stores).await.expect("open ledger")
            }
        }
    }
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ssn-ledger-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 2025-10-15 10:00 WITA.
pub fn t0() -> i64 {
    let day = Day::parse_iso("2025-10-15").unwrap();
    i64::from(day.0) * 86_400 - WITA_OFFSET_SECONDS + 10 * 3600
}

pub fn day(iso: &str) -> Day {
    Day::parse_iso(iso).unwrap()
}

pub fn rp(rupiah: i64) -> Money {
    Money::from_minor(rupiah * 100)
}

pub fn terminal(n: u32) -> TerminalId {
    TerminalId::new(format!("T{n:07}")).unwrap()
}

pub fn merchant() -> MerchantId {
    MerchantId::new("EWARONG00000001").unwrap()
}

pub fn key(terminal_number: u32, stan: u32) -> PurchaseKey {
    PurchaseKey {
        terminal: terminal(terminal_number),
        stan: Stan::new(format!("{stan:06}")).unwrap(),
        transmitted: TransmissionTime::new("1015020000").unwrap(),
    }
}

/// A program's rules for a test.
#[derive(Clone, Debug)]
pub struct Rules {
    pub benefit: Money,
    pub categories: &'static [&'static str],
    pub basket_required: bool,
    pub purchase_max: Money,
    pub per_day_max: u32,
    pub expires: Day,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            benefit: rp(300_000),
            categories: &["01", "02", "07", "08", "09"],
            basket_required: false,
            purchase_max: rp(1_000_000),
            per_day_max: 1_000,
            expires: day("2025-12-31"),
        }
    }
}

pub struct World {
    pub dir: TempDir,
    pub backend: Backend,
    pub ledger: Ledger,
    next_card: u64,
    next_stan: AtomicU64,
}

impl World {
    pub async fn new(backend: Backend) -> World {
        let dir = TempDir::new("world");
        let ledger = backend.open(&dir.0).await;
        World {
            dir,
            backend,
            ledger,
            next_card: 1,
            next_stan: AtomicU64::new(1),
        }
    }

    /// Closes the ledger and opens it again from its data directory.
    pub async fn reopen(self) -> World {
        let World {
            dir,
            backend,
            ledger,
            next_card,
            next_stan,
        } = self;
        drop(ledger);
        let ledger = backend.open(&dir.0).await;
        World {
            dir,
            backend,
            ledger,
            next_card,
            next_stan,
        }
    }

    pub async fn program(&self, code: &str, rules: Rules) -> ProgramCode {
        let code = ProgramCode::new(code).unwrap();
        let program = Program {
            code: code.clone(),
            name: format!("Program {code}"),
            budget_year: 2025,
            benefit_amount: rules.benefit,
            allowed_categories: rules.categories.iter().map(|c| c.to_string()).collect(),
            basket_required: rules.basket_required,
            purchase_amount_max: rules.purchase_max,
            purchases_per_day_max: rules.per_day_max,
            pocket_expires_at: rules.expires,
            beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
            desil_max: None,
        };
        self.ledger
            .define_program(program)
            .await
            .expect("define program");
        code
    }

    /// A world with one program (`SSN2025`, these rules) and one card holding one benefit.
    pub async fn with_card(backend: Backend, rules: Rules) -> (World, ProgramCode, CardId) {
        let benefit = rules.benefit;
        let mut world = World::new(backend).await;
        let program = world.program("SSN2025", rules).await;
        let card = world.card(&[&program]).await;
        world.fund(&program, benefit).await;
        world.disburse(&program, "2025-10").await;
        (world, program, card)
    }

    /// A world with two programs and one card holding one benefit of each.
    pub async fn with_pockets(
        backend: Backend,
        programs: [(&str, Rules); 2],
    ) -> (World, [ProgramCode; 2], CardId) {
        let mut world = World::new(backend).await;
        let mut codes = Vec::new();
        for (code, rules) in &programs {
            codes.push(world.program(code, rules.clone()).await);
        }
        let codes: [ProgramCode; 2] = codes.try_into().expect("two programs");
        let card = world.card(&[&codes[0], &codes[1]]).await;
        for ((_, rules), code) in programs.iter().zip(&codes) {
            world.fund(code, rules.benefit).await;
            world.disburse(code, "2025-10").await;
        }
        (world, codes, card)
    }

    /// A determined beneficiary enrolled in `programs`, with an active card.
    pub async fn card(&mut self, programs: &[&ProgramCode]) -> CardId {
        let n = self.next_card;
        self.next_card += 1;
        let programs: Vec<ProgramCode> = programs.iter().map(|p| (*p).clone()).collect();
        self.ledger
            .registry()
            .apply(enrolment(n, &programs))
            .await
            .expect("enrol");
        CardId(n)
    }

    pub async fn fund(&self, program: &ProgramCode, amount: Money) {
        let reference = format!("APBD-{program}-{}", amount.minor());
        self.ledger
            .fund_program(program, amount, &reference, t0())
            .await
            .expect("fund");
    }

    pub async fn disburse(&self, program: &ProgramCode, period: &str) -> DisbursementOutcome {
        self.ledger
            .disburse(program, period, t0())
            .await
            .expect("disburse")
    }

    pub fn purchase(
        &self,
        card: CardId,
        amount: Money,
        basket: Option<&[&str]>,
    ) -> PurchaseRequest {
        let stan = self.next_stan.fetch_add(1, Ordering::Relaxed) as u32;
        purchase_at(key(1, stan), card, amount, basket, t0())
    }

    pub async fn spendable(&self, card: CardId) -> Money {
        self.ledger.balance(card, t0()).await.expect("balance")
    }

    pub async fn pocket(&self, card: CardId, program: &ProgramCode) -> Money {
        let pockets = self.ledger.pockets(card).await.expect("pockets");
        let cached = pockets
            .iter()
            .find(|p| &p.program == program)
            .map_or(Money::ZERO, |p| p.balance);
        let journaled = self
            .ledger
            .state()
            .balance(&Account::Pocket(card, program.clone()));
        assert_eq!(
            cached, journaled,
            "balance store and journal disagree on card {card} pocket {program}"
        );
        cached
    }

    /// The store equals the journal, and the journal verifies.
    pub async fn assert_consistent(&self) {
        assert_eq!(
            self.ledger.cache_differences().await.expect("compare"),
            Vec::<CardId>::new()
        );
        check_balances(&self.ledger.state()).expect("journal invariants");
    }
}

/// Registry ops for beneficiary number `n`: determined, enrolled in `programs`, with active
/// card `CardId(n)`.
pub fn enrolment(n: u64, programs: &[ProgramCode]) -> Vec<RegistryOp> {
    let ssn = format!("SSN{n:08}");
    let beneficiary = Beneficiary {
        ssn: ssn.clone(),
        nik: Nik(format!("647201{:02}0190{:04}", 1 + n % 28, n)),
        kk: Kk(format!("6472010101{n:06}")),
        name: format!("Penerima {n}"),
        birth_date: day("1990-01-01"),
        sex: Sex::Female,
        address: "Jl. Contoh".into(),
        kecamatan: "Palaran".into(),
        kelurahan: "Rawa Makmur".into(),
        desil: 1,
        status: BeneficiaryStatus::Determined,
        enrolments: programs.to_vec(),
        possible_duplicate: false,
        import_batch: 1,
        absent_from_dtsen: false,
        enrolment_history: Vec::new(),
        past_kecamatan: Vec::new(),
    };
    let card = Card {
        card_id: CardId(n),
        ssn,
        pan: Pan(format!("6048720000{n:06}")),
        expiry: "2812".into(),
        status: CardStatus::Active,
        pvv: Pvv("1234".into()),
        wrong_pin_count: 0,
        replaced_by: None,
        issued_on: None,
        delivered_on: None,
        changes: Vec::new(),
    };
    vec![
        RegistryOp::Insert(RegistryRecord::Beneficiary(beneficiary)),
        RegistryOp::Insert(RegistryRecord::Card(card)),
    ]
}

/// A purchase request; the fingerprint covers card, amount, merchant and basket.
pub fn purchase_at(
    key: PurchaseKey,
    card: CardId,
    amount: Money,
    basket: Option<&[&str]>,
    at: i64,
) -> PurchaseRequest {
    let basket: Option<Vec<String>> = basket.map(|b| b.iter().map(|c| c.to_string()).collect());
    let stan_number: u32 = key.stan.as_str().parse().unwrap();
    PurchaseRequest {
        fingerprint: Fingerprint::of(&(card, amount, merchant(), &basket)),
        key,
        card,
        merchant: merchant(),
        amount,
        basket: basket.map(|categories| {
            // The amount split evenly over the items, the remainder on the first.
            let n = categories.len().max(1) as i64;
            let share = amount.minor() / n;
            categories
                .into_iter()
                .enumerate()
                .map(|(i, category)| BasketLine {
                    category,
                    quantity: 1,
                    amount: Money::from_minor(if i == 0 {
                        amount.minor() - share * (n - 1)
                    } else {
                        share
                    }),
                })
                .collect()
        }),
        rrn: Rrn::new(format!(
            "{:012}",
            u64::from(stan_number) * 7 + at as u64 % 1000
        ))
        .unwrap(),
        authorization_id: AuthorizationId::new(format!("{:06}", stan_number % 1_000_000)).unwrap(),
        at_unix_seconds: at,
        enrolments: None,
    }
}

pub const APPROVED: ResponseCode = ResponseCode::APPROVED;

/// A ledger on `journal` (with a redb registry in `dir` and balances in memory) whose one card
/// holds Rp 300,000 from program `SSN2025`, for tests of what the journal's store does.
pub async fn funded_ledger_on(
    dir: &TempDir,
    journal: Box<dyn JournalStore>,
) -> (Ledger, Arc<MemoryBalances>, CardId) {
    let balances = Arc::new(MemoryBalances::new());
    let stores = LedgerStores {
        journal,
        registry: Arc::new(RedbRegistry::open(&dir.0.join("registry.redb")).unwrap()),
        balances: balances.clone(),
        history: None,
    };
    let ledger = Ledger::open_with(stores).await.unwrap();
    let card = fund_one_card(&ledger).await;
    (ledger, balances, card)
}

/// Defines program `SSN2025`, enrols one card in it and gives it Rp 300,000: card 1.
pub async fn fund_one_card(ledger: &Ledger) -> CardId {
    let program = ProgramCode::new("SSN2025").unwrap();
    ledger
        .define_program(Program {
            code: program.clone(),
            name: "SSN".into(),
            budget_year: 2025,
            benefit_amount: rp(300_000),
            allowed_categories: vec!["01".into()],
            basket_required: false,
            purchase_amount_max: rp(1_000_000),
            purchases_per_day_max: 10,
            pocket_expires_at: day("2025-12-31"),
            beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
            desil_max: None,
        })
        .await
        .unwrap();
    ledger
        .registry()
        .apply(enrolment(1, std::slice::from_ref(&program)))
        .await
        .unwrap();
    ledger
        .fund_program(&program, rp(300_000), "F1", t0())
        .await
        .unwrap();
    ledger.disburse(&program, "2025-10", t0()).await.unwrap();
    CardId(1)
}

/// xorshift64*: a deterministic stream of numbers per seed, for the random-sequence tests.
#[derive(Debug)]
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `cards` cards of program `SSN2025` (card 1 from [`fund_one_card`]), each given Rp 300,000
/// more by the disbursement of period `2025-11`.
pub async fn fund_cards(ledger: &Ledger, cards: u64) {
    fund_one_card(ledger).await;
    let program = ProgramCode::new("SSN2025").unwrap();
    for n in 2..=cards {
        ledger
            .registry()
            .apply(enrolment(n, std::slice::from_ref(&program)))
            .await
            .unwrap();
    }
    let amount = rp(300_000 * cards as i64);
    ledger
        .fund_program(&program, amount, "APBD-more", t0())
        .await
        .unwrap();
    ledger.disburse(&program, "2025-11", t0()).await.unwrap();
}

/// DE7 (`MMDDhhmmss`, UTC) of an instant.
pub fn de7_of(at: i64) -> TransmissionTime {
    TransmissionTime::of_unix_seconds(at)
}
