//! The rate limits' Prometheus families, read from their counters at each scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::admission::Counts;
use crate::cache_metrics::{counter, gauge, one};

/// Encodes the rate limits' families.
#[derive(Debug, Clone)]
pub struct AdmissionCollector(pub Arc<Counts>);

impl Collector for AdmissionCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let tables = self.0.tables();
        let mut decisions = Vec::new();
        for (name, t) in &tables {
            for (result, n) in [("admitted", &t.admitted), ("limited", &t.limited)] {
                let labels = vec![
                    ("limit", &**name),
                    ("scope", t.scope.as_str()),
                    ("result", result),
                ];
                decisions.push((labels, n.load(Ordering::Relaxed)));
            }
        }
        counter(
            e,
            "flowgate_rate_limit_checks",
            "Requests checked by each rate limit (a key's own limits are named key:NAME#i), by result",
            decisions,
        )?;
        if let Some(s) = self.0.shared() {
            let (local, checks) = s.fallback();
            gauge(
                e,
                "flowgate_rate_limit_redis_fallback",
                "1 while Redis does not answer and rate limits are counted by this replica alone",
                one(i64::from(local)),
            )?;
            counter(
                e,
                "flowgate_rate_limit_fallback_checks",
                "Rate-limit checks counted locally because Redis did not answer in time",
                one(checks),
            )?;
        }
        Ok(())
    }
}
