//! The database advisor through the gateway, on a real PostgreSQL the test starts (the
//! advisor's harness): the admin API's analyses, recommendations and plan; writes refused
//! on a read-only database and taken (verified) on a writable one that allows them; the
//! watch's slow-query alert and plan changes; a database that goes away.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;
#[path = "../../flowgate-advisor/tests/common/mod.rs"]
mod pg;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use serde_json::Value;

const SLOW: &str = "SELECT count(*) FROM events WHERE account_id = 4242";

async fn api(admin: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(&client(), req).await
}

async fn indexes(o: &tokio_postgres::Client) -> Vec<String> {
    o.query(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn databases(poll: &str) -> String {
    format!(
        "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_URL\"\npoll = \"{poll}\"\nslow = \"2ms\"\n\n\
         [[databases]]\nname = \"crm_rw\"\nurl_env = \"CRM_URL\"\nwritable = true\n\
         actions = [\"create_index\", \"vacuum\"]\nallow_analyze = true\npoll = \"{poll}\"\nslow = \"2ms\"\nalert = false\n"
    )
}

/// A private PostgreSQL with the CRM's rows (and `sql` run), the slow shape called
/// `calls` times, and a gateway watching it every `poll` as `crm` and `crm_rw`.
async fn crm_behind_a_gateway(
    sql: &str,
    calls: usize,
    poll: &str,
) -> (
    pg::Pg,
    tokio_postgres::Client,
    flowgate_gateway::Running,
    flowgate_sim::SimServer,
) {
    let db = pg::Pg::start();
    let url = db.url("postgres");
    let o = pg::owner(&url).await;
    pg::crm(&o).await;
    o.batch_execute(sql).await.unwrap();
    for _ in 0..calls {
        o.batch_execute(SLOW).await.unwrap();
    }
    let up = sim(flowgate_sim::EndpointSpec::default()).await;
    let gw = gateway_env(
        &format!("{}\n{}", fleet_config(&[up.url()], ""), databases(poll)),
        &[("CRM_URL", &url)],
    )
    .await;
    (db, o, gw, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advisor_endpoints_analyze_recommend_and_write_only_where_allowed() {
    let (db, o, gw, _up) = crm_behind_a_gateway("", 10, "1h").await;
    let admin = gw.admin_addr;
    const BASE: &str = "/api/v1/performance/database";

    // SQL that does not parse: 400 with the parser's position, before any database.
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query"),
        r#"{"query": "SELECT id\nFROM leads WHERE"}"#,
    )
    .await;
    r.expect(StatusCode::BAD_REQUEST);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "query_does_not_parse");
    assert_eq!(
        (e["line"].as_u64(), e["param"].as_str()),
        (Some(2), Some("query"))
    );
    assert!(e["column"].as_u64().is_some(), "{e}");
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query"),
        r#"{"sql": "SELECT 1"}"#,
    )
    .await;
    assert_eq!(
        r.expect(StatusCode::BAD_REQUEST).error_code(),
        "invalid_body"
    );

    // A query on the read-only database: complexity, plan, the index proven to help it; it
    // is not run (allow_analyze is off there).
    let body = serde_json::json!({ "query": SLOW }).to_string();
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query?database=crm"),
        &body,
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    assert!(v["complexity"]["score"].as_u64().unwrap() >= 1);
    assert!(v["plan"]["total_cost"].as_f64().unwrap() > 1000.0, "{v}");
    assert_eq!(
        v["recommendations"][0]["index"]["columns"][0], "account_id",
        "{v}"
    );
    assert!(v["execution_ms"].is_null(), "{v}");
    // The plan adds what the parse tree cannot know: a whole large table read.
    let reasons = v["complexity"]["reasons"].to_string();
    assert!(
        reasons.contains("seq_scan") && reasons.contains("events (~"),
        "{reasons}"
    );
    // A column cast by the planner to compare it with a value of another type.
    let cast = r#"{"query": "SELECT id FROM leads WHERE account_id = 42.5"}"#;
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query?database=crm"),
        cast,
    )
    .await;
    let reasons = r.expect(StatusCode::OK).json()["complexity"]["reasons"].to_string();
    assert!(
        reasons.contains("implicit_cast") && reasons.contains("(account_id)::numeric"),
        "{reasons}"
    );
    // On the database that allows it, it is run: its real time.
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query?database=crm_rw"),
        &body,
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    assert!(v["execution_ms"].as_f64().unwrap() > 0.0, "{v}");
    // A query on a table that is not there: the database's words.
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/analyze-query?database=crm"),
        r#"{"query": "SELECT * FROM nowhere"}"#,
    )
    .await;
    r.expect(StatusCode::BAD_GATEWAY);
    assert!(
        r.error_message().contains("\"nowhere\" does not exist"),
        "{}",
        r.error_message()
    );

    // Two databases: which one must be said.
    let r = api(admin, "GET", &format!("{BASE}/slow-queries"), "").await;
    assert_eq!(
        r.expect(StatusCode::BAD_REQUEST).error_code(),
        "invalid_parameter"
    );
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/slow-queries?database=nope"),
        "",
    )
    .await;
    assert_eq!(
        r.expect(StatusCode::NOT_FOUND).error_code(),
        "database_not_found"
    );

    let r = api(
        admin,
        "GET",
        &format!("{BASE}/slow-queries?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    let shape = v["slow_queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["query"].as_str().unwrap().contains("FROM events"))
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert!(shape["calls"].as_i64().unwrap() >= 10, "{shape}");
    // Its complexity with what its plan adds: the whole events table read.
    assert!(
        shape["complexity"]["reasons"]
            .to_string()
            .contains("seq_scan"),
        "{shape}"
    );
    assert!(
        shape["series"]
            .as_str()
            .unwrap()
            .starts_with("db_query_mean_ms{database=\"crm\",query=\"")
    );

    let r = api(
        admin,
        "GET",
        &format!("{BASE}/index-recommendations?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    let stmt = v["recommendations"][0]["statement"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stmt.starts_with("CREATE INDEX CONCURRENTLY events_account_id"),
        "{v}"
    );
    assert!(v["recommendations"][0]["size_bytes"].as_i64().unwrap() > 0);

    let r = api(
        admin,
        "GET",
        &format!("{BASE}/optimization-plan?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    let first = &v["steps"][0];
    assert_eq!(
        (first["order"].as_u64(), first["action"].as_str()),
        (Some(1), Some("create_index"))
    );
    assert_eq!(first["allowed"], false, "read-only: {v}");
    let target = first["target"].as_str().unwrap().to_string();
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/optimization-plan?database=crm_rw"),
        "",
    )
    .await;
    assert_eq!(r.expect(StatusCode::OK).json()["steps"][0]["allowed"], true);

    // Never a write to a database not configured as writable.
    let before = indexes(&o).await;
    for (step, status, code) in [
        (
            format!("create_index/{target}?database=crm"),
            403,
            "database_read_only",
        ),
        (
            format!("drop_index/{target}?database=crm_rw"),
            403,
            "action_not_allowed",
        ),
        (
            format!("truncate/{target}?database=crm_rw"),
            400,
            "invalid_parameter",
        ),
        (
            "create_index/leads_nothing_idx?database=crm_rw".to_string(),
            404,
            "plan_step_not_found",
        ),
    ] {
        let r = api(admin, "POST", &format!("{BASE}/optimize/{step}"), "").await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{step}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code(), code, "{step}");
    }
    assert_eq!(indexes(&o).await, before);

    // Taken on the writable database: created, verified, told to the alert history.
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/optimize/create_index/{target}?database=crm_rw"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["checks"][0]["uses_index"], true, "{v}");
    assert!(indexes(&o).await.contains(&target));
    // The event is kept off the request's task: read once it is written.
    let v = until(admin, "/api/v1/alerts?rule=database:crm_rw", |v| {
        v["history"][0]["summary"].is_string()
    })
    .await;
    assert!(
        v["history"][0]["summary"].as_str().unwrap().contains(&stmt),
        "{v}"
    );
    // Done, it is no longer in the plan.
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/optimize/create_index/{target}?database=crm_rw"),
        "",
    )
    .await;
    assert_eq!(
        r.expect(StatusCode::NOT_FOUND).error_code(),
        "plan_step_not_found"
    );

    // Table health: dead rows autovacuum (off for the table) left; the plan vacuums them
    // where the database allows it.
    o.batch_execute(
        "CREATE TABLE visits (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
         INSERT INTO visits SELECT generate_series(1, 50000);
         SELECT pg_stat_force_next_flush();",
    )
    .await
    .unwrap();
    o.batch_execute(
        "ANALYZE visits; DELETE FROM visits WHERE id <= 30000; SELECT pg_stat_force_next_flush();",
    )
    .await
    .unwrap();
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/table-health?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    let visits = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "visits")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(visits["dead_rows"], 30000, "{v}");
    assert_eq!(visits["findings"][0]["kind"], "dead_rows", "{v}");
    assert_eq!(
        visits["findings"][0]["statement"],
        "VACUUM (ANALYZE) visits"
    );
    assert!(
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "settings" && t["findings"][0]["kind"] == "no_primary_key"),
        "{v}"
    );
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/optimization-plan?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "visits")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        (&step["action"], &step["allowed"]),
        (&"vacuum".into(), &false.into())
    );
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/optimize/analyze/visits?database=crm_rw"),
        "",
    )
    .await;
    assert_eq!(
        r.expect(StatusCode::FORBIDDEN).error_code(),
        "action_not_allowed"
    );
    let r = api(
        admin,
        "POST",
        &format!("{BASE}/optimize/vacuum/visits?database=crm_rw"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    assert_eq!(v["verified"], true, "{v}");
    assert!(
        v["note"].as_str().unwrap().starts_with("done: 0 dead rows"),
        "{v}"
    );
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/table-health?database=crm"),
        "",
    )
    .await;
    let v = r.expect(StatusCode::OK).json();
    assert!(
        !v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "visits"),
        "{v}"
    );

    // The database goes away: a clean error naming what failed.
    db.kill();
    let r = api(
        admin,
        "GET",
        &format!("{BASE}/index-recommendations?database=crm"),
        "",
    )
    .await;
    r.expect(StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "database_unreachable");
    assert!(
        r.error_message()
            .starts_with("cannot connect to the database"),
        "{}",
        r.error_message()
    );
    assert!(!r.error_message().contains("password"));
}

/// `GET path` until `done` holds for its JSON (at most 30 s).
async fn until(admin: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let r = api(admin, "GET", path, "").await;
        if r.status == StatusCode::OK && done(&r.json()) {
            return r.json();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = api(admin, "GET", path, "").await;
    panic!(
        "{path} never got there: {}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_shapes_raise_the_alert_and_a_plan_change_is_noted() {
    let (db, o, gw, _up) = crm_behind_a_gateway(
        "CREATE INDEX events_account ON events (account_id)",
        5,
        "5s",
    )
    .await;
    let admin = gw.admin_addr;
    let path = "/api/v1/performance/database/slow-queries?database=crm";
    // The first poll: the shape is fast, its plan uses the index.
    until(admin, path, |v| v["watch"]["last_poll"].is_u64()).await;
    let r = api(admin, "GET", "/api/v1/alerts", "").await;
    let v = r.expect(StatusCode::OK).json();
    let firing = |v: &Value| {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "slow_queries.crm" && a["status"] == "firing")
    };
    assert!(!firing(&v), "nothing slow yet: {v}");

    // The index goes: the same shape now scans the table, slowly.
    o.batch_execute("DROP INDEX events_account").await.unwrap();
    for _ in 0..5 {
        o.batch_execute(SLOW).await.unwrap();
    }
    let v = until(admin, path, |v| {
        v["watch"]["plan_changes"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let change = &v["watch"]["plan_changes"][0];
    assert!(
        change["before"]
            .as_str()
            .unwrap()
            .contains("using events_account"),
        "{change}"
    );
    assert!(
        change["after"]
            .as_str()
            .unwrap()
            .contains("Seq Scan on events"),
        "{change}"
    );
    assert!(change["mean_ms"].as_f64().unwrap() >= 2.0, "{change}");
    assert!(v["watch"]["slow_last_poll"].as_u64().unwrap() >= 1, "{v}");

    // Told to the alert history as a regression, and the slow-query rule fires.
    let alerts = until(admin, "/api/v1/alerts", firing).await;
    let history = alerts["history"].to_string();
    assert!(history.contains("a query's plan changed"), "{alerts}");
    // Each shape's mean over the polls is in the metrics history (stored by the 10 s).
    let kept = |v: &Value| {
        let all = v["series"].to_string();
        all.contains("db_query_mean_ms{database=\\\"crm\\\",query=")
            && all.contains("db_slow_queries{database=\\\"crm\\\"}")
            && all.contains("db_table_findings{database=\\\"crm\\\",kind=\\\"no_primary_key\\\"}")
            && all.contains("db_xid_age{database=\\\"crm\\\"}")
    };
    until(admin, "/api/v1/metrics/series", kept).await;

    // Prometheus sees the watch too.
    let scrape = || async {
        String::from_utf8_lossy(&api(admin, "GET", "/metrics", "").await.body).into_owned()
    };
    let m = scrape().await;
    assert_eq!(
        metric(&m, "flowgate_database_up{database=\"crm\"}"),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, "flowgate_database_slow_queries{database=\"crm\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "flowgate_database_plan_changes_total{database=\"crm\"}"),
        1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "flowgate_database_last_poll_timestamp_seconds{database=\"crm\"}"
        ) > 1.7e9,
        "{m}"
    );
    // The CRM's settings table has no primary key; no table is near wraparound.
    let kind = |k: &str| {
        metric(
            &m,
            &format!("flowgate_database_table_findings{{database=\"crm\",kind=\"{k}\"}}"),
        )
    };
    assert_eq!(
        (kind("no_primary_key"), kind("xid_wraparound")),
        (1.0, 0.0),
        "{m}"
    );
    let age = metric(&m, "flowgate_database_xid_age{database=\"crm\"}");
    assert!(age > 0.0 && age < 1e9, "{m}");
    let r = api(admin, "GET", "/api/v1/performance/databases", "").await;
    let v = r.expect(StatusCode::OK).json();
    let crm = v["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "crm")
        .unwrap();
    assert_eq!(crm["watch"]["table_findings"]["no_primary_key"], 1, "{v}");

    // The database goes away: a clean error, the watch says so at its next poll, and the
    // gateway keeps serving.
    db.kill();
    let r = api(admin, "GET", path, "").await;
    assert_eq!(
        r.expect(StatusCode::BAD_GATEWAY).error_code(),
        "database_unreachable"
    );
    let mut down = false;
    for _ in 0..150 {
        if scrape()
            .await
            .contains("flowgate_database_up{database=\"crm\"} 0")
        {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        down,
        "the watch never saw the database go: {}",
        scrape().await
    );
    let v = api(admin, "GET", "/api/v1/performance/databases", "")
        .await
        .json();
    let crm = &v["databases"][0];
    assert!(
        crm["watch"]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{v}"
    );
    let reply = chat_once(&gw).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_over_tls_is_verified_with_its_ca() {
    let pki = common::tls::Pki::new("pg");
    let server = pki.issue("pg", &["127.0.0.1"]);
    let db = pg::Pg::start_tls(
        &std::fs::read_to_string(&server.cert).unwrap(),
        &std::fs::read_to_string(&server.key).unwrap(),
    );
    let url = format!("{}?sslmode=require", db.url("postgres"));
    pg::owner(&db.url("postgres"))
        .await
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let up = sim(flowgate_sim::EndpointSpec::default()).await;
    let dbs = format!(
        "[[databases]]\nname = \"private-ca\"\nurl_env = \"PG_TLS\"\n\
         tls = {{ roots = \"none\", ca_file = \"{}\" }}\n\n\
         [[databases]]\nname = \"bundled-roots\"\nurl_env = \"PG_TLS\"\n",
        pki.ca_file().display()
    );
    let gw = gateway_env(
        &format!("{}\n{dbs}", fleet_config(&[up.url()], "")),
        &[("PG_TLS", &url)],
    )
    .await;
    let path = "/api/v1/performance/database/slow-queries?database=";
    let r = api(gw.admin_addr, "GET", &format!("{path}private-ca"), "").await;
    r.expect(StatusCode::OK);
    // The same server, verified against the public roots: refused, and said why.
    let r = api(gw.admin_addr, "GET", &format!("{path}bundled-roots"), "").await;
    r.expect(StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "database_unreachable");
    assert!(
        r.error_message().to_lowercase().contains("certificate"),
        "{}",
        r.error_message()
    );
}
