//! Virtual keys on the request path: who is calling, and what they may call.
//!
//! With `[auth] enabled`, every data-plane request must present a key (`Authorization:
//! Bearer KEY`, or the configured header carrying the key as is). Keys come from the config
//! (`[[auth.keys]]`, rebuilt on reload) and from the store (made through the admin API,
//! kept across restarts). An unknown or revoked key is a 401; a known key calling a route or
//! model it is not allowed is a 403. The key's header is removed before the request goes
//! on: the upstream gets the pool's own credential (`api_key_env`), never the client's key,
//! and the cache sees the request the upstream sees.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use flowgate_admission::keys::{self, KeyIndex, KeyStore, StoreError, StoredKey};
use flowgate_config::{AdminConfig, AdminScope, AuthConfig, Config, KeyConfig};
use http::HeaderMap;

use crate::admission::{Counts, Limit};
use crate::error::ProxyError;
use crate::queues::{Queues, Scope};

/// A known key, with its own limits compiled.
#[derive(Debug)]
pub struct Caller {
    pub key: KeyConfig,
    pub limits: Vec<Limit>,
    /// Its concurrency limit, if it has one.
    pub concurrency: Option<Arc<crate::queues::Gate>>,
    /// When it was made through the admin API (Unix ms); `None` for config keys.
    pub created_ms: Option<u64>,
}

impl Caller {
    /// 403 unless the key may call the route named `route`.
    pub fn check_route(&self, route: &str) -> Result<(), ProxyError> {
        if self.key.allows_route(route) {
            return Ok(());
        }
        Err(self.not_allowed("route", route))
    }

    /// 403 unless the key may ask for the request's model (read only when the key names
    /// its models).
    pub fn check_model<'m>(
        &self,
        model: impl FnOnce() -> Option<&'m str>,
    ) -> Result<(), ProxyError> {
        if self.key.models.is_empty() {
            return Ok(());
        }
        let model = model();
        if self.key.allows_model(model) {
            return Ok(());
        }
        Err(self.not_allowed("model", model.unwrap_or_default()))
    }

    fn not_allowed(&self, what: &'static str, name: &str) -> ProxyError {
        ProxyError::NotAllowed {
            key: self.key.name.clone(),
            what,
            name: name.to_string(),
        }
    }

    fn new(
        key: KeyConfig,
        created_ms: Option<u64>,
        counts: &Counts,
        queues: &Queues,
    ) -> Arc<Caller> {
        Arc::new(Caller {
            limits: counts.of_key(&key),
            concurrency: key
                .concurrency
                .as_ref()
                .map(|c| queues.get(Scope::Key, &key.name, c)),
            key,
            created_ms,
        })
    }
}

pub type Callers = KeyIndex<Arc<Caller>>;

/// The keys written in a config.
pub fn config_keys(config: &Config, counts: &Counts, queues: &Queues) -> Callers {
    let mut index = KeyIndex::default();
    for k in &config.auth.keys {
        index.insert(k.hash, Caller::new(k.clone(), None, counts, queues));
    }
    index
}

/// Why a key could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key store: set auth.store to make keys through the API")]
    NoStore,
    #[error("a key named {0:?} exists")]
    Exists(String),
    #[error("key {0} is written in the config file: remove it there")]
    InConfig(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key store and the keys it holds.
#[derive(Debug)]
pub struct Auth {
    store: Option<KeyStore>,
    stored: ArcSwap<Callers>,
    /// Where the stored keys' limits count.
    counts: Arc<Counts>,
    queues: Arc<Queues>,
}

impl Auth {
    /// Opens the store at `path`, if any, and reads its keys.
    pub fn open(
        path: Option<&Path>,
        counts: Arc<Counts>,
        queues: Arc<Queues>,
    ) -> Result<Auth, StoreError> {
        let auth = Auth {
            store: path.map(KeyStore::open).transpose()?,
            stored: ArcSwap::from_pointee(KeyIndex::default()),
            counts,
            queues,
        };
        auth.reload()?;
        Ok(auth)
    }

    fn reload(&self) -> Result<(), StoreError> {
        let mut index = KeyIndex::default();
        if let Some(store) = &self.store {
            for k in store.list()? {
                index.insert(
                    k.key.hash,
                    Caller::new(k.key, Some(k.created_ms), &self.counts, &self.queues),
                );
            }
        }
        self.stored.store(Arc::new(index));
        Ok(())
    }

    /// The caller presenting a key in `headers`: 401 when there is none or it is unknown.
    pub fn authenticate(
        &self,
        cfg: &AuthConfig,
        config_keys: &Callers,
        headers: &HeaderMap,
    ) -> Result<Arc<Caller>, ProxyError> {
        let presented = headers.get(&cfg.header).and_then(|v| {
            let v = v.as_bytes();
            let key = if cfg.header == http::header::AUTHORIZATION {
                let (scheme, rest) = v.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)?
            } else {
                v
            };
            Some(key.trim_ascii()).filter(|k| !k.is_empty())
        });
        let Some(presented) = presented else {
            let how = if cfg.header == http::header::AUTHORIZATION {
                "Authorization: Bearer KEY".to_string()
            } else {
                format!("{}: KEY", cfg.header)
            };
            return Err(ProxyError::Unauthorized(format!(
                "no API key: send it as `{how}`"
            )));
        };
        if let Some(c) = config_keys.find(presented) {
            return Ok(c.clone());
        }
        self.stored
            .load()
            .find(presented)
            .cloned()
            .ok_or_else(|| ProxyError::Unauthorized("invalid API key (unknown or revoked)".into()))
    }

    /// Makes a key from `key` (its hash is replaced by the new key's): the plain key,
    /// shown this once, and what was stored.
    pub fn create(
        &self,
        config: &Config,
        mut key: KeyConfig,
        now_ms: u64,
    ) -> Result<(String, StoredKey), KeyError> {
        let store = self.store.as_ref().ok_or(KeyError::NoStore)?;
        if config.auth.keys.iter().any(|k| k.name == key.name) {
            return Err(KeyError::Exists(key.name));
        }
        let plain = keys::generate();
        key.hash = keys::hash(plain.as_bytes());
        let stored = StoredKey {
            key,
            created_ms: now_ms,
        };
        if !store.insert(&stored)? {
            return Err(KeyError::Exists(stored.key.name));
        }
        self.reload()?;
        Ok((plain, stored))
    }

    /// Every key: the config's, then the store's.
    pub fn list(&self, config_keys: &Callers) -> Vec<Arc<Caller>> {
        let mut all: Vec<Arc<Caller>> = config_keys.values().cloned().collect();
        all.sort_by(|a, b| a.key.name.cmp(&b.key.name));
        let mut stored: Vec<Arc<Caller>> = self.stored.load().values().cloned().collect();
        stored.sort_by(|a, b| a.key.name.cmp(&b.key.name));
        all.extend(stored);
        all
    }

    /// Revokes the stored key with id `id`: from now on it is a 401. `None` when no key
    /// has that id.
    pub fn revoke(&self, config_keys: &Callers, id: &str) -> Result<Option<String>, KeyError> {
        if config_keys.values().any(|c| keys::id_of(&c.key.hash) == id) {
            return Err(KeyError::InConfig(id.to_string()));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let removed = store.remove(id)?;
        self.reload()?;
        Ok(removed.map(|k| k.key.name))
    }
}

/// The admin API's tokens (`[[admin.tokens]]` and `FLOWGATE_ADMIN_TOKEN`), by hash.
#[derive(Debug, Default)]
pub struct AdminTokens {
    index: KeyIndex<(String, AdminScope)>,
}

impl AdminTokens {
    pub fn new(cfg: &AdminConfig) -> Self {
        let mut index = KeyIndex::default();
        for t in &cfg.tokens {
            index.insert(t.hash, (t.name.clone(), t.scope));
        }
        if let Some(secret) = &cfg.env_token {
            index.insert(
                keys::hash(secret.expose().as_bytes()),
                (format!("${}", secret.var()), AdminScope::Write),
            );
        }
        AdminTokens { index }
    }

    /// The name and scope of the token presented, if it is one.
    pub fn find(&self, presented: &[u8]) -> Option<&(String, AdminScope)> {
        self.index.find(presented)
    }
}
