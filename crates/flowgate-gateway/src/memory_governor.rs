//! The memory governor (`[memory]`, docs/observability.md): a control-plane task reads
//! the process's resident memory every `interval` against the limit (`limit`, or the
//! cgroup's), moves the pressure level ([`flowgate_telemetry::memory::Pressure`]) and takes
//! or undoes each level's step: shrink the memory cache to half, stop cache fills, shed
//! requests of `shed_priority` and lower (503 `memory_pressure` with `Retry-After`). Each
//! step is logged and counted; the level is a metric and a series of the history, for
//! rules to watch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flowgate_config::{MemoryConfig, MemoryLimit, Priority};
use flowgate_telemetry::memory::{Pressure, PressureLevel};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::cache_metrics::{counter, gauge, one};
use crate::error::ProxyError;
use flowgate_cache::Cache;

/// The level in force and what the governor did (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct Governor {
    level: PressureLevel,
    /// Requests refused at the shed level.
    shed: AtomicU64,
    /// Steps taken and undone: shrink, no_fill, shed.
    steps: Mutex<[(u64, u64); 3]>,
    /// The last reading: resident bytes and the limit (0: none).
    reading: Mutex<(u64, u64)>,
}

impl Governor {
    pub(crate) fn level(&self) -> Pressure {
        self.level.get()
    }

    /// The last reading: resident bytes, and the limit judged against (none: off).
    pub(crate) fn reading(&self) -> (u64, Option<u64>) {
        let (rss, limit) = self.reading.lock().map(|r| *r).unwrap_or_default();
        (rss, (limit > 0).then_some(limit))
    }

    /// Stage 2b: at the shed level, a request of `priority` at or under the configured
    /// one is refused before its body is read.
    pub(crate) fn admit(
        &self,
        priority: Priority,
        config: &MemoryConfig,
    ) -> Result<(), ProxyError> {
        if self.level.get() == Pressure::Shed && priority >= config.shed_priority {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::MemoryPressure {
                priority,
                retry_after: config.retry_after,
            });
        }
        Ok(())
    }

    /// The governor's families, encoded at each scrape.
    pub(crate) fn collector(self: &Arc<Self>) -> GovernorCollector {
        GovernorCollector(self.clone())
    }
}

/// The limit memory is judged against: the configured one, or the cgroup's.
pub(crate) fn limit_of(config: &MemoryConfig, cgroup: Option<u64>) -> Option<u64> {
    match config.limit {
        MemoryLimit::Off => None,
        MemoryLimit::Bytes(b) => Some(b),
        MemoryLimit::Auto => cgroup,
    }
}

impl Governor {
    /// One reading: `rss` against `limit`; the level moved and its steps taken or undone on
    /// `cache`.
    pub(crate) fn step(
        &self,
        cache: Option<&Cache>,
        config: &MemoryConfig,
        rss: u64,
        limit: Option<u64>,
    ) {
        let g = self;
        if let Ok(mut r) = g.reading.lock() {
            *r = (rss, limit.unwrap_or(0));
        }
        let was = g.level.get();
        let now = match limit {
            Some(l) if l > 0 => {
                let percent = rss as f64 * 100.0 / l as f64;
                was.next(percent, config.levels, config.recover)
            }
            // No limit (any more): every step undone.
            _ => Pressure::Normal,
        };
        if now == was {
            return;
        }
        g.level.set(now);
        let mib = |b: u64| b / (1024 * 1024);
        let percent = limit.map_or(0.0, |l| rss as f64 * 100.0 / l.max(1) as f64);
        for p in [Pressure::Shrink, Pressure::NoFill, Pressure::Shed] {
            let on = now >= p && was < p;
            let off = now < p && was >= p;
            if !(on || off) {
                continue;
            }
            if let Ok(mut s) = g.steps.lock() {
                let c = &mut s[p as usize - 1];
                if on {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
            }
            let what = match p {
                Pressure::Shrink => {
                    let removed = cache.map_or(0, |c| c.shrink_memory(on));
                    if on {
                        format!("memory cache held at half its size ({removed} entries removed)")
                    } else {
                        "memory cache may grow again".into()
                    }
                }
                Pressure::NoFill => {
                    if let Some(c) = cache {
                        c.pause_fills(on);
                    }
                    if on {
                        "cache fills stopped".into()
                    } else {
                        "cache fills resumed".into()
                    }
                }
                _ => {
                    if on {
                        format!(
                            "shedding {} and lower priority requests",
                            config.shed_priority.as_str()
                        )
                    } else {
                        "no more shedding".into()
                    }
                }
            };
            if on {
                tracing::warn!(
                    step = p.as_str(),
                    rss_mib = mib(rss),
                    limit_mib = limit.map(mib),
                    "memory pressure at {percent:.0}%: {what}"
                );
            } else {
                tracing::info!(
                    step = p.as_str(),
                    rss_mib = mib(rss),
                    limit_mib = limit.map(mib),
                    "memory pressure down to {percent:.0}%: {what}"
                );
            }
        }
    }
}

/// See [`Governor::collector`].
#[derive(Debug)]
pub(crate) struct GovernorCollector(Arc<Governor>);

impl Collector for GovernorCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let g = &self.0;
        gauge(
            e,
            "flowgate_memory_pressure_level",
            "The memory governor's level: 0 normal, 1 memory cache shrunk, 2 cache fills stopped, 3 shedding",
            one(g.level.get() as i64),
        )?;
        let (_, limit) = g.reading();
        gauge(
            e,
            "flowgate_memory_limit_bytes",
            "The memory limit the governor judges resident memory against (0: none)",
            one(limit.unwrap_or(0) as i64),
        )?;
        let steps = g.steps.lock().map(|s| *s).unwrap_or_default();
        let mut samples = Vec::new();
        for (i, name) in ["shrink", "no_fill", "shed"].into_iter().enumerate() {
            samples.push((vec![("step", name), ("direction", "taken")], steps[i].0));
            samples.push((vec![("step", name), ("direction", "undone")], steps[i].1));
        }
        counter(
            e,
            "flowgate_memory_governor_steps",
            "Steps the memory governor took and undid",
            samples,
        )?;
        counter(
            e,
            "flowgate_memory_shed_requests",
            "Requests refused (503 memory_pressure) at the shed level",
            one(g.shed.load(Ordering::Relaxed)),
        )
    }
}
