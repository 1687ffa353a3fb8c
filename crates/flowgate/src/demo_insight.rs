//! The demo's insight: the detector on simulated weeks of 5-minute traffic with incidents
//! injected (a spike, a level shift down, a missing peak: what it found, how soon, and
//! its false alarms), the forecaster on a held-out day of that traffic, and the health
//! score of the gateway the demo drove. The weeks are simulated because a demo of a few
//! seconds cannot grow weeks of history; the same detector watches the gateway's own
//! history every minute (`docs/insight.md`).

use flowgate_insight::anomaly::Detector;
use flowgate_insight::anomaly::eval::{Family, Kind, series};
use flowgate_insight::forecast::eval::smape;
use flowgate_insight::forecast::{Season, forecast};

use crate::demo_client::fetch_json;

/// The score at which the gateway opens an anomaly (`[anomalies] threshold`).
const THRESHOLD: f64 = 0.85;

/// The detector over the three incidents; lines of what it found.
fn detect(seed: u64) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [Kind::Spike, Kind::ShiftDown, Kind::MissingPeak] {
        let s = series(Family::Traffic5m, Some(kind), seed * 100 + kind as u64);
        let Some(w) = s.incident else { continue };
        let mut d = Detector::new();
        let scores: Vec<f64> = s
            .points
            .iter()
            .map(|(t, v)| d.observe(*t, *v).score)
            .collect();
        let window = &scores[w.start..w.start + w.window];
        let found = window.iter().position(|s| *s >= THRESHOLD);
        let best = window.iter().copied().fold(0.0_f64, f64::max);
        // False alarms: alarms before the incident, after the first week (learning).
        let false_alarms = scores[2016..w.start]
            .iter()
            .filter(|s| **s >= THRESHOLD)
            .count();
        let day = (s.points[w.start].0 - s.points[0].0) as f64 / 86_400.0;
        out.push(format!(
            "    {:<13} injected on day {day:>4.1}: {} (highest score {best:.2}); {false_alarms} false alarm(s) in the {:.0} days before",
            kind.name(),
            match found {
                Some(0) => "found at once".to_string(),
                Some(i) => format!("found {} min later", i * 5),
                None => "missed".to_string(),
            },
            day - 7.0
        ));
    }
    out
}

/// The forecaster on the last day of four clean weeks: its error, its intervals' cover
/// and the peak it says.
fn forecast_day(seed: u64) -> String {
    let s = series(Family::Traffic5m, None, seed);
    let y: Vec<f64> = s.points.iter().map(|(_, v)| *v).collect();
    let day = 288;
    let (train, test) = y.split_at(y.len() - day);
    let f = forecast(train, 300, day, Season::Auto);
    let mid: Vec<f64> = f.steps.iter().map(|s| s.forecast).collect();
    let covered = f
        .steps
        .iter()
        .zip(test)
        .filter(|(s, v)| **v >= s.lo80 && **v <= s.hi80)
        .count();
    let Some((peak_at, peak)) = f
        .steps
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.forecast.total_cmp(&b.1.forecast))
    else {
        return "    no forecast: the simulated series was empty".into();
    };
    format!(
        "    the next day of 5-minute traffic from 27 days (seasons {:?} found): sMAPE {:.1}%, \
         80% interval covered {:.0}% of the day; peak {:.0} requests per 5 min at {:02}:{:02} UTC (80%: {:.0}–{:.0})",
        f.seasons,
        smape(&mid, test),
        100.0 * covered as f64 / day as f64,
        peak.forecast,
        peak_at * 5 / 60,
        peak_at * 5 % 60,
        peak.lo80,
        peak.hi80
    )
}

pub async fn run(seed: u64, admin: std::net::SocketAddr) {
    println!(
        "\nInsight: the detector on simulated weeks of 5-minute traffic (anomaly at score {THRESHOLD})"
    );
    for line in detect(seed) {
        println!("{line}");
    }
    println!("  forecast");
    println!("{}", forecast_day(seed));
    match fetch_json(&format!("http://{admin}/api/v1/performance/score")).await {
        Some(v) => {
            println!(
                "  health score of the demo's gateway: {} ({})",
                v["score"],
                v["status"].as_str().unwrap_or("?")
            );
            for c in v["components"].as_array().into_iter().flatten().take(3) {
                println!(
                    "    {:<13} {:>3}  {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["score"],
                    c["why"].as_str().unwrap_or("")
                );
            }
        }
        None => println!("  health score: the admin API did not answer"),
    }
}
