//! The optimization plan: what to do to a database, biggest time saved first (the indexes
//! proven to help its slow shapes, then the indexes its foreign keys lack, then the tables
//! to vacuum or analyze ([`crate::health`]), then the duplicate and unused indexes to
//! drop, largest first), each step an action on a target (an index's or a table's name)
//! with the statement that does it; and [`apply`], which takes one step on a writable
//! database and verifies it: the index is there and valid (or gone), and the shapes it was
//! to help are planned with it at the cost promised; the table's finding is gone. With
//! `allow_analyze`, parameterless `SELECT`s the step helps are also run
//! (`EXPLAIN ANALYZE` in a read-only session) before and after, their real time compared.

use flowgate_clock::SharedClock;
use flowgate_config::DatabaseAction;
use serde_json::{Value, json};

use crate::db::{AdvisorError, Database};
use crate::existing::{duplicates, indexes, unindexed_foreign_keys, unused};
use crate::health;
use crate::recommend::{Helped, Recommendation, total_cost, uses};

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: DatabaseAction,
    /// The index made or dropped, or the table vacuumed or analyzed.
    pub target: String,
    pub table: String,
    pub statement: String,
    /// Why, in a sentence.
    pub why: String,
    /// The time it saves over the calls counted (creations the planner proved), in ms.
    pub saved_ms: f64,
    pub size_bytes: i64,
    /// The shapes it helps, with their estimated costs before and after.
    pub helps: Vec<Helped>,
}

impl Step {
    pub fn to_json(&self) -> Value {
        json!({
            "action": self.action.as_str(),
            "target": self.target,
            "table": self.table,
            "statement": self.statement,
            "why": self.why,
            "saved_ms": self.saved_ms,
            "size_bytes": self.size_bytes,
            "helps": self.helps.iter().map(|h| json!({
                "queryid": h.queryid, "query": h.query, "calls": h.calls, "mean_ms": h.mean_ms,
                "cost_before": h.cost_before, "cost_after": h.cost_after,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The plan for the database: `recommendations` (as [`crate::recommend`] made them for
/// its slow shapes) first, then what its catalog says.
pub async fn plan(
    db: &Database,
    recommendations: &[Recommendation],
) -> Result<Vec<Step>, AdvisorError> {
    let mut steps: Vec<Step> = recommendations
        .iter()
        .map(|r| {
            let n = r.helps.len();
            let best = r.helps.iter().map(Helped::reduction).fold(0.0, f64::max);
            Step {
                action: DatabaseAction::CreateIndex,
                target: r.index.name(),
                table: r.index.table.clone(),
                statement: r.statement.clone(),
                why: format!(
                    "lowers the estimated cost of {n} slow quer{} by up to {:.0}% (proven with a \
                     hypothetical index)",
                    if n == 1 { "y" } else { "ies" },
                    best * 100.0
                ),
                saved_ms: r.saved_ms(),
                size_bytes: r.size_bytes,
                helps: r.helps.clone(),
            }
        })
        .collect();
    for fk in unindexed_foreign_keys(db).await? {
        // A recommendation led by the same columns already serves it.
        if recommendations
            .iter()
            .any(|r| r.index.table == fk.table && r.index.columns.starts_with(&fk.columns))
        {
            continue;
        }
        steps.push(Step {
            action: DatabaseAction::CreateIndex,
            target: fk.name(),
            table: fk.table.clone(),
            statement: fk.create_concurrently(),
            why: format!(
                "the foreign key {} has no index: deleting or re-keying a parent row scans {}",
                fk.constraint, fk.table
            ),
            saved_ms: 0.0,
            size_bytes: 0,
            helps: Vec::new(),
        });
    }
    let tables = health::tables(db).await?;
    for (t, f) in health::fixes(&tables) {
        if let Some((action, statement)) = f.fix {
            steps.push(Step {
                action,
                target: t.table.clone(),
                table: t.table.clone(),
                statement,
                why: f.detail,
                saved_ms: 0.0,
                size_bytes: t.size_bytes,
                helps: Vec::new(),
            });
        }
    }
    let all = indexes(db).await?;
    let mut drops: Vec<Step> = Vec::new();
    for (d, by) in duplicates(&all) {
        drops.push(Step {
            action: DatabaseAction::DropIndex,
            target: d.name.clone(),
            table: d.table.clone(),
            statement: d.drop_concurrently(),
            why: format!(
                "{} leads with the same columns: every write pays for both",
                by.name
            ),
            saved_ms: 0.0,
            size_bytes: d.size_bytes,
            helps: Vec::new(),
        });
    }
    for u in unused(&all) {
        if drops.iter().any(|d| d.target == u.name) {
            continue;
        }
        drops.push(Step {
            action: DatabaseAction::DropIndex,
            target: u.name.clone(),
            table: u.table.clone(),
            statement: u.drop_concurrently(),
            why: "never scanned since the statistics began: it only costs writes and room".into(),
            saved_ms: 0.0,
            size_bytes: u.size_bytes,
            helps: Vec::new(),
        });
    }
    drops.sort_by_key(|d| std::cmp::Reverse(d.size_bytes));
    steps.extend(drops);
    Ok(steps)
}

/// A query measured for a step, before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub queryid: i64,
    pub query: String,
    pub cost_before: f64,
    pub cost_after: f64,
    pub uses_index: bool,
    /// Real execution time (`EXPLAIN ANALYZE`), when allowed and the query can be run.
    pub ms_before: Option<f64>,
    pub ms_after: Option<f64>,
}

/// What taking a step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub step: Step,
    pub took_ms: f64,
    /// The index is there and valid (created) or gone (dropped), and every shape it was to
    /// help is planned with it; or the table's finding the vacuum or analyze was for is
    /// gone.
    pub verified: bool,
    pub checks: Vec<Check>,
    pub note: String,
}

impl Applied {
    pub fn to_json(&self) -> Value {
        json!({
            "step": self.step.to_json(),
            "took_ms": self.took_ms,
            "verified": self.verified,
            "note": self.note,
            "checks": self.checks.iter().map(|c| json!({
                "queryid": c.queryid, "query": c.query,
                "cost_before": c.cost_before, "cost_after": c.cost_after,
                "uses_index": c.uses_index, "ms_before": c.ms_before, "ms_after": c.ms_after,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Takes `step` on `writer` (a writable session), verifying it with `reader` (a
/// read-only one); `analyze` lets the reader run the shapes it helps.
pub async fn apply(
    writer: &Database,
    reader: &Database,
    step: &Step,
    analyze: bool,
    clock: &SharedClock,
) -> Result<Applied, AdvisorError> {
    let mut before = Vec::new();
    for h in &step.helps {
        before.push(if analyze {
            reader.execution_ms(&h.query).await?
        } else {
            None
        });
    }
    let start = clock.now();
    writer.execute(&step.statement).await?;
    let took_ms = clock.now().duration_since(start).as_secs_f64() * 1e3;
    let mut checks = Vec::new();
    for (h, ms_before) in step.helps.iter().zip(before) {
        let plan = reader.explain(&h.query).await?;
        checks.push(Check {
            queryid: h.queryid,
            query: h.query.clone(),
            cost_before: h.cost_before,
            cost_after: total_cost(&plan),
            uses_index: uses(&plan, &step.target),
            ms_before,
            ms_after: if analyze {
                reader.execution_ms(&h.query).await?
            } else {
                None
            },
        });
    }
    let (verified, note) = match step.action {
        DatabaseAction::CreateIndex | DatabaseAction::DropIndex => {
            index_verified(step, reader.index_valid(&step.target).await?, &checks)
        }
        DatabaseAction::Vacuum | DatabaseAction::Analyze => {
            table_verified(step, health::table(reader, &step.target).await?)
        }
    };
    Ok(Applied {
        step: step.clone(),
        took_ms,
        verified,
        checks,
        note,
    })
}

/// Whether an index step did what it was to do (`present`: whether the index is there
/// and valid, `None` when it is not there).
fn index_verified(step: &Step, present: Option<bool>, checks: &[Check]) -> (bool, String) {
    match step.action {
        DatabaseAction::CreateIndex if present != Some(true) => (
            false,
            format!(
                "{} is not a valid index after its creation: drop it and look at the server's log",
                step.target
            ),
        ),
        DatabaseAction::CreateIndex if checks.iter().all(|c| c.uses_index) => (
            true,
            "created; the shapes it helps are planned with it (their real mean time shows in \
             db_query_mean_ms from the next poll)"
                .into(),
        ),
        DatabaseAction::CreateIndex => (
            false,
            "created, but the planner does not use it for every shape it was to help".into(),
        ),
        DatabaseAction::DropIndex if present.is_none() => (true, "dropped".into()),
        _ => (false, format!("{} is still there", step.target)),
    }
}

/// Whether a vacuum or an analyze did what it was to do: the table's finding that called
/// for it is gone (`now`: the table's statistics after it).
fn table_verified(step: &Step, now: Option<health::TableHealth>) -> (bool, String) {
    let Some(t) = now else {
        return (false, format!("{} is not there any more", step.target));
    };
    let left: Vec<String> = t
        .findings()
        .into_iter()
        .filter(|f| matches!(&f.fix, Some((a, _)) if *a == step.action))
        .map(|f| f.detail)
        .collect();
    let after = format!(
        "{} dead rows, {} rows changed since the last analyze ({})",
        t.dead_rows,
        t.changed_since_analyze,
        t.last_analyze.as_deref().unwrap_or("never")
    );
    if left.is_empty() {
        (true, format!("done: {after}"))
    } else {
        (false, format!("done, but still: {}", left.join("; ")))
    }
}
