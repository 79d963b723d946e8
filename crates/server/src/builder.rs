//! `Builder`: Python's server class attributes as builder methods, then bind.

use crate::{DefaultHooks, Hooks, Kind, Result, Server, Strategy, job::MakeJob};
use handler::Handler;
use socket::ToAddrs;
use std::{any::Any, fmt, os::fd::OwnedFd, sync::Arc, time::Duration};

/// The options Python sets as server class attributes.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) request_queue_size: i32,
    pub(crate) allow_reuse_address: bool,
    pub(crate) allow_reuse_port: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_packet_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) dualstack_ipv6: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            request_queue_size: socket::SOMAXCONN,
            allow_reuse_address: false,
            allow_reuse_port: false,
            timeout: None,
            max_packet_size: 8192,
            poll_interval: Duration::from_millis(500),
            dualstack_ipv6: false,
        }
    }
}

/// Builds a server: set options by their Python names, then [`bind`](Builder::bind).
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use handler::StreamRequest;
/// use std::time::Duration;
///
/// let server = TcpServer::builder(|_req: &mut StreamRequest| Ok(()))
///     .request_queue_size(1024)
///     .allow_reuse_address(true)
///     .timeout(Some(Duration::from_secs(5)))
///     .bind("127.0.0.1:0")?;
/// assert_ne!(server.server_address().as_inet().map(|a| a.port()), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Builder<K: Kind, C: Strategy> {
    pub(crate) jobs: Box<dyn MakeJob<K::Request>>,
    pub(crate) options: Options,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) state: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) strategy: C,
}

impl<K: Kind, C: Strategy + Default> Builder<K, C> {
    pub(crate) fn new<H: Handler<K::Request>>(handler: H) -> Self {
        Builder {
            jobs: crate::job::boxed(handler),
            options: Options::default(),
            hooks: Arc::new(DefaultHooks),
            state: None,
            strategy: C::default(),
        }
    }
}

impl<K: Kind, C: Strategy> Builder<K, C> {
    /// The `listen()` backlog. Default `SOMAXCONN` (CPython 3.15; older versions used 5 and
    /// dropped bursts of connects).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn request_queue_size(mut self, backlog: i32) -> Self {
        self.options.request_queue_size = backlog;
        self
    }

    /// Sets `SO_REUSEADDR` before binding. Default false, as Python.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn allow_reuse_address(mut self, on: bool) -> Self {
        self.options.allow_reuse_address = on;
        self
    }

    /// Sets `SO_REUSEPORT` before binding (IPv4 and IPv6 only; ignored for Unix sockets, where
    /// Linux rejects it), so several processes can serve one port. Default false.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    ///
    /// let a = TcpServer::builder(|_r: &mut StreamRequest| Ok(())).allow_reuse_port(true).bind("127.0.0.1:0")?;
    /// let same_port = a.server_address().to_string();
    /// let b = TcpServer::builder(|_r: &mut StreamRequest| Ok(())).allow_reuse_port(true).bind(same_port.as_str())?;
    /// assert_eq!(a.server_address(), b.server_address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_reuse_port(mut self, on: bool) -> Self {
        self.options.allow_reuse_port = on;
        self
    }

    /// The server's `timeout`: how long `handle_request` waits for a request before calling
    /// `handle_timeout`. `None` (the default) waits forever. Not the handler's timeout, which
    /// limits every read and write of a connection.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// The largest datagram a datagram server receives whole; longer ones are cut, as in
    /// CPython. Default 8192.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::UdpServer;
    /// use handler::DatagramRequest;
    ///
    /// let server = UdpServer::builder(|_r: &mut DatagramRequest| Ok(()))
    ///     .max_packet_size(65_507)
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.options.max_packet_size = size.max(1);
        self
    }

    /// The tick of [`Server::serve_forever`]: how often `service_actions` runs when idle.
    /// Default 0.5 s, Python's. Shutdown never waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    /// use std::time::Duration;
    ///
    /// let server = TcpServer::builder(|_r: &mut StreamRequest| Ok(()))
    ///     .poll_interval(Duration::from_millis(10))
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// For an IPv6 address: also accept IPv4 clients (`IPV6_V6ONLY` off). Default false: an
    /// IPv6 server is IPv6 only, whatever the system default.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    ///
    /// let server = TcpServer::builder(|_r: &mut StreamRequest| Ok(()))
    ///     .dualstack_ipv6(true)
    ///     .bind("[::]:8080")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dualstack_ipv6(mut self, on: bool) -> Self {
        self.options.dualstack_ipv6 = on;
        self
    }

    /// The server's hooks (`verify_request`, `handle_error`, ...). Default: [`DefaultHooks`].
    ///
    /// # Examples
    ///
    /// See [`Hooks`].
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// Attaches user state that every handler reaches through
    /// [`ServerContext::state`](handler::ServerContext::state) (Python's attributes on
    /// `self.server`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    /// use std::{io::Write, sync::atomic::{AtomicUsize, Ordering}};
    ///
    /// let server = TcpServer::builder(|req: &mut StreamRequest| {
    ///     let hits = req.server.state::<AtomicUsize>().expect("state is set");
    ///     let n = hits.fetch_add(1, Ordering::Relaxed);
    ///     writeln!(req.wfile, "visitor {n}")
    /// })
    /// .state(AtomicUsize::new(0))
    /// .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state<T: Any + Send + Sync>(mut self, state: T) -> Self {
        self.state = Some(Arc::new(state));
        self
    }

    /// Sets the concurrency strategy (with its own options), changing the server's type.
    ///
    /// # Examples
    ///
    /// See [`Strategy`].
    pub fn strategy<C2: Strategy>(self, strategy: C2) -> Builder<K, C2> {
        Builder {
            jobs: self.jobs,
            options: self.options,
            hooks: self.hooks,
            state: self.state,
            strategy,
        }
    }

    /// Creates the socket, binds it and activates it (`listen` for streams): Python's
    /// constructor with `bind_and_activate=True`. On failure the socket is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Address`](crate::Error::Address) for an address that cannot be resolved or
    /// does not suit the server, [`Error::Bind`](crate::Error::Bind) and
    /// [`Error::Listen`](crate::Error::Listen) with the OS error.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn bind(self, address: impl ToAddrs) -> Result<Server<K, C>> {
        let mut server = self.build_unbound(address)?;
        server.server_bind()?;
        server.server_activate()?;
        Ok(server)
    }

    /// Creates the socket but neither binds nor activates it: Python's
    /// `bind_and_activate=False`, to set socket options first, then call
    /// [`Server::server_bind`] and [`Server::server_activate`].
    ///
    /// # Errors
    ///
    /// [`Error::Address`](crate::Error::Address), or the OS error creating the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    /// use socket::opt;
    ///
    /// let mut server = TcpServer::builder(|_r: &mut StreamRequest| Ok(())).build_unbound("127.0.0.1:0")?;
    /// server.socket().expect("open").setsockopt(opt::KeepAlive, true)?;
    /// server.server_bind()?;
    /// server.server_activate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_unbound(self, address: impl ToAddrs) -> Result<Server<K, C>> {
        Server::create(self, address)
    }

    /// Builds a server on an already bound socket, such as one inherited from a parent
    /// process; stream sockets are (re)activated with `listen`.
    ///
    /// # Errors
    ///
    /// [`Error::Address`](crate::Error::Address) when the socket's family or type does not
    /// suit this server, or the OS error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    /// use std::{net::TcpListener, os::fd::OwnedFd};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let server = TcpServer::builder(|_r: &mut StreamRequest| Ok(()))
    ///     .from_listener(OwnedFd::from(listener))?;
    /// assert_eq!(server.server_address().as_inet().map(|a| a.port()), Some(port));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_listener(self, fd: OwnedFd) -> Result<Server<K, C>> {
        Server::adopt(self, fd)
    }
}

impl<K: Kind, C: Strategy> fmt::Debug for Builder<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("kind", &K::NAME)
            .field("options", &self.options)
            .field("hooks", &self.hooks)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}
