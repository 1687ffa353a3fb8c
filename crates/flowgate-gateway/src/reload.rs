//! Hot reload: on SIGHUP or when the config file changes, the file is loaded and validated
//! again and, if good, swapped in atomically; if bad, the running config stays and the
//! reason is logged, counted and shown in `/health`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flowgate_config::FileWatcher;

use crate::gateway::Gateway;

/// Loads `path` and applies it, or keeps the running config and records why not.
pub fn reload(gw: &Gateway, path: &Path) {
    match flowgate_config::load_with(path, crate::tls::check_tls) {
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
