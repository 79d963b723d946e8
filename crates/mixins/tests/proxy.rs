//! The PROXY protocol under the threading and forking strategies, in a binary of its own
//! (forking a test harness with its threads is not something to share): the header is read
//! where the request runs, `verify_request` runs there with the real client, a header in
//! pieces waits (in the loop's reactor under threading, holding no worker; in the child under
//! forking), half a header is refused at its deadline while others are served, LOCAL keeps
//! the proxy, an untrusted peer is refused. What the hooks do in a child is seen through an
//! `EventLog`. Prints `proxy: N passed, M failed` and exits non-zero on a failure.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout)]

use handler::{BoxError, HandlerError, ServerContext, StreamRequest};
use server::{Hooks, ProxyProtocol, RequestRef, Running, Server, Strategy, Tcp, TcpServer};
use socket::{Address, Socket, Type};
use sockserve_mixins::{Forking, Threading};
use std::{
    io::{BufRead, Write},
    time::{Duration, Instant},
};
use testsupport::{EventLog, EventSender, GENEROUS, wait_until};

const V1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n";
const REAL: &str = "203.0.113.7:51000";
/// The header's deadline in these checks.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Answers the client it sees, its peer (the proxy) and the first line after the header, in
/// one write.
fn whoami(req: &mut StreamRequest) -> Result<(), BoxError> {
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    let peer = req.connection.getpeername()?;
    let answer = format!("{} {peer} {}\n", req.client_address, line.trim_end());
    Ok(req.wfile.write_all(answer.as_bytes())?)
}

/// Records `verify_request` (the client, and whether it ran in this process's serving thread,
/// a worker, or another process) and `handle_error`.
struct Recorder {
    events: EventSender,
    parent: u32,
}

impl Hooks for Recorder {
    fn verify_request(&self, _: &ServerContext, request: RequestRef<'_>, client: &Address) -> bool {
        let RequestRef::Stream(_) = request else {
            return false;
        };
        let place = if std::process::id() != self.parent {
            "a child".to_owned()
        } else {
            let thread = std::thread::current();
            thread.name().unwrap_or("a worker").to_owned()
        };
        self.events.send(&format!("verify {client} in {place}"));
        true
    }
    fn handle_error(&self, _: &ServerContext, _: &Address, error: &HandlerError) {
        self.events.send(&format!("handle_error: {error}"));
    }
}

fn serve<C: Strategy>(strategy: C, trusted: &str) -> (Running<Tcp, C>, EventLog) {
    let log = EventLog::new();
    let proxy = ProxyProtocol::trusted([trusted])
        .expect("trusted")
        .header_timeout(HEADER_TIMEOUT);
    let server: Server<Tcp, C> = TcpServer::builder(whoami)
        .strategy(strategy)
        .hooks(Recorder {
            events: log.sender(),
            parent: std::process::id(),
        })
        .proxy_protocol(proxy)
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    (running, log)
}

fn client<C: Strategy>(running: &Running<Tcp, C>) -> Socket {
    let address = running.server_address();
    let c = Socket::new(address.family(), Type::Stream).expect("a client socket");
    c.settimeout(Some(GENEROUS));
    c.connect(address).expect("connect");
    c
}

/// Reads to the server's end of the connection.
fn answer(c: &Socket) -> String {
    let mut got = Vec::new();
    loop {
        match c.recv(256) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => got.extend(chunk),
            // A refused connection with unread input may be reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no end within 10 s: {e}"),
        }
    }
    String::from_utf8(got).expect("text")
}

fn stop<C: Strategy>(running: Running<Tcp, C>) {
    let handle = running.shutdown_handle();
    wait_until("every request ended", GENEROUS, || handle.in_flight() == 0);
    let mut server = running.shutdown().expect("stop");
    server.server_close();
}

/// The real client for the handler and `verify_request`, which runs where the request runs;
/// LOCAL keeps the proxy; the bytes after the header reach `rfile`.
fn real_client<C: Strategy>(strategy: C, place: &str) {
    let (running, log) = serve(strategy, "127.0.0.1");
    let c = client(&running);
    let me = c.getsockname().unwrap().to_string();
    c.sendall(&[V1, b"hello\n"].concat()).unwrap();
    assert_eq!(answer(&c), format!("{REAL} {me} hello\n"));
    let verified = log.wait_for(1);
    assert_eq!(verified, [format!("verify {REAL} in {place}")]);

    let c = client(&running);
    let me = c.getsockname().unwrap().to_string();
    let local = [&b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"[..], b"check\n"].concat();
    c.sendall(&local).unwrap();
    assert_eq!(answer(&c), format!("{me} {me} check\n"));
    assert_eq!(log.wait_for(1), [format!("verify {me} in {place}")]);
    stop(running);
}

fn threading_real_client() {
    // Not the serving thread ("sockserve-serve"): a pool worker.
    real_client(Threading::new(), "sockserve-worker");
}

fn forking_real_client() {
    real_client(Forking::new(), "a child");
}

/// A header in pieces is served once whole; while half of it has come, the connection waits
/// (threading: in the loop's reactor, no worker held; forking: in its child), others are
/// answered, and half a header is refused at its deadline.
fn pieces_and_deadline<C: Strategy>(strategy: C, waits_in_reactor: bool) {
    let (running, log) = serve(strategy, "127.0.0.1");
    let handle = running.shutdown_handle();
    let slow = client(&running);
    let started = Instant::now();
    slow.sendall(&V1[..10]).unwrap();
    if waits_in_reactor {
        wait_until("the connection waits for its header", GENEROUS, || {
            handle.waiting() == 1
        });
        assert_eq!(handle.running(), 0, "no worker is held by half a header");
    }
    let pieces = client(&running);
    let me = pieces.getsockname().unwrap().to_string();
    pieces.sendall(&V1[..20]).unwrap();
    pieces.sendall(&V1[20..]).unwrap();
    pieces.sendall(b"done\n").unwrap();
    assert_eq!(answer(&pieces), format!("{REAL} {me} done\n"));
    assert_eq!(answer(&slow), "", "refused");
    assert!(
        started.elapsed() >= HEADER_TIMEOUT,
        "refused before its deadline"
    );
    let mut events = log.wait_for(2);
    events.sort();
    assert!(events[0].starts_with("handle_error:"), "{events:?}");
    assert!(
        events[0].contains("ProxyProtocol::header_timeout"),
        "{events:?}"
    );
    assert!(
        events[1].starts_with(&format!("verify {REAL}")),
        "{events:?}"
    );
    stop(running);
}

fn threading_pieces_and_deadline() {
    pieces_and_deadline(Threading::new(), true);
}

fn forking_pieces_and_deadline() {
    pieces_and_deadline(Forking::new(), false);
}

/// A peer that is not trusted is refused, header or not, before `verify_request`.
fn untrusted<C: Strategy>(strategy: C) {
    let (running, log) = serve(strategy, "192.0.2.0/24");
    let c = client(&running);
    c.sendall(&[V1, b"hello\n"].concat()).unwrap();
    assert_eq!(answer(&c), "");
    let events = log.wait_for(1);
    assert!(events[0].contains("not a trusted proxy"), "{events:?}");
    stop(running);
}

fn threading_untrusted() {
    untrusted(Threading::new());
}

fn forking_untrusted() {
    untrusted(Forking::new());
}

fn main() {
    let checks: &[(&str, fn())] = &[
        ("threading: the real client", threading_real_client),
        ("forking: the real client", forking_real_client),
        ("threading: pieces, deadline", threading_pieces_and_deadline),
        ("forking: pieces, deadline", forking_pieces_and_deadline),
        ("threading: untrusted", threading_untrusted),
        ("forking: untrusted", forking_untrusted),
    ];
    testsupport::run_panicking_checks("proxy", checks);
}
