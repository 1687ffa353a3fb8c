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
use std::io::{self, BufRead, BufReader, Read};

use sqlparser::ast::{Expr, InTarget, Statement, Value, visit_expressions_mut};

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

/// How much of the log is looked at to tell its format.
const PEEK: usize = 1 << 16;

/// The log's formats.
enum Format {
    Stderr,
    Csv,
    Json,
}

/// Reads the log from `r`, giving each timed statement to `each` as it comes (a log of
/// any size takes the memory of its longest record), its format told from its first
/// record: `jsonlog` (a JSON object a line), `csvlog` (CSV records, messages possibly over
/// several lines), else `stderr` (a statement's further lines start with a tab). Bytes
/// that are not UTF-8 are read as U+FFFD.
pub fn read(mut r: impl Read, mut each: impl FnMut(Logged)) -> io::Result<()> {
    // The head is read whole (a pipe gives a few KB at a time), then read again.
    let mut head = Vec::with_capacity(PEEK);
    (&mut r).take(PEEK as u64).read_to_end(&mut head)?;
    let format = {
        let head = String::from_utf8_lossy(&head);
        let first = head.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if first.trim_start().starts_with('{') {
            Format::Json
        } else if is_csv(&head) {
            Format::Csv
        } else {
            Format::Stderr
        }
    };
    let r = BufReader::new(io::Cursor::new(head).chain(r));
    match format {
        Format::Stderr => stderr(r, &mut each),
        Format::Csv => csv(r, &mut each),
        Format::Json => json(r, &mut each),
    }
}

/// Whether the log's first record is csvlog's: 23 fields or more (PostgreSQL 13: 23, 14:
/// 24, 15: 26), the first a timestamp, the 12th a severity (`LOG`), the 13th an SQLSTATE
/// (a message may hold newlines: read as CSV, not as a line; a stderr line of a long
/// column list has as many commas).
fn is_csv(head: &str) -> bool {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(head.as_bytes());
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

/// Each line of `r` (without its end) to `f`.
fn lines(mut r: impl BufRead, mut f: impl FnMut(&str)) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        f(line.trim_end_matches(['\n', '\r']));
    }
}

fn stderr(r: impl BufRead, each: &mut impl FnMut(Logged)) -> io::Result<()> {
    let mut open: Option<Logged> = None;
    lines(r, |line| {
        if let Some(more) = line.strip_prefix('\t') {
            if let Some(last) = open.as_mut() {
                last.statement.push('\n');
                last.statement.push_str(more);
            }
            return;
        }
        if let Some(done) = open.take() {
            each(done);
        }
        open = message(line).map(|(ms, statement)| Logged {
            ms,
            statement,
            database: None,
        });
    })?;
    if let Some(done) = open {
        each(done);
    }
    Ok(())
}

fn csv(r: impl BufRead, each: &mut impl FnMut(Logged)) -> io::Result<()> {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(r);
    let mut rec = ::csv::ByteRecord::new();
    loop {
        match r.read_byte_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let field = |i: usize| rec.get(i).map(String::from_utf8_lossy);
                if let Some((ms, statement)) = field(13).and_then(|m| message(&m)) {
                    let database = field(2).filter(|d| !d.is_empty()).map(|d| d.into_owned());
                    each(Logged {
                        ms,
                        statement,
                        database,
                    });
                }
            }
            Err(e) if e.is_io_error() => return Err(io::Error::other(e)),
            // A record cut short (the log rotated mid-write): the next one is read.
            Err(_) => {}
        }
    }
}

fn json(r: impl BufRead, each: &mut impl FnMut(Logged)) -> io::Result<()> {
    lines(r, |line| {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        if let Some((ms, statement)) = v["message"].as_str().and_then(message) {
            each(Logged {
                ms,
                statement,
                database: v["dbname"].as_str().map(str::to_string),
            });
        }
    })
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
/// `pg_stat_statements` shows a shape (`NULL` stays: it is no value to vary), and a list
/// of constants one parameter (`IN ($1)`: as PostgreSQL 18's `pg_stat_statements` and
/// pgBadger take it, lists of any length are one shape).
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
    let _ = visit_expressions_mut(st, |e| {
        if let Expr::In {
            target: InTarget::List(items),
            ..
        } = e
            && items
                .iter()
                .all(|i| matches!(i, Expr::Value(v) if !matches!(v.value, Value::Null)))
        {
            items.truncate(1);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
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
    /// The database whose entries were taken (where the format says), when one was asked.
    pub database: Option<String>,
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

/// The shapes of the log `r` holds (the entries of `database`, when given and the
/// format says).
pub fn shapes(r: impl Read, database: Option<&str>) -> io::Result<FromLog> {
    let mut out = FromLog {
        database: database.map(str::to_string),
        ..FromLog::default()
    };
    let mut by: HashMap<String, LogShape> = HashMap::new();
    read(r, |e| {
        if let (Some(want), Some(on)) = (database, &e.database)
            && want != on
        {
            return;
        }
        out.statements += 1;
        let text = match normalize(&e.statement) {
            Ok(t) => t,
            Err(Left::Utility) => {
                out.utility += 1;
                return;
            }
            Err(Left::Unparsed) => {
                out.unparsed += 1;
                return;
            }
            Err(Left::Own) => {
                out.own += 1;
                return;
            }
        };
        let s = by.entry(text).or_insert_with_key(|text| LogShape {
            shape: Shape {
                queryid: shape_id(text),
                query: text.clone(),
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
            s.slowest = e.statement;
        }
    })?;
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(log: &str) -> Vec<Logged> {
        let mut out = Vec::new();
        read(log.as_bytes(), |e| out.push(e)).unwrap();
        out
    }

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
            "SELECT * FROM t WHERE id = $1 AND kind IN ($2) AND gone IS NULL"
        );
        // Lists of constants of any length are one shape; a list with a column is not.
        assert_eq!(
            n("SELECT a FROM t WHERE id IN (1, 2, 3) AND b = 4"),
            "SELECT a FROM t WHERE id IN ($1) AND b = $2"
        );
        assert_eq!(
            n("SELECT a FROM t WHERE id IN (9)"),
            n("SELECT a FROM t WHERE id IN (7, 8)")
        );
        assert_eq!(
            n("SELECT a FROM t WHERE 5 IN (b, 6)"),
            "SELECT a FROM t WHERE $1 IN (b, $2)"
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
        let line = |ms: f64, sql: &str, db: &str| {
            format!(
                "{}\n",
                serde_json::json!({"dbname": db, "message": format!("duration: {ms} ms  statement: {sql}")})
            )
        };
        let log = [
            line(100.0, "SELECT * FROM leads WHERE id = 1", "crm"),
            line(300.0, "SELECT * FROM leads WHERE id = 2", "crm"),
            line(250.0, "SELECT * FROM events WHERE kind = 'x'", "crm"),
            line(999.0, "SELECT * FROM other WHERE id = 3", "billing"),
            line(5.0, "VACUUM leads", "crm"),
            line(5.0, "SELEC nothing", "crm"),
        ]
        .concat();
        let got = shapes(log.as_bytes(), Some("crm")).unwrap();
        assert_eq!(got.database.as_deref(), Some("crm"));
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
        assert_eq!(shapes(log.as_bytes(), None).unwrap().shapes.len(), 3);
    }

    #[test]
    fn a_log_is_read_as_it_comes_bytes_that_are_not_utf8_included() {
        // A reader that gives a few bytes at a time, as a pipe does.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut log =
            b"2026-12-07 10:00:00 UTC [7] LOG:  duration: 5.0 ms  statement: SELECT 'caf\xe9'\n"
                .to_vec();
        log.extend_from_slice(
            b"\tFROM t\n2026-12-07 10:00:01 UTC [7] LOG:  duration: 6.0 ms  statement: SELECT 2\n",
        );
        let mut got = Vec::new();
        read(Trickle(&log), |e| got.push(e)).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].statement, "SELECT 'caf\u{fffd}'\nFROM t");
        assert_eq!(got[1].ms, 6.0);
        // A csvlog through the same pipe is still told apart.
        let csv = "2026-12-07 10:00:00.000 UTC,\"app\",\"crm\",7,\"127.0.0.1:5000\",1.1,1,\"SELECT\",2026-12-07 09:00:00 UTC,3/4,0,LOG,00000,\"duration: 12.0 ms  statement: SELECT a\",,,,,,,,,\"psql\",\"client backend\",,0\n";
        let mut got = Vec::new();
        read(Trickle(csv.as_bytes()), |e| got.push(e)).unwrap();
        assert_eq!(got[0].database.as_deref(), Some("crm"));
    }
}
