//! [`Family`] and [`Type`]: Python's `AF_*` and `SOCK_*` constants as enums.

use std::fmt;
use std::io;

/// An address family: Python's `AF_INET`, `AF_INET6` and `AF_UNIX`.
///
/// ```
/// use sockserve_socket::Family;
///
/// let addr: sockserve_socket::Address = "[::1]:80".parse()?;
/// assert_eq!(addr.family(), Family::Inet6);
/// assert_eq!(Family::Inet.to_string(), "AF_INET");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
    /// Unix domain sockets (`AF_UNIX`): paths, Linux abstract names and unnamed peers.
    Unix,
}

impl Family {
    /// The `AF_*` number of this family.
    ///
    /// ```
    /// use sockserve_socket::Family;
    /// assert_ne!(Family::Unix.as_raw(), Family::Inet.as_raw());
    /// ```
    pub fn as_raw(self) -> i32 {
        match self {
            Family::Inet => libc::AF_INET,
            Family::Inet6 => libc::AF_INET6,
            Family::Unix => libc::AF_UNIX,
        }
    }

    /// The family of an `AF_*` number, or `None` for a family this crate does not handle.
    ///
    /// ```
    /// use sockserve_socket::Family;
    /// assert_eq!(Family::from_raw(Family::Inet6.as_raw()), Some(Family::Inet6));
    /// assert_eq!(Family::from_raw(-1), None);
    /// ```
    pub fn from_raw(raw: i32) -> Option<Family> {
        match raw {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            libc::AF_UNIX => Some(Family::Unix),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    /// Python's name of the constant: `AF_INET`, `AF_INET6`, `AF_UNIX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
            Family::Unix => "AF_UNIX",
        })
    }
}

impl From<Family> for socket2::Domain {
    fn from(family: Family) -> socket2::Domain {
        socket2::Domain::from(family.as_raw())
    }
}

impl TryFrom<socket2::Domain> for Family {
    type Error = io::Error;

    /// Fails with `InvalidInput` for a domain other than IPv4, IPv6 and Unix.
    fn try_from(domain: socket2::Domain) -> io::Result<Family> {
        let raw = libc::c_int::from(domain);
        Family::from_raw(raw).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported address family {raw} (expected AF_INET, AF_INET6 or AF_UNIX)"),
            )
        })
    }
}

/// A socket type: Python's `SOCK_STREAM` and `SOCK_DGRAM`.
///
/// ```
/// use sockserve_socket::{Family, Socket, Type};
///
/// let sock = Socket::new(Family::Inet, Type::Datagram)?;
/// assert_eq!(sock.socket_type(), Type::Datagram);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A reliable byte stream (`SOCK_STREAM`): TCP, or a Unix stream socket.
    Stream,
    /// Datagrams (`SOCK_DGRAM`): UDP, or a Unix datagram socket.
    Datagram,
}

impl Type {
    /// The `SOCK_*` number of this type.
    ///
    /// ```
    /// use sockserve_socket::Type;
    /// assert_ne!(Type::Stream.as_raw(), Type::Datagram.as_raw());
    /// ```
    pub fn as_raw(self) -> i32 {
        match self {
            Type::Stream => libc::SOCK_STREAM,
            Type::Datagram => libc::SOCK_DGRAM,
        }
    }

    /// The type of a `SOCK_*` number, or `None` for a type this crate does not handle.
    ///
    /// ```
    /// use sockserve_socket::Type;
    /// assert_eq!(Type::from_raw(Type::Stream.as_raw()), Some(Type::Stream));
    /// assert_eq!(Type::from_raw(-1), None);
    /// ```
    pub fn from_raw(raw: i32) -> Option<Type> {
        match raw {
            libc::SOCK_STREAM => Some(Type::Stream),
            libc::SOCK_DGRAM => Some(Type::Datagram),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    /// Python's name of the constant: `SOCK_STREAM`, `SOCK_DGRAM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Stream => "SOCK_STREAM",
            Type::Datagram => "SOCK_DGRAM",
        })
    }
}

impl From<Type> for socket2::Type {
    fn from(ty: Type) -> socket2::Type {
        socket2::Type::from(ty.as_raw())
    }
}

impl TryFrom<socket2::Type> for Type {
    type Error = io::Error;

    /// Fails with `InvalidInput` for a type other than stream and datagram.
    fn try_from(ty: socket2::Type) -> io::Result<Type> {
        let raw = libc::c_int::from(ty);
        Type::from_raw(raw).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported socket type {raw} (expected SOCK_STREAM or SOCK_DGRAM)"),
            )
        })
    }
}
