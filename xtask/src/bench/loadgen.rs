//! The load generator: N client threads against one echo server (TCP, UDP or Unix stream) for a
//! fixed time, every echoed byte checked (against the request, or its transform: `basic_server`
//! uppercases), throughput and latency percentiles out.
//!
//! One OS thread per connection, blocking I/O: the simplest client that cannot itself be the
//! bottleneck at the rates a blocking server reaches, and one that measures what a user's
//! blocking client would see. Every thread connects first, then all start together (a barrier),
//! so connection setup is not counted in a persistent workload.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::integration::Reply;

/// Bytes per request (and per reply).
pub(crate) const PAYLOAD: usize = 64;
/// How long a client waits for a connect, a send or a reply before it calls the server stuck.
const IO_LIMIT: Duration = Duration::from_secs(5);

/// How long a UDP client waits for an answer before it sends the datagram again (loopback
/// drops a datagram only when a socket buffer overflows, but a lost one must not stall the run).
const UDP_RESEND_AFTER: Duration = Duration::from_secs(1);
/// How often a UDP client sends a datagram before it calls the server stuck.
const UDP_TRIES: u32 = 5;

/// Where the server listens, and so which transport the clients use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// TCP.
    Tcp(SocketAddr),
    /// UDP: one socket per client, each datagram a request.
    Udp(SocketAddr),
    /// A Unix stream socket's path.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp {addr}"),
            Endpoint::Udp(addr) => write!(f, "udp {addr}"),
            Endpoint::Unix(path) => write!(f, "unix {}", path.display()),
        }
    }
}

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `connections` persistent connections, each sending a 64-byte request and waiting for its
    /// echo before the next (ping-pong).
    PingPong {
        /// Concurrent connections.
        connections: usize,
    },
    /// `connections` clients, each opening a new connection per 64-byte request and closing it
    /// after the echo.
    ConnectPerRequest {
        /// Concurrent clients.
        connections: usize,
    },
}

impl Workload {
    pub(crate) fn connections(self) -> usize {
        match self {
            Workload::PingPong { connections } | Workload::ConnectPerRequest { connections } => {
                connections
            }
        }
    }

    /// A short label for tables.
    pub(crate) fn label(self) -> String {
        match self {
            Workload::PingPong { connections } => {
                format!("ping-pong {PAYLOAD} B, {connections} conn")
            }
            Workload::ConnectPerRequest { connections } => {
                format!("new conn/request, {connections} clients")
            }
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Completed, checked requests.
    pub(crate) requests: u64,
    /// From the first client's start to the last client's end.
    pub(crate) elapsed: Duration,
    /// Every request's latency, sorted.
    latencies: Vec<Duration>,
    /// UDP datagrams sent again after no answer within [`UDP_RESEND_AFTER`].
    pub(crate) resends: u64,
    /// Connections (clients) that got no answer in the whole run.
    pub(crate) starved: usize,
    /// The fewest answers one connection got.
    pub(crate) min_per_connection: u64,
    /// The CPU time (user and system, every thread) the server spent in the window, when it
    /// was watched: on a shared machine, a steadier figure than the throughput.
    pub(crate) server_cpu: Option<Duration>,
}

impl Report {
    /// A report of `latencies` (in any order) over `elapsed`, with the answers each
    /// connection got.
    pub(crate) fn new(mut latencies: Vec<Duration>, elapsed: Duration, answered: &[u64]) -> Report {
        latencies.sort_unstable();
        Report {
            requests: latencies.len() as u64,
            elapsed,
            latencies,
            resends: 0,
            starved: answered.iter().filter(|&&n| n == 0).count(),
            min_per_connection: answered.iter().copied().min().unwrap_or(0),
            server_cpu: None,
        }
    }

    /// The server's CPU time per answered request, when it was watched.
    pub(crate) fn cpu_per_request(&self) -> Option<Duration> {
        let cpu = self.server_cpu?;
        (self.requests > 0).then(|| cpu / self.requests.try_into().unwrap_or(u32::MAX))
    }

    /// Requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (nearest rank), `p` in 0..=100.
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// Runs `workload` against the echo server at `endpoint` for `duration`. Any wrong byte, early
/// close, or stall longer than [`IO_LIMIT`] fails the whole run, naming the client. A new
/// connection per request needs a stream endpoint.
#[cfg(test)]
pub(crate) fn run(
    endpoint: &Endpoint,
    workload: Workload,
    expect: Reply,
    duration: Duration,
) -> Result<Report> {
    run_watching(endpoint, workload, expect, duration, None)
}

/// Runs `workload` against the echo server at `endpoint` for `duration`, as `run` (the tests'
/// form) does, reading the CPU time of the server process `server` (if given) as the clients
/// start and once they are done.
pub(crate) fn run_watching(
    endpoint: &Endpoint,
    workload: Workload,
    expect: Reply,
    duration: Duration,
    server: Option<u32>,
) -> Result<Report> {
    if matches!(
        (endpoint, workload),
        (Endpoint::Udp(_), Workload::ConnectPerRequest { .. })
    ) {
        return Err("a new connection per request needs a stream endpoint, not UDP".into());
    }
    let n = workload.connections();
    let barrier = Arc::new(Barrier::new(n + 1));
    let workers: Vec<_> = (0..n)
        .map(|id| {
            let barrier = Arc::clone(&barrier);
            let endpoint = endpoint.clone();
            thread::spawn(move || worker(id, &endpoint, workload, expect, duration, &barrier))
        })
        .collect();
    // Every worker reaches the barrier (connected, or having failed to), so this cannot hang.
    barrier.wait();
    let cpu_before = server.map(cpu_time).transpose()?;
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    let mut latencies = Vec::new();
    let mut resends = 0;
    let mut answered = Vec::new();
    let mut failures = Vec::new();
    for (id, handle) in workers.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(stats)) => {
                answered.push(stats.latencies.len() as u64);
                latencies.extend(stats.latencies);
                resends += stats.resends;
                start = start.min(Some(stats.start)).or(Some(stats.start));
                end = end.max(Some(stats.end));
            }
            Ok(Err(e)) => failures.push(format!("client {id}: {e}")),
            Err(_) => failures.push(format!("client {id}: panicked")),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} of {n} client(s) failed ({} against {endpoint}), first {}\n  {}",
            failures.len(),
            workload.label(),
            failures[0],
            failures.join("\n  ")
        )
        .into());
    }
    let server_cpu = match (server, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time(pid)?.saturating_sub(before)),
        _ => None,
    };
    let elapsed = match (start, end) {
        (Some(start), Some(end)) => end.duration_since(start),
        _ => Duration::ZERO,
    };
    Ok(Report {
        resends,
        server_cpu,
        ..Report::new(latencies, elapsed, &answered)
    })
}

/// The CPU time, user and system, of every thread of process `pid` so far
/// (`/proc/PID/stat`, in clock ticks).
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // After the command's `(name)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| format!("{path}: too few fields"))?
            .parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .filter(|&n| n > 0)
        .unwrap_or(100) as u64;
    Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
}

/// What one client thread measured.
struct WorkerStats {
    latencies: Vec<Duration>,
    resends: u64,
    start: Instant,
    end: Instant,
}

fn worker(
    id: usize,
    endpoint: &Endpoint,
    workload: Workload,
    expect: Reply,
    duration: Duration,
    barrier: &Barrier,
) -> Result<WorkerStats, String> {
    let persistent = match workload {
        Workload::PingPong { .. } => Some(Conn::open(endpoint)),
        Workload::ConnectPerRequest { .. } => None,
    };
    barrier.wait();
    let mut persistent = persistent
        .transpose()
        .map_err(|e| format!("connect: {e}"))?;
    // All workers leave the barrier together, so their deadlines agree to within microseconds.
    let start = Instant::now();
    let deadline = start + duration;
    let mut latencies = Vec::with_capacity(1024);
    let mut request = [0u8; PAYLOAD];
    let mut reply = [0u8; PAYLOAD];
    let mut seq: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        fill(&mut request, id, seq);
        let mut expected = request;
        expect.apply(&mut expected);
        match &mut persistent {
            Some(conn) => conn.exchange(&request, &mut reply),
            None => Conn::open(endpoint).and_then(|mut conn| {
                conn.exchange(&request, &mut reply)?;
                // Closing first is what a short-lived client does; loopback reuses the
                // TIME_WAIT ports (net.ipv4.tcp_tw_reuse), so a few seconds of this is fine.
                conn.close()
            }),
        }
        .map_err(|e| format!("request {seq}: {e}"))?;
        latencies.push(now.elapsed());
        if reply != expected {
            let at = reply.iter().zip(&expected).position(|(a, b)| a != b);
            return Err(format!(
                "request {seq}: the reply differs from the expected ({expect:?}) at byte {at:?}: \
                 sent {request:02x?}, got {reply:02x?}"
            ));
        }
        seq += 1;
    }
    let resends = match &persistent {
        Some(Conn::Udp { resends, .. }) => *resends,
        _ => 0,
    };
    if let Some(conn) = persistent {
        // A clean close, so the server sees EOF rather than a reset.
        let _ = conn.close();
    }
    Ok(WorkerStats {
        latencies,
        resends,
        start,
        end: Instant::now(),
    })
}

/// One client's connection (or UDP socket).
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Udp {
        socket: UdpSocket,
        /// The previous answer: a late duplicate of it (after a resend) is skipped.
        last: Option<[u8; PAYLOAD]>,
        resends: u64,
    },
}

impl Conn {
    fn open(endpoint: &Endpoint) -> io::Result<Conn> {
        match endpoint {
            Endpoint::Tcp(addr) => connect(*addr).map(Conn::Tcp),
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(IO_LIMIT))?;
                stream.set_write_timeout(Some(IO_LIMIT))?;
                Ok(Conn::Unix(stream))
            }
            Endpoint::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([127, 0, 0, 1], 0).into()
                } else {
                    (std::net::Ipv6Addr::LOCALHOST, 0).into()
                };
                let socket = UdpSocket::bind(local)?;
                socket.connect(addr)?;
                socket.set_read_timeout(Some(UDP_RESEND_AFTER))?;
                Ok(Conn::Udp {
                    socket,
                    last: None,
                    resends: 0,
                })
            }
        }
    }

    /// One request and its whole echo (which may come back in several pieces).
    fn exchange(&mut self, request: &[u8], reply: &mut [u8; PAYLOAD]) -> io::Result<()> {
        match self {
            Conn::Tcp(stream) => exchange(stream, request, reply),
            Conn::Unix(stream) => exchange(stream, request, reply),
            Conn::Udp {
                socket,
                last,
                resends,
            } => {
                for attempt in 0..UDP_TRIES {
                    if attempt > 0 {
                        *resends += 1;
                    }
                    socket.send(request)?;
                    loop {
                        let mut buf = [0u8; PAYLOAD + 1];
                        match socket.recv(&mut buf) {
                            Ok(n) if n == PAYLOAD && last.is_some_and(|l| l[..] == buf[..n]) => {
                                continue; // the answer to an earlier try of the previous request
                            }
                            Ok(n) if n == PAYLOAD => {
                                reply.copy_from_slice(&buf[..n]);
                                *last = Some(*reply);
                                return Ok(());
                            }
                            Ok(n) => {
                                return Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    format!("a {n}-byte answer to a {PAYLOAD}-byte datagram"),
                                ));
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) =>
                            {
                                break; // lost: send it again
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer to {UDP_TRIES} tries of {UDP_RESEND_AFTER:?} each"),
                ))
            }
        }
    }

    /// Closes a stream (both directions); nothing to do for UDP.
    fn close(self) -> io::Result<()> {
        match self {
            Conn::Tcp(stream) => stream.shutdown(Shutdown::Both),
            Conn::Unix(stream) => stream.shutdown(Shutdown::Both),
            Conn::Udp { .. } => Ok(()),
        }
        .or_else(ignore_not_connected)
    }
}

/// A request whose bytes differ by client and by sequence number, so a reply that belongs to
/// another request or another connection is caught, not only a corrupted one.
pub(crate) fn fill(buf: &mut [u8; PAYLOAD], id: usize, seq: u64) {
    let seed =
        (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = (seed.rotate_left((i % 64) as u32) >> 56) as u8 ^ i as u8;
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_LIMIT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;
    Ok(stream)
}

/// One request and its whole echo on a stream (which may come back in several pieces).
fn exchange(stream: &mut impl ReadWrite, request: &[u8], reply: &mut [u8]) -> io::Result<()> {
    stream.write_all(request)?;
    stream.read_exact(reply).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete echo within {IO_LIMIT:?}"),
        ),
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection before echoing the whole request",
        ),
        _ => e,
    })
}

/// A stream of either family.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The server may already have closed its end after our request; that is not a failure.
fn ignore_not_connected(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotConnected {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A thread-per-connection echo server on 127.0.0.1:0 that applies `corrupt` to what it
    /// echoes; it lives until the test process ends.
    fn echo_server(corrupt: fn(&mut [u8])) -> SocketAddr {
        echo_server_serving(usize::MAX, corrupt)
    }

    /// [`echo_server`], serving only its first `serve` connections: the others are accepted
    /// and left waiting (held open, never read).
    pub(in crate::bench) fn echo_server_serving(
        serve: usize,
        corrupt: fn(&mut [u8]),
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut held = Vec::new();
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                if i >= serve {
                    held.push(stream);
                    continue;
                }
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        corrupt(&mut buf[..n]);
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    const SHORT: Duration = Duration::from_millis(200);

    #[test]
    fn both_workloads_run_and_count_against_an_honest_server() {
        let addr = echo_server(|_| {});
        for workload in [
            Workload::PingPong { connections: 3 },
            Workload::ConnectPerRequest { connections: 2 },
        ] {
            let report = run(&Endpoint::Tcp(addr), workload, Reply::Echo, SHORT).unwrap();
            assert!(report.requests > 0, "{workload:?}: {report:?}");
            assert!(report.elapsed >= SHORT, "{workload:?}: {report:?}");
            assert!(report.percentile(50.0) <= report.percentile(99.0));
            assert!(report.rate() > 0.0);
        }
    }

    #[test]
    fn one_wrong_byte_fails_the_run() {
        let addr = echo_server(|buf| {
            if let Some(last) = buf.last_mut() {
                *last ^= 1;
            }
        });
        let err = run(
            &Endpoint::Tcp(addr),
            Workload::PingPong { connections: 2 },
            Reply::Echo,
            SHORT,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("differs from the expected"),
            "{err}"
        );
    }

    #[test]
    fn an_uppercasing_server_is_checked_as_one() {
        let addr = echo_server(<[u8]>::make_ascii_uppercase);
        let ping_pong = Workload::PingPong { connections: 1 };
        let report = run(&Endpoint::Tcp(addr), ping_pong, Reply::Upper, SHORT).unwrap();
        assert!(report.requests > 0);
        // The requests contain ASCII letters, so taking it for a plain echo server fails.
        let err = run(&Endpoint::Tcp(addr), ping_pong, Reply::Echo, SHORT).unwrap_err();
        assert!(
            err.to_string().contains("differs from the expected"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_connection_fails_the_run() {
        // Bind then drop: nothing listens on that port any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = run(
            &Endpoint::Tcp(addr),
            Workload::PingPong { connections: 1 },
            Reply::Echo,
            SHORT,
        )
        .unwrap_err();
        assert!(err.to_string().contains("connect"), "{err}");
    }

    #[test]
    fn udp_and_unix_endpoints_run_against_the_std_floor() {
        let dir = crate::integration::temp_dir("loadgen-test").unwrap();
        let path = dir.path().join("echo.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        thread::spawn(move || crate::bench::std_server::serve_unix(&unix));
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_addr = udp.local_addr().unwrap();
        thread::spawn(move || crate::bench::std_server::serve_udp(&udp));
        for endpoint in [Endpoint::Unix(path.clone()), Endpoint::Udp(udp_addr)] {
            let workload = Workload::PingPong { connections: 3 };
            let report = run(&endpoint, workload, Reply::Echo, SHORT).unwrap();
            assert!(report.requests > 0, "{endpoint}: {report:?}");
        }
        let new_conn = Workload::ConnectPerRequest { connections: 2 };
        let report = run(&Endpoint::Unix(path), new_conn, Reply::Echo, SHORT).unwrap();
        assert!(report.requests > 0, "{report:?}");
        let err = run(&Endpoint::Udp(udp_addr), new_conn, Reply::Echo, SHORT).unwrap_err();
        assert!(err.to_string().contains("stream endpoint"), "{err}");
    }

    #[test]
    fn requests_differ_by_client_and_sequence() {
        let (mut a, mut b, mut c) = ([0; PAYLOAD], [0; PAYLOAD], [0; PAYLOAD]);
        fill(&mut a, 0, 1);
        fill(&mut b, 1, 1);
        fill(&mut c, 0, 2);
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let answered = [60, 40, 0];
        let latencies = (1..=100).rev().map(Duration::from_micros).collect();
        let report = Report::new(latencies, Duration::from_secs(1), &answered);
        assert_eq!((report.starved, report.min_per_connection), (1, 0));
        assert_eq!(report.percentile(50.0), Duration::from_micros(50));
        assert_eq!(report.percentile(99.0), Duration::from_micros(99));
        assert_eq!(report.percentile(100.0), Duration::from_micros(100));
        assert_eq!(report.rate(), 100.0);
    }
}
