//! DTSEN imports and refreshes (Pasal 6(2)): Diskominfo sends the Portal Data SSN's export
//! (DTSEN-based). A NIK the registry does not know becomes a person with a new SSN number; a
//! NIK it knows is brought up to date field by field, each change audited before and after
//! exactly as a correction by `PATCH /beneficiaries/{ssn}` is; a `full` refresh also marks the
//! people the file no longer names (`absent_from_dtsen`) for Dinas Sosial to review, and
//! revokes no one.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use serde::{Deserialize, Serialize};
use ssn_ledger::{
    Beneficiary, BeneficiaryStatus, Day, Kk, Nik, REGISTRY_OPS_PER_APPLY_MAX, RegistryOp,
    RegistryRecord, Role, Sex,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::beneficiaries::{
    UPDATE_ACTION, correction, name_key, ssn_number, status_name, text_field,
};
use crate::error::{ApiError, ApiResult};
use crate::support::{Caller, QueryParams};
use crate::{AdminState, IMPORT_BODY_BYTES_MAX};

/// Most rows in one import (the registry writes an import in as few transactions as its
/// limit allows: one, unless it changes more than `REGISTRY_OPS_PER_APPLY_MAX` records).
pub const IMPORT_ROWS_MAX: usize = 150_000;
/// The columns of the Portal Data SSN's export, in its order.
pub const IMPORT_COLUMNS: [&str; 9] = [
    "nik",
    "kk",
    "name",
    "birth_date",
    "sex",
    "address",
    "kecamatan",
    "kelurahan",
    "desil",
];

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(import_beneficiaries).layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES_MAX)))
}

/// What a file stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// Some of DTSEN (new people, changes): the people it does not name are left as they are.
    #[default]
    Partial,
    /// All of DTSEN for the city: the people it does not name are marked absent for review.
    Full,
}

impl ImportMode {
    fn name(self) -> &'static str {
        match self {
            ImportMode::Partial => "partial",
            ImportMode::Full => "full",
        }
    }
}

/// How the file is read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `partial` (the default): the file is some of DTSEN. `full`: it is all of it, and the
    /// people of earlier imports it does not name are marked `absent_from_dtsen` (listed in
    /// `absent`) for Dinas Sosial to review; no one is revoked.
    #[param(inline)]
    pub mode: Option<ImportMode>,
}

/// A row whose NIK is earlier in the same file: not a second person (Pasal 3b).
#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateRow {
    /// Line of the file (the header is line 1).
    pub row: u64,
    /// The NIK.
    pub nik: String,
    /// The SSN number the NIK has (given by its first row).
    pub existing: String,
}

/// A row of a person the registry knew, whose data differed.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedRow {
    /// Line of the file.
    pub row: u64,
    /// The NIK.
    pub nik: String,
    /// The person's SSN number.
    pub ssn: String,
    /// The fields changed (`name`, `kk`, `birth_date`, `sex`, `address`, `kecamatan`,
    /// `kelurahan`, `desil`, `possible_duplicate`, `absent_from_dtsen`); the audit line of
    /// the change has each before and after.
    pub fields: Vec<String>,
}

/// A row imported or updated but flagged: same name and birth date as another NIK.
#[derive(Debug, Serialize, ToSchema)]
pub struct PossibleDuplicateRow {
    /// Line of the file.
    pub row: u64,
    /// The NIK.
    pub nik: String,
    /// Its SSN number.
    pub ssn: String,
    /// SSN numbers of the people with the same name and birth date.
    pub matches: Vec<String>,
}

/// A row refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    /// Line of the file.
    pub row: u64,
    /// Why.
    pub reason: String,
}

/// A person of an earlier import whom a full refresh does not name.
#[derive(Debug, Serialize, ToSchema)]
pub struct AbsentPerson {
    /// SSN number.
    pub ssn: String,
    /// Lifecycle state.
    pub status: String,
    /// Programs the person is enrolled in.
    pub enrolments: Vec<String>,
}

/// The row-by-row answer of an import. Every data row is exactly one of: new (counted in
/// `imported`), `updated`, `unchanged`, `duplicates` or `rejected`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// `partial` or `full`.
    pub mode: ImportMode,
    /// The batch the new people belong to; null when nobody was new.
    pub batch_id: Option<u64>,
    /// Data rows read.
    pub rows: u64,
    /// New people: NIKs the registry did not know.
    pub imported: u64,
    /// Known people whose data the row changed, with the fields changed.
    pub updated: Vec<UpdatedRow>,
    /// Known people whose data the row repeats.
    pub unchanged: u64,
    /// Rows whose NIK is earlier in the same file.
    pub duplicates: Vec<DuplicateRow>,
    /// New or updated rows flagged for a look.
    pub possible_duplicates: Vec<PossibleDuplicateRow>,
    /// Rows refused, with the reason.
    pub rejected: Vec<RejectedRow>,
    /// Full refresh only: every person of earlier imports the file does not name, now marked
    /// `absent_from_dtsen` (`GET /beneficiaries?absent_from_dtsen=true`); empty for a partial
    /// import.
    pub absent: Vec<AbsentPerson>,
}

/// A row that passed every check.
struct GoodRow {
    line: u64,
    nik: String,
    kk: String,
    name: String,
    birth_date: Day,
    sex: Sex,
    address: String,
    kecamatan: String,
    kelurahan: String,
    desil: u8,
}

impl GoodRow {
    /// The new person this row brings in.
    fn person(&self, ssn: String, batch: u64, possible_duplicate: bool) -> Beneficiary {
        Beneficiary {
            ssn,
            nik: Nik(self.nik.clone()),
            kk: Kk(self.kk.clone()),
            name: self.name.clone(),
            birth_date: self.birth_date,
            sex: self.sex,
            address: self.address.clone(),
            kecamatan: self.kecamatan.clone(),
            kelurahan: self.kelurahan.clone(),
            desil: self.desil,
            status: BeneficiaryStatus::Imported,
            enrolments: Vec::new(),
            possible_duplicate,
            import_batch: batch,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        }
    }

    /// `current` with this row's data on `day`: what DTSEN says of the person now.
    fn applied_to(&self, current: &Beneficiary, day: Day) -> Beneficiary {
        let mut next = Beneficiary {
            kk: Kk(self.kk.clone()),
            name: self.name.clone(),
            birth_date: self.birth_date,
            sex: self.sex,
            address: self.address.clone(),
            kelurahan: self.kelurahan.clone(),
            desil: self.desil,
            absent_from_dtsen: false,
            ..current.clone()
        };
        next.move_to(self.kecamatan.clone(), day);
        next
    }
}

fn check_row(line: u64, fields: &HashMap<&str, &str>, today: Day) -> Result<GoodRow, String> {
    let get = |name: &str| fields.get(name).copied().unwrap_or("").trim();
    let nik = get("nik").to_string();
    let kk = get("kk").to_string();
    if kk.len() != 16 || !kk.bytes().all(|b| b.is_ascii_digit()) {
        return Err("kk is 16 digits".into());
    }
    let birth_date = Day::parse_iso(get("birth_date"))
        .ok_or_else(|| "birth_date is a date, YYYY-MM-DD".to_string())?;
    if birth_date > today {
        return Err("birth_date is in the future".into());
    }
    let sex = match get("sex").to_ascii_uppercase().as_str() {
        "L" | "M" | "LAKI-LAKI" | "MALE" => Sex::Male,
        "P" | "F" | "PEREMPUAN" | "FEMALE" => Sex::Female,
        _ => return Err("sex is L (laki-laki) or P (perempuan)".into()),
    };
    crate::nik::check_against(&nik, birth_date, sex).map_err(str::to_string)?;
    let desil: u8 = get("desil")
        .parse()
        .ok()
        .filter(|d| (1..=10).contains(d))
        .ok_or_else(|| "desil is a welfare decile, 1 to 10".to_string())?;
    Ok(GoodRow {
        line,
        nik,
        kk,
        name: text_field(get("name"), "name", 100)?,
        birth_date,
        sex,
        address: text_field(get("address"), "address", 200)?,
        kecamatan: text_field(get("kecamatan"), "kecamatan", 64)?,
        kelurahan: text_field(get("kelurahan"), "kelurahan", 64)?,
        desil,
    })
}

/// Imports people from the Portal Data SSN's CSV export, or refreshes them: a new NIK is a new
/// person, a known NIK's changed fields are updated (each change audited before and after), a
/// NIK earlier in the file is a duplicate. Re-importing the same file changes nothing: every
/// row is then unchanged. `mode=full` also marks the people the file does not name as absent
/// from DTSEN, for review; it revokes no one.
#[utoipa::path(post, path = "/beneficiaries/import", tag = "beneficiaries", params(ImportQuery),
    request_body(content = String, content_type = "text/csv",
        description = "Header `nik,kk,name,birth_date,sex,address,kecamatan,kelurahan,desil`, one person per line"),
    responses((status = 200, description = "The row-by-row answer", body = ImportReport),
        (status = 413, description = "Body larger than 64 MiB")))]
pub(crate) async fn import_beneficiaries(
    State(state): State<AdminState>,
    caller: Caller,
    query: Result<QueryParams<ImportQuery>, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ImportReport>> {
    // The role first: a 403 never depends on what was sent.
    caller.require(&[Role::Diskominfo])?;
    let QueryParams(query) = query?;
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        code: "malformed",
        message: rejection.body_text(),
        detail: None,
    })?;
    let mode = query.mode.unwrap_or_default();
    let report = import(&state, &caller, &body, mode).await;
    match report {
        Ok(report) => Ok(Json(report)),
        Err(error) => {
            state
                .audit_failure(&caller, "beneficiaries.import", "csv", &error)
                .await;
            Err(error)
        }
    }
}

/// The rows of the file that passed every check, the rows refused, every NIK the file names
/// (refused rows included: a person whose row was refused is not absent) and the number of
/// data rows.
struct ReadFile {
    good: Vec<GoodRow>,
    rejected: Vec<RejectedRow>,
    named: HashSet<String>,
    rows: u64,
}

fn read_file(body: &[u8], today: Day) -> ApiResult<ReadFile> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::malformed(format!("the header line cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    let missing: Vec<&str> = IMPORT_COLUMNS
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::malformed(format!(
            "the header lacks column(s) {}; expected {}",
            missing.join(", "),
            IMPORT_COLUMNS.join(",")
        )));
    }
    let nik_column = headers.iter().position(|h| h == "nik");
    let mut file = ReadFile {
        good: Vec::new(),
        rejected: Vec::new(),
        named: HashSet::new(),
        rows: 0,
    };
    for record in reader.records() {
        file.rows += 1;
        if file.rows as usize > IMPORT_ROWS_MAX {
            return Err(ApiError::malformed(format!(
                "an import holds at most {IMPORT_ROWS_MAX} rows; split the file"
            )));
        }
        let record = match record {
            Err(e) => {
                let line = e.position().map_or(file.rows + 1, |p| p.line());
                file.rejected.push(RejectedRow {
                    row: line,
                    reason: format!("the line cannot be read as CSV text: {e}"),
                });
                continue;
            }
            Ok(record) => record,
        };
        let line = record.position().map_or(file.rows + 1, |p| p.line());
        if let Some(nik) = nik_column.and_then(|i| record.get(i)) {
            file.named.insert(nik.trim().to_string());
        }
        if record.len() != headers.len() {
            file.rejected.push(RejectedRow {
                row: line,
                reason: format!(
                    "{} fields where the header has {}",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        let fields: HashMap<&str, &str> = headers
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .collect();
        match check_row(line, &fields, today) {
            Ok(row) => file.good.push(row),
            Err(reason) => file.rejected.push(RejectedRow { row: line, reason }),
        }
    }
    Ok(file)
}

/// People by (name, birth date), as SSN numbers: who a row may be a duplicate of.
#[derive(Default)]
struct NameIndex(HashMap<(String, Day), Vec<String>>);

impl NameIndex {
    fn add(&mut self, key: (String, Day), ssn: &str) {
        self.0.entry(key).or_default().push(ssn.to_string());
    }

    fn remove(&mut self, key: &(String, Day), ssn: &str) {
        if let Some(people) = self.0.get_mut(key) {
            people.retain(|s| s != ssn);
        }
    }

    /// Everyone under `key` but `ssn`.
    fn others(&self, key: &(String, Day), ssn: &str) -> Vec<String> {
        self.0
            .get(key)
            .map(|people| people.iter().filter(|s| *s != ssn).cloned().collect())
            .unwrap_or_default()
    }
}

/// One change of the registry with its audit line: they go in the same transaction.
type Change = Vec<RegistryOp>;

/// `current` made `next` with its audit line (the same as a correction's), or nothing when
/// no field differs; the fields changed.
fn update(
    caller: &Caller,
    now: i64,
    current: &Beneficiary,
    next: Beneficiary,
) -> Option<(Vec<String>, Change)> {
    let correction = correction(current, &next)?;
    let ops = vec![
        RegistryOp::Replace {
            expected: RegistryRecord::Beneficiary(current.clone()),
            new: RegistryRecord::Beneficiary(next),
        },
        RegistryOp::Audit(caller.audit(now, UPDATE_ACTION, &correction.target, "ok")),
    ];
    Some((correction.fields, ops))
}

async fn import(
    state: &AdminState,
    caller: &Caller,
    body: &[u8],
    mode: ImportMode,
) -> ApiResult<ImportReport> {
    let now = state.now();
    let ReadFile {
        good,
        rejected,
        named,
        rows,
    } = read_file(body, Day::wita_of_unix_seconds(now))?;
    if mode == ImportMode::Full && rows == 0 {
        // Everyone would be absent: far likelier a wrong file than a city without poor.
        return Err(ApiError::refused(
            "a full refresh names the city's people; this file has no rows, which would mark \
             everyone absent: send the whole DTSEN export, or use mode=partial",
        ));
    }

    // Who is already there: by NIK, and by name and birth date.
    let existing = state.ledger.registry().beneficiaries().await?;
    let mut by_name = NameIndex::default();
    for b in &existing {
        by_name.add(name_key(&b.name, b.birth_date), &b.ssn);
    }
    let by_nik: HashMap<String, Beneficiary> = existing
        .into_iter()
        .map(|b| (b.nik.expose().to_string(), b))
        .collect();

    // Each row is new, known or a repeat of a NIK earlier in the file.
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut known = Vec::new();
    let mut fresh = Vec::new();
    for row in good {
        if let Some(ssn) = seen.get(&row.nik) {
            duplicates.push(DuplicateRow {
                row: row.line,
                nik: row.nik.clone(),
                // Filled in below for NIKs new in this file, once their SSNs are known.
                existing: ssn.clone().unwrap_or_default(),
            });
        } else if let Some(current) = by_nik.get(&row.nik) {
            seen.insert(row.nik.clone(), Some(current.ssn.clone()));
            known.push((row, current));
        } else {
            seen.insert(row.nik.clone(), None);
            fresh.push(row);
        }
    }

    let mut changes: Vec<Change> = Vec::new();
    let mut possible_duplicates = Vec::new();
    let mut updated = Vec::new();
    let mut unchanged = 0u64;
    for (row, current) in known {
        let mut next = row.applied_to(current, Day::wita_of_unix_seconds(now));
        let (old_key, new_key) = (
            name_key(&current.name, current.birth_date),
            name_key(&next.name, next.birth_date),
        );
        if old_key != new_key {
            // A new name or birth date may now be someone else's (Pasal 3b).
            by_name.remove(&old_key, &current.ssn);
            let matches = by_name.others(&new_key, &current.ssn);
            by_name.add(new_key, &current.ssn);
            if !matches.is_empty() {
                next.possible_duplicate = true;
                possible_duplicates.push(PossibleDuplicateRow {
                    row: row.line,
                    nik: row.nik.clone(),
                    ssn: current.ssn.clone(),
                    matches,
                });
            }
        }
        match update(caller, now, current, next) {
            None => unchanged += 1,
            Some((fields, change)) => {
                updated.push(UpdatedRow {
                    row: row.line,
                    nik: row.nik,
                    ssn: current.ssn.clone(),
                    fields,
                });
                changes.push(change);
            }
        }
    }

    let absent = if mode == ImportMode::Full {
        let (marks, absent) = absent_people(caller, now, &by_nik, &named);
        changes.extend(marks);
        absent
    } else {
        Vec::new()
    };

    let count = fresh.len() as u64;
    let (batch_id, first) = if count == 0 {
        (None, 0)
    } else {
        let registry = state.ledger.registry();
        let batch = registry.next_number("import_batch").await?;
        (Some(batch), registry.next_numbers("ssn", count).await?)
    };
    let ssn_of_nik: HashMap<&str, String> = fresh
        .iter()
        .enumerate()
        .map(|(i, row)| (row.nik.as_str(), ssn_number(first + i as u64)))
        .collect();
    for duplicate in &mut duplicates {
        if duplicate.existing.is_empty() {
            duplicate.existing = ssn_of_nik
                .get(duplicate.nik.as_str())
                .cloned()
                .unwrap_or_default();
        }
    }
    for row in &fresh {
        let ssn = ssn_of_nik
            .get(row.nik.as_str())
            .cloned()
            .unwrap_or_default();
        let key = name_key(&row.name, row.birth_date);
        let matches = by_name.others(&key, &ssn);
        let flagged = !matches.is_empty();
        if flagged {
            possible_duplicates.push(PossibleDuplicateRow {
                row: row.line,
                nik: row.nik.clone(),
                ssn: ssn.clone(),
                matches,
            });
        }
        by_name.add(key, &ssn);
        changes.push(vec![RegistryOp::Insert(RegistryRecord::Beneficiary(
            row.person(ssn, batch_id.unwrap_or(0), flagged),
        ))]);
    }
    possible_duplicates.sort_by_key(|p| p.row);

    let report = ImportReport {
        mode,
        batch_id,
        rows,
        imported: count,
        updated,
        unchanged,
        duplicates,
        possible_duplicates,
        rejected,
        absent,
    };
    let line = import_line(caller, now, &report);
    write(state, changes, line).await?;
    Ok(report)
}

/// A full refresh: the people of `by_nik` (the registry, by NIK) whose NIK the file does not
/// name, each with the change that marks them absent unless they already are.
fn absent_people(
    caller: &Caller,
    now: i64,
    by_nik: &HashMap<String, Beneficiary>,
    named: &HashSet<String>,
) -> (Vec<Change>, Vec<AbsentPerson>) {
    let mut missing: Vec<&Beneficiary> = by_nik
        .iter()
        .filter(|(nik, _)| !named.contains(nik.as_str()))
        .map(|(_, b)| b)
        .collect();
    missing.sort_by(|a, b| a.ssn.cmp(&b.ssn));
    let mut changes = Vec::new();
    let mut absent = Vec::with_capacity(missing.len());
    for person in missing {
        let next = Beneficiary {
            absent_from_dtsen: true,
            ..person.clone()
        };
        if let Some((_, change)) = update(caller, now, person, next) {
            changes.push(change);
        }
        absent.push(AbsentPerson {
            ssn: person.ssn.clone(),
            status: status_name(person.status).into(),
            enrolments: person
                .enrolments
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
        });
    }
    (changes, absent)
}

/// The import's own audit line: how many rows had each outcome (the semester report reads
/// its duplicates and rejected rows back, `report::import_counts`).
fn import_line(caller: &Caller, now: i64, report: &ImportReport) -> RegistryOp {
    let mut summary = format!(
        "ok: {} rows, {} imported, {} updated, {} unchanged, {} duplicates, {} possible \
         duplicates, {} rejected",
        report.rows,
        report.imported,
        report.updated.len(),
        report.unchanged,
        report.duplicates.len(),
        report.possible_duplicates.len(),
        report.rejected.len()
    );
    if report.mode == ImportMode::Full {
        summary.push_str(&format!(", {} absent", report.absent.len()));
    }
    let target = match report.batch_id {
        Some(batch) => format!("{} import batch {batch}", report.mode.name()),
        None => format!("{} import (nothing new)", report.mode.name()),
    };
    RegistryOp::Audit(caller.audit(now, "beneficiaries.import", &target, &summary))
}

/// Writes the changes, each whole with its audit line, in as few registry transactions as the
/// registry's limit allows (one for any file with fewer than about 100,000 changed people),
/// the import's own audit line with the last. A conflict part-way leaves the earlier
/// transactions written: sending the file again finishes it (what was written is unchanged).
async fn write(state: &AdminState, changes: Vec<Change>, line: RegistryOp) -> ApiResult<()> {
    let mut transactions: Vec<Vec<RegistryOp>> = vec![Vec::new()];
    for change in changes {
        let last = transactions.last_mut().expect("one transaction at least");
        // Room for the import's audit line in the last transaction.
        if last.len() + change.len() >= REGISTRY_OPS_PER_APPLY_MAX {
            transactions.push(Vec::new());
        }
        transactions
            .last_mut()
            .expect("one transaction at least")
            .extend(change);
    }
    transactions
        .last_mut()
        .expect("one transaction at least")
        .push(line);
    let parts = transactions.len();
    for (written, ops) in transactions.into_iter().enumerate() {
        state
            .ledger
            .registry()
            .apply(ops)
            .await
            .map_err(|e| match e {
                ssn_ledger::RegistryError::Conflict(m) => ApiError::conflict(format!(
                    "another change to the registry met this import ({m}) after {written} of \
                     its {parts} parts were written; send the file again"
                )),
                other => ApiError::from(other),
            })?;
    }
    Ok(())
}
