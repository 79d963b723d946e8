//! sockserve: Python's `import socket` and `import socketserver`, in Rust. This is the facade:
//! the paved-path types at the root, and each layer as a module.
//!
//! The socket layer is [`socket`] (Python's `socket` module); its main types are also at the
//! root. The server layers will join it here.
//!
//! ```
//! use sockserve::{Family, Socket, Type};
//!
//! let server = Socket::new(Family::Inet, Type::Stream)?;
//! server.bind("127.0.0.1:0")?;
//! server.listen(sockserve::socket::SOMAXCONN)?;
//! let client = sockserve::socket::create_connection(
//!     server.getsockname()?,
//!     &sockserve::socket::ConnectOptions::default(),
//! )?;
//! let (conn, _peer) = server.accept()?;
//! client.sendall(b"ping")?;
//! assert_eq!(conn.recv(16)?, b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```

#![doc(test(attr(deny(warnings))))]

/// The socket layer: Python's `socket` module (the `sockserve-socket` crate).
///
/// ```
/// let addr: sockserve::socket::Address = "127.0.0.1:9999".parse()?;
/// assert_eq!(addr.family(), sockserve::socket::Family::Inet);
/// # Ok::<(), std::io::Error>(())
/// ```
pub use socket;

#[doc(inline)]
pub use socket::{Address, Family, Socket, SocketReader, SocketWriter, ToAddrs, Type};
