//! Reports (`auditor`, `walikota`, `dinsos`, `diskominfo`): the semester report to the Mayor, the year-end
//! close of a program (`dinsos`), and the public summary (no token).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use ssn_ledger::{Account, AuditEntry, CardStatus, Day, Money, Role};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::report::{
    BatchException, Figures, Flows, JournalView, NeverUsedCard, PUBLIC_CELL_MIN, People,
    RegistryView, Semester, category_name, compute,
};
use crate::routes::programs::find_program;
use crate::support::{Caller, JsonBody, QueryParams, parse_day, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(semester_report))
        .routes(routes!(cards_never_used))
        .routes(routes!(close_program))
        .routes(routes!(public_summary))
}

/// Which report, in which form.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SemesterQuery {
    /// The year, 2000 to 2100.
    #[param(minimum = 2000, maximum = 2100, example = 2026)]
    pub year: u16,
    /// 1 (January-June) or 2 (July-December).
    #[param(minimum = 1, maximum = 2, example = 2)]
    pub half: u8,
    /// `json` (default), `csv` or `html`.
    #[param(pattern = "^(json|csv|html)$")]
    pub format: Option<String>,
}

/// Money and counts of one program.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramRow {
    /// Program code.
    pub program_code: String,
    /// Name.
    pub name: String,
    /// Beneficiaries enrolled in the program at the end of the semester's last day.
    pub people_determined: u64,
    /// Their cards issued by then, any status.
    pub cards_issued: u64,
    /// Of those, handed over by then.
    pub cards_delivered: u64,
    /// Funding received in the semester.
    pub funded: String,
    /// Credited to pockets in the semester.
    pub disbursed: String,
    /// Approved purchases in the semester, reversed ones included.
    pub spent: String,
    /// Reversals in the semester.
    pub reversed: String,
    /// Expired pockets returned to the giro account by a year-end close in the semester.
    pub returned: String,
    /// Netted to E-Warong by settlements in the semester.
    pub settled: String,
    /// Pocket balances at the end of the semester.
    pub unspent: String,
    /// The giro account at the end of the semester.
    pub giro_balance: String,
}

/// Money and counts of one kecamatan (people by where they live, E-Warong by where they
/// trade).
#[derive(Debug, Serialize, ToSchema)]
pub struct KecamatanRow {
    /// Kecamatan.
    pub kecamatan: String,
    /// Beneficiaries determined at the end of the semester's last day.
    pub people_determined: u64,
    /// Their cards issued by then.
    pub cards_issued: u64,
    /// Handed over by then.
    pub cards_delivered: u64,
    /// Credited to their pockets in the semester.
    pub disbursed: String,
    /// Their approved purchases in the semester.
    pub spent: String,
    /// Reversals in the semester.
    pub reversed: String,
    /// Returned by a year-end close in the semester.
    pub returned: String,
    /// Their pocket balances at the end of the semester.
    pub unspent: String,
    /// E-Warong appointed and not suspended at the end of the semester's last day.
    pub e_warong_active: u64,
    /// E-Warong with an approved purchase in the semester.
    pub e_warong_transacting: u64,
}

/// All programs together.
#[derive(Debug, Serialize, ToSchema)]
pub struct Totals {
    /// Beneficiaries determined at the end of the semester's last day, each once.
    pub people_determined: u64,
    /// Cards issued by then, any status.
    pub cards_issued: u64,
    /// Handed over by then.
    pub cards_delivered: u64,
    /// Funding received in the semester.
    pub funded: String,
    /// Credited to pockets.
    pub disbursed: String,
    /// Approved purchases.
    pub spent: String,
    /// Reversals.
    pub reversed: String,
    /// Returned by year-end closes.
    pub returned: String,
    /// Netted to E-Warong.
    pub settled: String,
    /// Pocket balances at the end.
    pub unspent: String,
    /// Giro balances at the end.
    pub giro_balance: String,
    /// E-Warong appointed and not suspended at the end of the semester's last day.
    pub e_warong_active: u64,
    /// E-Warong with an approved purchase in the semester.
    pub e_warong_transacting: u64,
}

/// Purchases by commodity category (DE48 items of approved purchases in the semester).
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryRow {
    /// Two digits, or `--` for purchases sent without a basket.
    pub category: String,
    /// The catalogue's name.
    pub name: String,
    /// Basket items.
    pub items: u64,
    /// Purchases with at least one such item.
    pub purchases: u64,
    /// Their amount (the items' amounts; a purchase without a basket counts whole).
    pub amount: String,
    /// Of that, reversed.
    pub reversed: String,
}

/// Cards never used in one kecamatan, by program.
#[derive(Debug, Serialize, ToSchema)]
pub struct NeverUsedArea {
    /// The holders' kecamatan.
    pub kecamatan: String,
    /// How many cards.
    pub cards: u64,
    /// Their money at the end of the semester.
    pub balance: String,
    /// How many of them per program the holders were enrolled in at the end of the semester
    /// (a card of a person in two programs counts in both), by code.
    pub programs: Vec<NeverUsedProgram>,
}

/// Cards never used of one program's people in one kecamatan.
#[derive(Debug, Serialize, ToSchema)]
pub struct NeverUsedProgram {
    /// Program code.
    pub program_code: String,
    /// How many cards.
    pub cards: u64,
}

/// Cards that received money and never made an approved purchase by the semester's end:
/// counted per kecamatan and program; the list of the cards themselves is its own CSV,
/// `GET /reports/semester/cards-never-used`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NeverUsed {
    /// How many.
    pub count: u64,
    /// Their money at the end of the semester.
    pub balance: String,
    /// Per kecamatan, by name.
    pub by_kecamatan: Vec<NeverUsedArea>,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct Exceptions {
    /// Batches closed in the semester out of balance, or closed by settlement because the
    /// terminal never sent its 0500: how many.
    pub batches_total: u64,
    /// The latest of them (at most 1,000, oldest first; the reconciliation of each business
    /// date lists every one).
    pub batches: Vec<BatchException>,
    /// Cards whose PIN was locked after three wrong PINs at the end of the semester's last
    /// day.
    pub pin_locked_cards: u64,
    /// Cards reported lost by then (and not found since: a card's status then).
    pub cards_lost: u64,
    /// Stolen.
    pub cards_stolen: u64,
    /// Damaged.
    pub cards_damaged: u64,
    /// Cards a new card had replaced by then.
    pub cards_replaced: u64,
    /// Import rows in the semester answered `duplicate`: their NIK was in an earlier row of
    /// the same file (a NIK of an earlier file is a refresh, not a duplicate).
    pub duplicate_nik_rows: u64,
    /// Import rows in the semester rejected (malformed NIK, date, ...).
    pub rejected_rows: u64,
    /// Beneficiaries flagged as possible duplicates (same name and birth date, other NIK).
    pub possible_duplicates: u64,
}

/// The semester report to the Mayor (Pasal 13(3)).
#[derive(Debug, Serialize, ToSchema)]
pub struct SemesterReport {
    /// The year.
    pub year: u16,
    /// 1 or 2.
    pub half: u8,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// When it was made (WITA). People, cards, E-Warong, PIN locks and lost, stolen,
    /// damaged or replaced cards are as of the end of the semester's last day, as far as the
    /// registry recorded the days of their changes (records written before it did count as
    /// they are when the report is made).
    pub generated_at: String,
    /// All programs.
    pub totals: Totals,
    /// Per program, by code.
    pub programs: Vec<ProgramRow>,
    /// Per kecamatan, by name.
    pub kecamatan: Vec<KecamatanRow>,
    /// Per commodity category, by code.
    pub categories: Vec<CategoryRow>,
    /// Cards never used.
    pub cards_never_used: NeverUsed,
    /// Exceptions.
    pub exceptions: Exceptions,
    /// The misuse monitor's alerts fired in the semester.
    pub alerts: crate::report_alerts::AlertsSection,
}

fn status_name(status: CardStatus) -> &'static str {
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

fn never_used_view(cards: &[NeverUsedCard]) -> NeverUsed {
    let mut areas: BTreeMap<&str, (u64, Money, BTreeMap<&str, u64>)> = BTreeMap::new();
    for card in cards {
        let (count, balance, programs) = areas.entry(card.kecamatan.as_str()).or_default();
        *count += 1;
        // Sums of journaled balances: each fits, and so does their sum.
        *balance = balance.checked_add(card.balance).unwrap_or(*balance);
        for program in &card.programs {
            *programs.entry(program.as_str()).or_default() += 1;
        }
    }
    NeverUsed {
        count: cards.len() as u64,
        balance: Money::checked_sum(cards.iter().map(|c| c.balance))
            .unwrap_or(Money::ZERO)
            .to_string(),
        by_kecamatan: areas
            .into_iter()
            .map(|(area, (cards, balance, programs))| NeverUsedArea {
                kecamatan: area.into(),
                cards,
                balance: balance.to_string(),
                programs: programs
                    .into_iter()
                    .map(|(code, cards)| NeverUsedProgram {
                        program_code: code.into(),
                        cards,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn report_view(
    figures: &Figures,
    semester: Semester,
    generated_at: i64,
    alerts: crate::report_alerts::AlertsSection,
) -> SemesterReport {
    let (people, flows, active, trading) = figures.totals;
    SemesterReport {
        year: semester.year as u16,
        half: semester.half,
        from: semester.first_day().to_string(),
        to: semester.last_day().to_string(),
        generated_at: wita_time(generated_at),
        totals: Totals {
            people_determined: people.people_determined,
            cards_issued: people.cards_issued,
            cards_delivered: people.cards_delivered,
            funded: flows.funded.to_string(),
            disbursed: flows.disbursed.to_string(),
            spent: flows.spent.to_string(),
            reversed: flows.reversed.to_string(),
            returned: flows.returned.to_string(),
            settled: flows.settled.to_string(),
            unspent: flows.unspent.to_string(),
            giro_balance: flows.giro_balance.to_string(),
            e_warong_active: active,
            e_warong_transacting: trading,
        },
        programs: figures
            .programs
            .iter()
            .map(|(code, (name, people, flows))| ProgramRow {
                program_code: code.clone(),
                name: name.clone(),
                people_determined: people.people_determined,
                cards_issued: people.cards_issued,
                cards_delivered: people.cards_delivered,
                funded: flows.funded.to_string(),
                disbursed: flows.disbursed.to_string(),
                spent: flows.spent.to_string(),
                reversed: flows.reversed.to_string(),
                returned: flows.returned.to_string(),
                settled: flows.settled.to_string(),
                unspent: flows.unspent.to_string(),
                giro_balance: flows.giro_balance.to_string(),
            })
            .collect(),
        kecamatan: figures
            .kecamatan
            .iter()
            .map(|(area, (people, flows, active, trading))| KecamatanRow {
                kecamatan: area.clone(),
                people_determined: people.people_determined,
                cards_issued: people.cards_issued,
                cards_delivered: people.cards_delivered,
                disbursed: flows.disbursed.to_string(),
                spent: flows.spent.to_string(),
                reversed: flows.reversed.to_string(),
                returned: flows.returned.to_string(),
                unspent: flows.unspent.to_string(),
                e_warong_active: *active,
                e_warong_transacting: *trading,
            })
            .collect(),
        categories: figures
            .categories
            .iter()
            .map(|(code, (items, purchases, amount, reversed))| CategoryRow {
                category: code.clone(),
                name: category_name(code).into(),
                items: *items,
                purchases: *purchases,
                amount: amount.to_string(),
                reversed: reversed.to_string(),
            })
            .collect(),
        cards_never_used: never_used_view(&figures.never_used),
        exceptions: Exceptions {
            batches_total: figures.batch_exceptions_total,
            batches: figures.batch_exceptions.clone(),
            pin_locked_cards: figures.pin_locked,
            cards_lost: figures.lost,
            cards_stolen: figures.stolen,
            cards_damaged: figures.damaged,
            cards_replaced: figures.replaced,
            duplicate_nik_rows: figures.duplicate_nik_rows,
            rejected_rows: figures.rejected_rows,
            possible_duplicates: figures.possible_duplicates,
        },
        alerts,
    }
}

/// Reads the registry and computes the figures for a window; with `imports`, the audit log's
/// import lines too (the semester report counts refused rows; the public summary does not).
async fn figures(state: &AdminState, window: (i64, i64), imports: bool) -> ApiResult<Figures> {
    let registry = state.ledger.registry();
    let programs = registry.programs().await?;
    let beneficiaries = registry.beneficiaries().await?;
    let cards = registry.cards().await?;
    let merchants = registry.merchants().await?;
    let terminals = registry.terminals().await?;
    let import_lines = if imports {
        import_lines(registry).await?
    } else {
        Vec::new()
    };
    // On a blocking thread: the projection is read in short holds of its lock, so a report
    // keeps neither the journal's sequencer nor an async worker from purchases.
    let ledger = Arc::clone(&state.ledger);
    tokio::task::spawn_blocking(move || {
        let reading = std::time::Instant::now();
        let journal = JournalView::read(&|| ledger.state(), window);
        metrics::histogram!("ssn_report_projection_read_seconds").record(reading.elapsed());
        compute(
            &journal,
            &RegistryView {
                programs: &programs,
                beneficiaries: &beneficiaries,
                cards: &cards,
                merchants: &merchants,
                terminals: &terminals,
                imports: &import_lines,
            },
            window,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("report: {e}")))
}

/// The import lines of the audit log, read a page at a time.
async fn import_lines(registry: &dyn ssn_ledger::Registry) -> ApiResult<Vec<AuditEntry>> {
    let mut lines = Vec::new();
    let mut from = 0;
    loop {
        let page = registry.audit(from, crate::report::AUDIT_PAGE).await?;
        let Some((last, _)) = page.last() else {
            return Ok(lines);
        };
        from = last + 1;
        lines.extend(
            page.into_iter()
                .map(|(_, line)| line)
                .filter(|line| line.action == "beneficiaries.import"),
        );
    }
}

/// The semester report to the Mayor (Pasal 13(3)) as JSON, CSV (`section,key,field,value`) or
/// a self-contained printable HTML page with charts.
#[utoipa::path(get, path = "/reports/semester", tag = "reports", params(SemesterQuery),
    responses((status = 200, description = "The report",
        content((SemesterReport = "application/json"), (String = "text/csv"), (String = "text/html")))))]
pub(crate) async fn semester_report(
    State(state): State<AdminState>,
    caller: Caller,
    query: Result<QueryParams<SemesterQuery>, ApiError>,
) -> ApiResult<Response> {
    // The role first: a 403 never depends on the query.
    caller.require(&REPORT_READERS)?;
    let QueryParams(query) = query?;
    let semester = semester(query.year, query.half)?;
    let format = query.format.unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "html") {
        return Err(ApiError::malformed("format is json, csv or html"));
    }
    let report = made_report(&state, semester).await?;
    // Each format is written once per report made, off the terminals' threads.
    let (content_type, body) = tokio::task::spawn_blocking(move || {
        let made = report.as_ref();
        match format.as_str() {
            "csv" => (
                "text/csv; charset=utf-8",
                made.csv
                    .get_or_init(|| crate::report_html::csv(&made.report).into())
                    .clone(),
            ),
            "html" => (
                "text/html; charset=utf-8",
                made.html
                    .get_or_init(|| crate::report_html::html(&made.report).into())
                    .clone(),
            ),
            _ => (
                "application/json",
                made.json
                    .get_or_init(|| {
                        serde_json::to_vec(&made.report)
                            .expect("a report encodes")
                            .into()
                    })
                    .clone(),
            ),
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("report: {e}")))?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Who reads the semester report and its list of cards never used: the agencies that write
/// it together (Pasal 13(3): Diskominfo with Dinas Sosial), the Mayor's office it goes to, and
/// the inspectorate.
const REPORT_READERS: [Role; 4] = [
    Role::Auditor,
    Role::Walikota,
    Role::Dinsos,
    Role::Diskominfo,
];

/// The semester a query names, or its 400.
fn semester(year: u16, half: u8) -> ApiResult<Semester> {
    if !(2000..=2100).contains(&year) {
        return Err(ApiError::malformed("year is 2000 to 2100"));
    }
    if !matches!(half, 1 | 2) {
        return Err(ApiError::malformed("half is 1 or 2"));
    }
    Ok(Semester {
        year: i32::from(year),
        half,
    })
}

/// The semester's report as last made, or a new one (see [`Made`]).
async fn made_report(state: &AdminState, semester: Semester) -> ApiResult<Arc<MadeReport>> {
    let now = state.now();
    state
        .semester_reports
        .get_or_make(
            (semester.year, semester.half),
            now,
            SEMESTER_REPORT_MAX_AGE_SECONDS,
            || async {
                let figures = figures(state, semester.window(), true).await?;
                let alerts =
                    crate::report_alerts::fired_within(state.ledger.registry(), semester.window())
                        .await?;
                let alerts = crate::report_alerts::section(&alerts, semester.window());
                Ok(Arc::new(MadeReport {
                    report: report_view(&figures, semester, now, alerts),
                    never_used: figures.never_used,
                    json: std::sync::OnceLock::new(),
                    csv: std::sync::OnceLock::new(),
                    html: std::sync::OnceLock::new(),
                    never_used_csv: std::sync::OnceLock::new(),
                }))
            },
        )
        .await
}

/// Which semester's cards.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NeverUsedQuery {
    /// The year, 2000 to 2100.
    #[param(minimum = 2000, maximum = 2100, example = 2026)]
    pub year: u16,
    /// 1 (January-June) or 2 (July-December).
    #[param(minimum = 1, maximum = 2, example = 2)]
    pub half: u8,
}

/// The columns of the list of cards never used.
pub const NEVER_USED_COLUMNS: [&str; 7] = [
    "card_id",
    "ssn",
    "kecamatan",
    "kelurahan",
    "programs",
    "status",
    "balance",
];

/// Every card of the semester report's "cards never used", one CSV line each, for Dinas
/// Sosial to follow up: the card, its holder's SSN number, kecamatan and kelurahan, the
/// programs they were enrolled in at the end of the semester (space-separated), the card's
/// status now and its pockets at the end of the semester. The same report as
/// `GET /reports/semester` (made at most every 5 seconds), so the list adds up to its counts.
#[utoipa::path(get, path = "/reports/semester/cards-never-used", tag = "reports",
    params(NeverUsedQuery),
    responses((status = 200, description = "The cards, by id", content_type = "text/csv", body = String)))]
pub(crate) async fn cards_never_used(
    State(state): State<AdminState>,
    caller: Caller,
    query: Result<QueryParams<NeverUsedQuery>, ApiError>,
) -> ApiResult<Response> {
    // The role first: a 403 never depends on the query.
    caller.require(&REPORT_READERS)?;
    let QueryParams(query) = query?;
    let report = made_report(&state, semester(query.year, query.half)?).await?;
    let body = tokio::task::spawn_blocking(move || {
        report
            .never_used_csv
            .get_or_init(|| never_used_csv(&report.never_used).into())
            .clone()
    })
    .await
    .map_err(|e| ApiError::internal(format!("report: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}

fn never_used_csv(cards: &[NeverUsedCard]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(NEVER_USED_COLUMNS);
    for card in cards {
        let _ = writer.write_record([
            card.card.0.to_string().as_str(),
            &card.ssn,
            &card.kecamatan,
            &card.kelurahan,
            &card.programs.join(" "),
            status_name(card.status),
            &card.balance.to_string(),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A year-end close.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClose {
    /// The day the close is as of: after the program's `pocket_expires_at`, not after today.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2027-01-01")]
    pub as_of: String,
}

/// One card's returned pocket.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnedPocket {
    /// Card id.
    pub card_id: u64,
    /// The holder's SSN number.
    pub ssn: String,
    /// Returned to the giro account.
    pub amount: String,
}

/// A year-end close and what goes back to the city treasury.
#[derive(Debug, Serialize, ToSchema)]
pub struct CloseView {
    /// Program.
    pub program_code: String,
    /// As of.
    pub as_of: String,
    /// When it was journaled (WITA).
    pub closed_at: String,
    /// Cards whose expired pocket was returned.
    pub cards: u64,
    /// What the pockets returned.
    pub returned: String,
    /// Every returned pocket, by card id.
    pub returns: Vec<ReturnedPocket>,
    /// The giro account now.
    pub giro_balance: String,
    /// Of it, purchases at E-Warong not yet settled: owed to them, not to the treasury.
    pub owed_to_e_warong: String,
    /// The unspent total to return to the city treasury (Pasal 5, 14): giro minus owed.
    pub for_treasury: String,
}

/// The year-end close of a program (Pasal 5, 14): every pocket of the program, expired by
/// `as_of`, goes back to the giro account in the journal; the answer lists them and the
/// unspent total for the city treasury. Idempotent per (program, as_of): a repeat answers 200
/// with the first close.
#[utoipa::path(post, path = "/programs/{code}/close", tag = "reports", request_body = NewClose,
    params(("code" = String, Path, description = "Program code", example = "SEMBAKO")),
    responses((status = 201, description = "Closed", body = CloseView),
        (status = 200, description = "Closed before as of that day; the same close", body = CloseView)))]
pub(crate) async fn close_program(
    State(state): State<AdminState>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<NewClose>,
) -> ApiResult<(StatusCode, Json<CloseView>)> {
    caller.require(&[Role::Dinsos])?;
    let close = body.into_inner()?;
    let as_of: Day = parse_day(&close.as_of, "as_of")?;
    let program = find_program(&state, &code).await?;
    let target = format!("program {} close as of {as_of}", program.code);
    let result = state
        .ledger
        .close_program(&program.code, as_of, state.now())
        .await
        .map_err(ApiError::from);
    let outcome = state
        .audit_outcome(&caller, "programs.close", &target, result)
        .await?;
    let mut returns = Vec::with_capacity(outcome.returns.len());
    for (card, amount) in &outcome.returns {
        let ssn = state
            .ledger
            .registry()
            .card(*card)
            .await?
            .map(|c| c.ssn)
            .unwrap_or_default();
        returns.push(ReturnedPocket {
            card_id: card.0,
            ssn,
            amount: amount.to_string(),
        });
    }
    let (giro, owed) = {
        let journal = state.ledger.state();
        (
            journal.balance(&Account::Giro(program.code.clone())),
            journal.totals.owed(&program.code),
        )
    };
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(CloseView {
            program_code: program.code.as_str().into(),
            as_of: as_of.to_string(),
            closed_at: wita_time(outcome.at_unix_seconds),
            cards: outcome.returns.len() as u64,
            returned: outcome.returned.to_string(),
            returns,
            giro_balance: giro.to_string(),
            owed_to_e_warong: owed.to_string(),
            for_treasury: giro.checked_sub(owed).unwrap_or(giro).to_string(),
        }),
    ))
}

/// One row of the public summary. `null` figures are suppressed: fewer than five people.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicRow {
    /// Kecamatan name, or program code, or `all`.
    pub name: String,
    /// True when this row's people figures and amounts are withheld.
    pub suppressed: bool,
    /// Beneficiaries determined.
    pub people_determined: Option<u64>,
    /// Cards handed over.
    pub cards_delivered: Option<u64>,
    /// Credited to pockets so far.
    pub disbursed: Option<String>,
    /// Spent at E-Warong so far, net of reversals.
    pub spent: Option<String>,
    /// In pockets now.
    pub unspent: Option<String>,
    /// E-Warong active (kecamatan rows and the total; shops, not people).
    pub e_warong_active: Option<u64>,
}

/// Aggregates safe to publish: no name, NIK, KK or card number, and no figure about fewer
/// than five people.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicSummary {
    /// When it was made (WITA).
    pub generated_at: String,
    /// Rows about fewer people than this are withheld (and one more when only one would be,
    /// so the total cannot give it away).
    pub suppression_threshold: u64,
    /// The whole program.
    pub total: PublicRow,
    /// Per program.
    pub programs: Vec<PublicRow>,
    /// Per kecamatan.
    pub kecamatan: Vec<PublicRow>,
}

fn public_row(name: &str, people: &People, flows: &Flows, merchants: Option<u64>) -> PublicRow {
    let net_spent = flows
        .spent
        .checked_sub(flows.reversed)
        .unwrap_or(flows.spent);
    // A count of one to four cards could point at a household too.
    let count = |n: u64| (n == 0 || n >= PUBLIC_CELL_MIN).then_some(n);
    PublicRow {
        name: name.into(),
        suppressed: false,
        people_determined: Some(people.people_determined),
        cards_delivered: count(people.cards_delivered),
        disbursed: Some(flows.disbursed.to_string()),
        spent: Some(net_spent.to_string()),
        unspent: Some(flows.unspent.to_string()),
        e_warong_active: merchants,
    }
}

/// Withholds rows about fewer than [`PUBLIC_CELL_MIN`] people; when that leaves exactly one
/// row withheld, the smallest other row too, so the total minus the rest reveals nothing.
fn suppress(rows: &mut [PublicRow]) {
    let small = |row: &PublicRow| {
        row.people_determined
            .is_some_and(|n| (1..PUBLIC_CELL_MIN).contains(&n))
    };
    let mut withheld: Vec<usize> = (0..rows.len()).filter(|&i| small(&rows[i])).collect();
    if withheld.len() == 1 {
        let next = (0..rows.len())
            .filter(|i| !withheld.contains(i))
            .min_by_key(|&i| (rows[i].people_determined, i));
        withheld.extend(next);
    }
    for i in withheld {
        let row = &mut rows[i];
        row.suppressed = true;
        row.people_determined = None;
        row.cards_delivered = None;
        row.disbursed = None;
        row.spent = None;
        row.unspent = None;
    }
}

/// Figures as last made, by key, each with the second it was made. One caller at a time
/// makes figures; a caller within the max age gets the ones made, and so does a caller who
/// finds others making new ones while the last are less than [`MADE_SERVED_WHILE_MAKING_SECONDS`]
/// old: asking in a loop costs one making per max age, whoever asks, and only the caller who
/// makes waits for it.
#[derive(Debug)]
pub struct Made<K, V> {
    made: std::sync::Mutex<std::collections::HashMap<K, (i64, V)>>,
    making: tokio::sync::Mutex<()>,
}

impl<K, V> Default for Made<K, V> {
    fn default() -> Made<K, V> {
        Made {
            made: std::sync::Mutex::default(),
            making: tokio::sync::Mutex::new(()),
        }
    }
}

/// Seconds figures are still served while new ones are being made.
pub const MADE_SERVED_WHILE_MAKING_SECONDS: i64 = 60;

impl<K: Eq + std::hash::Hash + Clone, V: Clone> Made<K, V> {
    /// The value made for `key` within `max_age` seconds before `now`; or, if another caller
    /// is making one, the last made if recent enough; or a new one.
    pub async fn get_or_make<F: std::future::Future<Output = ApiResult<V>>>(
        &self,
        key: K,
        now: i64,
        max_age: i64,
        make: impl FnOnce() -> F,
    ) -> ApiResult<V> {
        let last = |within: i64| {
            let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            made.get(&key)
                .filter(|(at, _)| (0..within).contains(&(now - at)))
                .map(|(_, value)| value.clone())
        };
        if let Some(value) = last(max_age) {
            return Ok(value);
        }
        let _making = match self.making.try_lock() {
            Ok(guard) => guard,
            Err(_) => match last(MADE_SERVED_WHILE_MAKING_SECONDS) {
                Some(value) => return Ok(value),
                None => self.making.lock().await,
            },
        };
        // Made while this caller waited?
        if let Some(value) = last(max_age) {
            return Ok(value);
        }
        let value = make().await?;
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (now, value.clone()));
        Ok(value)
    }
}

/// The public summary as last made (its JSON).
pub type PublicSummaryCache = Made<(), axum::body::Bytes>;

/// A semester report as made, and each format's body once one caller asked for it.
#[derive(Debug)]
pub struct MadeReport {
    report: SemesterReport,
    /// The cards its `cards_never_used` counts, for their own CSV.
    never_used: Vec<NeverUsedCard>,
    json: std::sync::OnceLock<axum::body::Bytes>,
    csv: std::sync::OnceLock<axum::body::Bytes>,
    html: std::sync::OnceLock<axum::body::Bytes>,
    never_used_csv: std::sync::OnceLock<axum::body::Bytes>,
}

/// Semester reports as last made, by year and half.
pub type SemesterReports = Made<(i32, u8), Arc<MadeReport>>;

/// Seconds the public summary is served as made before it is made again.
pub const PUBLIC_SUMMARY_MAX_AGE_SECONDS: i64 = 5;

/// Seconds a semester report is served as made (in any format) before it is made again: its
/// `generated_at` says when. On two cores each one made costs the terminals a second of CPU.
pub const SEMESTER_REPORT_MAX_AGE_SECONDS: i64 = 5;

/// Aggregates for the public (no token): per kecamatan and per program, counts and amounts
/// since the program began, never a name, NIK, KK or card number; figures about fewer than
/// five people are withheld. Made at most once every [`PUBLIC_SUMMARY_MAX_AGE_SECONDS`]
/// (`generated_at` says when).
#[utoipa::path(get, path = "/public/summary", tag = "reports",
    responses((status = 200, description = "The public summary", body = PublicSummary)))]
pub(crate) async fn public_summary(State(state): State<AdminState>) -> ApiResult<Response> {
    let now = state.now();
    let body = state
        .public_summary
        .get_or_make((), now, PUBLIC_SUMMARY_MAX_AGE_SECONDS, || async {
            let summary = make_public_summary(&state, now).await?;
            Ok(axum::body::Bytes::from(
                serde_json::to_vec(&summary)
                    .map_err(|e| ApiError::internal(format!("public summary: {e}")))?,
            ))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn make_public_summary(state: &AdminState, now: i64) -> ApiResult<PublicSummary> {
    let figures = figures(state, (i64::MIN, now), false).await?;
    let (people, flows, active, _) = figures.totals;
    let mut total = public_row("all", &people, &flows, Some(active));
    if (1..PUBLIC_CELL_MIN).contains(&people.people_determined) {
        let mut rows = [total];
        suppress(&mut rows);
        let [row] = rows;
        total = row;
    }
    let mut programs: Vec<PublicRow> = figures
        .programs
        .iter()
        .map(|(code, (_, people, flows))| public_row(code, people, flows, None))
        .collect();
    suppress(&mut programs);
    let mut kecamatan: Vec<PublicRow> = figures
        .kecamatan
        .iter()
        .map(|(area, (people, flows, active, _))| public_row(area, people, flows, Some(*active)))
        .collect();
    suppress(&mut kecamatan);
    Ok(PublicSummary {
        generated_at: wita_time(now),
        suppression_threshold: PUBLIC_CELL_MIN,
        total,
        programs,
        kecamatan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A making that waits to be let finish: (the caller's task, started, finish).
    fn slow_making(
        made: &Arc<Made<(), u32>>,
        now: i64,
        value: u32,
    ) -> (
        tokio::task::JoinHandle<ApiResult<u32>>,
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let (started, making) = tokio::sync::oneshot::channel::<()>();
        let made = Arc::clone(made);
        let caller = tokio::spawn(async move {
            made.get_or_make((), now, 5, || async move {
                started.send(()).unwrap();
                finished.await.unwrap();
                Ok(value)
            })
            .await
        });
        (caller, making, finish)
    }

    /// Callers who find figures being made get the last ones (when recent enough) instead of
    /// waiting: only the caller who makes waits for the making.
    #[tokio::test]
    async fn only_the_caller_who_makes_waits() {
        let made: Arc<Made<(), u32>> = Arc::default();
        let max_age = 5;
        let never = || async { unreachable!("made by another caller") };
        assert_eq!(
            made.get_or_make((), 0, max_age, || async { Ok(1) })
                .await
                .unwrap(),
            1
        );
        // Within the max age: as made, nothing made.
        assert_eq!(made.get_or_make((), 4, max_age, never).await.unwrap(), 1);
        // Past it, one caller makes, slowly; the others meanwhile get the last.
        let (maker, making, finish) = slow_making(&made, 10, 2);
        making.await.unwrap();
        let meanwhile = made.get_or_make((), 10, max_age, never);
        let meanwhile = tokio::time::timeout(std::time::Duration::from_secs(5), meanwhile);
        assert_eq!(meanwhile.await.expect("not kept waiting").unwrap(), 1);
        finish.send(()).unwrap();
        assert_eq!(maker.await.unwrap().unwrap(), 2);
        assert_eq!(made.get_or_make((), 11, max_age, never).await.unwrap(), 2);
        // The last too old to stand in: a caller waits for the making, and gets what it made.
        let late = 10 + MADE_SERVED_WHILE_MAKING_SECONDS;
        let (maker, making, finish) = slow_making(&made, late, 3);
        making.await.unwrap();
        let waiting = {
            let made = Arc::clone(&made);
            tokio::spawn(async move { made.get_or_make((), late, max_age, never).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        finish.send(()).unwrap();
        assert_eq!(maker.await.unwrap().unwrap(), 3);
        assert_eq!(waiting.await.unwrap().unwrap(), 3);
    }

    fn row(name: &str, people: u64) -> PublicRow {
        PublicRow {
            name: name.into(),
            suppressed: false,
            people_determined: Some(people),
            cards_delivered: Some(people),
            disbursed: Some("1.00".into()),
            spent: Some("1.00".into()),
            unspent: Some("0.00".into()),
            e_warong_active: Some(1),
        }
    }

    #[test]
    fn one_small_row_takes_the_next_smallest_with_it() {
        let mut rows = vec![row("a", 40), row("b", 3), row("c", 7), row("d", 12)];
        suppress(&mut rows);
        let withheld: Vec<&str> = rows
            .iter()
            .filter(|r| r.suppressed)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(withheld, ["b", "c"]);
        assert!(
            rows.iter()
                .filter(|r| r.suppressed)
                .all(|r| r.people_determined.is_none()
                    && r.spent.is_none()
                    && r.e_warong_active.is_some())
        );
    }

    #[test]
    fn two_small_rows_are_enough_and_large_rows_stay() {
        let mut rows = vec![row("a", 4), row("b", 1), row("c", 5)];
        suppress(&mut rows);
        assert_eq!(
            rows.iter().map(|r| r.suppressed).collect::<Vec<_>>(),
            [true, true, false]
        );
    }
}
