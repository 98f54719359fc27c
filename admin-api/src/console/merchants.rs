//! E-Warong and terminals: appoint an E-Warong, install a terminal with its keys and their
//! check values, suspend and activate either. Every form posts to `/console/ewarong` with an
//! `action`, which becomes the one API call of that action.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::form::FormBody;
use super::i18n::t;
use super::layout::{Notice, csrf_field, esc, input, table};
use super::{Console, Fields, Signed, enc};

/// E-Warong and terminals listed (one page of the API's largest).
const LISTED_MAX: u32 = 1_000;

/// `GET /console/ewarong`.
pub(super) async fn show(State(console): State<Console>, signed: Signed) -> Response {
    if let Err(refused) = signed.may_open("merchants") {
        return *refused;
    }
    let body = render(&console, &signed).await;
    signed.page("merchants", None, &body)
}

/// `POST /console/ewarong`: one action.
pub(super) async fn act(
    State(console): State<Console>,
    signed: Signed,
    body: FormBody,
) -> Response {
    let fields = match signed.form("merchants", &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let reply = match fields.text("action") {
        "appoint" => {
            let body = pick(
                &fields,
                &[
                    "merchant_id",
                    "name",
                    "kind",
                    "kecamatan",
                    "kelurahan",
                    "settlement_account",
                ],
            );
            console.post(&signed, "/merchants", body).await
        }
        "install" => {
            let body = pick(
                &fields,
                &[
                    "terminal_id",
                    "merchant_id",
                    "tmk",
                    "tmk_kcv",
                    "tpk",
                    "tpk_kcv",
                ],
            );
            console.post(&signed, "/terminals", body).await
        }
        action @ ("suspend" | "activate") => {
            let (kind, id) = match fields.get("terminal_id") {
                Some(id) => ("terminals", id),
                None => ("merchants", fields.text("merchant_id")),
            };
            let path = format!("/{kind}/{}/{action}", enc(id));
            console.post(&signed, &path, json!({})).await
        }
        _ => {
            let notice = Notice::Refused(t(signed.lang, "not_found").to_string());
            let body = render(&console, &signed).await;
            return signed.page("merchants", Some(&notice), &body);
        }
    };
    let notice = reply.notice(signed.lang);
    let body = render(&console, &signed).await;
    let mut response = signed.page("merchants", Some(&notice), &body);
    if !reply.status.is_success() {
        *response.status_mut() = reply.status;
    }
    response
}

/// A JSON object of the named fields as typed.
fn pick(fields: &Fields, names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|name| (name.to_string(), json!(fields.text(name))))
            .collect(),
    )
}

/// The forms, then the E-Warong and terminals with their actions.
async fn render(console: &Console, signed: &Signed) -> String {
    let lang = signed.lang;
    let csrf = csrf_field(&signed.session);
    let kinds = ["mikro", "kecil", "koperasi", "kube"]
        .iter()
        .map(|k| format!(r#"<option value="{k}">{k}</option>"#))
        .collect::<String>();
    // The terminal's E-Warong: the same field name as the appoint form's, another id.
    let terminal_merchant = format!(
        r#"<p><label for="terminal-merchant">{}</label> <input id="terminal-merchant" name="merchant_id" required maxlength="15"></p>"#,
        t(lang, "merchant_id")
    );
    let mut html = format!(
        r#"<div class="cards"><form method="post" action="/console/ewarong" class="card"><h2>{appoint}</h2>{csrf}<input type="hidden" name="action" value="appoint">{merchant_id}{name}<p><label for="kind">{kind}</label> <select id="kind" name="kind">{kinds}</select></p>{kecamatan}{kelurahan}{account}<p><button type="submit">{appoint}</button></p></form>
<form method="post" action="/console/ewarong" class="card"><h2>{install}</h2>{csrf}<input type="hidden" name="action" value="install">{terminal_id}{terminal_merchant}{tmk}{tmk_kcv}{tpk}{tpk_kcv}<p><button type="submit">{install}</button></p></form></div>"#,
        appoint = t(lang, "appoint"),
        merchant_id = input(
            t(lang, "merchant_id"),
            "merchant_id",
            "",
            r#"required maxlength="15""#
        ),
        name = input(t(lang, "name"), "name", "", "required"),
        kind = t(lang, "merchant_kind"),
        kecamatan = input(t(lang, "kecamatan"), "kecamatan", "", "required"),
        kelurahan = input(t(lang, "kelurahan"), "kelurahan", "", "required"),
        account = input(t(lang, "account"), "settlement_account", "", "required"),
        install = t(lang, "install"),
        terminal_id = input(
            t(lang, "terminal_id"),
            "terminal_id",
            "",
            r#"required maxlength="8""#
        ),
        tmk = input(
            t(lang, "tmk"),
            "tmk",
            "",
            r#"required size="34" autocomplete="off""#
        ),
        tmk_kcv = input(t(lang, "tmk_kcv"), "tmk_kcv", "", r#"required size="8""#),
        tpk = input(
            t(lang, "tpk"),
            "tpk",
            "",
            r#"required size="34" autocomplete="off""#
        ),
        tpk_kcv = input(t(lang, "tpk_kcv"), "tpk_kcv", "", r#"required size="8""#),
    );
    let toggle = |field: &str, id: &str, status: &str| {
        let action = if status == "active" {
            "suspend"
        } else {
            "activate"
        };
        format!(
            r#"<form method="post" action="/console/ewarong" class="inline">{csrf}<input type="hidden" name="action" value="{action}"><input type="hidden" name="{field}" value="{id}"><button type="submit" aria-label="{label} {id}">{label}</button></form>"#,
            id = esc(id),
            label = t(lang, action),
        )
    };
    let merchants = console
        .get(signed, &format!("/merchants?page_size={LISTED_MAX}"))
        .await
        .ok();
    let rows: Vec<Vec<String>> = merchants
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array())
        .into_iter()
        .flatten()
        .map(|m| {
            let id = m["merchant_id"].as_str().unwrap_or_default();
            let status = m["status"].as_str().unwrap_or_default();
            vec![
                esc(id),
                esc(m["name"].as_str().unwrap_or_default()),
                esc(m["kecamatan"].as_str().unwrap_or_default()),
                esc(status),
                toggle("merchant_id", id, status),
            ]
        })
        .collect();
    html.push_str(&table(
        t(lang, "merchant"),
        &[
            t(lang, "merchant_id"),
            t(lang, "name"),
            t(lang, "kecamatan"),
            t(lang, "status"),
            t(lang, "actions"),
        ],
        &rows,
    ));
    let terminals = console
        .get(signed, &format!("/terminals?page_size={LISTED_MAX}"))
        .await
        .ok();
    let rows: Vec<Vec<String>> = terminals
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array())
        .into_iter()
        .flatten()
        .map(|terminal| {
            let id = terminal["terminal_id"].as_str().unwrap_or_default();
            let status = terminal["status"].as_str().unwrap_or_default();
            vec![
                esc(id),
                esc(terminal["merchant_id"].as_str().unwrap_or_default()),
                esc(terminal["tmk_kcv"].as_str().unwrap_or_default()),
                esc(terminal["tpk_kcv"].as_str().unwrap_or_default()),
                esc(status),
                toggle("terminal_id", id, status),
            ]
        })
        .collect();
    html.push_str(&table(
        t(lang, "terminal"),
        &[
            t(lang, "terminal_id"),
            t(lang, "merchant_id"),
            t(lang, "tmk_kcv"),
            t(lang, "tpk_kcv"),
            t(lang, "status"),
            t(lang, "actions"),
        ],
        &rows,
    ));
    html
}
