//! Cards: find by SSN number or card id, issue, deliver, block and unblock, report lost,
//! stolen or damaged, replace, reset the PIN, and the statement. Every form posts to
//! `/console/kartu` with an `action`, which becomes the one API call of that action.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::FormBody;
use super::format::{rupiah, time};
use super::i18n::{Lang, t};
use super::layout::{Notice, csrf_field, esc, input, table};
use super::{Console, Signed, enc};

/// What the cards page is asked to show.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CardsQuery {
    /// An SSN number or a card id to find.
    cari: Option<String>,
    /// A card to show in full.
    kartu: Option<u64>,
    /// The statement's page.
    halaman: Option<u32>,
}

/// `GET /console/kartu`.
pub(super) async fn show(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<CardsQuery>, QueryRejection>,
) -> Response {
    let query = match signed.open("cards", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let body = render(&console, &signed, &query, "").await;
    signed.page("cards", None, &body)
}

/// `POST /console/kartu`: one card action.
pub(super) async fn act(
    State(console): State<Console>,
    signed: Signed,
    body: FormBody,
) -> Response {
    let fields = match signed.form("cards", &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let card_id = fields.text("card_id").to_string();
    let pin = || match fields.text("pin") {
        "" => json!({}),
        pin => json!({ "pin": pin }),
    };
    let path = |action: &str| format!("/cards/{}/{action}", enc(&card_id));
    let reply = match fields.text("action") {
        "issue" => {
            let mut body = pin();
            body["ssn"] = json!(fields.text("ssn"));
            console.post(&signed, "/cards", body).await
        }
        "deliver" => console.post(&signed, &path("deliver"), json!({})).await,
        "block" => {
            let body = json!({ "reason": fields.text("reason") });
            console.post(&signed, &path("block"), body).await
        }
        "unblock" => console.post(&signed, &path("unblock"), json!({})).await,
        "report" => {
            let body = json!({ "kind": fields.text("kind") });
            console.post(&signed, &path("report"), body).await
        }
        "replace" => console.post(&signed, &path("replace"), pin()).await,
        "pin-reset" => console.post(&signed, &path("pin-reset"), pin()).await,
        _ => {
            let notice = Notice::Refused(t(lang, "not_found").to_string());
            let body = render(&console, &signed, &CardsQuery::default(), "").await;
            return signed.page("cards", Some(&notice), &body);
        }
    };
    let notice = reply.notice(lang);
    let mut once = String::new();
    let mut shown = card_id.parse().ok();
    if reply.status.is_success() && reply.json.get("pin").is_some() {
        // Issued, replaced or a PIN reset: the full PAN and the PIN, this once.
        let card = &reply.json;
        shown = card["card_id"].as_u64();
        let facts: String = [
            ("card_id", "new-card-id"),
            ("pan", "new-pan"),
            ("expiry", "new-expiry"),
            ("pin", "new-pin"),
        ]
        .iter()
        .filter_map(|(field, id)| {
            let value = match &card[*field] {
                Value::String(text) => esc(text),
                Value::Number(number) => number.to_string(),
                _ => return None,
            };
            Some(format!(
                r#"<dt>{}</dt><dd id="{id}">{value}</dd>"#,
                t(lang, field)
            ))
        })
        .collect();
        once = format!(
            r#"<section aria-labelledby="once"><h2 id="once">{}</h2><dl>{facts}</dl></section>"#,
            t(lang, "pin_once"),
        );
    }
    let query = CardsQuery {
        kartu: shown,
        ..CardsQuery::default()
    };
    let body = render(&console, &signed, &query, &once).await;
    let status = if reply.status.is_success() {
        axum::http::StatusCode::OK
    } else {
        reply.status
    };
    let mut response = signed.page("cards", Some(&notice), &body);
    *response.status_mut() = status;
    response
}

/// The page: the find and issue forms, then what was found or the card asked for.
async fn render(console: &Console, signed: &Signed, query: &CardsQuery, once: &str) -> String {
    let lang = signed.lang;
    let session = &signed.session;
    let mut html = format!(
        r#"{once}<div class="cards"><form method="get" action="/console/kartu" class="card"><h2>{find}</h2>{field}<p><button type="submit">{find}</button></p></form><form method="post" action="/console/kartu" class="card"><h2>{issue}</h2>{csrf}<input type="hidden" name="action" value="issue">{ssn}{pin}<p><button type="submit">{issue}</button></p></form></div>"#,
        find = t(lang, "find_card"),
        field = input(
            t(lang, "ssn_or_card"),
            "cari",
            query.cari.as_deref().unwrap_or_default(),
            "required"
        ),
        issue = t(lang, "issue_card"),
        csrf = csrf_field(session),
        ssn = input(t(lang, "ssn"), "ssn", "", "required"),
        pin = input(t(lang, "pin_optional"), "pin", "", r#"inputmode="numeric""#),
    );
    if let Some(wanted) = query
        .cari
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        html.push_str(&found(console, signed, wanted).await);
    }
    if let Some(card_id) = query.kartu {
        html.push_str(&card(console, signed, card_id, query.halaman.unwrap_or(1)).await);
    }
    html
}

/// The cards of an SSN number, or the card of that id.
async fn found(console: &Console, signed: &Signed, wanted: &str) -> String {
    let lang = signed.lang;
    let by_ssn = console
        .get(signed, &format!("/cards?ssn={}&page_size=100", enc(wanted)))
        .await
        .ok();
    let mut cards: Vec<Value> = by_ssn
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array().cloned())
        .unwrap_or_default();
    if cards.is_empty()
        && let Ok(id) = wanted.parse::<u64>()
        && let Ok(card) = console.get(signed, &format!("/cards/{id}")).await.ok()
    {
        cards.push(card);
    }
    if cards.is_empty() {
        return format!("<p>{}</p>", t(lang, "none"));
    }
    let rows: Vec<Vec<String>> = cards
        .iter()
        .map(|c| {
            vec![
                format!(
                    r#"<a href="/console/kartu?kartu={id}">{id}</a>"#,
                    id = c["card_id"]
                ),
                esc(c["ssn"].as_str().unwrap_or_default()),
                esc(c["pan"].as_str().unwrap_or_default()),
                esc(c["status"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    table(
        t(lang, "cards"),
        &[
            t(lang, "card_id"),
            t(lang, "ssn"),
            t(lang, "pan"),
            t(lang, "status"),
        ],
        &rows,
    )
}

/// One card: its facts, pockets, actions and a page of its statement.
async fn card(console: &Console, signed: &Signed, card_id: u64, page: u32) -> String {
    let lang = signed.lang;
    let card = match console.get(signed, &format!("/cards/{card_id}")).await.ok() {
        Ok(card) => card,
        Err(message) => return Notice::Refused(message).html(lang),
    };
    let mut html = format!(
        r#"<section aria-labelledby="card-title"><h2 id="card-title">{title} {id}</h2><dl><dt>{ssn}</dt><dd>{ssn_value}</dd><dt>{pan}</dt><dd>{pan_value}</dd><dt>{expiry}</dt><dd>{expiry_value}</dd><dt>{status}</dt><dd id="card-status">{status_value}</dd></dl>"#,
        title = t(lang, "card_id"),
        id = card_id,
        ssn = t(lang, "ssn"),
        ssn_value = esc(card["ssn"].as_str().unwrap_or_default()),
        pan = t(lang, "pan"),
        pan_value = esc(card["pan"].as_str().unwrap_or_default()),
        expiry = t(lang, "expiry"),
        expiry_value = esc(card["expiry"].as_str().unwrap_or_default()),
        status = t(lang, "status"),
        status_value = esc(card["status"].as_str().unwrap_or_default()),
    );
    let pockets: Vec<Vec<String>> = card["pockets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                esc(p["program_code"].as_str().unwrap_or_default()),
                rupiah(p["balance"].as_str().unwrap_or_default()),
                super::format::day(lang, p["expires_at"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    html.push_str(&table(
        t(lang, "pockets"),
        &[t(lang, "program"), t(lang, "balance"), t(lang, "expires")],
        &pockets,
    ));
    html.push_str(&actions(signed, card_id));
    html.push_str("</section>");
    html.push_str(&statement(console, signed, card_id, page).await);
    html
}

/// The action forms of a card.
fn actions(signed: &Signed, card_id: u64) -> String {
    let lang = signed.lang;
    let form = |action: &str, label: &str, fields: &str| {
        format!(
            r#"<form method="post" action="/console/kartu" class="card">{csrf}<input type="hidden" name="action" value="{action}"><input type="hidden" name="card_id" value="{card_id}">{fields}<p><button type="submit">{label}</button></p></form>"#,
            csrf = csrf_field(&signed.session),
        )
    };
    let kinds = ["lost", "stolen", "damaged"]
        .iter()
        .map(|k| format!(r#"<option value="{k}">{}</option>"#, t(lang, k)))
        .collect::<String>();
    let report = format!(
        r#"<p><label for="kind-{card_id}">{}</label> <select id="kind-{card_id}" name="kind">{kinds}</select></p>"#,
        t(lang, "kind")
    );
    let pin = |id: &str| {
        format!(
            r#"<p><label for="{id}-{card_id}">{}</label> <input id="{id}-{card_id}" name="pin" inputmode="numeric"></p>"#,
            t(lang, "pin_optional")
        )
    };
    let reason = format!(
        r#"<p><label for="reason-{card_id}">{}</label> <input id="reason-{card_id}" name="reason" required></p>"#,
        t(lang, "reason")
    );
    format!(
        r#"<h3>{}</h3><div class="cards">{}{}{}{}{}{}</div>"#,
        t(lang, "actions"),
        form("deliver", t(lang, "deliver"), ""),
        form("block", t(lang, "block"), &reason),
        form("unblock", t(lang, "unblock"), ""),
        form("report", t(lang, "report_card"), &report),
        form("replace", t(lang, "replace"), &pin("replace-pin")),
        form("pin-reset", t(lang, "pin_reset"), &pin("reset-pin")),
    )
}

/// Statement lines shown per page.
const STATEMENT_PAGE_SIZE: u32 = 50;

/// A page of the card's statement, paged at the store.
async fn statement(console: &Console, signed: &Signed, card_id: u64, page: u32) -> String {
    let lang = signed.lang;
    let page = page.max(1);
    let path = format!("/cards/{card_id}/statement?page={page}&page_size={STATEMENT_PAGE_SIZE}");
    let answer = match console.get(signed, &path).await.ok() {
        Ok(answer) => answer,
        Err(message) => return Notice::Refused(message).html(lang),
    };
    let rows: Vec<Vec<String>> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            vec![
                time(lang, line["at"].as_str().unwrap_or_default()),
                esc(line["kind"].as_str().unwrap_or_default()),
                rupiah(line["amount"].as_str().unwrap_or_default()),
                rupiah(line["balance_after"].as_str().unwrap_or_default()),
                esc(line["response_code"].as_str().unwrap_or_default()),
                esc(line["terminal_id"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    let mut html = table(
        t(lang, "statement"),
        &[
            t(lang, "time"),
            t(lang, "kind"),
            t(lang, "amount"),
            t(lang, "balance"),
            t(lang, "code"),
            t(lang, "terminal"),
        ],
        &rows,
    );
    html.push_str(&pager(
        lang,
        &format!("/console/kartu?kartu={card_id}&"),
        page,
        STATEMENT_PAGE_SIZE,
        answer["total"].as_u64().unwrap_or(0),
    ));
    html
}

/// Links to the previous and next page of a list paged at the store (`base` ends in `?` or
/// `&`; the page goes in `halaman`).
pub(super) fn pager(lang: Lang, base: &str, page: u32, page_size: u32, total: u64) -> String {
    let pages = total.div_ceil(u64::from(page_size)).max(1);
    let mut html = format!(
        r#"<nav aria-label="{p}" class="pager"><p>{p} {page} {of} {pages} · {total_text} {total}"#,
        p = t(lang, "page"),
        of = t(lang, "of"),
        total_text = t(lang, "total"),
    );
    if page > 1 {
        html.push_str(&format!(
            r#" · <a href="{base}halaman={}" rel="prev">{}</a>"#,
            page - 1,
            t(lang, "previous")
        ));
    }
    if u64::from(page) < pages {
        html.push_str(&format!(
            r#" · <a href="{base}halaman={}" rel="next">{}</a>"#,
            page + 1,
            t(lang, "next")
        ));
    }
    html.push_str("</p></nav>");
    html
}
