//! The console's two languages: Bahasa Indonesia by default, English when chosen. Every text
//! a page shows is looked up here by key, so a page never mixes languages.

/// A language of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// Bahasa Indonesia (the default).
    #[default]
    Id,
    /// English.
    En,
}

impl Lang {
    /// From the `lang` cookie's value; anything else is Indonesian.
    pub fn from_code(code: &str) -> Lang {
        match code {
            "en" => Lang::En,
            _ => Lang::Id,
        }
    }

    /// The code in `<html lang>` and in the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }
}

/// The text for `key` in `lang`; an unknown key is shown as itself (a test below keeps the
/// table complete for the keys the pages use).
pub fn t(lang: Lang, key: &str) -> &'static str {
    let Some((id, en)) = text(key) else {
        return "?";
    };
    match lang {
        Lang::Id => id,
        Lang::En => en,
    }
}

/// Every text: key → (Indonesian, English).
fn text(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "app" => ("Konsol SSN Samarinda", "SSN Samarinda console"),
        "sign_in" => ("Masuk", "Sign in"),
        "sign_out" => ("Keluar", "Sign out"),
        "token" => ("Token akses", "Access token"),
        "token_help" => (
            "Token API yang diberikan admin kepada Anda.",
            "The API token an admin gave you.",
        ),
        "bad_token" => (
            "Token tidak dikenal atau sudah kedaluwarsa.",
            "Unknown or expired token.",
        ),
        "signed_in_as" => ("Masuk sebagai", "Signed in as"),
        "language" => ("Bahasa", "Language"),
        "other_language" => ("English", "Bahasa Indonesia"),
        "menu" => ("Menu utama", "Main menu"),
        "skip" => ("Lompat ke isi", "Skip to content"),
        "dashboard" => ("Dasbor", "Dashboard"),
        "beneficiaries" => ("Penerima manfaat", "Beneficiaries"),
        "programs" => ("Program dan dana", "Programs and funding"),
        "cards" => ("Kartu", "Cards"),
        "merchants" => ("E-Warong dan terminal", "E-Warong and terminals"),
        "settlement" => ("Setelmen harian", "Settlement day"),
        "report" => ("Laporan semester", "Semester report"),
        "audit" => ("Log audit", "Audit log"),
        "transactions" => ("Transaksi", "Transactions"),
        "forbidden" => (
            "Peran Anda tidak berhak membuka halaman ini.",
            "Your role may not open this page.",
        ),
        "not_found" => ("Halaman tidak ditemukan.", "No such page."),
        "csrf" => (
            "Formulir ini kedaluwarsa atau tidak berasal dari konsol. Muat ulang halaman lalu coba lagi.",
            "This form expired or did not come from the console. Reload the page and try again.",
        ),
        "done" => ("Berhasil.", "Done."),
        "refused" => ("Ditolak", "Refused"),
        "today" => ("Hari ini", "Today"),
        "purchases" => ("Pembelian disetujui", "Approved purchases"),
        "amount" => ("Jumlah", "Amount"),
        "declines" => ("Penolakan per kode", "Declines by code"),
        "code" => ("Kode", "Code"),
        "count" => ("Banyaknya", "Count"),
        "active_terminals" => ("Terminal aktif", "Active terminals"),
        "open_batches" => ("Batch terbuka", "Open batches"),
        "recent_settlements" => ("Setelmen hari-hari terakhir", "Settlement of recent days"),
        "business_date" => ("Tanggal bisnis", "Business date"),
        "status" => ("Status", "Status"),
        "not_settled" => ("Belum disetel", "Not settled"),
        "none" => ("Tidak ada.", "None."),
        "find_card" => ("Cari kartu", "Find a card"),
        "ssn_or_card" => ("Nomor SSN atau ID kartu", "SSN number or card id"),
        "find" => ("Cari", "Find"),
        "issue_card" => ("Terbitkan kartu", "Issue a card"),
        "ssn" => ("Nomor SSN", "SSN number"),
        "card_id" => ("ID kartu", "Card id"),
        "pan" => ("Nomor kartu", "Card number"),
        "expiry" => ("Berlaku s.d.", "Expiry"),
        "pin" => ("PIN", "PIN"),
        "pin_once" => (
            "Catat PIN ini untuk surat PIN: tidak akan ditampilkan lagi.",
            "Write this PIN down for the PIN mailer: it is not shown again.",
        ),
        "deliver" => ("Serahkan", "Deliver"),
        "block" => ("Blokir", "Block"),
        "unblock" => ("Buka blokir", "Unblock"),
        "reason" => ("Alasan", "Reason"),
        "report_card" => ("Laporkan", "Report"),
        "lost" => ("Hilang", "Lost"),
        "stolen" => ("Dicuri", "Stolen"),
        "damaged" => ("Rusak", "Damaged"),
        "replace" => ("Ganti kartu", "Replace"),
        "pin_reset" => ("Atur ulang PIN", "Reset the PIN"),
        "pin_optional" => (
            "PIN baru (4–6 angka, kosongkan agar dibuatkan)",
            "New PIN (4–6 digits, leave empty to generate)",
        ),
        "pockets" => ("Saldo per program", "Pockets"),
        "program" => ("Program", "Program"),
        "balance" => ("Saldo", "Balance"),
        "expires" => ("Kedaluwarsa", "Expires"),
        "statement" => ("Mutasi kartu", "Statement"),
        "time" => ("Waktu", "Time"),
        "kind" => ("Jenis", "Kind"),
        "merchant" => ("E-Warong", "E-Warong"),
        "terminal" => ("Terminal", "Terminal"),
        "appoint" => ("Tunjuk E-Warong", "Appoint an E-Warong"),
        "merchant_id" => ("ID E-Warong (15 karakter)", "E-Warong id (15 characters)"),
        "name" => ("Nama", "Name"),
        "merchant_kind" => ("Bentuk usaha", "Kind"),
        "kecamatan" => ("Kecamatan", "Kecamatan"),
        "kelurahan" => ("Kelurahan", "Kelurahan"),
        "account" => ("Rekening setelmen", "Settlement account"),
        "install" => ("Pasang terminal", "Install a terminal"),
        "terminal_id" => ("ID terminal (8 karakter)", "Terminal id (8 characters)"),
        "tmk" => ("TMK (32 heksa)", "TMK (32 hex)"),
        "tmk_kcv" => ("KCV TMK (6 heksa)", "TMK check value (6 hex)"),
        "tpk" => ("TPK (32 heksa)", "TPK (32 hex)"),
        "tpk_kcv" => ("KCV TPK (6 heksa)", "TPK check value (6 hex)"),
        "suspend" => ("Bekukan", "Suspend"),
        "activate" => ("Aktifkan", "Activate"),
        "save" => ("Simpan", "Save"),
        "actions" => ("Tindakan", "Actions"),
        "previous" => ("Sebelumnya", "Previous"),
        "next" => ("Berikutnya", "Next"),
        "page" => ("Halaman", "Page"),
        "of" => ("dari", "of"),
        "total" => ("Total", "Total"),
        "tick_someone" => (
            "Centang dulu penerima yang dimaksud.",
            "Tick the people first.",
        ),
        "duplicate" => ("NIK sudah ada", "NIK already present"),
        "possible_duplicate" => ("Kemungkinan ganda", "Possible duplicate"),
        "distinct" => ("Orang berbeda", "Different people"),
        "rejected_row" => ("Ditolak", "Rejected"),
        "import_report" => ("Laporan impor per baris", "Import report per row"),
        "rows" => ("Baris", "Rows"),
        "row" => ("Baris", "Row"),
        "imported" => ("Diimpor", "Imported"),
        "verified" => ("Terverifikasi", "Verified"),
        "validated" => ("Tervalidasi", "Validated"),
        "determined" => ("Ditetapkan", "Determined"),
        "rejected" => ("Ditolak", "Rejected"),
        "revoked" => ("Dicabut", "Revoked"),
        "import" => ("Impor CSV", "Import CSV"),
        "csv_file" => (
            "Berkas CSV dari Portal Data SSN (dengan baris judul)",
            "The CSV file from the Portal Data SSN (with its header line)",
        ),
        "csv_label" => (
            "Atau tempel isi berkas CSV di sini",
            "Or paste the CSV file's contents here",
        ),
        "file_not_text" => (
            "Berkas yang dipilih bukan berkas teks (CSV UTF-8). Simpan sebagai CSV lalu unggah lagi.",
            "The file chosen is not a text file (UTF-8 CSV). Save it as CSV and upload it again.",
        ),
        "file_or_paste" => (
            "Pilih berkas atau tempel isinya terlebih dahulu.",
            "Choose a file or paste its contents first.",
        ),
        "resolve_duplicate" => (
            "Selesaikan kemungkinan ganda",
            "Settle a possible duplicate",
        ),
        "same_person" => (
            "Orang yang sama (data ini ditolak)",
            "The same person (this record is rejected)",
        ),
        "same_person_as" => (
            "Nomor SSN data yang sama (bila orang yang sama)",
            "SSN number of the same person's record (when the same person)",
        ),
        "confirmation_file" => ("Berkas jawaban bank", "The bank's answer file"),
        "filter" => ("Saring", "Filter"),
        "search_people" => ("Nama, NIK atau nomor SSN", "Name, NIK or SSN number"),
        "nik" => ("NIK", "NIK"),
        "ticked" => ("Untuk yang dicentang", "For those ticked"),
        "note" => ("Catatan", "Note"),
        "verify" => ("Verifikasi: setujui", "Verify: approve"),
        "verify_reject" => ("Verifikasi: tolak", "Verify: reject"),
        "validate" => ("Validasi: setujui", "Validate: approve"),
        "validate_reject" => ("Validasi: tolak", "Validate: reject"),
        "decree" => ("Tetapkan dengan SK", "Determine by decree"),
        "decree_number" => ("Nomor SK", "Decree number"),
        "decree_date" => ("Tanggal SK", "Decree date"),
        "not_an_amount" => (
            "bukan jumlah rupiah (contoh: Rp 1.250.000)",
            "not an amount of rupiah (e.g. Rp 1.250.000)",
        ),
        "benefit_amount" => ("Nilai manfaat per periode", "Benefit per period"),
        "purchase_amount_max" => ("Batas per pembelian", "Largest purchase"),
        "purchases_per_day_max" => (
            "Pembelian per hari paling banyak",
            "Purchases per day at most",
        ),
        "pocket_expires_at" => ("Saldo kedaluwarsa pada", "Pockets expire on"),
        "allowed_categories" => (
            "Kategori komoditas (01,02,...)",
            "Commodity categories (01,02,...)",
        ),
        "basket_required" => ("Wajib rincian belanja", "Basket required"),
        "budget_year" => ("Tahun anggaran", "Budget year"),
        "create_program" => ("Buat program", "Create a program"),
        "funded" => ("Dana masuk", "Funded"),
        "giro_balance" => ("Saldo giro", "Giro balance"),
        "fund" => ("Catat dana APBD", "Record APBD funding"),
        "reference" => ("Referensi", "Reference"),
        "disburse" => ("Salurkan", "Disburse"),
        "disbursement" => ("Penyaluran", "Disbursement"),
        "period" => ("Periode (YYYY-MM)", "Period (YYYY-MM)"),
        "show" => ("Tampilkan", "Show"),
        "run_settlement" => ("Jalankan setelmen", "Run the settlement"),
        "download_file" => ("Unduh berkas setelmen", "Download the settlement file"),
        "settlement_lines" => ("Per E-Warong", "Per E-Warong"),
        "reversals" => ("Pembatalan", "Reversals"),
        "net" => ("Bersih", "Net"),
        "payout" => ("Pembayaran bank", "Bank payout"),
        "upload_confirmation" => ("Unggah konfirmasi bank", "Upload the bank's confirmation"),
        "confirmation_help" => (
            "Atau tempel isinya: ID E-Warong|jumlah bersih|PAID atau REJECTED|referensi bank",
            "Or paste its lines: E-Warong id|net amount|PAID or REJECTED|bank reference",
        ),
        "differences" => ("Selisih rekonsiliasi", "Reconciliation differences"),
        "journal" => ("Jurnal", "Journal"),
        "other_view" => ("Terminal atau bank", "Terminal or bank"),
        "year" => ("Tahun", "Year"),
        "half" => ("Semester", "Half"),
        "printable" => ("Versi cetak", "Printable version"),
        "from" => ("Dari tanggal", "From"),
        "to" => ("Sampai tanggal", "To"),
        "actor" => ("Pelaku (nama token)", "Actor (token name)"),
        "role" => ("Peran", "Role"),
        "target" => ("Sasaran", "Target"),
        "outcome" => ("Hasil", "Outcome"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indonesian_is_the_default_and_english_is_chosen_by_its_code() {
        assert_eq!(Lang::default(), Lang::Id);
        assert_eq!(Lang::from_code("en"), Lang::En);
        assert_eq!(Lang::from_code("fr"), Lang::Id);
        assert_eq!(t(Lang::Id, "sign_in"), "Masuk");
        assert_eq!(t(Lang::En, "sign_in"), "Sign in");
        assert_eq!(t(Lang::En, "no such key"), "?");
    }

    #[test]
    fn every_key_the_console_uses_has_both_languages() {
        // Every `t(lang, "...")` in the console's sources.
        let sources = [
            include_str!("mod.rs"),
            include_str!("layout.rs"),
            include_str!("dashboard.rs"),
            include_str!("cards.rs"),
            include_str!("merchants.rs"),
            include_str!("beneficiaries.rs"),
            include_str!("programs.rs"),
            include_str!("settlement.rs"),
            include_str!("report.rs"),
            include_str!("records.rs"),
        ];
        // Text keys a page passes on (`Err(key)` of an upload).
        for key in ["file_not_text", "file_or_paste"] {
            assert!(text(key).is_some(), "{key}");
        }
        let mut keys = 0;
        for source in sources {
            for (at, pattern) in source.match_indices("t(lang, \"") {
                let key = source[at + pattern.len()..]
                    .split('"')
                    .next()
                    .unwrap_or_default();
                let (id, en) = text(key).unwrap_or_else(|| panic!("no text for key {key:?}"));
                assert!(!id.is_empty() && !en.is_empty(), "{key}");
                keys += 1;
            }
        }
        assert!(
            keys > 50,
            "only {keys} keys found: is the pattern still right?"
        );
    }
}
