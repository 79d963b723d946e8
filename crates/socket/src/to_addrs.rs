//! [`ToAddrs`]: everything an address argument may be, like std's `ToSocketAddrs`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use crate::Address;
use crate::address::{special_host, split_host_port};
use crate::resolve::resolve_host;

/// A value that names one or more socket addresses: Python's `address` argument.
///
/// Strings are parsed as [`Address`] first (`127.0.0.1:80`, `[::1]:80`, `/path`, `./path`,
/// `@name`); a `host:port` whose host is a name is resolved with `getaddrinfo`, giving every
/// address in the resolver's order. A port above 65535 fails with `InvalidInput`
/// "port must be 0-65535". As in Python, the host `""` is `0.0.0.0` and `"<broadcast>"` is
/// `255.255.255.255`.
///
/// ```
/// use sockserve_socket::{Address, ToAddrs};
///
/// assert_eq!("127.0.0.1:80".to_addrs()?, vec!["127.0.0.1:80".parse::<Address>()?]);
/// assert!(!("localhost", 80).to_addrs()?.is_empty());
/// assert_eq!("localhost:70000".to_addrs().unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToAddrs {
    /// The addresses, resolved; never empty on success.
    ///
    /// ```
    /// use sockserve_socket::ToAddrs;
    /// let addrs = std::path::Path::new("/tmp/x.sock").to_addrs()?;
    /// assert_eq!(addrs[0].to_string(), "/tmp/x.sock");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn to_addrs(&self) -> io::Result<Vec<Address>>;

    /// The one [`Address`] this value already is, if it is one: lets a send skip building
    /// the `Vec` of [`to_addrs`](ToAddrs::to_addrs) (a reply to every datagram comes this
    /// way). Implementations other than `Address`'s keep the default, `None`.
    ///
    /// ```
    /// use sockserve_socket::{Address, ToAddrs};
    /// let address: Address = "127.0.0.1:80".parse()?;
    /// assert_eq!((&address).as_address(), Some(&address));
    /// assert_eq!("127.0.0.1:80".as_address(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn as_address(&self) -> Option<&Address> {
        None
    }
}

impl ToAddrs for Address {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![self.clone()])
    }

    fn as_address(&self) -> Option<&Address> {
        Some(self)
    }
}

impl ToAddrs for SocketAddr {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::from(*self)])
    }
}

impl ToAddrs for SocketAddrV4 {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Inet(*self)])
    }
}

impl ToAddrs for SocketAddrV6 {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Inet6(*self)])
    }
}

impl ToAddrs for str {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        let parsed = self.parse::<Address>();
        if let Ok(addr) = parsed {
            return Ok(vec![addr]);
        }
        match split_host_port(self)? {
            Some((host, port)) => host_port(host, port),
            // Not host:port either: report the parse error, which says what was expected.
            None => parsed.map(|a| vec![a]),
        }
    }
}

impl ToAddrs for String {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        self.as_str().to_addrs()
    }
}

impl ToAddrs for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        host_port(self.0, self.1)
    }
}

impl ToAddrs for (String, u16) {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        host_port(&self.0, self.1)
    }
}

impl ToAddrs for (IpAddr, u16) {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::from(SocketAddr::new(self.0, self.1))])
    }
}

impl ToAddrs for (Ipv4Addr, u16) {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Inet(SocketAddrV4::new(self.0, self.1))])
    }
}

impl ToAddrs for (Ipv6Addr, u16) {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Inet6(SocketAddrV6::new(
            self.0, self.1, 0, 0,
        ))])
    }
}

impl ToAddrs for Path {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Unix(self.to_path_buf())])
    }
}

impl ToAddrs for PathBuf {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(vec![Address::Unix(self.clone())])
    }
}

/// A list of addresses, in order (for example to give `create_connection` several to try).
impl ToAddrs for [Address] {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> ToAddrs for [Address; N] {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(self.to_vec())
    }
}

impl ToAddrs for Vec<Address> {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        Ok(self.clone())
    }
}

impl<T: ToAddrs + ?Sized> ToAddrs for &T {
    fn to_addrs(&self) -> io::Result<Vec<Address>> {
        (**self).to_addrs()
    }

    fn as_address(&self) -> Option<&Address> {
        (**self).as_address()
    }
}

/// A host (numeric, special or a name to resolve) and a port.
fn host_port(host: &str, port: u16) -> io::Result<Vec<Address>> {
    if let Some(ip) = special_host(host) {
        return Ok(vec![Address::from(SocketAddr::new(ip, port))]);
    }
    // Brackets are allowed around an IPv6 host, as in "[::1]:80".
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![Address::from(SocketAddr::new(ip, port))]);
    }
    resolve_host(bare, port)
}
