//! Stage 4b, the model: which model an OpenAI-shaped request goes to, when the gateway
//! decides. A route's `model_policy` sends each priority to a tier (the requested model
//! when it is in it, else the tier's cheapest that has what the request needs) and
//! `"model": "auto"` to the cheapest tiered model that has it; then the budgets in force:
//! one past a `downgrade` threshold sends the request to a cheaper model (unless its
//! priority is spared), one at a `block` threshold refuses it (after the cache: an
//! answer from the cache spends nothing). Every choice says why (the record, the metrics,
//! `x-flowgate-model`, and `POST /api/v1/cost/explain` for a request not sent).

use flowgate_config::{ModelCatalog, ModelInfo, Priority, Provider};
use flowgate_cost::Estimate;
use flowgate_cost::budget::{Budgets, Verdict, Who};
use flowgate_cost::choice::{self, Need};

use crate::error::ProxyError;
use crate::router::RouteEntry;

/// The gateway's choice of model for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// The catalog id of the model chosen.
    pub model: String,
    /// Why, in a few words (`priority low -> tier economy`, `auto`, `budget emergency:
    /// cheapest`).
    pub reason: String,
}

/// What the model stage decided.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub chosen: Option<Chosen>,
    /// What the budgets say (a block is applied after the cache).
    pub verdict: Verdict,
}

/// The request as the model stage sees it.
pub(crate) struct Ask<'a> {
    pub route: &'a RouteEntry,
    pub catalog: &'a ModelCatalog,
    pub tiers: &'a [flowgate_config::ModelTier],
    pub requested: Option<&'a str>,
    pub priority: Priority,
    pub who: Who<'a>,
    pub now: u64,
}

/// Whether `route` can send a request for `m`: a model it serves by its deployments, or
/// one its own pool's provider serves.
fn servable(route: &RouteEntry, m: &ModelInfo) -> bool {
    if route.by_model.contains_key(&m.id) {
        return true;
    }
    if route.cfg.pool.is_none() {
        return false;
    }
    let pool = route.upstream.cfg.provider;
    m.provider == Some(pool)
        || m.ids.iter().any(|(p, _)| *p == pool)
        || (pool == Provider::Azure && m.provider == Some(Provider::OpenAi))
        // A model the config adds without a provider is served by OpenAI(-compatible) pools.
        || (m.provider.is_none() && pool == Provider::OpenAi)
}

/// Decides `ask`'s model; `body` and `estimate` (asked for only when a choice is to be
/// made) say what the request needs.
pub(crate) fn decide(
    ask: &Ask<'_>,
    budgets: &Budgets,
    body: &[u8],
    estimate: impl FnOnce() -> Result<Estimate, ProxyError>,
) -> Result<Decision, ProxyError> {
    let verdict = if budgets.is_empty() {
        Verdict::default()
    } else {
        budgets.check(&ask.who, ask.now)
    };
    let policy = ask.route.cfg.model_policy.as_ref();
    let auto = ask.requested == Some("auto") && policy.is_some_and(|p| p.auto);
    let tier = policy.and_then(|p| {
        p.by_priority
            .iter()
            .find(|(pr, _)| *pr == ask.priority)
            .and_then(|(_, t)| ask.tiers.iter().find(|x| x.name == *t))
    });
    let downgrade = verdict
        .downgrade
        .as_ref()
        .filter(|d| !d.spare.contains(&ask.priority));
    if !auto && tier.is_none() && downgrade.is_none() {
        return Ok(Decision {
            chosen: None,
            verdict,
        });
    }
    let need = Need::of(body, &estimate()?);
    let ok = |m: &ModelInfo| servable(ask.route, m);
    let mut chosen: Option<Chosen> = None;
    if auto {
        let m = choice::auto(ask.catalog, ask.tiers, &need, &ok).ok_or_else(|| {
            ProxyError::Unsupported(flowgate_providers::Unsupported::new(
                "model",
                "\"auto\": no model of the tiers this route serves has what the request needs \
                 (tools, images, JSON mode, streaming, room for the prompt)",
            ))
        })?;
        chosen = Some(Chosen {
            model: m.id.clone(),
            reason: "auto".into(),
        });
    } else if let Some(t) = tier {
        let requested = ask.requested.unwrap_or_default();
        if let Some(m) = choice::in_tier(ask.catalog, t, requested, &need, &ok)
            && ask.catalog.get(requested).is_none_or(|r| r.id != m.id)
        {
            chosen = Some(Chosen {
                model: m.id.clone(),
                reason: format!("priority {} -> tier {}", ask.priority.as_str(), t.name),
            });
        }
    }
    if let Some(d) = downgrade {
        let now = chosen
            .as_ref()
            .map(|c| c.model.as_str())
            .or(ask.requested)
            .unwrap_or_default();
        if let Some(m) = choice::downgrade(ask.catalog, ask.tiers, now, d.to, &need, &ok) {
            chosen = Some(Chosen {
                model: m.id.clone(),
                reason: format!(
                    "budget {}: {} (from {now})",
                    d.budget,
                    match d.to {
                        flowgate_config::DowngradeTo::Cheaper => "cheaper",
                        flowgate_config::DowngradeTo::Cheapest => "cheapest",
                    }
                ),
            });
        }
    }
    Ok(Decision { chosen, verdict })
}
