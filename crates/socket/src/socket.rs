//! [`Socket`]: Python's `socket.socket`, over `socket2`. The type and its life live here:
//! creation, `bind` / `listen` / `accept`, `connect` / `connect_ex`, `shutdown` / `close`, the
//! fd (`fileno`, `dup`, `detach`), `family` and `socket_type`. The rest of its methods live with
//! what they serve: names (`getsockname`, `getpeername`) in `address.rs`, timeouts and blocking
//! mode in `timeout.rs`, options in `opt.rs`, data transfer in `transfer.rs`, conversions in
//! `convert.rs`.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys::{self, Wait};
use crate::timeout::{Mode, TimeoutCell};
use crate::{Address, Family, ToAddrs, Type, getdefaulttimeout};

/// A socket with the behaviour of Python's `socket.socket`.
///
/// Every method takes `&self` except [`close`](Socket::close) and [`detach`](Socket::detach),
/// so one socket can be shared between threads (`Socket` is `Send + Sync`; share it with `&` or
/// `Arc`). Every socket is close-on-exec, sends never raise `SIGPIPE` (a closed peer gives
/// `BrokenPipe`), and `EINTR` is retried everywhere. Timeouts follow Python: see
/// [`settimeout`](Socket::settimeout).
///
/// ```
/// use sockserve_socket::{Family, Socket, Type};
///
/// let server = Socket::new(Family::Inet, Type::Stream)?;
/// server.bind("127.0.0.1:0")?;
/// server.listen(8)?;
/// let client = Socket::new(Family::Inet, Type::Stream)?;
/// client.connect(server.getsockname()?)?;
/// let (conn, _peer) = server.accept()?;
/// client.sendall(b"hello")?;
/// assert_eq!(conn.recv(1024)?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Socket {
    /// `None` once closed or detached: every later call fails with `EBADF`, as in Python.
    inner: Option<socket2::Socket>,
    family: Family,
    ty: Type,
    pub(crate) timeout: TimeoutCell,
}

impl Socket {
    /// A new socket of this family and type (Python's `socket.socket(family, type)`), with the
    /// [default timeout](crate::getdefaulttimeout) applied.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet6, Type::Stream)?;
    /// assert_eq!(sock.family(), Family::Inet6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(family: Family, ty: Type) -> io::Result<Socket> {
        Socket::with_protocol(family, ty, 0)
    }

    /// A new socket with an explicit protocol number (`0` picks the default, as in Python).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let tcp = Socket::with_protocol(Family::Inet, Type::Stream, 6)?; // IPPROTO_TCP
    /// assert_eq!(tcp.socket_type(), Type::Stream);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_protocol(family: Family, ty: Type, protocol: i32) -> io::Result<Socket> {
        let protocol = (protocol != 0).then(|| socket2::Protocol::from(protocol));
        // socket2 passes SOCK_CLOEXEC on Linux, so the fd is never inherited by a child.
        let inner = socket2::Socket::new(family.into(), ty.into(), protocol)?;
        Socket::with_timeout(inner, family, ty, getdefaulttimeout())
    }

    /// Wraps an `socket2` socket and puts its fd explicitly in the mode of `timeout`.
    pub(crate) fn with_timeout(
        inner: socket2::Socket,
        family: Family,
        ty: Type,
        timeout: Option<Duration>,
    ) -> io::Result<Socket> {
        inner.set_nonblocking(timeout.is_some())?;
        Ok(Socket {
            inner: Some(inner),
            family,
            ty,
            timeout: TimeoutCell::new(timeout),
        })
    }

    /// Wraps a socket whose fd mode is already right: `timeout` must match its `O_NONBLOCK`.
    pub(crate) fn from_parts(
        inner: socket2::Socket,
        family: Family,
        ty: Type,
        timeout: Option<Duration>,
    ) -> Socket {
        Socket {
            inner: Some(inner),
            family,
            ty,
            timeout: TimeoutCell::new(timeout),
        }
    }

    /// The `socket2` socket, or `EBADF` once closed.
    pub(crate) fn sock(&self) -> io::Result<&socket2::Socket> {
        self.inner
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }

    /// [`pick`](Self::pick)'s kernel form alone; an [`Address`] of the socket's family goes
    /// straight to the kernel's form, with no resolution and no copy.
    pub(crate) fn pick_sockaddr(&self, addr: impl ToAddrs) -> io::Result<socket2::SockAddr> {
        match addr.as_address() {
            Some(one) if one.family() == self.family => one.to_sockaddr(),
            _ => Ok(self.pick(addr)?.1),
        }
    }

    /// The first address of `addr` of this socket's family, ready for the kernel.
    pub(crate) fn pick(&self, addr: impl ToAddrs) -> io::Result<(Address, socket2::SockAddr)> {
        let addrs = addr.to_addrs()?;
        let Some(found) = addrs.iter().find(|a| a.family() == self.family) else {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no {} address among [{}] for this socket",
                    self.family,
                    list.join(", ")
                ),
            ));
        };
        let sa = found.to_sockaddr()?;
        Ok((found.clone(), sa))
    }

    /// Binds the socket to an address (Python's `bind`); port 0 picks a free port.
    ///
    /// Strings and `(host, port)` are resolved; the first address of the socket's family is
    /// used. Errors: `AddrInUse`, `PermissionDenied`, `InvalidInput` for a port above 65535, a
    /// malformed address or a Unix path over [`UNIX_PATH_MAX`](crate::UNIX_PATH_MAX) bytes.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Datagram)?;
    /// sock.bind("127.0.0.1:0")?;
    /// assert_ne!(sock.getsockname()?.as_inet().map(|a| a.port()), Some(0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(&self, addr: impl ToAddrs) -> io::Result<()> {
        let (_, sa) = self.pick(addr)?;
        self.sock()?.bind(&sa)
    }

    /// Starts listening (Python's `listen`); a negative backlog counts as 0, and the kernel
    /// caps it at `net.core.somaxconn`. [`SOMAXCONN`](crate::SOMAXCONN) is a good default.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type, SOMAXCONN};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.bind("127.0.0.1:0")?;
    /// sock.listen(SOMAXCONN)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        self.sock()?.listen(backlog.max(0))
    }

    /// Accepts a connection (Python's `accept`): the new socket and the peer's address.
    ///
    /// The new socket is close-on-exec and put explicitly in the mode Python gives it: the
    /// [default timeout](crate::getdefaulttimeout) if one is set, otherwise blocking, whatever
    /// the listener's mode. On a listener with a timeout this waits at most that long
    /// (`TimedOut`); on a non-blocking listener with nothing pending it fails with `WouldBlock`.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let listener = Socket::new(Family::Inet, Type::Stream)?;
    /// listener.bind("127.0.0.1:0")?;
    /// listener.listen(1)?;
    /// listener.setblocking(false)?;
    /// let client = Socket::new(Family::Inet, Type::Stream)?;
    /// client.connect(listener.getsockname()?)?;
    /// listener.settimeout(Some(std::time::Duration::from_secs(10)));
    /// let (conn, peer) = listener.accept()?;
    /// assert_eq!(peer, client.getsockname()?);
    /// assert!(conn.getblocking() && conn.gettimeout().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn accept(&self) -> io::Result<(Socket, Address)> {
        // accept4(SOCK_CLOEXEC) on Linux.
        let (inner, sa) = self.call(Wait::Readable, |s, _| s.accept())?;
        let conn = Socket::with_timeout(inner, self.family, self.ty, getdefaulttimeout())?;
        Ok((conn, Address::from_sockaddr(&sa)))
    }

    /// Connects to an address (Python's `connect`).
    ///
    /// With a timeout, it bounds the whole connect (`TimedOut`); a non-blocking socket fails
    /// with `EINPROGRESS` (see [`Socket::connect_ex`]). Interrupted by a signal, it waits for the
    /// connect to complete (PEP 475).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let listener = Socket::new(Family::Inet, Type::Stream)?;
    /// listener.bind("127.0.0.1:0")?;
    /// listener.listen(1)?;
    /// let client = Socket::new(Family::Inet, Type::Stream)?;
    /// client.connect(listener.getsockname()?)?;
    /// assert_eq!(client.getpeername()?, listener.getsockname()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&self, addr: impl ToAddrs) -> io::Result<()> {
        let (_, sa) = self.pick(addr)?;
        self.connect_sockaddr(&sa)
    }

    fn connect_sockaddr(&self, sa: &socket2::SockAddr) -> io::Result<()> {
        let mode = Mode::start(self.gettimeout());
        let sock = self.sock()?;
        match sock.connect(sa) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    && !matches!(mode, Mode::NonBlocking) => {}
            Err(e) => return Err(e),
        }
        // The connect goes on in the kernel: wait until it is done, then read its result.
        sys::wait(sock.as_raw_fd(), Wait::Writable, mode.deadline())?;
        match sock.take_error()? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Like [`connect`](Socket::connect), but an OS error is returned as its errno (Python's
    /// `connect_ex`): `0` on success, `ECONNREFUSED`, `EINPROGRESS` when non-blocking, and
    /// `EAGAIN` when the timeout expires (as CPython). Problems that are not OS errors, such as
    /// a name that does not resolve, are still `Err`.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// // A bound port that does not listen refuses connections.
    /// let bound = Socket::new(Family::Inet, Type::Stream)?;
    /// bound.bind("127.0.0.1:0")?;
    /// let client = Socket::new(Family::Inet, Type::Stream)?;
    /// assert_eq!(client.connect_ex(bound.getsockname()?)?, 111); // ECONNREFUSED on Linux
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_ex(&self, addr: impl ToAddrs) -> io::Result<i32> {
        let (_, sa) = self.pick(addr)?;
        match self.connect_sockaddr(&sa) {
            Ok(()) => Ok(0),
            Err(e) => match e.raw_os_error() {
                Some(errno) => Ok(errno),
                None if e.kind() == io::ErrorKind::TimedOut => Ok(libc::EAGAIN),
                None => Err(e),
            },
        }
    }

    /// Shuts down one or both halves of the connection (Python's `shutdown`); after
    /// `Shutdown::Write` the peer reads end-of-file. `ENOTCONN` if not connected.
    ///
    /// ```
    /// use std::net::Shutdown;
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.shutdown(Shutdown::Write)?;
    /// assert!(b.recv(16)?.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock()?.shutdown(how)
    }

    /// Closes the socket (Python's `close`). Idempotent; afterwards [`fileno`](Socket::fileno)
    /// is -1 and every other call fails with `EBADF`. The error of `close(2)` is reported
    /// (dropping a socket closes it too, silently).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let mut sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.close()?;
    /// sock.close()?;
    /// assert_eq!(sock.fileno(), -1);
    /// assert_eq!(sock.recv(1).unwrap_err().raw_os_error(), Some(9)); // EBADF
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self) -> io::Result<()> {
        match self.inner.take() {
            Some(inner) => sys::close(OwnedFd::from(inner)),
            None => Ok(()),
        }
    }

    /// Whether [`close`](Socket::close) or [`detach`](Socket::detach) was called.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let mut sock = Socket::new(Family::Unix, Type::Stream)?;
    /// assert!(!sock.is_closed());
    /// sock.close()?;
    /// assert!(sock.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_none()
    }

    /// The file descriptor, or -1 once closed or detached (Python's `fileno`).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert!(sock.fileno() >= 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fileno(&self) -> RawFd {
        self.inner.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// A new socket on a duplicate fd (close-on-exec), with the same timeout (Python's `dup`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.settimeout(Some(Duration::from_secs(3)));
    /// let copy = sock.dup()?;
    /// assert_ne!(copy.fileno(), sock.fileno());
    /// assert_eq!(copy.gettimeout(), Some(Duration::from_secs(3)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dup(&self) -> io::Result<Socket> {
        // try_clone is fcntl(F_DUPFD_CLOEXEC); the fd shares the file description, so O_NONBLOCK
        // is already what the copied timeout needs.
        let inner = self.sock()?.try_clone()?;
        Ok(Socket::from_parts(
            inner,
            self.family,
            self.ty,
            self.gettimeout(),
        ))
    }

    /// Gives up the fd without closing it (Python's `detach`); the socket then acts closed.
    /// The fd keeps its mode: `O_NONBLOCK` if the socket had a timeout.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let mut sock = Socket::new(Family::Inet, Type::Stream)?;
    /// let fd = sock.detach()?;
    /// assert_eq!(sock.fileno(), -1);
    /// let again = Socket::from_fd(fd)?;
    /// assert_eq!(again.family(), Family::Inet);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn detach(&mut self) -> io::Result<OwnedFd> {
        self.inner
            .take()
            .map(OwnedFd::from)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }

    /// The address family (Python's `family`).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// assert_eq!(Socket::new(Family::Unix, Type::Datagram)?.family(), Family::Unix);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn family(&self) -> Family {
        self.family
    }

    /// The socket type (Python's `type`).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// assert_eq!(Socket::new(Family::Unix, Type::Datagram)?.socket_type(), Type::Datagram);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn socket_type(&self) -> Type {
        self.ty
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fileno())
            .field("family", &self.family)
            .field("type", &self.ty)
            .field("timeout", &self.gettimeout())
            .finish()
    }
}
