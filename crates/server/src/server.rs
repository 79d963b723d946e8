//! `Server<Kind, Strategy>`: Python's `BaseServer` + `TCPServer`/`UDPServer` lifecycle, and the
//! serving loop on the reactor.

use crate::{
    Builder, CloseDeadline, CloseReport, Error, Hooks, Job, Kind, Result, ServerLink,
    ShutdownHandle, Strategy, Synchronous,
    accept::{AcceptErrorKind, Backoff},
    admission::Admission,
    builder::Options,
    job::{MakeJob, guard_hook, shutdown_request},
    shutdown::Shared,
    unix::{self, SocketFile},
    waiting::{self, Waiting},
};
use handler::{BoxError, Handler, Next, ServerContext, SharedState};
use reactor::{Interest, Reactor, Ready};
use socket::{Address, Family, Socket, ToAddrs, opt};
use std::{
    fmt,
    marker::PhantomData,
    os::fd::{OwnedFd, RawFd},
    sync::Arc,
    time::{Duration, Instant},
};

/// The reactor key of the server's socket.
const LISTENER: usize = 0;
/// The reactor key of the socket on which forked children ask the loop to stop.
const FROM_CHILDREN: usize = 1;
/// Requests taken per wakeup before the loop looks at shutdown and service actions again.
const ACCEPT_BATCH: usize = 64;
// The reactor key of the descriptors strategies watch (their exit pipes, say) is
// `link::WATCHED`: ready, it only wakes the loop, which then runs service_actions.
/// The send buffer a Unix datagram server asks for (the kernel grants at most twice
/// `net.core.wmem_max`, 416 KiB by default).
const UNIX_REPLY_BUFFER: usize = 4 << 20;
/// How long dropping an open server waits for its requests in flight before the strategy ends
/// (forking) or leaves (threading) what still runs.
const DROP_WAIT: Duration = Duration::from_secs(5);

/// A server: Python's `BaseServer` with its `TCPServer`/`UDPServer`/`Unix*Server` socket, and a
/// concurrency strategy in place of the mix-ins.
///
/// Use the aliases: [`TcpServer`](crate::TcpServer), [`UdpServer`](crate::UdpServer),
/// [`UnixStreamServer`](crate::UnixStreamServer), [`UnixDatagramServer`](crate::UnixDatagramServer).
///
/// `serve_forever` and `server_close` take `&mut self`, so a server cannot be closed while
/// its loop runs: stop the loop through a [`ShutdownHandle`] first (CPython spins at 100% CPU
/// on a closed fd there).
///
/// ```compile_fail
/// use sockserve_server::TcpServer;
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |_r| Ok(())).unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| server.serve_forever());
///     server.server_close(); // error: `server` is mutably borrowed by the serving thread
/// });
/// ```
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use sockserve_server::socket::create_connection;
/// use std::io::{BufRead, Read, Write};
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |req| {
///     let mut line = String::new();
///     req.rfile.read_line(&mut line)?;
///     Ok(req.wfile.write_all(line.to_uppercase().as_bytes())?)
/// })?;
/// let address = server.server_address().clone();
/// let handle = server.shutdown_handle();
/// std::thread::scope(|s| -> std::io::Result<()> {
///     let serving = s.spawn(|| server.serve_forever());
///     let mut client = create_connection(&address, &Default::default())?;
///     client.sendall(b"hello\n")?;
///     let mut reply = String::new();
///     client.read_to_string(&mut reply)?;
///     assert_eq!(reply, "HELLO\n");
///     handle.shutdown()?;
///     serving.join().expect("serving thread panicked")?;
///     Ok(())
/// })?;
/// server.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server<K: Kind, C: Strategy = Synchronous, S: SharedState = ()> {
    phase: Phase,
    server_address: Address,
    pub(crate) options: Options,
    jobs: Box<dyn MakeJob<K::Request<S>>>,
    hooks: Arc<dyn Hooks<S>>,
    state: Arc<S>,
    strategy: C,
    reactor: Reactor,
    shared: Arc<Shared>,
    /// What the strategy is given at `start`.
    link: ServerLink,
    context: ServerContext<S>,
    backoff: Backoff,
    /// `max_connections` and the policy at it.
    admission: Admission,
    scratch: Vec<u8>,
    /// Connections waiting between their handler's turns, and those the last select woke.
    waiting: Arc<Waiting>,
    woken: Vec<Ready>,
    _kind: PhantomData<K>,
}

impl<K: Kind, C: Strategy + Default> Server<K, C> {
    /// Binds and activates a server with default options whose handler is a closure:
    /// Python's `TCPServer(address, Handler)` with a `handle` method. The closure's argument
    /// type is inferred from the server's kind (`StreamRequest` for TCP and Unix stream,
    /// `DatagramRequest` for UDP and Unix datagram), so `|req| ...` needs no annotation. It
    /// returns `Result<(), BoxError>`: `?` works on any error (an `io::Error`, a
    /// `ParseIntError`, your own), as a Python handler raises anything, and `handle_error`
    /// sees it; a closure that ends with an I/O call writes `Ok(call?)`. A handler type (with
    /// `setup`, `handle` and `finish`, or options) goes through
    /// [`bind_handler`](Self::bind_handler).
    ///
    /// # Errors
    ///
    /// See [`Builder::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{TcpServer, UdpServer};
    /// use std::io::{BufRead, Write};
    ///
    /// let tcp = TcpServer::bind("127.0.0.1:0", |req| {
    ///     let mut line = String::new();
    ///     req.rfile.read_line(&mut line)?;
    ///     Ok(req.wfile.write_all(line.to_uppercase().as_bytes())?)
    /// })?;
    /// let udp = UdpServer::bind("127.0.0.1:0", |req| {
    ///     req.wfile = req.packet.to_ascii_uppercase();
    ///     Ok(())
    /// })?;
    /// # drop((tcp, udp));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind<F, T>(address: impl ToAddrs, handler: F) -> Result<Self>
    where
        F: FnMut(&mut K::Request<()>) -> Result<T, BoxError> + Clone + Send + 'static,
        T: Into<Next>,
    {
        Builder::new(handler, Arc::new(())).bind(address)
    }

    /// Binds and activates a server with default options whose handler is any [`Handler`]: a
    /// type of your own (Python's `class MyHandler(StreamRequestHandler)`), or a closure with
    /// options (`HandlerExt::with_options`).
    ///
    /// # Errors
    ///
    /// See [`Builder::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use sockserve_server::{BoxError, Handler, Next, StreamRequest};
    /// use std::io::Write;
    ///
    /// #[derive(Clone)]
    /// struct Hello;
    ///
    /// impl Handler<StreamRequest> for Hello {
    ///     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
    ///         req.wfile.write_all(b"hello\n")?;
    ///         Ok(Next::Done)
    ///     }
    /// }
    ///
    /// let server = TcpServer::bind_handler("127.0.0.1:0", Hello)?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_handler<H: Handler<K::Request<()>>>(
        address: impl ToAddrs,
        handler: H,
    ) -> Result<Self> {
        Builder::new(handler, Arc::new(())).bind(address)
    }

    /// A builder, to set options by their Python names before binding, with a closure as
    /// the handler (its argument type is inferred, as for [`bind`](Self::bind)).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn builder<F, T>(handler: F) -> Builder<K, C>
    where
        F: FnMut(&mut K::Request<()>) -> Result<T, BoxError> + Clone + Send + 'static,
        T: Into<Next>,
    {
        Builder::new(handler, Arc::new(()))
    }

    /// A builder with any [`Handler`] (a type of your own, or a closure with options).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::UdpServer;
    /// use sockserve_server::{DatagramOptions, DatagramRequest, HandlerExt};
    ///
    /// // A closure with options is a handler value: no empty reply when it writes nothing.
    /// let quiet = (|_req: &mut DatagramRequest| {})
    ///     .with_options(DatagramOptions::default().reply_when_empty(false));
    /// let server = UdpServer::builder_handler(quiet).bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder_handler<H: Handler<K::Request<()>>>(handler: H) -> Builder<K, C> {
        Builder::new(handler, Arc::new(()))
    }

    /// A server with shared state of type `S` that every handler and hook reaches as
    /// `server.state()`, typed: Python's attributes set on the server object. Give the
    /// handler next, as with `Server`'s own entry points:
    /// `TcpServer::with_state(stats).bind(address, |req| ...)`.
    ///
    /// The simplest way to share state is still to capture an `Arc` in the closure (see
    /// [`WithState`]); state on the server is for handler types and hooks, which have no
    /// closure to capture in, and for state that must live as long as the server.
    ///
    /// The state's type shows in the server's: `Server<Tcp, Synchronous, Stats>`, or
    /// `TcpServer<Stats>` (each alias takes the state as its last parameter, default `()`), so
    /// a handler asking for another type does not compile.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Server, Synchronous, Tcp, TcpServer};
    /// use std::{io::Write, sync::atomic::{AtomicU64, Ordering}};
    ///
    /// #[derive(Default)]
    /// struct Stats {
    ///     visitors: AtomicU64,
    /// }
    ///
    /// let server: TcpServer<Stats> = TcpServer::with_state(Stats::default())
    ///     .bind("127.0.0.1:0", |req| {
    ///         let n = req.server.state().visitors.fetch_add(1, Ordering::Relaxed);
    ///         Ok(writeln!(req.wfile, "visitor {n}")?)
    ///     })?;
    /// let same: &Server<Tcp, Synchronous, Stats> = &server;
    /// assert_eq!(same.context().state().visitors.load(Ordering::Relaxed), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Asking for state of another type is a compile error:
    ///
    /// ```compile_fail
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::with_state(0u64).bind("127.0.0.1:0", |req| {
    ///     let name: &String = req.server.state(); // error: expected `&String`, found `&u64`
    ///     Ok(())
    /// });
    /// ```
    pub fn with_state<S: SharedState>(state: S) -> WithState<K, C, S> {
        WithState {
            state: Arc::new(state),
            _server: PhantomData,
        }
    }
}

/// A server's shared state, before its handler: made by [`Server::with_state`], it offers
/// the same four entry points as `Server` (`bind`, `bind_handler`, `builder`,
/// `builder_handler`), whose handlers and hooks then see `server.state()` as an `&S`.
///
/// # Examples
///
/// Two ways to share a counter. Capturing an `Arc` in the closure is the simplest, and comes
/// first; state on the server reaches handler types and hooks too:
///
/// ```
/// use sockserve_server::UdpServer;
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
///
/// // 1. An `Arc` captured by the closure (cloned with it, per request).
/// let count = Arc::new(AtomicU64::new(0));
/// let seen = Arc::clone(&count);
/// let plain = UdpServer::bind("127.0.0.1:0", move |_req| {
///     seen.fetch_add(1, Ordering::Relaxed);
///     Ok(())
/// })?;
///
/// // 2. State on the server, typed: handlers and hooks reach it as `server.state()`.
/// let with_state = UdpServer::with_state(AtomicU64::new(0))
///     .builder(|req| {
///         req.server.state().fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     })
///     .service_actions(|server| log::debug!("{} so far", server.state().load(Ordering::Relaxed)))
///     .bind("127.0.0.1:0")?;
/// # drop((plain, with_state));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WithState<K: Kind, C: Strategy, S: SharedState> {
    state: Arc<S>,
    _server: PhantomData<fn() -> (K, C)>,
}

impl<K: Kind, C: Strategy + Default, S: SharedState> WithState<K, C, S> {
    /// [`Server::bind`], for a server with this state.
    ///
    /// # Errors
    ///
    /// See [`Builder::bind`].
    ///
    /// # Examples
    ///
    /// See [`Server::with_state`].
    pub fn bind<F, T>(self, address: impl ToAddrs, handler: F) -> Result<Server<K, C, S>>
    where
        F: FnMut(&mut K::Request<S>) -> Result<T, BoxError> + Clone + Send + 'static,
        T: Into<Next>,
    {
        Builder::new(handler, self.state).bind(address)
    }

    /// [`Server::bind_handler`], for a server with this state: the handler type implements
    /// `Handler<StreamRequest<S>>` (or `DatagramRequest<S>`).
    ///
    /// # Errors
    ///
    /// See [`Builder::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use sockserve_server::{BoxError, Handler, Next, StreamRequest};
    /// use std::{io::Write, sync::Mutex};
    ///
    /// /// The server's state: who came.
    /// #[derive(Default)]
    /// struct Guests(Mutex<Vec<String>>);
    ///
    /// #[derive(Clone)]
    /// struct Book;
    ///
    /// impl Handler<StreamRequest<Guests>> for Book {
    ///     fn handle(&mut self, req: &mut StreamRequest<Guests>) -> Result<Next, BoxError> {
    ///         let mut guests = req.server.state().0.lock().map_err(|_| "poisoned")?;
    ///         guests.push(req.client_address.to_string());
    ///         writeln!(req.wfile, "guest {}", guests.len())?;
    ///         Ok(Next::Done)
    ///     }
    /// }
    ///
    /// let server = TcpServer::with_state(Guests::default()).bind_handler("127.0.0.1:0", Book)?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_handler<H: Handler<K::Request<S>>>(
        self,
        address: impl ToAddrs,
        handler: H,
    ) -> Result<Server<K, C, S>> {
        Builder::new(handler, self.state).bind(address)
    }

    /// [`Server::builder`], for a server with this state.
    ///
    /// # Examples
    ///
    /// See [`WithState`].
    pub fn builder<F, T>(self, handler: F) -> Builder<K, C, S>
    where
        F: FnMut(&mut K::Request<S>) -> Result<T, BoxError> + Clone + Send + 'static,
        T: Into<Next>,
    {
        Builder::new(handler, self.state)
    }

    /// [`Server::builder_handler`], for a server with this state.
    ///
    /// # Examples
    ///
    /// See [`bind_handler`](Self::bind_handler) for a handler type with state.
    pub fn builder_handler<H: Handler<K::Request<S>>>(self, handler: H) -> Builder<K, C, S> {
        Builder::new(handler, self.state)
    }
}

impl<K: Kind, C: Strategy, S: SharedState> fmt::Debug for WithState<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithState")
            .field("kind", &K::NAME)
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

impl<K: Kind, C: Strategy, S: SharedState> Server<K, C, S> {
    fn from_parts(
        mut builder: Builder<K, C, S>,
        socket: Socket,
        server_address: Address,
    ) -> Result<Self> {
        // The datagram buffer: `max_packet_size` clamped to the largest datagram the family
        // carries (warned about), then reserved but not touched: datagrams are received into
        // its spare capacity, so memory is used only as large ones arrive. A size that cannot
        // be reserved is an error here rather than a panic. Stream servers do not use it.
        let mut scratch = Vec::new();
        if K::SOCKET_TYPE == socket::Type::Datagram {
            let size = crate::builder::effective_max_packet_size(
                builder.options.max_packet_size,
                socket.family(),
                K::NAME,
            );
            builder.options.max_packet_size = size;
            scratch.try_reserve_exact(size).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!("max_packet_size {size}: cannot allocate the datagram buffer: {e}"),
                )
            })?;
        }
        let reactor = Reactor::new()?;
        let shared = Shared::new(reactor.waker());
        let link = ServerLink::new(shared.clone(), reactor.registrar()?);
        let waiting = Waiting::new(reactor.registrar()?, shared.clone());
        let context = handler::driver::server_context(
            server_address.clone(),
            shared.clone(),
            builder.state.clone(),
        );
        let admission = Admission::new(
            builder.options.max_connections,
            builder.options.overload.clone(),
        );
        Ok(Server {
            phase: Phase::NotActivated(Arc::new(socket)),
            server_address,
            scratch,
            options: builder.options,
            jobs: builder.jobs,
            hooks: builder.hooks.into_hooks(),
            state: builder.state,
            strategy: builder.strategy,
            reactor,
            shared,
            link,
            context,
            backoff: Backoff::default(),
            admission,
            waiting,
            woken: Vec::new(),
            _kind: PhantomData,
        })
    }

    /// The largest datagram this server receives whole: the builder's
    /// [`max_packet_size`](Builder::max_packet_size), clamped when the server was made to the
    /// largest datagram its family carries. A stream server does not use it and reports the
    /// option as set.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::UdpServer;
    ///
    /// let server = UdpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert_eq!(server.max_packet_size(), 8192); // Python's default
    /// let server = UdpServer::builder(|_r| Ok(()))
    ///     .max_packet_size(usize::MAX)
    ///     .bind("127.0.0.1:0")?;
    /// assert_eq!(server.max_packet_size(), 65_535); // the largest UDP datagram
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_packet_size(&self) -> usize {
        self.options.max_packet_size
    }

    /// The most connections this server holds open at once: the builder's
    /// [`max_connections`](Builder::max_connections), or its default, derived from the soft
    /// open-file limit when a serving loop starts (before the first one: as it would be now).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use sockserve_server::socket::fd_limit;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// let soft = fd_limit()?.soft;
    /// // The soft limit less a tenth of it (at least 32), for the process's other files.
    /// let margin = (soft / 10).max(32);
    /// assert_eq!(server.max_connections() as u64, soft.saturating_sub(margin).max(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_connections(&self) -> usize {
        self.admission.limit_now()
    }

    pub(crate) fn create(builder: Builder<K, C, S>, address: impl ToAddrs) -> Result<Self> {
        let address = resolve::<K>(address)?;
        let socket = Socket::new(address.family(), K::SOCKET_TYPE)?;
        Self::from_parts(builder, socket, address)
    }

    pub(crate) fn adopt(builder: Builder<K, C, S>, fd: OwnedFd) -> Result<Self> {
        let socket = Socket::from_fd(fd).map_err(Error::Address)?;
        if socket.socket_type() != K::SOCKET_TYPE || !K::accepts_family(socket.family()) {
            return Err(Error::Address(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a {:?} {:?} socket does not suit a {}",
                    socket.family(),
                    socket.socket_type(),
                    K::NAME
                ),
            )));
        }
        let address = socket.getsockname()?;
        let mut server = Self::from_parts(builder, socket, address)?;
        server.server_activate()?;
        Ok(server)
    }

    /// Python's `server_bind`: sets the reuse options, binds, and records the real address
    /// (port 0 becomes the port the system chose).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] with the OS error, [`Error::Closed`] after `server_close`.
    ///
    /// # Examples
    ///
    /// See [`Builder::build_unbound`].
    pub fn server_bind(&mut self) -> Result<()> {
        let socket = self.open_socket()?;
        let family = socket.family();
        let inet = matches!(family, Family::Inet | Family::Inet6);
        if self.options.allow_reuse_address {
            socket.setsockopt(opt::ReuseAddress, true)?;
        }
        // SO_REUSEPORT on AF_UNIX fails on Linux >= 6.12.9 (CPython gh-128916).
        if self.options.allow_reuse_port && inet {
            socket.setsockopt(opt::ReusePort, true)?;
        }
        if family == Family::Inet6 {
            socket.setsockopt(opt::Ipv6Only, !self.options.dualstack_ipv6)?;
        }
        if family == Family::Unix {
            unix::prepare_bind(&self.server_address, K::SOCKET_TYPE)?;
        }
        socket
            .bind(&self.server_address)
            .map_err(|source| Error::Bind {
                address: self.server_address.clone(),
                source,
            })?;
        self.server_address = socket.getsockname()?;
        self.shared
            .set_socket_file(SocketFile::record(&self.server_address));
        self.context = handler::driver::server_context(
            self.server_address.clone(),
            self.shared.clone(),
            self.state.clone(),
        );
        Ok(())
    }

    /// Python's `server_activate`: `listen(request_queue_size)` for streams, nothing for
    /// datagrams. The socket is then non-blocking for the serving loop.
    ///
    /// # Errors
    ///
    /// [`Error::Listen`] with the OS error, [`Error::Closed`] after `server_close`, or an OS
    /// error of the reactor (watching the channel of stop requests from forked children).
    ///
    /// # Examples
    ///
    /// See [`Builder::build_unbound`].
    pub fn server_activate(&mut self) -> Result<()> {
        let socket = Arc::clone(self.open_socket()?);
        K::activate(&socket, self.options.request_queue_size).map_err(|source| Error::Listen {
            address: self.server_address.clone(),
            source,
        })?;
        // Streams: accepted sockets get their own mode (the socket layer sets it explicitly),
        // so a non-blocking listener is safe. Datagrams: replies go out on this socket, and a
        // reply must never block the server (a Unix datagram client that never reads fills
        // its queue after a few datagrams): one that cannot be sent at once is dropped, as the
        // kernel drops UDP datagrams, and a handler's own `sendto` gets `WouldBlock`.
        socket.setblocking(false)?;
        if K::SOCKET_TYPE == socket::Type::Datagram && socket.family() == Family::Unix {
            // Replies queued at Unix datagram clients that have not read them yet are charged
            // to this socket's send buffer: a larger one (the kernel caps the request at twice
            // net.core.wmem_max) lets a few slow clients not crowd out the others' replies.
            if let Err(e) = socket.setsockopt(opt::SendBufferSize, UNIX_REPLY_BUFFER) {
                log::debug!("{}: cannot raise SO_SNDBUF: {e}", K::NAME);
            }
        }
        if let Phase::NotActivated(_) = self.phase {
            // Stop requests from forked children are watched as long as the server is active.
            if let Some(children) = self.shared.children_socket() {
                self.reactor
                    .register(children, FROM_CHILDREN, Interest::READABLE)?;
            }
            self.phase = Phase::Active {
                socket,
                listening: Listening::Off,
            };
        }
        Ok(())
    }

    /// The address the server is bound to: the real one, with the chosen port.
    ///
    /// # Examples
    ///
    /// See [`Server`].
    pub fn server_address(&self) -> &Address {
        &self.server_address
    }

    /// The server's socket (Python's `server.socket`); `None` once closed.
    ///
    /// # Examples
    ///
    /// See [`Builder::build_unbound`].
    pub fn socket(&self) -> Option<&Socket> {
        self.open_socket().ok().map(|s| &**s)
    }

    /// The socket's fd, or -1 once the server is closed (Python's `server.fileno()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert!(server.fileno() >= 0);
    /// server.server_close();
    /// assert_eq!(server.fileno(), -1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fileno(&self) -> RawFd {
        self.socket().map_or(-1, |s| s.fileno())
    }

    /// A handle that stops `serve_forever` from any thread.
    ///
    /// # Examples
    ///
    /// See [`ShutdownHandle`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.shared.clone())
    }

    /// What handlers see of this server (their `req.server`): the address and the shared state.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::with_state(7u8).bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert_eq!(*server.context().state(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn context(&self) -> &ServerContext<S> {
        &self.context
    }

    /// The concurrency strategy, for its statistics and options.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Synchronous, TcpServer};
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// let _: &Synchronous = server.strategy();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn strategy(&self) -> &C {
        &self.strategy
    }

    /// Serves until [`ShutdownHandle::shutdown`] (Python's `serve_forever()`), with a 0.5 s
    /// tick for `service_actions` (or the builder's `poll_interval`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `server_close`, [`Error::NotActivated`] for a server built
    /// unbound and never activated, or an OS error of the reactor itself. Errors of single
    /// requests never end the loop.
    ///
    /// # Examples
    ///
    /// See [`Server`].
    pub fn serve_forever(&mut self) -> Result<()> {
        self.serve_forever_with(self.options.poll_interval)
    }

    /// Serves until shutdown with the given tick (Python's `serve_forever(poll_interval)`).
    /// The tick only paces `service_actions`: shutdown wakes the loop at once. Zero, or
    /// anything under [`MIN_POLL_INTERVAL`](crate::MIN_POLL_INTERVAL) (10 ms), is raised to
    /// it (with a debug log) rather than spin: in Python `poll_interval=0` is a busy loop.
    ///
    /// # Errors
    ///
    /// See [`serve_forever`](Self::serve_forever).
    ///
    /// # Examples
    ///
    /// See [`ShutdownHandle`], and [`MIN_POLL_INTERVAL`](crate::MIN_POLL_INTERVAL) for a
    /// zero tick.
    pub fn serve_forever_with(&mut self, poll_interval: Duration) -> Result<()> {
        self.serve_loop(poll_interval, || {})
    }

    /// The serving loop; `entered` runs once the loop is running (or has returned at once for
    /// a stop asked before it started), so that a stop asked after it cannot be lost.
    pub(crate) fn serve_loop(
        &mut self,
        poll_interval: Duration,
        entered: impl FnOnce(),
    ) -> Result<()> {
        let poll_interval = crate::builder::effective_poll_interval(poll_interval, K::NAME);
        let socket = self.active_socket();
        let running = socket.is_ok().then(|| self.shared.enter()).flatten();
        entered();
        let socket = socket?;
        let Some(_running) = running else {
            return Ok(());
        };
        self.strategy.start(&self.link)?;
        self.admission.start();
        self.resume(&socket)?;
        self.waiting.open(true);
        while !self.shared.stop_requested() {
            let timeout = self.waiting.clamp(Some(self.backoff.clamp(poll_interval)));
            let (mut ready, mut from_children) = (false, false);
            let epoch = self.waiting.begin_select();
            for r in self.reactor.select(timeout)? {
                ready |= r.key == LISTENER;
                from_children |= r.key == FROM_CHILDREN;
                if r.key >= waiting::FIRST_KEY {
                    self.woken.push(*r);
                }
            }
            if from_children && self.shared.drain_children_requests() {
                // A handler in a forked child called request_shutdown (or shutdown).
                self.shutdown_handle().request_shutdown();
            }
            // A request that arrived with the stop is not taken (CPython bpo-35017).
            if self.shared.stop_requested() {
                break;
            }
            if ready {
                self.serve_batch(&socket)?;
            }
            // Connections ready for their next turn, or past their idle deadline.
            self.waiting
                .dispatch(&mut self.woken, epoch, &mut self.strategy);
            self.service_actions();
            // After service_actions: a paused loop was woken by what may have made room (a
            // request that ended, a watched descriptor, the strategy's notify) or by the end
            // of a backoff. Resumed, the socket is reported by the next select at once.
            self.maybe_resume(&socket)?;
        }
        self.woken.clear();
        if self.shared.stop_deadline().0.is_some() {
            // A graceful stop: waiting connections with no input end now, the others get
            // their turn within the grace.
            for job in self.waiting.settle() {
                self.strategy.process_request(job);
            }
        }
        Ok(())
    }

    /// Handles one request, waiting up to the server's `timeout` for it (Python's
    /// `handle_request()`); calls `handle_timeout` when none came.
    ///
    /// A connection waiting between its handler's turns ([`Next::WaitForInput`], or
    /// [`wait_for_first_input`](crate::StreamOptions::wait_for_first_input) before its first)
    /// is a request here too: its input (or its end: an EOF, a reset, its idle timeout)
    /// runs its next turn (or its end) and this returns, as a new connection's would. So a
    /// program that drives its loop with `handle_request` serves every turn of such
    /// handlers; the readiness of several waiting connections at once is served in one call.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `server_close`, or an OS error of the reactor.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::time::Duration;
    ///
    /// let mut server = TcpServer::builder(|_r| Ok(()))
    ///     .timeout(Some(Duration::from_millis(10)))
    ///     .bind("127.0.0.1:0")?;
    /// server.handle_request()?; // nobody connects: handle_timeout runs after 10 ms
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_request(&mut self) -> Result<()> {
        let socket = self.active_socket()?;
        // A timeout too long for the clock is no deadline at all.
        let deadline = self
            .options
            .timeout
            .and_then(|t| Instant::now().checked_add(t));
        self.strategy.start(&self.link)?;
        self.admission.start();
        if self.listening() != Some(Listening::Registered) {
            self.register(&socket)?;
        }
        self.waiting.open(false);
        loop {
            match self.take_request(&socket) {
                Took::Served => return Ok(()),
                // Not a request: wait on for one.
                Took::TurnedAway => continue,
                Took::WouldBlock | Took::NoCapacity => {}
                Took::Failed(AcceptErrorKind::Transient, _) => continue,
                // Python swallows get_request errors and returns.
                Took::Failed(_, e) => {
                    log::error!("{}: cannot get a request: {e}", K::NAME);
                    return Ok(());
                }
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                // Python's ForkingMixIn reaps its children here as in service_actions.
                self.strategy.service_actions();
                guard_hook("handle_timeout", || {
                    self.hooks.handle_timeout(&self.context)
                });
                return Ok(());
            }
            // Woken by a request, a waiting connection, or by what may make room (see
            // has_room, ServerLink::watch); the earliest idle deadline of a waiting one ends
            // the wait too.
            let epoch = self.waiting.begin_select();
            for r in self.reactor.select(self.waiting.clamp(timeout))? {
                if r.key >= waiting::FIRST_KEY {
                    self.woken.push(*r);
                }
            }
            let served = self
                .waiting
                .dispatch(&mut self.woken, epoch, &mut self.strategy);
            self.strategy.service_actions();
            if served > 0 {
                return Ok(());
            }
        }
    }

    /// Python's `server_close`: closes the socket, then waits for requests in flight as the
    /// strategy's options say (threads joined, children reaped; with `block_on_close(false)`
    /// or `daemon_threads(true)`, not at all), as long as they take. Idempotent.
    ///
    /// Dropping an open server closes it with a bound instead: as
    /// [`server_close_by`](Self::server_close_by) with a deadline 5 s away, which waits until
    /// then whatever those options say, and then ends (forking) or leaves (threading) what
    /// still runs. Call `server_close` first for Python's close.
    ///
    /// # Examples
    ///
    /// See [`fileno`](Self::fileno).
    pub fn server_close(&mut self) {
        if self.close_socket() {
            self.strategy.server_close(None);
        }
    }

    /// The close after a graceful stop: closes the socket, then lets the strategy wait for
    /// the requests in flight until `deadline` (see [`ShutdownHandle::close_deadline`]) and
    /// end or leave behind what still runs (forking: `SIGTERM`, then `SIGKILL`, to its own
    /// children; threading: threads still running are left and counted). It waits until the
    /// deadline whatever `block_on_close` and `daemon_threads` say (they are for
    /// [`server_close`](Self::server_close)); a deadline not set yet (no graceful stop began)
    /// waits as long as the requests take, until one sets it. Idempotent: on a closed server
    /// it does nothing and reports nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{CloseDeadline, TcpServer};
    /// use std::time::Instant;
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// let report = server.server_close_by(&CloseDeadline::at(Instant::now()));
    /// assert!(report.is_clean());
    /// assert_eq!(server.fileno(), -1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server_close_by(&mut self, deadline: &CloseDeadline) -> CloseReport {
        if self.close_socket() {
            self.strategy.server_close(Some(deadline))
        } else {
            CloseReport::default()
        }
    }

    /// After the loop returned for a graceful stop: lets the strategy go on ending the requests
    /// in flight (forking reaps its children in `service_actions`) until none is left or the
    /// stop's deadline passes. Without a graceful stop, returns at once. It waits in the
    /// reactor, woken by what the strategy watches (a child's exit), a request that ends, or
    /// [`ShutdownHandle::stop_now`]; no request is taken meanwhile.
    pub(crate) fn drain(&mut self, deadline: &CloseDeadline) {
        if self.shared.in_flight() == 0 || !deadline.is_set() {
            return;
        }
        if let Ok(socket) = self.active_socket() {
            // Out of the reactor until a later loop: arrivals must not wake the wait.
            self.pause(&socket, Listening::Off);
        }
        self.shared.wake_when_a_request_ends(true);
        loop {
            self.strategy.service_actions();
            if self.shared.in_flight() == 0 {
                break;
            }
            let left = deadline.remaining().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            if let Err(e) = self.reactor.select(Some(left)) {
                log::error!(
                    "{}: waiting for the requests of a graceful stop: {e}",
                    K::NAME
                );
                break;
            }
        }
        self.shared.wake_when_a_request_ends(false);
    }

    /// The socket, if the server is open (activated or not).
    fn open_socket(&self) -> Result<&Arc<Socket>> {
        match &self.phase {
            Phase::NotActivated(socket) | Phase::Active { socket, .. } => Ok(socket),
            Phase::Closed => Err(Error::Closed),
        }
    }

    /// The socket, if the server is open and activated.
    pub(crate) fn active_socket(&self) -> Result<Arc<Socket>> {
        match &self.phase {
            Phase::Active { socket, .. } => Ok(Arc::clone(socket)),
            Phase::NotActivated(_) => Err(Error::NotActivated),
            Phase::Closed => Err(Error::Closed),
        }
    }

    /// Where the socket stands in the reactor; `None` unless the server is active.
    fn listening(&self) -> Option<Listening> {
        match self.phase {
            Phase::Active { listening, .. } => Some(listening),
            _ => None,
        }
    }

    fn set_listening(&mut self, now: Listening) {
        if let Phase::Active { listening, .. } = &mut self.phase {
            *listening = now;
        }
    }

    /// Closes the socket; true if it was open.
    fn close_socket(&mut self) -> bool {
        if !matches!(self.phase, Phase::Closed) {
            // Connections waiting between turns end here, on the closing thread.
            self.waiting.close_all().into_iter().for_each(Job::run);
        }
        let socket = match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Closed => return false,
            Phase::NotActivated(socket) => socket,
            Phase::Active { socket, listening } => {
                if listening == Listening::Registered {
                    if let Err(e) = self.reactor.unregister(&*socket) {
                        log::debug!("unregistering the server socket: {e}");
                    }
                }
                socket
            }
        };
        // Handlers of datagram servers may still hold the socket; it closes with the last one.
        drop(socket);
        self.shared.remove_socket_file();
        true
    }

    /// One batch of requests: until the socket would block, the strategy is full, or the
    /// batch is done (then the reactor is told the socket is still ready).
    fn serve_batch(&mut self, socket: &Arc<Socket>) -> Result<()> {
        for _ in 0..ACCEPT_BATCH {
            if self.shared.stop_requested() {
                return Ok(());
            }
            match self.take_request(socket) {
                Took::Served | Took::TurnedAway => self.backoff.succeeded(),
                Took::WouldBlock => return Ok(()),
                Took::NoCapacity => {
                    self.pause(socket, Listening::PausedForCapacity);
                    return Ok(());
                }
                Took::Failed(AcceptErrorKind::Transient, e) => {
                    log::debug!("{}: skipping a failed request: {e}", K::NAME);
                }
                Took::Failed(AcceptErrorKind::Exhausted | AcceptErrorKind::Other, e) => {
                    self.backoff.failed(K::NAME, &e);
                    self.pause(socket, Listening::PausedForBackoff);
                    return Ok(());
                }
            }
        }
        self.reactor.still_ready(LISTENER, Interest::READABLE);
        Ok(())
    }

    /// Takes one request if there is room: `get_request`, then `verify_request` and the
    /// strategy's `process_request` (or `shutdown_request` if rejected); at
    /// `max_connections` under a policy that accepts, the request is turned away instead. The
    /// one routine of `serve_forever` and `handle_request`; they differ only in what they
    /// make of the outcome.
    fn take_request(&mut self, socket: &Arc<Socket>) -> Took {
        let room = self.has_room();
        if room == Room::Full {
            return Took::NoCapacity;
        }
        match K::get_request(socket, &mut self.scratch) {
            Ok((raw, address)) if room == Room::TurnAway => {
                // Counted first: the client may see the close before the turn away returns.
                self.shared.turned_away_one();
                let connection = K::connection(&raw);
                let request = K::request_ref(&raw);
                self.admission
                    .turn_away(request, connection.as_deref(), &address);
                Took::TurnedAway
            }
            Ok((raw, address)) => {
                self.process(raw, address);
                Took::Served
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Took::WouldBlock,
            Err(e) => Took::Failed(AcceptErrorKind::of(&e), e),
        }
    }

    /// verify_request, then the strategy's process_request (or shutdown_request if rejected).
    /// A truncated datagram skips verify_request: its request fails at setup, for
    /// handle_error to see. With the PROXY protocol on, verify_request runs in the job, once
    /// the header has been read (proxy.rs), not here: it sees the real client.
    fn process(&mut self, raw: K::Raw, address: Address) {
        let hooks = &self.hooks;
        let accepted = K::is_truncated(&raw)
            || self.options.proxy.is_some()
            || guard_hook("verify_request", || {
                hooks.verify_request(&self.context, K::request_ref(&raw), &address)
            })
            .unwrap_or(false);
        let connection = K::connection(&raw);
        if !accepted {
            drop(raw);
            shutdown_request(connection, &self.context, &address, &**hooks);
            return;
        }
        let ticket = self.shared.begin_request(connection.clone());
        let job = self.jobs.make(
            raw,
            connection,
            address,
            self.context.clone(),
            Arc::clone(hooks),
            (ticket, Arc::clone(&self.waiting)),
            self.options.proxy.clone(),
        );
        self.strategy.process_request(job);
    }

    fn service_actions(&mut self) {
        self.strategy.service_actions();
        // A line about max_connections held back by its rate limit may be due.
        self.admission.observe(self.shared.in_flight());
        guard_hook("service_actions", || {
            self.hooks.service_actions(&self.context)
        });
    }

    fn register(&mut self, socket: &Arc<Socket>) -> Result<()> {
        self.reactor
            .register(&**socket, LISTENER, Interest::READABLE)?;
        self.set_listening(Listening::Registered);
        Ok(())
    }

    /// Whether there is room for a request: the strategy's, and `max_connections`' (at which
    /// the overload policy pauses, or accepts to turn away). When there is none, a request
    /// that ends from now on wakes the loop (the connections' room, and most strategies', is
    /// their requests in flight): that is asked for before looking again, so a request that
    /// ends in between cannot be missed, and a full server never polls for room.
    fn has_room(&mut self) -> Room {
        let mut room = self.room_now();
        if room == Room::Full {
            self.shared.wake_when_a_request_ends(true);
            room = self.room_now();
            if room == Room::Full {
                return room;
            }
        }
        self.shared.wake_when_a_request_ends(false);
        room
    }

    /// The room there is, looked at once. The strategy's limit comes first: a strategy without
    /// room pauses accepting whatever the overload policy.
    fn room_now(&mut self) -> Room {
        if !self.strategy.has_capacity() {
            return Room::Full;
        }
        if self.admission.has_room(self.shared.in_flight()) {
            Room::Free
        } else if self.admission.pauses() {
            Room::Full
        } else {
            Room::TurnAway
        }
    }

    /// Takes the socket out of the reactor, saying why (backpressure or fd exhaustion).
    fn pause(&mut self, socket: &Arc<Socket>, why: Listening) {
        if self.listening() == Some(Listening::Registered) {
            if let Err(e) = self.reactor.unregister(&**socket) {
                log::debug!("pausing the server socket: {e}");
            }
        }
        self.set_listening(why);
    }

    /// Puts the socket back and makes the next select report it, whatever arrived meanwhile.
    fn resume(&mut self, socket: &Arc<Socket>) -> Result<()> {
        if self.listening() != Some(Listening::Registered) {
            self.register(socket)?;
        }
        self.reactor.still_ready(LISTENER, Interest::READABLE);
        Ok(())
    }

    /// Resumes a paused socket when the strategy has room again or the backoff is over.
    fn maybe_resume(&mut self, socket: &Arc<Socket>) -> Result<bool> {
        match self.listening() {
            Some(Listening::PausedForCapacity) if self.has_room() != Room::Full => {}
            Some(Listening::PausedForBackoff) if self.backoff.is_over() => {}
            _ => return Ok(false),
        }
        self.resume(socket)?;
        Ok(true)
    }
}

/// Where a server is in its life: one state, so that no combination of flags can say two
/// things at once.
#[derive(Debug)]
enum Phase {
    /// Made (bound or not), `server_activate` not called yet: it cannot serve.
    NotActivated(Arc<Socket>),
    /// Activated: it may serve.
    Active {
        socket: Arc<Socket>,
        listening: Listening,
    },
    /// `server_close` ran (or the server was dropped).
    Closed,
}

/// Where an active server's socket stands in the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listening {
    /// Not in the reactor: no loop has run yet.
    Off,
    /// In the reactor: a request wakes the loop.
    Registered,
    /// Out of the reactor until the strategy has room again (backpressure).
    PausedForCapacity,
    /// Out of the reactor until the backoff after an exhausting accept error is over.
    PausedForBackoff,
}

/// Whether the loop may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Take it.
    Free,
    /// Pause accepting: the strategy is full, or `max_connections` are open under `Pause`.
    Full,
    /// `max_connections` are open and the overload policy accepts, to turn the next away.
    TurnAway,
}

/// What one attempt to take a request did.
#[derive(Debug)]
enum Took {
    /// A request was taken and handed on (or rejected by `verify_request`).
    Served,
    /// A connection came at `max_connections` and was turned away (closed, or replied to).
    TurnedAway,
    /// No request is waiting.
    WouldBlock,
    /// The strategy has no room: nothing was taken.
    NoCapacity,
    /// `get_request` failed.
    Failed(AcceptErrorKind, std::io::Error),
}

impl<K: Kind, C: Strategy, S: SharedState> Drop for Server<K, C, S> {
    fn drop(&mut self) {
        if self.close_socket() {
            // A clock that cannot go 5 s further is not waited on at all.
            let deadline = Instant::now()
                .checked_add(DROP_WAIT)
                .map_or_else(|| CloseDeadline::at(Instant::now()), CloseDeadline::at);
            // What it ends or leaves, the strategy logs.
            self.strategy.server_close(Some(&deadline));
        }
    }
}

impl<K: Kind, C: Strategy, S: SharedState> fmt::Debug for Server<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::NAME)
            .field("server_address", &self.server_address)
            .field("fileno", &self.fileno())
            // A strategy need not implement `Debug`: its type names it.
            .field("strategy", &std::any::type_name::<C>())
            .finish_non_exhaustive()
    }
}

/// Resolves a server address and checks it suits the kind.
fn resolve<K: Kind>(address: impl ToAddrs) -> Result<Address> {
    let address = address
        .to_addrs()
        .map_err(Error::Address)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Address(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            ))
        })?;
    if !K::accepts_family(address.family()) {
        return Err(Error::Address(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} cannot serve on {address}", K::NAME),
        )));
    }
    Ok(address)
}
