//! The load balancer's Prometheus families, read from the pools' counters at each scrape:
//! per endpoint its outcomes, requests in flight, breaker state and transitions; per pool its
//! retries, refused retries, hedges and fallbacks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::cache_metrics::{counter, gauge};
use crate::runtime::Runtime;

/// Encodes the balancer's families for the pools of the runtime serving now.
#[derive(Debug)]
pub struct BalanceCollector(pub Arc<ArcSwap<Runtime>>);

impl Collector for BalanceCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let rt = self.0.load_full();
        let (mut outcomes, mut in_flight, mut open, mut transitions) =
            (vec![], vec![], vec![], vec![]);
        let mut probes = vec![];
        let mut pools = Vec::new();
        for u in &rt.upstreams {
            let b = u.balancer();
            let now = b.now_ns();
            for (ep, h) in u.endpoints().iter().zip(b.health()) {
                let at = || vec![("pool", &*u.name), ("endpoint", &*ep.name)];
                let with = |k, v| {
                    let mut l = at();
                    l.push((k, v));
                    l
                };
                let (all, failed) = h.totals();
                outcomes.push((with("result", "success"), all - failed));
                outcomes.push((with("result", "failure"), failed));
                in_flight.push((at(), ep.active() as i64));
                if u.cfg.health_check.is_some() {
                    let (passed, failed) = h.probes();
                    probes.push((with("result", "pass"), passed));
                    probes.push((with("result", "fail"), failed));
                }
                open.push((with("state", h.state(now).as_str()), 1i64));
                let t = h.transitions();
                for (to, n) in [
                    ("open", t.opened),
                    ("half_open", t.half_opened),
                    ("closed", t.closed),
                ] {
                    transitions.push((with("to", to), n));
                }
            }
            pools.push(u);
        }
        counter(
            e,
            "flowgate_upstream_outcomes",
            "Answers (and failures to answer) of each endpoint; 429s with Retry-After count as successes",
            outcomes,
        )?;
        counter(
            e,
            "flowgate_upstream_probes",
            "Active health checks of each endpoint, by result",
            probes,
        )?;
        gauge(
            e,
            "flowgate_upstream_in_flight",
            "Requests in flight on each endpoint",
            in_flight,
        )?;
        gauge(
            e,
            "flowgate_upstream_breaker_state",
            "1 for each endpoint's state (closed, open, half_open, throttled; down: failed its health checks)",
            open,
        )?;
        counter(
            e,
            "flowgate_upstream_breaker_transitions",
            "Breaker transitions of each endpoint, by the state entered (to=open: ejections)",
            transitions,
        )?;
        let per_pool = |pick: fn(&crate::upstream::ResilienceCounts) -> u64| {
            pools
                .iter()
                .map(|u| (vec![("pool", &*u.name)], pick(&u.counts)))
                .collect::<Vec<_>>()
        };
        counter(
            e,
            "flowgate_retries",
            "Attempts sent again after a failure",
            per_pool(|c| c.retries.load(Ordering::Relaxed)),
        )?;
        counter(
            e,
            "flowgate_retry_budget_exhausted",
            "Retries and hedges not sent because the pool's retry budget was spent",
            pools
                .iter()
                .map(|u| {
                    (
                        vec![("pool", &*u.name)],
                        u.budget.counts(u.balancer().now_ns()).2,
                    )
                })
                .collect(),
        )?;
        counter(
            e,
            "flowgate_hedges",
            "Second attempts sent because the first had not answered in time",
            per_pool(|c| c.hedges.load(Ordering::Relaxed)),
        )?;
        counter(
            e,
            "flowgate_hedges_won",
            "Hedged attempts whose answer was the one taken",
            per_pool(|c| c.hedges_won.load(Ordering::Relaxed)),
        )?;
        counter(
            e,
            "flowgate_fallbacks",
            "Requests that fell back to this pool from an earlier one in their route's chain",
            per_pool(|c| c.fallbacks.load(Ordering::Relaxed)),
        )?;
        let sessions: Vec<_> = pools
            .iter()
            .filter_map(|u| Some((&*u.name, u.sessions.as_ref()?.counts())))
            .collect();
        let of = |f: fn(&flowgate_balance::SessionCounts) -> u64| {
            sessions
                .iter()
                .map(|(p, c)| (vec![("pool", *p)], f(c)))
                .collect::<Vec<_>>()
        };
        gauge(
            e,
            "flowgate_sessions",
            "Sessions bound to an endpoint (pools with affinity)",
            of(|c| c.active as u64)
                .into_iter()
                .map(|(l, n)| (l, n as i64))
                .collect(),
        )?;
        counter(
            e,
            "flowgate_session_moves",
            "Sessions moved to another endpoint because theirs could not take them",
            of(|c| c.moved),
        )?;
        counter(
            e,
            "flowgate_sessions_expired",
            "Sessions forgotten after their idle timeout",
            of(|c| c.expired),
        )?;
        counter(
            e,
            "flowgate_sessions_over_cap",
            "New sessions placed on an endpoint over its cap because every endpoint was full",
            of(|c| c.overflow),
        )
    }
}
