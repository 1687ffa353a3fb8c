//! How complex a query is, 1 to 10, and why: from its parse tree (PostgreSQL's dialect),
//! each thing that makes a query costlier to plan or run, or unable to use an index,
//! counted with a weight. The plan, when the database is at hand, adds what only it knows.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Statement, Value, Visit,
    Visitor, visit_expressions,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// One reason a query is complex.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// A stable name: `joins`, `subqueries`, `ctes`, `window_functions`, `aggregates`,
    /// `function_on_column`, `leading_wildcard`, `select_star`, `no_limit`, `or_chain`,
    /// `cast_on_column`, `distinct`, `set_operations`.
    pub kind: &'static str,
    /// How many times it was found.
    pub count: u32,
    /// What it adds to the score.
    pub points: f64,
    pub detail: String,
}

/// A query's score and its reasons, heaviest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Complexity {
    pub score: u8,
    pub reasons: Vec<Reason>,
}

/// SQL that does not parse: the parser's words, and where (line and column, when it said).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses `sql` (PostgreSQL).
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParseError> {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        let message = match e {
            sqlparser::parser::ParserError::ParserError(m)
            | sqlparser::parser::ParserError::TokenizerError(m) => m,
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                "the query nests too deeply".into()
            }
        };
        let at = |key: &str| {
            message
                .split(key)
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
        };
        // The parser gives no position at the end of the input: the end is where.
        let end = || {
            let last = sql.rsplit('\n').next().unwrap_or("");
            (
                sql.matches('\n').count() as u64 + 1,
                last.chars().count() as u64 + 1,
            )
        };
        match (at("Line: "), at("Column: ")) {
            (None, None) if message.ends_with("found: EOF") => ParseError {
                line: Some(end().0),
                column: Some(end().1),
                message: format!("{message} at the end of the query"),
            },
            (line, column) => ParseError {
                line,
                column,
                message,
            },
        }
    })
}

/// What the walk counted.
#[derive(Default)]
struct Counts {
    queries: u32,
    joins: u32,
    ctes: u32,
    recursive: bool,
    windows: u32,
    aggregates: u32,
    group_by: u32,
    function_on_column: Vec<String>,
    leading_wildcard: Vec<String>,
    cast_on_column: Vec<String>,
    select_star: u32,
    unbounded: u32,
    or_terms: u32,
    distinct: u32,
    set_operations: u32,
}

const AGGREGATES: [&str; 12] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "bool_and",
    "bool_or",
    "stddev",
];

/// Whether `e` reads a column.
fn reads_column(e: &Expr) -> bool {
    visit_expressions(e, |x| match x {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

impl Counts {
    /// A predicate (WHERE, JOIN ... ON, HAVING): what keeps an index from serving it.
    fn predicate(&mut self, e: &Expr) {
        let _ = visit_expressions(e, |x| {
            match x {
                Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                    for side in [left, right] {
                        match side.as_ref() {
                            Expr::Function(_) if reads_column(side) => {
                                self.function_on_column.push(side.to_string());
                            }
                            Expr::Cast { expr, .. } if reads_column(expr) => {
                                self.cast_on_column.push(side.to_string());
                            }
                            _ => {}
                        }
                    }
                }
                Expr::Like { pattern, .. } | Expr::ILike { pattern, .. } => {
                    if let Expr::Value(v) = pattern.as_ref()
                        && let Value::SingleQuotedString(p) = &v.value
                        && (p.starts_with('%') || p.starts_with('_'))
                    {
                        self.leading_wildcard.push(x.to_string());
                    }
                }
                Expr::BinaryOp {
                    op: BinaryOperator::Or,
                    ..
                } => self.or_terms += 1,
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    }

    fn select(&mut self, s: &Select, limited: bool) {
        self.joins += s.from.iter().map(|t| t.joins.len() as u32).sum::<u32>()
            + (s.from.len() as u32).saturating_sub(1);
        if s.projection.iter().any(|p| {
            matches!(
                p,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.select_star += 1;
        }
        if s.distinct.is_some() {
            self.distinct += 1;
        }
        if let GroupByExpr::Expressions(g, _) = &s.group_by
            && !g.is_empty()
        {
            self.group_by += 1;
        }
        if let Some(w) = &s.selection {
            self.predicate(w);
        } else if !limited && !s.from.is_empty() && self.group_by == 0 {
            self.unbounded += 1;
        }
        for t in &s.from {
            for j in &t.joins {
                let _ = visit_expressions(&j.join_operator, |e| {
                    self.predicate(e);
                    ControlFlow::<()>::Break(())
                });
            }
        }
        if let Some(h) = &s.having {
            self.predicate(h);
        }
    }
}

impl Visitor for Counts {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        self.queries += 1;
        if let Some(w) = &q.with {
            self.ctes += w.cte_tables.len() as u32;
            self.recursive |= w.recursive;
        }
        let limited = q.limit_clause.is_some() || q.fetch.is_some();
        let mut bodies = vec![q.body.as_ref()];
        while let Some(b) = bodies.pop() {
            match b {
                SetExpr::Select(s) => self.select(s, limited),
                SetExpr::SetOperation { left, right, .. } => {
                    self.set_operations += 1;
                    bodies.push(left);
                    bodies.push(right);
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            if f.over.is_some() {
                self.windows += 1;
            } else {
                let name = f.name.to_string().to_ascii_lowercase();
                if AGGREGATES.contains(&name.as_str()) {
                    self.aggregates += 1;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The complexity of `sql`'s statements, together.
pub fn analyze(sql: &str) -> Result<Complexity, ParseError> {
    let statements = parse(sql)?;
    let mut c = Counts::default();
    let _ = statements.visit(&mut c);
    let subqueries = c.queries.saturating_sub(statements.len() as u32 + c.ctes);
    let mut reasons = Vec::new();
    let mut add = |kind: &'static str, count: u32, each: f64, cap: f64, detail: String| {
        if count > 0 {
            reasons.push(Reason {
                kind,
                count,
                points: (f64::from(count) * each).min(cap),
                detail,
            });
        }
    };
    add("joins", c.joins, 1.0, 3.0, format!("{} join(s)", c.joins));
    add(
        "subqueries",
        subqueries,
        1.0,
        2.0,
        format!("{subqueries} subquery(ies)"),
    );
    add(
        "ctes",
        c.ctes,
        0.5,
        1.5,
        format!(
            "{} common table expression(s){}",
            c.ctes,
            if c.recursive { ", recursive" } else { "" }
        ),
    );
    add(
        "window_functions",
        c.windows,
        1.0,
        1.5,
        format!("{} window function(s)", c.windows),
    );
    add(
        "aggregates",
        c.aggregates + c.group_by,
        0.5,
        1.0,
        format!("{} aggregate(s), {} GROUP BY", c.aggregates, c.group_by),
    );
    let n = c.function_on_column.len() as u32;
    add(
        "function_on_column",
        n,
        1.0,
        2.0,
        format!(
            "a function on a column keeps a plain index from serving: {}",
            c.function_on_column.join("; ")
        ),
    );
    let n = c.leading_wildcard.len() as u32;
    add(
        "leading_wildcard",
        n,
        1.0,
        2.0,
        format!(
            "a pattern starting with a wildcard cannot use a b-tree index: {}",
            c.leading_wildcard.join("; ")
        ),
    );
    let n = c.cast_on_column.len() as u32;
    add(
        "cast_on_column",
        n,
        1.0,
        2.0,
        format!(
            "a cast of a column keeps its index from serving: {}",
            c.cast_on_column.join("; ")
        ),
    );
    add(
        "select_star",
        c.select_star,
        0.5,
        0.5,
        "SELECT * reads every column (no index-only scan; more to send)".into(),
    );
    add(
        "no_limit",
        c.unbounded,
        1.0,
        1.0,
        "reads a whole table: no WHERE and no LIMIT".into(),
    );
    add(
        "or_chain",
        if c.or_terms >= 2 { c.or_terms } else { 0 },
        0.5,
        1.5,
        format!(
            "{} OR(s): each branch may need its own index (or a bitmap of them)",
            c.or_terms
        ),
    );
    add(
        "distinct",
        c.distinct,
        0.5,
        0.5,
        "DISTINCT sorts or hashes the rows".into(),
    );
    add(
        "set_operations",
        c.set_operations,
        0.5,
        1.0,
        format!("{} UNION/INTERSECT/EXCEPT", c.set_operations),
    );
    reasons.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.kind.cmp(b.kind)));
    let total: f64 = reasons.iter().map(|r| r.points).sum();
    Ok(Complexity {
        score: (1.0 + total).round().clamp(1.0, 10.0) as u8,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> (u8, Vec<&'static str>) {
        let c = analyze(sql).unwrap();
        let mut k: Vec<&str> = c.reasons.iter().map(|r| r.kind).collect();
        k.sort_unstable();
        (c.score, k)
    }

    #[test]
    fn fixed_queries_score_with_their_reasons() {
        assert_eq!(kinds("SELECT id FROM leads WHERE id = 42"), (1, vec![]));
        assert_eq!(
            kinds("SELECT * FROM leads"),
            (3, vec!["no_limit", "select_star"])
        );
        assert_eq!(kinds("SELECT id FROM leads LIMIT 10"), (1, vec![]));
        assert_eq!(
            kinds("SELECT id FROM leads WHERE lower(email) = 'a@b.c'"),
            (2, vec!["function_on_column"])
        );
        assert_eq!(
            kinds("SELECT id FROM leads WHERE name LIKE '%smith'"),
            (2, vec!["leading_wildcard"])
        );
        assert_eq!(
            kinds("SELECT id FROM leads WHERE name LIKE 'smith%'"),
            (1, vec![])
        );
        assert_eq!(
            kinds("SELECT id FROM leads WHERE created_at::date = '2026-01-01'"),
            (2, vec!["cast_on_column"])
        );
        assert_eq!(
            kinds("SELECT id FROM leads WHERE a = 1 OR b = 2 OR c = 3"),
            (2, vec!["or_chain"])
        );
        let (score, k) = kinds(
            "WITH recent AS (SELECT account_id, count(*) AS n FROM events \
             WHERE at > now() - interval '1 day' GROUP BY account_id) \
             SELECT a.name, r.n, rank() OVER (ORDER BY r.n DESC) \
             FROM accounts a JOIN recent r ON r.account_id = a.id \
             JOIN leads l ON l.account_id = a.id \
             WHERE a.id IN (SELECT account_id FROM leads WHERE status = 'open') \
             ORDER BY r.n DESC LIMIT 20",
        );
        assert_eq!(
            k,
            vec![
                "aggregates",
                "ctes",
                "joins",
                "subqueries",
                "window_functions"
            ]
        );
        assert!((6..=7).contains(&score), "{score}");
    }

    #[test]
    fn sql_that_does_not_parse_says_where() {
        let e = analyze("SELEC * FROM leads").unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(1)));
        assert!(e.message.contains("SELEC"), "{}", e.message);
        // Cut short: the end of the query is where.
        let e = analyze("SELECT id\nFROM leads WHERE").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(17)), "{}", e.message);
        assert!(
            e.message.ends_with("at the end of the query"),
            "{}",
            e.message
        );
    }
}
