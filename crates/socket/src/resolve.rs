//! Name resolution: [`getaddrinfo`] (with [`AddrInfoHints`] and [`AddrInfo`]) and [`gethostname`].

use std::io;

use crate::error::ResolveError;
use crate::{Address, Family, Type, sys};

/// `AI_PASSIVE`: with no host, give the wildcard address (for `bind`), not loopback.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Family, Type, AI_PASSIVE};
///
/// let hints = AddrInfoHints { family: Some(Family::Inet), socket_type: Some(Type::Stream),
///                             ..AddrInfoHints::default() };
/// let to_bind = AddrInfoHints { flags: AI_PASSIVE, ..hints };
/// assert_eq!(getaddrinfo(None, Some(80), &to_bind)?[0].address.to_string(), "0.0.0.0:80");
/// assert_eq!(getaddrinfo(None, Some(80), &hints)?[0].address.to_string(), "127.0.0.1:80");
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_PASSIVE: i32 = libc::AI_PASSIVE;
/// `AI_CANONNAME`: fill [`AddrInfo::canonname`] of the first answer.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Type, AI_CANONNAME, AI_NUMERICHOST};
///
/// let hints = AddrInfoHints { socket_type: Some(Type::Stream),
///                             flags: AI_CANONNAME | AI_NUMERICHOST, ..AddrInfoHints::default() };
/// let answers = getaddrinfo(Some("127.0.0.1"), Some(80), &hints)?;
/// assert_eq!(answers[0].canonname.as_deref(), Some("127.0.0.1"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_CANONNAME: i32 = libc::AI_CANONNAME;
/// `AI_NUMERICHOST`: the host must be a numeric address; never ask DNS.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Type, AI_NUMERICHOST};
///
/// let hints = AddrInfoHints { socket_type: Some(Type::Stream), flags: AI_NUMERICHOST,
///                             ..AddrInfoHints::default() };
/// assert_eq!(getaddrinfo(Some("::1"), Some(80), &hints)?[0].address.to_string(), "[::1]:80");
/// let err = getaddrinfo(Some("localhost"), Some(80), &hints).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound); // a name, and no DNS was asked
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_NUMERICHOST: i32 = libc::AI_NUMERICHOST;
/// `AI_NUMERICSERV`: the service is a port number.
///
/// [`getaddrinfo`] always passes the port as a number, so the flag never changes its answers.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Type, AI_NUMERICSERV};
///
/// let hints = AddrInfoHints { socket_type: Some(Type::Datagram), flags: AI_NUMERICSERV,
///                             ..AddrInfoHints::default() };
/// let answers = getaddrinfo(Some("127.0.0.1"), Some(5353), &hints)?;
/// assert_eq!(answers[0].address.to_string(), "127.0.0.1:5353");
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_NUMERICSERV: i32 = libc::AI_NUMERICSERV;
/// `AI_ADDRCONFIG`: only families the host has a configured address for.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Type, AI_ADDRCONFIG, AI_PASSIVE};
///
/// // The wildcard addresses to bind, of the families this host can use.
/// let hints = AddrInfoHints { socket_type: Some(Type::Stream), flags: AI_PASSIVE | AI_ADDRCONFIG,
///                             ..AddrInfoHints::default() };
/// let answers = getaddrinfo(None, Some(8080), &hints)?;
/// assert!(!answers.is_empty());
/// assert!(answers.iter().all(|a| {
///     a.address.as_inet().is_some_and(|ip| ip.ip().is_unspecified() && ip.port() == 8080)
/// }));
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_ADDRCONFIG: i32 = libc::AI_ADDRCONFIG;
/// `AI_V4MAPPED`: IPv4 answers as IPv4-mapped IPv6 addresses when asking for `Inet6`.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Family, Type, AI_NUMERICHOST, AI_V4MAPPED};
///
/// let hints = AddrInfoHints { family: Some(Family::Inet6), socket_type: Some(Type::Stream),
///                             flags: AI_NUMERICHOST | AI_V4MAPPED, ..AddrInfoHints::default() };
/// let answers = getaddrinfo(Some("127.0.0.1"), Some(80), &hints)?;
/// assert_eq!(answers[0].family, Family::Inet6);
/// assert_eq!(answers[0].address.to_string(), "[::ffff:127.0.0.1]:80");
/// # Ok::<(), std::io::Error>(())
/// ```
pub const AI_V4MAPPED: i32 = libc::AI_V4MAPPED;

/// What [`getaddrinfo`] should look for: Python's `family`, `type`, `proto`, `flags` arguments.
///
/// `None` and `0` mean "any", as Python's defaults do.
///
/// ```
/// use sockserve_socket::{AddrInfoHints, Family, Type, AI_PASSIVE};
///
/// let hints = AddrInfoHints { family: Some(Family::Inet), socket_type: Some(Type::Stream),
///                             flags: AI_PASSIVE, ..AddrInfoHints::default() };
/// assert_eq!(hints.protocol, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrInfoHints {
    /// Only this family (`AF_UNSPEC` when `None`).
    pub family: Option<Family>,
    /// Only this socket type (any when `None`).
    pub socket_type: Option<Type>,
    /// Only this protocol (`0`: any).
    pub protocol: i32,
    /// `AI_*` flags, or-ed together.
    pub flags: i32,
}

/// One answer of [`getaddrinfo`]: Python's `(family, type, proto, canonname, sockaddr)`.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Type};
///
/// let hints = AddrInfoHints { socket_type: Some(Type::Stream), ..AddrInfoHints::default() };
/// let first = &getaddrinfo(Some("127.0.0.1"), Some(80), &hints)?[0];
/// assert_eq!(first.address.to_string(), "127.0.0.1:80");
/// assert_eq!(first.socket_type, Type::Stream);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// The address family.
    pub family: Family,
    /// The socket type this answer is for.
    pub socket_type: Type,
    /// The protocol number (`IPPROTO_TCP`, `IPPROTO_UDP`, ...).
    pub protocol: i32,
    /// The canonical host name, on the first answer when [`AI_CANONNAME`] was asked for.
    pub canonname: Option<String>,
    /// The address, with the port filled in.
    pub address: Address,
}

/// Resolves a host and port, as Python's `socket.getaddrinfo`.
///
/// Answers of a family or type this crate does not model (for example `SOCK_RAW`, which glibc
/// lists when no type is given) are left out. A resolver failure is an `io::Error` whose message
/// is `gai_strerror`'s, for example `failed to resolve 'no.such.host.invalid': Name or service
/// not known`, carrying a [`ResolveError`] with the `EAI_*` code; its kind is `NotFound` when
/// the name does not exist.
///
/// ```
/// use sockserve_socket::{getaddrinfo, AddrInfoHints, Family, AI_PASSIVE};
///
/// let hints = AddrInfoHints { family: Some(Family::Inet), flags: AI_PASSIVE, ..Default::default() };
/// let answers = getaddrinfo(None, Some(8080), &hints)?;
/// assert!(answers.iter().all(|a| a.address.to_string() == "0.0.0.0:8080"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn getaddrinfo(
    host: Option<&str>,
    port: Option<u16>,
    hints: &AddrInfoHints,
) -> io::Result<Vec<AddrInfo>> {
    let c_host = host.map(|h| sys::c_string("host", h)).transpose()?;
    let port_str = port.map(|p| p.to_string());
    let c_port = port_str
        .as_deref()
        .map(|p| sys::c_string("port", p))
        .transpose()?;
    // SAFETY: addrinfo is a plain C struct for which all-zero (null pointers) is valid.
    let mut raw_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    raw_hints.ai_family = hints.family.map_or(libc::AF_UNSPEC, Family::as_raw);
    raw_hints.ai_socktype = hints.socket_type.map_or(0, Type::as_raw);
    raw_hints.ai_protocol = hints.protocol;
    raw_hints.ai_flags = hints.flags;
    let answers = match sys::getaddrinfo(c_host.as_deref(), c_port.as_deref(), &raw_hints) {
        Ok(answers) => answers,
        Err((libc::EAI_SYSTEM, os_error)) => return Err(os_error),
        Err((code, _)) => {
            let what = match (host, port) {
                (Some(h), _) => h.to_owned(),
                (None, Some(p)) => p.to_string(),
                (None, None) => String::new(),
            };
            let kind = match code {
                libc::EAI_NONAME | libc::EAI_NODATA => io::ErrorKind::NotFound,
                libc::EAI_FAMILY | libc::EAI_SOCKTYPE | libc::EAI_BADFLAGS | libc::EAI_SERVICE => {
                    io::ErrorKind::InvalidInput
                }
                libc::EAI_MEMORY => io::ErrorKind::OutOfMemory,
                _ => io::ErrorKind::Other,
            };
            let err = ResolveError::new(code, what, sys::gai_strerror(code));
            return Err(io::Error::new(kind, err));
        }
    };
    Ok(answers
        .into_iter()
        .filter_map(|ai| {
            Some(AddrInfo {
                family: Family::from_raw(ai.family)?,
                socket_type: Type::from_raw(ai.socktype)?,
                protocol: ai.protocol,
                canonname: ai.canonname,
                address: Address::from_sockaddr(&ai.address),
            })
        })
        .collect())
}

/// The host name of this machine, as Python's `socket.gethostname`.
///
/// Fails with `InvalidData` if the name is not UTF-8.
///
/// ```
/// let name = sockserve_socket::gethostname()?;
/// assert!(!name.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn gethostname() -> io::Result<String> {
    let bytes = sys::gethostname()?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("host name is not UTF-8: {e}"),
        )
    })
}

/// Resolves `host` for a stream socket; the addresses come in the resolver's order.
pub(crate) fn resolve_host(host: &str, port: u16) -> io::Result<Vec<Address>> {
    let hints = AddrInfoHints {
        socket_type: Some(Type::Stream),
        ..AddrInfoHints::default()
    };
    let addrs: Vec<Address> = getaddrinfo(Some(host), Some(port), &hints)?
        .into_iter()
        .map(|ai| ai.address)
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("failed to resolve '{host}': getaddrinfo returned an empty list"),
        ));
    }
    Ok(addrs)
}
