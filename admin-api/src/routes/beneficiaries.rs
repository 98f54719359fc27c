//! Beneficiaries through their lifecycle (Pasal 7): import from the Portal Data SSN
//! (`diskominfo`), verification and validation (`dinsos`), determination by decree and its
//! revocation (`walikota`). Every illegal state change is a 409.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ssn_ledger::{
    Beneficiary, BeneficiaryStatus, Day, Determination, Kk, ProgramCode, RegistryOp,
    RegistryRecord, Role, Sex,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::support::{
    Caller, JsonBody, Page, Paging, QueryParams, initials, parse_day, region_only,
};
use crate::{AdminState, IMPORT_BODY_BYTES_MAX};

/// Most SSNs in one decree.
pub const DECREE_SSNS_MAX: usize = 150_000;
/// The audit action of every change to a person's data, by `PATCH` or by a DTSEN import.
pub(crate) const UPDATE_ACTION: &str = "beneficiaries.update";
/// The audit action of a possible duplicate settled (its line ends with Dinas Sosial's note).
pub(crate) const RESOLVE_ACTION: &str = "beneficiaries.resolve";

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_beneficiaries))
        .routes(routes!(get_beneficiary, correct_beneficiary))
        .routes(routes!(verify_beneficiary))
        .routes(routes!(validate_beneficiary))
        .routes(routes!(resolve_duplicate))
        // A decree may name up to DECREE_SSNS_MAX people (about 15 bytes each in JSON).
        .routes(routes!(create_determination).layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES_MAX)))
        .routes(routes!(get_determination))
        .routes(routes!(revoke_determination))
}

/// The SSN number given to the `n`th person imported.
pub fn ssn_number(n: u64) -> String {
    format!("SSN{n:09}")
}

pub(crate) fn status_name(status: BeneficiaryStatus) -> &'static str {
    match status {
        BeneficiaryStatus::Imported => "imported",
        BeneficiaryStatus::Verified => "verified",
        BeneficiaryStatus::Validated => "validated",
        BeneficiaryStatus::Determined => "determined",
        BeneficiaryStatus::Rejected => "rejected",
        BeneficiaryStatus::Revoked => "revoked",
    }
}

/// A beneficiary as the API shows it. Roles without personal data access (`bank`,
/// `auditor`; UU 27/2022) see nothing from which a NIK could be rebuilt — its digits encode
/// region, birth date and sex: NIK and KK only as their six-digit region code, the name as
/// initials, and no birth date, sex or address.
#[derive(Debug, Serialize, ToSchema)]
pub struct BeneficiaryView {
    /// The stable SSN number.
    pub ssn: String,
    /// NIK (for roles without personal data: the region code and `*`s).
    pub nik: String,
    /// Family card number (likewise).
    pub kk: String,
    /// Name (for roles without personal data: initials).
    pub name: String,
    /// `YYYY-MM-DD`; absent for roles without personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// `L` or `P`; absent for roles without personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// Address; absent for roles without personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Kecamatan.
    pub kecamatan: String,
    /// Kelurahan.
    pub kelurahan: String,
    /// DTSEN welfare decile.
    pub desil: u8,
    /// `imported`, `verified`, `validated`, `determined`, `rejected` or `revoked`.
    pub status: String,
    /// Program codes the beneficiary is enrolled in.
    pub enrolments: Vec<String>,
    /// Same name and birth date as another NIK.
    pub possible_duplicate: bool,
    /// The import batch.
    pub import_batch: u64,
    /// Not named by the latest full DTSEN refresh: for Dinas Sosial to review (no one is
    /// revoked by it); cleared when an import names the NIK again.
    pub absent_from_dtsen: bool,
}

pub(crate) fn view(caller: &Caller, b: &Beneficiary) -> BeneficiaryView {
    let full = caller.sees_personal_data();
    let personal = |value: String| full.then_some(value);
    BeneficiaryView {
        ssn: b.ssn.clone(),
        nik: if full {
            b.nik.expose().into()
        } else {
            region_only(b.nik.expose())
        },
        kk: if full {
            b.kk.expose().into()
        } else {
            region_only(b.kk.expose())
        },
        name: if full {
            b.name.clone()
        } else {
            initials(&b.name)
        },
        birth_date: personal(b.birth_date.to_string()),
        sex: personal(
            match b.sex {
                Sex::Male => "L",
                Sex::Female => "P",
            }
            .into(),
        ),
        address: personal(b.address.clone()),
        kecamatan: b.kecamatan.clone(),
        kelurahan: b.kelurahan.clone(),
        desil: b.desil,
        status: status_name(b.status).into(),
        enrolments: b
            .enrolments
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
        possible_duplicate: b.possible_duplicate,
        import_batch: b.import_batch,
        absent_from_dtsen: b.absent_from_dtsen,
    }
}

/// Who a person may be a duplicate of (Pasal 3b): the same name, case and spacing ignored,
/// and the same birth date.
pub(crate) fn name_key(name: &str, birth_date: Day) -> (String, Day) {
    let normalized = name
        .split_whitespace()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    (normalized, birth_date)
}

/// A text field of a person: trimmed, 1 to `max` characters, no control characters.
pub(crate) fn text_field(value: &str, field: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(format!("{field} is 1 to {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} contains control characters"));
    }
    Ok(value.to_string())
}

// ------------------------------------------------------------------------------------ reading

/// Filters of the beneficiary list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BeneficiaryQuery {
    /// Lifecycle state.
    pub status: Option<String>,
    /// Kecamatan, exactly.
    pub kecamatan: Option<String>,
    /// Part of a name, a NIK or an SSN number; for roles without personal data access, exactly
    /// an SSN number or a card id.
    pub q: Option<String>,
    /// `true`: only people the latest full DTSEN refresh did not name; `false`: only the
    /// others.
    pub absent_from_dtsen: Option<bool>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1 to 1000.
    pub page_size: Option<u32>,
}

fn parse_status(text: &str) -> ApiResult<BeneficiaryStatus> {
    Ok(match text {
        "imported" => BeneficiaryStatus::Imported,
        "verified" => BeneficiaryStatus::Verified,
        "validated" => BeneficiaryStatus::Validated,
        "determined" => BeneficiaryStatus::Determined,
        "rejected" => BeneficiaryStatus::Rejected,
        "revoked" => BeneficiaryStatus::Revoked,
        _ => {
            return Err(ApiError::malformed(
                "status is imported, verified, validated, determined, rejected or revoked",
            ));
        }
    })
}

/// Beneficiaries, by SSN number.
#[utoipa::path(get, path = "/beneficiaries", tag = "beneficiaries", params(BeneficiaryQuery),
    responses((status = 200, description = "A page of beneficiaries", body = Page<BeneficiaryView>)))]
pub(crate) async fn list_beneficiaries(
    State(state): State<AdminState>,
    caller: Caller,
    QueryParams(query): QueryParams<BeneficiaryQuery>,
) -> ApiResult<Json<Page<BeneficiaryView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    paging.resolve()?;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let q = query.q.as_deref().map(str::to_lowercase);
    // Roles without personal data find one person by SSN number or card id, never by
    // searching names or NIK digits.
    let exact_ssn = match (&q, caller.sees_personal_data()) {
        (Some(q), false) => Some(holder_of(&state, q).await?),
        _ => None,
    };
    let mut people: Vec<Beneficiary> = state
        .ledger
        .registry()
        .beneficiaries()
        .await?
        .into_iter()
        .filter(|b| status.is_none_or(|s| b.status == s))
        .filter(|b| query.kecamatan.as_ref().is_none_or(|k| *k == b.kecamatan))
        .filter(|b| {
            query
                .absent_from_dtsen
                .is_none_or(|absent| absent == b.absent_from_dtsen)
        })
        .filter(|b| match &exact_ssn {
            Some(ssn) => ssn.as_deref() == Some(b.ssn.as_str()),
            None => q.as_ref().is_none_or(|q| {
                b.name.to_lowercase().contains(q.as_str())
                    || b.nik.expose().contains(q.as_str())
                    || b.ssn.to_lowercase().contains(q.as_str())
            }),
        })
        .collect();
    people.sort_by(|a, b| a.ssn.cmp(&b.ssn));
    let page = paging.page(people)?;
    if caller.sees_personal_data() && !page.items.is_empty() {
        let read: Vec<&str> = page.items.iter().map(|b| b.ssn.as_str()).collect();
        state
            .audit_read(&caller, "beneficiaries.list", &read.join(" "))
            .await?;
    }
    Ok(Json(Page {
        items: page.items.iter().map(|b| view(&caller, b)).collect(),
        page: page.page,
        page_size: page.page_size,
        total: page.total,
    }))
}

pub(crate) async fn find(state: &AdminState, ssn: &str) -> ApiResult<Beneficiary> {
    state
        .ledger
        .registry()
        .beneficiary(ssn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no beneficiary {ssn}")))
}

/// One beneficiary.
#[utoipa::path(get, path = "/beneficiaries/{ssn}", tag = "beneficiaries",
    params(("ssn" = String, Path, description = "SSN number", example = "SSN000000001")),
    responses((status = 200, description = "The beneficiary", body = BeneficiaryView)))]
pub(crate) async fn get_beneficiary(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
) -> ApiResult<Json<BeneficiaryView>> {
    let person = find(&state, &ssn).await?;
    if caller.sees_personal_data() {
        state
            .audit_read(&caller, "beneficiaries.read", &person.ssn)
            .await?;
    }
    Ok(Json(view(&caller, &person)))
}

/// What of a person Diskominfo corrects: the fields given. NIK, birth date and sex are the
/// NIK's own and change only with it (a DTSEN import).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryCorrection {
    /// Name.
    pub name: Option<String>,
    /// Family card number (16 digits).
    pub kk: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Kecamatan.
    pub kecamatan: Option<String>,
    /// Kelurahan.
    pub kelurahan: Option<String>,
    /// DTSEN welfare decile, 1 to 10.
    pub desil: Option<u8>,
}

/// Corrects one person (Pasal 6(2): Diskominfo keeps the data current). The audit line names
/// every field changed, before and after; a request that changes nothing writes none.
#[utoipa::path(patch, path = "/beneficiaries/{ssn}", tag = "beneficiaries",
    request_body = BeneficiaryCorrection,
    params(("ssn" = String, Path, description = "SSN number", example = "SSN000000001")),
    responses((status = 200, description = "The person as corrected", body = BeneficiaryView)))]
pub(crate) async fn correct_beneficiary(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
    body: JsonBody<BeneficiaryCorrection>,
) -> ApiResult<Json<BeneficiaryView>> {
    caller.require(&[Role::Diskominfo])?;
    let change = body.into_inner()?;
    let current = find(&state, &ssn).await?;
    let mut next = current.clone();
    let text = |value: &str, field: &str, max: usize| {
        text_field(value, field, max).map_err(ApiError::malformed)
    };
    if let Some(name) = &change.name {
        next.name = text(name, "name", 100)?;
    }
    if let Some(kk) = &change.kk {
        let kk = kk.trim();
        if kk.len() != 16 || !kk.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::malformed("kk is 16 digits"));
        }
        next.kk = Kk(kk.to_string());
    }
    if let Some(address) = &change.address {
        next.address = text(address, "address", 200)?;
    }
    if let Some(kecamatan) = &change.kecamatan {
        next.move_to(
            text(kecamatan, "kecamatan", 64)?,
            Day::wita_of_unix_seconds(state.now()),
        );
    }
    if let Some(kelurahan) = &change.kelurahan {
        next.kelurahan = text(kelurahan, "kelurahan", 64)?;
    }
    if let Some(desil) = change.desil {
        if !(1..=10).contains(&desil) {
            return Err(ApiError::malformed("desil is a welfare decile, 1 to 10"));
        }
        next.desil = desil;
    }
    if next.name != current.name && !next.possible_duplicate {
        // A new name may be someone else's under another NIK: flagged as an import would.
        let key = name_key(&next.name, next.birth_date);
        next.possible_duplicate = state
            .ledger
            .registry()
            .beneficiaries()
            .await?
            .iter()
            .any(|b| b.ssn != next.ssn && name_key(&b.name, b.birth_date) == key);
    }
    if let Some(correction) = correction(&current, &next) {
        state
            .apply_audited(
                &caller,
                UPDATE_ACTION,
                &correction.target,
                vec![RegistryOp::Replace {
                    expected: RegistryRecord::Beneficiary(current),
                    new: RegistryRecord::Beneficiary(next.clone()),
                }],
            )
            .await?;
    }
    Ok(Json(view(&caller, &next)))
}

/// What changing a person's record from `before` to `after` changes of their data.
pub(crate) struct Correction {
    /// The fields that differ.
    pub fields: Vec<String>,
    /// The audit line's target: `beneficiary SSN: field: 'before' -> 'after'; ...`.
    pub target: String,
}

/// The one way a change to a person's data is described for the audit log, whether Diskominfo
/// corrects one person or a DTSEN import updates many: every field that differs, before and
/// after; `None` when none does.
pub(crate) fn correction(before: &Beneficiary, after: &Beneficiary) -> Option<Correction> {
    let sex = |b: &Beneficiary| match b.sex {
        Sex::Male => "L".to_string(),
        Sex::Female => "P".to_string(),
    };
    let compared = [
        ("name", before.name.clone(), after.name.clone()),
        (
            "kk",
            before.kk.expose().to_string(),
            after.kk.expose().to_string(),
        ),
        (
            "birth_date",
            before.birth_date.to_string(),
            after.birth_date.to_string(),
        ),
        ("sex", sex(before), sex(after)),
        ("address", before.address.clone(), after.address.clone()),
        (
            "kecamatan",
            before.kecamatan.clone(),
            after.kecamatan.clone(),
        ),
        (
            "kelurahan",
            before.kelurahan.clone(),
            after.kelurahan.clone(),
        ),
        ("desil", before.desil.to_string(), after.desil.to_string()),
        (
            "possible_duplicate",
            before.possible_duplicate.to_string(),
            after.possible_duplicate.to_string(),
        ),
        (
            "absent_from_dtsen",
            before.absent_from_dtsen.to_string(),
            after.absent_from_dtsen.to_string(),
        ),
    ];
    let fields: Vec<String> = compared
        .iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, ..)| field.to_string())
        .collect();
    if fields.is_empty() {
        return None;
    }
    Some(Correction {
        fields,
        target: format!(
            "beneficiary {}: {}",
            after.ssn,
            crate::support::changed_fields(&compared).join("; ")
        ),
    })
}

/// The fields a [`correction`] compares, by the names its audit target gives them.
const CORRECTED_FIELDS: [&str; 10] = [
    "name",
    "kk",
    "birth_date",
    "sex",
    "address",
    "kecamatan",
    "kelurahan",
    "desil",
    "possible_duplicate",
    "absent_from_dtsen",
];

/// A [`correction`]'s audit target without the values: the person and the names of the
/// fields changed, each from [`CORRECTED_FIELDS`] (so nothing of a value can come through,
/// whatever it holds).
/// A resolution's audit line (`SSN: distinct: NOTE`, `SSN: same person as SSN: NOTE`) without
/// its note: free text Dinas Sosial wrote about people, which may name or describe them.
pub(crate) fn resolution_withheld(target: &str) -> String {
    let (person, rest) = target.split_once(": ").unwrap_or((target, ""));
    let outcome = match rest.strip_prefix("same person as ") {
        Some(other) => format!("same person as {}", other.split(": ").next().unwrap_or("")),
        None => rest.split(": ").next().unwrap_or("").to_string(),
    };
    format!("{person}: {outcome} (note withheld)")
}

pub(crate) fn correction_withheld(target: &str) -> String {
    let (person, changes) = target.split_once(": ").unwrap_or((target, ""));
    let fields: Vec<&str> = CORRECTED_FIELDS
        .into_iter()
        .filter(|field| {
            changes.starts_with(&format!("{field}: '"))
                || changes.contains(&format!("; {field}: '"))
        })
        .collect();
    format!("{person}: {} (values withheld)", fields.join(", "))
}

/// The SSN number `q` names, as an SSN number or a card id (`None`: nobody).
async fn holder_of(state: &AdminState, q: &str) -> ApiResult<Option<String>> {
    if let Ok(card) = q.parse::<u64>() {
        return Ok(state
            .ledger
            .registry()
            .card(ssn_ledger::CardId(card))
            .await?
            .map(|c| c.ssn));
    }
    Ok(Some(q.to_ascii_uppercase()))
}

// ------------------------------------------------------------------------------------ decisions

/// A verification or validation decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// True to pass the step, false to reject the beneficiary.
    pub approved: bool,
    /// Why (kept in the audit log).
    #[serde(default)]
    pub note: Option<String>,
}

async fn decide(
    state: &AdminState,
    caller: &Caller,
    ssn: &str,
    decision: Decision,
    step: &str,
    from: BeneficiaryStatus,
    to: BeneficiaryStatus,
) -> ApiResult<Json<BeneficiaryView>> {
    let current = find(state, ssn).await?;
    if current.status != from {
        let error = ApiError::conflict(format!(
            "{ssn} is {}; {step} needs a beneficiary who is {}",
            status_name(current.status),
            status_name(from)
        ));
        state
            .audit_failure(caller, &format!("beneficiaries.{step}"), ssn, &error)
            .await;
        return Err(error);
    }
    let note = decision.note.unwrap_or_default();
    if note.len() > 500 {
        return Err(ApiError::malformed("note is at most 500 characters"));
    }
    let mut next = current.clone();
    next.status = if decision.approved {
        to
    } else {
        BeneficiaryStatus::Rejected
    };
    let mut outcome = if decision.approved {
        "approved".to_string()
    } else {
        "rejected".to_string()
    };
    if !note.trim().is_empty() {
        outcome.push_str(": ");
        outcome.push_str(note.trim());
    }
    let now = state.now();
    state
        .ledger
        .registry()
        .apply(vec![
            RegistryOp::Replace {
                expected: RegistryRecord::Beneficiary(current),
                new: RegistryRecord::Beneficiary(next.clone()),
            },
            RegistryOp::Audit(caller.audit(now, &format!("beneficiaries.{step}"), ssn, &outcome)),
        ])
        .await?;
    Ok(Json(view(caller, &next)))
}

/// Verification by Dinas Sosial: `imported` → `verified` (or `rejected`).
#[utoipa::path(post, path = "/beneficiaries/{ssn}/verify", tag = "beneficiaries",
    request_body = Decision, params(("ssn" = String, Path, description = "SSN number", example = "SSN000000001")),
    responses((status = 200, description = "The beneficiary after the decision", body = BeneficiaryView)))]
pub(crate) async fn verify_beneficiary(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
    body: JsonBody<Decision>,
) -> ApiResult<Json<BeneficiaryView>> {
    caller.require(&[Role::Dinsos])?;
    let decision = body.into_inner()?;
    decide(
        &state,
        &caller,
        &ssn,
        decision,
        "verify",
        BeneficiaryStatus::Imported,
        BeneficiaryStatus::Verified,
    )
    .await
}

/// Validation by Dinas Sosial: `verified` → `validated` (or `rejected`).
#[utoipa::path(post, path = "/beneficiaries/{ssn}/validate", tag = "beneficiaries",
    request_body = Decision, params(("ssn" = String, Path, description = "SSN number", example = "SSN000000001")),
    responses((status = 200, description = "The beneficiary after the decision", body = BeneficiaryView)))]
pub(crate) async fn validate_beneficiary(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
    body: JsonBody<Decision>,
) -> ApiResult<Json<BeneficiaryView>> {
    caller.require(&[Role::Dinsos])?;
    let decision = body.into_inner()?;
    decide(
        &state,
        &caller,
        &ssn,
        decision,
        "validate",
        BeneficiaryStatus::Verified,
        BeneficiaryStatus::Validated,
    )
    .await
}

// ------------------------------------------------------------------------------------ decrees

/// A mayor's decree enrolling beneficiaries in a program.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDetermination {
    /// Decree number.
    #[schema(example = "100.3.3.2/123/HK-KS/X/2025")]
    pub decree_number: String,
    /// Decree date, `YYYY-MM-DD`.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-10-01")]
    pub decree_date: String,
    /// The program.
    pub program_code: String,
    /// SSN numbers, each `validated` or `determined` for another program.
    #[schema(min_items = 1)]
    pub ssns: Vec<String>,
}

/// A determination.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeterminationView {
    /// Id.
    pub id: u64,
    /// Decree number.
    pub decree_number: String,
    /// Decree date.
    pub decree_date: String,
    /// Program.
    pub program_code: String,
    /// SSN numbers enrolled.
    pub ssns: Vec<String>,
    /// Whether it was revoked.
    pub revoked: bool,
}

fn determination_view(d: &Determination) -> DeterminationView {
    DeterminationView {
        id: d.id,
        decree_number: d.decree_number.clone(),
        decree_date: d.decree_date.to_string(),
        program_code: d.program_code.as_str().to_string(),
        ssns: d.ssns.clone(),
        revoked: d.revoked,
    }
}

/// Determines recipients by decree, all or nothing: one ineligible SSN refuses the decree.
#[utoipa::path(post, path = "/determinations", tag = "determinations",
    request_body = NewDetermination,
    responses((status = 201, description = "Enrolled", body = DeterminationView)))]
pub(crate) async fn create_determination(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewDetermination>,
) -> ApiResult<(StatusCode, Json<DeterminationView>)> {
    caller.require(&[Role::Walikota])?;
    let new = body.into_inner()?;
    let decree_number = new.decree_number.trim().to_string();
    if decree_number.is_empty() || decree_number.len() > 100 {
        return Err(ApiError::malformed("decree_number is 1 to 100 characters"));
    }
    let decree_date = parse_day(&new.decree_date, "decree_date")?;
    if new.ssns.is_empty() || new.ssns.len() > DECREE_SSNS_MAX {
        return Err(ApiError::malformed(format!(
            "ssns names 1 to {DECREE_SSNS_MAX} beneficiaries"
        )));
    }
    let unique: HashSet<&String> = new.ssns.iter().collect();
    if unique.len() != new.ssns.len() {
        return Err(ApiError::malformed("ssns names a beneficiary twice"));
    }
    let program = super::programs::find_program(&state, &new.program_code).await?;
    let code: ProgramCode = program.code.clone();
    let action = "determinations.create";
    let target = format!("decree {decree_number} program {code}");

    let today = Day::wita_of_unix_seconds(state.now());
    let mut ops = Vec::with_capacity(new.ssns.len() + 2);
    for ssn in &new.ssns {
        let current = state.ledger.registry().beneficiary(ssn).await?;
        let refusal = match &current {
            None => Some(format!("{ssn} is not a beneficiary")),
            Some(b) if b.enrolments.contains(&code) => {
                Some(format!("{ssn} is already determined for {code}"))
            }
            Some(b)
                if !matches!(
                    b.status,
                    BeneficiaryStatus::Validated | BeneficiaryStatus::Determined
                ) =>
            {
                Some(format!(
                    "{ssn} is {}; a decree needs validated beneficiaries",
                    status_name(b.status)
                ))
            }
            Some(_) => None,
        };
        if let Some(message) = refusal {
            let error = ApiError::conflict(format!("the decree is refused whole: {message}"));
            state.audit_failure(&caller, action, &target, &error).await;
            return Err(error);
        }
        let current = current.expect("refused above when absent");
        let mut next = current.clone();
        next.status = BeneficiaryStatus::Determined;
        next.enrol(&code, today);
        ops.push(RegistryOp::Replace {
            expected: RegistryRecord::Beneficiary(current),
            new: RegistryRecord::Beneficiary(next),
        });
    }
    let people: Vec<&Beneficiary> = ops
        .iter()
        .filter_map(|op| match op {
            RegistryOp::Replace {
                expected: RegistryRecord::Beneficiary(b),
                ..
            } => Some(b),
            _ => None,
        })
        .collect();
    let mut off_target = program_refusals(&state, &program, &people).await?;
    off_target.extend(people.iter().filter(|b| b.possible_duplicate).map(|b| {
        format!(
            "{} is a possible duplicate (same name and birth date as another NIK): resolve it \
             first with POST /beneficiaries/{}/resolve",
            b.ssn, b.ssn
        )
    }));
    if !off_target.is_empty() {
        let error = ApiError::refused(format!(
            "the decree is refused whole: {}",
            off_target.join("; ")
        ));
        state.audit_failure(&caller, action, &target, &error).await;
        return Err(error);
    }
    let id = state.ledger.registry().next_number("determination").await?;
    let determination = Determination {
        id,
        decree_number,
        decree_date,
        program_code: code,
        ssns: new.ssns,
        revoked: false,
    };
    ops.push(RegistryOp::Insert(RegistryRecord::Determination(
        determination.clone(),
    )));
    state
        .apply_audited(
            &caller,
            action,
            &format!("determination {id} ({target})"),
            ops,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(determination_view(&determination)),
    ))
}

/// How a possible duplicate is settled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// The SSN number of the record this one is the same person as (this one is then
    /// rejected); absent when `distinct`.
    #[serde(default)]
    pub same_person_as: Option<String>,
    /// True when the two are different people who share a name and birth date.
    #[serde(default)]
    pub distinct: bool,
    /// What Dinas Sosial checked (kept in the audit log).
    pub note: String,
}

/// Settles a possible duplicate (same name and birth date as another NIK): `distinct` clears
/// the flag; `same_person_as` rejects this record as the other's duplicate. A decree refuses
/// people whose flag is not settled.
#[utoipa::path(post, path = "/beneficiaries/{ssn}/resolve", tag = "beneficiaries",
    request_body = Resolution,
    params(("ssn" = String, Path, description = "SSN number of the flagged record", example = "SSN000000002")),
    responses((status = 200, description = "Settled", body = BeneficiaryView)))]
pub(crate) async fn resolve_duplicate(
    State(state): State<AdminState>,
    caller: Caller,
    Path(ssn): Path<String>,
    body: JsonBody<Resolution>,
) -> ApiResult<Json<BeneficiaryView>> {
    caller.require(&[Role::Dinsos])?;
    let resolution = body.into_inner()?;
    let note = resolution.note.trim().to_string();
    if note.is_empty() || note.chars().count() > 500 {
        return Err(ApiError::malformed("note is 1 to 500 characters"));
    }
    let current = find(&state, &ssn).await?;
    let target = format!("beneficiary {ssn}");
    if !current.possible_duplicate {
        let error = ApiError::conflict(format!("{ssn} is not flagged as a possible duplicate"));
        state
            .audit_failure(&caller, RESOLVE_ACTION, &target, &error)
            .await;
        return Err(error);
    }
    let mut next = current.clone();
    next.possible_duplicate = false;
    let outcome = match (resolution.same_person_as.as_deref(), resolution.distinct) {
        (None, true) => format!("distinct: {note}"),
        (Some(other), false) => {
            let original = find(&state, other).await?;
            if original.ssn == current.ssn || original.nik == current.nik {
                return Err(ApiError::malformed("same_person_as names another record"));
            }
            if !current.enrolments.is_empty() {
                return Err(ApiError::conflict(format!(
                    "{ssn} is enrolled already; revoke it before rejecting it as a duplicate"
                )));
            }
            next.status = BeneficiaryStatus::Rejected;
            format!("same person as {}: {note}", original.ssn)
        }
        _ => {
            return Err(ApiError::malformed(
                "give either same_person_as or distinct: true",
            ));
        }
    };
    state
        .apply_audited(
            &caller,
            RESOLVE_ACTION,
            &format!("{target}: {outcome}"),
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Beneficiary(current),
                new: RegistryRecord::Beneficiary(next.clone()),
            }],
        )
        .await?;
    Ok(Json(view(&caller, &next)))
}

/// Who of `people` the program's own rules refuse, each with why: above its `desil_max`
/// (Pasal 3c), or, for a program paid per family, a second person of one family card (KK) in
/// the decree or a person whose family already has the program.
async fn program_refusals(
    state: &AdminState,
    program: &ssn_ledger::Program,
    people: &[&Beneficiary],
) -> ApiResult<Vec<String>> {
    let mut refusals = Vec::new();
    if let Some(max) = program.desil_max {
        for b in people.iter().filter(|b| b.desil > max) {
            refusals.push(format!(
                "{} is in desil {}, above the program's {max}",
                b.ssn, b.desil
            ));
        }
    }
    if program.beneficiary_unit == ssn_ledger::BeneficiaryUnit::Family {
        let enrolled: HashMap<String, String> = state
            .ledger
            .registry()
            .beneficiaries()
            .await?
            .into_iter()
            .filter(|b| b.enrolments.contains(&program.code))
            .map(|b| (b.kk.expose().to_string(), b.ssn))
            .collect();
        let mut in_decree: HashMap<&str, &str> = HashMap::new();
        for b in people {
            let kk = b.kk.expose();
            if let Some(other) = enrolled.get(kk) {
                refusals.push(format!(
                    "{}'s family already has {} through {other}",
                    b.ssn, program.code
                ));
            } else if let Some(other) = in_decree.insert(kk, b.ssn.as_str()) {
                refusals.push(format!(
                    "{} and {other} are one family; {} pays one person per family",
                    b.ssn, program.code
                ));
            }
        }
    }
    Ok(refusals)
}

async fn find_determination(state: &AdminState, id: &str) -> ApiResult<Determination> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no determination {id}")))?;
    state
        .ledger
        .registry()
        .determination(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no determination {id}")))
}

/// One determination.
#[utoipa::path(get, path = "/determinations/{id}", tag = "determinations",
    params(("id" = String, Path, description = "Determination id", example = "1")),
    responses((status = 200, description = "The determination", body = DeterminationView)))]
pub(crate) async fn get_determination(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeterminationView>> {
    Ok(Json(determination_view(
        &find_determination(&state, &id).await?,
    )))
}

/// Revokes a determination: its enrolments end (from then on their pockets of the program pay
/// nothing) and what those pockets hold returns to the program's giro account in one
/// journaled movement; a beneficiary with no enrolment left is `revoked`. A repeat after the
/// money step failed (503) finishes it.
#[utoipa::path(post, path = "/determinations/{id}/revoke", tag = "determinations",
    params(("id" = String, Path, description = "Determination id", example = "1")),
    responses((status = 200, description = "Revoked", body = DeterminationView)))]
pub(crate) async fn revoke_determination(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeterminationView>> {
    caller.require(&[Role::Walikota])?;
    let determination = find_determination(&state, &id).await?;
    let target = format!("determination {}", determination.id);
    let reference = format!("determination {}", determination.id);
    if determination.revoked
        && state
            .ledger
            .revocation(&determination.program_code, &reference)?
            .is_none()
    {
        // Revoked in the registry, the money step still to do: the people of the decree who
        // are no longer enrolled in its program.
        let mut ssns = Vec::new();
        for ssn in &determination.ssns {
            if let Some(person) = state.ledger.registry().beneficiary(ssn).await?
                && !person.enrolments.contains(&determination.program_code)
            {
                ssns.push(ssn.as_str());
            }
        }
        let cards = super::revocations::cards_of(&state, &ssns).await?;
        super::revocations::return_pockets(
            &state,
            &caller,
            &determination.program_code,
            &reference,
            &cards,
        )
        .await?;
        return Ok(Json(determination_view(&determination)));
    }
    if determination.revoked {
        let error = ApiError::conflict(format!("{target} is already revoked"));
        state
            .audit_failure(&caller, "determinations.revoke", &target, &error)
            .await;
        return Err(error);
    }
    let today = Day::wita_of_unix_seconds(state.now());
    let mut ops = Vec::with_capacity(determination.ssns.len() + 2);
    // Whose enrolment this revocation ends: only their pockets return.
    let mut ended = Vec::new();
    for ssn in &determination.ssns {
        let Some(current) = state.ledger.registry().beneficiary(ssn).await? else {
            continue;
        };
        if !current.enrolments.contains(&determination.program_code) {
            continue;
        }
        let mut next = current.clone();
        next.end_enrolment(&determination.program_code, today);
        if next.enrolments.is_empty() {
            next.status = BeneficiaryStatus::Revoked;
        }
        ops.push(RegistryOp::Replace {
            expected: RegistryRecord::Beneficiary(current),
            new: RegistryRecord::Beneficiary(next),
        });
        ended.push(ssn.clone());
    }
    let mut revoked = determination.clone();
    revoked.revoked = true;
    ops.push(RegistryOp::Replace {
        expected: RegistryRecord::Determination(determination),
        new: RegistryRecord::Determination(revoked.clone()),
    });
    state
        .apply_audited(&caller, "determinations.revoke", &target, ops)
        .await?;
    let ended: Vec<&str> = ended.iter().map(String::as_str).collect();
    let cards = super::revocations::cards_of(&state, &ended).await?;
    super::revocations::return_pockets(&state, &caller, &revoked.program_code, &reference, &cards)
        .await?;
    Ok(Json(determination_view(&revoked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a correction compares is named in its audit line, and the line withheld
    /// from roles without personal data names the same fields and no value.
    #[test]
    fn a_correction_names_every_field_and_withholds_every_value() {
        let before = Beneficiary {
            ssn: "SSN000000001".into(),
            nik: ssn_ledger::Nik("6472014101800001".into()),
            kk: Kk("6472010000000001".into()),
            name: "Siti Aminah".into(),
            birth_date: Day::parse_iso("1980-01-01").unwrap(),
            sex: Sex::Female,
            address: "Jl. Pahlawan 1".into(),
            kecamatan: "Palaran".into(),
            kelurahan: "Rawa Makmur".into(),
            desil: 3,
            status: BeneficiaryStatus::Imported,
            enrolments: Vec::new(),
            possible_duplicate: false,
            import_batch: 1,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        };
        let after = Beneficiary {
            kk: Kk("6472019999999999".into()),
            name: "Siti; kk: 'x' Aminah".into(),
            birth_date: Day::parse_iso("1981-02-02").unwrap(),
            sex: Sex::Male,
            address: "Jl. Cendana 7".into(),
            kecamatan: "Sambutan".into(),
            kelurahan: "Sungai Kapih".into(),
            desil: 4,
            possible_duplicate: true,
            absent_from_dtsen: true,
            ..before.clone()
        };
        let changed = correction(&before, &after).expect("a change");
        assert_eq!(changed.fields, CORRECTED_FIELDS);
        let withheld = correction_withheld(&changed.target);
        assert_eq!(
            withheld,
            format!(
                "beneficiary SSN000000001: {} (values withheld)",
                CORRECTED_FIELDS.join(", ")
            )
        );
        for value in ["Siti", "6472", "1980", "1981", "Pahlawan", "Cendana", "'"] {
            assert!(!withheld.contains(value), "{value} in {withheld}");
        }
        assert!(correction(&before, &before).is_none());
    }
}
