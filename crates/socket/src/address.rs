//! [`Address`]: every socket address Python's `socket` module accepts or returns, as one type.

use std::fmt;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Family;

/// The longest Unix socket path: `sun_path` holds 108 bytes, one of them the terminating NUL.
///
/// ```
/// use sockserve_socket::{Address, UNIX_PATH_MAX};
/// use std::path::PathBuf;
///
/// let longest = Address::Unix(PathBuf::from(format!("/{}", "x".repeat(UNIX_PATH_MAX - 1))));
/// assert!(longest.to_sockaddr()?.is_unix());
/// let too_long = Address::Unix(PathBuf::from(format!("/{}", "x".repeat(UNIX_PATH_MAX))));
/// assert_eq!(too_long.to_sockaddr().unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const UNIX_PATH_MAX: usize = 107;

/// A socket address: IPv4, IPv6, a Unix path, a Linux abstract name, or an unnamed Unix peer.
///
/// Printed and parsed as `127.0.0.1:80`, `[::1]:80` (`[fe80::1%2]:80` with a scope id),
/// `/path/x.sock` (or relative: `./x.sock`, `../x.sock`), `@name` (abstract) and `<unnamed>`.
/// An abstract name is printed with Rust's byte escapes (`\x00`, `\n`, `\\`, `\'`, ...),
/// which the parser reads back, so that any name survives the round trip; a backslash that
/// starts no such escape is an error. IPv6 flow info and scope id are kept. Host names are not addresses: resolve them with
/// [`ToAddrs`](crate::ToAddrs) or [`getaddrinfo`](crate::getaddrinfo).
///
/// ```
/// use sockserve_socket::Address;
///
/// let addr: Address = "127.0.0.1:8080".parse()?;
/// assert_eq!(addr.to_string(), "127.0.0.1:8080");
/// let abstract_name: Address = "@my-server".parse()?;
/// assert_eq!(abstract_name, Address::Abstract(b"my-server".to_vec()));
/// let odd = Address::Abstract(b"it's\0here".to_vec());
/// assert_eq!(odd.to_string(), r"@it\'s\x00here");
/// assert_eq!(odd.to_string().parse::<Address>()?, odd);
/// assert!("127.0.0.1:70000".parse::<Address>().unwrap_err().to_string().contains("port must be 0-65535"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 address and port (`AF_INET`).
    Inet(SocketAddrV4),
    /// An IPv6 address and port, with flow info and scope id (`AF_INET6`).
    Inet6(SocketAddrV6),
    /// A Unix socket path (`AF_UNIX`).
    Unix(PathBuf),
    /// A Linux abstract name (`AF_UNIX`; in the sockaddr it follows a leading NUL byte).
    Abstract(Vec<u8>),
    /// An unbound Unix peer, as `accept` or `recvfrom` report it (Python gives `''` or `None`).
    Unnamed,
}

impl Address {
    /// The family of this address.
    ///
    /// ```
    /// use sockserve_socket::{Address, Family};
    /// assert_eq!("@x".parse::<Address>()?.family(), Family::Unix);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn family(&self) -> Family {
        match self {
            Address::Inet(_) => Family::Inet,
            Address::Inet6(_) => Family::Inet6,
            Address::Unix(_) | Address::Abstract(_) | Address::Unnamed => Family::Unix,
        }
    }

    /// The host: Python's `client_address[0]` for an IP address (`"127.0.0.1"`, `"::1"`), the
    /// path (or `@name`, or an empty string for an unnamed client) for a Unix address.
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let addr: Address = "127.0.0.1:5000".parse()?;
    /// assert_eq!(addr.host(), "127.0.0.1");
    /// let addr: Address = "/tmp/s.sock".parse()?;
    /// assert_eq!(addr.host(), "/tmp/s.sock");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn host(&self) -> String {
        match self {
            Address::Inet(a) => a.ip().to_string(),
            Address::Inet6(a) => a.ip().to_string(),
            Address::Unnamed => String::new(),
            other => other.to_string(),
        }
    }

    /// The IP address and port, or `None` for a Unix address.
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let addr: Address = "[::1]:80".parse()?;
    /// assert_eq!(addr.as_inet().map(|a| a.port()), Some(80));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(a) => Some(SocketAddr::V4(*a)),
            Address::Inet6(a) => Some(SocketAddr::V6(*a)),
            _ => None,
        }
    }

    /// The path of a Unix path address, or `None` for any other address.
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let addr: Address = "/tmp/x.sock".parse()?;
    /// assert_eq!(addr.as_pathname(), Some(std::path::Path::new("/tmp/x.sock")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_pathname(&self) -> Option<&Path> {
        match self {
            Address::Unix(p) => Some(p),
            _ => None,
        }
    }

    /// The `socket2` form of this address, ready for the kernel.
    ///
    /// Fails with `InvalidInput` for a Unix path or abstract name longer than
    /// [`UNIX_PATH_MAX`] bytes, an empty path, and [`Address::Unnamed`] (nothing can be sent to
    /// or bound at an unnamed address).
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let sa = "127.0.0.1:80".parse::<Address>()?.to_sockaddr()?;
    /// assert!(sa.is_ipv4());
    /// let long = Address::Unix(std::path::PathBuf::from(format!("/{}", "x".repeat(200))));
    /// assert!(long.to_sockaddr().unwrap_err().to_string().contains("107"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn to_sockaddr(&self) -> io::Result<socket2::SockAddr> {
        match self {
            Address::Inet(a) => Ok(socket2::SockAddr::from(*a)),
            Address::Inet6(a) => Ok(socket2::SockAddr::from(*a)),
            Address::Unix(path) => {
                let len = path.as_os_str().len();
                if len == 0 {
                    return Err(invalid("a unix socket path must not be empty".to_owned()));
                }
                if len > UNIX_PATH_MAX {
                    return Err(invalid(format!(
                        "unix socket path is too long: {len} bytes, the limit is {UNIX_PATH_MAX} \
                         ({})",
                        path.display()
                    )));
                }
                if path.as_os_str().as_bytes().contains(&0) {
                    return Err(invalid(
                        "a unix socket path must not contain a NUL byte".into(),
                    ));
                }
                socket2::SockAddr::unix(path)
            }
            Address::Abstract(name) => {
                if name.len() > UNIX_PATH_MAX {
                    return Err(invalid(format!(
                        "abstract socket name is too long: {} bytes, the limit is {UNIX_PATH_MAX}",
                        name.len()
                    )));
                }
                // socket2 treats a path whose first byte is NUL as an abstract name.
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name);
                socket2::SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
            }
            Address::Unnamed => Err(invalid("an unnamed unix address cannot be used".to_owned())),
        }
    }

    /// The address in a `socket2` sockaddr, as the kernel gave it.
    ///
    /// An `AF_UNIX` sockaddr with no path is [`Address::Unnamed`]; so is an empty or unknown
    /// sockaddr (for example what `recvfrom` reports on a connected stream socket).
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let addr: Address = "[::1]:8080".parse()?;
    /// assert_eq!(Address::from_sockaddr(&addr.to_sockaddr()?), addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_sockaddr(sa: &socket2::SockAddr) -> Address {
        if let Some(a) = sa.as_socket_ipv4() {
            return Address::Inet(a);
        }
        if let Some(a) = sa.as_socket_ipv6() {
            return Address::Inet6(a);
        }
        if !sa.is_unix() {
            return Address::Unnamed;
        }
        let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let len = usize::try_from(sa.len()).unwrap_or(0);
        // SAFETY: the family is AF_UNIX, so the storage holds a sockaddr_un.
        let un = unsafe { &*sa.as_ptr().cast::<libc::sockaddr_un>() };
        let path_len = len.saturating_sub(offset).min(un.sun_path.len());
        // SAFETY: c_char and u8 have the same size and layout; path_len <= sun_path.len().
        let bytes =
            unsafe { std::slice::from_raw_parts(un.sun_path.as_ptr().cast::<u8>(), path_len) };
        match bytes.split_first() {
            None => Address::Unnamed,
            Some((0, name)) => Address::Abstract(name.to_vec()),
            Some(_) => {
                // Linux counts the terminating NUL in the length; cut the path at the first NUL.
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                Address::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end])))
            }
        }
    }
}

impl crate::Socket {
    /// The socket's own address (Python's `getsockname`); `0.0.0.0:0` if unbound IPv4.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert_eq!(sock.getsockname()?.to_string(), "0.0.0.0:0");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn getsockname(&self) -> io::Result<Address> {
        Ok(Address::from_sockaddr(&self.sock()?.local_addr()?))
    }

    /// The peer's address (Python's `getpeername`); `ENOTCONN` if not connected.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert_eq!(sock.getpeername().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn getpeername(&self) -> io::Result<Address> {
        Ok(Address::from_sockaddr(&self.sock()?.peer_addr()?))
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The error for a port number outside 0-65535.
pub(crate) fn port_out_of_range(port: &str) -> io::Error {
    invalid(format!("port must be 0-65535, got {port}"))
}

fn malformed(s: &str) -> io::Error {
    invalid(format!(
        "invalid socket address {s:?}: expected IP:PORT, [IPv6]:PORT, /path, ./path, ../path \
         or @name"
    ))
}

/// Splits `host:port` or `[host]:port`; the port is checked to be 0-65535. The host of the
/// bracketed form keeps its brackets stripped. `None` if `s` has no port part at all.
pub(crate) fn split_host_port(s: &str) -> io::Result<Option<(&str, u16)>> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((host, port)) => (host, port),
            None => return Ok(None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Ok(None), // unbracketed IPv6
            Some((host, port)) => (host, port),
            None => return Ok(None),
        }
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(port) => Ok(Some((host, port))),
        Err(_) => Err(port_out_of_range(port)),
    }
}

/// Python's special host names: `''` is `INADDR_ANY`, `'<broadcast>'` is `INADDR_BROADCAST`.
pub(crate) fn special_host(host: &str) -> Option<IpAddr> {
    match host {
        "" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "<broadcast>" => Some(IpAddr::V4(Ipv4Addr::BROADCAST)),
        _ => None,
    }
}

/// The bytes of an abstract name as [`Address`]'s `Display` escapes them (`u8::escape_ascii`:
/// `\t`, `\r`, `\n`, `\\`, `\'`, `\"` and `\xNN`); `whole` is the address, for the error.
fn unescape(name: &str, whole: &str) -> io::Result<Vec<u8>> {
    let bad = || {
        invalid(format!(
            "invalid abstract socket name {whole:?}: a backslash starts an escape (\\\\, \\', \\\", \\n, \\r, \\t or \\xNN)"
        ))
    };
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next().ok_or_else(bad)? {
            b'\\' => b'\\',
            b'\'' => b'\'',
            b'"' => b'"',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'x' => {
                let digit = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
                let (hi, lo) = (digit(bytes.next()), digit(bytes.next()));
                // Two hex digits make at most 0xff: the cast cannot truncate.
                (hi.ok_or_else(bad)? * 16 + lo.ok_or_else(bad)?) as u8
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

impl FromStr for Address {
    type Err = io::Error;

    /// Parses the forms [`Address`] prints; fails with `InvalidInput` saying what was expected.
    fn from_str(s: &str) -> io::Result<Address> {
        if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        if let Some(name) = s.strip_prefix('@') {
            return unescape(name, s).map(Address::Abstract);
        }
        if s == "<unnamed>" {
            return Ok(Address::Unnamed);
        }
        let (host, port) = split_host_port(s)?.ok_or_else(|| malformed(s))?;
        if s.starts_with('[') {
            // std parses the scope id (`%2`); the flow info of a parsed address is 0.
            return SocketAddrV6::from_str(&format!("[{host}]:{port}"))
                .map(Address::Inet6)
                .map_err(|_| malformed(s));
        }
        host.parse::<Ipv4Addr>()
            .map(|ip| Address::Inet(SocketAddrV4::new(ip, port)))
            .map_err(|_| malformed(s))
    }
}

impl fmt::Display for Address {
    /// The form [`FromStr`] parses. Non-printable bytes of an abstract name are escaped.
    ///
    /// The alternate form (`{:#}`) is Python's: the tuple `('127.0.0.1', 5000)` (IPv6:
    /// `('::1', 5000, 0, 0)`, with flow info and scope id), `'/tmp/s.sock'` for a path,
    /// `b'\x00name'` for an abstract name and `''` for an unnamed client, as
    /// `print(self.client_address)` shows them.
    ///
    /// ```
    /// use sockserve_socket::Address;
    /// let addr: Address = "127.0.0.1:5000".parse()?;
    /// assert_eq!(format!("{addr}"), "127.0.0.1:5000");
    /// assert_eq!(format!("{addr:#}"), "('127.0.0.1', 5000)");
    /// let addr: Address = "[::1]:5000".parse()?;
    /// assert_eq!(format!("{addr:#}"), "('::1', 5000, 0, 0)");
    /// let addr: Address = "/tmp/s.sock".parse()?;
    /// assert_eq!(format!("{addr:#}"), "'/tmp/s.sock'");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return match self {
                Address::Inet(a) => write!(f, "('{}', {})", a.ip(), a.port()),
                Address::Inet6(a) => write!(
                    f,
                    "('{}', {}, {}, {})",
                    a.ip(),
                    a.port(),
                    a.flowinfo(),
                    a.scope_id()
                ),
                Address::Unix(p) => write!(f, "'{}'", p.display()),
                Address::Abstract(name) => write!(f, "b'\\x00{}'", name.escape_ascii()),
                Address::Unnamed => f.write_str("''"),
            };
        }
        match self {
            Address::Inet(a) => a.fmt(f),
            Address::Inet6(a) => a.fmt(f),
            Address::Unix(p) => p.display().fmt(f),
            Address::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
            Address::Unnamed => f.write_str("<unnamed>"),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        match a {
            SocketAddr::V4(a) => Address::Inet(a),
            SocketAddr::V6(a) => Address::Inet6(a),
        }
    }
}

impl From<SocketAddrV4> for Address {
    fn from(a: SocketAddrV4) -> Address {
        Address::Inet(a)
    }
}

impl From<SocketAddrV6> for Address {
    fn from(a: SocketAddrV6) -> Address {
        Address::Inet6(a)
    }
}

impl TryFrom<Address> for SocketAddr {
    type Error = io::Error;

    /// Fails with `InvalidInput` for a Unix address.
    fn try_from(a: Address) -> io::Result<SocketAddr> {
        a.as_inet()
            .ok_or_else(|| invalid(format!("not an IP address: {a}")))
    }
}

impl From<&socket2::SockAddr> for Address {
    /// Same as [`Address::from_sockaddr`].
    fn from(sa: &socket2::SockAddr) -> Address {
        Address::from_sockaddr(sa)
    }
}

impl TryFrom<&Address> for socket2::SockAddr {
    type Error = io::Error;

    /// Same as [`Address::to_sockaddr`].
    fn try_from(a: &Address) -> io::Result<socket2::SockAddr> {
        a.to_sockaddr()
    }
}
