//! The spend ledger: what every answered request cost (and what flowgate's cache saved),
//! rolled up by key, team, route, model and provider, per minute and per hour, in an
//! embedded database file (redb).
//!
//! The data plane never touches it: requests reach it through the telemetry consumer,
//! which calls [`Ledger::add`] (a map update under a lock only that consumer and the
//! writer take); a control-plane task calls [`Ledger::flush`] every second, which writes
//! what was added since in one durable transaction. A `kill -9` therefore loses at most
//! what was added since the last flush. Rows are per bucket and combination, not per
//! request: the file grows with the number of distinct combinations active in each minute,
//! whatever the request rate, and rows older than the retention (35 days of minutes, 400
//! of hours by default) are deleted as the ledger is written.
//!
//! A file that cannot be opened as a ledger (a crash in a disk's firmware, a file that is
//! not a ledger) is moved aside and a fresh one started: the gateway must start, and the
//! old file is kept for whoever wants to look at it.

mod row;
#[cfg(test)]
mod tests;

use hashbrown::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

pub use row::{Dim, Dims, Totals};
use row::{bucket_start, decode_key, decode_totals, encode_key, encode_totals};

const MINUTES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spend_per_minute");
const HOURS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spend_per_hour");
/// Budgets made through the admin API, by name (their JSON), kept with the spend they
/// count.
const BUDGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("budgets");

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// How long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minutes: Duration,
    pub hours: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            minutes: Duration::from_secs(35 * DAY),
            hours: Duration::from_secs(400 * DAY),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("spend ledger {path}: {message}")]
pub struct LedgerError {
    path: String,
    message: String,
}

pub use flowgate_store::MovedAside;

/// A time bucket size for [`Ledger::series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Minute,
    Hour,
    Day,
}

impl Step {
    pub fn secs(self) -> u64 {
        match self {
            Step::Minute => MINUTE,
            Step::Hour => HOUR,
            Step::Day => DAY,
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        match s {
            "minute" | "1m" => Some(Step::Minute),
            "hour" | "1h" => Some(Step::Hour),
            "day" | "1d" => Some(Step::Day),
            _ => None,
        }
    }
}

/// What a read of the ledger covers: the buckets that start in `[from, to)` (Unix
/// seconds), of the rows whose names equal every `filter`'s. `now` chooses the rows:
/// minutes while the window starts within their retention, else hours (whose edges are
/// whole hours).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub from: u64,
    pub to: u64,
    pub now: u64,
    pub filter: Vec<(Dim, String)>,
}

/// How the writer is doing, for the metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Minute rows written (each also added to its hour's row).
    pub rows: usize,
    /// Rows deleted past their retention.
    pub pruned: usize,
}

/// The spend ledger (see the module's documentation).
pub struct Ledger {
    db: Database,
    /// Where it is; `None` in memory.
    path: Option<PathBuf>,
    retention: Retention,
    /// Added since the last flush: per minute bucket and combination.
    pending: Mutex<HashMap<(u64, Dims), Totals>>,
    /// Serializes flushes (the timer's and a final one at shutdown).
    writer: Mutex<Writer>,
}

#[derive(Default)]
struct Writer {
    /// The last time rows past their retention were looked for (Unix seconds).
    pruned_at: u64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (or creates) the ledger at `path`. A file that does not open as a ledger is
    /// renamed `<path>.corrupt-<unix seconds>` and a new one made: what was moved is
    /// returned, for the caller to tell.
    pub fn open(
        path: &Path,
        retention: Retention,
        now: u64,
    ) -> Result<(Ledger, Option<MovedAside>), LedgerError> {
        let err = |e: &dyn std::fmt::Display| LedgerError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let (db, moved) = flowgate_store::open(path, now).map_err(|e| err(&e))?;
        tables(&db).map_err(|e| err(&e))?;
        Ok((Ledger::with(db, Some(path.to_path_buf()), retention), moved))
    }

    /// A ledger in memory: the same rollups, kept until the process ends.
    pub fn in_memory(retention: Retention) -> Result<Ledger, LedgerError> {
        let err = |e: &dyn std::fmt::Display| LedgerError {
            path: "(in memory)".into(),
            message: e.to_string(),
        };
        let db = flowgate_store::in_memory().map_err(|e| err(&e))?;
        tables(&db).map_err(|e| err(&e))?;
        Ok(Ledger::with(db, None, retention))
    }

    fn with(db: Database, path: Option<PathBuf>, retention: Retention) -> Ledger {
        Ledger {
            db,
            path,
            retention,
            pending: Mutex::new(HashMap::new()),
            writer: Mutex::new(Writer::default()),
        }
    }

    /// The file, when the ledger is kept in one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Adds one request (or a sum) at `at` (Unix seconds) to its minute.
    pub fn add(&self, at: u64, dims: Dims, t: &Totals) {
        let bucket = at - at % MINUTE;
        if let Ok(mut p) = self.pending.lock() {
            p.entry((bucket, dims)).or_default().add(t);
        }
    }

    /// Writes what was added since the last flush, durably, in one transaction; deletes
    /// rows past their retention once an hour. On an error what was to be written is kept
    /// for the next flush.
    pub fn flush(&self, now: u64) -> Result<FlushReport, LedgerError> {
        let Ok(mut writer) = self.writer.lock() else {
            return Ok(FlushReport::default());
        };
        let batch = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Ok(FlushReport::default()),
        };
        let prune = now.saturating_sub(writer.pruned_at) >= HOUR;
        if batch.is_empty() && !prune {
            return Ok(FlushReport::default());
        }
        match self.write(&batch, prune.then_some(now)) {
            Ok(pruned) => {
                if prune {
                    writer.pruned_at = now;
                }
                Ok(FlushReport {
                    rows: batch.len(),
                    pruned,
                })
            }
            Err(e) => {
                // Put back what was not written, under what came in meanwhile.
                if let Ok(mut p) = self.pending.lock() {
                    for (k, t) in batch {
                        p.entry(k).or_default().add(&t);
                    }
                }
                Err(self.error(&e))
            }
        }
    }

    fn write(
        &self,
        batch: &HashMap<(u64, Dims), Totals>,
        prune_at: Option<u64>,
    ) -> Result<usize, redb::Error> {
        let tx = self.db.begin_write()?;
        let mut pruned = 0;
        {
            let mut minutes = tx.open_table(MINUTES)?;
            let mut hours = tx.open_table(HOURS)?;
            let mut per_hour: HashMap<(u64, &Dims), Totals> = HashMap::new();
            for ((bucket, dims), t) in batch {
                add_row(&mut minutes, *bucket, dims, t)?;
                per_hour
                    .entry((bucket - bucket % HOUR, dims))
                    .or_default()
                    .add(t);
            }
            for ((bucket, dims), t) in per_hour {
                add_row(&mut hours, bucket, dims, &t)?;
            }
            if let Some(now) = prune_at {
                for (table, keep) in [
                    (&mut minutes, self.retention.minutes),
                    (&mut hours, self.retention.hours),
                ] {
                    let oldest = now.saturating_sub(keep.as_secs());
                    table.retain_in(..&bucket_start(oldest)[..], |_, _| {
                        pruned += 1;
                        false
                    })?;
                }
            }
        }
        tx.commit()?;
        Ok(pruned)
    }

    /// Sums over `q`'s window, grouped by `group` (one row, named `""`, when `None`), in
    /// descending order of spend.
    pub fn summary(
        &self,
        q: &Query,
        group: Option<Dim>,
    ) -> Result<Vec<(String, Totals)>, LedgerError> {
        let mut out: HashMap<String, Totals> = HashMap::new();
        self.each(q, |_, dims, t| {
            let name = group.map_or("", |g| dims.get(g));
            match out.get_mut(name) {
                Some(sum) => sum.add(t),
                None => _ = out.insert(name.to_string(), *t),
            }
        })?;
        let mut rows: Vec<(String, Totals)> = out.into_iter().collect();
        rows.sort_by(|a, b| b.1.usd.cmp(&a.1.usd).then_with(|| a.0.cmp(&b.0)));
        Ok(rows)
    }

    /// Sums per `step` over `q`'s window, in time order (buckets with nothing left out).
    pub fn series(&self, q: &Query, step: Step) -> Result<Vec<(u64, Totals)>, LedgerError> {
        let mut out: std::collections::BTreeMap<u64, Totals> = Default::default();
        let s = step.secs();
        self.each(q, |bucket, _, t| {
            out.entry(bucket - bucket % s).or_default().add(t);
        })?;
        Ok(out.into_iter().collect())
    }

    /// Every row of `q`'s window, stored and pending, through `f(bucket, dims, totals)`
    /// (a bucket's rows one by one, pending ones after stored ones).
    pub fn each(
        &self,
        q: &Query,
        mut f: impl FnMut(u64, &Dims, &Totals),
    ) -> Result<(), LedgerError> {
        let minutes = q.from >= q.now.saturating_sub(self.retention.minutes.as_secs());
        let (table, size) = if minutes {
            (MINUTES, MINUTE)
        } else {
            (HOURS, HOUR)
        };
        let wanted = |dims: &Dims| q.filter.iter().all(|(d, v)| dims.get(*d) == v);
        let (from, to) = (q.from - q.from % size, q.to);
        // A flush moves rows from pending to the file under the writer's lock: with it
        // held, the file's snapshot and the pending rows are read on the same side of any
        // flush (a row is in one or the other, never in neither nor both).
        let (tx, pending) = {
            let _writer = self.writer.lock();
            let tx = self.db.begin_read().map_err(|e| self.error(&e))?;
            let pending: Vec<(u64, Dims, Totals)> = match self.pending.lock() {
                Ok(p) => p
                    .iter()
                    .map(|((minute, dims), t)| (minute - minute % size, dims, t))
                    .filter(|(bucket, dims, _)| (from..to).contains(bucket) && wanted(dims))
                    .map(|(bucket, dims, t)| (bucket, dims.clone(), *t))
                    .collect(),
                Err(_) => Vec::new(),
            };
            (tx, pending)
        };
        let t = tx.open_table(table).map_err(|e| self.error(&e))?;
        let rows = t
            .range(&bucket_start(from)[..]..&bucket_start(to)[..])
            .map_err(|e| self.error(&e))?;
        for row in rows {
            let (k, v) = row.map_err(|e| self.error(&e))?;
            let (Some((bucket, dims)), Some(totals)) =
                (decode_key(k.value()), decode_totals(v.value()))
            else {
                continue;
            };
            if wanted(&dims) {
                f(bucket, &dims, &totals);
            }
        }
        for (bucket, dims, totals) in &pending {
            f(*bucket, dims, totals);
        }
        Ok(())
    }

    /// The budgets kept (made through the admin API): name and JSON.
    pub fn budgets(&self) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| self.error(&e))?;
        let t = tx.open_table(BUDGETS).map_err(|e| self.error(&e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.error(&e))? {
            let (k, v) = row.map_err(|e| self.error(&e))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Keeps budget `name` as `json`, or forgets it (`None`), durably before returning.
    pub fn keep_budget(&self, name: &str, json: Option<&[u8]>) -> Result<(), LedgerError> {
        let run = || -> Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(BUDGETS)?;
                match json {
                    Some(j) => _ = t.insert(name, j)?,
                    None => _ = t.remove(name)?,
                }
            }
            tx.commit()?;
            Ok(())
        };
        run().map_err(|e| self.error(&e))
    }

    fn error(&self, e: &dyn std::fmt::Display) -> LedgerError {
        LedgerError {
            path: self
                .path
                .as_ref()
                .map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string()),
            message: e.to_string(),
        }
    }
}

/// Adds `t` to the row of `bucket` and `dims`.
fn add_row(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    bucket: u64,
    dims: &Dims,
    t: &Totals,
) -> Result<(), redb::Error> {
    let key = encode_key(bucket, dims);
    let mut sum = table
        .get(key.as_slice())?
        .and_then(|v| decode_totals(v.value()))
        .unwrap_or_default();
    sum.add(t);
    table.insert(key.as_slice(), encode_totals(&sum).as_slice())?;
    Ok(())
}

/// Makes the tables, so that reads never meet their absence.
fn tables(db: &Database) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    tx.open_table(MINUTES)?;
    tx.open_table(HOURS)?;
    tx.open_table(BUDGETS)?;
    tx.commit()?;
    Ok(())
}
