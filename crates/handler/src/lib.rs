//! Request handlers: Python's `BaseRequestHandler`, `StreamRequestHandler` and
//! `DatagramRequestHandler`.
//!
//! | Python | sockserve |
//! |---|---|
//! | `class H(BaseRequestHandler)` with `setup`/`handle`/`finish` | `impl Handler<R> for H` |
//! | one handler object per request | the server clones the handler per request |
//! | `StreamRequestHandler`: `self.rfile`, `self.wfile`, `self.connection` | [`StreamRequest`] fields |
//! | `rbufsize`, `wbufsize`, `timeout`, `disable_nagle_algorithm` | [`StreamOptions`], with deadlines Python lacks: `idle_timeout`, `write_timeout`, `turn_timeout` |
//! | `DatagramRequestHandler`: `self.packet`, `self.socket`, `rfile`, `wfile` | [`DatagramRequest`] fields |
//! | `self.client_address`, `self.server` | `request.client_address`, `request.server` ([`ServerContext`]) |
//! | `BaseServer.finish_request` | [`driver::finish_request`] (what a server layer calls) |
//!
//! A plain closure `|req: &mut StreamRequest| -> io::Result<()>` is a handler too.
//!
//! A program writes handlers; the server layer (`sockserve-server`) drives them. What exists
//! only for that driving (the stop seam, `finish_request`, building a [`ServerContext`]) is in
//! the [`driver`] module, out of the way.
//!
//! # Examples
//!
//! ```
//! use sockserve_handler::{BoxError, Handler, Next, StreamRequest};
//! use std::io::{BufRead, Write};
//!
//! #[derive(Clone, Default)]
//! struct Upper;
//!
//! impl Handler<StreamRequest> for Upper {
//!     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
//!         let mut line = String::new();
//!         req.rfile.read_line(&mut line)?;
//!         req.wfile.write_all(line.to_uppercase().as_bytes())?;
//!         Ok(Next::Done)
//!     }
//! }
//! # let _ = Upper;
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod context;
mod datagram;
mod deadline;
mod error;
mod handler;
mod readbuf;
mod request;
mod session;
mod stream;
mod transport;
mod writer;

/// The socket layer (the `sockserve-socket` crate), which this crate's types are built on:
/// a program that depends on this crate alone reaches it here.
///
/// ```
/// use sockserve_handler::socket::{Address, Family};
///
/// let address: Address = "127.0.0.1:8000".parse()?;
/// assert_eq!(address.family(), Family::Inet);
/// # Ok::<(), std::io::Error>(())
/// ```
pub use socket;
#[doc(no_inline)]
pub use socket::{Address, Socket};

pub use context::{ServerContext, SharedState};
pub use datagram::{DatagramOptions, DatagramRequest, TruncatedDatagram};
pub use error::{BoxError, HandlerError, Stage};
pub use handler::{Handler, HandlerExt, IntoOutcome, Next, WithOptions};
pub use request::Request;
pub use transport::{StreamTruncated, Transport};

/// What a server layer uses to drive handlers; a program that writes handlers needs none of
/// it. The server crate (`sockserve-server`) is its user: it builds each server's
/// [`ServerContext`] with [`server_context`](driver::server_context), implements [`StopServer`](driver::StopServer) for its shutdown
/// machinery, and runs every request through [`finish_request`](driver::finish_request).
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{StopServer, server_context};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// struct NoStop;
/// impl StopServer for NoStop {
///     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
///     fn request_shutdown(&self) {}
/// }
///
/// let context = server_context("127.0.0.1:8000".parse()?, Arc::new(NoStop), Arc::new(()));
/// assert_eq!(context.server_address().to_string(), "127.0.0.1:8000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod driver {
    pub use crate::context::StopServer;
    pub use crate::request::finish_request;
    pub use crate::session::{Session, Waited};

    use crate::{ServerContext, SharedState};
    use socket::{Address, Socket};
    use std::sync::Arc;

    /// What a datagram server hands a [`DatagramRequest`](crate::DatagramRequest): the
    /// datagram and the server's socket (its [`Request::Raw`](crate::Request::Raw)), or,
    /// for a datagram longer than the server's `max_packet_size`, why there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{DatagramRequest, Request, driver::DatagramRaw};
    /// use sockserve_handler::socket::{Family, Socket, Type};
    /// use std::sync::Arc;
    ///
    /// fn same(raw: DatagramRaw) -> <DatagramRequest as Request>::Raw { raw }
    /// let socket = Arc::new(Socket::new(Family::Inet, Type::Datagram)?);
    /// let raw = same(DatagramRaw::whole(Arc::from(&b"ping"[..]), Arc::clone(&socket)));
    /// assert!(raw.truncated.is_none());
    /// let cut = DatagramRaw::truncated(socket, 9000, 8192);
    /// assert!(cut.packet.is_empty() && cut.truncated.is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[derive(Debug)]
    #[non_exhaustive]
    pub struct DatagramRaw {
        /// The datagram (empty when it was truncated: a cut one is never handed on).
        pub packet: Arc<[u8]>,
        /// The server's socket.
        pub socket: Arc<Socket>,
        /// Set when the datagram was longer than the room for it: the request then fails
        /// its setup with this error.
        pub truncated: Option<crate::TruncatedDatagram>,
    }

    impl DatagramRaw {
        /// A datagram received whole.
        ///
        /// # Examples
        ///
        /// See [`DatagramRaw`].
        pub fn whole(packet: Arc<[u8]>, socket: Arc<Socket>) -> Self {
            DatagramRaw {
                packet,
                socket,
                truncated: None,
            }
        }

        /// A datagram of `length` bytes that did not fit in `max_packet_size`: discarded.
        ///
        /// # Examples
        ///
        /// See [`DatagramRaw`].
        pub fn truncated(socket: Arc<Socket>, length: usize, max_packet_size: usize) -> Self {
            DatagramRaw {
                packet: Arc::from(&[][..]),
                socket,
                truncated: Some(crate::TruncatedDatagram::new(length, max_packet_size)),
            }
        }
    }

    /// Builds a server's [`ServerContext`]: its bound address, how handlers stop it, and its
    /// shared state. A server layer does this once per bind.
    ///
    /// # Examples
    ///
    /// See [`driver`](self).
    pub fn server_context<S: SharedState>(
        server_address: Address,
        stop: Arc<dyn StopServer>,
        state: Arc<S>,
    ) -> ServerContext<S> {
        ServerContext::new(server_address, stop, state)
    }
}
pub use stream::{DEFAULT_LINE_LIMIT, StreamOptions, StreamReader, StreamRequest, StreamWriter};
pub use writer::ConnectionWriter;
