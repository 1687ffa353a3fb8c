//! TLS to upstreams: each pool with an `https://` endpoint gets one rustls client
//! configuration (its endpoints share its session cache).

use std::sync::Arc;

use flowgate_config::{KeyPath, PoolConfig, TlsRoots, UpstreamTls};
use flowgate_http::tls::{self, ClientSettings, Roots, TlsError};
use rustls::ClientConfig;

/// The protocols offered to upstreams by ALPN.
const ALPN: &[&[u8]] = &[b"http/1.1"];

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
