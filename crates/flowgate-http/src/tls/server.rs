//! TLS on the listener: [`server_config`] makes the configuration every worker's handshakes
//! share, serving the certificate [`Certificates`] holds at the time of each handshake, so
//! that a renewed certificate is served from the next handshake on while open connections
//! keep theirs. With a client CA, clients must present a certificate it issued (mTLS).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, RootCertStore, ServerConfig};

use super::{TlsError, certificates, not_after, private_key, provider};

/// What the listener's TLS is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The PEM certificate chain served, leaf first, and its private key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, a client must present a certificate one of them
    /// issued, or the handshake fails.
    pub client_ca_file: Option<PathBuf>,
    /// The protocols accepted by ALPN, most wanted first.
    pub alpn: Vec<Vec<u8>>,
}

/// The certificate the listener serves, swappable while connections stay open.
#[derive(Debug)]
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The served certificate's expiry (seconds since the epoch; `i64::MAX` if unknown).
    not_after: AtomicI64,
}

impl Certificates {
    /// Loads the pair of files, checking that the key is the certificate's.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let (key, expiry) = load_pair(cert_file, key_file)?;
        Ok(Arc::new(Certificates {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(key),
            not_after: AtomicI64::new(expiry.unwrap_or(i64::MAX)),
        }))
    }

    /// Reads the files again and serves what they hold from the next handshake on. A pair
    /// that cannot be used is an error and the served certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (key, expiry) = load_pair(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        self.not_after
            .store(expiry.unwrap_or(i64::MAX), Ordering::Relaxed);
        Ok(())
    }

    /// When the served certificate expires (seconds since the epoch), if known.
    pub fn not_after(&self) -> Option<i64> {
        Some(self.not_after.load(Ordering::Relaxed)).filter(|&t| t != i64::MAX)
    }

    /// The certificate file and the key file.
    pub fn files(&self) -> (&Path, &Path) {
        (&self.cert_file, &self.key_file)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A certificate chain and its key, checked to belong together, with the leaf's expiry.
fn load_pair(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, Option<i64>), TlsError> {
    let chain = certificates(cert, "cert_file")?;
    let expiry = not_after(&chain[0]);
    let signing = provider()
        .key_provider
        .load_private_key(private_key(key)?)
        .map_err(|e| TlsError::Pem {
            setting: "key_file",
            path: key.to_path_buf(),
            what: format!("not a key rustls can sign with: {e}"),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        // `Unknown`: the provider cannot tell; the handshake will.
        _ => Ok((Arc::new(pair), expiry)),
    }
}

/// The listener's crypto: the default suites, the AES-128-GCM ones first. Their key
/// schedule hashes with SHA-256, which has instructions of its own on current x86 and ARM
/// cores, where the AES-256 suites' SHA-384 has none (a third of a handshake's hashing
/// time on this project's AMD benchmark machine); AES-128 is as safe for TLS as AES-256
/// (Go's servers and Mozilla's "modern" profile put it first too).
fn server_provider() -> Arc<CryptoProvider> {
    let mut p = (*provider()).clone();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

/// The listener's configuration: `certs` answers each handshake.
pub fn server_config(
    settings: &ServerSettings,
    certs: Arc<Certificates>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = server_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            setting: "tls",
            what: e.to_string(),
        })?;
    let builder = match &settings.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "client_ca_file")? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    setting: "client_ca_file",
                    path: path.clone(),
                    what: format!("not a CA certificate rustls can use: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Invalid {
                    setting: "client_ca_file",
                    what: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certs);
    config.alpn_protocols = settings.alpn.clone();
    // The server's order of suites, not the client's (most clients put AES-256 first).
    config.ignore_client_order = true;
    // Stateless resumption (TLS 1.3 tickets, rotated keys) as nginx's default
    // `ssl_session_tickets on`: a returning client skips the certificate exchange.
    config.ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| TlsError::Invalid {
            setting: "tls",
            what: e.to_string(),
        })?;
    Ok(Arc::new(config))
}
