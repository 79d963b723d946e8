//! Python's `socket` module in Rust: [`Socket`], [`Address`], and the module functions, over
//! `socket2` and `libc`.
//!
//! The semantics are CPython's (3.11, Linux) wherever they are sound: timeouts mean what
//! `settimeout` means, `close` is idempotent and later calls fail with `EBADF`, `sendall`'s
//! timeout bounds the whole call, `connect_ex` returns an errno. Where CPython relies on
//! process-wide state this crate does not: every socket is close-on-exec, sends pass
//! `MSG_NOSIGNAL` (a closed peer is `BrokenPipe`, never a `SIGPIPE` that kills the process),
//! and an accepted socket's mode is set explicitly. Errors are [`std::io::Error`], as Python's
//! are `OSError`; a timeout is `ErrorKind::TimedOut` with the message "timed out".
//!
//! ```
//! use std::io::{BufRead, Write};
//! use sockserve_socket::{create_connection, create_server, ConnectOptions, ServerOptions};
//!
//! let server = create_server("127.0.0.1:0", &ServerOptions::default())?;
//! let client = create_connection(server.getsockname()?, &ConnectOptions::default())?;
//! let (conn, _addr) = server.accept()?;
//! client.makefile_writer().write_all(b"hello\n")?;
//! let mut line = String::new();
//! conn.makefile_reader(None).read_line(&mut line)?;
//! assert_eq!(line, "hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # From Python's names to ours
//!
//! | Python (`import socket`) | here |
//! |---|---|
//! | `socket.socket(family, type, proto)` | [`Socket::new`], [`Socket::with_protocol`] |
//! | `socket.socket(fileno=fd)` / `socket.fromfd(fd, ...)` | [`Socket::from_fd`] / [`Socket::fromfd`] |
//! | `AF_INET`, `AF_INET6`, `AF_UNIX` | [`Family`] |
//! | `SOCK_STREAM`, `SOCK_DGRAM` | [`Type`] |
//! | `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR` | [`Shutdown`] |
//! | `SOMAXCONN` | [`SOMAXCONN`] |
//! | `(host, port)`, `'/path'`, `'\0name'` | [`Address`], [`ToAddrs`] |
//! | `bind`, `listen`, `accept`, `connect`, `connect_ex` | [`Socket::bind`], [`Socket::listen`], [`Socket::accept`], [`Socket::connect`], [`Socket::connect_ex`] |
//! | `recv`, `recv_into`, `recvfrom`, `recvfrom_into` | [`Socket::recv`], [`Socket::recv_into`], [`Socket::recvfrom`], [`Socket::recvfrom_into`] |
//! | `send`, `sendall`, `sendto` | [`Socket::send`], [`Socket::sendall`], [`Socket::sendto`] |
//! | `shutdown`, `close`, `detach`, `dup`, `fileno` | [`Socket::shutdown`], [`Socket::close`], [`Socket::detach`], [`Socket::dup`], [`Socket::fileno`] |
//! | `getsockname`, `getpeername` | [`Socket::getsockname`], [`Socket::getpeername`] |
//! | `settimeout`, `gettimeout`, `setblocking`, `getblocking` | [`Socket::settimeout`], [`Socket::gettimeout`], [`Socket::setblocking`], [`Socket::getblocking`] |
//! | (none: Go's `SetReadDeadline`, `SetWriteDeadline`) | [`Socket::recv_into_by`], [`Socket::send_by`], [`Socket::sendall_by`]: an absolute deadline per call, the earlier of it and the timeout winning |
//! | `setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)` | [`Socket::setsockopt`]`(`[`opt::ReuseAddress`]`, true)` |
//! | `getsockopt(...)` | [`Socket::getsockopt`] |
//! | `makefile('rb')`, `makefile('wb')` | [`Socket::makefile_reader`] ([`SocketReader`]), [`Socket::makefile_writer`] ([`SocketWriter`]) |
//! | `setdefaulttimeout`, `getdefaulttimeout` | [`setdefaulttimeout`], [`getdefaulttimeout`] (process-wide) |
//! | `getaddrinfo(host, port, family, type, proto, flags)` | [`getaddrinfo`] with [`AddrInfoHints`], giving [`AddrInfo`] |
//! | `AI_PASSIVE`, `AI_CANONNAME`, ... | [`AI_PASSIVE`], [`AI_CANONNAME`], ... |
//! | `gethostname` | [`gethostname`] |
//! | `create_connection(address, timeout, source_address)` | [`create_connection`] with [`ConnectOptions`] |
//! | `create_server(address, family, backlog, reuse_port, dualstack_ipv6)` | [`create_server`] with [`ServerOptions`] |
//! | `socketpair` | [`socketpair`] |
//! | `OSError`, `TimeoutError`, `BlockingIOError`, ... | [`std::io::Error`] with `ErrorKind::TimedOut`, `WouldBlock`, ... |
//! | `gaierror` | [`ResolveError`] inside an `io::Error` |
//! | `ExceptionGroup` of `create_connection(all_errors=True)` | [`ConnectError`] inside an `io::Error` |
//!
//! Sockets also convert to and from `OwnedFd`, `std::net::{TcpStream, TcpListener, UdpSocket}`
//! and `std::os::unix::net::{UnixStream, UnixListener, UnixDatagram}`:
//!
//! ```
//! use sockserve_socket::{Family, Socket};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let sock = Socket::from(listener);
//! assert_eq!(sock.family(), Family::Inet);
//! let back = std::net::TcpListener::try_from(sock)?;
//! assert!(back.local_addr()?.port() != 0);
//! # Ok::<(), std::io::Error>(())
//! ```

#![doc(test(attr(deny(warnings))))]

pub mod activation;
mod address;
mod convert;
mod error;
mod family;
mod file;
mod functions;
mod limits;
pub mod opt;
mod readiness;
mod resolve;
mod socket;
mod sys;
mod timeout;
mod to_addrs;
mod transfer;

pub use crate::address::{Address, UNIX_PATH_MAX};
pub use crate::error::{
    BindError, ConnectError, ResolveError, is_resource_exhausted, is_transient_accept_error,
};
pub use crate::family::{Family, Type};
pub use crate::file::{DEFAULT_BUFFER_SIZE, SocketReader, SocketWriter};
pub use crate::functions::{
    ConnectOptions, ServerOptions, create_connection, create_server, socketpair,
};
pub use crate::limits::{FdLimit, fd_limit, raise_fd_limit};
pub use crate::opt::SockOpt;
pub use crate::readiness::Readable;
pub use crate::resolve::{
    AI_ADDRCONFIG, AI_CANONNAME, AI_NUMERICHOST, AI_NUMERICSERV, AI_PASSIVE, AI_V4MAPPED, AddrInfo,
    AddrInfoHints, getaddrinfo, gethostname,
};
pub use crate::socket::Socket;
pub use crate::sys::exit_now;
pub use crate::timeout::{getdefaulttimeout, setdefaulttimeout};
pub use crate::to_addrs::ToAddrs;

/// Which half of a connection [`Socket::shutdown`] closes: Python's `SHUT_RD`, `SHUT_WR`,
/// `SHUT_RDWR` are `Read`, `Write`, `Both`.
///
/// ```
/// use sockserve_socket::{socketpair, Family, Shutdown, Type};
/// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
/// a.shutdown(Shutdown::Both)?;
/// assert!(b.recv(1)?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub use std::net::Shutdown;

/// The system's largest `listen` backlog constant (Python's `socket.SOMAXCONN`); the kernel
/// caps any backlog at `net.core.somaxconn`.
///
/// ```
/// assert!(sockserve_socket::SOMAXCONN >= 128);
/// ```
pub const SOMAXCONN: i32 = libc::SOMAXCONN;
