//! The gateway: the current runtime (swapped atomically on reload), telemetry, and the
//! per-request flow from route to upstream and back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flowgate_cache::disk::DiskSettings;
use flowgate_cache::remote::RedisSettings;
use flowgate_cache::{Cache, CacheSettings};
use flowgate_clock::SharedClock;
use flowgate_config::Config;
use flowgate_telemetry::Telemetry;

use crate::admission::{Counts, Shared};
use crate::auth::Auth;
use crate::cache_metrics::CacheCollector;
use crate::headers::RequestIds;
use crate::instances::Instances;
use crate::overrides::Overrides;
use crate::queues::Queues;
use crate::runtime::{Lasting, Runtime};
use crate::spend::Spending;
use crate::tls::listener::ListenerTls;
use crate::warming::Warming;

/// The gateway. Share it as `Arc<Gateway>`.
#[derive(Debug)]
pub struct Gateway {
    /// Shared with the balancer's metrics collector.
    runtime: Arc<ArcSwap<Runtime>>,
    /// Data-plane workers, fixed at start (idle connections are kept per worker).
    workers: usize,
    telemetry: Telemetry,
    clock: SharedClock,
    ids: Arc<RequestIds>,
    draining: AtomicBool,
    reloads: AtomicU64,
    last_reload_error: Mutex<Option<String>>,
    started: Instant,
    /// The response cache, when `[cache] enabled` at start (its size is fixed then).
    cache: Option<Arc<Cache>>,
    /// Warming jobs and the recent requests top-N warming replays.
    warming: Warming,
    /// The counts of the rate limits.
    counts: Arc<Counts>,
    /// The concurrency limiters (of keys, routes and pools).
    queues: Arc<Queues>,
    /// The key store and the keys made through the admin API.
    auth: Auth,
    /// Endpoints registered through the admin API.
    instances: Instances,
    overrides: Overrides,
    /// Held while a new runtime is built and swapped in (reloads and registrations).
    rebuilding: Mutex<()>,
    /// Client connections open on every worker, against the connection caps.
    client_connections: Arc<flowgate_http::server::Connections>,
    /// `[server.tls]`, fixed at start (the certificate itself is reloaded).
    listener_tls: Option<ListenerTls>,
    /// The spend ledger and its metrics (`[cost]`, fixed at start).
    spending: Spending,
    /// The metrics history (`[history]`), fixed at start.
    history: Option<flowgate_telemetry::history::History>,
    /// Where traced requests' spans go (`[tracing]`, fixed at start).
    tracer: Option<flowgate_telemetry::trace::export::Exporter>,
    /// The alert rules at work (`[[alerts.rules]]`), reloaded with the config.
    alerting: crate::alerting::Alerting,
    /// The anomaly detectors on the history and what they found.
    anomalies: crate::anomalies::Anomalies,
    scaling: crate::scaling::Scaling,
    automation: crate::automation::Automation,
    /// What the advisor's watch knows of the `[[databases]]`.
    databases: Arc<crate::databases::Databases>,
    /// The control plane's own HTTP requests (the scaling webhook; the notifiers and the
    /// trace exporter hold their own handle).
    fetcher: Arc<flowgate_http::fetch::Fetcher>,
    /// The memory governor's level and counts.
    memory: Arc<crate::memory_governor::Governor>,
}

impl Gateway {
    /// A gateway serving `config`; fails when the cache's disk tier cannot be opened.
    pub fn new(config: Config, telemetry: Telemetry) -> std::io::Result<Arc<Self>> {
        let clock = telemetry.clock().clone();
        let workers = flowgate_http::worker::count(config.server.workers);
        let c = &config.cache;
        let cache = if c.enabled {
            let settings = CacheSettings {
                memory_bytes: c.memory_bytes,
                max_entry_bytes: c.max_entry_bytes,
                coalesce_wait: c.coalesce_wait,
                redis: c.redis.as_ref().map(|r| RedisSettings {
                    link: link_settings(&r.link),
                    prefix: r.link.prefix.clone(),
                    compress_above: c.compress_above,
                    lock_wait: r.lock_wait,
                }),
                refresh_ahead: c.refresh_ahead,
                popular_hits: c.popular_hits,
                disk: c.disk.as_ref().map(|d| DiskSettings {
                    path: d.path.clone(),
                    max_bytes: d.max_bytes,
                    purge_interval: d.purge_interval,
                    compress_above: c.compress_above,
                }),
            };
            let cache = Arc::new(
                Cache::open(settings, clock.clone())
                    .map_err(|e| std::io::Error::other(format!("cache: {e}")))?,
            );
            telemetry.register_collector(Box::new(CacheCollector(cache.clone())));
            Some(cache)
        } else {
            None
        };
        let keep = if cache.is_some() { c.warm.keep } else { 0 };
        let shared = match &config.shared_limits {
            Some(l) => {
                let link = flowgate_redis::Link::open(link_settings(&l.link), clock.clone())
                    .map_err(|e| std::io::Error::other(format!("shared_limits: {e}")))?;
                let limiter = flowgate_admission::SharedLimiter::new(link, &l.link.prefix);
                Some(Shared::new(limiter, l.fallback_share))
            }
            None => None,
        };
        let counts = Arc::new(Counts::new(clock.clone(), shared));
        let queues = Arc::new(Queues::default());
        telemetry.register_collector(Box::new(crate::admission_metrics::AdmissionCollector {
            counts: counts.clone(),
            queues: queues.clone(),
        }));
        let shared_spend = match &config.cost.shared {
            Some(s) => {
                let link = flowgate_redis::Link::open(link_settings(&s.link), clock.clone())
                    .map_err(|e| std::io::Error::other(format!("cost.shared: {e}")))?;
                Some(flowgate_cost::budget::SharedSpend::new(
                    link,
                    &s.link.prefix,
                ))
            }
            None => None,
        };
        let spending = Spending::open(&config.cost, clock.unix_millis() / 1000, shared_spend)?;
        telemetry.register_collector(Box::new(spending.collector(clock.clone())));
        telemetry.register_collector(Box::new(flowgate_telemetry::process::ProcessCollector {
            fs: flowgate_telemetry::process::ProcFs::default(),
            lags: Box::new(flowgate_http::server::workers::event_loop_lags),
        }));
        let history = crate::history::open(&config.history, clock.unix_millis() / 1000);
        // The control plane's own requests (notifiers, the trace exporter): verified
        // against the bundled roots.
        let tls = flowgate_http::tls::client_config(&flowgate_http::tls::ClientSettings::default())
            .map_err(|e| std::io::Error::other(format!("control-plane TLS: {e}")))?;
        let fetcher = Arc::new(flowgate_http::fetch::Fetcher::new(
            tls,
            clock.clone(),
            "flowgate",
        ));
        let host = flowgate_telemetry::process::ProcFs::default()
            .host_name()
            .unwrap_or_else(|| "localhost".into());
        let tracer = config
            .tracing
            .as_ref()
            .map(|t| crate::trace_export::start(t, fetcher.clone(), &host));
        if let Some(t) = &tracer {
            telemetry.register_collector(Box::new(crate::trace_export::Collector(t.clone())));
        }
        let alerting =
            crate::alerting::Alerting::new(&config.alerts, clock.clone(), fetcher.clone(), &host)?;
        telemetry.register_collector(Box::new(alerting.collector()));
        let anomalies = crate::anomalies::Anomalies::new(&config.anomalies);
        let scaling = crate::scaling::Scaling::default();
        let automation = crate::automation::Automation::open(
            config
                .server
                .data_dir
                .as_ref()
                .map(|d| d.join(crate::automation::FILE))
                .as_deref(),
            clock.unix_millis() / 1000,
        )?;
        automation.set_paused(&config.automation.rules, config.automation.paused);
        telemetry.register_collector(Box::new(scaling.collector()));
        let databases = Arc::new(crate::databases::Databases::default());
        telemetry.register_collector(Box::new(crate::database_metrics::DatabaseCollector(
            databases.clone(),
        )));
        let memory = Arc::new(crate::memory_governor::Governor::default());
        telemetry.register_collector(Box::new(memory.collector()));
        telemetry.set_sinks(crate::sinks::of(
            &config,
            &spending,
            history.as_ref(),
            tracer.as_ref(),
        ));
        let auth = Auth::open(config.auth.store.as_deref(), counts.clone(), queues.clone())
            .map_err(|e| std::io::Error::other(format!("auth: {e}")))?;
        let listener_tls = match &config.server.tls {
            Some(t) => Some(
                ListenerTls::new(t, config.server.http2)
                    .map_err(|(k, m)| std::io::Error::other(format!("{k}: {m}")))?,
            ),
            None => None,
        };
        let runtime = Runtime::build(
            config,
            None,
            &Lasting {
                shards: workers,
                clock: &clock,
                metrics: telemetry.metrics(),
                counts: &counts,
                queues: &queues,
                instances: &Instances::default(),
                overrides: &Overrides::default(),
            },
        )
        .map_err(std::io::Error::other)?;
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        telemetry.register_collector(Box::new(crate::balance_metrics::BalanceCollector(
            runtime.clone(),
        )));
        let seed = clock.unix_millis() ^ u64::from(std::process::id()).rotate_left(32);

        let gw = Arc::new(Gateway {
            runtime,
            workers,
            started: clock.now(),
            clock,
            telemetry,
            ids: Arc::new(RequestIds::new(seed)),
            draining: AtomicBool::new(false),
            reloads: AtomicU64::new(0),
            last_reload_error: Mutex::new(None),
            cache,
            warming: Warming::new(keep),
            counts,
            queues,
            auth,
            instances: Instances::default(),
            overrides: Overrides::default(),
            rebuilding: Mutex::new(()),
            client_connections: Arc::default(),
            listener_tls,
            spending,
            alerting,
            anomalies,
            scaling,
            automation,
            databases,
            fetcher,
            memory,
            history,
            tracer,
        });
        gw.budgets_changed();
        gw.alerts_changed();
        Ok(gw)
    }

    /// The keys, teams and routes budgets may count: the running config's and the keys made
    /// through the admin API.
    pub(crate) fn budget_names(&self, rt: &Runtime) -> crate::spend::budgets::Names {
        crate::spend::budgets::Names::of(&rt.config, &self.auth.list(&rt.keys))
    }

    /// Puts the running config's budgets (and the admin API's) in force again: at start,
    /// on reload, when keys change.
    pub(crate) fn budgets_changed(&self) {
        let rt = self.runtime();
        let names = self.budget_names(&rt);
        self.spending.budgets().rebuild(
            &rt.config.cost.budgets,
            &names.known(&rt.config),
            self.spending.ledger(),
            self.clock.unix_millis() / 1000,
        );
    }

    /// Puts the running config's alert rules and notifiers in force, with the rules made
    /// through the admin API that it allows: at start, and after a reload.
    pub(crate) fn alerts_changed(&self) {
        let rt = self.runtime();
        let names = self.alert_names(&rt);
        self.alerting
            .set(&rt.config.alerts, &names, self.history.as_ref());
    }

    /// What alert rules may name in `rt`'s config, with the budgets in force.
    pub(crate) fn alert_names(&self, rt: &Runtime) -> crate::alert_rules::Names {
        crate::alert_rules::Names::of(&rt.config, &self.spending.budgets().load())
    }

    /// The alert rules at work.
    pub(crate) fn alerting(&self) -> &crate::alerting::Alerting {
        &self.alerting
    }

    /// The control plane's HTTP client.
    pub(crate) fn fetcher(&self) -> &flowgate_http::fetch::Fetcher {
        &self.fetcher
    }

    /// The automation rules at work.
    pub(crate) fn automation(&self) -> &crate::automation::Automation {
        &self.automation
    }

    /// The pools' scaling recommenders.
    pub(crate) fn scaling(&self) -> &crate::scaling::Scaling {
        &self.scaling
    }

    pub(crate) fn databases(&self) -> &crate::databases::Databases {
        &self.databases
    }

    /// The anomaly detectors and their anomalies.
    pub(crate) fn anomalies(&self) -> &crate::anomalies::Anomalies {
        &self.anomalies
    }

    /// The trace exporter, with `[tracing]` on at start.
    pub(crate) fn tracer(&self) -> Option<&flowgate_telemetry::trace::export::Exporter> {
        self.tracer.as_ref()
    }

    pub(crate) fn memory(&self) -> &crate::memory_governor::Governor {
        &self.memory
    }

    /// The metrics history, when it is on.
    pub fn history(&self) -> Option<&flowgate_telemetry::history::History> {
        self.history.as_ref()
    }

    pub fn spending(&self) -> &Spending {
        &self.spending
    }

    /// The data-plane listener's TLS, when `[server.tls]` is set.
    pub fn listener_tls(&self) -> Option<&ListenerTls> {
        self.listener_tls.as_ref()
    }

    pub(crate) fn client_connections(&self) -> &Arc<flowgate_http::server::Connections> {
        &self.client_connections
    }

    pub(crate) fn request_ids(&self) -> &Arc<RequestIds> {
        &self.ids
    }

    /// The response cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// Forgets rate-limit counts that are back to their full burst; how many are kept.
    pub fn sweep_rate_limits(&self) -> usize {
        self.queues.sweep();
        self.counts.sweep()
    }

    /// Forgets the idle sessions of every pool with `affinity`; how many are kept.
    pub fn sweep_sessions(&self) -> usize {
        let rt = self.runtime();
        rt.upstreams
            .iter()
            .filter_map(|u| Some(u.sessions.as_ref()?.sweep(u.balancer().now_ns())))
            .sum()
    }

    /// With `[shared_limits]`: whether rate limits are counted locally now (Redis does not
    /// answer), and how many checks were.
    pub fn rate_limit_fallback(&self) -> Option<(bool, u64)> {
        self.counts.shared().map(Shared::fallback)
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    pub(crate) fn queues(&self) -> &Queues {
        &self.queues
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The wall-clock time, in Unix milliseconds (from the gateway's clock).
    pub(crate) fn unix_millis(&self) -> u64 {
        self.clock.unix_millis()
    }

    pub(crate) fn warming(&self) -> &Warming {
        &self.warming
    }

    /// Data-plane worker threads (fixed at start).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The runtime serving new requests.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Time since the gateway started.
    pub fn uptime(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started)
    }

    /// Whether the gateway is shutting down (then `/ready` answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Successful reloads so far, and the error of the last failed one (cleared by success).
    pub fn reload_status(&self) -> (u64, Option<String>) {
        let err = self.last_reload_error.lock().ok().and_then(|g| g.clone());
        (self.reloads.load(Ordering::Relaxed), err)
    }

    /// Swaps in a new config. Requests in flight finish on the old one; pools whose settings
    /// did not change keep their connections. A config whose runtime cannot be built (its
    /// TLS material changed since it was checked) is rejected as a failed reload.
    pub fn apply(&self, config: Config) {
        let old = self.runtime.load_full();
        let (was, now) = (&old.config.server, &config.server);
        if (was.listen, was.admin_listen, was.workers)
            != (now.listen, now.admin_listen, now.workers)
        {
            tracing::warn!(
                "server.listen, server.admin_listen and server.workers changed in the new \
                 config; they take effect after a restart"
            );
        }
        let (was, now) = (&old.config.cache, &config.cache);
        if old.config.auth.store != config.auth.store {
            tracing::warn!("auth.store changed in the new config; it takes effect after a restart");
        }
        let fixed = |c: &Config| {
            let k = &c.cost;
            (
                k.enabled,
                k.ledger.clone(),
                k.flush_interval,
                k.minute_retention,
                k.hour_retention,
                c.server.data_dir.clone(),
            )
        };
        if fixed(&old.config) != fixed(&config) {
            tracing::warn!(
                "cost.enabled, cost.ledger, its flush interval and retention, and \
                 server.data_dir changed in the new config; they take effect after a restart \
                 (tiers, budgets and model policies follow the reload)"
            );
        }
        // The access log follows the config (and a rotated file is let go).
        if old.config.server.access_log.is_some() || config.server.access_log.is_some() {
            self.telemetry.set_sinks(crate::sinks::of(
                &config,
                &self.spending,
                self.history.as_ref(),
                self.tracer.as_ref(),
            ));
        }
        let tiers = |c: &flowgate_config::CacheConfig| {
            (c.enabled, c.memory_bytes, c.disk.clone(), c.redis.clone())
        };
        if old.config.shared_limits != config.shared_limits {
            tracing::warn!(
                "shared_limits changed in the new config; it takes effect after a restart"
            );
        }
        if tiers(was) != tiers(now) {
            tracing::warn!(
                "cache.enabled, cache.memory, cache.disk and cache.redis changed in the new \
                 config; they take effect after a restart"
            );
        }
        drop(old);
        if let Err(why) = self.swap_in(config) {
            self.reject(why);
            return;
        }
        self.budgets_changed();
        self.alerts_changed();
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_reload_error.lock() {
            *g = None;
        }
        self.count_reload("ok");
    }

    /// Builds the runtime for `config` (with the registered endpoints) and swaps it in;
    /// pools whose settings did not change keep their state.
    fn swap_in(&self, config: Config) -> Result<(), String> {
        let _one_at_a_time = self.rebuilding.lock();
        let old = self.runtime.load_full();
        let new = Runtime::build(
            config,
            Some(&old),
            &Lasting {
                shards: self.workers,
                clock: &self.clock,
                metrics: self.telemetry.metrics(),
                counts: &self.counts,
                queues: &self.queues,
                instances: &self.instances,
                overrides: &self.overrides,
            },
        )?;
        self.runtime.store(Arc::new(new));
        Ok(())
    }

    pub(crate) fn instances(&self) -> &Instances {
        &self.instances
    }

    /// The changes automation rules made to the running config.
    pub(crate) fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// Rebuilds the runtime of the file's config after the registered endpoints or the
    /// changes in force changed.
    pub(crate) fn rebuild(&self) -> Result<(), String> {
        let config = (*self.runtime().file).clone();
        self.swap_in(config)
    }

    /// Records a reload that failed; the running config stays.
    pub fn reject(&self, why: String) {
        tracing::error!(error = %why, "config reload failed; keeping the running config");
        if let Ok(mut g) = self.last_reload_error.lock() {
            *g = Some(why);
        }
        self.count_reload("error");
    }

    fn count_reload(&self, result: &str) {
        self.telemetry.metrics().count_reload(result);
    }
}

/// How to reach a Redis deployment, from its config.
fn link_settings(c: &flowgate_config::RedisLinkConfig) -> flowgate_redis::LinkSettings {
    flowgate_redis::LinkSettings {
        urls: c.urls.clone(),
        cluster: c.cluster,
        timeout: c.timeout,
        breaker_failures: c.breaker_failures,
        breaker_cooldown: c.breaker_cooldown,
    }
}
