//! Each rule's windows, keyed by what it watches. A rule that fires forgets the events behind
//! its alert, so one pattern raises one alert and the next needs evidence of its own.

use super::{
    Alert, EVENTS_PER_KEY_MAX, EVIDENCE_MAX, Evidence, Limits, MonitorConfig, Rule, Seen, alert,
    percent_of,
};
use crate::day::WITA_OFFSET_SECONDS;
use crate::ids::{CardId, Fingerprint, MerchantId, ProgramCode, Rrn, TerminalId};
use crate::money::Money;
use crate::record::BasketLine;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};

/// Seconds in a week, for the price rule's weeks.
const WEEK_SECONDS: i64 = 7 * 86_400;

/// One purchase in a window.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Event {
    at: i64,
    card: CardId,
    position: u64,
    rrn: Rrn,
}

impl Event {
    fn of(seen: &Seen<'_>) -> Event {
        Event {
            at: seen.at,
            card: seen.card,
            position: seen.position,
            rrn: seen.rrn.clone(),
        }
    }

    fn evidence(&self) -> (CardId, Evidence) {
        (
            self.card,
            Evidence {
                position: self.position,
                rrn: self.rrn.clone(),
            },
        )
    }
}

/// Appends to a window, dropping the oldest past [`EVENTS_PER_KEY_MAX`].
fn push<T>(window: &mut VecDeque<T>, item: T) {
    if window.len() >= EVENTS_PER_KEY_MAX {
        window.pop_front();
    }
    window.push_back(item);
}

/// Drops what is older than `window_seconds` before `now`.
fn expire<T>(window: &mut VecDeque<T>, now: i64, window_seconds: i64, at: impl Fn(&T) -> i64) {
    while window
        .front()
        .is_some_and(|item| now.saturating_sub(at(item)) > window_seconds)
    {
        window.pop_front();
    }
}

fn distinct_cards<'a>(events: impl Iterator<Item = &'a Event>) -> usize {
    events.map(|e| e.card).collect::<HashSet<_>>().len()
}

fn evidence<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(CardId, Evidence)> {
    events.map(Event::evidence).collect()
}

/// Card collection's state for one terminal.
#[derive(Default, Serialize, Deserialize)]
struct TerminalPins {
    /// PIN-entered purchases within the window.
    window: VecDeque<Event>,
    /// The current run of PINs in rapid succession.
    run: VecDeque<Event>,
}

/// Sweep's state for one program's latest disbursement.
#[derive(Serialize, Deserialize)]
struct Disbursed {
    at: i64,
    cards: HashSet<CardId>,
    threshold: usize,
    /// Per E-Warong: the distinct cards of this disbursement spent there, and the latest
    /// purchases as evidence.
    merchants: HashMap<MerchantId, (HashSet<CardId>, VecDeque<Event>)>,
    fired: HashSet<MerchantId>,
}

/// Dormancy's state for one card.
#[derive(Default, Serialize, Deserialize)]
struct CardActivity {
    last_purchase_at: Option<i64>,
    first_credit_at: Option<i64>,
    credited_since: Money,
    credits_since: u32,
    drain: Option<Drain>,
}

/// Purchases after a dormancy, being summed.
#[derive(Serialize, Deserialize)]
struct Drain {
    started_at: i64,
    credited: Money,
    spent: Money,
    events: Vec<Event>,
}

/// A week's unit amounts of one category, sorted, for its median.
#[derive(Default, Serialize, Deserialize)]
struct Prices {
    sorted: Vec<i64>,
}

impl Prices {
    fn median(&self) -> Option<i64> {
        self.sorted.get(self.sorted.len() / 2).copied()
    }

    fn insert(&mut self, unit: i64) {
        // The week's first samples stand for it once the window is full: bounded memory.
        if self.sorted.len() < EVENTS_PER_KEY_MAX {
            let at = self.sorted.partition_point(|p| *p <= unit);
            self.sorted.insert(at, unit);
        }
    }
}

/// Every rule's windows.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Rules {
    collection: HashMap<TerminalId, TerminalPins>,
    baskets: HashMap<MerchantId, VecDeque<(Event, [u8; 8])>>,
    disbursements: HashMap<ProgramCode, Disbursed>,
    splits: HashMap<(CardId, TerminalId), VecDeque<(Event, Money)>>,
    wrong_pins: HashMap<TerminalId, VecDeque<Event>>,
    prices: HashMap<(String, i64), Prices>,
    overpriced: HashMap<(MerchantId, String, i64), Vec<Event>>,
    ghost: HashMap<MerchantId, VecDeque<(Event, bool)>>,
    terminals_at: HashMap<TerminalId, (MerchantId, Event)>,
    cards: HashMap<CardId, CardActivity>,
    /// When each (rule, subject) last raised an alert ([`super::RepeatConfig`]): part of the
    /// windows, so a restart from a checkpoint does not raise a repeat again.
    pub(super) raised: HashMap<super::Subject, i64>,
}

impl Rules {
    pub(super) fn disbursed(
        &mut self,
        config: &MonitorConfig,
        program: &ProgramCode,
        credits: &[(CardId, Money)],
        at: i64,
    ) {
        for (card, amount) in credits {
            let activity = self.cards.entry(*card).or_default();
            activity.first_credit_at.get_or_insert(at);
            activity.credited_since = activity
                .credited_since
                .checked_add(*amount)
                .unwrap_or(activity.credited_since);
            activity.credits_since = activity.credits_since.saturating_add(1);
        }
        let share = u64::try_from(credits.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(config.sweep.share_permille)
            / 1000;
        let threshold = usize::try_from(share)
            .unwrap_or(usize::MAX)
            .max(config.sweep.cards_min);
        self.disbursements.insert(
            program.clone(),
            Disbursed {
                at,
                cards: credits.iter().map(|(card, _)| *card).collect(),
                threshold,
                merchants: HashMap::new(),
                fired: HashSet::new(),
            },
        );
    }

    pub(super) fn purchase(
        &mut self,
        config: &MonitorConfig,
        seen: &Seen<'_>,
        limits: &dyn Limits,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if seen.approved || seen.wrong_pin {
            alerts.extend(self.card_collection(config, seen));
        }
        if seen.wrong_pin {
            alerts.extend(self.pin_guessing(config, seen));
        }
        if !seen.approved {
            return alerts;
        }
        alerts.extend(self.fixed_package(config, seen));
        alerts.extend(self.sweep(config, seen));
        alerts.extend(self.split_purchase(config, seen, limits));
        alerts.extend(self.price(config, seen));
        alerts.extend(self.ghost_shop(config, seen));
        alerts.extend(self.borrowed_terminal(config, seen));
        alerts.extend(self.dormant_drained(config, seen));
        alerts
    }

    fn card_collection(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let rule = &config.card_collection;
        let state = self.collection.entry(seen.terminal.clone()).or_default();
        expire(&mut state.window, seen.at, rule.window_seconds, |e| e.at);
        push(&mut state.window, Event::of(seen));
        let in_run = state
            .run
            .back()
            .is_some_and(|last| seen.at.saturating_sub(last.at) <= rule.rapid_gap_seconds);
        if !in_run {
            state.run.clear();
        }
        push(&mut state.run, Event::of(seen));
        let window_cards = distinct_cards(state.window.iter());
        let run_cards = distinct_cards(state.run.iter());
        let (events, summary, score) = if window_cards >= rule.distinct_cards_min {
            let summary = format!(
                "{window_cards} distinct cards entered a PIN within {} s",
                rule.window_seconds
            );
            let score = percent_of(window_cards as u64, rule.distinct_cards_min as u64);
            (&state.window, summary, score)
        } else if run_cards >= rule.rapid_cards_min {
            let summary = format!(
                "{run_cards} cards entered a PIN each within {} s of the previous",
                rule.rapid_gap_seconds
            );
            let score = percent_of(run_cards as u64, rule.rapid_cards_min as u64);
            (&state.run, summary, score)
        } else {
            return None;
        };
        let fired = alert(
            Rule::CardCollection,
            seen.terminal.as_str(),
            seen,
            Some(seen.merchant),
            Some(seen.terminal),
            None,
            evidence(events.iter()),
            score,
            summary,
        );
        state.window.clear();
        state.run.clear();
        Some(fired)
    }

    fn pin_guessing(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let rule = &config.pin_guessing;
        let window = self.wrong_pins.entry(seen.terminal.clone()).or_default();
        expire(window, seen.at, rule.window_seconds, |e| e.at);
        push(window, Event::of(seen));
        let cards = distinct_cards(window.iter());
        if window.len() < rule.wrong_pins_min || cards < rule.cards_min {
            return None;
        }
        let fired = alert(
            Rule::PinGuessing,
            seen.terminal.as_str(),
            seen,
            Some(seen.merchant),
            Some(seen.terminal),
            None,
            evidence(window.iter()),
            percent_of(window.len() as u64, rule.wrong_pins_min as u64),
            format!(
                "{} wrong PINs on {cards} cards within {} s",
                window.len(),
                rule.window_seconds
            ),
        );
        window.clear();
        Some(fired)
    }

    fn fixed_package(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let rule = &config.fixed_package;
        if seen.record.basket.is_empty() {
            return None;
        }
        let key = basket_key(&seen.record.basket);
        let window = self.baskets.entry(seen.merchant.clone()).or_default();
        expire(window, seen.at, rule.window_seconds, |(e, _)| e.at);
        push(window, (Event::of(seen), key));
        let same: Vec<&Event> = window
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(e, _)| e)
            .collect();
        let cards = distinct_cards(same.iter().copied());
        let share_percent = (same.len() as u64).saturating_mul(100) / (window.len() as u64);
        if cards < rule.cards_min || share_percent < rule.share_percent {
            return None;
        }
        let fired = alert(
            Rule::FixedPackage,
            seen.merchant.as_str(),
            seen,
            Some(seen.merchant),
            None,
            None,
            evidence(same.iter().copied()),
            percent_of(cards as u64, rule.cards_min as u64),
            format!(
                "the same basket on {cards} cards, {share_percent}% of the E-Warong's baskets within {} s",
                rule.window_seconds
            ),
        );
        window.retain(|(_, k)| *k != key);
        Some(fired)
    }

    fn sweep(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for leg in &seen.record.legs {
            let Some(disbursed) = self.disbursements.get_mut(&leg.program) else {
                continue;
            };
            if seen.at.saturating_sub(disbursed.at) > config.sweep.window_seconds
                || !disbursed.cards.contains(&seen.card)
                || disbursed.fired.contains(seen.merchant)
            {
                continue;
            }
            let (cards, events) = disbursed
                .merchants
                .entry(seen.merchant.clone())
                .or_default();
            cards.insert(seen.card);
            if events.len() >= EVIDENCE_MAX {
                events.pop_front();
            }
            events.push_back(Event::of(seen));
            if cards.len() < disbursed.threshold {
                continue;
            }
            let share_permille =
                (cards.len() as u64).saturating_mul(1000) / (disbursed.cards.len().max(1) as u64);
            alerts.push(alert(
                Rule::Sweep,
                &format!("{}/{}", leg.program.as_str(), seen.merchant.as_str()),
                seen,
                Some(seen.merchant),
                None,
                Some(&leg.program),
                evidence(events.iter()),
                percent_of(cards.len() as u64, disbursed.threshold as u64),
                format!(
                    "{} of the disbursement's {} cards ({share_permille}‰) spent here within {} s of it",
                    cards.len(),
                    disbursed.cards.len(),
                    seen.at.saturating_sub(disbursed.at)
                ),
            ));
            disbursed.fired.insert(seen.merchant.clone());
            disbursed.merchants.remove(seen.merchant);
        }
        alerts
    }

    fn split_purchase(
        &mut self,
        config: &MonitorConfig,
        seen: &Seen<'_>,
        limits: &dyn Limits,
    ) -> Option<Alert> {
        let rule = &config.split_purchase;
        let window = self
            .splits
            .entry((seen.card, seen.terminal.clone()))
            .or_default();
        expire(window, seen.at, rule.window_seconds, |(e, _)| e.at);
        push(window, (Event::of(seen), seen.amount));
        let limit = seen
            .record
            .legs
            .iter()
            .filter_map(|leg| limits.purchase_amount_max(&leg.program))
            .max()?;
        let sum = Money::checked_sum(window.iter().map(|(_, amount)| *amount))?;
        if window.len() < rule.purchases_min || sum <= limit {
            return None;
        }
        let fired = alert(
            Rule::SplitPurchase,
            &format!("{}/{}", seen.card, seen.terminal.as_str()),
            seen,
            Some(seen.merchant),
            Some(seen.terminal),
            None,
            evidence(window.iter().map(|(e, _)| e)),
            percent_of(
                u64::try_from(sum.minor()).unwrap_or(0),
                u64::try_from(limit.minor()).unwrap_or(0),
            ),
            format!(
                "{} purchases on one card within {} s total Rp {sum} against a per-purchase maximum of Rp {limit}",
                window.len(),
                rule.window_seconds,
            ),
        );
        window.clear();
        Some(fired)
    }

    fn price(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Vec<Alert> {
        let rule = &config.price;
        let week = seen
            .at
            .saturating_add(WITA_OFFSET_SECONDS)
            .div_euclid(WEEK_SECONDS);
        let mut alerts = Vec::new();
        for line in &seen.record.basket {
            if line.quantity == 0 {
                continue;
            }
            let unit = line.amount.minor() / i64::from(line.quantity);
            let prices = self
                .prices
                .entry((line.category.clone(), week))
                .or_default();
            let median = prices
                .median()
                .filter(|_| prices.sorted.len() >= rule.samples_min);
            prices.insert(unit);
            let Some(median) = median else { continue };
            let over =
                i128::from(unit) * 100 > i128::from(median) * i128::from(rule.above_median_percent);
            if !over {
                continue;
            }
            let key = (seen.merchant.clone(), line.category.clone(), week);
            let items = self.overpriced.entry(key).or_default();
            if items.len() >= rule.items_min {
                // Fired already this week for this category.
                continue;
            }
            items.push(Event::of(seen));
            if items.len() < rule.items_min {
                continue;
            }
            alerts.push(alert(
                Rule::Price,
                &format!("{}/{}/{week}", seen.merchant.as_str(), line.category),
                seen,
                Some(seen.merchant),
                None,
                None,
                evidence(items.iter()),
                percent_of(
                    u64::try_from(unit).unwrap_or(0),
                    u64::try_from(median).unwrap_or(0),
                ),
                format!(
                    "{} items of category {} this week above {}% of the city's median unit amount Rp {}",
                    items.len(),
                    line.category,
                    rule.above_median_percent,
                    Money::from_minor(median)
                ),
            ));
        }
        alerts
    }

    fn ghost_shop(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let rule = &config.ghost_shop;
        if seen.record.basket.is_empty() {
            return None;
        }
        let window = self.ghost.entry(seen.merchant.clone()).or_default();
        if window.len() >= rule.baskets_window.max(1) {
            window.pop_front();
        }
        window.push_back((Event::of(seen), mostly_non_food(&seen.record.basket)));
        let non_food = window.iter().filter(|(_, n)| *n).count();
        let share_percent = (non_food as u64).saturating_mul(100) / (window.len() as u64);
        if window.len() < rule.baskets_min || share_percent < rule.non_food_percent {
            return None;
        }
        let fired = alert(
            Rule::GhostShop,
            seen.merchant.as_str(),
            seen,
            Some(seen.merchant),
            None,
            None,
            evidence(window.iter().filter(|(_, n)| *n).map(|(e, _)| e)),
            percent_of(share_percent, rule.non_food_percent),
            format!(
                "{non_food} of the last {} approved baskets ({share_percent}%) mostly not food",
                window.len()
            ),
        );
        window.clear();
        Some(fired)
    }

    fn borrowed_terminal(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let window_seconds = config.ghost_shop.borrowed_window_seconds;
        let previous = self.terminals_at.insert(
            seen.terminal.clone(),
            (seen.merchant.clone(), Event::of(seen)),
        )?;
        let (other, before) = previous;
        if other == *seen.merchant || seen.at.saturating_sub(before.at) > window_seconds {
            return None;
        }
        Some(alert(
            Rule::BorrowedTerminal,
            seen.terminal.as_str(),
            seen,
            Some(seen.merchant),
            Some(seen.terminal),
            None,
            vec![before.evidence(), Event::of(seen).evidence()],
            percent_of(
                u64::try_from(window_seconds).unwrap_or(0),
                u64::try_from(seen.at.saturating_sub(before.at).max(1)).unwrap_or(1),
            ),
            format!(
                "the terminal approved at E-Warong {} and {} seconds later at this one",
                other.as_str(),
                seen.at.saturating_sub(before.at)
            ),
        ))
    }

    fn dormant_drained(&mut self, config: &MonitorConfig, seen: &Seen<'_>) -> Option<Alert> {
        let rule = &config.dormant;
        let activity = self.cards.entry(seen.card).or_default();
        let draining = activity
            .drain
            .as_ref()
            .is_some_and(|d| seen.at.saturating_sub(d.started_at) <= rule.drain_window_seconds);
        if !draining {
            activity.drain = None;
            let idle_since = activity.last_purchase_at.or(activity.first_credit_at);
            let dormant = idle_since
                .is_some_and(|since| seen.at.saturating_sub(since) >= rule.dormant_seconds);
            if dormant
                && activity.credits_since >= rule.credits_min
                && activity.credited_since.is_positive()
            {
                activity.drain = Some(Drain {
                    started_at: seen.at,
                    credited: activity.credited_since,
                    spent: Money::ZERO,
                    events: Vec::new(),
                });
            }
        }
        activity.last_purchase_at = Some(seen.at);
        activity.credited_since = Money::ZERO;
        activity.credits_since = 0;
        let drain = activity.drain.as_mut()?;
        drain.spent = drain.spent.checked_add(seen.amount)?;
        if drain.events.len() < EVIDENCE_MAX {
            drain.events.push(Event::of(seen));
        }
        let spent = u64::try_from(drain.spent.minor()).unwrap_or(0);
        let credited = u64::try_from(drain.credited.minor()).unwrap_or(0);
        if spent.saturating_mul(100) < credited.saturating_mul(rule.drained_percent) {
            return None;
        }
        let fired = alert(
            Rule::DormantDrained,
            &seen.card.to_string(),
            seen,
            Some(seen.merchant),
            Some(seen.terminal),
            None,
            evidence(drain.events.iter()),
            percent_of(
                spent.saturating_mul(100),
                credited.saturating_mul(rule.drained_percent),
            ),
            format!(
                "a card idle for at least {} s spent Rp {} of the Rp {} credited meanwhile within {} s",
                rule.dormant_seconds, drain.spent, drain.credited, rule.drain_window_seconds
            ),
        );
        activity.drain = None;
        Some(fired)
    }

    /// Drops the keys whose windows hold nothing recent any more.
    pub(super) fn prune(&mut self, config: &MonitorConfig, now: i64) {
        let recent = |at: i64, window_seconds: i64| now.saturating_sub(at) <= window_seconds;
        self.collection.retain(|_, t| {
            t.window
                .back()
                .is_some_and(|e| recent(e.at, config.card_collection.window_seconds))
        });
        self.baskets.retain(|_, w| {
            w.back()
                .is_some_and(|(e, _)| recent(e.at, config.fixed_package.window_seconds))
        });
        self.disbursements
            .retain(|_, d| recent(d.at, config.sweep.window_seconds));
        self.splits.retain(|_, w| {
            w.back()
                .is_some_and(|(e, _)| recent(e.at, config.split_purchase.window_seconds))
        });
        self.wrong_pins.retain(|_, w| {
            w.back()
                .is_some_and(|e| recent(e.at, config.pin_guessing.window_seconds))
        });
        let week = now
            .saturating_add(WITA_OFFSET_SECONDS)
            .div_euclid(WEEK_SECONDS);
        self.prices.retain(|(_, w), _| *w >= week.saturating_sub(1));
        self.overpriced
            .retain(|(_, _, w), _| *w >= week.saturating_sub(1));
        self.terminals_at
            .retain(|_, (_, e)| recent(e.at, config.ghost_shop.borrowed_window_seconds));
    }
}

/// What identifies a basket: its lines (category, quantity, amount) in order.
fn basket_key(basket: &[BasketLine]) -> [u8; 8] {
    let mut lines: Vec<(&str, u8, i64)> = basket
        .iter()
        .map(|l| (l.category.as_str(), l.quantity, l.amount.minor()))
        .collect();
    lines.sort_unstable();
    let digest = Fingerprint::of(&lines);
    let mut key = [0; 8];
    key.copy_from_slice(&digest.0[..8]);
    key
}

/// Whether categories `90`-`99` (non-food) make up more than half the basket's amount.
fn mostly_non_food(basket: &[BasketLine]) -> bool {
    let (mut food, mut non_food) = (0i128, 0i128);
    for line in basket {
        let amount = i128::from(line.amount.minor());
        if line.category.as_bytes().first() == Some(&b'9') {
            non_food += amount;
        } else {
            food += amount;
        }
    }
    non_food > food
}
