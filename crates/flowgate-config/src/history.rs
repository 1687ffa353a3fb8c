//! The metrics history (`[history]`): where it is kept and how long each resolution's
//! points live. The resolutions themselves are fixed: 10 s, 1 min, 1 h.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::units::{HumanDuration, relative_to};

/// The metrics history's series, by base name, and the label each takes (if any). What
/// the gateway writes is checked against it in its tests.
pub const SERIES: &[(&str, Option<&str>)] = &[
    ("requests_per_second", Some("route|pool|endpoint")),
    ("error_ratio", Some("route|pool|endpoint")),
    ("latency_ms_p50", Some("route|pool|endpoint")),
    ("latency_ms_p95", Some("route|pool|endpoint")),
    ("latency_ms_p99", Some("route|pool|endpoint")),
    ("head_latency_ms_p50", Some("route|pool|endpoint")),
    ("head_latency_ms_p95", Some("route|pool|endpoint")),
    ("head_latency_ms_p99", Some("route|pool|endpoint")),
    ("tokens_per_second", Some("route")),
    // `slow_ratio{route="…",over_ms="…"}`: kept for the routes a latency SLO names.
    ("slow_ratio", Some("route,over_ms")),
    // `stage_ms{route="…",stage="…"}`: the mean time a route's requests spent in a stage.
    ("stage_ms", Some("route,stage")),
    ("cache_hit_ratio", Some("tier")),
    ("spend_usd_per_hour", None),
    ("requests_in_flight", None),
    ("upstream_usable_endpoints", Some("pool")),
    ("upstream_usable_ratio", Some("pool")),
    ("redis_up", Some("link")),
    ("process_cpu_cores", None),
    ("process_cpu_ratio", None),
    ("memory_ratio", None),
    // The memory governor's level: 0 normal, 1 shrink, 2 no fills, 3 shedding.
    ("memory_pressure_level", None),
    // Anomalies open ([anomalies]).
    ("anomalies_open", None),
    ("process_resident_memory_bytes", None),
    ("process_open_fds", None),
    ("process_threads", None),
    ("cgroup_memory_usage_bytes", None),
    ("host_memory_available_bytes", None),
    ("host_cpu_ratio", None),
    ("event_loop_lag_ms", None),
    // Failed or dropped alert deliveries per second.
    ("notification_failures", Some("notifier")),
    // Scaling actions that failed per second ([scaling]).
    ("scaling_failures", Some("pool")),
    // Automation steps (actions, undos) that failed per second ([automation]).
    ("automation_failures", Some("rule")),
    // Query shapes of a database ([[databases]]) whose mean time over the last poll was
    // at least its `slow`.
    ("db_slow_queries", Some("database")),
    // A shape's mean time over the last poll (`query`: pg_stat_statements' queryid).
    ("db_query_mean_ms", Some("database,query")),
    // Tables of a database with a finding of a kind (`kind`: dead_rows, xid_wraparound,
    // stale_statistics, sequential_reads, no_primary_key).
    ("db_table_findings", Some("database,kind")),
    // The oldest transaction-id age of a database's tables.
    ("db_xid_age", Some("database")),
];

/// The stages of a request's path, as `stage_ms` names them (`flowgate_telemetry::
/// breakdown::Step`; a gateway test holds the two lists together).
pub const STAGES: &[&str] = &[
    "gateway",
    "read",
    "admission",
    "cache",
    "queue",
    "retries",
    "connect",
    "first_byte",
    "generation",
];

/// The history's file under `[server] data_dir`.
pub const HISTORY_FILE: &str = "history.redb";

/// `[history]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHistory {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub retention_10s: Option<HumanDuration>,
    pub retention_1m: Option<HumanDuration>,
    pub retention_1h: Option<HumanDuration>,
}

/// The metrics history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Default on.
    pub enabled: bool,
    /// `path`, else `history.redb` in `[server] data_dir`; `None`: in memory.
    pub path: Option<PathBuf>,
    /// How long the 10 s, 1 min and 1 h points are kept: 48 h, 35 days and 400 days by
    /// default.
    pub retention: [Duration; 3],
}

const DAY: u64 = 86_400;

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            path: None,
            retention: [
                Duration::from_secs(2 * DAY),
                Duration::from_secs(35 * DAY),
                Duration::from_secs(400 * DAY),
            ],
        }
    }
}

pub(crate) fn history(
    raw: Option<&RawHistory>,
    data_dir: Option<&PathBuf>,
    origin: &str,
    key: &KeyPath,
    found: &mut Found,
) -> HistoryConfig {
    let d = HistoryConfig::default();
    let path = match raw.and_then(|r| r.path.as_deref()) {
        Some("") => {
            found.push((
                key.clone().key("path"),
                "an empty path: leave it out to keep the history in [server] data_dir".into(),
            ));
            None
        }
        Some(p) => Some(relative_to(origin, p)),
        None => data_dir.map(|d| d.join(HISTORY_FILE)),
    };
    let Some(raw) = raw else {
        return HistoryConfig { path, ..d };
    };
    // Each from a floor (at least one point of the next resolution) to ten years.
    let limits = [
        ("retention_10s", raw.retention_10s, 60, "1m"),
        ("retention_1m", raw.retention_1m, 3600, "1h"),
        ("retention_1h", raw.retention_1h, DAY, "1 day"),
    ];
    let mut retention = d.retention;
    for (i, (name, v, floor, floor_text)) in limits.into_iter().enumerate() {
        match v {
            None => {}
            Some(HumanDuration(t)) if t.as_secs() >= floor && t.as_secs() <= 3660 * DAY => {
                retention[i] = t;
            }
            Some(HumanDuration(t)) => found.push((
                key.clone().key(name),
                format!(
                    "{} is out of range: from {floor_text} to 3660 days",
                    crate::format_duration(t)
                ),
            )),
        }
    }
    if retention[1] < retention[0] || retention[2] < retention[1] {
        found.push((
            key.clone().key("retention_1h"),
            "coarser points must be kept at least as long as finer ones \
             (retention_10s <= retention_1m <= retention_1h)"
                .into(),
        ));
    }
    HistoryConfig {
        enabled: raw.enabled.unwrap_or(true),
        path,
        retention,
    }
}

impl HistoryConfig {
    /// Its line of `flowgate check`'s summary.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "  history: off\n".into();
        }
        format!(
            "  history: {}, 10s points kept {}, 1m {}, 1h {}\n",
            self.path.as_ref().map_or_else(
                || "in memory (lost at exit: set server.data_dir)".to_string(),
                |p| p.display().to_string()
            ),
            crate::format_duration(self.retention[0]),
            crate::format_duration(self.retention[1]),
            crate::format_duration(self.retention[2]),
        )
    }
}
