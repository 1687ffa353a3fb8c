//! The embedded store the gateway keeps what must outlive a restart in (the spend ledger,
//! the metrics history): redb files under `[server] data_dir`. One rule for all of them:
//! a file that does not read as a database is moved aside (`<file>.corrupt-<unix
//! seconds>`, kept as it was) and a fresh one made, and the caller is told so that it can
//! say it; a file that cannot be had now (another process holds it, no permission) is
//! refused and left alone.

use std::path::{Path, PathBuf};

mod journal;

pub use journal::Journal;

use redb::Database;

/// A file that could not be opened, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    pub to: PathBuf,
    pub why: String,
}

/// Opens (or creates) the database at `path` (and its directory), at `now` (Unix seconds,
/// for the name of a file moved aside).
pub fn open(path: &Path, now: u64) -> Result<(Database, Option<MovedAside>), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    match Database::create(path) {
        Ok(db) => Ok((db, None)),
        Err(e) if !unreadable(&e) => Err(e.to_string()),
        Err(e) => {
            let why = e.to_string();
            let to = PathBuf::from(format!("{}.corrupt-{now}", path.display()));
            std::fs::rename(path, &to).map_err(|e| format!("{why}; moving it aside: {e}"))?;
            let db = Database::create(path).map_err(|e| e.to_string())?;
            Ok((db, Some(MovedAside { to, why })))
        }
    }
}

/// A database in memory, gone when the process ends.
pub fn in_memory() -> Result<Database, String> {
    Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| e.to_string())
}

/// Whether `e` says the file is not a (readable) database, rather than that it cannot be
/// had now (held by another process, not permitted).
fn unreadable(e: &redb::DatabaseError) -> bool {
    use std::io::ErrorKind;
    match e {
        redb::DatabaseError::UpgradeRequired(_) => true,
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            matches!(io.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof)
        }
        _ => false,
    }
}
