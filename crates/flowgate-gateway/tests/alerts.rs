//! Alert rules at work in a gateway on the real clock: a rule on the chat route's error
//! ratio goes pending, fires within seconds of the errors, and resolves once they stop,
//! both told to a webhook; rules, silences and notifiers through the admin API.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

/// The status of rule `name`'s alert.
async fn status(gw: &flowgate_gateway::Running, name: &str) -> String {
    let (_, v) = admin(gw, "GET", "/api/v1/alerts", "").await;
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == name)
        .map(|a| a["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Sends chat requests (each answered with `answer`) until rule `name`'s alert is `want`,
/// at most `within`.
async fn drive_until(
    gw: &flowgate_gateway::Running,
    name: &str,
    want: &str,
    answer: StatusCode,
    within: Duration,
) {
    let c = client();
    let start = Instant::now();
    loop {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await
        .expect(answer);
        if status(gw, name).await == want {
            return;
        }
        assert!(start.elapsed() < within, "{name} never {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_error_rule_fires_within_seconds_and_resolves_when_errors_stop() {
    let failing = Arc::new(AtomicBool::new(true));
    let url = switchable_upstream(failing.clone()).await;
    let hook = receivers::HttpReceiver::start().await;
    let notifier = format!(
        "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n",
        hook.url("/hook")
    );
    let rule = "[[alerts.rules]]\nname = \"chat-errors\"\nseverity = \"critical\"\n\
                series = 'error_ratio{route=\"chat\"}'\nwindow = \"3s\"\nvalue = 0.05\nfor = \"1s\"\n\
                labels = { team = \"platform\" }\n\n\
                [[alerts.rules]]\nname = \"chat-errors-warn\"\nseverity = \"warning\"\ngroup = \"chat-errors\"\n\
                series = 'error_ratio{route=\"chat\"}'\nwindow = \"3s\"\nvalue = 0.01\n";
    let cfg = format!(
        "{notifier}{rule}\n[pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let (_, rules) = admin(&gw, "GET", "/api/v1/alerts/rules", "").await;
    assert_eq!(rules["rules"][0]["name"], "chat-errors");
    assert_eq!(
        rules["rules"][0]["watches"],
        "error_ratio{route=\"chat\"} over 3s > 0.05"
    );
    assert_eq!(rules["rules"][0]["definition"]["for"], "1s");

    // Errors: firing within a few seconds (the window is read every second; `for` is 1 s).
    drive_until(
        &gw,
        "chat-errors",
        "firing",
        StatusCode::INTERNAL_SERVER_ERROR,
        Duration::from_secs(6),
    )
    .await;
    let (_, v) = admin(&gw, "GET", "/api/v1/alerts", "").await;
    let page = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["rule"] == "chat-errors" && e["kind"] == "firing")
        .unwrap()
        .clone();
    assert!(
        page["summary"]
            .as_str()
            .unwrap()
            .starts_with("error_ratio{route=\"chat\"} over 3s is "),
        "{page}"
    );
    assert_eq!(page["labels"]["team"], "platform");
    assert_eq!(page["severity"], "critical");
    // The warning of the same group is inhibited by the page.
    let warn = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "chat-errors-warn")
        .unwrap()
        .clone();
    assert_eq!(warn["inhibited"], true, "{warn}");

    // The gateway's health says so.
    let (_, h) = admin(&gw, "GET", "/api/v1/performance/health", "").await;
    assert_eq!(h["status"], "degraded", "{h}");
    let alerts = h["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "alerts")
        .unwrap()
        .clone();
    assert_eq!(alerts["status"], "degraded");
    assert!(
        alerts["detail"].as_str().unwrap().ends_with("1 critical"),
        "{alerts}"
    );

    // Silences: made, listed, refused when malformed, removed.
    let (s, made) = admin(
        &gw,
        "POST",
        "/api/v1/alerts/silences",
        r#"{"rule": "chat-*", "for": "1h", "comment": "deploying"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let (_, list) = admin(&gw, "GET", "/api/v1/alerts/silences", "").await;
    assert_eq!(list["silences"][0]["comment"], "deploying");
    for bad in [
        r#"{"rule": "x"}"#,
        r#"{"rule": "x", "for": "soon"}"#,
        r#"{"rule": "x", "for": "90d"}"#,
        r#"{"rule": "x", "for": "1h", "until": 1}"#,
        r#"{"rule": "x", "for": "1h", "whom": "me"}"#,
    ] {
        let (s, e) = admin(&gw, "POST", "/api/v1/alerts/silences", bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    let id = made["id"].as_u64().unwrap();
    let (s, _) = admin(&gw, "DELETE", &format!("/api/v1/alerts/silences/{id}"), "").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = admin(&gw, "DELETE", &format!("/api/v1/alerts/silences/{id}"), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The webhook was told.
    let firing = hook.wait_for(1, Duration::from_secs(5)).await;
    let told: Vec<serde_json::Value> = firing
        .iter()
        .map(receivers::Got::json)
        .filter(|b| b["alert"]["rule"] == "chat-errors")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["status"], "firing");
    assert_eq!(told[0]["alert"]["labels"]["team"], "platform");
    let (_, n) = admin(&gw, "GET", "/api/v1/alerts/notifiers", "").await;
    assert_eq!(n["notifiers"][0]["name"], "hook");
    assert_eq!(n["notifiers"][0]["target"], hook.url("/hook"));
    assert!(n["notifiers"][0]["sent"].as_u64().unwrap() >= 1, "{n}");
    let m =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).to_string();
    assert!(
        m.contains(
            "flowgate_alerts{rule=\"chat-errors\",severity=\"critical\",state=\"firing\"} 1"
        ),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "flowgate_alert_notifications_total{notifier=\"hook\",kind=\"webhook\",result=\"sent\"} "
        ) >= 1.0
    );

    // Healthy again: resolved once the 3 s window holds no errors.
    failing.store(false, Ordering::Relaxed);
    drive_until(
        &gw,
        "chat-errors",
        "inactive",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;
    let (_, v) = admin(&gw, "GET", "/api/v1/alerts", "").await;
    assert!(
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["rule"] == "chat-errors" && e["kind"] == "resolved")
    );
    let all = hook.wait_for(2, Duration::from_secs(5)).await;
    let kinds: Vec<String> = all
        .iter()
        .map(receivers::Got::json)
        .filter(|b| b["alert"]["rule"] == "chat-errors")
        .map(|b| b["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["firing", "resolved"]);
}

#[tokio::test]
async fn rules_made_through_the_api_are_checked_kept_and_outlive_a_restart() {
    let dir = std::env::temp_dir().join(format!("flowgate-alert-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let server = format!("data_dir = \"{}\"", dir.display());
    let cfg = format!(
        "[[alerts.rules]]\nname = \"from-config\"\nseries = \"spend_usd_per_hour\"\nvalue = 100\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_with(&server, &cfg).await;
    let busy = r#"{"severity":"info","series":"requests_per_second{route=\"chat\"}","window":"3s","op":">","value":0,"description":"chat has traffic"}"#;
    let (st, v) = admin(&gw, "PUT", "/api/v1/alerts/rules/chat-busy", busy).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["source"], "api");
    assert_eq!(
        v["watches"],
        "requests_per_second{route=\"chat\"} over 3s > 0"
    );
    let (st, _) = admin(&gw, "PUT", "/api/v1/alerts/rules/chat-busy", busy).await;
    assert_eq!(st, StatusCode::OK, "replaced");
    // Bad ones are named, the config's are the config's.
    for (body, says) in [
        (r#"{"series":"coffee","value":1}"#, "series: unknown series"),
        (
            r#"{"series":"spend_usd_per_hour","value":1,"for":"soon"}"#,
            "for: \"soon\" is not a duration",
        ),
        (
            r#"{"series":"spend_usd_per_hour","value":1,"notify":["pager"]}"#,
            "notify[0]: unknown notifier",
        ),
        (
            r#"{"series":"spend_usd_per_hour","value":1,"threshold":2}"#,
            "unknown field",
        ),
        (
            r#"{"name":"other","series":"spend_usd_per_hour","value":1}"#,
            "the body names alert rule",
        ),
    ] {
        let (st, v) = admin(&gw, "PUT", "/api/v1/alerts/rules/x", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_rule");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{body}: {m}");
    }
    let (st, _) = admin(&gw, "PUT", "/api/v1/alerts/rules/from-config", busy).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = admin(&gw, "DELETE", "/api/v1/alerts/rules/from-config", "").await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = admin(&gw, "DELETE", "/api/v1/alerts/rules/nothing", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = admin(&gw, "GET", "/api/v1/alerts/rules", "").await;
    let sources: Vec<(String, String)> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("from-config".into(), "config".into()),
            ("chat-busy".into(), "api".into())
        ]
    );

    // It acts: traffic fires it, and the event is in the stored history.
    drive_until(
        &gw,
        "chat-busy",
        "firing",
        StatusCode::OK,
        Duration::from_secs(6),
    )
    .await;
    // The event is kept off the evaluation task: in the store a moment later.
    let start = Instant::now();
    let v = loop {
        let (_, v) = admin(&gw, "GET", "/api/v1/alerts?rule=chat-busy", "").await;
        if v["history"][0]["kind"] == "firing" || start.elapsed() > Duration::from_secs(5) {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(v["history"][0]["kind"], "firing", "{v}");
    let (st, _) = admin(&gw, "GET", "/api/v1/alerts?from=9&to=3", "").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = admin(&gw, "GET", "/api/v1/alerts?limit=many", "").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    gw.shutdown();
    gw.wait().await;

    // After a restart: the rule is back in force, the history kept.
    let gw = gateway_with(&server, &cfg).await;
    let (st, v) = admin(&gw, "GET", "/api/v1/alerts/rules/chat-busy", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["description"], "chat has traffic");
    let (_, v) = admin(&gw, "GET", "/api/v1/alerts?rule=chat-busy", "").await;
    assert_eq!(v["history"][0]["kind"], "firing", "{v}");
    let (st, _) = admin(&gw, "DELETE", "/api/v1/alerts/rules/chat-busy", "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin(&gw, "GET", "/api/v1/alerts/rules/chat-busy", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
