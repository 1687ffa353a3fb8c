//! The runtime state built from one config: router, upstream pools and connection settings.
//! Hot reload builds a whole new [`Runtime`] and swaps it in atomically; requests already in
//! flight keep the `Arc` of the one they started with.

use std::sync::Arc;

use flowgate_clock::SharedClock;
use flowgate_config::Config;
use flowgate_telemetry::Metrics;

use crate::admission::Counts;
use crate::instances::Instances;
use crate::overrides::Overrides;
use crate::queues::{Queues, Scope};
use crate::router::{RouteEntry, Router};
use crate::upstream::Upstream;

/// Everything the data plane needs from one config.
#[derive(Debug)]
pub struct Runtime {
    /// The config in force: the file's with automation's changes laid over it.
    pub config: Arc<Config>,
    /// The file's config, as loaded.
    pub file: Arc<Config>,
    pub router: Router,
    pub upstreams: Vec<Arc<Upstream>>,
    /// The request rate limits (their counts live in the gateway).
    pub rate_limits: Vec<crate::admission::Limit>,
    /// The virtual keys written in the config (those made through the API live in the
    /// gateway).
    pub keys: crate::auth::Callers,
    /// Who may call the admin API.
    pub admin_tokens: crate::auth::AdminTokens,
}

/// What outlives runtimes: the gateway's clock, metrics and registries.
pub struct Lasting<'a> {
    /// Data-plane workers: each pool keeps one idle-connection stack per worker.
    pub shards: usize,
    pub clock: &'a SharedClock,
    pub metrics: &'a Metrics,
    pub counts: &'a Counts,
    pub queues: &'a Queues,
    pub instances: &'a Instances,
    pub overrides: &'a Overrides,
}

impl Runtime {
    /// Pool `name`'s upstream.
    pub(crate) fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| *u.name == *name)
    }

    /// Builds the runtime for `config` (the file's) with `with`'s changes in force. Pools whose settings did not change keep their
    /// upstream connections and balancer state from `previous`. Fails when a pool's TLS
    /// material cannot be used.
    pub fn build(
        config: Config,
        previous: Option<&Runtime>,
        with: &Lasting<'_>,
    ) -> Result<Runtime, String> {
        let Lasting {
            shards,
            clock,
            metrics,
            counts,
            queues,
            instances,
            overrides,
        } = *with;
        let file = Arc::new(config.clone());
        let config = overrides.apply(config);
        let upstreams: Vec<Arc<Upstream>> = instances
            .merge(&config.pools)
            .iter()
            .map(|p| {
                if p.tls.insecure_skip_verify && p.endpoints.iter().any(|e| e.tls) {
                    tracing::warn!(
                        pool = %p.name,
                        "tls.insecure_skip_verify: this pool's servers are not verified"
                    );
                }
                match previous.and_then(|prev| prev.upstreams.iter().find(|u| *u.cfg == **p)) {
                    Some(kept) => Ok(kept.clone()),
                    None => Upstream::new(p.clone(), shards, clock, metrics),
                }
            })
            .collect::<Result<_, _>>()?;
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let gates = |pool: Option<&Arc<Upstream>>| {
                    (
                        r.concurrency
                            .as_ref()
                            .map(|c| queues.get(Scope::Route, &r.name, c)),
                        pool.and_then(|u| {
                            let p = &u.cfg;
                            p.concurrency
                                .as_ref()
                                .map(|c| queues.get(Scope::Pool, &p.name, c))
                        }),
                    )
                };
                RouteEntry::build(r, &config.models, &upstreams, &gates)
            })
            .collect();
        Ok(Runtime {
            rate_limits: counts.compile(&config),
            keys: crate::auth::config_keys(&config, counts, queues),
            admin_tokens: crate::auth::AdminTokens::new(&config.admin),
            config: Arc::new(config),
            file,
            router: Router::new(routes),
            upstreams,
        })
    }
}
