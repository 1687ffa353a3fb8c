//! The rate and concurrency limits' Prometheus families, read from their counters at each
//! scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use flowgate_admission::Priority;

use crate::admission::Counts;
use crate::cache_metrics::{counter, family, gauge, one};
use crate::queues::Queues;

/// Encodes the rate and concurrency limits' families.
#[derive(Debug, Clone)]
pub struct AdmissionCollector {
    pub counts: Arc<Counts>,
    pub queues: Arc<Queues>,
}

impl Collector for AdmissionCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let tables = self.counts.tables();
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
        if let Some(s) = self.counts.shared() {
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
        self.encode_concurrency(e)
    }
}

impl AdmissionCollector {
    fn encode_concurrency(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gates = self.queues.all();
        let (mut limit, mut in_flight, mut queued, mut waits) = (vec![], vec![], vec![], vec![]);
        let (mut admitted, mut timeouts, mut shed) = (vec![], vec![], vec![]);
        for (scope, name, g) in &gates {
            let at = || vec![("scope", scope.as_str()), ("name", name.as_str())];
            let s = g.limiter.snapshot();
            limit.push((at(), s.limit as i64));
            in_flight.push((at(), s.in_flight as i64));
            waits.push((at(), g.waits.clone()));
            let n = g.limiter.counters();
            for p in Priority::ALL {
                let i = p as usize;
                let by = || {
                    let mut l = at();
                    l.push(("priority", p.as_str()));
                    l
                };
                queued.push((by(), s.queued[i] as i64));
                admitted.push((by(), n.admitted[i].load(Ordering::Relaxed)));
                timeouts.push((by(), n.timeouts[i].load(Ordering::Relaxed)));
                shed.push((by(), n.shed[i].load(Ordering::Relaxed)));
            }
        }
        gauge(
            e,
            "flowgate_concurrency_limit",
            "Requests a concurrency limit lets in flight at once (an adaptive one's current value)",
            limit,
        )?;
        gauge(
            e,
            "flowgate_concurrency_in_flight",
            "Requests holding a permit",
            in_flight,
        )?;
        gauge(
            e,
            "flowgate_concurrency_queued",
            "Requests waiting for a permit, by priority",
            queued,
        )?;
        counter(
            e,
            "flowgate_concurrency_admitted",
            "Requests that got a permit, by priority",
            admitted,
        )?;
        counter(
            e,
            "flowgate_concurrency_timeouts",
            "Requests refused after waiting the queue timeout, by priority",
            timeouts,
        )?;
        counter(
            e,
            "flowgate_concurrency_shed",
            "Requests refused by a full queue or shed from it for a more urgent one, by priority",
            shed,
        )?;
        family(
            e,
            "flowgate_concurrency_wait_seconds",
            "Time from asking for a permit to getting it",
            waits,
            |h| h,
        )
    }
}
