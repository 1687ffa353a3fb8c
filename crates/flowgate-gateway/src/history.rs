//! The gateway's metrics history ([`flowgate_telemetry::history`]): opened at start from
//! `[history]`, fed by the request records (a sink) and by probes: the process's CPU,
//! memory, descriptors and threads, the workers' event-loop lag and the host's CPU here;
//! what the gateway holds in `history_writer.rs`, whose task samples it every second.

use std::sync::Mutex;

use flowgate_telemetry::history::{History, HistorySettings, Sample};
use flowgate_telemetry::process::ProcFs;

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
pub(crate) fn process_probe() -> flowgate_telemetry::history::Probe {
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
