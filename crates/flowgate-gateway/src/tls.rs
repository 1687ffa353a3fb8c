//! The TLS material a config names, loaded as the transport uses it: each pool with an
//! `https://` endpoint gets one rustls client configuration (its endpoints share its
//! session cache). [`check_tls`] loads them all and reports what is wrong with the setting's
//! key, so that `flowgate check`, `flowgate serve` and every reload refuse a certificate
//! that cannot be used before any request needs it.

use std::sync::Arc;

use flowgate_config::{Config, KeyPath, PoolConfig, TlsRoots, UpstreamTls};
use flowgate_http::tls::{self, ClientSettings, Roots, TlsError};
use rustls::ClientConfig;

/// The protocols offered to upstreams by ALPN.
const ALPN: &[&[u8]] = &[b"http/1.1"];

/// What is wrong with the TLS material of `config`, by key.
pub fn check_tls(config: &Config) -> Vec<(KeyPath, String)> {
    config
        .pools
        .iter()
        .filter_map(|p| client_config(p).err())
        .collect()
}

/// The client configuration of `pool`'s `https://` endpoints (`None` when it has none), or
/// the key and message of what is wrong.
pub(crate) fn client_config(
    pool: &PoolConfig,
) -> Result<Option<Arc<ClientConfig>>, (KeyPath, String)> {
    if !pool.endpoints.iter().any(|e| e.tls) {
        return Ok(None);
    }
    tls::client_config(&settings(&pool.tls))
        .map(Some)
        .map_err(|e| (key(&pool.name, &e), e.to_string()))
}

fn settings(t: &UpstreamTls) -> ClientSettings {
    ClientSettings {
        roots: match t.roots {
            TlsRoots::Bundled => Roots::Bundled,
            TlsRoots::System => Roots::System,
            TlsRoots::None => Roots::None,
        },
        ca_file: t.ca_file.clone(),
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        insecure_skip_verify: t.insecure_skip_verify,
        alpn: ALPN.iter().map(|p| p.to_vec()).collect(),
    }
}

fn key(pool: &str, e: &TlsError) -> KeyPath {
    KeyPath::default()
        .key("pools")
        .key(pool)
        .key("tls")
        .key(e.setting())
}
