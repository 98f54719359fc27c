//! Misuse monitoring (issue 22): rules over the journal stream that raise [`Alert`]s.
//!
//! [`Monitor`] is pure: it is fed the journal's entries in log order ([`Monitor::observe`])
//! and looks up only what [`Limits`] tells it (a program's per-purchase maximum); it reads no
//! clock, no store and no environment, so a replay of the same journal raises the same alerts
//! with the same ids. It runs beside the switch, never on the authorization path: nothing it
//! does can delay or decline a purchase, and an alert is a reason for Dinas Sosial to look,
//! never a verdict.
//!
//! What each rule watches, and its thresholds, is in [`MonitorConfig`]; the per-key windows
//! are in `rules.rs`. Every window is bounded in time and in events
//! ([`EVENTS_PER_KEY_MAX`]), keys idle longer than every window are dropped
//! ([`PRUNE_EVERY_RECORDS`]), and an alert carries at most [`EVIDENCE_MAX`] journal entries.
//! Reversals are not looked at: a pattern is what was attempted, whatever was undone later.
//! Rule 8's other half, cards delivered but never used, is a list, not an alarm: the semester
//! report's `cards-never-used` (admin API) already serves it.

mod checkpoint;
mod config;
mod follow;
mod rules;
#[cfg(test)]
mod tests;

pub use checkpoint::MONITOR_RESUME_SEARCH_ENTRIES;
pub use config::{
    CardCollectionConfig, DormantConfig, FixedPackageConfig, GhostShopConfig, MonitorConfig,
    PinGuessingConfig, PriceConfig, RepeatConfig, SplitPurchaseConfig, SweepConfig,
};
pub use follow::{
    MONITOR_ALERTS_PER_WRITE_MAX, MONITOR_BATCH_ENTRIES_MAX, MONITOR_CHECKPOINT_EVERY_ENTRIES,
    MONITOR_CHECKPOINT_INTERVAL, MONITOR_PENDING_ALERTS_MAX, MONITOR_POLL_INTERVAL,
    MonitorFollower, Round,
};

use crate::ids::{CardId, Fingerprint, MerchantId, ProgramCode, Rrn, TerminalId, hex};
use crate::money::Money;
use crate::record::{Entry, Record};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Journal entries named as evidence by one alert, at most.
pub const EVIDENCE_MAX: usize = 32;
/// Events one window keeps per key (terminal, E-Warong, card): the oldest go first.
pub const EVENTS_PER_KEY_MAX: usize = 4_096;
/// Records between two sweeps of keys whose windows are empty.
pub const PRUNE_EVERY_RECORDS: u64 = 65_536;

/// A misuse pattern the monitor looks for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Rule {
    /// One terminal serving many distinct cards in a short window, or PINs of many cards
    /// entered in rapid succession (a facilitator holding the cards).
    CardCollection,
    /// The same basket on many cards at one E-Warong (a forced package).
    FixedPackage,
    /// A large share of a program's cards spent at one E-Warong within hours of its
    /// disbursement.
    Sweep,
    /// Several purchases on one card at one terminal within minutes that together exceed the
    /// program's per-purchase maximum.
    SplitPurchase,
    /// Wrong PINs on several cards at one terminal.
    PinGuessing,
    /// Items priced far above the city's median for their category that week.
    Price,
    /// An E-Warong whose approved baskets are mostly not food.
    GhostShop,
    /// A terminal seen at more than one E-Warong.
    BorrowedTerminal,
    /// A card unused for months, then emptied at once.
    DormantDrained,
}

impl Rule {
    /// Every rule, in the order of issue 22.
    pub const ALL: [Rule; 9] = [
        Rule::CardCollection,
        Rule::FixedPackage,
        Rule::Sweep,
        Rule::SplitPurchase,
        Rule::PinGuessing,
        Rule::Price,
        Rule::GhostShop,
        Rule::BorrowedTerminal,
        Rule::DormantDrained,
    ];

    /// The rule's name in the API, the metrics and the load harness's labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::CardCollection => "card_collection",
            Rule::FixedPackage => "fixed_package",
            Rule::Sweep => "sweep",
            Rule::SplitPurchase => "split_purchase",
            Rule::PinGuessing => "pin_guessing",
            Rule::Price => "price",
            Rule::GhostShop => "ghost_shop",
            Rule::BorrowedTerminal => "borrowed_terminal",
            Rule::DormantDrained => "dormant_drained",
        }
    }

    /// The rule named `name` ([`Rule::as_str`]).
    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.as_str() == name)
    }
}

/// One journal entry behind an alert.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Evidence {
    /// The entry's position in the journal (its log number).
    pub position: u64,
    /// The purchase's DE37, which the E-Warong's receipt and the bank's statement show.
    pub rrn: Rrn,
}

/// What one rule saw: enough for Dinas Sosial to go and look.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Alert {
    /// Derived from the rule, what it watched and the entry that completed the pattern, so a
    /// replay of the journal raises the same id (storing it again changes nothing).
    pub id: String,
    /// Which pattern.
    pub rule: Rule,
    /// The E-Warong (DE42), when the pattern has one.
    pub merchant: Option<MerchantId>,
    /// The terminal (DE41), when the pattern has one.
    pub terminal: Option<TerminalId>,
    /// The program, for sweeps.
    pub program: Option<ProgramCode>,
    /// The cards involved (ids, never PANs: whoever shows them masks the PAN), at most
    /// [`EVIDENCE_MAX`].
    pub cards: Vec<CardId>,
    /// The journal entries behind it, oldest first, at most [`EVIDENCE_MAX`].
    pub evidence: Vec<Evidence>,
    /// How far past its threshold the rule was, in percent (100: exactly at it).
    pub score_percent: u32,
    /// When the entry that completed the pattern was accepted (UTC seconds).
    pub fired_at_unix_seconds: i64,
    /// One sentence on what was seen, in numbers; never card data.
    pub summary: String,
}

/// What the monitor needs from the registry.
pub trait Limits {
    /// A program's largest single purchase (`Program::purchase_amount_max`); `None` for a
    /// program it does not know (split purchases of it are not judged).
    fn purchase_amount_max(&self, program: &ProgramCode) -> Option<Money>;
}

impl Limits for HashMap<ProgramCode, Money> {
    fn purchase_amount_max(&self, program: &ProgramCode) -> Option<Money> {
        self.get(program).copied()
    }
}

/// One approved or declined purchase as the rules read it.
pub(crate) struct Seen<'a> {
    pub position: u64,
    pub at: i64,
    pub card: CardId,
    pub terminal: &'a TerminalId,
    pub merchant: &'a MerchantId,
    pub rrn: &'a Rrn,
    pub approved: bool,
    pub wrong_pin: bool,
    pub amount: Money,
    pub record: &'a crate::record::PurchaseRecord,
}

/// The rules' state over the journal read so far.
pub struct Monitor {
    /// Thresholds and windows.
    config: MonitorConfig,
    /// Each rule's windows.
    rules: rules::Rules,
    /// Records observed, for pruning.
    observed: u64,
    /// The next position expected, for the assertion that entries come in log order.
    next_position: u64,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The windows are large and say nothing a reader of this line needs.
        f.debug_struct("Monitor")
            .field("config", &self.config)
            .field("next_position", &self.next_position)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor that has seen nothing yet.
    pub fn new(config: MonitorConfig) -> Monitor {
        Monitor {
            config,
            rules: rules::Rules::default(),
            observed: 0,
            next_position: 0,
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The position after the last entry observed: where a follower resumes.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Feeds the entry at `position` (entries must come in log order; one seen already is
    /// ignored) and returns the alerts it completes.
    pub fn observe(&mut self, position: u64, entry: &Entry, limits: &dyn Limits) -> Vec<Alert> {
        if position < self.next_position {
            return Vec::new();
        }
        self.next_position = position.saturating_add(1);
        self.observed = self.observed.wrapping_add(1);
        let at = entry.at_unix_seconds;
        if self.observed.is_multiple_of(PRUNE_EVERY_RECORDS) {
            self.rules.prune(&self.config, at);
            let quiet = self.config.repeat.quiet_seconds;
            self.rules
                .raised
                .retain(|_, raised| at.saturating_sub(*raised) < quiet);
        }
        let mut alerts = self.match_rules(position, entry, limits);
        let quiet = self.config.repeat.quiet_seconds;
        alerts.retain(|alert| {
            let subject = Subject::of(alert);
            match self.rules.raised.get(&subject) {
                Some(raised) if alert.fired_at_unix_seconds.saturating_sub(*raised) < quiet => {
                    false
                }
                _ => {
                    self.rules
                        .raised
                        .insert(subject, alert.fired_at_unix_seconds);
                    true
                }
            }
        });
        alerts
    }

    /// What the rules make of one entry, before repeats are held back.
    fn match_rules(&mut self, position: u64, entry: &Entry, limits: &dyn Limits) -> Vec<Alert> {
        let at = entry.at_unix_seconds;
        match &entry.record {
            Record::Disbursement {
                program, credits, ..
            } => {
                self.rules.disbursed(&self.config, program, credits, at);
                Vec::new()
            }
            Record::Purchase(purchase) => {
                let Some(card) = purchase.card else {
                    return Vec::new();
                };
                let code = purchase.response.code.as_str();
                let seen = Seen {
                    position,
                    at,
                    card,
                    terminal: &purchase.key.terminal,
                    merchant: &purchase.merchant,
                    rrn: &purchase.response.rrn,
                    approved: code == "00",
                    wrong_pin: code == "55" || code == "75",
                    amount: purchase.amount,
                    record: purchase,
                };
                self.rules.purchase(&self.config, &seen, limits)
            }
            _ => Vec::new(),
        }
    }
}

/// What an alert is about, for [`RepeatConfig`]: the rule and where it looked. Rules about
/// one card (split purchases, dormant cards) count each card apart; the others, the terminal
/// or E-Warong (and program) whatever cards were involved.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub(crate) struct Subject {
    rule: Rule,
    merchant: Option<MerchantId>,
    terminal: Option<TerminalId>,
    program: Option<ProgramCode>,
    card: Option<CardId>,
}

impl Subject {
    fn of(alert: &Alert) -> Subject {
        let card = match alert.rule {
            Rule::SplitPurchase | Rule::DormantDrained => alert.cards.first().copied(),
            _ => None,
        };
        Subject {
            rule: alert.rule,
            merchant: alert.merchant.clone(),
            terminal: alert.terminal.clone(),
            program: alert.program.clone(),
            card,
        }
    }
}

/// Builds an alert; the id hashes the rule, `subject` (what it watched) and the position of
/// the entry that completed the pattern.
#[allow(clippy::too_many_arguments)]
pub(crate) fn alert(
    rule: Rule,
    subject: &str,
    seen: &Seen<'_>,
    merchant: Option<&MerchantId>,
    terminal: Option<&TerminalId>,
    program: Option<&ProgramCode>,
    evidence: Vec<(CardId, Evidence)>,
    score_percent: u32,
    summary: String,
) -> Alert {
    let id = Fingerprint::of(&(rule.as_str(), subject, seen.position));
    let start = evidence.len().saturating_sub(EVIDENCE_MAX);
    let evidence = &evidence[start..];
    let mut cards: Vec<CardId> = Vec::with_capacity(evidence.len());
    for (card, _) in evidence {
        if !cards.contains(card) {
            cards.push(*card);
        }
    }
    Alert {
        id: hex(&id.0[..16]),
        rule,
        merchant: merchant.cloned(),
        terminal: terminal.cloned(),
        program: program.cloned(),
        cards,
        evidence: evidence.iter().map(|(_, e)| e.clone()).collect(),
        score_percent,
        fired_at_unix_seconds: seen.at,
        summary,
    }
}

/// `observed` as a percentage of `threshold` (a threshold of zero counts as one).
pub(crate) fn percent_of(observed: u64, threshold: u64) -> u32 {
    let percent = observed.saturating_mul(100) / threshold.max(1);
    u32::try_from(percent).unwrap_or(u32::MAX)
}
