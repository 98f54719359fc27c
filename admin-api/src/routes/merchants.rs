//! E-Warong merchants and their EDC terminals (`bank`). Terminal keys arrive as 32 hex digits
//! with their key check values, are refused (422) when a check value does not match, and are
//! stored wrapped under the switch's master key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ssn_hsm::{HsmError, KeyUsage};
use ssn_ledger::{
    EncryptedKey, Merchant, MerchantId, MerchantKind, RegistryOp, RegistryRecord, Role, Terminal,
    TerminalId,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, JsonBody, Page, Paging, QueryParams};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_merchant, list_merchants))
        .routes(routes!(get_merchant, patch_merchant))
        .routes(routes!(suspend_merchant))
        .routes(routes!(activate_merchant))
        .routes(routes!(create_terminal, list_terminals))
        .routes(routes!(get_terminal, patch_terminal))
        .routes(routes!(suspend_terminal))
        .routes(routes!(activate_terminal))
}

fn kind_name(kind: MerchantKind) -> &'static str {
    match kind {
        MerchantKind::Mikro => "mikro",
        MerchantKind::Kecil => "kecil",
        MerchantKind::Koperasi => "koperasi",
        MerchantKind::Kube => "kube",
    }
}

/// An E-Warong to appoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    /// DE42: exactly 15 printable characters.
    #[schema(min_length = 15, max_length = 15, example = "EWARONG00000051")]
    pub merchant_id: String,
    /// Name.
    pub name: String,
    /// `mikro`, `kecil`, `koperasi` or `kube`.
    #[schema(example = "kube")]
    pub kind: String,
    /// Kecamatan.
    pub kecamatan: String,
    /// Kelurahan.
    pub kelurahan: String,
    /// Bank account settlements are paid to.
    pub settlement_account: String,
}

/// An E-Warong.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantView {
    /// DE42.
    pub merchant_id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Kecamatan.
    pub kecamatan: String,
    /// Kelurahan.
    pub kelurahan: String,
    /// Settlement account.
    pub settlement_account: String,
    /// `active` or `suspended`.
    pub status: String,
}

fn merchant_view(m: &Merchant) -> MerchantView {
    MerchantView {
        merchant_id: m.merchant_id.as_str().to_string(),
        name: m.name.clone(),
        kind: kind_name(m.kind).into(),
        kecamatan: m.kecamatan.clone(),
        kelurahan: m.kelurahan.clone(),
        settlement_account: m.settlement_account.clone(),
        status: if m.active { "active" } else { "suspended" }.into(),
    }
}

fn text(value: &str, field: &str, max: usize) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::malformed(format!(
            "{field} is 1 to {max} printable characters"
        )));
    }
    Ok(value.to_string())
}

fn parse_kind(kind: &str) -> ApiResult<MerchantKind> {
    match kind {
        "mikro" => Ok(MerchantKind::Mikro),
        "kecil" => Ok(MerchantKind::Kecil),
        "koperasi" => Ok(MerchantKind::Koperasi),
        "kube" => Ok(MerchantKind::Kube),
        _ => Err(ApiError::malformed(
            "kind is mikro, kecil, koperasi or kube",
        )),
    }
}

fn parse_account(account: &str) -> ApiResult<String> {
    let account = account.trim();
    if account.is_empty()
        || account.len() > 34
        || !account.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiError::malformed(
            "settlement_account is 1 to 34 letters and digits",
        ));
    }
    Ok(account.to_string())
}

/// What of an E-Warong changes: the fields given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantChange {
    /// Name.
    pub name: Option<String>,
    /// `mikro`, `kecil`, `koperasi` or `kube`.
    pub kind: Option<String>,
    /// Kecamatan.
    pub kecamatan: Option<String>,
    /// Kelurahan.
    pub kelurahan: Option<String>,
    /// Bank account settlements are paid to (a payout the bank rejected goes to the new one at
    /// the next settlement).
    pub settlement_account: Option<String>,
}

/// Corrects an E-Warong: name, kind, area or settlement account (DE42 and status stay). The
/// audit line names each field changed, before and after.
#[utoipa::path(patch, path = "/merchants/{merchant_id}", tag = "merchants",
    request_body = MerchantChange,
    params(("merchant_id" = String, Path, description = "DE42", example = "EWARONG00000051")),
    responses((status = 200, description = "The E-Warong as it is now", body = MerchantView)))]
pub(crate) async fn patch_merchant(
    State(state): State<AdminState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    body: JsonBody<MerchantChange>,
) -> ApiResult<Json<MerchantView>> {
    caller.require(&[Role::Bank])?;
    let change = body.into_inner()?;
    let merchant = find_merchant(&state, &merchant_id).await?;
    let mut next = merchant.clone();
    if let Some(name) = &change.name {
        next.name = text(name, "name", 100)?;
    }
    if let Some(kind) = &change.kind {
        next.kind = parse_kind(kind)?;
    }
    if let Some(kecamatan) = &change.kecamatan {
        next.kecamatan = text(kecamatan, "kecamatan", 64)?;
    }
    if let Some(kelurahan) = &change.kelurahan {
        next.kelurahan = text(kelurahan, "kelurahan", 64)?;
    }
    if let Some(account) = &change.settlement_account {
        next.settlement_account = parse_account(account)?;
    }
    let changed = crate::support::changed_fields(&[
        ("name", merchant.name.clone(), next.name.clone()),
        (
            "kind",
            kind_name(merchant.kind).into(),
            kind_name(next.kind).into(),
        ),
        (
            "kecamatan",
            merchant.kecamatan.clone(),
            next.kecamatan.clone(),
        ),
        (
            "kelurahan",
            merchant.kelurahan.clone(),
            next.kelurahan.clone(),
        ),
        (
            "settlement_account",
            merchant.settlement_account.clone(),
            next.settlement_account.clone(),
        ),
    ]);
    if changed.is_empty() {
        return Ok(Json(merchant_view(&merchant)));
    }
    state
        .apply_audited(
            &caller,
            "merchants.update",
            &format!("merchant {}: {}", merchant.merchant_id, changed.join("; ")),
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Merchant(merchant),
                new: RegistryRecord::Merchant(next.clone()),
            }],
        )
        .await?;
    Ok(Json(merchant_view(&next)))
}

/// Appoints an E-Warong.
#[utoipa::path(post, path = "/merchants", tag = "merchants", request_body = NewMerchant,
    responses((status = 201, description = "Created", body = MerchantView)))]
pub(crate) async fn create_merchant(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewMerchant>,
) -> ApiResult<(StatusCode, Json<MerchantView>)> {
    caller.require(&[Role::Bank])?;
    let new = body.into_inner()?;
    let merchant = Merchant {
        merchant_id: MerchantId::new(new.merchant_id)?,
        name: text(&new.name, "name", 100)?,
        kind: parse_kind(&new.kind)?,
        kecamatan: text(&new.kecamatan, "kecamatan", 64)?,
        kelurahan: text(&new.kelurahan, "kelurahan", 64)?,
        settlement_account: parse_account(&new.settlement_account)?,
        active: true,
        appointed_on: Some(ssn_ledger::Day::wita_of_unix_seconds(state.now())),
        changes: Vec::new(),
    };
    state
        .apply_audited(
            &caller,
            "merchants.create",
            &format!("merchant {}", merchant.merchant_id),
            vec![RegistryOp::Insert(RegistryRecord::Merchant(
                merchant.clone(),
            ))],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(merchant_view(&merchant))))
}

/// Every E-Warong.
#[utoipa::path(get, path = "/merchants", tag = "merchants", params(Paging),
    responses((status = 200, description = "A page of E-Warong, by DE42", body = Page<MerchantView>)))]
pub(crate) async fn list_merchants(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> ApiResult<Json<Page<MerchantView>>> {
    paging.resolve()?;
    let mut merchants = state.ledger.registry().merchants().await?;
    merchants.sort_by(|a, b| a.merchant_id.cmp(&b.merchant_id));
    Ok(Json(
        paging.page(merchants.iter().map(merchant_view).collect())?,
    ))
}

async fn find_merchant(state: &AdminState, id: &str) -> ApiResult<Merchant> {
    let not_found = || ApiError::not_found(format!("no E-Warong {id}"));
    let id = MerchantId::new(id).map_err(|_| not_found())?;
    state
        .ledger
        .registry()
        .merchant(&id)
        .await?
        .ok_or_else(not_found)
}

/// One E-Warong.
#[utoipa::path(get, path = "/merchants/{merchant_id}", tag = "merchants",
    params(("merchant_id" = String, Path, description = "DE42", example = "EWARONG00000001")),
    responses((status = 200, description = "The E-Warong", body = MerchantView)))]
pub(crate) async fn get_merchant(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(merchant_id): Path<String>,
) -> ApiResult<Json<MerchantView>> {
    Ok(Json(merchant_view(
        &find_merchant(&state, &merchant_id).await?,
    )))
}

/// Suspends or activates an E-Warong, audited; `because` (an alert, say) is added to the
/// audit line's target.
pub(crate) async fn set_merchant_active(
    state: &AdminState,
    caller: &Caller,
    id: &str,
    active: bool,
    because: Option<&str>,
) -> ApiResult<Json<MerchantView>> {
    let merchant = find_merchant(state, id).await?;
    let action = if active {
        "merchants.activate"
    } else {
        "merchants.suspend"
    };
    let target = match because {
        Some(reason) => format!("merchant {} ({reason})", merchant.merchant_id),
        None => format!("merchant {}", merchant.merchant_id),
    };
    if merchant.active == active {
        let error = ApiError::conflict(format!(
            "E-Warong {} is already {}",
            merchant.merchant_id,
            if active { "active" } else { "suspended" }
        ));
        state.audit_failure(caller, action, &target, &error).await;
        return Err(error);
    }
    let mut next = merchant.clone();
    next.set_active(active, ssn_ledger::Day::wita_of_unix_seconds(state.now()));
    state
        .apply_audited(
            caller,
            action,
            &target,
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Merchant(merchant),
                new: RegistryRecord::Merchant(next.clone()),
            }],
        )
        .await?;
    Ok(Json(merchant_view(&next)))
}

/// Suspends an E-Warong: its terminals' purchases are declined `03`.
#[utoipa::path(post, path = "/merchants/{merchant_id}/suspend", tag = "merchants",
    params(("merchant_id" = String, Path, description = "DE42", example = "EWARONG00000001")),
    responses((status = 200, description = "Suspended", body = MerchantView)))]
pub(crate) async fn suspend_merchant(
    State(state): State<AdminState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> ApiResult<Json<MerchantView>> {
    caller.require(&[Role::Bank])?;
    set_merchant_active(&state, &caller, &merchant_id, false, None).await
}

/// Activates a suspended E-Warong.
#[utoipa::path(post, path = "/merchants/{merchant_id}/activate", tag = "merchants",
    params(("merchant_id" = String, Path, description = "DE42", example = "EWARONG00000001")),
    responses((status = 200, description = "Active", body = MerchantView)))]
pub(crate) async fn activate_merchant(
    State(state): State<AdminState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> ApiResult<Json<MerchantView>> {
    caller.require(&[Role::Bank])?;
    set_merchant_active(&state, &caller, &merchant_id, true, None).await
}

// ------------------------------------------------------------------------------------ terminals

/// A terminal to install, with its keys from the bank's key ceremony.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTerminal {
    /// DE41: exactly 8 printable characters.
    #[schema(min_length = 8, max_length = 8, example = "EWR51001")]
    pub terminal_id: String,
    /// The E-Warong it belongs to.
    pub merchant_id: String,
    /// Terminal master key: 32 hex digits (double-length 3DES).
    #[schema(pattern = r"^[0-9A-Fa-f]{32}$")]
    pub tmk: String,
    /// Its key check value: 6 hex digits.
    #[schema(pattern = r"^[0-9A-Fa-f]{6}$")]
    pub tmk_kcv: String,
    /// Terminal PIN key: 32 hex digits.
    #[schema(pattern = r"^[0-9A-Fa-f]{32}$")]
    pub tpk: String,
    /// Its key check value.
    #[schema(pattern = r"^[0-9A-Fa-f]{6}$")]
    pub tpk_kcv: String,
    /// Terminal authentication key, 32 hex digits, for a terminal that MACs its messages (host
    /// interface §10); leave out for one that does not. Needs `tak_kcv`.
    #[schema(pattern = r"^[0-9A-Fa-f]{32}$")]
    pub tak: Option<String>,
    /// Its key check value; given exactly when `tak` is.
    #[schema(pattern = r"^[0-9A-Fa-f]{6}$")]
    pub tak_kcv: Option<String>,
}

/// A terminal (keys are never shown; their check values are).
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalView {
    /// DE41.
    pub terminal_id: String,
    /// DE42 of its E-Warong.
    pub merchant_id: String,
    /// Check value of the stored TMK.
    pub tmk_kcv: String,
    /// Check value of the stored TPK (changes with every 0800 key change).
    pub tpk_kcv: String,
    /// Check value of the stored TAK (changes with every 0800 key change); absent for a
    /// terminal that does not MAC its messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tak_kcv: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
}

fn terminal_view(t: &Terminal) -> TerminalView {
    TerminalView {
        terminal_id: t.terminal_id.as_str().to_string(),
        merchant_id: t.merchant_id.as_str().to_string(),
        tmk_kcv: t.tmk.kcv.clone(),
        tpk_kcv: t.tpk.kcv.clone(),
        tak_kcv: t.tak.as_ref().map(|k| k.kcv.clone()),
        status: if t.active { "active" } else { "suspended" }.into(),
    }
}

fn import_key(
    state: &AdminState,
    usage: KeyUsage,
    field: &str,
    key: &str,
    kcv: &str,
) -> ApiResult<EncryptedKey> {
    match state.hsm.import_key(usage, key, kcv) {
        Ok(wrapped) => Ok(EncryptedKey {
            ciphertext: wrapped.as_bytes().to_vec(),
            kcv: kcv.to_ascii_uppercase(),
        }),
        Err(HsmError::CheckValueMismatch) => Err(ApiError::refused(format!(
            "{field}_kcv does not match {field}: the key was mistyped or is not the one the terminal holds"
        ))),
        Err(e @ (HsmError::KeyHex | HsmError::CheckValueHex)) => {
            Err(ApiError::malformed(format!("{field}: {e}")))
        }
        Err(e) => Err(ApiError::internal(format!("wrapping {field}: {e}"))),
    }
}

/// Installs a terminal.
#[utoipa::path(post, path = "/terminals", tag = "terminals", request_body = NewTerminal,
    responses((status = 201, description = "Installed", body = TerminalView)))]
pub(crate) async fn create_terminal(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewTerminal>,
) -> ApiResult<(StatusCode, Json<TerminalView>)> {
    caller.require(&[Role::Bank])?;
    let new = body.into_inner()?;
    let terminal_id = TerminalId::new(new.terminal_id)?;
    let merchant = find_merchant(&state, &new.merchant_id).await.map_err(|_| {
        ApiError::refused(format!(
            "no E-Warong {} to install the terminal at",
            new.merchant_id
        ))
    })?;
    let terminal = Terminal {
        terminal_id,
        merchant_id: merchant.merchant_id,
        tmk: import_key(&state, KeyUsage::Tmk, "tmk", &new.tmk, &new.tmk_kcv)?,
        tpk: import_key(&state, KeyUsage::Tpk, "tpk", &new.tpk, &new.tpk_kcv)?,
        active: true,
        tak: match (&new.tak, &new.tak_kcv) {
            (Some(tak), Some(kcv)) => Some(import_key(&state, KeyUsage::Tak, "tak", tak, kcv)?),
            (None, None) => None,
            _ => {
                return Err(ApiError::malformed(
                    "tak and tak_kcv go together: give both or neither",
                ));
            }
        },
    };
    state
        .apply_audited(
            &caller,
            "terminals.create",
            &format!(
                "terminal {} at {}",
                terminal.terminal_id, terminal.merchant_id
            ),
            vec![RegistryOp::Insert(RegistryRecord::Terminal(
                terminal.clone(),
            ))],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(terminal_view(&terminal))))
}

/// Every terminal.
#[utoipa::path(get, path = "/terminals", tag = "terminals", params(Paging),
    responses((status = 200, description = "A page of terminals, by DE41", body = Page<TerminalView>)))]
pub(crate) async fn list_terminals(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> ApiResult<Json<Page<TerminalView>>> {
    paging.resolve()?;
    let mut terminals = state.ledger.registry().terminals().await?;
    terminals.sort_by(|a, b| a.terminal_id.cmp(&b.terminal_id));
    Ok(Json(
        paging.page(terminals.iter().map(terminal_view).collect())?,
    ))
}

async fn find_terminal(state: &AdminState, id: &str) -> ApiResult<Terminal> {
    let not_found = || ApiError::not_found(format!("no terminal {id}"));
    let id = TerminalId::new(id).map_err(|_| not_found())?;
    state
        .ledger
        .registry()
        .terminal(&id)
        .await?
        .ok_or_else(not_found)
}

/// One terminal.
#[utoipa::path(get, path = "/terminals/{terminal_id}", tag = "terminals",
    params(("terminal_id" = String, Path, description = "DE41", example = "EWR10001")),
    responses((status = 200, description = "The terminal", body = TerminalView)))]
pub(crate) async fn get_terminal(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(terminal_id): Path<String>,
) -> ApiResult<Json<TerminalView>> {
    Ok(Json(terminal_view(
        &find_terminal(&state, &terminal_id).await?,
    )))
}

/// Where a terminal moves.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalChange {
    /// DE42 of the E-Warong it belongs to from now on.
    #[schema(min_length = 15, max_length = 15, example = "EWARONG00000052")]
    pub merchant_id: String,
}

/// Moves a terminal to another E-Warong (the bank's, like every E-Warong here); its keys stay.
/// From then on its requests carry the new E-Warong's DE42 (another is `03`) and its
/// purchases count for the new E-Warong. Audited with before and after.
#[utoipa::path(patch, path = "/terminals/{terminal_id}", tag = "terminals",
    request_body = TerminalChange,
    params(("terminal_id" = String, Path, description = "DE41", example = "EWR10001")),
    responses((status = 200, description = "The terminal as it is now", body = TerminalView)))]
pub(crate) async fn patch_terminal(
    State(state): State<AdminState>,
    caller: Caller,
    Path(terminal_id): Path<String>,
    body: JsonBody<TerminalChange>,
) -> ApiResult<Json<TerminalView>> {
    caller.require(&[Role::Bank])?;
    let change = body.into_inner()?;
    let terminal = find_terminal(&state, &terminal_id).await?;
    let to = MerchantId::new(change.merchant_id.clone())
        .map_err(|_| ApiError::refused(format!("no E-Warong {}", change.merchant_id)))?;
    if state.ledger.registry().merchant(&to).await?.is_none() {
        return Err(ApiError::refused(format!("no E-Warong {to}")));
    }
    if terminal.merchant_id == to {
        return Ok(Json(terminal_view(&terminal)));
    }
    let mut next = terminal.clone();
    next.merchant_id = to;
    state
        .apply_audited(
            &caller,
            "terminals.update",
            &format!(
                "terminal {}: merchant_id: '{}' -> '{}'",
                terminal.terminal_id, terminal.merchant_id, next.merchant_id
            ),
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Terminal(terminal),
                new: RegistryRecord::Terminal(next.clone()),
            }],
        )
        .await?;
    Ok(Json(terminal_view(&next)))
}

async fn set_terminal_active(
    state: &AdminState,
    caller: &Caller,
    id: &str,
    active: bool,
) -> ApiResult<Json<TerminalView>> {
    let terminal = find_terminal(state, id).await?;
    let action = if active {
        "terminals.activate"
    } else {
        "terminals.suspend"
    };
    let target = format!("terminal {}", terminal.terminal_id);
    if terminal.active == active {
        let error = ApiError::conflict(format!(
            "terminal {} is already {}",
            terminal.terminal_id,
            if active { "active" } else { "suspended" }
        ));
        state.audit_failure(caller, action, &target, &error).await;
        return Err(error);
    }
    let mut next = terminal.clone();
    next.active = active;
    state
        .apply_audited(
            caller,
            action,
            &target,
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Terminal(terminal),
                new: RegistryRecord::Terminal(next.clone()),
            }],
        )
        .await?;
    Ok(Json(terminal_view(&next)))
}

/// Suspends a terminal: its requests are declined `58`.
#[utoipa::path(post, path = "/terminals/{terminal_id}/suspend", tag = "terminals",
    params(("terminal_id" = String, Path, description = "DE41", example = "EWR10001")),
    responses((status = 200, description = "Suspended", body = TerminalView)))]
pub(crate) async fn suspend_terminal(
    State(state): State<AdminState>,
    caller: Caller,
    Path(terminal_id): Path<String>,
) -> ApiResult<Json<TerminalView>> {
    caller.require(&[Role::Bank])?;
    set_terminal_active(&state, &caller, &terminal_id, false).await
}

/// Activates a suspended terminal.
#[utoipa::path(post, path = "/terminals/{terminal_id}/activate", tag = "terminals",
    params(("terminal_id" = String, Path, description = "DE41", example = "EWR10001")),
    responses((status = 200, description = "Active", body = TerminalView)))]
pub(crate) async fn activate_terminal(
    State(state): State<AdminState>,
    caller: Caller,
    Path(terminal_id): Path<String>,
) -> ApiResult<Json<TerminalView>> {
    caller.require(&[Role::Bank])?;
    set_terminal_active(&state, &caller, &terminal_id, true).await
}
