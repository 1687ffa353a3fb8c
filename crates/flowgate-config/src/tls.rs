//! TLS to a pool's `https://` endpoints (`[pools.NAME.tls]`): which roots vouch for its
//! servers, a private CA, a client certificate for mTLS, the server name sent, and the
//! switch that turns verification off. The files are checked to be readable here; what is
//! in them (PEM, a key that matches its certificate) is checked by whoever loads them
//! (`flowgate_gateway::check_external`, through [`crate::load_with`]).

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Found;
use crate::error::KeyPath;
use crate::units::relative_to;

/// `[pools.NAME.tls]` (and `[databases.tls]`) as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub roots: Option<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: Option<bool>,
}

/// `[server.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_ca_file: Option<String>,
}

/// The data plane's own certificate (`[server.tls]`), reloaded when its files change or on
/// SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The PEM certificate chain served (leaf first) and its private key, resolved against
    /// the config file's folder.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, clients must present a certificate one of them issued.
    pub client_ca_file: Option<PathBuf>,
}

/// Validates `[server.tls]`; files are relative to the config file `origin`'s folder.
pub(crate) fn listener_tls(
    raw: Option<RawListenerTls>,
    origin: &str,
    server: &KeyPath,
    found: &mut Found,
) -> Option<ListenerTls> {
    let raw = raw?;
    let key = server.clone().key("tls");
    let required = |name: &str, v: Option<String>, found: &mut Found| match v {
        Some(v) => readable(origin, &key, name, v, found),
        None => {
            found.push((
                key.clone().key(name),
                "required: [server.tls] needs cert_file and key_file (PEM)".into(),
            ));
            None
        }
    };
    let cert_file = required("cert_file", raw.cert_file, found);
    let key_file = required("key_file", raw.key_file, found);
    let client_ca_file = raw
        .client_ca_file
        .and_then(|v| readable(origin, &key, "client_ca_file", v, found));
    Some(ListenerTls {
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file,
    })
}

/// `v` resolved against the config's folder; a file that cannot be opened is a problem of
/// `key.name`.
fn readable(
    origin: &str,
    key: &KeyPath,
    name: &str,
    v: String,
    found: &mut Found,
) -> Option<PathBuf> {
    let path = relative_to(origin, &v);
    if let Err(e) = std::fs::File::open(&path) {
        found.push((
            key.clone().key(name),
            format!("cannot read {}: {e}", path.display()),
        ));
    }
    Some(path)
}

/// Where the certificates that vouch for upstream servers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// The Mozilla root program's, compiled in: the same on every machine, no file read.
    #[default]
    Bundled,
    /// The operating system's store.
    System,
    /// None: only `ca_file` vouches.
    None,
}

impl TlsRoots {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRoots::Bundled => "bundled",
            TlsRoots::System => "system",
            TlsRoots::None => "none",
        }
    }
}

/// How a pool's `https://` endpoints are verified and what the gateway presents to them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// Default `bundled`.
    pub roots: TlsRoots,
    /// PEM certificates trusted besides the roots (a private CA), resolved against the
    /// config file's folder.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), for upstreams that require mTLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The server name sent (SNI) and verified, instead of each endpoint's host.
    pub sni: Option<String>,
    /// Accept any server certificate. Every load logs a warning; `flowgate check` shows it.
    pub insecure_skip_verify: bool,
}

/// Validates a pool's `tls` table; `https` says whether the pool has an `https://` endpoint
/// (settings with none to apply to are an error); files are relative to the config file
/// `origin`'s folder.
pub(crate) fn upstream_tls(
    raw: Option<RawUpstreamTls>,
    https: bool,
    origin: &str,
    key: &KeyPath,
    found: &mut Found,
) -> UpstreamTls {
    let Some(raw) = raw else {
        return UpstreamTls::default();
    };
    let key = key.clone().key("tls");
    if !https {
        found.push((
            key.clone(),
            "no endpoint of this pool is https://: these settings would apply to nothing".into(),
        ));
    }
    let roots = match raw.roots.as_deref() {
        None | Some("bundled") => TlsRoots::Bundled,
        Some("system") => TlsRoots::System,
        Some("none") => TlsRoots::None,
        Some(other) => {
            found.push((
                key.clone().key("roots"),
                format!("{other:?}: expected \"bundled\", \"system\" or \"none\""),
            ));
            TlsRoots::Bundled
        }
    };
    let file =
        |name: &str, v: Option<String>, found: &mut Found| readable(origin, &key, name, v?, found);
    let ca_file = file("ca_file", raw.ca_file, found);
    let cert_file = file("cert_file", raw.cert_file, found);
    let key_file = file("key_file", raw.key_file, found);
    match (&cert_file, &key_file) {
        (Some(_), None) => found.push((
            key.clone().key("key_file"),
            "cert_file is set: key_file must be too (the client certificate's private key)".into(),
        )),
        (None, Some(_)) => found.push((
            key.clone().key("cert_file"),
            "key_file is set: cert_file must be too (the client certificate)".into(),
        )),
        _ => {}
    }
    if roots == TlsRoots::None && ca_file.is_none() && raw.insecure_skip_verify != Some(true) {
        found.push((
            key.clone().key("roots"),
            "\"none\" without ca_file: no certificate would vouch for any server".into(),
        ));
    }
    let sni = raw.sni.filter(|s| {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b':'));
        if !ok {
            found.push((
                key.clone().key("sni"),
                format!("{s:?} is not a host name or IP address"),
            ));
        }
        ok
    });
    UpstreamTls {
        roots,
        ca_file,
        cert_file,
        key_file,
        sni,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
    }
}
