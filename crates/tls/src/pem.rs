//! Certificates and keys from PEM, in memory or in files, as rustls takes them.

use crate::provider;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::{fmt, io, path::Path};

/// What went wrong with PEM input: which input, and why.
///
/// # Examples
///
/// ```
/// use sockserve_tls::pem;
///
/// let error = pem::certificates(b"not a certificate").unwrap_err();
/// assert!(error.to_string().contains("certificate"), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The PEM text holds no item of the kind asked for, or a malformed one.
    #[error("no {what} in the PEM input: {detail}")]
    Parse {
        /// `certificate` or `private key`.
        what: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// rustls refused the certificate and key (a key that does not match the certificate,
    /// an unsupported key type).
    #[error("rustls refused the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

fn parse_error(what: &'static str, detail: impl fmt::Display) -> PemError {
    PemError::Parse {
        what,
        detail: detail.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates of PEM text (`-----BEGIN CERTIFICATE-----` blocks), in order: a chain,
/// end entity first.
///
/// # Errors
///
/// [`PemError::Parse`] when there is none, or one is malformed.
///
/// # Examples
///
/// ```
/// use sockserve_tls::pem;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// let chain = pem::certificates(cert.cert.pem().as_bytes())?;
/// assert_eq!(chain.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error("certificate", e))?;
    if chain.is_empty() {
        return Err(parse_error("certificate", "no CERTIFICATE block"));
    }
    Ok(chain)
}

/// The first private key of PEM text (PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// # Errors
///
/// [`PemError::Parse`] when there is none.
///
/// # Examples
///
/// ```
/// use sockserve_tls::pem;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// let key = pem::private_key(cert.key_pair.serialize_pem().as_bytes())?;
/// # drop(key);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| parse_error("private key", e))
}

/// A certificate chain and its key, as a [`CertifiedKey`] for a
/// [`CertResolver`](crate::CertResolver) (the key loaded by the `ring` provider, and checked
/// against the certificate).
///
/// # Errors
///
/// Either PEM input is wrong, or the key does not suit the certificate.
///
/// # Examples
///
/// See [`CertResolver`](crate::CertResolver).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, PemError> {
    let key = CertifiedKey::from_der(certificates(cert_pem)?, private_key(key_pem)?, &provider())?;
    Ok(key)
}

/// A `ServerConfig` (the `ring` provider, rustls's safe default protocol versions, TLS 1.3
/// and 1.2, no client authentication) presenting the certificate chain of `cert_pem` with
/// the key of `key_pem`. Set its `alpn_protocols` as you need; for client certificates,
/// build one with [`rustls::ServerConfig::builder_with_provider`] and a client verifier.
///
/// # Errors
///
/// Either PEM input is wrong, or rustls refuses them.
///
/// # Examples
///
/// ```
/// use sockserve_tls::pem;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
/// let mut config = pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?;
/// config.alpn_protocols = vec![b"http/1.1".to_vec()];
/// assert!(pem::server_config(b"", key_pem.as_bytes()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig, PemError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates(cert_pem)?, private_key(key_pem)?)?;
    Ok(config)
}

/// [`server_config`] from PEM files: the certificate chain's and the key's.
///
/// # Errors
///
/// A file cannot be read ([`PemError::Read`], naming it), or as [`server_config`].
///
/// # Examples
///
/// ```
/// use sockserve_tls::pem;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let dir = tempfile::tempdir()?;
/// # let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
/// # std::fs::write(&cert_path, cert.cert.pem())?;
/// # std::fs::write(&key_path, cert.key_pair.serialize_pem())?;
/// let config = pem::server_config_from_files(&cert_path, &key_path)?;
/// # drop(config);
/// let missing = pem::server_config_from_files("/nonexistent/cert.pem", &key_path);
/// assert!(missing.unwrap_err().to_string().contains("/nonexistent/cert.pem"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn server_config_from_files(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<ServerConfig, PemError> {
    server_config(&read(cert_path.as_ref())?, &read(key_path.as_ref())?)
}

/// [`certified_key`] from PEM files, for a [`CertResolver`](crate::CertResolver) that
/// reloads them.
///
/// # Errors
///
/// A file cannot be read, or as [`certified_key`].
///
/// # Examples
///
/// ```
/// use sockserve_tls::{CertResolver, pem};
///
/// fn reload(resolver: &CertResolver) -> Result<(), pem::PemError> {
///     resolver.replace(pem::certified_key_from_files("cert.pem", "key.pem")?);
///     Ok(())
/// }
/// # let _ = reload;
/// ```
pub fn certified_key_from_files(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<CertifiedKey, PemError> {
    certified_key(&read(cert_path.as_ref())?, &read(key_path.as_ref())?)
}
