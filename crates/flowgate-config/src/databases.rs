//! `[[databases]]`: the PostgreSQL databases the advisor watches and advises on. Each has
//! a name, its URL read from the environment variable `url_env` names (it holds a
//! password), TLS settings (`[databases.tls]`, as a pool's: used when the URL's `sslmode`
//! asks for TLS), whether it may be written (`writable`, false by default: the advisor's
//! sessions are then read-only and it refuses to send a write), which optimization actions
//! it may take (only when writable), whether `EXPLAIN ANALYZE` may run its queries
//! (`allow_analyze`, false), how often its slow shapes are read (`poll`, 1 min), the mean
//! time from which a shape is slow (`slow`, 500 ms), the share by which an index must
//! lower a query's estimated cost to be recommended (`threshold`, 0.5), and whether slow
//! shapes raise an alert (`alert`, true: the rule `slow_queries.NAME`, which a rule of
//! that name in `[alerts]` replaces).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::RawAlertRule;
use crate::error::{Found, KeyPath};
use crate::secret::Secret;
use crate::tls::{RawUpstreamTls, UpstreamTls};
use crate::units::{HumanDuration, valid_name};

/// `[[databases]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub name: Option<String>,
    pub url_env: Option<String>,
    pub tls: Option<RawUpstreamTls>,
    pub writable: Option<bool>,
    pub actions: Option<Vec<String>>,
    pub allow_analyze: Option<bool>,
    pub poll: Option<HumanDuration>,
    pub slow: Option<HumanDuration>,
    pub threshold: Option<f64>,
    pub alert: Option<bool>,
}

/// What the advisor may do to a writable database when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseAction {
    /// `CREATE INDEX CONCURRENTLY` a recommended index (or one a foreign key lacks).
    CreateIndex,
    /// `DROP INDEX CONCURRENTLY` an unused or duplicate one.
    DropIndex,
    /// `VACUUM (ANALYZE)` a table with many dead rows (`VACUUM (FREEZE, ANALYZE)` one near
    /// transaction-id wraparound).
    Vacuum,
    /// `ANALYZE` a table whose statistics are stale.
    Analyze,
}

impl DatabaseAction {
    pub const ALL: [DatabaseAction; 4] = [
        DatabaseAction::CreateIndex,
        DatabaseAction::DropIndex,
        DatabaseAction::Vacuum,
        DatabaseAction::Analyze,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseAction::CreateIndex => "create_index",
            DatabaseAction::DropIndex => "drop_index",
            DatabaseAction::Vacuum => "vacuum",
            DatabaseAction::Analyze => "analyze",
        }
    }

    pub fn parse(s: &str) -> Option<DatabaseAction> {
        DatabaseAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A database the advisor watches.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    pub name: String,
    /// `postgres://user:password@host:port/db`, from `url_env`.
    pub url: Secret,
    pub tls: UpstreamTls,
    pub writable: bool,
    pub actions: Vec<DatabaseAction>,
    pub allow_analyze: bool,
    pub poll: Duration,
    pub slow: Duration,
    pub threshold: f64,
    pub alert: bool,
}

/// The history's series of database `name`'s slow shapes over the last poll.
pub fn slow_queries_series(name: &str) -> String {
    format!("db_slow_queries{{database=\"{name}\"}}")
}

/// The history's series of one shape's mean time over the last poll (`queryid`:
/// `pg_stat_statements`').
pub fn query_mean_series(name: &str, queryid: i64) -> String {
    format!("db_query_mean_ms{{database=\"{name}\",query=\"{queryid}\"}}")
}

/// The history's series of database `name`'s tables with a finding of `kind`.
pub fn table_findings_series(name: &str, kind: &str) -> String {
    format!("db_table_findings{{database=\"{name}\",kind=\"{kind}\"}}")
}

/// The history's series of database `name`'s oldest transaction-id age.
pub fn xid_age_series(name: &str) -> String {
    format!("db_xid_age{{database=\"{name}\"}}")
}

/// Why `name` picks no database of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickError {
    /// None of that name; the names there are.
    Unknown { name: String, names: String },
    /// Several and none named; their names.
    Several { names: String },
}

impl std::fmt::Display for PickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickError::Unknown { name, names } => {
                write!(f, "no database named {name:?} in [[databases]] ({names})")
            }
            PickError::Several { names } => {
                write!(f, "several databases are configured: name one ({names})")
            }
        }
    }
}

/// The database of `list` that `name` names, or the only one when `name` is `None`
/// (`Ok(None)`: the list is empty and none is named).
pub fn pick_database<'a>(
    list: &'a [DatabaseConfig],
    name: Option<&str>,
) -> Result<Option<&'a DatabaseConfig>, PickError> {
    let names = || {
        list.iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, list) {
        (Some(n), _) => match list.iter().find(|d| d.name == n) {
            Some(d) => Ok(Some(d)),
            None => Err(PickError::Unknown {
                name: n.to_string(),
                names: names(),
            }),
        },
        (None, []) => Ok(None),
        (None, [one]) => Ok(Some(one)),
        (None, _) => Err(PickError::Several { names: names() }),
    }
}

impl DatabaseConfig {
    /// `slow` in milliseconds.
    pub fn slow_ms(&self) -> f64 {
        self.slow.as_secs_f64() * 1e3
    }

    /// Whether `action` may be taken on asking: the database is writable and allows it.
    pub fn allows(&self, action: DatabaseAction) -> bool {
        self.writable && self.actions.contains(&action)
    }

    /// Its line in `flowgate check`'s summary (no URL: it holds a password).
    pub fn summary(&self) -> String {
        let access = if self.writable {
            let a: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
            format!("writable, actions [{}]", a.join(", "))
        } else {
            "read-only".to_string()
        };
        format!(
            "  database {} (url from {}): {access}, polled every {}, slow from {} ms, \
             indexes that lower the cost by {:.0}%{}{}\n",
            self.name,
            self.url.env_var().unwrap_or("a file"),
            crate::format_duration(self.poll),
            self.slow.as_millis(),
            self.threshold * 100.0,
            if self.allow_analyze {
                ", queries may be run (allow_analyze)"
            } else {
                ""
            },
            if self.alert {
                format!(", alert {}", self.alert_rule_name())
            } else {
                String::new()
            },
        )
    }

    /// The alert rule its slow shapes raise (when `alert`).
    pub fn alert_rule_name(&self) -> String {
        format!("slow_queries.{}", self.name)
    }

    /// The rule as written (checked as any other), unless `alert` is off.
    pub fn alert_rule(&self) -> Option<RawAlertRule> {
        self.alert.then(|| RawAlertRule {
            name: Some(self.alert_rule_name()),
            severity: Some("warning".into()),
            kind: Some("threshold".into()),
            series: Some(slow_queries_series(&self.name)),
            window: Some(format!("{}s", (2 * self.poll.as_secs()).max(60))),
            op: Some(">".into()),
            value: Some(0.0),
            labels: BTreeMap::from([("database".to_string(), self.name.clone())]),
            description: Some(format!(
                "query shapes of database {} took {} ms or more on average over the last poll: \
                 GET /api/v1/performance/database/slow-queries?database={} names them",
                self.name,
                self.slow.as_millis(),
                self.name
            )),
            ..RawAlertRule::default()
        })
    }
}

pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
pub const DEFAULT_SLOW: Duration = Duration::from_millis(500);
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Validates `[[databases]]`; files are relative to the config file `origin`'s folder.
pub(crate) fn databases(
    raw: &[RawDatabase],
    env: &[(String, String)],
    origin: &str,
    key: &KeyPath,
    found: &mut Found,
) -> Vec<DatabaseConfig> {
    let mut out: Vec<DatabaseConfig> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let k = key.clone().index(i);
        let name = r.name.clone().unwrap_or_default();
        if !valid_name(&name) {
            found.push((
                k.clone().key("name"),
                format!("{name:?}: a name of letters, digits, '-', '_' and '.' is required"),
            ));
        } else if out.iter().any(|d| d.name == name) {
            found.push((
                k.clone().key("name"),
                format!("duplicate database {name:?}"),
            ));
        }
        let url = match &r.url_env {
            None => {
                found.push((
                    k.clone().key("url_env"),
                    "missing: the environment variable holding the database's URL \
                     (postgres://user:password@host:port/db)"
                        .into(),
                ));
                None
            }
            Some(var) => crate::notifiers::env_value(var, env, k.clone().key("url_env"), found)
                .and_then(|v| {
                    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                        Some(Secret::new(var.clone(), v))
                    } else {
                        found.push((
                            k.clone().key("url_env"),
                            format!(
                                "the value of {var} is not a PostgreSQL URL \
                                 (postgres://user:password@host:port/db)"
                            ),
                        ));
                        None
                    }
                }),
        };
        if r.tls.as_ref().is_some_and(|t| t.sni.is_some()) {
            found.push((
                k.clone().key("tls").key("sni"),
                "not for a database: the URL's host is the name sent and verified".into(),
            ));
        }
        let tls = crate::tls::upstream_tls(r.tls.clone(), true, origin, &k, found);
        let writable = r.writable.unwrap_or(false);
        let threshold = r.threshold.unwrap_or(DEFAULT_THRESHOLD);
        if !(threshold > 0.0 && threshold < 1.0) {
            found.push((
                k.clone().key("threshold"),
                format!("{threshold}: a share between 0 and 1 (0.5: half the estimated cost)"),
            ));
        }
        let slow = r.slow.map_or(DEFAULT_SLOW, |d| d.0);
        if slow < Duration::from_millis(1) {
            found.push((k.clone().key("slow"), "at least 1ms".into()));
        }
        let poll = r.poll.map_or(DEFAULT_POLL, |d| d.0);
        if !(Duration::from_secs(5)..=Duration::from_secs(86_400)).contains(&poll) {
            found.push((k.clone().key("poll"), "out of range: from 5s to 1d".into()));
        }
        let mut actions = Vec::new();
        for (j, a) in r.actions.iter().flatten().enumerate() {
            match DatabaseAction::parse(a) {
                Some(x) if !actions.contains(&x) => actions.push(x),
                Some(_) => {}
                None => found.push((
                    k.clone().key("actions").index(j),
                    format!(
                        "{a:?}: expected one of {}",
                        DatabaseAction::ALL
                            .map(|a| format!("{:?}", a.as_str()))
                            .join(", ")
                    ),
                )),
            }
        }
        if !actions.is_empty() && !writable {
            found.push((
                k.clone().key("actions"),
                "actions change the database: they need writable = true".into(),
            ));
        }
        if let Some(url) = url {
            out.push(DatabaseConfig {
                name,
                url,
                tls,
                writable,
                actions,
                allow_analyze: r.allow_analyze.unwrap_or(false),
                poll,
                slow,
                threshold,
                alert: r.alert.unwrap_or(true),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertKind, Config, Problem, parse};

    const CONFIG: &str = r#"
[pools.llm]
endpoints = [{ url = "http://127.0.0.1:18081" }]

[[routes]]
name = "chat"
kind = "openai"
path = "/v1/chat/completions"
pool = "llm"
"#;

    fn load(extra: &str, env: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
        let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
        parse(&format!("{CONFIG}{extra}"), "flowgate.toml", env).map_err(|e| e.problems().to_vec())
    }

    const URL: (&str, &str) = ("CRM_DB", "postgres://advisor:pw@127.0.0.1:5432/crm");

    #[test]
    fn a_database_takes_its_url_from_the_environment_with_safe_defaults_and_a_slow_query_rule() {
        let c = load(
            "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\n",
            &[URL],
        )
        .unwrap();
        let d = &c.databases[0];
        assert_eq!(d.url.expose(), URL.1);
        assert!(
            !format!("{d:?}").contains("pw@"),
            "the password is never printed"
        );
        assert!(!d.writable && d.actions.is_empty() && !d.allow_analyze);
        assert_eq!(
            (d.poll, d.slow, d.threshold),
            (DEFAULT_POLL, DEFAULT_SLOW, 0.5)
        );
        assert!(!d.allows(DatabaseAction::CreateIndex));
        assert!(
            c.summary().contains(
                "database crm (url from CRM_DB): read-only, polled every 1m, slow from 500 ms, \
                 indexes that lower the cost by 50%, alert slow_queries.crm"
            ),
            "{}",
            c.summary()
        );
        assert!(!c.summary().contains("pw@"));
        let rule = c.alerts.rules.iter().find(|r| r.name == "slow_queries.crm");
        match rule.map(|r| &r.kind) {
            Some(AlertKind::Threshold { series, value, .. }) => {
                assert_eq!(series, "db_slow_queries{database=\"crm\"}");
                assert_eq!(*value, 0.0);
            }
            other => panic!("expected the slow-query rule, got {other:?}"),
        }
    }

    #[test]
    fn a_rule_of_the_same_name_replaces_the_default_and_alert_false_drops_it() {
        let own = "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\n\
                   [[alerts.rules]]\nname = \"slow_queries.crm\"\nseverity = \"critical\"\n\
                   series = 'db_slow_queries{database=\"crm\"}'\nwindow = \"5m\"\nop = \">=\"\nvalue = 3\n";
        let c = load(own, &[URL]).unwrap();
        let rules: Vec<_> = c
            .alerts
            .rules
            .iter()
            .filter(|r| r.name == "slow_queries.crm")
            .collect();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].severity.as_str(), "critical");
        let off = "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\nalert = false\n";
        assert!(load(off, &[URL]).unwrap().alerts.rules.is_empty());
    }

    #[test]
    fn writable_databases_take_actions_and_alert_rules_may_name_them() {
        let src = "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\nwritable = true\n\
                   actions = [\"create_index\", \"vacuum\"]\npoll = \"10s\"\nslow = \"200ms\"\nthreshold = 0.3\n\
                   [[alerts.rules]]\nname = \"one-shape\"\n\
                   series = 'db_query_mean_ms{database=\"crm\",query=\"42\"}'\nwindow = \"1m\"\nvalue = 900\n";
        let c = load(src, &[URL]).unwrap();
        let d = &c.databases[0];
        assert!(d.allows(DatabaseAction::CreateIndex) && !d.allows(DatabaseAction::DropIndex));
        assert!(d.allows(DatabaseAction::Vacuum) && !d.allows(DatabaseAction::Analyze));
        assert_eq!(d.slow, Duration::from_millis(200));
        assert!(c.alerts.rules.iter().any(|r| r.name == "one-shape"));
    }

    #[test]
    fn a_database_is_picked_by_name_or_as_the_only_one() {
        let two = "[[databases]]\nname = \"a\"\nurl_env = \"CRM_DB\"\n\
                   [[databases]]\nname = \"b\"\nurl_env = \"CRM_DB\"\n";
        let c = load(two, &[URL]).unwrap();
        let list = &c.databases;
        assert_eq!(pick_database(list, Some("b")).unwrap().unwrap().name, "b");
        assert_eq!(
            pick_database(list, None),
            Err(PickError::Several {
                names: "a, b".into()
            })
        );
        assert_eq!(
            pick_database(list, Some("c")).unwrap_err().to_string(),
            "no database named \"c\" in [[databases]] (a, b)"
        );
        assert_eq!(pick_database(&list[..1], None).unwrap().unwrap().name, "a");
        assert_eq!(pick_database(&[], None), Ok(None));
        assert_eq!(slow_queries_series("a"), "db_slow_queries{database=\"a\"}");
        assert_eq!(
            query_mean_series("a", 42),
            "db_query_mean_ms{database=\"a\",query=\"42\"}"
        );
    }

    fn messages(extra: &str, env: &[(&str, &str)]) -> Vec<String> {
        load(extra, env)
            .expect_err("an error")
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn bad_databases_are_refused_with_their_key() {
        let m = messages(
            "[[databases]]\nname = \"crm\"\nurl_env = \"NOPE\"\n",
            &[URL],
        );
        assert_eq!(
            m,
            ["databases[0].url_env: environment variable NOPE is not set"]
        );
        let m = messages(
            "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\n",
            &[("CRM_DB", "mysql://x@y/z")],
        );
        assert!(m[0].contains("is not a PostgreSQL URL"), "{m:?}");
        let m = messages(
            "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\nactions = [\"create_index\", \"truncate\"]\nthreshold = 1.5\npoll = \"1s\"\n",
            &[URL],
        );
        let all = m.join("\n");
        for want in [
            "databases[0].actions[1]: \"truncate\": expected one of \"create_index\", \"drop_index\", \"vacuum\", \"analyze\"",
            "databases[0].actions: actions change the database: they need writable = true",
            "databases[0].threshold: 1.5: a share between 0 and 1",
            "databases[0].poll: out of range",
        ] {
            assert!(all.contains(want), "{want:?} not in {all}");
        }
        let m = messages(
            "[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\n[[databases]]\nname = \"crm\"\nurl_env = \"CRM_DB\"\n",
            &[URL],
        );
        assert_eq!(m, ["databases[1].name: duplicate database \"crm\""]);
        let m = messages(
            "[[alerts.rules]]\nname = \"r\"\nseries = 'db_slow_queries{database=\"other\"}'\nwindow = \"1m\"\nvalue = 0\n",
            &[],
        );
        assert!(m[0].contains("unknown database \"other\""), "{m:?}");
    }
}
