//! Route matching: the first route whose path, headers and method match serves the request.
//! A path that matches only with another method answers 405 with the allowed methods.

use std::sync::Arc;

use flowgate_config::RouteConfig;
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
    /// The route's fallback chain: each pool, and the model to ask it for if another.
    pub fallbacks: Vec<(Arc<Upstream>, Option<String>)>,
    /// The route's and its pool's concurrency limits, if any.
    pub concurrency: Option<Arc<crate::queues::Gate>>,
    pub pool_concurrency: Option<Arc<crate::queues::Gate>>,
}

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
