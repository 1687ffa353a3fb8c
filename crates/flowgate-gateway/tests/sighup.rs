//! SIGHUP reloads the config file. Its own test binary: the signal goes to the whole process.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use flowgate_sim::EndpointSpec;

#[tokio::test]
async fn sighup_reloads() {
    let up = sim(EndpointSpec::default()).await;
    let dir = std::env::temp_dir().join(format!("flowgate-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flowgate.toml");
    std::fs::write(&file, format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[pools.llm]\nendpoints = [{{ url = \"{}\" }}]\n", up.url())).unwrap();
    let gw = gateway_from_file(&file).await;
    // Let the file watcher's own events (if any) settle before counting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = gw.gateway.reload_status().0;
    let pid = std::process::id();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let g = gw.gateway.clone();
    eventually(|| g.reload_status().0 > before).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sighup_reloads_the_listener_certificate() {
    let pki = common::tls::Pki::new("hup");
    let id = pki.issue("server", &["localhost"]);
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n\n{}",
        id.cert.display().to_string(),
        id.key.display().to_string(),
        fleet_config(&[up.url()], "")
    ))
    .await;
    let reloads = || async {
        let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
        metric(
            &String::from_utf8_lossy(&m.body),
            "flowgate_listener_certificate_reloads_total{result=\"ok\"}",
        )
    };
    let before = reloads().await;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if reloads().await > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("SIGHUP did not reload the listener certificate");
}
