//! Programs and their funding (`dinsos`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ssn_ledger::{Account, BeneficiaryUnit, Money, Program, ProgramCode, Record, Role, TransferId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{
    Caller, JsonBody, Page, Paging, QueryParams, parse_amount, parse_day, parse_positive_amount,
};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_program, list_programs))
        .routes(routes!(get_program))
        .routes(routes!(fund_program))
}

/// A new program.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProgram {
    /// `A`-`Z`, `0`-`9`, `_`, `-`; 1 to 16 characters.
    #[schema(pattern = r"^[A-Z0-9_-]{1,16}$", example = "SEMBAKO2026")]
    pub code: String,
    /// Display name.
    pub name: String,
    /// Budget year.
    pub budget_year: u16,
    /// Credited per card per disbursement period, rupiah.
    #[schema(pattern = r"^[0-9]{1,15}(\.[0-9]{1,2})?$", example = "300000.00")]
    pub benefit_amount: String,
    /// Commodity categories (two digits, `01`..`99`) a purchase may contain.
    #[schema(min_items = 1, inline, value_type = Vec<String>, example = json!(["01", "02"]))]
    pub allowed_categories: Vec<String>,
    /// Whether a purchase without a basket (DE48) is declined `57`.
    pub basket_required: bool,
    /// Largest single purchase, rupiah.
    #[schema(pattern = r"^[0-9]{1,15}(\.[0-9]{1,2})?$", example = "300000.00")]
    pub purchase_amount_max: String,
    /// Most approved purchases per card per day.
    pub purchases_per_day_max: u32,
    /// Last day a pocket of this program may be spent (`YYYY-MM-DD`).
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-12-31")]
    pub pocket_expires_at: String,
    /// `person` (the default: every person determined) or `family` (one person per family
    /// card, KK).
    #[serde(default)]
    #[schema(example = "family")]
    pub beneficiary_unit: Option<String>,
    /// Highest DTSEN welfare decile (1-10) a person may have to be determined; none: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10, example = 4)]
    pub desil_max: Option<u8>,
}

/// A program as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramView {
    /// Code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Budget year.
    pub budget_year: u16,
    /// Benefit per card per period.
    pub benefit_amount: String,
    /// Allowed commodity categories.
    pub allowed_categories: Vec<String>,
    /// Whether purchases need a basket.
    pub basket_required: bool,
    /// Largest single purchase.
    pub purchase_amount_max: String,
    /// Most purchases per card per day.
    pub purchases_per_day_max: u32,
    /// Last day pockets may be spent.
    pub pocket_expires_at: String,
    /// `person` or `family`.
    pub beneficiary_unit: String,
    /// Highest welfare decile determined, if limited.
    pub desil_max: Option<u8>,
    /// The program's giro account at the Bank Penyalur now: funded money not yet disbursed,
    /// plus spent money not yet settled.
    pub giro_balance: String,
    /// Everything funded so far.
    pub funded: String,
}

pub(crate) fn program_view(state: &AdminState, program: &Program) -> ProgramView {
    let journal = state.ledger.state();
    let giro = journal.balance(&Account::Giro(program.code.clone()));
    let funded = Money::checked_sum(journal.transfers.values().filter_map(|r| match r {
        Record::Funding {
            program: p, amount, ..
        } if *p == program.code => Some(*amount),
        _ => None,
    }))
    .unwrap_or(Money::ZERO);
    ProgramView {
        code: program.code.as_str().to_string(),
        name: program.name.clone(),
        budget_year: program.budget_year,
        benefit_amount: program.benefit_amount.to_string(),
        allowed_categories: program.allowed_categories.clone(),
        basket_required: program.basket_required,
        purchase_amount_max: program.purchase_amount_max.to_string(),
        purchases_per_day_max: program.purchases_per_day_max,
        pocket_expires_at: program.pocket_expires_at.to_string(),
        beneficiary_unit: match program.beneficiary_unit {
            BeneficiaryUnit::Person => "person",
            BeneficiaryUnit::Family => "family",
        }
        .into(),
        desil_max: program.desil_max,
        giro_balance: giro.to_string(),
        funded: funded.to_string(),
    }
}

fn check_program(new: NewProgram) -> ApiResult<Program> {
    let code = ProgramCode::new(new.code)?;
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(ApiError::malformed("name is 1 to 200 characters"));
    }
    if !(2000..=2100).contains(&new.budget_year) {
        return Err(ApiError::malformed("budget_year is a year, 2000 to 2100"));
    }
    if new.allowed_categories.is_empty() {
        return Err(ApiError::malformed(
            "allowed_categories names at least one category",
        ));
    }
    for category in &new.allowed_categories {
        if category.len() != 2 || !category.bytes().all(|b| b.is_ascii_digit()) || category == "00"
        {
            return Err(ApiError::malformed(
                "a category is two digits, 01 to 99 (host interface §9)",
            ));
        }
    }
    if new.purchases_per_day_max == 0 {
        return Err(ApiError::malformed("purchases_per_day_max is at least 1"));
    }
    let mut categories = new.allowed_categories;
    categories.sort();
    categories.dedup();
    Ok(Program {
        code,
        name: new.name.trim().to_string(),
        budget_year: new.budget_year,
        benefit_amount: parse_positive_amount(&new.benefit_amount, "benefit_amount")?,
        allowed_categories: categories,
        basket_required: new.basket_required,
        purchase_amount_max: parse_positive_amount(
            &new.purchase_amount_max,
            "purchase_amount_max",
        )?,
        purchases_per_day_max: new.purchases_per_day_max,
        pocket_expires_at: parse_day(&new.pocket_expires_at, "pocket_expires_at")?,
        beneficiary_unit: match new.beneficiary_unit.as_deref() {
            None | Some("person") => BeneficiaryUnit::Person,
            Some("family") => BeneficiaryUnit::Family,
            Some(_) => return Err(ApiError::malformed("beneficiary_unit is person or family")),
        },
        desil_max: match new.desil_max {
            None => None,
            Some(max @ 1..=10) => Some(max),
            Some(_) => return Err(ApiError::malformed("desil_max is a decile, 1 to 10")),
        },
    })
}

/// Defines a program.
#[utoipa::path(post, path = "/programs", tag = "programs", request_body = NewProgram,
    responses((status = 201, description = "Created", body = ProgramView)))]
pub(crate) async fn create_program(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewProgram>,
) -> ApiResult<(StatusCode, Json<ProgramView>)> {
    caller.require(&[Role::Dinsos])?;
    let program = check_program(body.into_inner()?)?;
    let target = format!("program {}", program.code);
    let result = state
        .ledger
        .define_program(program.clone())
        .await
        .map_err(ApiError::from);
    state
        .audit_outcome(&caller, "programs.create", &target, result)
        .await?;
    Ok((StatusCode::CREATED, Json(program_view(&state, &program))))
}

/// Every program.
#[utoipa::path(get, path = "/programs", tag = "programs", params(Paging),
    responses((status = 200, description = "A page of programs, by code", body = Page<ProgramView>)))]
pub(crate) async fn list_programs(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> ApiResult<Json<Page<ProgramView>>> {
    paging.resolve()?;
    let mut programs = state.ledger.registry().programs().await?;
    programs.sort_by(|a, b| a.code.cmp(&b.code));
    let views: Vec<ProgramView> = programs.iter().map(|p| program_view(&state, p)).collect();
    Ok(Json(paging.page(views)?))
}

pub(crate) async fn find_program(state: &AdminState, code: &str) -> ApiResult<Program> {
    let code = ProgramCode::new(code).map_err(|_| ApiError::not_found("no such program"))?;
    state
        .ledger
        .registry()
        .program(&code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no program {code}")))
}

/// One program.
#[utoipa::path(get, path = "/programs/{code}", tag = "programs",
    params(("code" = String, Path, description = "Program code", example = "SEMBAKO")),
    responses((status = 200, description = "The program", body = ProgramView)))]
pub(crate) async fn get_program(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<ProgramView>> {
    let program = find_program(&state, &code).await?;
    Ok(Json(program_view(&state, &program)))
}

/// Money from the city budget (APBD) into the program's giro account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Funding {
    /// Rupiah.
    #[schema(pattern = r"^[0-9]{1,15}(\.[0-9]{1,2})?$", example = "506400000.00")]
    pub amount: String,
    /// The bank's reference of the transfer: the idempotency key.
    #[schema(min_length = 1, max_length = 64, example = "APBD-2026-SP2D-0001")]
    pub reference: String,
}

/// A funding as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct FundingView {
    /// The reference.
    pub reference: String,
    /// The program.
    pub program_code: String,
    /// Rupiah.
    pub amount: String,
    /// The giro account after it.
    pub giro_balance: String,
}

/// Records funding; idempotent on `reference` (a repeat answers 200, other content 409).
#[utoipa::path(post, path = "/programs/{code}/funding", tag = "programs", request_body = Funding,
    params(("code" = String, Path, description = "Program code", example = "SEMBAKO")),
    responses((status = 201, description = "Funded", body = FundingView),
        (status = 200, description = "Already recorded with the same content", body = FundingView)))]
pub(crate) async fn fund_program(
    State(state): State<AdminState>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<Funding>,
) -> ApiResult<(StatusCode, Json<FundingView>)> {
    caller.require(&[Role::Dinsos])?;
    let funding = body.into_inner()?;
    let program = find_program(&state, &code).await?;
    let amount = parse_amount(&funding.amount, "amount")?;
    if !amount.is_positive() {
        return Err(ApiError::malformed("amount must be more than zero"));
    }
    let reference = funding.reference.trim();
    if reference.is_empty() || reference.len() > 64 {
        return Err(ApiError::malformed("reference is 1 to 64 characters"));
    }
    let seen = state
        .ledger
        .state()
        .transfers
        .contains_key(&TransferId::funding(reference));
    let target = format!("program {} funding {reference}", program.code);
    let result = state
        .ledger
        .fund_program(&program.code, amount, reference, state.now())
        .await
        .map_err(ApiError::from);
    state
        .audit_outcome(&caller, "programs.fund", &target, result)
        .await?;
    let giro = state
        .ledger
        .state()
        .balance(&Account::Giro(program.code.clone()));
    let status = if seen {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(FundingView {
            reference: reference.to_string(),
            program_code: program.code.as_str().to_string(),
            amount: amount.to_string(),
            giro_balance: giro.to_string(),
        }),
    ))
}
