//! The assets under `deploy/` name only what the gateway really exports: every metric in
//! the Grafana dashboard's queries and in the Prometheus rules is scraped from a gateway
//! with every part on (cache, limits, queues, cost, alerts, the memory governor) after
//! traffic and failures. (`promtool check rules` and `promtool test rules` run in
//! scripts/test.sh.)
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use flowgate_sim::EndpointSpec;

/// Exported only in some settings this test cannot make: each name, why, and the source
/// file that exports it (checked to still name it, so that a rename fails here too).
const SOMETIMES: &[(&str, &str, &str)] = &[
    (
        "flowgate_cgroup_memory_limit_bytes",
        "only under a cgroup memory limit (a container)",
        "crates/flowgate-telemetry/src/process.rs",
    ),
    // Scraped with a real database in tests/database_api.rs.
    (
        "flowgate_database_up",
        "only once a [[databases]] entry has been polled",
        "crates/flowgate-gateway/src/database_metrics.rs",
    ),
    (
        "flowgate_database_slow_queries",
        "only once a [[databases]] entry has been read",
        "crates/flowgate-gateway/src/database_metrics.rs",
    ),
    (
        "flowgate_database_table_findings",
        "only once a [[databases]] entry has been read",
        "crates/flowgate-gateway/src/database_metrics.rs",
    ),
    (
        "flowgate_database_xid_age",
        "only once a [[databases]] entry has been read",
        "crates/flowgate-gateway/src/database_metrics.rs",
    ),
];

/// The sample names a Prometheus exposition holds: each family's, with a counter's
/// `_total` and a histogram's `_bucket`, `_sum` and `_count`.
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (w.next(), w.next(), w.next(), w.next())
        {
            match kind {
                "counter" => {
                    out.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
                _ => {
                    out.insert(name.to_string());
                }
            }
        }
    }
    out
}

/// Every metric name (`flowgate_…`, `process_…`) written in `text`.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["flowgate_", "process_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                out.insert(tail[..end].to_string());
            }
            rest = &tail[end..];
        }
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    out.push(v.as_str().unwrap().to_string());
                } else {
                    exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_and_the_rules_name_exported_metrics() {
    let up = sim(EndpointSpec::default()).await;
    let dead = dead_port().await;
    let cfg = format!(
        "[cache]\nenabled = true\n\n[memory]\nlimit = \"64GiB\"\ninterval = \"100ms\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{}\" }}]\nconcurrency = {{ limit = 8 }}\n\n\
         [pools.gone]\nendpoints = [{{ url = \"http://127.0.0.1:{dead}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"llm\"\nconcurrency = {{ limit = 8 }}\n\n\
         [[routes]]\nname = \"broken\"\nkind = \"http\"\nprefix = \"/broken\"\npool = \"gone\"\n\n\
         [[rate_limits]]\nname = \"per-ip\"\nscope = \"ip\"\nrequests = 1000\nper = \"1s\"\n\n\
         [models.\"gpt-4o-mini\"]\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.60\n\n\
         [[cost.budgets]]\nname = \"hourly\"\nlimit_usd = 100\nwindow = \"hour\"\nactions = [{{ at = 80, do = \"notify\" }}]\n\n\
         [[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/hook\"\n\n\
         [[alerts.rules]]\nname = \"chat-up\"\nseries = 'requests_per_second{{route=\"chat\"}}'\nwindow = \"2s\"\nop = \">=\"\nvalue = 0\n",
        up.url()
    );
    let gw = gateway(&cfg).await;
    let c = client();
    for i in 0..6 {
        send(
            &c,
            post(
                gw.data_addr,
                "/v1/chat/completions",
                chat(0.0, &format!("q{}", i % 2)),
            ),
        )
        .await;
    }
    send(&c, get(gw.data_addr, "/broken/x")).await;
    // The alert rule pends at the next evaluation; the governor reads memory.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let text =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).to_string();
    let mut have = exported(&text);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, _why, file) in SOMETIMES {
        let source = std::fs::read_to_string(repo.join(file)).unwrap();
        let family = name.strip_prefix("flowgate_").unwrap();
        assert!(source.contains(family), "{file} no longer exports {name}");
        have.insert((*name).to_string());
    }

    let root = repo.join("deploy");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("grafana/flowgate.json")).unwrap())
            .unwrap();
    assert_eq!(dash["uid"], "flowgate-overview");
    let mut queries = Vec::new();
    exprs(&dash, &mut queries);
    assert!(queries.len() >= 30, "{}", queries.len());
    let rules = std::fs::read_to_string(root.join("prometheus/flowgate-rules.yml")).unwrap();
    for (asset, text) in [
        ("grafana/flowgate.json", queries.join("\n")),
        ("prometheus/flowgate-rules.yml", rules),
    ] {
        let names = named(&text);
        assert!(names.len() >= 10, "{asset}: {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !have.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "deploy/{asset} names metrics the gateway does not export: {missing:?}\nexported: {have:?}"
        );
    }
    // The dashboard covers each area the issue names.
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for area in [
        "Traffic",
        "Latency",
        "Errors",
        "Cache",
        "Balancer",
        "Admission",
        "Cost",
        "Memory and CPU",
    ] {
        assert!(titles.contains(&area), "{area}: {titles:?}");
    }
}
