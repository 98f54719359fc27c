//! Programs, funding and disbursements: a program's terms, money from the city budget into
//! its giro account, and a period's benefit credited to every live card, each the one API
//! call of that action. Amounts are typed the Indonesian way (`Rp 1.250.000`) and sent as
//! the API's strings; what is not an amount is refused here, with the field named.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::form::FormBody;
use super::format::{amount_input, day, rupiah, time};
use super::i18n::{Lang, t};
use super::layout::{Notice, csrf_field, esc, input, table};
use super::{Console, Fields, Signed, enc};

/// `GET /console/program`.
pub(super) async fn show(State(console): State<Console>, signed: Signed) -> Response {
    if let Err(refused) = signed.may_open("programs") {
        return *refused;
    }
    let body = render(&console, &signed, "").await;
    signed.page("programs", None, &body)
}

/// An amount field as the API's string, or the notice naming the field.
fn amount(lang: Lang, fields: &Fields, name: &str, label: &str) -> Result<String, Notice> {
    amount_input(fields.text(name))
        .ok_or_else(|| Notice::Refused(format!("{}: {}", t(lang, label), t(lang, "not_an_amount"))))
}

/// `POST /console/program`: a new program, a funding or a disbursement.
pub(super) async fn act(
    State(console): State<Console>,
    signed: Signed,
    body: FormBody,
) -> Response {
    let fields = match signed.form("programs", &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let lang = signed.lang;
    let mut shown = String::new();
    let notice = match fields.text("action") {
        "create" => {
            let amounts = (
                amount(lang, &fields, "benefit_amount", "benefit_amount"),
                amount(lang, &fields, "purchase_amount_max", "purchase_amount_max"),
            );
            match amounts {
                (Ok(benefit), Ok(max)) => {
                    let body = json!({
                        "code": fields.text("code"),
                        "name": fields.text("name"),
                        "budget_year": fields.text("budget_year").parse::<u16>().unwrap_or(0),
                        "benefit_amount": benefit,
                        "allowed_categories": fields.text("allowed_categories")
                            .split([',', ' ']).filter(|c| !c.is_empty()).collect::<Vec<_>>(),
                        "basket_required": fields.get("basket_required").is_some(),
                        "purchase_amount_max": max,
                        "purchases_per_day_max": fields.text("purchases_per_day_max").parse::<u32>().unwrap_or(0),
                        "pocket_expires_at": fields.text("pocket_expires_at"),
                    });
                    console.post(&signed, "/programs", body).await.notice(lang)
                }
                (Err(notice), _) | (_, Err(notice)) => notice,
            }
        }
        "fund" => match amount(lang, &fields, "amount", "amount") {
            Ok(amount) => {
                let path = format!("/programs/{}/funding", enc(fields.text("program_code")));
                let body = json!({"amount": amount, "reference": fields.text("reference")});
                console.post(&signed, &path, body).await.notice(lang)
            }
            Err(notice) => notice,
        },
        "disburse" => {
            let body = json!({
                "program_code": fields.text("program_code"),
                "period": fields.text("period"),
            });
            let reply = console.post(&signed, "/disbursements", body).await;
            if reply.status.is_success() {
                let d = &reply.json;
                shown = format!(
                    r#"<section aria-labelledby="disbursed"><h2 id="disbursed">{title}</h2><p>{cards_text}: <strong id="disbursed-cards">{cards}</strong> · {total_text}: <strong id="disbursed-total">{total}</strong> · {at}</p></section>"#,
                    title = t(lang, "disbursement"),
                    cards_text = t(lang, "cards"),
                    cards = d["cards"],
                    total_text = t(lang, "total"),
                    total = rupiah(d["total"].as_str().unwrap_or_default()),
                    at = time(lang, d["at"].as_str().unwrap_or_default()),
                );
            }
            reply.notice(lang)
        }
        _ => Notice::Refused(t(lang, "not_found").to_string()),
    };
    let body = render(&console, &signed, &shown).await;
    signed.page("programs", Some(&notice), &body)
}

/// The programs with their money, then the three forms.
async fn render(console: &Console, signed: &Signed, shown: &str) -> String {
    let lang = signed.lang;
    let csrf = csrf_field(&signed.session);
    let programs = console.get(signed, "/programs?page_size=1000").await.ok();
    let items: Vec<serde_json::Value> = programs
        .as_ref()
        .ok()
        .and_then(|p| p["items"].as_array().cloned())
        .unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|p| {
            vec![
                esc(&text(&p["code"])),
                esc(&text(&p["name"])),
                rupiah(&text(&p["benefit_amount"])),
                rupiah(&text(&p["funded"])),
                rupiah(&text(&p["giro_balance"])),
                day(lang, &text(&p["pocket_expires_at"])),
            ]
        })
        .collect();
    let options = items
        .iter()
        .map(|p| {
            let code = esc(&text(&p["code"]));
            format!(r#"<option value="{code}">{code}</option>"#)
        })
        .collect::<String>();
    let select = |id: &str| {
        format!(
            r#"<p><label for="{id}">{}</label> <select id="{id}" name="program_code">{options}</select></p>"#,
            t(lang, "program")
        )
    };
    let mut html = shown.to_string();
    html.push_str(&table(
        t(lang, "programs"),
        &[
            t(lang, "code"),
            t(lang, "name"),
            t(lang, "benefit_amount"),
            t(lang, "funded"),
            t(lang, "giro_balance"),
            t(lang, "expires"),
        ],
        &rows,
    ));
    html.push_str(&format!(
        r#"<div class="cards"><form method="post" action="/console/program" class="card"><h2>{fund}</h2>{csrf}<input type="hidden" name="action" value="fund">{fund_program}{amount}{reference}<p><button type="submit">{fund}</button></p></form>
<form method="post" action="/console/program" class="card"><h2>{disburse}</h2>{csrf}<input type="hidden" name="action" value="disburse">{disburse_program}{period}<p><button type="submit">{disburse}</button></p></form>
<form method="post" action="/console/program" class="card"><h2>{create}</h2>{csrf}<input type="hidden" name="action" value="create">{code}{name}{year}{benefit}{categories}<p><input type="checkbox" id="basket_required" name="basket_required" value="true" checked> <label for="basket_required">{basket}</label></p>{max}{per_day}{expires}<p><button type="submit">{create}</button></p></form></div>"#,
        fund = t(lang, "fund"),
        fund_program = select("fund-program"),
        amount = input(t(lang, "amount"), "amount", "", r#"required inputmode="numeric" placeholder="Rp 1.000.000""#),
        reference = input(t(lang, "reference"), "reference", "", "required"),
        disburse = t(lang, "disburse"),
        disburse_program = select("disburse-program"),
        period = input(t(lang, "period"), "period", "", r#"required placeholder="2026-11""#),
        create = t(lang, "create_program"),
        code = input(t(lang, "code"), "code", "", "required"),
        name = input(t(lang, "name"), "name", "", "required"),
        year = input(t(lang, "budget_year"), "budget_year", "", r#"required inputmode="numeric""#),
        benefit = input(t(lang, "benefit_amount"), "benefit_amount", "", "required"),
        categories = input(t(lang, "allowed_categories"), "allowed_categories", "01,02", "required"),
        basket = t(lang, "basket_required"),
        max = input(t(lang, "purchase_amount_max"), "purchase_amount_max", "", "required"),
        per_day = input(t(lang, "purchases_per_day_max"), "purchases_per_day_max", "", r#"required inputmode="numeric""#),
        expires = input(t(lang, "pocket_expires_at"), "pocket_expires_at", "", r#"required placeholder="2027-12-31""#),
    ));
    html
}
