//! Disbursement (`dinsos`): a period's benefit to every determined beneficiary of a program
//! with a live card, from the program's giro account, all or nothing, idempotent on
//! (program, period).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ssn_ledger::{Money, ProgramCode, Record, Role, TransferId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, JsonBody, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_disbursement))
        .routes(routes!(get_disbursement))
}

/// A disbursement to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDisbursement {
    /// The program paying.
    pub program_code: String,
    /// The month paid for, `YYYY-MM`.
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2026-11")]
    pub period: String,
}

/// A disbursement as journaled.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisbursementView {
    /// `PROGRAM.PERIOD`, e.g. `SEMBAKO.2026-11`.
    pub id: String,
    /// Program.
    pub program_code: String,
    /// Period.
    pub period: String,
    /// Cards credited.
    pub cards: u64,
    /// Total credited.
    pub total: String,
    /// Credited to each card.
    pub benefit_amount: String,
    /// When (WITA).
    pub at: String,
}

fn check_period(period: &str) -> ApiResult<()> {
    let b = period.as_bytes();
    let ok = b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!(
            &period[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        );
    if ok {
        Ok(())
    } else {
        Err(ApiError::malformed("period is a month, YYYY-MM"))
    }
}

fn view(state: &AdminState, program: &ProgramCode, period: &str) -> Option<DisbursementView> {
    let journal = state.ledger.state();
    let id = TransferId::disbursement(program, period);
    let Some(Record::Disbursement { credits, .. }) = journal.transfers.get(&id) else {
        return None;
    };
    let total = Money::checked_sum(credits.iter().map(|(_, m)| *m)).unwrap_or(Money::ZERO);
    Some(DisbursementView {
        id: format!("{program}.{period}"),
        program_code: program.as_str().to_string(),
        period: period.to_string(),
        cards: credits.len() as u64,
        total: total.to_string(),
        benefit_amount: credits
            .first()
            .map(|(_, m)| m.to_string())
            .unwrap_or_else(|| Money::ZERO.to_string()),
        at: wita_time(journal.transfer_times.get(&id).copied().unwrap_or(0)),
    })
}

/// Disburses; a repeat of the same program and period answers 200 with the first result.
#[utoipa::path(post, path = "/disbursements", tag = "disbursements", request_body = NewDisbursement,
    responses((status = 201, description = "Disbursed", body = DisbursementView),
        (status = 200, description = "Already disbursed for this period", body = DisbursementView)))]
pub(crate) async fn create_disbursement(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewDisbursement>,
) -> ApiResult<(StatusCode, Json<DisbursementView>)> {
    caller.require(&[Role::Dinsos])?;
    let request = body.into_inner()?;
    check_period(&request.period)?;
    let program = super::programs::find_program(&state, &request.program_code).await?;
    let seen = view(&state, &program.code, &request.period).is_some();
    let target = format!("program {} period {}", program.code, request.period);
    let result = state
        .ledger
        .disburse(&program.code, &request.period, state.now())
        .await
        .map_err(ApiError::from);
    state
        .audit_outcome(&caller, "disbursements.create", &target, result)
        .await?;
    let answer = view(&state, &program.code, &request.period).ok_or_else(|| {
        ApiError::internal("a disbursement the ledger accepted is not in the journal")
    })?;
    let status = if seen {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(answer)))
}

/// One disbursement, by `PROGRAM.PERIOD`.
#[utoipa::path(get, path = "/disbursements/{id}", tag = "disbursements",
    params(("id" = String, Path, description = "PROGRAM.PERIOD, e.g. SEMBAKO.2026-11", example = "SEMBAKO.2026-11")),
    responses((status = 200, description = "Counts and totals", body = DisbursementView)))]
pub(crate) async fn get_disbursement(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DisbursementView>> {
    let not_found = || ApiError::not_found(format!("no disbursement {id}"));
    let (program, period) = id.split_once('.').ok_or_else(not_found)?;
    let program = ProgramCode::new(program).map_err(|_| not_found())?;
    view(&state, &program, period)
        .map(Json)
        .ok_or_else(not_found)
}
