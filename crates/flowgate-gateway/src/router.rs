//! Route matching: the first route whose path, headers and method match serves the request.
//! A path that matches only with another method answers 405 with the allowed methods. An
//! `openai` route then serves a model the catalog deploys (`[models."NAME"] deployments`)
//! through that model's pools ([`RouteEntry::for_model`]); a route without a pool serves
//! nothing else, and answers 404 `model_not_found` for any other model.

use std::collections::HashMap;
use std::sync::Arc;

use flowgate_config::{ModelCatalog, RouteConfig, RouteKind};
use http::{HeaderMap, Method};

use crate::error::ProxyError;
use crate::upstream::Upstream;

/// A route ready to serve: its config and its pool.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub name: Arc<str>,
    /// Where the route's cache entries live: its configured namespace or its name.
    pub cache_namespace: Arc<str>,
    pub cfg: Arc<RouteConfig>,
    pub upstream: Arc<Upstream>,
    /// The model to ask `upstream` for, when another than the client's (a deployment's).
    pub model: Option<String>,
    /// The route's fallback chain: each pool, and the model to ask it for if another.
    pub fallbacks: Vec<(Arc<Upstream>, Option<String>)>,
    /// The route as it serves each model the catalog deploys, by id and alias.
    pub by_model: Arc<HashMap<String, Arc<RouteEntry>>>,
    /// The route's and its pool's concurrency limits, if any.
    pub concurrency: Option<Arc<crate::queues::Gate>>,
    pub pool_concurrency: Option<Arc<crate::queues::Gate>>,
    /// What is done to its answers (`transform`), when anything is.
    pub transform: Option<Arc<crate::transform::Transform>>,
}

impl RouteEntry {
    /// The route as it serves `model`: through the model's deployments when the catalog
    /// has them, else through its own pool; a route without one knows no other model.
    pub fn for_model(
        &self,
        model: Option<&str>,
        catalog: &ModelCatalog,
    ) -> Result<&RouteEntry, ProxyError> {
        if self.by_model.is_empty() {
            return Ok(self);
        }
        if let Some(e) = model.and_then(|m| self.by_model.get(m)) {
            return Ok(e);
        }
        if self.cfg.pool.is_some() {
            return Ok(self);
        }
        let model = model.unwrap_or_default();
        Err(ProxyError::ModelNotFound {
            model: model.to_string(),
            closest: catalog
                .closest(model, 2)
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
    }

    /// The entries of route `cfg`: its own (with `pools`' upstreams and `queue` for their
    /// concurrency gates), and one per name of a model `catalog` deploys; `None` when its
    /// pools are missing (validation makes sure they are not).
    pub fn build(
        cfg: &Arc<RouteConfig>,
        catalog: &ModelCatalog,
        pools: &[Arc<Upstream>],
        queue: &dyn Fn(Option<&Arc<Upstream>>) -> Gates,
    ) -> Option<RouteEntry> {
        let find = |name: &str| pools.iter().find(|u| *u.cfg.name == *name).cloned();
        let transform = cfg
            .transform
            .as_ref()
            .and_then(crate::transform::Transform::new)
            .map(Arc::new);
        let entry = |chain: Vec<(Arc<Upstream>, Option<String>)>| -> Option<RouteEntry> {
            let mut chain = chain.into_iter();
            let (upstream, model) = chain.next()?;
            let (concurrency, pool_concurrency) = queue(Some(&upstream));
            Some(RouteEntry {
                name: Arc::from(cfg.name.as_str()),
                cache_namespace: Arc::from(cfg.cache.namespace.as_deref().unwrap_or(&cfg.name)),
                cfg: cfg.clone(),
                upstream,
                model,
                fallbacks: chain.collect(),
                by_model: Arc::default(),
                concurrency,
                pool_concurrency,
                transform: transform.clone(),
            })
        };
        let mut by_model = HashMap::new();
        let mut first = None;
        if cfg.kind == RouteKind::OpenAi {
            for m in catalog.served() {
                let chain: Vec<_> = m
                    .deployments
                    .iter()
                    .filter_map(|d| Some((find(&d.pool)?, d.model.clone())))
                    .collect();
                let Some(e) = entry(chain).map(Arc::new) else {
                    continue;
                };
                first.get_or_insert_with(|| e.clone());
                for name in std::iter::once(&m.id).chain(&m.aliases) {
                    by_model.insert(name.clone(), e.clone());
                }
            }
        }
        let mut own = match &cfg.pool {
            Some(pool) => {
                let mut chain = vec![(find(pool)?, None)];
                chain.extend(
                    cfg.fallback
                        .iter()
                        .filter_map(|f| Some((find(&f.pool)?, f.model.clone()))),
                );
                entry(chain)?
            }
            // Until its model is known, a route without a pool stands as its first
            // model's: what is read before (its config, its own gate) is the route's.
            None => RouteEntry::clone(first.as_deref()?),
        };
        own.by_model = Arc::new(by_model);
        Some(own)
    }
}

/// A route's concurrency gate and its pool's.
pub type Gates = (
    Option<Arc<crate::queues::Gate>>,
    Option<Arc<crate::queues::Gate>>,
);

/// The routes of one config, in match order.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<RouteEntry>,
}

impl Router {
    pub fn new(routes: Vec<RouteEntry>) -> Self {
        Router { routes }
    }

    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// The route for this request.
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<&RouteEntry, ProxyError> {
        let mut allowed: Vec<&str> = Vec::new();
        for r in &self.routes {
            if !r.cfg.path.matches(path)
                || !r.cfg.headers.iter().all(|(k, v)| headers.get(k) == Some(v))
            {
                continue;
            }
            if r.cfg.methods.is_empty() || r.cfg.methods.contains(method) {
                return Ok(r);
            }
            allowed.extend(r.cfg.methods.iter().map(Method::as_str));
        }
        if allowed.is_empty() {
            Err(ProxyError::NoRoute {
                method: method.to_string(),
                path: truncate(path),
            })
        } else {
            allowed.sort_unstable();
            allowed.dedup();
            Err(ProxyError::MethodNotAllowed {
                method: method.to_string(),
                path: truncate(path),
                allowed: allowed.join(", "),
            })
        }
    }
}

/// Paths echoed in errors are cut to a sane length.
fn truncate(path: &str) -> String {
    match path.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &path[..i]),
        None => path.to_string(),
    }
}
