//! Scaling recommendations of a serving gateway, on a manual clock: a pool of two
//! endpoints whose replicas each serve 0.5 requests a second gets a scale-up once its
//! rate passes 80% of that; the status, optimize and KEDA endpoints say so with the
//! reason, and the Prometheus families an HPA reads carry it. A pool not scaled, or
//! not yet decided, gets 404 from the KEDA endpoint. The actuators: in a dry run (the
//! default) the command is not run; a command gets the counts and its output's URLs join
//! the pool; a webhook gets the decision, signed; a failing command is recorded so.
//! Flowgate itself, on a stepped clock: its two replicas each holding six requests in
//! flight against four at full utilization get a scale-up to five.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use common::*;
use http::StatusCode;

#[tokio::test]
async fn a_busy_pool_gets_a_scale_up_with_its_reason() {
    let url = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let other = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[scaling]\ninterval = \"1h\"\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 0.5 }}\nmax = 8\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}, {{ url = \"{other}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let dir = scratch("dry");
    let script = script(&dir, "echo ran > \"$(dirname \"$0\")/ran\"");
    let cfg = cfg.replace(
        "max = 8\n",
        &format!(
            "max = 8\nactuator = {{ command = [\"{}\", \"{{replicas}}\"] }}\n",
            script.display()
        ),
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    // Nothing decided yet: the KEDA endpoint says how to get a decision.
    let (code, e) = admin(&gw, "GET", "/api/v1/scaling/keda/llm", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /api/v1/scaling/optimize")
    );
    let (code, e) = admin(&gw, "GET", "/api/v1/scaling/keda/tea", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not scaled")
    );

    // 60 requests in a minute: 1 a second against 2 × 0.5: utilization 100%.
    chat_minute(&gw, &clock, 60).await;
    let (code, v) = admin(&gw, "POST", "/api/v1/scaling/optimize", "{}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let pool = &v["pools"][0];
    assert_eq!(pool["pool"], "llm", "{v}");
    assert_eq!(pool["policy"]["up_at"], 0.8);
    let d = &pool["plan"]["decision"];
    assert_eq!(d["input"]["current"], 2, "{v}");
    let u = d["input"]["utilization"].as_f64().unwrap();
    assert!((u - 1.0).abs() < 0.05, "{v}");
    // ceil(2 × 1.0 / 0.6) = 4.
    assert_eq!(d["desired"], 4, "{v}");
    assert_eq!(d["direction"], "up");
    assert!(d["reason"].as_str().unwrap().contains("is past 80%"), "{d}");
    assert_eq!(pool["changes"].as_array().unwrap().len(), 1);
    // A dry run (the default): said, and the command not run.
    let acted = &pool["changes"][0]["acted"];
    assert_eq!(acted["by"], "dry_run", "{v}");
    assert!(!dir.join("ran").exists());

    let (_, status) = admin(&gw, "GET", "/api/v1/scaling/status", "").await;
    assert_eq!(
        status["pools"][0]["plan"]["decision"]["desired"], 4,
        "{status}"
    );

    let (code, k) = admin(&gw, "GET", "/api/v1/scaling/keda/llm", "").await;
    assert_eq!(code, StatusCode::OK, "{k}");
    assert_eq!(k["desiredReplicas"], 4);
    assert_eq!(k["currentReplicas"], 2);
    // 1 request a second over 0.5 × 0.6 a replica.
    assert!(
        (k["replicaDemand"].as_f64().unwrap() - 1.0 / 0.3).abs() < 0.2,
        "{k}"
    );

    let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
    let text = String::from_utf8_lossy(&m.body);
    assert_eq!(
        metric(&text, "flowgate_scaling_desired_replicas{pool=\"llm\"}"),
        4.0
    );
    assert_eq!(
        metric(&text, "flowgate_scaling_current_replicas{pool=\"llm\"}"),
        2.0
    );

    // Decided again at once: the cooldown holds it, and says so.
    let (_, v) = admin(&gw, "POST", "/api/v1/scaling/optimize", "{}").await;
    let d = &v["pools"][0]["plan"]["decision"];
    assert_eq!(d["direction"], "hold", "{d}");
    assert!(
        d["reason"].as_str().unwrap().contains("cooling down"),
        "{d}"
    );
    gw.shutdown();
}

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-scaling-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executable shell script in `dir` running `body`.
fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("scale.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A gateway on `clock` whose pool `llm` of two endpoints (replicas of 0.5 requests a
/// second) has `actuator` and `extra` settings, after a minute of 60 requests.
async fn busy(
    clock: &flowgate_clock::ManualClock,
    actuator: &str,
    env: &[(&str, &str)],
) -> flowgate_gateway::Running {
    let a = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let b = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let cfg = format!(
        "[scaling]\ninterval = \"1h\"\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 0.5 }}\nmax = 8\ndry_run = false\nactuator = {actuator}\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{a}\" }}, {{ url = \"{b}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = launch_on("", &cfg, clock.shared(), env).await;
    chat_minute(&gw, clock, 60).await;
    gw
}

/// How many endpoints pool `llm` has now.
async fn endpoints(gw: &flowgate_gateway::Running) -> usize {
    let (_, inst) = admin(gw, "GET", "/api/v1/performance/load-balancer/instances", "").await;
    inst["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == "llm")
        .map_or(0, |p| p["endpoints"].as_array().unwrap().len())
}

/// The acted part of the pool's first change after a cycle now.
async fn act_now(gw: &flowgate_gateway::Running) -> serde_json::Value {
    let (code, v) = admin(gw, "POST", "/api/v1/scaling/optimize", "{}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["pools"][0]["plan"]["decision"]["desired"], 4, "{v}");
    v["pools"][0]["changes"][0]["acted"].clone()
}

#[tokio::test]
async fn a_command_gets_the_counts_and_its_replicas_join_the_pool() {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let dir = scratch("command");
    let (c, d) = (
        switchable_upstream(Arc::new(AtomicBool::new(false))).await,
        switchable_upstream(Arc::new(AtomicBool::new(false))).await,
    );
    let script = script(
        &dir,
        &format!(
            // The first call starts two replicas; the second keeps one of them.
            "calls=\"$(dirname \"$0\")/calls\"\necho \"$FLOWGATE_POOL $FLOWGATE_REPLICAS $FLOWGATE_CURRENT $1\" >> \"$calls\"\n\
             echo started\necho {c}\nif [ \"$(wc -l < \"$calls\")\" -lt 2 ]; then echo {d}; fi"
        ),
    );
    let gw = busy(
        &clock,
        &format!(
            "{{ command = [\"{}\", \"{{replicas}}\"], register = true, timeout = \"10s\" }}",
            script.display()
        ),
        &[],
    )
    .await;
    let acted = act_now(&gw).await;
    assert_eq!(acted["by"], "command", "{acted}");
    assert_eq!(acted["ok"], true, "{acted}");
    assert!(
        acted["detail"].as_str().unwrap().contains("started"),
        "{acted}"
    );
    assert_eq!(acted["registered"].as_array().unwrap().len(), 2, "{acted}");
    assert_eq!(
        std::fs::read_to_string(dir.join("calls")).unwrap(),
        "llm 4 2 4\n"
    );
    // The replicas it listed serve in the pool now.
    assert_eq!(endpoints(&gw).await, 4);

    // Past the cooldown, busier still: the command now lists one replica; the other
    // registered one leaves the pool (the file's two stay).
    chat_minute(&gw, &clock, 150).await;
    let (_, v) = admin(&gw, "POST", "/api/v1/scaling/optimize", "{}").await;
    let changes = v["pools"][0]["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 2, "{v}");
    let acted = &changes.last().unwrap()["acted"];
    assert_eq!(acted["ok"], true, "{v}");
    assert_eq!(
        acted["deregistered"].as_array().unwrap().len(),
        1,
        "{acted}"
    );
    assert!(
        acted["registered"].as_array().unwrap().is_empty(),
        "{acted}"
    );
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    assert_eq!(calls, "llm 4 2 4\nllm 8 4 8\n", "at most the maximum, 8");
    assert_eq!(endpoints(&gw).await, 3);
    gw.shutdown();
}

#[tokio::test]
async fn a_webhook_gets_the_decision_signed_and_a_failing_command_is_recorded() {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = got.clone();
    let (hook, _) = scripted_upstream(move |req| {
        seen.lock().unwrap().push(req.to_string());
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_string()
    })
    .await;
    let gw = busy(
        &clock,
        &format!(
            "{{ webhook = \"{hook}/scale\", secret_env = \"SCALE_SECRET\", timeout = \"5s\" }}"
        ),
        &[("SCALE_SECRET", "s3cret")],
    )
    .await;
    let acted = act_now(&gw).await;
    assert_eq!(
        (acted["by"].as_str(), acted["ok"].as_bool()),
        (Some("webhook"), Some(true)),
        "{acted}"
    );
    let req = got.lock().unwrap()[0].clone();
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /scale "), "{head}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (
            v["pool"].as_str(),
            v["current"].as_u64(),
            v["desired"].as_u64()
        ),
        (Some("llm"), Some(2), Some(4)),
        "{v}"
    );
    assert_eq!(v["direction"], "up");
    let field = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix(&format!("{name}: "))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no {name}: {head}"))
    };
    let ts: u64 = field("x-flowgate-timestamp").parse().unwrap();
    assert_eq!(
        field("x-flowgate-signature"),
        flowgate_insight::notify::message::signature(b"s3cret", ts, body.as_bytes())
    );
    gw.shutdown();

    // A command that fails: recorded with its output, not taken for done.
    let dir = scratch("failing");
    let script = script(&dir, "echo no capacity in the region >&2\nexit 3");
    let gw = busy(
        &clock,
        &format!("{{ command = [\"{}\"] }}", script.display()),
        &[],
    )
    .await;
    let acted = act_now(&gw).await;
    assert_eq!(acted["ok"], false, "{acted}");
    let detail = acted["detail"].as_str().unwrap();
    assert!(
        detail.contains("failed (exit status: 3)") && detail.contains("no capacity in the region"),
        "{detail}"
    );
    gw.shutdown();
}

#[tokio::test]
async fn flowgate_itself_is_scaled_on_its_requests_in_flight() {
    let up = sim(flowgate_sim::EndpointSpec::fixed(
        std::time::Duration::from_millis(1500),
    ))
    .await;
    let clock = flowgate_clock::SteppedClock::new(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_571_200),
    );
    let cfg = format!(
        "[scaling.gateway]\nreplicas = 2\nper_replica = {{ in_flight = 4 }}\nmax = 8\n\n\
         [automation]\npaused = true\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
        up.url()
    );
    let gw = launch_on("", &cfg, clock.shared(), &[]).await;
    let c = client();
    let held: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            let addr = gw.data_addr;
            tokio::spawn(async move {
                send(&c, post(addr, "/v1/chat/completions", chat_body(false))).await
            })
        })
        .collect();
    eventually(|| up.stats().in_flight == 6).await;
    // Seconds of the control plane's turns, each sampling six requests in flight.
    for _ in 0..5 {
        clock.advance(std::time::Duration::from_secs(1));
        gw.tick().await;
    }
    let (code, v) = admin(&gw, "POST", "/api/v1/scaling/optimize", "{}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let me = &v["pools"][0];
    assert_eq!(me["pool"], "flowgate", "{v}");
    assert_eq!(me["policy"]["per_replica"]["in_flight"], 4.0, "{v}");
    assert_eq!(me["policy"]["replicas"], 2, "{v}");
    let plan = &me["plan"];
    assert_eq!(plan["unit"], "in_flight", "{v}");
    // Six here, as many on the other replica: twelve against 2 × 4.
    assert_eq!(plan["demand"], 12.0, "{v}");
    let d = &plan["decision"];
    assert_eq!(d["input"]["current"], 2, "{v}");
    assert_eq!(d["input"]["utilization"], 1.5, "{v}");
    // ceil(2 × 1.5 / 0.6) = 5.
    assert_eq!(d["desired"], 5, "{v}");
    let (code, k) = admin(&gw, "GET", "/api/v1/scaling/keda/flowgate", "").await;
    assert_eq!(code, StatusCode::OK, "{k}");
    assert_eq!(k["desiredReplicas"], 5, "{k}");
    for h in held {
        h.await.unwrap().expect(StatusCode::OK);
    }
    gw.shutdown();
}
