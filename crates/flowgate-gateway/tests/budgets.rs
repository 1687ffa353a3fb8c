//! Budgets that act and models chosen by cost: a budget blocks at exactly its threshold
//! (429 `insufficient_quota`, when it lifts) and lifts at its window's end; a downgrade
//! sends requests to a cheaper model of what they need (`x-flowgate-model`), sparing the
//! priorities it names; a route's policy picks a tier by priority and the cheapest model
//! for `auto`; budgets made through the API are checked, kept and explained.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;

/// An OpenAI upstream that keeps the model of each request and bills 1,000 prompt tokens.
async fn upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let (url, _) = scripted_upstream(move |req| {
        let body = req.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let model = v["model"].as_str().unwrap_or_default().to_string();
        keep.lock().unwrap().push(model.clone());
        let answer = format!(
            r#"{{"id":"c","object":"chat.completion","model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1000,"completion_tokens":0}}}}"#
        );
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    (url, seen)
}

/// `dollar-model`: $1 per million input tokens, so each answer above costs $0.001.
const PRICES: &str = "[models.\"dollar-model\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\
                      capabilities = [\"chat\", \"tools\", \"streaming\"]\n\n\
                      [models.\"penny-model\"]\ninput_usd_per_mtok = 0.01\noutput_usd_per_mtok = 0.01\n\
                      capabilities = [\"chat\", \"streaming\"]\n\n\
                      [[cost.tiers]]\nname = \"premium\"\nmodels = [\"dollar-model\"]\n\n\
                      [[cost.tiers]]\nname = \"economy\"\nmodels = [\"penny-model\", \"gpt-4o-mini\"]\n";

fn config(url: &str, route_extra: &str, extra: &str) -> String {
    format!(
        "{PRICES}\n{extra}\n[pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\
         priority_header = true\n{route_extra}\n"
    )
}

fn ask(model: &str, content: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"{content}"}}]}}"#
    ))
}

fn with_priority(
    mut r: http::Request<http_body_util::Full<Bytes>>,
    p: &str,
) -> http::Request<http_body_util::Full<Bytes>> {
    r.headers_mut().insert(
        "x-flowgate-priority",
        http::HeaderValue::from_str(p).unwrap(),
    );
    r
}

#[tokio::test]
async fn a_budget_blocks_at_exactly_its_threshold_and_lifts_at_the_windows_end() {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let (url, seen) = upstream().await;
    let budget = "[[cost.budgets]]\nname = \"hourly\"\nlimit_usd = 0.002\nwindow = \"hour\"\n\
                  actions = [{ at = 100, do = \"block\" }]\n";
    let gw = gateway_on(clock.shared(), &config(&url, "", budget)).await;
    let c = client();
    for i in 0..2 {
        send(
            &c,
            post(
                gw.data_addr,
                "/v1/chat/completions",
                ask("dollar-model", &i.to_string()),
            ),
        )
        .await
        .expect(StatusCode::OK);
    }
    // $0.002 spent: at the limit.
    let r = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "3"),
        ),
    )
    .await;
    r.expect(StatusCode::TOO_MANY_REQUESTS);
    let e = r.json();
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert_eq!(e["error"]["type"], "insufficient_quota");
    let m = e["error"]["message"].as_str().unwrap();
    assert!(m.contains("\"hourly\"") && m.contains("$0.002"), "{m}");
    assert_eq!(r.headers["retry-after"], "3600");
    let reset: u64 = r.headers["x-flowgate-budget-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, 1_767_225_600 + 3600);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the refused request was not sent"
    );
    // An hour on, the minute that spent leaves the window.
    clock.advance(Duration::from_secs(3599));
    send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "4"),
        ),
    )
    .await
    .expect(StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_secs(1));
    send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "5"),
        ),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_downgrade_goes_to_a_cheaper_model_that_has_what_is_needed_and_spares_critical() {
    let (url, seen) = upstream().await;
    let budget = "[[cost.budgets]]\nname = \"emergency\"\nlimit_usd = 0.001\nwindow = \"hour\"\n\
                  actions = [{ at = 100, do = \"downgrade\", to = \"cheapest\", spare = [\"critical\"] }]\n";
    let gw = gateway(&config(&url, "", budget)).await;
    let c = client();
    let first = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "a"),
        ),
    )
    .await;
    first.expect(StatusCode::OK);
    assert!(!first.headers.contains_key("x-flowgate-model"));
    // Past the threshold: the cheapest model that fits.
    let r = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "b"),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-model"], "penny-model");
    // A request with tools: penny-model has none; gpt-4o-mini has.
    let tools = Bytes::from(
        r#"{"model":"dollar-model","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"user","content":"c"}]}"#,
    );
    let r = send(&c, post(gw.data_addr, "/v1/chat/completions", tools)).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-model"], "gpt-4o-mini");
    // Critical is spared.
    let r = send(
        &c,
        with_priority(
            post(
                gw.data_addr,
                "/v1/chat/completions",
                ask("dollar-model", "d"),
            ),
            "critical",
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert!(!r.headers.contains_key("x-flowgate-model"));
    assert_eq!(
        *seen.lock().unwrap(),
        ["dollar-model", "penny-model", "gpt-4o-mini", "dollar-model"]
    );
}

#[tokio::test]
async fn a_routes_policy_picks_a_tier_by_priority_and_the_cheapest_for_auto() {
    let (url, seen) = upstream().await;
    let policy = "model_policy = { by_priority = { low = \"economy\", critical = \"premium\" }, auto = true }";
    let gw = gateway(&config(&url, policy, "")).await;
    let c = client();
    let r = send(
        &c,
        with_priority(
            post(
                gw.data_addr,
                "/v1/chat/completions",
                ask("dollar-model", "a"),
            ),
            "low",
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-model"], "penny-model");
    // In its tier already: kept, and nothing said.
    let r = send(
        &c,
        with_priority(
            post(
                gw.data_addr,
                "/v1/chat/completions",
                ask("dollar-model", "b"),
            ),
            "critical",
        ),
    )
    .await;
    assert!(!r.headers.contains_key("x-flowgate-model"));
    let r = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", ask("auto", "c")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-model"], "penny-model");
    assert_eq!(
        *seen.lock().unwrap(),
        ["penny-model", "dollar-model", "penny-model"]
    );
    // Images: penny-model sees none; the cheapest that does.
    let img = Bytes::from(
        r#"{"model":"auto","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
    );
    let r = send(&c, post(gw.data_addr, "/v1/chat/completions", img)).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-model"], "gpt-4o-mini");
}

#[tokio::test]
async fn budgets_are_set_through_the_api_checked_kept_and_explained() {
    let dir = std::env::temp_dir().join(format!("flowgate-budgets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (url, _) = upstream().await;
    let in_config = "[[cost.budgets]]\nname = \"from-config\"\nlimit_usd = 100\nwindow = \"month\"\n\
                     actions = [{ at = 80, do = \"notify\" }]\n";
    let server = format!("data_dir = \"{}\"", dir.display());
    let gw = gateway_with(&server, &config(&url, "", in_config)).await;
    let (st, v) = admin(
        &gw,
        "PUT",
        "/api/v1/cost/budgets/route-daily",
        r#"{"scope":"route","match":"chat","limit_usd":"0.0015","window":"day","timezone":"Europe/Berlin","actions":[{"at":50,"do":"notify"},{"at":100,"do":"block"}]}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["source"], "api");
    assert_eq!(v["timezone"], "Europe/Berlin");
    // Bad ones are named; the config's are the config's.
    let (st, v) = admin(
        &gw,
        "PUT",
        "/api/v1/cost/budgets/x",
        r#"{"scope":"team","match":"nobody","limit_usd":1,"window":"day","actions":[{"at":150,"do":"block"}]}"#,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("match: unknown team") && m.contains("actions[0].at"),
        "{m}"
    );
    let (st, _) = admin(
        &gw,
        "PUT",
        "/api/v1/cost/budgets/from-config",
        r#"{"limit_usd":1,"window":"day","actions":[{"at":100,"do":"block"}]}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = admin(&gw, "DELETE", "/api/v1/cost/budgets/from-config", "").await;
    assert_eq!(st, StatusCode::CONFLICT);
    // It acts: two requests reach 100%, the second crossed 50% on the way.
    let c = client();
    for i in 0..2 {
        send(
            &c,
            post(
                gw.data_addr,
                "/v1/chat/completions",
                ask("dollar-model", &i.to_string()),
            ),
        )
        .await
        .expect(StatusCode::OK);
    }
    send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "x"),
        ),
    )
    .await
    .expect(StatusCode::TOO_MANY_REQUESTS);
    let (_, v) = admin(&gw, "GET", "/api/v1/cost/budgets", "").await;
    let names: Vec<&str> = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from-config", "route-daily"]);
    let rd = &v["budgets"][1];
    assert_eq!(rd["status"][0]["match"], "chat");
    assert_eq!(rd["status"][0]["spent_usd"], "0.002");
    assert_eq!(rd["status"][0]["threshold_reached"], "100");
    let events: Vec<(&str, &str)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["threshold_percent"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(events, [("50", "notify"), ("100", "block")]);
    // Explained without sending.
    let (st, v) = admin(
        &gw,
        "POST",
        "/api/v1/cost/explain?route=chat",
        std::str::from_utf8(&ask("dollar-model", "y")).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["blocked_by"]["budget"], "route-daily");
    assert_eq!(v["model"], "dollar-model");
    // Kept across a restart, with what it counted.
    gw.shutdown();
    gw.wait().await;
    let gw = gateway_with(&server, &config(&url, "", in_config)).await;
    let (st, v) = admin(&gw, "GET", "/api/v1/cost/budgets/route-daily", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"][0]["spent_usd"], "0.002");
    send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "z"),
        ),
    )
    .await
    .expect(StatusCode::TOO_MANY_REQUESTS);
    let (st, _) = admin(&gw, "DELETE", "/api/v1/cost/budgets/route-daily", "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            ask("dollar-model", "z"),
        ),
    )
    .await
    .expect(StatusCode::OK);
    let (st, _) = admin(&gw, "GET", "/api/v1/cost/budgets/route-daily", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_budget_for_a_key_made_through_the_api_follows_the_key() {
    let dir = std::env::temp_dir().join(format!("flowgate-keybudget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (url, _) = upstream().await;
    let auth = format!(
        "[auth]\nenabled = true\nstore = \"{}\"\n",
        dir.join("keys.redb").display()
    );
    let server = format!("data_dir = \"{}\"", dir.display());
    let gw = gateway_with(&server, &format!("{auth}\n{}", config(&url, "", ""))).await;
    let budget = r#"{"scope":"key","match":"dana","limit_usd":1,"window":"day","actions":[{"at":100,"do":"block"}]}"#;
    // No such key yet.
    let (st, v) = admin(&gw, "PUT", "/api/v1/cost/budgets/dana-daily", budget).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, made) = admin(&gw, "POST", "/api/v1/keys", r#"{"name":"dana"}"#).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let (st, v) = admin(&gw, "PUT", "/api/v1/cost/budgets/dana-daily", budget).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // The key revoked: its budget no longer holds and is not in force.
    let id = made["id"].as_str().unwrap();
    let (st, _) = admin(&gw, "DELETE", &format!("/api/v1/keys/{id}"), "").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = admin(&gw, "GET", "/api/v1/cost/budgets/dana-daily", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
