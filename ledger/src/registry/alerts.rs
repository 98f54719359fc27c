//! Alerts as the registry keeps them: the monitor's [`Alert`] and where Dinas Sosial's review
//! of it stands. Alerts are evidence, so they live in the registry (durable, backed up with
//! it), not in the monitor's memory.

use super::Stored;
use crate::monitor::Alert;
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
