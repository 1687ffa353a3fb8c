//! The watched databases' families ([`crate::databases`]), encoded at each scrape: whether
//! each could be read at its last poll, its slow shapes and shapes called then, its tables
//! with each kind of finding and their oldest transaction-id age, the plan changes seen,
//! and when it was last read. Each shape's mean stays in the metrics history
//! (`db_query_mean_ms`): a label per query shape would grow without bound.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::cache_metrics::{counter, gauge};
use crate::databases::Databases;

/// See the module's documentation.
#[derive(Debug)]
pub(crate) struct DatabaseCollector(pub(crate) Arc<Databases>);

impl Collector for DatabaseCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let all = self.0.statuses();
        let each = |f: &dyn Fn(&crate::databases::Status) -> Option<i64>| {
            all.iter()
                .filter_map(|s| Some((vec![("database", s.name.as_str())], f(s)?)))
                .collect::<Vec<_>>()
        };
        gauge(
            e,
            "flowgate_database_up",
            "Whether the advisor could read the database at its last poll (1) or not (0)",
            each(&|s| Some(i64::from(s.error.is_none()))),
        )?;
        gauge(
            e,
            "flowgate_database_slow_queries",
            "Query shapes whose mean time over the last poll was at least the database's slow",
            each(&|s| s.error.is_none().then_some(s.slow as i64)),
        )?;
        gauge(
            e,
            "flowgate_database_query_shapes",
            "Query shapes called during the last poll",
            each(&|s| s.error.is_none().then_some(s.shapes as i64)),
        )?;
        gauge(
            e,
            "flowgate_database_table_findings",
            "Tables with a finding of the kind at the last poll (dead_rows, xid_wraparound, stale_statistics, sequential_reads, no_primary_key)",
            all.iter()
                .filter(|s| s.error.is_none())
                .flat_map(|s| {
                    s.tables.findings.iter().map(|(kind, n)| {
                        (
                            vec![("database", s.name.as_str()), ("kind", *kind)],
                            *n as i64,
                        )
                    })
                })
                .collect(),
        )?;
        gauge(
            e,
            "flowgate_database_xid_age",
            "The oldest transaction-id age of the database's tables at the last poll (PostgreSQL stops taking writes at 2^31)",
            each(&|s| s.error.is_none().then_some(s.tables.xid_age)),
        )?;
        counter(
            e,
            "flowgate_database_plan_changes",
            "Plans of the busiest query shapes seen changing between two polls",
            all.iter()
                .map(|s| (vec![("database", s.name.as_str())], s.plan_changes))
                .collect(),
        )?;
        gauge(
            e,
            "flowgate_database_last_poll_timestamp_seconds",
            "When the database was last read (Unix seconds)",
            each(&|s| Some(s.last_poll as i64)),
        )
    }
}
