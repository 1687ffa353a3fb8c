//! `flowgate cost`: a spend report read from the ledger in the config's data directory
//! (the gateway must be stopped, or the ledger is its to hold: a running gateway answers
//! the same on its admin listener, `GET /api/v1/cost/summary`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use flowgate_cost::ledger::{Dim, Ledger, Query, Retention, Step, Totals};

#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// The gateway's configuration (its `[server] data_dir` or `[cost] ledger`).
    #[arg(long, short, default_value = "flowgate.toml")]
    config: PathBuf,
    /// How far back: `90m`, `24h`, `30d`.
    #[arg(long, default_value = "24h")]
    window: String,
    /// Group by one of key, team, route, model, provider (default: each in turn).
    #[arg(long, value_parser = ["key", "team", "route", "model", "provider"])]
    by: Option<String>,
    /// Groups shown per table.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

pub fn run(args: &CostArgs, now: u64) -> anyhow::Result<()> {
    let config = flowgate_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(path) = config.cost.ledger.clone() else {
        bail!(
            "{}: the spend ledger is kept in memory only: set [server] data_dir (or [cost] ledger) to keep it",
            args.config.display()
        );
    };
    if !path.exists() {
        bail!(
            "{}: no ledger yet (the gateway has not written one)",
            path.display()
        );
    }
    let Some(len) = flowgate_config::parse_window(&args.window) else {
        bail!(
            "--window {:?}: expected a duration such as 90m, 24h or 30d",
            args.window
        );
    };
    let retention = Retention {
        minutes: config.cost.minute_retention,
        hours: config.cost.hour_retention,
    };
    let (ledger, moved) = Ledger::open(&path, retention, now).with_context(
        || "a running gateway holds it: ask its admin listener (GET /api/v1/cost/summary)",
    )?;
    if let Some(m) = moved {
        bail!(
            "{} was not a ledger ({}); it was moved to {}",
            path.display(),
            m.why,
            m.to.display()
        );
    }
    let q = Query {
        from: now.saturating_sub(len),
        to: now + 1,
        now,
        filter: Vec::new(),
    };
    let total = ledger
        .summary(&q, None)?
        .first()
        .map(|(_, t)| *t)
        .unwrap_or_default();
    println!(
        "spend from {} to {} ({})",
        flowgate_clock::rfc3339_millis(q.from * 1000),
        flowgate_clock::rfc3339_millis(now * 1000),
        path.display()
    );
    println!(
        "  spent ${}  saved by the cache ${}  requests {} ({} from the cache, {} estimated)",
        total.usd.normalize(),
        total.saved_usd.normalize(),
        total.requests,
        total.cache_hits,
        total.estimated
    );
    println!(
        "  tokens: input {}  output {}  cache read {}  cache write {}",
        total.input_tokens, total.output_tokens, total.cache_read_tokens, total.cache_write_tokens
    );
    let dims: Vec<Dim> = match args.by.as_deref().and_then(Dim::parse) {
        Some(d) => vec![d],
        None => Dim::ALL.to_vec(),
    };
    for d in dims {
        let rows = ledger.summary(&q, Some(d))?;
        println!("\nby {}:", d.as_str());
        println!(
            "  {:<32} {:>14} {:>14} {:>10}",
            d.as_str(),
            "spent $",
            "saved $",
            "requests"
        );
        for (name, t) in rows.iter().take(args.top) {
            row(if name.is_empty() { "(none)" } else { name }, t);
        }
        if rows.len() > args.top {
            println!("  ... {} more", rows.len() - args.top);
        }
    }
    let step = if len > 2 * 86_400 {
        Step::Day
    } else {
        Step::Hour
    };
    println!("\nper {}:", if step == Step::Day { "day" } else { "hour" });
    for (at, t) in ledger.series(&q, step)? {
        row(&flowgate_clock::rfc3339_millis(at * 1000)[..16], &t);
    }
    Ok(())
}

fn row(name: &str, t: &Totals) {
    println!(
        "  {:<32} {:>14} {:>14} {:>10}",
        name,
        t.usd.normalize().to_string(),
        t.saved_usd.normalize().to_string(),
        t.requests
    );
}
