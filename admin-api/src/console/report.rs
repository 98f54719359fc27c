//! The semester report to the Mayor: the API's own self-contained, printable HTML form (with
//! its charts), shown in the console for the half-year chosen and printable on its own.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use ssn_ledger::Day;

use super::i18n::t;
use super::layout::{Notice, input};
use super::{Console, Signed};

/// The half-year asked for.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Semester {
    /// Year; this year when absent.
    year: Option<u16>,
    /// 1 or 2; this half when absent.
    half: Option<u8>,
}

impl Semester {
    /// Year and half, defaulting to the current ones (WITA).
    fn resolve(&self, console: &Console) -> (u16, u8) {
        let (year, month, _) = Day::wita_of_unix_seconds(console.admin.now()).ymd();
        (
            self.year.unwrap_or(u16::try_from(year).unwrap_or(2026)),
            self.half.unwrap_or(if month <= 6 { 1 } else { 2 }),
        )
    }
}

/// `GET /console/laporan`.
pub(super) async fn show(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<Semester>, QueryRejection>,
) -> Response {
    let query = match signed.open("report", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let (year, half) = query.resolve(&console);
    let halves = [1u8, 2]
        .iter()
        .map(|h| {
            let chosen = if *h == half { " selected" } else { "" };
            format!(r#"<option value="{h}"{chosen}>{h}</option>"#)
        })
        .collect::<String>();
    let mut body = format!(
        r#"<form method="get" action="/console/laporan" class="card">{year_input}<p><label for="half">{half_text}</label> <select id="half" name="half">{halves}</select></p><p><button type="submit">{show}</button></p></form>"#,
        year_input = input(
            t(lang, "year"),
            "year",
            &year.to_string(),
            r#"inputmode="numeric""#
        ),
        half_text = t(lang, "half"),
        show = t(lang, "show"),
    );
    let reply = console
        .get(
            &signed,
            &format!("/reports/semester?year={year}&half={half}&format=json"),
        )
        .await;
    match reply.ok() {
        Ok(_) => body.push_str(&format!(
            r#"<p><a id="printable" href="/console/laporan/cetak?year={year}&amp;half={half}">{printable}</a></p><iframe src="/console/laporan/cetak?year={year}&amp;half={half}" title="{title} {year}/{half}" style="width:100%;height:70vh;border:1px solid #c9d1dc;background:#fff"></iframe>"#,
            printable = t(lang, "printable"),
            title = t(lang, "report"),
        )),
        Err(message) => body.push_str(&Notice::Refused(message).html(lang)),
    }
    signed.page("report", None, &body)
}

/// `GET /console/laporan/cetak`: the API's printable HTML report.
pub(super) async fn printable(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<Semester>, QueryRejection>,
) -> Response {
    let query = match signed.open("report", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let (year, half) = query.resolve(&console);
    let reply = console
        .get(
            &signed,
            &format!("/reports/semester?year={year}&half={half}&format=html"),
        )
        .await;
    if !reply.status.is_success() {
        let notice = Notice::Refused(reply.message());
        let mut response = signed.page("report", Some(&notice), "");
        *response.status_mut() = reply.status;
        return response;
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        reply.text,
    )
        .into_response()
}
