//! The cache's Prometheus families, read from its counters at each scrape (they live in the
//! cache, which knows nothing of Prometheus). Served in `/metrics` with every other family
//! and alone at `/api/v1/performance/cache/metrics`.

use std::sync::Arc;

use flowgate_cache::{Cache, CategorySnapshot, StatsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Encodes the cache's families.
#[derive(Debug, Clone)]
pub struct CacheCollector(pub Arc<Cache>);

impl CacheCollector {
    /// The exposition of the cache's families alone.
    pub fn encode_text(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One family: its samples, each with its labels (one sample without labels for a
/// family of one value). A family without samples is left out.
pub(crate) fn family<N, M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Vec<(Vec<(&str, &str)>, N)>,
    metric: fn(N) -> M,
) -> Result<(), std::fmt::Error> {
    let samples: Vec<_> = samples.into_iter().map(|(l, n)| (l, metric(n))).collect();
    let Some((_, first)) = samples.first() else {
        return Ok(());
    };
    let mut m = e.encode_descriptor(name, help, None, first.metric_type())?;
    if let [(labels, metric)] = samples.as_slice()
        && labels.is_empty()
    {
        return metric.encode(m);
    }
    for (labels, metric) in &samples {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// One sample per category, of what `f` reads from it.
fn by_category<N>(
    categories: &[CategorySnapshot],
    f: impl Fn(&CategorySnapshot) -> N,
) -> Vec<(Vec<(&'static str, &str)>, N)> {
    categories
        .iter()
        .map(|c| (vec![("category", c.name.as_str())], f(c)))
        .collect()
}

/// A family of one value.
pub(crate) fn one<N>(n: N) -> Vec<(Vec<(&'static str, &'static str)>, N)> {
    vec![(Vec::new(), n)]
}

pub(crate) fn counter<N: EncodeCounterValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Vec<(Vec<(&str, &str)>, N)>,
) -> Result<(), std::fmt::Error> {
    family(e, name, help, samples, ConstCounter::new)
}

pub(crate) fn gauge<N: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Vec<(Vec<(&str, &str)>, N)>,
) -> Result<(), std::fmt::Error> {
    family(e, name, help, samples, ConstGauge::new)
}

impl Collector for CacheCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s: StatsSnapshot = self.0.stats();
        let e = &mut e;
        let tier = |t: &'static str| vec![("tier", t)];
        let mut hits = vec![(tier("memory"), s.hits_memory)];
        if s.redis.is_some() {
            hits.push((tier("redis"), s.hits_redis));
        }
        if s.disk.is_some() {
            hits.push((tier("disk"), s.hits_disk));
        }
        counter(e, "flowgate_cache_hits", "Answers from each tier", hits)?;
        counter(
            e,
            "flowgate_cache_stale",
            "Answers served past their TTL, within their stale window",
            one(s.stale),
        )?;
        counter(
            e,
            "flowgate_cache_misses",
            "Lookups no tier answered",
            one(s.misses),
        )?;
        counter(
            e,
            "flowgate_cache_misses_expired",
            "Misses of answers the cache had kept, after they expired",
            one(s.misses_expired),
        )?;
        counter(
            e,
            "flowgate_cache_misses_dropped",
            "Misses of answers dropped while still servable (evicted for room, or invalidated)",
            one(s.misses_dropped),
        )?;
        counter(
            e,
            "flowgate_cache_coalesced",
            "Requests that waited for an identical one already upstream",
            one(s.coalesced),
        )?;
        counter(
            e,
            "flowgate_cache_bypass",
            "Requests on cache routes the cache could not serve (not cacheable, no-store)",
            one(s.bypass),
        )?;
        counter(e, "flowgate_cache_stored", "Answers stored", one(s.stored))?;
        counter(
            e,
            "flowgate_cache_not_stored",
            "Answers too large or with a zero TTL",
            one(s.not_stored),
        )?;
        counter(
            e,
            "flowgate_cache_refreshes",
            "Background refreshes (stale serves and refresh-ahead)",
            one(s.refreshes),
        )?;
        counter(
            e,
            "flowgate_cache_tokens_saved",
            "Prompt and completion tokens answered from the cache",
            one(s.tokens_saved),
        )?;
        counter(
            e,
            "flowgate_cache_usd_saved",
            "What the answers from the cache would have cost upstream (priced models)",
            one(s.usd_saved),
        )?;
        let mut entries = vec![(tier("memory"), s.entries as i64)];
        let mut bytes = vec![(tier("memory"), s.bytes as i64)];
        let mut evictions = vec![(tier("memory"), s.evictions)];
        let mut ratio = Vec::new();
        if let Some(d) = &s.disk {
            entries.push((tier("disk"), d.entries as i64));
            bytes.push((tier("disk"), d.bytes as i64));
            evictions.push((tier("disk"), d.evictions));
            ratio.push((tier("disk"), d.compression_ratio()));
        }
        if let Some(r) = &s.redis {
            ratio.push((tier("redis"), r.compression_ratio()));
        }
        gauge(e, "flowgate_cache_entries", "Entries held", entries)?;
        gauge(e, "flowgate_cache_bytes", "Bytes held", bytes)?;
        counter(
            e,
            "flowgate_cache_evictions",
            "Entries dropped to stay within the size bound",
            evictions,
        )?;
        gauge(
            e,
            "flowgate_cache_compression_ratio",
            "Raw body bytes per stored byte",
            ratio,
        )?;
        if let Some(r) = &s.redis {
            counter(
                e,
                "flowgate_cache_redis_errors",
                "Redis operations that failed or timed out",
                one(r.errors + r.timeouts),
            )?;
            gauge(
                e,
                "flowgate_cache_redis_breaker_open",
                "1 while the breaker keeps requests away from Redis",
                one(i64::from(r.open)),
            )?;
        }
        counter(
            e,
            "flowgate_cache_category_hits",
            "Answers from the cache (stale ones included) by TTL category",
            by_category(&s.categories, |c| c.hits + c.stale),
        )?;
        counter(
            e,
            "flowgate_cache_category_misses",
            "Lookups no tier answered by TTL category",
            by_category(&s.categories, |c| c.misses),
        )?;
        counter(
            e,
            "flowgate_cache_category_misses_expired",
            "Misses of answers that had expired, by TTL category",
            by_category(&s.categories, |c| c.misses_expired),
        )?;
        counter(
            e,
            "flowgate_cache_category_tokens_saved",
            "Tokens answered from the cache by TTL category",
            by_category(&s.categories, |c| c.tokens_saved),
        )?;
        counter(
            e,
            "flowgate_cache_category_usd_saved",
            "Dollars saved by TTL category",
            by_category(&s.categories, |c| c.usd_saved),
        )?;
        Ok(())
    }
}
