//! The dashboard in a real headless Chromium (`tests/browser/dashboard.mjs`, playwright-core
//! with the system browser, both installed by `scripts/test.sh`): after real traffic
//! (answers, cache hits, an upstream error), every page loads with no console error and
//! nothing fetched from elsewhere, the numbers shown equal the admin API's, and the cache's
//! Invalidate button really invalidates — a question answered from the cache before it is
//! pressed goes to the upstream after.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;
#[path = "../../flowgate-advisor/tests/common/mod.rs"]
mod pg;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

const TOKEN: &str = "fgk_write_token_for_the_dashboard_tests_000000000000";

/// Where playwright-core and Chromium are, or why the test cannot run.
fn browser() -> (PathBuf, PathBuf) {
    let modules = std::env::var_os("FLOWGATE_TEST_NODE_MODULES").map(PathBuf::from);
    let Some(modules) = modules.filter(|m| m.join("playwright-core").is_dir()) else {
        panic!(
            "the dashboard's browser tests need playwright-core: run scripts/test.sh (it \
             installs it with npm into target/test-node) or set FLOWGATE_TEST_NODE_MODULES \
             to a node_modules holding it"
        );
    };
    let chromium = std::env::var_os("FLOWGATE_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "the dashboard's browser tests need Chromium at {} (Debian: apt install chromium; \
         scripts/test.sh installs it; or set FLOWGATE_TEST_CHROMIUM)",
        chromium.display()
    );
    (modules, chromium)
}

/// An admin API read with the token.
async fn read(gw: &flowgate_gateway::Running, path: &str) -> serde_json::Value {
    let req = http::Request::builder()
        .uri(format!("http://{}{path}", gw.admin_addr))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send(&client(), req).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_shows_the_apis_numbers_and_invalidates() {
    let (modules, chromium) = browser();
    let up = sim(EndpointSpec::default()).await;
    let failing = sim(EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let hash = flowgate_config::format_key_hash(&flowgate_admission::keys::hash(TOKEN.as_bytes()));
    let cfg = format!(
        "[admin]\n[[admin.tokens]]\nname = \"ops\"\nscope = \"write\"\nhash = \"{hash}\"\n\n\
         [cache]\nenabled = true\n\n\
         [[cost.budgets]]\nname = \"monthly\"\nlimit_usd = 100\nwindow = \"month\"\n\
         actions = [{{ at = 80, do = \"notify\" }}]\n\n\
         [[rate_limits]]\nname = \"per-minute\"\nrequests = 600\nper = \"1m\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{}\", name = \"main\" }}]\n\n\
         [pools.flaky]\nendpoints = [{{ url = \"{}\", name = \"broken\" }}]\n\
         retries = {{ attempts = 1 }}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\
         concurrency = {{ limit = 8, queue = 32 }}\n\n\
         [[routes]]\nname = \"flaky\"\nkind = \"http\"\nprefix = \"/completions\"\npool = \"flaky\"\n",
        up.url(),
        failing.url()
    );
    // A database with a slow shape, for the Databases page.
    let db = pg::Pg::start();
    let url = db.url("postgres");
    let o = pg::owner(&url).await;
    pg::crm(&o).await;
    for _ in 0..3 {
        o.batch_execute("SELECT count(*) FROM events WHERE account_id = 4242")
            .await
            .unwrap();
    }
    let cfg = format!(
        "{cfg}\n[[databases]]\nname = \"crm\"\nurl_env = \"DASHBOARD_DB\"\nslow = \"1ms\"\npoll = \"1h\"\n"
    );
    let gw = gateway_env(&cfg, &[("DASHBOARD_DB", &url)]).await;
    let c = client();
    // Questions, each asked twice (a miss, then a hit), and a failing upstream.
    for i in 0..6 {
        for _ in 0..2 {
            let r = send(
                &c,
                post(
                    gw.data_addr,
                    "/v1/chat/completions",
                    chat(0.0, &format!("q{i}")),
                ),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
        }
    }
    let r = send(
        &c,
        post(
            gw.data_addr,
            "/completions",
            bytes::Bytes::from_static(br#"{"model":"gpt-4o-mini","prompt":"hi"}"#),
        ),
    )
    .await;
    assert!(r.status.is_server_error(), "{}", r.status);
    let asked = || post(gw.data_addr, "/v1/chat/completions", chat(0.0, "q0"));
    assert_eq!(cache_header(&send(&c, asked()).await), "hit-l1");
    // The counters settle (a record is sent as its answer's body ends, after the client
    // may have read it): the page and the API must be read on the same figures.
    let mut settled = false;
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let perf = read(&gw, "/api/v1/performance/metrics").await;
        let count = |r: &str| perf["routes"][r]["5m"]["requests"].as_u64();
        if (count("chat"), count("flaky")) == (Some(13), Some(1)) {
            settled = true;
            break;
        }
        last = perf;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(settled, "the metrics never counted the 14 requests: {last}");
    // The history has written its first points (the capacity page forecasts one of them).
    let mut listed = false;
    for _ in 0..300 {
        let v = read(&gw, "/api/v1/metrics/series").await;
        if v["series"].as_array().is_some_and(|l| !l.is_empty()) {
            listed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed, "the history wrote no series in 30 s");

    let shots = std::env::var_os("FLOWGATE_SCREENSHOTS");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let admin_url = format!("http://{}", gw.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .env("FLOWGATE_ADMIN", admin_url)
            .env("FLOWGATE_TOKEN", TOKEN)
            .env("FLOWGATE_NODE_MODULES", modules)
            .env("FLOWGATE_CHROMIUM", chromium)
            .env("FLOWGATE_EXPECT_DATABASE", "crm");
        if let Some(dir) = shots {
            cmd.env("FLOWGATE_SCREENSHOTS", dir);
        }
        cmd.output()
    })
    .await
    .unwrap()
    .expect("node runs (Debian: apt install nodejs npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser found problems:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    // What bench/dashboard.sh reads (the page's weight and first render; not judged here).
    println!("dashboard report: {report}");
    for (page, errors) in report["pages"].as_object().unwrap() {
        assert_eq!(errors, 0, "{page}: console errors");
    }
    assert_eq!(report["pages"].as_object().unwrap().len(), 9, "{report}");
    // The button emptied the cache: the question answered from it goes upstream now.
    assert_eq!(cache_header(&send(&c, asked()).await), "miss");
}
