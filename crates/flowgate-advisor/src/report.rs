//! The advisor's reports as JSON (what `flowgate advise` prints and the admin API will
//! answer): a query's (complexity; with a database, its plan's cost and the indexes proven
//! to help it) and a database's (its slow shapes with their complexity, the indexes
//! recommended, the indexes unused or duplicated, the foreign keys without an index, the
//! tables' health).

use serde_json::{Value, json};

use crate::candidates::Candidate;
use crate::complexity::{Complexity, ParseError, analyze};
use crate::db::{AdvisorError, Database, Shape};
use crate::existing::{duplicates, indexes, unindexed_foreign_keys, unused};
use crate::explained;
use crate::health;
use crate::querylog::{FromLog, LogShape};
use crate::recommend::{Recommendation, recommend, total_cost};

/// What a report is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Shapes whose mean time is at least this are slow.
    pub slow_ms: f64,
    /// The share by which an index must lower a shape's estimated cost.
    pub threshold: f64,
    /// Shapes read at most.
    pub limit: i64,
    /// Whether a query given alone may be run (`EXPLAIN ANALYZE`) for its real time and
    /// what only a run shows.
    pub analyze: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            slow_ms: 500.0,
            threshold: 0.5,
            limit: 50,
            analyze: false,
        }
    }
}

impl Settings {
    /// As a `[[databases]]` entry sets them.
    pub fn of(d: &flowgate_config::DatabaseConfig) -> Settings {
        Settings {
            slow_ms: d.slow_ms(),
            threshold: d.threshold,
            analyze: d.allow_analyze,
            ..Settings::default()
        }
    }
}

fn complexity(c: &Complexity) -> Value {
    json!({
        "score": c.score,
        "reasons": c.reasons.iter().map(|r| json!({
            "kind": r.kind, "count": r.count, "points": r.points, "detail": r.detail,
        })).collect::<Vec<_>>(),
    })
}

fn index(c: &Candidate) -> Value {
    json!({
        "table": c.table, "columns": c.columns, "include": c.include, "where": c.predicate,
    })
}

/// A recommendation as the reports show it.
pub fn recommendation(r: &Recommendation) -> Value {
    json!({
        "statement": r.statement,
        "index": index(&r.index),
        "size_bytes": r.size_bytes,
        "saved_ms": r.saved_ms(),
        "write_overhead": {
            "table_writes": r.table_writes,
            "writes_per_second": r.writes_per_second,
            "note": "each write to the table also writes this index",
        },
        "helps": r.helps.iter().map(|h| json!({
            "queryid": h.queryid, "query": h.query, "calls": h.calls, "mean_ms": h.mean_ms,
            "cost_before": h.cost_before, "cost_after": h.cost_after,
            "cost_lower_by_percent": h.reduction() * 100.0,
        })).collect::<Vec<_>>(),
    })
}

/// A slow shape as `pg_stat_statements` counts it, with its complexity.
pub fn shape(q: &Shape) -> Value {
    json!({
        "queryid": q.queryid, "query": q.query, "calls": q.calls, "total_ms": q.total_ms,
        "mean_ms": q.mean_ms, "rows": q.rows, "shared_blks_hit": q.shared_blks_hit,
        "shared_blks_read": q.shared_blks_read,
        "complexity": analyze(&q.query).ok().as_ref().map(complexity),
    })
}

/// `shapes` as [`shape`] shows them, their complexity with what their plans add (for
/// those the planner can plan alone).
pub async fn shapes_on(db: &Database, shapes: &[Shape]) -> Vec<Value> {
    let mut out = Vec::with_capacity(shapes.len());
    for q in shapes {
        let mut v = shape(q);
        if let Ok(plan) = db.explain(&q.query).await
            && let Ok(c) = complexity_on(db, &q.query, &plan).await
        {
            v["complexity"] = c;
        }
        out.push(v);
    }
    out
}

/// A query's complexity, with no database.
pub fn query(sql: &str) -> Result<Value, ParseError> {
    Ok(json!({ "query": sql, "complexity": complexity(&analyze(sql)?) }))
}

/// `sql`'s complexity with what `plan` adds.
pub async fn complexity_on(db: &Database, sql: &str, plan: &Value) -> Result<Value, AdvisorError> {
    let c = analyze(sql).map_err(|e| AdvisorError::Query(e.to_string()))?;
    let explicit = c
        .reasons
        .iter()
        .find(|r| r.kind == "cast_on_column")
        .map_or(0, |r| r.count);
    let rows = db.table_rows(plan).await?;
    let extra = explained::reasons(plan, &rows, explicit);
    Ok(complexity(&explained::with(c, extra)))
}

/// A query's complexity (with what its plan adds), its plan's estimated cost, and the
/// indexes proven to help it; run for its real time when `s.analyze` allows it.
pub async fn query_on(db: &Database, sql: &str, s: Settings) -> Result<Value, AdvisorError> {
    let mut v = query(sql).map_err(|e| AdvisorError::Query(e.to_string()))?;
    let ran = if s.analyze {
        db.explain_analyze(sql).await?
    } else {
        None
    };
    let plan = match &ran {
        Some(p) => p.clone(),
        None => db.explain(sql).await?,
    };
    v["complexity"] = complexity_on(db, sql, &plan).await?;
    v["execution_ms"] = json!(ran.as_ref().and_then(|p| p[0]["Execution Time"].as_f64()));
    v["plan"] = json!({ "total_cost": total_cost(&plan), "explain": plan });
    let shape = Shape {
        queryid: 0,
        query: sql.to_string(),
        calls: 1,
        total_ms: 0.0,
        mean_ms: 0.0,
        rows: 0,
        shared_blks_hit: 0,
        shared_blks_read: 0,
    };
    let recs = recommend(db, &[shape], s.threshold).await?;
    v["recommendations"] = json!(recs.iter().map(recommendation).collect::<Vec<_>>());
    Ok(v)
}

/// The database's slow shapes, the indexes that would help them (proven), and what is
/// wrong with the indexes it has.
pub async fn database(db: &Database, s: Settings) -> Result<Value, AdvisorError> {
    let shapes = db.slow_queries(s.slow_ms, s.limit).await?;
    let slow = shapes_on(db, &shapes).await;
    let recs = recommend(db, &shapes, s.threshold).await?;
    let all = indexes(db).await?;
    let fks = unindexed_foreign_keys(db).await?;
    let health = tables(db).await?;
    Ok(json!({
        "settings": { "slow_ms": s.slow_ms, "threshold": s.threshold },
        "slow_queries": slow,
        "recommendations": recs.iter().map(recommendation).collect::<Vec<_>>(),
        "unused_indexes": unused(&all).iter().map(|i| json!({
            "index": i.name, "table": i.table, "size_bytes": i.size_bytes, "scans": i.scans,
            "statement": i.drop_concurrently(),
        })).collect::<Vec<_>>(),
        "duplicate_indexes": duplicates(&all).iter().map(|(d, by)| json!({
            "index": d.name, "table": d.table, "columns": d.columns, "covered_by": by.name,
            "size_bytes": d.size_bytes,
            "statement": d.drop_concurrently(),
        })).collect::<Vec<_>>(),
        "unindexed_foreign_keys": fks.iter().map(|f| json!({
            "table": f.table, "constraint": f.constraint, "columns": f.columns,
            "statement": f.create_concurrently(),
        })).collect::<Vec<_>>(),
        "table_health": health,
    }))
}

/// The slow shapes `found` in a log ([`crate::querylog::shapes`]): their calls, total,
/// mean and longest time, the slowest call as logged, their complexity; on `db`, with what
/// their plans add and the indexes proven to help them.
pub async fn log(
    db: Option<&Database>,
    found: &FromLog,
    s: Settings,
) -> Result<Value, AdvisorError> {
    let slow: Vec<&LogShape> = found
        .shapes
        .iter()
        .filter(|l| l.shape.mean_ms >= s.slow_ms)
        .take(usize::try_from(s.limit).unwrap_or(0))
        .collect();
    let shapes: Vec<Shape> = slow.iter().map(|l| l.shape.clone()).collect();
    let mut shown = match db {
        Some(db) => shapes_on(db, &shapes).await,
        None => shapes.iter().map(shape).collect(),
    };
    for (v, l) in shown.iter_mut().zip(&slow) {
        v["max_ms"] = json!(l.max_ms);
        v["slowest"] = json!(l.slowest);
    }
    let mut v = json!({
        "source": "log",
        "database": found.database,
        "settings": { "slow_ms": s.slow_ms, "threshold": s.threshold },
        "log": {
            "statements": found.statements,
            "shapes": found.shapes.len(),
            "utility": found.utility,
            "unparsed": found.unparsed,
            "own": found.own,
        },
        "slow_queries": shown,
    });
    if let Some(db) = db {
        let recs = recommend(db, &shapes, s.threshold).await?;
        v["recommendations"] = json!(recs.iter().map(recommendation).collect::<Vec<_>>());
    }
    Ok(v)
}

/// The tables' health: how many were checked, and those with findings, largest first.
pub async fn tables(db: &Database) -> Result<Value, AdvisorError> {
    let all = health::tables(db).await?;
    let found: Vec<Value> = all
        .iter()
        .filter(|t| !t.findings().is_empty())
        .map(health::TableHealth::to_json)
        .collect();
    Ok(json!({ "checked": all.len(), "tables": found }))
}
