//! `server::Error`: what a server's construction, loop and shutdown can fail with.

use socket::Address;
use std::io;

/// An error of the server layer.
///
/// Converts into `io::Error`, so `main() -> io::Result<()>` can use `?` on every server call:
/// an OS error comes back as that OS error (its kind and `raw_os_error()` kept; print the
/// `server::Error` itself to see the address too), anything else as an `io::Error` carrying
/// this error.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Error, TcpServer};
///
/// let first = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
/// let taken = first.server_address().to_string();
/// let err = TcpServer::bind(taken.as_str(), |_req| Ok(())).unwrap_err();
/// assert!(matches!(err, Error::Bind { .. }));
/// assert!(err.to_string().contains(&taken)); // the message names the address
/// let io = std::io::Error::from(err);
/// assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
/// assert_eq!(io.raw_os_error(), Some(98)); // EADDRINUSE on Linux
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be parsed, resolved, or does not suit this server.
    #[error("invalid server address: {0}")]
    Address(#[source] io::Error),
    /// `bind()` failed. From [`Builder::bind`](crate::Builder::bind) the new socket is closed
    /// with the server (no fd is left behind, CPython's bpo-22435); from
    /// [`Server::server_bind`](crate::Server::server_bind) the server keeps its socket, to try
    /// again or to close.
    #[error("cannot bind to {address}: {source}")]
    Bind {
        /// The address asked for.
        address: Address,
        /// The OS error.
        source: io::Error,
    },
    /// `listen()` failed; the socket was closed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The bound address.
        address: Address,
        /// The OS error.
        source: io::Error,
    },
    /// An option of the builder has a value no server can work with (`max_connections` or
    /// `max_packet_size` of 0): refused when the server is made, before any socket is
    /// created, rather than raised to something the caller did not ask for.
    ///
    /// ```
    /// use sockserve_server::{Error, UdpServer};
    ///
    /// let err = UdpServer::builder(|_r| Ok(())).max_packet_size(0).bind("127.0.0.1:0").unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "max_packet_size", .. }));
    /// assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The builder method's name.
        option: &'static str,
        /// What is wrong with the value, and what to do instead.
        reason: String,
    },
    /// `shutdown()` was called from the thread running `serve_forever`, where waiting would
    /// deadlock forever (CPython hangs there).
    #[error(
        "shutdown() called from the thread running serve_forever(), where it would deadlock; \
         use request_shutdown() there"
    )]
    ShutdownFromServingThread,
    /// The server was built unbound and `server_bind`/`server_activate` were not called
    /// before serving.
    #[error("the server is not active: call server_bind() and server_activate() before serving")]
    NotActivated,
    /// The server was closed (`server_close`).
    #[error("the server is closed")]
    Closed,
    /// An OS error of the serving loop itself.
    #[error("server i/o error: {0}")]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let source = match &e {
            Error::Address(source) | Error::Bind { source, .. } | Error::Listen { source, .. } => {
                Some(source)
            }
            Error::Io(_) => None,
            Error::ShutdownFromServingThread => {
                return io::Error::new(io::ErrorKind::Deadlock, e);
            }
            Error::Closed | Error::NotActivated => {
                return io::Error::new(io::ErrorKind::NotConnected, e);
            }
            Error::InvalidOption { .. } => return io::Error::new(io::ErrorKind::InvalidInput, e),
        };
        if let Error::Io(source) = e {
            return source;
        }
        match source.and_then(io::Error::raw_os_error) {
            // The OS error code is what programs match on (`EADDRINUSE`, `EACCES`): keep it.
            // (An io::Error holds a code or a message, not both: print the server::Error itself
            // for the address.)
            Some(code) => io::Error::from_raw_os_error(code),
            None => {
                let kind = source.map_or(io::ErrorKind::Other, io::Error::kind);
                io::Error::new(kind, e)
            }
        }
    }
}

/// The result of server operations.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Error, Result, TcpServer};
///
/// fn bind_port(address: &str) -> Result<u16> {
///     let server = TcpServer::bind(address, |_req| Ok(()))?;
///     Ok(server.server_address().as_inet().map_or(0, |a| a.port()))
/// }
///
/// assert_ne!(bind_port("127.0.0.1:0")?, 0);
/// assert!(matches!(bind_port("@a-unix-name"), Err(Error::Address(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
