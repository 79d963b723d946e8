//! Conversions between [`Socket`] and fds, `std::net` and `std::os::unix::net` types.
//!
//! Conversions never change the fd's mode: a socket made from a std type gets the timeout that
//! matches its fd (`Some(ZERO)` if `O_NONBLOCK`, else `None`), and a std type made from a socket
//! in timeout mode receives an `O_NONBLOCK` fd.

use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::Duration;

use crate::{Family, Socket, Type, getdefaulttimeout, sys};

impl Socket {
    /// Takes ownership of an open socket fd (Python's `socket.socket(fileno=fd)`).
    ///
    /// The family and type are read from the kernel (`SO_DOMAIN`, `SO_TYPE`); the fd is made
    /// close-on-exec. With a default timeout set it is applied; otherwise the timeout reflects
    /// the fd's current mode (`Some(ZERO)` if it is `O_NONBLOCK`, else `None`). Fails with
    /// `InvalidInput` if the fd is not a socket or is of a family or type this crate does not
    /// handle; the fd is closed in that case.
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fd: OwnedFd = std::net::TcpListener::bind("127.0.0.1:0")?.into();
    /// let sock = Socket::from_fd(fd)?;
    /// assert_eq!((sock.family(), sock.socket_type()), (Family::Inet, Type::Stream));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> io::Result<Socket> {
        let raw = fd.as_raw_fd();
        let inner = socket2::Socket::from(fd);
        let not_a_socket = |e: io::Error| {
            if e.raw_os_error() == Some(libc::ENOTSOCK) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("fd {raw} is not a socket ({e})"),
                )
            } else {
                e
            }
        };
        let family = Family::try_from(inner.domain().map_err(not_a_socket)?)?;
        let ty = Type::try_from(inner.r#type().map_err(not_a_socket)?)?;
        inner.set_cloexec(true)?;
        match getdefaulttimeout() {
            Some(t) => Socket::with_timeout(inner, family, ty, Some(t)),
            None => {
                let timeout = sys::is_nonblocking(raw)?.then_some(Duration::ZERO);
                Ok(Socket::from_parts(inner, family, ty, timeout))
            }
        }
    }

    /// A socket over a duplicate of `fd`, which stays the caller's (Python's `socket.fromfd`).
    ///
    /// The duplicate is close-on-exec (`F_DUPFD_CLOEXEC`); otherwise as [`Socket::from_fd`].
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use sockserve_socket::Socket;
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let sock = Socket::fromfd(listener.as_fd())?;
    /// assert_eq!(sock.getsockname()?.as_inet(), Some(listener.local_addr()?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fromfd(fd: BorrowedFd<'_>) -> io::Result<Socket> {
        Socket::from_fd(fd.try_clone_to_owned()?)
    }
}

impl AsRawFd for Socket {
    /// The fd, or -1 once closed (as [`Socket::fileno`]).
    fn as_raw_fd(&self) -> RawFd {
        self.fileno()
    }
}

impl AsFd for Socket {
    /// # Panics
    ///
    /// If the socket was closed or detached: there is no fd to borrow.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.sock() {
            Ok(inner) => inner.as_fd(),
            Err(_) => panic!("as_fd on a closed socket"),
        }
    }
}

impl From<Socket> for OwnedFd {
    /// # Panics
    ///
    /// If the socket was closed or detached; [`Socket::detach`] is the fallible form.
    fn from(mut socket: Socket) -> OwnedFd {
        match socket.detach() {
            Ok(fd) => fd,
            Err(_) => panic!("OwnedFd::from on a closed socket"),
        }
    }
}

impl TryFrom<OwnedFd> for Socket {
    type Error = io::Error;

    /// Same as [`Socket::from_fd`].
    fn try_from(fd: OwnedFd) -> io::Result<Socket> {
        Socket::from_fd(fd)
    }
}

/// Wraps an fd known to be a socket of this family and type, keeping its mode.
fn adopt(fd: OwnedFd, family: Family, ty: Type) -> Socket {
    // F_GETFL only fails on a bad fd, which an OwnedFd is not; blocking is the fallback.
    let nonblocking = sys::is_nonblocking(fd.as_raw_fd()).unwrap_or(false);
    let inner = socket2::Socket::from(fd);
    Socket::from_parts(inner, family, ty, nonblocking.then_some(Duration::ZERO))
}

/// The IP family of an fd, from `SO_DOMAIN`.
fn ip_family(fd: &OwnedFd) -> Family {
    // SO_DOMAIN cannot fail on an open socket fd; std's IP types are IPv4 or IPv6, and IPv4 is
    // the fallback if the kernel ever said otherwise.
    match socket2::SockRef::from(fd).domain() {
        Ok(d) if d == socket2::Domain::IPV6 => Family::Inet6,
        _ => Family::Inet,
    }
}

/// Takes the fd of a socket of this family (`None`: any IP family) and type, or fails.
fn take_checked(
    mut socket: Socket,
    family: Option<Family>,
    ty: Type,
    what: &str,
) -> io::Result<OwnedFd> {
    let family_ok = match family {
        Some(f) => socket.family() == f,
        None => matches!(socket.family(), Family::Inet | Family::Inet6),
    };
    if !family_ok || socket.socket_type() != ty {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot make a {what} from a {} {} socket",
                socket.family(),
                socket.socket_type()
            ),
        ));
    }
    socket.detach()
}

macro_rules! std_conversions {
    ($std:ty, $what:literal, $family:expr, $ty:expr) => {
        impl From<$std> for Socket {
            #[doc = concat!("Wraps a `", $what, "`, keeping its fd and mode.")]
            fn from(s: $std) -> Socket {
                let fd = OwnedFd::from(s);
                let family: Option<Family> = $family;
                let family = family.unwrap_or_else(|| ip_family(&fd));
                adopt(fd, family, $ty)
            }
        }

        impl TryFrom<Socket> for $std {
            type Error = io::Error;

            #[doc = concat!("Fails with `InvalidInput` unless the socket's family and type fit a `", $what, "`.")]
            fn try_from(s: Socket) -> io::Result<$std> {
                take_checked(s, $family, $ty, $what).map(<$std>::from)
            }
        }
    };
}

std_conversions!(TcpStream, "TcpStream", None, Type::Stream);
std_conversions!(TcpListener, "TcpListener", None, Type::Stream);
std_conversions!(UdpSocket, "UdpSocket", None, Type::Datagram);
std_conversions!(UnixStream, "UnixStream", Some(Family::Unix), Type::Stream);
std_conversions!(
    UnixListener,
    "UnixListener",
    Some(Family::Unix),
    Type::Stream
);
std_conversions!(
    UnixDatagram,
    "UnixDatagram",
    Some(Family::Unix),
    Type::Datagram
);
