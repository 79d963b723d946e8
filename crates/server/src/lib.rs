//! Servers: Python's `BaseServer`, `TCPServer`, `UDPServer`, `UnixStreamServer` and
//! `UnixDatagramServer`, on a reactor, with a concurrency strategy in place of the mix-ins.
//!
//! | Python | sockserve |
//! |---|---|
//! | `TCPServer(addr, Handler)` | [`TcpServer::bind(addr, handler)`](Server::bind) |
//! | `TCPServer(addr, Handler, bind_and_activate=False)` | [`Builder::build_unbound`], then [`Server::server_bind`], [`Server::server_activate`] |
//! | class attributes `request_queue_size`, `allow_reuse_address`, `allow_reuse_port`, `timeout`, `max_packet_size` | [`Builder`] methods of the same names |
//! | `serve_forever(poll_interval=0.5)` | [`Server::serve_forever`], [`Server::serve_forever_with`] |
//! | `shutdown()` (from another thread) | [`ShutdownHandle::shutdown`] (any thread; an error instead of a deadlock on the serving one) |
//! | `handle_request()`, `handle_timeout()` | [`Server::handle_request`], [`Builder::handle_timeout`] |
//! | overriding `verify_request`, `handle_error`, `handle_timeout`, `service_actions` | closures: [`Builder::verify_request`], [`Builder::handle_error`], [`Builder::handle_timeout`], [`Builder::service_actions`]; or a [`Hooks`] type, set with [`Builder::hooks`] (closures win over its methods) |
//! | overriding `shutdown_request` | [`Hooks::shutdown_request`] |
//! | `self` in a hook (`self.server_address`, attributes set on the server) | the hook's first argument, the [`ServerContext`] handlers see as `request.server` |
//! | attributes set on the server object, read by handlers and hooks | [`Server::with_state`]`(state)`: `server.state()` is typed (`Server<Kind, Strategy, State>`, default `()`) |
//! | `server_close()`, `with server:` | [`Server::server_close`], `Drop` |
//! | `server.socket`, `server.fileno()`, `server.server_address` | [`Server::socket`], [`Server::fileno`], [`Server::server_address`] |
//! | `ThreadingMixIn`, `ForkingMixIn` | a [`Strategy`] type parameter (`sockserve-mixins`) |
//!
//! Beyond CPython: shutdown wakes the loop at once (no poll delay, no stale flag); the
//! backlog defaults to `SOMAXCONN`; each wakeup drains a batch of requests; accept errors that
//! mean "no fds" pause accepting with a capped backoff instead of spinning, and say which
//! limit it is and how to raise it; open connections are bounded for every strategy
//! ([`Builder::max_connections`], by default from the open-file limit), with a choice of what
//! happens at the bound ([`Overload`]: pause, reset, or a short reply); and each limit says
//! when it is reached and when it clears ([`LimitGauge`]). What runs, and what a client sees,
//! when a handler step or a hook fails or panics: the table of [`failures`].
//!
//! # Logging
//!
//! The servers report through the [`log`] facade: a failed request at error level (the
//! default [`Hooks::handle_error`]), trouble the server recovers from at warn, the rest at info
//! and debug. To see and route these, install a logger at the start of `main`: any `log`
//! implementation will do (the `env_logger` crate, `env_logger::init()` with `RUST_LOG=info`,
//! is a common choice), or a few lines of your own, as below. Without a logger `log` discards
//! every record, so a failed request is then reported on stderr instead, as Python's
//! `handle_error` prints it: at most 10 reports a second, see [`Hooks::handle_error`]. So is a
//! limit reached or cleared (`sockserve: WARN: limit max_connections = 18000 reached ...`, see
//! [`LimitGauge`]) and an accept that failed for want of descriptors.
//!
//! ```
//! /// Every record at info level or above, on stderr.
//! struct Stderr;
//!
//! impl log::Log for Stderr {
//!     fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
//!         metadata.level() <= log::Level::Info
//!     }
//!     fn log(&self, record: &log::Record<'_>) {
//!         if self.enabled(record.metadata()) {
//!             eprintln!("{} {}: {}", record.level(), record.target(), record.args());
//!         }
//!     }
//!     fn flush(&self) {}
//! }
//!
//! static LOGGER: Stderr = Stderr;
//! log::set_logger(&LOGGER)?;
//! log::set_max_level(log::LevelFilter::Info);
//! # Ok::<(), log::SetLoggerError>(())
//! ```
//!
//! # Examples
//!
//! ```
//! use sockserve_server::UdpServer;
//! use std::io::Write;
//!
//! let server = UdpServer::bind("127.0.0.1:0", |req| {
//!     let packet = req.packet.clone();
//!     Ok(req.wfile.write_all(&packet)?)
//! })?;
//! println!("echoing datagrams on {}", server.server_address());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod accept;
mod activation;
mod admission;
mod background;
mod builder;
mod error;
pub mod failures;
mod hooks;
mod job;
mod kind;
mod layer;
mod limits;
mod link;
mod proxy;
mod report;
mod server;
mod shutdown;
mod strategy;
mod unix;
#[cfg(unix)]
mod until_signal;
mod waiting;

/// The socket layer (the `sockserve-socket` crate): a program that depends on this crate alone
/// reaches it here (`sockserve_server::socket::create_connection`, say).
///
/// ```
/// use sockserve_server::socket::{ConnectOptions, create_connection};
/// use sockserve_server::TcpServer;
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
/// let _client = create_connection(server.server_address(), &ConnectOptions::default())?;
/// server.handle_request()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use socket;

/// The handler layer (the `sockserve-handler` crate): the requests and the handler trait are
/// also at this crate's root.
///
/// ```
/// use sockserve_server::handler::{Handler, StreamRequest};
///
/// fn takes<H: Handler<StreamRequest>>(_handler: H) {}
/// takes(|_req: &mut StreamRequest| {});
/// ```
pub use handler;

// What this crate's API takes and gives, from the layers below, so that a program that
// depends on this crate alone can name it.
#[doc(no_inline)]
pub use handler::{
    BoxError, DEFAULT_LINE_LIMIT, DatagramOptions, DatagramRequest, Handler, HandlerError,
    HandlerExt, IntoOutcome, Next, ServerContext, SharedState, Stage, StreamOptions, StreamReader,
    StreamRequest, StreamTruncated, StreamWriter, Transport, TruncatedDatagram,
};
#[doc(no_inline)]
pub use socket::{Address, Family, Socket, ToAddrs, Type};

pub use admission::{Overload, OverloadReply, Rejected};
pub use background::Running;
pub use builder::{Builder, MIN_POLL_INTERVAL};
pub use error::{Error, Result};
pub use hooks::{DefaultHooks, Hooks, RequestRef};
pub use kind::{Kind, Tcp, Udp, UnixDatagram, UnixStream};
pub use layer::{Incoming, Layer};
pub use limits::LimitGauge;
pub use link::{ServerLink, Watch};
pub use proxy::{DEFAULT_PROXY_HEADER_LIMIT, DEFAULT_PROXY_HEADER_TIMEOUT, ProxyProtocol};
/// The signals [`serve_until_signal`] stops on (from the reactor layer, `sockserve-reactor`).
#[cfg(unix)]
#[doc(no_inline)]
pub use reactor::Signal;
pub use server::{Server, WithState};
pub use shutdown::{CloseDeadline, GracefulStop, STOP_BOUND, ShutdownHandle};
pub use strategy::{CloseReport, Job, Strategy, Synchronous};
#[cfg(unix)]
pub use until_signal::{SignalStop, StopSignals, serve_until_signal};

/// Python's `TCPServer`. With another strategy: `Server<Tcp, Threading>` (Python's
/// `ThreadingTCPServer`).
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use sockserve_server::socket::create_connection;
/// use std::io::{Read, Write};
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |req| {
///     Ok(req.wfile.write_all(b"hello")?)
/// })?;
/// let mut client = create_connection(server.server_address(), &Default::default())?;
/// server.handle_request()?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type TcpServer<S = ()> = Server<Tcp, Synchronous, S>;
/// Python's `UDPServer`.
///
/// # Examples
///
/// ```
/// use sockserve_server::UdpServer;
/// use sockserve_server::socket::{Family, Socket, Type};
///
/// let mut server = UdpServer::bind("127.0.0.1:0", |req| {
///     req.wfile = req.packet.to_ascii_uppercase();
///     Ok(())
/// })?;
/// let client = Socket::new(Family::Inet, Type::Datagram)?;
/// client.sendto(b"ping", server.server_address())?;
/// server.handle_request()?;
/// let (reply, from) = client.recvfrom(64)?;
/// assert_eq!(reply, b"PING");
/// assert_eq!(&from, server.server_address());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type UdpServer<S = ()> = Server<Udp, Synchronous, S>;
/// Python's `UnixStreamServer`.
///
/// # Examples
///
/// ```
/// use sockserve_server::UnixStreamServer;
/// use sockserve_server::socket::{Family, Socket, Type};
/// use std::io::{Read, Write};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("hello.sock");
/// let mut server = UnixStreamServer::bind(&path, |req| {
///     Ok(req.wfile.write_all(b"hello")?)
/// })?;
/// let mut client = Socket::new(Family::Unix, Type::Stream)?;
/// client.connect(&path)?;
/// server.handle_request()?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "hello");
/// drop(server);
/// assert!(!path.exists()); // the server removes the socket file it made
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type UnixStreamServer<S = ()> = Server<UnixStream, Synchronous, S>;
/// Python's `UnixDatagramServer`.
///
/// # Examples
///
/// ```
/// use sockserve_server::UnixDatagramServer;
/// use sockserve_server::socket::{Family, Socket, Type};
///
/// let dir = tempfile::tempdir()?;
/// let mut server = UnixDatagramServer::bind(dir.path().join("server.sock"), |req| {
///     req.wfile = req.packet.to_ascii_uppercase();
///     Ok(())
/// })?;
/// let client = Socket::new(Family::Unix, Type::Datagram)?;
/// client.bind(dir.path().join("client.sock"))?; // an unbound client gets no reply
/// client.sendto(b"ping", server.server_address())?;
/// server.handle_request()?;
/// assert_eq!(client.recv(64)?, b"PING");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type UnixDatagramServer<S = ()> = Server<UnixDatagram, Synchronous, S>;
