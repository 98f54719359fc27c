//! Each rule fires on its pattern and stays quiet on honest traffic shaped like it: a busy
//! honest E-Warong, a family sharing one shop.

use super::*;
use crate::day::Day;
use crate::ids::{PurchaseKey, Stan, TransmissionTime};
use crate::record::{AuthResponse, BasketLine, PocketAmount, PurchaseRecord, ResponseCode};

const T0: i64 = 1_800_000_000;
const PROGRAM: &str = "SSN2026";

/// A journal being written: positions in order, and the alerts the monitor raised.
struct Feed {
    monitor: Monitor,
    limits: HashMap<ProgramCode, Money>,
    position: u64,
    stan: u32,
    alerts: Vec<Alert>,
    /// Whether the monitor is checkpointed and resumed from its checkpoint before every entry,
    /// as a restart between any two entries would.
    restart_every_entry: bool,
}

/// One purchase to feed.
#[derive(Clone)]
struct Buy {
    at: i64,
    card: u64,
    terminal: &'static str,
    merchant: &'static str,
    code: &'static str,
    amount: i64,
    basket: Vec<(&'static str, u8, i64)>,
}

fn buy(at: i64, card: u64, terminal: &'static str, merchant: &'static str) -> Buy {
    Buy {
        at,
        card,
        terminal,
        merchant,
        code: "00",
        amount: 50_000,
        // Four kilos of rice at 12,500 a kilo.
        basket: vec![("01", 4, 50_000)],
    }
}

impl Feed {
    fn new(config: MonitorConfig) -> Feed {
        let mut limits = HashMap::new();
        limits.insert(program(), Money::from_minor(200_000));
        Feed {
            monitor: Monitor::new(config),
            limits,
            position: 0,
            stan: 0,
            alerts: Vec::new(),
            restart_every_entry: false,
        }
    }

    fn entry(&mut self, at: i64, record: Record) {
        if self.restart_every_entry {
            let bytes = self.monitor.checkpoint(None);
            let config = self.monitor.config().clone();
            self.monitor = Monitor::resume(config, &bytes)
                .expect("a checkpoint reads")
                .monitor;
        }
        let entry = Entry {
            at_unix_seconds: at,
            record,
        };
        let alerts = self.monitor.observe(self.position, &entry, &self.limits);
        self.alerts.extend(alerts);
        self.position += 1;
    }

    fn buy(&mut self, buy: Buy) {
        self.stan += 1;
        let approved = buy.code == "00";
        let amount = Money::from_minor(buy.amount);
        let record = PurchaseRecord {
            key: PurchaseKey {
                terminal: TerminalId::new(buy.terminal).unwrap(),
                stan: Stan::new(format!("{:06}", self.stan)).unwrap(),
                transmitted: TransmissionTime::new("1207101010").unwrap(),
            },
            fingerprint: Fingerprint([0; 32]),
            card: Some(CardId(buy.card)),
            merchant: MerchantId::new(buy.merchant).unwrap(),
            amount,
            day: Day::wita_of_unix_seconds(buy.at),
            response: AuthResponse {
                code: ResponseCode::new(buy.code).unwrap(),
                rrn: Rrn::new(format!("{:012}", self.position)).unwrap(),
                authorization_id: None,
                balance_after: None,
            },
            legs: if approved {
                vec![PocketAmount {
                    program: program(),
                    amount,
                }]
            } else {
                Vec::new()
            },
            basket: if approved {
                buy.basket
                    .iter()
                    .map(|(category, quantity, amount)| BasketLine {
                        category: category.to_string(),
                        quantity: *quantity,
                        amount: Money::from_minor(*amount),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        };
        self.entry(buy.at, Record::Purchase(record));
    }

    fn disburse(&mut self, at: i64, cards: std::ops::Range<u64>, amount: i64) {
        let credits = cards
            .map(|card| (CardId(card), Money::from_minor(amount)))
            .collect();
        self.entry(
            at,
            Record::Disbursement {
                program: program(),
                period: format!("P{at}"),
                credits,
            },
        );
    }

    fn fired(&self, rule: Rule) -> Vec<&Alert> {
        self.alerts.iter().filter(|a| a.rule == rule).collect()
    }
}

fn program() -> ProgramCode {
    ProgramCode::new(PROGRAM).unwrap()
}

const SHOP: &str = "EWARONG00000001";
const OTHER: &str = "EWARONG00000002";
const TERM: &str = "TERM0001";

/// A busy honest E-Warong: 3 hours, a customer every 75 s, each a card of its own buying a
/// varied food basket under the per-purchase maximum; a family of four among them.
fn honest_day(feed: &mut Feed, start: i64) {
    for i in 0..144u64 {
        let at = start + 75 * i as i64;
        let kilos = 1 + (i % 3) as u8;
        let rice = i64::from(kilos) * (12_000 + 100 * (i as i64 % 17));
        let mut purchase = buy(at, 1_000 + i, TERM, SHOP);
        purchase.amount = rice + 12_000;
        purchase.basket = vec![("01", kilos, rice), ("04", 1, 12_000)];
        feed.buy(purchase);
    }
}

fn family_sharing_one_shop(feed: &mut Feed, start: i64) {
    // Four cards of one family, one after the other, a minute apart; the grandmother mistypes
    // her PIN twice before the right one; the mother comes back for a forgotten item.
    for (i, card) in [50u64, 51, 52, 53].into_iter().enumerate() {
        feed.buy(buy(start + 60 * i as i64, card, TERM, SHOP));
    }
    let mut wrong = buy(start + 300, 53, TERM, SHOP);
    wrong.code = "55";
    feed.buy(wrong.clone());
    wrong.at += 30;
    feed.buy(wrong);
    feed.buy(buy(start + 400, 53, TERM, SHOP));
    let mut again = buy(start + 500, 50, TERM, SHOP);
    again.amount = 20_000;
    again.basket = vec![("02", 1, 20_000)];
    feed.buy(again);
}

fn quiet(feed: &Feed) {
    assert!(
        feed.alerts.is_empty(),
        "honest traffic raised {:?}",
        feed.alerts
    );
}

#[test]
fn honest_traffic_raises_nothing() {
    let mut feed = Feed::new(MonitorConfig::default());
    feed.disburse(T0 - 40 * 86_400, 0..2_000, 200_000);
    honest_day(&mut feed, T0);
    family_sharing_one_shop(&mut feed, T0 + 20_000);
    honest_day(&mut feed, T0 + 86_400);
    quiet(&feed);
}

#[test]
fn card_collection_fires_on_many_cards_at_one_terminal() {
    let mut feed = Feed::new(MonitorConfig::default());
    // A facilitator swipes 15 collected cards within ten minutes, 35 s apart (not rapid).
    for i in 0..15u64 {
        feed.buy(buy(T0 + 35 * i as i64, 100 + i, TERM, SHOP));
    }
    let alerts = feed.fired(Rule::CardCollection);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    let alert = alerts[0];
    assert_eq!(alert.cards.len(), 15);
    assert_eq!(alert.evidence.len(), 15);
    assert_eq!(alert.terminal.as_ref().unwrap().as_str(), TERM);
    assert_eq!(alert.merchant.as_ref().unwrap().as_str(), SHOP);
    assert_eq!(alert.score_percent, 100);
    assert_eq!(alert.fired_at_unix_seconds, T0 + 35 * 14);
}

#[test]
fn card_collection_fires_on_pins_in_rapid_succession() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..6u64 {
        feed.buy(buy(T0 + 12 * i as i64, 100 + i, TERM, SHOP));
    }
    assert_eq!(
        feed.fired(Rule::CardCollection).len(),
        1,
        "{:?}",
        feed.alerts
    );
    // The same cards at an honest pace afterwards raise nothing more.
    for i in 0..6u64 {
        feed.buy(buy(T0 + 1_000 + 90 * i as i64, 100 + i, TERM, SHOP));
    }
    assert_eq!(feed.alerts.len(), 1, "{:?}", feed.alerts);
}

#[test]
fn fixed_package_fires_on_one_basket_for_many_cards() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..10u64 {
        let mut purchase = buy(T0 + 200 * i as i64, 100 + i, TERM, SHOP);
        purchase.amount = 150_000;
        purchase.basket = vec![("01", 2, 100_000), ("03", 1, 50_000)];
        feed.buy(purchase);
    }
    let alerts = feed.fired(Rule::FixedPackage);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].cards.len(), 10);
}

#[test]
fn sweep_fires_when_one_shop_spends_a_share_of_the_disbursement() {
    let mut feed = Feed::new(MonitorConfig::default());
    feed.disburse(T0, 0..1_000, 200_000);
    // Honest shops each serve a few of the cards; one shop takes 50 within five hours, from
    // two terminals, 360 s apart (no card collection at either).
    for i in 0..50u64 {
        let terminal = if i % 2 == 0 { "TERM0002" } else { "TERM0003" };
        feed.buy(buy(T0 + 3_600 + 180 * i as i64, i, terminal, OTHER));
        feed.buy(buy(T0 + 3_650 + 180 * i as i64, 500 + i % 20, TERM, SHOP));
    }
    let alerts = feed.fired(Rule::Sweep);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].merchant.as_ref().unwrap().as_str(), OTHER);
    assert_eq!(alerts[0].program, Some(program()));
    assert_eq!(alerts[0].evidence.len(), EVIDENCE_MAX);
}

#[test]
fn sweep_stays_quiet_after_the_window() {
    let mut feed = Feed::new(MonitorConfig::default());
    feed.disburse(T0, 0..1_000, 200_000);
    for i in 0..50u64 {
        let terminal = if i % 2 == 0 { "TERM0002" } else { "TERM0003" };
        feed.buy(buy(T0 + 21_601 + 180 * i as i64, i, terminal, OTHER));
    }
    assert!(feed.fired(Rule::Sweep).is_empty(), "{:?}", feed.alerts);
}

#[test]
fn split_purchase_fires_when_the_parts_exceed_the_maximum() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..3 {
        let mut purchase = buy(T0 + 120 * i, 7, TERM, SHOP);
        purchase.amount = 90_000;
        purchase.basket = vec![("01", 1, 90_000)];
        feed.buy(purchase);
    }
    let alerts = feed.fired(Rule::SplitPurchase);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].evidence.len(), 3);
    assert_eq!(alerts[0].cards, vec![CardId(7)]);
    assert_eq!(alerts[0].score_percent, 135);
}

#[test]
fn pin_guessing_fires_on_wrong_pins_across_cards() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..6u64 {
        let mut wrong = buy(T0 + 40 * i as i64, 100 + i % 3, TERM, SHOP);
        wrong.code = if i >= 3 { "75" } else { "55" };
        feed.buy(wrong);
    }
    let alerts = feed.fired(Rule::PinGuessing);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].cards.len(), 3);
    assert_eq!(alerts[0].evidence.len(), 6);
}

#[test]
fn price_fires_on_items_far_above_the_city_median() {
    let mut feed = Feed::new(MonitorConfig::default());
    // Thirty honest rice sales across the city establish the week's median (15,000 a kg).
    for i in 0..30u64 {
        let mut purchase = buy(T0 + 600 * i as i64, 100 + i, "TERM0002", OTHER);
        purchase.amount = 30_000;
        purchase.basket = vec![("01", 2, 30_000 + 100 * (i as i64 % 5))];
        feed.buy(purchase);
    }
    // One shop sells at 120% (honest variation), then five times at 210%.
    let sale = |feed: &mut Feed, at: i64, card: u64, unit: i64| {
        let mut purchase = buy(at, card, TERM, SHOP);
        purchase.amount = unit * 2;
        purchase.basket = vec![("01", 2, unit * 2)];
        feed.buy(purchase);
    };
    for i in 0..5 {
        sale(&mut feed, T0 + 20_000 + 600 * i, 300 + i as u64, 18_000);
    }
    assert!(feed.alerts.is_empty(), "{:?}", feed.alerts);
    for i in 0..5 {
        sale(&mut feed, T0 + 30_000 + 600 * i, 400 + i as u64, 31_600);
    }
    let alerts = feed.fired(Rule::Price);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].merchant.as_ref().unwrap().as_str(), SHOP);
    assert_eq!(alerts[0].evidence.len(), 5);
}

#[test]
fn ghost_shop_fires_when_baskets_are_mostly_not_food() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..20u64 {
        let mut purchase = buy(T0 + 600 * i as i64, 100 + i, TERM, SHOP);
        // Soap and cigarettes-for-rice: 60% of baskets mostly category 9x.
        purchase.basket = if i % 5 < 3 {
            vec![("01", 1, 10_000), ("95", 1, 40_000)]
        } else {
            vec![("01", 1, 40_000), ("95", 1, 10_000)]
        };
        feed.buy(purchase);
    }
    let alerts = feed.fired(Rule::GhostShop);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].evidence.len(), 12);
}

#[test]
fn ghost_shop_stays_quiet_when_soap_rides_along_with_rice() {
    let mut feed = Feed::new(MonitorConfig::default());
    for i in 0..60u64 {
        let mut purchase = buy(T0 + 600 * i as i64, 100 + i, TERM, SHOP);
        let (rice, soap) = (
            40_000 + 100 * (i as i64 % 13),
            10_000 + 100 * (i as i64 % 7),
        );
        purchase.amount = rice + soap;
        purchase.basket = vec![("01", 1, rice), ("95", 1, soap)];
        feed.buy(purchase);
    }
    quiet(&feed);
}

#[test]
fn borrowed_terminal_fires_when_a_terminal_moves_between_shops() {
    let mut feed = Feed::new(MonitorConfig::default());
    feed.buy(buy(T0, 1, TERM, SHOP));
    feed.buy(buy(T0 + 3_600, 2, TERM, SHOP));
    assert!(feed.alerts.is_empty());
    feed.buy(buy(T0 + 7_200, 3, TERM, OTHER));
    let alerts = feed.fired(Rule::BorrowedTerminal);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].merchant.as_ref().unwrap().as_str(), OTHER);
    assert_eq!(alerts[0].cards, vec![CardId(2), CardId(3)]);
}

#[test]
fn dormant_card_drained_at_once_fires_and_a_regular_card_does_not() {
    let mut feed = Feed::new(MonitorConfig::default());
    let month = 30 * 86_400;
    // Card 1 spends every month; card 2 sleeps through three disbursements, then is emptied
    // in two purchases ten minutes apart.
    feed.disburse(T0, 1..3, 200_000);
    feed.buy(buy(T0 + 86_400, 1, TERM, SHOP));
    for m in 1..=3 {
        feed.disburse(T0 + m * month, 1..3, 200_000);
        feed.buy(buy(T0 + m * month + 86_400, 1, TERM, SHOP));
    }
    assert!(feed.alerts.is_empty(), "{:?}", feed.alerts);
    let mut drain = buy(T0 + 3 * month + 90_000, 2, "TERM0002", OTHER);
    drain.amount = 200_000;
    feed.buy(drain.clone());
    assert!(feed.alerts.is_empty(), "{:?}", feed.alerts);
    drain.at += 600;
    drain.amount = 450_000;
    feed.buy(drain);
    let alerts = feed.fired(Rule::DormantDrained);
    assert_eq!(alerts.len(), 1, "{:?}", feed.alerts);
    assert_eq!(alerts[0].cards, vec![CardId(2)]);
    assert_eq!(alerts[0].evidence.len(), 2);
}

#[test]
fn replaying_raises_the_same_ids_and_skips_what_was_seen() {
    let run = || {
        let mut feed = Feed::new(MonitorConfig::default());
        for i in 0..6u64 {
            feed.buy(buy(T0 + 12 * i as i64, 100 + i, TERM, SHOP));
        }
        feed
    };
    let (first, mut second) = (run(), run());
    assert_eq!(first.alerts, second.alerts);
    assert_eq!(second.monitor.next_position(), 6);
    let entry = Entry {
        at_unix_seconds: T0,
        record: Record::Funding {
            reference: "X".into(),
            program: program(),
            amount: Money::from_minor(1),
        },
    };
    assert!(second.monitor.observe(3, &entry, &second.limits).is_empty());
    assert_eq!(second.monitor.next_position(), 6);
}

#[test]
fn rule_names_round_trip() {
    for rule in Rule::ALL {
        assert_eq!(Rule::parse(rule.as_str()), Some(rule));
    }
    assert_eq!(Rule::parse("nope"), None);
}

/// A facilitator swiping collected cards all day at one terminal: 6 cards in rapid succession,
/// `runs` times, starting at `start`, an hour apart.
fn collection_runs(feed: &mut Feed, start: i64, runs: u64) {
    for run in 0..runs {
        for i in 0..6u64 {
            let at = start + 3_600 * run as i64 + 12 * i as i64;
            feed.buy(buy(at, 100 + 6 * run + i, TERM, SHOP));
        }
    }
}

#[test]
fn a_pattern_that_goes_on_raises_once_per_quiet_period() {
    let mut feed = Feed::new(MonitorConfig::default());
    collection_runs(&mut feed, T0, 10);
    // Ten runs in ten hours: one alert for the terminal, not ten.
    assert_eq!(
        feed.fired(Rule::CardCollection).len(),
        1,
        "{:?}",
        feed.alerts
    );
    // Another terminal doing the same is a subject of its own.
    for i in 0..6u64 {
        feed.buy(buy(T0 + 7_200 + 12 * i as i64, 500 + i, "TERM0002", OTHER));
    }
    assert_eq!(
        feed.fired(Rule::CardCollection).len(),
        2,
        "{:?}",
        feed.alerts
    );
    // The next day, the first terminal again: a new alert.
    collection_runs(&mut feed, T0 + 86_400 + 60, 1);
    assert_eq!(
        feed.fired(Rule::CardCollection).len(),
        3,
        "{:?}",
        feed.alerts
    );
}

#[test]
fn a_quiet_period_of_zero_raises_every_match() {
    let mut config = MonitorConfig::default();
    config.repeat.quiet_seconds = 0;
    let mut feed = Feed::new(config);
    collection_runs(&mut feed, T0, 10);
    assert_eq!(
        feed.fired(Rule::CardCollection).len(),
        10,
        "{:?}",
        feed.alerts
    );
}

/// Every rule's windows survive a checkpoint: a monitor checkpointed and resumed before every
/// entry raises exactly the alerts of one that ran through, for each rule's pattern (the
/// dormant card's months, the disbursement's cards, the week's prices included).
#[test]
fn a_monitor_resumed_from_its_checkpoint_raises_what_one_that_ran_through_does() {
    let script = |feed: &mut Feed| {
        let month = 30 * 86_400;
        feed.disburse(T0, 0..200, 200_000);
        honest_day(feed, T0 + 600);
        family_sharing_one_shop(feed, T0 + 12_000);
        for i in 0..6u64 {
            // Rapid succession, then wrong PINs across cards, at another terminal.
            feed.buy(buy(T0 + 20_000 + 12 * i as i64, 300 + i, "TERM0002", OTHER));
            let mut wrong = buy(T0 + 21_000 + 40 * i as i64, 400 + i % 3, "TERM0003", OTHER);
            wrong.code = "55";
            feed.buy(wrong);
        }
        for i in 0..60u64 {
            // A swept disbursement and fixed packages at a third shop.
            let mut purchase = buy(
                T0 + 1_000 + 200 * i as i64,
                i,
                "TERM0004",
                "EWARONG00000003",
            );
            purchase.basket = vec![("01", 5, 50_000)];
            feed.buy(purchase);
        }
        for i in 0..5u64 {
            // Rice at three times the week's median.
            let mut purchase = buy(
                T0 + 25_000 + 700 * i as i64,
                600 + i,
                "TERM0006",
                "EWARONG00000004",
            );
            purchase.basket = vec![("01", 1, 40_000)];
            purchase.amount = 40_000;
            feed.buy(purchase);
        }
        for i in 0..20u64 {
            // Soap for rice.
            let mut purchase = buy(
                T0 + 30_000 + 700 * i as i64,
                700 + i,
                "TERM0007",
                "EWARONG00000005",
            );
            purchase.basket = vec![("01", 1, 10_000), ("95", 1, 40_000)];
            feed.buy(purchase);
        }
        for i in 0..3 {
            let mut purchase = buy(T0 + 50_000 + 120 * i, 7, TERM, SHOP);
            purchase.amount = 90_000;
            feed.buy(purchase);
        }
        // Card 150 sleeps through two more disbursements and is emptied.
        for m in 1..=3 {
            feed.disburse(T0 + m * month, 150..151, 200_000);
        }
        let mut drain = buy(T0 + 3 * month + 90_000, 150, "TERM0005", OTHER);
        drain.amount = 800_000;
        feed.buy(drain);
        // The terminal moves to another shop.
        feed.buy(buy(T0 + 3 * month + 95_000, 160, "TERM0005", SHOP));
    };
    let mut through = Feed::new(MonitorConfig::default());
    script(&mut through);
    let mut resumed = Feed::new(MonitorConfig::default());
    resumed.restart_every_entry = true;
    script(&mut resumed);
    let rules: std::collections::BTreeSet<Rule> = through.alerts.iter().map(|a| a.rule).collect();
    assert!(
        rules.len() >= 7,
        "the script exercises most rules: {rules:?}"
    );
    assert_eq!(resumed.alerts, through.alerts);
    assert_eq!(
        resumed.monitor.next_position(),
        through.monitor.next_position()
    );
}
