//! Registry records. Field names follow `shared/spec/admin-api.md`. Personal data (NIK, KK) and
//! card data (PAN, PVV) have `Debug` impls that mask them, so they cannot reach a log by way of
//! `{:?}` on a record.

use crate::day::Day;
use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! masked {
    ($(#[$doc:meta])* $name:ident, $shown:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct $name(pub String);

        impl $name {
            /// The value in full, for the few places that must have it.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Masked for display: the first six and last four characters (PAN style) or only
            /// the last four; values shorter than 12 characters entirely.
            pub fn masked(&self) -> String {
                let len = self.0.len();
                let keep_front = if $shown { 6.min(len.saturating_sub(4)) } else { 0 };
                // Short values (a PVV) are masked whole: their last four are all of them.
                let keep_back = if len >= 12 { 4 } else { 0 };
                let mut out = String::with_capacity(len);
                out.push_str(&self.0[..keep_front]);
                out.extend(std::iter::repeat_n('*', len - keep_front - keep_back));
                out.push_str(&self.0[len - keep_back..]);
                out
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.masked())
            }
        }
    };
}

masked!(
    /// A card number. Shown as `604872******1234`.
    Pan, true
);
masked!(
    /// A national identity number (16 digits), protected personal data.
    Nik, false
);
masked!(
    /// A family card number (16 digits), protected personal data.
    Kk, false
);

/// A program (admin API `POST /programs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// Code, e.g. `SSN2025`.
    pub code: ProgramCode,
    /// Display name.
    pub name: String,
    /// Budget year.
    pub budget_year: u16,
    /// Credited per card per disbursement period.
    pub benefit_amount: Money,
    /// Commodity category codes (`01`..`99`) purchases may contain.
    pub allowed_categories: Vec<String>,
    /// Whether a 0200 without a basket is declined `57`.
    pub basket_required: bool,
    /// Largest single purchase.
    pub purchase_amount_max: Money,
    /// Most approved purchases per card per WITA day.
    pub purchases_per_day_max: u32,
    /// Last WITA day a pocket of this program may be spent.
    pub pocket_expires_at: Day,
    /// Whom the benefit goes to: every person, or one per family (KK).
    pub beneficiary_unit: BeneficiaryUnit,
    /// Highest DTSEN welfare decile a person may have to be determined (Pasal 3c); `None`
    /// for no limit.
    pub desil_max: Option<u8>,
}

/// Whom a program's benefit goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BeneficiaryUnit {
    /// Every person determined (the default).
    #[default]
    Person,
    /// One person per family card (KK): the 2025 round paid families.
    Family,
}

/// [`Program`] as stored before it had `beneficiary_unit` and `desil_max`.
#[derive(Deserialize)]
struct ProgramV1 {
    code: ProgramCode,
    name: String,
    budget_year: u16,
    benefit_amount: Money,
    allowed_categories: Vec<String>,
    basket_required: bool,
    purchase_amount_max: Money,
    purchases_per_day_max: u32,
    pocket_expires_at: Day,
}

impl From<ProgramV1> for Program {
    fn from(old: ProgramV1) -> Program {
        Program {
            code: old.code,
            name: old.name,
            budget_year: old.budget_year,
            benefit_amount: old.benefit_amount,
            allowed_categories: old.allowed_categories,
            basket_required: old.basket_required,
            purchase_amount_max: old.purchase_amount_max,
            purchases_per_day_max: old.purchases_per_day_max,
            pocket_expires_at: old.pocket_expires_at,
            beneficiary_unit: BeneficiaryUnit::Person,
            desil_max: None,
        }
    }
}

/// How a registry record is read back from its stored bytes (postcard, which has no field
/// names): a record whose layout grew also reads its older layouts, so a registry written
/// before keeps working without a migration.
pub trait Stored: Sized {
    /// The record, or `None` when the bytes are none of its layouts.
    fn from_stored(bytes: &[u8]) -> Option<Self>;
}

macro_rules! stored_as_is {
    ($($record:ty),* $(,)?) => {
        $(impl Stored for $record {
            fn from_stored(bytes: &[u8]) -> Option<Self> {
                postcard::from_bytes(bytes).ok()
            }
        })*
    };
}

stored_as_is!(Determination, HostKeys, AuditEntry,);

/// `bytes` as a `T` in its current layout, or else in its older layout `Old`, converted.
pub(super) fn current_or_older<T, Old>(bytes: &[u8], from_old: impl FnOnce(Old) -> T) -> Option<T>
where
    T: serde::de::DeserializeOwned,
    Old: serde::de::DeserializeOwned,
{
    postcard::from_bytes(bytes)
        .ok()
        .or_else(|| postcard::from_bytes::<Old>(bytes).ok().map(from_old))
}

impl Stored for ApiToken {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: ApiTokenV1| ApiToken {
            name: old.name,
            role: old.role,
            token_hash: old.token_hash,
            expires_at: None,
        })
    }
}

impl Stored for Beneficiary {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: BeneficiaryV1| Beneficiary::from(old))
    }
}

impl Stored for Program {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: ProgramV1| Program::from(old))
    }
}

/// Commodity categories `90`-`99` are not food (host interface §4: cigarettes, phone credit):
/// no program may allow them (Pasal 3: food and staples only).
pub fn is_non_food_category(category: &str) -> bool {
    category.starts_with('9') && category.len() == 2
}

impl Program {
    /// True when every category of the basket is allowed (true for no basket categories).
    pub fn allows<'a>(&self, mut categories: impl Iterator<Item = &'a str>) -> bool {
        categories.all(|c| self.allowed_categories.iter().any(|allowed| allowed == c))
    }
}

/// Lifecycle of a beneficiary (Pasal 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BeneficiaryStatus {
    /// Imported from the Portal Data SSN.
    Imported,
    /// Verified by Dinsos.
    Verified,
    /// Validated by Dinsos.
    Validated,
    /// Determined by a mayor's decree: enrolled in at least one program.
    Determined,
    /// Refused at some step.
    Rejected,
    /// Every determination revoked.
    Revoked,
}

impl BeneficiaryStatus {
    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn may_become(self, next: BeneficiaryStatus) -> bool {
        use BeneficiaryStatus::*;
        matches!(
            (self, next),
            (Imported, Verified)
                | (Verified, Validated)
                | (Validated, Determined)
                | (Determined, Determined)
                | (Determined, Revoked)
                | (Imported | Verified | Validated, Rejected)
        )
    }
}

/// Sex as recorded in the population registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Laki-laki.
    Male,
    /// Perempuan.
    Female,
}

/// A beneficiary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beneficiary {
    /// Stable SSN number given at import.
    pub ssn: String,
    /// NIK, unique.
    pub nik: Nik,
    /// Family card number.
    pub kk: Kk,
    /// Name.
    pub name: String,
    /// Birth date.
    pub birth_date: Day,
    /// Sex.
    pub sex: Sex,
    /// Address.
    pub address: String,
    /// Kecamatan.
    pub kecamatan: String,
    /// Kelurahan.
    pub kelurahan: String,
    /// DTSEN welfare decile (1 = poorest).
    pub desil: u8,
    /// Lifecycle state.
    pub status: BeneficiaryStatus,
    /// Programs the beneficiary is enrolled in by determination.
    pub enrolments: Vec<ProgramCode>,
    /// Same name and birth date as another NIK at import.
    pub possible_duplicate: bool,
    /// The import batch that brought the beneficiary in.
    pub import_batch: u64,
    /// Absent from the latest full DTSEN refresh (Pasal 6(2)): for Dinas Sosial to review,
    /// never a revocation by itself; cleared when a later import names the NIK again.
    pub absent_from_dtsen: bool,
    /// Every enrolment this person has had, with the WITA days it began and ended, kept after
    /// it ends: what a report as of a past day counts. Enrolments made before the registry
    /// recorded dates are not in it (`enrolments` still holds them).
    pub enrolment_history: Vec<EnrolmentSpan>,
    /// The kecamatan the person lived in before each move the registry recorded, oldest
    /// first: where a report as of a past day counts them.
    pub past_kecamatan: Vec<PastKecamatan>,
}

/// Where a person lived until a move the registry recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastKecamatan {
    /// The kecamatan.
    pub kecamatan: String,
    /// The WITA day the move to the next one was recorded (from its end the person lives
    /// there).
    pub moved_on: Day,
}

/// One enrolment of a person in a program, by the days the registry recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentSpan {
    /// The program.
    pub program_code: ProgramCode,
    /// The WITA day the decree enrolling the person was recorded.
    pub from: Day,
    /// The WITA day the enrolment ended (its revocation was recorded); `None` while it lasts.
    pub until: Option<Day>,
}

impl EnrolmentSpan {
    /// Whether the person was enrolled at the end of `day`.
    pub fn holds_on(&self, day: Day) -> bool {
        self.from <= day && self.until.is_none_or(|until| until > day)
    }
}

impl Beneficiary {
    /// Moves the person to `kecamatan` on `day`, keeping where they lived before.
    pub fn move_to(&mut self, kecamatan: String, day: Day) {
        if kecamatan != self.kecamatan {
            let before = std::mem::replace(&mut self.kecamatan, kecamatan);
            self.past_kecamatan.push(PastKecamatan {
                kecamatan: before,
                moved_on: day,
            });
        }
    }

    /// The kecamatan the person lived in at the end of `day`, as far as the registry recorded
    /// moves.
    pub fn kecamatan_on(&self, day: Day) -> &str {
        self.past_kecamatan
            .iter()
            .find(|past| past.moved_on > day)
            .map_or(self.kecamatan.as_str(), |past| past.kecamatan.as_str())
    }

    /// Records an enrolment in `program` beginning on `day`.
    pub fn enrol(&mut self, program: &ProgramCode, day: Day) {
        self.enrolments.push(program.clone());
        self.enrolment_history.push(EnrolmentSpan {
            program_code: program.clone(),
            from: day,
            until: None,
        });
    }

    /// Ends the enrolment in `program` on `day` (a revocation); true when there was one.
    pub fn end_enrolment(&mut self, program: &ProgramCode, day: Day) -> bool {
        let before = self.enrolments.len();
        self.enrolments.retain(|p| p != program);
        for span in &mut self.enrolment_history {
            if span.program_code == *program && span.until.is_none() {
                span.until = Some(day);
            }
        }
        self.enrolments.len() != before
    }

    /// The programs the person was enrolled in at the end of `day`, as far as the registry
    /// recorded dates; enrolments older than the dates count as they are now.
    pub fn enrolments_on(&self, day: Day) -> Vec<ProgramCode> {
        let mut programs: Vec<ProgramCode> = self
            .enrolment_history
            .iter()
            .filter(|span| span.holds_on(day))
            .map(|span| span.program_code.clone())
            .collect();
        for program in &self.enrolments {
            let dated = self
                .enrolment_history
                .iter()
                .any(|span| span.program_code == *program && span.until.is_none());
            if !dated && !programs.contains(program) {
                programs.push(program.clone());
            }
        }
        programs
    }
}

/// [`Beneficiary`] as stored before it had `absent_from_dtsen`, `enrolment_history` and
/// `past_kecamatan`.
#[derive(Deserialize)]
struct BeneficiaryV1 {
    ssn: String,
    nik: Nik,
    kk: Kk,
    name: String,
    birth_date: Day,
    sex: Sex,
    address: String,
    kecamatan: String,
    kelurahan: String,
    desil: u8,
    status: BeneficiaryStatus,
    enrolments: Vec<ProgramCode>,
    possible_duplicate: bool,
    import_batch: u64,
}

impl From<BeneficiaryV1> for Beneficiary {
    fn from(old: BeneficiaryV1) -> Beneficiary {
        Beneficiary {
            ssn: old.ssn,
            nik: old.nik,
            kk: old.kk,
            name: old.name,
            birth_date: old.birth_date,
            sex: old.sex,
            address: old.address,
            kecamatan: old.kecamatan,
            kelurahan: old.kelurahan,
            desil: old.desil,
            status: old.status,
            enrolments: old.enrolments,
            possible_duplicate: old.possible_duplicate,
            import_batch: old.import_batch,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        }
    }
}

/// A mayor's decree enrolling beneficiaries in a program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determination {
    /// Id.
    pub id: u64,
    /// Decree number.
    pub decree_number: String,
    /// Decree date.
    pub decree_date: Day,
    /// Program.
    pub program_code: ProgramCode,
    /// SSN numbers enrolled.
    pub ssns: Vec<String>,
    /// Whether revoked.
    pub revoked: bool,
}

/// A card's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardStatus {
    /// Issued, not yet delivered (`62`).
    Issued,
    /// Delivered and usable.
    Active,
    /// Blocked by an operator (`62`).
    Blocked,
    /// Reported lost (`41`).
    Lost,
    /// Reported stolen (`43`).
    Stolen,
    /// Reported damaged (`62`).
    Damaged,
    /// Replaced by a new card (`62`).
    Replaced,
}

/// Wrong PINs in a row that lock the PIN (the third answers `75`).
pub const WRONG_PIN_COUNT_MAX: u8 = 3;

/// A card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Internal id.
    pub card_id: CardId,
    /// The beneficiary's SSN number.
    pub ssn: String,
    /// PAN, unique.
    pub pan: Pan,
    /// `YYMM`, as in DE14.
    pub expiry: String,
    /// Status.
    pub status: CardStatus,
    /// PIN verification value (Visa PVV, 4 digits): not a secret on its own, masked anyway.
    pub pvv: Pvv,
    /// Wrong PINs in a row.
    pub wrong_pin_count: u8,
    /// The card that replaced this one.
    pub replaced_by: Option<CardId>,
    /// The WITA day it was issued; `None` for cards issued before the registry recorded it.
    pub issued_on: Option<Day>,
    /// The WITA day it was delivered (`issued` → `active`); `None` until then, and for cards
    /// delivered before the registry recorded it.
    pub delivered_on: Option<Day>,
    /// Its status changes, PIN locks and unlocks and replacement with the WITA days they were
    /// recorded, oldest first (the latest [`super::CARD_CHANGES_MAX`]): what a report as of
    /// a past day reads. Empty for cards whose changes were made before the registry kept them.
    pub changes: Vec<super::CardChange>,
}

/// [`Card`] as stored before it had `issued_on` and `delivered_on`.
#[derive(Deserialize)]
struct CardV1 {
    card_id: CardId,
    ssn: String,
    pan: Pan,
    expiry: String,
    status: CardStatus,
    pvv: Pvv,
    wrong_pin_count: u8,
    replaced_by: Option<CardId>,
}

impl Stored for Card {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: super::dated::CardV2| Card::from(old))
            .or_else(|| card_v1(bytes))
    }
}

/// A card in its first layout: no days recorded.
fn card_v1(bytes: &[u8]) -> Option<Card> {
    postcard::from_bytes::<CardV1>(bytes).ok().map(|old| Card {
        card_id: old.card_id,
        ssn: old.ssn,
        pan: old.pan,
        expiry: old.expiry,
        status: old.status,
        pvv: old.pvv,
        wrong_pin_count: old.wrong_pin_count,
        replaced_by: old.replaced_by,
        issued_on: None,
        delivered_on: None,
        changes: Vec::new(),
    })
}

impl Card {
    /// Whether the PIN is locked.
    pub fn pin_locked(&self) -> bool {
        self.wrong_pin_count >= WRONG_PIN_COUNT_MAX
    }
}

masked!(
    /// A PIN verification value.
    Pvv, false
);

/// Kinds of E-Warong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerchantKind {
    /// Usaha mikro.
    Mikro,
    /// Usaha kecil.
    Kecil,
    /// Koperasi.
    Koperasi,
    /// Kelompok usaha bersama.
    Kube,
}

/// An E-Warong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    /// DE42.
    pub merchant_id: MerchantId,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: MerchantKind,
    /// Kecamatan.
    pub kecamatan: String,
    /// Kelurahan.
    pub kelurahan: String,
    /// Bank account settlements are paid to.
    pub settlement_account: String,
    /// False when suspended.
    pub active: bool,
    /// The WITA day it was appointed; `None` for E-Warong appointed before the registry
    /// recorded it.
    pub appointed_on: Option<Day>,
    /// Its suspensions and activations with their WITA days, oldest first (the latest
    /// [`super::MERCHANT_CHANGES_MAX`]): what a report as of a past day reads.
    pub changes: Vec<super::MerchantChange>,
}

/// Key material encrypted under the switch's local master key. The ledger stores the bytes and
/// never decrypts them: the cryptography is the switch's concern.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedKey {
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
    /// Key check value (6 hex chars) of the clear key: public by design.
    pub kcv: String,
}

impl fmt::Debug for EncryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedKey(kcv {})", self.kcv)
    }
}

/// An EDC terminal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminal {
    /// DE41.
    pub terminal_id: TerminalId,
    /// The E-Warong it belongs to.
    pub merchant_id: MerchantId,
    /// Terminal master key, encrypted.
    pub tmk: EncryptedKey,
    /// Terminal PIN key, encrypted.
    pub tpk: EncryptedKey,
    /// False when suspended.
    pub active: bool,
    /// Terminal authentication key, encrypted, for a terminal that MACs its messages (host
    /// interface §10); `None` for one that does not, and for terminals stored before MACs.
    pub tak: Option<EncryptedKey>,
}

/// [`Terminal`] as stored before it had `tak`.
#[derive(Deserialize)]
struct TerminalV1 {
    terminal_id: TerminalId,
    merchant_id: MerchantId,
    tmk: EncryptedKey,
    tpk: EncryptedKey,
    active: bool,
}

impl Stored for Terminal {
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        current_or_older(bytes, |old: TerminalV1| Terminal {
            terminal_id: old.terminal_id,
            merchant_id: old.merchant_id,
            tmk: old.tmk,
            tpk: old.tpk,
            active: old.active,
            tak: None,
        })
    }
}

/// API roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// System operators.
    Admin,
    /// Dinas Komunikasi dan Informatika.
    Diskominfo,
    /// Dinas Sosial.
    Dinsos,
    /// The Mayor's office.
    Walikota,
    /// Bank Penyalur.
    Bank,
    /// Inspectorate.
    Auditor,
}

/// The keys every switch node on this registry shares, recorded when the registry gets its
/// first: the master key's check value (never the key), so a node started with another master
/// key refuses to start instead of failing every PIN, and the issuer PVK wrapped under it, so
/// no node needs it in its data directory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeys {
    /// The master key's check value (6 hex digits).
    pub master_key_check: String,
    /// The issuer PVK, wrapped under the master key.
    pub pvk: EncryptedKey,
}

impl fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKeys")
            .field("master_key_check", &self.master_key_check)
            .field("pvk", &self.pvk)
            .finish()
    }
}

/// The key of the one [`HostKeys`] record.
pub const HOST_KEYS_KEY: &str = "host";

/// An API token. Only the SHA-256 of the secret is kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret.
    pub token_hash: [u8; 32],
    /// When it stops being accepted (UTC seconds); `None`: never.
    pub expires_at: Option<i64>,
}

/// [`ApiToken`] as stored before it had `expires_at`.
#[derive(Deserialize)]
struct ApiTokenV1 {
    name: String,
    role: Role,
    token_hash: [u8; 32],
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UTC seconds.
    pub at_unix_seconds: i64,
    /// Token name.
    pub token_name: String,
    /// Token role.
    pub role: Role,
    /// What was done (`cards.issue`, ...).
    pub action: String,
    /// To what.
    pub target: String,
    /// `ok` or the error code.
    pub outcome: String,
}

/// Any registry record, for [`super::RegistryOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryRecord {
    /// The host's keys (one record per registry).
    HostKeys(HostKeys),
    /// A program.
    Program(Program),
    /// A beneficiary.
    Beneficiary(Beneficiary),
    /// A determination.
    Determination(Determination),
    /// A card.
    Card(Card),
    /// A merchant.
    Merchant(Merchant),
    /// A terminal.
    Terminal(Terminal),
    /// A token.
    Token(ApiToken),
    /// An alert of the misuse monitor. (Last, so intents written before it still decode.)
    Alert(super::AlertRecord),
}

impl RegistryRecord {
    /// Whether `bytes`, as stored, hold this record in its current layout or an older one:
    /// what a `Replace` compares with what it expects, so a record stored before its layout
    /// grew can still be replaced (its bytes differ from the record's new encoding).
    pub fn is_stored_as(&self, bytes: &[u8]) -> bool {
        fn same<T: Stored + PartialEq>(record: &T, bytes: &[u8]) -> bool {
            T::from_stored(bytes).as_ref() == Some(record)
        }
        match self {
            RegistryRecord::HostKeys(k) => same(k, bytes),
            RegistryRecord::Program(p) => same(p, bytes),
            RegistryRecord::Beneficiary(b) => same(b, bytes),
            RegistryRecord::Determination(d) => same(d, bytes),
            RegistryRecord::Card(c) => same(c, bytes),
            RegistryRecord::Merchant(m) => same(m, bytes),
            RegistryRecord::Terminal(t) => same(t, bytes),
            RegistryRecord::Token(t) => same(t, bytes),
            RegistryRecord::Alert(a) => same(a, bytes),
        }
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    /// A program stored before `beneficiary_unit` and `desil_max` existed still reads, as a
    /// per-person program without a decile limit; one stored now reads back as it was.
    #[test]
    fn a_program_reads_in_its_old_layout_and_its_new() {
        let new = Program {
            code: ProgramCode::new("SEMBAKO").unwrap(),
            name: "Sembako".into(),
            budget_year: 2026,
            benefit_amount: Money::from_minor(20_000_000),
            allowed_categories: vec!["01".into()],
            basket_required: true,
            purchase_amount_max: Money::from_minor(20_000_000),
            purchases_per_day_max: 3,
            pocket_expires_at: Day::parse_iso("2026-12-31").unwrap(),
            beneficiary_unit: BeneficiaryUnit::Family,
            desil_max: Some(4),
        };
        let stored = postcard::to_stdvec(&new).unwrap();
        assert_eq!(Program::from_stored(&stored), Some(new.clone()));
        // The old layout is the same fields without the last two.
        let old = postcard::to_stdvec(&(
            &new.code,
            &new.name,
            new.budget_year,
            new.benefit_amount,
            &new.allowed_categories,
            new.basket_required,
            new.purchase_amount_max,
            new.purchases_per_day_max,
            new.pocket_expires_at,
        ))
        .unwrap();
        assert_eq!(
            Program::from_stored(&old),
            Some(Program {
                beneficiary_unit: BeneficiaryUnit::Person,
                desil_max: None,
                ..new
            })
        );
        assert_eq!(Program::from_stored(&old[..old.len() - 1]), None);
    }

    /// A beneficiary and a card stored before their dates existed read with none recorded
    /// (never absent from DTSEN, enrolments undated, no issue or delivery day), and a `Replace`
    /// expecting what was read matches the old bytes, so an old record can still be changed.
    #[test]
    fn a_beneficiary_and_a_card_read_in_their_old_layouts_and_can_be_replaced() {
        let program = ProgramCode::new("SEMBAKO").unwrap();
        let old = postcard::to_stdvec(&(
            "SSN000000001",
            Nik("6472014101800001".into()),
            Kk("6472010000000001".into()),
            "Siti",
            Day::parse_iso("1980-01-01").unwrap(),
            Sex::Female,
            "Jl. Pahlawan 1",
            "Palaran",
            "Rawa Makmur",
            3u8,
            BeneficiaryStatus::Determined,
            vec![program.clone()],
            false,
            7u64,
        ))
        .unwrap();
        let person = Beneficiary::from_stored(&old).expect("the old layout reads");
        assert_eq!(person.import_batch, 7);
        assert!(!person.absent_from_dtsen);
        assert!(person.enrolment_history.is_empty());
        assert!(person.past_kecamatan.is_empty());
        let day = Day::parse_iso("2026-06-30").unwrap();
        assert_eq!(person.enrolments_on(day), vec![program.clone()]);
        let record = RegistryRecord::Beneficiary(person.clone());
        assert!(record.is_stored_as(&old));
        let mut changed = person.clone();
        changed.desil = 4;
        assert!(!RegistryRecord::Beneficiary(changed.clone()).is_stored_as(&old));
        let stored = postcard::to_stdvec(&changed).unwrap();
        assert_eq!(Beneficiary::from_stored(&stored), Some(changed));

        let old_card = postcard::to_stdvec(&(
            CardId(5),
            "SSN000000001",
            Pan("6048720000000051".into()),
            "3112",
            CardStatus::Active,
            Pvv("1234".into()),
            0u8,
            None::<CardId>,
        ))
        .unwrap();
        let card = Card::from_stored(&old_card).expect("the old layout reads");
        assert_eq!((card.issued_on, card.delivered_on), (None, None));
        assert!(RegistryRecord::Card(card).is_stored_as(&old_card));

        let key = |kcv: &str| EncryptedKey {
            ciphertext: vec![7; 34],
            kcv: kcv.into(),
        };
        let old_terminal = postcard::to_stdvec(&(
            TerminalId::new("T0000001").unwrap(),
            MerchantId::new("EWARONG00000001").unwrap(),
            key("08D7B4"),
            key("D2B91C"),
            true,
        ))
        .unwrap();
        let terminal = Terminal::from_stored(&old_terminal).expect("the old layout reads");
        assert_eq!(
            (terminal.tak.as_ref(), terminal.tpk.kcv.as_str()),
            (None, "D2B91C")
        );
        assert!(RegistryRecord::Terminal(terminal.clone()).is_stored_as(&old_terminal));
        let mut with_tak = terminal;
        with_tak.tak = Some(key("E18DE2"));
        let stored = postcard::to_stdvec(&with_tak).unwrap();
        assert_eq!(Terminal::from_stored(&stored), Some(with_tak));
    }

    /// Enrolments count on the days between their beginning and their end.
    #[test]
    fn an_enrolment_counts_from_its_day_until_the_day_it_ended() {
        let program = ProgramCode::new("SEMBAKO").unwrap();
        let day = |text: &str| Day::parse_iso(text).unwrap();
        let mut person = Beneficiary {
            ssn: "SSN000000001".into(),
            nik: Nik("6472014101800001".into()),
            kk: Kk("6472010000000001".into()),
            name: "Siti".into(),
            birth_date: day("1980-01-01"),
            sex: Sex::Female,
            address: "Jl. Pahlawan 1".into(),
            kecamatan: "Palaran".into(),
            kelurahan: "Rawa Makmur".into(),
            desil: 3,
            status: BeneficiaryStatus::Determined,
            enrolments: Vec::new(),
            possible_duplicate: false,
            import_batch: 1,
            absent_from_dtsen: false,
            enrolment_history: Vec::new(),
            past_kecamatan: Vec::new(),
        };
        person.enrol(&program, day("2026-03-01"));
        assert!(person.end_enrolment(&program, day("2026-08-01")));
        assert!(person.enrolments.is_empty());
        assert!(person.enrolments_on(day("2026-02-28")).is_empty());
        assert_eq!(
            person.enrolments_on(day("2026-06-30")),
            vec![program.clone()]
        );
        assert!(person.enrolments_on(day("2026-08-01")).is_empty());
        assert!(!person.end_enrolment(&program, day("2026-09-01")));
        // A move counts from the end of the day it was recorded.
        person.move_to("Sambutan".into(), day("2026-07-10"));
        person.move_to("Sambutan".into(), day("2026-08-10"));
        assert_eq!(person.past_kecamatan.len(), 1);
        assert_eq!(person.kecamatan_on(day("2026-07-09")), "Palaran");
        assert_eq!(person.kecamatan_on(day("2026-07-10")), "Sambutan");
    }

    /// A token stored before it could expire reads as one that never does.
    #[test]
    fn a_token_reads_in_its_old_layout() {
        let old = postcard::to_stdvec(&("bootstrap", Role::Admin, [7u8; 32])).unwrap();
        let token = ApiToken::from_stored(&old).unwrap();
        assert_eq!((token.name.as_str(), token.expires_at), ("bootstrap", None));
        let new = ApiToken {
            expires_at: Some(1_800_000_000),
            ..token
        };
        let stored = postcard::to_stdvec(&new).unwrap();
        assert_eq!(ApiToken::from_stored(&stored), Some(new));
    }
}
