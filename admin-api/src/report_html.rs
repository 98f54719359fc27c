//! The semester report as CSV and as a self-contained, printable HTML page with inline SVG
//! charts: no script, no font, no image or style sheet from anywhere, so it opens offline and
//! prints the same on any machine (A4 portrait; every chart scales to the page width).

use std::fmt::Write as _;

use crate::routes::reports::SemesterReport;

/// The report as CSV: one `section,key,field,value` row per figure, in the JSON's order.
pub fn csv(report: &SemesterReport) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut row = |section: &str, key: &str, field: &str, value: &str| {
        // Writing to a Vec cannot fail.
        let _ = writer.write_record([section, key, field, value]);
    };
    row("section", "key", "field", "value");
    row("period", "", "year", &report.year.to_string());
    row("period", "", "half", &report.half.to_string());
    row("period", "", "from", &report.from);
    row("period", "", "to", &report.to);
    row("period", "", "generated_at", &report.generated_at);
    let t = &report.totals;
    for (field, value) in [
        ("people_determined", t.people_determined.to_string()),
        ("cards_issued", t.cards_issued.to_string()),
        ("cards_delivered", t.cards_delivered.to_string()),
        ("funded", t.funded.clone()),
        ("disbursed", t.disbursed.clone()),
        ("spent", t.spent.clone()),
        ("reversed", t.reversed.clone()),
        ("returned", t.returned.clone()),
        ("settled", t.settled.clone()),
        ("unspent", t.unspent.clone()),
        ("giro_balance", t.giro_balance.clone()),
        ("e_warong_active", t.e_warong_active.to_string()),
        ("e_warong_transacting", t.e_warong_transacting.to_string()),
    ] {
        row("total", "", field, &value);
    }
    for p in &report.programs {
        for (field, value) in [
            ("name", p.name.clone()),
            ("people_determined", p.people_determined.to_string()),
            ("cards_issued", p.cards_issued.to_string()),
            ("cards_delivered", p.cards_delivered.to_string()),
            ("funded", p.funded.clone()),
            ("disbursed", p.disbursed.clone()),
            ("spent", p.spent.clone()),
            ("reversed", p.reversed.clone()),
            ("returned", p.returned.clone()),
            ("settled", p.settled.clone()),
            ("unspent", p.unspent.clone()),
            ("giro_balance", p.giro_balance.clone()),
        ] {
            row("program", &p.program_code, field, &value);
        }
    }
    for k in &report.kecamatan {
        for (field, value) in [
            ("people_determined", k.people_determined.to_string()),
            ("cards_issued", k.cards_issued.to_string()),
            ("cards_delivered", k.cards_delivered.to_string()),
            ("disbursed", k.disbursed.clone()),
            ("spent", k.spent.clone()),
            ("reversed", k.reversed.clone()),
            ("returned", k.returned.clone()),
            ("unspent", k.unspent.clone()),
            ("e_warong_active", k.e_warong_active.to_string()),
            ("e_warong_transacting", k.e_warong_transacting.to_string()),
        ] {
            row("kecamatan", &k.kecamatan, field, &value);
        }
    }
    for c in &report.categories {
        for (field, value) in [
            ("name", c.name.clone()),
            ("items", c.items.to_string()),
            ("purchases", c.purchases.to_string()),
            ("amount", c.amount.clone()),
            ("reversed", c.reversed.clone()),
        ] {
            row("category", &c.category, field, &value);
        }
    }
    let n = &report.cards_never_used;
    row("cards_never_used", "", "count", &n.count.to_string());
    row("cards_never_used", "", "balance", &n.balance);
    for area in &n.by_kecamatan {
        let key = &area.kecamatan;
        row(
            "cards_never_used_kecamatan",
            key,
            "cards",
            &area.cards.to_string(),
        );
        row("cards_never_used_kecamatan", key, "balance", &area.balance);
        for program in &area.programs {
            row(
                "cards_never_used_kecamatan",
                key,
                &format!("program:{}", program.program_code),
                &program.cards.to_string(),
            );
        }
    }
    let e = &report.exceptions;
    for (field, value) in [
        ("batches", e.batches_total),
        ("pin_locked_cards", e.pin_locked_cards),
        ("cards_lost", e.cards_lost),
        ("cards_stolen", e.cards_stolen),
        ("cards_damaged", e.cards_damaged),
        ("cards_replaced", e.cards_replaced),
        ("duplicate_nik_rows", e.duplicate_nik_rows),
        ("rejected_rows", e.rejected_rows),
        ("possible_duplicates", e.possible_duplicates),
    ] {
        row("exceptions", "", field, &value.to_string());
    }
    for b in &e.batches {
        let key = format!("{}/{}", b.terminal_id, b.batch_number);
        for (field, value) in [
            ("kind", b.kind.clone()),
            ("merchant_id", b.merchant_id.clone()),
            ("closed_at", b.closed_at.clone()),
            ("terminal_sales_count", b.terminal_sales_count.to_string()),
            ("terminal_sales_amount", b.terminal_sales_amount.clone()),
            ("journal_sales_count", b.journal_sales_count.to_string()),
            ("journal_sales_amount", b.journal_sales_amount.clone()),
        ] {
            row("batch", &key, field, &value);
        }
    }
    crate::report_alerts::csv_rows(&report.alerts, &mut row);
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Escapes text for HTML (the console's pages too).
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Rupiah with thousands separators as Indonesians write them: `Rp 1.519.200.000`.
fn rupiah(amount: &str) -> String {
    let whole = amount.split('.').next().unwrap_or(amount);
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("Rp {grouped}")
}

/// Whole rupiah of an amount string, for chart lengths.
fn value(amount: &str) -> u64 {
    amount
        .split('.')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// A series' colour, the same in every chart and distinguishable in greyscale print too.
fn colour(series: &str) -> &'static str {
    match series {
        "disalurkan" => "#2e8b57",
        "dibelanjakan" => "#c0504d",
        "sisa" => "#e0a030",
        "dibatalkan" => "#7f7f7f",
        _ => "#1f4e79",
    }
}

/// A commodity category's name in Bahasa Indonesia (the host interface's catalogue, §4).
fn category_label(code: &str) -> &'static str {
    match code {
        "01" => "beras",
        "02" => "telur",
        "03" => "protein hewani",
        "04" => "protein nabati",
        "05" => "sayuran",
        "06" => "buah",
        "07" => "minyak goreng",
        "08" => "gula",
        "09" => "bumbu",
        crate::report::NO_BASKET => "tanpa rincian barang",
        c if c >= "90" => "bukan pangan",
        _ => "pangan dan bahan pokok lain",
    }
}

/// An exception batch's kind in Bahasa Indonesia.
fn batch_kind(kind: &str) -> &'static str {
    match kind {
        "closed_by_settlement" => "ditutup oleh settlement",
        _ => "tidak seimbang",
    }
}

/// Chart width in SVG user units; the SVG scales to its container.
const CHART_WIDTH: u32 = 640;
/// Left margin for the labels.
const LABEL_WIDTH: u32 = 170;

/// A horizontal grouped bar chart: one group per label, one bar per series.
fn bar_chart(id: &str, title: &str, series: &[&str], groups: &[(String, Vec<u64>)]) -> String {
    let bar = 12;
    let gap = 10;
    let legend = 24;
    let group_height = bar * series.len() as u32 + gap;
    let height = legend + group_height * groups.len().max(1) as u32 + 10;
    let max = groups
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = CHART_WIDTH - LABEL_WIDTH - 90;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="chart" id="{id}"><figcaption>{}</figcaption><svg viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">"#,
        esc(title),
        esc(title)
    );
    for (i, name) in series.iter().enumerate() {
        let x = LABEL_WIDTH + i as u32 * 110;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="4" width="10" height="10" fill="{}"/><text x="{}" y="13" class="legend">{}</text>"#,
            colour(name),
            x + 14,
            esc(name)
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let top = legend + g as u32 * group_height;
        let short: String = label.chars().take(24).collect();
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="label" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 6,
            top + group_height / 2,
            esc(&short)
        );
        for (s, v) in values.iter().enumerate() {
            let width = (u128::from(*v) * u128::from(plot) / u128::from(max)) as u32;
            let y = top + s as u32 * bar;
            let _ = write!(
                svg,
                r#"<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="{}" fill="{}"><title>{}: {v}</title></rect><text x="{}" y="{}" class="value">{}</text>"#,
                bar - 2,
                colour(series[s]),
                esc(series[s]),
                LABEL_WIDTH + width + 4,
                y + bar - 3,
                group_value(*v)
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A compact number for a bar's end in Indonesian units, truncated, integers only:
/// 285.000 → `285 rb`, 4.200.000 → `4.2 jt`, 1.519.200.000 → `1.51 M`.
fn group_value(v: u64) -> String {
    match v {
        0..=9_999 => v.to_string(),
        10_000..=999_999 => format!("{} rb", v / 1_000),
        1_000_000..=999_999_999 => format!("{}.{} jt", v / 1_000_000, v / 100_000 % 10),
        _ => format!("{}.{:02} M", v / 1_000_000_000, v / 10_000_000 % 100),
    }
}

/// A table whose first `text` columns are words and whose other columns are numbers: those
/// cells are `class="num"`, which never wraps inside a number.
fn table(head: &[&str], text: usize, rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i < text {
                let _ = write!(html, "<td>{}</td>", esc(cell));
            } else {
                let _ = write!(html, "<td class=\"num\">{}</td>", esc(cell));
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// Rupiah for a table cell under a `(Rp)` heading: `1.519.200.000`.
fn amount(text: &str) -> String {
    rupiah(text).trim_start_matches("Rp ").to_string()
}

const STYLE: &str = r#"
@page { size: A4 portrait; margin: 14mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10pt;
  color: #111; margin: 0 auto; max-width: 182mm; padding: 6mm; }
h1 { font-size: 16pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm;
  border-bottom: 1px solid #999; break-after: avoid; }
h3 { font-size: 10pt; margin: 4mm 0 1mm; break-after: avoid; }
p.meta { color: #444; margin: 0 0 4mm; }
table { width: 100%; border-collapse: collapse; table-layout: auto; margin: 2mm 0;
  font-size: 7.5pt; break-inside: auto; }
th, td { border: 1px solid #bbb; padding: 1mm; text-align: right; }
td { overflow-wrap: anywhere; }
td.num { white-space: nowrap; overflow-wrap: normal; font-variant-numeric: tabular-nums; }
th { font-size: 7pt; overflow-wrap: break-word; hyphens: auto; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef2f7; }
tr { break-inside: avoid; }
figure.chart { margin: 3mm 0; break-inside: avoid; width: 100%; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-weight: bold; margin-bottom: 1mm; }
text { font-family: inherit; font-size: 10px; fill: #111; }
text.value { font-size: 9px; fill: #333; }
.note { font-size: 8pt; color: #444; }
"#;

/// The report as one HTML page in Bahasa Indonesia: tables for every figure, SVG charts for
/// the main ones.
pub fn html(report: &SemesterReport) -> String {
    let title = format!(
        "Laporan Semester {} Tahun {} — Program SSN Kota Samarinda",
        report.half, report.year
    );
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"id\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p class=\"meta\">Laporan semester kepada Wali Kota (Perwali 70/2025 Pasal 13 ayat (3)), {} sampai dengan {}; dibuat {}. Arus uang adalah arus selama semester, saldo pada akhir semester; penerima, kartu, E-Warong, PIN terkunci dan kartu hilang, dicuri, rusak atau diganti per akhir hari terakhir semester. Jumlah uang dalam rupiah.</p>",
        esc(&title),
        esc(&report.from),
        esc(&report.to),
        esc(&report.generated_at)
    );

    let t = &report.totals;
    html.push_str("<h2>1. Ringkasan</h2>");
    html.push_str(&table(
        &["Uraian", "Nilai"],
        1,
        &[
            vec![
                "Penerima yang ditetapkan".into(),
                t.people_determined.to_string(),
            ],
            vec!["Kartu diterbitkan".into(), t.cards_issued.to_string()],
            vec!["Kartu diserahkan".into(), t.cards_delivered.to_string()],
            vec!["Dana masuk (APBD)".into(), rupiah(&t.funded)],
            vec!["Disalurkan ke kantong kartu".into(), rupiah(&t.disbursed)],
            vec!["Dibelanjakan".into(), rupiah(&t.spent)],
            vec!["Dibatalkan (reversal)".into(), rupiah(&t.reversed)],
            vec!["Dikembalikan ke rekening giro".into(), rupiah(&t.returned)],
            vec!["Dibayarkan ke E-Warong".into(), rupiah(&t.settled)],
            vec!["Sisa di kantong kartu".into(), rupiah(&t.unspent)],
            vec!["Saldo rekening giro".into(), rupiah(&t.giro_balance)],
            vec!["E-Warong aktif".into(), t.e_warong_active.to_string()],
            vec![
                "E-Warong yang bertransaksi".into(),
                t.e_warong_transacting.to_string(),
            ],
        ],
    ));

    html.push_str("<h2>2. Per program</h2>");
    html.push_str(&bar_chart(
        "chart-programs",
        "Dana masuk, disalurkan, dibelanjakan dan sisa per program (rupiah)",
        &["dana masuk", "disalurkan", "dibelanjakan", "sisa"],
        &report
            .programs
            .iter()
            .map(|p| {
                (
                    p.program_code.clone(),
                    vec![
                        value(&p.funded),
                        value(&p.disbursed),
                        value(&p.spent),
                        value(&p.unspent),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    ));
    html.push_str("<h3>Penerima dan kartu</h3>");
    html.push_str(&table(
        &[
            "Program",
            "Penerima",
            "Kartu diterbitkan",
            "Kartu diserahkan",
        ],
        1,
        &report
            .programs
            .iter()
            .map(|p| {
                vec![
                    format!("{} {}", p.program_code, p.name),
                    p.people_determined.to_string(),
                    p.cards_issued.to_string(),
                    p.cards_delivered.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    html.push_str("<h3>Uang (Rp)</h3>");
    html.push_str(&table(
        &[
            "Program",
            "Dana masuk",
            "Disalurkan",
            "Dibelanjakan",
            "Dibatalkan",
            "Dikembalikan",
            "Sisa",
        ],
        1,
        &report
            .programs
            .iter()
            .map(|p| {
                vec![
                    format!("{} {}", p.program_code, p.name),
                    amount(&p.funded),
                    amount(&p.disbursed),
                    amount(&p.spent),
                    amount(&p.reversed),
                    amount(&p.returned),
                    amount(&p.unspent),
                ]
            })
            .collect::<Vec<_>>(),
    ));

    html.push_str("<h2>3. Per kecamatan</h2>");
    html.push_str(&bar_chart(
        "chart-kecamatan",
        "Disalurkan, dibelanjakan dan sisa per kecamatan (rupiah)",
        &["disalurkan", "dibelanjakan", "sisa"],
        &report
            .kecamatan
            .iter()
            .map(|k| {
                (
                    k.kecamatan.clone(),
                    vec![value(&k.disbursed), value(&k.spent), value(&k.unspent)],
                )
            })
            .collect::<Vec<_>>(),
    ));
    html.push_str(&table(
        &[
            "Kecamatan",
            "Penerima",
            "Kartu",
            "Diserahkan",
            "Disalurkan (Rp)",
            "Dibelanjakan (Rp)",
            "Sisa (Rp)",
            "E-Warong aktif",
            "Bertransaksi",
        ],
        1,
        &report
            .kecamatan
            .iter()
            .map(|k| {
                vec![
                    k.kecamatan.clone(),
                    k.people_determined.to_string(),
                    k.cards_issued.to_string(),
                    k.cards_delivered.to_string(),
                    amount(&k.disbursed),
                    amount(&k.spent),
                    amount(&k.unspent),
                    k.e_warong_active.to_string(),
                    k.e_warong_transacting.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    ));

    html.push_str("<h2>4. Pembelian per jenis komoditas</h2>");
    html.push_str(&bar_chart(
        "chart-categories",
        "Nilai pembelian per jenis komoditas (rupiah)",
        &["nilai", "dibatalkan"],
        &report
            .categories
            .iter()
            .map(|c| {
                (
                    format!("{} {}", c.category, category_label(&c.category)),
                    vec![value(&c.amount), value(&c.reversed)],
                )
            })
            .collect::<Vec<_>>(),
    ));
    html.push_str(&table(
        &[
            "Jenis komoditas",
            "Barang",
            "Transaksi",
            "Nilai (Rp)",
            "Dibatalkan (Rp)",
        ],
        1,
        &report
            .categories
            .iter()
            .map(|c| {
                vec![
                    format!("{} {}", c.category, category_label(&c.category)),
                    c.items.to_string(),
                    c.purchases.to_string(),
                    amount(&c.amount),
                    amount(&c.reversed),
                ]
            })
            .collect::<Vec<_>>(),
    ));

    let n = &report.cards_never_used;
    html.push_str("<h2>5. Kartu yang belum pernah dipakai</h2>");
    let _ = write!(
        html,
        "<p>{} kartu sudah menerima uang tetapi belum pernah dipakai berbelanja sampai akhir semester; saldonya {}. Daftar lengkap per kartu untuk Dinas Sosial diunduh terpisah sebagai CSV: <code>/api/v1/reports/semester/cards-never-used?year={}&amp;half={}</code>.</p>",
        n.count,
        rupiah(&n.balance),
        report.year,
        report.half
    );
    html.push_str(&bar_chart(
        "chart-never-used",
        "Kartu yang belum pernah dipakai per kecamatan",
        &["kartu"],
        &n.by_kecamatan
            .iter()
            .map(|area| (area.kecamatan.clone(), vec![area.cards]))
            .collect::<Vec<_>>(),
    ));
    let codes: std::collections::BTreeSet<&str> = n
        .by_kecamatan
        .iter()
        .flat_map(|area| area.programs.iter().map(|p| p.program_code.as_str()))
        .collect();
    let mut head = vec!["Kecamatan", "Kartu", "Saldo (Rp)"];
    head.extend(codes.iter().copied());
    html.push_str(&table(
        &head,
        1,
        &n.by_kecamatan
            .iter()
            .map(|area| {
                let mut row = vec![
                    area.kecamatan.clone(),
                    area.cards.to_string(),
                    amount(&area.balance),
                ];
                row.extend(codes.iter().map(|code| {
                    area.programs
                        .iter()
                        .find(|p| p.program_code == *code)
                        .map_or(0, |p| p.cards)
                        .to_string()
                }));
                row
            })
            .collect::<Vec<_>>(),
    ));

    let e = &report.exceptions;
    html.push_str("<h2>6. Pengecualian</h2>");
    html.push_str(&table(
        &["Uraian", "Jumlah"],
        1,
        &[
            vec![
                "Batch terminal tidak seimbang atau tidak pernah ditutup".into(),
                e.batches_total.to_string(),
            ],
            vec![
                "Kartu dengan PIN terkunci".into(),
                e.pin_locked_cards.to_string(),
            ],
            vec!["Kartu hilang".into(), e.cards_lost.to_string()],
            vec!["Kartu dicuri".into(), e.cards_stolen.to_string()],
            vec!["Kartu rusak".into(), e.cards_damaged.to_string()],
            vec!["Kartu diganti".into(), e.cards_replaced.to_string()],
            vec![
                "NIK ganda dalam satu berkas impor".into(),
                e.duplicate_nik_rows.to_string(),
            ],
            vec![
                "Baris impor yang ditolak".into(),
                e.rejected_rows.to_string(),
            ],
            vec![
                "Kemungkinan data ganda (nama dan tanggal lahir sama)".into(),
                e.possible_duplicates.to_string(),
            ],
        ],
    ));
    if (e.batches.len() as u64) < e.batches_total {
        html.push_str(&format!(
            "<p>{} batch terakhir dari {}; rekonsiliasi setiap tanggal bisnis mencantumkan \
             semuanya.</p>",
            e.batches.len(),
            e.batches_total
        ));
    }
    html.push_str(&table(
        &[
            "Terminal",
            "E-Warong",
            "Batch",
            "Jenis",
            "Ditutup",
            "Menurut terminal",
            "Menurut jurnal",
        ],
        5,
        &e.batches
            .iter()
            .map(|b| {
                vec![
                    b.terminal_id.clone(),
                    b.merchant_id.clone(),
                    b.batch_number.clone(),
                    batch_kind(&b.kind).into(),
                    b.closed_at.clone(),
                    format!(
                        "{} / {}",
                        b.terminal_sales_count,
                        rupiah(&b.terminal_sales_amount)
                    ),
                    format!(
                        "{} / {}",
                        b.journal_sales_count,
                        rupiah(&b.journal_sales_amount)
                    ),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    html.push_str(&crate::report_alerts::html(&report.alerts, 7, table));
    html.push_str("<p class=\"note\">Dihitung dari jurnal dan registri switch SSN; setiap jumlah uang cocok dengan jurnal sampai ke rupiah.</p></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupiah_is_grouped_the_indonesian_way() {
        assert_eq!(rupiah("1519200000.00"), "Rp 1.519.200.000");
        assert_eq!(rupiah("900.00"), "Rp 900");
        assert_eq!(rupiah("0.00"), "Rp 0");
    }

    #[test]
    fn bar_ends_are_compact() {
        assert_eq!(group_value(9_999), "9999");
        assert_eq!(group_value(285_000), "285 rb");
        assert_eq!(group_value(4_200_000), "4.2 jt");
        assert_eq!(group_value(1_519_200_000), "1.51 M");
    }

    #[test]
    fn charts_escape_their_labels() {
        let svg = bar_chart("c", "t", &["a"], &[("<b>".into(), vec![3])]);
        assert!(svg.contains("&lt;b&gt;"));
        assert!(!svg.contains("<b>"));
    }
}
