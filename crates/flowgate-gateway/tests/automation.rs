//! Automation rules on a serving gateway, on a manual clock: a rule whose schedule's
//! window is open switches a pool's strategy (another scales it, in a dry run); its
//! verification a minute later finds the traffic did not rise as asked and switches the
//! strategy back; the audit log holds every step; pausing and resuming are said. Rules
//! that change the running config (a rate limit, a route's shedding) do it through the
//! config's path, keep it over a reload and take it away when undone; others warm the
//! cache and tell a webhook; a failed action is rolled back and announced.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;
#[path = "../../flowgate-insight/tests/common/receivers.rs"]
mod receivers;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::*;
use http::StatusCode;
use http_body_util::Full;

/// Field `field` of each item of `v`'s list `list`.
fn column<'a>(v: &'a serde_json::Value, list: &str, field: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap())
        .collect()
}

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
    // The optimization cycle decided the scaled pool too (a dry run: nothing run), and
    // gathered the recommendations.
    assert_eq!(c["scaling"][0]["pool"], "llm", "{c}");
    assert!(
        c["scaling"][0]["plan"]["decision"]["desired"].is_u64(),
        "{c}"
    );
    assert!(c["recommendations"].is_array(), "{c}");
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
    assert_eq!(column(&h, "history", "step"), ["act", "act", "undo"], "{h}");

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
    assert!(
        step["done"]
            .as_str()
            .unwrap()
            .contains("; rolled back: pool llm from 1 to 1"),
        "{c}"
    );
    // Announced: an event in the alert history.
    assert_eq!(
        announced(&gw, "automation:bigger").await["summary"],
        "automation rule bigger: an action failed"
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

/// The first event of `rule` in the alert history (written off the async task: waited for).
async fn announced(gw: &flowgate_gateway::Running, rule: &str) -> serde_json::Value {
    for _ in 0..200 {
        let (_, a) = admin(gw, "GET", &format!("/api/v1/alerts?rule={rule}"), "").await;
        if let Some(e) = a["history"].as_array().and_then(|h| h.first()) {
            return e.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{rule} was never in the alert history");
}

/// Rate limit `name`'s amount, as the admission API shows it.
async fn limit_amount(gw: &flowgate_gateway::Running, name: &str) -> u64 {
    let (_, l) = admin(gw, "GET", "/api/v1/performance/rate-limits", "").await;
    l["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .and_then(|x| x["amount"].as_u64())
        .unwrap_or_else(|| panic!("{l}"))
}

/// A chat request with `x-flowgate-priority: priority`: its reply.
async fn chat_as(gw: &flowgate_gateway::Running, priority: &str) -> Reply {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/v1/chat/completions", gw.data_addr))
        .header("content-type", "application/json")
        .header("x-flowgate-priority", priority)
        .body(Full::new(chat(0.0, "shed me?")))
        .unwrap();
    send(&client(), req).await
}

#[tokio::test]
async fn config_changes_are_made_kept_over_a_reload_and_taken_away_and_others_warm_and_tell() {
    let up = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let hook = receivers::HttpReceiver::start().await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[cache]\nenabled = true\n\n\
         [[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[rate_limits]]\nname = \"per-minute\"\nrequests = 1000\nper = \"1m\"\nburst = 100\n\n\
         [automation]\ninterval = \"1h\"\n\n\
         [[automation.rules]]\nname = \"relief\"\nwhen = {{ schedule = \"* * * * *\", for = \"1h\" }}\n\
         do = {{ rate_limit = \"per-minute\", amount = 3000 }}\n\
         verify = {{ series = 'requests_per_second{{pool=\"llm\"}}', within = \"1m\", higher_by = 0.5 }}\n\n\
         [[automation.rules]]\nname = \"shed-low\"\nwhen = {{ schedule = \"0 0 * * *\", for = \"1h\" }}\n\
         do = {{ shed = \"low\", route = \"chat\" }}\n\n\
         [[automation.rules]]\nname = \"warm-up\"\nwhen = {{ schedule = \"* * * * *\", for = \"1h\" }}\n\
         do = {{ warm = 10 }}\n\n\
         [[automation.rules]]\nname = \"tell\"\nwhen = {{ schedule = \"* * * * *\", for = \"1h\" }}\n\
         do = {{ notify = \"hook\", severity = \"info\" }}\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{up}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
        hook.url("/hook")
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    assert_eq!(limit_amount(&gw, "per-minute").await, 1000);
    assert_eq!(chat_as(&gw, "low").await.status, StatusCode::OK);
    // Requests the warming will replay: misses are kept, most requested first.
    let c = client();
    for q in ["a", "b", "a"] {
        send(&c, post(gw.data_addr, "/v1/chat/completions", chat(0.0, q))).await;
    }
    chat_minute(&gw, &clock, 20).await;

    let (_, c1) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    let done = |c: &serde_json::Value, rule: &str| -> String {
        c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["rule"] == rule)
            .map(|s| format!("{} {} {}", s["step"], s["ok"], s["done"]))
            .unwrap_or_else(|| panic!("no step of {rule}: {c}"))
    };
    assert_eq!(
        done(&c1, "relief"),
        "\"act\" true \"rate limit per-minute at 3000 per its period (was: 1000 (burst 100))\""
    );
    assert!(
        done(&c1, "shed-low").contains("route chat sheds low priority requests and below"),
        "{c1}"
    );
    assert!(
        done(&c1, "warm-up").contains("started with the 3 most requested"),
        "{c1}"
    );
    assert_eq!(done(&c1, "tell"), "\"act\" true \"told hook\"");

    // In force: the limit is 3000 (its burst scaled with it), low requests are shed.
    assert_eq!(limit_amount(&gw, "per-minute").await, 3000);
    let shed = chat_as(&gw, "low").await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.json()["error"]["code"], "shed", "{:?}", shed.json());
    assert_eq!(shed.headers["retry-after"], "30");
    assert_eq!(chat_as(&gw, "normal").await.status, StatusCode::OK);
    let (_, r) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert_eq!(
        column(&r, "in_force", "rule"),
        ["relief", "shed-low"],
        "{r}"
    );
    let (_, w) = admin(&gw, "GET", "/api/v1/performance/cache/warm", "").await;
    assert_eq!(w["job"]["source"], "automation", "{w}");
    assert_eq!(w["job"]["total"], 3, "{w}");

    // The webhook was told, and the alert history holds it.
    let told = hook.wait_for(1, std::time::Duration::from_secs(5)).await;
    let body = told[0].json();
    assert_eq!(body["alert"]["rule"], "automation:tell", "{body}");
    assert_eq!(announced(&gw, "automation:tell").await["severity"], "info");

    // A reload keeps the changes in force over the file's config.
    let file = flowgate_config::parse(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n\n{cfg}"
        ),
        "test.toml",
        std::iter::empty(),
    )
    .unwrap();
    gw.gateway.apply(file);
    assert_eq!(limit_amount(&gw, "per-minute").await, 3000);
    assert_eq!(
        chat_as(&gw, "low").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A minute on, the traffic did not rise by half: the limit's change is taken away;
    // the shedding, unverified, stays until its window closes.
    chat_minute(&gw, &clock, 20).await;
    let (_, c2) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    assert_eq!(
        done(&c2, "relief"),
        "\"undo\" true \"taken away: rate limit per-minute at 3000 per its period\""
    );
    assert_eq!(limit_amount(&gw, "per-minute").await, 1000);
    assert_eq!(
        chat_as(&gw, "low").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    clock.advance(std::time::Duration::from_secs(3600));
    let (_, c3) = admin(&gw, "POST", "/api/v1/automation/cycle", "{}").await;
    assert!(done(&c3, "shed-low").starts_with("\"undo\" true"), "{c3}");
    assert_eq!(chat_as(&gw, "low").await.status, StatusCode::OK);
    let (_, h) = admin(&gw, "GET", "/api/v1/automation/history?rule=relief", "").await;
    assert_eq!(column(&h, "history", "step"), ["act", "undo"], "{h}");
    let (code, _) = admin(&gw, "GET", "/api/v1/automation/history?from=9&to=1", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    gw.shutdown();
}
