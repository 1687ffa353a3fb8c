//! Stage 4b on the request path, for OpenAI bodies: the route's prompt shaping
//! (`flowgate_cost::shaping`), then the model stage (`crate::choose`) given the request's
//! route, caller and priority; a model it chooses is written into the body. The admin
//! API's `explain` asks the same of a request it does not send.

use std::sync::Arc;

use bytes::Bytes;
use flowgate_cost::budget::Who;
use http::request::Parts;

use crate::auth::Caller;
use crate::choose::{Ask, Decision};
use crate::error::ProxyError;
use crate::gateway::Gateway;
use crate::outcome::Outcome;
use crate::router::RouteEntry;
use crate::runtime::Runtime;

impl Gateway {
    /// Shaping, then the model stage, for an OpenAI `body` whose `shape` was checked: what
    /// the stage decided, and the body if either rewrote it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn openai_stages(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        caller: Option<&Caller>,
        parts: &Parts,
        body: &Bytes,
        shape: &super::Shape<'_>,
        out: &mut Outcome,
    ) -> Result<(Decision, Option<Bytes>), ProxyError> {
        out.body = Some(body.clone());
        out.model = shape.model().map(Arc::from);
        out.max_tokens = shape.max_tokens();
        let shaped = flowgate_cost::shaping::apply(&route.cfg.shaping, body).map(|(b, s)| {
            // What the provider is asked for: the client's ask, capped or defaulted.
            out.max_tokens = match out.max_tokens {
                Some(m) => Some(m.saturating_sub(s.completion_tokens_capped)),
                None if s.steps.contains(&"max_tokens_default") => {
                    route.cfg.shaping.max_tokens_default
                }
                None => None,
            };
            out.shaped = Some(s);
            Bytes::from(b)
        });
        if !self.spending().enabled() {
            if let Some(b) = &shaped {
                out.body = Some(b.clone());
            }
            return Ok((Decision::default(), shaped));
        }
        let (decision, chosen) = match &shaped {
            // The shaped body's estimate: its own shape.
            Some(b) => {
                out.body = Some(b.clone());
                let s = super::Shape::of(Some(b), shape.exact);
                self.choose_model(rt, route, caller, parts, b, s.model(), || s.estimate(), out)?
            }
            None => self.choose_model(
                rt,
                route,
                caller,
                parts,
                body,
                shape.model(),
                || shape.estimate(),
                out,
            )?,
        };
        Ok((decision, chosen.or(shaped)))
    }

    /// What the model stage decides for an OpenAI-shaped `body` asking for `requested`;
    /// the body with the chosen model in it, if one was chosen (and `out` says so).
    #[allow(clippy::too_many_arguments)]
    fn choose_model(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        caller: Option<&Caller>,
        parts: &Parts,
        body: &Bytes,
        requested: Option<&str>,
        estimate: impl FnOnce() -> Result<flowgate_cost::Estimate, ProxyError>,
        out: &mut Outcome,
    ) -> Result<(Decision, Option<Bytes>), ProxyError> {
        let decision =
            self.model_decision(rt, route, caller, &parts.headers, body, requested, estimate)?;
        let Some(c) = &decision.chosen else {
            return Ok((decision, None));
        };
        let rewritten = crate::openai::with_model(&Some(body.clone()), &c.model)
            .ok_or_else(|| ProxyError::InvalidJson("the body is not a JSON object".into()))?;
        out.requested_model = requested.map(Arc::from);
        out.model = Some(Arc::from(c.model.as_str()));
        out.model_reason = Some(Arc::from(c.reason.as_str()));
        out.body = Some(rewritten.clone());
        Ok((decision, Some(rewritten)))
    }

    #[allow(clippy::too_many_arguments)]
    fn model_decision(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        caller: Option<&Caller>,
        headers: &http::HeaderMap,
        body: &Bytes,
        requested: Option<&str>,
        estimate: impl FnOnce() -> Result<flowgate_cost::Estimate, ProxyError>,
    ) -> Result<Decision, ProxyError> {
        let budgets = self.spending().budgets().load();
        if budgets.is_empty() && route.cfg.model_policy.is_none() {
            return Ok(Decision::default());
        }
        let priority =
            crate::queues::priority(headers, caller.map(|c| &c.key), route.cfg.priority_header)?;
        let ask = Ask {
            route,
            catalog: &rt.config.models,
            tiers: &rt.config.cost.tiers,
            requested,
            priority,
            who: Who {
                key: caller.map(|c| c.key.name.as_str()),
                team: caller.and_then(|c| c.key.team.as_deref()),
                route: &route.name,
                model: requested,
            },
            now: self.clock().unix_millis() / 1000,
        };
        crate::choose::decide(&ask, &budgets, body, estimate)
    }

    /// The model stage's decision for a request not sent (`POST /api/v1/cost/explain`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn explain_model(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        caller: Option<&Caller>,
        headers: &http::HeaderMap,
        body: &Bytes,
        requested: Option<&str>,
        estimate: impl FnOnce() -> Result<flowgate_cost::Estimate, ProxyError>,
    ) -> Result<serde_json::Value, ProxyError> {
        let priority =
            crate::queues::priority(headers, caller.map(|c| &c.key), route.cfg.priority_header)?;
        let d = self.model_decision(rt, route, caller, headers, body, requested, estimate)?;
        let v = &d.verdict;
        Ok(serde_json::json!({
            "route": &*route.name,
            "priority": priority.as_str(),
            "requested": requested,
            "model": d.chosen.as_ref().map(|c| c.model.as_str()).or(requested),
            "chosen": d.chosen.is_some(),
            "reason": d.chosen.as_ref().map(|c| c.reason.as_str()),
            "blocked_by": v.block.as_ref().map(|b| serde_json::json!({
                "budget": b.budget,
                "match": b.value,
                "spent_usd": flowgate_cost::budget::usd_of(b.spent_nanos),
                "limit_usd": flowgate_cost::budget::usd_of(b.limit_nanos),
                "resets_at": b.resets_at,
            })),
            "downgraded_by": v.downgrade.as_ref().map(|g| serde_json::json!({
                "budget": g.budget,
                "spares": g.spare.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "spared": g.spare.contains(&priority),
            })),
        }))
    }
}
