//! `flowgate anomalies --input FILE.csv --output OUT.csv`: scores a series offline with the
//! gateway's detector ([`flowgate_insight::anomaly`]). The input is any CSV with a header,
//! a time column and a numeric column; the output is the same rows, every column kept, with
//! an `anomaly_score` column in [0, 1] added, each computed from the rows up to and
//! including its own, in file order.
//!
//! Defined behaviour for bad rows: a value that is empty or not a number scores 0 and is not
//! learned from; a time that is none of the forms read is an error naming its line; rows are
//! taken in file order (unsorted or repeated times are scored as they come, their lags read
//! by time).

use std::path::PathBuf;

use clap::Args;
use flowgate_insight::anomaly::Detector;

use crate::csv_io::{Input, number};

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    /// The CSV to score (with a header line).
    #[arg(long, required_unless_present = "evaluate")]
    input: Option<PathBuf>,
    /// Where the scored CSV goes.
    #[arg(long, required_unless_present = "evaluate")]
    output: Option<PathBuf>,
    /// The time column: `YYYY-MM-DD HH:MM:SS` (UTC), ISO 8601 / RFC 3339, or Unix seconds.
    #[arg(long, default_value = "timestamp")]
    time_column: String,
    /// The numeric column to score.
    #[arg(long, default_value = "value")]
    value_column: String,
    /// Instead of scoring a file, run the detector on the built-in labelled sets
    /// (simulated series with injected incidents) and print how it did.
    #[arg(long, conflicts_with_all = ["input", "output"])]
    pub evaluate: bool,
    /// With `--evaluate`: how many seeds of the sets (27 series each).
    #[arg(long, default_value_t = 2, requires = "evaluate")]
    pub seeds: u64,
}

/// Scores `args.input` into `args.output`: the rows scored and the highest score.
pub fn run(args: &AnomaliesArgs) -> Result<(usize, f64), String> {
    let (Some(input_path), Some(output_path)) = (&args.input, &args.output) else {
        return Err("--input and --output are both needed".into());
    };
    let mut input = Input::open(input_path)?;
    let (tc, vc) = (
        input.column(&args.time_column)?,
        input.column(&args.value_column)?,
    );
    let mut writer = csv::Writer::from_path(output_path)
        .map_err(|e| format!("{}: {e}", output_path.display()))?;
    let mut out_header = input.headers.clone();
    out_header.push_field("anomaly_score");
    writer
        .write_record(&out_header)
        .map_err(|e| e.to_string())?;
    let mut detector = Detector::new();
    let (mut rows, mut worst) = (0, 0.0_f64);
    let mut record = csv::StringRecord::new();
    while let Some(line) = input.read(&mut record)? {
        let t = input.time(&record, tc, line)?;
        let v = number(&record, vc);
        let score = detector.observe(t, v).score;
        worst = worst.max(score);
        record.push_field(&format!("{score:.6}"));
        writer.write_record(&record).map_err(|e| e.to_string())?;
        rows += 1;
    }
    writer.flush().map_err(|e| e.to_string())?;
    Ok((rows, worst))
}
