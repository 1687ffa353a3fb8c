//! Notifiers at work: an alert's events go to the notifiers its rule names (every one when
//! it names none), as severe as each wants and, unless it declines them, resolutions too.
//! Each notifier has its own queue ([`QUEUE`] events) and task, started with its first
//! event: evaluation only enqueues, so a slow or failing receiver never holds up the rules
//! (nor the data plane, which never sees them), and delays only its own later events. A
//! full queue drops the event, counted.
//!
//! A delivery is tried again when the receiver could not be reached, timed out, or
//! answered 408, 429 or 5xx (an SMTP 4xx): after `backoff`, doubled each time up to a
//! minute, with jitter (a 429's `Retry-After` in seconds is honoured up to a minute), at
//! most `retries` times; any other answer fails it at once. Sent, failed, dropped and
//! retried deliveries are counted per notifier, with the last error, for the metrics, the
//! history (so that a rule can watch `notification_failures`) and the API.

mod email;
pub mod message;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flowgate_clock::SharedClock;
use flowgate_config::{AlertRule, NotifierConfig, NotifierKind};
use flowgate_http::fetch::{Fetcher, Request};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, Uri};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::alerts::{Event, EventKind};

/// Events waiting per notifier; more are dropped.
pub const QUEUE: usize = 256;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Sent,
    /// Worth another try; after this long, when the receiver said.
    Retry(String, Option<Duration>),
    Failed(String),
}

/// A notifier's deliveries.
#[derive(Debug, Default)]
struct Stats {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    /// Failed since the history last read them.
    unread_failures: AtomicU64,
    last: Mutex<Last>,
}

#[derive(Debug, Default, Clone)]
struct Last {
    sent_at: Option<u64>,
    error: Option<(u64, String)>,
}

/// A notifier as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotifierStatus {
    pub name: String,
    pub kind: &'static str,
    /// Where it sends, without secrets.
    pub target: String,
    pub min_severity: flowgate_config::Severity,
    pub send_resolved: bool,
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
    pub retries: u64,
    pub last_sent_at: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
}

/// One event to deliver, with its delivery id (the same on every attempt).
struct Job {
    event: Event,
    id: String,
}

struct Notifier {
    config: NotifierConfig,
    stats: Arc<Stats>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

/// Every notifier of the config (see the module's documentation).
pub struct Notifiers {
    list: Vec<Notifier>,
    fetcher: Arc<Fetcher>,
    clock: SharedClock,
    /// The sender's name in payloads: `flowgate@HOST`.
    source: String,
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifiers")
            .field("names", &self.names())
            .finish()
    }
}

impl Notifiers {
    /// The notifiers of `configs`; those of `old` with the same name and kind keep their
    /// counts (a reload). Events in `old`'s queues are still delivered, by `old`'s tasks.
    pub fn new(
        configs: &[NotifierConfig],
        old: Option<&Notifiers>,
        fetcher: Arc<Fetcher>,
        clock: SharedClock,
        source: String,
    ) -> Notifiers {
        let list = configs
            .iter()
            .map(|c| {
                let stats = old
                    .and_then(|o| {
                        o.list.iter().find(|n| {
                            n.config.name == c.name && n.config.kind.as_str() == c.kind.as_str()
                        })
                    })
                    .map_or_else(Arc::default, |n| n.stats.clone());
                Notifier {
                    config: c.clone(),
                    stats,
                    queue: Mutex::new(None),
                }
            })
            .collect();
        Notifiers {
            list,
            fetcher,
            clock,
            source,
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|n| n.config.name.as_str()).collect()
    }

    /// Hands `e` (an event of `rule`) to the notifiers that take it; never waits.
    pub fn dispatch(&self, e: &Event, rule: Option<&AlertRule>) {
        self.dispatch_where(e, |name| rule.is_none_or(|r| r.notifies(name)));
    }

    /// Hands `e` to the notifiers named (every one when `names` is empty) that take it.
    pub fn dispatch_to(&self, e: &Event, names: &[String]) {
        self.dispatch_where(e, |name| {
            names.is_empty() || names.iter().any(|n| n == name)
        });
    }

    fn dispatch_where(&self, e: &Event, named: impl Fn(&str) -> bool) {
        if !e.notify() {
            return;
        }
        for n in &self.list {
            let c = &n.config;
            let wanted = named(&c.name)
                && e.severity >= c.min_severity
                && (e.kind != EventKind::Resolved || c.send_resolved);
            if !wanted {
                continue;
            }
            let job = Job {
                event: e.clone(),
                id: format!("{:016x}", rand::random::<u64>()),
            };
            let Ok(mut queue) = n.queue.lock() else {
                continue;
            };
            let tx = queue.get_or_insert_with(|| self.start(n));
            if tx.try_send(job).is_err() {
                n.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(notifier = %c.name, rule = %e.rule, "notifier queue full: alert event dropped");
            }
        }
    }

    /// Starts `n`'s task; its queue.
    fn start(&self, n: &Notifier) -> mpsc::Sender<Job> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = Worker {
            config: n.config.clone(),
            stats: n.stats.clone(),
            fetcher: self.fetcher.clone(),
            clock: self.clock.clone(),
            source: self.source.clone(),
        };
        tokio::spawn(worker.run(rx));
        tx
    }

    pub fn statuses(&self) -> Vec<NotifierStatus> {
        self.list
            .iter()
            .map(|n| {
                let s = &n.stats;
                let last = s.last.lock().map(|l| l.clone()).unwrap_or_default();
                NotifierStatus {
                    name: n.config.name.clone(),
                    kind: n.config.kind.as_str(),
                    target: n.config.target(),
                    min_severity: n.config.min_severity,
                    send_resolved: n.config.send_resolved,
                    sent: s.sent.load(Ordering::Relaxed),
                    failed: s.failed.load(Ordering::Relaxed),
                    dropped: s.dropped.load(Ordering::Relaxed),
                    retries: s.retries.load(Ordering::Relaxed),
                    last_sent_at: last.sent_at,
                    last_error_at: last.error.as_ref().map(|e| e.0),
                    last_error: last.error.map(|e| e.1),
                }
            })
            .collect()
    }

    /// Each notifier's failed and dropped deliveries since the last call (for the history).
    pub fn take_failures(&self) -> Vec<(&str, u64)> {
        self.list
            .iter()
            .map(|n| {
                (
                    n.config.name.as_str(),
                    n.stats.unread_failures.swap(0, Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// A notifier's task: delivers its queue in order.
struct Worker {
    config: NotifierConfig,
    stats: Arc<Stats>,
    fetcher: Arc<Fetcher>,
    clock: SharedClock,
    source: String,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mailer = match &self.config.kind {
            NotifierKind::Email {
                host,
                port,
                tls,
                ca_file,
                credentials,
                from,
                to,
                ..
            } => Some(email::Mailer::new(&email::Setup {
                host,
                port: *port,
                tls: *tls,
                ca_file: ca_file.as_deref(),
                credentials: credentials.as_ref().map(|(u, p)| (u.as_str(), p.expose())),
                from,
                to,
                timeout: self.config.timeout,
                hello: self.source.rsplit('@').next().unwrap_or("localhost"),
            })),
            _ => None,
        };
        while let Some(job) = rx.recv().await {
            let mut tries = 0;
            loop {
                let attempt = match &mailer {
                    Some(Ok(m)) => {
                        let (subject, text) = message::email(&job.event, &self.source);
                        m.send(&subject, text, &job.id).await
                    }
                    Some(Err(e)) => Attempt::Failed(e.clone()),
                    None => self.post(&job).await,
                };
                match attempt {
                    Attempt::Sent => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = self.stats.last.lock() {
                            l.sent_at = Some(self.clock.unix_millis() / 1000);
                        }
                        break;
                    }
                    Attempt::Retry(why, after) if tries < self.config.retries => {
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        let wait = after
                            .map(|a| a.min(MAX_BACKOFF))
                            .unwrap_or_else(|| backoff(self.config.backoff, tries));
                        tracing::info!(notifier = %self.config.name, rule = %job.event.rule, error = %why, "alert notification failed; trying again in {}", flowgate_clock::format_duration(wait));
                        tries += 1;
                        tokio::time::sleep(wait).await;
                    }
                    Attempt::Retry(why, _) | Attempt::Failed(why) => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        self.stats.unread_failures.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = self.stats.last.lock() {
                            l.error = Some((self.clock.unix_millis() / 1000, why.clone()));
                        }
                        tracing::warn!(notifier = %self.config.name, rule = %job.event.rule, error = %why, tries = tries + 1, "alert notification failed");
                        break;
                    }
                }
            }
        }
    }

    /// One attempt of an HTTP notifier.
    async fn post(&self, job: &Job) -> Attempt {
        let e = &job.event;
        let json = HeaderValue::from_static("application/json");
        let mut headers = vec![(CONTENT_TYPE, json)];
        let (url, body): (&Uri, Vec<u8>) = match &self.config.kind {
            NotifierKind::Webhook {
                url,
                secret,
                headers: extra,
            } => {
                let body = message::webhook(e, &job.id, &self.source);
                for (n, v) in extra {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(n.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        headers.push((n, v));
                    }
                }
                let id = HeaderValue::from_str(&job.id).ok();
                if let Some(id) = id {
                    headers.push((HeaderName::from_static("x-flowgate-delivery"), id));
                }
                if let Some(secret) = secret {
                    let ts = self.clock.unix_millis() / 1000;
                    let sig = message::signature(secret.expose().as_bytes(), ts, &body);
                    headers.push((
                        HeaderName::from_static("x-flowgate-timestamp"),
                        HeaderValue::from(ts),
                    ));
                    if let Ok(v) = HeaderValue::from_str(&sig) {
                        headers.push((HeaderName::from_static("x-flowgate-signature"), v));
                    }
                }
                (url, body)
            }
            NotifierKind::Slack { url } => (url, message::slack(e, &self.source)),
            NotifierKind::PagerDuty { url, routing_key } => (
                url,
                message::pagerduty(e, routing_key.expose(), &self.source),
            ),
            NotifierKind::Email { .. } => {
                return Attempt::Failed("an email notifier has no URL".into());
            }
        };
        let req = Request {
            method: Method::POST,
            url,
            headers: &headers,
            body: Bytes::from(body),
            timeout: self.config.timeout,
        };
        match self.fetcher.send(&req).await {
            Ok(answer) => {
                let status = answer.status.as_u16();
                if answer.status.is_success() {
                    return Attempt::Sent;
                }
                let said = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                    .trim()
                    .to_string();
                let why = format!("{url} answered {status}: {said}");
                if status == 408 || status == 429 || status >= 500 {
                    let after = answer
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    Attempt::Retry(why, after)
                } else {
                    Attempt::Failed(why)
                }
            }
            Err(err) => Attempt::Retry(format!("{url}: {err}"), None),
        }
    }
}

/// The wait before retry `n` (0: the first): `base` doubled `n` times, at most
/// [`MAX_BACKOFF`], less up to a half at random (retries of many alerts do not come in step).
fn backoff(base: Duration, n: u32) -> Duration {
    let full = base
        .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    full.mul_f64(1.0 - rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_minute() {
        for n in 0..4 {
            let full = Duration::from_millis(500) * 2u32.pow(n);
            let b = backoff(Duration::from_millis(500), n);
            assert!(b <= full && b >= full / 2, "{n}: {b:?}");
        }
        assert!(backoff(Duration::from_secs(1), 30) <= Duration::from_secs(60));
        assert!(backoff(Duration::from_secs(1), 200) <= Duration::from_secs(60));
    }
}
