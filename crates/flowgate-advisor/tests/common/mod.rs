//! A private PostgreSQL for the tests: a fresh cluster in a temporary directory, started
//! on a free loopback port with `pg_stat_statements` loaded, stopped (and its directory
//! removed) when dropped, or killed on purpose. As root (CI), the server runs as the
//! `postgres` user (PostgreSQL refuses root). Fails with what to install when the server
//! or HypoPG is missing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pg {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    tls: bool,
}

/// The newest PostgreSQL's binaries: `FLOWGATE_TEST_PG_BIN`, else
/// `/usr/lib/postgresql/<newest>/bin` (Debian).
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FLOWGATE_TEST_PG_BIN") {
        return PathBuf::from(d);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max();
    let Some(v) = newest else {
        panic!(
            "the advisor's tests need a PostgreSQL server: run scripts/test.sh (it installs \
             postgresql and HypoPG from Debian) or set FLOWGATE_TEST_PG_BIN to its bin/"
        );
    };
    PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    // The effective user's id, read from /proc (no libc call: unsafe code is forbidden).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Pg {
    pub fn start() -> Pg {
        Pg::start_with(None)
    }

    /// A server that also speaks TLS, with this certificate chain and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Pg {
        Pg::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Pg {
        let bin = bin_dir();
        assert!(
            bin.join("initdb").exists(),
            "no initdb in {}: install postgresql (scripts/test.sh does)",
            bin.display()
        );
        // A plain name: pg_ctl hands the options, socket directory included, to a shell.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("flowgate-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let as_postgres = is_root();
        if let Some((cert, key)) = tls {
            std::fs::write(dir.join("server.crt"), cert).unwrap();
            std::fs::write(dir.join("server.key"), key).unwrap();
            // The server refuses a key others may read.
            let st = Command::new("chmod")
                .arg("600")
                .arg(dir.join("server.key"))
                .status()
                .expect("chmod");
            assert!(st.success(), "chmod the server key");
        }
        let pg = Pg {
            port: free_port(),
            dir,
            bin,
            as_postgres,
            tls: tls.is_some(),
        };
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown the test cluster to postgres");
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "flowgate",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.ctl_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    fn ctl_start(&self) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c shared_preload_libraries=pg_stat_statements -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                self.dir.display()
            ));
        }
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast) and starts it again: what `ALTER SYSTEM` set that only a
    /// start reads (`logging_collector`) takes effect.
    pub fn restart(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        self.ctl_start();
    }

    /// The URL of database `db` as user flowgate (trusted on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://flowgate@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server at once, as a crash would.
    pub fn kill(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection of the test's own (a superuser: it makes the schema and the workload).
pub async fn owner(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect as the owner");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A CRM's tables with generated rows, analyzed, and `pg_stat_statements` and HypoPG
/// created with the statistics reset: accounts (10^4), leads (10^5: a quarter won, a
/// quarter lost, half open), events (2·10^5: one in 50 a login), settings (50 rows, one
/// named `theme`). Only primary keys are indexed.
pub async fn crm(o: &tokio_postgres::Client) {
    loaded(
        o,
        "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;
         CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE leads (id bigserial PRIMARY KEY, account_id int NOT NULL, status text NOT NULL,
                             email text NOT NULL, created_at timestamptz NOT NULL);
         CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL,
                              at timestamptz NOT NULL);
         CREATE TABLE settings (name text, value text);
         INSERT INTO accounts SELECT i, 'account ' || i FROM generate_series(1, 10000) i;
         INSERT INTO leads (account_id, status, email, created_at)
           SELECT i % 10000, (ARRAY['open','won','lost','open'])[1 + i % 4], 'lead' || i || '@example.com',
                  now() - (i || ' minutes')::interval FROM generate_series(1, 100000) i;
         INSERT INTO events (account_id, kind, at)
           SELECT i % 10000, CASE WHEN i % 50 = 0 THEN 'login' ELSE 'view' END,
                  now() - (i || ' seconds')::interval FROM generate_series(1, 200000) i;
         INSERT INTO settings SELECT 'k' || i, 'v' FROM generate_series(1, 49) i;
         INSERT INTO settings VALUES ('theme', 'dark');",
    )
    .await;
}

/// Runs `schema` (tables and their rows), then analyzes the database and resets
/// `pg_stat_statements`: analyzed once the rows' counts reached the shared statistics (in
/// the same transaction, their counts would land after the analyze: stale statistics at
/// once).
pub async fn loaded(o: &tokio_postgres::Client, schema: &str) {
    let schema = schema.trim_end().trim_end_matches(';');
    o.batch_execute(&format!("{schema}; SELECT pg_stat_force_next_flush();"))
        .await
        .expect("the schema and its rows");
    o.batch_execute("ANALYZE; SELECT pg_stat_statements_reset();")
        .await
        .expect("the database analyzed");
}
