//! The gateway's metrics history ([`flowgate_telemetry::history`]): opened at start from
//! `[history]`, fed by the request records (a sink) and by probes of what the gateway
//! holds — the process's CPU, memory, descriptors and threads, the workers' event-loop
//! lag, the host's CPU, requests in flight, each pool's usable endpoints, whether Redis
//! answers — sampled by a control-plane task at every second of the wall clock (points
//! are written as each 10 s, minute and hour ends), the alert rules evaluated right
//! after.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use flowgate_clock::SharedClock;
use flowgate_telemetry::history::{History, HistorySettings, Sample};
use flowgate_telemetry::process::ProcFs;
use tokio::sync::watch;

use crate::gateway::Gateway;

/// The history `config` names, opened at `now`; `None` when it is off or cannot be opened
/// (said in the log: the gateway serves without it).
pub(crate) fn open(config: &flowgate_config::HistoryConfig, now: u64) -> Option<History> {
    if !config.enabled {
        return None;
    }
    let settings = HistorySettings {
        path: config.path.clone(),
        retention: config.retention,
    };
    match History::open(settings, now) {
        Ok((h, moved)) => {
            if let Some(m) = moved {
                tracing::error!(
                    history = ?config.path,
                    moved_to = %m.to.display(),
                    error = %m.why,
                    "the metrics history could not be opened: it was moved aside and a new one started"
                );
            }
            Some(h)
        }
        Err(e) => {
            tracing::error!(error = %e, "no metrics history");
            None
        }
    }
}

/// The process's and host's levels at each tick.
fn process_probe() -> flowgate_telemetry::history::Probe {
    let fs = ProcFs::default();
    let last: Mutex<Option<(f64, u64, u64)>> = Mutex::new(None);
    Box::new(move || {
        let s = fs.read_stats();
        let mut out = Vec::new();
        let mut gauge = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push((name.to_string(), Sample::Gauge(v)));
            }
        };
        gauge(
            "process_resident_memory_bytes",
            s.resident_bytes.map(|v| v as f64),
        );
        gauge("process_open_fds", s.open_fds.map(|v| v as f64));
        gauge("process_threads", s.threads.map(|v| v as f64));
        gauge(
            "cgroup_memory_usage_bytes",
            s.cgroup_usage_bytes.map(|v| v as f64),
        );
        gauge(
            "host_memory_available_bytes",
            s.host_memory_available_bytes.map(|v| v as f64),
        );
        let lag = flowgate_http::server::workers::event_loop_lags()
            .into_iter()
            .max()
            .map(|d| d.as_secs_f64() * 1e3);
        gauge("event_loop_lag_ms", lag);
        // Memory against the limit that binds: the cgroup's, else the host's.
        if let (Some(rss), Some(limit)) = (
            s.resident_bytes,
            s.cgroup_limit_bytes.or(s.host_memory_total_bytes),
        ) {
            out.push((
                "memory_ratio".to_string(),
                Sample::Ratio(rss as f64, limit as f64),
            ));
        }
        if let (Some(cpu), Some(busy), Some(total)) =
            (s.cpu_seconds, s.host_cpu_busy_ticks, s.host_cpu_total_ticks)
            && let Ok(mut last) = last.lock()
        {
            if let Some((c0, b0, t0)) = *last {
                // CPU seconds a second: cores used.
                out.push((
                    "process_cpu_cores".to_string(),
                    Sample::Amount {
                        amount: (cpu - c0).max(0.0),
                        per: 1.0,
                    },
                ));
                // The same over the host's cores: 1 is every core busy with flowgate.
                if let Some(cpus) = s.host_cpus.filter(|c| *c > 0) {
                    out.push((
                        "process_cpu_ratio".to_string(),
                        Sample::Amount {
                            amount: (cpu - c0).max(0.0),
                            per: 1.0 / cpus as f64,
                        },
                    ));
                }
                out.push((
                    "host_cpu_ratio".to_string(),
                    Sample::Ratio(
                        busy.saturating_sub(b0) as f64,
                        total.saturating_sub(t0) as f64,
                    ),
                ));
            }
            *last = Some((cpu, busy, total));
        }
        out
    })
}

/// What the gateway holds: in flight, usable endpoints per pool, Redis. Holds the gateway
/// weakly (the history must not keep it alive).
fn gateway_probe(gw: Weak<Gateway>) -> flowgate_telemetry::history::Probe {
    Box::new(move || {
        let Some(gw) = gw.upgrade() else {
            return Vec::new();
        };
        let mut out = vec![(
            "requests_in_flight".to_string(),
            Sample::Gauge(gw.telemetry().metrics().in_flight.get() as f64),
        )];
        let rt = gw.runtime();
        for u in rt.upstreams.iter() {
            let b = u.balancer();
            let now = b.now_ns();
            let usable = b.health().iter().filter(|h| !h.is_out(now)).count();
            let label = flowgate_telemetry::history::label("pool", &u.name);
            out.push((
                format!("upstream_usable_endpoints{label}"),
                Sample::Gauge(usable as f64),
            ));
            out.push((
                format!("upstream_usable_ratio{label}"),
                Sample::Ratio(usable as f64, u.endpoints().len() as f64),
            ));
        }
        if let Some(r) = gw.cache().and_then(|c| c.stats().redis) {
            out.push((
                "redis_up{link=\"cache\"}".to_string(),
                Sample::Gauge(if r.open { 0.0 } else { 1.0 }),
            ));
        }
        out
    })
}

/// Samples the history at every second of the wall clock until `stopped`.
pub(crate) fn spawn_writer(
    gw: &Arc<Gateway>,
    clock: SharedClock,
    mut stopped: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let history = gw.history()?.clone();
    history.add_probe(process_probe());
    history.add_probe(gateway_probe(Arc::downgrade(gw)));
    let telemetry = gw.telemetry().clone();
    let weak = Arc::downgrade(gw);
    Some(tokio::spawn(async move {
        loop {
            let now_ms = clock.unix_millis();
            let next = (now_ms / 1000 + 1) * 1000;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(next - now_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            telemetry.flush();
            let h = history.clone();
            let end = next / 1000;
            let written = tokio::task::spawn_blocking(move || h.tick(end)).await;
            match written {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the metrics history could not be written")
                }
                Err(e) => tracing::warn!(error = %e, "the metrics history's writer failed"),
                Ok(Ok(_)) => {}
            }
            let Some(gw) = weak.upgrade() else { break };
            gw.alerting()
                .evaluate(&history, &gw.spending().budgets().load(), end);
        }
    }))
}
