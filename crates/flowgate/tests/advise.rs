//! `flowgate advise` as a user runs it: one query's complexity offline, bad SQL and an
//! unreachable database said clearly (no password in the message), and a real
//! PostgreSQL (started by the test) advised: its slow shape, the index proven to help it,
//! in text and JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../flowgate-advisor/tests/common/mod.rs"]
mod pg;

use std::process::{Command, Output};

fn advise(args: &[&str]) -> Output {
    advise_env(args, &[])
}

fn advise_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg("advise")
        .args(args)
        .env_remove("FLOWGATE_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_query_alone_bad_sql_and_an_unreachable_database() {
    let o = advise(&[
        "--query",
        "SELECT * FROM leads l JOIN accounts a ON a.id = l.account_id WHERE lower(l.email) = 'x'",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("complexity 4/10"), "{out}");
    assert!(
        out.contains("function_on_column") && out.contains("lower(l.email)"),
        "{out}"
    );

    let o = advise(&["--query", "SELEC * FROM leads"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("does not parse") && err.contains("Line: 1, Column: 1"),
        "{err}"
    );

    let o = advise(&["--database-url", "postgres://app:hunter2@127.0.0.1:1/x"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot connect") && err.contains("app:***@"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let o = advise(&[]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("--query, --log, --database-url"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn a_log_is_read_offline_and_bad_logs_are_said() {
    let dir = std::env::temp_dir().join(format!("flowgate-advise-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("postgresql.log");
    std::fs::write(
        &log,
        "2026-12-07 10:00:00.001 UTC [7] app@crm LOG:  duration: 900.0 ms  statement: SELECT * FROM leads\n\
         \tWHERE lower(email) = 'a@example.com'\n\
         2026-12-07 10:00:00.002 UTC [7] app@crm LOG:  duration: 700.0 ms  execute <unnamed>: SELECT * FROM leads WHERE lower(email) = $1\n\
         2026-12-07 10:00:00.002 UTC [7] app@crm DETAIL:  parameters: $1 = 'b@example.com'\n\
         2026-12-07 10:00:00.003 UTC [7] app@crm LOG:  duration: 20.0 ms  statement: SELECT 1\n\
         2026-12-07 10:00:00.004 UTC [7] app@crm LOG:  duration: 9000.0 ms  statement: VACUUM leads\n",
    )
    .unwrap();
    let o = advise(&["--log", log.to_str().unwrap(), "--slow-ms", "100"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.starts_with(
            "from the log: 4 timed statements in 2 shapes (1 utility, 0 that do not parse, 0 the advisor's own left out)\n\
             slow queries (mean over 100 ms): 1\n\
             - 800.0 ms mean x 2 calls = 1600 ms: SELECT * FROM leads WHERE lower(email) = $1\n"
        ),
        "{out}"
    );
    assert!(out.contains("function_on_column"), "{out}");
    assert!(
        !out.contains("recommend"),
        "nothing is proven offline: {out}"
    );

    // The same log on standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "advise",
            "--log",
            "-",
            "--slow-ms",
            "100",
            "--format",
            "json",
        ])
        .env_remove("FLOWGATE_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(&log).unwrap(),
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["log"]["statements"], 4, "{v}");
    assert_eq!(v["slow_queries"][0]["max_ms"], 900.0, "{v}");

    let o = advise(&["--log", dir.join("missing.log").to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot read the log") && err.contains("missing.log"),
        "{err}"
    );
    let o = advise(&["--log", log.to_str().unwrap(), "--query", "SELECT 1"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("cannot be used with"), "{:?}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_is_advised_in_text_and_json() {
    let server = pg::Pg::start();
    let url = server.url("postgres");
    let o = pg::owner(&url).await;
    pg::loaded(
        &o,
        "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;
         CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, at timestamptz NOT NULL);
         INSERT INTO events (account_id, at)
           SELECT i % 5000, now() - (i || ' seconds')::interval FROM generate_series(1, 100000) i;
         CREATE TABLE audit_log (at timestamptz, line text);",
    )
    .await;
    for i in 0..5 {
        o.query("SELECT count(*) FROM events WHERE account_id = $1", &[&i])
            .await
            .unwrap();
    }
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            advise(&a)
        })
    };
    let out = run(vec![
        "--database-url".into(),
        url.clone(),
        "--slow-ms".into(),
        "0".into(),
    ])
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "recommend: CREATE INDEX CONCURRENTLY events_account_id_idx ON events (account_id)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("helps (5 calls)"), "{stdout}");
    // The tables' health: the audit log has no primary key; events is healthy.
    assert!(
        stdout
            .contains("table health: 2 tables checked\n- audit_log no_primary_key: no primary key"),
        "{stdout}"
    );
    assert!(!stdout.contains("- events"), "{stdout}");

    let out = run(vec![
        "--database-url".into(),
        url.clone(),
        "--query".into(),
        "SELECT at FROM events WHERE account_id = 42 ORDER BY at DESC LIMIT 10".into(),
        "--format".into(),
        "json".into(),
    ])
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["plan"]["total_cost"].as_f64().unwrap() > 1000.0, "{v}");
    let rec = &v["recommendations"][0];
    assert_eq!(rec["index"]["table"], "events", "{v}");
    assert_eq!(rec["index"]["columns"][0], "account_id", "{v}");
    assert!(
        rec["helps"][0]["cost_lower_by_percent"].as_f64().unwrap() >= 50.0,
        "{v}"
    );
    // Read-only: nothing was made.
    let n: i64 = o
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // Not run unless asked; with --analyze, its real time and what only a run shows.
    assert!(v["execution_ms"].is_null(), "{v}");
    let out = run(vec![
        "--database-url".into(),
        url.clone(),
        "--analyze".into(),
        "--query".into(),
        "SELECT at FROM events WHERE account_id = 42 ORDER BY at DESC LIMIT 10".into(),
    ])
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("real time: "), "{stdout}");
    assert!(
        stdout.contains("seq_scan: the plan reads whole large tables: events"),
        "{stdout}"
    );

    // The database of a config: its URL from the environment, its `slow`; a flag wins.
    let dir = std::env::temp_dir().join(format!("flowgate-advise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flowgate.toml");
    std::fs::write(
        &file,
        "[pools.api]\nendpoints = [{ url = \"http://127.0.0.1:9\" }]\n\
         [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/\"\npool = \"api\"\n\
         [[databases]]\nname = \"app\"\nurl_env = \"ADVISE_TEST_DB\"\nslow = \"1h\"\n\
         [[databases]]\nname = \"other\"\nurl_env = \"ADVISE_TEST_DB\"\n",
    )
    .unwrap();
    let config = file.display().to_string();
    let env = [("ADVISE_TEST_DB", url.as_str())];
    let o = advise_env(&["--config", &config], &env);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("--database: which one? (app, other)"),
        "{}",
        text(&o).1
    );
    let o = advise_env(&["--config", &config, "--database", "app"], &env);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("slow queries (mean over 3600000 ms): 0"),
        "{stdout}"
    );
    let o = advise_env(
        &["--config", &config, "--database", "app", "--slow-ms", "0"],
        &env,
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("recommend: CREATE INDEX CONCURRENTLY events_account_id_idx"),
        "{stdout}"
    );
    let o = advise_env(&["--config", &config, "--database", "nope"], &env);
    assert!(
        text(&o).1.contains("no database \"nope\""),
        "{}",
        text(&o).1
    );
    let _ = std::fs::remove_dir_all(&dir);
}
