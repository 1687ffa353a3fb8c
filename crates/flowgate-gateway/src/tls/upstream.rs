//! TLS to upstreams: each pool with an `https://` endpoint gets one rustls client
//! configuration (its endpoints share its session cache).

use std::sync::Arc;

use flowgate_config::{KeyPath, PoolConfig, TlsRoots, UpstreamProtocol, UpstreamTls};
use flowgate_http::tls::{self, ClientSettings, Roots, TlsError};
use rustls::ClientConfig;

/// The client configuration of `pool`'s `https://` endpoints (`None` when it has none), or
/// the key and message of what is wrong.
pub(crate) fn client_config(
    pool: &PoolConfig,
) -> Result<Option<Arc<ClientConfig>>, (KeyPath, String)> {
    if !pool.endpoints.iter().any(|e| e.tls) {
        return Ok(None);
    }
    tls::client_config(&settings(&pool.tls, pool.protocol))
        .map(Some)
        .map_err(|e| (key(&pool.name, &e), e.to_string()))
}

/// The protocols offered by ALPN for `protocol`, most wanted first.
fn alpn(protocol: UpstreamProtocol) -> Vec<Vec<u8>> {
    let h2 = b"h2".to_vec();
    let http1 = b"http/1.1".to_vec();
    match protocol {
        UpstreamProtocol::Auto => vec![h2, http1],
        UpstreamProtocol::H2 | UpstreamProtocol::H2c => vec![h2],
        UpstreamProtocol::Http1 => vec![http1],
    }
}

fn settings(t: &UpstreamTls, protocol: UpstreamProtocol) -> ClientSettings {
    ClientSettings {
        alpn: alpn(protocol),
        ..verification(t)
    }
}

/// How servers are verified and what is presented to them, as `t` says (no ALPN: a
/// database's connections offer none).
pub(crate) fn verification(t: &UpstreamTls) -> ClientSettings {
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
        alpn: Vec::new(),
    }
}

fn key(pool: &str, e: &TlsError) -> KeyPath {
    KeyPath::default()
        .key("pools")
        .key(pool)
        .key("tls")
        .key(e.setting())
}
