//! The dashboard: today's approved purchases and their amount, declines by response code,
//! active terminals, the terminals' open batches and the settlement status of the last days,
//! all read from the API.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use ssn_ledger::Day;

use super::format::{day, rupiah};
use super::i18n::t;
use super::layout::{Notice, esc, table};
use super::{Console, Signed};

/// Pages of 1,000 of today's transactions the dashboard reads at most; past them it says
/// its figures cover only those.
const TODAY_PAGES_MAX: u32 = 10;
/// Days of settlement status shown.
const RECENT_DAYS: i32 = 7;
/// Open terminal batches listed (the count covers all).
const OPEN_BATCHES_SHOWN: u32 = 50;

/// `GET /console`.
pub(super) async fn show(State(console): State<Console>, signed: Signed) -> Response {
    if let Err(refused) = signed.may_open("dashboard") {
        return *refused;
    }
    let lang = signed.lang;
    let today = Day::wita_of_unix_seconds(console.admin.now());
    let mut approved = (0u64, 0i64);
    let mut declines: BTreeMap<String, u64> = BTreeMap::new();
    let mut read = 0u64;
    let mut total = 0u64;
    for number in 1..=TODAY_PAGES_MAX {
        let path = format!("/transactions?from={today}&to={today}&page={number}&page_size=1000");
        let Ok(page) = console.get(&signed, &path).await.ok() else {
            break;
        };
        total = page["total"].as_u64().unwrap_or(0);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for item in &items {
            read += 1;
            if item["kind"] != "purchase" {
                continue;
            }
            match item["response_code"].as_str() {
                Some("00") if item["reversed"] != true => {
                    approved.0 += 1;
                    approved.1 = approved
                        .1
                        .saturating_add(minor(item["amount"].as_str().unwrap_or_default()));
                }
                Some("00") => {}
                Some(code) => *declines.entry(code.to_string()).or_default() += 1,
                None => {}
            }
        }
        if items.is_empty() || read >= total {
            break;
        }
    }
    let terminals = console.get(&signed, "/terminals?page_size=1000").await.ok();
    let active_terminals = terminals
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array())
        .map(|items| items.iter().filter(|t| t["status"] == "active").count());

    let mut body = format!(
        r#"<div class="cards"><p class="card">{today_text} ({date})<strong id="purchases">{count}</strong>{purchases}</p><p class="card">{amount_text}<strong id="amount">{amount}</strong></p><p class="card">{active_text}<strong id="active-terminals">{active}</strong></p></div>"#,
        today_text = t(lang, "today"),
        date = day(lang, &today.to_string()),
        count = approved.0,
        purchases = t(lang, "purchases"),
        amount_text = t(lang, "amount"),
        amount = rupiah(&ssn_ledger::Money::from_minor(approved.1).to_string()),
        active_text = t(lang, "active_terminals"),
        active = active_terminals.map_or("–".to_string(), |n| n.to_string()),
    );
    if read < total {
        body.push_str(&format!("<p>({read} / {total})</p>"));
    }
    let rows: Vec<Vec<String>> = declines
        .iter()
        .map(|(code, count)| vec![esc(code), count.to_string()])
        .collect();
    if rows.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><p>{}</p>",
            t(lang, "declines"),
            t(lang, "none")
        ));
    } else {
        body.push_str(&table(
            t(lang, "declines"),
            &[t(lang, "code"), t(lang, "count")],
            &rows,
        ));
    }
    body.push_str(&open_batches(&console, &signed).await);
    let mut rows = Vec::new();
    for back in 1..=RECENT_DAYS {
        let date = Day(today.0 - back).to_string();
        let reply = console.get(&signed, &format!("/settlements/{date}")).await;
        let status = match reply.ok() {
            Ok(settlement) => format!(
                "{} · {}",
                esc(settlement["status"].as_str().unwrap_or_default()),
                rupiah(settlement["total_net_amount"].as_str().unwrap_or_default())
            ),
            Err(_) => t(lang, "not_settled").to_string(),
        };
        rows.push(vec![day(lang, &date), status]);
    }
    body.push_str(&table(
        t(lang, "recent_settlements"),
        &[t(lang, "business_date"), t(lang, "status")],
        &rows,
    ));
    signed.page("dashboard", None, &body)
}

/// The terminals' open batches (`GET /batches?status=open`): the first page, and how many
/// there are in all.
async fn open_batches(console: &Console, signed: &Signed) -> String {
    let lang = signed.lang;
    let path = format!("/batches?status=open&page_size={OPEN_BATCHES_SHOWN}");
    let page = match console.get(signed, &path).await.ok() {
        Ok(page) => page,
        Err(message) => return Notice::Refused(message).html(lang),
    };
    let total = page["total"].as_u64().unwrap_or(0);
    let rows: Vec<Vec<String>> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|batch| {
            let totals = &batch["journal_totals"];
            vec![
                esc(batch["terminal_id"].as_str().unwrap_or_default()),
                esc(batch["merchant_id"].as_str().unwrap_or_default()),
                totals["sales_count"].to_string(),
                rupiah(totals["sales_amount"].as_str().unwrap_or_default()),
                totals["reversal_count"].to_string(),
            ]
        })
        .collect();
    let mut html = format!(
        r#"<h2 id="open-batches-title">{title}: <span id="open-batches">{total}</span></h2>"#,
        title = t(lang, "open_batches"),
    );
    if rows.is_empty() {
        html.push_str(&format!("<p>{}</p>", t(lang, "none")));
        return html;
    }
    html.push_str(&table(
        t(lang, "open_batches"),
        &[
            t(lang, "terminal"),
            t(lang, "merchant"),
            t(lang, "purchases"),
            t(lang, "amount"),
            t(lang, "reversals"),
        ],
        &rows,
    ));
    if total > rows.len() as u64 {
        html.push_str(&format!("<p>({} / {total})</p>", rows.len()));
    }
    html
}

/// Minor units of an API amount string (`"1250000.00"`); 0 when it is not one.
pub(super) fn minor(amount: &str) -> i64 {
    crate::support::parse_amount(amount, "amount").map_or(0, |m| m.minor())
}
