//! Request traces (`[tracing]`): OpenTelemetry spans sent over OTLP/HTTP to a collector,
//! for a sampled share of requests (and every request whose client's `traceparent` says it
//! is sampled). Header values that are secrets come from the environment (`headers_env`).

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::units::HumanDuration;

/// `[tracing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub parent_based: Option<bool>,
    pub service_name: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    pub timeout: Option<HumanDuration>,
    pub batch: Option<usize>,
    pub interval: Option<HumanDuration>,
    pub queue: Option<usize>,
}

/// Traces, when on.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`).
    pub endpoint: Uri,
    /// The share of requests traced when the client did not decide (default 0.01).
    pub sample_ratio: f64,
    /// Follow a client's `traceparent` sampled flag (default true).
    pub parent_based: bool,
    pub service_name: String,
    /// Sent with every export; secrets among them read from the environment.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub batch: usize,
    pub interval: Duration,
    pub queue: usize,
}

impl TracingConfig {
    pub fn summary(&self) -> String {
        format!(
            "  traces: {} of requests (parent's choice {}), OTLP/HTTP to {}\n",
            self.sample_ratio,
            if self.parent_based {
                "followed"
            } else {
                "ignored"
            },
            self.endpoint
        )
    }
}

fn header(
    name: &str,
    value: &str,
    key: KeyPath,
    found: &mut Found,
) -> Option<(HeaderName, HeaderValue)> {
    match (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        (Ok(n), Ok(mut v)) => {
            v.set_sensitive(true);
            Some((n, v))
        }
        _ => {
            found.push((key, "not a header name and value".into()));
            None
        }
    }
}

pub(crate) fn tracing(
    raw: Option<&RawTracing>,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> Option<TracingConfig> {
    let raw = raw?;
    if raw.enabled == Some(false) {
        return None;
    }
    let endpoint = match raw.endpoint.as_deref() {
        None => {
            found.push((
                key.clone().key("endpoint"),
                "missing: the collector's OTLP/HTTP traces URL, e.g. \"http://127.0.0.1:4318/v1/traces\"".into(),
            ));
            None
        }
        Some(s) => crate::units::http_url(s, &format!("{s:?}"), key.clone().key("endpoint"), found),
    };
    let sample_ratio = raw.sample_ratio.unwrap_or(0.01);
    if !(0.0..=1.0).contains(&sample_ratio) {
        found.push((
            key.clone().key("sample_ratio"),
            format!(
                "{sample_ratio} is out of range: a share from 0 to 1 (0.01: one request in 100)"
            ),
        ));
    }
    let mut headers = Vec::new();
    for (n, v) in &raw.headers {
        headers.extend(header(n, v, key.clone().key("headers").key(n), found));
    }
    for (n, var) in &raw.headers_env {
        let k = key.clone().key("headers_env").key(n);
        match env.iter().find(|(e, _)| e == var) {
            Some((_, v)) if !v.is_empty() => headers.extend(header(n, v, k, found)),
            _ => found.push((k, format!("environment variable {var} is not set"))),
        }
    }
    let batch = raw.batch.unwrap_or(512);
    if !(1..=10_000).contains(&batch) {
        found.push((
            key.clone().key("batch"),
            format!("{batch}: from 1 to 10000"),
        ));
    }
    let queue = raw.queue.unwrap_or(8192);
    if queue < batch {
        found.push((
            key.clone().key("queue"),
            format!("{queue}: at least the batch ({batch})"),
        ));
    }
    let service_name = raw
        .service_name
        .clone()
        .unwrap_or_else(|| "flowgate".into());
    if service_name.is_empty() {
        found.push((key.clone().key("service_name"), "empty".into()));
    }
    Some(TracingConfig {
        endpoint: endpoint?,
        sample_ratio,
        parent_based: raw.parent_based.unwrap_or(true),
        service_name,
        headers,
        timeout: raw.timeout.map_or(Duration::from_secs(10), |h| h.0),
        batch,
        interval: raw.interval.map_or(Duration::from_secs(1), |h| h.0),
        queue,
    })
}

#[cfg(test)]
mod tests {
    fn parse(extra: &str, env: &[(&str, &str)]) -> Result<crate::Config, Vec<crate::Problem>> {
        let base = "[pools.llm]\nendpoints = [{ url = \"http://127.0.0.1:18081\" }]\n\n\
                    [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"llm\"\n";
        let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
        crate::parse(&format!("{extra}\n{base}"), "flowgate.toml", env)
            .map_err(|e| e.problems().to_vec())
    }

    #[test]
    fn on_with_defaults_and_secrets_from_the_environment() {
        assert!(parse("", &[]).unwrap().tracing.is_none());
        let c = parse(
            "[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nheaders_env = { authorization = \"OTLP_AUTH\" }\n",
            &[("OTLP_AUTH", "Bearer abc")],
        )
        .unwrap();
        let t = c.tracing.as_ref().unwrap();
        assert_eq!((t.sample_ratio, t.parent_based, t.batch), (0.01, true, 512));
        assert_eq!(t.headers[0].1, "Bearer abc");
        assert!(t.headers[0].1.is_sensitive());
        assert!(
            c.summary().contains("traces: 0.01 of requests"),
            "{}",
            c.summary()
        );
        assert!(
            parse("[tracing]\nenabled = false\nendpoint = \"x\"\n", &[])
                .unwrap()
                .tracing
                .is_none()
        );
    }

    #[test]
    fn bad_settings_name_their_keys() {
        for (body, key, says) in [
            ("sample_ratio = 0.5", "tracing.endpoint", "missing"),
            ("endpoint = \"udp://x\"", "tracing.endpoint", "not an http"),
            (
                "endpoint = \"http://c/v1/traces\"\nsample_ratio = 2",
                "tracing.sample_ratio",
                "out of range",
            ),
            (
                "endpoint = \"http://c/v1/traces\"\nheaders_env = { authorization = \"NOPE\" }",
                "tracing.headers_env.authorization",
                "NOPE is not set",
            ),
            (
                "endpoint = \"http://c/v1/traces\"\nbatch = 100\nqueue = 10",
                "tracing.queue",
                "at least the batch",
            ),
            (
                "endpoint = \"http://c/v1/traces\"\nratio = 1",
                "tracing.ratio",
                "unknown field",
            ),
        ] {
            let p = parse(&format!("[tracing]\n{body}\n"), &[]).unwrap_err();
            assert_eq!(p[0].key.to_string(), key, "{body}: {p:?}");
            assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
        }
    }
}
