//! The settlement day: run a business date's settlement, download its file for the bank,
//! upload the bank's confirmation, and the reconciliation's differences (terminals' batches,
//! journal and bank). Each is the one API call of that action; the file is the API's own.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use ssn_ledger::Day;

use super::form::FormBody;
use super::format::{day, rupiah, time};
use super::i18n::t;
use super::layout::{Notice, csrf_field, esc, table};
use super::{Console, Signed};

/// Which business date the page shows.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DateQuery {
    /// `YYYY-MM-DD`; yesterday (WITA) when absent.
    tanggal: Option<String>,
}

impl DateQuery {
    /// The date asked for, checked; yesterday when none or not a date.
    fn date(&self, console: &Console) -> String {
        self.tanggal
            .as_deref()
            .and_then(Day::parse_iso)
            .unwrap_or_else(|| Day(Day::wita_of_unix_seconds(console.admin.now()).0 - 1))
            .to_string()
    }
}

/// `GET /console/setelmen`.
pub(super) async fn show(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<DateQuery>, QueryRejection>,
) -> Response {
    let query = match signed.open("settlement", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let date = query.date(&console);
    let body = render(&console, &signed, &date).await;
    signed.page("settlement", None, &body)
}

/// `GET /console/setelmen/berkas?tanggal=`: the settlement file, as the API serves it.
pub(super) async fn file(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<DateQuery>, QueryRejection>,
) -> Response {
    let query = match signed.open("settlement", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let date = query.date(&console);
    let reply = console
        .get(&signed, &format!("/settlements/{date}/file"))
        .await;
    if !reply.status.is_success() {
        let notice = Notice::Refused(reply.message());
        let body = render(&console, &signed, &date).await;
        let mut response = signed.page("settlement", Some(&notice), &body);
        *response.status_mut() = reply.status;
        return response;
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(r#"attachment; filename="settlement-{date}.txt""#),
            ),
        ],
        reply.text,
    )
        .into_response()
}

/// `POST /console/setelmen`: run a date's settlement or upload the bank's confirmation.
pub(super) async fn act(
    State(console): State<Console>,
    signed: Signed,
    body: FormBody,
) -> Response {
    let fields = match signed.form("settlement", &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let date = DateQuery {
        tanggal: fields.get("business_date").map(str::to_string),
    }
    .date(&console);
    let reply = match fields.text("action") {
        "run" => {
            console
                .post(&signed, "/settlements", json!({"business_date": date}))
                .await
        }
        "confirm" => match fields.file_or_pasted("confirmation_file", "confirmation") {
            Ok(text) => {
                console
                    .call(
                        &signed,
                        Method::POST,
                        &format!("/settlements/{date}/confirmation"),
                        "text/plain",
                        Body::from(text + "\n"),
                    )
                    .await
            }
            Err(key) => {
                let notice = Notice::Refused(t(lang, key).to_string());
                let body = render(&console, &signed, &date).await;
                let mut response = signed.page("settlement", Some(&notice), &body);
                *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                return response;
            }
        },
        _ => {
            let notice = Notice::Refused(t(lang, "not_found").to_string());
            let body = render(&console, &signed, &date).await;
            return signed.page("settlement", Some(&notice), &body);
        }
    };
    let notice = reply.notice(lang);
    let body = render(&console, &signed, &date).await;
    let mut response = signed.page("settlement", Some(&notice), &body);
    if !reply.status.is_success() {
        *response.status_mut() = reply.status;
    }
    response
}

/// A JSON string's text, or empty.
fn s(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The date chooser, the run form, the settlement, the confirmation form and the
/// reconciliation.
async fn render(console: &Console, signed: &Signed, date: &str) -> String {
    let lang = signed.lang;
    let csrf = csrf_field(&signed.session);
    let mut html = format!(
        r#"<div class="cards"><form method="get" action="/console/setelmen" class="card"><p><label for="tanggal">{date_text}</label> <input id="tanggal" name="tanggal" type="date" value="{date}"></p><p><button type="submit">{show}</button></p></form>
<form method="post" action="/console/setelmen" class="card">{csrf}<input type="hidden" name="action" value="run"><input type="hidden" name="business_date" value="{date}"><p>{date_text}: <strong>{shown}</strong></p><p><button type="submit">{run}</button></p></form></div>"#,
        date_text = t(lang, "business_date"),
        show = t(lang, "show"),
        shown = day(lang, date),
        run = t(lang, "run_settlement"),
    );
    let settlement = console.get(signed, &format!("/settlements/{date}")).await;
    let Ok(settlement) = settlement.ok() else {
        html.push_str(&format!(
            r#"<p id="settlement-status">{}</p>"#,
            t(lang, "not_settled")
        ));
        return html;
    };
    html.push_str(&format!(
        r#"<section aria-labelledby="settled"><h2 id="settled">{title} {shown}</h2><p>{status_text}: <strong id="settlement-status">{status}</strong> · {total_text}: <strong id="settlement-total">{total}</strong> · {created}</p><p><a href="/console/setelmen/berkas?tanggal={date}" download>{download}</a></p>"#,
        title = t(lang, "settlement"),
        shown = day(lang, date),
        status_text = t(lang, "status"),
        status = esc(s(&settlement["status"])),
        total_text = t(lang, "total"),
        total = rupiah(s(&settlement["total_net_amount"])),
        created = time(lang, s(&settlement["created_at"])),
        download = t(lang, "download_file"),
    ));
    let rows: Vec<Vec<String>> = settlement["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            vec![
                esc(s(&line["merchant_id"])),
                esc(s(&line["name"])),
                line["purchase_count"].to_string(),
                rupiah(s(&line["purchase_amount"])),
                line["reversal_count"].to_string(),
                rupiah(s(&line["reversal_amount"])),
                rupiah(s(&line["net_amount"])),
                esc(s(&line["payout"]["status"])),
            ]
        })
        .collect();
    html.push_str(&table(
        t(lang, "settlement_lines"),
        &[
            t(lang, "merchant_id"),
            t(lang, "name"),
            t(lang, "purchases"),
            t(lang, "amount"),
            t(lang, "reversals"),
            t(lang, "amount"),
            t(lang, "net"),
            t(lang, "payout"),
        ],
        &rows,
    ));
    html.push_str(&format!(
        r#"</section><form method="post" action="/console/setelmen" enctype="multipart/form-data"><h2>{confirm}</h2>{csrf}<input type="hidden" name="action" value="confirm"><input type="hidden" name="business_date" value="{date}"><p><label for="confirmation_file">{file}</label><br><input type="file" id="confirmation_file" name="confirmation_file" accept=".txt,.csv,text/plain"></p><p><label for="confirmation">{confirmation}</label><br><textarea id="confirmation" name="confirmation" rows="5" cols="70"></textarea></p><p><button type="submit">{confirm}</button></p></form>"#,
        confirm = t(lang, "upload_confirmation"),
        file = t(lang, "confirmation_file"),
        confirmation = t(lang, "confirmation_help"),
    ));
    let reconciliation = console
        .get(signed, &format!("/reconciliation?business_date={date}"))
        .await;
    match reconciliation.ok() {
        Ok(r) => {
            let rows: Vec<Vec<String>> = r["differences"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    vec![
                        esc(s(&d["kind"])),
                        esc(s(&d["merchant_id"])),
                        esc(s(&d["terminal_id"])),
                        esc(s(&d["journal"])),
                        esc(s(&d["other"])),
                        esc(s(&d["action"])),
                    ]
                })
                .collect();
            html.push_str(&table(
                t(lang, "differences"),
                &[
                    t(lang, "kind"),
                    t(lang, "merchant_id"),
                    t(lang, "terminal"),
                    t(lang, "journal"),
                    t(lang, "other_view"),
                    t(lang, "actions"),
                ],
                &rows,
            ));
        }
        Err(message) => html.push_str(&Notice::Refused(message).html(lang)),
    }
    html
}
