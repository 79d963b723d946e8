//! The event-driven load generator, for 1,000 and 10,000 TCP connections: a few threads (one
//! per core), each driving its share of the connections from one `mio` poll, instead of a
//! thread per connection ([`loadgen`](super::loadgen)'s model, which would measure the
//! client's own scheduler at these counts).
//!
//! A run has three phases. Setup: every connection connects and does one checked exchange
//! (so the server has accepted and served it; connection setup and a thread-per-connection
//! server's thread creation are not in the window), bounded by [`SETUP_LIMIT`]; a connection
//! still unanswered when it ends is not an error, it stays in the run. The window: every
//! connection does ping-pong (64 bytes, wait for the echo, again) until the deadline; each
//! answer is checked byte for byte and timed. A connection that gets no answer in the whole
//! window is *starved*: a server that serves some connections and leaves the others waiting
//! shows high throughput and no error, and only this count tells. The drain: no new request
//! after the deadline; the requests in flight are awaited (at most [`DRAIN_LIMIT`]), so each
//! connection closes cleanly and the server sees EOF, not a reset.
//!
//! [`hold_idle`] is the memory row's client: connections that each did one exchange and then
//! say nothing, held open while the caller reads the server's RSS.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::loadgen::{PAYLOAD, Report, cpu_time, fill};
use crate::Result;

/// How long the setup (connect, one exchange each) may take, per 1,000 connections.
const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// How long, after the deadline, the requests in flight may take to be answered.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// One client connection and where its exchange stands.
struct Client {
    stream: TcpStream,
    /// The client's number across all threads (it seeds the requests' bytes).
    id: usize,
    seq: u64,
    request: [u8; PAYLOAD],
    /// Bytes of `request` written so far.
    written: usize,
    reply: [u8; PAYLOAD],
    /// Bytes of `reply` read so far.
    got: usize,
    /// Whether a request is out and its answer not yet complete (or, while `connecting`,
    /// the first request is still to be sent).
    waiting: bool,
    /// Whether the non-blocking connect is still in progress.
    connecting: bool,
    /// When the request out was sent (or the window opened, for the setup's request).
    sent_at: Instant,
    /// Answers received in the window.
    answered: u64,
}

impl Client {
    /// Starts the next request: its bytes, then as much of it as the socket takes.
    fn send_next(&mut self, now: Instant) -> io::Result<()> {
        self.seq += 1;
        fill(&mut self.request, self.id, self.seq);
        self.written = 0;
        self.got = 0;
        self.waiting = true;
        self.sent_at = now;
        self.flush()
    }

    /// Writes what is left of the request (edge-triggered: a `WouldBlock` waits for the next
    /// writable event).
    fn flush(&mut self) -> io::Result<()> {
        while self.waiting && !self.connecting && self.written < PAYLOAD {
            match self.stream.write(&self.request[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until `WouldBlock`; each complete, checked answer is passed to `on_answer`, which
    /// says whether to send the next request.
    fn read(&mut self, mut on_answer: impl FnMut(&mut Client) -> bool) -> Result<(), String> {
        if self.connecting {
            return Ok(()); // the connect's own events come first (see `poll_once`)
        }
        loop {
            if !self.waiting {
                // Nothing is expected: any byte now is one the server made up.
                let mut scratch = [0u8; 1];
                return match self.stream.read(&mut scratch) {
                    Ok(0) => Err("the server closed the connection".to_owned()),
                    Ok(_) => Err("bytes arrived with no request out".to_owned()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e.to_string()),
                };
            }
            match self.stream.read(&mut self.reply[self.got..]) {
                Ok(0) => {
                    return Err(format!(
                        "request {}: the server closed the connection before the whole echo",
                        self.seq
                    ));
                }
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("request {}: {e}", self.seq)),
            }
            if self.got == PAYLOAD {
                if self.written < PAYLOAD || self.reply != self.request {
                    let at = self
                        .reply
                        .iter()
                        .zip(&self.request)
                        .position(|(a, b)| a != b);
                    return Err(format!(
                        "request {}: the reply differs from the request at byte {at:?}",
                        self.seq
                    ));
                }
                self.waiting = false;
                if on_answer(self) {
                    self.send_next(Instant::now())
                        .map_err(|e| format!("request {}: {e}", self.seq))?;
                }
            }
        }
    }
}

/// Connects the clients `ids` to `addr` and sends each its first request, registering each
/// with `poll` under its index in the result: non-blocking connects, at most `in_flight`
/// ([`IN_FLIGHT`] in the crowd rows) connections at a time not yet answered, so the server's accept queue does not overflow (a
/// dropped SYN costs a second). Returns when every one is answered or at `until`, whichever
/// is first; one still unanswered then is waiting (`waiting`).
fn set_up(
    poll: &mut Poll,
    events: &mut Events,
    addr: SocketAddr,
    ids: std::ops::Range<usize>,
    until: Instant,
    in_flight: usize,
) -> Result<Vec<Client>, String> {
    let most = in_flight.max(1);
    let mut clients: Vec<Client> = Vec::with_capacity(ids.len());
    let mut ids = ids.peekable();
    loop {
        let in_flight = clients.iter().filter(|c| c.waiting).count();
        for id in ids.by_ref().take(most.saturating_sub(in_flight)) {
            let mut stream =
                TcpStream::connect(addr).map_err(|e| format!("client {id}: connect: {e}"))?;
            poll.registry()
                .register(
                    &mut stream,
                    Token(clients.len()),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| format!("client {id}: register: {e}"))?;
            clients.push(Client {
                stream,
                id,
                seq: 0,
                request: [0; PAYLOAD],
                written: 0,
                reply: [0; PAYLOAD],
                got: 0,
                waiting: true,
                connecting: true,
                sent_at: Instant::now(),
                answered: 0,
            });
        }
        let all_issued = ids.peek().is_none();
        if all_issued && clients.iter().all(|c| !c.waiting) {
            return Ok(clients);
        }
        let now = Instant::now();
        if now >= until {
            if all_issued {
                return Ok(clients);
            }
            return Err(format!(
                "{} connection(s) not even attempted within the setup's limit",
                ids.count()
            ));
        }
        // Short polls while connections remain to open: a finished one makes room for more.
        let wait = (until - now).min(Duration::from_millis(if all_issued { 1000 } else { 10 }));
        poll_once(poll, events, &mut clients, wait, &mut |client| {
            client.read(|_| false)
        })?;
    }
}

/// Connections that may be connecting or awaiting their first answer at once, per thread.
pub(super) const IN_FLIGHT: usize = 100;

/// One poll: each readable or writable client is handed on (a connecting one finishes its
/// connect first, and then sends its first request).
fn poll_once(
    poll: &mut Poll,
    events: &mut Events,
    clients: &mut [Client],
    timeout: Duration,
    on_event: &mut impl FnMut(&mut Client) -> Result<(), String>,
) -> Result<(), String> {
    if let Err(e) = poll.poll(events, Some(timeout)) {
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        return Err(format!("poll: {e}"));
    }
    for event in events.iter() {
        let client = &mut clients[event.token().0];
        let id = client.id;
        if client.connecting {
            if let Some(e) = client
                .stream
                .take_error()
                .map_err(|e| format!("client {id}: {e}"))?
            {
                return Err(format!("client {id}: connect: {e}"));
            }
            match client.stream.peer_addr() {
                Ok(_) => {
                    client.connecting = false;
                    client
                        .stream
                        .set_nodelay(true)
                        .map_err(|e| format!("client {id}: {e}"))?;
                    client.seq = 0;
                    client
                        .send_next(Instant::now())
                        .map_err(|e| format!("client {id}: first request: {e}"))?;
                }
                // Not connected yet: a later event finishes it.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => return Err(format!("client {id}: connect: {e}")),
            }
        }
        if event.is_writable() {
            client.flush().map_err(|e| format!("client {id}: {e}"))?;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            on_event(client).map_err(|e| format!("client {id}: {e}"))?;
        }
    }
    Ok(())
}

/// Polls until `until` or until `done` holds, handing each readable client to `on_event`.
fn poll_until(
    poll: &mut Poll,
    events: &mut Events,
    clients: &mut [Client],
    until: Instant,
    done: impl Fn(&[Client]) -> bool,
    mut on_event: impl FnMut(&mut Client) -> Result<(), String>,
) -> Result<(), String> {
    while !done(clients) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        poll_once(poll, events, clients, until - now, &mut on_event)?;
    }
    Ok(())
}

/// What one thread's share measured.
struct Share {
    latencies: Vec<Duration>,
    answered: Vec<u64>,
}

/// `connections` connections to the echo server at `addr` do ping-pong for `duration` (after
/// the setup, see the module docs), driven by `threads` threads. Any wrong byte, early close
/// or error fails the run, naming the client; a client without an answer does not. The CPU
/// time of the server process `server`, if given, is read as the window opens and ends.
pub(crate) fn ping_pong(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    threads: usize,
    server: Option<u32>,
) -> Result<Report> {
    ping_pong_opening(addr, connections, duration, threads, IN_FLIGHT, server)
}

/// [`ping_pong`] with at most `in_flight` connections per thread opening at once in the
/// setup (a server with a small listen backlog drops a larger burst).
pub(crate) fn ping_pong_opening(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    threads: usize,
    in_flight: usize,
    server: Option<u32>,
) -> Result<Report> {
    let setup = Setup {
        limit: SETUP_LIMIT * (connections / 1000 + 1) as u32,
        in_flight,
    };
    ping_pong_within(addr, connections, duration, threads, setup, server)
}

/// How the setup of [`ping_pong`] opens its connections.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// How long it may take.
    limit: Duration,
    /// How many connections per thread may be opening (or awaiting their first answer) at once.
    in_flight: usize,
}

/// [`ping_pong`] with the setup `setup`.
fn ping_pong_within(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    threads: usize,
    setup: Setup,
    server: Option<u32>,
) -> Result<Report> {
    let threads = threads.clamp(1, connections.max(1));
    // Two meetings: all connected and set up (or out of time), then the window opens.
    let barrier = Arc::new(Barrier::new(threads + 1));
    let per = connections.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let ids = (t * per).min(connections)..((t + 1) * per).min(connections);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || share(addr, ids, duration, setup, &barrier))
        })
        .collect();
    // Every worker reaches both meetings, whatever fails (see `share`), so neither can hang.
    barrier.wait();
    barrier.wait();
    // The window: from the second meeting, `duration` long.
    let server_cpu = match server {
        Some(pid) => {
            let before = cpu_time(pid);
            thread::sleep(duration);
            Some(cpu_time(pid).and_then(|after| Ok(after.saturating_sub(before?))))
        }
        None => None,
    };
    let mut latencies = Vec::new();
    let mut answered = Vec::new();
    let mut failures = Vec::new();
    for handle in workers {
        match handle.join() {
            Ok(Ok(share)) => {
                latencies.extend(share.latencies);
                answered.extend(share.answered);
            }
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".to_owned()),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} of {threads} client thread(s) failed ({connections} connections against {addr}): {}",
            failures.len(),
            failures.join("; ")
        )
        .into());
    }
    // Every thread's window opens at the second meeting and lasts `duration`.
    let mut report = Report::new(latencies, duration, &answered);
    report.server_cpu = server_cpu.transpose()?;
    Ok(report)
}

/// One thread's share of [`ping_pong`]: it meets the others twice whatever happens, then
/// reports its error, if any.
fn share(
    addr: SocketAddr,
    ids: std::ops::Range<usize>,
    duration: Duration,
    setup: Setup,
    barrier: &Barrier,
) -> Result<Share, String> {
    let set_up = (|| -> Result<_, String> {
        let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut events = Events::with_capacity(1024);
        let until = Instant::now() + setup.limit;
        let clients = set_up(&mut poll, &mut events, addr, ids, until, setup.in_flight)?;
        Ok((poll, events, clients))
    })();
    barrier.wait();
    barrier.wait();
    let (mut poll, mut events, mut clients) = set_up?;
    let start = Instant::now();
    let deadline = start + duration;
    // The setup's unanswered requests are timed from the window's start.
    for client in &mut clients {
        if client.connecting {
            // Still connecting: its first request goes out once it is connected.
        } else if client.waiting {
            client.sent_at = start;
        } else {
            client
                .send_next(start)
                .map_err(|e| format!("client {}: {e}", client.id))?;
        }
    }
    let mut latencies = Vec::with_capacity(clients.len() * 64);
    poll_until(
        &mut poll,
        &mut events,
        &mut clients,
        deadline,
        |_| false,
        |client| {
            client.read(|client| {
                let now = Instant::now();
                if now > deadline {
                    return false; // answered after the window: not counted, no next request
                }
                latencies.push(now - client.sent_at);
                client.answered += 1;
                true
            })
        },
    )?;
    // The drain: no new requests; wait for those in flight so every close is clean.
    poll_until(
        &mut poll,
        &mut events,
        &mut clients,
        Instant::now() + DRAIN_LIMIT,
        |clients| clients.iter().all(|c| !c.waiting),
        |client| client.read(|_| false),
    )?;
    Ok(Share {
        latencies,
        answered: clients.iter().map(|c| c.answered).collect(),
    })
}

/// Connections that each did one exchange and now say nothing; dropping it closes them.
pub(crate) struct Idle {
    /// The open connections (held, never read again).
    _clients: Vec<Client>,
    /// How long connecting and the exchanges took.
    pub(crate) setup: Duration,
}

/// Opens `connections` connections to the echo server at `addr`, each doing one checked
/// exchange, at most `in_flight` at a time not yet answered (a server with a small listen
/// backlog drops a larger burst), and returns them open and silent. Every one must be answered
/// within the setup limit.
pub(crate) fn hold_idle(addr: SocketAddr, connections: usize, in_flight: usize) -> Result<Idle> {
    let started = Instant::now();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let until = started + SETUP_LIMIT * (connections / 1000 + 1) as u32;
    let mut clients = set_up(
        &mut poll,
        &mut events,
        addr,
        0..connections,
        until,
        in_flight,
    )?;
    let unanswered = clients.iter().filter(|c| c.waiting).count();
    if unanswered > 0 {
        return Err(format!(
            "{unanswered} of {connections} connection(s) got no answer within {:?}",
            until - started
        )
        .into());
    }
    for client in &mut clients {
        // Out of the poll: nothing more is read, and the poll is dropped with this function.
        poll.registry().deregister(&mut client.stream)?;
    }
    Ok(Idle {
        _clients: clients,
        setup: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::loadgen::tests::echo_server_serving as echo_server;
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn every_connection_is_answered_by_an_honest_server() {
        let addr = echo_server(usize::MAX, |_| {});
        let report = ping_pong(addr, 50, SHORT, 2, Some(std::process::id())).unwrap();
        assert!(report.requests > 50, "{report:?}");
        assert_eq!(report.starved, 0, "{report:?}");
        assert!(report.min_per_connection > 0, "{report:?}");
        assert!(report.percentile(50.0) <= report.percentile(100.0));
        // The "server" watched is this test process, which ran the clients too.
        assert!(report.cpu_per_request().is_some(), "{report:?}");
    }

    #[test]
    fn connections_left_waiting_are_counted_as_starved() {
        let addr = echo_server(3, |_| {});
        let report = ping_pong_within(
            addr,
            10,
            SHORT,
            2,
            Setup {
                limit: Duration::from_millis(300),
                in_flight: IN_FLIGHT,
            },
            None,
        )
        .unwrap();
        assert_eq!(report.starved, 7, "{report:?}");
        assert_eq!(report.min_per_connection, 0, "{report:?}");
        assert!(report.requests > 0, "{report:?}");
    }

    #[test]
    fn one_wrong_byte_fails_the_run() {
        let addr = echo_server(usize::MAX, |buf| buf[0] ^= 1);
        let err = ping_pong(addr, 4, SHORT, 1, None).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
    }

    #[test]
    fn idle_connections_are_held_after_one_exchange_each() {
        let addr = echo_server(usize::MAX, |_| {});
        let idle = hold_idle(addr, 20, 3).unwrap();
        assert_eq!(idle._clients.len(), 20);
        assert!(idle._clients.iter().all(|c| c.seq == 1 && !c.waiting));
    }
}
