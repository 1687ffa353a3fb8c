//! Where alerts go (`[[alerts.notifiers]]`): a generic webhook (JSON, signed with
//! HMAC-SHA256 when it has a secret), a Slack incoming webhook, PagerDuty's Events API v2,
//! or e-mail over SMTP. Secrets (a webhook's signing secret, a Slack URL, a PagerDuty
//! routing key, an SMTP password) come from the environment, never from the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};

use crate::error::{Found, KeyPath};
use crate::secret::Secret;
use crate::severity::Severity;
use crate::units::parse_duration;

/// PagerDuty's Events API v2.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A notifier as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifier {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub routing_key_env: Option<String>,
    pub smtp: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub backoff: Option<String>,
    pub send_resolved: Option<bool>,
    pub min_severity: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain TCP upgraded by `STARTTLS`, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS: a relay on this host or a private network only.
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }
}

/// What a notifier talks to.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    /// JSON posted to `url`; with a secret, signed (`x-flowgate-signature`).
    Webhook {
        url: Uri,
        secret: Option<Secret>,
        headers: Vec<(String, String)>,
    },
    /// A Slack incoming webhook (its URL is the secret).
    Slack { url: Uri },
    /// PagerDuty's Events API v2: trigger, and resolve by the alert's dedup key.
    PagerDuty { url: Uri, routing_key: Secret },
    Email {
        /// `host:port`.
        smtp: String,
        host: String,
        port: u16,
        tls: SmtpTls,
        /// A CA to trust for the server's certificate besides the bundled roots.
        ca_file: Option<PathBuf>,
        credentials: Option<(String, Secret)>,
        from: String,
        to: Vec<String>,
    },
}

impl NotifierKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NotifierKind::Webhook { .. } => "webhook",
            NotifierKind::Slack { .. } => "slack",
            NotifierKind::PagerDuty { .. } => "pagerduty",
            NotifierKind::Email { .. } => "email",
        }
    }
}

/// A validated notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    pub name: String,
    pub kind: NotifierKind,
    /// For one attempt: connecting, sending, the receiver's answer.
    pub timeout: Duration,
    /// Attempts after the first, when the receiver could not be reached or answered 429
    /// or 5xx.
    pub retries: u32,
    /// The wait before the first retry, doubled for each next one (with jitter; a 429's
    /// `Retry-After` is honoured up to a minute).
    pub backoff: Duration,
    pub send_resolved: bool,
    /// Events of alerts less severe than this are not sent here.
    pub min_severity: Severity,
}

impl NotifierConfig {
    /// Where it sends, without secrets: for `flowgate check` and the API.
    pub fn target(&self) -> String {
        match &self.kind {
            NotifierKind::Webhook { url, .. } => url.to_string(),
            NotifierKind::Slack { .. } => "a Slack webhook".into(),
            NotifierKind::PagerDuty { url, .. } => url.to_string(),
            NotifierKind::Email { smtp, to, tls, .. } => {
                format!("{} via {smtp} ({})", to.join(", "), tls.as_str())
            }
        }
    }
}

pub(crate) fn env_value(
    var: &str,
    env: &[(String, String)],
    key: KeyPath,
    found: &mut Found,
) -> Option<String> {
    match env.iter().find(|(k, _)| k == var) {
        Some((_, v)) if !v.is_empty() => Some(v.clone()),
        Some(_) => {
            found.push((key, format!("environment variable {var} is empty")));
            None
        }
        None => {
            found.push((key, format!("environment variable {var} is not set")));
            None
        }
    }
}

fn duration(v: &Option<String>, default: Duration, key: KeyPath, found: &mut Found) -> Duration {
    match v.as_deref() {
        None => default,
        Some(s) => match parse_duration(s).filter(|d| !d.is_zero()) {
            Some(d) => d,
            None => {
                found.push((
                    key,
                    format!("{s:?} is not a positive duration such as \"10s\" or \"1m\""),
                ));
                default
            }
        },
    }
}

/// The notifier's URL: `url`, or (a secret, as Slack's are) the variable `url_env` names.
fn url(
    raw: &RawNotifier,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> Option<Uri> {
    match (&raw.url, &raw.url_env) {
        (Some(_), Some(_)) => {
            found.push((
                key.clone().key("url_env"),
                "set url or url_env, not both".into(),
            ));
            None
        }
        (Some(u), None) => {
            crate::units::http_url(u, &format!("{u:?}"), key.clone().key("url"), found)
        }
        (None, Some(var)) => {
            let v = env_value(var, env, key.clone().key("url_env"), found)?;
            crate::units::http_url(
                &v,
                &format!("the value of {var}"),
                key.clone().key("url_env"),
                found,
            )
        }
        (None, None) => {
            found.push((
                key.clone().key("url"),
                "missing: the URL to send to (url, or url_env naming the variable that holds it)"
                    .into(),
            ));
            None
        }
    }
}

/// Keys that belong to other kinds than `kind`, set anyway.
fn foreign(raw: &RawNotifier, kind: &str, key: &KeyPath, found: &mut Found) {
    let set: [(&str, bool, &[&str]); 10] = [
        ("url", raw.url.is_some(), &["webhook", "slack", "pagerduty"]),
        (
            "url_env",
            raw.url_env.is_some(),
            &["webhook", "slack", "pagerduty"],
        ),
        ("secret_env", raw.secret_env.is_some(), &["webhook"]),
        ("headers", !raw.headers.is_empty(), &["webhook"]),
        (
            "routing_key_env",
            raw.routing_key_env.is_some(),
            &["pagerduty"],
        ),
        ("smtp", raw.smtp.is_some(), &["email"]),
        ("tls", raw.tls.is_some(), &["email"]),
        ("username", raw.username.is_some(), &["email"]),
        ("from", raw.from.is_some(), &["email"]),
        ("to", raw.to.is_some(), &["email"]),
    ];
    for (name, present, kinds) in set {
        if present && !kinds.contains(&kind) {
            found.push((
                key.clone().key(name),
                format!("{name} is not a setting of a {kind} notifier"),
            ));
        }
    }
}

/// An address as SMTP takes it: `local@domain`, or `Name <local@domain>`.
fn mailbox(s: &str) -> bool {
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && s[b + 1..].trim().is_empty() => &s[a + 1..b],
        (None, None) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn email(
    raw: &RawNotifier,
    env: &[(String, String)],
    origin: Option<&str>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<NotifierKind> {
    let before = found.len();
    let tls = match raw.tls.as_deref() {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(t) => {
            found.push((
                key.clone().key("tls"),
                format!("unknown tls {t:?}: expected \"starttls\", \"tls\" or \"none\""),
            ));
            SmtpTls::Starttls
        }
    };
    let default_port = match tls {
        SmtpTls::Tls => 465,
        SmtpTls::Starttls => 587,
        SmtpTls::None => 25,
    };
    let (smtp, host, port) = match raw.smtp.as_deref() {
        None => {
            found.push((
                key.clone().key("smtp"),
                "missing: the SMTP server, host:port".into(),
            ));
            (String::new(), String::new(), 0)
        }
        Some(s) => {
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().ok(),
                ),
                _ => (s.to_string(), Some(default_port)),
            };
            match port {
                Some(p) if p > 0 && !host.is_empty() => (format!("{host}:{p}"), host, p),
                _ => {
                    found.push((key.clone().key("smtp"), format!("{s:?} is not host:port")));
                    (String::new(), String::new(), 0)
                }
            }
        }
    };
    let ca_file = raw.ca_file.as_deref().and_then(|f| match origin {
        Some(o) => Some(crate::units::relative_to(o, f)),
        None => {
            found.push((
                key.clone().key("ca_file"),
                "ca_file is read from the config file's machine only: not through the admin API"
                    .into(),
            ));
            None
        }
    });
    if let Some(f) = &ca_file
        && !f.is_file()
    {
        found.push((
            key.clone().key("ca_file"),
            format!("{} is not a file", f.display()),
        ));
    }
    if tls == SmtpTls::None && ca_file.is_some() {
        found.push((
            key.clone().key("ca_file"),
            "no use without TLS (tls = \"none\")".into(),
        ));
    }
    let credentials = match (&raw.username, &raw.password_env) {
        (Some(u), Some(var)) => {
            let p = env_value(var, env, key.clone().key("password_env"), found);
            if tls == SmtpTls::None {
                found.push((
                    key.clone().key("tls"),
                    "a password is never sent without TLS: use \"starttls\" or \"tls\"".into(),
                ));
            }
            p.map(|p| (u.clone(), Secret::new(var, p)))
        }
        (Some(_), None) => {
            found.push((
                key.clone().key("password_env"),
                "missing: the variable holding the SMTP password for username".into(),
            ));
            None
        }
        (None, Some(_)) => {
            found.push((
                key.clone().key("username"),
                "missing: the SMTP user password_env is for".into(),
            ));
            None
        }
        (None, None) => None,
    };
    let from = match raw.from.as_deref() {
        Some(f) if mailbox(f) => f.to_string(),
        Some(f) => {
            found.push((key.clone().key("from"), format!("{f:?} is not an address")));
            String::new()
        }
        None => {
            found.push((
                key.clone().key("from"),
                "missing: the sender's address".into(),
            ));
            String::new()
        }
    };
    let to = raw.to.clone().unwrap_or_default();
    if to.is_empty() {
        found.push((
            key.clone().key("to"),
            "missing: at least one recipient".into(),
        ));
    }
    for (i, t) in to.iter().enumerate() {
        if !mailbox(t) {
            found.push((
                key.clone().key("to").index(i),
                format!("{t:?} is not an address"),
            ));
        }
    }
    (found.len() == before).then_some(NotifierKind::Email {
        smtp,
        host,
        port,
        tls,
        ca_file,
        credentials,
        from,
        to,
    })
}

/// `raw` (the `index`th notifier) checked; secrets read from `env`.
pub fn notifier(
    raw: &RawNotifier,
    index: usize,
    env: &[(String, String)],
    origin: Option<&str>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<NotifierConfig> {
    let before = found.len();
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("notifier-{index}"));
    if !crate::units::valid_name(&name) {
        found.push((
            key.clone().key("name"),
            format!("invalid name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let Some(kind_name) = raw.kind.as_deref() else {
        found.push((
            key.clone().key("kind"),
            "missing: \"webhook\", \"slack\", \"pagerduty\" or \"email\"".into(),
        ));
        return None;
    };
    if !["webhook", "slack", "pagerduty", "email"].contains(&kind_name) {
        found.push((
            key.clone().key("kind"),
            format!(
                "unknown kind {kind_name:?}: expected \"webhook\", \"slack\", \"pagerduty\" or \"email\""
            ),
        ));
        return None;
    }
    foreign(raw, kind_name, key, found);
    let kind = match kind_name {
        "webhook" => {
            let url = url(raw, env, key, found);
            let secret = raw.secret_env.as_ref().and_then(|var| {
                env_value(var, env, key.clone().key("secret_env"), found)
                    .map(|v| Secret::new(var, v))
            });
            let mut headers = Vec::new();
            for (n, v) in &raw.headers {
                let ok = http::HeaderName::from_bytes(n.as_bytes()).is_ok()
                    && http::HeaderValue::from_str(v).is_ok();
                if ok {
                    headers.push((n.clone(), v.clone()));
                } else {
                    found.push((
                        key.clone().key("headers").key(n),
                        "not a header name and value".into(),
                    ));
                }
            }
            url.map(|url| NotifierKind::Webhook {
                url,
                secret,
                headers,
            })
        }
        "slack" => url(raw, env, key, found).map(|url| NotifierKind::Slack { url }),
        "pagerduty" => {
            let url = if raw.url.is_none() && raw.url_env.is_none() {
                PAGERDUTY_URL.parse().ok()
            } else {
                url(raw, env, key, found)
            };
            let routing_key = match &raw.routing_key_env {
                Some(var) => env_value(var, env, key.clone().key("routing_key_env"), found)
                    .map(|v| Secret::new(var, v)),
                None => {
                    found.push((
                        key.clone().key("routing_key_env"),
                        "missing: the variable holding the integration's routing key".into(),
                    ));
                    None
                }
            };
            url.zip(routing_key)
                .map(|(url, routing_key)| NotifierKind::PagerDuty { url, routing_key })
        }
        _ => email(raw, env, origin, key, found),
    };
    if raw.ca_file.is_some() && kind_name != "email" {
        found.push((
            key.clone().key("ca_file"),
            "ca_file is a setting of an email notifier (HTTP notifiers trust the bundled roots)"
                .into(),
        ));
    }
    let timeout = duration(
        &raw.timeout,
        Duration::from_secs(10),
        key.clone().key("timeout"),
        found,
    );
    let backoff = duration(
        &raw.backoff,
        Duration::from_secs(1),
        key.clone().key("backoff"),
        found,
    );
    let retries = raw.retries.unwrap_or(3);
    if retries > 10 {
        found.push((key.clone().key("retries"), format!("{retries}: at most 10")));
    }
    let min_severity = Severity::read(
        raw.min_severity.as_deref(),
        Severity::Info,
        key.clone().key("min_severity"),
        found,
    );
    let kind = kind?;
    (found.len() == before).then(|| NotifierConfig {
        name,
        kind,
        timeout,
        retries,
        backoff,
        send_resolved: raw.send_resolved.unwrap_or(true),
        min_severity,
    })
}

#[cfg(test)]
mod tests;
