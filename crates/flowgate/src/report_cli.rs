//! `flowgate report`: the performance report of a running gateway (its admin listener's
//! `GET /api/v1/performance/report`), or one saved as JSON (`--input`), written as HTML
//! (charts inline) or Markdown (charts as SVG files beside it): the health score and its
//! components, traffic, latency percentiles, errors, the cache's hit ratio, spend, the
//! traffic's forecast with its intervals, anomalies marked on the charts and listed, the
//! findings and the recommendations with their evidence and expected effect.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::report_svg::{Band, Chart, Line, escape};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The gateway's admin listener.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// The environment variable holding an admin token (sent as a bearer token).
    #[arg(long, default_value = "FLOWGATE_ADMIN_TOKEN")]
    token_env: String,
    /// How far back: `24h`, `7d` (1h to 35d).
    #[arg(long, default_value = "7d")]
    window: String,
    /// `html` or `md`.
    #[arg(long, default_value = "html", value_parser = ["html", "md"])]
    format: String,
    /// Where to write it (Markdown's charts go beside it, `NAME-CHART.svg`).
    #[arg(long, short)]
    output: PathBuf,
    /// A report saved from the API, instead of asking a gateway.
    #[arg(long)]
    input: Option<PathBuf>,
}

/// Asks the gateway for the report.
async fn fetch(args: &ReportArgs) -> anyhow::Result<Value> {
    use http_body_util::BodyExt;
    let url = format!(
        "{}/api/v1/performance/report?window={}",
        args.admin.trim_end_matches('/'),
        args.window
    );
    let mut req = http::Request::get(&url);
    if let Ok(token) = std::env::var(&args.token_env) {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .with_context(|| format!("{url}: not a URL"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("{url}: the admin listener did not answer"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{url}: the answer is not JSON ({status})"))?;
    if !status.is_success() {
        bail!(
            "{url}: {status}: {}",
            v["error"]["message"].as_str().unwrap_or("refused")
        );
    }
    Ok(v)
}

pub async fn run(args: &ReportArgs) -> anyhow::Result<PathBuf> {
    let report = match &args.input {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a report in JSON", p.display()))?
        }
        None => fetch(args).await?,
    };
    if !report["window"].is_object() || !report["score"].is_object() {
        bail!("not a flowgate performance report (no window or score)");
    }
    let text = match args.format.as_str() {
        "md" => markdown(&report, &args.output)?,
        _ => html(&report),
    };
    std::fs::write(&args.output, text)
        .with_context(|| format!("{}: cannot write", args.output.display()))?;
    Ok(args.output.clone())
}

/// `[[t, v], …]` as points.
fn pts(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
        .collect()
}

/// The anomalies' start times and summaries, for the charts' marks (those of `series`
/// starting with `prefix`).
fn marks(report: &Value, prefix: &str) -> Vec<(f64, String)> {
    report["anomalies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["series"].as_str().is_some_and(|s| s.starts_with(prefix)))
        .filter_map(|a| {
            Some((
                a["started"].as_f64()?,
                a["summary"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// The report's charts: (file-name part, chart).
fn charts(report: &Value) -> Vec<(&'static str, Chart<'static>)> {
    let per_route = |key: &str| -> Vec<Line> {
        report[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Line {
                name: r["route"].as_str().unwrap_or("?").to_string(),
                points: pts(&r["points"]),
            })
            .collect()
    };
    let mut latency = Vec::new();
    for r in report["latency_ms"].as_array().into_iter().flatten() {
        let route = r["route"].as_str().unwrap_or("?");
        for q in ["p50", "p95", "p99"] {
            latency.push(Line {
                name: format!("{route} {q}"),
                points: pts(&r[q]),
            });
        }
    }
    let f = &report["forecast"]["steps"];
    let rows: Vec<&Value> = f.as_array().into_iter().flatten().collect();
    let forecast = Line {
        name: "forecast".into(),
        points: rows
            .iter()
            .filter_map(|r| Some((r[0].as_f64()?, r[1].as_f64()?)))
            .collect(),
    };
    let band = Band {
        name: "80% interval".into(),
        points: rows
            .iter()
            .filter_map(|r| Some((r[0].as_f64()?, r[2].as_f64()?, r[3].as_f64()?)))
            .collect(),
    };
    vec![
        (
            "traffic",
            Chart {
                title: "Traffic",
                unit: "requests/s",
                lines: per_route("traffic"),
                band: None,
                marks: marks(report, "requests_per_second"),
            },
        ),
        (
            "latency",
            Chart {
                title: "Latency",
                unit: "ms",
                lines: latency,
                band: None,
                marks: marks(report, "latency_ms"),
            },
        ),
        (
            "errors",
            Chart {
                title: "Errors",
                unit: "share of answers",
                lines: per_route("errors"),
                band: None,
                marks: marks(report, "error_ratio"),
            },
        ),
        (
            "cache",
            Chart {
                title: "Cache hit ratio",
                unit: "share of lookups",
                lines: vec![Line {
                    name: "all tiers".into(),
                    points: pts(&report["cache_hit_ratio"]),
                }],
                band: None,
                marks: marks(report, "cache_hit_ratio"),
            },
        ),
        (
            "spend",
            Chart {
                title: "Spend",
                unit: "USD/hour",
                lines: vec![Line {
                    name: "spend".into(),
                    points: pts(&report["spend_usd_per_hour"]),
                }],
                band: None,
                marks: marks(report, "spend"),
            },
        ),
        (
            "forecast",
            Chart {
                title: "Traffic forecast, all routes",
                unit: "requests/s",
                lines: vec![forecast],
                band: Some(band),
                marks: Vec::new(),
            },
        ),
    ]
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A section after the charts: its heading, its columns and its rows.
type Table = (&'static str, [&'static str; 3], Vec<[String; 3]>);

/// The sections after the charts, for both formats.
fn tables(report: &Value) -> Vec<Table> {
    let rows = |key: &str, f: &dyn Fn(&Value) -> [String; 3]| -> Vec<[String; 3]> {
        report[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(f)
            .collect()
    };
    vec![
        (
            "Health score components",
            ["component", "score", "why"],
            report["score"]["components"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| [text(&c["name"]), text(&c["score"]), text(&c["why"])])
                .collect(),
        ),
        (
            "Where the time goes",
            [
                "route",
                "dominant stage",
                "each stage: mean per request, share, trend",
            ],
            rows("stages", &|r| [text(&r["route"]), dominant(r), split(r)]),
        ),
        (
            "Anomalies",
            ["series", "started (Unix s)", "what"],
            rows("anomalies", &|a| {
                [text(&a["series"]), text(&a["started"]), text(&a["summary"])]
            }),
        ),
        (
            "Findings",
            ["area", "finding", "evidence"],
            rows("findings", &|f| {
                [text(&f["area"]), text(&f["finding"]), text(&f["evidence"])]
            }),
        ),
        (
            "Recommendations",
            ["change", "evidence", "expected effect"],
            rows("recommendations", &|r| {
                [
                    text(&r["change"]),
                    text(&r["evidence"]),
                    text(&r["expected_effect"]),
                ]
            }),
        ),
    ]
}

/// A route's dominant stage, its share and what usually shortens it.
fn dominant(r: &Value) -> String {
    match (r["dominant"].as_str(), r["stages"][0]["share"].as_f64()) {
        (Some(d), Some(share)) => format!(
            "{d} ({:.0}%): {}",
            share * 100.0,
            r["advice"].as_str().unwrap_or("")
        ),
        _ => "no requests".into(),
    }
}

/// A route's stages, largest first: `first_byte 430 ms (72%, steady)`, a budget broken
/// said.
fn split(r: &Value) -> String {
    let parts: Vec<String> = r["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let mut t = format!(
                "{} {:.1} ms ({:.0}%, {})",
                text(&s["stage"]),
                s["mean_ms"].as_f64().unwrap_or(0.0),
                s["share"].as_f64().unwrap_or(0.0) * 100.0,
                text(&s["trend"]["direction"])
            );
            if s["over_budget"] == true {
                t += &format!(" over its {} ms budget", text(&s["budget_ms"]));
            }
            t
        })
        .collect();
    parts.join("; ")
}

fn heading(report: &Value) -> (String, String) {
    let w = &report["window"];
    let days = w["seconds"].as_f64().unwrap_or(0.0) / 86_400.0;
    (
        format!("flowgate performance report: the last {days:.1} days"),
        format!(
            "Health score {} ({}); window {} to {} (Unix seconds), points of {}.",
            text(&report["score"]["score"]),
            text(&report["score"]["status"]),
            text(&w["from"]),
            text(&w["to"]),
            text(&report["resolution"])
        ),
    )
}

/// The report as one HTML page (well-formed XML too: checked by parsing it so).
pub fn html(report: &Value) -> String {
    let (title, summary) = heading(report);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ddd;padding:4px;font-size:13px;text-align:left}}</style></head>\
         <body><h1>{t}</h1><p>{}</p>",
        escape(&summary),
        t = escape(&title)
    );
    for (_, c) in charts(report) {
        let _ = write!(s, "<figure>{}</figure>", c.svg());
    }
    if let Some(why) = report["forecast"]["why_none"].as_str() {
        let _ = write!(s, "<p>No forecast: {}.</p>", escape(why));
    }
    for (h, cols, rows) in tables(report) {
        let _ = write!(s, "<h2>{}</h2>", escape(h));
        if rows.is_empty() {
            s.push_str("<p>None.</p>");
            continue;
        }
        s.push_str("<table><tr>");
        for c in cols {
            let _ = write!(s, "<th>{}</th>", escape(c));
        }
        s.push_str("</tr>");
        for r in rows {
            s.push_str("<tr>");
            for c in r {
                let _ = write!(s, "<td>{}</td>", escape(&c));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}

/// A cell for a Markdown table: no bar or line break to break it.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown, its charts written beside `output` as SVG files.
pub fn markdown(report: &Value, output: &Path) -> anyhow::Result<String> {
    let (title, summary) = heading(report);
    let stem = output
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report")
        .to_string();
    let dir = output.parent().unwrap_or(Path::new("."));
    let mut s = format!("# {title}\n\n{summary}\n\n");
    for (name, c) in charts(report) {
        let file = format!("{stem}-{name}.svg");
        std::fs::write(dir.join(&file), c.svg())
            .with_context(|| format!("{}: cannot write", dir.join(&file).display()))?;
        let _ = writeln!(s, "![{}]({file})\n", c.title);
    }
    if let Some(why) = report["forecast"]["why_none"].as_str() {
        let _ = writeln!(s, "No forecast: {why}.\n");
    }
    for (h, cols, rows) in tables(report) {
        let _ = writeln!(s, "## {h}\n");
        if rows.is_empty() {
            s.push_str("None.\n\n");
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} |\n|---|---|---|",
            cols[0], cols[1], cols[2]
        );
        for r in rows {
            let _ = writeln!(s, "| {} | {} | {} |", cell(&r[0]), cell(&r[1]), cell(&r[2]));
        }
        s.push('\n');
    }
    Ok(s)
}
