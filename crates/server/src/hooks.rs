//! `Hooks`: the methods Python users override on a server (`verify_request`, `handle_error`, ...),
//! and `HookSet`, a builder's hooks: a `Hooks` value with closures over some of its methods.

use handler::{HandlerError, ServerContext, SharedState};
use socket::{Address, Socket};
use std::{any, fmt, sync::Arc};

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
        /// The datagram. One longer than `max_packet_size` never comes here: its request
        /// fails with a [`TruncatedDatagram`](crate::TruncatedDatagram) without
        /// `verify_request` or any handler step seeing it.
        packet: &'a [u8],
        /// The server's socket.
        socket: &'a Socket,
    },
}

/// The server methods Python users override, as a trait with default methods.
///
/// Each method gets the server as Python's `self` gives it: `server`, the
/// [`ServerContext`] handlers see as `request.server` (the bound address, the server's shared
/// state, a way to stop). `&self` is the hooks value itself, for state of its own.
///
/// `S` is the server's shared state (default `()`): `impl Hooks for MyHooks` serves a server
/// without state, `impl Hooks<Stats> for MyHooks` one made with `Server::with_state(stats)`,
/// and `impl<S: SharedState> Hooks<S> for MyHooks` any.
///
/// For one or two hooks, closures on the builder are shorter: [`Builder::verify_request`],
/// [`handle_error`][handle_error], [`handle_timeout`][handle_timeout] and
/// [`service_actions`][service_actions]. A closure replaces the matching method of a
/// [`Builder::hooks`] value; the value's other methods still run. The trait is for hooks
/// that share state of their own, or for `shutdown_request`, which has no closure.
///
/// All methods take `&self` and may run on worker threads (threading) or in children
/// (forking), so state lives in atomics or locks. A panic in a hook is caught and reported as
/// the default [`handle_error`](Hooks::handle_error) reports a failure; the server keeps
/// serving. A hooks type need not implement `Debug`.
///
/// [`Builder::verify_request`]: crate::Builder::verify_request
/// [handle_error]: crate::Builder::handle_error
/// [handle_timeout]: crate::Builder::handle_timeout
/// [service_actions]: crate::Builder::service_actions
/// [`Builder::hooks`]: crate::Builder::hooks
/// [`ServerContext`]: handler::ServerContext
///
/// # Examples
///
/// ```
/// use sockserve_server::{Hooks, RequestRef, TcpServer};
/// use sockserve_server::{HandlerError, ServerContext};
/// use sockserve_server::Address;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Default)]
/// struct LocalOnly {
///     errors: AtomicUsize,
/// }
///
/// impl Hooks for LocalOnly {
///     fn verify_request(&self, _: &ServerContext, _: RequestRef<'_>, client: &Address) -> bool {
///         client.as_inet().is_some_and(|a| a.ip().is_loopback())
///     }
///     fn handle_error(&self, server: &ServerContext, _client: &Address, _error: &HandlerError) {
///         let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
///         log::warn!("{n} failed requests on {}", server.server_address());
///     }
/// }
///
/// let server = TcpServer::builder(|_req| Ok(()))
///     .hooks(LocalOnly::default())
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Hooks<S: SharedState = ()>: Send + Sync + 'static {
    /// Python's `verify_request`: return false to reject the request; the handler does not
    /// run and the request is shut down and closed. Default: accept everything.
    ///
    /// It runs on the serving loop's thread, before the strategy takes the request; with the
    /// PROXY protocol on ([`Builder::proxy_protocol`](crate::Builder::proxy_protocol)), in the
    /// request's job once the header has been read (a pool worker, the forked child, the loop
    /// under sync), with `client_address` the real client the header names.
    ///
    /// # Examples
    ///
    /// See [`Hooks`].
    fn verify_request(
        &self,
        server: &ServerContext<S>,
        request: RequestRef<'_>,
        client_address: &Address,
    ) -> bool {
        let _ = (server, request, client_address);
        true
    }

    /// Python's `handle_error`: a request failed (an error or a panic). Runs exactly once per
    /// failed request; the server keeps serving.
    ///
    /// Default: report the failure, as Python's `handle_error` prints it, in one line:
    ///
    /// ```text
    /// Exception occurred during processing of request from 127.0.0.1:5000: handle failed: bad line
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
    /// A request that failed only because a deadline passed ([`HandlerError::is_timed_out`]:
    /// a read or write of `rfile` / `wfile` that returned an `io::Error` of kind `TimedOut`,
    /// as the deadlines of `StreamOptions` give, `idle_timeout`, `write_timeout`,
    /// `turn_timeout` and `timeout`) is a slow or silent client, not a failure of the server,
    /// and a server facing the network sees hundreds of them. The default reports it apart,
    /// in one line at **info** level with a logger installed (on stderr without one, or in a
    /// forked child whose program lets info records through):
    ///
    /// ```text
    /// Request from 127.0.0.1:5000 ended by a deadline: handle failed: timed out: idle for 30s, no byte received (StreamOptions::idle_timeout)
    /// ```
    ///
    /// at most one such line a second per process, the rest counted (`N more requests ended
    /// by a deadline not shown (at most 1 report a second)` comes before the next one shown),
    /// and apart from the 10 failures a second: timed-out clients neither flood the log nor
    /// hide the failures that matter.
    ///
    /// To see every failure, override this method, or set a closure with
    /// [`Builder::handle_error`](crate::Builder::handle_error): it runs once for each failed
    /// request, with no limit, and whatever it does is up to you (log, count, print).
    ///
    /// # Examples
    ///
    /// Log every failure, unlimited, with the client's address:
    ///
    /// ```
    /// use sockserve_server::{Hooks, TcpServer};
    /// use sockserve_server::{HandlerError, ServerContext};
    /// use sockserve_server::Address;
    ///
    /// struct EveryFailure;
    ///
    /// impl Hooks for EveryFailure {
    ///     fn handle_error(&self, _: &ServerContext, client: &Address, error: &HandlerError) {
    ///         log::error!("request from {client} failed: {error}");
    ///     }
    /// }
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .hooks(EveryFailure)
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn handle_error(
        &self,
        server: &ServerContext<S>,
        client_address: &Address,
        error: &HandlerError,
    ) {
        let _ = server;
        if error.truncated_stream().is_some() {
            // A TLS client that closed without close_notify (CPython's ssl does, unless it
            // unwraps): not a failure of the server.
            log::debug!("Request from {client_address} ended without close_notify: {error}");
        } else if error.is_timed_out() {
            crate::report::timed_out(format_args!(
                "Request from {client_address} ended by a deadline: {error}"
            ));
        } else {
            crate::report::failure(format_args!(
                "Exception occurred during processing of request from {client_address}: {error}"
            ));
        }
    }

    /// Python's `handle_timeout`: `handle_request` waited the server's `timeout` for nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Hooks;
    /// use sockserve_server::ServerContext;
    ///
    /// struct Quiet;
    /// impl Hooks for Quiet {
    ///     fn handle_timeout(&self, server: &ServerContext) {
    ///         log::debug!("no request on {} this time", server.server_address());
    ///     }
    /// }
    /// # let _ = Quiet;
    /// ```
    fn handle_timeout(&self, server: &ServerContext<S>) {
        let _ = server;
    }

    /// Python's `service_actions`: runs on every tick of `serve_forever` (at least once per
    /// poll interval).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Hooks;
    /// use sockserve_server::ServerContext;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// #[derive(Default)]
    /// struct Ticks(AtomicU64);
    /// impl Hooks for Ticks {
    ///     fn service_actions(&self, _server: &ServerContext) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// # let _ = Ticks::default();
    /// ```
    fn service_actions(&self, server: &ServerContext<S>) {
        let _ = server;
    }

    /// Python's `shutdown_request`, as an observer: runs exactly once per request, on every
    /// path (handled, failed, rejected), after the server has shut the request down (streams:
    /// `SHUT_WR`) and just before it is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Hooks, TcpServer};
    /// use sockserve_server::ServerContext;
    /// use sockserve_server::Address;
    ///
    /// struct Log;
    /// impl Hooks for Log {
    ///     fn shutdown_request(&self, _server: &ServerContext, client_address: &Address) {
    ///         log::debug!("done with {client_address}");
    ///     }
    /// }
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .hooks(Log)
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn shutdown_request(&self, server: &ServerContext<S>, client_address: &Address) {
        let _ = (server, client_address);
    }
}

/// The hooks of a server nobody customised: Python's `BaseServer` defaults.
///
/// # Examples
///
/// ```
/// use sockserve_server::{DefaultHooks, TcpServer};
///
/// // The same as setting no hooks at all.
/// let server = TcpServer::builder(|_req| Ok(()))
///     .hooks(DefaultHooks)
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHooks;

impl<S: SharedState> Hooks<S> for DefaultHooks {}

/// A `verify_request` closure (see [`Builder::verify_request`](crate::Builder::verify_request)).
type VerifyRequestFn<S> = dyn Fn(&ServerContext<S>, RequestRef<'_>, &Address) -> bool + Send + Sync;
/// A `handle_error` closure.
type HandleErrorFn<S> = dyn Fn(&ServerContext<S>, &Address, &HandlerError) + Send + Sync;
/// A `handle_timeout` or `service_actions` closure.
type ServerFn<S> = dyn Fn(&ServerContext<S>) + Send + Sync;

/// A builder's hooks: the [`Hooks`] value of [`Builder::hooks`](crate::Builder::hooks) and the
/// closures set over some of its methods. A closure wins over the value's method whichever was
/// set first, so the rule does not depend on the order of the builder calls.
pub(crate) struct HookSet<S: SharedState> {
    base: Box<dyn Hooks<S>>,
    /// The base's type, for `Debug` (a hooks type need not implement it).
    base_type: &'static str,
    pub(crate) verify_request: Option<Box<VerifyRequestFn<S>>>,
    pub(crate) handle_error: Option<Box<HandleErrorFn<S>>>,
    pub(crate) handle_timeout: Option<Box<ServerFn<S>>>,
    pub(crate) service_actions: Option<Box<ServerFn<S>>>,
}

impl<S: SharedState> HookSet<S> {
    /// `hooks`, with no closures over it.
    pub(crate) fn new<H: Hooks<S>>(hooks: H) -> Self {
        HookSet {
            base: Box::new(hooks),
            base_type: any::type_name::<H>(),
            verify_request: None,
            handle_error: None,
            handle_timeout: None,
            service_actions: None,
        }
    }

    /// Replaces the base value, keeping the closures.
    pub(crate) fn set_base<H: Hooks<S>>(&mut self, hooks: H) {
        self.base = Box::new(hooks);
        self.base_type = any::type_name::<H>();
    }

    /// The names of the hooks set as closures.
    fn closures(&self) -> Vec<&'static str> {
        [
            ("verify_request", self.verify_request.is_some()),
            ("handle_error", self.handle_error.is_some()),
            ("handle_timeout", self.handle_timeout.is_some()),
            ("service_actions", self.service_actions.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// The hooks a server calls: the base itself when no closure is set (no indirection per
    /// call), the set otherwise.
    pub(crate) fn into_hooks(self) -> Arc<dyn Hooks<S>> {
        if self.closures().is_empty() {
            Arc::from(self.base)
        } else {
            Arc::new(self)
        }
    }
}

impl<S: SharedState> Hooks<S> for HookSet<S> {
    fn verify_request(
        &self,
        server: &ServerContext<S>,
        request: RequestRef<'_>,
        client_address: &Address,
    ) -> bool {
        match &self.verify_request {
            Some(hook) => hook(server, request, client_address),
            None => self.base.verify_request(server, request, client_address),
        }
    }

    fn handle_error(
        &self,
        server: &ServerContext<S>,
        client_address: &Address,
        error: &HandlerError,
    ) {
        match &self.handle_error {
            Some(hook) => hook(server, client_address, error),
            None => self.base.handle_error(server, client_address, error),
        }
    }

    fn handle_timeout(&self, server: &ServerContext<S>) {
        match &self.handle_timeout {
            Some(hook) => hook(server),
            None => self.base.handle_timeout(server),
        }
    }

    fn service_actions(&self, server: &ServerContext<S>) {
        match &self.service_actions {
            Some(hook) => hook(server),
            None => self.base.service_actions(server),
        }
    }

    fn shutdown_request(&self, server: &ServerContext<S>, client_address: &Address) {
        self.base.shutdown_request(server, client_address)
    }
}

impl<S: SharedState> fmt::Debug for HookSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("hooks", &self.base_type)
            .field("closures", &self.closures())
            .finish()
    }
}
