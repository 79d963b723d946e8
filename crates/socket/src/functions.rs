//! Module-level helpers: [`create_connection`], [`create_server`] (with [`ConnectOptions`] and
//! [`ServerOptions`]) and [`socketpair`].

use std::io;
use std::time::Duration;

use crate::error::{BindError, ConnectError};
use crate::{Address, Family, SOMAXCONN, Socket, ToAddrs, Type, getdefaulttimeout, opt};

/// Options of [`create_connection`]: Python's `timeout` and `source_address` arguments.
///
/// The default uses the [default timeout](crate::getdefaulttimeout) and no source address.
///
/// ```
/// use std::time::Duration;
/// use sockserve_socket::ConnectOptions;
///
/// let opts = ConnectOptions::new().timeout(Some(Duration::from_secs(5)));
/// assert_eq!(opts.get_timeout(), Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `None`: not given, so the default timeout; `Some(t)`: this timeout.
    timeout: Option<Option<Duration>>,
    source_address: Option<Address>,
}

impl ConnectOptions {
    /// The defaults (same as `ConnectOptions::default()`).
    ///
    /// ```
    /// assert_eq!(sockserve_socket::ConnectOptions::new().get_source_address(), None);
    /// ```
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// The timeout of the connect and of the connected socket (`None`: blocking).
    ///
    /// ```
    /// let opts = sockserve_socket::ConnectOptions::new().timeout(None);
    /// assert_eq!(opts.get_timeout(), None);
    /// ```
    pub fn timeout(mut self, timeout: Option<Duration>) -> ConnectOptions {
        self.timeout = Some(timeout);
        self
    }

    /// The address to bind before connecting (port 0: any port).
    ///
    /// ```
    /// use sockserve_socket::{Address, ConnectOptions};
    /// let src: Address = "127.0.0.1:0".parse()?;
    /// let opts = ConnectOptions::new().source_address(src.clone());
    /// assert_eq!(opts.get_source_address(), Some(&src));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn source_address(mut self, addr: impl Into<Address>) -> ConnectOptions {
        self.source_address = Some(addr.into());
        self
    }

    /// The timeout that will be used: the one given, else the current default timeout.
    ///
    /// ```
    /// // No default timeout is set in this program.
    /// assert_eq!(sockserve_socket::ConnectOptions::default().get_timeout(), None);
    /// ```
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout.unwrap_or_else(getdefaulttimeout)
    }

    /// The source address, if one was given.
    ///
    /// ```
    /// assert!(sockserve_socket::ConnectOptions::default().get_source_address().is_none());
    /// ```
    pub fn get_source_address(&self) -> Option<&Address> {
        self.source_address.as_ref()
    }
}

/// Connects a stream socket to `addr`, trying every resolved address in order (Python's
/// `socket.create_connection`).
///
/// The socket keeps the timeout of `opts`. When every address fails, the error lists each
/// failure (a [`ConnectError`] inside the `io::Error`) and has the kind of the last one, for
/// example `ConnectionRefused`. Resolution errors are returned as they are.
///
/// ```
/// use sockserve_socket::{create_connection, create_server, ConnectOptions, ServerOptions};
///
/// let server = create_server("127.0.0.1:0", &ServerOptions::default())?;
/// let client = create_connection(server.getsockname()?, &ConnectOptions::default())?;
/// assert_eq!(client.getpeername()?, server.getsockname()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_connection(addr: impl ToAddrs, opts: &ConnectOptions) -> io::Result<Socket> {
    let addrs = addr.to_addrs()?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to connect to",
        ));
    }
    let timeout = opts.get_timeout();
    let mut attempts = Vec::new();
    for target in addrs {
        match connect_one(&target, timeout, opts.get_source_address()) {
            Ok(sock) => return Ok(sock),
            Err(e) => attempts.push((target, e)),
        }
    }
    let kind = attempts
        .last()
        .map_or(io::ErrorKind::Other, |(_, e)| e.kind());
    Err(io::Error::new(kind, ConnectError::new(attempts)))
}

/// One attempt of `create_connection`; the socket is closed (dropped) on failure.
fn connect_one(
    target: &Address,
    timeout: Option<Duration>,
    source: Option<&Address>,
) -> io::Result<Socket> {
    let sock = Socket::new(target.family(), Type::Stream)?;
    sock.settimeout(timeout);
    if let Some(source) = source {
        sock.bind(source)?;
    }
    sock.connect(target)?;
    Ok(sock)
}

/// Options of [`create_server`]: Python's `family`, `backlog`, `reuse_port` and
/// `dualstack_ipv6` arguments.
///
/// ```
/// use sockserve_socket::ServerOptions;
/// let opts = ServerOptions::new().backlog(16).reuse_port(true);
/// assert_eq!(opts.get_backlog(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    family: Option<Family>,
    backlog: i32,
    reuse_port: bool,
    dualstack_ipv6: bool,
}

impl Default for ServerOptions {
    /// Family from the address, backlog [`SOMAXCONN`], no `SO_REUSEPORT`, IPv6 only.
    fn default() -> ServerOptions {
        ServerOptions {
            family: None,
            backlog: SOMAXCONN,
            reuse_port: false,
            dualstack_ipv6: false,
        }
    }
}

impl ServerOptions {
    /// The defaults (same as `ServerOptions::default()`).
    ///
    /// ```
    /// use sockserve_socket::{ServerOptions, SOMAXCONN};
    /// assert_eq!(ServerOptions::new().get_backlog(), SOMAXCONN);
    /// ```
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Only addresses of this family are used (default: the first address's family).
    ///
    /// ```
    /// use sockserve_socket::{create_server, Family, ServerOptions};
    /// let server = create_server(("localhost", 0), &ServerOptions::new().family(Family::Inet))?;
    /// assert_eq!(server.family(), Family::Inet);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn family(mut self, family: Family) -> ServerOptions {
        self.family = Some(family);
        self
    }

    /// The `listen` backlog (default [`SOMAXCONN`]; the kernel caps it).
    ///
    /// ```
    /// assert_eq!(sockserve_socket::ServerOptions::new().backlog(5).get_backlog(), 5);
    /// ```
    pub fn backlog(mut self, backlog: i32) -> ServerOptions {
        self.backlog = backlog;
        self
    }

    /// Set `SO_REUSEPORT`, so that several sockets can serve one port.
    ///
    /// ```
    /// use sockserve_socket::{create_server, ServerOptions};
    /// let opts = ServerOptions::new().reuse_port(true);
    /// let a = create_server("127.0.0.1:0", &opts)?;
    /// let b = create_server(a.getsockname()?, &opts)?;
    /// assert_eq!(a.getsockname()?, b.getsockname()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reuse_port(mut self, on: bool) -> ServerOptions {
        self.reuse_port = on;
        self
    }

    /// Accept IPv4 too on an IPv6 socket (`IPV6_V6ONLY` = 0); needs an IPv6 address.
    ///
    /// ```
    /// use sockserve_socket::{create_server, ServerOptions};
    /// let server = create_server("[::]:0", &ServerOptions::new().dualstack_ipv6(true))?;
    /// let port = server.getsockname()?.as_inet().map_or(0, |a| a.port());
    /// let v4 = std::net::TcpStream::connect(("127.0.0.1", port))?;
    /// # drop(v4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dualstack_ipv6(mut self, on: bool) -> ServerOptions {
        self.dualstack_ipv6 = on;
        self
    }

    /// The backlog that will be passed to `listen`.
    ///
    /// ```
    /// assert!(sockserve_socket::ServerOptions::default().get_backlog() > 0);
    /// ```
    pub fn get_backlog(&self) -> i32 {
        self.backlog
    }
}

/// A listening stream socket bound to `addr` (Python's `socket.create_server`).
///
/// `SO_REUSEADDR` is set; `SO_REUSEPORT` if asked; an IPv6 socket is IPv6-only unless
/// dual-stack is asked. The socket is closed on any failure. A bind failure names the address:
/// `"Address already in use (os error 98) (while attempting to bind on address
/// 127.0.0.1:8080)"`, with the kind of the OS error (a [`BindError`] inside the `io::Error`).
///
/// ```
/// use sockserve_socket::{create_server, ServerOptions};
/// let server = create_server("127.0.0.1:0", &ServerOptions::default())?;
/// assert!(server.getsockname()?.as_inet().is_some_and(|a| a.port() != 0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_server(addr: impl ToAddrs, opts: &ServerOptions) -> io::Result<Socket> {
    let addrs = addr.to_addrs()?;
    let target = match opts.family {
        Some(f) => addrs.iter().find(|a| a.family() == f),
        None => addrs.first(),
    };
    let Some(target) = target else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "create_server: no address of family {:?} to bind",
                opts.family
            ),
        ));
    };
    if opts.dualstack_ipv6 && target.family() != Family::Inet6 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("dualstack_ipv6 needs an IPv6 address, got {target}"),
        ));
    }
    // On any error below, `sock` is dropped, which closes it.
    let sock = Socket::new(target.family(), Type::Stream)?;
    sock.setsockopt(opt::ReuseAddress, true)?;
    if opts.reuse_port {
        sock.setsockopt(opt::ReusePort, true)?;
    }
    if target.family() == Family::Inet6 {
        sock.setsockopt(opt::Ipv6Only, !opts.dualstack_ipv6)?;
    }
    sock.bind(target)
        .map_err(|e| BindError::wrap(target.clone(), e))?;
    sock.listen(opts.backlog)?;
    Ok(sock)
}

/// A pair of connected sockets (Python's `socket.socketpair`), both close-on-exec and with the
/// default timeout. Only `Family::Unix` is supported by Linux.
///
/// ```
/// use sockserve_socket::{socketpair, Family, Type};
/// let (a, b) = socketpair(Family::Unix, Type::Datagram)?;
/// a.send(b"one datagram")?;
/// assert_eq!(b.recv(64)?, b"one datagram");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn socketpair(family: Family, ty: Type) -> io::Result<(Socket, Socket)> {
    // socket2 passes SOCK_CLOEXEC on Linux.
    let (a, b) = socket2::Socket::pair(family.into(), ty.into(), None)?;
    let t = getdefaulttimeout();
    Ok((
        Socket::with_timeout(a, family, ty, t)?,
        Socket::with_timeout(b, family, ty, t)?,
    ))
}
