//! The TLS material a config names, loaded as the transport uses it: the pools' client
//! configurations ([`upstream`]) and the listener's certificate ([`listener`]).
//! [`check_tls`] loads them all and reports what is wrong with the setting's key, so that
//! `flowgate check`, `flowgate serve` and every reload refuse a certificate that cannot be
//! used before any request needs it.

pub mod listener;
mod upstream;

use flowgate_config::{Config, KeyPath};

pub(crate) use upstream::client_config;

/// The client configuration of a database's connections (`[databases.tls]`).
pub fn database_client(
    t: &flowgate_config::UpstreamTls,
) -> Result<std::sync::Arc<rustls::ClientConfig>, flowgate_http::tls::TlsError> {
    flowgate_http::tls::client_config(&upstream::verification(t))
}

/// What is wrong with the TLS material of `config`, by key.
pub fn check_tls(config: &Config) -> Vec<(KeyPath, String)> {
    let mut found: Vec<_> = config
        .pools
        .iter()
        .filter_map(|p| client_config(p).err())
        .collect();
    if let Some(t) = &config.server.tls {
        found.extend(listener::check(t, config.server.http2).err());
    }
    for (i, d) in config.databases.iter().enumerate() {
        if let Err(e) = database_client(&d.tls) {
            let key = KeyPath::default()
                .key("databases")
                .index(i)
                .key("tls")
                .key(e.setting());
            found.push((key, e.to_string()));
        }
    }
    found
}

/// What `flowgate check` should warn of without refusing the config: a listener
/// certificate that expires soon.
pub fn tls_warnings(config: &Config) -> Vec<String> {
    config
        .server
        .tls
        .as_ref()
        .and_then(|t| listener::expiry_warning(t, listener::now()))
        .into_iter()
        .collect()
}
