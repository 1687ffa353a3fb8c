//! Hot reload through the config file, as an operator does it.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

fn config_with_route(upstream: &str, path: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{upstream}\" }}]\n\n\
         [[routes]]\nname = \"r\"\nkind = \"http\"\nprefix = \"{path}\"\npool = \"llm\"\n"
    )
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "flowgate-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the file the way editors do: a new file renamed over the old one.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn reload_swaps_routes_without_dropping_in_flight_requests() {
    let up = sim(EndpointSpec::fixed(Duration::from_millis(800))).await;
    let dir = TempDir::new("reload");
    let file = dir.0.join("flowgate.toml");
    std::fs::write(&file, config_with_route(&up.url(), "/echo/a")).unwrap();
    let gw = gateway_from_file(&file).await;
    let addr = gw.data_addr;

    let c = client();
    let c2 = c.clone();
    let inflight = tokio::spawn(async move { send(&c2, get(addr, "/echo/a/slow")).await });
    eventually(|| up.stats().in_flight == 1).await;

    replace(&file, &config_with_route(&up.url(), "/echo/b"));
    let g = gw.gateway.clone();
    eventually(|| {
        g.runtime().config.routes[0].path == flowgate_config::PathMatch::Prefix("/echo/b".into())
    })
    .await;

    // The request that started on the old config finishes on it.
    let r = inflight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["path"], "/echo/a/slow");
    // New requests see the new routes.
    assert_eq!(
        send(&c, get(addr, "/echo/a/x")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&c, get(addr, "/echo/b/x")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_reload_keeps_the_running_config_and_says_why() {
    let up = sim(EndpointSpec::default()).await;
    let dir = TempDir::new("badreload");
    let file = dir.0.join("flowgate.toml");
    std::fs::write(&file, config_with_route(&up.url(), "/echo/a")).unwrap();
    let gw = gateway_from_file(&file).await;

    let broken =
        config_with_route(&up.url(), "/echo/a").replace("pool = \"llm\"", "pool = \"nope\"");
    replace(&file, &broken);
    let g = gw.gateway.clone();
    eventually(|| g.reload_status().1.is_some()).await;
    let (ok_reloads, err) = gw.gateway.reload_status();
    assert_eq!(ok_reloads, 0);
    let err = err.unwrap();
    assert!(err.contains("flowgate.toml:12:1"), "{err}");
    assert!(err.contains("unknown pool \"nope\""), "{err}");

    let c = client();
    assert_eq!(
        send(&c, get(gw.data_addr, "/echo/a/still")).await.status,
        StatusCode::OK
    );
    let h = send(&c, get(gw.admin_addr, "/health")).await.json();
    assert_eq!(h["status"], "degraded");
    assert!(
        h["config"]["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("unknown pool")
    );
    gw.gateway.telemetry().flush();
    let m = send(&c, get(gw.admin_addr, "/metrics")).await;
    assert!(
        String::from_utf8_lossy(&m.body)
            .contains(r#"flowgate_config_reloads_total{result="error"} 1"#)
    );

    // Fixing the file recovers.
    replace(&file, &config_with_route(&up.url(), "/echo/a"));
    eventually(|| g.reload_status() == (1, None)).await;
}
