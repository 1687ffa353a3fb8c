//! Which HTTP a pool speaks to its servers (`protocol`), and how often an HTTP/2 connection
//! is PINGed (`h2_keepalive`).

use std::time::Duration;

use crate::error::{Found, KeyPath};

/// A pool's `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/2 where the server picks it by ALPN (`https://` endpoints), else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 over TLS: a server that does not agree to it by ALPN is a connect error.
    H2,
    /// HTTP/2 in cleartext, with prior knowledge (`http://` endpoints).
    H2c,
}

impl UpstreamProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Auto => "auto",
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2 => "h2",
            UpstreamProtocol::H2c => "h2c",
        }
    }
}

/// How often an HTTP/2 connection is PINGed by default.
pub const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// Validates a pool's `protocol` against its endpoints' schemes: `endpoints` are each one's
/// name and whether it is `https://`.
pub(crate) fn protocol(
    raw: Option<&str>,
    endpoints: &[(&str, bool)],
    key: &KeyPath,
    found: &mut Found,
) -> UpstreamProtocol {
    let key = key.clone().key("protocol");
    let p = match raw {
        None | Some("auto") => UpstreamProtocol::Auto,
        Some("http1") => UpstreamProtocol::Http1,
        Some("h2") => UpstreamProtocol::H2,
        Some("h2c") => UpstreamProtocol::H2c,
        Some(other) => {
            found.push((
                key,
                format!("{other:?}: expected \"auto\", \"http1\", \"h2\" or \"h2c\""),
            ));
            return UpstreamProtocol::Auto;
        }
    };
    let wrong = match p {
        UpstreamProtocol::H2 => endpoints.iter().find(|(_, tls)| !tls).map(|(name, _)| {
            format!(
                "\"h2\" is HTTP/2 over TLS, agreed by ALPN, but endpoint {name} is http://: use \
                 \"h2c\" for cleartext HTTP/2"
            )
        }),
        UpstreamProtocol::H2c => endpoints.iter().find(|(_, tls)| *tls).map(|(name, _)| {
            format!(
                "\"h2c\" is cleartext HTTP/2, but endpoint {name} is https://: use \"h2\" (or \
                 \"auto\") for HTTP/2 over TLS"
            )
        }),
        UpstreamProtocol::Auto | UpstreamProtocol::Http1 => None,
    };
    if let Some(why) = wrong {
        found.push((key, why));
    }
    p
}
