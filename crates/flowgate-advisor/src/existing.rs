//! The indexes a database already has, and what is wrong with them: unused ones (never
//! scanned since the statistics began, neither unique nor a primary key: they only cost
//! writes and room), duplicates (an index whose columns lead another index of the same
//! table), and foreign keys no index leads with (a parent's delete or key update scans the
//! child table; joins on them cannot use an index).

use crate::db::{AdvisorError, Database};

/// An index as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingIndex {
    pub name: String,
    pub table: String,
    /// Its key columns (expressions left out; `expressions` says whether it has any).
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    pub partial: bool,
    pub expressions: bool,
    /// Scans since the statistics began.
    pub scans: i64,
    pub size_bytes: i64,
}

/// A foreign key no index leads with.
#[derive(Debug, Clone, PartialEq)]
pub struct UnindexedForeignKey {
    pub table: String,
    pub constraint: String,
    pub columns: Vec<String>,
}

impl UnindexedForeignKey {
    /// The index that serves it, made without blocking writes.
    pub fn create_concurrently(&self) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY {} ON {} ({})",
            self.name(),
            self.table,
            self.columns.join(", ")
        )
    }

    /// The index's name: `table_col1_col2_idx`.
    pub fn name(&self) -> String {
        format!(
            "{}_{}_idx",
            self.table.replace('.', "_"),
            self.columns.join("_")
        )
    }
}

impl ExistingIndex {
    /// The statement that drops it without blocking writes.
    pub fn drop_concurrently(&self) -> String {
        format!("DROP INDEX CONCURRENTLY {}", self.name)
    }
}

/// The user tables' indexes.
pub async fn indexes(db: &Database) -> Result<Vec<ExistingIndex>, AdvisorError> {
    let rows = db
        .query(
            "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text,
                    coalesce((SELECT array_agg(a.attname::text ORDER BY k.n)
                       FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
                       '{}'::text[]),
                    i.indisunique, i.indisprimary, i.indpred IS NOT NULL, i.indexprs IS NOT NULL,
                    coalesce(s.idx_scan, 0), pg_relation_size(i.indexrelid)
             FROM pg_index i JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
             ORDER BY 2, 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ExistingIndex {
            name: r.get(0),
            table: r.get(1),
            columns: r.get(2),
            unique: r.get(3),
            primary: r.get(4),
            partial: r.get(5),
            expressions: r.get(6),
            scans: r.get(7),
            size_bytes: r.get(8),
        })
        .collect())
}

/// The foreign keys of user tables that no index leads with.
pub async fn unindexed_foreign_keys(
    db: &Database,
) -> Result<Vec<UnindexedForeignKey>, AdvisorError> {
    let rows = db.query(
            "SELECT c.conrelid::regclass::text, c.conname::text,
                    (SELECT array_agg(a.attname::text ORDER BY k.n)
                       FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
             FROM pg_constraint c
             WHERE c.contype = 'f'
               AND c.connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
               AND NOT EXISTS (
                 SELECT 1 FROM pg_index i
                 WHERE i.indrelid = c.conrelid
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| UnindexedForeignKey {
            table: r.get(0),
            constraint: r.get(1),
            columns: r.get(2),
        })
        .collect())
}

/// Indexes never scanned that enforce nothing.
pub fn unused(indexes: &[ExistingIndex]) -> Vec<&ExistingIndex> {
    indexes
        .iter()
        .filter(|i| i.scans == 0 && !i.unique && !i.primary)
        .collect()
}

/// `(duplicate, the index that makes it one)`: a plain, non-unique index whose columns
/// lead another plain index of the same table (equal columns: the later name is the
/// duplicate).
pub fn duplicates(indexes: &[ExistingIndex]) -> Vec<(&ExistingIndex, &ExistingIndex)> {
    let plain = |i: &ExistingIndex| !i.partial && !i.expressions && !i.columns.is_empty();
    let mut out = Vec::new();
    for d in indexes
        .iter()
        .filter(|d| plain(d) && !d.unique && !d.primary)
    {
        let by = indexes.iter().find(|o| {
            o.name != d.name
                && o.table == d.table
                && plain(o)
                && o.columns.starts_with(&d.columns)
                && (o.columns.len() > d.columns.len() || o.name < d.name)
        });
        if let Some(o) = by {
            out.push((d, o));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(name: &str, cols: &[&str], unique: bool) -> ExistingIndex {
        ExistingIndex {
            name: name.into(),
            table: "leads".into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            unique,
            primary: false,
            partial: false,
            expressions: false,
            scans: 0,
            size_bytes: 8192,
        }
    }

    #[test]
    fn a_prefix_or_an_equal_index_is_a_duplicate_but_a_unique_one_is_not() {
        let list = vec![
            ix("a_email", &["email"], false),
            ix("b_email", &["email"], false),
            ix("c_email_owner", &["email", "owner_id"], false),
            ix("d_owner", &["owner_id"], true),
            ix("e_owner_email", &["owner_id", "email"], false),
        ];
        let d: Vec<(&str, &str)> = duplicates(&list)
            .iter()
            .map(|(d, by)| (d.name.as_str(), by.name.as_str()))
            .collect();
        // Both one-column email indexes lead the two-column one; the unique index is kept.
        assert_eq!(
            d,
            vec![("a_email", "c_email_owner"), ("b_email", "a_email")]
        );
        let u: Vec<&str> = unused(&list).iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            u,
            vec!["a_email", "b_email", "c_email_owner", "e_owner_email"]
        );
    }
}
