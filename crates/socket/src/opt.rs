//! Typed socket options for [`Socket::setsockopt`] and [`Socket::getsockopt`].
//!
//! Each option is a unit struct implementing [`SockOpt`], whose `Value` is the Rust type of the
//! option: `sock.setsockopt(opt::NoDelay, true)` is Python's
//! `sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)`.
//!
//! ```
//! use sockserve_socket::{opt, Family, Socket, Type};
//!
//! let sock = Socket::new(Family::Inet, Type::Stream)?;
//! sock.setsockopt(opt::NoDelay, true)?;
//! sock.setsockopt(opt::KeepAlive, true)?;
//! assert!(sock.getsockopt(opt::NoDelay)? && sock.getsockopt(opt::KeepAlive)?);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::time::Duration;

use crate::Socket;

impl Socket {
    /// Sets a typed socket option (Python's `setsockopt`); see [`opt`](crate::opt).
    ///
    /// ```
    /// use sockserve_socket::{opt, Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.setsockopt(opt::ReuseAddress, true)?;
    /// assert!(sock.getsockopt(opt::ReuseAddress)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn setsockopt<O: SockOpt>(&self, opt: O, value: O::Value) -> io::Result<()> {
        opt.set(self, value)
    }

    /// Reads a typed socket option (Python's `getsockopt`); see [`opt`](crate::opt).
    ///
    /// ```
    /// use sockserve_socket::{opt, Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert!(!sock.getsockopt(opt::NoDelay)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn getsockopt<O: SockOpt>(&self, opt: O) -> io::Result<O::Value> {
        opt.get(self)
    }
}

/// A socket option with a typed value.
///
/// The options of this module implement it over `socket2`; other options can be added outside
/// the crate with `libc::setsockopt` on [`Socket::fileno`].
///
/// ```
/// use std::io;
/// use sockserve_socket::{opt::SockOpt, Family, Socket, Type};
///
/// /// SO_RCVLOWAT, written outside the crate.
/// #[derive(Clone, Copy, Debug)]
/// struct RecvLowat;
///
/// impl SockOpt for RecvLowat {
///     type Value = i32;
///     fn set(self, socket: &Socket, value: i32) -> io::Result<()> {
///         let len = std::mem::size_of::<i32>() as libc::socklen_t;
///         // SAFETY: `value` lives across the call and `len` is its size.
///         let rc = unsafe {
///             libc::setsockopt(socket.fileno(), libc::SOL_SOCKET, libc::SO_RCVLOWAT,
///                              (&raw const value).cast(), len)
///         };
///         if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
///     }
///     fn get(self, socket: &Socket) -> io::Result<i32> {
///         let (mut value, mut len) = (0i32, std::mem::size_of::<i32>() as libc::socklen_t);
///         // SAFETY: `value` and `len` live across the call; `len` is the size of `value`.
///         let rc = unsafe {
///             libc::getsockopt(socket.fileno(), libc::SOL_SOCKET, libc::SO_RCVLOWAT,
///                              (&raw mut value).cast(), &mut len)
///         };
///         if rc == 0 { Ok(value) } else { Err(io::Error::last_os_error()) }
///     }
/// }
///
/// let sock = Socket::new(Family::Inet, Type::Stream)?;
/// sock.setsockopt(RecvLowat, 16)?;
/// assert_eq!(sock.getsockopt(RecvLowat)?, 16);
/// # Ok::<(), io::Error>(())
/// ```
pub trait SockOpt: Copy {
    /// The Rust type of the option's value: `bool` for flags, `usize` for buffer sizes,
    /// `Option<Duration>` for [`Linger`].
    ///
    /// ```
    /// use sockserve_socket::{opt::{self, SockOpt}, Family, Socket, Type};
    ///
    /// /// Flips any on/off option, returning its new value.
    /// fn toggle<O: SockOpt<Value = bool>>(sock: &Socket, option: O) -> std::io::Result<bool> {
    ///     let on = !sock.getsockopt(option)?;
    ///     sock.setsockopt(option, on)?;
    ///     sock.getsockopt(option)
    /// }
    ///
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert!(toggle(&sock, opt::NoDelay)?);
    /// assert!(!toggle(&sock, opt::NoDelay)?);
    /// let linger: <opt::Linger as SockOpt>::Value = Some(std::time::Duration::from_secs(1));
    /// sock.setsockopt(opt::Linger, linger)?;
    /// assert_eq!(sock.getsockopt(opt::Linger)?, linger);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    type Value;

    /// Sets the option on `socket`.
    ///
    /// ```
    /// use sockserve_socket::{opt::{self, SockOpt}, Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Datagram)?;
    /// opt::Broadcast.set(&sock, true)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn set(self, socket: &Socket, value: Self::Value) -> io::Result<()>;

    /// Reads the option from `socket`.
    ///
    /// ```
    /// use sockserve_socket::{opt::{self, SockOpt}, Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Datagram)?;
    /// assert!(!opt::Broadcast.get(&sock)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn get(self, socket: &Socket) -> io::Result<Self::Value>;
}

macro_rules! sockopt {
    ($(#[$doc:meta])* $name:ident: $value:ty, $getter:ident, $setter:ident, $example:literal) => {
        $(#[$doc])*
        ///
        /// ```
        /// use sockserve_socket::{opt, Family, Socket, Type};
        #[doc = $example]
        /// # Ok::<(), std::io::Error>(())
        /// ```
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl SockOpt for $name {
            type Value = $value;

            fn set(self, socket: &Socket, value: $value) -> io::Result<()> {
                socket.sock()?.$setter(value)
            }

            fn get(self, socket: &Socket) -> io::Result<$value> {
                socket.sock()?.$getter()
            }
        }
    };
}

sockopt!(
    /// `SO_REUSEADDR`: bind a port that still has connections in `TIME_WAIT`.
    ReuseAddress: bool, reuse_address, set_reuse_address,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::ReuseAddress, true)?;\nassert!(s.getsockopt(opt::ReuseAddress)?);"
);
sockopt!(
    /// `SO_REUSEPORT`: several sockets (or processes) bind the same port; the kernel spreads
    /// connections between them.
    ReusePort: bool, reuse_port, set_reuse_port,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::ReusePort, true)?;\nassert!(s.getsockopt(opt::ReusePort)?);"
);
sockopt!(
    /// `TCP_NODELAY`: disable Nagle's algorithm (TCP only; `EOPNOTSUPP` on Unix sockets).
    NoDelay: bool, tcp_nodelay, set_tcp_nodelay,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::NoDelay, true)?;\nassert!(s.getsockopt(opt::NoDelay)?);"
);
sockopt!(
    /// `SO_KEEPALIVE`: probe idle connections.
    KeepAlive: bool, keepalive, set_keepalive,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::KeepAlive, true)?;\nassert!(s.getsockopt(opt::KeepAlive)?);"
);
sockopt!(
    /// `SO_RCVBUF`: the receive buffer size. Linux doubles the value set and reports the
    /// doubled size.
    RecvBufferSize: usize, recv_buffer_size, set_recv_buffer_size,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::RecvBufferSize, 65536)?;\nassert!(s.getsockopt(opt::RecvBufferSize)? >= 65536);"
);
sockopt!(
    /// `SO_SNDBUF`: the send buffer size. Linux doubles the value set and reports the doubled
    /// size.
    SendBufferSize: usize, send_buffer_size, set_send_buffer_size,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\ns.setsockopt(opt::SendBufferSize, 65536)?;\nassert!(s.getsockopt(opt::SendBufferSize)? >= 65536);"
);
sockopt!(
    /// `SO_LINGER`: `Some(d)` makes `close` wait up to `d` (whole seconds) for unsent data;
    /// `Some(ZERO)` resets the connection on close; `None` is the default.
    Linger: Option<Duration>, linger, set_linger,
    "let s = Socket::new(Family::Inet, Type::Stream)?;\nlet t = Some(std::time::Duration::from_secs(2));\ns.setsockopt(opt::Linger, t)?;\nassert_eq!(s.getsockopt(opt::Linger)?, t);"
);
sockopt!(
    /// `IPV6_V6ONLY`: an IPv6 socket refuses IPv4 (false: dual-stack, IPv4 as mapped
    /// addresses). IPv6 sockets only; set it before `bind`.
    Ipv6Only: bool, only_v6, set_only_v6,
    "let s = Socket::new(Family::Inet6, Type::Stream)?;\ns.setsockopt(opt::Ipv6Only, false)?;\nassert!(!s.getsockopt(opt::Ipv6Only)?);"
);
sockopt!(
    /// `SO_BROADCAST`: allow datagrams to broadcast addresses.
    Broadcast: bool, broadcast, set_broadcast,
    "let s = Socket::new(Family::Inet, Type::Datagram)?;\ns.setsockopt(opt::Broadcast, true)?;\nassert!(s.getsockopt(opt::Broadcast)?);"
);
