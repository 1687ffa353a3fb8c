//! Index candidates from a query's parse tree: per table, the columns its predicates test
//! for equality (`=`, `IN`, join conditions) and ranges (`<`, `BETWEEN`...), and those it
//! sorts and groups by; then single-column indexes, composite ones in the order that serves
//! them (equalities first, then one range or the sort), partial ones when a predicate
//! compares with a constant, covering ones (`INCLUDE`) when few other columns are read.
//! Candidates are only guesses: each is proven (or dropped) with a hypothetical index.

use std::collections::BTreeMap;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinConstraint, JoinOperator, OrderByKind, Query,
    SelectItem, SetExpr, Statement, TableFactor,
};

use crate::complexity::{ParseError, parse};

/// An index that might help.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Candidate {
    pub table: String,
    pub columns: Vec<String>,
    /// Columns carried in the index for index-only scans.
    pub include: Vec<String>,
    /// A partial index's predicate.
    pub predicate: Option<String>,
}

impl Candidate {
    fn new(table: &str, columns: Vec<String>) -> Self {
        Candidate {
            table: table.to_string(),
            columns,
            include: Vec::new(),
            predicate: None,
        }
    }

    /// The column a partial index's predicate tests (`status` of `status = 'open'`).
    pub fn predicate_column(&self) -> Option<&str> {
        self.predicate
            .as_deref()
            .and_then(|p| p.split_once(" = ").map(|(c, _)| c))
    }

    /// `ON table (cols) [INCLUDE (...)] [WHERE ...]`.
    fn body(&self) -> String {
        let mut s = format!("ON {} ({})", self.table, self.columns.join(", "));
        if !self.include.is_empty() {
            s.push_str(&format!(" INCLUDE ({})", self.include.join(", ")));
        }
        if let Some(p) = &self.predicate {
            s.push_str(&format!(" WHERE {p}"));
        }
        s
    }

    /// The statement HypoPG is given.
    pub fn hypothetical(&self) -> String {
        format!("CREATE INDEX {}", self.body())
    }

    /// The statement to create it for real, without blocking writes.
    pub fn create_concurrently(&self) -> String {
        format!("CREATE INDEX CONCURRENTLY {} {}", self.name(), self.body())
    }

    /// A name: `table_col1_col2_idx` (`_partial`, `_covering` when so).
    pub fn name(&self) -> String {
        let mut n = format!(
            "{}_{}",
            self.table.replace('.', "_"),
            self.columns.join("_")
        );
        if self.predicate.is_some() {
            n.push_str("_partial");
        }
        if !self.include.is_empty() {
            n.push_str("_covering");
        }
        n.truncate(59);
        n + "_idx"
    }
}

/// What one table's columns are used for in a query.
#[derive(Debug, Default)]
struct Uses {
    equality: Vec<String>,
    range: Vec<String>,
    order: Vec<String>,
    group: Vec<String>,
    /// `column = constant` (the constant as written).
    constant: Vec<(String, String)>,
    read: Vec<String>,
    star: bool,
}

fn push(v: &mut Vec<String>, c: String) {
    if !v.contains(&c) {
        v.push(c);
    }
}

/// The tables of a SELECT by the names they go by (alias, or name).
struct Scope {
    tables: BTreeMap<String, String>,
}

impl Scope {
    /// `(table, column)` of a column reference, when it can be told.
    fn column(&self, e: &Expr) -> Option<(String, String)> {
        match e {
            Expr::Identifier(c) if self.tables.len() == 1 => {
                Some((self.tables.values().next()?.clone(), c.value.to_lowercase()))
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let q = parts[parts.len() - 2].value.to_lowercase();
                let table = self.tables.get(&q)?.clone();
                Some((table, parts[parts.len() - 1].value.to_lowercase()))
            }
            Expr::Nested(inner) => self.column(inner),
            _ => None,
        }
    }
}

fn is_value(e: &Expr) -> bool {
    matches!(e, Expr::Value(_)) || matches!(e, Expr::Nested(i) if is_value(i))
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

fn predicate(scope: &Scope, e: &Expr, uses: &mut BTreeMap<String, Uses>) {
    let mut parts = Vec::new();
    conjuncts(e, &mut parts);
    for p in &parts {
        match p {
            Expr::BinaryOp { left, op, right } => {
                let (l, r) = (scope.column(left), scope.column(right));
                match (l, r, op) {
                    // A join condition: each side's column is looked up by the other's.
                    (Some((lt, lc)), Some((rt, rc)), BinaryOperator::Eq) => {
                        push(&mut uses.entry(lt).or_default().equality, lc);
                        push(&mut uses.entry(rt).or_default().equality, rc);
                    }
                    (Some((t, c)), None, op) | (None, Some((t, c)), op) => {
                        let other = if scope.column(left).is_some() {
                            right
                        } else {
                            left
                        };
                        let u = uses.entry(t).or_default();
                        match op {
                            BinaryOperator::Eq => {
                                if is_value(other) && !other.to_string().starts_with('$') {
                                    u.constant.push((c.clone(), other.to_string()));
                                }
                                push(&mut u.equality, c);
                            }
                            BinaryOperator::Lt
                            | BinaryOperator::LtEq
                            | BinaryOperator::Gt
                            | BinaryOperator::GtEq => push(&mut u.range, c),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Expr::Between { expr, .. } => {
                if let Some((t, c)) = scope.column(expr) {
                    push(&mut uses.entry(t).or_default().range, c);
                }
            }
            Expr::In {
                expr,
                negated: false,
                ..
            } => {
                if let Some((t, c)) = scope.column(expr) {
                    push(&mut uses.entry(t).or_default().equality, c);
                }
            }
            _ => {}
        }
    }
}

fn query(q: &Query, out: &mut Vec<Candidate>) {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return;
    };
    let mut tables = BTreeMap::new();
    let mut joins = Vec::new();
    for twj in &s.from {
        for f in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, alias, .. } = f {
                let table = name.to_string().to_lowercase();
                let key = alias
                    .as_ref()
                    .map_or_else(|| table.clone(), |a| a.name.value.to_lowercase());
                tables.insert(key, table);
            }
        }
        for j in &twj.joins {
            let c = match &j.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c) => c,
                _ => continue,
            };
            if let JoinConstraint::On(e) = c {
                joins.push(e.clone());
            }
        }
    }
    let scope = Scope { tables };
    let mut uses: BTreeMap<String, Uses> = BTreeMap::new();
    if let Some(w) = &s.selection {
        predicate(&scope, w, &mut uses);
    }
    for j in &joins {
        predicate(&scope, j, &mut uses);
    }
    if let GroupByExpr::Expressions(g, _) = &s.group_by {
        for e in g {
            if let Some((t, c)) = scope.column(e) {
                push(&mut uses.entry(t).or_default().group, c);
            }
        }
    }
    if let Some(ob) = &q.order_by
        && let OrderByKind::Expressions(list) = &ob.kind
    {
        for o in list {
            if let Some((t, c)) = scope.column(&o.expr) {
                push(&mut uses.entry(t).or_default().order, c);
            }
        }
    }
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                if let Some((t, c)) = scope.column(e) {
                    push(&mut uses.entry(t).or_default().read, c);
                }
            }
            _ => {
                for u in uses.values_mut() {
                    u.star = true;
                }
            }
        }
    }
    let limited = q.limit_clause.is_some() || q.fetch.is_some();
    for (table, u) in &uses {
        of_table(table, u, limited, out);
    }
}

fn of_table(table: &str, u: &Uses, limited: bool, out: &mut Vec<Candidate>) {
    let mut add = |c: Candidate| {
        if !c.columns.is_empty() && !out.contains(&c) {
            out.push(c);
        }
    };
    for c in u.equality.iter().chain(&u.range) {
        add(Candidate::new(table, vec![c.clone()]));
    }
    let then = u.range.first().or(u.order.first()).or(u.group.first());
    if !u.equality.is_empty() {
        let mut cols = u.equality.clone();
        if let Some(t) = then.filter(|t| !cols.contains(t)) {
            cols.push(t.clone());
        }
        if cols.len() > 1 {
            add(Candidate::new(table, cols.clone()));
        }
        // Covering: the few other columns read, carried along.
        let rest: Vec<String> = u
            .read
            .iter()
            .filter(|c| !cols.contains(c))
            .cloned()
            .collect();
        if !u.star && !rest.is_empty() && rest.len() <= 3 {
            let mut c = Candidate::new(table, cols);
            c.include = rest;
            add(c);
        }
    } else if limited && let Some(o) = u.order.first() {
        add(Candidate::new(table, vec![o.clone()]));
    }
    // Partial: a constant predicate filters the index itself.
    for (col, value) in &u.constant {
        let others: Vec<String> = u
            .equality
            .iter()
            .chain(&u.range)
            .chain(&u.order)
            .filter(|c| *c != col)
            .take(2)
            .cloned()
            .collect();
        if !others.is_empty() {
            let mut c = Candidate::new(table, others);
            c.predicate = Some(format!("{col} = {value}"));
            add(c);
        }
    }
}

/// The candidates for `sql`'s SELECT statements (and their subqueries' selects).
pub fn candidates(sql: &str) -> Result<Vec<Candidate>, ParseError> {
    let mut out = Vec::new();
    for st in parse(sql)? {
        if let Statement::Query(q) = &st {
            let mut queries = Vec::new();
            let _ = sqlparser::ast::Visit::visit(q.as_ref(), &mut Subqueries(&mut queries));
            for q in &queries {
                query(q, &mut out);
            }
        }
    }
    Ok(out)
}

/// Collects the nested queries (subqueries, CTE bodies).
struct Subqueries<'a>(&'a mut Vec<Query>);

impl sqlparser::ast::Visitor for Subqueries<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> std::ops::ControlFlow<()> {
        if !self.0.contains(q) {
            self.0.push(q.clone());
        }
        std::ops::ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ddl(sql: &str) -> Vec<String> {
        candidates(sql)
            .unwrap()
            .iter()
            .map(Candidate::hypothetical)
            .collect()
    }

    #[test]
    fn equalities_then_a_range_or_the_sort() {
        assert_eq!(
            ddl("SELECT id FROM events WHERE account_id = $1 AND at > $2 ORDER BY at"),
            vec![
                "CREATE INDEX ON events (account_id)",
                "CREATE INDEX ON events (at)",
                "CREATE INDEX ON events (account_id, at)",
                "CREATE INDEX ON events (account_id, at) INCLUDE (id)",
            ]
        );
    }

    #[test]
    fn joins_are_looked_up_on_both_sides_and_aliases_resolved() {
        let d = ddl(
            "SELECT a.name FROM accounts a JOIN leads l ON l.account_id = a.id \
             WHERE l.status = 'open'",
        );
        assert!(
            d.contains(&"CREATE INDEX ON leads (account_id)".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"CREATE INDEX ON leads (status)".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"CREATE INDEX ON accounts (id)".to_string()),
            "{d:?}"
        );
        // A constant: a partial index on the rest.
        assert!(
            d.contains(&"CREATE INDEX ON leads (account_id) WHERE status = 'open'".to_string()),
            "{d:?}"
        );
    }

    #[test]
    fn a_sorted_limited_read_gets_its_sort_and_names_are_stable() {
        let c = candidates("SELECT * FROM events ORDER BY at DESC LIMIT 10").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].hypothetical(), "CREATE INDEX ON events (at)");
        assert_eq!(
            c[0].create_concurrently(),
            "CREATE INDEX CONCURRENTLY events_at_idx ON events (at)"
        );
        assert!(candidates("SELECT * FROM events").unwrap().is_empty());
    }
}
