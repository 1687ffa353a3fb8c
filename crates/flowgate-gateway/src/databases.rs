//! What the advisor's watch knows of the databases it watches (`[[databases]]`; the loop
//! that reads them is in `database_watch.rs`, above this module): each database's query shapes as
//! `pg_stat_statements` counted them at the last poll, each shape's mean time over the poll
//! (the change in its total time over the change in its calls), how many were slow, the
//! busiest shapes' plans outlined and the changes seen in them, its tables' health in
//! figures; the history's samples of it (`db_query_mean_ms{database,query}`,
//! `db_slow_queries{database}`, which the database's alert rule watches,
//! `db_table_findings{database,kind}`, `db_xid_age{database}`). The sessions the watch and the admin API's database
//! endpoints open come from [`connect`]; their changes are serialized by
//! [`Databases::acting`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use flowgate_advisor::health;
use flowgate_advisor::recommend::outline;
use flowgate_advisor::{AdvisorError, Database};
use flowgate_config::DatabaseConfig;
use flowgate_telemetry::history::Sample;

/// Shapes read per poll, most total time first.
const SHAPES: i64 = 200;
/// Shapes whose plans are outlined per poll (those called since the last, most total
/// time first).
const PLANNED: usize = 20;
/// Plan changes kept per database.
const CHANGES: usize = 100;

/// A shape's mean time over the last poll.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShapeMean {
    pub queryid: i64,
    pub query: String,
    /// Calls during the poll (since the statistics began, at the first poll).
    pub calls: i64,
    pub mean_ms: f64,
}

/// A shape's plan that changed between two polls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlanChange {
    pub at: u64,
    pub queryid: i64,
    pub query: String,
    /// Its mean time over the poll that saw the change.
    pub mean_ms: f64,
    pub before: String,
    pub after: String,
}

/// What the watch knows of one database.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// When it was last read (Unix seconds), and what went wrong then, if anything.
    pub last_poll: Option<u64>,
    pub error: Option<String>,
    /// Each shape's calls and total time at the last poll.
    counts: HashMap<i64, (i64, f64)>,
    /// The shapes called during the last poll, by mean time over it.
    pub means: Vec<ShapeMean>,
    /// How many of them were slow.
    pub slow: usize,
    /// The shapes' plans, outlined.
    plans: HashMap<i64, String>,
    pub changes: VecDeque<PlanChange>,
    /// Plan changes seen since the gateway started (more than `changes` keeps).
    pub changes_seen: u64,
    /// Its tables' findings counted by kind, and their oldest transaction-id age.
    pub tables: health::Summary,
}

/// A database's watch in figures, for the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub name: String,
    pub last_poll: u64,
    pub error: Option<String>,
    pub slow: usize,
    pub shapes: usize,
    pub plan_changes: u64,
    pub tables: health::Summary,
}

/// Every watched database's [`Watch`], and the lock its changes take.
#[derive(Debug, Default)]
pub(crate) struct Databases {
    watched: Mutex<BTreeMap<String, Watch>>,
    acting: tokio::sync::Mutex<()>,
}

impl Databases {
    /// Runs `f` on database `name`'s watch (`None` before its first poll).
    pub(crate) fn with<T>(&self, name: &str, f: impl FnOnce(&Watch) -> T) -> Option<T> {
        self.watched.lock().ok()?.get(name).map(f)
    }

    /// Held while a change is made to a database, so that two are never made at once.
    pub(crate) async fn acting(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.acting.lock().await
    }

    /// Each database polled, in figures.
    pub(crate) fn statuses(&self) -> Vec<Status> {
        let Ok(w) = self.watched.lock() else {
            return Vec::new();
        };
        w.iter()
            .filter_map(|(name, w)| {
                Some(Status {
                    name: name.clone(),
                    last_poll: w.last_poll?,
                    error: w.error.clone(),
                    slow: w.slow,
                    shapes: w.means.len(),
                    plan_changes: w.changes_seen,
                    tables: w.tables.clone(),
                })
            })
            .collect()
    }

    /// Forgets the databases not in `names` (gone from the config).
    pub(crate) fn keep_only(&self, names: &[&str]) {
        if let Ok(mut w) = self.watched.lock() {
            w.retain(|name, _| names.contains(&name.as_str()));
        }
    }

    /// When database `name` was last read.
    pub(crate) fn last_poll(&self, name: &str) -> Option<u64> {
        self.with(name, |w| w.last_poll).flatten()
    }

    /// Reads `cfg`'s database (within `timeout`) and updates its watch: the plan changes
    /// seen.
    pub(crate) async fn poll(
        &self,
        cfg: &DatabaseConfig,
        now: u64,
        timeout: Duration,
    ) -> Vec<PlanChange> {
        let slow_ms = cfg.slow_ms();
        let counts = self
            .with(&cfg.name, |w| w.counts.clone())
            .unwrap_or_default();
        let got = tokio::time::timeout(timeout, read(cfg, &counts))
            .await
            .unwrap_or_else(|_| {
                Err(AdvisorError::Lost(format!(
                    "no answer within {}s",
                    timeout.as_secs()
                )))
            });
        let Ok(mut all) = self.watched.lock() else {
            return Vec::new();
        };
        let w = all.entry(cfg.name.clone()).or_default();
        w.last_poll = Some(now);
        match got {
            Err(e) => {
                if w.error.as_deref() != Some(&e.to_string()) {
                    tracing::warn!(database = %cfg.name, error = %e, "the database could not be read");
                }
                w.error = Some(e.to_string());
                w.means.clear();
                Vec::new()
            }
            Ok(read) => {
                if w.error.take().is_some() {
                    tracing::info!(database = %cfg.name, "the database can be read again");
                }
                update(w, read, slow_ms, now)
            }
        }
    }

    /// The history's samples: each database's slow shapes and each shape's mean.
    pub(crate) fn samples(&self) -> Vec<(String, Sample)> {
        let Ok(w) = self.watched.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, watch) in w.iter().filter(|(_, w)| w.last_poll.is_some()) {
            if watch.error.is_none() {
                out.push((
                    flowgate_config::slow_queries_series(name),
                    Sample::Gauge(watch.slow as f64),
                ));
                for (kind, n) in &watch.tables.findings {
                    out.push((
                        flowgate_config::table_findings_series(name, kind),
                        Sample::Gauge(*n as f64),
                    ));
                }
                out.push((
                    flowgate_config::xid_age_series(name),
                    Sample::Gauge(watch.tables.xid_age as f64),
                ));
            }
            for m in &watch.means {
                out.push((
                    flowgate_config::query_mean_series(name, m.queryid),
                    Sample::Gauge(m.mean_ms),
                ));
            }
        }
        out
    }
}

/// A session on `cfg`'s database: read-only unless `writable` (and the database is).
pub(crate) async fn connect(
    cfg: &DatabaseConfig,
    writable: bool,
) -> Result<Database, AdvisorError> {
    let tls = crate::tls::database_client(&cfg.tls)
        .map_err(|e| AdvisorError::Connect(format!("[databases.tls] {e}")))?;
    Database::connect(cfg.url.expose(), writable && cfg.writable, &tls).await
}

/// What one poll read: the shapes, the busiest ones' plans outlined, the tables' health.
struct Read {
    shapes: Vec<flowgate_advisor::Shape>,
    plans: Vec<(i64, String)>,
    tables: health::Summary,
}

async fn read(
    cfg: &DatabaseConfig,
    counts: &HashMap<i64, (i64, f64)>,
) -> Result<Read, AdvisorError> {
    let db = connect(cfg, false).await?;
    let shapes = db.slow_queries(0.0, SHAPES).await?;
    let mut plans = Vec::new();
    // The shapes called since the last poll, most total time first: a plan that turns a
    // fast shape slow is seen changing.
    for s in shapes
        .iter()
        .filter(|s| mean_since(s, counts).is_some())
        .take(PLANNED)
    {
        // A shape the planner cannot plan alone (a utility statement): no outline.
        if let Ok(p) = db.explain(&s.query).await {
            plans.push((s.queryid, outline(&p)));
        }
    }
    let tables = health::summary(&health::tables(&db).await?);
    Ok(Read {
        shapes,
        plans,
        tables,
    })
}

/// A shape's calls and mean time since the last poll (`None`: not called since).
fn mean_since(
    s: &flowgate_advisor::Shape,
    counts: &HashMap<i64, (i64, f64)>,
) -> Option<(i64, f64)> {
    let (calls, total) = match counts.get(&s.queryid) {
        // Counted again from zero (the statistics were reset): all of it is new.
        Some((c, t)) if s.calls >= *c => (s.calls - c, s.total_ms - t),
        _ => (s.calls, s.total_ms),
    };
    (calls > 0).then(|| (calls, total.max(0.0) / calls as f64))
}

/// `w` after a poll that read `read`; the plan changes it noted.
fn update(w: &mut Watch, read: Read, slow_ms: f64, now: u64) -> Vec<PlanChange> {
    let mut means: Vec<ShapeMean> = read
        .shapes
        .iter()
        .filter_map(|s| {
            let (calls, mean_ms) = mean_since(s, &w.counts)?;
            Some(ShapeMean {
                queryid: s.queryid,
                query: s.query.clone(),
                calls,
                mean_ms,
            })
        })
        .collect();
    means.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    w.slow = means.iter().filter(|m| m.mean_ms >= slow_ms).count();
    w.counts = read
        .shapes
        .iter()
        .map(|s| (s.queryid, (s.calls, s.total_ms)))
        .collect();
    // Plans of shapes no longer read are forgotten (the map stays within SHAPES).
    let counts = &w.counts;
    w.plans.retain(|q, _| counts.contains_key(q));
    let mut changed = Vec::new();
    for (queryid, after) in read.plans {
        let before = w.plans.insert(queryid, after.clone());
        if let Some(before) = before.filter(|b| *b != after) {
            let (query, mean_ms) = means
                .iter()
                .find(|m| m.queryid == queryid)
                .map(|m| (m.query.clone(), m.mean_ms))
                .unwrap_or_default();
            changed.push(PlanChange {
                at: now,
                queryid,
                query,
                mean_ms,
                before,
                after,
            });
        }
    }
    w.means = means;
    w.tables = read.tables;
    w.changes_seen += changed.len() as u64;
    for c in &changed {
        w.changes.push_back(c.clone());
        if w.changes.len() > CHANGES {
            w.changes.pop_front();
        }
    }
    changed
}
