//! Each notifier against a real local receiver: HTTP servers that check payloads and
//! signatures, and aiosmtpd for e-mail (plain and STARTTLS); retries after a receiver
//! failure, failures counted, and which events go where.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::receivers::{HttpReceiver, SmtpReceiver};
use flowgate_clock::SystemClock;
use flowgate_config::{AlertsConfig, Severity};
use flowgate_http::fetch::Fetcher;
use flowgate_http::tls::{ClientSettings, client_config};
use flowgate_insight::alerts::{Event, EventKind};
use flowgate_insight::notify::Notifiers;

const BASE: &str = r#"
[server]
listen = "127.0.0.1:18180"

[pools.llm]
endpoints = [{ url = "http://127.0.0.1:18081" }]

[[routes]]
name = "chat"
kind = "openai"
path = "/v1/chat/completions"
pool = "llm"
"#;

fn alerts(toml: &str, env: &[(&str, &str)]) -> AlertsConfig {
    let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
    flowgate_config::parse(&format!("{BASE}\n{toml}"), "flowgate.toml", env)
        .unwrap_or_else(|e| panic!("{e}"))
        .alerts
}

fn notifiers(a: &AlertsConfig) -> Notifiers {
    let fetcher = Fetcher::new(
        client_config(&ClientSettings::default()).unwrap(),
        SystemClock::shared(),
        "flowgate",
    );
    Notifiers::new(
        &a.notifiers,
        None,
        Arc::new(fetcher),
        SystemClock::shared(),
        "flowgate@test".into(),
    )
}

fn event(kind: EventKind, severity: Severity) -> Event {
    Event {
        at: 1_796_569_445,
        kind,
        rule: "chat-errors".into(),
        severity,
        group: "chat".into(),
        labels: BTreeMap::from([("team".to_string(), "platform".to_string())]),
        value: Some(0.125),
        summary: "error_ratio{route=\"chat\"} over 10s is 0.125 (> 0.05)".into(),
        description: "More than 5% of chat's answers fail".into(),
        fired_at: Some(1_796_569_440),
        silenced: false,
        inhibited: false,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn a_webhook_is_signed_and_retried_after_a_503() {
    let r = HttpReceiver::start().await;
    r.answer_next(503, vec![]);
    let a = alerts(
        &format!(
            "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
             secret_env = \"HOOK_SECRET\"\nbackoff = \"50ms\"\nheaders = {{ \"x-team\" = \"platform\" }}\n",
            r.url("/hook")
        ),
        &[("HOOK_SECRET", "s3cret")],
    );
    let n = notifiers(&a);
    n.dispatch(&event(EventKind::Firing, Severity::Critical), None);
    let got = r.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "one 503, then the retry");
    let (first, second) = (&got[0], &got[1]);
    assert!(second.at.duration_since(first.at) >= Duration::from_millis(25));
    assert_eq!(
        first.header("x-flowgate-delivery"),
        second.header("x-flowgate-delivery")
    );
    assert_eq!(second.header("content-type"), "application/json");
    assert_eq!(second.header("x-team"), "platform");
    // The receiver's check: HMAC-SHA256 of "timestamp.body" under the shared secret.
    let ts = second.header("x-flowgate-timestamp");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"s3cret");
    let mut signed = ts.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&second.body);
    let expect = format!(
        "sha256={}",
        hex(aws_lc_rs::hmac::sign(&key, &signed).as_ref())
    );
    assert_eq!(second.header("x-flowgate-signature"), expect);
    let body = second.json();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alert"]["rule"], "chat-errors");
    assert_eq!(body["id"], second.header("x-flowgate-delivery"));
    let s = &n.statuses()[0];
    assert_eq!((s.sent, s.retries, s.failed), (1, 1, 0));
}

#[tokio::test]
async fn slack_and_pagerduty_get_their_own_payloads() {
    let r = HttpReceiver::start().await;
    let a = alerts(
        &format!(
            "[[alerts.notifiers]]\nname = \"slack\"\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n\n\
             [[alerts.notifiers]]\nname = \"pager\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key_env = \"PD_KEY\"\n",
            r.url("/v2/enqueue")
        ),
        &[
            ("SLACK_URL", &r.url("/services/T0/B0/X")),
            ("PD_KEY", "R0UT1NG"),
        ],
    );
    let n = notifiers(&a);
    n.dispatch(&event(EventKind::Firing, Severity::Critical), None);
    r.wait_for(2, Duration::from_secs(10)).await;
    n.dispatch(&event(EventKind::Resolved, Severity::Critical), None);
    let got = r.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4);
    let slack: Vec<_> = got
        .iter()
        .filter(|g| g.path == "/services/T0/B0/X")
        .collect();
    let pd: Vec<_> = got.iter().filter(|g| g.path == "/v2/enqueue").collect();
    assert_eq!((slack.len(), pd.len()), (2, 2));
    let s = slack[0].json();
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] chat-errors (critical)")
    );
    assert_eq!(s["blocks"][0]["type"], "section");
    assert!(
        slack[1].json()["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED]")
    );
    let (t, e) = (pd[0].json(), pd[1].json());
    assert_eq!(
        (t["event_action"].as_str(), e["event_action"].as_str()),
        (Some("trigger"), Some("resolve"))
    );
    assert_eq!(t["routing_key"], "R0UT1NG");
    assert_eq!(t["dedup_key"], e["dedup_key"]);
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["source"], "flowgate@test");
}

#[tokio::test]
async fn a_4xx_fails_at_once_and_an_unreachable_receiver_after_its_retries() {
    let r = HttpReceiver::start().await;
    r.answer_next(400, vec![]);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let a = alerts(
        &format!(
            "[[alerts.notifiers]]\nname = \"pager\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key_env = \"PD_KEY\"\n\n\
             [[alerts.notifiers]]\nname = \"gone\"\nkind = \"webhook\"\nurl = \"http://{dead}/hook\"\n\
             retries = 2\nbackoff = \"20ms\"\ntimeout = \"1s\"\n",
            r.url("/v2/enqueue")
        ),
        &[("PD_KEY", "R")],
    );
    let n = notifiers(&a);
    n.dispatch(&event(EventKind::Firing, Severity::Warning), None);
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while n.statuses().iter().any(|s| s.failed == 0) && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = n.statuses();
    assert_eq!(
        (st[0].failed, st[0].retries, st[0].sent),
        (1, 0, 0),
        "400: not retried"
    );
    assert!(
        st[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("answered 400"),
        "{:?}",
        st[0].last_error
    );
    assert_eq!(
        (st[1].failed, st[1].retries),
        (1, 2),
        "unreachable: tried three times"
    );
    assert!(
        st[1]
            .last_error
            .as_deref()
            .unwrap()
            .contains("cannot connect"),
        "{:?}",
        st[1].last_error
    );
    assert_eq!(r.got().len(), 1);
    let failures = n.take_failures();
    assert_eq!(failures, vec![("pager", 1), ("gone", 1)]);
    assert_eq!(
        n.take_failures(),
        vec![("pager", 0), ("gone", 0)],
        "read once"
    );
}

#[tokio::test]
async fn events_go_where_rules_severities_and_silences_say() {
    let r = HttpReceiver::start().await;
    let a = alerts(
        &format!(
            "[[alerts.notifiers]]\nname = \"pages\"\nkind = \"webhook\"\nurl = \"{}\"\nmin_severity = \"critical\"\nsend_resolved = false\n\n\
             [[alerts.notifiers]]\nname = \"all\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
             [[alerts.rules]]\nname = \"chat-errors\"\nseries = 'error_ratio{{route=\"chat\"}}'\nvalue = 0.05\nnotify = [\"pages\"]\n",
            r.url("/pages"),
            r.url("/all")
        ),
        &[],
    );
    let rule = &a.rules[0];
    let n = notifiers(&a);
    // No rule known (every notifier): a warning goes to "all" only.
    n.dispatch(&event(EventKind::Firing, Severity::Warning), None);
    // The rule names "pages": a critical firing goes there only; its resolution not at all.
    n.dispatch(&event(EventKind::Firing, Severity::Critical), Some(rule));
    n.dispatch(&event(EventKind::Resolved, Severity::Critical), Some(rule));
    // Silenced or inhibited: nowhere.
    let mut quiet = event(EventKind::Firing, Severity::Critical);
    quiet.silenced = true;
    n.dispatch(&quiet, None);
    let got = r.wait_for(3, Duration::from_secs(3)).await;
    let paths: Vec<(&str, String)> = got
        .iter()
        .map(|g| {
            (
                g.path.as_str(),
                g.json()["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.contains(&("/all", "firing".into())));
    assert!(paths.contains(&("/pages", "firing".into())));
}

fn email_config(smtp: &str, extra: &str) -> AlertsConfig {
    alerts(
        &format!(
            "[[alerts.notifiers]]\nname = \"mail\"\nkind = \"email\"\nsmtp = \"{smtp}\"\n\
             from = \"flowgate <alerts@example.com>\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\n\
             backoff = \"200ms\"\nretries = 5\ntimeout = \"3s\"\n{extra}"
        ),
        &[],
    )
}

async fn settled(n: &Notifiers) -> flowgate_insight::notify::NotifierStatus {
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = n.statuses().remove(0);
        if s.sent + s.failed > 0 || std::time::Instant::now() > end {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn email_over_plain_smtp_after_the_server_comes_back() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a = email_config(&format!("127.0.0.1:{port}"), "tls = \"none\"\n");
    let n = notifiers(&a);
    // Nothing listens yet: the first attempts fail; the server comes up; a retry delivers.
    n.dispatch(&event(EventKind::Firing, Severity::Critical), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let smtp = SmtpReceiver::on_port(port, None).await;
    let m = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(m.len(), 1, "delivered after the server came back");
    let msg = &m[0];
    assert!(
        msg.contains("Subject: [FIRING] chat-errors (critical): error_ratio"),
        "{msg}"
    );
    assert!(msg.contains("From: flowgate <alerts@example.com>"), "{msg}");
    assert!(
        msg.contains("To: ops@example.com, oncall@example.com"),
        "{msg}"
    );
    assert!(msg.contains("label:    team=platform"), "{msg}");
    let s = settled(&n).await;
    assert_eq!(s.sent, 1);
    assert!(s.retries >= 1, "{s:?}");
}

#[tokio::test]
async fn email_over_starttls_verified_by_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("flowgate-smtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("smtp.pem"), dir.join("smtp.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    // aiosmtpd with a certificate requires STARTTLS before any mail.
    let smtp = SmtpReceiver::start(Some((&cert_file, &key_file))).await;

    let a = email_config(
        &format!("localhost:{}", smtp.port),
        &format!("ca_file = \"{}\"\n", cert_file.display()),
    );
    let n = notifiers(&a);
    n.dispatch(&event(EventKind::Resolved, Severity::Warning), None);
    let m = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("Subject: [RESOLVED] chat-errors (warning)"),
        "{}",
        m[0]
    );
    assert_eq!(settled(&n).await.sent, 1);

    // Without TLS the same server refuses the mail (530): permanent, not retried.
    let plain = email_config(&format!("127.0.0.1:{}", smtp.port), "tls = \"none\"\n");
    let n = notifiers(&plain);
    n.dispatch(&event(EventKind::Firing, Severity::Warning), None);
    let s = settled(&n).await;
    assert_eq!((s.sent, s.failed, s.retries), (0, 1, 0), "{s:?}");
    assert!(s.last_error.as_deref().unwrap().contains("SMTP"), "{s:?}");
    std::fs::remove_dir_all(dir).ok();
}
