//! The advisor on two workloads, measured, each on a private PostgreSQL (as the tests start
//! one) with generated data:
//!
//! - `crm`, the one the advisor was built against (`pg::crm`: accounts 10^4, leads 10^5,
//!   events 2·10^5, settings 50 rows), seven shapes: four a careful human would index,
//!   three negative controls;
//! - `helpdesk`, written after it and never tuned for (customers 5·10^4, agents 200,
//!   tickets 3·10^5 of which 2% open, comments 6·10^5, foreign keys unindexed): joins on
//!   foreign keys, a sorted read of the few open tickets (a partial index's case), a read
//!   an index can cover, and four controls (a primary key, a small table, an `ILIKE
//!   '%…%'`, a column a unique index already serves).
//!
//! For each: the analysis time (slow shapes read, candidates proven), the
//! recommendations, precision (recommended indexes the workload's real plans then use /
//! all recommended), recall (the human's list found, by table and leading or predicate
//! column) and the workload's real execution time (EXPLAIN ANALYZE) before and after
//! creating what was recommended.
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

/// A workload: its schema and rows, its shapes (run as a client would: `$1` replaced by a
/// number, `$1::text` by a name, varying between calls), how many of them (the first) a
/// careful human would index, and with what: (table, leading or predicate column).
struct Workload {
    name: &'static str,
    seed: &'static str,
    shapes: &'static [&'static str],
    indexable: usize,
    human: &'static [(&'static str, &'static str)],
}

const CRM: Workload = Workload {
    name: "crm",
    seed: "",
    shapes: &[
        "SELECT count(*) FROM events WHERE account_id = $1",
        "SELECT id, created_at FROM leads WHERE account_id = $1 AND status = 'open' ORDER BY created_at DESC LIMIT 20",
        "SELECT id, at FROM events WHERE kind = 'login' ORDER BY at DESC LIMIT 50",
        "SELECT id FROM leads WHERE email = $1::text || '@example.com'",
        // Negative controls: a primary-key lookup, a small table, a pattern no b-tree serves.
        "SELECT name FROM accounts WHERE id = $1",
        "SELECT value FROM settings WHERE name = 'k' || $1::text",
        "SELECT id FROM leads WHERE lower(email) LIKE '%' || $1::text || '%'",
    ],
    indexable: 4,
    human: &[
        ("events", "account_id"),
        ("leads", "account_id"),
        ("events", "kind"),
        ("leads", "email"),
    ],
};

const HELPDESK: Workload = Workload {
    name: "helpdesk",
    seed: "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;
        CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE NOT NULL, plan text NOT NULL);
        CREATE TABLE agents (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE tickets (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                              assignee_id int REFERENCES agents, status text NOT NULL,
                              priority int NOT NULL, created_at timestamptz NOT NULL);
        CREATE TABLE comments (id bigserial PRIMARY KEY, ticket_id bigint NOT NULL REFERENCES tickets,
                               author text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL);
        INSERT INTO customers SELECT i, 'c' || i || '@example.com', (ARRAY['free','pro','team'])[1 + i % 3]
          FROM generate_series(1, 50000) i;
        INSERT INTO agents SELECT i, 'agent ' || i FROM generate_series(1, 200) i;
        INSERT INTO tickets (customer_id, assignee_id, status, priority, created_at)
          SELECT 1 + i % 50000, 1 + i % 200,
                 CASE WHEN i % 50 = 0 THEN 'open' WHEN i % 50 < 3 THEN 'pending' ELSE 'closed' END,
                 i % 4, now() - (i || ' minutes')::interval FROM generate_series(1, 300000) i;
        INSERT INTO comments (ticket_id, author, body, created_at)
          SELECT 1 + i % 300000, 'user' || (i % 5000), 'comment ' || i || CASE WHEN i % 97 = 0 THEN ' refund' ELSE '' END,
                 now() - (i || ' seconds')::interval FROM generate_series(1, 600000) i;
        ANALYZE; SELECT pg_stat_statements_reset();",
    shapes: &[
        "SELECT t.id, c.body FROM tickets t JOIN comments c ON c.ticket_id = t.id WHERE t.customer_id = $1",
        "SELECT id, priority, created_at FROM tickets WHERE status = 'open' ORDER BY created_at LIMIT 50",
        "SELECT created_at, body FROM comments WHERE author = 'user' || $1::text ORDER BY created_at DESC LIMIT 20",
        "SELECT count(*) FROM tickets WHERE assignee_id = $1 AND status <> 'closed'",
        // Negative controls: a primary key, a small table, a pattern no b-tree serves, a
        // column a unique index already serves.
        "SELECT name FROM agents WHERE id = $1",
        "SELECT id FROM agents WHERE name = 'agent ' || $1",
        "SELECT id FROM comments WHERE body ILIKE '%refund%' LIMIT 100",
        "SELECT id, plan FROM customers WHERE email = 'c' || $1 || '@example.com'",
    ],
    indexable: 4,
    human: &[
        ("tickets", "customer_id"),
        ("comments", "ticket_id"),
        ("tickets", "status"),
        ("comments", "author"),
        ("tickets", "assignee_id"),
    ],
};

/// The workload's real execution time: the indexable shapes', the controls'.
async fn run_workload(o: &tokio_postgres::Client, w: &Workload, calls: i32) -> (f64, f64) {
    let mut ms = (0.0, 0.0);
    for i in 1..=calls {
        for (n, q) in w.shapes.iter().enumerate() {
            let sql = q
                .replace("$1::text", &format!("'{}'", i * 37))
                .replace("$1", &(i * 37).to_string());
            let row = o
                .query_one(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), &[])
                .await
                .unwrap();
            let v: serde_json::Value = row.get(0);
            let t = v[0]["Execution Time"].as_f64().unwrap();
            if n < w.indexable {
                ms.0 += t;
            } else {
                ms.1 += t;
            }
            o.batch_execute(&sql).await.unwrap();
        }
    }
    ms
}

async fn measure(w: &Workload) {
    let server = pg::Pg::start();
    let url = server.url("postgres");
    let o = pg::owner(&url).await;
    if w.seed.is_empty() {
        pg::crm(&o).await;
    } else {
        o.batch_execute(w.seed).await.unwrap();
    }
    let before = run_workload(&o, w, 10).await;

    let db = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let started = Instant::now();
    let shapes = db.slow_queries(0.0, 100).await.unwrap();
    let recs = recommend(&db, &shapes, 0.5).await.unwrap();
    let analysis = started.elapsed();
    println!(
        "[{}] analysis: {} shapes, {} recommendations in {:.0} ms",
        w.name,
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
    o.batch_execute("ANALYZE; SELECT pg_stat_reset();")
        .await
        .unwrap();
    let after = run_workload(&o, w, 10).await;
    o.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();
    o.batch_execute("SELECT 1").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // Precision: a recommended index the workload's real plans then scanned.
    let mut used = 0;
    for r in &recs {
        let name = r.index.name();
        let scans: i64 = o
            .query_one(
                "SELECT coalesce(sum(idx_scan), 0)::int8 FROM pg_stat_user_indexes WHERE indexrelname = $1",
                &[&name.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        used += usize::from(scans > 0);
    }
    let found: Vec<String> = w
        .human
        .iter()
        .filter(|(t, c)| {
            recs.iter().any(|r| {
                r.index.table == *t
                    && (r.index.columns.first().map(String::as_str) == Some(*c)
                        || r.index.predicate_column() == Some(*c))
            })
        })
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    println!(
        "[{}] precision: {used}/{} recommended were used by the workload's plans; recall: {}/{} of the human's list ({})",
        w.name,
        recs.len(),
        found.len(),
        w.human.len(),
        found.join(", ")
    );
    println!(
        "[{}] the {} indexable shapes x 10 calls (EXPLAIN ANALYZE): {:.1} ms before, {:.1} ms after ({:.0}x faster)",
        w.name,
        w.indexable,
        before.0,
        after.0,
        before.0 / after.0.max(1e-9)
    );
    println!(
        "[{}] the {} controls x 10 calls: {:.1} ms before, {:.1} ms after (nothing recommended for them)",
        w.name,
        w.shapes.len() - w.indexable,
        before.1,
        after.1
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for w in [&CRM, &HELPDESK] {
            measure(w).await;
        }
    });
}
