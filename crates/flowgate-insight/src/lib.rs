//! flowgate's insight: what the gateway concludes from what it measured. Alert rules and
//! their lifecycle ([`alerts`]) and the notifiers that deliver their events ([`notify`]:
//! webhooks, Slack, PagerDuty, e-mail); the health score ([`score`]); anomaly detection
//! ([`anomaly`]), forecasts ([`forecast`]), capacity planning ([`capacity`]) and the
//! bottleneck analysis ([`bottleneck`]). Automation is to come (issue 26). Nothing here
//! runs on the request path: the control plane evaluates it over the metrics history.

pub mod alerts;
pub mod anomaly;
pub mod automation;
pub mod bottleneck;
pub mod capacity;
pub mod forecast;
pub mod notify;
pub mod scaling;
pub mod score;
