//! Automation rules on a serving gateway, on a manual clock: a rule whose schedule's
//! window is open switches a pool's strategy (another scales it, in a dry run); its
//! verification a minute later finds the traffic did not rise as asked and switches the
//! strategy back; the audit log holds every step; pausing and resuming are said.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::*;
use http::StatusCode;

async fn strategy(gw: &flowgate_gateway::Running) -> String {
    let (_, m) = admin(gw, "GET", "/api/v1/performance/load-balancer/metrics", "").await;
    m["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == "llm")
        .and_then(|p| p["strategy"].as_str())
        .unwrap_or_else(|| panic!("{m}"))
        .to_string()
}

#[tokio::test]
async fn a_rule_acts_is_verified_and_undone_and_everything_is_logged() {
    let a = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let b = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[automation]\ninterval = \"1h\"\n\n\
         [[automation.rules]]\nname = \"faster\"\nwhen = {{ schedule = \"* * * * *\", for = \"1h\" }}\n\
         do = {{ strategy = \"least_loaded\", pool = \"llm\" }}\n\
         verify = {{ series = 'requests_per_second{{pool=\"llm\"}}', within = \"1m\", higher_by = 0.5 }}\n\n\
         [[automation.rules]]\nname = \"bigger\"\nwhen = {{ schedule = \"* * * * *\", for = \"1h\" }}\n\
         do = {{ scale = \"llm\", replicas = \"+1\" }}\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 10 }}\nmax = 6\nactuator = {{ command = [\"true\"] }}\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{a}\" }}, {{ url = \"{b}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    let (_, r) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert_eq!(r["paused"], false, "{r}");
    assert_eq!(
        r["rules"][0]["do"], "switch pool llm to least_loaded",
        "{r}"
    );
    assert_eq!(r["rules"][1]["do"], "scale pool llm by +1", "{r}");
    assert!(
        r["rules"][0]["when"]
            .as_str()
            .unwrap()
            .starts_with("\"* * * * *\" in UTC"),
        "{r}"
    );
    assert_eq!(strategy(&gw).await, "p2c_ewma");

    chat_minute(&gw, &clock, 30).await;
    let (code, c) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    assert_eq!(code, StatusCode::OK, "{c}");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{c}");
    assert_eq!(
        (steps[0]["step"].as_str(), steps[0]["rule"].as_str()),
        (Some("act"), Some("faster")),
        "{c}"
    );
    assert_eq!(
        steps[0]["done"], "pool llm's strategy p2c_ewma → least_loaded",
        "{c}"
    );
    assert_eq!(
        steps[1]["done"], "dry run: pool llm would go from 2 to 3 replicas",
        "{c}"
    );
    assert_eq!(strategy(&gw).await, "least_loaded");

    // A minute on, the traffic is what it was, not 50% higher: undone.
    chat_minute(&gw, &clock, 30).await;
    let (_, c) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{c}");
    assert_eq!(steps[0]["step"], "undo", "{c}");
    assert!(
        steps[0]["why"].as_str().unwrap().contains("did not help"),
        "{c}"
    );
    assert_eq!(
        steps[0]["done"], "pool llm's strategy least_loaded → p2c_ewma",
        "{c}"
    );
    assert_eq!(strategy(&gw).await, "p2c_ewma");

    let (_, h) = admin(&gw, "GET", "/api/v1/automation/history", "").await;
    let kinds: Vec<&str> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["act", "act", "undo"], "{h}");

    let (_, p) = admin(&gw, "POST", "/api/v1/automation/pause", "{}").await;
    assert_eq!(p["paused"], true);
    let (_, r) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert_eq!(r["paused"], true, "{r}");
    let (_, p) = admin(&gw, "POST", "/api/v1/automation/resume", "{}").await;
    assert_eq!(p["paused"], false);
    gw.shutdown();
}

#[tokio::test]
async fn a_failed_action_is_logged_and_counted_for_alert_rules() {
    let a = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[automation]\ninterval = \"1h\"\n\n\
         [[automation.rules]]\nname = \"bigger\"\nwhen = {{ schedule = \"* * * * *\" }}\n\
         do = {{ scale = \"llm\", replicas = 3 }}\n\n\
         [[alerts.rules]]\nname = \"automation-failing\"\nseries = 'automation_failures{{rule=\"bigger\"}}'\nwindow = \"15m\"\nvalue = 0\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 10 }}\nmax = 6\ndry_run = false\nactuator = {{ command = [\"false\"] }}\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{a}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    let (_, c) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    let step = &c["steps"][0];
    assert_eq!(
        (step["step"].as_str(), step["ok"].as_bool()),
        (Some("act"), Some(false)),
        "{c}"
    );
    assert!(
        step["done"]
            .as_str()
            .unwrap()
            .contains("false failed (exit status: 1)"),
        "{c}"
    );
    // The failure reaches the history, where the alert rule reads it.
    chat_minute(&gw, &clock, 1).await;
    let (_, s) = admin(&gw, "GET", "/api/v1/metrics/series", "").await;
    assert!(
        s["series"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "automation_failures{rule=\"bigger\"}"),
        "{s}"
    );
    gw.shutdown();
}
