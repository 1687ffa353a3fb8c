//! The actions beyond a pool's strategy and size: read, refused with their key when they
//! name what is not there or ask for what is not allowed, and applied to a config.

use std::time::Duration;

use crate::{AutomationAction, Config, ConfigChange, Priority, Problem, Severity, parse};

const BASE: &str = r#"
[server]
listen = "127.0.0.1:18180"
admin_listen = "127.0.0.1:18190"

[pools.llm]
endpoints = [{ url = "http://127.0.0.1:18081" }]

[[routes]]
name = "chat"
kind = "openai"
prefix = "/v1"
pool = "llm"

[[routes]]
name = "files"
kind = "http"
prefix = "/files"
pool = "llm"

[cache]
enabled = true

[[cache.categories]]
name = "faq"
path = "/v1"
ttl = "1h"

[[rate_limits]]
name = "per-minute"
requests = 600
per = "1m"
burst = 60

[[cost.tiers]]
name = "premium"
models = ["gpt-4o"]

[[cost.tiers]]
name = "economy"
models = ["gpt-4o-mini"]

[[alerts.notifiers]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[[alerts.rules]]
name = "slow"
series = "spend_usd_per_hour"
value = 1
"#;

fn rule(action: &str) -> String {
    format!(
        "{BASE}\n[[automation.rules]]\nname = \"r\"\nwhen = {{ alert = \"slow\" }}\ndo = {{ {action} }}\n"
    )
}

fn ok(src: &str) -> Config {
    parse(src, "flowgate.toml", std::iter::empty()).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(src: &str) -> Vec<Problem> {
    match parse(src, "flowgate.toml", std::iter::empty()) {
        Ok(_) => panic!("expected an error: {src}"),
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn each_action_is_read() {
    let read = |action: &str| ok(&rule(action)).automation.rules[0].action.clone();
    assert_eq!(read("warm = 50"), AutomationAction::Warm { top: 50 });
    assert_eq!(
        read("cache_ttl = \"faq\", ttl = \"6h\""),
        AutomationAction::Change(ConfigChange::CacheTtl {
            category: "faq".into(),
            ttl: Duration::from_secs(6 * 3600)
        })
    );
    assert_eq!(
        read("rate_limit = \"per-minute\", amount = 1200"),
        AutomationAction::Change(ConfigChange::RateLimit {
            limit: "per-minute".into(),
            amount: 1200,
            burst: None
        })
    );
    assert_eq!(
        read("shed = \"normal\""),
        AutomationAction::Change(ConfigChange::Shed {
            route: None,
            priority: Priority::Normal
        })
    );
    assert_eq!(
        read("model_tier = \"economy\", route = \"chat\""),
        AutomationAction::Change(ConfigChange::ModelTier {
            route: "chat".into(),
            tier: "economy".into()
        })
    );
    assert_eq!(
        read("notify = [\"ops\"], severity = \"critical\""),
        AutomationAction::Notify {
            notifiers: vec!["ops".into()],
            severity: Severity::Critical
        }
    );
    assert_eq!(
        read("notify = \"*\""),
        AutomationAction::Notify {
            notifiers: vec![],
            severity: Severity::Warning
        }
    );
}

#[test]
fn bad_actions_name_their_keys() {
    let cases: &[(&str, &str, &str)] = &[
        ("warm = 0", "do.warm", "from 1 to the recent requests kept"),
        ("warm = 5000", "do.warm", "keep = 1000"),
        (
            "cache_ttl = \"news\", ttl = \"1h\"",
            "do.cache_ttl",
            "no category \"news\"",
        ),
        ("cache_ttl = \"faq\"", "do.ttl", "missing"),
        (
            "cache_ttl = \"faq\", ttl = \"2000h\"",
            "do.ttl",
            "from 1s to 30d",
        ),
        (
            "rate_limit = \"per-hour\", amount = 5",
            "do.rate_limit",
            "no limit \"per-hour\"",
        ),
        (
            "rate_limit = \"per-minute\", amount = 0",
            "do.amount",
            "at least 1",
        ),
        ("rate_limit = \"per-minute\"", "do.amount", "missing"),
        ("shed = \"critical\"", "do.shed", "never shed"),
        ("shed = \"lowest\"", "do.shed", "high, normal or low"),
        (
            "shed = \"low\", route = \"nope\"",
            "do.route",
            "no route \"nope\"",
        ),
        (
            "model_tier = \"gold\", route = \"chat\"",
            "do.model_tier",
            "unknown tier \"gold\"",
        ),
        ("model_tier = \"economy\"", "do.route", "missing"),
        (
            "model_tier = \"economy\", route = \"files\"",
            "do.route",
            "not an openai route",
        ),
        ("notify = \"pager\"", "do.notify", "no notifier \"pager\""),
        (
            "notify = \"ops\", severity = \"loud\"",
            "do.severity",
            "loud",
        ),
        ("warm = 5, ttl = \"1h\"", "do.ttl", "warm does not take ttl"),
        ("warm = 5, shed = \"low\"", "do", "one of strategy"),
    ];
    for (action, key, says) in cases {
        let p = problems(&rule(action));
        let key = format!("automation.rules[0].{key}");
        assert!(
            p.iter()
                .any(|p| p.key.to_string() == key && p.to_string().contains(says)),
            "{action}: {p:?}"
        );
    }
}

#[test]
fn a_route_may_shed_in_the_file_too() {
    let c = ok(&BASE.replace(
        "pool = \"llm\"\n\n[[routes]]\nname = \"files\"",
        "pool = \"llm\"\nshed = \"low\"\n\n[[routes]]\nname = \"files\"",
    ));
    assert_eq!(c.routes[0].shed, Some(Priority::Low));
    assert_eq!(c.routes[1].shed, None);
    let p = problems(&BASE.replace(
        "pool = \"llm\"\n\n[[routes]]\nname = \"files\"",
        "pool = \"llm\"\nshed = \"critical\"\n\n[[routes]]\nname = \"files\"",
    ));
    assert!(
        p.iter().any(|p| p.key.to_string() == "routes[0].shed"),
        "{p:?}"
    );
}

#[test]
fn changes_apply_to_a_config_and_say_what_was() {
    let mut c = ok(BASE);
    let was = ConfigChange::CacheTtl {
        category: "faq".into(),
        ttl: Duration::from_secs(7200),
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(was, "TTL 1h");
    assert_eq!(c.cache.categories[0].ttl, Duration::from_secs(7200));

    // The burst scales with the amount unless given.
    let was = ConfigChange::RateLimit {
        limit: "per-minute".into(),
        amount: 1200,
        burst: None,
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(was, "600 (burst 60)");
    assert_eq!(
        (c.rate_limits[0].rate.amount, c.rate_limits[0].rate.burst),
        (1200, 120)
    );

    ConfigChange::Shed {
        route: None,
        priority: Priority::Normal,
    }
    .apply(&mut c)
    .unwrap();
    assert!(c.routes.iter().all(|r| r.shed == Some(Priority::Normal)));

    let was = ConfigChange::ModelTier {
        route: "chat".into(),
        tier: "economy".into(),
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(was, "the requested models");
    let policy = c.routes[0].model_policy.as_ref().unwrap();
    assert_eq!(policy.by_priority.len(), 4);
    assert!(policy.by_priority.iter().all(|(_, t)| t == "economy"));

    // What the config no longer has cannot be changed.
    let gone = ConfigChange::RateLimit {
        limit: "per-hour".into(),
        amount: 5,
        burst: None,
    }
    .apply(&mut c)
    .unwrap_err();
    assert!(gone.contains("no rate limit \"per-hour\""), "{gone}");
    let http = ConfigChange::ModelTier {
        route: "files".into(),
        tier: "economy".into(),
    }
    .apply(&mut c)
    .unwrap_err();
    assert!(http.contains("not an openai route"), "{http}");
}

#[test]
fn a_pool_strategy_and_its_weights_change_and_say_what_was() {
    let mut c = ok(BASE);
    let pool = c.pools[0].name.clone();
    let was = ConfigChange::Strategy {
        pool: pool.clone(),
        strategy: crate::BalanceStrategy::Weighted,
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(was, "p2c_ewma");
    assert_eq!(c.pools[0].strategy, crate::BalanceStrategy::Weighted);

    let first = c.pools[0].endpoints[0].name.clone();
    let was = ConfigChange::Weights {
        pool: pool.clone(),
        weights: vec![(first.clone(), 40)],
    }
    .apply(&mut c)
    .unwrap();
    assert!(was.starts_with(&format!("{first}=1")), "{was}");
    assert_eq!(c.pools[0].endpoints[0].weight, 40);

    for (weights, says) in [
        (
            vec![("nowhere".to_string(), 3)],
            "has no endpoint \"nowhere\"",
        ),
        (vec![(first, 0)], "at least 1"),
    ] {
        let e = ConfigChange::Weights {
            pool: pool.clone(),
            weights,
        }
        .apply(&mut c)
        .unwrap_err();
        assert!(e.contains(says), "{e}");
    }
    let e = ConfigChange::Strategy {
        pool: "gone".into(),
        strategy: crate::BalanceStrategy::Random,
    }
    .apply(&mut c)
    .unwrap_err();
    assert!(e.contains("no pool \"gone\""), "{e}");
}
