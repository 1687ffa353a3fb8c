//! Index recommendations, proven: for each slow query shape, every candidate index is
//! made hypothetically (HypoPG) and the shape planned again; a candidate is kept only when
//! the planner uses it and the plan's estimated cost falls by at least the threshold. The
//! best one per shape is recommended, then (with it there, hypothetically) the best of the
//! rest if it lowers the cost by the threshold again — a join's second table —, up to
//! [`PER_SHAPE`]; each with the shapes it helps, the cost before and after,
//! its estimated size and the writes it will slow; the list is ordered by the time it
//! saves (calls × mean time × the cost's fall), biggest first. Nothing helps: nothing
//! recommended.

use serde_json::Value;

use crate::candidates::{Candidate, candidates};
use crate::db::{AdvisorError, Database, HYPOPG, Shape};

/// What a recommendation does for one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Helped {
    /// `pg_stat_statements`' id of the shape (0 for a query given alone).
    pub queryid: i64,
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub cost_before: f64,
    pub cost_after: f64,
}

impl Helped {
    /// The share by which the estimated cost falls.
    pub fn reduction(&self) -> f64 {
        1.0 - self.cost_after / self.cost_before.max(f64::MIN_POSITIVE)
    }

    /// The time saved over the calls counted, in milliseconds, if the real time falls as
    /// the estimate does.
    pub fn saved_ms(&self) -> f64 {
        self.calls as f64 * self.mean_ms * self.reduction()
    }
}

/// An index to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub index: Candidate,
    /// `CREATE INDEX CONCURRENTLY ...`.
    pub statement: String,
    pub helps: Vec<Helped>,
    pub size_bytes: i64,
    /// Rows written to the table (each now also updates this index) since its statistics
    /// began, and a second's worth on average.
    pub table_writes: i64,
    pub writes_per_second: f64,
}

impl Recommendation {
    pub fn saved_ms(&self) -> f64 {
        self.helps.iter().map(Helped::saved_ms).sum()
    }
}

/// The plan's estimated total cost.
pub fn total_cost(plan: &Value) -> f64 {
    plan[0]["Plan"]["Total Cost"].as_f64().unwrap_or(f64::MAX)
}

/// Whether the plan uses the index named `name`.
pub fn uses(plan: &Value, name: &str) -> bool {
    match plan {
        Value::Object(m) => {
            m.get("Index Name").and_then(Value::as_str) == Some(name)
                || m.values().any(|v| uses(v, name))
        }
        Value::Array(a) => a.iter().any(|v| uses(v, name)),
        _ => false,
    }
}

/// The plan's shape in a line, what a plan change is told by: each node's type, the
/// table and the index it reads, its inputs in brackets (`Aggregate(Seq Scan on events)`).
pub fn outline(plan: &Value) -> String {
    fn node(n: &Value, out: &mut String) {
        out.push_str(n["Node Type"].as_str().unwrap_or("?"));
        if let Some(index) = n["Index Name"].as_str() {
            out.push_str(&format!(" using {index}"));
        }
        if let Some(table) = n["Relation Name"].as_str() {
            out.push_str(&format!(" on {table}"));
        }
        if let Some(kids) = n["Plans"].as_array().filter(|k| !k.is_empty()) {
            out.push('(');
            for (i, k) in kids.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                node(k, out);
            }
            out.push(')');
        }
    }
    let mut out = String::new();
    node(&plan[0]["Plan"], &mut out);
    out
}

/// Most distinct values a column may hold for a partial index on one of them: a status or
/// a flag names a lasting subset; an id or a name names one row's worth (an index for one
/// customer only would be no advice).
pub const PARTIAL_MAX_DISTINCT: f64 = 20.0;

/// A partial candidate is worth trying only on a column of few values.
async fn worth_a_partial(db: &Database, c: &Candidate) -> Result<bool, AdvisorError> {
    let Some(column) = c.predicate_column() else {
        return Ok(true);
    };
    Ok(db
        .distinct_values(&c.table, column)
        .await?
        .is_some_and(|n| n <= PARTIAL_MAX_DISTINCT))
}

/// Most indexes recommended for one shape (a join may need one per table).
pub const PER_SHAPE: usize = 3;

/// The best candidate for `shape` that lowers its cost by `threshold` or more with the
/// indexes `kept` (hypothetical, made first) there already, and what it does for it.
async fn best_with(
    db: &Database,
    shape: &Shape,
    list: &[Candidate],
    kept: &[Candidate],
    threshold: f64,
) -> Result<Option<(Candidate, f64, f64)>, AdvisorError> {
    let with_kept = async || -> Result<(), AdvisorError> {
        db.forget_hypothetical().await?;
        for k in kept {
            db.hypothetical(&k.hypothetical()).await?;
        }
        Ok(())
    };
    with_kept().await?;
    let before = total_cost(&db.explain(&shape.query).await?);
    // Every candidate that serves: (candidate, cost with it, its size).
    let mut serving: Vec<(Candidate, f64, i64)> = Vec::new();
    for c in list.iter().filter(|c| !kept.contains(c)) {
        if !worth_a_partial(db, c).await? {
            continue;
        }
        with_kept().await?;
        let Ok((oid, name)) = db.hypothetical(&c.hypothetical()).await else {
            continue; // a column the guess got wrong: not an index to make
        };
        let plan = db.explain(&shape.query).await?;
        let after = total_cost(&plan);
        let reduction = 1.0 - after / before.max(f64::MIN_POSITIVE);
        if uses(&plan, &name) && reduction >= threshold {
            serving.push((c.clone(), after, db.hypothetical_size(oid).await?));
        }
    }
    Ok(choose(serving).map(|(c, after)| (c, before, after)))
}

/// Of the candidates that serve (with the plan's cost and the index's size), the one
/// whose plan is cheapest; among plans within [`NEAR`] of it, the smallest index (a
/// partial one over a few rows rather than the whole table's).
fn choose(serving: Vec<(Candidate, f64, i64)>) -> Option<(Candidate, f64)> {
    let cheapest = serving.iter().map(|s| s.1).min_by(f64::total_cmp)?;
    serving
        .into_iter()
        .filter(|s| s.1 <= cheapest * (1.0 + NEAR))
        .min_by_key(|s| s.2)
        .map(|(c, after, _)| (c, after))
}

/// How much costlier a plan may be than the cheapest and still win by a smaller index.
pub const NEAR: f64 = 0.05;

/// The candidates for `shape` that each lower its cost by `threshold` or more, the best
/// first, each next one with those before it there (a join's second table), with what
/// each does for it.
async fn best_for(
    db: &Database,
    shape: &Shape,
    threshold: f64,
) -> Result<Vec<(Candidate, Helped)>, AdvisorError> {
    let list = match candidates(&shape.query) {
        Ok(list) if !list.is_empty() => list,
        // Nothing an index could serve (or not a query: a utility statement).
        _ => return Ok(Vec::new()),
    };
    let mut out: Vec<(Candidate, Helped)> = Vec::new();
    let mut kept: Vec<Candidate> = Vec::new();
    // The shape's mean time as it would be with the indexes kept so far.
    let mut mean_ms = shape.mean_ms;
    while out.len() < PER_SHAPE {
        let Some((c, before, after)) = best_with(db, shape, &list, &kept, threshold).await? else {
            break;
        };
        let helped = Helped {
            queryid: shape.queryid,
            query: shape.query.clone(),
            calls: shape.calls,
            mean_ms,
            cost_before: before,
            cost_after: after,
        };
        mean_ms *= after / before.max(f64::MIN_POSITIVE);
        kept.push(c.clone());
        out.push((c, helped));
    }
    db.forget_hypothetical().await?;
    Ok(out)
}

/// The indexes that make `shapes` cheaper by `threshold` (0.5: half the estimated cost)
/// or more, biggest time saved first.
pub async fn recommend(
    db: &Database,
    shapes: &[Shape],
    threshold: f64,
) -> Result<Vec<Recommendation>, AdvisorError> {
    db.require(HYPOPG).await?;
    let mut out: Vec<Recommendation> = Vec::new();
    for shape in shapes {
        for (index, helped) in best_for(db, shape, threshold).await? {
            if let Some(r) = out.iter_mut().find(|r| r.index == index) {
                r.helps.push(helped);
                continue;
            }
            let (oid, _) = db.hypothetical(&index.hypothetical()).await?;
            let size_bytes = db.hypothetical_size(oid).await?;
            db.forget_hypothetical().await?;
            let (table_writes, secs) = db.writes(&index.table).await?;
            out.push(Recommendation {
                statement: index.create_concurrently(),
                index,
                helps: vec![helped],
                size_bytes,
                table_writes,
                writes_per_second: if secs > 0.0 {
                    table_writes as f64 / secs
                } else {
                    0.0
                },
            });
        }
    }
    out.sort_by(|a, b| b.saved_ms().total_cmp(&a.saved_ms()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(columns: &[&str]) -> Candidate {
        Candidate {
            table: "t".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            include: Vec::new(),
            predicate: None,
        }
    }

    #[test]
    fn the_cheapest_plan_wins_unless_a_much_smaller_index_is_nearly_as_cheap() {
        let (a, b, c) = (candidate(&["a"]), candidate(&["b"]), candidate(&["c"]));
        // b is 3% costlier but a tenth of the size: b.
        let got = choose(vec![(a.clone(), 100.0, 10_000), (b.clone(), 103.0, 1_000)]);
        assert_eq!(got, Some((b.clone(), 103.0)));
        // c is 20% costlier: the cheapest plan, however large its index.
        let got = choose(vec![(a.clone(), 100.0, 10_000), (c, 120.0, 10)]);
        assert_eq!(got, Some((a, 100.0)));
        assert_eq!(choose(Vec::new()), None);
    }

    #[test]
    fn a_plan_is_outlined_by_its_nodes_tables_and_indexes() {
        let plan = json!([{"Plan": {"Node Type": "Aggregate", "Total Cost": 10.5, "Plans": [
            {"Node Type": "Index Only Scan", "Relation Name": "events",
             "Index Name": "events_account_id_idx"},
            {"Node Type": "Seq Scan", "Relation Name": "leads"}
        ]}}]);
        assert_eq!(
            outline(&plan),
            "Aggregate(Index Only Scan using events_account_id_idx on events, Seq Scan on leads)"
        );
        assert!(uses(&plan, "events_account_id_idx") && !uses(&plan, "other"));
        assert_eq!(total_cost(&plan), 10.5);
    }
}
