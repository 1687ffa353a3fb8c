//! The gateway's own numbers: process and host stats and each worker's event-loop lag in
//! `/metrics`.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

#[tokio::test]
async fn process_host_and_worker_stats_are_in_metrics() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let c = client();
    send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await
    .expect(StatusCode::OK);
    // The lag is measured every 100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let m =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).into_owned();
    assert!(metric(&m, "process_resident_memory_bytes ") > 1e6, "{m}");
    assert!(metric(&m, "process_open_fds ") >= 3.0);
    assert!(metric(&m, "process_max_fds ") >= metric(&m, "process_open_fds "));
    assert!(
        metric(&m, "process_threads ") >= 2.0,
        "a worker and the control plane"
    );
    assert!(metric(&m, "process_cpu_seconds_total ") > 0.0);
    assert!(metric(&m, "process_start_time_seconds ") > 1.7e9);
    assert!(metric(&m, "flowgate_host_memory_available_bytes ") > 0.0);
    assert!(metric(&m, "flowgate_host_cpus ") >= 1.0);
    assert!(
        m.lines()
            .any(|l| l.starts_with("flowgate_worker_event_loop_lag_seconds{worker=\"0\"} ")),
        "{m}"
    );
    // The lag of an idle worker: well under a second.
    assert!(metric(&m, "flowgate_worker_event_loop_lag_seconds{worker=\"0\"} ") < 1.0);
}
