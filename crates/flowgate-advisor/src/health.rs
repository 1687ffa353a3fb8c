//! Table health, from the statistics PostgreSQL keeps per table (`pg_stat_user_tables`,
//! `pg_class`): dead rows autovacuum has not reclaimed, statistics gone stale (the planner
//! plans with old row counts and value distributions), tables read whole over and over,
//! transaction ids near wraparound, and tables without a primary key. Each finding says
//! why, and those a statement fixes carry it (`VACUUM`, `ANALYZE`): the optimization plan
//! takes them as steps.
//!
//! The thresholds follow autovacuum's own defaults, so that a finding means autovacuum is
//! behind (or off for the table), not merely about to run.

use flowgate_config::DatabaseAction;
use serde_json::{Value, json};

use crate::db::{AdvisorError, Database};

/// Dead rows worth a finding: at least this many...
const DEAD_ROWS: i64 = 1_000;
/// ...and more than this share of the table (autovacuum's `vacuum_scale_factor`).
const DEAD_SHARE: f64 = 0.2;
/// Rows changed since the last `ANALYZE` worth a finding: at least this many...
const CHANGED_ROWS: i64 = 1_000;
/// ...and more than this share of the table (autovacuum's `analyze_scale_factor`).
const CHANGED_SHARE: f64 = 0.1;
/// Sequential scans worth a finding: at least this many, of a table of at least
/// [`LARGE_TABLE`] rows, reading at least that many rows each on average.
const SEQ_SCANS: i64 = 10;
const LARGE_TABLE: i64 = 10_000;
/// A transaction-id age past which a table needs freezing soon: halfway to the 2^31 at
/// which PostgreSQL stops taking writes.
const XID_AGE: i64 = 1_000_000_000;

/// The kinds of finding, worst first.
pub const KINDS: [&str; 5] = [
    "xid_wraparound",
    "dead_rows",
    "stale_statistics",
    "sequential_reads",
    "no_primary_key",
];

/// One table as its statistics describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHealth {
    /// As a statement names it (schema-qualified when not on the search path, quoted
    /// when it must be).
    pub table: String,
    pub live_rows: i64,
    pub dead_rows: i64,
    pub changed_since_analyze: i64,
    pub seq_scans: i64,
    pub seq_rows_read: i64,
    pub index_scans: i64,
    /// Table, indexes and TOAST.
    pub size_bytes: i64,
    pub has_primary_key: bool,
    /// The age of its oldest unfrozen transaction id.
    pub xid_age: i64,
    /// Whether `autovacuum_enabled = false` is set on it.
    pub autovacuum_off: bool,
    /// The last `VACUUM` (by hand or autovacuum), UTC, ISO 8601.
    pub last_vacuum: Option<String>,
    /// The last `ANALYZE` (by hand or autovacuum), UTC, ISO 8601.
    pub last_analyze: Option<String>,
}

/// What is wrong with a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// One of [`KINDS`].
    pub kind: &'static str,
    pub detail: String,
    /// The action that fixes it, with its statement, when a statement does.
    pub fix: Option<(DatabaseAction, String)>,
}

fn share(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl TableHealth {
    /// What is wrong with it, worst first.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let off = if self.autovacuum_off {
            "; autovacuum is off for this table (autovacuum_enabled = false)"
        } else {
            ""
        };
        if self.xid_age >= XID_AGE {
            out.push(Finding {
                kind: "xid_wraparound",
                detail: format!(
                    "its oldest transaction id is {} transactions old: past 2^31 PostgreSQL \
                     stops taking writes until it is frozen{off}",
                    self.xid_age
                ),
                fix: Some((
                    DatabaseAction::Vacuum,
                    format!("VACUUM (FREEZE, ANALYZE) {}", self.table),
                )),
            });
        }
        let rows = self.live_rows + self.dead_rows;
        if self.dead_rows >= DEAD_ROWS && share(self.dead_rows, rows) > DEAD_SHARE {
            out.push(Finding {
                kind: "dead_rows",
                detail: format!(
                    "{} dead rows, {:.0}% of its rows: scans still read past them and the \
                     room is not reused (last vacuum: {}){off}",
                    self.dead_rows,
                    share(self.dead_rows, rows) * 100.0,
                    self.last_vacuum.as_deref().unwrap_or("never")
                ),
                fix: Some((
                    DatabaseAction::Vacuum,
                    format!("VACUUM (ANALYZE) {}", self.table),
                )),
            });
        }
        let never = self.last_analyze.is_none() && self.live_rows >= CHANGED_ROWS;
        if never
            || (self.changed_since_analyze >= CHANGED_ROWS
                && share(self.changed_since_analyze, self.live_rows) > CHANGED_SHARE)
        {
            out.push(Finding {
                kind: "stale_statistics",
                detail: if never {
                    format!(
                        "never analyzed, {} rows: the planner guesses its row counts and \
                         values{off}",
                        self.live_rows
                    )
                } else {
                    format!(
                        "{} rows changed since the last analyze ({}), {:.0}% of its rows: \
                         the planner plans with old row counts and values{off}",
                        self.changed_since_analyze,
                        self.last_analyze.as_deref().unwrap_or("never"),
                        share(self.changed_since_analyze, self.live_rows) * 100.0
                    )
                },
                fix: Some((DatabaseAction::Analyze, format!("ANALYZE {}", self.table))),
            });
        }
        let per_scan = if self.seq_scans > 0 {
            self.seq_rows_read / self.seq_scans
        } else {
            0
        };
        if self.seq_scans >= SEQ_SCANS
            && self.live_rows >= LARGE_TABLE
            && per_scan >= LARGE_TABLE
            && self.seq_scans > self.index_scans
        {
            out.push(Finding {
                kind: "sequential_reads",
                detail: format!(
                    "read whole {} times ({per_scan} rows each on average) against {} index \
                     scans: the slow queries' index recommendations say which index would serve \
                     them",
                    self.seq_scans, self.index_scans
                ),
                fix: None,
            });
        }
        if !self.has_primary_key {
            out.push(Finding {
                kind: "no_primary_key",
                detail: "no primary key: its rows cannot be told apart, and logical \
                         replication cannot carry its updates and deletes"
                    .into(),
                fix: None,
            });
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "table": self.table,
            "live_rows": self.live_rows,
            "dead_rows": self.dead_rows,
            "changed_since_analyze": self.changed_since_analyze,
            "seq_scans": self.seq_scans,
            "seq_rows_read": self.seq_rows_read,
            "index_scans": self.index_scans,
            "size_bytes": self.size_bytes,
            "has_primary_key": self.has_primary_key,
            "xid_age": self.xid_age,
            "autovacuum_enabled": !self.autovacuum_off,
            "last_vacuum": self.last_vacuum,
            "last_analyze": self.last_analyze,
            "findings": self.findings().iter().map(|f| json!({
                "kind": f.kind,
                "detail": f.detail,
                "action": f.fix.as_ref().map(|(a, _)| a.as_str()),
                "statement": f.fix.as_ref().map(|(_, s)| s),
            })).collect::<Vec<_>>(),
        })
    }
}

const TABLES: &str = "SELECT s.relid::regclass::text, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, \
        coalesce(s.seq_scan, 0), coalesce(s.seq_tup_read, 0), coalesce(s.idx_scan, 0), \
        pg_total_relation_size(s.relid), \
        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = s.relid AND i.indisprimary), \
        age(c.relfrozenxid)::int8, \
        EXISTS (SELECT 1 FROM unnest(c.reloptions) o \
                WHERE lower(o) ~ '^autovacuum_enabled=(false|off|no|0|f|n)$'), \
        to_char(greatest(s.last_vacuum, s.last_autovacuum) AT TIME ZONE 'UTC', \
                'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
        to_char(greatest(s.last_analyze, s.last_autoanalyze) AT TIME ZONE 'UTC', \
                'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid";

fn read(r: &tokio_postgres::Row) -> TableHealth {
    TableHealth {
        table: r.get(0),
        live_rows: r.get(1),
        dead_rows: r.get(2),
        changed_since_analyze: r.get(3),
        seq_scans: r.get(4),
        seq_rows_read: r.get(5),
        index_scans: r.get(6),
        size_bytes: r.get(7),
        has_primary_key: r.get(8),
        xid_age: r.get(9),
        autovacuum_off: r.get(10),
        last_vacuum: r.get(11),
        last_analyze: r.get(12),
    }
}

/// Every user table, largest first.
pub async fn tables(db: &Database) -> Result<Vec<TableHealth>, AdvisorError> {
    let rows = db
        .query(&format!("{TABLES} ORDER BY 8 DESC, 1"), &[])
        .await?;
    Ok(rows.iter().map(read).collect())
}

/// One table, by the name a statement gives it (`None`: there is no such table).
pub async fn table(db: &Database, name: &str) -> Result<Option<TableHealth>, AdvisorError> {
    let rows = db
        .query(
            &format!("{TABLES} WHERE s.relid = to_regclass($1)"),
            &[&name],
        )
        .await?;
    Ok(rows.first().map(read))
}

/// The database's tables in figures: how many tables have each kind of finding (every
/// kind, in [`KINDS`]' order), and the oldest transaction-id age of any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub findings: Vec<(&'static str, usize)>,
    pub xid_age: i64,
}

pub fn summary(tables: &[TableHealth]) -> Summary {
    let found: Vec<Vec<Finding>> = tables.iter().map(TableHealth::findings).collect();
    Summary {
        findings: KINDS
            .iter()
            .map(|k| {
                (
                    *k,
                    found
                        .iter()
                        .filter(|f| f.iter().any(|f| f.kind == *k))
                        .count(),
                )
            })
            .collect(),
        xid_age: tables.iter().map(|t| t.xid_age).max().unwrap_or(0),
    }
}

/// The fixes the tables' findings call for, a step per table (a vacuum, which analyzes
/// too, over an analyze), most dead rows first then largest.
pub fn fixes(tables: &[TableHealth]) -> Vec<(&TableHealth, Finding)> {
    let mut out: Vec<(&TableHealth, Finding)> = tables
        .iter()
        .filter_map(|t| {
            let found = t.findings();
            let vacuum = found
                .iter()
                .find(|f| matches!(f.fix, Some((DatabaseAction::Vacuum, _))));
            let analyze = found
                .iter()
                .find(|f| matches!(f.fix, Some((DatabaseAction::Analyze, _))));
            vacuum.or(analyze).cloned().map(|f| (t, f))
        })
        .collect();
    out.sort_by_key(|(t, _)| {
        (
            std::cmp::Reverse(t.dead_rows),
            std::cmp::Reverse(t.size_bytes),
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> TableHealth {
        TableHealth {
            table: "leads".into(),
            live_rows: 100_000,
            dead_rows: 10,
            changed_since_analyze: 10,
            seq_scans: 2,
            seq_rows_read: 200_000,
            index_scans: 5_000,
            size_bytes: 8 << 20,
            has_primary_key: true,
            xid_age: 5_000,
            autovacuum_off: false,
            last_vacuum: Some("2026-12-07T10:00:00Z".into()),
            last_analyze: Some("2026-12-07T10:00:00Z".into()),
        }
    }

    fn kinds(t: &TableHealth) -> Vec<&'static str> {
        t.findings().iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_healthy_table_has_no_findings() {
        assert!(healthy().findings().is_empty());
    }

    #[test]
    fn each_finding_has_its_threshold_and_fix() {
        // Dead rows: over a fifth of the table and at least a thousand.
        let t = TableHealth {
            dead_rows: 30_000,
            live_rows: 100_000,
            autovacuum_off: true,
            ..healthy()
        };
        let f = &t.findings()[0];
        assert_eq!(f.kind, "dead_rows");
        assert!(f.detail.contains("30000 dead rows, 23%"), "{}", f.detail);
        assert!(f.detail.contains("autovacuum is off"), "{}", f.detail);
        assert_eq!(
            f.fix,
            Some((DatabaseAction::Vacuum, "VACUUM (ANALYZE) leads".into()))
        );
        let few = TableHealth {
            dead_rows: 900,
            live_rows: 100,
            ..healthy()
        };
        assert!(kinds(&few).is_empty(), "under a thousand dead rows");
        let small_share = TableHealth {
            dead_rows: 20_000,
            live_rows: 100_000,
            ..healthy()
        };
        assert!(kinds(&small_share).is_empty(), "a sixth of the rows");

        // Stale statistics: over a tenth changed, or never analyzed.
        let stale = TableHealth {
            changed_since_analyze: 20_000,
            ..healthy()
        };
        assert_eq!(kinds(&stale), ["stale_statistics"]);
        assert_eq!(
            stale.findings()[0].fix,
            Some((DatabaseAction::Analyze, "ANALYZE leads".into()))
        );
        let never = TableHealth {
            last_analyze: None,
            ..healthy()
        };
        assert!(never.findings()[0].detail.starts_with("never analyzed"));
        let tiny_never = TableHealth {
            last_analyze: None,
            live_rows: 40,
            ..healthy()
        };
        assert!(kinds(&tiny_never).is_empty());

        // Sequential reads: a large table read whole more often than through an index.
        let scanned = TableHealth {
            seq_scans: 600,
            seq_rows_read: 60_000_000,
            index_scans: 100,
            ..healthy()
        };
        assert_eq!(kinds(&scanned), ["sequential_reads"]);
        assert!(scanned.findings()[0].detail.contains("100000 rows each"));
        assert_eq!(scanned.findings()[0].fix, None);

        // Wraparound comes first and freezes.
        let old = TableHealth {
            xid_age: 1_500_000_000,
            dead_rows: 50_000,
            ..healthy()
        };
        assert_eq!(kinds(&old), ["xid_wraparound", "dead_rows"]);
        assert_eq!(
            old.findings()[0].fix,
            Some((
                DatabaseAction::Vacuum,
                "VACUUM (FREEZE, ANALYZE) leads".into()
            ))
        );

        let no_key = TableHealth {
            has_primary_key: false,
            ..healthy()
        };
        assert_eq!(kinds(&no_key), ["no_primary_key"]);
    }

    #[test]
    fn the_summary_counts_tables_per_kind_and_keeps_the_oldest_xid_age() {
        let tables = [
            TableHealth {
                has_primary_key: false,
                dead_rows: 40_000,
                ..healthy()
            },
            TableHealth {
                has_primary_key: false,
                xid_age: 7_000,
                ..healthy()
            },
            healthy(),
        ];
        let s = summary(&tables);
        assert_eq!(
            s.findings,
            [
                ("xid_wraparound", 0),
                ("dead_rows", 1),
                ("stale_statistics", 0),
                ("sequential_reads", 0),
                ("no_primary_key", 2),
            ]
        );
        assert_eq!(s.xid_age, 7_000);
        assert_eq!(summary(&[]).xid_age, 0);
    }

    #[test]
    fn one_fix_per_table_vacuum_over_analyze_most_dead_rows_first() {
        let both = TableHealth {
            table: "events".into(),
            dead_rows: 40_000,
            changed_since_analyze: 50_000,
            ..healthy()
        };
        let stale = TableHealth {
            table: "accounts".into(),
            changed_since_analyze: 50_000,
            ..healthy()
        };
        let fine = healthy();
        let tables = [stale, fine, both];
        let got: Vec<(&str, &str)> = fixes(&tables)
            .iter()
            .map(|(t, f)| (t.table.as_str(), f.kind))
            .collect();
        assert_eq!(
            got,
            [("events", "dead_rows"), ("accounts", "stale_statistics")]
        );
    }
}
