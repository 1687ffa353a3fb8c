//! Anomaly detection on the metrics history (`[anomalies]`): which series are watched (by
//! patterns over their names, `*` matching any run of characters), the score at which an
//! anomaly opens, how long a quiet series keeps it open, and how many series at most.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::units::HumanDuration;

/// `[anomalies]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnomalies {
    pub enabled: Option<bool>,
    pub series: Option<Vec<String>>,
    pub threshold: Option<f64>,
    pub quiet: Option<HumanDuration>,
    pub max_series: Option<usize>,
}

/// What is watched by default: traffic, errors, latency, tokens, spend, the cache and the
/// process, per route and pool (not per endpoint: a pool's endpoints are its balancer's
/// business, and there can be many).
pub const DEFAULT_SERIES: &[&str] = &[
    "requests_per_second{route=*",
    "requests_per_second{pool=*",
    "error_ratio{route=*",
    "error_ratio{pool=*",
    "latency_ms_p95{route=*",
    "head_latency_ms_p95{pool=*",
    "tokens_per_second*",
    "spend_usd_per_hour",
    "cache_hit_ratio*",
    "process_cpu_ratio",
    "memory_ratio",
];

/// The most series the history keeps (its own limit, `flowgate_telemetry`'s
/// `MAX_SERIES`).
pub const MAX_HISTORY_SERIES: usize = 5_000;

/// Anomaly detection on the history.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomaliesConfig {
    /// On by default (with the history).
    pub enabled: bool,
    /// Patterns over the stored series' names (see [`series_matches`]).
    pub series: Vec<String>,
    /// The score (0–1) at which an anomaly opens: 0.85 by default (near the detector's
    /// best score on its labelled sets, finding more than at 0.9).
    pub threshold: f64,
    /// An anomaly closes once its series has scored under the threshold this long.
    pub quiet: Duration,
    /// The most series watched (each detector keeps at most ~60 KB).
    pub max_series: usize,
}

impl Default for AnomaliesConfig {
    fn default() -> Self {
        AnomaliesConfig {
            enabled: true,
            series: DEFAULT_SERIES.iter().map(|s| s.to_string()).collect(),
            threshold: 0.85,
            quiet: Duration::from_secs(600),
            max_series: 1000,
        }
    }
}

impl AnomaliesConfig {
    /// Its line of `flowgate check`'s summary (`history_on`: whether there is a history to
    /// watch).
    pub fn summary(&self, history_on: bool) -> String {
        if !self.enabled || !history_on {
            return "  anomalies: off\n".into();
        }
        format!(
            "  anomalies: {} (at most {} series), open at score {}, closed after {} quiet\n",
            self.series.join(", "),
            self.max_series,
            self.threshold,
            crate::format_duration(self.quiet)
        )
    }

    /// Whether series `name` is watched.
    pub fn watches(&self, name: &str) -> bool {
        self.series.iter().any(|p| series_matches(p, name))
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none
/// included) and everything else itself.
pub fn series_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Checks a pattern: it must name, or match, one of the history's series by its base name
/// (what comes before `{`).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty: a series name, or a pattern with '*'".into());
    }
    let base = pattern.split('{').next().unwrap_or("");
    let known = crate::history::SERIES.iter().any(|(b, _)| {
        series_matches(base, b)
            || (base.ends_with('*') && b.starts_with(base.trim_end_matches('*')))
    });
    if known {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} matches none of the history's series (docs/observability.md names them)"
        ))
    }
}

pub(crate) fn anomalies(
    raw: Option<&RawAnomalies>,
    key: &KeyPath,
    found: &mut Found,
) -> AnomaliesConfig {
    let d = AnomaliesConfig::default();
    let Some(raw) = raw else {
        return d;
    };
    let series = match &raw.series {
        None => d.series,
        Some(list) => {
            for (i, p) in list.iter().enumerate() {
                if let Err(e) = check_pattern(p) {
                    found.push((key.clone().key("series").index(i), e));
                }
            }
            list.clone()
        }
    };
    let threshold = match raw.threshold {
        None => d.threshold,
        Some(t) if t > 0.0 && t <= 1.0 => t,
        Some(t) => {
            found.push((
                key.clone().key("threshold"),
                format!("{t} is out of range: a score above 0 and at most 1 (e.g. 0.8)"),
            ));
            d.threshold
        }
    };
    let quiet = raw.quiet.map_or(d.quiet, |q| q.0);
    if quiet < Duration::from_secs(60) {
        found.push((
            key.clone().key("quiet"),
            "at least 1m (scores come a minute apart)".into(),
        ));
    }
    let max_series = raw.max_series.unwrap_or(d.max_series);
    if !(1..=MAX_HISTORY_SERIES).contains(&max_series) {
        found.push((
            key.clone().key("max_series"),
            format!(
                "{max_series} is out of range: 1 to {} (the history's own limit)",
                MAX_HISTORY_SERIES
            ),
        ));
    }
    AnomaliesConfig {
        enabled: raw.enabled.unwrap_or(true),
        series,
        threshold,
        quiet,
        max_series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars() {
        let rps = "requests_per_second{route=\"chat\"}";
        assert!(series_matches("requests_per_second{route=*", rps));
        assert!(series_matches("requests_per_second*", rps));
        assert!(series_matches("*chat*", rps));
        assert!(series_matches(rps, rps));
        assert!(series_matches("*", rps));
        assert!(!series_matches("requests_per_second", rps));
        assert!(!series_matches("requests_per_second{pool=*", rps));
        assert!(!series_matches("error_ratio*", rps));
        assert!(series_matches("a*b*c", "abc"));
        assert!(!series_matches("ab*ba", "aba"));
        let d = AnomaliesConfig::default();
        assert!(d.watches(rps));
        assert!(!d.watches("requests_per_second{endpoint=\"http://a\"}"));
        assert!(d.watches("spend_usd_per_hour"));
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(check_pattern("latency_ms_p95{route=*").is_ok());
        assert!(check_pattern("latency*").is_ok());
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("latncy_ms_p95").is_err());
        assert!(check_pattern("").is_err());
        let raw = RawAnomalies {
            series: Some(vec!["error_ratio*".into(), "nope*".into()]),
            threshold: Some(1.5),
            quiet: Some(HumanDuration(Duration::from_secs(5))),
            max_series: Some(0),
            ..RawAnomalies::default()
        };
        let mut found = Found::default();
        anomalies(Some(&raw), &KeyPath::default().key("anomalies"), &mut found);
        let keys: Vec<String> = found.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "anomalies.series[1]",
                "anomalies.threshold",
                "anomalies.quiet",
                "anomalies.max_series"
            ]
        );
    }
}
