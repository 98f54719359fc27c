//! Beneficiaries: the CSV import (a file uploaded, or its text pasted) with its per-row
//! report, the lists by status (the verification and validation queues) with bulk actions,
//! settling the possible duplicates listed (different people, or the same person as another
//! record), and a decree made of the people ticked. A bulk action is one API call per person, each refused,
//! validated and audited on its own; the page says how many were done and why the others
//! were refused.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cards::pager;
use super::form::FormBody;
use super::i18n::t;
use super::layout::{Notice, csrf_field, esc, input, table};
use super::{Console, Signed, enc};

/// People listed per page (paged at the store).
const PAGE_SIZE: u32 = 50;
/// The lifecycle states, in order.
const STATUSES: [&str; 6] = [
    "imported",
    "verified",
    "validated",
    "determined",
    "rejected",
    "revoked",
];

/// What the list is asked to show.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    /// Lifecycle state (default `imported`: the verification queue).
    status: Option<String>,
    /// Part of a name, NIK or SSN number.
    q: Option<String>,
    /// Page, from 1.
    halaman: Option<u32>,
}

/// `GET /console/penerima`.
pub(super) async fn show(
    State(console): State<Console>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = match signed.open("beneficiaries", query) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let body = render(&console, &signed, &query, "").await;
    signed.page("beneficiaries", None, &body)
}

/// `POST /console/penerima`: an import, a bulk step, a decree or a duplicate's resolution.
pub(super) async fn act(
    State(console): State<Console>,
    signed: Signed,
    body: FormBody,
) -> Response {
    let fields = match signed.form("beneficiaries", &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let ssns: Vec<String> = fields.all("ssn").map(str::to_string).collect();
    let mut report = String::new();
    let notice = match fields.text("action") {
        "import" => match fields.file_or_pasted("csv_file", "csv") {
            Ok(csv) => {
                let reply = console
                    .call(
                        &signed,
                        Method::POST,
                        "/beneficiaries/import",
                        "text/csv",
                        Body::from(csv + "\n"),
                    )
                    .await;
                if reply.status.is_success() {
                    report = import_report(&signed, &reply.json);
                }
                reply.notice(lang)
            }
            Err(key) => Notice::Refused(t(lang, key).to_string()),
        },
        action @ ("verify" | "validate" | "verify-reject" | "validate-reject") => {
            let (step, approved) = match action.split_once('-') {
                Some((step, _)) => (step, false),
                None => (action, true),
            };
            let body = json!({"approved": approved, "note": fields.text("note")});
            let mut done = 0;
            let mut refused = Vec::new();
            for ssn in &ssns {
                let path = format!("/beneficiaries/{}/{step}", enc(ssn));
                let reply = console.post(&signed, &path, body.clone()).await;
                match reply.ok() {
                    Ok(_) => done += 1,
                    Err(message) => refused.push(format!("{ssn}: {message}")),
                }
            }
            if refused.is_empty() && done > 0 {
                Notice::Done(format!("{} {done} / {}", t(lang, "done"), ssns.len()))
            } else if ssns.is_empty() {
                Notice::Refused(t(lang, "tick_someone").to_string())
            } else {
                Notice::Refused(format!("{done} / {} · {}", ssns.len(), refused.join("; ")))
            }
        }
        "decree" => {
            let body = json!({
                "decree_number": fields.text("decree_number"),
                "decree_date": fields.text("decree_date"),
                "program_code": fields.text("program_code"),
                "ssns": ssns,
            });
            console
                .post(&signed, "/determinations", body)
                .await
                .notice(lang)
        }
        "resolve" => {
            let body = match fields.text("outcome") {
                "same" => json!({
                    "same_person_as": fields.text("same_person_as"),
                    "note": fields.text("resolve_note"),
                }),
                _ => json!({"distinct": true, "note": fields.text("resolve_note")}),
            };
            let path = format!("/beneficiaries/{}/resolve", enc(fields.text("flagged")));
            console.post(&signed, &path, body).await.notice(lang)
        }
        _ => Notice::Refused(t(lang, "not_found").to_string()),
    };
    let query = ListQuery {
        status: fields.get("status").map(str::to_string),
        ..ListQuery::default()
    };
    let body = render(&console, &signed, &query, &report).await;
    signed.page("beneficiaries", Some(&notice), &body)
}

/// The import's answer, row by row.
fn import_report(signed: &Signed, answer: &Value) -> String {
    let lang = signed.lang;
    let mut rows = Vec::new();
    for d in answer["duplicates"].as_array().into_iter().flatten() {
        rows.push(vec![
            d["row"].to_string(),
            t(lang, "duplicate").to_string(),
            esc(&format!(
                "{} → {}",
                str_of(&d["nik"]),
                str_of(&d["existing"])
            )),
        ]);
    }
    for d in answer["possible_duplicates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        rows.push(vec![
            d["row"].to_string(),
            t(lang, "possible_duplicate").to_string(),
            esc(&d.to_string()),
        ]);
    }
    for r in answer["rejected"].as_array().into_iter().flatten() {
        rows.push(vec![
            r["row"].to_string(),
            t(lang, "rejected_row").to_string(),
            esc(str_of(&r["reason"])),
        ]);
    }
    format!(
        r#"<section aria-labelledby="import-report"><h2 id="import-report">{title}</h2><p>{rows_text}: <strong>{count}</strong> · {imported_text}: <strong id="imported">{imported}</strong></p>{table}</section>"#,
        title = t(lang, "import_report"),
        rows_text = t(lang, "rows"),
        count = answer["rows"],
        imported_text = t(lang, "imported"),
        imported = answer["imported"],
        table = table(
            t(lang, "import_report"),
            &[t(lang, "row"), t(lang, "kind"), t(lang, "reason")],
            &rows
        ),
    )
}

/// A JSON string's text, or empty.
fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The import form, the filter, the list with its bulk actions and the decree form.
async fn render(console: &Console, signed: &Signed, query: &ListQuery, report: &str) -> String {
    let lang = signed.lang;
    let csrf = csrf_field(&signed.session);
    let status = query
        .status
        .as_deref()
        .filter(|s| STATUSES.contains(s))
        .unwrap_or("imported");
    let page = query.halaman.unwrap_or(1).max(1);
    let q = query.q.as_deref().unwrap_or_default();
    let options = |selected: &str| {
        STATUSES
            .iter()
            .map(|s| {
                let chosen = if *s == selected { " selected" } else { "" };
                format!(r#"<option value="{s}"{chosen}>{}</option>"#, t(lang, s))
            })
            .collect::<String>()
    };
    let mut html = format!(
        r#"{report}<div class="cards"><form method="post" action="/console/penerima" enctype="multipart/form-data" class="card"><h2>{import}</h2>{csrf}<input type="hidden" name="action" value="import"><p><label for="csv_file">{file_label}</label><br><input type="file" id="csv_file" name="csv_file" accept=".csv,text/csv,text/plain"></p><p><label for="csv">{csv_label}</label><br><textarea id="csv" name="csv" rows="6" cols="60"></textarea></p><p><button type="submit">{import}</button></p></form>
<form method="get" action="/console/penerima" class="card"><h2>{filter}</h2><p><label for="status">{status_text}</label> <select id="status" name="status">{options}</select></p>{q_input}<p><button type="submit">{filter}</button></p></form></div>"#,
        import = t(lang, "import"),
        file_label = t(lang, "csv_file"),
        csv_label = t(lang, "csv_label"),
        filter = t(lang, "filter"),
        status_text = t(lang, "status"),
        options = options(status),
        q_input = input(t(lang, "search_people"), "q", q, ""),
    );
    let path = format!(
        "/beneficiaries?status={status}&q={}&page={page}&page_size={PAGE_SIZE}",
        enc(q)
    );
    let list = match console.get(signed, &path).await.ok() {
        Ok(list) => list,
        Err(message) => return html + &Notice::Refused(message).html(lang),
    };
    let mut flagged = Vec::new();
    let rows: Vec<Vec<String>> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let ssn = esc(str_of(&b["ssn"]));
            let flag = if b["possible_duplicate"] == true {
                flagged.push(ssn.clone());
                format!(" <strong>{}</strong>", t(lang, "possible_duplicate"))
            } else {
                String::new()
            };
            vec![
                format!(
                    r#"<input type="checkbox" id="pick-{ssn}" name="ssn" value="{ssn}" form="bulk"><label for="pick-{ssn}">{ssn}</label>"#
                ),
                esc(str_of(&b["nik"])),
                format!("{}{flag}", esc(str_of(&b["name"]))),
                esc(str_of(&b["kecamatan"])),
                t(lang, str_of(&b["status"])).to_string(),
            ]
        })
        .collect();
    html.push_str(&table(
        t(lang, status),
        &[
            t(lang, "ssn"),
            t(lang, "nik"),
            t(lang, "name"),
            t(lang, "kecamatan"),
            t(lang, "status"),
        ],
        &rows,
    ));
    html.push_str(&pager(
        lang,
        &format!("/console/penerima?status={status}&q={}&", enc(q)),
        page,
        PAGE_SIZE,
        list["total"].as_u64().unwrap_or(0),
    ));
    if !flagged.is_empty() {
        html.push_str(&resolve_form(signed, status, &flagged));
    }
    let programs = console.get(signed, "/programs?page_size=1000").await.ok();
    let program_options = programs
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array())
        .into_iter()
        .flatten()
        .map(|p| {
            let code = esc(str_of(&p["code"]));
            format!(r#"<option value="{code}">{code}</option>"#)
        })
        .collect::<String>();
    html.push_str(&format!(
        r#"<form method="post" action="/console/penerima" id="bulk"><h2>{ticked}</h2>{csrf}<input type="hidden" name="status" value="{status}">{note}<p><button type="submit" name="action" value="verify">{verify}</button> <button type="submit" name="action" value="verify-reject">{verify_reject}</button> <button type="submit" name="action" value="validate">{validate}</button> <button type="submit" name="action" value="validate-reject">{validate_reject}</button></p>
<fieldset><legend>{decree}</legend>{number}{date}<p><label for="program_code">{program}</label> <select id="program_code" name="program_code">{program_options}</select></p><p><button type="submit" name="action" value="decree">{decree}</button></p></fieldset></form>"#,
        ticked = t(lang, "ticked"),
        note = input(t(lang, "note"), "note", "", ""),
        verify = t(lang, "verify"),
        verify_reject = t(lang, "verify_reject"),
        validate = t(lang, "validate"),
        validate_reject = t(lang, "validate_reject"),
        decree = t(lang, "decree"),
        number = input(t(lang, "decree_number"), "decree_number", "", ""),
        date = input(t(lang, "decree_date"), "decree_date", "", r#"placeholder="2026-11-01""#),
        program = t(lang, "program"),
    ));
    html
}

/// The form that settles one of the possible duplicates listed (`flagged`, escaped SSN
/// numbers): different people, or the same person as another record (this one is then
/// rejected), with what was checked.
fn resolve_form(signed: &Signed, status: &str, flagged: &[String]) -> String {
    let lang = signed.lang;
    let options = flagged
        .iter()
        .map(|ssn| format!(r#"<option value="{ssn}">{ssn}</option>"#))
        .collect::<String>();
    format!(
        r#"<form method="post" action="/console/penerima" class="card" id="resolve"><h2>{title}</h2>{csrf}<input type="hidden" name="action" value="resolve"><input type="hidden" name="status" value="{status}"><p><label for="flagged">{ssn}</label> <select id="flagged" name="flagged">{options}</select></p><fieldset><legend>{outcome}</legend><p><input type="radio" id="outcome-distinct" name="outcome" value="distinct" checked> <label for="outcome-distinct">{distinct}</label></p><p><input type="radio" id="outcome-same" name="outcome" value="same"> <label for="outcome-same">{same}</label></p>{same_as}</fieldset>{note}<p><button type="submit">{title}</button></p></form>"#,
        title = t(lang, "resolve_duplicate"),
        csrf = csrf_field(&signed.session),
        ssn = t(lang, "ssn"),
        outcome = t(lang, "outcome"),
        distinct = t(lang, "distinct"),
        same = t(lang, "same_person"),
        same_as = input(t(lang, "same_person_as"), "same_person_as", "", ""),
        note = input(t(lang, "note"), "resolve_note", "", "required"),
    )
}
