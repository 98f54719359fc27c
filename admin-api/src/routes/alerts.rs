//! The misuse monitor's alerts (issue 22): listed and read by every role, reviewed by Dinas
//! Sosial (open → confirmed or dismissed, with a note, audited), and the bank's suspension of
//! an E-Warong from a confirmed alert (the same audited change as `POST
//! /merchants/{id}/suspend`). Alerts are raised by the monitor beside the switch; nothing here
//! raises one, and no alert declines a purchase.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use ssn_ledger::monitor::Rule;
use ssn_ledger::{
    AlertFilter, AlertRecord, AlertStatus, CardId, MerchantId, RegistryOp, RegistryRecord, Role,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::routes::merchants::{MerchantView, set_merchant_active};
use crate::support::{Caller, JsonBody, Page, Paging, QueryParams, window, wita_time};

/// Longest review note, in characters.
pub const ALERT_NOTE_CHARS_MAX: usize = 1_000;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(review_alert))
        .routes(routes!(suspend_from_alert))
}

/// Filters of the alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only this rule: `card_collection`, `fixed_package`, `sweep`, `split_purchase`,
    /// `pin_guessing`, `price`, `ghost_shop`, `borrowed_terminal` or `dormant_drained`.
    pub rule: Option<String>,
    /// Only `open`, `confirmed` or `dismissed` alerts.
    pub status: Option<String>,
    /// Only alerts about this E-Warong (DE42).
    pub merchant_id: Option<String>,
    /// First day the alert fired (`YYYY-MM-DD`, WITA), inclusive.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 1000.
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
}

/// A card named by an alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertCard {
    /// The card's id.
    pub card_id: u64,
    /// Its PAN, masked; absent if the registry no longer knows the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan: Option<String>,
}

/// A journal entry behind an alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEvidence {
    /// Its number in the transaction log.
    pub position: u64,
    /// The purchase's DE37.
    pub rrn: String,
}

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Stable across replays of the journal.
    pub id: String,
    /// The rule that fired.
    pub rule: String,
    /// `open`, `confirmed` or `dismissed`.
    pub status: String,
    /// DE42, when the pattern has an E-Warong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    /// DE41, when the pattern has a terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// The program, for sweeps after a disbursement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_code: Option<String>,
    /// The cards involved, PANs masked.
    pub cards: Vec<AlertCard>,
    /// The journal entries behind it, oldest first.
    pub evidence: Vec<AlertEvidence>,
    /// How far past its threshold the rule was, percent (100: at it).
    pub score_percent: u32,
    /// When the entry that completed the pattern was accepted (WITA).
    pub fired_at: String,
    /// What was seen, in numbers.
    pub summary: String,
    /// The reviewer's note, once reviewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The token that reviewed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// When (WITA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
}

/// Dinas Sosial's decision on an open alert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertReview {
    /// `confirmed` or `dismissed`.
    #[schema(example = "confirmed")]
    pub status: String,
    /// What the visit or the check found, 1 to 1000 characters.
    #[schema(
        min_length = 1,
        max_length = 1000,
        example = "cards held by the shop owner"
    )]
    pub note: String,
}

async fn views(state: &AdminState, records: Vec<AlertRecord>) -> ApiResult<Vec<AlertView>> {
    let mut pans: HashMap<CardId, Option<String>> = HashMap::new();
    for record in &records {
        for card in &record.alert.cards {
            if !pans.contains_key(card) {
                let pan = state.ledger.registry().card(*card).await?;
                pans.insert(*card, pan.map(|c| c.pan.masked()));
            }
        }
    }
    Ok(records.into_iter().map(|r| view(r, &pans)).collect())
}

fn view(record: AlertRecord, pans: &HashMap<CardId, Option<String>>) -> AlertView {
    let alert = record.alert;
    AlertView {
        id: alert.id,
        rule: alert.rule.as_str().into(),
        status: record.status.as_str().into(),
        merchant_id: alert.merchant.map(|m| m.as_str().into()),
        terminal_id: alert.terminal.map(|t| t.as_str().into()),
        program_code: alert.program.map(|p| p.as_str().into()),
        cards: alert
            .cards
            .iter()
            .map(|card| AlertCard {
                card_id: card.0,
                pan: pans.get(card).cloned().flatten(),
            })
            .collect(),
        evidence: alert
            .evidence
            .into_iter()
            .map(|e| AlertEvidence {
                position: e.position,
                rrn: e.rrn.as_str().into(),
            })
            .collect(),
        score_percent: alert.score_percent,
        fired_at: wita_time(alert.fired_at_unix_seconds),
        summary: alert.summary,
        note: record.note,
        reviewed_by: record.decided_by,
        reviewed_at: record.decided_at_unix_seconds.map(wita_time),
    }
}

async fn find_alert(state: &AdminState, id: &str) -> ApiResult<AlertRecord> {
    let not_found = || ApiError::not_found(format!("no alert {id}"));
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    state
        .ledger
        .registry()
        .alert(id)
        .await?
        .ok_or_else(not_found)
}

/// Alerts, newest first, filtered.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, description = "A page of alerts, newest first", body = Page<AlertView>)))]
pub(crate) async fn list_alerts(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(query): QueryParams<AlertQuery>,
) -> ApiResult<Json<Page<AlertView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    let (page, size) = paging.resolve()?;
    let rule = match query.rule.as_deref() {
        Some(name) => Some(Rule::parse(name).ok_or_else(|| {
            ApiError::malformed(format!(
                "rule is one of {}",
                Rule::ALL.map(|r| r.as_str()).join(", ")
            ))
        })?),
        None => None,
    };
    let status = match query.status.as_deref() {
        Some(name) => Some(
            AlertStatus::parse(name)
                .ok_or_else(|| ApiError::malformed("status is open, confirmed or dismissed"))?,
        ),
        None => None,
    };
    let merchant = query
        .merchant_id
        .map(MerchantId::new)
        .transpose()
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    let (fired_from, fired_to) = window(query.from.as_deref(), query.to.as_deref())?;
    let filter = AlertFilter {
        rule,
        status,
        merchant,
        fired_from,
        fired_to,
    };
    // Paged where the alerts are: the store reads its index by time for the filter and then
    // only this page's alerts; their cards' PANs are looked up per card shown.
    let registry = state.ledger.registry();
    let total = registry.alerts_count(&filter).await?;
    let skip = (u64::from(page) - 1).saturating_mul(u64::from(size));
    let records = registry
        .alerts(
            &filter,
            None,
            skip,
            usize::try_from(size).unwrap_or(usize::MAX),
        )
        .await?;
    Ok(Json(Page {
        items: views(&state, records).await?,
        page,
        page_size: size,
        total,
    }))
}

/// One alert.
#[utoipa::path(get, path = "/alerts/{alert_id}", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id (hex)")),
    responses((status = 200, description = "The alert", body = AlertView)))]
pub(crate) async fn get_alert(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<AlertView>> {
    let record = find_alert(&state, &alert_id).await?;
    let mut views = views(&state, vec![record]).await?;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("an alert read vanished"))
}

/// Dinas Sosial confirms or dismisses an open alert, with a note (audited; the note stays out
/// of the audit line, as a person's details may be in it).
#[utoipa::path(post, path = "/alerts/{alert_id}/review", tag = "alerts",
    request_body = AlertReview,
    params(("alert_id" = String, Path, description = "The alert's id (hex)")),
    responses((status = 200, description = "The alert as reviewed", body = AlertView)))]
pub(crate) async fn review_alert(
    State(state): State<AdminState>,
    caller: Caller,
    Path(alert_id): Path<String>,
    body: JsonBody<AlertReview>,
) -> ApiResult<Json<AlertView>> {
    caller.require(&[Role::Dinsos])?;
    let review = body.into_inner()?;
    let status = match AlertStatus::parse(&review.status) {
        Some(s @ (AlertStatus::Confirmed | AlertStatus::Dismissed)) => s,
        _ => return Err(ApiError::malformed("status is confirmed or dismissed")),
    };
    let note = review.note.trim();
    if note.is_empty()
        || note.chars().count() > ALERT_NOTE_CHARS_MAX
        || note.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ApiError::malformed(format!(
            "note is 1 to {ALERT_NOTE_CHARS_MAX} printable characters"
        )));
    }
    let record = find_alert(&state, &alert_id).await?;
    let target = format!("alert {}: {} (note withheld)", alert_id, status.as_str());
    if record.status != AlertStatus::Open {
        let error = ApiError::conflict(format!(
            "alert {alert_id} is already {}",
            record.status.as_str()
        ));
        state
            .audit_failure(&caller, "alerts.review", &target, &error)
            .await;
        return Err(error);
    }
    let next = AlertRecord {
        status,
        note: Some(note.to_string()),
        decided_by: Some(caller.name.clone()),
        decided_at_unix_seconds: Some(state.now()),
        ..record.clone()
    };
    state
        .apply_audited(
            &caller,
            "alerts.review",
            &target,
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Alert(record),
                new: RegistryRecord::Alert(next.clone()),
            }],
        )
        .await?;
    let mut views = views(&state, vec![next]).await?;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("an alert reviewed vanished"))
}

/// The bank suspends the E-Warong a confirmed alert names: its terminals' purchases are
/// declined `03` from then on (the same change as `POST /merchants/{id}/suspend`, whose audit
/// line names the alert).
#[utoipa::path(post, path = "/alerts/{alert_id}/suspend-merchant", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id (hex)")),
    responses((status = 200, description = "The E-Warong, suspended", body = MerchantView)))]
pub(crate) async fn suspend_from_alert(
    State(state): State<AdminState>,
    caller: Caller,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<MerchantView>> {
    caller.require(&[Role::Bank])?;
    let record = find_alert(&state, &alert_id).await?;
    let reason = format!("alert {alert_id}");
    if record.status != AlertStatus::Confirmed {
        let error = ApiError::conflict(format!(
            "alert {alert_id} is {}: only a confirmed alert suspends an E-Warong",
            record.status.as_str()
        ));
        state
            .audit_failure(&caller, "merchants.suspend", &reason, &error)
            .await;
        return Err(error);
    }
    let Some(merchant) = record.alert.merchant else {
        return Err(ApiError::refused(format!(
            "alert {alert_id} names no E-Warong"
        )));
    };
    set_merchant_active(&state, &caller, merchant.as_str(), false, Some(&reason)).await
}
