//! A journal: rows in time order in one table of a database (`(at, sequence)` → bytes,
//! the caller's encoding), kept for a retention and at most a number of rows, read back by
//! time range. The alerts' events and the automation's audit log are journals.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// See the module's documentation.
#[derive(Debug)]
pub struct Journal {
    table: &'static str,
    next: AtomicU64,
    /// Rows older than this many seconds go when rows are added.
    retention: u64,
    /// The most rows kept, whatever their age.
    max: u64,
}

impl Journal {
    /// The journal in `db`'s table `table` (made if missing).
    pub fn open(
        db: &Database,
        table: &'static str,
        retention: u64,
        max: u64,
    ) -> Result<Journal, String> {
        let def: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new(table);
        let tx = db.begin_write().map_err(err)?;
        let next = {
            let t = tx.open_table(def).map_err(err)?;
            t.last().map_err(err)?.map_or(0, |(k, _)| k.value().1 + 1)
        };
        tx.commit().map_err(err)?;
        Ok(Journal {
            table,
            next: AtomicU64::new(next),
            retention,
            max,
        })
    }

    fn def(&self) -> TableDefinition<'static, (u64, u64), &'static [u8]> {
        TableDefinition::new(self.table)
    }

    /// Adds `rows` (time, bytes) in one transaction; rows older than the retention at
    /// `now`, and the oldest past the most kept, go.
    pub fn record<'a>(
        &self,
        db: &Database,
        rows: impl IntoIterator<Item = (u64, &'a [u8])>,
        now: u64,
    ) -> Result<(), String> {
        let tx = db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(self.def()).map_err(err)?;
            for (at, bytes) in rows {
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                t.insert((at, seq), bytes).map_err(err)?;
            }
            let oldest = now.saturating_sub(self.retention);
            let over = t.len().map_err(err)?.saturating_sub(self.max);
            let mut gone = Vec::new();
            for (i, row) in t.iter().map_err(err)?.enumerate() {
                let key = row.map_err(err)?.0.value();
                if (i as u64) < over || key.0 < oldest {
                    gone.push(key);
                } else {
                    break;
                }
            }
            for k in gone {
                t.remove(k).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The rows from `from` to `to` (inclusive) that `keep` takes, oldest first, at most
    /// the last `limit` of them.
    pub fn read<T>(
        &self,
        db: &Database,
        from: u64,
        to: u64,
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> Result<Option<T>, String>,
    ) -> Result<Vec<T>, String> {
        let tx = db.begin_read().map_err(err)?;
        let t = tx.open_table(self.def()).map_err(err)?;
        let mut out = std::collections::VecDeque::new();
        for row in t.range((from, 0)..=(to, u64::MAX)).map_err(err)? {
            let (_, v) = row.map_err(err)?;
            let Some(x) = keep(v.value())? else { continue };
            if out.len() == limit {
                out.pop_front();
            }
            out.push_back(x);
        }
        Ok(out.into())
    }
}
