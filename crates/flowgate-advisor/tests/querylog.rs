//! Slow shapes from PostgreSQL's own log on a real server: `log_min_duration_statement`
//! written as stderr, csvlog and jsonlog at once; each format read gives the same shapes
//! (constants and parameters alike), and on the database the index proven to help the
//! slowest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{Pg, owner};
use flowgate_advisor::Database;
use flowgate_advisor::db::default_tls;
use flowgate_advisor::querylog::shapes;
use flowgate_advisor::report::{self, Settings};

/// The text of the server's log files ending in `ext`, once `done` holds for it (the
/// logging collector writes them a moment after the statements).
fn logged(data: &Path, ext: &str, done: impl Fn(&str) -> bool) -> String {
    let dir = data.join("log");
    for _ in 0..100 {
        let mut text = String::new();
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == ext) {
                text.push_str(&std::fs::read_to_string(f.path()).unwrap());
            }
        }
        if done(&text) {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the {ext} log never held the workload in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_log_format_gives_the_shapes_and_the_database_proves_their_index() {
    let pg = Pg::start();
    let url = pg.url("postgres");
    let o = owner(&url).await;
    common::crm(&o).await;
    for set in [
        "logging_collector = on",
        "log_destination = 'stderr,csvlog,jsonlog'",
        "log_min_duration_statement = 0",
    ] {
        o.batch_execute(&format!("ALTER SYSTEM SET {set}"))
            .await
            .unwrap();
    }
    drop(o);
    pg.restart();
    let o = owner(&url).await;
    // The same shape with constants (simple protocol) and with a parameter (extended).
    for i in 0..5i32 {
        o.batch_execute(&format!(
            "SELECT count(*) FROM events\n  WHERE account_id = {}",
            4000 + i
        ))
        .await
        .unwrap();
        o.query("SELECT count(*) FROM events WHERE account_id = $1", &[&i])
            .await
            .unwrap();
    }
    for sql in [
        "SELECT name FROM accounts WHERE id = 7",
        "VACUUM settings",
        "SELECT 'end of workload'",
    ] {
        o.batch_execute(sql).await.unwrap();
    }

    let data = pg.dir().join("data");
    for ext in ["log", "csv", "json"] {
        let text = logged(&data, ext, |t| t.contains("end of workload"));
        let found = shapes(text.as_bytes(), Some("postgres")).unwrap();
        let first = &found.shapes[0];
        assert_eq!(
            first.shape.query, "SELECT count(*) FROM events WHERE account_id = $1",
            "{ext}: {found:#?}"
        );
        assert_eq!(first.shape.calls, 10, "{ext}: {found:#?}");
        assert!(first.max_ms >= first.shape.mean_ms && first.shape.mean_ms > 0.0);
        assert!(found.utility >= 1, "{ext}: the VACUUM: {found:#?}");
        assert!(
            found
                .shapes
                .iter()
                .any(|s| s.shape.query == "SELECT name FROM accounts WHERE id = $1"),
            "{ext}: {found:#?}"
        );
        // Another database's entries are left out where the format says which.
        if ext != "log" {
            assert_eq!(
                shapes(text.as_bytes(), Some("other")).unwrap().statements,
                0,
                "{ext}"
            );
        }
    }

    // On the database: the slowest shape's index, proven.
    let db = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let text = logged(&data, "csv", |t| t.contains("end of workload"));
    let s = Settings {
        slow_ms: 0.0,
        ..Settings::default()
    };
    let found = shapes(text.as_bytes(), Some("postgres")).unwrap();
    let v = report::log(Some(&db), &found, s).await.unwrap();
    assert_eq!(v["database"], "postgres");
    assert_eq!(
        v["recommendations"][0]["statement"],
        "CREATE INDEX CONCURRENTLY events_account_id_idx ON events (account_id)",
        "{v:#}"
    );
    assert_eq!(v["slow_queries"][0]["calls"], 10, "{v:#}");
    assert!(
        v["slow_queries"][0]["slowest"]
            .as_str()
            .unwrap()
            .contains("events")
    );
    // Offline: complexity only, nothing proven.
    let offline = shapes(text.as_bytes(), None).unwrap();
    let v = report::log(None, &offline, s).await.unwrap();
    assert!(
        v["recommendations"].is_null() && v["database"].is_null(),
        "{v:#}"
    );
    assert!(
        v["slow_queries"][0]["complexity"]["score"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The advisor's own statements are in the log now, and left out.
    let text = logged(&data, "json", |t| t.contains("flowgate advisor"));
    assert!(shapes(text.as_bytes(), None).unwrap().own > 0);
}
