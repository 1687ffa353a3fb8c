//! Starting and stopping a whole gateway: data-plane workers, admin listener, telemetry and
//! reloader. Used by `flowgate serve`, `flowgate demo` and the integration tests.
//!
//! The data plane runs on its own worker threads ([`flowgate_http::server::workers`]); everything else runs
//! on the runtime `launch` is called from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowgate_config::{Config, FileWatcher};
use flowgate_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::gateway::Gateway;
use flowgate_http::server::workers::{self, Workers};

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    workers: Option<Workers>,
    admin: Option<JoinHandle<()>>,
    /// Writes the spend ledger; its last write follows the drain.
    ledger_writer: Option<JoinHandle<()>>,
    /// Syncs shared budgets; its last sync follows the drain.
    budget_sync: Option<JoinHandle<()>>,
    /// The control plane's turn, for a clock its owner drives ([`Running::tick`]).
    writer: Option<Arc<crate::history_writer::Writer>>,
    _watcher: Option<FileWatcher>,
    _cert_watchers: Vec<FileWatcher>,
}

/// Binds the listeners named in `config` (port 0 picks a free port) and starts serving.
/// With `config_path`, the file is watched (and SIGHUP handled) for hot reload. Dropping
/// the returned [`Running`] without [`Running::shutdown`] also stops it.
/// Loads the exact tokenizers' vocabularies in the background when requests will be
/// counted (token rate limits, prompt-size guards), so that no request waits for them.
fn warm_tokenizers(config: &Config) {
    let tokens = |r: &flowgate_config::Rate| r.unit == flowgate_config::LimitUnit::Tokens;
    let counts = config.rate_limits.iter().any(|l| tokens(&l.rate))
        || config.auth.keys.iter().any(|k| k.limits.iter().any(tokens))
        || config.routes.iter().any(|r| r.max_prompt_tokens.is_some());
    if counts && config.limits.exact_tokens {
        tokio::task::spawn_blocking(flowgate_cost::Tokenizer::warm);
    }
}

pub async fn launch(
    config: Config,
    config_path: Option<PathBuf>,
    telemetry: Telemetry,
) -> std::io::Result<Running> {
    let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
    let gateway = Gateway::new(config, telemetry)?;
    let (data_addr, data_listeners) = workers::bind(listen, gateway.workers())?;
    let admin_listener = bind(admin_listen).await?;
    let admin_addr = admin_listener.local_addr()?;
    gateway.telemetry().spawn_consumer();
    let watcher = match config_path {
        Some(p) => Some(crate::reload::spawn_reloader(gateway.clone(), p)?),
        None => None,
    };
    let cert_watchers = crate::reload::spawn_certificate_reloader(gateway.clone())?;
    let (stop, stopped) = watch::channel(false);
    let workers = workers::start(&gateway, data_listeners, &stopped)?;
    warm_from_file(&gateway);
    warm_tokenizers(&gateway.runtime().config);
    tokio::spawn(sweep(gateway.clone(), stopped.clone()));
    crate::memory_watch::spawn(&gateway, stopped.clone());
    // On a clock its owner drives, the owner runs the cycles (the admin API's
    // `scaling/optimize` and `automation/cycle`) at its own pace.
    if !gateway.clock().driven() {
        crate::scaling_loop::spawn(&gateway, stopped.clone());
        crate::automation_loop::spawn(&gateway, stopped.clone());
        crate::database_watch::spawn(&gateway, stopped.clone());
    }
    let ledger_writer = crate::spend::spawn_writer(
        gateway.spending(),
        gateway.telemetry().clone(),
        gateway.clock().clone(),
        gateway.runtime().config.cost.flush_interval,
        stopped.clone(),
    );
    let budget_sync = crate::spend::spawn_sync(
        gateway.spending(),
        gateway.clock().clone(),
        gateway
            .runtime()
            .config
            .cost
            .shared
            .as_ref()
            .map_or(Duration::from_secs(1), |s| s.sync_interval),
        stopped.clone(),
    );
    let writer = crate::history_writer::start(&gateway, gateway.clock().clone(), stopped.clone());
    let app = crate::admin::router(gateway.clone());
    let admin_cfg = &gateway.runtime().config.admin;
    if !admin_cfg.requires_token() && !admin_addr.ip().is_loopback() {
        tracing::warn!(
            admin = %admin_addr,
            "the admin listener is not on loopback and has no token: anyone who reaches it \
             can change keys, limits and endpoints ([[admin.tokens]] or FLOWGATE_ADMIN_TOKEN)"
        );
    }
    let admin = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(admin_listener, app)
            .with_graceful_shutdown(wait_stop(stopped))
            .await;
    });
    Ok(Running {
        data_addr,
        admin_addr,
        gateway,
        stop,
        workers: Some(workers),
        admin: Some(admin),
        ledger_writer: Some(ledger_writer),
        budget_sync,
        writer,
        _watcher: watcher,
        _cert_watchers: cert_watchers,
    })
}

/// Starts warming the cache from the warm file named in config, if any. A file that cannot
/// be read is logged; the gateway serves anyway.
fn warm_from_file(gw: &Arc<Gateway>) {
    let rt = gw.runtime();
    let Some(file) = rt.config.cache.warm.file.as_deref() else {
        return;
    };
    if gw.cache().is_none() {
        return;
    }
    match crate::warming::read_file(file) {
        Ok(requests) => {
            let _ = crate::warming::job::start(gw, "file", requests);
        }
        Err(e) => tracing::error!(file = %file.display(), error = %e, "cannot read the warm file"),
    }
}

/// Forgets, every minute, the rate-limit counts that are back to their full burst and the
/// idle sessions, so that the state stays bounded by the clients active lately.
async fn sweep(gw: Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                gw.sweep_rate_limits();
                gw.sweep_sessions();
            }
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Running {
    /// One turn of the control plane at the clock's current second, for a clock its owner
    /// drives (`flowgate_clock::Clock::driven`): the metrics history's second ending now
    /// written (with the minutes and hours that end with it), the anomaly detectors fed,
    /// the alert rules evaluated. On any other clock the gateway turns every second by
    /// itself and this does nothing.
    pub async fn tick(&self) {
        if let Some(w) = self
            .writer
            .as_ref()
            .filter(|_| self.gateway.clock().driven())
        {
            w.step(self.gateway.clock().unix_millis() / 1000).await;
        }
    }

    /// Stops accepting and starts draining.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the data plane has drained (or its deadline passed) and the admin
    /// listener has stopped.
    pub async fn wait(mut self) {
        if let Some(workers) = self.workers.take() {
            workers.wait().await;
        }
        if let Some(admin) = self.admin.take() {
            let _ = admin.await;
        }
        // Writes queued for the lower cache tiers are committed before the process ends,
        // and the spend of every request served.
        if let Some(cache) = self.gateway.cache() {
            cache.flush().await;
        }
        if let Some(w) = self.ledger_writer.take() {
            let _ = w.await;
        }
        if let Some(s) = self.budget_sync.take() {
            let _ = s.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
