//! Settlement with the Bank Penyalur (`bank`): a business date's settlement over the ledger's
//! [`ssn_ledger::Ledger::settle`], its file for the bank, and the bank's confirmation.
//!
//! The file (text, `|`-separated, one record per line, `\n` line ends):
//!
//! ```text
//! H|institution|business date|sequence|created at (WITA)
//! D|merchant id|name|settlement account|purchase count|purchase amount|reversal count|reversal amount|net amount
//! T|detail line count|total net amount|SHA-256 (hex) of the detail lines, each with its \n|adjustment count|adjustment amount|carried amount
//! ```
//!
//! The detail lines carry exactly the spec's fields. `net amount` is what the bank pays the
//! E-Warong: its purchases of the date minus their reversals, minus its adjustments
//! (purchases of dates settled before, reversed since), plus what its rejected lines of
//! earlier dates carry. The trailer's last three fields are those adjustments and carried
//! amounts over the file, so `total net amount` = purchases − reversals − adjustments +
//! carried; per E-Warong they are in `GET /settlements/{date}`. The confirmation the bank
//! sends back has one line per detail line: `merchant id|net amount|PAID or REJECTED|bank
//! reference`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssn_ledger::{Day, MerchantId, Money, Record, Role, SettlementOutcome, TransferId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, JsonBody, parse_amount, parse_day, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_settlement))
        .routes(routes!(get_settlement))
        .routes(routes!(settlement_file))
        .routes(routes!(confirm_settlement))
        .routes(routes!(reconciliation))
}

/// A business day to settle.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSettlement {
    /// The WITA business date, `YYYY-MM-DD`; its cut-over must have passed.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-29")]
    pub business_date: String,
}

/// The bank's answer to one line.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutView {
    /// `PAID` or `REJECTED`.
    pub status: String,
    /// The bank's reference.
    pub bank_reference: String,
}

/// One E-Warong's line.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementLineView {
    /// DE42.
    pub merchant_id: String,
    /// Name.
    pub name: String,
    /// Where the bank pays.
    pub settlement_account: String,
    /// Approved purchases, reversed ones included.
    pub purchase_count: u32,
    /// Their amount.
    pub purchase_amount: String,
    /// Reversed purchases.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: String,
    /// Purchases of dates settled before, reversed since: taken back from this line.
    pub adjustment_count: u32,
    /// Their amount.
    pub adjustment_amount: String,
    /// Rejected amounts of earlier days paid with this line.
    pub carried: String,
    /// What the bank pays: purchases − reversals − adjustments + carried.
    pub net_amount: String,
    /// The bank's answer, once confirmed.
    pub payout: Option<PayoutView>,
}

/// A business day's settlement.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementView {
    /// The WITA business date.
    pub business_date: String,
    /// `settled` (file ready), `partly_confirmed`, or `confirmed` (every line answered).
    pub status: String,
    /// When it was journaled (WITA).
    pub created_at: String,
    /// Terminal batches settled, for a settlement made by batch before settlement by date;
    /// 0 for one by date (the date's batches are in its reconciliation).
    pub batches: u64,
    /// Lines.
    pub line_count: u64,
    /// Sum of the lines' net amounts.
    pub total_net_amount: String,
    /// Adjustments over the lines.
    pub adjustment_count: u64,
    /// Their amount.
    pub total_adjustment_amount: String,
    /// Carried amounts over the lines.
    pub total_carried_amount: String,
    /// Per E-Warong.
    pub lines: Vec<SettlementLineView>,
}

async fn view(state: &AdminState, outcome: &SettlementOutcome) -> ApiResult<SettlementView> {
    let payouts: HashMap<MerchantId, PayoutView> = {
        let journal = state.ledger.state();
        outcome
            .lines
            .iter()
            .filter_map(|line| {
                match journal
                    .transfers
                    .get(&TransferId::payout(outcome.business_date, &line.merchant))
                {
                    Some(Record::Payout {
                        paid,
                        bank_reference,
                        ..
                    }) => Some((
                        line.merchant.clone(),
                        PayoutView {
                            status: if *paid { "PAID" } else { "REJECTED" }.into(),
                            bank_reference: bank_reference.clone(),
                        },
                    )),
                    _ => None,
                }
            })
            .collect()
    };
    let mut lines = Vec::with_capacity(outcome.lines.len());
    for line in &outcome.lines {
        let merchant = state.ledger.registry().merchant(&line.merchant).await?;
        lines.push(SettlementLineView {
            merchant_id: line.merchant.as_str().to_string(),
            name: merchant
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            settlement_account: merchant
                .as_ref()
                .map(|m| m.settlement_account.clone())
                .unwrap_or_default(),
            purchase_count: line.purchase_count,
            purchase_amount: line.purchase_amount.to_string(),
            reversal_count: line.reversal_count,
            reversal_amount: line.reversal_amount.to_string(),
            adjustment_count: line.adjustment_count,
            adjustment_amount: line.adjustment_amount.to_string(),
            carried: line.carried.to_string(),
            net_amount: line.amount.to_string(),
            payout: payouts.get(&line.merchant).map(|p| PayoutView {
                status: p.status.clone(),
                bank_reference: p.bank_reference.clone(),
            }),
        });
    }
    let answered = lines.iter().filter(|l| l.payout.is_some()).count();
    let status = if answered == 0 && !lines.is_empty() {
        "settled"
    } else if answered < lines.len() {
        "partly_confirmed"
    } else {
        "confirmed"
    };
    Ok(SettlementView {
        business_date: outcome.business_date.to_string(),
        status: status.into(),
        created_at: wita_time(outcome.at_unix_seconds),
        batches: outcome.batches.len() as u64,
        line_count: lines.len() as u64,
        total_net_amount: Money::checked_sum(outcome.lines.iter().map(|l| l.amount))
            .unwrap_or(Money::ZERO)
            .to_string(),
        adjustment_count: outcome
            .lines
            .iter()
            .map(|l| u64::from(l.adjustment_count))
            .sum(),
        total_adjustment_amount: Money::checked_sum(
            outcome.lines.iter().map(|l| l.adjustment_amount),
        )
        .unwrap_or(Money::ZERO)
        .to_string(),
        total_carried_amount: Money::checked_sum(outcome.lines.iter().map(|l| l.carried))
            .unwrap_or(Money::ZERO)
            .to_string(),
        lines,
    })
}

/// Settles a business date: nets the approved purchases authorized on it minus their
/// reversals and minus adjustments per E-Warong and moves the money giro → payable in the
/// journal; terminal batches are not touched. Refused (422) before the date's cut-over.
/// Idempotent per date (a repeat answers 200 with the same settlement).
#[utoipa::path(post, path = "/settlements", tag = "settlements", request_body = NewSettlement,
    responses((status = 201, description = "Settled", body = SettlementView),
        (status = 200, description = "Settled before; the same settlement", body = SettlementView)))]
pub(crate) async fn create_settlement(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewSettlement>,
) -> ApiResult<(StatusCode, Json<SettlementView>)> {
    caller.require(&[Role::Bank])?;
    let request = body.into_inner()?;
    let date = parse_day(&request.business_date, "business_date")?;
    if let Some(done) = state.ledger.settlement(date) {
        return Ok((StatusCode::OK, Json(view(&state, &done).await?)));
    }
    let now = state.now();
    let target = format!("settlement {date}");
    let result = state.ledger.settle(date, now).await.map_err(ApiError::from);
    let outcome = state
        .audit_outcome(&caller, "settlements.create", &target, result)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &outcome).await?)))
}

fn find(state: &AdminState, date: &str) -> ApiResult<SettlementOutcome> {
    let not_found = || ApiError::not_found(format!("no settlement for {date}"));
    let date = Day::parse_iso(date).ok_or_else(not_found)?;
    state.ledger.settlement(date).ok_or_else(not_found)
}

/// A business day's settlement: status, counts, totals, lines.
#[utoipa::path(get, path = "/settlements/{business_date}", tag = "settlements",
    params(("business_date" = String, Path, description = "YYYY-MM-DD", example = "2026-11-29")),
    responses((status = 200, description = "The settlement", body = SettlementView)))]
pub(crate) async fn get_settlement(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(business_date): Path<String>,
) -> ApiResult<Json<SettlementView>> {
    let outcome = find(&state, &business_date)?;
    Ok(Json(view(&state, &outcome).await?))
}

/// The settlement file of a business day, byte for byte the same on every call.
pub fn file_text(institution: &str, sequence: u64, view: &SettlementView) -> String {
    let mut details = String::new();
    for line in &view.lines {
        details.push_str(&format!(
            "D|{}|{}|{}|{}|{}|{}|{}|{}\n",
            line.merchant_id,
            line.name.replace(['|', '\n', '\r'], " "),
            line.settlement_account,
            line.purchase_count,
            line.purchase_amount,
            line.reversal_count,
            line.reversal_amount,
            line.net_amount
        ));
    }
    let digest = ssn_ledger::hex(&Sha256::digest(details.as_bytes()));
    format!(
        "H|{institution}|{}|{sequence}|{}\n{details}T|{}|{}|{digest}|{}|{}|{}\n",
        view.business_date,
        view.created_at,
        view.line_count,
        view.total_net_amount,
        view.adjustment_count,
        view.total_adjustment_amount,
        view.total_carried_amount
    )
}

/// The file for the bank: header, one detail line per E-Warong, trailer with control totals
/// and the SHA-256 of the detail lines.
#[utoipa::path(get, path = "/settlements/{business_date}/file", tag = "settlements",
    params(("business_date" = String, Path, description = "YYYY-MM-DD", example = "2026-11-29")),
    responses((status = 200, description = "The settlement file", content_type = "text/plain", body = String)))]
pub(crate) async fn settlement_file(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(business_date): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let outcome = find(&state, &business_date)?;
    let sequence = {
        let journal = state.ledger.state();
        journal
            .transfers
            .values()
            .filter(|r| match r {
                Record::Settlement { business_date, .. }
                | Record::DaySettlement { business_date, .. } => {
                    *business_date <= outcome.business_date
                }
                _ => false,
            })
            .count() as u64
    };
    let view = view(&state, &outcome).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        file_text(&state.config.institution, sequence, &view),
    ))
}

/// What a confirmation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmationView {
    /// The business date.
    pub business_date: String,
    /// Lines paid.
    pub paid: u64,
    /// Lines rejected (they stay payable and join the next business day's file).
    pub rejected: u64,
    /// The settlement after it.
    pub settlement: SettlementView,
}

/// Records the bank's confirmation file (`merchant id|net amount|PAID or REJECTED|bank
/// reference` per line). Every line is checked against the settlement before any is
/// recorded; a line answered before with the same content is accepted again.
#[utoipa::path(post, path = "/settlements/{business_date}/confirmation", tag = "settlements",
    params(("business_date" = String, Path, description = "YYYY-MM-DD", example = "2026-11-29")),
    request_body(content = String, content_type = "text/plain",
        description = "One line per E-Warong: merchant id|net amount|PAID or REJECTED|bank reference"),
    responses((status = 200, description = "Recorded", body = ConfirmationView)))]
pub(crate) async fn confirm_settlement(
    State(state): State<AdminState>,
    caller: Caller,
    Path(business_date): Path<String>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> ApiResult<Json<ConfirmationView>> {
    caller.require(&[Role::Bank])?;
    let body = body.map_err(|rejection| ApiError::malformed(rejection.body_text()))?;
    let outcome = find(&state, &business_date)?;
    let date = outcome.business_date;
    let mut answers = Vec::new();
    for (n, raw) in body.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let bad = |why: &str| ApiError::malformed(format!("line {}: {why}", n + 1));
        if fields.len() != 4 {
            return Err(bad(
                "expected merchant id|net amount|PAID or REJECTED|bank reference",
            ));
        }
        let merchant =
            MerchantId::new(fields[0]).map_err(|_| bad("merchant id is 15 characters"))?;
        let amount = parse_amount(fields[1], "net amount").map_err(|e| bad(&e.message))?;
        let paid = match fields[2] {
            "PAID" => true,
            "REJECTED" => false,
            _ => return Err(bad("status is PAID or REJECTED")),
        };
        if fields[3].is_empty() || fields[3].len() > 64 {
            return Err(bad("bank reference is 1 to 64 characters"));
        }
        match outcome.lines.iter().find(|l| l.merchant == merchant) {
            None => {
                return Err(ApiError::refused(format!(
                    "line {}: the {date} settlement has no line for {merchant}",
                    n + 1
                )));
            }
            Some(l) if l.amount != amount => {
                return Err(ApiError::refused(format!(
                    "line {}: {merchant}'s {date} line is {}, not {amount}",
                    n + 1,
                    l.amount
                )));
            }
            Some(_) => {}
        }
        if answers
            .iter()
            .any(|(m, _, _, _): &(MerchantId, Money, bool, String)| *m == merchant)
        {
            return Err(bad("the same E-Warong twice"));
        }
        answers.push((merchant, amount, paid, fields[3].to_string()));
    }
    if answers.is_empty() {
        return Err(ApiError::malformed("the confirmation has no line"));
    }
    let now = state.now();
    let (mut paid_count, mut rejected_count) = (0, 0);
    for (merchant, amount, paid, reference) in answers {
        let result = state
            .ledger
            .record_payout(date, &merchant, amount, paid, &reference, now)
            .await
            .map_err(ApiError::from);
        state
            .audit_outcome(
                &caller,
                if paid {
                    "settlements.paid"
                } else {
                    "settlements.rejected"
                },
                &format!("settlement {date} {merchant} {amount} {reference}"),
                result,
            )
            .await?;
        if paid {
            paid_count += 1;
        } else {
            rejected_count += 1;
        }
    }
    Ok(Json(ConfirmationView {
        business_date: date.to_string(),
        paid: paid_count,
        rejected: rejected_count,
        settlement: view(&state, &outcome).await?,
    }))
}

// ------------------------------------------------------------------------------ reconciliation

/// Terminal batch totals.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct TotalsView {
    /// Approved purchases not reversed.
    pub sales_count: u32,
    /// Their amount.
    pub sales_amount: String,
    /// Reversed purchases.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: String,
}

pub(crate) fn totals(t: &ssn_ledger::BatchTotals) -> TotalsView {
    TotalsView {
        sales_count: t.sales_count,
        sales_amount: t.sales_amount.to_string(),
        reversal_count: t.reversal_count,
        reversal_amount: t.reversal_amount.to_string(),
    }
}

/// One terminal batch of the business date: what the terminal printed (0500 DE63) and what
/// the journal holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReconciliation {
    /// DE41.
    pub terminal_id: String,
    /// DE42 of its E-Warong.
    pub merchant_id: String,
    /// The switch's batch sequence number for the terminal.
    pub sequence: u64,
    /// DE60 as the terminal sent it (`SETTLEMENT`: closed by the settlement run).
    pub batch_number: String,
    /// The terminal's totals (zeros when the settlement closed the batch).
    pub terminal_totals: TotalsView,
    /// The journal's totals: what was settled.
    pub journal_totals: TotalsView,
    /// Whether they agree.
    pub matched: bool,
}

/// A difference, with what to do about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Difference {
    /// `batch_not_closed`, `batch_out_of_balance`, `bank_rejected`, `bank_no_answer`.
    pub kind: String,
    /// DE42.
    pub merchant_id: String,
    /// DE41, for batch differences.
    pub terminal_id: Option<String>,
    /// What the journal says.
    pub journal: String,
    /// What the other side says.
    pub other: String,
    /// What to do.
    pub action: String,
}

/// The three-way comparison of a business day.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    /// The business date.
    pub business_date: String,
    /// `balanced` when there is no difference.
    pub status: String,
    /// The terminal batches closed (0500) on the business date, or those a settlement by
    /// batch settled: the terminals' view.
    pub batches: Vec<BatchReconciliation>,
    /// The settlement's lines (by business date) with the bank's answers: the journal's view.
    pub settlement: SettlementView,
    /// Every difference found.
    pub differences: Vec<Difference>,
}

/// Query of the reconciliation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// The business date, `YYYY-MM-DD`.
    pub business_date: String,
}

/// Terminal batch totals (0500) against the journal against the bank's confirmation, for a
/// settled business day, with every difference and what to do about it.
#[utoipa::path(get, path = "/reconciliation", tag = "settlements", params(ReconciliationQuery),
    responses((status = 200, description = "The three-way comparison", body = Reconciliation)))]
pub(crate) async fn reconciliation(
    State(state): State<AdminState>,
    _caller: Caller,
    crate::support::QueryParams(query): crate::support::QueryParams<ReconciliationQuery>,
) -> ApiResult<Json<Reconciliation>> {
    parse_day(&query.business_date, "business_date")?;
    let outcome = find(&state, &query.business_date)?;
    let settlement = view(&state, &outcome).await?;
    let mut differences = Vec::new();
    let mut batches = Vec::new();
    // A settlement by batch compares the batches it settled; one by date, the batches the
    // terminals closed on that date (whenever their 0500 came, settled or not).
    let day_batches = if outcome.batches.is_empty() {
        state.ledger.closed_on(outcome.business_date)?
    } else {
        outcome.batches.clone()
    };
    // The E-Warong of each batch: its terminal's.
    let mut merchants = HashMap::new();
    for (terminal, _) in &day_batches {
        if !merchants.contains_key(terminal) {
            let merchant = state
                .ledger
                .registry()
                .terminal(terminal)
                .await?
                .map(|t| t.merchant_id.as_str().to_string())
                .unwrap_or_default();
            merchants.insert(terminal.clone(), merchant);
        }
    }
    {
        for (terminal, sequence) in &day_batches {
            let Some(closed) = state.ledger.closed_batch(terminal, *sequence)? else {
                continue;
            };
            let merchant = merchants.get(terminal).cloned().unwrap_or_default();
            let forced = closed.batch_number == ssn_ledger::SETTLEMENT_BATCH_NUMBER;
            let matched = !forced && closed.terminal_totals == closed.switch_totals;
            let journal_totals = totals(&closed.switch_totals);
            let terminal_totals = totals(&closed.terminal_totals);
            let describe = |t: &TotalsView| {
                format!(
                    "{} sales {} / {} reversals {}",
                    t.sales_count, t.sales_amount, t.reversal_count, t.reversal_amount
                )
            };
            if forced {
                differences.push(Difference {
                    kind: "batch_not_closed".into(),
                    merchant_id: merchant.clone(),
                    terminal_id: Some(terminal.as_str().to_string()),
                    journal: describe(&journal_totals),
                    other: "no 0500 from the terminal".into(),
                    action: "The settlement closed this batch on the journal's totals. Ask the \
                             E-Warong to close its batch (0500) every day and to check the totals \
                             the terminal printed against these."
                        .into(),
                });
            } else if !matched {
                differences.push(Difference {
                    kind: "batch_out_of_balance".into(),
                    merchant_id: merchant.clone(),
                    terminal_id: Some(terminal.as_str().to_string()),
                    journal: describe(&journal_totals),
                    other: describe(&terminal_totals),
                    action: "The journal's totals were settled (the switch answered 95). Compare \
                             the terminal's receipts with GET /transactions?terminal_id=...; a \
                             purchase the terminal counts but the journal lacks was never \
                             approved."
                        .into(),
                });
            }
            batches.push(BatchReconciliation {
                terminal_id: terminal.as_str().to_string(),
                merchant_id: merchant,
                sequence: *sequence,
                batch_number: closed.batch_number.clone(),
                terminal_totals,
                journal_totals,
                matched,
            });
        }
    }
    for line in &settlement.lines {
        match &line.payout {
            None => differences.push(Difference {
                kind: "bank_no_answer".into(),
                merchant_id: line.merchant_id.clone(),
                terminal_id: None,
                journal: line.net_amount.clone(),
                other: "no confirmation line".into(),
                action: "Ask the Bank Penyalur for its confirmation of this line and post it \
                         (POST /settlements/{date}/confirmation)."
                    .into(),
            }),
            Some(p) if p.status == "REJECTED" => differences.push(Difference {
                kind: "bank_rejected".into(),
                merchant_id: line.merchant_id.clone(),
                terminal_id: None,
                journal: line.net_amount.clone(),
                other: format!("REJECTED {}", p.bank_reference),
                action: "The amount stays payable and is carried into the next business day's \
                         file; check the E-Warong's settlement account with the bank."
                    .into(),
            }),
            Some(_) => {}
        }
    }
    Ok(Json(Reconciliation {
        business_date: settlement.business_date.clone(),
        status: if differences.is_empty() {
            "balanced"
        } else {
            "differences"
        }
        .into(),
        batches,
        settlement,
        differences,
    }))
}
