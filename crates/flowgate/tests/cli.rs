//! The command line as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn flowgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
}

/// `flowgate ARGS --input INPUT --output OUTPUT`, run.
fn with_files(
    args: &[&str],
    input: &std::path::Path,
    output: &std::path::Path,
) -> std::process::Output {
    flowgate()
        .args(args)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_the_examples_and_prints_a_summary() {
    for f in ["examples/flowgate.toml", "examples/bench/passthrough.toml"] {
        let out = flowgate()
            .args(["check", "--config", &repo(f)])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok"), "{stdout}");
        assert!(stdout.contains("route(s):"), "{stdout}");
    }
}

#[test]
fn check_rejects_bad_config_with_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("flowgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[limits]\nmax_body_bytes = \"ten\"\n",
    )
    .unwrap();
    let out = flowgate()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:5:1: key `limits.max_body_bytes`"),
        "{stderr}"
    );
    assert!(stderr.contains("expected a size in bytes"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_a_missing_file() {
    let out = flowgate()
        .args(["check", "--config", "/nonexistent/flowgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_peak_scenario_scales_ahead_of_the_peak_warms_and_undoes_what_did_not_help() {
    let out = flowgate()
        .args(["demo", "--scenario", "peak"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |says: &str| {
        stdout
            .lines()
            .find(|l| l.contains(says))
            .unwrap_or_else(|| panic!("no line with {says:?}: {stdout}"))
            .to_string()
    };
    // Every hour of the day shown, 00:00 to 19:00.
    assert!(
        stdout.contains("  00:00 ") && stdout.contains("  19:00 "),
        "{stdout}"
    );
    // The morning ramp met ahead of time by the forecast, before 08:00.
    let first = line("the forecast brings utilization");
    assert!(first.trim_start() < "08:00", "{first}");
    assert!(
        line("the first predictive scale-up came at").contains("07:"),
        "{stdout}"
    );
    // Business hours open with a warming job, which replayed requests.
    assert!(
        line("business-hours-warm act")
            .trim_start()
            .starts_with("08:00"),
        "{stdout}"
    );
    assert!(
        line("the business-hours warming replayed").contains("replayed 50"),
        "{stdout}"
    );
    // The slowdown: the alert's rule acts, its verification finds no improvement, undone.
    assert!(
        line("slow-chat-shed-low act").contains("alert chat-slow fires"),
        "{stdout}"
    );
    let undo = line("slow-chat-shed-low undo");
    assert!(undo.contains("it did not help"), "{undo}");
    assert!(undo.contains("taken away"), "{undo}");
    // Shed requests were refused only while the rule's change was in force.
    let shed_14: u64 = line("  14:00 ")
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shed_14 > 0, "{stdout}");
    let shed_15: u64 = line("  15:00 ")
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shed_15, 0, "{stdout}");
    // And the pool came down after the evening.
    let evening: u64 = line("  19:00 ")
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(evening < 10, "{stdout}");
}

#[test]
fn demo_runs_on_embedded_defaults_and_prints_a_summary() {
    let out = flowgate()
        .args(["demo", "--duration", "2", "--rate", "50"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent 100,"), "{stdout}");
    for section in [
        "Latency seen by the client",
        "Errors by kind",
        "Traffic by upstream",
        "The gateway's own view",
        "Response cache",
        "The cache's own view",
        "Burst shaping",
        "The pool's queue",
        "One model, two providers",
        "Spend:",
        "Insight:",
    ] {
        assert!(stdout.contains(section), "missing {section}: {stdout}");
    }
    // Insight: each injected incident named with what the detector made of it, a forecast
    // with its error and cover, the health score of the gateway the demo drove.
    let insight = stdout.split("Insight:").nth(1).unwrap();
    for says in [
        "spike         injected on day",
        "shift down    injected on day",
        "missing peak  injected on day",
        "sMAPE",
        "80% interval covered",
        "health score of the demo's gateway: ",
    ] {
        assert!(insight.contains(says), "{says}: {insight}");
    }
    assert!(
        insight.contains(": found "),
        "the detector found nothing: {insight}"
    );
    // Spend: the budget crossed half, then its limit; the rest went to the cheaper model,
    // but the critical requests; the cache saved some.
    let spend = stdout.split("Spend:").nth(1).unwrap();
    for says in [
        "downgraded to gpt-4o-mini",
        "gpt-4o (critical)",
        "from the cache",
        "notify at 50%",
        "then downgrade at 100%",
        "the cache saved $0.",
    ] {
        assert!(spend.contains(says), "{says}: {spend}");
    }
    assert!(!spend.contains("errors"), "{spend}");
    // The mixed fleet: every Bedrock request signed well, answers from both providers.
    let mixed = stdout
        .split("One model, two providers")
        .nth(1)
        .unwrap()
        .split("Spend:")
        .next()
        .unwrap();
    assert!(mixed.contains("(0 refused for their signature)"), "{mixed}");
    for by in ["bedrock", "anthropic", "cache"] {
        assert!(
            mixed
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(by)),
            "nothing answered by {by}: {mixed}"
        );
    }
    assert!(!mixed.contains("error "), "{mixed}");
    assert!(mixed.contains("GET /v1/models: claude-3-5-sonnet-20240620, claude-sonnet"));
    // Zipf prompts repeat: the cache answers some of them.
    assert!(stdout.contains("hit-l1 "), "{stdout}");
    // The burst: 160 requests, 40 at each priority, at most 40 past the rate limit.
    let burst = stdout.split("Burst shaping").nth(1).unwrap();
    for p in ["critical", "high", "normal", "low"] {
        let row: Vec<u64> = burst
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .take(5)
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(row[0], 40, "{p}: {burst}");
        assert_eq!(row[1] + row[2] + row[3] + row[4], 40, "{p}: {burst}");
    }
    for role in ["fast", "slow", "flaky"] {
        assert!(
            stdout.contains(&format!("  {role}")),
            "missing upstream {role}: {stdout}"
        );
    }
}

#[test]
fn anomalies_scores_a_csv_row_by_row() {
    let dir = std::env::temp_dir().join(format!("flowgate-anomalies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.csv"), dir.join("out.csv"));
    // Two days at 5-minute steps: a daily cycle, a spike, a blank and a bad cell.
    let mut csv = String::from("host,timestamp,value\n");
    for i in 0..576 {
        let t = 1_767_571_200 + i * 300;
        let day = ((t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU).sin();
        let wiggle = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        let v = match i {
            500 => "400".to_string(),
            510 => String::new(),
            511 => "n/a".into(),
            _ => format!("{:.2}", 100.0 + 30.0 * day + 2.0 * wiggle),
        };
        let ts = format!(
            "2026-01-{:02} {:02}:{:02}:00",
            5 + i / 288,
            (i % 288) / 12,
            (i % 12) * 5
        );
        csv.push_str(&format!("web-1,{ts},{v}\n"));
    }
    std::fs::write(&input, csv).unwrap();
    let out = with_files(&["anomalies"], &input, &output);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "host,timestamp,value,anomaly_score");
    assert_eq!(lines.len(), 577);
    let score = |row: usize| -> f64 { lines[row + 1].rsplit(',').next().unwrap().parse().unwrap() };
    assert!(score(500) > 0.9, "the spike: {}", lines[501]);
    assert_eq!(score(510), 0.0, "a blank value scores 0");
    assert_eq!(score(511), 0.0, "a value that is not a number scores 0");
    assert!(
        lines[501].starts_with("web-1,2026-01-06 17:40:00,400,"),
        "{}",
        lines[501]
    );
    assert!((0..576).all(|r| (0.0..=1.0).contains(&score(r))));

    // A time it cannot read, a column that is not there: said, exit 2.
    std::fs::write(&input, "timestamp,value\n2026-01-05 00:00:00,1\nsoon,2\n").unwrap();
    let out = with_files(&["anomalies"], &input, &output);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: time \"soon\""), "{err}");
    let out = with_files(&["anomalies", "--value-column", "latency"], &input, &output);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column \"latency\""));
    std::fs::remove_dir_all(&dir).ok();

    // The labelled sets: a report of what was found.
    let out = flowgate()
        .args(["anomalies", "--evaluate", "--seeds", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("incidents found"),
        "{text}"
    );
}

#[test]
fn forecast_writes_each_series_with_intervals() {
    let dir = std::env::temp_dir().join(format!("flowgate-forecast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.csv"), dir.join("out.csv"));
    // Two series, rows interleaved and out of order: "web" has 14 days hourly with a
    // daily cycle, a blank, a bad cell and a repeated time; "one" a single row.
    let mut rows = Vec::new();
    for i in 0..24 * 14 {
        let t = 1_767_571_200 + i * 3600;
        let day = ((t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU).sin();
        let v = match i {
            40 => String::new(),
            41 => "n/a".into(),
            _ => format!("{:.2}", 100.0 + 30.0 * day),
        };
        rows.push(format!("web,{t},{v}"));
    }
    rows.push("web,1767571200,100".into());
    rows.reverse();
    rows.insert(5, "one,2026-01-05T00:00:00Z,7".into());
    let csv = format!("series,timestamp,value\n{}\n", rows.join("\n"));
    std::fs::write(&input, csv).unwrap();
    let out = with_files(&["forecast", "--horizon", "48"], &input, &output);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "series,step,timestamp,forecast,lo80,hi80,lo95,hi95"
    );
    assert_eq!(lines.len(), 1 + 2 * 48);
    let web: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split(',').collect())
        .filter(|f: &Vec<&str>| f[0] == "web")
        .collect();
    assert_eq!(web.len(), 48);
    // The last point was 2026-01-18 23:00; the forecast starts an hour later.
    assert_eq!(web[0][1], "1");
    assert_eq!(web[0][2], "2026-01-19 00:00:00");
    for (j, f) in web.iter().enumerate() {
        let x: Vec<f64> = f[3..].iter().map(|v| v.parse().unwrap()).collect();
        let (fc, lo80, hi80, lo95, hi95) = (x[0], x[1], x[2], x[3], x[4]);
        assert!(
            lo95 <= lo80 && lo80 <= fc && fc <= hi80 && hi80 <= hi95,
            "{f:?}"
        );
        // The daily cycle continues: within 5 of 100 + 30·sin.
        let hour = j % 24;
        let want = 100.0 + 30.0 * (hour as f64 / 24.0 * std::f64::consts::TAU).sin();
        assert!((fc - want).abs() < 5.0, "step {}: {fc} vs {want}", j + 1);
    }
    let one: Vec<&&str> = lines.iter().filter(|l| l.starts_with("one,")).collect();
    assert!(
        one[0].starts_with("one,1,2026-01-05 01:00:00,7.000000,7.000000"),
        "{}",
        one[0]
    );

    // Bad input: said, exit 2.
    for (csv, horizon, said) in [
        (
            "timestamp,value\n2026-01-05 00:00:00,1\nsoon,2\n",
            "3",
            "line 3: time \"soon\"",
        ),
        ("time,value\n1,2\n", "3", "no column \"timestamp\""),
        (
            "timestamp,value\n1,2\n",
            "0",
            "--horizon must be at least 1",
        ),
    ] {
        std::fs::write(&input, csv).unwrap();
        let out = with_files(&["forecast", "--horizon", horizon], &input, &output);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{err}");
    }
    let out = flowgate()
        .args(["forecast", "--evaluate"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("seasonal naive (24)"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// An HTML page parsed as XML (its `<!DOCTYPE html>` allowed): every tag closed, every
/// text escaped.
fn well_formed(page: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(page, options)
        .unwrap_or_else(|e| panic!("not well-formed: {e}"))
}

/// A report as `GET /api/v1/performance/report` answers, from a fixed history: two days
/// of hourly traffic with a daily cycle, latency, errors, hit ratio, spend, a forecast,
/// one anomaly, the stages of a route, a finding and a recommendation.
fn fixed_report() -> serde_json::Value {
    let t0 = 1_767_571_200u64;
    let hours: Vec<u64> = (0..48).map(|h| t0 + h * 3600).collect();
    let series = |f: &dyn Fn(f64) -> f64| -> serde_json::Value {
        hours
            .iter()
            .map(|t| {
                serde_json::json!([
                    t,
                    f(((t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU).sin())
                ])
            })
            .collect()
    };
    serde_json::json!({
        "window": { "from": t0, "to": t0 + 48 * 3600, "seconds": 48 * 3600 },
        "resolution": "1h",
        "score": { "score": 72, "status": "degraded", "components": [
            { "name": "cache", "score": 40.0, "weight": 0.1, "value": "28%", "why": "hit ratio 28.0%: 70% or more scores 100" },
            { "name": "availability", "score": 100.0, "weight": 0.25, "value": "0%", "why": "no failure <none>" }
        ]},
        "traffic": [{ "route": "chat", "points": series(&|d| 50.0 + 20.0 * d) }],
        "latency_ms": [{ "route": "chat", "p50": series(&|d| 300.0 + 50.0 * d), "p95": series(&|d| 900.0 + 100.0 * d), "p99": series(&|d| 1500.0 + 200.0 * d) }],
        "errors": [{ "route": "chat", "points": series(&|_| 0.01) }],
        "cache_hit_ratio": series(&|_| 0.28),
        "spend_usd_per_hour": series(&|d| 1.0 + 0.5 * d),
        "forecast": { "series": "requests_per_second (all routes)", "columns": ["t", "forecast", "lo80", "hi80", "lo95", "hi95"],
            "steps": (1..=24).map(|h| serde_json::json!([t0 + (47 + h) * 3600, 50.0, 40.0, 60.0, 35.0, 65.0])).collect::<Vec<_>>() },
        "anomalies": [{ "id": 1, "series": "requests_per_second{route=\"chat\"}", "started": t0 + 30 * 3600, "score": 0.97,
            "summary": "requests_per_second{route=\"chat\"} went up to 140 (2.00x the expected 70 & more)" }],
        "stages": [{ "route": "chat", "requests": 360_000.0, "mean_ms": 600.0, "dominant": "first_byte",
            "advice": "the upstream's time to answer: a faster model or region, hedging, caching, shorter prompts",
            "stages": [
                { "stage": "first_byte", "mean_ms": 430.0, "share": 0.72, "trend": { "direction": "steady" }, "budget_ms": null, "over_budget": false },
                { "stage": "queue", "mean_ms": 80.0, "share": 0.13, "trend": { "direction": "rising" }, "budget_ms": 50.0, "over_budget": true }
            ],
            "findings": [] }],
        "findings": [{ "area": "health", "finding": "cache scores 40 of 100", "evidence": "hit ratio 28.0% | low" }],
        "recommendations": [{ "area": "capacity", "change": "raise [[rate_limits]] \"all\" to at least 14 requests/s",
            "evidence": "busiest hour at 85% of the limit", "expected_effect": "stays under its limit for 90 days" }]
    })
}

#[test]
fn report_writes_html_and_markdown_with_charts() {
    let dir = std::env::temp_dir().join(format!("flowgate-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("report.json");
    std::fs::write(&input, fixed_report().to_string()).unwrap();

    let html = dir.join("report.html");
    let out = with_files(&["report", "--format", "html"], &input, &html);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // Well-formed (parsed as XML: every tag closed, every text escaped), with its parts.
    let doc = well_formed(&page);
    let count = |name: &str| doc.descendants().filter(|n| n.has_tag_name(name)).count();
    assert_eq!(count("svg"), 6, "six charts");
    assert!(
        count("polyline") >= 6,
        "lines: traffic, three latencies, errors, hit ratio, spend, forecast"
    );
    assert_eq!(count("polygon"), 1, "the forecast's interval");
    let marked = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("anomaly"))
        .count();
    assert_eq!(marked, 1, "the anomaly marked on the traffic chart");
    for says in [
        "Health score 72 (degraded)",
        "raise [[rate_limits]] \"all\" to at least 14 requests/s",
        "stays under its limit for 90 days",
        "cache scores 40 of 100",
        "Where the time goes",
        "first_byte (72%): the upstream's time to answer",
        "queue 80.0 ms (13%, rising) over its 50.0 ms budget",
    ] {
        assert!(
            doc.descendants()
                .any(|n| n.text().is_some_and(|t| t.contains(says))),
            "{says}"
        );
    }

    let md = dir.join("weekly.md");
    let out = with_files(&["report", "--format", "md"], &input, &md);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.starts_with("# flowgate performance report: the last 2.0 days"),
        "{text}"
    );
    assert!(text.contains("![Traffic](weekly-traffic.svg)"), "{text}");
    assert!(
        text.contains("| requests_per_second{route=\"chat\"} |"),
        "{text}"
    );
    assert!(
        text.contains("hit ratio 28.0% \\| low"),
        "a bar in a cell is escaped: {text}"
    );
    for chart in ["traffic", "latency", "errors", "cache", "spend", "forecast"] {
        let svg = std::fs::read_to_string(dir.join(format!("weekly-{chart}.svg"))).unwrap();
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{chart}: {e}"));
    }

    // Bad input: not a report, not JSON, no file, no gateway.
    std::fs::write(&input, "{\"a\": 1}").unwrap();
    let out = with_files(&["report"], &input, &html);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a flowgate performance report"));
    std::fs::write(&input, "window,score").unwrap();
    let out = with_files(&["report"], &input, &html);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a report in JSON"));
    let out = with_files(&["report"], &dir.join("missing.json"), &html);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = flowgate()
        .args(["report", "--admin", "http://127.0.0.1:9", "--output"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the admin listener did not answer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flowgate report` asking a serving gateway's admin listener: a fresh gateway's report
/// (no history yet: charts say so, no forecast) written as well-formed HTML.
#[test]
fn report_asks_a_running_gateway() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gw = rt.block_on(async {
        let cfg = flowgate_config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [pools.llm]\nendpoints = [{ url = \"http://127.0.0.1:9\" }]\n\n\
             [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
            "test.toml",
            std::iter::empty(),
        )
        .unwrap();
        let telemetry = flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
        flowgate_gateway::launch(cfg, None, telemetry)
            .await
            .unwrap()
    });
    let dir = std::env::temp_dir().join(format!("flowgate-live-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("live.html");
    let out = flowgate()
        .args(["report", "--window", "24h", "--admin"])
        .arg(format!("http://{}", gw.admin_addr))
        .arg("--output")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    well_formed(&page);
    assert!(page.contains("the last 1.0 days"), "{page}");
    assert!(page.contains("no data in the window"));
    assert!(page.contains("No forecast: 0 hour(s) of history"));
    // A window the gateway refuses: its message, and a failing exit.
    let out = flowgate()
        .args(["report", "--window", "90d", "--admin"])
        .arg(format!("http://{}", gw.admin_addr))
        .arg("--output")
        .arg(&html)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a span from 1h to 35d"));
    gw.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}
