//! `GET /transactions`: what the journal holds (purchases approved and declined, reversals,
//! funding, disbursements, replacements), filtered and paged, PANs masked.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use ssn_ledger::{
    CardId, Ledger, LedgerError, MerchantId, Money, PurchaseState, Record, ReversalEffect,
    TerminalId, TransferId,
};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, Page, Paging, QueryParams, window, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_transactions))
}

/// Filters of the transaction list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Only what touched this card.
    pub card_id: Option<u64>,
    /// Only purchases and reversals at this E-Warong (DE42).
    pub merchant_id: Option<String>,
    /// Only purchases and reversals at this terminal (DE41).
    pub terminal_id: Option<String>,
    /// First day (`YYYY-MM-DD`, WITA), inclusive.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1 to 1000.
    pub page_size: Option<u32>,
}

/// One journal entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    /// The transfer id (hex): the journal's idempotency key.
    pub id: String,
    /// When the journal accepted it (WITA).
    pub at: String,
    /// `purchase`, `reversal`, `funding`, `disbursement`, `replacement`, `settlement`,
    /// `payout` or `payout_rejected`.
    pub kind: String,
    /// Amount: a purchase's amount (asked for, whatever the answer), a reversal's returned
    /// amount, a disbursement's total (or the card's credit when filtered by card).
    pub amount: String,
    /// Program, for funding and disbursements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_code: Option<String>,
    /// The card, when one card is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_id: Option<u64>,
    /// Its PAN, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan: Option<String>,
    /// DE41.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// DE42.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    /// DE11.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    /// DE37.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    /// DE38, approvals only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_id: Option<String>,
    /// DE39.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<String>,
    /// Purchases: reversed later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed: Option<bool>,
    /// Disbursements: cards credited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cards: Option<u64>,
    /// Funding reference or disbursement period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

struct Filter {
    card: Option<CardId>,
    merchant: Option<MerchantId>,
    terminal: Option<TerminalId>,
    start: i64,
    end: i64,
}

fn blank(id: &TransferId, at: i64, kind: &str, amount: Money) -> TransactionView {
    TransactionView {
        id: ssn_ledger::hex(&id.0),
        at: wita_time(at),
        kind: kind.into(),
        amount: amount.to_string(),
        program_code: None,
        card_id: None,
        pan: None,
        terminal_id: None,
        merchant_id: None,
        stan: None,
        rrn: None,
        authorization_id: None,
        response_code: None,
        reversed: None,
        cards: None,
        reference: None,
    }
}

/// The view of log entry `id` if `filter` selects it, reading the record from the working set
/// or history.
fn entry(
    ledger: &Ledger,
    at: i64,
    id: &TransferId,
    filter: &Filter,
) -> Result<Option<TransactionView>, LedgerError> {
    if at < filter.start || at > filter.end {
        return Ok(None);
    }
    if let Some(p) = ledger.purchase_by_id(id)? {
        let r = &p.record;
        if !purchase_selected(p.record.card, &r.merchant, &r.key.terminal, at, filter) {
            return Ok(None);
        }
        let mut view = blank(id, at, "purchase", r.amount);
        view.card_id = r.card.map(|c| c.0);
        view.terminal_id = Some(r.key.terminal.as_str().into());
        view.merchant_id = Some(r.merchant.as_str().into());
        view.stan = Some(r.key.stan.as_str().into());
        view.rrn = Some(r.response.rrn.as_str().into());
        view.authorization_id = r
            .response
            .authorization_id
            .as_ref()
            .map(|a| a.as_str().into());
        view.response_code = Some(r.response.code.as_str().into());
        view.reversed = Some(p.reversed);
        return Ok(Some(view));
    }
    let Some((_, record)) = ledger.transfer_by_id(id)? else {
        return Ok(None);
    };
    let original = match &record {
        Record::Reversal(reversal) => {
            ledger.purchase_by_id(&TransferId::purchase(&reversal.original))?
        }
        _ => None,
    };
    Ok(view_of(&record, original.as_ref(), at, id, filter))
}

fn view_of(
    record: &Record,
    original: Option<&PurchaseState>,
    at: i64,
    id: &TransferId,
    filter: &Filter,
) -> Option<TransactionView> {
    match record {
        Record::Reversal(reversal) => {
            let merchant = original.map(|p| p.record.merchant.clone());
            let (card, amount) = match &reversal.effect {
                ReversalEffect::Reversed { card, legs } => (
                    Some(*card),
                    Money::checked_sum(legs.iter().map(|l| l.amount)).unwrap_or(Money::ZERO),
                ),
                ReversalEffect::Tombstone => (None, Money::ZERO),
            };
            if filter.card.is_some_and(|c| card != Some(c))
                || filter
                    .merchant
                    .as_ref()
                    .is_some_and(|m| Some(m) != merchant.as_ref())
                || filter
                    .terminal
                    .as_ref()
                    .is_some_and(|t| *t != reversal.original.terminal)
            {
                return None;
            }
            let mut view = blank(id, at, "reversal", amount);
            view.card_id = card.map(|c| c.0);
            view.terminal_id = Some(reversal.original.terminal.as_str().into());
            view.merchant_id = merchant.map(|m| m.as_str().to_string());
            view.stan = Some(reversal.original.stan.as_str().into());
            view.rrn = original.map(|p| p.record.response.rrn.as_str().to_string());
            Some(view)
        }
        Record::Settlement { .. } | Record::DaySettlement { .. } => {
            settlement_view(id, at, filter, record)
        }
        Record::Payout {
            business_date,
            merchant,
            amount,
            paid,
            bank_reference,
        } => {
            if filter.card.is_some()
                || filter.terminal.is_some()
                || filter.merchant.as_ref().is_some_and(|m| m != merchant)
            {
                return None;
            }
            let kind = if *paid { "payout" } else { "payout_rejected" };
            let mut view = blank(id, at, kind, *amount);
            view.merchant_id = Some(merchant.as_str().to_string());
            view.reference = Some(format!("{business_date} {bank_reference}"));
            Some(view)
        }
        _ if filter.merchant.is_some() || filter.terminal.is_some() => None,
        Record::Funding {
            reference,
            program,
            amount,
        } => {
            if filter.card.is_some() {
                return None;
            }
            let mut view = blank(id, at, "funding", *amount);
            view.program_code = Some(program.as_str().into());
            view.reference = Some(reference.clone());
            Some(view)
        }
        Record::Disbursement {
            program,
            period,
            credits,
        } => {
            let (amount, card) = card_share(credits, filter.card)?;
            let mut view = blank(id, at, "disbursement", amount);
            view.program_code = Some(program.as_str().into());
            view.reference = Some(period.clone());
            view.cards = Some(credits.len() as u64);
            view.card_id = card;
            Some(view)
        }
        Record::Replacement {
            old_card,
            new_card,
            moves,
        } => {
            if filter
                .card
                .is_some_and(|c| c != *old_card && c != *new_card)
            {
                return None;
            }
            let amount = Money::checked_sum(moves.iter().map(|l| l.amount)).unwrap_or(Money::ZERO);
            let mut view = blank(id, at, "replacement", amount);
            view.card_id = Some(new_card.0);
            view.reference = Some(format!("card {} to card {}", old_card.0, new_card.0));
            Some(view)
        }
        Record::ProgramClose {
            program,
            as_of,
            returns,
        } => {
            let (amount, card) = card_share(returns, filter.card)?;
            let mut view = blank(id, at, "program_close", amount);
            view.program_code = Some(program.as_str().into());
            view.reference = Some(as_of.to_string());
            view.cards = Some(returns.len() as u64);
            view.card_id = card;
            Some(view)
        }
        Record::Revocation {
            program,
            reference,
            returns,
        } => {
            let (amount, card) = card_share(returns, filter.card)?;
            let mut view = blank(id, at, "revocation", amount);
            view.program_code = Some(program.as_str().into());
            view.reference = Some(reference.clone());
            view.cards = Some(returns.len() as u64);
            view.card_id = card;
            Some(view)
        }
        Record::Purchase(_) | Record::BatchClose { .. } | Record::Cutover { .. } => None,
    }
}

/// A settlement (by batch or by date) as one row: the lines' amounts, or one E-Warong's.
fn settlement_view(
    id: &TransferId,
    at: i64,
    filter: &Filter,
    record: &Record,
) -> Option<TransactionView> {
    if filter.card.is_some() || filter.terminal.is_some() {
        return None;
    }
    let (business_date, lines) = record.settlement()?;
    let amounts: Vec<Money> = lines
        .into_iter()
        .filter(|(merchant, _, _)| filter.merchant.as_ref().is_none_or(|m| m == *merchant))
        .map(|(_, amount, _)| amount)
        .collect();
    if filter.merchant.is_some() && amounts.is_empty() {
        return None;
    }
    let amount = Money::checked_sum(amounts).unwrap_or(Money::ZERO);
    let mut view = blank(id, at, "settlement", amount);
    view.merchant_id = filter.merchant.as_ref().map(|m| m.as_str().to_string());
    view.reference = Some(business_date.to_string());
    Some(view)
}

/// A per-card record (disbursement, program close, revocation) as one card sees it (`None` when the card
/// is not in it) or whole: the amount and the card.
fn card_share(per_card: &[(CardId, Money)], card: Option<CardId>) -> Option<(Money, Option<u64>)> {
    match card {
        Some(card) => {
            let i = per_card.binary_search_by_key(&card, |(c, _)| *c).ok()?;
            Some((per_card[i].1, Some(card.0)))
        }
        None => Some((
            Money::checked_sum(per_card.iter().map(|(_, m)| *m)).unwrap_or(Money::ZERO),
            None,
        )),
    }
}

/// Log rows read per step while listing transactions: each step holds the projection's read
/// lock (which the journal's sequencer, and so every purchase, waits for) or reads history,
/// never both, and the task yields between steps.
pub const LOG_SCAN_CHUNK: usize = 16_384;

/// The page of entries that `filter` selects, and how many it selects in all. The log is read
/// in steps of [`LOG_SCAN_CHUNK`] rows, from history and then the working set, off the async
/// workers; a purchase outside the page is only counted, from its log row.
fn scan(
    ledger: &Ledger,
    filter: &Filter,
    wanted: std::ops::Range<u64>,
) -> Result<(Vec<TransactionView>, u64), LedgerError> {
    if let Some(card) = filter.card {
        return scan_card(ledger, card, filter, wanted);
    }
    let everything = filter.merchant.is_none()
        && filter.terminal.is_none()
        && filter.start == i64::MIN
        && filter.end == i64::MAX;
    if everything {
        return page_of_log(ledger, filter, wanted);
    }
    let mut items = Vec::new();
    let mut selected = 0u64;
    let mut from = 0u64;
    loop {
        let rows = ledger.log_rows(from, LOG_SCAN_CHUNK)?;
        if rows.is_empty() {
            return Ok((items, selected));
        }
        from += rows.len() as u64;
        for row in rows {
            if let (Some(merchant), Some(terminal)) = (&row.merchant, &row.terminal)
                && !wanted.contains(&selected)
            {
                selected += u64::from(purchase_selected(
                    row.card,
                    merchant,
                    terminal,
                    row.at_unix_seconds,
                    filter,
                ));
                continue;
            }
            if let Some(view) = entry(ledger, row.at_unix_seconds, &row.id, filter)? {
                if wanted.contains(&selected) {
                    items.push(view);
                }
                selected += 1;
            }
        }
    }
}

/// Without filters every log row is selected: the page is read where it is, and the total is
/// the log's length, whatever the size of history.
fn page_of_log(
    ledger: &Ledger,
    filter: &Filter,
    wanted: std::ops::Range<u64>,
) -> Result<(Vec<TransactionView>, u64), LedgerError> {
    let total = ledger.log_len();
    let mut items = Vec::new();
    let mut from = wanted.start;
    while from < wanted.end.min(total) {
        let size = usize::try_from(wanted.end.min(total) - from).unwrap_or(usize::MAX);
        let rows = ledger.log_rows(from, size)?;
        if rows.is_empty() {
            break;
        }
        from += rows.len() as u64;
        for row in rows {
            items.extend(entry(ledger, row.at_unix_seconds, &row.id, filter)?);
        }
    }
    Ok((items, total))
}

/// With a card, only the card's own transfers are read (its index in history and the
/// working set): what [`entry`] selects for a card is exactly what touched it.
fn scan_card(
    ledger: &Ledger,
    card: CardId,
    filter: &Filter,
    wanted: std::ops::Range<u64>,
) -> Result<(Vec<TransactionView>, u64), LedgerError> {
    let mut items = Vec::new();
    let mut selected = 0u64;
    for row in ledger.card_transfers(card)? {
        let at = match ledger.purchase_by_id(&row.id)? {
            Some(purchase) => purchase.at_unix_seconds,
            None => match ledger.transfer_by_id(&row.id)? {
                Some((at, _)) => at,
                None => continue,
            },
        };
        if let Some(view) = entry(ledger, at, &row.id, filter)? {
            if wanted.contains(&selected) {
                items.push(view);
            }
            selected += 1;
        }
    }
    Ok((items, selected))
}

/// Whether `filter` selects a purchase: what [`entry`] decides for one, without the view.
fn purchase_selected(
    card: Option<CardId>,
    merchant: &MerchantId,
    terminal: &TerminalId,
    at: i64,
    filter: &Filter,
) -> bool {
    (filter.start..=filter.end).contains(&at)
        && filter.card.is_none_or(|c| card == Some(c))
        && filter.merchant.as_ref().is_none_or(|m| m == merchant)
        && filter.terminal.as_ref().is_none_or(|t| t == terminal)
}

/// Journal entries, oldest first.
#[utoipa::path(get, path = "/transactions", tag = "transactions", params(TransactionQuery),
    responses((status = 200, description = "A page of journal entries", body = Page<TransactionView>)))]
pub(crate) async fn list_transactions(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(query): QueryParams<TransactionQuery>,
) -> ApiResult<Json<Page<TransactionView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    let (page, size) = paging.resolve()?;
    let (start, end) = window(query.from.as_deref(), query.to.as_deref())?;
    let filter = Filter {
        card: query.card_id.map(CardId),
        merchant: query
            .merchant_id
            .map(MerchantId::new)
            .transpose()
            .map_err(|e| ApiError::malformed(e.to_string()))?,
        terminal: query
            .terminal_id
            .map(TerminalId::new)
            .transpose()
            .map_err(|e| ApiError::malformed(e.to_string()))?,
        start,
        end,
    };
    let first = (u64::from(page) - 1).saturating_mul(u64::from(size));
    let wanted = first..first.saturating_add(u64::from(size));
    let ledger = Arc::clone(&state.ledger);
    let (items, total) = tokio::task::spawn_blocking(move || scan(&ledger, &filter, wanted))
        .await
        .map_err(|e| ApiError::internal(format!("transactions: {e}")))??;
    let mut page = Page {
        items,
        page,
        page_size: size,
        total,
    };
    // Masked PANs for the page's cards.
    let mut pans: HashMap<u64, String> = HashMap::new();
    for item in &page.items {
        if let Some(card) = item.card_id
            && !pans.contains_key(&card)
            && let Some(found) = state.ledger.registry().card(CardId(card)).await?
        {
            pans.insert(card, found.pan.masked());
        }
    }
    for item in &mut page.items {
        item.pan = item.card_id.and_then(|c| pans.get(&c).cloned());
    }
    Ok(Json(page))
}
