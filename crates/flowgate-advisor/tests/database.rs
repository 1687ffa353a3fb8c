//! The advisor against a real PostgreSQL (started by the test): it reads the slow query
//! shapes of `pg_stat_statements`, plans without running, never writes to a database not
//! configured as writable, names a missing extension with what to install, and fails
//! cleanly when the database goes away.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Pg, owner};
use flowgate_advisor::db::default_tls;
use flowgate_advisor::{AdvisorError, Database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_shapes_plans_read_only_missing_extensions_and_a_lost_server() {
    let pg = Pg::start();
    let url = pg.url("postgres");
    let o = owner(&url).await;
    // Before the extension exists: what to do, said.
    let db = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let e = db.slow_queries(0.0, 10).await.unwrap_err();
    assert!(
        matches!(
            e,
            AdvisorError::MissingExtension {
                name: "pg_stat_statements",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("shared_preload_libraries"), "{e}");

    o.batch_execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL, at timestamptz NOT NULL);
         INSERT INTO events (account_id, kind, at)
           SELECT i % 5000, CASE WHEN i % 7 = 0 THEN 'login' ELSE 'view' END, now() - (i || ' seconds')::interval
           FROM generate_series(1, 200000) AS i;
         ANALYZE events;
         SELECT pg_stat_statements_reset();",
    )
    .await
    .unwrap();
    // A workload: a shape without an index to serve it, asked 20 times; a fast one.
    for i in 0..20 {
        o.query("SELECT count(*) FROM events WHERE account_id = $1", &[&i])
            .await
            .unwrap();
        o.query("SELECT kind FROM events WHERE id = $1", &[&i64::from(i)])
            .await
            .unwrap();
    }
    // Plans asked for and session statements are not the workload.
    o.batch_execute(
        "EXPLAIN SELECT count(*) FROM events WHERE account_id = 3; SET work_mem = '8MB'",
    )
    .await
    .unwrap();
    let shapes = db.slow_queries(0.0, 10).await.unwrap();
    assert!(
        shapes
            .iter()
            .all(|s| !s.query.starts_with("EXPLAIN") && !s.query.starts_with("SET")),
        "{shapes:#?}"
    );
    let scan = shapes
        .iter()
        .find(|s| s.query.contains("account_id = $1"))
        .unwrap_or_else(|| panic!("{shapes:#?}"));
    assert_eq!(scan.calls, 20);
    assert!(
        scan.mean_ms > 0.0 && scan.total_ms >= scan.mean_ms * 19.0,
        "{scan:?}"
    );
    // Ranked by total time: the scan before the primary-key lookup.
    let lookup = shapes
        .iter()
        .position(|s| s.query.contains("WHERE id = $1"));
    let scan_at = shapes.iter().position(|s| s.queryid == scan.queryid);
    assert!(lookup.is_none_or(|l| scan_at < Some(l)), "{shapes:#?}");
    // A threshold above every shape's mean: nothing.
    assert!(db.slow_queries(60_000.0, 10).await.unwrap().is_empty());

    // Plans, not runs.
    let plan = db
        .explain("SELECT count(*) FROM events WHERE account_id = 7")
        .await
        .unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("Seq Scan") && text.contains("Total Cost"),
        "{text}"
    );

    // Read-only: the session refuses writes, and the advisor refuses before sending.
    let e = db
        .explain("INSERT INTO events (account_id, kind, at) VALUES (1, 'x', now())")
        .await;
    assert!(
        e.is_ok(),
        "EXPLAIN of a write plans it without running it: {e:?}"
    );
    let e = db
        .execute("CREATE INDEX ON events (account_id)")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not configured as writable"), "{e}");
    let idx: i64 = o
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(idx, 1, "only the primary key");

    // HypoPG not created in this database yet: named, with what to install.
    let e = db.require(flowgate_advisor::db::HYPOPG).await.unwrap_err();
    assert!(e.to_string().contains("hypopg"), "{e}");

    // The server goes away mid-analysis: a clean error, no panic.
    pg.kill();
    let e = db.slow_queries(0.0, 10).await.unwrap_err();
    assert!(
        matches!(e, AdvisorError::Lost(_) | AdvisorError::Query(_)),
        "{e:?}"
    );
    let e = Database::connect(&url, false, &default_tls())
        .await
        .unwrap_err();
    assert!(matches!(e, AdvisorError::Connect(_)), "{e:?}");
}
