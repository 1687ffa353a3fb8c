//! What only the plan knows of a query's complexity (`EXPLAIN (FORMAT JSON)`, and with
//! `ANALYZE` when it is allowed to run): sequential scans of large tables, columns the
//! planner casts to compare them (an implicit cast keeps their index from serving), and
//! from a run, sorts that spilled to disk and row counts the statistics misjudged.

use std::collections::HashMap;

use serde_json::Value;

use crate::complexity::{Complexity, Reason};

/// From how many rows a sequential scan counts against a query.
pub const LARGE_TABLE_ROWS: f64 = 10_000.0;

/// The plan's nodes, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    fn walk<'a>(n: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(n);
        for k in n["Plans"].as_array().into_iter().flatten() {
            walk(k, out);
        }
    }
    let mut out = Vec::new();
    walk(&plan[0]["Plan"], &mut out);
    out
}

/// The conditions in `n` where a column is cast: `(account_id)::numeric` (a constant's
/// cast, `'42'::text`, is not one, nor a varchar column's view of itself as text).
fn column_casts(n: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in [
        "Filter",
        "Index Cond",
        "Recheck Cond",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
    ] {
        let Some(cond) = n[key].as_str() else {
            continue;
        };
        let b = cond.as_bytes();
        let cast = b.windows(3).enumerate().any(|(i, w)| {
            // To text: a varchar's view of itself, which its index serves as well.
            let to = &cond[i + 3..];
            let harmless = ["text", "character varying", "bpchar", "\"char\""]
                .iter()
                .any(|t| to.starts_with(t));
            w == b")::" && !harmless && {
                // The parenthesised thing before `::` is a plain name.
                let open = cond[..i].rfind('(').unwrap_or(0);
                let inner = &cond[open + 1..i];
                !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'"')
            }
        });
        if cast {
            out.push(cond.to_string());
        }
    }
    out
}

/// The reasons `plan` adds; `rows` holds the tables' row counts (the planner's
/// `reltuples`); `explicit_casts` the casts the query writes itself (already counted).
pub fn reasons(plan: &Value, rows: &HashMap<String, f64>, explicit_casts: u32) -> Vec<Reason> {
    let all = nodes(plan);
    let mut out = Vec::new();
    let large: Vec<String> = all
        .iter()
        .filter(|n| n["Node Type"] == "Seq Scan")
        .filter_map(|n| {
            let table = n["Relation Name"].as_str()?;
            let r = *rows.get(table)?;
            (r >= LARGE_TABLE_ROWS).then(|| match n["Filter"].as_str() {
                Some(f) => format!("{table} (~{r:.0} rows) filtered by {f}"),
                None => format!("{table} (~{r:.0} rows)"),
            })
        })
        .collect();
    if !large.is_empty() {
        out.push(Reason {
            kind: "seq_scan",
            count: large.len() as u32,
            points: (large.len() as f64).min(2.0),
            detail: format!("the plan reads whole large tables: {}", large.join("; ")),
        });
    }
    let casts: Vec<String> = all.iter().flat_map(|n| column_casts(n)).collect();
    let implicit = (casts.len() as u32).saturating_sub(explicit_casts);
    if implicit > 0 {
        out.push(Reason {
            kind: "implicit_cast",
            count: implicit,
            points: f64::from(implicit).min(2.0),
            detail: format!(
                "the planner casts a column to compare it (compare with a value of the \
                 column's own type): {}",
                casts.join("; ")
            ),
        });
    }
    // Only a run knows these.
    let spilled: Vec<&str> = all
        .iter()
        .filter(|n| n["Sort Space Type"] == "Disk")
        .filter_map(|n| n["Sort Key"][0].as_str())
        .collect();
    if !spilled.is_empty() {
        out.push(Reason {
            kind: "sort_on_disk",
            count: spilled.len() as u32,
            points: 1.0,
            detail: format!(
                "a sort spilled to disk (more rows than work_mem holds): by {}",
                spilled.join(", ")
            ),
        });
    }
    let misjudged: Vec<String> = all
        .iter()
        .filter_map(|n| {
            let (est, got) = (n["Plan Rows"].as_f64()?, n["Actual Rows"].as_f64()?);
            let off = (got.max(1.0) / est.max(1.0)).max(est.max(1.0) / got.max(1.0));
            (off >= 10.0 && got.max(est) >= 1000.0).then(|| {
                format!(
                    "{} expected {est:.0} rows, got {got:.0}",
                    n["Node Type"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    if !misjudged.is_empty() {
        out.push(Reason {
            kind: "misestimate",
            count: misjudged.len() as u32,
            points: 0.5,
            detail: format!(
                "the statistics misjudge the rows (ANALYZE the tables): {}",
                misjudged.join("; ")
            ),
        });
    }
    out
}

/// `c` with the plan's reasons added and scored again.
pub fn with(c: Complexity, extra: Vec<Reason>) -> Complexity {
    let mut reasons = c.reasons;
    reasons.extend(extra);
    reasons.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.kind.cmp(b.kind)));
    let total: f64 = reasons.iter().map(|r| r.points).sum();
    Complexity {
        score: (1.0 + total).round().clamp(1.0, 10.0) as u8,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_scans_casts_spills_and_misjudged_rows_are_reasons() {
        let plan = json!([{"Plan": {"Node Type": "Sort", "Sort Key": ["created_at"],
            "Sort Space Type": "Disk", "Plan Rows": 10, "Actual Rows": 50000, "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "leads",
             "Filter": "((account_id)::numeric = 42.5)", "Plan Rows": 10, "Actual Rows": 50000},
            {"Node Type": "Seq Scan", "Relation Name": "settings"}
        ]}}]);
        let rows = HashMap::from([("leads".to_string(), 1e5), ("settings".to_string(), 50.0)]);
        let r = reasons(&plan, &rows, 0);
        let kinds: Vec<&str> = r.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            ["seq_scan", "implicit_cast", "sort_on_disk", "misestimate"]
        );
        assert!(r[0].detail.contains("leads (~100000 rows)") && !r[0].detail.contains("settings"));
        assert_eq!(r[3].count, 2);
        // A cast the query writes itself is counted once, from the parse tree.
        assert!(
            reasons(&plan, &rows, 1)
                .iter()
                .all(|r| r.kind != "implicit_cast")
        );
        // A constant's cast is no column's.
        let fine = json!([{"Plan": {"Node Type": "Index Scan", "Relation Name": "leads",
            "Index Cond": "(status = 'open'::text)", "Filter": "((name)::text = 'x'::text)"}}]);
        assert!(reasons(&fine, &rows, 0).is_empty());
        let c = with(crate::complexity::analyze("SELECT 1").unwrap(), r);
        // 1 + 1 + 1 + 1 + 0.5, rounded.
        assert_eq!(c.score, 5);
        assert_eq!(c.reasons.len(), 4);
        assert_eq!(
            c.reasons.last().unwrap().kind,
            "misestimate",
            "heaviest first"
        );
    }
}
