//! Concurrency strategies: Python's `ThreadingMixIn` and `ForkingMixIn`, as the `Strategy`
//! type parameter of a server, and the eight predefined Python combinations.
//!
//! | Python | sockserve |
//! |---|---|
//! | `ThreadingMixIn` (`daemon_threads`, `block_on_close`) | [`Threading`] (reused threads, up to `max_threads` (10,000), then a queue in arrival order; idle ones end after `thread_idle_timeout`) |
//! | `ForkingMixIn` (`max_children`, `block_on_close`, `active_children`) | [`Forking`] (unix) |
//! | `ThreadingTCPServer`, `ThreadingUDPServer` | [`ThreadingTcpServer`], [`ThreadingUdpServer`] |
//! | `ThreadingUnixStreamServer`, `ThreadingUnixDatagramServer` | [`ThreadingUnixStreamServer`], [`ThreadingUnixDatagramServer`] |
//! | `ForkingTCPServer`, `ForkingUDPServer` | [`ForkingTcpServer`], [`ForkingUdpServer`] |
//! | `ForkingUnixStreamServer`, `ForkingUnixDatagramServer` | [`ForkingUnixStreamServer`], [`ForkingUnixDatagramServer`] |
//!
//! # Examples
//!
//! ```
//! use sockserve_mixins::ThreadingTcpServer;
//! use std::io::{BufRead, Write};
//!
//! let server = ThreadingTcpServer::bind("127.0.0.1:0", |req| {
//!     let mut line = String::new();
//!     req.rfile.read_line(&mut line)?;
//!     Ok(req.wfile.write_all(line.as_bytes())?)
//! })?;
//! println!("serving on {}", server.server_address());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]

#[cfg(unix)]
mod forking;
mod threading;

#[cfg(unix)]
pub use forking::{DEFAULT_MAX_CHILDREN, Forking};
pub use threading::{DEFAULT_LINGER, DEFAULT_MAX_THREADS, DEFAULT_THREAD_IDLE_TIMEOUT, Threading};

/// The server layer (the `sockserve-server` crate), which also carries the layers below it
/// (`sockserve_mixins::server::socket`, `sockserve_mixins::server::handler`).
///
/// ```
/// use sockserve_mixins::server::{Server, Tcp};
/// use sockserve_mixins::Threading;
///
/// let server: Server<Tcp, Threading> = Server::bind("127.0.0.1:0", |_req| Ok(()))?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use server;

// What this crate's API takes and gives, so that a program that depends on this crate alone
// can name it without adding the layers below.
#[doc(no_inline)]
pub use server::{
    Address, BoxError, Builder, CloseDeadline, CloseReport, DatagramOptions, DatagramRequest,
    Handler, HandlerError, HandlerExt, Hooks, Job, Next, RequestRef, Running, Server,
    ServerContext, ServerLink, SharedState, ShutdownHandle, Strategy, StreamOptions, StreamRequest,
    Tcp, TcpServer, Udp, UdpServer, UnixDatagram, UnixDatagramServer, UnixStream, UnixStreamServer,
    socket,
};

/// Python's `ThreadingTCPServer`.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::ThreadingTcpServer;
/// use sockserve_mixins::socket::create_connection;
/// use std::io::{Read, Write};
///
/// let mut server = ThreadingTcpServer::bind("127.0.0.1:0", |req| {
///     Ok(req.wfile.write_all(format!("{:?}", std::thread::current().id()).as_bytes())?)
/// })?;
/// let mut client = create_connection(server.server_address(), &Default::default())?;
/// server.handle_request()?; // hands the connection to a pool thread
/// let mut handled_on = String::new();
/// client.read_to_string(&mut handled_on)?;
/// assert_ne!(handled_on, format!("{:?}", std::thread::current().id()));
/// assert_eq!(server.strategy().threads(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ThreadingTcpServer<S = ()> = Server<Tcp, Threading, S>;
/// Python's `ThreadingUDPServer`.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::ThreadingUdpServer;
/// use sockserve_mixins::socket::{Family, Socket, Type};
///
/// let mut server = ThreadingUdpServer::bind("127.0.0.1:0", |req| {
///     req.wfile = req.packet.to_ascii_uppercase();
///     Ok(())
/// })?;
/// let client = Socket::new(Family::Inet, Type::Datagram)?;
/// client.sendto(b"ping", server.server_address())?;
/// server.handle_request()?; // a pool thread handles the datagram and replies
/// assert_eq!(client.recv(64)?, b"PING");
/// assert_eq!(server.strategy().threads(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ThreadingUdpServer<S = ()> = Server<Udp, Threading, S>;
/// Python's `ThreadingUnixStreamServer`.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::ThreadingUnixStreamServer;
/// use sockserve_mixins::socket::{Family, Socket, Type};
/// use std::io::{Read, Write};
///
/// let dir = tempfile::tempdir()?;
/// let mut server = ThreadingUnixStreamServer::bind(dir.path().join("s.sock"), |req| {
///     Ok(req.wfile.write_all(b"hello")?)
/// })?;
/// let mut client = Socket::new(Family::Unix, Type::Stream)?;
/// client.connect(server.server_address())?;
/// server.handle_request()?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ThreadingUnixStreamServer<S = ()> = Server<UnixStream, Threading, S>;
/// Python's `ThreadingUnixDatagramServer`.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::ThreadingUnixDatagramServer;
/// use sockserve_mixins::socket::{Family, Socket, Type};
///
/// let dir = tempfile::tempdir()?;
/// let mut server = ThreadingUnixDatagramServer::bind(dir.path().join("server.sock"), |req| {
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
pub type ThreadingUnixDatagramServer<S = ()> = Server<UnixDatagram, Threading, S>;
/// Python's `ForkingTCPServer`.
///
/// # Examples
///
/// Serving forks a child per request; building and closing forks nothing:
///
/// ```
/// use sockserve_mixins::{Forking, ForkingTcpServer};
///
/// let mut server = ForkingTcpServer::builder(|_req| Ok(()))
///     .strategy(Forking::new().max_children(8))
///     .bind("127.0.0.1:0")?;
/// assert_ne!(server.server_address().as_inet().map(|a| a.port()), Some(0));
/// assert_eq!(server.strategy().active_children(), 0);
/// server.server_close(); // no children to wait for
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(unix)]
pub type ForkingTcpServer<S = ()> = Server<Tcp, Forking, S>;
/// Python's `ForkingUDPServer`.
///
/// # Examples
///
/// Serving forks a child per datagram; building and closing forks nothing:
///
/// ```
/// use sockserve_mixins::ForkingUdpServer;
/// use sockserve_mixins::socket::Type;
///
/// let mut server = ForkingUdpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
/// assert_eq!(server.socket().map(|s| s.socket_type()), Some(Type::Datagram));
/// server.server_close();
/// assert!(server.socket().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(unix)]
pub type ForkingUdpServer<S = ()> = Server<Udp, Forking, S>;
/// Python's `ForkingUnixStreamServer`.
///
/// # Examples
///
/// Serving forks a child per connection; building and closing forks nothing:
///
/// ```
/// use sockserve_mixins::ForkingUnixStreamServer;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("s.sock");
/// let mut server = ForkingUnixStreamServer::bind(&path, |_req| Ok(()))?;
/// assert!(path.exists());
/// server.server_close(); // closes the socket and removes its file
/// assert!(!path.exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(unix)]
pub type ForkingUnixStreamServer<S = ()> = Server<UnixStream, Forking, S>;
/// Python's `ForkingUnixDatagramServer`.
///
/// # Examples
///
/// Serving forks a child per datagram; building and closing forks nothing:
///
/// ```
/// use sockserve_mixins::ForkingUnixDatagramServer;
/// use sockserve_mixins::Address;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("d.sock");
/// let mut server = ForkingUnixDatagramServer::bind(&path, |_req| Ok(()))?;
/// assert_eq!(server.server_address(), &Address::Unix(path));
/// server.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(unix)]
pub type ForkingUnixDatagramServer<S = ()> = Server<UnixDatagram, Forking, S>;
