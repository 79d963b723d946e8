//! Concurrency strategies: Python's `ThreadingMixIn` and `ForkingMixIn`, as the `Strategy`
//! type parameter of a server, and the eight predefined Python combinations.
//!
//! | Python | sockserve |
//! |---|---|
//! | `ThreadingMixIn` (`daemon_threads`, `block_on_close`) | [`Threading`] (bounded, reused threads: `max_threads`) |
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
//! use handler::StreamRequest;
//! use std::io::{BufRead, Write};
//!
//! let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
//!     let mut line = String::new();
//!     req.rfile.read_line(&mut line)?;
//!     req.wfile.write_all(line.as_bytes())
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
pub use threading::{DEFAULT_MAX_THREADS, Threading};

use server::{Server, Tcp, Udp, UnixDatagram, UnixStream};

/// Python's `ThreadingTCPServer`.
pub type ThreadingTcpServer = Server<Tcp, Threading>;
/// Python's `ThreadingUDPServer`.
pub type ThreadingUdpServer = Server<Udp, Threading>;
/// Python's `ThreadingUnixStreamServer`.
pub type ThreadingUnixStreamServer = Server<UnixStream, Threading>;
/// Python's `ThreadingUnixDatagramServer`.
pub type ThreadingUnixDatagramServer = Server<UnixDatagram, Threading>;
/// Python's `ForkingTCPServer`.
#[cfg(unix)]
pub type ForkingTcpServer = Server<Tcp, Forking>;
/// Python's `ForkingUDPServer`.
#[cfg(unix)]
pub type ForkingUdpServer = Server<Udp, Forking>;
/// Python's `ForkingUnixStreamServer`.
#[cfg(unix)]
pub type ForkingUnixStreamServer = Server<UnixStream, Forking>;
/// Python's `ForkingUnixDatagramServer`.
#[cfg(unix)]
pub type ForkingUnixDatagramServer = Server<UnixDatagram, Forking>;
