//! What a card or an E-Warong was on a past day: the dated changes their records keep, read back
//! by the semester report, which counts lost, stolen, damaged and replaced cards, locked PINs
//! and active E-Warong as of the semester's last day, not as of the day it is made.
//!
//! The records are the truth, not the audit log: the switch locks a PIN on the third wrong one
//! without any API token, so the audit log never sees it, and the records are what terminals
//! are answered from. Each change keeps the state it left as well as the one it made, so a day
//! before the earliest kept change reads as the state that change left; a record with no
//! change recorded (one written before the registry kept them) reads as it is now.

use crate::day::Day;
use serde::{Deserialize, Serialize};

use super::types::{Card, CardStatus, Merchant, MerchantKind, Pan, Pvv, Stored, current_or_older};
use crate::ids::{CardId, MerchantId};

/// Changes a card keeps, the latest; older ones are dropped (a day before the earliest kept
/// reads as the state that change left). A card's lifecycle has a handful; the rest are
/// PIN locks and unlocks, and every purchase reads the record.
pub const CARD_CHANGES_MAX: usize = 32;

/// Suspensions and activations an E-Warong keeps, the latest.
pub const MERCHANT_CHANGES_MAX: usize = 32;

/// A dated change of a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardChange {
    /// The WITA day it was recorded; the card is changed from the end of that day.
    pub on: Day,
    /// What changed.
    pub what: CardEvent,
}

/// What changed on a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardEvent {
    /// Its status (delivered, blocked, unblocked, reported lost, stolen or damaged, replaced).
    Status {
        /// Before.
        from: CardStatus,
        /// After.
        to: CardStatus,
    },
    /// The third wrong PIN in a row locked its PIN.
    PinLocked,
    /// A PIN reset unlocked a locked PIN.
    PinUnlocked,
    /// A new card replaced it.
    Replaced,
}

impl Card {
    /// Records `what` on `day`, keeping the latest [`CARD_CHANGES_MAX`] changes.
    pub fn record_change(&mut self, what: CardEvent, day: Day) {
        if self.changes.len() >= CARD_CHANGES_MAX {
            self.changes.remove(0);
        }
        self.changes.push(CardChange { on: day, what });
    }

    /// Sets the status on `day`, recording the change (none when it is the same).
    pub fn set_status(&mut self, to: CardStatus, day: Day) {
        if self.status != to {
            let from = std::mem::replace(&mut self.status, to);
            self.record_change(CardEvent::Status { from, to }, day);
        }
    }

    /// Sets the wrong-PIN count on `day`, recording a lock (the count reaching
    /// [`super::WRONG_PIN_COUNT_MAX`]) or an unlock.
    pub fn set_wrong_pin_count(&mut self, count: u8, day: Day) {
        let was_locked = self.pin_locked();
        self.wrong_pin_count = count;
        match (was_locked, self.pin_locked()) {
            (false, true) => self.record_change(CardEvent::PinLocked, day),
            (true, false) => self.record_change(CardEvent::PinUnlocked, day),
            _ => {}
        }
    }

    /// Marks the card replaced by `new_card` on `day`: a lost or stolen card keeps saying so
    /// (`41`/`43`), any other becomes `replaced`.
    pub fn mark_replaced(&mut self, new_card: CardId, day: Day) {
        if !matches!(self.status, CardStatus::Lost | CardStatus::Stolen) {
            self.set_status(CardStatus::Replaced, day);
        }
        self.replaced_by = Some(new_card);
        self.record_change(CardEvent::Replaced, day);
    }

    /// The status at the end of `day`, as far as the card recorded its changes.
    pub fn status_on(&self, day: Day) -> CardStatus {
        let statuses = self.changes.iter().filter_map(|change| match change.what {
            CardEvent::Status { from, to } => Some((change.on, from, to)),
            _ => None,
        });
        as_of(statuses, day).unwrap_or(self.status)
    }

    /// Whether the PIN was locked at the end of `day`.
    pub fn pin_locked_on(&self, day: Day) -> bool {
        let locks = self.changes.iter().filter_map(|change| match change.what {
            CardEvent::PinLocked => Some((change.on, false, true)),
            CardEvent::PinUnlocked => Some((change.on, true, false)),
            _ => None,
        });
        as_of(locks, day).unwrap_or(self.pin_locked())
    }

    /// Whether another card had replaced it by the end of `day`; a replacement recorded
    /// without its day counts whatever the day.
    pub fn replaced_on(&self, day: Day) -> bool {
        let replaced = self.changes.iter().find_map(|change| match change.what {
            CardEvent::Replaced => Some(change.on),
            _ => None,
        });
        self.replaced_by.is_some() && replaced.is_none_or(|on| on <= day)
    }
}

/// The state at the end of `day` from changes `(on, from, to)`, oldest first: what the last
/// change by then made, or else what the first after it left; `None` without changes.
fn as_of<T: Copy>(changes: impl Iterator<Item = (Day, T, T)>, day: Day) -> Option<T> {
    let mut before_first = None;
    let mut last = None;
    for (on, from, to) in changes {
        if on <= day {
            last = Some(to);
        } else if before_first.is_none() {
            before_first = Some(from);
        }
    }
    last.or(before_first)
}

/// A dated suspension or activation of an E-Warong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantChange {
    /// The WITA day it was recorded.
    pub on: Day,
    /// True for an activation, false for a suspension.
    pub active: bool,
}

impl Merchant {
    /// Suspends (`false`) or activates (`true`) the E-Warong on `day`, recording it.
    pub fn set_active(&mut self, active: bool, day: Day) {
        if self.active != active {
            self.active = active;
            if self.changes.len() >= MERCHANT_CHANGES_MAX {
                self.changes.remove(0);
            }
            self.changes.push(MerchantChange { on: day, active });
        }
    }

    /// Whether it had been appointed by the end of `day` (one appointed before the registry
    /// recorded the day counts whatever the day).
    pub fn appointed_by(&self, day: Day) -> bool {
        self.appointed_on.is_none_or(|on| on <= day)
    }

    /// Whether it was an active E-Warong at the end of `day`: appointed by then and not
    /// suspended.
    pub fn active_on(&self, day: Day) -> bool {
        let changes = self
            .changes
            .iter()
            .map(|change| (change.on, !change.active, change.active));
        self.appointed_by(day) && as_of(changes, day).unwrap_or(self.active)
    }
}

/// [`Merchant`] as stored before it had `appointed_on` and `changes`.
#[derive(Deserialize)]
struct MerchantV1 {
    merchant_id: MerchantId,
    name: String,
    kind: MerchantKind,
    kecamatan: String,
    kelurahan: String,
    settlement_account: String,
    active: bool,
}

impl Stored for Merchant {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: MerchantV1| Merchant {
            merchant_id: old.merchant_id,
            name: old.name,
            kind: old.kind,
            kecamatan: old.kecamatan,
            kelurahan: old.kelurahan,
            settlement_account: old.settlement_account,
            active: old.active,
            appointed_on: None,
            changes: Vec::new(),
        })
    }
}

/// [`Card`] as stored with `issued_on` and `delivered_on`, before it had `changes`.
#[derive(Deserialize)]
pub(super) struct CardV2 {
    card_id: CardId,
    ssn: String,
    pan: Pan,
    expiry: String,
    status: CardStatus,
    pvv: Pvv,
    wrong_pin_count: u8,
    replaced_by: Option<CardId>,
    issued_on: Option<Day>,
    delivered_on: Option<Day>,
}

impl From<CardV2> for Card {
    fn from(old: CardV2) -> Card {
        Card {
            card_id: old.card_id,
            ssn: old.ssn,
            pan: old.pan,
            expiry: old.expiry,
            status: old.status,
            pvv: old.pvv,
            wrong_pin_count: old.wrong_pin_count,
            replaced_by: old.replaced_by,
            issued_on: old.issued_on,
            delivered_on: old.delivered_on,
            changes: Vec::new(),
        }
    }
}

/// Card 5 of `SSN000000001`, issued on 2026-01-10, never changed.
#[cfg(test)]
pub(super) fn sample_card() -> Card {
    Card {
        card_id: CardId(5),
        ssn: "SSN000000001".into(),
        pan: Pan("6048720000000051".into()),
        expiry: "3112".into(),
        status: CardStatus::Issued,
        pvv: Pvv("1234".into()),
        wrong_pin_count: 0,
        replaced_by: None,
        issued_on: Day::parse_iso("2026-01-10"),
        delivered_on: None,
        changes: Vec::new(),
    }
}

/// An active E-Warong in Palaran appointed before the registry recorded the day.
#[cfg(test)]
pub(super) fn sample_merchant() -> Merchant {
    Merchant {
        merchant_id: MerchantId::new("EWARONG00000001").expect("a DE42"),
        name: "Warung Bu Siti".into(),
        kind: MerchantKind::Mikro,
        kecamatan: "Palaran".into(),
        kelurahan: "Rawa Makmur".into(),
        settlement_account: "0012345678".into(),
        active: true,
        appointed_on: None,
        changes: Vec::new(),
    }
}

/// `card` as the version before dated changes stored it.
#[cfg(test)]
pub(super) fn card_v2_bytes(card: &Card) -> Vec<u8> {
    postcard::to_stdvec(&(
        card.card_id,
        &card.ssn,
        &card.pan,
        &card.expiry,
        card.status,
        &card.pvv,
        card.wrong_pin_count,
        card.replaced_by,
        card.issued_on,
        card.delivered_on,
    ))
    .expect("a card encodes")
}

/// `merchant` as the version before dated changes stored it.
#[cfg(test)]
pub(super) fn merchant_v1_bytes(merchant: &Merchant) -> Vec<u8> {
    postcard::to_stdvec(&(
        &merchant.merchant_id,
        &merchant.name,
        merchant.kind,
        &merchant.kecamatan,
        &merchant.kelurahan,
        &merchant.settlement_account,
        merchant.active,
    ))
    .expect("an E-Warong encodes")
}

#[cfg(test)]
mod tests {
    use super::super::types::{RegistryRecord, WRONG_PIN_COUNT_MAX};
    use super::*;

    fn day(text: &str) -> Day {
        Day::parse_iso(text).unwrap()
    }

    fn card() -> Card {
        sample_card()
    }

    /// A card's status, PIN lock and replacement read as they were on each day.
    #[test]
    fn a_card_reads_as_it_was_on_a_past_day() {
        let mut card = card();
        card.set_status(CardStatus::Active, day("2026-02-01"));
        card.set_wrong_pin_count(1, day("2026-03-01"));
        card.set_wrong_pin_count(WRONG_PIN_COUNT_MAX, day("2026-03-02"));
        card.set_wrong_pin_count(0, day("2026-05-01"));
        card.set_wrong_pin_count(WRONG_PIN_COUNT_MAX, day("2026-09-01"));
        card.set_status(CardStatus::Lost, day("2026-10-05"));
        card.mark_replaced(CardId(6), day("2026-10-06"));
        assert_eq!(card.status, CardStatus::Lost);
        assert_eq!(card.status_on(day("2026-01-31")), CardStatus::Issued);
        assert_eq!(card.status_on(day("2026-06-30")), CardStatus::Active);
        assert_eq!(card.status_on(day("2026-10-05")), CardStatus::Lost);
        assert!(!card.pin_locked_on(day("2026-03-01")));
        assert!(card.pin_locked_on(day("2026-04-30")));
        assert!(!card.pin_locked_on(day("2026-06-30")));
        assert!(card.pin_locked_on(day("2026-12-31")));
        assert!(!card.replaced_on(day("2026-06-30")));
        assert!(card.replaced_on(day("2026-10-06")));
        // A damaged card replaced reads damaged until its replacement.
        let mut damaged = self::card();
        damaged.set_status(CardStatus::Damaged, day("2026-04-01"));
        damaged.mark_replaced(CardId(7), day("2026-08-01"));
        assert_eq!(damaged.status, CardStatus::Replaced);
        assert_eq!(damaged.status_on(day("2026-06-30")), CardStatus::Damaged);
        assert_eq!(damaged.status_on(day("2026-03-31")), CardStatus::Issued);
    }

    /// Past the limit the oldest changes go; a day before the earliest kept reads as the
    /// state it left, so recent days stay exact.
    #[test]
    fn a_card_keeps_its_latest_changes() {
        let mut card = card();
        let start = day("2026-01-01");
        for i in 0..CARD_CHANGES_MAX as i32 + 3 {
            let to = if i % 2 == 0 {
                CardStatus::Active
            } else {
                CardStatus::Blocked
            };
            card.set_status(to, Day(start.0 + i));
        }
        assert_eq!(card.changes.len(), CARD_CHANGES_MAX);
        let last = Day(start.0 + CARD_CHANGES_MAX as i32 + 2);
        assert_eq!(card.status_on(last), card.status);
        assert_ne!(card.status_on(Day(last.0 - 1)), card.status);
        // The earliest kept change tells what came before it.
        let CardEvent::Status { from, .. } = card.changes[0].what else {
            panic!("a status change")
        };
        assert_eq!(card.status_on(start), from);
    }

    /// A card stored before it kept changes, or stored without its dates at all, reads as it
    /// is now whatever the day, and a `Replace` expecting what was read matches its bytes.
    #[test]
    fn a_card_stored_before_it_kept_changes_reads_as_it_is() {
        let mut card = card();
        card.status = CardStatus::Lost;
        card.wrong_pin_count = WRONG_PIN_COUNT_MAX;
        card.replaced_by = Some(CardId(6));
        let old = card_v2_bytes(&card);
        let read = Card::from_stored(&old).expect("the second layout reads");
        assert_eq!(read, card);
        let long_ago = day("2020-01-01");
        assert_eq!(read.status_on(long_ago), CardStatus::Lost);
        assert!(read.pin_locked_on(long_ago) && read.replaced_on(long_ago));
        assert!(RegistryRecord::Card(read.clone()).is_stored_as(&old));
        let stored = postcard::to_stdvec(&read).unwrap();
        assert_eq!(Card::from_stored(&stored), Some(read));
    }

    /// An E-Warong counts active from its appointment, as its suspensions and activations
    /// say; one stored before it kept them reads as it is now, appointed whatever the day.
    #[test]
    fn an_e_warong_reads_as_it_was_on_a_past_day() {
        let mut merchant = sample_merchant();
        merchant.appointed_on = Some(day("2026-08-01"));
        assert!(!merchant.active_on(day("2026-06-30")));
        assert!(merchant.active_on(day("2026-08-01")));
        merchant.set_active(false, day("2026-09-01"));
        merchant.set_active(true, day("2026-11-01"));
        assert!(!merchant.active_on(day("2026-10-31")));
        assert!(merchant.active_on(day("2026-12-31")));

        merchant.active = false;
        let old = merchant_v1_bytes(&merchant);
        let read = Merchant::from_stored(&old).expect("the old layout reads");
        assert_eq!((read.appointed_on, read.changes.len()), (None, 0));
        assert!(read.appointed_by(day("2020-01-01")));
        assert!(!read.active_on(day("2020-01-01")));
        assert!(RegistryRecord::Merchant(read.clone()).is_stored_as(&old));
        let stored = postcard::to_stdvec(&read).unwrap();
        assert_eq!(Merchant::from_stored(&stored), Some(read));
    }
}
