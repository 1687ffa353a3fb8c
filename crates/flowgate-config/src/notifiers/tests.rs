use std::time::Duration;

use super::{NotifierKind, SmtpTls, mailbox};
use crate::{Config, Problem, Severity, parse};

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

fn env() -> Vec<(String, String)> {
    [
        ("HOOK_SECRET", "s3cret"),
        ("SLACK_URL", "https://hooks.slack.com/services/T0/B0/XYZ"),
        ("PD_KEY", "R0UT1NGKEY"),
        ("SMTP_PASSWORD", "pw"),
        ("EMPTY", ""),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

fn ok(extra: &str) -> Config {
    parse(&format!("{BASE}\n{extra}"), "flowgate.toml", env()).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(extra: &str) -> Vec<Problem> {
    match parse(&format!("{BASE}\n{extra}"), "flowgate.toml", env()) {
        Ok(_) => panic!("expected an error:\n{extra}"),
        Err(e) => e.problems().to_vec(),
    }
}

const ALL: &str = r#"
[[alerts.notifiers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:18089/hook"
secret_env = "HOOK_SECRET"
headers = { "x-team" = "platform" }
retries = 5
backoff = "250ms"

[[alerts.notifiers]]
name = "slack"
kind = "slack"
url_env = "SLACK_URL"
min_severity = "warning"

[[alerts.notifiers]]
name = "pager"
kind = "pagerduty"
routing_key_env = "PD_KEY"
send_resolved = true

[[alerts.notifiers]]
name = "mail"
kind = "email"
smtp = "smtp.example.com"
username = "alerts"
password_env = "SMTP_PASSWORD"
from = "flowgate <alerts@example.com>"
to = ["ops@example.com"]

[[alerts.rules]]
name = "errors"
series = 'error_ratio{route="chat"}'
value = 0.05
notify = ["hook", "pager"]

[[alerts.rules]]
name = "spend"
kind = "budget"
"#;

#[test]
fn every_kind_is_read_with_its_secrets_from_the_environment() {
    let c = ok(ALL);
    let n = &c.alerts.notifiers;
    assert_eq!(n.len(), 4);
    match &n[0].kind {
        NotifierKind::Webhook {
            url,
            secret,
            headers,
        } => {
            assert_eq!(url.to_string(), "http://127.0.0.1:18089/hook");
            assert_eq!(secret.as_ref().map(|s| s.expose()), Some("s3cret"));
            assert_eq!(headers, &[("x-team".to_string(), "platform".to_string())]);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(
        (n[0].retries, n[0].backoff, n[0].timeout),
        (5, Duration::from_millis(250), Duration::from_secs(10))
    );
    assert!(
        matches!(&n[1].kind, NotifierKind::Slack { url } if url.host() == Some("hooks.slack.com"))
    );
    assert_eq!(n[1].min_severity, Severity::Warning);
    match &n[2].kind {
        NotifierKind::PagerDuty { url, routing_key } => {
            assert_eq!(url.to_string(), super::PAGERDUTY_URL);
            assert_eq!(routing_key.expose(), "R0UT1NGKEY");
        }
        k => panic!("{k:?}"),
    }
    match &n[3].kind {
        NotifierKind::Email {
            smtp,
            tls,
            credentials,
            to,
            ..
        } => {
            assert_eq!(smtp, "smtp.example.com:587");
            assert_eq!(*tls, SmtpTls::Starttls);
            assert_eq!(
                credentials.as_ref().map(|(u, p)| (u.as_str(), p.expose())),
                Some(("alerts", "pw"))
            );
            assert_eq!(to, &["ops@example.com".to_string()]);
        }
        k => panic!("{k:?}"),
    }
    let rules = &c.alerts.rules;
    assert!(rules[0].notifies("pager") && !rules[0].notifies("slack"));
    assert!(rules[1].notifies("slack"), "no notify: every notifier");
    let summary = c.summary();
    assert!(
        summary.contains("notifier hook (webhook): http://127.0.0.1:18089/hook"),
        "{summary}"
    );
    assert!(
        summary.contains("notifier slack (slack): a Slack webhook"),
        "{summary}"
    );
    assert!(!summary.contains("XYZ") && !summary.contains("s3cret") && !summary.contains("pw\n"));
    assert!(
        summary
            .contains("notifier mail (email): ops@example.com via smtp.example.com:587 (starttls)"),
        "{summary}"
    );
}

#[test]
fn bad_notifiers_name_their_keys() {
    let cases: &[(&str, &str, &str)] = &[
        ("kind = \"webhook\"", "alerts.notifiers[0].url", "missing"),
        (
            "kind = \"webhook\"\nurl = \"ftp://x/\"",
            "alerts.notifiers[0].url",
            "not an http:// or https:// URL",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://h/\"\nsecret_env = \"NOPE\"",
            "alerts.notifiers[0].secret_env",
            "NOPE is not set",
        ),
        (
            "kind = \"slack\"\nurl_env = \"EMPTY\"",
            "alerts.notifiers[0].url_env",
            "EMPTY is empty",
        ),
        (
            "kind = \"slack\"\nurl = \"http://h/\"\nurl_env = \"SLACK_URL\"",
            "alerts.notifiers[0].url_env",
            "not both",
        ),
        (
            "kind = \"pagerduty\"",
            "alerts.notifiers[0].routing_key_env",
            "missing",
        ),
        (
            "kind = \"email\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "alerts.notifiers[0].smtp",
            "missing",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:xx\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "alerts.notifiers[0].smtp",
            "not host:port",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:25\"\nfrom = \"a@b\"\nto = [\"c@d\", \"nobody\"]",
            "alerts.notifiers[0].to[1]",
            "not an address",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:25\"\nfrom = \"a@b\"",
            "alerts.notifiers[0].to",
            "at least one",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:25\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nusername = \"u\"",
            "alerts.notifiers[0].password_env",
            "missing",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:25\"\ntls = \"none\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nusername = \"u\"\npassword_env = \"SMTP_PASSWORD\"",
            "alerts.notifiers[0].tls",
            "never sent without TLS",
        ),
        (
            "kind = \"email\"\nsmtp = \"h:25\"\ntls = \"ssl3\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "alerts.notifiers[0].tls",
            "unknown tls",
        ),
        (
            "kind = \"slack\"\nurl = \"http://h/\"\nsmtp = \"h:25\"",
            "alerts.notifiers[0].smtp",
            "not a setting of a slack notifier",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://h/\"\ntimeout = \"0s\"",
            "alerts.notifiers[0].timeout",
            "not a positive duration",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://h/\"\nretries = 99",
            "alerts.notifiers[0].retries",
            "at most 10",
        ),
        (
            "kind = \"pigeon\"",
            "alerts.notifiers[0].kind",
            "unknown kind",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://h/\"\nsecret = \"inline\"",
            "alerts.notifiers[0].secret",
            "unknown field",
        ),
    ];
    for (body, key, says) in cases {
        let p = problems(&format!("[[alerts.notifiers]]\nname = \"n\"\n{body}\n"));
        assert_eq!(p[0].key.to_string(), *key, "{body}: {p:?}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
        assert!(
            p[0].to_string().starts_with("flowgate.toml:"),
            "file and line: {}",
            p[0]
        );
    }
}

#[test]
fn rules_name_notifiers_that_exist_once() {
    let p = problems(
        "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://h/\"\n\n\
         [[alerts.rules]]\nseries = \"spend_usd_per_hour\"\nvalue = 1\nnotify = [\"hook\", \"pager\"]\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key.to_string(), "alerts.rules[0].notify[1]");
    assert!(p[0].to_string().contains("unknown notifier \"pager\""));
    let p = problems(
        "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://h/\"\n\n\
         [[alerts.notifiers]]\nname = \"hook\"\nkind = \"slack\"\nurl = \"http://h/\"\n",
    );
    assert_eq!(p[0].key.to_string(), "alerts.notifiers[1].name");
    assert!(p[0].to_string().contains("duplicate notifier"));
    // A notifier with its own error is not also unknown to the rules.
    let p = problems(
        "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\n\n\
         [[alerts.rules]]\nseries = \"spend_usd_per_hour\"\nvalue = 1\nnotify = [\"hook\"]\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key.to_string(), "alerts.notifiers[0].url");
}

#[test]
fn addresses() {
    for ok in ["ops@example.com", "Ops <ops@example.com>", "a@b"] {
        assert!(mailbox(ok), "{ok}");
    }
    for bad in [
        "ops",
        "@example.com",
        "ops@",
        "a b@c",
        "Ops <ops@x",
        "a@b@c",
    ] {
        assert!(!mailbox(bad), "{bad}");
    }
}
