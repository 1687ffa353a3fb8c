//! The advisor on a workload, measured: a private PostgreSQL (as the tests start one) with
//! generated data (`pg::crm`: accounts 10^4, leads 10^5, events 2·10^5, settings 50 rows)
//! and seven
//! query shapes — four a careful human would index, three negative controls. Prints the
//! analysis time (slow shapes read, candidates proven), the recommendations, precision
//! (recommended indexes the workload's real plans then use / all recommended), recall
//! (the human's list found, by table and leading column) and the workload's real
//! execution time (EXPLAIN ANALYZE) before and after creating what was recommended.
//!
//! cargo bench -p flowgate-advisor --bench workload
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "../tests/common/mod.rs"]
mod pg;

use std::time::Instant;

use flowgate_advisor::db::default_tls;
use flowgate_advisor::{Database, recommend};

/// The shapes, run as a client would (constants vary between calls).
const WORKLOAD: [&str; 7] = [
    "SELECT count(*) FROM events WHERE account_id = $1",
    "SELECT id, created_at FROM leads WHERE account_id = $1 AND status = 'open' ORDER BY created_at DESC LIMIT 20",
    "SELECT id, at FROM events WHERE kind = 'login' ORDER BY at DESC LIMIT 50",
    "SELECT id FROM leads WHERE email = $1::text || '@example.com'",
    // Negative controls: a primary-key lookup, a small table, a pattern no b-tree serves.
    "SELECT name FROM accounts WHERE id = $1",
    "SELECT value FROM settings WHERE name = 'k' || $1::text",
    "SELECT id FROM leads WHERE lower(email) LIKE '%' || $1::text || '%'",
];

/// What a careful human would add: (table, leading column).
const HUMAN: [(&str, &str); 4] = [
    ("events", "account_id"),
    ("leads", "account_id"),
    ("events", "kind"),
    ("leads", "email"),
];

/// The workload's real execution time: the four indexable shapes', the controls'.
async fn run_workload(o: &tokio_postgres::Client, calls: i32) -> (f64, f64) {
    let mut ms = (0.0, 0.0);
    for i in 0..calls {
        for (n, q) in WORKLOAD.iter().enumerate() {
            let sql = q
                .replace("$1::text", &format!("'lead{i}'"))
                .replace("$1", &i.to_string());
            let row = o
                .query_one(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), &[])
                .await
                .unwrap();
            let v: serde_json::Value = row.get(0);
            let t = v[0]["Execution Time"].as_f64().unwrap();
            if n < HUMAN.len() {
                ms.0 += t;
            } else {
                ms.1 += t;
            }
            o.batch_execute(&sql).await.unwrap();
        }
    }
    ms
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = pg::Pg::start();
        let url = server.url("postgres");
        let o = pg::owner(&url).await;
        pg::crm(&o).await;
        let before = run_workload(&o, 10).await;

        let db = Database::connect(&url, false, &default_tls()).await.unwrap();
        let started = Instant::now();
        let shapes = db.slow_queries(0.0, 100).await.unwrap();
        let recs = recommend(&db, &shapes, 0.5).await.unwrap();
        let analysis = started.elapsed();
        println!(
            "analysis: {} shapes, {} recommendations in {:.0} ms",
            shapes.len(),
            recs.len(),
            analysis.as_secs_f64() * 1e3
        );
        for r in &recs {
            println!("  {}  (size {} KiB)", r.statement, r.size_bytes / 1024);
        }

        let writer = Database::connect(&url, true, &default_tls()).await.unwrap();
        for r in &recs {
            writer.execute(&r.statement).await.unwrap();
        }
        o.batch_execute("ANALYZE; SELECT pg_stat_reset();").await.unwrap();
        let after = run_workload(&o, 10).await;
        o.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
        o.batch_execute("SELECT 1").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        // Precision: a recommended index the workload's real plans then scanned.
        let mut used = 0;
        for r in &recs {
            let name = r.statement.split_whitespace().nth(3).unwrap();
            let scans: i64 = o
                .query_one(
                    "SELECT coalesce(sum(idx_scan), 0)::int8 FROM pg_stat_user_indexes WHERE indexrelname = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get(0);
            used += usize::from(scans > 0);
        }
        let found = HUMAN
            .iter()
            .filter(|(t, c)| {
                recs.iter().any(|r| {
                    r.index.table == *t
                        && (r.index.columns.first().map(String::as_str) == Some(*c)
                            || r.index.predicate_column() == Some(*c))
                })
            })
            .count();
        println!(
            "precision: {used}/{} recommended were used by the workload's plans; recall: {found}/{} of the human's list",
            recs.len(),
            HUMAN.len()
        );
        println!(
            "the 4 indexable shapes x 10 calls (EXPLAIN ANALYZE): {:.1} ms before, {:.1} ms after ({:.0}x faster)",
            before.0,
            after.0,
            before.0 / after.0.max(1e-9)
        );
        println!(
            "the 3 controls x 10 calls: {:.1} ms before, {:.1} ms after (nothing recommended for them)",
            before.1, after.1
        );
    });
}
