//! The semester report's section on the misuse monitor's alerts (issue 22): per rule, how many
//! fired in the semester and where their review stands, and the E-Warong with a confirmed
//! alert. In its own module so that `report.rs` and `report_html.rs` do not grow with it.

use serde::Serialize;
use ssn_ledger::monitor::Rule;
use ssn_ledger::{AlertCursor, AlertFilter, AlertRecord, AlertStatus, Registry, RegistryError};
use utoipa::ToSchema;

/// One rule's alerts in the semester.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct AlertRuleRow {
    /// The rule.
    pub rule: String,
    /// Alerts fired in the semester.
    pub raised: u64,
    /// Of them, not reviewed yet.
    pub open: u64,
    /// Confirmed by Dinas Sosial.
    pub confirmed: u64,
    /// Dismissed by Dinas Sosial.
    pub dismissed: u64,
}

/// The section.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct AlertsSection {
    /// Every rule, in the order of issue 22, with zeros where none fired.
    pub rules: Vec<AlertRuleRow>,
    /// The E-Warong (DE42) with at least one confirmed alert fired in the semester, sorted.
    pub merchants_confirmed: Vec<String>,
}

/// Alerts read per registry call while a report gathers the semester's.
pub const REPORT_ALERTS_PAGE: usize = 1_000;

/// The alerts fired within `window` (UTC seconds, inclusive), read from the registry's index
/// by time a page at a time: a semester's alerts, never all of them.
pub async fn fired_within(
    registry: &dyn Registry,
    window: (i64, i64),
) -> Result<Vec<AlertRecord>, RegistryError> {
    let filter = AlertFilter {
        fired_from: window.0,
        fired_to: window.1,
        ..AlertFilter::default()
    };
    let mut alerts: Vec<AlertRecord> = Vec::new();
    loop {
        let after = alerts.last().map(AlertCursor::after);
        let page = registry
            .alerts(&filter, after.as_ref(), 0, REPORT_ALERTS_PAGE)
            .await?;
        let done = page.len() < REPORT_ALERTS_PAGE;
        alerts.extend(page);
        if done {
            return Ok(alerts);
        }
    }
}

/// The section for the alerts fired within `window` (UTC seconds, inclusive).
pub fn section(alerts: &[AlertRecord], window: (i64, i64)) -> AlertsSection {
    let (start, end) = window;
    let in_window: Vec<&AlertRecord> = alerts
        .iter()
        .filter(|r| (start..=end).contains(&r.alert.fired_at_unix_seconds))
        .collect();
    let rules = Rule::ALL
        .iter()
        .map(|rule| {
            let count = |status: Option<AlertStatus>| {
                in_window
                    .iter()
                    .filter(|r| r.alert.rule == *rule && status.is_none_or(|s| r.status == s))
                    .count() as u64
            };
            AlertRuleRow {
                rule: rule.as_str().into(),
                raised: count(None),
                open: count(Some(AlertStatus::Open)),
                confirmed: count(Some(AlertStatus::Confirmed)),
                dismissed: count(Some(AlertStatus::Dismissed)),
            }
        })
        .collect();
    let mut merchants_confirmed: Vec<String> = in_window
        .iter()
        .filter(|r| r.status == AlertStatus::Confirmed)
        .filter_map(|r| r.alert.merchant.as_ref().map(|m| m.as_str().to_string()))
        .collect();
    merchants_confirmed.sort();
    merchants_confirmed.dedup();
    AlertsSection {
        rules,
        merchants_confirmed,
    }
}

/// The section's CSV rows (`section,key,field,value`).
pub fn csv_rows(section: &AlertsSection, row: &mut impl FnMut(&str, &str, &str, &str)) {
    for r in &section.rules {
        for (field, value) in [
            ("raised", r.raised),
            ("open", r.open),
            ("confirmed", r.confirmed),
            ("dismissed", r.dismissed),
        ] {
            row("alerts", &r.rule, field, &value.to_string());
        }
    }
    for merchant in &section.merchants_confirmed {
        row(
            "alerts_confirmed_merchant",
            merchant,
            "merchant_id",
            merchant,
        );
    }
}

/// The rule's name for the Indonesian report.
fn rule_label(rule: &str) -> &'static str {
    match Rule::parse(rule) {
        Some(Rule::CardCollection) => "Pengumpulan kartu dan PIN",
        Some(Rule::FixedPackage) => "Paket sembako yang dipaksakan",
        Some(Rule::Sweep) => "Penyapuan setelah penyaluran",
        Some(Rule::SplitPurchase) => "Pembelian yang dipecah",
        Some(Rule::PinGuessing) => "Menebak PIN banyak kartu",
        Some(Rule::Price) => "Harga jauh di atas median kota",
        Some(Rule::GhostShop) => "E-Warong yang tidak menjual pangan",
        Some(Rule::BorrowedTerminal) => "Terminal dipinjam E-Warong lain",
        Some(Rule::DormantDrained) => "Kartu tidur dikuras sekaligus",
        None => "",
    }
}

/// The section's HTML: a heading, a table per rule and the E-Warong confirmed. `table` is the
/// report's own table writer, so the section looks like the others.
pub fn html(
    section: &AlertsSection,
    number: u32,
    table: impl Fn(&[&str], usize, &[Vec<String>]) -> String,
) -> String {
    let mut html = format!("<h2>{number}. Dugaan penyalahgunaan</h2>");
    let rows: Vec<Vec<String>> = section
        .rules
        .iter()
        .map(|r| {
            vec![
                rule_label(&r.rule).to_string(),
                r.raised.to_string(),
                r.open.to_string(),
                r.confirmed.to_string(),
                r.dismissed.to_string(),
            ]
        })
        .collect();
    html.push_str(&table(
        &["Pola", "Peringatan", "Terbuka", "Dikonfirmasi", "Ditolak"],
        1,
        &rows,
    ));
    if !section.merchants_confirmed.is_empty() {
        let rows: Vec<Vec<String>> = section
            .merchants_confirmed
            .iter()
            .map(|m| vec![m.clone()])
            .collect();
        html.push_str(&table(&["E-Warong dengan dugaan dikonfirmasi"], 1, &rows));
    }
    html.push_str(
        "<p class=\"note\">Peringatan tidak pernah menolak transaksi; Dinas Sosial memeriksa \
         setiap peringatan dan mengonfirmasi atau menolaknya.</p>",
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssn_ledger::monitor::{Alert, Evidence};
    use ssn_ledger::{MerchantId, Rrn};

    fn record(rule: Rule, at: i64, status: AlertStatus, merchant: &str) -> AlertRecord {
        AlertRecord {
            status,
            ..AlertRecord::open(Alert {
                id: format!("{at:x}"),
                rule,
                merchant: Some(MerchantId::new(merchant).unwrap()),
                terminal: None,
                program: None,
                cards: Vec::new(),
                evidence: vec![Evidence {
                    position: 1,
                    rrn: Rrn::new("000000000001").unwrap(),
                }],
                score_percent: 100,
                fired_at_unix_seconds: at,
                summary: String::new(),
            })
        }
    }

    #[test]
    fn counts_per_rule_and_status_within_the_semester_only() {
        let alerts = [
            record(Rule::Sweep, 10, AlertStatus::Open, "EWARONG00000001"),
            record(Rule::Sweep, 20, AlertStatus::Confirmed, "EWARONG00000002"),
            record(Rule::Price, 30, AlertStatus::Dismissed, "EWARONG00000003"),
            record(Rule::Price, 31, AlertStatus::Confirmed, "EWARONG00000002"),
            record(Rule::Sweep, 99, AlertStatus::Confirmed, "EWARONG00000009"),
        ];
        let section = section(&alerts, (10, 98));
        assert_eq!(section.rules.len(), Rule::ALL.len());
        let sweep = &section.rules[2];
        assert_eq!(
            (
                sweep.rule.as_str(),
                sweep.raised,
                sweep.open,
                sweep.confirmed
            ),
            ("sweep", 2, 1, 1)
        );
        let price = &section.rules[5];
        assert_eq!((price.raised, price.dismissed, price.confirmed), (2, 1, 1));
        assert_eq!(section.merchants_confirmed, vec!["EWARONG00000002"]);
        let mut rows = Vec::new();
        csv_rows(&section, &mut |s, k, f, v| {
            rows.push(format!("{s},{k},{f},{v}"))
        });
        assert!(rows.contains(&"alerts,sweep,raised,2".to_string()));
        let page = html(&section, 7, |head, _, rows| format!("{head:?}{rows:?}"));
        assert!(page.contains("Penyapuan setelah penyaluran"));
        assert!(page.contains("EWARONG00000002"));
    }
}
