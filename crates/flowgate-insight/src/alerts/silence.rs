//! Silences: an alert whose rule (and labels) a silence matches is still tracked but not
//! notified, until the silence expires.

use std::collections::BTreeMap;

use serde::Serialize;

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Silence {
    pub id: u64,
    /// A rule name; `*` matches any run of characters (`chat-*`).
    pub rule: String,
    /// Labels the alert must have, each with this value.
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub until: u64,
    pub comment: String,
    pub created_at: u64,
}

impl Silence {
    /// Whether it silences an alert of `rule` with `labels` at `now`.
    pub fn matches(&self, rule: &str, labels: &BTreeMap<String, String>, now: u64) -> bool {
        now < self.until
            && glob(&self.rule, rule)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `pattern` (with `*`) against `s`, whole.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || !s[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_matches_by_rule_pattern_and_labels_until_it_expires() {
        let s = Silence {
            id: 1,
            rule: "chat-*".into(),
            labels: BTreeMap::from([("team".into(), "platform".into())]),
            until: 100,
            comment: String::new(),
            created_at: 0,
        };
        let platform = BTreeMap::from([("team".to_string(), "platform".to_string())]);
        assert!(s.matches("chat-errors", &platform, 99));
        assert!(!s.matches("chat-errors", &platform, 100), "expired");
        assert!(
            !s.matches("chat-errors", &BTreeMap::new(), 50),
            "label missing"
        );
        assert!(!s.matches("batch-errors", &platform, 50));
        assert!(glob("a*b*c", "aXXbYc") && !glob("a*b*c", "aXXcYb") && glob("*", "x"));
    }
}
