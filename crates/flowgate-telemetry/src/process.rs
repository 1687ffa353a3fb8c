//! The process's and the host's own numbers, read from `/proc` and the cgroup files (Linux;
//! elsewhere every field is absent): CPU time, resident memory, open file descriptors and
//! their limit, threads, start time; the cgroup's memory limit and use when there is one;
//! the host's CPU use and available memory. Read on the control plane, by the exporter
//! and the history's sampler; a file that cannot be read leaves its field out, never fails.

use std::path::Path;

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU seconds since the process started.
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
    /// Unix seconds.
    pub start_time: Option<f64>,
    /// The cgroup's memory limit (none when unlimited) and its current use.
    pub cgroup_limit_bytes: Option<u64>,
    pub cgroup_usage_bytes: Option<u64>,
    /// The host's CPU ticks busy and in all, since boot (their change over a period is the
    /// host's CPU use in it), its cores, and its memory.
    pub host_cpu_busy_ticks: Option<u64>,
    pub host_cpu_total_ticks: Option<u64>,
    pub host_cpus: Option<u64>,
    pub host_memory_total_bytes: Option<u64>,
    pub host_memory_available_bytes: Option<u64>,
}

/// Where the files are: `/` in production, a directory of fixtures in tests.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: std::path::PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs { root: "/".into() }
    }
}

/// Kernel clock ticks a second (`sysconf(_SC_CLK_TCK)`: 100 on every Linux flowgate runs on).
const TICKS: f64 = 100.0;
const PAGE: u64 = 4096;

impl ProcFs {
    pub fn at(root: impl Into<std::path::PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    /// This host's name (`host.name` in spans, the sender of alerts).
    pub fn host_name(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("proc/sys/kernel/hostname"))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    }

    /// Everything, now.
    pub fn read_stats(&self) -> ProcessStats {
        let mut s = ProcessStats::default();
        if let Some(stat) = self.read("proc/self/stat") {
            // The fields after the command (which may hold spaces and parentheses).
            let rest: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            // rest[0] is field 3 (state): field N is rest[N - 3].
            let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(u), Some(k)) = (field(14), field(15)) {
                s.cpu_seconds = Some((u + k) as f64 / TICKS);
            }
            s.threads = field(20);
            s.virtual_bytes = field(23);
            s.resident_bytes = field(24).map(|p| p * PAGE);
            if let (Some(start), Some(boot)) = (field(22), self.boot_time()) {
                s.start_time = Some(boot as f64 + start as f64 / TICKS);
            }
        }
        s.open_fds = std::fs::read_dir(self.root.join("proc/self/fd"))
            .ok()
            .map(|d| d.count() as u64);
        s.max_fds = self.read("proc/self/limits").and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
        (s.cgroup_limit_bytes, s.cgroup_usage_bytes) = self.cgroup_memory();
        if let Some(stat) = self.read("proc/stat")
            && let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu "))
        {
            let t: Vec<u64> = cpu
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest is in user already).
            let total: u64 = t.iter().take(8).sum();
            let idle = t.get(3).copied().unwrap_or(0) + t.get(4).copied().unwrap_or(0);
            s.host_cpu_total_ticks = Some(total);
            s.host_cpu_busy_ticks = Some(total.saturating_sub(idle));
            s.host_cpus = Some(
                stat.lines()
                    .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                    .count() as u64,
            );
        }
        if let Some(m) = self.read("proc/meminfo") {
            let kib = |name: &str| {
                m.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|k| k * 1024)
            };
            s.host_memory_total_bytes = kib("MemTotal:");
            s.host_memory_available_bytes = kib("MemAvailable:");
        }
        s
    }

    fn boot_time(&self) -> Option<u64> {
        self.read("proc/stat")?
            .lines()
            .find(|l| l.starts_with("btime "))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// The memory limit and use of the cgroup: v2 (`memory.max`, `memory.current`), else
    /// v1 (`memory/memory.limit_in_bytes`, a huge number when unlimited).
    fn cgroup_memory(&self) -> (Option<u64>, Option<u64>) {
        let num = |rel: &str| self.read(rel).and_then(|v| v.trim().parse::<u64>().ok());
        if Path::new(&self.root.join("sys/fs/cgroup/memory.max")).exists() {
            return (
                num("sys/fs/cgroup/memory.max"),
                num("sys/fs/cgroup/memory.current"),
            );
        }
        let limit = num("sys/fs/cgroup/memory/memory.limit_in_bytes")
            // "Unlimited" in v1 is the largest page-aligned i64.
            .filter(|l| *l < (1 << 62));
        (limit, num("sys/fs/cgroup/memory/memory.usage_in_bytes"))
    }
}

/// Each data-plane worker's event-loop lag, by worker.
pub type Lags = Box<dyn Fn() -> Vec<std::time::Duration> + Send + Sync>;

/// The process families for `/metrics`, read at each scrape: the names Prometheus's own
/// client libraries use (`process_*`), so that dashboards made for them work; the host's
/// and the cgroup's; and the workers' event-loop lag (`lags`).
pub struct ProcessCollector {
    pub fs: ProcFs,
    pub lags: Lags,
}

impl std::fmt::Debug for ProcessCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCollector")
            .field("fs", &self.fs)
            .finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let s = self.fs.read_stats();
        let gauges: [(&str, &str, Option<f64>); 11] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "The limit of open file descriptors",
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Threads of the process",
                s.threads.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                s.start_time,
            ),
            (
                "flowgate_cgroup_memory_limit_bytes",
                "The memory limit of the process's cgroup (absent when unlimited)",
                s.cgroup_limit_bytes.map(|v| v as f64),
            ),
            (
                "flowgate_cgroup_memory_usage_bytes",
                "The memory the process's cgroup uses",
                s.cgroup_usage_bytes.map(|v| v as f64),
            ),
            (
                "flowgate_host_cpus",
                "The host's CPUs",
                s.host_cpus.map(|v| v as f64),
            ),
            (
                "flowgate_host_memory_bytes",
                "The host's memory",
                s.host_memory_total_bytes.map(|v| v as f64),
            ),
            (
                "flowgate_host_memory_available_bytes",
                "The host's memory available for new work",
                s.host_memory_available_bytes.map(|v| v as f64),
            ),
        ];
        if let Some(cpu) = s.cpu_seconds {
            let m = ConstCounter::new(cpu);
            m.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                m.metric_type(),
            )?)?;
        }
        for (name, help, v) in gauges {
            if let Some(v) = v {
                let m = ConstGauge::new(v);
                m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)?;
            }
        }
        for (name, help, v) in [
            (
                "flowgate_host_cpu_busy_ticks",
                "The host's CPU time busy since boot, in ticks of 1/100 s",
                s.host_cpu_busy_ticks,
            ),
            (
                "flowgate_host_cpu_ticks",
                "The host's CPU time since boot, in ticks of 1/100 s",
                s.host_cpu_total_ticks,
            ),
        ] {
            if let Some(v) = v {
                let m = ConstCounter::new(v);
                m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)?;
            }
        }
        let lags = (self.lags)();
        if !lags.is_empty() {
            let mut family = e.encode_descriptor(
                "flowgate_worker_event_loop_lag_seconds",
                "How late a timer due every 100 ms last fired on each data-plane worker",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (i, lag) in lags.iter().enumerate() {
                let worker = i.to_string();
                let labels = [("worker", worker.as_str())];
                ConstGauge::new(lag.as_secs_f64()).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc` and cgroup tree with known numbers.
    fn fixture(cgroup_v2: bool) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!(
            "flowgate-procfs-{}-{cgroup_v2}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let w = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // Fields: 14 utime 250, 15 stime 50, 20 threads 7, 22 starttime 1000, 23 vsize,
        // 24 rss 2560 pages. The command holds a space and a parenthesis.
        w(
            "proc/self/stat",
            "42 (flow gate) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
             104857600 2560 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0",
        );
        w(
            "proc/stat",
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n\
             cpu1 50 0 25 400 25 0 0 0 0 0\nbtime 1700000000\n",
        );
        w(
            "proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            65536                65536                files\n",
        );
        w(
            "proc/meminfo",
            "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   12000000 kB\n",
        );
        for fd in 0..3 {
            w(&format!("proc/self/fd/{fd}"), "");
        }
        if cgroup_v2 {
            w("sys/fs/cgroup/memory.max", "536870912\n");
            w("sys/fs/cgroup/memory.current", "104857600\n");
        } else {
            w(
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            );
            w("sys/fs/cgroup/memory/memory.usage_in_bytes", "104857600\n");
        }
        root
    }

    #[test]
    fn the_process_and_host_are_read_from_proc_and_the_cgroup() {
        let root = fixture(true);
        let s = ProcFs::at(&root).read_stats();
        assert_eq!(s.cpu_seconds, Some(3.0));
        assert_eq!(s.threads, Some(7));
        assert_eq!(s.resident_bytes, Some(2560 * 4096));
        assert_eq!(s.virtual_bytes, Some(104_857_600));
        assert_eq!(s.start_time, Some(1_700_000_010.0));
        assert_eq!((s.open_fds, s.max_fds), (Some(3), Some(65536)));
        assert_eq!(s.cgroup_limit_bytes, Some(512 << 20));
        assert_eq!(s.cgroup_usage_bytes, Some(100 << 20));
        assert_eq!(
            (s.host_cpu_busy_ticks, s.host_cpu_total_ticks),
            (Some(150), Some(1000))
        );
        assert_eq!(s.host_cpus, Some(2));
        assert_eq!(s.host_memory_available_bytes, Some(12_000_000 * 1024));
        let _ = std::fs::remove_dir_all(&root);
        // cgroup v1, unlimited: no limit.
        let root = fixture(false);
        let s = ProcFs::at(&root).read_stats();
        assert_eq!(
            (s.cgroup_limit_bytes, s.cgroup_usage_bytes),
            (None, Some(100 << 20))
        );
        let _ = std::fs::remove_dir_all(&root);
        // Nothing there: nothing said, nothing failed.
        assert_eq!(
            ProcFs::at("/nonexistent").read_stats(),
            ProcessStats::default()
        );
    }

    #[test]
    fn this_process_is_read_on_linux() {
        let s = ProcFs::default().read_stats();
        assert!(s.resident_bytes.is_some_and(|r| r > 1 << 20), "{s:?}");
        assert!(s.threads.is_some_and(|t| t >= 1));
        assert!(s.open_fds.is_some_and(|f| f >= 3));
        assert!(s.cpu_seconds.is_some());
    }
}
