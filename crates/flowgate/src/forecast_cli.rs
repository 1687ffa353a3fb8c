//! `flowgate forecast --input FILE.csv --horizon N --output OUT.csv [--season auto|N]`:
//! forecasts each series of a long-form CSV (`series,timestamp,value`, the `series`
//! column optional) with [`flowgate_insight::forecast`], writing
//! `series,step,timestamp,forecast,lo80,hi80,lo95,hi95`.
//!
//! Defined behaviour for bad rows: an empty or non-numeric value is left out (the gap is
//! filled by a straight line, as a missing time is); rows may come in any order; a time
//! given twice has the mean of its values; a series of one point, or constant, forecasts
//! itself with intervals of no width; a series with no number is said and skipped. A time
//! that cannot be read, a missing column, or a horizon of 0 stop it with the file and line.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use flowgate_insight::forecast::{Season, forecast, regular};

use crate::csv_io::{Input, format_time, number};

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The CSV: `series,timestamp,value` with a header (`series` optional).
    #[arg(long, required_unless_present = "evaluate")]
    input: Option<PathBuf>,
    /// How many steps ahead (at each series' own step).
    #[arg(long, required_unless_present = "evaluate")]
    horizon: Option<usize>,
    /// Where the forecasts go.
    #[arg(long, required_unless_present = "evaluate")]
    output: Option<PathBuf>,
    /// `auto` (a day and a week, where the series shows them) or a season in points
    /// (1: none).
    #[arg(long, default_value = "auto")]
    season: String,
    /// Instead, forecast the built-in simulated hourly sets and print the errors against
    /// the seasonal naive and Naive2.
    #[arg(long, conflicts_with_all = ["input", "output"])]
    pub evaluate: bool,
}

/// What was written: series forecast, and those skipped (with why).
pub struct Written {
    pub series: usize,
    pub skipped: Vec<String>,
}

pub fn run(args: &ForecastArgs) -> Result<Written, String> {
    let (Some(input_path), Some(output_path), Some(horizon)) =
        (&args.input, &args.output, args.horizon)
    else {
        return Err("--input, --horizon and --output are all needed".into());
    };
    if horizon == 0 {
        return Err("--horizon must be at least 1".into());
    }
    let season =
        match args.season.trim() {
            "auto" => Season::Auto,
            s => Season::Points(s.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("--season {s:?}: `auto` or a number of points (1 or more)")
            })?),
        };
    let mut input = Input::open(input_path)?;
    let (tc, vc) = (input.column("timestamp")?, input.column("value")?);
    let sc = input.find("series");
    let mut order: Vec<String> = Vec::new();
    let mut points: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    let mut record = csv::StringRecord::new();
    while let Some(line) = input.read(&mut record)? {
        let name = sc
            .and_then(|c| record.get(c))
            .unwrap_or("")
            .trim()
            .to_string();
        let t = input.time(&record, tc, line)?;
        let v = number(&record, vc);
        if !points.contains_key(&name) {
            order.push(name.clone());
        }
        points.entry(name).or_default().push((t, v));
    }
    let mut writer = csv::Writer::from_path(output_path)
        .map_err(|e| format!("{}: {e}", output_path.display()))?;
    writer
        .write_record([
            "series",
            "step",
            "timestamp",
            "forecast",
            "lo80",
            "hi80",
            "lo95",
            "hi95",
        ])
        .map_err(|e| e.to_string())?;
    let mut written = Written {
        series: 0,
        skipped: Vec::new(),
    };
    for name in order {
        let Some((first, step, values)) = regular(&points[&name]) else {
            written.skipped.push(format!("{name:?}: no numeric value"));
            continue;
        };
        let f = forecast(&values, step, horizon, season);
        let last = first.saturating_add(step.saturating_mul(values.len() as i64 - 1));
        for (j, s) in f.steps.iter().enumerate() {
            let t = last.saturating_add(step.saturating_mul(j as i64 + 1));
            let num = |x: f64| format!("{x:.6}");
            writer
                .write_record([
                    name.clone(),
                    (j + 1).to_string(),
                    format_time(t),
                    num(s.forecast),
                    num(s.lo80),
                    num(s.hi80),
                    num(s.lo95),
                    num(s.hi95),
                ])
                .map_err(|e| e.to_string())?;
        }
        written.series += 1;
    }
    writer.flush().map_err(|e| e.to_string())?;
    Ok(written)
}

/// `--evaluate`: the simulated sets, as text.
pub fn evaluate() -> String {
    use flowgate_clock::{Clock, SystemClock};
    let r = flowgate_insight::forecast::eval::evaluate(10, 24 * 35, 48);
    // The time of a 90-day hourly horizon from 60 days of history, per series.
    let y = flowgate_insight::forecast::eval::series(0, 1, 24 * 60);
    let started = SystemClock.now();
    let runs = 10;
    for _ in 0..runs {
        std::hint::black_box(forecast(&y, 3600, 24 * 90, Season::Auto));
    }
    let per = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let timing = format!("a 90-day hourly horizon from 60 days of history: {per:.1} ms a series\n");
    timing
        + &format!(
            "{} hourly series, 35 days each, forecast 48 hours ahead\n\
         {:<22} {:>8} {:>8}\n\
         {:<22} {:>8.2} {:>8.3}\n\
         {:<22} {:>8.2} {:>8.3}\n\
         {:<22} {:>8.2} {:>8.3}\n\
         80% intervals cover {:.1}%, 95% intervals {:.1}%\n",
            r.series,
            "method",
            "sMAPE",
            "MASE",
            "flowgate",
            r.ours.0,
            r.ours.1,
            "seasonal naive (24)",
            r.snaive.0,
            r.snaive.1,
            "Naive2 (24)",
            r.naive2.0,
            r.naive2.1,
            100.0 * r.cover80,
            100.0 * r.cover95,
        )
}
