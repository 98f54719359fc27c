//! Alerts as the registry keeps them: the monitor's [`Alert`] and where Dinas Sosial's review
//! of it stands. Alerts are evidence, so they live in the registry (durable, backed up with
//! it), not in the monitor's memory.

use super::Stored;
use crate::ids::MerchantId;
use crate::monitor::{Alert, Rule};
use serde::{Deserialize, Serialize};

/// Where an alert's review stands. `Open` moves to `Confirmed` or `Dismissed` once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum AlertStatus {
    /// Not reviewed yet.
    Open,
    /// Dinas Sosial found misuse.
    Confirmed,
    /// Dinas Sosial found none.
    Dismissed,
}

impl AlertStatus {
    /// The status's name in the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Confirmed => "confirmed",
            AlertStatus::Dismissed => "dismissed",
        }
    }

    /// The status named `name` ([`AlertStatus::as_str`]).
    pub fn parse(name: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Confirmed,
            AlertStatus::Dismissed,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// A stored alert.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AlertRecord {
    /// What the monitor raised, unchanged.
    pub alert: Alert,
    /// Where its review stands.
    pub status: AlertStatus,
    /// The reviewer's note, once decided.
    pub note: Option<String>,
    /// The token name that decided it.
    pub decided_by: Option<String>,
    /// When it was decided (UTC seconds).
    pub decided_at_unix_seconds: Option<i64>,
}

impl AlertRecord {
    /// An alert just raised, not reviewed yet.
    pub fn open(alert: Alert) -> AlertRecord {
        AlertRecord {
            alert,
            status: AlertStatus::Open,
            note: None,
            decided_by: None,
            decided_at_unix_seconds: None,
        }
    }
}

impl Stored for AlertRecord {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Which alerts a listing wants ([`crate::Registry::alerts`]); the default wants all.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AlertFilter {
    /// Only this rule.
    pub rule: Option<Rule>,
    /// Only alerts whose review stands here.
    pub status: Option<AlertStatus>,
    /// Only alerts about this E-Warong.
    pub merchant: Option<MerchantId>,
    /// Only alerts fired at or after this (UTC seconds).
    pub fired_from: i64,
    /// Only alerts fired at or before this (UTC seconds).
    pub fired_to: i64,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter {
            rule: None,
            status: None,
            merchant: None,
            fired_from: i64::MIN,
            fired_to: i64::MAX,
        }
    }
}

impl AlertFilter {
    /// Whether an alert whose index row is `row` and which fired at `fired_at` is wanted.
    pub(crate) fn admits(&self, fired_at: i64, row: &AlertIndexRow) -> bool {
        (self.fired_from..=self.fired_to).contains(&fired_at)
            && self.rule.is_none_or(|rule| row.rule == rule)
            && self.status.is_none_or(|status| row.status == status)
            && self
                .merchant
                .as_ref()
                .is_none_or(|m| row.merchant.as_ref() == Some(m))
    }
}

/// Where a listing of alerts stands: the key of the last alert of the previous page. Alerts
/// list newest first, by when they fired and then by id, both descending.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct AlertCursor {
    /// When the alert fired (UTC seconds).
    pub fired_at_unix_seconds: i64,
    /// Its id.
    pub id: String,
}

impl AlertCursor {
    /// The cursor that continues after `record`.
    pub fn after(record: &AlertRecord) -> AlertCursor {
        AlertCursor {
            fired_at_unix_seconds: record.alert.fired_at_unix_seconds,
            id: record.alert.id.clone(),
        }
    }
}

/// An alert's row in the index by time: what a filter looks at, so a listing reads only the
/// alerts of its page.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub(crate) struct AlertIndexRow {
    /// The alert's rule.
    pub rule: Rule,
    /// Where its review stands.
    pub status: AlertStatus,
    /// Its E-Warong.
    pub merchant: Option<MerchantId>,
}

impl AlertIndexRow {
    /// The index row of `record`.
    pub(crate) fn of(record: &AlertRecord) -> AlertIndexRow {
        AlertIndexRow {
            rule: record.alert.rule,
            status: record.status,
            merchant: record.alert.merchant.clone(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data; postcard cannot fail on it.
        postcard::to_stdvec(self).expect("alert index rows encode")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<AlertIndexRow> {
        postcard::from_bytes(bytes).ok()
    }
}
