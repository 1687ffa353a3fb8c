//! `flowgate advise [--database-url URL] [--query "SELECT ..."]`: the database advisor's
//! report ([`flowgate_advisor::report`]). A query alone: its complexity and reasons. A
//! query and a database: also its plan's cost and the indexes proven (with HypoPG) to
//! help it. A database alone: its slow query shapes (`pg_stat_statements`), the indexes
//! that would help them, the unused and duplicate indexes, the foreign keys without one.
//! The connection is read-only: nothing is written to the database; a query given is
//! run only with `--analyze`.

use clap::Args;
use flowgate_advisor::report::{self, Settings};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The database (`postgres://user:password@host:port/db`); `FLOWGATE_DATABASE_URL` when
    /// not given.
    #[arg(long, env = "FLOWGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// One query to analyze instead of the database's slow shapes.
    #[arg(long)]
    query: Option<String>,
    /// A shape is slow from this mean time, in milliseconds.
    #[arg(long, default_value_t = 500.0)]
    slow_ms: f64,
    /// An index is recommended when it lowers a query's estimated cost by this share.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Runs the query given (`EXPLAIN ANALYZE`, in a read-only session) for its real time
    /// and what only a run shows; a plain `SELECT` only.
    #[arg(long)]
    analyze: bool,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// The report, or what went wrong (bad SQL, a database that cannot be reached...).
pub async fn run(args: &AdviseArgs) -> anyhow::Result<String> {
    if !(0.0..1.0).contains(&args.threshold) || args.threshold == 0.0 {
        anyhow::bail!(
            "--threshold: {} is not a share between 0 and 1",
            args.threshold
        );
    }
    let settings = Settings {
        slow_ms: args.slow_ms,
        threshold: args.threshold,
        analyze: args.analyze,
        ..Settings::default()
    };
    let v = match (&args.database_url, &args.query) {
        (None, None) => anyhow::bail!("give --query, --database-url, or both"),
        (None, Some(q)) => {
            report::query(q).map_err(|e| anyhow::anyhow!("the query does not parse: {e}"))?
        }
        (Some(url), q) => {
            if let Some(q) = q {
                // Bad SQL is said before the database is asked.
                report::query(q).map_err(|e| anyhow::anyhow!("the query does not parse: {e}"))?;
            }
            let db = flowgate_advisor::Database::connect(
                url,
                false,
                &flowgate_advisor::db::default_tls(),
            )
            .await?;
            match q {
                Some(q) => report::query_on(&db, q, settings).await?,
                None => report::database(&db, settings).await?,
            }
        }
    };
    Ok(if args.format == "json" {
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        text(&v)
    })
}

fn complexity(out: &mut String, c: &Value) {
    out.push_str(&format!("complexity {}/10\n", c["score"]));
    for r in c["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  +{:.1} {}: {}\n",
            r["points"].as_f64().unwrap_or(0.0),
            r["kind"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        ));
    }
}

fn recommendations(out: &mut String, v: &Value) {
    let list = v["recommendations"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out.push_str("no index recommended: none lowers the estimated cost enough\n");
    }
    for r in &list {
        out.push_str(&format!(
            "recommend: {}\n  size {} bytes; {} writes to the table so far ({:.2}/s), each also writing it\n",
            r["statement"].as_str().unwrap_or(""),
            r["size_bytes"],
            r["write_overhead"]["table_writes"],
            r["write_overhead"]["writes_per_second"].as_f64().unwrap_or(0.0)
        ));
        for h in r["helps"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  helps ({} calls): cost {:.0} -> {:.0} (-{:.0}%): {}\n",
                h["calls"],
                h["cost_before"].as_f64().unwrap_or(0.0),
                h["cost_after"].as_f64().unwrap_or(0.0),
                h["cost_lower_by_percent"].as_f64().unwrap_or(0.0),
                h["query"].as_str().unwrap_or("")
            ));
        }
    }
}

/// The report for a reader.
fn text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(q) = v["query"].as_str() {
        out.push_str(&format!("query: {q}\n"));
        complexity(&mut out, &v["complexity"]);
        if let Some(cost) = v["plan"]["total_cost"].as_f64() {
            out.push_str(&format!("estimated cost: {cost:.0}\n"));
            if let Some(ms) = v["execution_ms"].as_f64() {
                out.push_str(&format!("real time: {ms:.2} ms\n"));
            }
            recommendations(&mut out, v);
        }
        return out;
    }
    let slow = v["slow_queries"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!(
        "slow queries (mean over {} ms): {}\n",
        v["settings"]["slow_ms"],
        slow.len()
    ));
    for q in &slow {
        out.push_str(&format!(
            "- {:.1} ms mean x {} calls = {:.0} ms: {}\n  ",
            q["mean_ms"].as_f64().unwrap_or(0.0),
            q["calls"],
            q["total_ms"].as_f64().unwrap_or(0.0),
            q["query"].as_str().unwrap_or("")
        ));
        complexity(&mut out, &q["complexity"]);
    }
    recommendations(&mut out, v);
    for (key, what) in [
        ("unused_indexes", "unused (never scanned)"),
        ("duplicate_indexes", "duplicate"),
        ("unindexed_foreign_keys", "foreign key without an index"),
    ] {
        for i in v[key].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{what}: {}\n",
                i["statement"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
