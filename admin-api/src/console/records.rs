//! The records: transactions (what the journal holds) and the audit log, filtered and paged
//! at the store: a page asks the API for one page of 50, never for all of history.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::cards::pager;
use super::format::{rupiah, time};
use super::i18n::t;
use super::layout::{Notice, esc, input, table};
use super::{Console, Signed, enc};

/// Rows per page.
const PAGE_SIZE: u32 = 50;

/// The filters of both lists (each uses its own).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    /// First day, `YYYY-MM-DD`.
    from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    to: Option<String>,
    /// Transactions: a card id.
    card_id: Option<String>,
    /// Transactions: an E-Warong.
    merchant_id: Option<String>,
    /// Transactions: a terminal.
    terminal_id: Option<String>,
    /// Audit: a token's name.
    actor: Option<String>,
    /// Page, from 1.
    halaman: Option<u32>,
}

impl Filter {
    /// The filter's non-empty fields among `names` as `name=value&` pairs (the API's names).
    fn query(&self, names: &[&str]) -> String {
        let mut query = String::new();
        for name in names {
            let value = match *name {
                "from" => &self.from,
                "to" => &self.to,
                "card_id" => &self.card_id,
                "merchant_id" => &self.merchant_id,
                "terminal_id" => &self.terminal_id,
                _ => &self.actor,
            };
            if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                query.push_str(&format!("{name}={}&", enc(value)));
            }
        }
        query
    }

    /// The filter form of `names`.
    fn form(&self, signed: &Signed, action: &str, names: &[&str]) -> String {
        let lang = signed.lang;
        let mut html = format!(r#"<form method="get" action="{action}" class="card">"#);
        for name in names {
            let (value, extra) = match *name {
                "from" => (&self.from, r#"type="date""#),
                "to" => (&self.to, r#"type="date""#),
                "card_id" => (&self.card_id, r#"inputmode="numeric""#),
                "merchant_id" => (&self.merchant_id, ""),
                "terminal_id" => (&self.terminal_id, ""),
                _ => (&self.actor, ""),
            };
            let label = match *name {
                "from" => t(lang, "from"),
                "to" => t(lang, "to"),
                "card_id" => t(lang, "card_id"),
                "merchant_id" => t(lang, "merchant_id"),
                "terminal_id" => t(lang, "terminal_id"),
                _ => t(lang, "actor"),
            };
            html.push_str(&input(
                label,
                name,
                value.as_deref().unwrap_or_default(),
                extra,
            ));
        }
        html.push_str(&format!(
            r#"<p><button type="submit">{}</button></p></form>"#,
            t(lang, "filter")
        ));
        html
    }
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// One page of an API list (`api_path` without its paging) as a table under `caption`, with
/// links to the pages around it (`console_base` ends in `?` or `&`).
struct Listing<'a> {
    api_path: String,
    console_base: String,
    page: u32,
    caption: &'a str,
    head: &'a [&'a str],
}

impl Listing<'_> {
    async fn html(
        &self,
        console: &Console,
        signed: &Signed,
        row: impl Fn(&Value) -> Vec<String>,
    ) -> String {
        let lang = signed.lang;
        let path = format!("{}page={}&page_size={PAGE_SIZE}", self.api_path, self.page);
        match console.get(signed, &path).await.ok() {
            Ok(list) => {
                let rows: Vec<Vec<String>> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(row)
                    .collect();
                table(self.caption, self.head, &rows)
                    + &pager(
                        lang,
                        &self.console_base,
                        self.page,
                        PAGE_SIZE,
                        list["total"].as_u64().unwrap_or(0),
                    )
            }
            Err(message) => Notice::Refused(message).html(lang),
        }
    }
}

/// `GET /console/transaksi`.
pub(super) async fn transactions(
    State(console): State<Console>,
    signed: Signed,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let filter = match signed.open("transactions", filter) {
        Ok(filter) => filter,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let names = ["from", "to", "card_id", "merchant_id", "terminal_id"];
    let query = filter.query(&names);
    let listing = Listing {
        api_path: format!("/transactions?{query}"),
        console_base: format!("/console/transaksi?{query}"),
        page: filter.halaman.unwrap_or(1).max(1),
        caption: t(lang, "transactions"),
        head: &[
            t(lang, "time"),
            t(lang, "kind"),
            t(lang, "amount"),
            t(lang, "pan"),
            t(lang, "terminal"),
            t(lang, "code"),
            "RRN",
        ],
    };
    let list = listing
        .html(&console, &signed, |x| {
            vec![
                time(lang, s(&x["at"])),
                esc(s(&x["kind"])),
                rupiah(s(&x["amount"])),
                esc(s(&x["pan"])),
                esc(s(&x["terminal_id"])),
                esc(s(&x["response_code"])),
                esc(s(&x["rrn"])),
            ]
        })
        .await;
    let body = filter.form(&signed, "/console/transaksi", &names) + &list;
    signed.page("transactions", None, &body)
}

/// `GET /console/audit`.
pub(super) async fn audit(
    State(console): State<Console>,
    signed: Signed,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let filter = match signed.open("audit", filter) {
        Ok(filter) => filter,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let names = ["from", "to", "actor"];
    let query = filter.query(&names);
    let listing = Listing {
        api_path: format!("/audit?{query}"),
        console_base: format!("/console/audit?{query}"),
        page: filter.halaman.unwrap_or(1).max(1),
        caption: t(lang, "audit"),
        head: &[
            t(lang, "time"),
            t(lang, "actor"),
            t(lang, "role"),
            t(lang, "actions"),
            t(lang, "target"),
            t(lang, "outcome"),
        ],
    };
    let list = listing
        .html(&console, &signed, |a| {
            vec![
                time(lang, s(&a["at"])),
                esc(s(&a["actor"])),
                esc(s(&a["role"])),
                esc(s(&a["action"])),
                esc(s(&a["target"])),
                esc(s(&a["outcome"])),
            ]
        })
        .await;
    let body = filter.form(&signed, "/console/audit", &names) + &list;
    signed.page("audit", None, &body)
}
