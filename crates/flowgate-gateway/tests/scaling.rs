//! Scaling recommendations of a serving gateway, on a manual clock: a pool of two
//! endpoints whose replicas each serve 0.5 requests a second gets a scale-up once its
//! rate passes 80% of that; the status, optimize and KEDA endpoints say so with the
//! reason, and the Prometheus families an HPA reads carry it. A pool not scaled, or
//! not yet decided, gets 404 from the KEDA endpoint.
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
