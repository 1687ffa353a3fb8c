//! Hot reload: on SIGHUP or when the config file changes, the file is loaded and validated
//! again and, if good, swapped in atomically; if bad, the running config stays and the
//! reason is logged, counted and shown in `/health`. The listener's certificate is read
//! again on SIGHUP and when its own files change, the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flowgate_config::FileWatcher;

use crate::gateway::Gateway;
use crate::tls::listener;

/// Loads `path` and applies it, or keeps the running config and records why not.
pub fn reload(gw: &Gateway, path: &Path) {
    match flowgate_config::load_with(path, crate::check_external) {
        Ok(cfg) => {
            tracing::info!(config = %path.display(), routes = cfg.routes.len(), "config reloaded");
            gw.apply(cfg);
        }
        Err(e) => gw.reject(e.to_string()),
    }
}

/// Reloads on SIGHUP and on changes to `path`. Keep the returned watcher alive.
pub fn spawn_reloader(gw: Arc<Gateway>, path: PathBuf) -> std::io::Result<FileWatcher> {
    let (watcher, mut changes) = flowgate_config::watch_file(&path, Duration::from_millis(200))
        .map_err(std::io::Error::other)?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                s = hup.recv() => if s.is_none() { break },
                c = changes.recv() => if c.is_none() { break },
            }
            reload(&gw, &path);
        }
    });
    Ok(watcher)
}

/// Reads the listener's certificate files again: on success they are served from the next
/// handshake on; a pair that cannot be used (unreadable, bad PEM, a key that is not the
/// certificate's) keeps the served one. Either way it is logged and counted.
pub fn reload_certificate(gw: &Gateway) {
    let Some(tls) = gw.listener_tls() else { return };
    let metrics = gw.telemetry().metrics();
    let (cert, key) = tls.certs.files();
    match tls.certs.reload() {
        Ok(()) => {
            metrics.count_certificate_reload("ok");
            let end = tls.certs.not_after();
            metrics.certificate_expiry.set(end.unwrap_or(0));
            tracing::info!(cert = %cert.display(), key = %key.display(), expires = %end.map(listener::date).unwrap_or_default(), "listener certificate reloaded");
            if let Some(end) = end.filter(|&e| listener::soon(e, listener::seconds(&**gw.clock())))
            {
                tracing::warn!(cert = %cert.display(), "the listener certificate expires on {}", listener::date(end));
            }
        }
        Err(e) => {
            metrics.count_certificate_reload("error");
            tracing::error!(error = %e, "listener certificate not reloaded; the served one stays");
        }
    }
}

/// Reloads the certificate when its files change and on SIGHUP. Keep the watchers alive.
pub fn spawn_certificate_reloader(gw: Arc<Gateway>) -> std::io::Result<Vec<FileWatcher>> {
    let Some(tls) = gw.listener_tls() else {
        return Ok(Vec::new());
    };
    if let Some(end) = tls.certs.not_after() {
        gw.telemetry().metrics().certificate_expiry.set(end);
    }
    let (cert, key) = tls.certs.files();
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    let mut watchers = Vec::new();
    let (tx, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    for path in [cert, key] {
        let (w, mut rx) = flowgate_config::watch_file(&path, Duration::from_millis(200))
            .map_err(std::io::Error::other)?;
        watchers.push(w);
        let tx = tx.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                s = hup.recv() => if s.is_none() { break },
                c = changes.recv() => if c.is_none() { break },
            }
            reload_certificate(&gw);
        }
    });
    Ok(watchers)
}
