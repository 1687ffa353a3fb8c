//! The alerting families, encoded at each scrape: the alerts pending and firing (as
//! Prometheus's own `ALERTS`), and each notifier's deliveries by result and its retries.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use flowgate_insight::alerts::{Engine, Status};
use flowgate_insight::notify::Notifiers;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::cache_metrics::{counter, gauge};

/// See the module's documentation.
#[derive(Debug)]
pub(crate) struct AlertCollector {
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) notifiers: Arc<ArcSwap<Notifiers>>,
}

impl Collector for AlertCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let alerts = self.engine.lock().map(|en| en.alerts()).unwrap_or_default();
        let active: Vec<_> = alerts
            .iter()
            .filter(|a| a.status != Status::Inactive)
            .map(|a| {
                let state = if a.status == Status::Firing {
                    "firing"
                } else {
                    "pending"
                };
                (a.rule.as_str(), a.severity.as_str(), state)
            })
            .collect();
        gauge(
            e,
            "flowgate_alerts",
            "Alerts pending or firing (1 each), by rule, severity and state",
            active
                .iter()
                .map(|(rule, severity, state)| {
                    (
                        vec![("rule", *rule), ("severity", *severity), ("state", *state)],
                        1i64,
                    )
                })
                .collect(),
        )?;
        let statuses = self.notifiers.load().statuses();
        let mut deliveries = Vec::new();
        let mut retries = Vec::new();
        for s in &statuses {
            for (result, n) in [
                ("sent", s.sent),
                ("failed", s.failed),
                ("dropped", s.dropped),
            ] {
                deliveries.push((
                    vec![
                        ("notifier", s.name.as_str()),
                        ("kind", s.kind),
                        ("result", result),
                    ],
                    n,
                ));
            }
            retries.push((
                vec![("notifier", s.name.as_str()), ("kind", s.kind)],
                s.retries,
            ));
        }
        counter(
            e,
            "flowgate_alert_notifications",
            "Alert events delivered to a notifier, by result (failed: out of retries or refused; dropped: its queue was full)",
            deliveries,
        )?;
        counter(
            e,
            "flowgate_alert_notification_retries",
            "Alert deliveries tried again after a receiver failure",
            retries,
        )
    }
}
