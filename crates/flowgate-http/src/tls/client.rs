//! TLS to upstreams: [`client_config`] makes the configuration a pool's connections share
//! (its session cache is what resumes their sessions), verifying servers against the
//! bundled Mozilla roots (`webpki-roots`, offline), the system's, and/or a private CA file,
//! with an optional client certificate for mTLS; [`Connector`] runs the handshake for one
//! server name, and a failed one is a [`HandshakeError`] that says why in a word a metric
//! can count (`unknown_issuer`, `expired`, `name_mismatch`, ...).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{TlsError, certificates, private_key, provider};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Where the certificates that vouch for servers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Roots {
    /// The Mozilla root program's, compiled in (`webpki-roots`): the same on every machine.
    #[default]
    Bundled,
    /// The operating system's store (`/etc/ssl/certs` and the like).
    System,
    /// None: only `ca_file` vouches.
    None,
}

/// How a pool's connections verify their servers and present themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    pub roots: Roots,
    /// PEM certificates trusted besides the roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// A PEM certificate chain and its key, presented when the server asks (mTLS).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accepts any server certificate (its signatures are still checked): for tests and
    /// private networks only.
    pub insecure_skip_verify: bool,
    /// The protocols offered by ALPN, most wanted first (`h2`, `http/1.1`).
    pub alpn: Vec<Vec<u8>>,
}

/// The client configuration for `settings`, reading its files.
pub fn client_config(settings: &ClientSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            setting: "tls",
            what: e.to_string(),
        })?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        builder.with_root_certificates(roots(settings)?)
    };
    let mut config = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "cert_file")?;
            let der = private_key(key)?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    e => TlsError::Pem {
                        setting: "key_file",
                        path: key.clone(),
                        what: e.to_string(),
                    },
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsError::Invalid {
                setting: "key_file",
                what: "cert_file is set without key_file".into(),
            });
        }
        (None, Some(_)) => {
            return Err(TlsError::Invalid {
                setting: "cert_file",
                what: "key_file is set without cert_file".into(),
            });
        }
    };
    config.alpn_protocols = settings.alpn.clone();
    Ok(Arc::new(config))
}

fn roots(settings: &ClientSettings) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match settings.roots {
        Roots::Bundled => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            // Unreadable entries of the system store are skipped, as browsers do.
            store.add_parsable_certificates(found.certs);
        }
        Roots::None => {}
    }
    if let Some(path) = &settings.ca_file {
        for cert in certificates(path, "ca_file")? {
            store.add(cert).map_err(|e| TlsError::Pem {
                setting: "ca_file",
                path: path.clone(),
                what: format!("not a CA certificate rustls can use: {e}"),
            })?;
        }
    }
    if store.is_empty() {
        return Err(TlsError::Invalid {
            setting: "roots",
            what: "no certificate vouches for servers: set ca_file or roots".into(),
        });
    }
    Ok(store)
}

/// Runs the client side of handshakes with one server name.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// Why a handshake failed: `reason` in a word (for metrics), `detail` for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS handshake failed ({reason}): {detail}")]
pub struct HandshakeError {
    pub reason: &'static str,
    pub detail: String,
}

impl Connector {
    /// Handshakes with `server_name` (a DNS name or an IP address) as SNI and the name the
    /// certificate must carry.
    pub fn new(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name =
            ServerName::try_from(server_name.to_string()).map_err(|e| TlsError::Invalid {
                setting: "sni",
                what: format!("{server_name:?} is not a server name: {e}"),
            })?;
        Ok(Connector { config, name })
    }

    /// The protocols offered by ALPN.
    pub fn alpn(&self) -> &[Vec<u8>] {
        &self.config.alpn_protocols
    }

    pub async fn connect(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, HandshakeError> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| {
                let mut failed = classify(&e);
                if failed.reason == "alpn" {
                    let offered: Vec<_> = self
                        .alpn()
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect();
                    failed.detail = format!(
                        "the server agreed to none of the protocols offered by ALPN ({}): {}",
                        offered.join(", "),
                        failed.detail
                    );
                }
                failed
            })
    }
}

/// The reason of a failed handshake.
pub fn classify(e: &io::Error) -> HandshakeError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let reason = match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name_mismatch"
            }
            CertificateError::Revoked => "revoked",
            _ => "bad_certificate",
        },
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol))
        | Some(rustls::Error::NoApplicationProtocol) => "alpn",
        Some(rustls::Error::AlertReceived(_)) => "alert",
        Some(_) => "handshake",
        None => "io",
    };
    HandshakeError {
        reason,
        detail: e.to_string(),
    }
}

/// Accepts any server certificate; signatures are still verified, so the handshake is
/// sound, only unauthenticated (`insecure_skip_verify`).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
