//! Table health on a real PostgreSQL: dead rows autovacuum left (it is off for the table),
//! a table never analyzed, a table read whole over and over, a table without a primary
//! key; the plan vacuums and analyzes them, a read-only session refuses to, and a writable
//! one does it, verified by the statistics after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Pg, owner};
use flowgate_advisor::db::default_tls;
use flowgate_advisor::health::{TableHealth, table, tables};
use flowgate_advisor::plan::{apply, plan};
use flowgate_advisor::{Database, report};
use flowgate_clock::SystemClock;
use flowgate_config::DatabaseAction;

fn kinds(t: &TableHealth) -> Vec<&'static str> {
    t.findings().iter().map(|f| f.kind).collect()
}

fn named<'a>(all: &'a [TableHealth], name: &str) -> &'a TableHealth {
    all.iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("no table {name} in {all:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_come_from_the_statistics_and_the_plan_fixes_them_verified() {
    let pg = Pg::start();
    let url = pg.url("postgres");
    let o = owner(&url).await;
    common::crm(&o).await;
    o.batch_execute(
        "CREATE TABLE visits (id int PRIMARY KEY, page text) WITH (autovacuum_enabled = false);
         INSERT INTO visits SELECT i, 'p' || i FROM generate_series(1, 50000) i;
         ANALYZE visits;",
    )
    .await
    .unwrap();
    o.batch_execute(
        "DELETE FROM visits WHERE id <= 30000;
         CREATE TABLE imports (id int PRIMARY KEY, line text) WITH (autovacuum_enabled = off);
         INSERT INTO imports SELECT i, 'l' || i FROM generate_series(1, 20000) i;",
    )
    .await
    .unwrap();
    for _ in 0..12 {
        o.batch_execute("SELECT count(*) FROM events WHERE kind = 'none'")
            .await
            .unwrap();
    }
    // This session's counts reach the shared statistics when it next goes idle.
    o.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();

    let reader = Database::connect(&url, false, &default_tls())
        .await
        .unwrap();
    let all = tables(&reader).await.unwrap();
    let visits = named(&all, "visits");
    assert_eq!((visits.live_rows, visits.dead_rows), (20_000, 30_000));
    assert!(visits.autovacuum_off && visits.has_primary_key);
    assert_eq!(kinds(visits), ["dead_rows", "stale_statistics"]);
    let dead = &visits.findings()[0];
    assert!(
        dead.detail.contains("30000 dead rows, 60%") && dead.detail.contains("autovacuum is off"),
        "{}",
        dead.detail
    );
    let imports = named(&all, "imports");
    assert_eq!(kinds(imports), ["stale_statistics"]);
    assert!(
        imports.findings()[0]
            .detail
            .starts_with("never analyzed, 20000 rows")
    );
    let events = named(&all, "events");
    assert_eq!(kinds(events), ["sequential_reads"], "{events:#?}");
    assert!(events.seq_scans >= 12 && events.seq_rows_read >= 12 * 200_000);
    assert_eq!(kinds(named(&all, "settings")), ["no_primary_key"]);
    for healthy in ["accounts", "leads"] {
        assert!(
            kinds(named(&all, healthy)).is_empty(),
            "{healthy}: {all:#?}"
        );
    }
    assert!(visits.xid_age > 0 && visits.size_bytes > 0);

    // The report lists the tables with findings, with the statements that fix them.
    let shown = report::tables(&reader).await.unwrap();
    assert!(shown["checked"].as_u64().unwrap() >= 6, "{shown}");
    let listed: Vec<&str> = shown["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&"accounts"), "{listed:?}");
    let v = shown["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "visits")
        .unwrap();
    assert_eq!(v["findings"][0]["action"], "vacuum");
    assert_eq!(v["findings"][0]["statement"], "VACUUM (ANALYZE) visits");
    assert_eq!(v["autovacuum_enabled"], false);

    // The plan: one step per table, vacuum over analyze, most dead rows first.
    let steps = plan(&reader, &[]).await.unwrap();
    let seen: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s.action.as_str(), s.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("vacuum", "visits"), ("analyze", "imports")],
        "{steps:#?}"
    );

    // A read-only session refuses before sending.
    let clock = SystemClock::shared();
    let e = apply(&reader, &reader, &steps[0], false, &clock)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not configured as writable"), "{e}");
    let still = table(&reader, "visits").await.unwrap().unwrap();
    assert_eq!(still.dead_rows, 30_000);

    let writer = Database::connect(&url, true, &default_tls()).await.unwrap();
    let vacuumed = apply(&writer, &reader, &steps[0], false, &clock)
        .await
        .unwrap();
    assert!(vacuumed.verified, "{vacuumed:#?}");
    assert_eq!(vacuumed.step.action, DatabaseAction::Vacuum);
    assert!(
        vacuumed.note.starts_with("done: 0 dead rows"),
        "{}",
        vacuumed.note
    );
    let after = table(&reader, "visits").await.unwrap().unwrap();
    assert!(
        after.findings().is_empty() && after.last_vacuum.is_some(),
        "{after:#?}"
    );

    let analyzed = apply(&writer, &reader, &steps[1], false, &clock)
        .await
        .unwrap();
    assert!(analyzed.verified, "{analyzed:#?}");
    let after = table(&reader, "imports").await.unwrap().unwrap();
    assert!(after.last_analyze.is_some() && after.findings().is_empty());

    // Nothing left to do; a table that is not there has no health.
    assert!(plan(&reader, &[]).await.unwrap().is_empty());
    assert_eq!(table(&reader, "nowhere").await.unwrap(), None);
}
