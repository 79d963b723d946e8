//! The deadlines of a stream connection, end to end over TCP: `StreamOptions::idle_timeout`
//! ends a silent client's read, `turn_timeout` cuts off a client that dribbles a byte at a time
//! even though every read makes progress, `write_timeout` cuts off a client that never reads,
//! and a client that downloads slowly but steadily, sending nothing, is not idle. None of them
//! is on by default.

mod util;

use handler::StreamRequest;
use socket::{Family, Socket, Type, opt};
use sockserve_server::{StreamOptions, TcpServer};
use std::{
    io::{self, BufRead, Read, Write},
    net::TcpStream,
    sync::mpsc::{self, Sender},
    thread,
    time::{Duration, Instant},
};
use util::*;

/// What a handler saw: how long its reads or writes went on, what they moved, how they ended.
#[derive(Debug)]
struct Seen {
    /// From the start of `handle` to the end of the work.
    took: Duration,
    /// Bytes read or written.
    bytes: usize,
    /// How long after the turn's deadline the work ended, if it had one and ended after it.
    past_turn: Option<Duration>,
    /// How the work ended.
    result: io::Result<()>,
}

/// Serves one connection in a background thread with `options`, running `work` in the
/// handler and sending what it saw; returns the server's address, the receiver, and the
/// running server.
fn serve(
    options: StreamOptions,
    work: fn(&mut StreamRequest) -> (usize, io::Result<()>),
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<Seen>,
    sockserve_server::Running<sockserve_server::Tcp, sockserve_server::Synchronous>,
) {
    let (tx, rx) = mpsc::channel::<Seen>();
    let report = move |req: &mut StreamRequest, tx: &Sender<Seen>| {
        let started = Instant::now();
        let (bytes, result) = work(req);
        let ended = Instant::now();
        let failed = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        let _ = tx.send(Seen {
            took: ended - started,
            bytes,
            past_turn: req
                .turn_deadline()
                .and_then(|d| ended.checked_duration_since(d)),
            result,
        });
        failed.map_or(Ok(()), |e| Err(handler::BoxError::from(e)))
    };
    let server = TcpServer::builder(move |req: &mut StreamRequest| report(req, &tx))
        .request_options(options)
        .bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0");
    let running = server.spawn().expect("spawn");
    (inet(running.server_address()), rx, running)
}

/// What the handler saw, waiting at most `limit`.
fn seen(rx: &mpsc::Receiver<Seen>, limit: Duration, what: &str) -> Seen {
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("{what}: the handler reported nothing within {limit:?} ({e})"))
}

/// The error of `seen`, which must be a `TimedOut` naming `option`.
fn timed_out_by(seen: &Seen, option: &str) -> String {
    let Err(e) = &seen.result else {
        panic!("the handler's work did not fail: {seen:?}");
    };
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{seen:?}");
    let message = e.to_string();
    assert!(message.contains(option), "{option} not named: {message:?}");
    message
}

#[test]
fn no_deadline_by_default() {
    let options = StreamOptions::default();
    assert_eq!(options.timeout, None);
    assert_eq!(options.idle_timeout, None);
    assert_eq!(options.write_timeout, None);
    assert_eq!(options.turn_timeout, None);
    let (address, rx, running) = serve(StreamOptions::default(), |req| {
        assert_eq!(req.turn_deadline(), None);
        let mut line = Vec::new();
        let result = req.rfile.read_until(b'\n', &mut line).map(drop);
        (line.len(), result)
    });
    let mut client = TcpStream::connect(address).unwrap();
    client.write_all(b"hello\n").unwrap();
    let seen = seen(&rx, GENEROUS, "a default request");
    assert!(seen.result.is_ok(), "{seen:?}");
    assert_eq!(seen.bytes, 6);
    drop(client);
    running.shutdown().unwrap();
}

#[test]
fn the_idle_timeout_ends_a_silent_clients_read() {
    let idle = Duration::from_millis(200);
    let (address, rx, running) = serve(StreamOptions::default().idle_timeout(Some(idle)), |req| {
        let mut line = String::new();
        let result = req.rfile.read_line(&mut line).map(drop);
        (line.len(), result)
    });
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(Some(GENEROUS)).unwrap();
    let seen = seen(&rx, GENEROUS, "a silent client");
    let message = timed_out_by(&seen, "StreamOptions::idle_timeout");
    assert!(message.contains("idle for 200ms"), "{message}");
    assert!(
        seen.took >= idle && seen.took < GENEROUS,
        "the read ended after {:?}, the idle timeout is {idle:?}",
        seen.took
    );
    // The server closed the connection after the failed request.
    assert_eq!(read_to_end(&mut silent), b"");
    running.shutdown().unwrap();
}

#[test]
fn a_dribbling_client_is_cut_off_at_the_turn_deadline() {
    let turn = Duration::from_secs(1);
    let options = StreamOptions::default()
        // Each byte comes well within the idle timeout: only the turn can end this.
        .idle_timeout(Some(Duration::from_millis(500)))
        .turn_timeout(Some(turn));
    let (address, rx, running) = serve(options, |req| {
        let mut buf = [0u8; 16];
        let mut bytes = 0;
        loop {
            match req.rfile.read(&mut buf) {
                Ok(0) => return (bytes, Ok(())),
                Ok(n) => bytes += n,
                Err(e) => return (bytes, Err(e)),
            }
        }
    });
    let client = TcpStream::connect(address).unwrap();
    // One byte every 100 ms, 100 at most (10 s): the pace of the client, not a wait for
    // anything. It stops when the server has closed the connection.
    let dribbler = thread::spawn(move || {
        let mut client = client;
        for _ in 0..100 {
            if client.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let seen = seen(&rx, GENEROUS, "a dribbling client");
    timed_out_by(&seen, "StreamOptions::turn_timeout");
    assert!(
        seen.bytes >= 5,
        "every read made progress before the turn ended: {seen:?}"
    );
    let past = seen
        .past_turn
        .expect("the reads ended after the turn's deadline");
    assert!(
        past < Duration::from_millis(500),
        "the turn of {turn:?} was cut {past:?} after its deadline"
    );
    assert!(seen.took <= turn + Duration::from_millis(500), "{seen:?}");
    dribbler.join().unwrap();
    running.shutdown().unwrap();
}

#[test]
fn the_write_timeout_cuts_off_a_client_that_never_reads() {
    let write_timeout = Duration::from_millis(300);
    let options = StreamOptions::default().write_timeout(Some(write_timeout));
    let (address, rx, running) = serve(options, |req| {
        // A large reply, 1 MiB at a time, up to 1 GiB: far more than the buffers hold.
        let chunk = vec![b'x'; 1 << 20];
        let mut bytes = 0;
        for _ in 0..1024 {
            if let Err(e) = req.wfile.write_all(&chunk) {
                return (bytes, Err(e));
            }
            bytes += chunk.len();
        }
        (bytes, Ok(()))
    });
    let never_reads = TcpStream::connect(address).unwrap();
    let seen = seen(&rx, GENEROUS, "a client that never reads");
    let message = timed_out_by(&seen, "StreamOptions::write_timeout");
    assert!(message.contains("no progress for 300ms"), "{message}");
    assert!(seen.took >= write_timeout, "{seen:?}");
    drop(never_reads);
    running.shutdown().unwrap();
}

#[test]
fn a_slow_steady_download_is_not_idle() {
    const REPLY: usize = 512 << 10;
    let idle = Duration::from_millis(200);
    let options = StreamOptions::default()
        .idle_timeout(Some(idle))
        .write_timeout(Some(Duration::from_secs(2)));
    let (address, rx, running) = serve(options, |req| {
        // Small buffers, so that the download's pace is the client's, not the kernel's.
        if let Err(e) = req.connection.setsockopt(opt::SendBufferSize, 16 << 10) {
            return (0, Err(e));
        }
        let result = req.wfile.write_all(&vec![b'y'; REPLY]);
        (REPLY, result)
    });
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    client.setsockopt(opt::RecvBufferSize, 16 << 10).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(address).unwrap();
    // 4 KiB every 10 ms, sending nothing: about 1.3 s for the reply, many idle timeouts long.
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < REPLY {
        let n = client.recv_into(&mut buf).expect("the download goes on");
        assert!(n > 0, "the server closed the download after {got} bytes");
        got += n;
        thread::sleep(Duration::from_millis(10));
    }
    let seen = seen(&rx, GENEROUS, "a slow download");
    assert!(seen.result.is_ok(), "the download was cut off: {seen:?}");
    assert!(
        seen.took > 3 * idle,
        "the download took {:?}, not several idle timeouts ({idle:?}): the test proves nothing",
        seen.took
    );
    running.shutdown().unwrap();
}
