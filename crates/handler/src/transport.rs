//! [`Transport`]: the byte stream under a stream request's `rfile` and `wfile` when it is not
//! the plain socket (TLS, over `sockserve-tls`); [`Io`], the reader's and writer's way to it,
//! the plain socket by default at the cost of one branch; [`StreamTruncated`], the error of a
//! stream that ended without its protocol's end (a TLS `close_notify`).

use socket::Socket;
use std::{
    any::Any,
    fmt, io,
    sync::{Arc, Weak},
    time::Instant,
};

/// The byte stream of a connection that is not the plain socket: what a stream request's
/// `rfile` reads from and its `wfile` writes to, for a transport that changes the bytes (TLS
/// decrypts and encrypts them). The socket layer's connection stays the fd that readiness is
/// watched on ([`socket`](Self::socket)); a request without a transport reads and writes the
/// socket itself, with no dynamic call.
///
/// Each call may wait until `deadline` (`None`: as long as it takes) and then fails with an
/// `io::Error` of kind `TimedOut`, as the socket's own `recv_into_by` and `send_by` do: the
/// request's deadlines ([`StreamOptions`](crate::StreamOptions)) bound it so, and name the
/// option in the error. A transport is shared by the request's reader, its writer and its
/// [`ConnectionWriter`](crate::ConnectionWriter)s on other threads, so it takes `&self` and
/// must not hold its own lock while it waits for the socket.
///
/// A server layer installs one from a step it runs on the worker, before the request's setup
/// (`sockserve_server::Layer`); `sockserve-tls` is the one in this project.
///
/// # Examples
///
/// A transport that passes bytes through, as the plain socket does:
///
/// ```
/// use sockserve_handler::Transport;
/// use sockserve_handler::socket::Socket;
/// use std::{any::Any, io, sync::Arc, time::Instant};
///
/// #[derive(Debug)]
/// struct Through(Arc<Socket>);
///
/// impl Transport for Through {
///     fn socket(&self) -> &Arc<Socket> {
///         &self.0
///     }
///     fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
///         self.0.recv_into_by(buf, deadline)
///     }
///     fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
///         self.0.send_by(data, deadline)
///     }
///     fn as_any(&self) -> &dyn Any {
///         self
///     }
/// }
/// # let _ = Through;
/// ```
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The connection's socket: the fd readiness is watched on between turns, and what
    /// `shutdown_request` shuts down and closes.
    fn socket(&self) -> &Arc<Socket>;

    /// Reads bytes of the stream into `buf`, waiting for the socket at most until `deadline`:
    /// `Ok(0)` is the stream's clean end. A stream that ends without its protocol's end (a
    /// TLS peer that closed without `close_notify`) is the error of
    /// [`StreamTruncated::error`].
    ///
    /// # Errors
    ///
    /// `TimedOut` at the deadline, the socket's errors, the transport's own (`InvalidData`
    /// for a corrupt TLS record).
    fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize>;

    /// Writes some of `data` (at least one byte of a non-empty one) and sends what that
    /// produced before it returns, waiting for the socket at most until `deadline`. Returns
    /// how many bytes of `data` it took.
    ///
    /// # Errors
    ///
    /// `TimedOut` at the deadline, the socket's errors.
    fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize>;

    /// Whether input is buffered in the transport already (decrypted bytes, or bytes read
    /// from the socket and not yet decrypted): a waiting connection with such input runs its
    /// next turn at once, since the socket may never become readable for it. Default: none.
    fn has_buffered_input(&self) -> bool {
        false
    }

    /// Ends the stream the transport's way before the socket is shut down (TLS: sends
    /// `close_notify`), waiting for the socket at most until `deadline`. Called once, at the
    /// request's finish. Default: nothing to send.
    ///
    /// # Errors
    ///
    /// The socket's errors (the peer may be gone): logged at debug level by the request.
    fn close_by(&self, deadline: Option<Instant>) -> io::Result<()> {
        let _ = deadline;
        Ok(())
    }

    /// The transport as `Any`, so that its crate can give handlers what it knows of the
    /// connection (a TLS peer's certificates) by downcasting
    /// [`StreamRequest::transport`](crate::StreamRequest::transport).
    fn as_any(&self) -> &dyn Any;
}

/// The error of a stream that ended without its protocol's end: a TLS peer that closed the
/// connection without sending `close_notify`, so that what came last may have been cut off by
/// an attacker or a crash. A handler sees it as the `io::Error` of its read (kind
/// `UnexpectedEof`, this value inside); [`HandlerError::truncated_stream`] finds it, and the
/// server's default `handle_error` logs it at debug level only (CPython's `ssl` clients close
/// so unless they `unwrap()`).
///
/// [`HandlerError::truncated_stream`]: crate::HandlerError::truncated_stream
///
/// # Examples
///
/// ```
/// use sockserve_handler::{HandlerError, Stage, StreamTruncated};
/// use std::io;
///
/// let e = StreamTruncated::error();
/// assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
/// let failed = HandlerError::failed(Stage::Handle, e);
/// assert!(failed.truncated_stream().is_some());
/// assert!(failed.to_string().contains("close_notify"), "{failed}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, thiserror::Error)]
#[error(
    "the peer closed the connection without close_notify: its stream may be truncated \
     (logged at debug level by the default handle_error)"
)]
#[non_exhaustive]
pub struct StreamTruncated;

impl StreamTruncated {
    /// The `io::Error` a transport's read returns for a stream that ended so.
    ///
    /// # Examples
    ///
    /// See [`StreamTruncated`].
    pub fn error() -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, StreamTruncated)
    }
}

/// How a request's reader and writer reach the connection: the socket itself, or a
/// transport over it.
#[derive(Clone)]
pub(crate) struct Io {
    socket: Arc<Socket>,
    layer: Option<Arc<dyn Transport>>,
}

impl Io {
    pub(crate) fn new(socket: Arc<Socket>, layer: Option<Arc<dyn Transport>>) -> Io {
        Io { socket, layer }
    }

    pub(crate) fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }

    pub(crate) fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.layer.as_ref()
    }

    pub(crate) fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        match &self.layer {
            None => self.socket.recv_into_by(buf, deadline),
            Some(layer) => layer.read_by(buf, deadline),
        }
    }

    pub(crate) fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        match &self.layer {
            None => self.socket.send_by(data, deadline),
            Some(layer) => layer.write_by(data, deadline),
        }
    }

    pub(crate) fn has_buffered_input(&self) -> bool {
        self.layer.as_ref().is_some_and(|l| l.has_buffered_input())
    }

    pub(crate) fn downgrade(&self) -> WeakIo {
        WeakIo {
            socket: Arc::downgrade(&self.socket),
            layer: self.layer.as_ref().map(Arc::downgrade),
        }
    }
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            None => self.socket.fmt(f),
            Some(layer) => layer.fmt(f),
        }
    }
}

/// An [`Io`] that does not keep the connection open (a `ConnectionWriter`'s).
#[derive(Clone)]
pub(crate) struct WeakIo {
    socket: Weak<Socket>,
    layer: Option<Weak<dyn Transport>>,
}

impl WeakIo {
    /// The connection, while its request holds it.
    pub(crate) fn upgrade(&self) -> Option<Io> {
        let socket = self.socket.upgrade()?;
        let layer = match &self.layer {
            None => None,
            Some(layer) => Some(layer.upgrade()?),
        };
        Some(Io { socket, layer })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.socket.strong_count() > 0
    }
}
