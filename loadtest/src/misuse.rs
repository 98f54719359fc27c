//! Misuse injected among honest traffic, labelled, and scored against the switch's alerts
//! (issue 22): `run --misuse card_collection,pin_guessing,...`.
//!
//! Each pattern runs on terminals of an E-Warong the honest load leaves alone (a run with
//! `--terminals N` uses the city's first N terminals, and terminal `t` belongs to E-Warong
//! `t mod merchants`), from its own TCP connections, as a cashier who holds the cards would:
//! one request at a time. Its [`Label`] names the rule it should raise, the terminal, the
//! E-Warong and the cards, and when its first request was sent. While the load still runs the
//! alerts are read from the admin API (`GET /alerts`, every page; [`watch`]) until each label
//! has one, and once more after it ([`score`]), and scored per rule: an
//! alert of the label's rule naming its terminal or E-Warong (which no honest terminal
//! uses) detects it; recall is labels detected over labels, precision alerts that
//! detect a label over alerts of the rule, and the latency from the first misuse request to
//! the moment the harness first saw the alert in `GET /alerts` (polled every
//! [`ALERT_POLL_INTERVAL`]). An alert detecting no label is a false positive; honest traffic
//! raises only those.
//!
//! Injected: card collection, PIN guessing, split purchases and fixed packages: what terminal
//! traffic alone can show within a short run. Not injected (refused with the reason): sweeps
//! (a disbursement within the run), prices (a week's market of at least 30 samples per
//! category), ghost shops (approved non-food baskets: the switch declines them `57`), borrowed
//! terminals (a terminal moved between E-Warong in the registry) and dormant cards (90 days).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use ssn_codec::{FrameCodec, Inbound, Message, Mti, Outbound, Profile, Tpdu};
use ssn_hsm::{EncryptedPinBlock, Pin, TdesKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::city::{City, PURCHASE_AMOUNT_MAX_MINOR};
use crate::clock;
use crate::terminal::CardSecret;

/// Between two requests of one pattern: within every rule's window, and slower than the
/// switch answers.
pub const MISUSE_GAP: Duration = Duration::from_millis(500);
/// How often `GET /alerts` is read while waiting for the alerts of the labels.
pub const ALERT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long after the last misuse request alerts are waited for (the monitor polls the log
/// every 500 ms).
pub const ALERT_WAIT: Duration = Duration::from_secs(20);
/// One request's answer, at most.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// The TPDU of `bcd` requests, as the load's terminals send it.
const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x01, 0x00, 0x00]);

/// A pattern the harness can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// Six cards' PINs at one terminal in rapid succession.
    CardCollection,
    /// Two wrong PINs on each of three cards at one terminal.
    PinGuessing,
    /// Two purchases on one card at one terminal, together 120% of the per-purchase maximum.
    SplitPurchase,
    /// One basket on ten cards at one E-Warong (its two terminals in turn).
    FixedPackage,
}

/// Rules of the monitor the harness does not inject, and why.
pub const NOT_INJECTED: [(&str, &str); 5] = [
    ("sweep", "needs a disbursement within the run"),
    (
        "price",
        "needs a week's market of at least 30 samples of the category",
    ),
    (
        "ghost_shop",
        "needs approved non-food baskets, which the switch declines 57",
    ),
    (
        "borrowed_terminal",
        "needs a terminal moved between E-Warong in the registry",
    ),
    ("dormant_drained", "needs a card idle for 90 days"),
];

impl Pattern {
    /// Every injectable pattern.
    pub const ALL: [Pattern; 4] = [
        Pattern::CardCollection,
        Pattern::PinGuessing,
        Pattern::SplitPurchase,
        Pattern::FixedPackage,
    ];

    /// The rule it should raise, as the admin API names it.
    pub fn rule(self) -> &'static str {
        match self {
            Pattern::CardCollection => "card_collection",
            Pattern::PinGuessing => "pin_guessing",
            Pattern::SplitPurchase => "split_purchase",
            Pattern::FixedPackage => "fixed_package",
        }
    }

    /// `--misuse`: rule names, comma-separated; `all` for every injectable one; `none` for
    /// honest traffic alone (its alerts are still read and scored).
    pub fn parse_list(text: &str) -> Result<Vec<Pattern>, Error> {
        let mut patterns = Vec::new();
        for name in text.split(',').map(str::trim) {
            match name {
                "all" => patterns.extend(Pattern::ALL),
                "none" => {}
                _ => {
                    if let Some(p) = Pattern::ALL.into_iter().find(|p| p.rule() == name) {
                        patterns.push(p);
                    } else if let Some((_, why)) = NOT_INJECTED.iter().find(|(r, _)| *r == name) {
                        return Err(Error::Invalid(format!(
                            "--misuse {name}: not injected by the harness ({why})"
                        )));
                    } else {
                        return Err(Error::Invalid(format!(
                            "--misuse {name}: one of all, none, {}",
                            Pattern::ALL.map(Pattern::rule).join(", ")
                        )));
                    }
                }
            }
        }
        patterns.sort();
        patterns.dedup();
        Ok(patterns)
    }
}

/// One injected pattern: what should be alerted.
#[derive(Clone, Debug, Serialize)]
pub struct Label {
    /// The rule it should raise.
    pub rule: &'static str,
    /// DE41 of its (first) terminal.
    pub terminal: String,
    /// DE42.
    pub merchant: String,
    /// The cards it used (ledger ids).
    pub cards: Vec<u64>,
    /// When its first request was sent (UTC seconds).
    pub started_unix_seconds: i64,
    /// Its first request, for the latency.
    #[serde(skip)]
    pub started: Option<Instant>,
    /// Its last request's answer, for the latency after the pattern completed.
    #[serde(skip)]
    pub completed: Option<Instant>,
}

/// Terminals (indices in the city) of one E-Warong the honest load does not use.
#[derive(Clone, Debug)]
struct Shop {
    merchant: String,
    terminals: Vec<usize>,
}

/// The E-Warong all of whose terminals are past the first `honest` ones.
fn free_shops(city: &City, honest: usize) -> Vec<Shop> {
    let mut shops: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, t) in city.terminals.iter().enumerate() {
        shops.entry(&t.merchant_id).or_default().push(index);
    }
    shops
        .into_iter()
        .filter(|(_, terminals)| terminals.iter().all(|t| *t >= honest))
        .map(|(merchant, terminals)| Shop {
            merchant: merchant.to_string(),
            terminals,
        })
        .collect()
}

/// One connection of a cashier: requests one at a time.
struct Cashier {
    stream: TcpStream,
    codec: FrameCodec,
    input: BytesMut,
    profile: Profile,
    terminal_id: String,
    merchant_id: String,
    tpk: TdesKey,
    stan: u32,
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("misuse {what}: {e}"))
}

impl Cashier {
    async fn open(
        city: &City,
        index: usize,
        addr: SocketAddr,
        profile: Profile,
    ) -> Result<Cashier, Error> {
        let t = &city.terminals[index];
        let mut cashier = Cashier {
            stream: TcpStream::connect(addr).await?,
            codec: FrameCodec::new(profile, crate::terminal::FRAME_BYTES_MAX),
            input: BytesMut::new(),
            profile,
            terminal_id: t.terminal_id.clone(),
            merchant_id: t.merchant_id.clone(),
            tpk: TdesKey::from_hex(&t.tpk)?,
            // Far from the load's own numbering, which starts at 1 per terminal.
            stan: 500_000,
        };
        let mut sign_on = Message::new(Mti::NETWORK_REQUEST);
        let stan = cashier.next_stan();
        let set = |m: &mut Message, n: u8, v: &[u8]| {
            m.set(n, v).map(|_| ()).map_err(|e| io_error("field", e))
        };
        set(&mut sign_on, 7, &clock::de7(clock::unix_seconds_now()))?;
        set(&mut sign_on, 11, stan.as_bytes())?;
        set(&mut sign_on, 41, cashier.terminal_id.clone().as_bytes())?;
        set(&mut sign_on, 70, b"001")?;
        let code = cashier.exchange(&sign_on, &stan).await?;
        if code != "00" {
            return Err(io_error("sign-on", format!("answered {code}")));
        }
        Ok(cashier)
    }

    fn next_stan(&mut self) -> String {
        self.stan = self.stan % 999_999 + 1;
        format!("{:06}", self.stan)
    }

    /// Sends a purchase of `amount` (minor units, one food item of category `01` unless
    /// `basket` says otherwise) on `card` with `pin`; the answer's DE39.
    async fn purchase(
        &mut self,
        card: &CardSecret,
        pin: &Pin,
        amount: u64,
        basket: Option<&str>,
    ) -> Result<String, Error> {
        let stan = self.next_stan();
        let now = clock::unix_seconds_now();
        let (de12, de13) = clock::de12_de13(now);
        let block = EncryptedPinBlock::encrypt(pin, &card.pan, &self.tpk)?;
        let basket = basket.map_or_else(|| format!("B1010101{amount:012}"), str::to_string);
        let expiry = std::str::from_utf8(&card.expiry).unwrap_or("0000");
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        let mut set = |n: u8, v: &[u8]| m.set(n, v).map(|_| ()).map_err(|e| io_error("field", e));
        set(2, card.pan.as_bytes())?;
        set(3, b"000000")?;
        set(4, format!("{amount:012}").as_bytes())?;
        set(7, &clock::de7(now))?;
        set(11, stan.as_bytes())?;
        set(12, &de12)?;
        set(13, &de13)?;
        set(14, &card.expiry)?;
        set(22, b"051")?;
        set(25, b"00")?;
        set(35, format!("{}={expiry}", card.pan).as_bytes())?;
        set(41, self.terminal_id.as_bytes())?;
        set(42, self.merchant_id.as_bytes())?;
        set(48, basket.as_bytes())?;
        set(49, b"360")?;
        set(52, block.as_bytes())?;
        self.exchange(&m, &stan).await
    }

    /// Sends `message` and waits for the answer with DE11 `stan`; its DE39.
    async fn exchange(&mut self, message: &Message, stan: &str) -> Result<String, Error> {
        let mut out = BytesMut::new();
        let tpdu = (self.profile == Profile::Bcd).then_some(TPDU);
        self.codec
            .encode(Outbound::Message { tpdu, message }, &mut out)
            .map_err(|e| io_error("encode", e))?;
        self.stream.write_all(&out).await?;
        let answer = async {
            loop {
                if let Some(Inbound::Message { message, .. }) =
                    self.codec
                        .decode(&mut self.input)
                        .map_err(|e| io_error("framing", e))?
                    && message.stan().is_some_and(|s| s == stan.as_bytes())
                {
                    let code = message.text(39).unwrap_or(b"--");
                    return Ok(String::from_utf8_lossy(code).into_owned());
                }
                if self.stream.read_buf(&mut self.input).await? == 0 {
                    return Err(io_error("answer", "the switch closed the connection"));
                }
            }
        };
        tokio::time::timeout(ANSWER_DEADLINE, answer)
            .await
            .map_err(|_| io_error("answer", "none within the deadline"))?
    }
}

/// Where and how to inject.
#[derive(Clone, Debug)]
pub struct Injection {
    /// What to inject, each once.
    pub patterns: Vec<Pattern>,
    /// Terminals the honest load uses (the city's first).
    pub honest_terminals: usize,
    /// How long after the load starts the first pattern begins.
    pub delay: Duration,
    /// The switch's terminal port and its profile.
    pub addr: SocketAddr,
    /// Wire profile.
    pub profile: Profile,
}

/// Injects every pattern, one after the other, each on an E-Warong of its own; the labels.
/// Cards are taken from the end of the city's list, a disjoint set per pattern.
pub async fn inject(
    city: &City,
    cards: &[CardSecret],
    plan: &Injection,
) -> Result<Vec<Label>, Error> {
    let mut shops = free_shops(city, plan.honest_terminals);
    let mut chosen = Vec::new();
    for pattern in &plan.patterns {
        // Fixed packages need two terminals; the others one.
        let terminals_min = if *pattern == Pattern::FixedPackage {
            2
        } else {
            1
        };
        let Some(at) = shops
            .iter()
            .position(|s| s.terminals.len() >= terminals_min)
        else {
            return Err(Error::Invalid(format!(
                "--misuse {}: no E-Warong with {terminals_min} terminals left that the honest \
                 load leaves alone (run fewer --terminals, or seed more E-Warong)",
                pattern.rule()
            )));
        };
        chosen.push((*pattern, shops.remove(at)));
    }
    tokio::time::sleep(plan.delay).await;
    let mut next_card = cards.len();
    let mut take = |n: usize| -> Result<Vec<&CardSecret>, Error> {
        next_card = next_card
            .checked_sub(n)
            .ok_or_else(|| Error::Invalid("--misuse: the city has too few cards".into()))?;
        Ok(cards[next_card..next_card + n].iter().collect())
    };
    let mut labels = Vec::new();
    for (pattern, shop) in &chosen {
        let used = take(match pattern {
            Pattern::CardCollection => 6,
            Pattern::FixedPackage => 10,
            Pattern::PinGuessing => 3,
            Pattern::SplitPurchase => 1,
        })?;
        let rule = pattern.rule();
        let mut cashiers = Vec::new();
        for index in shop.terminals.iter().take(2) {
            cashiers.push(Cashier::open(city, *index, plan.addr, plan.profile).await?);
        }
        let label = Label {
            rule,
            terminal: city.terminals[shop.terminals[0]].terminal_id.clone(),
            merchant: shop.merchant.clone(),
            cards: used.iter().map(|c| c.card_id).collect(),
            started_unix_seconds: clock::unix_seconds_now(),
            started: Some(Instant::now()),
            completed: None,
        };
        let want = |code: String, expected: &str| -> Result<(), Error> {
            if code == expected {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "misuse {rule}: answered {code}, not {expected}"
                )))
            }
        };
        // When the pattern's last answer came.
        let mut done = Instant::now();
        match pattern {
            Pattern::CardCollection => {
                for card in &used {
                    want(
                        cashiers[0]
                            .purchase(card, &card.pin, 1_500_000, None)
                            .await?,
                        "00",
                    )?;
                    done = Instant::now();
                    tokio::time::sleep(MISUSE_GAP).await;
                }
            }
            Pattern::PinGuessing => {
                for card in &used {
                    for _ in 0..2 {
                        want(
                            cashiers[0]
                                .purchase(card, &card.wrong_pin, 1_500_000, None)
                                .await?,
                            "55",
                        )?;
                        done = Instant::now();
                        tokio::time::sleep(MISUSE_GAP).await;
                    }
                }
            }
            Pattern::SplitPurchase => {
                let part = u64::try_from(PURCHASE_AMOUNT_MAX_MINOR).unwrap_or(0) * 6 / 10;
                for _ in 0..2 {
                    want(
                        cashiers[0]
                            .purchase(used[0], &used[0].pin, part, None)
                            .await?,
                        "00",
                    )?;
                    done = Instant::now();
                    tokio::time::sleep(MISUSE_GAP).await;
                }
            }
            Pattern::FixedPackage => {
                // Rice, oil and eggs, the same on every card; the two terminals in turn, so
                // neither sees six cards in a row.
                let basket = format!(
                    "B1030105{:012}0201{:012}0402{:012}",
                    7_500_000, 2_000_000, 1_000_000
                );
                for (i, card) in used.iter().enumerate() {
                    let terminals = cashiers.len();
                    let cashier = &mut cashiers[i % terminals];
                    want(
                        cashier
                            .purchase(card, &card.pin, 10_500_000, Some(&basket))
                            .await?,
                        "00",
                    )?;
                    done = Instant::now();
                    tokio::time::sleep(MISUSE_GAP).await;
                }
            }
        }
        labels.push(Label {
            completed: Some(done),
            ..label
        });
    }
    Ok(labels)
}

/// How one rule did.
#[derive(Clone, Debug, Serialize)]
pub struct RuleScore {
    /// The rule.
    pub rule: String,
    /// Patterns injected for it.
    pub injected: u64,
    /// Of them, detected by an alert.
    pub detected: u64,
    /// Alerts of the rule.
    pub alerts: u64,
    /// Of them, detecting an injected pattern.
    pub alerts_true: u64,
    /// `detected / injected` (absent when nothing was injected).
    pub recall: Option<f64>,
    /// `alerts_true / alerts` (absent when nothing was alerted).
    pub precision: Option<f64>,
    /// From a pattern's first request to its alert seen in `GET /alerts`, seconds: the
    /// largest and the mean over the patterns detected.
    pub latency_s_max: Option<f64>,
    /// The mean.
    pub latency_s_mean: Option<f64>,
    /// From a pattern's last request to its alert seen, seconds (zero when the alert was
    /// seen before the pattern's last request): the largest.
    pub after_completion_s_max: Option<f64>,
}

/// The run's detection, per rule.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    /// Every rule that was injected or alerted, in name order.
    pub rules: Vec<RuleScore>,
    /// Alerts detecting no injected pattern (what honest traffic raised).
    pub alerts_false: u64,
    /// What was injected.
    pub labels: Vec<Label>,
}

impl Score {
    /// Whether every pattern was detected and nothing else was alerted.
    pub fn perfect(&self) -> bool {
        self.alerts_false == 0 && self.rules.iter().all(|r| r.detected == r.injected)
    }

    /// The report's lines.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut t = String::from(
            "  misuse       rule               injected detected recall  alerts  precision  latency s (max / mean / after the last request)\n",
        );
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
        let seconds = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.1}"));
        for r in &self.rules {
            let _ = writeln!(
                t,
                "               {:<18} {:>8} {:>8} {:>6} {:>7} {:>10}  {} / {} / {}",
                r.rule,
                r.injected,
                r.detected,
                ratio(r.recall),
                r.alerts,
                ratio(r.precision),
                seconds(r.latency_s_max),
                seconds(r.latency_s_mean),
                seconds(r.after_completion_s_max)
            );
        }
        let _ = writeln!(
            t,
            "               alerts on honest traffic: {}",
            self.alerts_false
        );
        t
    }
}

/// An alert as `GET /alerts` shows it, the fields scoring reads.
#[derive(Clone, Debug)]
struct Seen {
    rule: String,
    terminal: Option<String>,
    merchant: Option<String>,
    /// When the harness first saw it.
    seen: Instant,
}

impl Seen {
    fn detects(&self, label: &Label) -> bool {
        self.rule == label.rule
            && (self.terminal.as_deref() == Some(&label.terminal)
                || self.merchant.as_deref() == Some(&label.merchant))
    }
}

/// Every alert the admin API at `admin` lists, read page by page with `token`.
async fn read_alerts(
    client: &reqwest::Client,
    admin: SocketAddr,
    token: &str,
    seen: &mut BTreeMap<String, Seen>,
) -> Result<(), Error> {
    for page in 1u32.. {
        let url = format!("http://{admin}/api/v1/alerts?page={page}&page_size=1000");
        let answer = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| io_error("GET /alerts", e))?;
        if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(io_error(
                "GET /alerts",
                "401: the switch had admin tokens before the harness made its own; put one of \
                 them in DATA_DIR/loadtest-admin.token",
            ));
        }
        let body: serde_json::Value = answer
            .error_for_status()
            .map_err(|e| io_error("GET /alerts", e))?
            .json()
            .await
            .map_err(|e| io_error("GET /alerts", e))?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        for item in &items {
            let text = |key: &str| item[key].as_str().map(str::to_string);
            let Some(id) = text("id") else { continue };
            seen.entry(id).or_insert_with(|| Seen {
                rule: text("rule").unwrap_or_default(),
                terminal: text("terminal_id"),
                merchant: text("merchant_id"),
                seen: Instant::now(),
            });
        }
        if items.len() < 1000 {
            break;
        }
    }
    Ok(())
}

/// The alerts seen so far, each with when the harness first saw it.
#[derive(Debug, Default)]
pub struct Sightings(BTreeMap<String, Seen>);

/// Reads `GET /alerts` from the start of the injection (so an alert's latency is the
/// monitor's, not the other patterns'), until the injection sends its labels and every label
/// is detected, or [`ALERT_WAIT`] after the labels came; the labels (none if the injection
/// failed: it says why) and when each alert was first seen.
pub async fn watch(
    admin: SocketAddr,
    token: &str,
    mut injected: tokio::sync::oneshot::Receiver<Vec<Label>>,
) -> Result<(Option<Vec<Label>>, Sightings), Error> {
    use tokio::sync::oneshot::error::TryRecvError;
    let client = reqwest::Client::new();
    let mut seen = Sightings::default();
    let mut labels: Option<(Vec<Label>, Instant)> = None;
    loop {
        read_alerts(&client, admin, token, &mut seen.0).await?;
        if labels.is_none() {
            match injected.try_recv() {
                Ok(sent) => labels = Some((sent, Instant::now() + ALERT_WAIT)),
                Err(TryRecvError::Closed) => return Ok((None, seen)),
                Err(TryRecvError::Empty) => {}
            }
        }
        if let Some((sent, deadline)) = &labels {
            let all = sent.iter().all(|l| seen.0.values().any(|a| a.detects(l)));
            if all || Instant::now() >= *deadline {
                return Ok((labels.map(|(sent, _)| sent), seen));
            }
        }
        tokio::time::sleep(ALERT_POLL_INTERVAL).await;
    }
}

/// After the load: waits [`ALERT_POLL_INTERVAL`] × 8 for the monitor's last round, reads
/// `GET /alerts` once more (what honest traffic raised meanwhile counts too), and scores the
/// labels against every alert.
pub async fn score(
    admin: SocketAddr,
    token: &str,
    labels: Vec<Label>,
    mut seen: Sightings,
) -> Result<Score, Error> {
    tokio::time::sleep(ALERT_POLL_INTERVAL * 8).await;
    read_alerts(&reqwest::Client::new(), admin, token, &mut seen.0).await?;
    let seen = seen.0;
    let mut rules: BTreeMap<String, RuleScore> = BTreeMap::new();
    let entry = |rules: &mut BTreeMap<String, RuleScore>, rule: &str| {
        rules
            .entry(rule.to_string())
            .or_insert_with(|| RuleScore {
                rule: rule.to_string(),
                injected: 0,
                detected: 0,
                alerts: 0,
                alerts_true: 0,
                recall: None,
                precision: None,
                latency_s_max: None,
                latency_s_mean: None,
                after_completion_s_max: None,
            })
            .rule
            .clone()
    };
    let mut latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for label in &labels {
        entry(&mut rules, label.rule);
        let first = seen
            .values()
            .filter(|a| a.detects(label))
            .map(|a| a.seen)
            .min();
        let r = rules.get_mut(label.rule).expect("entered above");
        r.injected += 1;
        if let (Some(first), Some(started)) = (first, label.started) {
            r.detected += 1;
            let latency = first.saturating_duration_since(started).as_secs_f64();
            latencies
                .entry(label.rule.to_string())
                .or_default()
                .push(latency);
            let after = label
                .completed
                .map(|done| first.saturating_duration_since(done).as_secs_f64());
            r.after_completion_s_max = match (r.after_completion_s_max, after) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let mut alerts_false = 0;
    for alert in seen.values() {
        entry(&mut rules, &alert.rule);
        let r = rules.get_mut(&alert.rule).expect("entered above");
        r.alerts += 1;
        if labels.iter().any(|l| alert.detects(l)) {
            r.alerts_true += 1;
        } else {
            alerts_false += 1;
        }
    }
    for r in rules.values_mut() {
        let of = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        r.recall = of(r.detected, r.injected);
        r.precision = of(r.alerts_true, r.alerts);
        if let Some(l) = latencies.get(&r.rule) {
            r.latency_s_max = l.iter().copied().reduce(f64::max);
            r.latency_s_mean = Some(l.iter().sum::<f64>() / l.len() as f64);
        }
    }
    Ok(Score {
        rules: rules.into_values().collect(),
        alerts_false,
        labels,
    })
}
