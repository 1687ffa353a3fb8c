//! `flowgate anomalies --evaluate`: the detector on the built-in labelled sets
//! ([`flowgate_insight::anomaly::eval`]), scored at the alarm threshold (0.5) and at the
//! best one, with each kind's detections and delays and each family's false alarms.

use flowgate_clock::{Clock, SystemClock};
use flowgate_insight::anomaly::Detector;
use flowgate_insight::anomaly::eval::{Report, evaluate, suite};
use std::fmt::Write;

/// The report, as text.
pub fn run(seeds: u64) -> String {
    let sets = suite(1..=seeds.max(1));
    let started = SystemClock.now();
    let mut memory: Vec<(&'static str, usize)> = Vec::new();
    let scores: Vec<Vec<f64>> = sets
        .iter()
        .map(|s| {
            let mut d = Detector::new();
            let sc = s
                .points
                .iter()
                .map(|(t, v)| d.observe(*t, *v).score)
                .collect();
            memory.push((s.family.name(), d.memory_bytes()));
            sc
        })
        .collect();
    let took = started.elapsed().as_secs_f64();
    let at_half = evaluate(&sets, &scores, 0.5);
    let best = (1..20)
        .map(|i| evaluate(&sets, &scores, f64::from(i) * 0.05))
        .max_by(|a, b| a.normalized.total_cmp(&b.normalized))
        .unwrap_or_else(|| at_half.clone());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} series, {} points scored in {took:.2} s ({:.0} points/s)\n",
        sets.len(),
        at_half.points,
        at_half.points as f64 / took.max(1e-9)
    );
    for family in flowgate_insight::anomaly::eval::Family::ALL {
        let m: Vec<usize> = memory
            .iter()
            .filter(|(f, _)| *f == family.name())
            .map(|(_, b)| *b)
            .collect();
        let _ = writeln!(
            out,
            "memory per series, {}: {:.1} KB at most",
            family.name(),
            m.iter().copied().max().unwrap_or(0) as f64 / 1024.0
        );
    }
    let _ = writeln!(out);
    table(&mut out, &at_half);
    if best.threshold != at_half.threshold {
        let _ = writeln!(out);
        table(&mut out, &best);
    }
    out
}

fn table(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "threshold {:.2}: score {:.1} (100 perfect, 0 never alarms); {}/{} incidents found, {} false alarms",
        r.threshold, r.normalized, r.found, r.incidents, r.false_alarms
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>7} {:>14}",
        "kind", "found", "median delay"
    );
    for (kind, found, total, delay) in &r.kinds {
        let delay = delay.map_or("-".to_string(), |d| format!("{d} points"));
        let _ = writeln!(
            out,
            "  {:<14} {:>7} {:>14}",
            kind.name(),
            format!("{found}/{total}"),
            delay
        );
    }
    let _ = writeln!(
        out,
        "  {:<14} {:>7} {:>14}",
        "family", "found", "false/10k pts"
    );
    for (family, found, total, fa, points) in &r.families {
        let _ = writeln!(
            out,
            "  {:<14} {:>7} {:>14.2}",
            family.name(),
            format!("{found}/{total}"),
            *fa as f64 * 10_000.0 / (*points).max(1) as f64
        );
    }
}
