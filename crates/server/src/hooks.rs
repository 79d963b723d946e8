//! `Hooks`: the methods Python users override on a server (`verify_request`, `handle_error`, ...).

use handler::HandlerError;
use socket::{Address, Socket};
use std::fmt;

/// What `verify_request` sees of a request before any handler runs.
///
/// # Examples
///
/// ```
/// use sockserve_server::RequestRef;
///
/// fn is_stream(r: &RequestRef<'_>) -> bool {
///     matches!(r, RequestRef::Stream(_))
/// }
/// # let _ = is_stream;
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RequestRef<'a> {
    /// An accepted connection.
    Stream(&'a Socket),
    /// A received datagram and the server's socket.
    Datagram {
        /// The datagram.
        packet: &'a [u8],
        /// The server's socket.
        socket: &'a Socket,
    },
}

/// The server methods Python users override, as a trait with default methods.
///
/// All methods take `&self` and may run on worker threads (threading) or in children
/// (forking), so state lives in atomics or locks. A panic in a hook is caught and reported as
/// the default [`handle_error`](Hooks::handle_error) reports a failure; the server keeps
/// serving.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Hooks, RequestRef, TcpServer};
/// use handler::{HandlerError, StreamRequest};
/// use socket::Address;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Debug, Default)]
/// struct LocalOnly {
///     errors: AtomicUsize,
/// }
///
/// impl Hooks for LocalOnly {
///     fn verify_request(&self, _request: RequestRef<'_>, client: &Address) -> bool {
///         client.as_inet().is_some_and(|a| a.ip().is_loopback())
///     }
///     fn handle_error(&self, _client: &Address, _error: &HandlerError) {
///         self.errors.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let server = TcpServer::builder(|_req: &mut StreamRequest| Ok(()))
///     .hooks(LocalOnly::default())
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Hooks: Send + Sync + fmt::Debug + 'static {
    /// Python's `verify_request`: return false to reject the request; the handler does not
    /// run and the request is shut down and closed. Default: accept everything.
    ///
    /// # Examples
    ///
    /// See [`Hooks`].
    fn verify_request(&self, request: RequestRef<'_>, client_address: &Address) -> bool {
        let _ = (request, client_address);
        true
    }

    /// Python's `handle_error`: a request failed (an error or a panic). Runs exactly once per
    /// failed request; the server keeps serving.
    ///
    /// Default: report the failure, as Python's `handle_error` prints it, in one line:
    ///
    /// ```text
    /// Exception occurred during processing of request from 127.0.0.1:5000: handler failed: bad line
    /// ```
    ///
    /// If the program installed a [`log`] logger, the line is logged at error level; if it
    /// installed none (`log::max_level()` is `LevelFilter::Off`), it is written to stderr, so
    /// a failed request is never silent. (For a panic the line has the panic's message; its
    /// location is on stderr already, from Rust's panic hook, unless the program replaced it.)
    ///
    /// The default reports at most 10 failures a second per process, through either path: a
    /// client that makes every request fail cannot flood the log. The first failure over the
    /// limit in a second adds a line saying that the rest of that second's are counted, not
    /// shown, and the first report of a later second is preceded by their count (`N more
    /// failures not shown (at most 10 reports a second)`). The count is per process: under
    /// the forking strategy each child reports its own request's failure. A panicking hook is
    /// reported the same way, within the same limit.
    ///
    /// To see every failure, override this method: it runs once for each failed request, with
    /// no limit, and whatever it does is up to you (log, count, print).
    ///
    /// # Examples
    ///
    /// Log every failure, unlimited, with the client's address:
    ///
    /// ```
    /// use sockserve_server::{Hooks, TcpServer};
    /// use handler::{HandlerError, StreamRequest};
    /// use socket::Address;
    ///
    /// #[derive(Debug)]
    /// struct EveryFailure;
    ///
    /// impl Hooks for EveryFailure {
    ///     fn handle_error(&self, client_address: &Address, error: &HandlerError) {
    ///         log::error!("request from {client_address} failed: {error}");
    ///     }
    /// }
    ///
    /// let server = TcpServer::builder(|_req: &mut StreamRequest| Ok(()))
    ///     .hooks(EveryFailure)
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn handle_error(&self, client_address: &Address, error: &HandlerError) {
        crate::report::failure(format_args!(
            "Exception occurred during processing of request from {client_address}: {error}"
        ));
    }

    /// Python's `handle_timeout`: `handle_request` waited the server's `timeout` for nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Hooks;
    ///
    /// #[derive(Debug)]
    /// struct Quiet;
    /// impl Hooks for Quiet {
    ///     fn handle_timeout(&self) {
    ///         log::debug!("no request this time");
    ///     }
    /// }
    /// # Quiet.handle_timeout();
    /// ```
    fn handle_timeout(&self) {}

    /// Python's `service_actions`: runs on every tick of `serve_forever` (at least once per
    /// poll interval).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Hooks;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// #[derive(Debug, Default)]
    /// struct Ticks(AtomicU64);
    /// impl Hooks for Ticks {
    ///     fn service_actions(&self) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// # Ticks::default().service_actions();
    /// ```
    fn service_actions(&self) {}

    /// Python's `shutdown_request`, as an observer: runs exactly once per request, on every
    /// path (handled, failed, rejected), after the server has shut the request down (streams:
    /// `SHUT_WR`) and just before it is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Hooks;
    /// use socket::Address;
    ///
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Hooks for Log {
    ///     fn shutdown_request(&self, client_address: &Address) {
    ///         log::debug!("done with {client_address}");
    ///     }
    /// }
    /// # Log.shutdown_request(&Address::Unnamed);
    /// ```
    fn shutdown_request(&self, client_address: &Address) {
        let _ = client_address;
    }
}

/// The hooks of a server nobody customised: Python's `BaseServer` defaults.
///
/// # Examples
///
/// ```
/// use sockserve_server::{DefaultHooks, Hooks};
///
/// DefaultHooks.service_actions();
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHooks;

impl Hooks for DefaultHooks {}
