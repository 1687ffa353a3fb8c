//! The database the advisor reads: a PostgreSQL connection, read-only unless the database
//! is configured as writable (every transaction of a read-only session is `READ ONLY`, so
//! no statement of the advisor's can write to it), and what it asks: which extensions are
//! there, the slow query shapes of `pg_stat_statements`, and plans (`EXPLAIN (FORMAT JSON)`).

use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

/// `url` with its password replaced, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// How many parameters (`$1`...) `sql` takes: the highest number named.
pub(crate) fn parameters(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut most = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                most = most.max(n);
            }
            i += digits.len();
        }
        i += 1;
    }
    most
}

/// What went wrong, said so that the operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error(
        "the extension {name} is not installed in this database: {install}, then \
         `CREATE EXTENSION {name};`"
    )]
    MissingExtension {
        name: &'static str,
        install: &'static str,
    },
    #[error("the database answered: {0}")]
    Query(String),
    #[error("the connection to the database was lost: {0}")]
    Lost(String),
}

impl From<tokio_postgres::Error> for AdvisorError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return AdvisorError::Lost(e.to_string());
        }
        match e.as_db_error() {
            Some(db) => AdvisorError::Query(format!("{} ({})", db.message(), db.code().code())),
            None => AdvisorError::Lost(e.to_string()),
        }
    }
}

/// What every statement of the advisor's starts with, so that `pg_stat_statements` (which
/// keeps comments) can tell its own queries from the application's.
pub const MARK: &str = "/* flowgate advisor */ ";

fn marked(sql: &str) -> String {
    format!("{MARK}{sql}")
}

/// The extensions the advisor uses.
pub const STATEMENTS: &str = "pg_stat_statements";
pub const HYPOPG: &str = "hypopg";

/// How to install each extension (Debian; the server's major version in the package name).
fn install(name: &'static str) -> &'static str {
    match name {
        STATEMENTS => {
            "add pg_stat_statements to shared_preload_libraries (postgresql.conf) and restart \
             the server (the module ships with PostgreSQL)"
        }
        _ => {
            "install HypoPG on the database server (Debian: apt install postgresql-NN-hypopg, NN the server's major version)"
        }
    }
}

/// A connection to the database being advised.
pub struct Database {
    client: Client,
    writable: bool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

/// A normalized query shape as `pg_stat_statements` counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub queryid: i64,
    /// The shape, constants replaced by `$1`, `$2`...
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: i64,
    pub shared_blks_hit: i64,
    pub shared_blks_read: i64,
}

/// How a database's server is verified (and what is presented to it) when TLS is used.
pub type Tls = Arc<rustls::ClientConfig>;

/// The TLS settings of a database of no `[databases.tls]`: the bundled Mozilla roots.
pub fn default_tls() -> Tls {
    flowgate_http::tls::client_config(&flowgate_http::tls::ClientSettings::default())
        .unwrap_or_else(|e| unreachable!("the bundled roots make a configuration: {e}"))
}

impl Database {
    /// Connects to `url` (`postgres://user:password@host:port/db`); read-only unless
    /// `writable`. TLS as the URL's `sslmode` says (`prefer` when not said: TLS when the
    /// server offers it, its certificate verified with `tls`; `require`: TLS or no
    /// connection; `disable`: none).
    pub async fn connect(url: &str, writable: bool, tls: &Tls) -> Result<Database, AdvisorError> {
        let tls = MakeRustlsConnect::new(rustls::ClientConfig::clone(tls));
        let (client, connection) = tokio_postgres::connect(url, tls).await.map_err(|e| {
            let why = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            AdvisorError::Connect(format!("{e}{why} ({})", redacted(url)))
        })?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; calls then fail.
            let _ = connection.await;
        });
        let db = Database { client, writable };
        if !writable {
            db.batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .await?;
        }
        // Plans of the shapes pg_stat_statements keeps ($1, $2...) are planned without the
        // parameters' values (PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN)).
        db.batch("SET plan_cache_mode = force_generic_plan").await?;
        Ok(db)
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// `sql`'s rows (marked as the advisor's; a read-only session when not writable).
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query(&marked(sql), params).await
    }

    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        self.client.query_one(&marked(sql), params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        self.client.query_opt(&marked(sql), params).await
    }

    async fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(&marked(sql)).await
    }

    /// Fails with what to install when `name` is not installed in this database.
    pub async fn require(&self, name: &'static str) -> Result<(), AdvisorError> {
        let found = self
            .query_opt("SELECT 1 FROM pg_extension WHERE extname = $1", &[&name])
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(AdvisorError::MissingExtension {
                name,
                install: install(name),
            }),
        }
    }

    /// The query shapes whose mean time is at least `min_mean_ms`, most total time first
    /// (at most `limit`); the advisor's own queries, plans asked for (`EXPLAIN`), session
    /// and transaction statements, and schema and maintenance statements (`CREATE`,
    /// `VACUUM`...: no index serves them) left out.
    pub async fn slow_queries(
        &self,
        min_mean_ms: f64,
        limit: i64,
    ) -> Result<Vec<Shape>, AdvisorError> {
        self.require(STATEMENTS).await?;
        let rows = self.query(
                "SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows, \
                        shared_blks_hit, shared_blks_read \
                 FROM pg_stat_statements \
                 WHERE mean_exec_time >= $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND query NOT LIKE '/* flowgate advisor */%' \
                   AND query !~* '^\\s*(EXPLAIN|PREPARE|DEALLOCATE|SET|RESET|SHOW|BEGIN|START|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|CREATE|DROP|ALTER|VACUUM|ANALYZE|CLUSTER|REINDEX|TRUNCATE|GRANT|REVOKE|LOCK|CHECKPOINT|COMMENT|DISCARD)\\M' \
                 ORDER BY total_exec_time DESC LIMIT $2",
                &[&min_mean_ms, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Shape {
                queryid: r.get(0),
                query: r.get(1),
                calls: r.get(2),
                total_ms: r.get(3),
                mean_ms: r.get(4),
                rows: r.get(5),
                shared_blks_hit: r.get(6),
                shared_blks_read: r.get(7),
            })
            .collect())
    }

    /// The planner's plan for `sql`, as `EXPLAIN (FORMAT JSON)` gives it (never run: no
    /// `ANALYZE`). A shape with parameters (`$1`...) is prepared and its generic plan
    /// explained.
    pub async fn explain(&self, sql: &str) -> Result<Value, AdvisorError> {
        let params = parameters(sql);
        if params == 0 {
            let row = self
                .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &[])
                .await?;
            return Ok(row.get(0));
        }
        self.batch(&format!("PREPARE flowgate_advisor AS {sql}"))
            .await?;
        let nulls = vec!["NULL"; params].join(", ");
        let plan = self
            .query_one(
                &format!("EXPLAIN (FORMAT JSON) EXECUTE flowgate_advisor({nulls})"),
                &[],
            )
            .await;
        self.batch("DEALLOCATE flowgate_advisor").await?;
        Ok(plan?.get(0))
    }

    /// Makes a hypothetical index (HypoPG: in this session's memory only, nothing is
    /// written); its oid and name.
    pub async fn hypothetical(&self, create_index: &str) -> Result<(u32, String), AdvisorError> {
        let row = self
            .query_one(
                "SELECT indexrelid, indexname FROM hypopg_create_index($1)",
                &[&create_index],
            )
            .await?;
        let oid: u32 = row.get(0);
        Ok((oid, row.get(1)))
    }

    /// The estimated size of hypothetical index `oid`, in bytes.
    pub async fn hypothetical_size(&self, oid: u32) -> Result<i64, AdvisorError> {
        let row = self
            .query_one("SELECT hypopg_relation_size($1::oid)", &[&oid])
            .await?;
        Ok(row.get(0))
    }

    /// How many distinct values `table.column` holds, as the planner's statistics estimate
    /// (a share of the rows when it grows with them: then `None`, as when unknown).
    pub async fn distinct_values(
        &self,
        table: &str,
        column: &str,
    ) -> Result<Option<f64>, AdvisorError> {
        let row = self
            .query_opt(
                "SELECT n_distinct::float8 FROM pg_stats \
                 WHERE (tablename = $1 OR schemaname || '.' || tablename = $1) AND attname = $2",
                &[&table, &column],
            )
            .await?;
        Ok(row.map(|r| r.get::<_, f64>(0)).filter(|n| *n > 0.0))
    }

    /// Drops every hypothetical index of this session.
    pub async fn forget_hypothetical(&self) -> Result<(), AdvisorError> {
        self.batch("SELECT hypopg_reset()").await?;
        Ok(())
    }

    /// Rows written to `table` (inserted, updated, deleted) since its statistics began, and
    /// the seconds since then.
    pub async fn writes(&self, table: &str) -> Result<(i64, f64), AdvisorError> {
        let row = self.query_opt(
                "SELECT n_tup_ins + n_tup_upd + n_tup_del, \
                        extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time()))::float8 \
                 FROM pg_stat_user_tables, pg_stat_database WHERE datname = current_database() \
                   AND (relname = $1 OR schemaname || '.' || relname = $1)",
                &[&table],
            )
            .await?;
        Ok(row.map_or((0, 0.0), |r| (r.get(0), r.get(1))))
    }

    /// `sql` run and its plan with what the run measured (`EXPLAIN (ANALYZE, FORMAT
    /// JSON)`, in this session: read-only unless writable); `None` for what cannot be run
    /// as it is (a shape with parameters) or is not a plain query (a write is never run).
    pub async fn explain_analyze(&self, sql: &str) -> Result<Option<Value>, AdvisorError> {
        let plain_query = crate::complexity::parse(sql)
            .is_ok_and(|st| matches!(st.as_slice(), [sqlparser::ast::Statement::Query(_)]));
        if parameters(sql) > 0 || !plain_query {
            return Ok(None);
        }
        let row = self
            .query_one(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), &[])
            .await?;
        Ok(Some(row.get(0)))
    }

    /// The real execution time of `sql`, in ms, as [`Database::explain_analyze`] runs it.
    pub async fn execution_ms(&self, sql: &str) -> Result<Option<f64>, AdvisorError> {
        Ok(self
            .explain_analyze(sql)
            .await?
            .and_then(|p| p[0]["Execution Time"].as_f64()))
    }

    /// The planner's row counts (`reltuples`) of the tables named in `plan`.
    pub async fn table_rows(
        &self,
        plan: &Value,
    ) -> Result<std::collections::HashMap<String, f64>, AdvisorError> {
        fn names(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(t) = m.get("Relation Name").and_then(Value::as_str) {
                        out.push(t.to_string());
                    }
                    m.values().for_each(|v| names(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| names(v, out)),
                _ => {}
            }
        }
        let mut tables = Vec::new();
        names(plan, &mut tables);
        if tables.is_empty() {
            return Ok(Default::default());
        }
        let rows = self
            .query(
                "SELECT relname::text, reltuples::float8 FROM pg_class \
                 WHERE relname = ANY($1) AND relkind IN ('r', 'p', 'm')",
                &[&tables],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The database's name, as its server calls it.
    pub async fn name(&self) -> Result<String, AdvisorError> {
        Ok(self
            .query_one("SELECT current_database()::text", &[])
            .await?
            .get(0))
    }

    /// Whether index `name` is valid (`None`: there is no such index).
    pub async fn index_valid(&self, name: &str) -> Result<Option<bool>, AdvisorError> {
        let row = self
            .query_opt(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
                &[&name],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Runs `sql` (a statement of the advisor's own making); refused here when the
    /// database is not writable, before it is sent.
    pub async fn execute(&self, sql: &str) -> Result<u64, AdvisorError> {
        if !self.writable {
            return Err(AdvisorError::Query(
                "the database is not configured as writable: nothing is written to it".into(),
            ));
        }
        Ok(self.client.execute(&marked(sql), &[]).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted_and_passwords_kept_out_of_messages() {
        assert_eq!(parameters("SELECT 1"), 0);
        assert_eq!(parameters("SELECT $1, $12 FROM t WHERE a = $3"), 12);
        assert_eq!(
            redacted("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redacted("postgres://app@db/x"), "postgres://app@db/x");
    }
}
