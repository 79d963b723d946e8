//! The error details this crate puts inside an [`io::Error`]: resolver, connect and bind failures.
//!
//! Every function returns `io::Result`, as Python raises `OSError`; where Python adds
//! information (`gaierror`'s code, the bind address, `create_connection`'s list of failures),
//! one of these types is the `io::Error`'s inner error, reachable with
//! [`io::Error::get_ref`] and `downcast_ref`.

use std::io;

use crate::Address;

/// A failed name resolution (Python's `socket.gaierror`), inside an `io::Error`.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, ResolveError};
///
/// let err = getaddrinfo(Some("no.such.host.invalid"), Some(80), &AddrInfoHints::default())
///     .unwrap_err();
/// assert!(err.to_string().starts_with("failed to resolve 'no.such.host.invalid': "));
/// let detail = err.get_ref().and_then(|e| e.downcast_ref::<ResolveError>());
/// assert!(detail.is_some_and(|d| d.code() != 0));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("failed to resolve '{host}': {message}")]
pub struct ResolveError {
    code: i32,
    host: String,
    message: String,
}

impl ResolveError {
    pub(crate) fn new(code: i32, host: String, message: String) -> ResolveError {
        ResolveError {
            code,
            host,
            message,
        }
    }

    /// The `EAI_*` code `getaddrinfo(3)` returned (Python's `gaierror.errno`).
    ///
    /// ```
    /// # use sockserve_socket::{getaddrinfo, AddrInfoHints, ResolveError};
    /// let err = getaddrinfo(Some("no.such.host.invalid"), None, &AddrInfoHints::default()).unwrap_err();
    /// let code = err.get_ref().and_then(|e| e.downcast_ref::<ResolveError>()).map(|e| e.code());
    /// assert!(matches!(code, Some(c) if c < 0));
    /// ```
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The host (or service) that failed to resolve.
    ///
    /// ```
    /// # use sockserve_socket::{getaddrinfo, AddrInfoHints, ResolveError};
    /// let err = getaddrinfo(Some("no.such.host.invalid"), None, &AddrInfoHints::default()).unwrap_err();
    /// let e = err.get_ref().and_then(|e| e.downcast_ref::<ResolveError>());
    /// assert_eq!(e.map(|e| e.host()), Some("no.such.host.invalid"));
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Every failure of [`create_connection`](crate::create_connection), one per address tried,
/// inside an `io::Error` whose kind is the kind of the last failure.
///
/// ```
/// use sockserve_socket::{create_connection, ConnectError, ConnectOptions, Family, Socket, Type};
///
/// // A bound port that does not listen refuses connections.
/// let bound = Socket::new(Family::Inet, Type::Stream)?;
/// bound.bind("127.0.0.1:0")?;
/// let err = create_connection(bound.getsockname()?, &ConnectOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// let detail = err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>());
/// assert_eq!(detail.map(|d| d.attempts().len()), Some(1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ConnectError {
    attempts: Vec<(Address, io::Error)>,
}

impl ConnectError {
    pub(crate) fn new(attempts: Vec<(Address, io::Error)>) -> ConnectError {
        ConnectError { attempts }
    }

    /// Each address tried, in order, with the error it gave.
    ///
    /// ```
    /// # use sockserve_socket::{create_connection, ConnectError, ConnectOptions, Family, Socket, Type};
    /// # let bound = Socket::new(Family::Inet, Type::Stream)?;
    /// # bound.bind("127.0.0.1:0")?;
    /// let err = create_connection(bound.getsockname()?, &ConnectOptions::default()).unwrap_err();
    /// let detail = err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>());
    /// let (addr, _) = &detail.expect("a ConnectError").attempts()[0];
    /// assert_eq!(*addr, bound.getsockname()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn attempts(&self) -> &[(Address, io::Error)] {
        &self.attempts
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("create_connection failed")?;
        for (i, (addr, err)) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{addr}: {err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    /// The last failure.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.attempts
            .last()
            .map(|(_, e)| e as &(dyn std::error::Error + 'static))
    }
}

/// A failed bind in [`create_server`](crate::create_server), naming the address, inside an
/// `io::Error` of the same kind; the OS error is its `source`.
///
/// ```
/// use sockserve_socket::{create_server, BindError, ServerOptions};
///
/// let first = create_server("127.0.0.1:0", &ServerOptions::default())?;
/// let err = create_server(first.getsockname()?, &ServerOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
/// assert!(err.to_string().contains("(while attempting to bind on address 127.0.0.1:"));
/// let detail = err.get_ref().and_then(|e| e.downcast_ref::<BindError>());
/// assert_eq!(detail.map(|d| d.address()), Some(&first.getsockname()?));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{source} (while attempting to bind on address {address})")]
pub struct BindError {
    address: Address,
    source: io::Error,
}

impl BindError {
    /// Wraps `source` in an `io::Error` of the same kind.
    pub(crate) fn wrap(address: Address, source: io::Error) -> io::Error {
        io::Error::new(source.kind(), BindError { address, source })
    }

    /// The address the bind was attempted on.
    ///
    /// ```
    /// # use sockserve_socket::{create_server, BindError, ServerOptions};
    /// # let first = create_server("127.0.0.1:0", &ServerOptions::default())?;
    /// let err = create_server(first.getsockname()?, &ServerOptions::default()).unwrap_err();
    /// let detail = err.get_ref().and_then(|e| e.downcast_ref::<BindError>());
    /// assert!(detail.is_some_and(|d| d.address().as_inet().is_some()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }
}

/// Whether an error of [`Socket::accept`](crate::Socket::accept) concerns only the one
/// connection it was about, so the listener should simply accept again.
///
/// True for `ECONNABORTED` (the client gave up before the accept), `EPROTO` and `EPERM`
/// (firewall), and the network errors Linux passes on from the pending connection (see
/// `accept(2)`): `ENETDOWN`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`,
/// `EOPNOTSUPP`, `ENETUNREACH`; and `EINTR`.
///
/// ```
/// use std::io;
/// use sockserve_socket::is_transient_accept_error;
/// assert!(is_transient_accept_error(&io::Error::from_raw_os_error(103))); // ECONNABORTED
/// assert!(!is_transient_accept_error(&io::Error::from_raw_os_error(24))); // EMFILE
/// ```
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EINTR
        )
    )
}

/// Whether an error means the process or system ran out of a resource (`EMFILE`, `ENFILE`,
/// `ENOBUFS`, `ENOMEM`): retrying at once would fail again, so a server should back off.
///
/// ```
/// use std::io;
/// use sockserve_socket::is_resource_exhausted;
/// assert!(is_resource_exhausted(&io::Error::from_raw_os_error(24))); // EMFILE
/// assert!(!is_resource_exhausted(&io::Error::from(io::ErrorKind::TimedOut)));
/// ```
pub fn is_resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) || e.kind() == io::ErrorKind::OutOfMemory
}
