//! The PROXY protocol (HAProxy's, v1 and v2): [`ProxyProtocol`], the option; the header's
//! reader, which takes from the connection the header's bytes and no more; and the preamble
//! of a request's job that reads it, waiting in the reactor between reads (sync, threading)
//! or on the forked child's own socket, before `verify_request` and the setup run.
//!
//! The header is parsed by the `ppp` crate; this file frames it (how many bytes are the
//! header: v2 says its length in its 16th and 15th bytes, v1 ends at its CRLF, 107 bytes at
//! most), so that the bytes after the header stay on the connection for `rfile`.

use crate::job::Start;
use crate::waiting::{Close, Unparked, Waiter};
use crate::{Error, Result, shutdown::InFlight};
use handler::driver::Waited;
use handler::{Handler, HandlerError, Request, Stage};
use socket::{Address, Socket};
use std::{
    fmt, io,
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

/// The default of [`ProxyProtocol::header_timeout`]: 5 s.
///
/// # Examples
///
/// ```
/// use sockserve_server::{DEFAULT_PROXY_HEADER_TIMEOUT, ProxyProtocol};
///
/// let proxy = ProxyProtocol::trusted(["127.0.0.1"])?;
/// assert_eq!(proxy.timeout(), DEFAULT_PROXY_HEADER_TIMEOUT);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of [`ProxyProtocol::max_header_len`]: 4096 bytes, room for HAProxy's TLVs
/// (the TLS details of `proxy-v2-options ssl`, a unique id, an authority) many times over.
///
/// # Examples
///
/// ```
/// use sockserve_server::{DEFAULT_PROXY_HEADER_LIMIT, ProxyProtocol};
///
/// let proxy = ProxyProtocol::trusted(["127.0.0.1"])?;
/// assert_eq!(proxy.header_limit(), DEFAULT_PROXY_HEADER_LIMIT);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_PROXY_HEADER_LIMIT: usize = 4096;

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 header's fixed part: the signature, version and command, family and protocol, and
/// the length of what follows.
const V2_FIXED: usize = 16;
/// The longest v1 header, CRLF included (the specification's figure).
const V1_LONGEST: usize = 107;
/// The shortest `max_header_len`: a v2 header with Unix addresses (2 x 108 bytes) and no TLV.
const SHORTEST_LIMIT: usize = V2_FIXED + 216;
/// The v1 header's first bytes.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The PROXY protocol, for a stream server behind a layer-4 load balancer (HAProxy's
/// `send-proxy` / `send-proxy-v2`, nginx's `proxy_protocol on`, Envoy's
/// `proxy_protocol` transport socket): each connection starts with a header naming the real
/// client, which becomes the request's `client_address`. Set it with
/// [`Builder::proxy_protocol`](crate::Builder::proxy_protocol); stream servers only (a
/// datagram server's builder has no such option: HAProxy sends no header over UDP).
///
/// # What is accepted, what is refused
///
/// - Connections from the trusted sources alone: a list of addresses and networks
///   (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`; `unix` for every peer of a Unix stream
///   server, whose socket file's permissions decide who connects). A connection from any
///   other peer is refused whatever it sends (closed before any handler runs, reported
///   through `handle_error`): behind a proxy, only the proxy connects, and a header from
///   anyone else would let them choose their address.
/// - A trusted source must send a header, v1 or v2, first: one that sends anything else is
///   refused (the specification forbids guessing), as is a malformed header, one longer than
///   [`max_header_len`](Self::max_header_len), or one cut by the connection's end. Each is
///   a [`Stage::Setup`] failure for `handle_error` (the default one reports it, rate-limited),
///   naming what was wrong and the option to change where there is one; the connection is
///   closed, the server keeps serving.
/// - v2's `LOCAL` command (HAProxy's health checks with `check-send-proxy`), a v2 header of an
///   unspecified family, and v1's `UNKNOWN` keep the proxy's address as the client's: the
///   connection is the proxy's own.
/// - A connection that closes before its header's first byte (a TCP health check) ends
///   quietly, no error.
///
/// # Where the header is read
///
/// Never blocking the accept loop: in the request's job, before `verify_request` and the
/// setup (under sync the job runs on the loop's thread, and this read never waits). What has
/// come of the header is read at once (a proxy sends it with its first packet); until it is
/// whole, the connection waits in the server's reactor (sync and threading: no thread is
/// held; a pool with idle threads first waits a millisecond on the worker, as a turn
/// lingers) or, under forking, on the child's own socket. The header has a deadline of
/// its own, [`header_timeout`](Self::header_timeout) from the accept: a client that sends
/// half a header, or none, cannot hold the loop or a worker, and is refused when it passes.
/// Only the header's bytes are taken from the connection: what follows is the handler's, in
/// `rfile`. `verify_request` then runs with the real client, and the handler's setup.
///
/// The proxy's own address is the connection's peer (`req.connection.getpeername()`).
///
/// # Examples
///
/// ```
/// use sockserve_server::{Error, ProxyProtocol};
/// use std::time::Duration;
///
/// let proxy = ProxyProtocol::trusted(["127.0.0.1", "10.0.0.0/8", "::1"])?
///     .header_timeout(Duration::from_secs(2))
///     .max_header_len(1024);
/// assert!(proxy.trusts(&"10.1.2.3:80".parse()?));
/// assert!(!proxy.trusts(&"192.0.2.1:80".parse()?));
///
/// // An empty list, or an entry that is no address, is a configuration error.
/// let none: [&str; 0] = [];
/// assert!(matches!(ProxyProtocol::trusted(none), Err(Error::InvalidOption { .. })));
/// let err = ProxyProtocol::trusted(["10.0.0.0/33"]).unwrap_err();
/// assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A datagram server has no such option:
///
/// ```compile_fail,E0599
/// use sockserve_server::{ProxyProtocol, UdpServer};
///
/// let proxy = ProxyProtocol::trusted(["127.0.0.1"])?;
/// let _server = UdpServer::builder(|_req| Ok(())).proxy_protocol(proxy);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<Trusted>,
    header_timeout: Duration,
    max_header_len: usize,
}

/// One trusted source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trusted {
    /// An address and the length of its network prefix.
    Network(IpAddr, u8),
    /// Every peer of a Unix stream socket.
    Unix,
}

impl ProxyProtocol {
    /// The PROXY protocol from these sources: addresses (`127.0.0.1`, `::1`), networks in
    /// CIDR notation (`10.0.0.0/8`, `fd00::/8`), or `unix` (every peer of a Unix stream
    /// server).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an empty list (the server would refuse every connection)
    /// or an entry that is not an address, a network or `unix`, naming it.
    ///
    /// # Examples
    ///
    /// See [`ProxyProtocol`].
    pub fn trusted<I, T>(sources: I) -> Result<ProxyProtocol>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let trusted = sources
            .into_iter()
            .map(|source| parse_source(source.as_ref().trim()))
            .collect::<Result<Vec<_>>>()?;
        if trusted.is_empty() {
            return Err(invalid(
                "no trusted source: give the addresses or networks of the proxies (such as \
                 127.0.0.1 or 10.0.0.0/8); with none, every connection would be refused",
            ));
        }
        Ok(ProxyProtocol {
            trusted,
            header_timeout: DEFAULT_PROXY_HEADER_TIMEOUT,
            max_header_len: DEFAULT_PROXY_HEADER_LIMIT,
        })
    }

    /// How long after the accept the whole header may take to come (default
    /// [`DEFAULT_PROXY_HEADER_TIMEOUT`], 5 s); past it the connection is refused (a
    /// `TimedOut` failure naming this option). Zero is refused when the server is made.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::ProxyProtocol;
    /// use std::time::Duration;
    ///
    /// let proxy = ProxyProtocol::trusted(["127.0.0.1"])?.header_timeout(Duration::from_secs(1));
    /// assert_eq!(proxy.timeout(), Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The longest header accepted, in bytes (default [`DEFAULT_PROXY_HEADER_LIMIT`], 4096):
    /// a v2 header may carry up to 64 KiB of TLVs, and one that says it is longer than this
    /// is refused before it is read, its message naming this option. At least 232 (a v2
    /// header with Unix addresses), else refused when the server is made; a v1 header is 107
    /// bytes at most whatever this says.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::ProxyProtocol;
    ///
    /// let proxy = ProxyProtocol::trusted(["127.0.0.1"])?.max_header_len(65_551);
    /// assert_eq!(proxy.header_limit(), 65_551);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_header_len(mut self, bytes: usize) -> Self {
        self.max_header_len = bytes;
        self
    }

    /// The header's deadline ([`header_timeout`](Self::header_timeout)).
    ///
    /// # Examples
    ///
    /// See [`DEFAULT_PROXY_HEADER_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.header_timeout
    }

    /// The longest header accepted ([`max_header_len`](Self::max_header_len)).
    ///
    /// # Examples
    ///
    /// See [`DEFAULT_PROXY_HEADER_LIMIT`].
    pub fn header_limit(&self) -> usize {
        self.max_header_len
    }

    /// Whether a connection from `peer` may send a header (an IPv4 peer of a dual-stack
    /// socket, `::ffff:a.b.c.d`, is taken as `a.b.c.d`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::ProxyProtocol;
    /// use sockserve_server::socket::Address;
    ///
    /// let proxy = ProxyProtocol::trusted(["127.0.0.0/8", "unix"])?;
    /// assert!(proxy.trusts(&"127.0.0.9:4000".parse()?));
    /// assert!(proxy.trusts(&"[::ffff:127.0.0.1]:4000".parse()?));
    /// assert!(!proxy.trusts(&"[::1]:4000".parse()?));
    /// assert!(proxy.trusts(&Address::Unnamed)); // a Unix stream client
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusts(&self, peer: &Address) -> bool {
        match peer.as_inet() {
            Some(inet) => {
                let ip = inet.ip().to_canonical();
                self.trusted.iter().any(|t| match t {
                    Trusted::Network(net, prefix) => in_network(ip, *net, *prefix),
                    Trusted::Unix => false,
                })
            }
            None => self.trusted.contains(&Trusted::Unix),
        }
    }

    /// Refuses the values no server can work with (at build time).
    pub(crate) fn check(&self) -> Result<()> {
        if self.header_timeout.is_zero() {
            return Err(Error::InvalidOption {
                option: "ProxyProtocol::header_timeout",
                reason: "0 would refuse every connection before its header could come; give \
                         the time a proxy may take to send it (default 5 s)"
                    .to_owned(),
            });
        }
        if self.max_header_len < SHORTEST_LIMIT {
            return Err(Error::InvalidOption {
                option: "ProxyProtocol::max_header_len",
                reason: format!(
                    "{} bytes cannot hold a v2 header with Unix addresses ({SHORTEST_LIMIT} \
                     bytes); give at least that (default {DEFAULT_PROXY_HEADER_LIMIT})",
                    self.max_header_len
                ),
            });
        }
        Ok(())
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        option: "ProxyProtocol::trusted",
        reason: reason.into(),
    }
}

fn parse_source(source: &str) -> Result<Trusted> {
    if source.eq_ignore_ascii_case("unix") {
        return Ok(Trusted::Unix);
    }
    let bad = || {
        invalid(format!(
            "{source:?} is not an address (127.0.0.1, ::1), a network (10.0.0.0/8, fd00::/8) \
             or `unix`"
        ))
    };
    let (address, prefix) = match source.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (source, None),
    };
    let ip: IpAddr = address.parse().map_err(|_| bad())?;
    let ip = ip.to_canonical();
    let longest = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= longest),
        None => Some(longest),
    }
    .ok_or_else(bad)?;
    Ok(Trusted::Network(ip, prefix))
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => (u32::from(ip).into(), u32::from(net).into(), 32),
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        _ => return false,
    };
    let mask = match prefix {
        0 => 0,
        p => u128::MAX << (bits - u32::from(p)) & (u128::MAX >> (128 - bits)),
    };
    ip & mask == net & mask
}

/// What a whole header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// The connection relays this client.
    Proxied(Address),
    /// The connection is the proxy's own (v2 `LOCAL`, an unspecified family, v1 `UNKNOWN`).
    Local,
}

/// How far the header has come.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Whole: what it says. The bytes after it are still on the connection.
    Done(Header),
    /// Not whole yet: nothing more to read now.
    Pending,
    /// The connection ended before the header's first byte.
    Closed,
}

/// Reads a header from a connection without blocking, taking its bytes and no more.
pub(crate) struct HeaderReader {
    /// The header's bytes taken so far.
    taken: Vec<u8>,
    limit: usize,
}

impl fmt::Debug for HeaderReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderReader")
            .field("taken", &self.taken.len())
            .field("limit", &self.limit)
            .finish()
    }
}

impl HeaderReader {
    pub(crate) fn new(limit: usize) -> HeaderReader {
        HeaderReader {
            taken: Vec::new(),
            limit,
        }
    }

    /// Takes what has come of the header, without waiting.
    ///
    /// # Errors
    ///
    /// `InvalidData` for anything but a whole, well-formed header within the limit, and
    /// `UnexpectedEof` for a header cut by the connection's end; the OS error of a read.
    pub(crate) fn step(&mut self, connection: &Socket) -> io::Result<Progress> {
        let mut window = [0u8; 512];
        loop {
            let wanted = self.window().min(window.len());
            let peeked = match connection.peek_nowait(&mut window[..wanted]) {
                Ok(0) if self.taken.is_empty() => return Ok(Progress::Closed),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the connection ended within its PROXY protocol header, after {} \
                             bytes",
                            self.taken.len()
                        ),
                    ));
                }
                Ok(n) => &window[..n],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let v2 = self.classify(peeked)?;
            let take = self.header_part(v2, peeked)?;
            if take == 0 {
                // Cannot be: a header whose bytes are all taken is whole (or refused) above.
                return Err(bad_header(
                    "a PROXY protocol header that reads no further".into(),
                ));
            }
            let start = self.taken.len();
            self.taken.resize(start + take, 0);
            let mut got = 0;
            while got < take {
                // The bytes were peeked: this read returns at once.
                match connection.recv_into(&mut self.taken[start + got..]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(header) = self.whole(v2)? {
                return Ok(Progress::Done(header));
            }
        }
    }

    /// How many bytes to look at (peeked, not taken): the rest of a v2 header whose length is
    /// known, the most a v1 header may still have, or, before the kind is known, as many as
    /// either may have without TLVs (one look, one read for most headers).
    fn window(&self) -> usize {
        let taken = self.taken.len();
        let v2 = V2_SIGNATURE.starts_with(&self.taken[..taken.min(V2_SIGNATURE.len())]);
        match (v2, self.stated_length(&[])) {
            (true, Some(length)) => length.saturating_sub(taken).max(1),
            (true, None) => SHORTEST_LIMIT - taken,
            (false, _) => V1_LONGEST.saturating_sub(taken).max(1),
        }
    }

    /// A v2 header's whole length, once its 16 fixed bytes are among those taken and `next`.
    fn stated_length(&self, next: &[u8]) -> Option<usize> {
        let taken = self.taken.len();
        let byte = |i: usize| match i.checked_sub(taken) {
            None => self.taken.get(i).copied(),
            Some(j) => next.get(j).copied(),
        };
        let length = u16::from_be_bytes([byte(14)?, byte(15)?]);
        Some(V2_FIXED + usize::from(length))
    }

    /// How many of the bytes `peeked` are the header's: a v2 header's up to its stated length
    /// (refused at once if that is over the limit), a v1 header's up to its LF.
    fn header_part(&self, v2: bool, peeked: &[u8]) -> io::Result<usize> {
        let taken = self.taken.len();
        if !v2 {
            let room = &peeked[..peeked.len().min(V1_LONGEST.saturating_sub(taken))];
            return Ok(room
                .iter()
                .position(|&b| b == b'\n')
                .map_or(room.len(), |at| at + 1));
        }
        match self.stated_length(peeked) {
            Some(length) if length > self.limit => Err(bad_header(format!(
                "a PROXY protocol v2 header of {length} bytes, over the limit of {} \
                 (ProxyProtocol::max_header_len)",
                self.limit
            ))),
            Some(length) => Ok(length.saturating_sub(taken).min(peeked.len())),
            None => Ok(peeked.len()),
        }
    }

    /// Whether the header taken so far and `next` are v2 (else v1); neither is an error.
    fn classify(&self, next: &[u8]) -> io::Result<bool> {
        let mut head = [0u8; 12];
        let known = self.taken.len().min(head.len());
        head[..known].copy_from_slice(&self.taken[..known]);
        let more = next.len().min(head.len() - known);
        head[known..known + more].copy_from_slice(&next[..more]);
        let head = &head[..known + more];
        if V2_SIGNATURE.starts_with(head) {
            return Ok(true);
        }
        let v1 = head.len().min(V1_PREFIX.len());
        if head[..v1] == V1_PREFIX[..v1] {
            return Ok(false);
        }
        Err(bad_header(format!(
            "no PROXY protocol header from a trusted proxy: the connection starts with {:?}; \
             the proxy must send one (HAProxy: send-proxy or send-proxy-v2 on the server \
             line)",
            String::from_utf8_lossy(head)
        )))
    }

    /// The header, if the bytes taken are all of it.
    fn whole(&self, v2: bool) -> io::Result<Option<Header>> {
        let taken = &self.taken;
        if v2 {
            let whole = taken.len() >= V2_FIXED
                && taken.len()
                    == V2_FIXED + usize::from(u16::from_be_bytes([taken[14], taken[15]]));
            return whole.then(|| parse_v2(taken)).transpose();
        }
        if taken.last() == Some(&b'\n') {
            return parse_v1(taken).map(Some);
        }
        if taken.len() >= V1_LONGEST {
            return Err(bad_header(format!(
                "a PROXY protocol v1 header with no CRLF in its first {V1_LONGEST} bytes, the \
                 longest one can be"
            )));
        }
        Ok(None)
    }
}

fn bad_header(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A whole v2 header (signature to its stated length).
pub(crate) fn parse_v2(bytes: &[u8]) -> io::Result<Header> {
    use ppp::v2::{Addresses, Command};
    let malformed =
        |e: ppp::v2::ParseError| bad_header(format!("a malformed PROXY v2 header: {e}"));
    let header = ppp::v2::Header::try_from(bytes).map_err(malformed)?;
    // A TLV that runs past the header's end is malformed too, even if it is not used.
    for tlv in header.tlvs() {
        tlv.map_err(malformed)?;
    }
    if header.command == Command::Local {
        return Ok(Header::Local);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => {
            Header::Proxied(SocketAddrV4::new(a.source_address, a.source_port).into())
        }
        Addresses::IPv6(a) => {
            Header::Proxied(SocketAddrV6::new(a.source_address, a.source_port, 0, 0).into())
        }
        Addresses::Unix(a) => Header::Proxied(unix_address(&a.source)),
        Addresses::Unspecified => Header::Local,
    })
}

/// A whole v1 header (`PROXY` to its CRLF).
pub(crate) fn parse_v1(bytes: &[u8]) -> io::Result<Header> {
    use ppp::v1::Addresses;
    let malformed = |e: &dyn fmt::Display| {
        bad_header(format!(
            "a malformed PROXY v1 header {:?}: {e}",
            String::from_utf8_lossy(bytes)
        ))
    };
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(&e))?;
    let header = ppp::v1::Header::try_from(text).map_err(|e| malformed(&e))?;
    Ok(match header.addresses {
        Addresses::Tcp4(a) => {
            Header::Proxied(SocketAddrV4::new(a.source_address, a.source_port).into())
        }
        Addresses::Tcp6(a) => {
            Header::Proxied(SocketAddrV6::new(a.source_address, a.source_port, 0, 0).into())
        }
        Addresses::Unknown => Header::Local,
    })
}

/// A v2 header's Unix address (108 bytes, NUL-padded; a leading NUL: an abstract name).
fn unix_address(raw: &[u8; 108]) -> Address {
    match raw.split_first() {
        Some((0, rest)) => {
            let end = rest.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
            match end {
                0 => Address::Unnamed,
                end => Address::Abstract(rest[..end].to_vec()),
            }
        }
        _ => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            Address::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(&raw[..end])))
        }
    }
}

/// The job's preamble with the PROXY protocol on: the peer is checked, the header read (the
/// connection waits for it in the reactor, or on this thread in a forked child), the client
/// set, then `verify_request` and the request's setup.
pub(crate) fn read_header<R: Request, H: Handler<R>>(
    proxy: Arc<ProxyProtocol>,
    start: Start<R, H>,
    ticket: Option<InFlight>,
) {
    let Some(connection) = start.connection.clone() else {
        // Only stream servers have the option (its builder method).
        return start.run(ticket, None);
    };
    if !proxy.trusts(&start.client_address) {
        let refused = io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "a connection from {}, which is not a trusted proxy \
                 (ProxyProtocol::trusted), refused",
                start.client_address
            ),
        );
        return start.end(
            Some(HandlerError::failed(Stage::Setup, refused)),
            ticket,
            None,
        );
    }
    Box::new(Preamble {
        reader: HeaderReader::new(proxy.max_header_len),
        deadline: Instant::now() + proxy.header_timeout,
        proxy,
        start,
        connection,
        slot: None,
        lingered: false,
    })
    .advance(ticket)
}

/// A connection whose PROXY header is being read.
struct Preamble<R: Request, H> {
    reader: HeaderReader,
    proxy: Arc<ProxyProtocol>,
    deadline: Instant,
    start: Start<R, H>,
    connection: Arc<Socket>,
    slot: Option<usize>,
    /// It waited on its worker once already (see `Waiting::linger`).
    lingered: bool,
}

impl<R: Request, H: Handler<R>> Preamble<R, H> {
    /// Reads what has come; then, the header whole, the request goes on; else it waits: in the
    /// reactor when there is a ticket to hold meanwhile (first, once, on this thread for a
    /// millisecond when the pool has room, as a turn lingers), on this thread when there is
    /// none (a forked child).
    fn advance(mut self: Box<Self>, mut ticket: Option<InFlight>) {
        loop {
            match self.reader.step(&self.connection) {
                Ok(Progress::Done(header)) => return (*self).accept(header, ticket),
                Ok(Progress::Closed) => {
                    log::debug!(
                        "{} closed before sending a PROXY header",
                        self.start.client_address
                    );
                    return (*self).end(None, ticket);
                }
                Ok(Progress::Pending) => {}
                Err(e) => return (*self).end(Some(HandlerError::failed(Stage::Setup, e)), ticket),
            }
            if Instant::now() >= self.deadline {
                let error = self.timed_out();
                return (*self).end(Some(error), ticket);
            }
            let Some(held) = ticket.take() else {
                match self.connection.wait_readable_by(Some(self.deadline)) {
                    Ok(()) => continue,
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        let error = self.timed_out();
                        return (*self).end(Some(error), None);
                    }
                    Err(e) => {
                        return (*self).end(Some(HandlerError::failed(Stage::Setup, e)), None);
                    }
                }
            };
            if !self.lingered {
                if let Some(linger) = self.start.waiting.linger() {
                    // A pool with room: the rest of the header (which a proxy sends at once)
                    // is waited for here briefly, once, before the connection parks.
                    self.lingered = true;
                    let until = (Instant::now() + linger).min(self.deadline);
                    if self.connection.wait_readable_by(Some(until)).is_ok() {
                        ticket = Some(held);
                        continue;
                    }
                }
            }
            let waiting = Arc::clone(&self.start.waiting);
            match waiting.park(self, held) {
                Ok(()) => return,
                // The server began to close meanwhile.
                Err(Unparked::Refused(waiter, held)) => {
                    return waiter.close(Close::Stopping, Some(held));
                }
                // More of it (or its end) came meanwhile: the next step reads it.
                Err(Unparked::Waited(this, held, _)) => {
                    self = this;
                    ticket = Some(held);
                }
            }
        }
    }

    /// The header is whole: the client it names, `verify_request`, the setup.
    fn accept(self, header: Header, ticket: Option<InFlight>) {
        let Preamble {
            mut start, slot, ..
        } = self;
        if let Header::Proxied(client) = header {
            start.client_address = client;
        }
        if !start.verify() {
            return start.end(None, ticket, slot);
        }
        start.run(ticket, slot);
    }

    fn end(self, error: Option<HandlerError>, ticket: Option<InFlight>) {
        let Preamble { start, slot, .. } = self;
        start.end(error, ticket, slot);
    }

    fn timed_out(&self) -> HandlerError {
        let error = io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no whole PROXY protocol header within {:?} of the accept \
                 (ProxyProtocol::header_timeout)",
                self.proxy.header_timeout
            ),
        );
        HandlerError::failed(Stage::Setup, error)
    }
}

impl<R: Request, H: Handler<R>> Waiter for Preamble<R, H> {
    fn connection(&self) -> Option<&Arc<Socket>> {
        Some(&self.connection)
    }

    fn client_address(&self) -> &Address {
        &self.start.client_address
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn poll_input(&self) -> Option<Waited> {
        Waited::poll(&self.connection)
    }

    fn slot(&self) -> Option<usize> {
        self.slot
    }

    fn set_slot(&mut self, slot: usize) {
        self.slot = Some(slot);
    }

    fn resume(self: Box<Self>, ticket: Option<InFlight>) {
        self.advance(ticket);
    }

    fn close(self: Box<Self>, why: Close, ticket: Option<InFlight>) {
        match why {
            Close::TimedOut => {
                let error = self.timed_out();
                (*self).end(Some(error), ticket);
            }
            // The end, a reset or a header cut short: the read tells which, and says so.
            Close::Gone => self.advance(ticket),
            Close::Stopping => (*self).end(None, ticket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder as V2, Command, IPv4, IPv6, Protocol, Type as Tlv, Version};
    use socket::{Family, Type, socketpair};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V1_TCP4: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n";

    fn v2_tcp4() -> Vec<u8> {
        let addresses = IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 51000, 443);
        V2::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
            .build()
            .expect("a v2 header")
    }

    fn client() -> Address {
        SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 7), 51000).into()
    }

    /// A connection that has received `bytes`; the sender is kept open unless `end`.
    fn connection(bytes: &[u8], end: bool) -> (Socket, Option<Socket>) {
        let (server, sender) = socketpair(Family::Unix, Type::Stream).expect("socketpair");
        sender.sendall(bytes).expect("send");
        (server, (!end).then_some(sender))
    }

    /// One step of a reader over a connection that has received `bytes` (and ended, if
    /// `end`), and the connection, to see what is left on it.
    fn read(bytes: &[u8], end: bool, limit: usize) -> (io::Result<Progress>, Socket) {
        let (server, _sender) = connection(bytes, end);
        let mut reader = HeaderReader::new(limit);
        let outcome = reader.step(&server);
        (outcome, server)
    }

    /// The error of one step over `bytes` (the sender kept open), which must mention `what`.
    fn refusal(bytes: &[u8], what: &str) -> io::Error {
        let (outcome, _server) = read(bytes, false, DEFAULT_PROXY_HEADER_LIMIT);
        let error = outcome.expect_err(what);
        assert!(error.to_string().contains(what), "{error}");
        error
    }

    fn rest(server: &Socket) -> Vec<u8> {
        let mut buf = [0u8; 256];
        match server.peek_nowait(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("peek: {e}"),
        }
    }

    #[test]
    fn v1_names_the_client_and_leaves_what_follows() {
        let mut bytes = V1_TCP4.to_vec();
        bytes.extend_from_slice(b"GET / HTTP/1.0\r\n");
        let (outcome, server) = read(&bytes, false, DEFAULT_PROXY_HEADER_LIMIT);
        assert_eq!(outcome.unwrap(), Progress::Done(Header::Proxied(client())));
        assert_eq!(rest(&server), b"GET / HTTP/1.0\r\n");

        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\nafter";
        let (outcome, server) = read(v6, false, DEFAULT_PROXY_HEADER_LIMIT);
        let expected = SocketAddrV6::new("2001:db8::7".parse().unwrap(), 51000, 0, 0);
        assert_eq!(
            outcome.unwrap(),
            Progress::Done(Header::Proxied(expected.into()))
        );
        assert_eq!(rest(&server), b"after");
    }

    #[test]
    fn v1_unknown_and_v2_local_keep_the_proxy() {
        // `PROXY UNKNOWN\r\n` is 15 bytes: shorter than the 16 first peeked.
        let (outcome, server) = read(b"PROXY UNKNOWN\r\nx", false, DEFAULT_PROXY_HEADER_LIMIT);
        assert_eq!(outcome.unwrap(), Progress::Done(Header::Local));
        assert_eq!(rest(&server), b"x");

        // HAProxy's health check (check-send-proxy): LOCAL, no address.
        let local = V2::with_addresses(
            Version::Two | Command::Local,
            Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(local.len(), 16);
        let mut bytes = local.clone();
        bytes.extend_from_slice(b"y");
        let (outcome, server) = read(&bytes, false, DEFAULT_PROXY_HEADER_LIMIT);
        assert_eq!(outcome.unwrap(), Progress::Done(Header::Local));
        assert_eq!(rest(&server), b"y");

        // LOCAL with addresses: they are the proxy's own, not a client's.
        let addresses = IPv4::new([127, 0, 0, 1], [127, 0, 0, 1], 1, 2);
        let local = V2::with_addresses(Version::Two | Command::Local, Protocol::Stream, addresses)
            .build()
            .unwrap();
        assert_eq!(parse_v2(&local).unwrap(), Header::Local);
    }

    #[test]
    fn v2_names_the_client_with_its_tlvs_and_leaves_what_follows() {
        let addresses = IPv6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            51000,
            443,
        );
        let header = V2::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
            .write_tlv(Tlv::UniqueId, b"abc-123")
            .unwrap()
            .write_tlv(Tlv::Authority, b"example.com")
            .unwrap()
            .build()
            .unwrap();
        let mut bytes = header;
        bytes.extend_from_slice(b"payload");
        let (outcome, server) = read(&bytes, false, DEFAULT_PROXY_HEADER_LIMIT);
        let expected = SocketAddrV6::new("2001:db8::7".parse().unwrap(), 51000, 0, 0);
        assert_eq!(
            outcome.unwrap(),
            Progress::Done(Header::Proxied(expected.into()))
        );
        assert_eq!(rest(&server), b"payload");

        let (outcome, _server) = read(&v2_tcp4(), true, DEFAULT_PROXY_HEADER_LIMIT);
        assert_eq!(outcome.unwrap(), Progress::Done(Header::Proxied(client())));
    }

    #[test]
    fn v2_unix_addresses() {
        let mut source = [0u8; 108];
        source[..9].copy_from_slice(b"/run/a.sk");
        let unix = ppp::v2::Unix::new(source, [0; 108]);
        let header = V2::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, unix)
            .build()
            .unwrap();
        assert_eq!(
            parse_v2(&header).unwrap(),
            Header::Proxied(Address::Unix("/run/a.sk".into()))
        );
        let mut abstract_name = [0u8; 108];
        abstract_name[1..5].copy_from_slice(b"name");
        assert_eq!(
            unix_address(&abstract_name),
            Address::Abstract(b"name".to_vec())
        );
        assert_eq!(unix_address(&[0; 108]), Address::Unnamed);
    }

    /// Fed a byte at a time, the reader waits (`Pending`) until the last byte, takes the
    /// header's bytes and no more, and each byte it took is the header's.
    #[test]
    fn a_header_fed_a_byte_at_a_time_is_pending_until_whole() {
        for header in [V1_TCP4.to_vec(), v2_tcp4()] {
            let (server, sender) = socketpair(Family::Unix, Type::Stream).unwrap();
            let mut reader = HeaderReader::new(DEFAULT_PROXY_HEADER_LIMIT);
            for (at, byte) in header.iter().enumerate() {
                assert_eq!(
                    reader.step(&server).unwrap(),
                    Progress::Pending,
                    "at byte {at}"
                );
                sender.sendall(&[*byte]).unwrap();
            }
            sender.sendall(b"next").unwrap();
            assert_eq!(
                reader.step(&server).unwrap(),
                Progress::Done(Header::Proxied(client()))
            );
            assert_eq!(rest(&server), b"next");
        }
    }

    /// A header cut at any byte by the connection's end is a clear error, never a header
    /// nor a hang; cut before its first byte, a quiet end.
    #[test]
    fn a_header_truncated_at_every_byte_is_an_error() {
        for header in [V1_TCP4.to_vec(), v2_tcp4()] {
            let (outcome, _) = read(&[], true, DEFAULT_PROXY_HEADER_LIMIT);
            assert_eq!(outcome.unwrap(), Progress::Closed);
            for cut in 1..header.len() {
                let (outcome, _) = read(&header[..cut], true, DEFAULT_PROXY_HEADER_LIMIT);
                let error = outcome.expect_err("a truncated header");
                assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
                assert!(
                    error.to_string().contains(&format!("after {cut} bytes")),
                    "cut at {cut}: {error}"
                );
            }
        }
    }

    #[test]
    fn a_trusted_source_that_sends_no_header_is_refused() {
        for start in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\r\n\r\nxx",
            b"PROXX ",
            b"\x16\x03\x01",
        ] {
            let error = refusal(start, "no PROXY protocol header");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
        // A v1 line with no CRLF in 107 bytes.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(200, b'1');
        refusal(&long, "no CRLF in its first 107 bytes");
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b"PROXY TCP4 300.0.0.1 192.0.2.1 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
        ] {
            let error = refusal(bad, "malformed PROXY v1");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        }
        // v2 with version 3, with command 2, with a length too short for its addresses.
        let good = v2_tcp4();
        for (at, value) in [(12, 0x31u8), (12, 0x22), (15, 4)] {
            let mut bad = good.clone();
            bad[at] = value;
            if at == 15 {
                bad.truncate(16 + 4);
            }
            refusal(&bad, "malformed PROXY v2");
        }
    }

    #[test]
    fn oversized_or_malformed_tlvs_are_refused() {
        let addresses = IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 51000, 443);
        let big = V2::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
            .write_tlv(Tlv::NoOp, &[0u8; 5000])
            .unwrap()
            .build()
            .unwrap();
        // Refused from its fixed part alone: nothing is taken, the 5 KB are not read.
        let (outcome, server) = read(&big, false, DEFAULT_PROXY_HEADER_LIMIT);
        let error = outcome.expect_err("oversized");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let message = error.to_string();
        assert!(
            message.contains(&format!("{} bytes", big.len())),
            "{message}"
        );
        assert!(
            message.contains("ProxyProtocol::max_header_len"),
            "{message}"
        );
        assert_eq!(rest(&server), big[..256], "nothing was taken");
        // Its fixed part in two pieces: refused as soon as its length is known.
        let (server, sender) = socketpair(Family::Unix, Type::Stream).unwrap();
        let mut reader = HeaderReader::new(DEFAULT_PROXY_HEADER_LIMIT);
        sender.sendall(&big[..15]).unwrap();
        assert_eq!(reader.step(&server).unwrap(), Progress::Pending);
        sender.sendall(&big[15..16]).unwrap();
        let error = reader.step(&server).expect_err("oversized");
        assert!(
            error.to_string().contains("ProxyProtocol::max_header_len"),
            "{error}"
        );
        // Within a raised limit, the same header is whole.
        let (outcome, _server) = read(&big, true, 8192);
        assert_eq!(outcome.unwrap(), Progress::Done(Header::Proxied(client())));

        // A TLV whose length runs past the header's end.
        let mut bad = v2_tcp4();
        bad.extend_from_slice(&[0x04, 0x00, 0x10, 1, 2]);
        let length = (bad.len() - 16) as u16;
        bad[14..16].copy_from_slice(&length.to_be_bytes());
        refusal(&bad, "malformed PROXY v2");
    }

    #[test]
    fn trusted_sources_parse_and_match() {
        let proxy =
            ProxyProtocol::trusted(["10.0.0.0/8", " 192.0.2.1 ", "fd00::/8", "0.0.0.0/0"]).unwrap();
        assert!(proxy.trusts(&"10.200.0.1:1".parse().unwrap()));
        assert!(proxy.trusts(&"[fd12::1]:1".parse().unwrap()));
        assert!(!proxy.trusts(&"[fe80::1]:1".parse().unwrap()));
        assert!(!proxy.trusts(&Address::Unnamed));
        let only = ProxyProtocol::trusted(["192.0.2.1"]).unwrap();
        assert!(only.trusts(&"192.0.2.1:9".parse().unwrap()));
        assert!(!only.trusts(&"192.0.2.2:9".parse().unwrap()));
        let net = ProxyProtocol::trusted(["192.0.2.128/25"]).unwrap();
        assert!(net.trusts(&"192.0.2.200:9".parse().unwrap()));
        assert!(!net.trusts(&"192.0.2.100:9".parse().unwrap()));
        for bad in [
            "",
            "localhost",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::1/129",
            "1.2.3.4:80",
        ] {
            let error = ProxyProtocol::trusted([bad]).expect_err(bad);
            assert!(
                matches!(
                    error,
                    Error::InvalidOption {
                        option: "ProxyProtocol::trusted",
                        ..
                    }
                ),
                "{bad}: {error}"
            );
        }
        let zero = ProxyProtocol::trusted(["::1"])
            .unwrap()
            .header_timeout(Duration::ZERO);
        assert!(zero.check().is_err());
        let small = ProxyProtocol::trusted(["::1"]).unwrap().max_header_len(100);
        assert!(small.check().unwrap_err().to_string().contains("232"));
    }

    /// Property tests (fuzzing with bounded case counts) of the reader, the bytes fed in
    /// random pieces: whatever they are, it never panics, never takes a byte past a header,
    /// and ends (at the connection's end) with a header, a refusal or a quiet close; a valid
    /// header, whatever follows it, is read whole with what follows left on the connection.
    /// A longer run: `PROPTEST_CASES=20000 cargo test -p sockserve-server --lib props`.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Feeds `bytes` in pieces cut at `cuts` (sorted offsets), a step after each, then
        /// ends the connection: the outcome, and what is left on the connection.
        fn feed(bytes: &[u8], cuts: &[usize]) -> (io::Result<Progress>, Vec<u8>) {
            let (server, sender) = socketpair(Family::Unix, Type::Stream).unwrap();
            let mut reader = HeaderReader::new(DEFAULT_PROXY_HEADER_LIMIT);
            let mut from = 0;
            let mut sender = Some(sender);
            let mut ends = cuts.to_vec();
            ends.push(bytes.len());
            for &to in &ends {
                let to = to.clamp(from, bytes.len());
                if let Some(s) = &sender {
                    s.sendall(&bytes[from..to]).unwrap();
                }
                from = to;
                if to == bytes.len() {
                    sender = None; // the end
                }
                match reader.step(&server) {
                    Ok(Progress::Pending) => {}
                    outcome => {
                        // The rest comes too, for `drain` to see all that was not taken.
                        if let Some(s) = &sender {
                            s.sendall(&bytes[from..]).unwrap();
                        }
                        return (outcome, drain(&server));
                    }
                }
            }
            (reader.step(&server), drain(&server))
        }

        fn drain(server: &Socket) -> Vec<u8> {
            let mut left = Vec::new();
            let mut buf = [0u8; 4096];
            // What is there now (the sender wrote it all before): peeked, then taken.
            while let Ok(n @ 1..) = server.peek_nowait(&mut buf) {
                let n = server.recv_into(&mut buf[..n]).unwrap();
                left.extend_from_slice(&buf[..n]);
            }
            left
        }

        fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
            proptest::collection::vec(0..len.max(1), 0..8).prop_map(|mut c| {
                c.sort_unstable();
                c
            })
        }

        fn header() -> impl Strategy<Value = (Vec<u8>, Address)> {
            let v1 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| {
                let ip = Ipv4Addr::from(ip);
                let text = format!("PROXY TCP4 {ip} 192.0.2.1 {port} 443\r\n");
                (text.into_bytes(), SocketAddrV4::new(ip, port).into())
            });
            let v2 = (
                any::<[u8; 16]>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..600),
            )
                .prop_map(|(ip, port, tlv)| {
                    let ip = Ipv6Addr::from(ip);
                    let addresses = IPv6::new(ip, Ipv6Addr::LOCALHOST, port, 443);
                    let header = V2::with_addresses(
                        Version::Two | Command::Proxy,
                        Protocol::Stream,
                        addresses,
                    )
                    .write_tlv(Tlv::NoOp, &tlv)
                    .unwrap()
                    .build()
                    .unwrap();
                    (header, SocketAddrV6::new(ip, port, 0, 0).into())
                });
            prop_oneof![v1, v2]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn any_bytes_end_in_a_header_a_refusal_or_a_close(
                bytes in proptest::collection::vec(any::<u8>(), 0..700),
                cuts in cuts(700),
            ) {
                let (outcome, left) = feed(&bytes, &cuts);
                match outcome {
                    Ok(Progress::Pending) => prop_assert!(false, "pending after the end"),
                    Ok(Progress::Closed) => prop_assert!(bytes.is_empty()),
                    // What was taken is a prefix; the rest is still there.
                    Ok(Progress::Done(_)) | Err(_) => {
                        prop_assert!(bytes.ends_with(&left));
                    }
                }
            }

            #[test]
            fn a_valid_header_is_read_whole_and_what_follows_is_left(
                (header, client) in header(),
                after in proptest::collection::vec(any::<u8>(), 0..64),
                cuts in cuts(800),
            ) {
                let bytes = [&header[..], &after[..]].concat();
                let (outcome, left) = feed(&bytes, &cuts);
                prop_assert_eq!(outcome.unwrap(), Progress::Done(Header::Proxied(client)));
                prop_assert_eq!(left, after);
            }
        }
    }
}
