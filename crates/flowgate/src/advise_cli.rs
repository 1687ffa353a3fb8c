//! `flowgate advise [--database-url URL | --config FILE [--database NAME]] [--query "SELECT
//! ..."]`: the database advisor's report ([`flowgate_advisor::report`]). With `--config`, a
//! database of its `[[databases]]` (the only one, or `--database`): its URL, TLS settings,
//! `slow`, `threshold` and `allow_analyze`. A query alone: its complexity and reasons. A
//! query and a database: also its plan's cost and the indexes proven (with HypoPG) to
//! help it. A database alone: its slow query shapes (`pg_stat_statements`), the indexes
//! that would help them, the unused and duplicate indexes, the foreign keys without one,
//! the tables' health. `--log FILE`: the slow shapes of PostgreSQL's own log instead
//! (`log_min_duration_statement`; stderr, csvlog or jsonlog), with a database the indexes
//! proven to help them (the log's entries of that database only, when it says).
//! The connection is read-only: nothing is written to the database; a query given is
//! run only with `--analyze`.

use clap::Args;
use flowgate_advisor::report::{self, Settings};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The database (`postgres://user:password@host:port/db`); `FLOWGATE_DATABASE_URL` when
    /// not given.
    #[arg(long, env = "FLOWGATE_DATABASE_URL", conflicts_with = "config")]
    database_url: Option<String>,
    /// A flowgate config whose `[[databases]]` names the database.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Which of the config's databases (when it has several).
    #[arg(long, requires = "config")]
    database: Option<String>,
    /// One query to analyze instead of the database's slow shapes.
    #[arg(long, conflicts_with = "log")]
    query: Option<String>,
    /// PostgreSQL's log (`-`: standard input) to take the slow shapes from instead of
    /// `pg_stat_statements` (the entries `log_min_duration_statement` writes; stderr,
    /// csvlog or jsonlog).
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// A shape is slow from this mean time, in milliseconds (500; the database's `slow`
    /// with --config).
    #[arg(long)]
    slow_ms: Option<f64>,
    /// An index is recommended when it lowers a query's estimated cost by this share (0.5;
    /// the database's `threshold` with --config).
    #[arg(long)]
    threshold: Option<f64>,
    /// Runs the query given (`EXPLAIN ANALYZE`, in a read-only session) for its real time
    /// and what only a run shows; a plain `SELECT` only.
    #[arg(long)]
    analyze: bool,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// Where the database is and how to reach it.
struct Target {
    url: String,
    tls: flowgate_advisor::db::Tls,
    settings: Settings,
}

/// The database `--config` (and `--database`) names, with its settings.
fn configured(path: &std::path::Path, name: Option<&str>) -> anyhow::Result<Target> {
    let config = flowgate_config::load_with(path, flowgate_gateway::check_external)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    if config.databases.is_empty() {
        anyhow::bail!("{} has no [[databases]]", path.display());
    }
    let d = match flowgate_config::pick_database(&config.databases, name) {
        Ok(Some(d)) => d,
        Ok(None) => anyhow::bail!("{} has no [[databases]]", path.display()),
        Err(flowgate_config::PickError::Several { names }) => {
            anyhow::bail!("--database: which one? ({names})")
        }
        Err(flowgate_config::PickError::Unknown { name, names }) => {
            anyhow::bail!("--database: no database {name:?} ({names})")
        }
    };
    Ok(Target {
        url: d.url.expose().to_string(),
        tls: flowgate_gateway::tls::database_client(&d.tls)
            .map_err(|e| anyhow::anyhow!("[databases.tls] {e}"))?,
        settings: Settings::of(d),
    })
}

/// The report, or what went wrong (bad SQL, a database that cannot be reached...).
pub async fn run(args: &AdviseArgs) -> anyhow::Result<String> {
    let target = match (&args.config, &args.database_url) {
        (Some(path), _) => Some(configured(path, args.database.as_deref())?),
        (None, Some(url)) => Some(Target {
            url: url.clone(),
            tls: flowgate_advisor::db::default_tls(),
            settings: Settings::default(),
        }),
        (None, None) => None,
    };
    let mut settings = target
        .as_ref()
        .map_or_else(Settings::default, |t| t.settings);
    if let Some(ms) = args.slow_ms {
        settings.slow_ms = ms;
    }
    if let Some(t) = args.threshold {
        if !(t > 0.0 && t < 1.0) {
            anyhow::bail!("--threshold: {t} is not a share between 0 and 1");
        }
        settings.threshold = t;
    }
    settings.analyze |= args.analyze;
    // Bad SQL is said before the database is asked.
    let alone = match &args.query {
        Some(q) => {
            Some(report::query(q).map_err(|e| anyhow::anyhow!("the query does not parse: {e}"))?)
        }
        None => None,
    };
    if target.is_none() && alone.is_none() && args.log.is_none() {
        anyhow::bail!(
            "give --query, --log, --database-url (or --config), or a database and one of the others"
        );
    }
    let db = match &target {
        Some(t) => Some(flowgate_advisor::Database::connect(&t.url, false, &t.tls).await?),
        None => None,
    };
    let v = match (&db, &args.query, &args.log) {
        (db, _, Some(path)) => {
            // Only the database's own entries, where the log says which.
            let name = match db {
                Some(db) => Some(db.name().await?),
                None => None,
            };
            let found = read_log(path, name.as_deref())?;
            report::log(db.as_ref(), &found, settings).await?
        }
        (Some(db), Some(q), None) => report::query_on(db, q, settings).await?,
        (Some(db), None, None) => report::database(db, settings).await?,
        (None, _, None) => alone.unwrap_or_default(),
    };
    shown(&v, &args.format)
}

/// The shapes of the log at `path` (`-`: standard input), read as it comes.
fn read_log(
    path: &std::path::Path,
    database: Option<&str>,
) -> anyhow::Result<flowgate_advisor::querylog::FromLog> {
    use flowgate_advisor::querylog::shapes;
    let found = if path.as_os_str() == "-" {
        shapes(std::io::stdin().lock(), database)
    } else {
        std::fs::File::open(path).and_then(|f| shapes(f, database))
    };
    found.map_err(|e| anyhow::anyhow!("cannot read the log {}: {e}", path.display()))
}

fn shown(v: &Value, format: &str) -> anyhow::Result<String> {
    Ok(if format == "json" {
        serde_json::to_string_pretty(v)? + "\n"
    } else {
        text(v)
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
    if v["source"] == "log" {
        let l = &v["log"];
        out.push_str(&format!(
            "from the log: {} timed statements in {} shapes ({} utility, {} that do not parse, {} the advisor's own left out)\n",
            l["statements"], l["shapes"], l["utility"], l["unparsed"], l["own"]
        ));
    }
    let slow = v["slow_queries"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!(
        "slow queries (mean over {} ms): {}\n",
        v["settings"]["slow_ms"].as_f64().unwrap_or(0.0),
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
    // A log read without a database: nothing proven.
    if v["recommendations"].is_array() {
        recommendations(&mut out, v);
    }
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
    let health = &v["table_health"];
    if !health.is_object() {
        return out;
    }
    out.push_str(&format!(
        "table health: {} tables checked\n",
        health["checked"]
    ));
    for t in health["tables"].as_array().into_iter().flatten() {
        for f in t["findings"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "- {} {}: {}\n",
                t["table"].as_str().unwrap_or(""),
                f["kind"].as_str().unwrap_or(""),
                f["detail"].as_str().unwrap_or("")
            ));
            if let Some(s) = f["statement"].as_str() {
                out.push_str(&format!("  fix: {s}\n"));
            }
        }
    }
    out
}
