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
    // Each part's health: all well.
    let r = send(&c, get(gw.admin_addr, "/api/v1/performance/health")).await;
    let h: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    let parts: Vec<(&str, &str, &str)> = h["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        parts.contains(&("pool llm", "ok", "1 of 1 endpoints usable")),
        "{parts:?}"
    );
    assert!(parts.iter().any(|(n, s, _)| *n == "workers" && *s == "ok"));
    assert!(parts.contains(&("alerts", "ok", "0 firing, 0 critical")));
    // The lag of an idle worker: well under a second.
    assert!(metric(&m, "flowgate_worker_event_loop_lag_seconds{worker=\"0\"} ") < 1.0);
}

#[tokio::test]
async fn the_history_is_written_every_10_s_read_back_as_json_or_csv_and_kept_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("flowgate-history-gw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let up = sim(EndpointSpec::default()).await;
    let server = format!("data_dir = \"{}\"", dir.display());
    let cfg = fleet_config(&[up.url()], "");
    let gw = launch_on(&server, &cfg, clock.shared(), &[]).await;
    let c = client();
    for _ in 0..5 {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await
        .expect(StatusCode::OK);
    }
    let now = clock.shared().unix_millis() / 1000;
    let end = now - now % 10 + 10;
    let h = gw.gateway.history().unwrap();
    gw.gateway.telemetry().flush();
    h.tick(end).unwrap();

    let r = send(&c, get(gw.admin_addr, "/api/v1/metrics/series")).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in [
        "requests_per_second{route=\"chat\"}",
        "latency_ms_p95{pool=\"llm\"}",
        "process_resident_memory_bytes",
        "requests_in_flight",
        "upstream_usable_endpoints{pool=\"llm\"}",
        "memory_ratio",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    // Every series written is one alert rules may name.
    for n in &names {
        let base = n.split('{').next().unwrap();
        assert!(
            flowgate_config::SERIES.iter().any(|(b, _)| *b == base),
            "{n} is written but not in flowgate_config::SERIES"
        );
    }
    assert_eq!(v["resolutions"][0]["step"], "10s");
    assert_eq!(v["resolutions"][0]["retention_seconds"], 172_800);

    let rps = "requests_per_second{route=\"chat\"}";
    let path = format!(
        "/api/v1/metrics/history?series={}&from={}&to={}&step=10s",
        query_value(rps),
        end - 60,
        end + 1
    );
    let r = send(&c, get(gw.admin_addr, &path)).await;
    r.expect(StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["points"][0]["t"], end - 10);
    assert_eq!(v["points"][0]["value"], 0.5);
    let mut csv = get(gw.admin_addr, &path);
    csv.headers_mut()
        .insert("accept", http::HeaderValue::from_static("text/csv"));
    let r = send(&c, csv).await;
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,time,series,value,min,max");
    assert!(lines[1].starts_with(&format!("{},", end - 10)), "{text}");
    assert!(lines[1].ends_with(",0.5,0.5,0.5"), "{text}");

    // Bad asks.
    for (path, status, says) in [
        (
            "/api/v1/metrics/history?series=nope".to_string(),
            StatusCode::NOT_FOUND,
            "no series named",
        ),
        (
            format!(
                "/api/v1/metrics/history?series={}&stepp=10s",
                query_value(rps)
            ),
            StatusCode::BAD_REQUEST,
            "stepp",
        ),
        (
            format!(
                "/api/v1/metrics/history?series={}&step=5s",
                query_value(rps)
            ),
            StatusCode::BAD_REQUEST,
            "10s, 1m or 1h",
        ),
        (
            format!(
                "/api/v1/metrics/history?series={}&window=400d&step=10s",
                query_value(rps)
            ),
            StatusCode::BAD_REQUEST,
            "more than 10000",
        ),
        (
            "/api/v1/metrics/history".to_string(),
            StatusCode::BAD_REQUEST,
            "series: missing",
        ),
    ] {
        let r = send(&c, get(gw.admin_addr, &path)).await;
        assert_eq!(r.status, status, "{path}");
        assert!(
            String::from_utf8_lossy(&r.body).contains(says),
            "{path}: {:?}",
            r.body
        );
    }

    // A restart: the points are still there.
    gw.shutdown();
    gw.wait().await;
    let gw = launch_on(&server, &cfg, clock.shared(), &[]).await;
    let r = send(&c, get(gw.admin_addr, &path)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["points"][0]["value"], 0.5, "{v}");
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_live_view_streams_a_snapshot_a_second() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let c = client();
    for _ in 0..3 {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await
        .expect(StatusCode::OK);
    }
    let mut s = tokio::net::TcpStream::connect(gw.admin_addr).await.unwrap();
    s.write_all(b"GET /api/v1/monitoring/live HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while text.matches("event: snapshot").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{text}");
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    let data: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(data.len() >= 2);
    let last = &data[data.len() - 1];
    assert!(last["t"].as_u64().unwrap() > data[0]["t"].as_u64().unwrap() - 1);
    assert_eq!(last["window_seconds"], 10);
    // The three requests of the last seconds: 0.3 a second over 10 s.
    assert_eq!(last["requests_per_second"]["chat"], 0.3, "{last}");
    assert_eq!(last["error_ratio"]["chat"], 0.0);
    assert_eq!(last["alerts_firing"], serde_json::json!([]));
}
