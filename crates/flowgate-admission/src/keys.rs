//! Virtual API keys: made here, known only by their hash, found in constant time, and kept
//! in an embedded store when they are made through the admin API.
//!
//! A key is `fgk_` and 48 hex digits (24 bytes from the thread's CSPRNG). Only its BLAKE3
//! hash is ever kept — in the config (`blake3:HEX`) or the store — and its id is the first
//! 12 hex digits of that hash, safe to show. A presented key is hashed and looked up by the
//! hash's first 8 bytes; the whole hash is then compared in constant time
//! (`blake3::Hash`'s equality), so neither the lookup nor the comparison reveals how much
//! of a guess was right.

use std::collections::HashMap;
use std::path::Path;

use flowgate_config::{KeyConfig, hex};
use rand::RngCore;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The prefix of every key flowgate makes.
pub const PREFIX: &str = "fgk_";

/// A new random key, in plain text (shown once, never stored).
pub fn generate() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", hex(&bytes))
}

/// The hash a key is known by.
pub fn hash(key: &[u8]) -> [u8; 32] {
    *blake3::hash(key).as_bytes()
}

/// The id shown for a key: the first 12 hex digits of its hash.
pub fn id_of(hash: &[u8; 32]) -> String {
    hex(&hash[..6])
}

fn slot(hash: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(head)
}

/// Values of type `T` found by the key whose hash they were filed under.
#[derive(Debug)]
pub struct KeyIndex<T> {
    by_slot: HashMap<u64, Vec<(blake3::Hash, T)>>,
}

impl<T> Default for KeyIndex<T> {
    fn default() -> Self {
        KeyIndex {
            by_slot: HashMap::new(),
        }
    }
}

impl<T> KeyIndex<T> {
    /// Files `value` under the key hashing to `hash`.
    pub fn insert(&mut self, hash: [u8; 32], value: T) {
        self.by_slot
            .entry(slot(&hash))
            .or_default()
            .push((blake3::Hash::from_bytes(hash), value));
    }

    /// The value of the presented key `key`, if it is known.
    pub fn find(&self, key: &[u8]) -> Option<&T> {
        let h = blake3::hash(key);
        self.by_slot
            .get(&slot(h.as_bytes()))?
            .iter()
            // `blake3::Hash` compares in constant time.
            .find(|(known, _)| *known == h)
            .map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.by_slot.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_slot.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.by_slot.values().flatten().map(|(_, v)| v)
    }
}

/// A key made through the admin API, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    pub key: KeyConfig,
    /// When it was made (Unix milliseconds).
    pub created_ms: u64,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("key store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keys");

/// The keys made through the admin API, in one embedded database file. Every change is
/// committed durably before it is acknowledged.
#[derive(Debug)]
pub struct KeyStore {
    db: Database,
    path: String,
}

impl KeyStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<KeyStore, StoreError> {
        let shown = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| StoreError {
            path: shown.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::create(path).map_err(|e| err(&e))?;
        let store = KeyStore { db, path: shown };
        // The table exists from the start, so that reads never meet its absence.
        let tx = store.db.begin_write().map_err(|e| store.error(&e))?;
        tx.open_table(KEYS).map_err(|e| store.error(&e))?;
        tx.commit().map_err(|e| store.error(&e))?;
        Ok(store)
    }

    fn error(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Every stored key. An entry that cannot be read is reported, not skipped silently.
    pub fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.error(&e))?;
        let table = tx.open_table(KEYS).map_err(|e| self.error(&e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.error(&e))? {
            let (_, v) = row.map_err(|e| self.error(&e))?;
            let key: StoredKey = serde_json::from_slice(v.value())
                .map_err(|e| self.error(&format!("unreadable entry: {e}")))?;
            out.push(key);
        }
        Ok(out)
    }

    /// Adds a key; `false` when a key with its name or hash is already stored.
    pub fn insert(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let value = serde_json::to_vec(key).map_err(|e| self.error(&e))?;
        let tx = self.db.begin_write().map_err(|e| self.error(&e))?;
        {
            let mut table = tx.open_table(KEYS).map_err(|e| self.error(&e))?;
            if table
                .get(key.key.hash.as_slice())
                .map_err(|e| self.error(&e))?
                .is_some()
            {
                return Ok(false);
            }
            for row in table.iter().map_err(|e| self.error(&e))? {
                let (_, v) = row.map_err(|e| self.error(&e))?;
                if let Ok(other) = serde_json::from_slice::<StoredKey>(v.value())
                    && other.key.name == key.key.name
                {
                    return Ok(false);
                }
            }
            table
                .insert(key.key.hash.as_slice(), value.as_slice())
                .map_err(|e| self.error(&e))?;
        }
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(true)
    }

    /// Removes the key whose id is `id`; the removed key, if there was one.
    pub fn remove(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        let Some(found) = self.list()?.into_iter().find(|k| id_of(&k.key.hash) == id) else {
            return Ok(None);
        };
        let tx = self.db.begin_write().map_err(|e| self.error(&e))?;
        {
            let mut table = tx.open_table(KEYS).map_err(|e| self.error(&e))?;
            table
                .remove(found.key.hash.as_slice())
                .map_err(|e| self.error(&e))?;
        }
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, hash: [u8; 32]) -> StoredKey {
        StoredKey {
            key: KeyConfig {
                name: name.into(),
                hash,
                team: Some("t".into()),
                routes: vec![],
                models: vec!["gpt-4o*".into()],
                limits: vec![],
                concurrency: None,
                priority: Some(flowgate_config::Priority::High),
            },
            created_ms: 7,
        }
    }

    #[test]
    fn keys_are_random_and_found_only_by_themselves() {
        let (a, b) = (generate(), generate());
        assert!(a.starts_with(PREFIX) && a.len() == 52 && a != b);
        let mut index = KeyIndex::default();
        index.insert(hash(a.as_bytes()), "a");
        index.insert(hash(b.as_bytes()), "b");
        assert_eq!(index.find(a.as_bytes()), Some(&"a"));
        assert_eq!(index.find(b.as_bytes()), Some(&"b"));
        assert_eq!(index.find(&a.as_bytes()[..51]), None);
        assert_eq!(index.find(b""), None);
        assert_eq!(index.len(), 2);
        assert_eq!(id_of(&hash(a.as_bytes())).len(), 12);
    }

    #[test]
    fn the_store_keeps_keys_across_opens_and_refuses_duplicates() {
        let dir = std::env::temp_dir().join(format!("flowgate-keys-{}", std::process::id()));
        let path = dir.join("keys.redb");
        let _ = std::fs::remove_file(&path);
        let k = key("checkout", hash(b"k1"));
        {
            let store = KeyStore::open(&path).unwrap();
            assert!(store.insert(&k).unwrap());
            assert!(!store.insert(&k).unwrap(), "same hash");
            assert!(
                !store.insert(&key("checkout", hash(b"k2"))).unwrap(),
                "same name"
            );
            assert!(store.insert(&key("other", hash(b"k3"))).unwrap());
        }
        let store = KeyStore::open(&path).unwrap();
        let mut names: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|k| k.key.name)
            .collect();
        names.sort();
        assert_eq!(names, ["checkout", "other"]);
        assert_eq!(store.remove(&id_of(&hash(b"k1"))).unwrap(), Some(k));
        assert_eq!(store.remove(&id_of(&hash(b"k1"))).unwrap(), None);
        assert_eq!(store.list().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
