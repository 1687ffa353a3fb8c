//! The advisor's watch on the control plane: every second, each database whose `poll` has
//! passed is read ([`crate::databases`]), its shapes' means going into the metrics history
//! through a probe, and each plan change seen is logged and told to the alert history and
//! the notifiers (a warning when the shape is slow since, information otherwise).

use std::sync::{Arc, Weak};
use std::time::Duration;

use flowgate_config::Severity;
use flowgate_insight::alerts::Event;

use crate::gateway::Gateway;

/// How long a poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads every database due (its `poll` past since it was last read) every second while
/// databases are configured, until `stopped`; feeds the history through a probe.
pub(crate) fn spawn(gw: &Arc<Gateway>, stopped: tokio::sync::watch::Receiver<bool>) {
    if let Some(h) = gw.history() {
        let weak: Weak<Gateway> = Arc::downgrade(gw);
        h.add_probe(Box::new(move || {
            weak.upgrade()
                .map(|gw| gw.databases().samples())
                .unwrap_or_default()
        }));
    }
    crate::control_loop::every(
        gw,
        stopped,
        |c| (Duration::from_secs(1), !c.databases.is_empty()),
        |gw| async move { cycle(&gw).await },
    );
}

/// One turn: the databases due read (one after the other), the ones no longer configured
/// forgotten.
pub(crate) async fn cycle(gw: &Arc<Gateway>) {
    let now = gw.clock().unix_millis() / 1000;
    let configured = gw.runtime().config.databases.clone();
    let names: Vec<&str> = configured.iter().map(|d| d.name.as_str()).collect();
    gw.databases().keep_only(&names);
    for cfg in &configured {
        let due = gw
            .databases()
            .last_poll(&cfg.name)
            .is_none_or(|at| now >= at + cfg.poll.as_secs());
        if due {
            poll(gw, cfg, now).await;
        }
    }
}

/// Reads `cfg`'s database and updates its watch; a plan change is noted.
async fn poll(gw: &Arc<Gateway>, cfg: &flowgate_config::DatabaseConfig, now: u64) {
    let slow_ms = cfg.slow_ms();
    let changed = gw.databases().poll(cfg, now, POLL_TIMEOUT).await;
    for c in changed {
        tracing::warn!(database = %cfg.name, queryid = c.queryid, before = %c.before, after = %c.after, "a query's plan changed");
        // A change that leaves the query slow is a regression to look at.
        let severity = if c.mean_ms >= slow_ms {
            Severity::Warning
        } else {
            Severity::Info
        };
        announce(
            gw,
            &cfg.name,
            severity,
            format!(
                "database {}: a query's plan changed ({:.1} ms mean since)",
                cfg.name, c.mean_ms
            ),
            format!("{}\nbefore: {}\nafter: {}", c.query, c.before, c.after),
        );
    }
}

/// Tells the alert history and the notifiers what happened to database `name` (a plan
/// change, an optimization taken).
pub(crate) fn announce(
    gw: &Gateway,
    name: &str,
    severity: Severity,
    summary: String,
    description: String,
) {
    let now = gw.clock().unix_millis() / 1000;
    let e = Event::notice(
        now,
        "database",
        ("database", name),
        severity,
        summary,
        description,
    );
    crate::alerting::announce(gw.alerting(), e, &[]);
}
