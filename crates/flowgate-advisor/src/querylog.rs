//! Slow statements from PostgreSQL's own log, for a database without `pg_stat_statements`
//! (or a log copied off a server the advisor cannot reach): the entries
//! `log_min_duration_statement` writes (`duration: 812.4 ms  statement: SELECT ...`, or
//! `execute <name>: ...` for the extended protocol), in any of the server's formats
//! (`stderr` whatever its `log_line_prefix`, `csvlog`, `jsonlog`), grouped into shapes as
//! `pg_stat_statements` groups them: every constant a parameter (`$1`, `$2`, ...), so
//! that `WHERE id = 7` and `WHERE id = 8` are one shape with two calls.
//!
//! Only statements an index may serve are kept (queries, inserts, updates, deletes);
//! utility statements, the advisor's own, and text that does not parse are counted and
//! left out.

use std::collections::HashMap;

use sqlparser::ast::{Expr, Statement, Value, visit_expressions_mut};

use crate::db::{MARK, Shape};

/// One statement the log timed.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub ms: f64,
    pub statement: String,
    /// The database it ran on, when the format says (csvlog, jsonlog).
    pub database: Option<String>,
}

/// A statement's duration and text from a log message (`duration: 1.5 ms  statement:
/// ...`); `None` for any other message (a bind's or a parse's duration, a duration
/// alone, an error).
pub fn message(msg: &str) -> Option<(f64, String)> {
    let at = msg.find("duration: ")?;
    let rest = &msg[at + "duration: ".len()..];
    let (ms, rest) = rest.split_once(" ms")?;
    let ms: f64 = ms.trim().parse().ok()?;
    let rest = rest.trim_start();
    let sql = if let Some(s) = rest.strip_prefix("statement: ") {
        s
    } else if let Some(s) = rest.strip_prefix("execute ") {
        s.split_once(": ")?.1
    } else {
        return None;
    };
    Some((ms, sql.trim().to_string()))
}

/// The log's timed statements, its format told from its first line: `jsonlog` (a JSON
/// object a line), `csvlog` (CSV records, messages possibly over several lines), else
/// `stderr` (a statement's further lines start with a tab).
pub fn entries(text: &str) -> Vec<Logged> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.trim_start().starts_with('{') {
        json(text)
    } else if is_csv(text) {
        csv(text)
    } else {
        stderr(text)
    }
}

/// Whether the log's first record is csvlog's: 23 fields or more (PostgreSQL 13: 23, 14:
/// 24, 15: 26), the first a timestamp, the 12th a severity (`LOG`), the 13th an SQLSTATE
/// (a message may hold newlines: read as CSV, not as a line; a stderr line of a long
/// column list has as many commas).
fn is_csv(text: &str) -> bool {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    r.records().next().and_then(Result::ok).is_some_and(|rec| {
        let severity = rec.get(11).unwrap_or("");
        rec.len() >= 23
            && rec
                .get(0)
                .is_some_and(|t| t.as_bytes().first().is_some_and(u8::is_ascii_digit))
            && !severity.is_empty()
            && severity
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && rec.get(12).is_some_and(|code| code.len() == 5)
    })
}

fn stderr(text: &str) -> Vec<Logged> {
    let mut out: Vec<Logged> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if let Some(more) = line.strip_prefix('\t') {
            if open && let Some(last) = out.last_mut() {
                last.statement.push('\n');
                last.statement.push_str(more);
            }
            continue;
        }
        open = false;
        if let Some((ms, statement)) = message(line) {
            out.push(Logged {
                ms,
                statement,
                database: None,
            });
            open = true;
        }
    }
    out
}

fn csv(text: &str) -> Vec<Logged> {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    r.records()
        .filter_map(Result::ok)
        .filter_map(|rec| {
            let (ms, statement) = message(rec.get(13)?)?;
            let database = rec.get(2).filter(|d| !d.is_empty()).map(str::to_string);
            Some(Logged {
                ms,
                statement,
                database,
            })
        })
        .collect()
}

fn json(text: &str) -> Vec<Logged> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let (ms, statement) = message(v["message"].as_str()?)?;
            Some(Logged {
                ms,
                statement,
                database: v["dbname"].as_str().map(str::to_string),
            })
        })
        .collect()
}

/// Why a statement is not a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Not a query, insert, update or delete (no index serves it), or several statements.
    Utility,
    /// It does not parse (PostgreSQL's dialect).
    Unparsed,
    /// The advisor's own.
    Own,
}

/// `sql` with every constant a parameter, numbered after the parameters it has, as
/// `pg_stat_statements` shows a shape (`NULL` stays: it is no value to vary).
pub fn normalize(sql: &str) -> Result<String, Left> {
    if sql.starts_with(MARK.trim_end()) {
        return Err(Left::Own);
    }
    let mut statements = crate::complexity::parse(sql).map_err(|_| Left::Unparsed)?;
    let [st] = statements.as_mut_slice() else {
        return Err(Left::Utility);
    };
    if !matches!(
        st,
        Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    ) {
        return Err(Left::Utility);
    }
    let mut n = crate::db::parameters(sql);
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let _ = visit_expressions_mut(st, |e| {
        match e {
            Expr::Value(v) if !matches!(v.value, Value::Null | Value::Placeholder(_)) => {
                *e = Expr::value(Value::Placeholder(next()));
            }
            // `INTERVAL $1` is no SQL: the parameter its constant became, cast.
            Expr::Interval(i) => {
                if let Expr::Value(v) = i.value.as_ref()
                    && let Value::Placeholder(p) = &v.value
                {
                    let p = format!("{p}::interval");
                    *e = Expr::value(Value::Placeholder(p));
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(st.to_string())
}

/// A shape of the log, with the slowest call as it was logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogShape {
    pub shape: Shape,
    pub max_ms: f64,
    pub slowest: String,
}

/// What a log held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromLog {
    /// Shapes, most total time first.
    pub shapes: Vec<LogShape>,
    /// Timed statements read (of `database`, when one is asked for).
    pub statements: usize,
    pub utility: usize,
    pub unparsed: usize,
    pub own: usize,
}

/// A stable id for a shape's text (FNV-1a), as `pg_stat_statements`' queryid is for its.
fn shape_id(text: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// `entries` (those of `database`, when given and the format says) grouped into shapes.
pub fn shapes(entries: &[Logged], database: Option<&str>) -> FromLog {
    let mut out = FromLog::default();
    let mut by: HashMap<String, LogShape> = HashMap::new();
    for e in entries {
        if let (Some(want), Some(on)) = (database, &e.database)
            && want != on
        {
            continue;
        }
        out.statements += 1;
        let text = match normalize(&e.statement) {
            Ok(t) => t,
            Err(Left::Utility) => {
                out.utility += 1;
                continue;
            }
            Err(Left::Unparsed) => {
                out.unparsed += 1;
                continue;
            }
            Err(Left::Own) => {
                out.own += 1;
                continue;
            }
        };
        let s = by.entry(text.clone()).or_insert_with(|| LogShape {
            shape: Shape {
                queryid: shape_id(&text),
                query: text,
                calls: 0,
                total_ms: 0.0,
                mean_ms: 0.0,
                rows: 0,
                shared_blks_hit: 0,
                shared_blks_read: 0,
            },
            max_ms: 0.0,
            slowest: String::new(),
        });
        s.shape.calls += 1;
        s.shape.total_ms += e.ms;
        if e.ms >= s.max_ms {
            s.max_ms = e.ms;
            s.slowest.clone_from(&e.statement);
        }
    }
    out.shapes = by
        .into_values()
        .map(|mut s| {
            s.shape.mean_ms = s.shape.total_ms / s.shape.calls as f64;
            s
        })
        .collect();
    out.shapes.sort_by(|a, b| {
        b.shape
            .total_ms
            .total_cmp(&a.shape.total_ms)
            .then_with(|| a.shape.query.cmp(&b.shape.query))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gives_a_statements_duration_and_text() {
        assert_eq!(
            message(
                "2026-12-07 10:00:00.123 UTC [42] LOG:  duration: 812.402 ms  statement: SELECT 1"
            ),
            Some((812.402, "SELECT 1".into()))
        );
        assert_eq!(
            message("LOG:  duration: 3.5 ms  execute <unnamed>: SELECT * FROM t WHERE id = $1"),
            Some((3.5, "SELECT * FROM t WHERE id = $1".into()))
        );
        assert_eq!(
            message("LOG:  duration: 3.5 ms  execute S_1: UPDATE t SET a = $1"),
            Some((3.5, "UPDATE t SET a = $1".into()))
        );
        for other in [
            "LOG:  duration: 0.1 ms  bind <unnamed>: SELECT 1",
            "LOG:  duration: 0.1 ms  parse <unnamed>: SELECT 1",
            "LOG:  duration: 0.1 ms",
            "ERROR:  relation \"x\" does not exist",
            "LOG:  duration: many ms  statement: SELECT 1",
        ] {
            assert_eq!(message(other), None, "{other}");
        }
    }

    #[test]
    fn stderr_statements_go_on_over_tabbed_lines() {
        let log = "2026-12-07 10:00:00 UTC [7] LOG:  duration: 900.5 ms  statement: SELECT *\n\
                   \tFROM leads\n\
                   \tWHERE status = 'open'\n\
                   2026-12-07 10:00:01 UTC [7] LOG:  checkpoint starting: time\n\
                   \tnot a statement\n\
                   2026-12-07 10:00:02 UTC [8] LOG:  duration: 2.0 ms  execute <unnamed>: SELECT 2\n\
                   2026-12-07 10:00:02 UTC [8] DETAIL:  parameters: $1 = '42'\n";
        let got = entries(log);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].statement,
            "SELECT *\nFROM leads\nWHERE status = 'open'"
        );
        assert_eq!((got[0].ms, got[0].database.as_deref()), (900.5, None));
        assert_eq!(got[1].statement, "SELECT 2");
    }

    #[test]
    fn csv_and_json_logs_carry_the_database() {
        let csv = "2026-12-07 10:00:00.000 UTC,\"app\",\"crm\",7,\"127.0.0.1:5000\",1.1,1,\"SELECT\",2026-12-07 09:00:00 UTC,3/4,0,LOG,00000,\"duration: 12.0 ms  statement: SELECT a\nFROM t\",,,,,,,,,\"psql\",\"client backend\",,0\n\
                   2026-12-07 10:00:00.000 UTC,\"app\",\"crm\",7,\"127.0.0.1:5000\",1.1,2,\"idle\",2026-12-07 09:00:00 UTC,3/5,0,LOG,00000,\"connection authorized\",,,,,,,,,\"psql\",\"client backend\",,0\n";
        let got = entries(csv);
        assert_eq!(
            got,
            [Logged {
                ms: 12.0,
                statement: "SELECT a\nFROM t".into(),
                database: Some("crm".into()),
            }]
        );
        let json = "{\"timestamp\":\"2026-12-07 10:00:00.000 UTC\",\"user\":\"app\",\"dbname\":\"crm\",\"pid\":7,\"error_severity\":\"LOG\",\"message\":\"duration: 4.25 ms  statement: SELECT b FROM t\"}\n\
                    {\"timestamp\":\"2026-12-07 10:00:00.000 UTC\",\"error_severity\":\"LOG\",\"message\":\"checkpoint complete\"}\n";
        let got = entries(json);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].ms,
                got[0].statement.as_str(),
                got[0].database.as_deref()
            ),
            (4.25, "SELECT b FROM t", Some("crm"))
        );
    }

    #[test]
    fn a_stderr_line_with_many_commas_is_not_csv() {
        let cols: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
        let log = format!(
            "2026-12-07 10:00:00 UTC [7] LOG:  duration: 9.0 ms  statement: SELECT {} FROM t\n",
            cols.join(", ")
        );
        assert_eq!(entries(&log).len(), 1);
    }

    #[test]
    fn constants_become_parameters_as_pg_stat_statements_shows_them() {
        let n = |s: &str| normalize(s).unwrap();
        assert_eq!(
            n("SELECT * FROM leads WHERE status = 'open' AND score > 0.5 LIMIT 10"),
            "SELECT * FROM leads WHERE status = $1 AND score > $2 LIMIT $3"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE id = $1 AND kind IN ('a', 'b') AND gone IS NULL"),
            "SELECT * FROM t WHERE id = $1 AND kind IN ($2, $3) AND gone IS NULL"
        );
        assert_eq!(
            n("SELECT count(*) FROM events WHERE at > now() - INTERVAL '1 day'"),
            "SELECT count(*) FROM events WHERE at > now() - $1::interval"
        );
        assert_eq!(
            n("UPDATE leads SET status = 'won' WHERE id = 7"),
            "UPDATE leads SET status = $1 WHERE id = $2"
        );
        assert_eq!(n("select 1"), n("SELECT 2"));
        assert_eq!(normalize("VACUUM leads"), Err(Left::Utility));
        assert_eq!(normalize("BEGIN"), Err(Left::Utility));
        assert_eq!(normalize("SELECT 1; SELECT 2"), Err(Left::Utility));
        assert_eq!(normalize("SELEC 1"), Err(Left::Unparsed));
        assert_eq!(
            normalize("/* flowgate advisor */ SELECT 1 FROM pg_class"),
            Err(Left::Own)
        );
    }

    #[test]
    fn statements_group_into_shapes_most_total_time_first() {
        let e = |ms: f64, sql: &str, db: Option<&str>| Logged {
            ms,
            statement: sql.into(),
            database: db.map(str::to_string),
        };
        let log = [
            e(100.0, "SELECT * FROM leads WHERE id = 1", Some("crm")),
            e(300.0, "SELECT * FROM leads WHERE id = 2", Some("crm")),
            e(250.0, "SELECT * FROM events WHERE kind = 'x'", Some("crm")),
            e(999.0, "SELECT * FROM other WHERE id = 3", Some("billing")),
            e(5.0, "VACUUM leads", Some("crm")),
            e(5.0, "SELEC nothing", Some("crm")),
        ];
        let got = shapes(&log, Some("crm"));
        assert_eq!((got.statements, got.utility, got.unparsed), (5, 1, 1));
        let first = &got.shapes[0];
        assert_eq!(first.shape.query, "SELECT * FROM leads WHERE id = $1");
        assert_eq!(
            (first.shape.calls, first.shape.total_ms, first.shape.mean_ms),
            (2, 400.0, 200.0)
        );
        assert_eq!(
            (first.max_ms, first.slowest.as_str()),
            (300.0, "SELECT * FROM leads WHERE id = 2")
        );
        assert_eq!(got.shapes.len(), 2);
        assert_ne!(got.shapes[0].shape.queryid, got.shapes[1].shape.queryid);
        // No database asked: every entry counts.
        assert_eq!(shapes(&log, None).shapes.len(), 3);
    }
}
