//! Watches a config file for changes, for hot reload.
//!
//! The parent directory is watched, not the file: editors and config-management tools
//! replace files by renaming a new one over the old (and Kubernetes swaps a symlinked
//! directory), which a watch on the file itself would miss. Bursts of events are coalesced
//! (debounced) into one notification.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWatcher")
    }
}

/// Watches `path`; after each burst of changes to it (quiet for `debounce`), sends `()` on
/// the returned channel. Must be called inside a tokio runtime.
pub fn watch_file(
    path: &Path,
    debounce: Duration,
) -> Result<(FileWatcher, mpsc::Receiver<()>), notify::Error> {
    let file: PathBuf = std::path::absolute(path).map_err(notify::Error::io)?;
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = file.file_name().map(|n| n.to_os_string());
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
            if ours && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = raw_tx.send(());
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Debounce: wait until no event arrived for `debounce`.
            while let Ok(Some(())) = tokio::time::timeout(debounce, raw_rx.recv()).await {}
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    Ok((FileWatcher { _watcher: watcher }, rx))
}
