//! SSN cards (`diskominfo`): issue, personalization batch, delivery, block and unblock, loss
//! reports, replacement with the pockets moved in the journal, PIN reset; card and statement
//! reads for every role.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use ssn_hsm::{Pin, Pvki};
use ssn_ledger::{
    Beneficiary, BeneficiaryStatus, Card, CardId, CardRow, CardStatus, CardTransfer, Day, Ledger,
    LedgerError, Money, Pan, ProgramCode, Pvv, Record, RegistryOp, RegistryRecord, ReversalEffect,
    ReversalRecord, Role,
};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, JsonBody, Page, Paging, QueryParams, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(issue_card, list_cards))
        .routes(routes!(issue_batch))
        .routes(routes!(get_card))
        .routes(routes!(card_statement))
        .routes(routes!(deliver_card))
        .routes(routes!(block_card))
        .routes(routes!(unblock_card))
        .routes(routes!(report_card))
        .routes(routes!(replace_card))
        .routes(routes!(reset_pin))
}

pub(crate) fn status_name(status: CardStatus) -> &'static str {
    match status {
        CardStatus::Issued => "issued",
        CardStatus::Active => "active",
        CardStatus::Blocked => "blocked",
        CardStatus::Lost => "lost",
        CardStatus::Stolen => "stolen",
        CardStatus::Damaged => "damaged",
        CardStatus::Replaced => "replaced",
    }
}

/// A card that can still be used or become usable: one per beneficiary.
pub(crate) fn is_live(card: &Card) -> bool {
    card.replaced_by.is_none()
        && matches!(
            card.status,
            CardStatus::Issued | CardStatus::Active | CardStatus::Blocked
        )
}

/// A card reported lost, stolen or damaged and not replaced yet: its holder gets a new card
/// only through `/cards/{id}/replace`, which moves the pockets, never through a new issue
/// that would strand them.
pub(crate) fn awaiting_replacement(card: &Card) -> bool {
    card.replaced_by.is_none()
        && matches!(
            card.status,
            CardStatus::Lost | CardStatus::Stolen | CardStatus::Damaged
        )
}

/// Why `ssn` cannot be issued a card because of one it has, if it cannot.
fn issue_refusal(cards: &[Card], ssn: &str) -> Option<String> {
    let mine = || cards.iter().filter(|c| c.ssn == ssn);
    if let Some(live) = mine().find(|c| is_live(c)) {
        return Some(format!("{ssn} already has live card {}", live.card_id.0));
    }
    mine().find(|c| awaiting_replacement(c)).map(|dead| {
        format!(
            "{ssn}'s card {id} was reported {status}: replace it with POST /cards/{id}/replace, \
             which moves its balance to the new card",
            id = dead.card_id.0,
            status = status_name(dead.status),
        )
    })
}

// ------------------------------------------------------------------------------------ views

/// A pocket of a card.
#[derive(Debug, Serialize, ToSchema)]
pub struct PocketView {
    /// Program.
    pub program_code: String,
    /// Balance.
    pub balance: String,
    /// Last day it may be spent.
    pub expires_at: String,
}

/// A card (PAN masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct CardView {
    /// Id.
    pub card_id: u64,
    /// The holder's SSN number.
    pub ssn: String,
    /// Masked: `604872******1234`.
    pub pan: String,
    /// `YYMM`.
    pub expiry: String,
    /// `issued`, `active`, `blocked`, `lost`, `stolen`, `damaged` or `replaced`.
    pub status: String,
    /// Three wrong PINs in a row: locked until a PIN reset.
    pub pin_locked: bool,
    /// The card that replaced this one.
    pub replaced_by: Option<u64>,
    /// Pockets and balances.
    pub pockets: Vec<PocketView>,
}

/// A newly issued card: the only answer with the full PAN and the PIN.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCard {
    /// Id.
    pub card_id: u64,
    /// The holder's SSN number.
    pub ssn: String,
    /// The full card number (shown only here).
    pub pan: String,
    /// `YYMM`.
    pub expiry: String,
    /// `issued`.
    pub status: String,
    /// The PIN, for the PIN mailer (shown only here).
    pub pin: String,
    /// On a replacement: the card replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<u64>,
    /// On a replacement: what moved from the old card's pockets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<Vec<MovedView>>,
}

/// Money moved between cards by a replacement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovedView {
    /// Program.
    pub program_code: String,
    /// Amount.
    pub amount: String,
}

async fn card_view(state: &AdminState, card: &Card) -> ApiResult<CardView> {
    let pockets = state.ledger.pockets(card.card_id).await?;
    Ok(CardView {
        card_id: card.card_id.0,
        ssn: card.ssn.clone(),
        pan: card.pan.masked(),
        expiry: card.expiry.clone(),
        status: status_name(card.status).into(),
        pin_locked: card.pin_locked(),
        replaced_by: card.replaced_by.map(|c| c.0),
        pockets: pockets
            .into_iter()
            .map(|p| PocketView {
                program_code: p.program.as_str().to_string(),
                balance: p.balance.to_string(),
                expires_at: p.expires.to_string(),
            })
            .collect(),
    })
}

// ------------------------------------------------------------------------------------ issuing

/// A card made in memory, not yet stored.
struct NewCard {
    card: Card,
    pin: Pin,
}

fn expiry_from(now: i64, months: u32) -> String {
    let (year, month, _) = Day::wita_of_unix_seconds(now).ymd();
    let index = i64::from(year) * 12 + i64::from(month) - 1 + i64::from(months);
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    format!("{:02}{month:02}", year.rem_euclid(100))
}

fn pin_from(given: Option<&str>, digits: usize) -> ApiResult<Pin> {
    match given {
        Some(text) => {
            if !(4..=6).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::malformed("pin is 4 to 6 digits"));
            }
            Pin::new(text).map_err(|e| ApiError::malformed(e.to_string()))
        }
        None => Pin::generate(digits).map_err(|e| ApiError::internal(e.to_string())),
    }
}

fn make_card(state: &AdminState, card_id: u64, ssn: &str, pin: Pin) -> ApiResult<NewCard> {
    let bin = &state.config.bin;
    // 16 digits: the BIN, the card id zero-padded, the Luhn check digit.
    let width = 15usize.saturating_sub(bin.len());
    let body = format!("{bin}{card_id:0width$}");
    if body.len() != 15 {
        return Err(ApiError::refused(
            "the card number range of this BIN is exhausted",
        ));
    }
    let pan = ssn_codec::Pan::with_check_digit(body.as_bytes())
        .map_err(|e| ApiError::internal(format!("building a PAN: {e:?}")))?;
    let pvv = state
        .hsm
        .generate_pvv(&state.pvk, &pin, pan.reveal(), Pvki::ONE)
        .map_err(|e| ApiError::internal(format!("making the PVV: {e}")))?;
    Ok(NewCard {
        card: Card {
            card_id: CardId(card_id),
            ssn: ssn.to_string(),
            pan: Pan(pan.reveal().to_string()),
            expiry: expiry_from(state.now(), state.config.card_validity_months),
            status: CardStatus::Issued,
            pvv: Pvv(pvv.as_str().to_string()),
            wrong_pin_count: 0,
            replaced_by: None,
            issued_on: Some(Day::wita_of_unix_seconds(state.now())),
            delivered_on: None,
            changes: Vec::new(),
        },
        pin,
    })
}

fn issued(new: &NewCard) -> IssuedCard {
    IssuedCard {
        card_id: new.card.card_id.0,
        ssn: new.card.ssn.clone(),
        pan: new.card.pan.expose().to_string(),
        expiry: new.card.expiry.clone(),
        status: status_name(new.card.status).into(),
        pin: new.pin.reveal().to_string(),
        replaces: None,
        moved: None,
    }
}

/// A card to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCardRequest {
    /// The beneficiary's SSN number; must be `determined`, without a live card.
    pub ssn: String,
    /// 4 to 6 digits; generated when absent.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4,6}$")]
    pub pin: Option<String>,
}

/// Issues a card.
#[utoipa::path(post, path = "/cards", tag = "cards", request_body = NewCardRequest,
    responses((status = 201, description = "Issued; the PAN and PIN are shown only here", body = IssuedCard)))]
pub(crate) async fn issue_card(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewCardRequest>,
) -> ApiResult<(StatusCode, Json<IssuedCard>)> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let pin = pin_from(request.pin.as_deref(), state.config.pin_digits)?;
    let _issuing = state.locks.cards.lock().await;
    let beneficiary = super::beneficiaries::find(&state, &request.ssn).await?;
    let refusal = if beneficiary.status != BeneficiaryStatus::Determined {
        Some(format!(
            "{} is {}; cards are issued to determined beneficiaries",
            beneficiary.ssn,
            super::beneficiaries::status_name(beneficiary.status)
        ))
    } else {
        let cards = state.ledger.registry().cards().await?;
        issue_refusal(&cards, &beneficiary.ssn)
    };
    if let Some(message) = refusal {
        let error = ApiError::conflict(message);
        state
            .audit_failure(&caller, "cards.issue", &beneficiary.ssn, &error)
            .await;
        return Err(error);
    }
    let card_id = state.ledger.registry().next_number("card").await?;
    let new = make_card(&state, card_id, &beneficiary.ssn, pin)?;
    state
        .apply_audited(
            &caller,
            "cards.issue",
            &format!("card {card_id} for {}", beneficiary.ssn),
            vec![RegistryOp::Insert(RegistryRecord::Card(new.card.clone()))],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(issued(&new))))
}

/// A personalization batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Cards for every determined beneficiary of this program without a live card.
    pub program_code: String,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Issues cards for every determined beneficiary of the program without a live card and
/// answers the card personalization file (CSV: `card_id,ssn,name,pan,expiry,pin`). A second
/// call issues nothing more (the file then has only its header).
#[utoipa::path(post, path = "/cards/batch", tag = "cards", request_body = BatchRequest,
    responses((status = 201, description = "The personalization file", content_type = "text/csv", body = String)))]
pub(crate) async fn issue_batch(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<BatchRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let program = super::programs::find_program(&state, &request.program_code).await?;
    let _issuing = state.locks.cards.lock().await;
    let registry = state.ledger.registry();
    // Holders of a live card, or of one waiting for its replacement, get none here.
    let with_card: std::collections::HashSet<String> = registry
        .cards()
        .await?
        .into_iter()
        .filter(|c| is_live(c) || awaiting_replacement(c))
        .map(|c| c.ssn)
        .collect();
    let mut people: Vec<Beneficiary> = registry
        .beneficiaries()
        .await?
        .into_iter()
        .filter(|b| {
            b.status == BeneficiaryStatus::Determined
                && b.enrolments.contains(&program.code)
                && !with_card.contains(&b.ssn)
        })
        .collect();
    people.sort_by(|a, b| a.ssn.cmp(&b.ssn));
    let mut file = String::from("card_id,ssn,name,pan,expiry,pin\r\n");
    if !people.is_empty() {
        let first = registry.next_numbers("card", people.len() as u64).await?;
        let mut ops = Vec::with_capacity(people.len() + 1);
        for (i, person) in people.iter().enumerate() {
            let pin = pin_from(None, state.config.pin_digits)?;
            let new = make_card(&state, first + i as u64, &person.ssn, pin)?;
            file.push_str(&format!(
                "{},{},{},{},{},{}\r\n",
                new.card.card_id.0,
                person.ssn,
                csv_field(&person.name),
                new.card.pan.expose(),
                new.card.expiry,
                new.pin.reveal()
            ));
            ops.push(RegistryOp::Insert(RegistryRecord::Card(new.card)));
        }
        state
            .apply_audited(
                &caller,
                "cards.batch",
                &format!("program {}: {} cards", program.code, people.len()),
                ops,
            )
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        file,
    ))
}

// ------------------------------------------------------------------------------------ reading

/// Filters of the card list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CardQuery {
    /// The holder's SSN number.
    pub ssn: Option<String>,
    /// Card status.
    pub status: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1 to 1000.
    pub page_size: Option<u32>,
}

/// Cards, by id, without pockets (read one card for its pockets).
#[utoipa::path(get, path = "/cards", tag = "cards", params(CardQuery),
    responses((status = 200, description = "A page of cards", body = Page<CardView>)))]
pub(crate) async fn list_cards(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(query): QueryParams<CardQuery>,
) -> ApiResult<Json<Page<CardView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    paging.resolve()?;
    let mut cards: Vec<Card> = state
        .ledger
        .registry()
        .cards()
        .await?
        .into_iter()
        .filter(|c| query.ssn.as_ref().is_none_or(|s| *s == c.ssn))
        .filter(|c| {
            query
                .status
                .as_ref()
                .is_none_or(|s| s == status_name(c.status))
        })
        .collect();
    cards.sort_by_key(|c| c.card_id);
    let page = paging.page(cards)?;
    Ok(Json(Page {
        items: page
            .items
            .iter()
            .map(|card| CardView {
                card_id: card.card_id.0,
                ssn: card.ssn.clone(),
                pan: card.pan.masked(),
                expiry: card.expiry.clone(),
                status: status_name(card.status).into(),
                pin_locked: card.pin_locked(),
                replaced_by: card.replaced_by.map(|c| c.0),
                pockets: Vec::new(),
            })
            .collect(),
        page: page.page,
        page_size: page.page_size,
        total: page.total,
    }))
}

pub(crate) async fn find_card(state: &AdminState, id: &str) -> ApiResult<Card> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no card {id}")))?;
    state
        .ledger
        .registry()
        .card(CardId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no card {id}")))
}

/// One card with its pockets.
#[utoipa::path(get, path = "/cards/{card_id}", tag = "cards",
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "The card", body = CardView)))]
pub(crate) async fn get_card(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(card_id): Path<String>,
) -> ApiResult<Json<CardView>> {
    let card = find_card(&state, &card_id).await?;
    Ok(Json(card_view(&state, &card).await?))
}

/// One line of a card's statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementEntry {
    /// When the journal accepted it (WITA).
    pub at: String,
    /// `disbursement`, `purchase`, `reversal`, `replacement_in`, `replacement_out`,
    /// `program_close` (expired pockets returned), `revocation` (a revoked enrolment's pocket
    /// returned).
    pub kind: String,
    /// Signed change of the card's balance: negative for a purchase; zero for a decline.
    pub amount: String,
    /// The card's balance over all pockets after this line.
    pub balance_after: String,
    /// Per pocket.
    pub pockets: Vec<MovedView>,
    /// Purchases: the amount asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// Purchases: DE39 as answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<String>,
    /// Purchases: DE41.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// Purchases: DE42.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    /// Purchases: DE37.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    /// Purchases: reversed later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed: Option<bool>,
    /// Disbursements: the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

fn signed(amounts: &[(ProgramCode, Money)], negative: bool) -> (Money, Vec<MovedView>) {
    let total = Money::checked_sum(amounts.iter().map(|(_, m)| *m)).unwrap_or(Money::ZERO);
    let total = if negative {
        total.checked_neg().unwrap_or(Money::ZERO)
    } else {
        total
    };
    let pockets = amounts
        .iter()
        .map(|(p, m)| MovedView {
            program_code: p.as_str().to_string(),
            amount: if negative {
                m.checked_neg().unwrap_or(Money::ZERO).to_string()
            } else {
                m.to_string()
            },
        })
        .collect();
    (total, pockets)
}

/// The statement of a card, oldest first: its transfers from history and the working set
/// (reads the disk; run it off the async workers).
pub(crate) fn statement(ledger: &Ledger, card: CardId) -> Result<Vec<StatementEntry>, LedgerError> {
    let rows = ledger.card_transfers(card)?;
    let mut balance = Money::ZERO;
    let mut lines = Vec::with_capacity(rows.len());
    for CardRow { id, how, .. } in &rows {
        let mut line = StatementEntry {
            at: String::new(),
            kind: String::new(),
            amount: String::new(),
            balance_after: String::new(),
            pockets: Vec::new(),
            requested: None,
            response_code: None,
            terminal_id: None,
            merchant_id: None,
            rrn: None,
            reversed: None,
            period: None,
        };
        let change = match how {
            CardTransfer::Purchase => {
                let Some(p) = ledger.purchase_by_id(id)? else {
                    continue;
                };
                let legs: Vec<(ProgramCode, Money)> = p
                    .record
                    .legs
                    .iter()
                    .map(|l| (l.program.clone(), l.amount))
                    .collect();
                let (total, pockets) = signed(&legs, true);
                line.at = wita_time(p.at_unix_seconds);
                line.kind = "purchase".into();
                line.pockets = pockets;
                line.requested = Some(p.record.amount.to_string());
                line.response_code = Some(p.record.response.code.as_str().to_string());
                line.terminal_id = Some(p.record.key.terminal.as_str().to_string());
                line.merchant_id = Some(p.record.merchant.as_str().to_string());
                line.rrn = Some(p.record.response.rrn.as_str().to_string());
                line.reversed = Some(p.reversed);
                total
            }
            CardTransfer::Credit | CardTransfer::Drain => {
                let Some((at, record)) = ledger.transfer_by_id(id)? else {
                    continue;
                };
                line.at = wita_time(at);
                let (kind, amounts, negative): (&str, Vec<(ProgramCode, Money)>, bool) =
                    match record {
                        Record::Disbursement {
                            program,
                            period,
                            credits,
                        } => {
                            line.period = Some(period.clone());
                            let amount = share_of(&credits, card);
                            ("disbursement", vec![(program.clone(), amount)], false)
                        }
                        // Pockets back to giro: expired ones at a year-end close, a revoked
                        // enrolment's by the Mayor's decree.
                        Record::ProgramClose {
                            program, returns, ..
                        } => (
                            "program_close",
                            vec![(program.clone(), share_of(&returns, card))],
                            true,
                        ),
                        Record::Revocation {
                            program, returns, ..
                        } => (
                            "revocation",
                            vec![(program.clone(), share_of(&returns, card))],
                            true,
                        ),
                        Record::Reversal(ReversalRecord {
                            effect: ReversalEffect::Reversed { legs, .. },
                            original,
                        }) => {
                            line.terminal_id = Some(original.terminal.as_str().to_string());
                            (
                                "reversal",
                                legs.iter().map(|l| (l.program.clone(), l.amount)).collect(),
                                false,
                            )
                        }
                        Record::Replacement { moves, .. } => (
                            if *how == CardTransfer::Drain {
                                "replacement_out"
                            } else {
                                "replacement_in"
                            },
                            moves
                                .iter()
                                .map(|l| (l.program.clone(), l.amount))
                                .collect(),
                            *how == CardTransfer::Drain,
                        ),
                        _ => continue,
                    };
                let (total, pockets) = signed(&amounts, negative);
                line.kind = kind.into();
                line.pockets = pockets;
                total
            }
        };
        balance = balance.checked_add(change).unwrap_or(balance);
        line.amount = change.to_string();
        line.balance_after = balance.to_string();
        lines.push(line);
    }
    Ok(lines)
}

/// A card's amount in a per-card record (a disbursement's credits, a close's or revocation's
/// returns), zero when it is not in it.
fn share_of(per_card: &[(CardId, Money)], card: CardId) -> Money {
    per_card
        .binary_search_by_key(&card, |(c, _)| *c)
        .ok()
        .map(|i| per_card[i].1)
        .or_else(|| per_card.iter().find(|(c, _)| *c == card).map(|(_, m)| *m))
        .unwrap_or(Money::ZERO)
}

/// The card's journal entries, oldest first.
#[utoipa::path(get, path = "/cards/{card_id}/statement", tag = "cards",
    params(("card_id" = String, Path, description = "Card id", example = "1"), Paging),
    responses((status = 200, description = "A page of the statement", body = Page<StatementEntry>)))]
pub(crate) async fn card_statement(
    State(state): State<AdminState>,
    _caller: Caller,
    Path(card_id): Path<String>,
    QueryParams(paging): QueryParams<Paging>,
) -> ApiResult<Json<Page<StatementEntry>>> {
    paging.resolve()?;
    let card = find_card(&state, &card_id).await?;
    let ledger = Arc::clone(&state.ledger);
    let lines = tokio::task::spawn_blocking(move || statement(&ledger, card.card_id))
        .await
        .map_err(|e| ApiError::internal(format!("statement: {e}")))??;
    Ok(Json(paging.page(lines)?))
}

// ------------------------------------------------------------------------------------ changes

async fn change_status(
    state: &AdminState,
    caller: &Caller,
    card_id: &str,
    action: &str,
    allowed_from: &[CardStatus],
    to: CardStatus,
    outcome: &str,
) -> ApiResult<Json<CardView>> {
    let card = find_card(state, card_id).await?;
    let target = format!("card {}", card.card_id.0);
    if card.replaced_by.is_some() || !allowed_from.contains(&card.status) {
        let error = ApiError::conflict(format!(
            "card {} is {}{}; {action} needs {}",
            card.card_id.0,
            status_name(card.status),
            if card.replaced_by.is_some() {
                " and replaced"
            } else {
                ""
            },
            allowed_from
                .iter()
                .map(|s| status_name(*s))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
        state.audit_failure(caller, action, &target, &error).await;
        return Err(error);
    }
    let now = state.now();
    let today = Day::wita_of_unix_seconds(now);
    let mut next = card.clone();
    // Dated: a report as of a past day reads the status the card had then.
    next.set_status(to, today);
    if card.status == CardStatus::Issued && to == CardStatus::Active {
        next.delivered_on = Some(today);
    }
    state
        .ledger
        .registry()
        .apply(vec![
            RegistryOp::Replace {
                expected: RegistryRecord::Card(card),
                new: RegistryRecord::Card(next.clone()),
            },
            RegistryOp::Audit(caller.audit(now, action, &target, outcome)),
        ])
        .await?;
    Ok(Json(card_view(state, &next).await?))
}

/// Hands the card to its holder: `issued` → `active`.
#[utoipa::path(post, path = "/cards/{card_id}/deliver", tag = "cards",
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "Delivered", body = CardView)))]
pub(crate) async fn deliver_card(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
) -> ApiResult<Json<CardView>> {
    caller.require(&[Role::Diskominfo])?;
    change_status(
        &state,
        &caller,
        &card_id,
        "cards.deliver",
        &[CardStatus::Issued],
        CardStatus::Active,
        "ok",
    )
    .await
}

/// Why a card is blocked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// Kept in the audit log.
    pub reason: String,
}

/// Blocks a card (`62` at terminals): `issued` or `active` → `blocked`.
#[utoipa::path(post, path = "/cards/{card_id}/block", tag = "cards", request_body = BlockRequest,
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "Blocked", body = CardView)))]
pub(crate) async fn block_card(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
    body: JsonBody<BlockRequest>,
) -> ApiResult<Json<CardView>> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::malformed("reason is 1 to 500 characters"));
    }
    change_status(
        &state,
        &caller,
        &card_id,
        "cards.block",
        &[CardStatus::Issued, CardStatus::Active],
        CardStatus::Blocked,
        &format!("blocked: {reason}"),
    )
    .await
}

/// Unblocks a card: `blocked` → `active`.
#[utoipa::path(post, path = "/cards/{card_id}/unblock", tag = "cards",
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "Unblocked", body = CardView)))]
pub(crate) async fn unblock_card(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
) -> ApiResult<Json<CardView>> {
    caller.require(&[Role::Diskominfo])?;
    change_status(
        &state,
        &caller,
        &card_id,
        "cards.unblock",
        &[CardStatus::Blocked],
        CardStatus::Active,
        "ok",
    )
    .await
}

/// A loss report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// `lost` (terminals answer `41`), `stolen` (`43`) or `damaged` (`62`).
    #[schema(example = "lost")]
    pub kind: String,
}

/// Reports a card lost, stolen or damaged.
#[utoipa::path(post, path = "/cards/{card_id}/report", tag = "cards", request_body = ReportRequest,
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "Reported", body = CardView)))]
pub(crate) async fn report_card(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
    body: JsonBody<ReportRequest>,
) -> ApiResult<Json<CardView>> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let to = match request.kind.as_str() {
        "lost" => CardStatus::Lost,
        "stolen" => CardStatus::Stolen,
        "damaged" => CardStatus::Damaged,
        _ => return Err(ApiError::malformed("kind is lost, stolen or damaged")),
    };
    change_status(
        &state,
        &caller,
        &card_id,
        "cards.report",
        &[CardStatus::Issued, CardStatus::Active, CardStatus::Blocked],
        to,
        &request.kind,
    )
    .await
}

/// A replacement or PIN reset.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// 4 to 6 digits; generated when absent.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4,6}$")]
    pub pin: Option<String>,
}

/// Replaces a card: a new card (new PAN and PIN) gets every pocket of the old one, moved in
/// the journal; the old card answers `41`/`43`/`62` from then on.
#[utoipa::path(post, path = "/cards/{card_id}/replace", tag = "cards", request_body = PinRequest,
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 201, description = "The new card; its PAN and PIN are shown only here", body = IssuedCard)))]
pub(crate) async fn replace_card(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
    body: JsonBody<PinRequest>,
) -> ApiResult<(StatusCode, Json<IssuedCard>)> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let pin = pin_from(request.pin.as_deref(), state.config.pin_digits)?;
    let _issuing = state.locks.cards.lock().await;
    let old = find_card(&state, &card_id).await?;
    let target = format!("card {}", old.card_id.0);
    if let Some(new_card) = old.replaced_by {
        // A replacement that stopped after the registry step finishes here; either way the
        // new card exists and its PIN was shown once already.
        let finished = state
            .ledger
            .replace_card(old.card_id, new_card, state.now())
            .await;
        let error = match finished {
            Ok(_) => ApiError::conflict(format!(
                "card {} was already replaced by card {}",
                old.card_id.0, new_card.0
            )),
            Err(e) => ApiError::from(e),
        };
        state
            .audit_failure(&caller, "cards.replace", &target, &error)
            .await;
        return Err(error);
    }
    let holder = super::beneficiaries::find(&state, &old.ssn).await?;
    if holder.status != BeneficiaryStatus::Determined {
        let error = ApiError::conflict(format!(
            "{} is {}; only a determined beneficiary's card is replaced",
            holder.ssn,
            super::beneficiaries::status_name(holder.status)
        ));
        state
            .audit_failure(&caller, "cards.replace", &target, &error)
            .await;
        return Err(error);
    }
    let new_id = state.ledger.registry().next_number("card").await?;
    let new = make_card(&state, new_id, &old.ssn, pin)?;
    let mut retired = old.clone();
    retired.mark_replaced(CardId(new_id), Day::wita_of_unix_seconds(state.now()));
    state
        .apply_audited(
            &caller,
            "cards.replace",
            &format!("{target} by card {new_id}"),
            vec![
                RegistryOp::Insert(RegistryRecord::Card(new.card.clone())),
                RegistryOp::Replace {
                    expected: RegistryRecord::Card(old.clone()),
                    new: RegistryRecord::Card(retired),
                },
            ],
        )
        .await?;
    let moves = state
        .ledger
        .replace_card(old.card_id, CardId(new_id), state.now())
        .await;
    let moves = state
        .audit_outcome(
            &caller,
            "cards.replace.pockets",
            &format!("{target} to card {new_id}"),
            moves.map_err(ApiError::from),
        )
        .await?;
    let mut answer = issued(&new);
    answer.replaces = Some(old.card_id.0);
    answer.moved = Some(
        moves
            .iter()
            .map(|m| MovedView {
                program_code: m.program.as_str().to_string(),
                amount: m.amount.to_string(),
            })
            .collect(),
    );
    Ok((StatusCode::CREATED, Json(answer)))
}

/// A new PIN.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinReset {
    /// Card id.
    pub card_id: u64,
    /// The new PIN (shown only here).
    pub pin: String,
}

/// Sets a new PIN and unlocks the card after three wrong PINs.
#[utoipa::path(post, path = "/cards/{card_id}/pin-reset", tag = "cards", request_body = PinRequest,
    params(("card_id" = String, Path, description = "Card id", example = "1")),
    responses((status = 200, description = "The new PIN, shown only here", body = PinReset)))]
pub(crate) async fn reset_pin(
    State(state): State<AdminState>,
    caller: Caller,
    Path(card_id): Path<String>,
    body: JsonBody<PinRequest>,
) -> ApiResult<Json<PinReset>> {
    caller.require(&[Role::Diskominfo])?;
    let request = body.into_inner()?;
    let pin = pin_from(request.pin.as_deref(), state.config.pin_digits)?;
    let card = find_card(&state, &card_id).await?;
    let card_id = card.card_id.0;
    let target = format!("card {card_id}");
    if !is_live(&card) {
        let error = ApiError::conflict(format!(
            "card {} is {}; only a live card gets a new PIN",
            card.card_id.0,
            status_name(card.status)
        ));
        state
            .audit_failure(&caller, "cards.pin_reset", &target, &error)
            .await;
        return Err(error);
    }
    let pvv = state
        .hsm
        .generate_pvv(&state.pvk, &pin, card.pan.expose(), Pvki::ONE)
        .map_err(|e| ApiError::internal(format!("making the PVV: {e}")))?;
    let mut next = card.clone();
    next.pvv = Pvv(pvv.as_str().to_string());
    next.set_wrong_pin_count(0, Day::wita_of_unix_seconds(state.now()));
    state
        .apply_audited(
            &caller,
            "cards.pin_reset",
            &target,
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Card(card),
                new: RegistryRecord::Card(next),
            }],
        )
        .await?;
    Ok(Json(PinReset {
        card_id,
        pin: pin.reveal().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_months() {
        let now = crate::support::wita_day_start(Day::from_ymd(2026, 11, 29).unwrap()) + 3600;
        assert_eq!(expiry_from(now, 60), "3111");
        assert_eq!(expiry_from(now, 1), "2612");
        assert_eq!(expiry_from(now, 2), "2701");
    }
}
