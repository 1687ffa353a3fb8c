//! TLS with rustls on the aws-lc-rs provider (docs/decisions/2026-12-06-upstream-tls.md).
//!
//! - [`client`]: to upstreams. A pool's configuration (its session cache resumes its
//!   connections' sessions) verifies servers against bundled, system and/or private roots,
//!   with an optional client certificate; a failed handshake says why in a word a metric
//!   can count.
//! - [`server`]: on the listener. The served certificate can be swapped while connections
//!   stay open ([`server::Certificates`]); clients may be required to present one.
//! - `der`: the one field of a certificate rustls does not show, its expiry.

pub mod client;
mod der;
pub mod server;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use client::{ClientSettings, Connector, HandshakeError, Roots, classify, client_config};
pub use der::not_after;
pub use server::{Certificates, ServerSettings, server_config};

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: {what}", path.display())]
    Pem {
        setting: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{setting}: {what}")]
    Invalid { setting: &'static str, what: String },
}

impl TlsError {
    /// The setting it is about (`ca_file`, `cert_file`, `key_file`, ...).
    pub fn setting(&self) -> &'static str {
        match self {
            TlsError::Read { setting, .. }
            | TlsError::Pem { setting, .. }
            | TlsError::Invalid { setting, .. } => setting,
            TlsError::KeyMismatch { .. } => "key_file",
        }
    }
}

/// The crypto provider of every TLS configuration flowgate makes.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The certificates of a PEM file (at least one).
pub fn certificates(
    path: &Path,
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, setting)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            setting,
            path: path.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            setting,
            path: path.to_path_buf(),
            what: "no CERTIFICATE block in the file".into(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "key_file")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        setting: "key_file",
        path: path.to_path_buf(),
        what: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block in the file".into(),
            e => format!("bad PEM: {e}"),
        },
    })
}

fn read(path: &Path, setting: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_path_buf(),
        source,
    })
}
