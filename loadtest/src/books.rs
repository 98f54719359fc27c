//! The books check: the money the terminals saw move (approved purchases minus their approved
//! reversals) must equal what the journal holds for the run, per card and per E-Warong.
//!
//! The run's purchases in the journal are those whose key (DE41, DE11, DE7) is one the run
//! sent, so runs on the same city, even back to back in the same second, each check their
//! own; each counts when approved and not reversed. A purchase whose answer never
//! came was followed by a reversal advice, so it nets to nothing on both sides; one whose
//! advice was not answered either is *in doubt* and listed as such.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use std::path::Path;

use ssn_ledger::{
    PurchaseKey, Record, ResponseCode, ReversalEffect, ReversalRecord, VerifyError, read_journal,
};

/// Mismatches listed in the report; the count covers all of them.
pub const MISMATCHES_LISTED_MAX: usize = 20;

/// Net money per card and per E-Warong, in minor units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Books {
    /// Per card id.
    pub per_card: BTreeMap<u64, i64>,
    /// Per DE42.
    pub per_merchant: BTreeMap<String, i64>,
    /// Approved purchases counted (journal side: approved and not reversed).
    pub purchases: u64,
}

impl Books {
    /// Adds `amount` to `card` at `merchant`.
    pub fn add(&mut self, card: u64, merchant: &str, amount: i64) {
        let c = self.per_card.entry(card).or_default();
        *c = c.checked_add(amount).unwrap_or(i64::MAX);
        let m = self.per_merchant.entry(merchant.to_string()).or_default();
        *m = m.checked_add(amount).unwrap_or(i64::MAX);
    }

    fn without_zeros(&self) -> Books {
        Books {
            per_card: self
                .per_card
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (*k, *v))
                .collect(),
            per_merchant: self
                .per_merchant
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            purchases: self.purchases,
        }
    }
}

/// The keys (DE41, DE11, DE7) of every 0200 a run sent.
#[derive(Debug, Default)]
pub struct RunKeys {
    /// DE41 to the terminal's index in the run.
    terminals: HashMap<String, u32>,
    /// (terminal index, STAN, DE7 as a number).
    keys: HashSet<(u32, u32, u64)>,
}

/// Digits as a number (`None` for anything but ASCII digits).
pub fn digits_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, d| {
        d.is_ascii_digit()
            .then(|| acc.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

impl RunKeys {
    /// Registers a terminal of the run under `index`.
    pub fn terminal(&mut self, terminal_id: &str, index: u32) {
        self.terminals.insert(terminal_id.to_string(), index);
    }

    /// Adds a key the terminal `index` sent.
    pub fn insert(&mut self, index: u32, stan: u32, de7: u64) {
        self.keys.insert((index, stan, de7));
    }

    /// Whether the run sent this key.
    pub fn contains(&self, terminal_id: &str, stan: &str, de7: &str) -> bool {
        let (Some(index), Some(stan), Some(de7)) = (
            self.terminals.get(terminal_id),
            digits_value(stan.as_bytes()),
            digits_value(de7.as_bytes()),
        ) else {
            return false;
        };
        u32::try_from(stan).is_ok_and(|stan| self.keys.contains(&(*index, stan, de7)))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the run sent no 0200.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The run's purchases as the journal holds them: every entry read from the journal itself,
/// not the projection, which holds only the working set (purchases of a long run move to
/// history while it runs).
pub fn journaled(data_dir: &Path, run: &RunKeys) -> Result<Books, VerifyError> {
    let mut approved: HashMap<PurchaseKey, (u64, String, i64)> = HashMap::new();
    let mut reversed: HashSet<PurchaseKey> = HashSet::new();
    let ours = |key: &PurchaseKey| {
        run.contains(
            key.terminal.as_str(),
            key.stan.as_str(),
            key.transmitted.as_str(),
        )
    };
    read_journal(data_dir, &mut |entry| match &entry.record {
        Record::Purchase(purchase) if ours(&purchase.key) => {
            if let (ResponseCode::APPROVED, Some(card)) = (purchase.response.code, purchase.card) {
                approved.insert(
                    purchase.key.clone(),
                    (
                        card.0,
                        purchase.merchant.as_str().to_string(),
                        purchase.amount.minor(),
                    ),
                );
            }
        }
        Record::Reversal(ReversalRecord {
            original,
            effect: ReversalEffect::Reversed { .. },
        }) if ours(original) => {
            reversed.insert(original.clone());
        }
        _ => {}
    })?;
    let mut books = Books::default();
    for (key, (card, merchant, amount)) in &approved {
        if !reversed.contains(key) {
            books.add(*card, merchant, *amount);
            books.purchases += 1;
        }
    }
    Ok(books)
}

/// One difference between the terminals and the journal.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    /// `card` or `merchant`.
    pub scope: String,
    /// Card id or DE42.
    pub id: String,
    /// What the terminals saw, in minor units.
    pub seen_minor: i64,
    /// What the journal holds.
    pub journal_minor: i64,
    /// The card had a request whose outcome the terminals could not learn.
    pub in_doubt: bool,
}

/// The outcome of the books check.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BooksReport {
    /// True when every card and every E-Warong agree.
    pub ok: bool,
    /// Cards with money moved on either side.
    pub cards_checked: usize,
    /// E-Warong with money moved on either side.
    pub merchants_checked: usize,
    /// Approved, unreversed purchases of the run in the journal.
    pub journal_purchases: u64,
    /// Net money the terminals saw move, in minor units.
    pub seen_total_minor: i64,
    /// Net money the journal holds for the run.
    pub journal_total_minor: i64,
    /// Cards whose outcome the terminals could not learn.
    pub cards_in_doubt: usize,
    /// How many differences.
    pub mismatches_total: usize,
    /// The first differences.
    pub mismatches: Vec<Mismatch>,
}

impl BooksReport {
    /// One line for the text report.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} cards and {} E-Warong checked, {} purchases netting Rp {} in the journal, Rp {} seen; {} mismatches, {} cards in doubt",
            if self.ok { "OK" } else { "MISMATCH" },
            self.cards_checked,
            self.merchants_checked,
            self.journal_purchases,
            self.journal_total_minor / 100,
            self.seen_total_minor / 100,
            self.mismatches_total,
            self.cards_in_doubt
        )
    }
}

/// Compares what the terminals saw with what the journal holds.
pub fn compare(seen: &Books, journal: &Books, in_doubt: &HashSet<u64>) -> BooksReport {
    let seen = seen.without_zeros();
    let journal = journal.without_zeros();
    let mut mismatches = Vec::new();
    let cards: HashSet<u64> = seen
        .per_card
        .keys()
        .chain(journal.per_card.keys())
        .copied()
        .collect();
    let mut cards_sorted: Vec<u64> = cards.iter().copied().collect();
    cards_sorted.sort_unstable();
    for card in &cards_sorted {
        let s = seen.per_card.get(card).copied().unwrap_or(0);
        let j = journal.per_card.get(card).copied().unwrap_or(0);
        if s != j {
            mismatches.push(Mismatch {
                scope: "card".into(),
                id: card.to_string(),
                seen_minor: s,
                journal_minor: j,
                in_doubt: in_doubt.contains(card),
            });
        }
    }
    let merchants: HashSet<&String> = seen
        .per_merchant
        .keys()
        .chain(journal.per_merchant.keys())
        .collect();
    let mut merchants_sorted: Vec<&String> = merchants.iter().copied().collect();
    merchants_sorted.sort();
    for merchant in &merchants_sorted {
        let s = seen.per_merchant.get(*merchant).copied().unwrap_or(0);
        let j = journal.per_merchant.get(*merchant).copied().unwrap_or(0);
        if s != j {
            mismatches.push(Mismatch {
                scope: "merchant".into(),
                id: (*merchant).clone(),
                seen_minor: s,
                journal_minor: j,
                in_doubt: false,
            });
        }
    }
    let total = |b: &Books| {
        b.per_card
            .values()
            .fold(0i64, |a, v| a.checked_add(*v).unwrap_or(i64::MAX))
    };
    BooksReport {
        ok: mismatches.is_empty(),
        cards_checked: cards.len(),
        merchants_checked: merchants.len(),
        journal_purchases: journal.purchases,
        seen_total_minor: total(&seen),
        journal_total_minor: total(&journal),
        cards_in_doubt: in_doubt.len(),
        mismatches_total: mismatches.len(),
        mismatches: mismatches.into_iter().take(MISMATCHES_LISTED_MAX).collect(),
    }
}

/// Seen money of every terminal, per card and per E-Warong.
pub fn seen_books<'a>(
    per_terminal: impl IntoIterator<Item = (&'a str, &'a HashMap<u64, i64>)>,
) -> Books {
    let mut books = Books::default();
    for (merchant, cards) in per_terminal {
        for (card, amount) in cards {
            books.add(*card, merchant, *amount);
        }
    }
    books
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books(entries: &[(u64, &str, i64)]) -> Books {
        let mut b = Books::default();
        for (card, merchant, amount) in entries {
            b.add(*card, merchant, *amount);
        }
        b
    }

    #[test]
    fn run_keys_match_exactly() {
        let mut run = RunKeys::default();
        run.terminal("LT000001", 0);
        run.insert(0, 17, 1_129_223_045);
        assert!(run.contains("LT000001", "000017", "1129223045"));
        assert!(!run.contains("LT000001", "000018", "1129223045"));
        assert!(!run.contains("LT000002", "000017", "1129223045"));
        assert!(!run.contains("LT000001", "000017", "1129223046"));
    }

    #[test]
    fn equal_books_pass_and_zero_nets_are_ignored() {
        let seen = books(&[
            (1, "M1", 500),
            (2, "M1", 300),
            (3, "M2", 200),
            (3, "M2", -200),
        ]);
        let journal = books(&[(1, "M1", 500), (2, "M1", 300)]);
        let report = compare(&seen, &journal, &HashSet::new());
        assert!(report.ok, "{report:?}");
        assert_eq!(report.cards_checked, 2);
        assert_eq!(report.merchants_checked, 1);
    }

    #[test]
    fn a_missing_reversal_fails_per_card_and_per_merchant() {
        // The terminal saw a reversal the journal does not have.
        let seen = books(&[(1, "M1", 500), (1, "M1", -500), (2, "M1", 300)]);
        let journal = books(&[(1, "M1", 500), (2, "M1", 300)]);
        let report = compare(&seen, &journal, &HashSet::from([1]));
        assert!(!report.ok);
        assert_eq!(report.mismatches_total, 2);
        assert_eq!(report.mismatches[0].scope, "card");
        assert!(report.mismatches[0].in_doubt);
        assert_eq!(report.mismatches[1].scope, "merchant");
    }

    #[test]
    fn money_at_the_wrong_merchant_fails_even_when_cards_agree() {
        let seen = books(&[(1, "M1", 500)]);
        let journal = books(&[(1, "M2", 500)]);
        let report = compare(&seen, &journal, &HashSet::new());
        assert!(!report.ok);
        assert!(report.mismatches.iter().all(|m| m.scope == "merchant"));
    }
}
