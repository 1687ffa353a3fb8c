//! The flowgate command line: `serve`, `check`, `demo`, `sim`, `key`, `cost`, `anomalies`,
//! `forecast`, `report`, `openapi` and `advise`.

mod advise_cli;
mod anomalies;
mod anomaly_eval;
mod cost;
mod csv_io;
mod demo;
mod demo_balance;
mod demo_burst;
mod demo_client;
mod demo_cost;
mod demo_insight;
mod demo_peak;
mod demo_providers;
mod forecast_cli;
mod report_cli;
mod report_svg;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::runtime::Builder;

/// mimalloc: the request path allocates a few small blocks per request (header maps, ids),
/// on which glibc's malloc spent ~1.4k instructions per request
/// (docs/decisions/2026-11-23-mimalloc.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "flowgate",
    version,
    about = "A performance gateway for AI/LLM services and other slow HTTP APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short, default_value = "flowgate.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print a summary (exit 0) or its errors (exit 2).
    Check {
        #[arg(long, short, default_value = "flowgate.toml")]
        config: PathBuf,
    },
    /// Start a simulated fleet and the gateway in this process, drive a workload through
    /// them and print what happened. Needs nothing installed.
    Demo(demo::DemoArgs),
    /// Run one simulated OpenAI-compatible upstream.
    Sim(sim::SimArgs),
    /// Make a new virtual API key: prints the key (give it to the client; it is not kept)
    /// and the `hash` line for `[[auth.keys]]`. `key create --admin` makes an admin token.
    Key {
        #[command(subcommand)]
        action: Option<KeyAction>,
    },
    /// Print a spend report from the ledger in the config's data directory (spent and
    /// saved, by key, team, route, model and provider, per hour or day).
    Cost(cost::CostArgs),
    /// Score a series in a CSV for anomalies (each row from the rows up to it): the same
    /// rows with an `anomaly_score` column in [0, 1] added.
    Anomalies(anomalies::AnomaliesArgs),
    /// Forecast each series of a long-form CSV (`series,timestamp,value`) with 80% and 95%
    /// intervals: `series,step,timestamp,forecast,lo80,hi80,lo95,hi95`.
    Forecast(forecast_cli::ForecastArgs),
    /// Write a running gateway's performance report (or one saved as JSON) as HTML or
    /// Markdown with charts: score, traffic, latency, errors, hit ratio, spend, forecast,
    /// anomalies, findings and recommendations.
    Report(report_cli::ReportArgs),
    /// Advise a PostgreSQL database: slow query shapes (from `pg_stat_statements`, or from
    /// the server's log with --log), their complexity, the indexes proven (with
    /// hypothetical indexes) to help them, unused and duplicate indexes, foreign keys
    /// without one, table health; or one query's complexity (and, with a database, the
    /// indexes that help it). Read-only: nothing is written to the database.
    Advise(advise_cli::AdviseArgs),
    /// Print the admin API's OpenAPI 3.1 document (as served at `/api/v1/openapi.json`).
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Make a key (as `flowgate key`), or with `--admin` an admin API token: prints the
    /// token (it is not kept) and the `[[admin.tokens]]` entry that admits it.
    Create {
        /// An admin API token instead of a virtual key.
        #[arg(long)]
        admin: bool,
        /// The admin token's scope: `metrics` (reads /metrics, /health, /ready), `read`
        /// (GET) or `write` (everything).
        #[arg(long, default_value = "write", value_parser = ["metrics", "read", "write"])]
        scope: String,
        /// The admin token's name, shown in logs and `flowgate check`.
        #[arg(long, default_value = "admin")]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } | Command::Sim(_) => "info",
        // The demo prints its own report; per-request warnings would bury it.
        Command::Demo(_) => "error",
        Command::Check { .. }
        | Command::Key { .. }
        | Command::Cost(_)
        | Command::Anomalies(_)
        | Command::Forecast(_)
        | Command::Report(_)
        | Command::Openapi { .. }
        | Command::Advise(_) => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match cli.command {
        Command::Check { config } => check(&config),
        Command::Openapi { output } => openapi(output.as_deref()),
        Command::Advise(args) => run(Builder::new_current_thread(), async move {
            print!("{}", advise_cli::run(&args).await?);
            Ok(())
        }),
        // The data plane runs on its own worker threads; this thread keeps the control plane.
        Command::Serve { config } => run(Builder::new_current_thread(), serve(config)),
        Command::Demo(args) => run(Builder::new_multi_thread(), demo::run(args)),
        Command::Sim(args) => run(Builder::new_multi_thread(), sim::run(args)),
        Command::Report(args) => run(Builder::new_current_thread(), async move {
            let out = report_cli::run(&args).await?;
            eprintln!("report written to {}", out.display());
            Ok(())
        }),
        Command::Forecast(args) if args.evaluate => {
            print!("{}", forecast_cli::evaluate());
            ExitCode::SUCCESS
        }
        Command::Forecast(args) => match forecast_cli::run(&args) {
            Ok(w) => {
                for s in &w.skipped {
                    eprintln!("skipped {s}");
                }
                eprintln!("{} series forecast", w.series);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Anomalies(args) if args.evaluate => {
            print!("{}", anomaly_eval::run(args.seeds));
            ExitCode::SUCCESS
        }
        Command::Anomalies(args) => match anomalies::run(&args) {
            Ok((rows, worst)) => {
                eprintln!("{rows} rows scored; the highest score {worst:.3}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Cost(args) => {
            let now = flowgate_clock::Clock::unix_millis(&flowgate_clock::SystemClock) / 1000;
            match cost::run(&args, now) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Key { action } => {
            let key = flowgate_admission::keys::generate();
            let hash =
                flowgate_config::format_key_hash(&flowgate_admission::keys::hash(key.as_bytes()));
            match action {
                Some(KeyAction::Create {
                    admin: true,
                    scope,
                    name,
                }) => {
                    println!("token: {key}");
                    println!("# Send it as `Authorization: Bearer <token>`; add to the config:");
                    println!(
                        "[[admin.tokens]]\nname = {name:?}\nscope = {scope:?}\nhash = \"{hash}\""
                    );
                }
                _ => {
                    println!("key:  {key}");
                    println!("hash = \"{hash}\"");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// Prints or writes the admin API's OpenAPI document.
fn openapi(output: Option<&std::path::Path>) -> ExitCode {
    let json = match flowgate_gateway::admin_openapi().to_pretty_json() {
        Ok(j) => j + "\n",
        Err(e) => {
            eprintln!("error: the OpenAPI document: {e}");
            return ExitCode::FAILURE;
        }
    };
    match output {
        None => {
            print!("{json}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn run(
    mut builder: Builder,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match flowgate_config::load_with(path, flowgate_gateway::check_external) {
        Ok(cfg) => {
            print!("{}", cfg.summary());
            for w in flowgate_gateway::tls_warnings(&cfg) {
                println!("  WARNING: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.problems().len().max(1);
            eprintln!(
                "{}: {n} problem(s); the configuration was not accepted",
                path.display()
            );
            ExitCode::from(2)
        }
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = match flowgate_config::load_with(&path, flowgate_gateway::check_external) {
        Ok(c) => c,
        Err(e) => anyhow::bail!("invalid configuration:\n{e}"),
    };
    let telemetry = flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
    let running = flowgate_gateway::launch(config, Some(path.clone()), telemetry).await?;
    tracing::info!(
        data = %running.data_addr,
        admin = %running.admin_addr,
        config = %path.display(),
        "flowgate serving"
    );
    shutdown_signal().await?;
    tracing::info!("shutdown requested; draining in-flight requests");
    running.shutdown();
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
