//! The optimization plan on a real PostgreSQL: the proven index first, then the index a
//! foreign key lacks, then the duplicate and unused indexes; a step taken on a writable
//! connection is verified (valid, used by the shapes it helps, faster when the advisor may
//! run them), a drop verified gone, and a read-only connection never writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Pg, owner};
use flowgate_advisor::db::default_tls;
use flowgate_advisor::plan::{apply, plan};
use flowgate_advisor::{Database, recommend};
use flowgate_clock::SystemClock;
use flowgate_config::DatabaseAction;

const SLOW: &str = "SELECT count(*) FROM events WHERE account_id = 4242";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_ordered_and_its_steps_are_verified() {
    let pg = Pg::start();
    let url = pg.url("postgres");
    let o = owner(&url).await;
    common::crm(&o).await;
    o.batch_execute(
        "CREATE TABLE notes (id int PRIMARY KEY, lead_id bigint REFERENCES leads (id), body text);
         CREATE INDEX accounts_name_a ON accounts (name);
         CREATE INDEX accounts_name_b ON accounts (name);",
    )
    .await
    .unwrap();
    for _ in 0..10 {
        o.batch_execute(SLOW).await.unwrap();
    }
    let reader = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let shapes = reader.slow_queries(0.0, 50).await.unwrap();
    let recs = recommend(&reader, &shapes, 0.5).await.unwrap();
    let steps = plan(&reader, &recs).await.unwrap();
    let seen: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s.action.as_str(), s.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("create_index", "events_account_id_idx"),
            ("create_index", "notes_lead_id_idx"),
            ("drop_index", "accounts_name_b"),
            ("drop_index", "accounts_name_a"),
        ],
        "{steps:#?}"
    );
    assert!(steps[0].saved_ms > 0.0 && steps[0].helps[0].query.contains("account_id"));
    assert!(
        steps[1].why.contains("notes_lead_id_fkey"),
        "{}",
        steps[1].why
    );
    assert!(steps[2].why.contains("accounts_name_a"), "{}", steps[2].why);

    // A read-only connection refuses before sending.
    let clock = SystemClock::shared();
    let e = apply(&reader, &reader, &steps[0], true, &clock)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not configured as writable"), "{e}");
    assert_eq!(
        reader.index_valid("events_account_id_idx").await.unwrap(),
        None
    );

    let writer = Database::connect(&url, true, &default_tls()).await.unwrap();
    let done = apply(&writer, &reader, &steps[0], true, &clock)
        .await
        .unwrap();
    assert!(done.verified, "{done:#?}");
    assert_eq!(done.step.action, DatabaseAction::CreateIndex);
    let c = &done.checks[0];
    assert!(c.uses_index && c.cost_after < c.cost_before * 0.5, "{c:?}");
    // The shape has parameters ($1): it cannot be run as it is, so no real time is claimed.
    assert_eq!((c.ms_before, c.ms_after), (None, None));
    assert_eq!(
        reader.index_valid("events_account_id_idx").await.unwrap(),
        Some(true)
    );

    let dropped = apply(&writer, &reader, &steps[2], false, &clock)
        .await
        .unwrap();
    assert!(dropped.verified, "{dropped:#?}");
    assert_eq!(reader.index_valid("accounts_name_b").await.unwrap(), None);
    // The advisor's own statements (catalog reads, HypoPG, plans, the steps) are never
    // shapes to advise on.
    let own = reader.slow_queries(0.0, 1000).await.unwrap();
    let mine: Vec<&str> = own
        .iter()
        .map(|s| s.query.as_str())
        .filter(|q| {
            ["hypopg", "pg_stats", "pg_index", "pg_class", "pg_stat_user"]
                .iter()
                .any(|c| q.contains(c))
        })
        .collect();
    assert!(mine.is_empty(), "{mine:#?}");
    // Taken again, the step fails with the database's own words.
    let again = apply(&writer, &reader, &steps[2], false, &clock)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("does not exist"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_query_is_timed_for_real_before_and_after_when_analyze_is_allowed() {
    let pg = Pg::start();
    let url = pg.url("postgres");
    let o = owner(&url).await;
    common::crm(&o).await;
    let reader = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let writer = Database::connect(&url, true, &default_tls()).await.unwrap();
    // A query given as it is (constants, no parameters) can be run.
    let shape = flowgate_advisor::Shape {
        queryid: 7,
        query: SLOW.to_string(),
        calls: 1,
        total_ms: 50.0,
        mean_ms: 50.0,
        rows: 1,
        shared_blks_hit: 0,
        shared_blks_read: 0,
    };
    let recs = recommend(&reader, &[shape], 0.5).await.unwrap();
    let steps = plan(&reader, &recs).await.unwrap();
    let done = apply(&writer, &reader, &steps[0], true, &SystemClock::shared())
        .await
        .unwrap();
    let c = &done.checks[0];
    let (before, after) = (c.ms_before.unwrap(), c.ms_after.unwrap());
    assert!(after < before, "{c:?}");
    assert!(
        reader
            .execution_ms("DELETE FROM events")
            .await
            .unwrap()
            .is_none()
    );
}
