//! Which model a request goes to when the gateway chooses it: the cheapest model that has
//! what the request needs, among a tier's models (a route's policy by priority), among
//! all tiered models (`"model": "auto"`), or, under budget pressure, among the requested
//! model's tier (cheaper) or the cheapest tier (cheapest). What a request needs is read
//! from it: tools, images, JSON mode, streaming, and room for its prompt and answer in the
//! model's context window. Cost is compared on the request itself: its estimated prompt
//! at each model's input price and its answer (its `max_tokens`, else
//! [`ASSUMED_ANSWER`] tokens) at the output price.

use flowgate_config::{DowngradeTo, ModelCatalog, ModelInfo, ModelTier};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::tokens::Estimate;

/// The answer's length assumed when the request sets no `max_tokens`.
pub const ASSUMED_ANSWER: u64 = 256;

/// What a request needs of a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub stream: bool,
    pub prompt: u64,
    /// The longest answer it allows, when it says.
    pub completion: Option<u64>,
}

impl Need {
    /// What the OpenAI chat request `body` needs, its size as `estimate` counts it.
    pub fn of(body: &[u8], estimate: &Estimate) -> Need {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let vision = v
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
            .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"));
        Need {
            tools: v
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty()),
            vision,
            json: matches!(
                v.pointer("/response_format/type").and_then(Value::as_str),
                Some("json_object" | "json_schema")
            ),
            stream: v.get("stream").and_then(Value::as_bool) == Some(true),
            prompt: estimate.prompt,
            completion: estimate.completion,
        }
    }

    /// Whether `m` can serve it.
    pub fn fits(&self, m: &ModelInfo) -> bool {
        let c = m.capabilities;
        let room = m
            .context_window
            .is_none_or(|w| self.prompt.saturating_add(self.completion.unwrap_or(0)) <= w);
        c.chat
            && (!self.tools || c.tools)
            && (!self.vision || c.vision)
            && (!self.json || c.json)
            && (!self.stream || c.streaming)
            && room
    }

    /// What it would cost on `m`, as estimated; `None` when `m` has no price.
    pub fn cost_on(&self, m: &ModelInfo) -> Option<Decimal> {
        let p = m.price?;
        let answer = self.completion.unwrap_or(ASSUMED_ANSWER);
        Some(
            (Decimal::from(self.prompt) * p.input_usd_per_mtok
                + Decimal::from(answer) * p.output_usd_per_mtok)
                / Decimal::from(1_000_000u64),
        )
    }
}

/// The cheapest of `names` that fits `need` and that `servable` accepts (ties: the first
/// named).
pub fn cheapest<'c>(
    catalog: &'c ModelCatalog,
    names: &[String],
    need: &Need,
    servable: &dyn Fn(&ModelInfo) -> bool,
) -> Option<&'c ModelInfo> {
    let mut best: Option<(&ModelInfo, Decimal)> = None;
    for m in names.iter().filter_map(|n| catalog.get(n)) {
        if !need.fits(m) || !servable(m) {
            continue;
        }
        let Some(cost) = need.cost_on(m) else {
            continue;
        };
        if best.is_none_or(|(_, b)| cost < b) {
            best = Some((m, cost));
        }
    }
    best.map(|(m, _)| m)
}

/// The tier `model` (an id or alias) is in.
pub fn tier_of<'t>(
    catalog: &ModelCatalog,
    tiers: &'t [ModelTier],
    model: &str,
) -> Option<&'t ModelTier> {
    let id = &catalog.get(model)?.id;
    tiers.iter().find(|t| t.models.contains(id))
}

/// The model of `tier` for a request for `requested`: the requested one when it is in the
/// tier and fits, else the tier's cheapest that fits.
pub fn in_tier<'c>(
    catalog: &'c ModelCatalog,
    tier: &ModelTier,
    requested: &str,
    need: &Need,
    servable: &dyn Fn(&ModelInfo) -> bool,
) -> Option<&'c ModelInfo> {
    if let Some(m) = catalog.get(requested)
        && tier.models.contains(&m.id)
        && need.fits(m)
        && servable(m)
    {
        return Some(m);
    }
    cheapest(catalog, &tier.models, need, servable)
}

/// The cheapest model of every tier that fits (`"model": "auto"`).
pub fn auto<'c>(
    catalog: &'c ModelCatalog,
    tiers: &[ModelTier],
    need: &Need,
    servable: &dyn Fn(&ModelInfo) -> bool,
) -> Option<&'c ModelInfo> {
    let all: Vec<String> = tiers.iter().flat_map(|t| t.models.clone()).collect();
    cheapest(catalog, &all, need, servable)
}

/// A cheaper model for a request for `requested` under budget pressure: in its own tier
/// and cheaper for this request (`Cheaper`), or the cheapest that fits in the cheapest
/// tier that has one (`Cheapest`). `None` when there is none cheaper.
pub fn downgrade<'c>(
    catalog: &'c ModelCatalog,
    tiers: &[ModelTier],
    requested: &str,
    to: DowngradeTo,
    need: &Need,
    servable: &dyn Fn(&ModelInfo) -> bool,
) -> Option<&'c ModelInfo> {
    let now = catalog.get(requested);
    let now_cost = now.and_then(|m| need.cost_on(m));
    let cheaper = |m: &ModelInfo| {
        Some(&m.id) != now.map(|n| &n.id)
            && match (need.cost_on(m), now_cost) {
                (Some(c), Some(n)) => c < n,
                // A requested model without a price: any priced one is the cheaper bet.
                (Some(_), None) => true,
                _ => false,
            }
    };
    let pick = match to {
        DowngradeTo::Cheaper => {
            let tier = tier_of(catalog, tiers, requested)?;
            cheapest(catalog, &tier.models, need, &|m| servable(m) && cheaper(m))
        }
        DowngradeTo::Cheapest => tiers
            .iter()
            .rev()
            .find_map(|t| cheapest(catalog, &t.models, need, servable)),
    };
    pick.filter(|m| cheaper(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
[[cost.tiers]]
name = "premium"
models = ["gpt-4o", "claude-sonnet-4-5"]

[[cost.tiers]]
name = "economy"
models = ["gpt-4o-mini", "claude-haiku-4-5", "text-only-cheap"]

[models."text-only-cheap"]
input_usd_per_mtok = 0.01
output_usd_per_mtok = 0.02
context_window = 4000
"#;

    fn setup() -> (ModelCatalog, Vec<ModelTier>) {
        let text = format!(
            "[pools.p]\nendpoints = [{{ url = \"http://127.0.0.1:1\" }}]\n\n\
             [[routes]]\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"p\"\n{CATALOG}"
        );
        let c = flowgate_config::parse(&text, "t.toml", std::iter::empty()).unwrap();
        (c.models.clone(), c.cost.tiers.clone())
    }

    fn need(body: &str, prompt: u64) -> Need {
        Need::of(
            body.as_bytes(),
            &Estimate {
                prompt,
                completion: None,
            },
        )
    }

    const PLAIN: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    const TOOLS: &str = r#"{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}"#;
    const IMAGE: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#;

    fn any(_: &ModelInfo) -> bool {
        true
    }

    #[test]
    fn needs_are_read_from_the_request() {
        assert_eq!(
            need(TOOLS, 5),
            Need {
                tools: true,
                prompt: 5,
                ..Need::default()
            }
        );
        assert!(need(IMAGE, 5).vision);
        let json = r#"{"response_format":{"type":"json_schema"},"stream":true,"messages":[]}"#;
        let n = need(json, 1);
        assert!(n.json && n.stream && !n.tools);
    }

    #[test]
    fn auto_is_the_cheapest_that_has_what_the_request_needs() {
        let (c, tiers) = setup();
        assert_eq!(
            auto(&c, &tiers, &need(PLAIN, 100), &any).unwrap().id,
            "text-only-cheap"
        );
        // Tools: the cheap text-only model has none.
        assert_eq!(
            auto(&c, &tiers, &need(TOOLS, 100), &any).unwrap().id,
            "gpt-4o-mini"
        );
        // A prompt past its 4k context.
        assert_ne!(
            auto(&c, &tiers, &need(PLAIN, 5000), &any).unwrap().id,
            "text-only-cheap"
        );
        // What the route cannot serve is not chosen.
        let no_openai = |m: &ModelInfo| !m.id.starts_with("gpt");
        assert_eq!(
            auto(&c, &tiers, &need(TOOLS, 100), &no_openai).unwrap().id,
            "claude-haiku-4-5-20251001"
        );
    }

    #[test]
    fn a_downgrade_stays_in_the_tier_or_goes_to_the_cheapest_and_never_lacks_a_capability() {
        let (c, tiers) = setup();
        // Cheaper, in the premium tier: gpt-4o (2.50/10) is cheaper than Sonnet (3/15).
        let m = downgrade(
            &c,
            &tiers,
            "claude-sonnet-4-5",
            DowngradeTo::Cheaper,
            &need(PLAIN, 1000),
            &any,
        );
        assert_eq!(m.unwrap().id, "gpt-4o");
        // The cheapest of its tier already: nothing cheaper there.
        assert!(
            downgrade(
                &c,
                &tiers,
                "gpt-4o",
                DowngradeTo::Cheaper,
                &need(PLAIN, 1000),
                &any
            )
            .is_none()
        );
        // The cheapest tier, with what the request needs.
        let m = downgrade(
            &c,
            &tiers,
            "gpt-4o",
            DowngradeTo::Cheapest,
            &need(PLAIN, 1000),
            &any,
        );
        assert_eq!(m.unwrap().id, "text-only-cheap");
        let m = downgrade(
            &c,
            &tiers,
            "gpt-4o",
            DowngradeTo::Cheapest,
            &need(TOOLS, 1000),
            &any,
        );
        assert_eq!(m.unwrap().id, "gpt-4o-mini");
        // Images: every economy model here sees them but the text-only one.
        let m = downgrade(
            &c,
            &tiers,
            "gpt-4o",
            DowngradeTo::Cheapest,
            &need(IMAGE, 1000),
            &any,
        )
        .unwrap();
        assert!(m.capabilities.vision, "{}", m.id);
        // Already the cheapest: no downgrade.
        assert!(
            downgrade(
                &c,
                &tiers,
                "text-only-cheap",
                DowngradeTo::Cheapest,
                &need(PLAIN, 10),
                &any
            )
            .is_none()
        );
    }

    #[test]
    fn a_tier_keeps_the_requested_model_when_it_is_in_it() {
        let (c, tiers) = setup();
        let m = in_tier(&c, &tiers[1], "claude-haiku-4-5", &need(PLAIN, 10), &any).unwrap();
        assert_eq!(m.id, "claude-haiku-4-5-20251001");
        let m = in_tier(&c, &tiers[1], "gpt-4o", &need(TOOLS, 10), &any).unwrap();
        assert_eq!(m.id, "gpt-4o-mini");
        assert_eq!(
            tier_of(&c, &tiers, "claude-sonnet-4-5").unwrap().name,
            "premium"
        );
    }
}
