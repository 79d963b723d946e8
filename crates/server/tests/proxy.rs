//! The PROXY protocol on a real server (sync strategy): the handler and `verify_request` see
//! the client the header names; LOCAL keeps the proxy; the bytes after the header stay in
//! `rfile`; untrusted peers, missing and malformed headers are refused with a clear error and
//! the server keeps serving; half a header stalls nobody and is refused at its deadline.

mod util;

use handler::{HandlerError, ServerContext, StreamRequest};
use socket::Address;
use sockserve_server::{BoxError, Hooks, ProxyProtocol, RequestRef, Tcp, TcpServer};
use std::{
    io::{BufRead, Read, Write},
    net::{Shutdown, TcpStream},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};
use util::{GENEROUS, Serving, inet};

const V1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n";
const REAL: &str = "203.0.113.7:51000";

/// Answers one line: the client it sees, the connection's peer (the proxy), and the first
/// line that came after the header.
fn whoami(req: &mut StreamRequest) -> Result<(), BoxError> {
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    let peer = req.connection.getpeername()?;
    writeln!(
        req.wfile,
        "{} {peer} {}",
        req.client_address,
        line.trim_end()
    )?;
    Ok(())
}

/// What the hooks saw.
#[derive(Debug, Default)]
struct Seen {
    verified: Vec<(String, String)>,
    errors: Vec<(String, String)>,
    shutdowns: usize,
}

#[derive(Debug, Default, Clone)]
struct Record(Arc<(Mutex<Seen>, Condvar)>, Option<&'static str>);

impl Record {
    fn refusing(client: &'static str) -> Record {
        Record(Arc::default(), Some(client))
    }

    fn change(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.0.0.lock().unwrap());
        self.0.1.notify_all();
    }

    /// Waits (bounded) until `cond` holds of what was seen.
    fn wait_for(&self, what: &str, cond: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + GENEROUS;
        let mut seen = self.0.0.lock().unwrap();
        while !cond(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}: {seen:?}");
            seen = self.0.1.wait_timeout(seen, left).unwrap().0;
        }
        Seen {
            verified: seen.verified.clone(),
            errors: seen.errors.clone(),
            shutdowns: seen.shutdowns,
        }
    }
}

impl Hooks for Record {
    fn verify_request(&self, _: &ServerContext, request: RequestRef<'_>, client: &Address) -> bool {
        let RequestRef::Stream(connection) = request else {
            panic!("a stream server");
        };
        let proxy = connection
            .getpeername()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        self.change(|s| s.verified.push((client.to_string(), proxy)));
        self.1 != Some(client.to_string()).as_deref()
    }

    fn handle_error(&self, _: &ServerContext, client: &Address, error: &HandlerError) {
        self.change(|s| s.errors.push((client.to_string(), error.to_string())));
    }

    fn shutdown_request(&self, _: &ServerContext, _client: &Address) {
        self.change(|s| s.shutdowns += 1);
    }
}

fn serve(proxy: ProxyProtocol, hooks: Record) -> Serving<Tcp, sockserve_server::Synchronous> {
    let server = TcpServer::builder(whoami)
        .hooks(hooks)
        .proxy_protocol(proxy)
        .bind("127.0.0.1:0")
        .expect("bind");
    Serving::start(server, Duration::from_millis(20))
}

fn connect(serving: &Serving<Tcp, sockserve_server::Synchronous>) -> TcpStream {
    let client = TcpStream::connect(inet(&serving.address)).expect("connect");
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    client
}

/// Sends `bytes` and reads the answer to the end (the server closes).
fn ask(serving: &Serving<Tcp, sockserve_server::Synchronous>, bytes: &[u8]) -> (String, String) {
    let mut client = connect(serving);
    let local = client.local_addr().unwrap().to_string();
    client.write_all(bytes).unwrap();
    let mut answer = String::new();
    match client.read_to_string(&mut answer) {
        Ok(_) => {}
        // A refused connection may be reset (its unread bytes).
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the answer: {e}"),
    }
    (answer, local)
}

fn v2(command: u8) -> Vec<u8> {
    use ppp::v2::{Builder, IPv4, Protocol};
    let addresses = IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 51000, 443);
    Builder::with_addresses(command, Protocol::Stream, addresses)
        .build()
        .unwrap()
}

#[test]
fn the_handler_and_verify_request_see_the_real_client() {
    let record = Record::default();
    let serving = serve(
        ProxyProtocol::trusted(["127.0.0.1"]).unwrap(),
        record.clone(),
    );
    let server_port = inet(&serving.address).port();

    // v1, the header and the first line in one write: the line stays for rfile.
    let (answer, proxy) = ask(&serving, &[V1, b"hello\n"].concat());
    assert_eq!(answer, format!("{REAL} {proxy} hello\n"));

    // v2 (PROXY), then the line in a second write.
    let (answer, proxy) = ask(&serving, &[&v2(0x21)[..], b"again\n"].concat());
    assert_eq!(answer, format!("{REAL} {proxy} again\n"));

    // v2 LOCAL (a health check): the client is the proxy itself.
    let (answer, proxy) = ask(&serving, &[&v2(0x20)[..], b"check\n"].concat());
    assert_eq!(answer, format!("{proxy} {proxy} check\n"));

    let seen = record.wait_for("three shutdowns", |s| s.shutdowns == 3);
    let clients: Vec<&str> = seen.verified.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(clients[..2], [REAL, REAL], "{seen:?}");
    assert!(
        seen.verified
            .iter()
            .all(|(_, p)| p.starts_with("127.0.0.1:"))
    );
    assert_eq!(seen.errors, [], "no error");
    assert_ne!(server_port, 0);
    serving.stop();
}

#[test]
fn verify_request_refuses_by_the_real_client() {
    let record = Record::refusing("203.0.113.66:1");
    let serving = serve(
        ProxyProtocol::trusted(["127.0.0.0/8"]).unwrap(),
        record.clone(),
    );
    let (answer, _) = ask(&serving, b"PROXY TCP4 203.0.113.66 192.0.2.1 1 443\r\nhi\n");
    assert_eq!(answer, "", "refused: no answer");
    let (answer, proxy) = ask(&serving, &[V1, b"hi\n"].concat());
    assert_eq!(answer, format!("{REAL} {proxy} hi\n"));
    let seen = record.wait_for("two shutdowns", |s| s.shutdowns == 2);
    assert_eq!(seen.verified.len(), 2, "{seen:?}");
    assert_eq!(seen.errors, []);
    serving.stop();
}

#[test]
fn untrusted_missing_and_malformed_headers_are_refused_and_the_server_keeps_serving() {
    // Trusting another network: this machine's connections are refused, header or not.
    let record = Record::default();
    let serving = serve(
        ProxyProtocol::trusted(["192.0.2.0/24"]).unwrap(),
        record.clone(),
    );
    let (answer, local) = ask(&serving, &[V1, b"hello\n"].concat());
    assert_eq!(answer, "");
    let seen = record.wait_for("the refusal", |s| !s.errors.is_empty());
    assert_eq!(
        seen.verified,
        [],
        "verify_request does not run for an untrusted peer"
    );
    assert_eq!(seen.errors[0].0, local, "reported with the peer's address");
    assert!(
        seen.errors[0]
            .1
            .contains("not a trusted proxy (ProxyProtocol::trusted)"),
        "{seen:?}"
    );
    serving.stop();

    let record = Record::default();
    let serving = serve(
        ProxyProtocol::trusted(["127.0.0.1"]).unwrap(),
        record.clone(),
    );
    let cases: [(&[u8], &str); 4] = [
        (b"hello\n", "no PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "malformed PROXY v1"),
        (
            b"PROXY TCP4 1.2.3",
            "ended within its PROXY protocol header, after 16 bytes",
        ),
        (
            &v2(0x21)[..20],
            "ended within its PROXY protocol header, after 20 bytes",
        ),
    ];
    for (at, (bytes, expected)) in cases.iter().enumerate() {
        let mut client = connect(&serving);
        client.write_all(bytes).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        assert_eq!(answer, "", "{expected}");
        let seen = record.wait_for(expected, |s| s.errors.len() > at);
        assert!(seen.errors[at].1.contains(expected), "{expected}: {seen:?}");
        // And the next one is served.
        let (answer, proxy) = ask(&serving, &[V1, b"next\n"].concat());
        assert_eq!(answer, format!("{REAL} {proxy} next\n"));
    }
    // A connection that closes before any byte (a TCP health check) is no error.
    drop(connect(&serving));
    let (answer, proxy) = ask(&serving, &[V1, b"last\n"].concat());
    assert_eq!(answer, format!("{REAL} {proxy} last\n"));
    let seen = record.wait_for("every end", |s| s.shutdowns == 10);
    assert_eq!(seen.errors.len(), 4, "{seen:?}");
    serving.stop();
}

#[test]
fn half_a_header_stalls_no_one_and_is_refused_at_its_deadline() {
    let record = Record::default();
    let timeout = Duration::from_secs(1);
    let proxy = ProxyProtocol::trusted(["127.0.0.1"])
        .unwrap()
        .header_timeout(timeout);
    let serving = serve(proxy, record.clone());

    let started = Instant::now();
    let mut slow = connect(&serving);
    slow.write_all(b"PROXY TCP4 203.0.").unwrap();
    // The sync loop is not held: others are answered while it waits.
    for _ in 0..3 {
        let (answer, proxy) = ask(&serving, &[V1, b"x\n"].concat());
        assert_eq!(answer, format!("{REAL} {proxy} x\n"));
    }
    // Its deadline ends it: closed, a TimedOut naming the option.
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    let waited = started.elapsed();
    assert_eq!(answer, "");
    assert!(
        waited >= timeout,
        "closed after {waited:?}, before its deadline"
    );
    let seen = record.wait_for("the timeout", |s| !s.errors.is_empty());
    assert!(
        seen.errors[0].1.contains("ProxyProtocol::header_timeout"),
        "{seen:?}"
    );

    // A header completed in pieces, within the deadline, is served.
    let mut pieces = connect(&serving);
    pieces.set_nodelay(true).unwrap();
    let local = pieces.local_addr().unwrap();
    for piece in [&V1[..7], &V1[7..30], &V1[30..], b"done\n"] {
        pieces.write_all(piece).unwrap();
    }
    let mut answer = String::new();
    pieces.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, format!("{REAL} {local} done\n"));

    // A graceful stop ends a connection still waiting for its header at once.
    let mut waiting = connect(&serving);
    waiting.write_all(b"PROXY ").unwrap();
    record.wait_for("the piecewise one's end", |s| s.shutdowns == 5);
    let parked = Instant::now() + GENEROUS;
    while serving.handle.waiting() == 0 {
        assert!(
            Instant::now() < parked,
            "the connection never waited for its header"
        );
        std::thread::yield_now();
    }
    let stop = Instant::now();
    serving
        .handle
        .shutdown_gracefully(GENEROUS)
        .expect("graceful stop");
    let mut answer = String::new();
    let _ = waiting.read_to_string(&mut answer);
    assert!(
        stop.elapsed() < GENEROUS,
        "the waiting connection was ended"
    );
    serving.stop();
}

/// A Unix stream server behind a local proxy: `unix` trusts its peers; a list of networks
/// alone refuses them.
#[test]
fn a_unix_stream_server_trusts_its_peers_with_unix() {
    use sockserve_server::UnixStreamServer;
    use std::os::unix::net::UnixStream as Client;
    let dir = tempfile::tempdir().unwrap();
    for (trusted, answered) in [("unix", true), ("127.0.0.1", false)] {
        let path = dir.path().join(format!("{trusted}.sock"));
        let record = Record::default();
        let server = UnixStreamServer::builder(whoami)
            .hooks(record.clone())
            .proxy_protocol(ProxyProtocol::trusted([trusted]).unwrap())
            .bind(&path)
            .expect("bind");
        let running = server.spawn_with(Duration::from_millis(20)).expect("spawn");
        let mut client = Client::connect(&path).unwrap();
        client.set_read_timeout(Some(GENEROUS)).unwrap();
        client.write_all(&[V1, b"over unix\n"].concat()).unwrap();
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        if answered {
            assert!(answer.starts_with(&format!("{REAL} ")), "{answer:?}");
            assert!(answer.ends_with(" over unix\n"), "{answer:?}");
        } else {
            assert_eq!(answer, "");
            let seen = record.wait_for("the refusal", |s| !s.errors.is_empty());
            assert!(seen.errors[0].1.contains("not a trusted proxy"), "{seen:?}");
        }
        let mut server = running.shutdown().expect("stop");
        server.server_close();
        assert!(!path.exists());
    }
}
