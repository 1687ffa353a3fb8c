//! What each receiver is sent for an alert's event: the generic webhook's JSON (and its
//! signature), Slack's incoming-webhook payload, a PagerDuty Events API v2 event, and an
//! e-mail's subject and text.

use aws_lc_rs::hmac;
use flowgate_config::Severity;
use serde_json::{Value, json};

use crate::alerts::{Event, EventKind};

/// The webhook payload's format version.
pub const WEBHOOK_VERSION: &str = "1";

/// `firing` or `resolved`, as receivers read it.
pub fn status(e: &Event) -> &'static str {
    match e.kind {
        EventKind::Firing | EventKind::Repeat => "firing",
        EventKind::Resolved => "resolved",
    }
}

/// A line for titles: `[FIRING] chat-errors (critical)`.
pub fn title(e: &Event) -> String {
    format!(
        "[{}] {} ({})",
        status(e).to_ascii_uppercase(),
        e.rule,
        e.severity.as_str()
    )
}

/// The alert as every payload carries it.
fn alert(e: &Event) -> Value {
    json!({
        "rule": e.rule,
        "severity": e.severity,
        "group": e.group,
        "labels": e.labels,
        "value": e.value,
        "summary": e.summary,
        "description": e.description,
        "fired_at": e.fired_at,
    })
}

/// The generic webhook's body: `id` is the delivery's (the same on each retry, for the
/// receiver to drop a repeat), `source` the gateway that sent it.
pub fn webhook(e: &Event, id: &str, source: &str) -> Vec<u8> {
    let body = json!({
        "version": WEBHOOK_VERSION,
        "id": id,
        "status": status(e),
        "event": e.kind,
        "at": e.at,
        "source": source,
        "alert": alert(e),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `sha256=` and the hex HMAC-SHA256, under `secret`, of `timestamp`, a dot and `body`:
/// what `x-flowgate-signature` carries (the timestamp is `x-flowgate-timestamp`, signed
/// with the body so that an old delivery cannot be replayed as new).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Slack's `mrkdwn` text with its three control characters escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn when(unix: u64) -> String {
    flowgate_clock::rfc3339_millis(unix.saturating_mul(1000))
}

/// A Slack incoming webhook's payload: a fallback `text` (what notifications show) and
/// blocks: the title and summary, then the description, then the context (group, labels,
/// since when, which gateway).
pub fn slack(e: &Event, source: &str) -> Vec<u8> {
    let icon = match (e.kind, e.severity) {
        (EventKind::Resolved, _) => ":white_check_mark:",
        (_, Severity::Critical) => ":rotating_light:",
        (_, Severity::Warning) => ":warning:",
        (_, Severity::Info) => ":information_source:",
    };
    let headline = format!(
        "{icon} *{}*\n{}",
        slack_escape(&title(e)),
        slack_escape(&e.summary)
    );
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": headline },
    })];
    if !e.description.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": slack_escape(&e.description) },
        }));
    }
    let mut context = vec![format!("group `{}`", slack_escape(&e.group))];
    if !e.labels.is_empty() {
        let labels: Vec<String> = e
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", slack_escape(k), slack_escape(v)))
            .collect();
        context.push(labels.join(", "));
    }
    if let Some(f) = e.fired_at {
        context.push(format!("firing since {}", when(f)));
    }
    context.push(slack_escape(source));
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }],
    }));
    let body = json!({
        "text": format!("{}: {}", title(e), e.summary),
        "blocks": blocks,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The dedup key PagerDuty groups an alert's trigger and resolve by: the rule's, so that
/// every replica's events of one alert are one incident.
pub fn dedup_key(e: &Event) -> String {
    format!("flowgate/{}", e.rule)
}

/// A PagerDuty Events API v2 event: `trigger` (firing, repeat) or `resolve`.
pub fn pagerduty(e: &Event, routing_key: &str, source: &str) -> Vec<u8> {
    let body = match e.kind {
        EventKind::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(e),
        }),
        EventKind::Firing | EventKind::Repeat => {
            // PagerDuty takes at most 1,024 characters of summary.
            let mut summary = format!("{}: {}", e.rule, e.summary);
            if summary.len() > 1024 {
                let mut cut = 1021;
                while !summary.is_char_boundary(cut) {
                    cut -= 1;
                }
                summary.truncate(cut);
                summary.push_str("...");
            }
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key(e),
                "client": "flowgate",
                "payload": {
                    "summary": summary,
                    "source": source,
                    "severity": e.severity.as_str(),
                    "timestamp": when(e.fired_at.unwrap_or(e.at)),
                    "group": e.group,
                    "class": e.rule,
                    "custom_details": {
                        "value": e.value,
                        "description": e.description,
                        "labels": e.labels,
                    },
                },
            })
        }
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An e-mail's subject and plain text.
pub fn email(e: &Event, source: &str) -> (String, String) {
    let subject = format!("{}: {}", title(e), e.summary);
    let mut text = format!("{}\n\n{}\n", title(e), e.summary);
    if !e.description.is_empty() {
        text.push_str(&format!("\n{}\n", e.description));
    }
    text.push('\n');
    text.push_str(&format!("rule:     {}\n", e.rule));
    text.push_str(&format!("severity: {}\n", e.severity.as_str()));
    text.push_str(&format!("group:    {}\n", e.group));
    for (k, v) in &e.labels {
        text.push_str(&format!("label:    {k}={v}\n"));
    }
    if let Some(v) = e.value {
        text.push_str(&format!("value:    {v}\n"));
    }
    if let Some(f) = e.fired_at {
        text.push_str(&format!("firing since {}\n", when(f)));
    }
    text.push_str(&format!("at {} from {source}\n", when(e.at)));
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn event(kind: EventKind) -> Event {
        Event {
            at: 1_796_569_445,
            kind,
            rule: "chat-errors".into(),
            severity: Severity::Critical,
            group: "chat".into(),
            labels: BTreeMap::from([("team".to_string(), "platform".to_string())]),
            value: Some(0.125),
            summary: "error_ratio{route=\"chat\"} over 10s is 0.125 (> 0.05)".into(),
            description: "More than 5% <of> chat's answers fail & page".into(),
            fired_at: Some(1_796_569_440),
            silenced: false,
            inhibited: false,
        }
    }

    #[test]
    fn the_webhook_body_carries_the_alert_and_its_delivery() {
        let b: Value =
            serde_json::from_slice(&webhook(&event(EventKind::Firing), "d1", "flowgate@h"))
                .unwrap();
        assert_eq!(b["version"], "1");
        assert_eq!(b["id"], "d1");
        assert_eq!(b["status"], "firing");
        assert_eq!(b["event"], "firing");
        assert_eq!(b["source"], "flowgate@h");
        assert_eq!(b["alert"]["rule"], "chat-errors");
        assert_eq!(b["alert"]["severity"], "critical");
        assert_eq!(b["alert"]["labels"]["team"], "platform");
        assert_eq!(b["alert"]["value"], 0.125);
        let r: Value =
            serde_json::from_slice(&webhook(&event(EventKind::Resolved), "d2", "s")).unwrap();
        assert_eq!(r["status"], "resolved");
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = signature(b"Jefe", 0, b"");
        assert_eq!(s.len(), 7 + 64);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Split as "timestamp.body": the same as one message.
        let whole = hmac::sign(&key, b"1700000000.{\"a\":1}");
        let hex: String = whole.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{\"a\":1}"),
            format!("sha256={hex}")
        );
    }

    #[test]
    fn slack_gets_text_and_escaped_blocks() {
        let b: Value =
            serde_json::from_slice(&slack(&event(EventKind::Firing), "flowgate@h")).unwrap();
        assert!(
            b["text"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING] chat-errors (critical): error_ratio")
        );
        assert!(
            b["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with(":rotating_light: *[FIRING] chat-errors (critical)*")
        );
        assert_eq!(
            b["blocks"][1]["text"]["text"],
            "More than 5% &lt;of&gt; chat's answers fail &amp; page"
        );
        let ctx = b["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            ctx.contains("team=platform") && ctx.contains("firing since 2026-"),
            "{ctx}"
        );
        let r: Value = serde_json::from_slice(&slack(&event(EventKind::Resolved), "s")).unwrap();
        assert!(r["text"].as_str().unwrap().starts_with("[RESOLVED]"));
    }

    #[test]
    fn pagerduty_triggers_and_resolves_by_one_dedup_key() {
        let t: Value =
            serde_json::from_slice(&pagerduty(&event(EventKind::Firing), "RK", "flowgate@h"))
                .unwrap();
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "RK");
        assert_eq!(t["dedup_key"], "flowgate/chat-errors");
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "flowgate@h");
        assert!(t["payload"]["timestamp"].as_str().unwrap().ends_with("Z"));
        let r: Value =
            serde_json::from_slice(&pagerduty(&event(EventKind::Resolved), "RK", "s")).unwrap();
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], t["dedup_key"]);
        let mut long = event(EventKind::Firing);
        long.summary = "é".repeat(2000);
        let l: Value = serde_json::from_slice(&pagerduty(&long, "RK", "s")).unwrap();
        assert!(l["payload"]["summary"].as_str().unwrap().len() <= 1024);
    }

    #[test]
    fn an_email_says_what_fired() {
        let (subject, text) = email(&event(EventKind::Firing), "flowgate@h");
        assert!(subject.starts_with("[FIRING] chat-errors (critical): error_ratio"));
        assert!(text.contains("label:    team=platform"));
        assert!(text.contains("from flowgate@h"));
    }
}
