//! Summaries of the samples: the progress line, the table, CSV, JSON and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Sample, Spec, Sys, SYSTEMS};

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
    cells: Vec<Option<Summary>>,
    vs_go: Option<f64>,
    vs_best: Option<f64>,
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
            out.push(Row { name: row, cells, vs_go, vs_best });
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

/// The markdown table printed at the end (and pasted into docs/BENCHMARKS.md).
fn table(rows: &[Row]) -> String {
    let mut t = String::from("| workload | filch | Go | rayon | tokio | filch÷Go | filch÷best peer |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let cells: Vec<String> = r.cells.iter().map(|c| cell(*c)).collect();
        let _ =
            writeln!(t, "| {} | {} | {} | {} |", r.name, cells.join(" | "), ratio(r.vs_go), ratio(r.vs_best));
    }
    t
}

fn csv(samples: &[Sample]) -> String {
    let mut c = String::from("workload,system,round,ns\n");
    for s in samples {
        let _ = writeln!(c, "{},{},{},{}", s.row, s.sys, s.round, s.ns);
    }
    c
}

fn json(workers: usize, rounds: usize, reps: usize, quick: bool, rows: &[Row], samples: &[Sample]) -> String {
    let mut j = String::new();
    let _ = write!(j, "{{\n  \"workers\": {workers},\n  \"rounds\": {rounds},\n  \"reps_per_round\": {reps},\n  \"quick\": {quick},\n  \"results\": [\n");
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
                "    {{\"workload\": \"{}\", \"system\": \"{sys}\", \"median_ns\": {}, \"min_ns\": {}, \"max_ns\": {}, \"samples_ns\": [{}]}}",
                r.name,
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

/// Grouped horizontal bars: each system's median relative to filch's (filch = 1; lower is
/// faster), capped at 4× so one outlier does not flatten the rest.
fn svg(rows: &[Row]) -> String {
    const COLORS: [&str; 4] = ["#d9480f", "#1971c2", "#2f9e44", "#7048e8"];
    const CAP: f64 = 4.0;
    let (left, width, bar, gap) = (170.0, 520.0, 9.0, 14.0);
    let group = bar * 4.0 + gap;
    let height = 60.0 + group * rows.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        left + width + 60.0
    );
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" font-size=\"14\">Time relative to filch (1.0 = filch; shorter is faster; capped at {CAP}×)</text>");
    for (k, sys) in SYSTEMS.iter().enumerate() {
        let x = left + k as f64 * 110.0;
        let _ = writeln!(s, "<rect x=\"{x}\" y=\"30\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"39\">{sys}</text>", COLORS[k], x + 14.0);
    }
    for (i, r) in rows.iter().enumerate() {
        let y0 = 55.0 + i as f64 * group;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar * 2.0 + 3.0,
            r.name
        );
        let Some(base) = r.cells[0].map(|c| c.median) else { continue };
        for (k, c) in r.cells.iter().enumerate() {
            let Some(c) = c else { continue };
            let rel = c.median / base;
            let w = (rel.min(CAP) / CAP) * width;
            let y = y0 + k as f64 * bar;
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>",
                bar - 1.0,
                COLORS[k]
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\">{rel:.2}</text>",
                left + w + 3.0,
                y + bar - 1.5
            );
        }
    }
    // A scale under the bars: 0×..4×, the 1× line (filch) dashed across the chart.
    let axis_y = height - 38.0;
    for t in 0..=CAP as u32 {
        let x = left + width * f64::from(t) / CAP;
        let (y1, style) = if t == 1 {
            (48.0, "stroke=\"#444\" stroke-dasharray=\"3,3\"")
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

pub fn write_all(
    workers: usize,
    rounds: usize,
    reps: usize,
    quick: bool,
    specs: &[Spec],
    samples: &[Sample],
    out: &Path,
) -> Result<(), String> {
    let rows = rows(specs, samples);
    let t = table(&rows);
    println!(
        "\nfilch vs Go, rayon, tokio — {workers} workers, {rounds} rounds × {reps} reps, median [min–max]{}\n",
        if quick { " (--quick sizes)" } else { "" }
    );
    print!("{t}");
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, body: String| {
        let p = out.join(name);
        std::fs::write(&p, body).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("results.csv", csv(samples))?;
    write("results.json", json(workers, rounds, reps, quick, &rows, samples))?;
    write("table.md", t)?;
    write("chart.svg", svg(&rows))?;
    eprintln!("compare: wrote results.csv, results.json, table.md, chart.svg under {}", out.display());
    Ok(())
}
