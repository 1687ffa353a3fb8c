//! The memory governor (`[memory]`): the limit flowgate keeps its resident memory under,
//! and the pressure levels at which it acts — shrink the memory cache, stop filling the
//! cache, shed low-priority requests — each undone once memory falls `recover` points
//! under its level.

use std::time::Duration;

use serde::Deserialize;

use crate::Priority;
use crate::error::{Found, KeyPath};
use crate::units::HumanDuration;

/// `[memory]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMemory {
    /// `"auto"` (the default), `"off"`, or a size.
    pub limit: Option<toml::Value>,
    pub shrink_at: Option<f64>,
    pub no_fill_at: Option<f64>,
    pub shed_at: Option<f64>,
    pub recover: Option<f64>,
    pub shed_priority: Option<String>,
    pub interval: Option<HumanDuration>,
    pub retry_after: Option<HumanDuration>,
}

/// The limit memory is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The cgroup's memory limit when flowgate runs under one (a container), else none.
    Auto,
    Off,
    Bytes(u64),
}

/// The memory governor.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    pub limit: MemoryLimit,
    /// Percent of the limit at which each step is taken: shrink the memory cache, stop
    /// cache fills, shed requests.
    pub levels: [f64; 3],
    /// Points under a level before its step is undone.
    pub recover: f64,
    /// Requests this urgent or less are shed at the last level.
    pub shed_priority: Priority,
    /// How often memory is read.
    pub interval: Duration,
    /// What a shed request is told to wait.
    pub retry_after: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            limit: MemoryLimit::Auto,
            levels: [70.0, 85.0, 95.0],
            recover: 5.0,
            shed_priority: Priority::Low,
            interval: Duration::from_secs(1),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl MemoryConfig {
    /// One line for `flowgate check`.
    pub fn summary(&self) -> String {
        let limit = match self.limit {
            MemoryLimit::Off => return "  memory governor: off\n".into(),
            MemoryLimit::Auto => "the cgroup's limit (none: off)".to_string(),
            MemoryLimit::Bytes(b) => format!("{} MiB", b / (1024 * 1024)),
        };
        let [a, b, c] = self.levels;
        format!(
            "  memory governor: limit {limit}; shrink the memory cache at {a}%, stop cache fills at {b}%, shed {} and lower at {c}%; undone {}% under\n",
            self.shed_priority.as_str(),
            self.recover
        )
    }
}

pub(crate) fn memory(raw: Option<&RawMemory>, key: &KeyPath, found: &mut Found) -> MemoryConfig {
    let d = MemoryConfig::default();
    let Some(raw) = raw else {
        return d;
    };
    let limit = match &raw.limit {
        None => MemoryLimit::Auto,
        Some(toml::Value::String(s)) if s == "auto" => MemoryLimit::Auto,
        Some(toml::Value::String(s)) if s == "off" => MemoryLimit::Off,
        Some(toml::Value::String(s)) => match crate::units::parse_size(s) {
            Some(b) if b >= 16 * 1024 * 1024 => MemoryLimit::Bytes(b),
            Some(_) => {
                found.push((
                    key.clone().key("limit"),
                    format!("{s:?} is too small: at least 16MiB"),
                ));
                d.limit
            }
            None => {
                found.push((
                    key.clone().key("limit"),
                    format!("{s:?}: expected \"auto\", \"off\" or a size such as \"512MiB\""),
                ));
                d.limit
            }
        },
        Some(v) => {
            found.push((
                key.clone().key("limit"),
                format!("{v}: expected \"auto\", \"off\" or a size such as \"512MiB\""),
            ));
            d.limit
        }
    };
    let mut levels = d.levels;
    for (i, (name, v)) in [
        ("shrink_at", raw.shrink_at),
        ("no_fill_at", raw.no_fill_at),
        ("shed_at", raw.shed_at),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = v {
            if !(v > 0.0 && v <= 100.0) {
                found.push((
                    key.clone().key(name),
                    format!("{v} is out of range: a percent above 0, at most 100"),
                ));
            } else {
                levels[i] = v;
            }
        }
    }
    if !(levels[0] < levels[1] && levels[1] < levels[2]) {
        // Said at the first level written (the defaults did not clash by themselves).
        let written = [
            ("shrink_at", raw.shrink_at),
            ("no_fill_at", raw.no_fill_at),
            ("shed_at", raw.shed_at),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some())
        .map_or("no_fill_at", |(n, _)| n);
        found.push((
            key.clone().key(written),
            format!(
                "the levels must rise: shrink_at ({}) < no_fill_at ({}) < shed_at ({})",
                levels[0], levels[1], levels[2]
            ),
        ));
    }
    let recover = raw.recover.unwrap_or(d.recover);
    if !(recover > 0.0 && recover < levels[0]) {
        found.push((
            key.clone().key("recover"),
            format!(
                "{recover} is out of range: points above 0 and under shrink_at ({})",
                levels[0]
            ),
        ));
    }
    let shed_priority = match raw.shed_priority.as_deref() {
        None => d.shed_priority,
        Some(p) => match Priority::parse(p) {
            Some(Priority::Critical) => {
                found.push((
                    key.clone().key("shed_priority"),
                    "critical requests are never shed: use \"high\", \"normal\" or \"low\"".into(),
                ));
                d.shed_priority
            }
            Some(p) => p,
            None => {
                found.push((
                    key.clone().key("shed_priority"),
                    format!("{p:?}: expected \"high\", \"normal\" or \"low\""),
                ));
                d.shed_priority
            }
        },
    };
    let interval = raw.interval.map_or(d.interval, |h| h.0);
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(60) {
        found.push((
            key.clone().key("interval"),
            "out of range: from 100ms to 1m".into(),
        ));
    }
    let retry_after = raw.retry_after.map_or(d.retry_after, |h| h.0);
    if retry_after < Duration::from_secs(1) {
        found.push((key.clone().key("retry_after"), "at least 1s".into()));
    }
    MemoryConfig {
        limit,
        levels,
        recover,
        shed_priority,
        interval,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[pools.llm]\nendpoints = [{ url = \"http://127.0.0.1:18081\" }]\n\n\
                        [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"llm\"\n";

    fn parse(extra: &str) -> Result<crate::Config, Vec<crate::Problem>> {
        crate::parse(
            &format!("{extra}\n{BASE}"),
            "flowgate.toml",
            std::iter::empty(),
        )
        .map_err(|e| e.problems().to_vec())
    }

    #[test]
    fn defaults_and_a_written_governor() {
        let c = parse("").unwrap();
        assert_eq!(c.memory, MemoryConfig::default());
        let c = parse(
            "[memory]\nlimit = \"512MiB\"\nshrink_at = 60\nno_fill_at = 80\nshed_at = 90\n\
             recover = 10\nshed_priority = \"normal\"\nretry_after = \"10s\"\n",
        )
        .unwrap();
        let m = &c.memory;
        assert_eq!(m.limit, MemoryLimit::Bytes(512 * 1024 * 1024));
        assert_eq!(m.levels, [60.0, 80.0, 90.0]);
        assert_eq!((m.recover, m.shed_priority), (10.0, Priority::Normal));
        assert_eq!(m.retry_after, Duration::from_secs(10));
        assert!(
            c.summary().contains(
                "memory governor: limit 512 MiB; shrink the memory cache at 60%, stop cache fills at 80%, shed normal and lower at 90%"
            ),
            "{}",
            c.summary()
        );
        assert_eq!(
            parse("[memory]\nlimit = \"off\"\n").unwrap().memory.limit,
            MemoryLimit::Off
        );
    }

    #[test]
    fn bad_settings_name_their_keys() {
        for (body, key, says) in [
            ("limit = \"lots\"", "memory.limit", "expected \"auto\""),
            ("limit = 5", "memory.limit", "expected \"auto\""),
            ("limit = \"1MiB\"", "memory.limit", "too small"),
            ("shed_at = 120", "memory.shed_at", "out of range"),
            ("shrink_at = 90", "memory.shrink_at", "must rise"),
            ("recover = 75", "memory.recover", "out of range"),
            (
                "shed_priority = \"critical\"",
                "memory.shed_priority",
                "never shed",
            ),
            (
                "shed_priority = \"meh\"",
                "memory.shed_priority",
                "expected",
            ),
            ("interval = \"1ms\"", "memory.interval", "out of range"),
            ("levels = [1, 2, 3]", "memory.levels", "unknown field"),
        ] {
            let p = parse(&format!("[memory]\n{body}\n")).unwrap_err();
            assert_eq!(p[0].key.to_string(), key, "{body}: {p:?}");
            assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
            assert!(p[0].to_string().starts_with("flowgate.toml:2:"), "{}", p[0]);
        }
    }
}
