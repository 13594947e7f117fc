//! Summaries of the samples: the progress line, the table, CSV, JSON and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Load, Sample, Spec, Sys, SYSTEMS};

/// The run's details, written into every output so a result file or chart says what it
/// came from.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// When the run started, UTC (`2026-11-25 14:03 UTC`).
    pub date: String,
    pub workers: usize,
    pub rounds: usize,
    /// Timed repetitions per child process (after one warm-up).
    pub reps: usize,
    /// `--quick`: small sizes, few rounds; a check that everything runs, not a measurement.
    pub quick: bool,
    /// Logical CPUs the machine offers, and its CPU model as `/proc/cpuinfo` names it.
    pub cpus: usize,
    pub cpu: String,
}

/// What every output of a `--quick` run says about itself.
pub const QUICK_WARNING: &str =
    "--quick run: small sizes and few rounds, a check that every system runs and computes the right results; NOT FOR COMPARISON";

impl RunInfo {
    pub fn now(workers: usize, rounds: usize, reps: usize, quick: bool) -> RunInfo {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        RunInfo { date: utc_now(), workers, rounds, reps, quick, cpus, cpu }
    }

    /// One line: date, workers, rounds × reps, machine.
    pub fn line(&self) -> String {
        format!(
            "{}; {} workers; {} rounds × {} reps; {} × {}",
            self.date, self.workers, self.rounds, self.reps, self.cpus, self.cpu
        )
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, no time-zone data).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil: shift the epoch to 0000-03-01, split into 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Median, min and max of one row of one system.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: u64,
    pub max: u64,
}

pub fn summary(samples: &[Sample], row: &str, sys: Sys) -> Option<Summary> {
    let mut v: Vec<u64> = samples.iter().filter(|s| s.row == row && s.sys == sys).map(|s| s.ns).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    let median = if v.len() % 2 == 1 { v[m] as f64 } else { (v[m - 1] + v[m]) as f64 / 2.0 };
    Some(Summary { median, min: v[0], max: v[v.len() - 1] })
}

/// A duration in ns, in a readable unit.
pub fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn progress_line(spec: &Spec, samples: &[Sample]) -> String {
    let mut line = spec.name.clone();
    for row in spec.rows() {
        if spec.rows().len() > 1 {
            let _ = write!(line, " [{row}]");
        }
        for sys in SYSTEMS {
            if let Some(s) = summary(samples, &row, sys) {
                let _ = write!(line, " {sys} {}", human(s.median));
            }
        }
    }
    line
}

struct Row {
    name: String,
    /// Whether its results were checked against an expected value (all but the CPU-time
    /// and latency rows, which compute nothing).
    checked: bool,
    cells: Vec<Option<Summary>>,
    vs_go: Option<f64>,
    vs_best: Option<f64>,
    /// An oversubscription row's right-sized row, and how many runs of the system share
    /// the cores on it (2 for `-two`: 1.00 then means as fast as one after the other).
    base: Option<(String, f64)>,
}

fn rows(specs: &[Spec], samples: &[Sample]) -> Vec<Row> {
    let mut out = Vec::new();
    for spec in specs {
        for row in spec.rows() {
            let cells: Vec<_> = SYSTEMS.iter().map(|&s| summary(samples, &row, s)).collect();
            let filch = cells[0].map(|s| s.median);
            let vs_go = filch.zip(cells[1]).map(|(f, g)| f / g.median);
            let best_peer = cells[1..].iter().flatten().map(|s| s.median).fold(f64::INFINITY, f64::min);
            let vs_best = filch.filter(|_| best_peer.is_finite()).map(|f| f / best_peer);
            let sharing = if spec.load == Load::Two { 2.0 } else { 1.0 };
            let (checked, base) = (spec.expected().is_some(), spec.base.clone().map(|b| (b, sharing)));
            out.push(Row { name: row, checked, cells, vs_go, vs_best, base });
        }
    }
    out
}

fn cell(s: Option<Summary>) -> String {
    match s {
        Some(s) => format!("{} [{}–{}]", human(s.median), human(s.min as f64), human(s.max as f64)),
        None => "—".into(),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}"))
}

/// The markdown table printed at the end (and pasted into docs/BENCHMARKS.md), under a
/// line with the run's details.
fn table(info: &RunInfo, rows: &[Row]) -> String {
    let mut t = String::new();
    if info.quick {
        let _ = writeln!(t, "**{QUICK_WARNING}.**\n");
    }
    let _ = writeln!(t, "filch vs Go, rayon, tokio — {}; median [min–max].\n", info.line());
    t.push_str("| workload | filch | Go | rayon | tokio | filch÷Go | filch÷best peer |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let cells: Vec<String> = r.cells.iter().map(|c| cell(*c)).collect();
        let mark = if r.checked { "" } else { " \\*" };
        let _ = writeln!(
            t,
            "| {}{mark} | {} | {} | {} |",
            r.name,
            cells.join(" | "),
            ratio(r.vs_go),
            ratio(r.vs_best)
        );
    }
    if rows.iter().any(|r| !r.checked) {
        t.push_str(
            "\n\\* CPU time or latency: nothing computed, so nothing to check. Every other row's \
             result was checked on every side.\n",
        );
    }
    oversubscription(&mut t, rows);
    t
}

/// The oversubscription rows against each system's own right-sized row (`-x4`: four times
/// the workers; `-two`: two children of the system at once).
fn oversubscription(t: &mut String, rows: &[Row]) {
    let pairs: Vec<(&Row, &Row, f64)> = rows
        .iter()
        .filter_map(|r| {
            let (base, sharing) = r.base.as_ref()?;
            Some((r, rows.iter().find(|b| &b.name == base)?, *sharing))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    t.push_str(
        "\nOversubscription: each system's median on the row against its own median on the \
         right-sized row (`-x4`: 4× the workers; `-two`: two processes of the system at once, \
         each with the right-sized workers, so against twice the right-sized median: two runs \
         share the cores). 1.00 = no loss; filch's bar is 1.5.\n\n",
    );
    t.push_str("| workload | filch | Go | rayon | tokio |\n|---|---|---|---|---|\n");
    for (r, b, sharing) in pairs {
        let cells: Vec<String> = r
            .cells
            .iter()
            .zip(&b.cells)
            .map(|(c, b)| ratio(c.zip(*b).map(|(c, b)| c.median / (sharing * b.median))))
            .collect();
        let _ = writeln!(t, "| {} | {} |", r.name, cells.join(" | "));
    }
}

/// One line per sample; the run's details repeat on every line so that each stands alone
/// (and a `--quick` sample cannot pass for a real one when files are merged).
fn csv(info: &RunInfo, samples: &[Sample]) -> String {
    let mut c = String::from("workload,system,round,ns,date,workers,rounds,reps,quick\n");
    for s in samples {
        let _ = writeln!(
            c,
            "{},{},{},{},{},{},{},{},{}",
            s.row, s.sys, s.round, s.ns, info.date, info.workers, info.rounds, info.reps, info.quick
        );
    }
    c
}

/// A JSON string literal (the CPU model is the only free text; quotes and backslashes
/// are escaped, control characters dropped).
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                o.push('\\');
                o.push(ch);
            }
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json(info: &RunInfo, rows: &[Row], samples: &[Sample]) -> String {
    let mut j = String::from("{\n");
    let _ = writeln!(j, "  \"date\": {},", json_str(&info.date));
    let _ = writeln!(j, "  \"workers\": {},", info.workers);
    let _ = writeln!(j, "  \"rounds\": {},", info.rounds);
    let _ = writeln!(j, "  \"reps_per_round\": {},", info.reps);
    let _ = writeln!(j, "  \"quick\": {},", info.quick);
    let _ = writeln!(j, "  \"for_comparison\": {},", !info.quick);
    if info.quick {
        let _ = writeln!(j, "  \"note\": {},", json_str(QUICK_WARNING));
    }
    let _ = writeln!(j, "  \"cpus\": {},", info.cpus);
    let _ = writeln!(j, "  \"cpu\": {},", json_str(&info.cpu));
    j.push_str("  \"results\": [\n");
    let mut first = true;
    for r in rows {
        for (sys, c) in SYSTEMS.iter().zip(&r.cells) {
            let Some(c) = c else { continue };
            let ns: Vec<String> = samples
                .iter()
                .filter(|s| s.row == r.name && s.sys == *sys)
                .map(|s| s.ns.to_string())
                .collect();
            if !first {
                j.push_str(",\n");
            }
            first = false;
            let _ = write!(
                j,
                "    {{\"workload\": \"{}\", \"system\": \"{sys}\", \"checked\": {}, \"median_ns\": {}, \"min_ns\": {}, \"max_ns\": {}, \"samples_ns\": [{}]}}",
                r.name,
                r.checked,
                c.median,
                c.min,
                c.max,
                ns.join(", ")
            );
        }
    }
    j.push_str("\n  ]\n}\n");
    j
}

/// Text for SVG: `&`, `<` and `>` escaped.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Grouped horizontal bars: each system's median relative to filch's (filch = 1; lower is
/// faster), capped at 4× so one outlier does not flatten the rest. A whisker across each
/// bar spans that system's min–max (also relative to filch's median); one that runs past
/// the cap ends in an arrow. The heading carries the run's details, and a `--quick` run
/// says in red that it is not for comparison.
fn svg(info: &RunInfo, rows: &[Row]) -> String {
    const COLORS: [&str; 4] = ["#d9480f", "#1971c2", "#2f9e44", "#7048e8"];
    const CAP: f64 = 4.0;
    let (left, width, bar, gap) = (170.0, 520.0, 9.0, 14.0);
    let group = bar * 4.0 + gap;
    let top = if info.quick { 100.0 } else { 82.0 };
    let height = top + group * rows.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        left + width + 60.0
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" font-size=\"14\">Time relative to filch (1.0 = filch; shorter is faster; capped at {CAP}×)</text>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"37\" fill=\"#444\">{}; bars: median, whiskers: min–max</text>",
        xml(&info.line())
    );
    let mut legend_y = 50.0;
    if info.quick {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"54\" fill=\"#c92a2a\" font-weight=\"bold\">--quick run (small sizes, few rounds): NOT FOR COMPARISON</text>"
        );
        legend_y = 66.0;
    }
    for (k, sys) in SYSTEMS.iter().enumerate() {
        let x = left + k as f64 * 110.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{legend_y}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{sys}</text>",
            COLORS[k],
            x + 14.0,
            legend_y + 9.0
        );
    }
    let scale = |rel: f64| left + (rel.min(CAP) / CAP) * width;
    for (i, r) in rows.iter().enumerate() {
        let y0 = top + i as f64 * group;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar * 2.0 + 3.0,
            xml(&r.name)
        );
        let Some(base) = r.cells[0].map(|c| c.median) else { continue };
        for (k, c) in r.cells.iter().enumerate() {
            let Some(c) = c else { continue };
            let rel = c.median / base;
            let y = y0 + k as f64 * bar;
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.85\"/>",
                scale(rel) - left,
                bar - 1.0,
                COLORS[k]
            );
            // The whisker: min–max, drawn on the bar's middle line with end ticks.
            let (lo, hi) = (c.min as f64 / base, c.max as f64 / base);
            let (x1, x2, ym) = (scale(lo), scale(hi), y + (bar - 1.0) / 2.0);
            let _ = writeln!(
                s,
                "<path d=\"M{x1:.1} {ym:.1}H{x2:.1}M{x1:.1} {:.1}V{:.1}\" stroke=\"#111\" stroke-width=\"1\" fill=\"none\"/>",
                y + 1.0,
                y + bar - 2.0
            );
            if hi > CAP {
                let _ = writeln!(
                    s,
                    "<path d=\"M{x2:.1} {:.1}L{:.1} {ym:.1}L{x2:.1} {:.1}\" fill=\"#111\"/>",
                    y + 1.0,
                    x2 + 4.0,
                    y + bar - 2.0
                );
            } else {
                let _ = writeln!(
                    s,
                    "<path d=\"M{x2:.1} {:.1}V{:.1}\" stroke=\"#111\" stroke-width=\"1\"/>",
                    y + 1.0,
                    y + bar - 2.0
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\">{rel:.2}</text>",
                scale(hi.max(rel)) + if hi > CAP { 7.0 } else { 3.0 },
                y + bar - 1.5
            );
        }
    }
    // A scale under the bars: 0×..4×, the 1× line (filch) dashed across the chart.
    let axis_y = height - 38.0;
    for t in 0..=CAP as u32 {
        let x = left + width * f64::from(t) / CAP;
        let (y1, style) = if t == 1 {
            (top - 6.0, "stroke=\"#444\" stroke-dasharray=\"3,3\"")
        } else {
            (axis_y - 4.0, "stroke=\"#444\"")
        };
        let _ = writeln!(s, "<line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{axis_y}\" {style}/>");
        let _ = writeln!(s, "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{t}×</text>", axis_y + 13.0);
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#444\"/>",
        left + width
    );
    s.push_str("</svg>\n");
    s
}

pub fn write_all(info: &RunInfo, specs: &[Spec], samples: &[Sample], out: &Path) -> Result<(), String> {
    let rows = rows(specs, samples);
    let t = table(info, &rows);
    print!("\n{t}");
    if info.quick {
        println!("\n{QUICK_WARNING}");
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, body: String| {
        let p = out.join(name);
        std::fs::write(&p, body).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("results.csv", csv(info, samples))?;
    write("results.json", json(info, &rows, samples))?;
    write("table.md", t)?;
    write("chart.svg", svg(info, &rows))?;
    eprintln!("compare: wrote results.csv, results.json, table.md, chart.svg under {}", out.display());
    Ok(())
}
