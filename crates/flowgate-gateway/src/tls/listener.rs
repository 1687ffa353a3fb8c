//! TLS on the data-plane listener (`[server.tls]`): the configuration every handshake uses,
//! the certificate it serves (read again by the reloader, `reload.rs`, when its files change or on
//! SIGHUP), and the checks of its files and expiry.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use flowgate_config::{KeyPath, ListenerTls as Config};
use flowgate_http::tls::{Certificates, ServerSettings, TlsError};
use rustls::ServerConfig;

/// A certificate that expires within this many days is warned of.
pub const WARN_DAYS: i64 = 30;

/// The listener's TLS: the configuration of its handshakes and the certificate it serves.
#[derive(Debug)]
pub struct ListenerTls {
    pub config: Arc<ServerConfig>,
    pub certs: Arc<Certificates>,
}

impl ListenerTls {
    /// Loads `t`'s files; ALPN offers h2 when `http2`. A problem comes with its key.
    pub fn new(t: &Config, http2: bool) -> Result<Self, (KeyPath, String)> {
        let certs = Certificates::load(&t.cert_file, &t.key_file).map_err(|e| problem(&e))?;
        let settings = ServerSettings {
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            client_ca_file: t.client_ca_file.clone(),
            alpn: if http2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            },
        };
        let config =
            flowgate_http::tls::server_config(&settings, certs.clone()).map_err(|e| problem(&e))?;
        Ok(ListenerTls { config, certs })
    }
}

fn problem(e: &TlsError) -> (KeyPath, String) {
    (cert_key(e.setting()), e.to_string())
}

fn cert_key(setting: &str) -> KeyPath {
    KeyPath::default().key("server").key("tls").key(setting)
}

/// Whether `t` can be served: its files load and its certificate has not expired.
pub(crate) fn check(t: &Config, http2: bool) -> Result<(), (KeyPath, String)> {
    let tls = ListenerTls::new(t, http2)?;
    match tls.certs.not_after() {
        Some(end) if end <= now() => Err((
            cert_key("cert_file"),
            format!(
                "the certificate in {} expired on {}",
                t.cert_file.display(),
                date(end)
            ),
        )),
        _ => Ok(()),
    }
}

/// A warning when `t`'s certificate expires within [`WARN_DAYS`] of `now`.
pub(crate) fn expiry_warning(t: &Config, now: i64) -> Option<String> {
    let certs = flowgate_http::tls::certificates(&t.cert_file, "cert_file").ok()?;
    let end = flowgate_http::tls::not_after(&certs[0])?;
    soon(end, now).then(|| {
        format!(
            "server.tls.cert_file: the certificate in {} expires in {} day(s), on {}",
            t.cert_file.display(),
            (end - now).div_euclid(86_400),
            date(end)
        )
    })
}

/// Whether `end` is within [`WARN_DAYS`] of `now` (or past).
pub(crate) fn soon(end: i64, now: i64) -> bool {
    end - now < WARN_DAYS * 86_400
}

/// Seconds since the Unix epoch, by the system clock (`flowgate check` has no other).
pub(crate) fn now() -> i64 {
    seconds(&flowgate_clock::SystemClock)
}

/// Seconds since the Unix epoch on `clock`.
pub(crate) fn seconds(clock: &dyn flowgate_clock::Clock) -> i64 {
    i64::try_from(clock.unix_millis() / 1000).unwrap_or(i64::MAX)
}

/// `t` (seconds since the epoch) as an HTTP date.
pub(crate) fn date(t: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_within_thirty_days_only() {
        let now = 1_800_000_000;
        assert!(soon(now + 29 * 86_400, now));
        assert!(!soon(now + 31 * 86_400, now));
        assert!(soon(now - 1, now));
    }
}
