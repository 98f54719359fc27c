//! Revoking people's enrolment (`walikota`): one person (`POST /beneficiaries/{ssn}/revoke`)
//! or a whole decree (`POST /determinations/{id}/revoke`, in `beneficiaries`). Either way the
//! registry drops the enrolment first — from then on the program's pocket pays nothing, since a
//! purchase carries its holder's enrolments — and then the pockets' money goes back to the
//! program's giro account in one journaled movement (`Ledger::revoke_pockets`). A request
//! whose second step failed (503) is finished by repeating it.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use ssn_ledger::{
    BeneficiaryStatus, CardId, CardStatus, Day, ProgramCode, RegistryOp, RegistryRecord,
    RevocationOutcome, Role,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, JsonBody};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(revoke_person))
}

/// A person's enrolment to revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRevocation {
    /// The program whose enrolment ends.
    #[schema(example = "SEMBAKO")]
    pub program_code: String,
    /// The Mayor's decree that revokes it.
    #[schema(example = "188.45/215/HK-KS/2026")]
    pub decree_number: String,
    /// Why (deceased, moved away, no longer eligible, ...), for the audit log.
    #[schema(example = "meninggal dunia")]
    pub reason: String,
}

/// What a card's pocket returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnedPocket {
    /// The card.
    pub card_id: u64,
    /// What its pocket of the program held, back in the program's giro account.
    pub amount: String,
}

/// A revocation as done.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationView {
    /// The person.
    pub ssn: String,
    /// The program.
    pub program_code: String,
    /// The decree.
    pub decree_number: String,
    /// The person's status now (`revoked` when no enrolment is left).
    pub status: String,
    /// The total returned to the program's giro account.
    pub returned: String,
    /// Per card.
    pub cards: Vec<ReturnedPocket>,
}

fn printable(value: &str, field: &str, max: usize) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::malformed(format!(
            "{field} is 1 to {max} printable characters"
        )));
    }
    Ok(value.to_string())
}

/// The cards that may hold a pocket of the person: every one not replaced (a replacement
/// moved its pockets to the next card).
pub(crate) async fn cards_of(state: &AdminState, ssns: &[&str]) -> ApiResult<Vec<CardId>> {
    Ok(state
        .ledger
        .registry()
        .cards()
        .await?
        .into_iter()
        .filter(|c| ssns.contains(&c.ssn.as_str()) && c.status != CardStatus::Replaced)
        .map(|c| c.card_id)
        .collect())
}

/// Returns the pockets of `program` on `cards` to its giro account under `reference`,
/// audited; a failure says the enrolment is already revoked and how to finish.
pub(crate) async fn return_pockets(
    state: &AdminState,
    caller: &Caller,
    program: &ProgramCode,
    reference: &str,
    cards: &[CardId],
) -> ApiResult<RevocationOutcome> {
    let result = state
        .ledger
        .revoke_pockets(program, reference, cards, state.now())
        .await
        .map_err(|error| match ApiError::from(error) {
            unavailable if unavailable.status.is_server_error() => ApiError::unavailable(
                "the enrolment is revoked and no longer pays, but its pockets' money was not \
                 returned yet: repeat this request to finish",
            )
            .with_detail(unavailable.detail.unwrap_or(unavailable.message)),
            other => other,
        });
    let target = format!("program {program} {reference}");
    state
        .audit_outcome(caller, "revocations.return", &target, result)
        .await
}

/// Ends one person's enrolment in a program by the Mayor's decree: from this moment the
/// program's pocket on their cards pays nothing, and what it holds returns to the program's
/// giro account in one journaled movement. With no enrolment left the person is `revoked`.
/// Repeating the request answers the same.
#[utoipa::path(post, path = "/beneficiaries/{ssn}/revoke", tag = "beneficiaries",
    request_body = PersonRevocation,
    params(("ssn" = String, Path, description = "SSN number", example = "SSN000000001")),
    responses((status = 200, description = "Revoked; the pockets' money returned", body = RevocationView)))]
pub(crate) async fn revoke_person(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
    body: JsonBody<PersonRevocation>,
) -> ApiResult<Json<RevocationView>> {
    caller.require(&[Role::Walikota])?;
    let request = body.into_inner()?;
    let decree = printable(&request.decree_number, "decree_number", 100)?;
    let reason = printable(&request.reason, "reason", 500)?;
    let person = super::beneficiaries::find(&state, &ssn).await?;
    let program = super::programs::find_program(&state, &request.program_code).await?;
    let reference = format!("{decree}:{}", person.ssn);
    let cards = cards_of(&state, &[person.ssn.as_str()]).await?;
    let mut status = person.status;
    if person.enrolments.contains(&program.code) {
        let mut next = person.clone();
        next.end_enrolment(&program.code, Day::wita_of_unix_seconds(state.now()));
        if next.enrolments.is_empty() {
            next.status = BeneficiaryStatus::Revoked;
        }
        status = next.status;
        state
            .apply_audited(
                &caller,
                "beneficiaries.revoke",
                &format!(
                    "beneficiary {} program {} decree {decree}: {reason}",
                    person.ssn, program.code
                ),
                vec![RegistryOp::Replace {
                    expected: RegistryRecord::Beneficiary(person.clone()),
                    new: RegistryRecord::Beneficiary(next),
                }],
            )
            .await?;
    } else if state
        .ledger
        .revocation(&program.code, &reference)?
        .is_none()
        && !holds_money(&state, &cards, &program.code).await?
    {
        let error = ApiError::conflict(format!(
            "{} is not enrolled in {}",
            person.ssn, program.code
        ));
        state
            .audit_failure(&caller, "beneficiaries.revoke", &person.ssn, &error)
            .await;
        return Err(error);
    }
    let outcome = return_pockets(&state, &caller, &program.code, &reference, &cards).await?;
    Ok(Json(RevocationView {
        ssn: person.ssn,
        program_code: program.code.to_string(),
        decree_number: decree,
        status: super::beneficiaries::status_name(status).into(),
        returned: outcome.returned.to_string(),
        cards: outcome
            .returns
            .iter()
            .map(|(card, amount)| ReturnedPocket {
                card_id: card.0,
                amount: amount.to_string(),
            })
            .collect(),
    }))
}

/// Whether a pocket of `program` on one of `cards` still holds money (a revocation whose
/// money step failed, to be finished).
async fn holds_money(
    state: &AdminState,
    cards: &[CardId],
    program: &ProgramCode,
) -> ApiResult<bool> {
    for card in cards {
        let pockets = state.ledger.pockets(*card).await?;
        if pockets
            .iter()
            .any(|p| &p.program == program && p.balance.is_positive())
        {
            return Ok(true);
        }
    }
    Ok(false)
}
