//! What would have saved money, read from the spend ledger's sums per route and model:
//! a cheaper model of the same tier for a route whose requests are short, and requests
//! that ask for far more `max_tokens` than their answers use. Each piece of advice
//! carries its evidence; none is given on too few requests.

use flowgate_config::{ModelCatalog, ModelInfo, ModelTier};
use rust_decimal::Decimal;

use crate::ledger::Totals;
use crate::price::cost;
use crate::usage::Usage;

/// Requests answered upstream below which a route and model get no advice.
pub const MIN_REQUESTS: u64 = 20;
/// The least share of the spend a cheaper model must save.
const MIN_SAVING_PERCENT: u64 = 10;
/// A request is short for a model when its prompt and answer fill at most this share of
/// the model's context window (one over).
const SHORT_SHARE: u64 = 4;
/// Requests that ask for this many times what they use, or more, ask too much.
const ASKED_OVER_USED: u64 = 4;

/// A cheaper model of the same tier for a route's requests to `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheaperModel {
    pub route: String,
    pub model: String,
    pub instead: String,
    pub tier: String,
    /// Answered upstream, and their average prompt and answer tokens.
    pub requests: u64,
    pub avg_prompt_tokens: u64,
    pub avg_answer_tokens: u64,
    pub spent_usd: Decimal,
    /// The spend at `instead`'s prices (the requests' mix of prompt and answer tokens
    /// priced at both).
    pub would_cost_usd: Decimal,
}

impl CheaperModel {
    pub fn saving_usd(&self) -> Decimal {
        self.spent_usd - self.would_cost_usd
    }
}

/// Requests to `model` on `route` that ask for far more answer tokens than they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxTokens {
    pub route: String,
    pub model: String,
    /// Requests that set `max_tokens`, answered upstream.
    pub requests: u64,
    pub avg_asked: u64,
    pub avg_used: u64,
    pub most_used: u64,
    /// A cap that every answer seen fits in: the most used, a quarter more, in 64s.
    pub suggested_cap: u64,
    /// What an answer running to its `max_tokens` could cost more than one running to
    /// the cap, on average (at the model's output price).
    pub exposure_usd_per_request: Decimal,
}

/// The prompt and answer tokens of `t`, as one usage.
fn usage_of(t: &Totals) -> Usage {
    Usage {
        prompt_tokens: t.input_tokens + t.cache_read_tokens + t.cache_write_tokens,
        completion_tokens: t.output_tokens,
        cache_read_tokens: t.cache_read_tokens,
        cache_write_tokens: t.cache_write_tokens,
    }
}

/// Whether `instead` can do all `m` does.
fn covers(instead: &ModelInfo, m: &ModelInfo) -> bool {
    let (a, b) = (instead.capabilities, m.capabilities);
    (a.chat || !b.chat)
        && (a.tools || !b.tools)
        && (a.vision || !b.vision)
        && (a.json || !b.json)
        && (a.streaming || !b.streaming)
        && (a.embeddings || !b.embeddings)
}

/// For each route and model with enough requests, the model of its tier that has every
/// capability it has, room for its requests four times over, and would have cost least
/// for the same tokens, when that saves at least a tenth.
pub fn cheaper_models(
    rows: &[(String, String, Totals)],
    catalog: &ModelCatalog,
    tiers: &[ModelTier],
) -> Vec<CheaperModel> {
    let mut out = Vec::new();
    for (route, model, t) in rows {
        let requests = t.requests.saturating_sub(t.cache_hits);
        if requests < MIN_REQUESTS || t.usd <= Decimal::ZERO {
            continue;
        }
        let Some(m) = catalog.get(model) else {
            continue;
        };
        let Some(tier) = crate::choice::tier_of(catalog, tiers, model) else {
            continue;
        };
        // Tokens of every request (answers from the cache count theirs too): their mix
        // prices the spend at another model's prices.
        let usage = usage_of(t);
        let Some(now) = m
            .price
            .as_ref()
            .map(|p| cost(&usage, p))
            .filter(|c| !c.is_zero())
        else {
            continue;
        };
        let per_request = (usage.prompt_tokens + usage.completion_tokens) / t.requests;
        let best = tier
            .models
            .iter()
            .filter(|id| **id != m.id)
            .filter_map(|id| catalog.get(id))
            .filter(|c| covers(c, m))
            .filter(|c| {
                c.context_window
                    .is_none_or(|w| per_request.saturating_mul(SHORT_SHARE) <= w)
            })
            .filter_map(|c| Some((c, cost(&usage, c.price.as_ref()?))))
            .min_by(|a, b| a.1.cmp(&b.1));
        let Some((c, at_c)) = best else {
            continue;
        };
        let would = (t.usd * at_c / now).round_dp(9);
        let saving = t.usd - would;
        if saving * Decimal::ONE_HUNDRED < t.usd * Decimal::from(MIN_SAVING_PERCENT) {
            continue;
        }
        out.push(CheaperModel {
            route: route.clone(),
            model: m.id.clone(),
            instead: c.id.clone(),
            tier: tier.name.clone(),
            requests,
            avg_prompt_tokens: usage.prompt_tokens / t.requests,
            avg_answer_tokens: usage.completion_tokens / t.requests,
            spent_usd: t.usd,
            would_cost_usd: would,
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.saving_usd()));
    out
}

/// For each route and model with enough requests that set `max_tokens`, those that ask
/// on average four times what they use or more, and more than twice what any used.
pub fn max_tokens(rows: &[(String, String, Totals)], catalog: &ModelCatalog) -> Vec<MaxTokens> {
    let mut out = Vec::new();
    for (route, model, t) in rows {
        let n = t.capped_requests;
        if n < MIN_REQUESTS {
            continue;
        }
        let (asked, used) = (t.max_tokens_asked / n, t.capped_output_tokens / n);
        if asked < used.max(1).saturating_mul(ASKED_OVER_USED)
            || asked <= t.max_output_tokens.saturating_mul(2)
        {
            continue;
        }
        let cap = (t.max_output_tokens.saturating_mul(5) / 4)
            .div_ceil(64)
            .max(1)
            * 64;
        let exposure = catalog
            .get(model)
            .and_then(|m| m.price)
            .map_or(Decimal::ZERO, |p| {
                Decimal::from(asked.saturating_sub(cap)) * p.output_usd_per_mtok
                    / Decimal::from(1_000_000u64)
            });
        out.push(MaxTokens {
            route: route.clone(),
            model: model.clone(),
            requests: n,
            avg_asked: asked,
            avg_used: used,
            most_used: t.max_output_tokens,
            suggested_cap: cap,
            exposure_usd_per_request: exposure,
        });
    }
    out.sort_by(|a, b| {
        (b.avg_asked - b.avg_used)
            .saturating_mul(b.requests)
            .cmp(&(a.avg_asked - a.avg_used).saturating_mul(a.requests))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn catalog() -> (ModelCatalog, Vec<ModelTier>) {
        let toml = r#"
[models."big"]
input_usd_per_mtok = 10
output_usd_per_mtok = 30
context_window = 128000
capabilities = ["chat", "tools", "streaming"]

[models."small"]
input_usd_per_mtok = 1
output_usd_per_mtok = 3
context_window = 8000
capabilities = ["chat", "tools", "streaming"]

[models."tiny-no-tools"]
input_usd_per_mtok = 0.1
output_usd_per_mtok = 0.3
context_window = 128000
capabilities = ["chat", "streaming"]

[[cost.tiers]]
name = "work"
models = ["big", "small", "tiny-no-tools"]

[pools.p]
endpoints = [{ url = "http://127.0.0.1:1" }]

[[routes]]
name = "chat"
kind = "openai"
prefix = "/v1"
pool = "p"
"#;
        let c = flowgate_config::parse(toml, "test.toml", std::iter::empty()).unwrap();
        (c.models.clone(), c.cost.tiers.clone())
    }

    fn spent(model: &ModelCatalog, name: &str, requests: u64, prompt: u64, answer: u64) -> Totals {
        let u = Usage {
            prompt_tokens: prompt * requests,
            completion_tokens: answer * requests,
            ..Usage::default()
        };
        let mut t = Totals::of(
            &u,
            false,
            cost(&u, model.get(name).unwrap().price.as_ref().unwrap()),
            false,
        );
        t.requests = requests;
        t
    }

    #[test]
    fn a_cheaper_model_of_the_tier_with_every_capability_and_room_is_advised() {
        let (c, tiers) = catalog();
        let rows = vec![
            (
                "chat".to_string(),
                "big".to_string(),
                spent(&c, "big", 100, 500, 100),
            ),
            // Long requests: "small" has no room for them four times over.
            (
                "long".to_string(),
                "big".to_string(),
                spent(&c, "big", 100, 3000, 100),
            ),
            // Too few to say.
            (
                "rare".to_string(),
                "big".to_string(),
                spent(&c, "big", 5, 500, 100),
            ),
        ];
        let advice = cheaper_models(&rows, &c, &tiers);
        let [a] = advice.as_slice() else {
            panic!("{advice:?}")
        };
        assert_eq!((a.route.as_str(), a.instead.as_str()), ("chat", "small"));
        assert_eq!(
            (a.requests, a.avg_prompt_tokens, a.avg_answer_tokens),
            (100, 500, 100)
        );
        // 100 × (500 × $10 + 100 × $30) / M = $0.8; at small's prices $0.08.
        assert_eq!(a.spent_usd, Decimal::from_str("0.8").unwrap());
        assert_eq!(a.would_cost_usd, Decimal::from_str("0.08").unwrap());
        assert_eq!(a.saving_usd(), Decimal::from_str("0.72").unwrap());
    }

    #[test]
    fn requests_asking_far_more_max_tokens_than_they_use_are_found() {
        let (c, _) = catalog();
        let mut t = spent(&c, "small", 50, 100, 0);
        for used in [100u64, 200, 300] {
            let u = Usage {
                prompt_tokens: 100,
                completion_tokens: used,
                ..Usage::default()
            };
            for _ in 0..10 {
                t.add(&Totals::of(&u, false, Decimal::ZERO, false).asked(Some(4096)));
            }
        }
        let rows = vec![("chat".to_string(), "small".to_string(), t)];
        let [a] = max_tokens(&rows, &c).try_into().unwrap();
        assert_eq!(
            (a.requests, a.avg_asked, a.avg_used, a.most_used),
            (30, 4096, 200, 300)
        );
        // 300 × 1.25 = 375, in 64s: 384.
        assert_eq!(a.suggested_cap, 384);
        // (4096 − 384) × $3 / M.
        assert_eq!(
            a.exposure_usd_per_request,
            Decimal::from_str("0.011136").unwrap()
        );
        // Asking twice what is used is not too much.
        let mut fine = Totals::default();
        for _ in 0..30 {
            let u = Usage {
                completion_tokens: 200,
                ..Usage::default()
            };
            fine.add(&Totals::of(&u, false, Decimal::ZERO, false).asked(Some(400)));
        }
        assert!(max_tokens(&[("chat".into(), "small".into(), fine)], &c).is_empty());
    }
}
