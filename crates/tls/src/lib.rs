//! TLS for sockserve's stream servers, over [rustls](https://docs.rs/rustls) with its `ring`
//! crypto provider (a lighter build than aws-lc-rs: no cmake, a shorter C build).
//!
//! One builder call makes a TCP or Unix stream server speak TLS: its handlers read and write
//! plaintext through `rfile` / `wfile` as before (Python: `SSLContext.wrap_socket` in
//! `get_request`), with what the handshake learned a call away ([`TlsRequest::tls`]: the
//! client's certificates, ALPN, SNI).
//!
//! | what | how |
//! |---|---|
//! | a `ServerConfig` from PEM files or bytes | [`pem::server_config`], [`pem::certified_key`] |
//! | TLS on a server | [`TlsBuilderExt::tls`] (`builder.tls(config)`), or [`Tls`] with options |
//! | the handshake | on the worker (or the forked child), never the accept loop, within [`Tls::handshake_timeout`] (default 10 s) |
//! | a failed handshake | `handle_error`, stage `Setup`, a [`HandshakeError`] inside ([`handshake_error`]); the server keeps serving |
//! | closing | `close_notify` at the request's finish; a client that closes without it fails its read with [`StreamTruncated`](server::StreamTruncated), logged at debug by default |
//! | new certificates while serving | [`CertResolver::replace`], or [`Tls::set_config`] |
//! | waiting connections | as plain ones; decrypted input already there runs the next turn at once |
//!
//! # Examples
//!
//! ```
//! use sockserve_tls::{TlsBuilderExt, TlsRequest, pem};
//! use sockserve_tls::server::TcpServer;
//! use std::io::{BufRead, Write};
//!
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! # let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
//! // From PEM bytes (or files: pem::server_config_from_files).
//! let config = pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?;
//! let server = TcpServer::builder(|req: &mut sockserve_tls::server::StreamRequest| {
//!     let mut line = String::new();
//!     req.rfile.read_line(&mut line)?; // plaintext
//!     let sni = req.tls().and_then(|tls| tls.server_name()).unwrap_or("-").to_owned();
//!     Ok(write!(req.wfile, "{sni}: {line}")?)
//! })
//! .tls(config)
//! .bind("127.0.0.1:0")?;
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod pem;
mod resolver;
mod stream;

/// rustls itself, the version this crate is built on: build a `ServerConfig` with it, without a
/// version of your own to keep in step.
///
/// ```
/// use sockserve_tls::rustls::ServerConfig;
///
/// let builder = ServerConfig::builder_with_provider(sockserve_tls::provider())
///     .with_safe_default_protocol_versions()?;
/// # let _ = builder;
/// # Ok::<(), sockserve_tls::rustls::Error>(())
/// ```
pub use rustls;

/// The server layer (the `sockserve-server` crate), which carries the layers below it
/// (`sockserve_tls::server::handler`, `sockserve_tls::server::socket`): a program that depends
/// on this crate alone reaches them here.
///
/// ```
/// use sockserve_tls::server::{StreamRequest, TcpServer};
///
/// let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use server;

pub use resolver::CertResolver;
pub use stream::TlsStream;

use handler::{HandlerError, StreamRequest};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use server::{BoxError, Builder, Incoming, Kind, Layer, SharedState, Strategy};
use socket::Socket;
use std::{
    fmt, io,
    sync::{Arc, RwLock},
    time::Duration,
};

/// The default of [`Tls::handshake_timeout`]: 10 s.
///
/// # Examples
///
/// ```
/// use sockserve_tls::DEFAULT_HANDSHAKE_TIMEOUT;
/// assert_eq!(DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), 10);
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider this crate builds its configurations on: rustls's `ring`.
///
/// # Examples
///
/// See [`rustls`].
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS handshake failed. It reaches the server's `handle_error` inside the request's
/// error (stage `Setup`; find it with [`handshake_error`]); the connection is closed and the
/// server keeps serving.
///
/// # Examples
///
/// ```
/// use sockserve_tls::{HandshakeError, handshake_error};
/// use sockserve_tls::server::{HandlerError, Stage};
/// use std::time::Duration;
///
/// let error = HandlerError::failed(Stage::Setup, HandshakeError::timed_out(Duration::from_secs(10)));
/// assert!(matches!(handshake_error(&error), Some(HandshakeError::TimedOut(_))));
/// assert!(error.is_timed_out()); // the default handle_error reports it as a slow client
/// assert!(error.to_string().contains("Tls::handshake_timeout"), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client did not finish its handshake within [`Tls::handshake_timeout`] (it sent
    /// nothing, or stalled halfway); the `io::Error` inside is of kind `TimedOut`.
    #[error("TLS handshake: {0}")]
    TimedOut(#[source] io::Error),
    /// The handshake failed by TLS's rules: not TLS at all (a plaintext client), no protocol
    /// or cipher in common, a client certificate required and missing or refused, ...
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] rustls::Error),
    /// The client closed the connection before the handshake was done.
    #[error("TLS handshake: the client closed the connection before it was done")]
    Closed,
    /// The socket failed during the handshake (a reset).
    #[error("TLS handshake: {0}")]
    Io(#[source] io::Error),
}

impl HandshakeError {
    /// The error of a handshake not done within `timeout`.
    ///
    /// # Examples
    ///
    /// See [`HandshakeError`].
    pub fn timed_out(timeout: Duration) -> Self {
        HandshakeError::TimedOut(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out: not done within {timeout:?} (Tls::handshake_timeout)"),
        ))
    }
}

/// The [`HandshakeError`] of a request that failed in its TLS handshake, if that is how it
/// failed: for a `handle_error` hook.
///
/// # Examples
///
/// ```
/// use sockserve_tls::{TlsBuilderExt, handshake_error};
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let config = sockserve_tls::pem::server_config(cert.cert.pem().as_bytes(), cert.key_pair.serialize_pem().as_bytes())?;
/// use sockserve_tls::server::TcpServer;
///
/// let server = TcpServer::builder(|_req| Ok(()))
///     .tls(config)
///     .handle_error(|_server, client, error| match handshake_error(error) {
///         Some(e) => log::info!("{client}: no TLS session: {e}"),
///         None => log::error!("{client}: {error}"),
///     })
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn handshake_error(error: &HandlerError) -> Option<&HandshakeError> {
    error.error()?.downcast_ref()
}

/// The TLS layer of a stream server: a handshake on each connection, on its worker, within
/// [`handshake_timeout`](Self::handshake_timeout), then the request's `rfile` and `wfile`
/// over the session. Clones share the configuration: keep one to
/// [`set_config`](Self::set_config) while the server runs.
///
/// # Examples
///
/// ```
/// use sockserve_tls::{Tls, TlsBuilderExt, pem};
/// use sockserve_tls::server::TcpServer;
/// use std::time::Duration;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// # let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
/// let tls = Tls::new(pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?)
///     .handshake_timeout(Duration::from_secs(5));
/// let keep = tls.clone();
/// let server = TcpServer::builder(|_req| Ok(())).tls(tls).bind("127.0.0.1:0")?;
/// // Later, new certificates for the connections to come (those open keep theirs):
/// keep.set_config(pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?);
/// assert_eq!(keep.timeout(), Duration::from_secs(5));
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    config: Arc<RwLock<Arc<ServerConfig>>>,
    handshake_timeout: Duration,
}

impl Tls {
    /// A layer with `config`, and the default handshake timeout (10 s).
    ///
    /// # Examples
    ///
    /// See [`Tls`].
    pub fn new(config: impl Into<Arc<ServerConfig>>) -> Tls {
        Tls {
            config: Arc::new(RwLock::new(config.into())),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// How long a client has to finish its handshake, from the moment its worker starts it:
    /// one that sends nothing, or stalls halfway, holds its worker no longer and ends with
    /// [`HandshakeError::TimedOut`] (reported by the default `handle_error` at info level,
    /// as a slow client). Default [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s.
    ///
    /// # Examples
    ///
    /// See [`Tls`].
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Tls {
        self.handshake_timeout = timeout;
        self
    }

    /// The handshake timeout.
    ///
    /// # Examples
    ///
    /// See [`Tls`].
    pub fn timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Replaces the configuration for the handshakes to come, while the server runs;
    /// connections already open keep theirs.
    ///
    /// # Examples
    ///
    /// See [`Tls`].
    pub fn set_config(&self, config: impl Into<Arc<ServerConfig>>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config.into();
    }

    /// The configuration the next handshake uses.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_tls::{Tls, pem};
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    /// let mut config = pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?;
    /// config.alpn_protocols = vec![b"http/1.1".to_vec()];
    /// let tls = Tls::new(config);
    /// assert_eq!(tls.config().alpn_protocols, [b"http/1.1".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> Arc<ServerConfig> {
        // A writer that panicked left a whole Arc behind: the lock guards one assignment.
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl From<ServerConfig> for Tls {
    fn from(config: ServerConfig) -> Tls {
        Tls::new(config)
    }
}

impl From<Arc<ServerConfig>> for Tls {
    fn from(config: Arc<ServerConfig>) -> Tls {
        Tls::new(config)
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Layer for Tls {
    fn on_connection(&self, incoming: &mut Incoming) -> Result<(), BoxError> {
        let stream = TlsStream::accept(
            Arc::clone(&incoming.socket),
            self.config(),
            self.handshake_timeout,
        )?;
        log::debug!(
            "TLS session with {}: {:?}, {:?}",
            incoming.client_address,
            stream.protocol_version(),
            stream.cipher_suite().map(|s| s.suite()),
        );
        incoming.transport = Some(Arc::new(stream));
        Ok(())
    }
}

/// `builder.tls(config)`: TLS on a stream server's builder (TCP or Unix stream, any
/// strategy), with a `ServerConfig` (its default handshake timeout) or a [`Tls`].
///
/// # Examples
///
/// See the [crate's](crate) example.
pub trait TlsBuilderExt: Sized {
    /// Adds the TLS layer: every connection's handshake on its worker, then plaintext
    /// `rfile` / `wfile` over the session.
    ///
    /// # Examples
    ///
    /// See the [crate's](crate) example.
    #[must_use]
    fn tls(self, tls: impl Into<Tls>) -> Self;
}

impl<K, C, S> TlsBuilderExt for Builder<K, C, S>
where
    K: Kind<Raw = Arc<Socket>>,
    C: Strategy,
    S: SharedState,
{
    fn tls(self, tls: impl Into<Tls>) -> Self {
        self.layer(tls.into())
    }
}

/// What a handler of a TLS server knows of its session: [`tls`](Self::tls) on a
/// `StreamRequest`.
///
/// # Examples
///
/// See [`TlsStream`].
pub trait TlsRequest {
    /// The request's TLS session, `None` on a plain connection.
    ///
    /// # Examples
    ///
    /// See [`TlsStream`].
    fn tls(&self) -> Option<&TlsStream>;
}

impl<S> TlsRequest for StreamRequest<S> {
    fn tls(&self) -> Option<&TlsStream> {
        self.transport()?.as_any().downcast_ref()
    }
}
