//! The model catalog (`docs/models.md`): what each model is (its provider, aliases,
//! context window, longest answer, prices, capabilities, its id at other providers) and
//! where the gateway serves it (`deployments`). A versioned catalog ships inside the binary
//! (`catalog/models.toml`); a config's `[models."NAME"]` tables extend it with new models
//! or override any field of a model it names (by id or alias). Names ending in `*` price
//! every model starting with the rest (the longest such prefix wins) and carry prices only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::provider::Provider;

/// The shipped catalog's text.
const SHIPPED: &str = include_str!("../catalog/models.toml");

/// A model's price, in US dollars per million tokens (decimals, as written: never a
/// float for money).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    pub input_usd_per_mtok: Decimal,
    pub output_usd_per_mtok: Decimal,
    /// A prompt-cache hit (the input price when the provider names none).
    pub cache_read_usd_per_mtok: Decimal,
    /// A prompt-cache write (the input price when the provider names none).
    pub cache_write_usd_per_mtok: Decimal,
}

/// What a model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub chat: bool,
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub streaming: bool,
    pub embeddings: bool,
}

const CAPABILITIES: &[&str] = &["chat", "tools", "vision", "json", "streaming", "embeddings"];

impl Capabilities {
    fn set(&mut self, name: &str) -> bool {
        let flag = match name {
            "chat" => &mut self.chat,
            "tools" => &mut self.tools,
            "vision" => &mut self.vision,
            "json" => &mut self.json,
            "streaming" => &mut self.streaming,
            "embeddings" => &mut self.embeddings,
            _ => return false,
        };
        *flag = true;
        true
    }

    /// The names of what it can do, in the catalog's order.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.chat,
            self.tools,
            self.vision,
            self.json,
            self.streaming,
            self.embeddings,
        ];
        CAPABILITIES
            .iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(*n))
            .collect()
    }
}

/// A pool that serves a model, in the model's order: the first serves it, the rest are its
/// fallback chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub pool: String,
    /// The id its servers know the model by, when not the catalog's for their provider.
    pub model: Option<String>,
}

/// One model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    /// Whose model it is (its id is that provider's).
    pub provider: Option<Provider>,
    pub aliases: Vec<String>,
    /// Its id at other providers (`ids.bedrock`).
    pub ids: Vec<(Provider, String)>,
    /// Tokens of prompt and answer together.
    pub context_window: Option<u64>,
    /// The longest answer, in tokens: the `max_tokens` sent to providers that require one
    /// when the client sets none.
    pub max_output: Option<u64>,
    pub price: Option<ModelPrice>,
    pub capabilities: Capabilities,
    pub deployments: Vec<Deployment>,
}

impl ModelInfo {
    /// The id a server of `provider` knows this model by, if it serves it.
    pub fn id_at(&self, provider: Provider) -> Option<&str> {
        if let Some((_, id)) = self.ids.iter().find(|(p, _)| *p == provider) {
            return Some(id);
        }
        match (self.provider, provider) {
            (Some(p), q) if p == q => Some(&self.id),
            // Bedrock names every model its own way.
            (_, Provider::Bedrock) => None,
            _ => Some(&self.id),
        }
    }
}

/// Every model the gateway knows, by id and alias.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCatalog {
    /// The shipped catalog's version.
    pub version: String,
    models: Vec<ModelInfo>,
    names: HashMap<String, usize>,
    /// Prices by name prefix, longest first.
    prefixes: Vec<(String, ModelPrice)>,
}

/// `[models."NAME"]`, in the shipped catalog and in a config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub provider: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub ids: Option<BTreeMap<String, String>>,
    pub context_window: Option<u64>,
    pub max_output: Option<u64>,
    #[serde(default, deserialize_with = "crate::units::usd")]
    pub input_usd_per_mtok: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::units::usd")]
    pub output_usd_per_mtok: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::units::usd")]
    pub cache_read_usd_per_mtok: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::units::usd")]
    pub cache_write_usd_per_mtok: Option<Decimal>,
    pub capabilities: Option<Vec<String>>,
    pub deployments: Option<Vec<RawDeployment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeployment {
    pub pool: String,
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: String,
    models: BTreeMap<String, RawModel>,
}

impl ModelCatalog {
    /// The catalog that ships inside the binary.
    pub fn shipped() -> &'static ModelCatalog {
        static SHIPPED_CATALOG: OnceLock<ModelCatalog> = OnceLock::new();
        SHIPPED_CATALOG.get_or_init(|| {
            let mut found = Vec::new();
            let c = parse_shipped(&mut found);
            // The shipped file is checked by a test; a broken one would load as far as
            // it reads.
            for (key, why) in found {
                tracing::error!(%key, why, "the shipped model catalog has a problem");
            }
            c
        })
    }

    /// The model named `name` (its id or an alias).
    pub fn get(&self, name: &str) -> Option<&ModelInfo> {
        self.names.get(name).map(|&i| &self.models[i])
    }

    /// The price of `model`, if the catalog has one.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        self.get(model).and_then(|m| m.price).or_else(|| {
            self.prefixes
                .iter()
                .find(|(p, _)| model.starts_with(p.as_str()))
                .map(|(_, price)| *price)
        })
    }

    /// Every model.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The models the gateway serves (those with deployments), in name order.
    pub fn served(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.iter().filter(|m| !m.deployments.is_empty())
    }

    /// Up to `n` names of served models closest to `name` (by edit distance), for an error
    /// that says what the client may have meant.
    pub fn closest(&self, name: &str, n: usize) -> Vec<&str> {
        let mut names: Vec<(usize, &str)> = self
            .served()
            .flat_map(|m| {
                std::iter::once(m.id.as_str()).chain(m.aliases.iter().map(String::as_str))
            })
            .map(|c| (crate::units::distance(name, c), c))
            .collect();
        names.sort();
        names.into_iter().take(n).map(|(_, c)| c).collect()
    }

    pub fn len(&self) -> usize {
        self.models.len() + self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index(&mut self) {
        self.names.clear();
        for (i, m) in self.models.iter().enumerate() {
            self.names.insert(m.id.clone(), i);
        }
        // Ids win over aliases.
        for (i, m) in self.models.iter().enumerate() {
            for a in &m.aliases {
                self.names.entry(a.clone()).or_insert(i);
            }
        }
        self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }
}

fn parse_shipped(found: &mut Found) -> ModelCatalog {
    let raw: RawCatalog = match toml::from_str(SHIPPED) {
        Ok(r) => r,
        Err(e) => {
            found.push((KeyPath::default(), format!("catalog/models.toml: {e}")));
            return ModelCatalog::default();
        }
    };
    let mut c = ModelCatalog {
        version: raw.version,
        ..ModelCatalog::default()
    };
    let none = BTreeSet::new();
    apply(
        &mut c,
        &raw.models,
        &none,
        &KeyPath::default().key("models"),
        found,
    );
    c
}

/// The shipped catalog with a config's `[models]` applied; `pools`: the config's pool names.
pub(crate) fn catalog(
    raw: &BTreeMap<String, RawModel>,
    pools: &BTreeSet<&str>,
    key: &KeyPath,
    found: &mut Found,
) -> ModelCatalog {
    let mut c = ModelCatalog::shipped().clone();
    apply(&mut c, raw, pools, key, found);
    c
}

fn apply(
    c: &mut ModelCatalog,
    raw: &BTreeMap<String, RawModel>,
    pools: &BTreeSet<&str>,
    key: &KeyPath,
    found: &mut Found,
) {
    // Models whose prices these entries set: a prefix does not reprice them.
    let mut priced = BTreeSet::new();
    for (name, m) in raw {
        let key = key.clone().key(name);
        if name.is_empty()
            || name.len() > 256
            || name.strip_suffix('*').unwrap_or(name).contains('*')
        {
            found.push((
                key.clone(),
                "a model name is 1 to 256 characters, with '*' only at the end".into(),
            ));
            continue;
        }
        if let Some(prefix) = name.strip_suffix('*') {
            let only_prices = m.provider.is_none()
                && m.aliases.is_none()
                && m.ids.is_none()
                && m.context_window.is_none()
                && m.max_output.is_none()
                && m.capabilities.is_none()
                && m.deployments.is_none();
            if !only_prices {
                found.push((
                    key.clone(),
                    "a name ending in '*' prices every model it starts; it carries prices only"
                        .into(),
                ));
            }
            let price = new_price(m, &key, found);
            c.prefixes.push((prefix.to_string(), price));
            continue;
        }
        let at = c.names.get(name.as_str()).copied();
        let i = match at {
            Some(i) => i,
            None => {
                let price = new_price(m, &key, found);
                c.models.push(ModelInfo {
                    id: name.clone(),
                    provider: None,
                    aliases: Vec::new(),
                    ids: Vec::new(),
                    context_window: None,
                    max_output: None,
                    price: Some(price),
                    capabilities: Capabilities {
                        chat: true,
                        streaming: true,
                        ..Capabilities::default()
                    },
                    deployments: Vec::new(),
                });
                c.models.len() - 1
            }
        };
        let info = &mut c.models[i];
        fill(info, m, at.is_some(), pools, &key, found);
        if m.input_usd_per_mtok.is_some() || m.output_usd_per_mtok.is_some() {
            priced.insert(i);
        }
        // The new names must not be another model's.
        let own = c.names.get(name.as_str()).copied();
        for a in m.aliases.iter().flatten() {
            if let Some(&other) = c.names.get(a.as_str())
                && Some(other) != own
                && c.models.get(other).is_some_and(|o| o.id != *name)
            {
                found.push((
                    key.clone().key("aliases"),
                    format!("{a:?} already names the model {}", c.models[other].id),
                ));
            }
        }
        c.index();
    }
    c.index();
    // A prefix prices every model it starts that these entries do not price by name, the
    // shipped ones too: the config's word beats the catalog's.
    for (i, m) in c.models.iter_mut().enumerate() {
        if priced.contains(&i) {
            continue;
        }
        if let Some((_, p)) = c
            .prefixes
            .iter()
            .find(|(p, _)| m.id.starts_with(p.as_str()))
        {
            m.price = Some(*p);
        }
    }
}

/// The prices of a model the catalog does not know: input and output required.
fn new_price(m: &RawModel, key: &KeyPath, found: &mut Found) -> ModelPrice {
    let input = price(m.input_usd_per_mtok, true, key, "input_usd_per_mtok", found);
    ModelPrice {
        input_usd_per_mtok: input,
        output_usd_per_mtok: price(
            m.output_usd_per_mtok,
            true,
            key,
            "output_usd_per_mtok",
            found,
        ),
        cache_read_usd_per_mtok: m.cache_read_usd_per_mtok.map_or(input, |v| {
            price(Some(v), false, key, "cache_read_usd_per_mtok", found)
        }),
        cache_write_usd_per_mtok: m.cache_write_usd_per_mtok.map_or(input, |v| {
            price(Some(v), false, key, "cache_write_usd_per_mtok", found)
        }),
    }
}

fn price(v: Option<Decimal>, required: bool, key: &KeyPath, k: &str, found: &mut Found) -> Decimal {
    match v {
        Some(p) if !p.is_sign_negative() => p,
        Some(p) => {
            found.push((
                key.clone().key(k),
                format!("{p} is not a price: expected US dollars per million tokens, 0 or more"),
            ));
            Decimal::ZERO
        }
        None if required => {
            found.push((
                key.clone().key(k),
                "missing: US dollars per million tokens (a model the catalog does not know needs its prices)".into(),
            ));
            Decimal::ZERO
        }
        None => Decimal::ZERO,
    }
}

/// Sets on `info` every field `m` sets.
fn fill(
    info: &mut ModelInfo,
    m: &RawModel,
    known: bool,
    pools: &BTreeSet<&str>,
    key: &KeyPath,
    found: &mut Found,
) {
    if let Some(p) = &m.provider {
        info.provider = Some(crate::provider::provider(Some(p), key, found));
    }
    if let Some(a) = &m.aliases {
        for alias in a {
            if alias.is_empty() || alias.contains('*') {
                found.push((
                    key.clone().key("aliases"),
                    format!("{alias:?}: an alias is a model name, without '*'"),
                ));
            } else if !info.aliases.contains(alias) {
                info.aliases.push(alias.clone());
            }
        }
    }
    for (p, id) in m.ids.iter().flatten() {
        let provider = crate::provider::provider(Some(p), &key.clone().key("ids"), found);
        info.ids.retain(|(q, _)| *q != provider);
        info.ids.push((provider, id.clone()));
    }
    for (v, k, slot) in [
        (m.context_window, "context_window", &mut info.context_window),
        (m.max_output, "max_output", &mut info.max_output),
    ] {
        match v {
            Some(0) => found.push((key.clone().key(k), "must be at least 1 token".into())),
            Some(n) => *slot = Some(n),
            None => {}
        }
    }
    if known && let Some(p) = &mut info.price {
        for (v, k, slot) in [
            (
                m.input_usd_per_mtok,
                "input_usd_per_mtok",
                &mut p.input_usd_per_mtok,
            ),
            (
                m.output_usd_per_mtok,
                "output_usd_per_mtok",
                &mut p.output_usd_per_mtok,
            ),
            (
                m.cache_read_usd_per_mtok,
                "cache_read_usd_per_mtok",
                &mut p.cache_read_usd_per_mtok,
            ),
            (
                m.cache_write_usd_per_mtok,
                "cache_write_usd_per_mtok",
                &mut p.cache_write_usd_per_mtok,
            ),
        ] {
            if v.is_some() {
                *slot = price(v, false, key, k, found);
            }
        }
    } else if known {
        info.price = Some(new_price(m, key, found));
    }
    if let Some(caps) = &m.capabilities {
        let mut c = Capabilities::default();
        for name in caps {
            if !c.set(name) {
                found.push((
                    key.clone().key("capabilities"),
                    format!("{name:?}: expected some of {}", CAPABILITIES.join(", ")),
                ));
            }
        }
        info.capabilities = c;
    }
    if let Some(d) = &m.deployments {
        info.deployments.clear();
        for (i, dep) in d.iter().enumerate() {
            if !pools.contains(dep.pool.as_str()) {
                found.push((
                    key.clone().key("deployments").index(i).key("pool"),
                    format!("no pool named {:?}", dep.pool),
                ));
            }
            info.deployments.push(Deployment {
                pool: dep.pool.clone(),
                model: dep.model.clone(),
            });
        }
    }
}

/// What each served model's deployments must be able to do: a pool whose provider serves
/// the model's kind (no embeddings on Anthropic), and an id there (the
/// deployment's `model`, the pool's, or the catalog's for the pool's provider).
pub(crate) fn check_deployments(
    c: &ModelCatalog,
    pool: &dyn Fn(&str) -> Option<(Provider, bool)>,
    key: &KeyPath,
    found: &mut Found,
) {
    for m in c.served() {
        for (i, d) in m.deployments.iter().enumerate() {
            // The pool's provider, and whether it names its servers' model itself.
            let Some((p, pool_model)) = pool(&d.pool) else {
                continue;
            };
            let dk = key.clone().key(&m.id).key("deployments").index(i);
            // Bedrock (Titan, Cohere) and Gemini embed too; Anthropic does not.
            let chat_only = p == Provider::Anthropic;
            if m.capabilities.embeddings && !m.capabilities.chat && chat_only {
                found.push((
                    dk.clone().key("pool"),
                    format!(
                        "{} is an embeddings model; pool {} ({}) serves chat only",
                        m.id,
                        d.pool,
                        p.as_str()
                    ),
                ));
            }
            if d.model.is_none() && !pool_model && m.id_at(p).is_none() {
                found.push((
                    dk.key("model"),
                    format!(
                        "the catalog has no {} id for {}: name it (deployments[{i}].model)",
                        p.as_str(),
                        m.id
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_reads_without_a_problem() {
        let mut found = Vec::new();
        let c = parse_shipped(&mut found);
        assert!(found.is_empty(), "{found:?}");
        assert!(!c.version.is_empty());
        let sonnet = c.get("claude-3-5-sonnet-20240620").unwrap();
        assert_eq!(
            sonnet.id_at(Provider::Bedrock),
            Some("anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert_eq!(
            sonnet.id_at(Provider::Anthropic),
            Some("claude-3-5-sonnet-20240620")
        );
        assert_eq!(
            c.get("claude-sonnet-4-5").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(c.get("gpt-4o").unwrap().id_at(Provider::Bedrock), None);
        assert!(
            c.get("text-embedding-3-small")
                .unwrap()
                .capabilities
                .embeddings
        );
        for m in c.models() {
            let p = m.price.unwrap();
            assert!(p.input_usd_per_mtok > Decimal::ZERO, "{}", m.id);
            assert!(m.context_window.is_some(), "{}", m.id);
            assert!(m.provider.is_some(), "{}", m.id);
        }
    }
}
