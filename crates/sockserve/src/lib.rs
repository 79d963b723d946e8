//! sockserve: Python's `import socket` and `import socketserver`, in Rust. This is the facade:
//! the paved-path types at the root, each layer as a module, and a [`prelude`] of the traits.
//!
//! # A first server
//!
//! A TCP echo server (Python's `TCPServer` with a `StreamRequestHandler`), served on another
//! thread, a client, then shutdown and close:
//!
//! ```
//! use sockserve::TcpServer;
//! use sockserve::socket::{ConnectOptions, Shutdown, create_connection};
//! use std::io::{BufRead, Read, Write};
//!
//! // The handler runs once per connection: it echoes what arrives until the client closes.
//! let mut server = TcpServer::bind("127.0.0.1:0", |req| loop {
//!     let data = req.rfile.fill_buf()?;
//!     if data.is_empty() {
//!         return Ok(());
//!     }
//!     req.wfile.write_all(data)?;
//!     let n = data.len();
//!     req.rfile.consume(n);
//! })?;
//! let address = server.server_address().clone(); // port 0 became a real port
//! let handle = server.shutdown_handle();
//!
//! std::thread::scope(|s| -> std::io::Result<()> {
//!     let serving = s.spawn(|| server.serve_forever());
//!
//!     let mut client = create_connection(&address, &ConnectOptions::default())?;
//!     client.sendall(b"hello")?;
//!     client.shutdown(Shutdown::Write)?; // "that is all": the handler sees EOF
//!     let mut reply = Vec::new();
//!     client.read_to_end(&mut reply)?;
//!     assert_eq!(reply, b"hello");
//!
//!     handle.shutdown()?; // Python's server.shutdown(): returns once the loop has stopped
//!     serving.join().expect("serving thread panicked")?;
//!     Ok(())
//! })?;
//! server.server_close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A server meant to run until it is told to stop by its operator uses
//! [`serve_until_signal`]: `SIGTERM` or `SIGINT` stop it gracefully within a deadline.
//!
//! # State: shared, and per connection
//!
//! Shared state (Python's attributes on the server object) is simplest as an `Arc` captured
//! by the closure. Per-connection state is the handler value itself: the server clones the
//! handler for each connection (each datagram), as Python makes one handler object per
//! request, so a handler type's fields start fresh every time and need no lock.
//!
//! ```
//! use sockserve::ThreadingTcpServer;
//! use std::{io::Write, sync::{Arc, atomic::{AtomicU64, Ordering}}};
//!
//! let visitors = Arc::new(AtomicU64::new(0));
//! let count = Arc::clone(&visitors);
//! let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req| {
//!     let n = count.fetch_add(1, Ordering::Relaxed);
//!     Ok(writeln!(req.wfile, "visitor {n}")?)
//! })?;
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Handler types and hooks have no closure to capture in: they reach state given to the server
//! with [`Server::with_state`], typed. The state's type is the server's last type parameter,
//! with a default of `()` (no state), so the aliases and closure inference work as before and
//! asking for the wrong type is a compile error: `ThreadingTcpServer<Stats>` is
//! `Server<Tcp, Threading, Stats>`; its handlers get a `StreamRequest<Stats>` whose
//! `server.state()` is a `&Stats`; its hooks implement `Hooks<Stats>`.
//!
//! ```
//! use sockserve::{Hooks, ServerContext, ThreadingTcpServer};
//! use std::{io::Write, sync::atomic::{AtomicU64, Ordering}};
//!
//! #[derive(Default)]
//! struct Stats {
//!     served: AtomicU64,
//!     failed: AtomicU64,
//! }
//!
//! struct CountFailures;
//! impl Hooks<Stats> for CountFailures {
//!     fn handle_error(
//!         &self,
//!         server: &ServerContext<Stats>,
//!         _client: &sockserve::Address,
//!         _error: &sockserve::HandlerError,
//!     ) {
//!         server.state().failed.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let server: ThreadingTcpServer<Stats> = ThreadingTcpServer::with_state(Stats::default())
//!     .builder(|req| {
//!         req.server.state().served.fetch_add(1, Ordering::Relaxed);
//!         Ok(req.wfile.write_all(b"ok\n")?)
//!     })
//!     .hooks(CountFailures)
//!     .bind("127.0.0.1:0")?;
//! assert_eq!(server.context().state().served.load(Ordering::Relaxed), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Logging
//!
//! sockserve reports what happens through the `log` facade and prints nothing itself, with one
//! exception: a program that installed no logger would never hear of a failed request, so the
//! default [`Hooks::handle_error`] then writes `Exception occurred during processing of request
//! from ADDR: ERROR` to stderr, as Python does (at most 10 reports a second). Install any `log`
//! implementation at the start of `main` (`env_logger::init()` from the `env_logger` crate is a
//! common one) and the reports, with the rest of sockserve's records, go to it instead;
//! or handle every failure yourself, with a closure:
//!
//! ```
//! use sockserve::TcpServer;
//!
//! let server = TcpServer::builder(|_req| Ok(()))
//!     .handle_error(|server, client, error| {
//!         log::error!("{}: request from {client} failed: {error}", server.server_address());
//!     })
//!     .bind("127.0.0.1:0")?;
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limits and their defaults
//!
//! Every limit, its default, and where to change it. Where Python has the option, the default
//! is Python's unless the row says why not.
//!
//! | limit | default | set with |
//! |---|---|---|
//! | worker threads of a threading server | [`DEFAULT_MAX_THREADS`] (10,000), lowered where `RLIMIT_NPROC` leaves less (its soft limit less the process's threads less 64; logged at info); past it connections are accepted and queue for a thread in arrival order (logged at warn), accepting never pauses for it | [`Threading::max_threads`]; [`Threading::thread_limit`] tells it |
//! | an idle worker thread | ends after [`DEFAULT_THREAD_IDLE_TIMEOUT`] (10 s) | [`Threading::thread_idle_timeout`] (`None`: never) |
//! | a worker thread's stack | Rust's (2 MiB of address space; resident memory is what a handler touches) | [`Threading::stack_size`] |
//! | open connections (a datagram server's datagrams in hand), every strategy, waiting ones included | the soft `RLIMIT_NOFILE` less a tenth (at least 32), read when the loop starts: 18,000 for 20,000, 922 for 1,024; call [`socket::raise_fd_limit`] first | [`Builder::max_connections`]; [`Server::max_connections`] tells it |
//! | what happens at `max_connections` | [`Overload::Pause`]: accepting pauses, new connections wait in the backlog (nothing lost); or [`Overload::Close`] (a reset, `RST`) or [`Overload::reply`] (a non-blocking reply, then `FIN`) | [`Builder::overload`] |
//! | limit lines (reached, cleared) | warn at the limit (name, value, how to raise it), info at 90% of it; at most one a second per limit, the gap doubling to 60 s while it flaps; on stderr without a logger | not configurable ([`LimitGauge`]) |
//! | children of a forking server | [`DEFAULT_MAX_CHILDREN`] (40, Python's); at the limit accepting pauses (logged at warn, and when it clears); a connection waiting between turns keeps its child | [`Forking::max_children`] |
//! | `listen` backlog | [`SOMAXCONN`] (CPython 3.15's) | [`Builder::request_queue_size`] |
//! | largest datagram received whole | 8192 bytes (Python's), clamped to what the family carries (65,535 for UDP) | [`Builder::max_packet_size`] |
//! | tick of `service_actions` | 0.5 s (Python's); never under [`MIN_POLL_INTERVAL`] (10 ms) | [`Builder::poll_interval`], [`Server::serve_forever_with`] |
//! | wait of `handle_request` | none (Python's `timeout = None`) | [`Builder::timeout`] |
//! | every read and write of a connection | none (Python's `StreamRequestHandler.timeout`) | [`StreamOptions::timeout`] |
//! | a read that receives no byte (idle client) | none (Python's: a silent client is waited for, as ported programs such as a chat expect); past it the read fails with `TimedOut` | [`StreamOptions::idle_timeout`] |
//! | a write that makes no progress (client that never reads) | none (Python's, for the same reason); renewed by each send that makes progress | [`StreamOptions::write_timeout`] |
//! | a request's whole turn, setup to finish (client that dribbles) | none (Python's: a long session is the point of some programs); past it every read and write fails with `TimedOut` | [`StreamOptions::turn_timeout`] |
//! | requests ended by a deadline, reported by the default `handle_error` | 1 a second per process at info level (stderr without a logger), the rest counted; apart from the failures' 10 | replace [`Hooks::handle_error`] |
//! | read and write buffers of `rfile`/`wfile` | 8192 bytes / unbuffered (Python's) | [`StreamOptions::rbufsize`], [`StreamOptions::wbufsize`] |
//! | a line read from `rfile` (`read_line`, `lines`, ...) | [`DEFAULT_LINE_LIMIT`] (64 KiB, `http.server`'s); a longer line is an `InvalidData` error | [`StreamOptions::line_limit`] |
//! | Nagle's algorithm on TCP connections | off (`TCP_NODELAY`, Go's default; Python leaves it on, which stalls a reply written in two writes by 40 ms) | [`StreamOptions::disable_nagle_algorithm`] |
//! | failures reported by the default `handle_error` | 10 a second per process, the rest counted | replace [`Hooks::handle_error`] |
//! | a stop after the grace (`serve_until_signal`, a graceful stop) | [`STOP_BOUND`] (3 s) | not configurable |
//! | dropping a server that still has requests | waits 5 s for them, then ends what still runs (forking: `SIGTERM`, then `SIGKILL`, its own children; threading: threads left running) | call [`Server::server_close`] to wait as Python does |
//!
//! # From Python's names to ours
//!
//! | Python | sockserve |
//! |---|---|
//! | `import socket`, `socket.socket(AF_INET, SOCK_STREAM)` | [`socket`], [`Socket::new`]`(`[`Family::Inet`]`, `[`Type::Stream`]`)` |
//! | `socket.create_server`, `socket.create_connection`, `socket.socketpair` | [`socket::create_server`], [`socket::create_connection`], [`socket::socketpair`] |
//! | `(host, port)`, `'/path/to.sock'` | [`Address`], anything [`ToAddrs`] |
//! | `sock.makefile('rb')`, `sock.makefile('wb')` | [`SocketReader`], [`SocketWriter`] |
//! | `socketserver.TCPServer`, `UDPServer` | [`TcpServer`], [`UdpServer`] |
//! | `socketserver.UnixStreamServer`, `UnixDatagramServer` | [`UnixStreamServer`], [`UnixDatagramServer`] |
//! | `BaseServer` (any of them) | [`Server`]`<Kind, Strategy>` with a [`Kind`]: [`Tcp`], [`Udp`], [`UnixStream`], [`UnixDatagram`] |
//! | `TCPServer(addr, Handler)` | [`TcpServer::bind`]`(addr, \|req\| ...)` (the closure's argument type is inferred); a handler type: [`Server::bind_handler`]`(addr, handler)` |
//! | class attributes (`allow_reuse_address`, `request_queue_size`, `timeout`, `max_packet_size`, ...) | [`Builder`] methods of the same names, from [`TcpServer::builder`] |
//! | `bind_and_activate=False`, `server_bind()`, `server_activate()` | [`Builder::build_unbound`], [`Server::server_bind`], [`Server::server_activate`] |
//! | `serve_forever(poll_interval)`, `handle_request()` | [`Server::serve_forever`], [`Server::serve_forever_with`], [`Server::handle_request`] |
//! | `shutdown()` (from another thread) | [`ShutdownHandle::shutdown`] (instant; an error instead of a deadlock on the serving thread) |
//! | `threading.Thread(target=server.serve_forever).start()` ... `server.shutdown()` | [`Server::spawn`] gives a [`Running`]: its [`server_address`](Running::server_address), live figures ([`in_flight`](Running::in_flight), [`threads`](Running::threads), [`children`](Running::children)), and [`shutdown`](Running::shutdown) that stops, joins and gives the server back |
//! | (none: hand-written with `signal.signal` and a thread) | [`ShutdownHandle::shutdown_gracefully`] ([`GracefulStop`]), [`serve_until_signal`] ([`SignalStop`], [`StopSignals`]) |
//! | `server_close()`, `with server:` | [`Server::server_close`], `Drop` |
//! | `server.server_address`, `server.socket`, `server.fileno()` | [`Server::server_address`], [`Server::socket`], [`Server::fileno`] |
//! | overriding `verify_request`, `handle_error`, `handle_timeout`, `service_actions` | closures: [`Builder::verify_request`], [`Builder::handle_error`], [`Builder::handle_timeout`], [`Builder::service_actions`], each given the server (Python's `self`) as a [`ServerContext`]; `verify_request` sees a [`RequestRef`] |
//! | a class of hooks, overriding `shutdown_request` | [`Hooks`] (default: [`DefaultHooks`]), set with [`Builder::hooks`]; a closure wins over the matching method |
//! | `process_request`, `ThreadingMixIn`, `ForkingMixIn` | a [`Strategy`] type parameter: [`Synchronous`] runs each [`Job`] inline, [`Threading`] on a bounded pool of reused threads (`max_threads`, `daemon_threads`, `block_on_close`), [`Forking`] in children (`max_children`) |
//! | `ThreadingTCPServer`, `ForkingUDPServer`, ... (the eight combinations) | [`ThreadingTcpServer`], [`ForkingUdpServer`], ... (type aliases) |
//! | `BaseRequestHandler` with `setup` / `handle` / `finish` | [`Handler`] (a closure is one too); [`HandlerExt::with_options`] |
//! | `StreamRequestHandler`: `self.rfile`, `self.wfile`, `self.connection`, `self.client_address` | [`StreamRequest`] fields |
//! | `rbufsize`, `wbufsize`, `timeout`, `disable_nagle_algorithm` | [`StreamOptions`] |
//! | `DatagramRequestHandler`: `self.packet`, `self.socket`, `rfile`, `wfile` | [`DatagramRequest`] fields, [`DatagramOptions`] |
//! | `self.server` in a handler | [`ServerContext`] (`request.server`) |
//! | attributes set on the server object (`server.stats = ...`) | [`Server::with_state`]: `server.state()`, typed (see above) |
//! | the exception `handle_error` sees | [`HandlerError`] |
//! | `OSError` from the server's constructor | [`Error`] (converts into `io::Error`) |
//!
//! # The layers
//!
//! Each layer is also a module, for what the root does not carry: [`socket`] (Python's
//! `socket` module), [`reactor`] (`selectors`, a waker, signals), [`handler`]
//! (`BaseRequestHandler` and friends), [`server`] (`BaseServer` and its four servers),
//! [`mixins`] (threading and forking), and beyond one process [`prefork`] (a supervisor of
//! worker processes, gunicorn's model). Every type at the root is the same type
//! as in its layer, under the same name: `sockserve::TcpServer` is
//! `sockserve::server::TcpServer`.

//!
//! # Features
//!
//! `threading`, `forking` and `prefork` are on by default, `tls` is off; each only adds
//! API, so `default-features = false` leaves the synchronous servers, the layers below and
//! everything else:
//!
//! | feature | adds |
//! |---|---|
//! | `threading` | [`Threading`], the `Threading*Server` aliases, [`DEFAULT_MAX_THREADS`], the [`mixins`] module |
//! | `forking` | [`Forking`] (Unix), the `Forking*Server` aliases, [`DEFAULT_MAX_CHILDREN`], the [`mixins`] module |
//! | `prefork` | the [`prefork`] module (Unix): a supervisor of worker processes, reloads and upgrades that drop no connection |
//! | `tls` (off by default) | the `tls` module (`sockserve-tls`, over rustls with its `ring` provider): `builder.tls(config)` on any stream server, `req.tls()` for the client's certificates, ALPN and SNI |

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// The socket layer: Python's `socket` module (the `sockserve-socket` crate).
///
/// ```
/// let addr: sockserve::socket::Address = "127.0.0.1:9999".parse()?;
/// assert_eq!(addr.family(), sockserve::socket::Family::Inet);
/// # Ok::<(), std::io::Error>(())
/// ```
pub use socket;

/// The reactor layer: Python's `selectors` module, a cross-thread waker, and signals through
/// a self-pipe (the `sockserve-reactor` crate).
///
/// ```
/// use sockserve::reactor::Reactor;
/// use std::time::Duration;
///
/// let mut reactor = Reactor::new()?;
/// reactor.waker().wake()?;
/// assert!(reactor.select(Some(Duration::from_secs(5)))?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub use reactor;

/// The handler layer: Python's `BaseRequestHandler`, `StreamRequestHandler` and
/// `DatagramRequestHandler` (the `sockserve-handler` crate).
///
/// ```
/// use sockserve::handler::{Handler, StreamRequest};
///
/// fn assert_handler<H: Handler<StreamRequest>>(_: H) {}
/// assert_handler(|_req: &mut StreamRequest| {});
/// ```
pub use handler;

/// The server layer: Python's `BaseServer`, `TCPServer`, `UDPServer`, `UnixStreamServer` and
/// `UnixDatagramServer` (the `sockserve-server` crate).
///
/// ```
/// use sockserve::server::{Error, TcpServer};
///
/// let err = TcpServer::bind("/tmp/not-an-ip.sock", |_r| Ok(())).unwrap_err();
/// assert!(matches!(err, Error::Address(_)));
/// ```
pub use server;

/// The concurrency layer: Python's `ThreadingMixIn` and `ForkingMixIn` (the `sockserve-mixins`
/// crate), as strategies, and the eight predefined combinations.
///
/// ```
/// use sockserve::{Server, Tcp, TcpServer, Threading};
///
/// let server: Server<Tcp, Threading> = TcpServer::builder(|_r| Ok(()))
///     .strategy(Threading::new().max_threads(32))
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(any(feature = "threading", feature = "forking"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "threading", feature = "forking"))))]
pub use mixins;

/// Prefork workers under a supervisor, gunicorn's model (the `sockserve-prefork` crate):
/// the supervisor binds once and runs N worker processes that serve the listener; signals
/// reload (`SIGHUP`), resize (`SIGTTIN`, `SIGTTOU`) and upgrade (`SIGUSR2`) the service
/// without refusing a connection.
///
/// ```
/// use sockserve::prefork::{Prefork, Start};
///
/// let supervisor = Prefork::new().workers(4).start(Start::Fork);
/// # drop(supervisor);
/// ```
#[cfg(all(unix, feature = "prefork"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "prefork"))))]
pub use prefork;

/// TLS for stream servers (the `sockserve-tls` crate, over rustls with its `ring` provider),
/// behind the `tls` feature: `builder.tls(config)` and the handlers read and write plaintext;
/// rustls itself is [`tls::rustls`].
///
/// ```
/// use sockserve::TcpServer;
/// use sockserve::tls::{TlsBuilderExt, pem};
///
/// fn serve_tls(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
///     let server = TcpServer::builder(|_req| Ok(()))
///         .tls(pem::server_config(cert_pem, key_pem)?)
///         .bind("127.0.0.1:0")?;
///     # drop(server);
///     Ok(())
/// }
/// # let _ = serve_tls;
/// ```
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls;

// The socket layer.
#[doc(inline)]
pub use socket::{
    Address, ConnectOptions, Family, SOMAXCONN, ServerOptions, Socket, SocketReader, SocketWriter,
    ToAddrs, Type, UNIX_PATH_MAX, create_connection, create_server, getaddrinfo, getdefaulttimeout,
    opt, setdefaulttimeout, socketpair,
};

// The handler layer.
#[doc(inline)]
pub use handler::{
    BoxError, DEFAULT_LINE_LIMIT, DatagramOptions, DatagramRequest, Handler, HandlerError,
    HandlerExt, IntoOutcome, Next, ServerContext, SharedState, Stage, StreamOptions, StreamReader,
    StreamRequest, StreamTruncated, StreamWriter, Transport, TruncatedDatagram,
};

/// Through the facade: a handler's way to write to its connection from other threads, while
/// the connection waits between turns (`Next::WaitForInput`) or runs one, as the chat
/// example broadcasts.
///
/// ```
/// use sockserve::socket::create_connection;
/// use sockserve::{ConnectionWriter, Next, TcpServer};
/// use std::{io::Read, sync::mpsc, time::Duration};
///
/// let (to_main, writers) = mpsc::channel::<ConnectionWriter>();
/// let server = TcpServer::bind("127.0.0.1:0", move |req| {
///     to_main.send(req.writer())?;
///     Ok(Next::WaitForInput) // waits in the reactor, holding nothing, until input comes
/// })?;
/// let address = server.server_address().clone();
/// let running = server.spawn()?;
/// let mut client = create_connection(&address, &Default::default())?;
/// let writer = writers.recv_timeout(Duration::from_secs(10))?;
/// std::thread::spawn(move || writer.write_all(b"news\n")).join().unwrap()?;
/// let mut got = [0; 5];
/// client.read_exact(&mut got)?;
/// assert_eq!(&got, b"news\n");
/// running.shutdown()?.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use handler::ConnectionWriter;

// The server layer.
#[doc(inline)]
pub use server::{
    Builder, CloseDeadline, CloseReport, DEFAULT_PROXY_HEADER_LIMIT, DEFAULT_PROXY_HEADER_TIMEOUT,
    DefaultHooks, Error, GracefulStop, Hooks, Incoming, Job, Kind, Layer, LimitGauge,
    MIN_POLL_INTERVAL, Overload, OverloadReply, ProxyProtocol, Rejected, RequestRef, Running,
    STOP_BOUND, Server, ServerLink, ShutdownHandle, Strategy, Synchronous, Tcp, TcpServer, Udp,
    UdpServer, UnixDatagram, UnixDatagramServer, UnixStream, UnixStreamServer, WithState,
};

// The concurrency layer, one feature for each strategy.
#[cfg(feature = "threading")]
#[cfg_attr(docsrs, doc(cfg(feature = "threading")))]
#[doc(inline)]
pub use mixins::{
    DEFAULT_LINGER, DEFAULT_MAX_THREADS, DEFAULT_THREAD_IDLE_TIMEOUT, Threading,
    ThreadingTcpServer, ThreadingUdpServer, ThreadingUnixDatagramServer, ThreadingUnixStreamServer,
};
#[cfg(all(unix, feature = "forking"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "forking"))))]
#[doc(inline)]
pub use mixins::{
    DEFAULT_MAX_CHILDREN, Forking, ForkingTcpServer, ForkingUdpServer, ForkingUnixDatagramServer,
    ForkingUnixStreamServer,
};

// Serving until a termination signal (signals are Unix's).
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
#[doc(inline)]
pub use server::{SignalStop, StopSignals, serve_until_signal};

/// The traits, to `use sockserve::prelude::*;` and call their methods or implement them.
///
/// ```
/// use sockserve::prelude::*;
/// use sockserve::{StreamOptions, StreamRequest};
///
/// // `HandlerExt` brings `with_options`; `ToAddrs` brings `to_addrs`.
/// let handler = (|_req: &mut StreamRequest| {}).with_options(StreamOptions::default());
/// assert_eq!(handler.options().rbufsize, 8192);
/// assert!(!"127.0.0.1:0".to_addrs()?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod prelude {
    #[doc(no_inline)]
    pub use crate::{Handler, HandlerExt, Hooks, Strategy, ToAddrs};
}

/// Every rust code block of the README, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
