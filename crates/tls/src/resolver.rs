//! [`CertResolver`]: the server's certificate, replaceable while it serves.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

/// A certificate resolver whose certificate and key can be replaced while the server runs
/// (a renewed certificate), without a restart: handshakes from then on present the new one,
/// connections already open keep theirs. Clones share the certificate: give one to the
/// `ServerConfig` ([`with_cert_resolver`](rustls::ConfigBuilder::with_cert_resolver)) and keep
/// another to [`replace`](Self::replace) it.
///
/// # Examples
///
/// ```
/// use sockserve_tls::{CertResolver, pem, provider, rustls::ServerConfig};
/// use std::sync::Arc;
///
/// # let first = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let renewed = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let (cert_pem, key_pem) = (first.cert.pem(), first.key_pair.serialize_pem());
/// # let (new_cert_pem, new_key_pem) = (renewed.cert.pem(), renewed.key_pair.serialize_pem());
/// let resolver = CertResolver::new(pem::certified_key(cert_pem.as_bytes(), key_pem.as_bytes())?);
/// let config = ServerConfig::builder_with_provider(provider())
///     .with_safe_default_protocol_versions()?
///     .with_no_client_auth()
///     .with_cert_resolver(Arc::new(resolver.clone()));
/// // ... serve with `config`; then, with the renewed files:
/// resolver.replace(pem::certified_key(new_cert_pem.as_bytes(), new_key_pem.as_bytes())?);
/// assert_eq!(resolver.current().cert[0].as_ref(), renewed.cert.der().as_ref());
/// # drop(config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CertResolver {
    current: Arc<RwLock<Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// A resolver that presents `key` (a certificate chain and its private key) to every
    /// client.
    ///
    /// # Examples
    ///
    /// See [`CertResolver`].
    pub fn new(key: impl Into<Arc<CertifiedKey>>) -> CertResolver {
        CertResolver {
            current: Arc::new(RwLock::new(key.into())),
        }
    }

    /// Presents `key` from the next handshake on.
    ///
    /// # Examples
    ///
    /// See [`CertResolver`].
    pub fn replace(&self, key: impl Into<Arc<CertifiedKey>>) {
        // The lock guards one assignment: a panicking writer cannot leave it halfway.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key.into();
    }

    /// The certificate and key presented now.
    ///
    /// # Examples
    ///
    /// See [`CertResolver`].
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
