//! The load generator: N client threads against one echo server for a fixed time, every echoed
//! byte checked (against the request, or its transform: `basic_server` uppercases), throughput
//! and latency percentiles out.
//!
//! One OS thread per connection, blocking I/O: the simplest client that cannot itself be the
//! bottleneck at the rates a blocking server reaches, and one that measures what a user's
//! blocking client would see. Every thread connects first, then all start together (a barrier),
//! so connection setup is not counted in a persistent workload.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::integration::Reply;

/// Bytes per request (and per reply).
pub(crate) const PAYLOAD: usize = 64;
/// How long a client waits for a connect, a send or a reply before it calls the server stuck.
const IO_LIMIT: Duration = Duration::from_secs(5);

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
    fn connections(self) -> usize {
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
}

impl Report {
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

/// Runs `workload` against the echo server at `addr` for `duration`. Any wrong byte, early
/// close, or stall longer than [`IO_LIMIT`] fails the whole run, naming the client.
pub(crate) fn run(
    addr: SocketAddr,
    workload: Workload,
    expect: Reply,
    duration: Duration,
) -> Result<Report> {
    let n = workload.connections();
    let barrier = Arc::new(Barrier::new(n + 1));
    let workers: Vec<_> = (0..n)
        .map(|id| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || worker(id, addr, workload, expect, duration, &barrier))
        })
        .collect();
    // Every worker reaches the barrier (connected, or having failed to), so this cannot hang.
    barrier.wait();
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for (id, handle) in workers.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(stats)) => {
                latencies.extend(stats.latencies);
                start = start.min(Some(stats.start)).or(Some(stats.start));
                end = end.max(Some(stats.end));
            }
            Ok(Err(e)) => failures.push(format!("client {id}: {e}")),
            Err(_) => failures.push(format!("client {id}: panicked")),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} against {addr}:\n  {}",
            workload.label(),
            failures.join("\n  ")
        )
        .into());
    }
    latencies.sort_unstable();
    Ok(Report {
        requests: latencies.len() as u64,
        elapsed: match (start, end) {
            (Some(start), Some(end)) => end.duration_since(start),
            _ => Duration::ZERO,
        },
        latencies,
    })
}

/// What one client thread measured.
struct WorkerStats {
    latencies: Vec<Duration>,
    start: Instant,
    end: Instant,
}

fn worker(
    id: usize,
    addr: SocketAddr,
    workload: Workload,
    expect: Reply,
    duration: Duration,
    barrier: &Barrier,
) -> Result<WorkerStats, String> {
    let persistent = match workload {
        Workload::PingPong { .. } => Some(connect(addr)),
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
            Some(stream) => exchange(stream, &request, &mut reply),
            None => connect(addr).and_then(|mut stream| {
                exchange(&mut stream, &request, &mut reply)?;
                // Closing first is what a short-lived client does; loopback reuses the
                // TIME_WAIT ports (net.ipv4.tcp_tw_reuse), so a few seconds of this is fine.
                stream
                    .shutdown(Shutdown::Both)
                    .or_else(ignore_not_connected)
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
    if let Some(stream) = persistent {
        // A clean close, so the server sees EOF rather than a reset.
        let _ = stream.shutdown(Shutdown::Write);
    }
    Ok(WorkerStats {
        latencies,
        start,
        end: Instant::now(),
    })
}

/// A request whose bytes differ by client and by sequence number, so a reply that belongs to
/// another request or another connection is caught, not only a corrupted one.
fn fill(buf: &mut [u8; PAYLOAD], id: usize, seq: u64) {
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

/// One request and its whole echo (which may come back in several pieces).
fn exchange(stream: &mut TcpStream, request: &[u8], reply: &mut [u8]) -> io::Result<()> {
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

/// The server may already have closed its end after our request; that is not a failure.
fn ignore_not_connected(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotConnected {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A thread-per-connection echo server on 127.0.0.1:0 that applies `corrupt` to what it
    /// echoes; it lives until the test process ends.
    fn echo_server(corrupt: fn(&mut [u8])) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
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
            let report = run(addr, workload, Reply::Echo, SHORT).unwrap();
            assert!(report.requests > 10, "{workload:?}: {report:?}");
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
            addr,
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
        let report = run(addr, ping_pong, Reply::Upper, SHORT).unwrap();
        assert!(report.requests > 0);
        // The requests contain ASCII letters, so taking it for a plain echo server fails.
        let err = run(addr, ping_pong, Reply::Echo, SHORT).unwrap_err();
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
            addr,
            Workload::PingPong { connections: 1 },
            Reply::Echo,
            SHORT,
        )
        .unwrap_err();
        assert!(err.to_string().contains("connect"), "{err}");
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
        let report = Report {
            requests: 100,
            elapsed: Duration::from_secs(1),
            latencies: (1..=100).map(Duration::from_micros).collect(),
        };
        assert_eq!(report.percentile(50.0), Duration::from_micros(50));
        assert_eq!(report.percentile(99.0), Duration::from_micros(99));
        assert_eq!(report.percentile(100.0), Duration::from_micros(100));
        assert_eq!(report.rate(), 100.0);
    }
}
