//! The capacity API of a serving gateway: the resources its config constrains (rate
//! limits of global and route scope, a global budget, the concurrency of a route and of
//! a pool whose limit adapts), those it cannot plan for, the
//! scenarios, and its answers to bad parameters. When each resource runs out is tested on
//! constructed growth in `flowgate_insight::capacity`.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn the_resources_scenarios_and_bad_parameters() {
    let up = sim(Default::default()).await;
    let cfg = format!(
        "[[rate_limits]]\nname = \"all\"\nrequests = 600\nper = \"1m\"\n\n\
         [[rate_limits]]\nname = \"per-route\"\nscope = \"route\"\ntokens = 1000\nper = \"1s\"\nroutes = [\"chat\"]\n\n\
         [[rate_limits]]\nname = \"per-key\"\nscope = \"key\"\nrequests = 5\nper = \"1s\"\n\n\
         [[cost.budgets]]\nname = \"daily\"\nlimit_usd = 48\nwindow = \"day\"\nactions = [{{ at = 100, do = \"block\" }}]\n\n\
         [[cost.budgets]]\nname = \"team\"\nscope = \"team\"\nlimit_usd = 5\nwindow = \"day\"\nactions = [{{ at = 100, do = \"block\" }}]\n\n{}",
        fleet_config(
            &[up.url()],
            "concurrency = { limit = 12, adaptive = { min = 4, max = 40 } }"
        )
        .replace(
            "name = \"chat\"\n",
            "name = \"chat\"\nconcurrency = { limit = 8 }\n"
        )
    );
    let gw = gateway(&cfg).await;
    let (code, v) = admin(&gw, "GET", "/api/v1/capacity/bottlenecks", "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rate limit \"all\"",
            "rate limit \"per-route\" on route chat",
            "budget \"daily\"",
            "concurrency of route chat",
            "concurrency of pool llm"
        ],
        "{v}"
    );
    let all = &v["resources"][0];
    assert_eq!(
        (all["limit"].as_f64(), all["unit"].as_str()),
        (Some(10.0), Some("requests/s"))
    );
    assert_eq!(v["resources"][1]["kind"], "token_rate");
    // A daily budget of 48 USD is 2 USD an hour, judged by each day's mean.
    assert_eq!(v["resources"][2]["limit"], 2.0);
    assert_eq!(v["resources"][2]["daily_mean"], true);
    // Requests in flight against each concurrency limit: an adaptive one at its limit now.
    let route = &v["resources"][3];
    assert_eq!(
        (route["kind"].as_str(), route["limit"].as_f64()),
        (Some("concurrency"), Some(8.0))
    );
    assert_eq!(route["unit"], "requests in flight");
    assert!(
        route["series"].as_str().unwrap().contains("of routes chat"),
        "{route}"
    );
    let pool = &v["resources"][4];
    assert_eq!(pool["limit"], 12.0);
    assert!(
        pool["series"]
            .as_str()
            .unwrap()
            .ends_with("of routes chat, echo"),
        "{pool}"
    );
    assert!(
        pool["change"]
            .as_str()
            .unwrap()
            .contains("adapts to its upstream's latency (at 12 now, at most 40)"),
        "{pool}"
    );
    // Left out, and said why.
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{v}");
    assert!(
        skipped[0]
            .as_str()
            .unwrap()
            .starts_with("rate limit \"per-key\"")
    );
    assert!(skipped[1].as_str().unwrap().starts_with("budget \"team\""));
    // A fresh gateway has no hour of history yet.
    assert_eq!(v["no_history_yet"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(v["outlooks"].as_array().unwrap().len(), 0);
    assert_eq!(v["horizon_days"], 90);

    let (_, s) = admin(
        &gw,
        "GET",
        "/api/v1/capacity/scenarios?growth=0.15&peak=1.5",
        "",
    )
    .await;
    let list: Vec<&str> = s["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        list,
        ["baseline", "growth-10", "growth-25", "peak-2x", "custom"]
    );
    assert_eq!(s["scenarios"][4]["monthly_growth"], 0.15);
    let (_, r) = admin(&gw, "GET", "/api/v1/capacity/recommendations", "").await;
    assert_eq!(r["recommendations"].as_array().unwrap().len(), 0, "{r}");

    for bad in [
        "/api/v1/capacity/scenarios?growth=lots",
        "/api/v1/capacity/scenarios?peak=0",
        "/api/v1/capacity/bottlenecks?days=400",
        "/api/v1/capacity/forecast",
        "/api/v1/capacity/forecast?series=x&days=0",
    ] {
        let (code, e) = admin(&gw, "GET", bad, "").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_parameter", "{bad}");
    }
    let (code, e) = admin(&gw, "GET", "/api/v1/capacity/bottlenecks?scenario=doom", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"]["code"], "scenario_not_found");
    let (code, f) = admin(
        &gw,
        "GET",
        "/api/v1/capacity/forecast?series=requests_per_second%7Broute%3D%22chat%22%7D",
        "",
    )
    .await;
    // Nothing written for it yet: the history does not know it (as /metrics/history says).
    assert_eq!(code, StatusCode::NOT_FOUND, "{f}");
    assert_eq!(f["error"]["code"], "unknown_series", "{f}");
    gw.shutdown();

    // A pool without an adaptive limit: what its upstream sustains is not known, and said.
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let (_, v) = admin(&gw, "GET", "/api/v1/capacity/bottlenecks", "").await;
    assert_eq!(
        v["skipped"],
        serde_json::json!([
            "pool llm: what its upstream sustains is measured by an adaptive concurrency limit only (concurrency.adaptive)"
        ]),
        "{v}"
    );
    gw.shutdown();
}
