//! flowgate's insight: what the gateway concludes from what it measured. Alert rules and
//! their lifecycle ([`alerts`]) and the notifiers that deliver their events ([`notify`]:
//! webhooks, Slack, PagerDuty, e-mail); the health score ([`score`]); anomaly detection, forecasts, capacity planning
//! and automation are to come (issues 25 and 26). Nothing here runs on the request path:
//! the control plane evaluates it over the metrics history.

pub mod alerts;
pub mod anomaly;
pub mod capacity;
pub mod forecast;
pub mod notify;
pub mod score;
