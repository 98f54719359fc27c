//! What a run measured: latency histograms (HdrHistogram: one overall, one per second for
//! the plot), counts per response code, and the report as text, JSON and an SVG plot of
//! latency over time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::books::BooksReport;
use crate::mix::Kind;
use crate::terminal::Counts;

/// The highest latency a histogram holds (60 s); longer ones are recorded as 60 s.
pub const LATENCY_MICROS_MAX: u64 = 60_000_000;
/// Seconds of a run the per-second series covers; later answers go to the last second.
pub const SERIES_SECONDS_MAX: usize = 3_600;

/// One answered request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Whole seconds since the run's start when the answer arrived.
    pub second: u32,
    /// From due (open loop) or sent (closed loop) to answered.
    pub micros: u64,
    /// From due to handed to the connection: how late the harness itself sent (its timer's
    /// millisecond ticks, its turn on the cores). Part of `micros`.
    pub send_lag_micros: u64,
    /// Due inside the measured window (after warm-up, before the end of sending).
    pub measured: bool,
    /// A purchase answered `00`.
    pub approved_purchase: bool,
}

/// One second of the run.
#[derive(Debug)]
pub struct SecondStats {
    /// Latencies of the answers that arrived in this second (two significant digits).
    pub latency: Histogram<u64>,
    /// Answers that arrived in this second.
    pub answered: u64,
    /// Approved purchases among them.
    pub approved: u64,
}

/// The run's latencies, fed by every terminal in batches.
#[derive(Debug)]
pub struct Recorder {
    /// Latencies of answers to requests due in the measured window (three significant
    /// digits).
    pub overall: Histogram<u64>,
    /// The harness's send lag of the same answers (three significant digits).
    pub send_lag: Histogram<u64>,
    /// Per second since the start, for the plot.
    pub seconds: Vec<SecondStats>,
}

fn histogram(significant_digits: u8) -> Histogram<u64> {
    // Bounds and digits are constants within hdrhistogram's accepted ranges.
    Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, significant_digits)
        .unwrap_or_else(|_| Histogram::new(significant_digits).expect("histogram"))
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            overall: histogram(3),
            send_lag: histogram(3),
            seconds: Vec::new(),
        }
    }
}

impl Recorder {
    /// Records a terminal's buffered samples.
    pub fn record_all(&mut self, samples: &[Sample]) {
        for s in samples {
            let micros = s.micros.clamp(1, LATENCY_MICROS_MAX);
            if s.measured {
                self.overall.saturating_record(micros);
                self.send_lag
                    .saturating_record(s.send_lag_micros.clamp(1, LATENCY_MICROS_MAX));
            }
            let second = (s.second as usize).min(SERIES_SECONDS_MAX - 1);
            while self.seconds.len() <= second {
                self.seconds.push(SecondStats {
                    latency: histogram(2),
                    answered: 0,
                    approved: 0,
                });
            }
            let slot = &mut self.seconds[second];
            slot.latency.saturating_record(micros);
            slot.answered += 1;
            slot.approved += u64::from(s.approved_purchase);
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Highest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Answers counted.
    pub samples: u64,
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 1000.0 * 1000.0).round() / 1000.0
}

impl LatencyMs {
    /// Percentiles of `h` (microseconds) in milliseconds, rounded to the microsecond.
    pub fn of(h: &Histogram<u64>) -> LatencyMs {
        if h.is_empty() {
            return LatencyMs::default();
        }
        LatencyMs {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            samples: h.len(),
        }
    }
}

/// One second of the latency-over-time series.
#[derive(Clone, Debug, Serialize)]
pub struct SecondRow {
    /// Seconds since the start.
    pub second: usize,
    /// Answers in this second.
    pub answered: u64,
    /// Approved purchases in this second.
    pub approved: u64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Highest.
    pub max_ms: f64,
}

/// How the load was paced, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct LoadShape {
    /// `switch` or `baseline`.
    pub target: String,
    /// `bcd` or `ascii`.
    pub profile: String,
    /// Where the terminals connected.
    pub address: String,
    /// Terminals (connections).
    pub terminals: usize,
    /// `open` or `closed`.
    pub mode: String,
    /// `constant` or `poisson` (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,
    /// Requests per second asked for (open loop), over all terminals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate_per_second: Option<f64>,
    /// Requests outstanding per terminal (closed loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight_per_terminal: Option<usize>,
    /// The mix.
    pub mix: String,
    /// Seconds of arrivals.
    pub duration_seconds: f64,
    /// Seconds at the start left out of the latency figures and rates.
    pub warmup_seconds: f64,
    /// The generator's seed.
    pub seed: u64,
    /// Timeout per request, in milliseconds.
    pub timeout_ms: u64,
}

/// The report of one run against one target.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How the load was shaped.
    #[serde(flatten)]
    pub shape: LoadShape,
    /// Approved purchases per second of the measured window.
    pub approved_per_second: f64,
    /// Answers per second of the measured window.
    pub requests_per_second: f64,
    /// Latency of answers to requests due in the measured window.
    pub latency_ms: LatencyMs,
    /// The part of that latency before the request left the harness: from due to handed to
    /// the connection. Open loop on shared cores, this is the harness's own lateness.
    pub send_lag_ms: LatencyMs,
    /// Answers per response code (DE39), every kind together.
    pub responses: BTreeMap<String, u64>,
    /// Answers per kind and response code.
    pub responses_by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests sent per kind.
    pub sent: BTreeMap<String, u64>,
    /// Requests sent, every kind.
    pub sent_total: u64,
    /// Answers, every kind.
    pub answered_total: u64,
    /// Requests not answered within the timeout.
    pub timeouts: u64,
    /// Answers after their timeout.
    pub late_answers: u64,
    /// Answers matching no request, with the wrong MTI or terminal, or undecodable.
    pub unexpected_answers: u64,
    /// Arrivals dropped because a terminal's backlog was full (the rate was not held).
    pub dropped_arrivals: u64,
    /// Reversal advices (0420) sent for purchases that timed out.
    pub reversal_advices: u64,
    /// Terminals that stopped on an error, with the error (at most ten listed).
    pub errors: Vec<String>,
    /// How many terminals stopped on an error.
    pub errors_total: usize,
    /// The books check; absent for the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub books: Option<BooksReport>,
    /// Misuse injected and how the monitor's alerts scored (`run --misuse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misuse: Option<crate::misuse::Score>,
    /// Latency over time, per second.
    pub per_second: Vec<SecondRow>,
}

/// How far an error list is printed.
pub const ERRORS_LISTED_MAX: usize = 10;

impl Report {
    /// Builds the report from what the terminals saw.
    pub fn new(
        shape: LoadShape,
        counts: &Counts,
        recorder: &Recorder,
        errors: &[String],
    ) -> Report {
        let measured_seconds = (shape.duration_seconds - shape.warmup_seconds).max(1e-9);
        let mut responses = BTreeMap::new();
        let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((kind, code), n) in &counts.codes {
            let code = String::from_utf8_lossy(code).into_owned();
            *responses.entry(code.clone()).or_default() += n;
            *by_kind
                .entry(kind.name().to_string())
                .or_default()
                .entry(code)
                .or_default() += n;
        }
        let sent = Kind::ALL
            .iter()
            .zip(counts.sent)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name().to_string(), n))
            .collect();
        let per_second = recorder
            .seconds
            .iter()
            .enumerate()
            .map(|(second, s)| SecondRow {
                second,
                answered: s.answered,
                approved: s.approved,
                p50_ms: ms(s.latency.value_at_quantile(0.5)),
                p99_ms: ms(s.latency.value_at_quantile(0.99)),
                max_ms: ms(s.latency.max()),
            })
            .collect();
        let rate = |n: u64| (n as f64 / measured_seconds * 10.0).round() / 10.0;
        Report {
            approved_per_second: rate(counts.approved_measured),
            requests_per_second: rate(counts.answered_measured),
            latency_ms: LatencyMs::of(&recorder.overall),
            send_lag_ms: LatencyMs::of(&recorder.send_lag),
            responses,
            responses_by_kind: by_kind,
            sent,
            sent_total: counts.sent.iter().sum(),
            answered_total: counts.answered(),
            timeouts: counts.timeouts.iter().sum(),
            late_answers: counts.late,
            unexpected_answers: counts.unexpected,
            dropped_arrivals: counts.dropped,
            reversal_advices: counts.advices,
            errors: errors.iter().take(ERRORS_LISTED_MAX).cloned().collect(),
            errors_total: errors.len(),
            books: None,
            misuse: None,
            per_second,
            shape,
        }
    }

    /// Whether every request was answered in time, nothing unexpected came back, and no
    /// terminal failed.
    pub fn every_request_answered(&self) -> bool {
        self.timeouts == 0
            && self.errors_total == 0
            && self.unexpected_answers == 0
            && self.dropped_arrivals == 0
            && self.answered_total == self.sent_total
    }

    /// The report as text, for a person.
    pub fn text(&self) -> String {
        let s = &self.shape;
        let mut t = String::new();
        let pace = match (s.target_rate_per_second, s.in_flight_per_terminal) {
            (Some(rate), _) => format!(
                "open loop, {} arrivals at {rate} requests/s",
                s.arrivals.as_deref().unwrap_or("constant")
            ),
            (None, Some(n)) => format!("closed loop, {n} in flight per terminal"),
            _ => s.mode.clone(),
        };
        let _ = writeln!(
            t,
            "{} ({}) at {}: {} terminals, {pace}, {} s ({} s warm-up), mix {}",
            s.target,
            s.profile,
            s.address,
            s.terminals,
            s.duration_seconds,
            s.warmup_seconds,
            s.mix
        );
        let _ = writeln!(
            t,
            "  achieved     {:>12.1} requests/s   {:>12.1} approved purchases/s",
            self.requests_per_second, self.approved_per_second
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            t,
            "  latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} answers)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.samples
        );
        let g = &self.send_lag_ms;
        let _ = writeln!(
            t,
            "  of which     p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  before the harness sent (due to handed to the connection)",
            g.p50, g.p90, g.p99, g.p999, g.max
        );
        let codes: Vec<String> = self
            .responses
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        let _ = writeln!(t, "  responses    {}", codes.join(", "));
        let _ = writeln!(
            t,
            "  sent {}, answered {}, timeouts {}, late {}, unexpected {}, dropped arrivals {}, reversal advices {}, terminal errors {}",
            self.sent_total,
            self.answered_total,
            self.timeouts,
            self.late_answers,
            self.unexpected_answers,
            self.dropped_arrivals,
            self.reversal_advices,
            self.errors_total
        );
        for e in &self.errors {
            let _ = writeln!(t, "    error: {e}");
        }
        if let Some(b) = &self.books {
            let _ = writeln!(t, "  books        {}", b.summary());
        }
        if let Some(m) = &self.misuse {
            t.push_str(&m.text());
        }
        t
    }

    /// The latency-over-time plot: p50, p99 and max per second (log scale) above the answers
    /// and approvals per second.
    pub fn svg(&self) -> String {
        svg(&self.shape, &self.per_second)
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Draws the series by hand: two panels sharing the time axis.
fn svg(shape: &LoadShape, rows: &[SecondRow]) -> String {
    const WIDTH: f64 = 960.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const PANEL: f64 = 220.0;
    const GAP: f64 = 50.0;
    let height = TOP + PANEL + GAP + PANEL + 40.0;
    let plot_width = WIDTH - LEFT - RIGHT;
    let seconds = rows.len().max(1) as f64;
    let x = |second: f64| LEFT + plot_width * (second + 0.5) / seconds;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{} ({}), {} terminals, {} — latency per second and throughput",
        shape.target, shape.profile, shape.terminals, shape.mix
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        escape(&title)
    );

    // Latency panel, log scale from 0.1 ms to the next power of ten above the highest max.
    let top_ms = rows.iter().map(|r| r.max_ms).fold(1.0_f64, f64::max);
    let decades_high = top_ms.log10().ceil().max(0.0);
    let low = -1.0_f64;
    let y_latency = |ms: f64| {
        let v = ms.max(0.1).log10();
        TOP + PANEL - PANEL * (v - low) / (decades_high - low)
    };
    let mut decade = low;
    while decade <= decades_high {
        let y = y_latency(10f64.powf(decade));
        let label = 10f64.powf(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label} ms</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        decade += 1.0;
    }
    for (name, color, pick) in [
        (
            "max",
            "#d62728",
            (|r: &SecondRow| r.max_ms) as fn(&SecondRow) -> f64,
        ),
        ("p99", "#ff7f0e", |r: &SecondRow| r.p99_ms),
        ("p50", "#1f77b4", |r: &SecondRow| r.p50_ms),
    ] {
        let points: Vec<String> = rows
            .iter()
            .filter(|r| r.answered > 0)
            .map(|r| format!("{:.1},{:.1}", x(r.second as f64), y_latency(pick(r))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = name;
    }
    for (i, (name, color)) in [("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("max", "#d62728")]
        .iter()
        .enumerate()
    {
        let lx = LEFT + 10.0 + 70.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            TOP + 6.0,
            lx + 16.0,
            TOP + 11.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})">latency (log)</text>"#,
        TOP + PANEL / 2.0,
        TOP + PANEL / 2.0
    );

    // Throughput panel.
    let top2 = TOP + PANEL + GAP;
    let peak = rows.iter().map(|r| r.answered).max().unwrap_or(1).max(1) as f64;
    let y_rate = |n: f64| top2 + PANEL - PANEL * n / peak;
    for frac in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_rate(peak * frac);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            peak * frac
        );
    }
    for (color, pick) in [
        (
            "#7f7f7f",
            (|r: &SecondRow| r.answered) as fn(&SecondRow) -> u64,
        ),
        ("#2ca02c", |r: &SecondRow| r.approved),
    ] {
        let points: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.second as f64), y_rate(pick(r) as f64)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="#7f7f7f"/><text x="{:.1}" y="{:.1}">answers/s</text><rect x="{:.1}" y="{:.1}" width="12" height="3" fill="#2ca02c"/><text x="{:.1}" y="{:.1}">approved purchases/s</text>"##,
        LEFT + 10.0,
        top2 + 6.0,
        LEFT + 26.0,
        top2 + 11.0,
        LEFT + 110.0,
        top2 + 6.0,
        LEFT + 126.0,
        top2 + 11.0
    );
    // Time axis.
    let step = ((seconds / 10.0).ceil()).max(1.0) as usize;
    for second in (0..rows.len().max(1)).step_by(step) {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{second}</text>"#,
            x(second as f64),
            top2 + PANEL + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since start</text></svg>"#,
        LEFT + plot_width / 2.0,
        top2 + PANEL + 34.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_files_samples_by_second_and_window() {
        let mut r = Recorder::default();
        r.record_all(&[
            Sample {
                second: 0,
                micros: 500,
                send_lag_micros: 100,
                measured: false,
                approved_purchase: true,
            },
            Sample {
                second: 2,
                micros: 1500,
                send_lag_micros: 200,
                measured: true,
                approved_purchase: false,
            },
            Sample {
                second: 2,
                micros: 2500,
                send_lag_micros: 900,
                measured: true,
                approved_purchase: true,
            },
        ]);
        assert_eq!(r.seconds.len(), 3);
        assert_eq!(r.overall.len(), 2);
        assert_eq!(r.seconds[2].answered, 2);
        assert_eq!(r.seconds[2].approved, 1);
        let l = LatencyMs::of(&r.overall);
        assert!(l.max >= 2.49 && l.max <= 2.51, "{l:?}");
        // The send lag of the measured answers only: 0.2 and 0.9 ms, not the warm-up's 0.1.
        let g = LatencyMs::of(&r.send_lag);
        assert_eq!(g.samples, 2);
        assert!(g.p50 >= 0.199 && g.p50 <= 0.201, "{g:?}");
        assert!(g.max >= 0.899 && g.max <= 0.901, "{g:?}");
    }

    #[test]
    fn the_svg_is_one_document_with_a_line_per_series() {
        let rows: Vec<SecondRow> = (0..5)
            .map(|i| SecondRow {
                second: i,
                answered: 100,
                approved: 80,
                p50_ms: 1.0,
                p99_ms: 5.0,
                max_ms: 12.0,
            })
            .collect();
        let shape = LoadShape {
            target: "switch".into(),
            profile: "bcd".into(),
            address: "127.0.0.1:1".into(),
            terminals: 2,
            mode: "open".into(),
            arrivals: Some("poisson".into()),
            target_rate_per_second: Some(100.0),
            in_flight_per_terminal: None,
            mix: "purchase=1".into(),
            duration_seconds: 5.0,
            warmup_seconds: 0.0,
            seed: 1,
            timeout_ms: 1000,
        };
        let svg = svg(&shape, &rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 5);
    }
}
