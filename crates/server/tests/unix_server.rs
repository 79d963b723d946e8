//! `UnixStreamServer` and `UnixDatagramServer`: the socket file rules, abstract names and
//! unnamed clients.

mod util;

use handler::{BoxError, DatagramRequest, HandlerExt, StreamOptions, StreamRequest};
use socket::{Address, Family, Socket, Type};
use sockserve_server::{Error, UnixDatagramServer, UnixStreamServer};
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::FileTypeExt,
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};
use util::*;

fn echo_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let packet = req.packet.clone();
    Ok(req.wfile.write_all(&packet)?)
}

fn is_socket(path: &std::path::Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn socket_file_is_created_and_removed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    assert!(is_socket(&path));
    assert_eq!(server.server_address().as_pathname(), Some(path.as_path()));
    server.server_close();
    assert!(!path.exists(), "removed on server_close");
    // Drop removes it too.
    drop(UnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap());
    assert!(!path.exists(), "removed on drop");
}

#[test]
fn stale_socket_file_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A server that died without cleaning up: the file stays, nothing listens.
    drop(UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path));
    let server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    let serving = Serving::start(server, Duration::from_millis(10));
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(TEST_STR).unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut c, &mut got).unwrap();
    assert_eq!(got, TEST_STR);
    serving.stop();
    // Same for datagrams.
    drop(UnixDatagram::bind(&path).unwrap());
    drop(UnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap());
}

#[test]
fn live_socket_file_is_refused_with_address_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let live = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    let err = UnixStreamServer::bind(path.as_path(), echo_line).expect_err("in use");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains("address in use"), "{err}");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::AddrInUse
    );
    assert!(is_socket(&path), "the live server's file is untouched");
    drop(live);
    // A live datagram socket too.
    let live = UnixDatagram::bind(&path).unwrap();
    let err = UnixDatagramServer::bind(path.as_path(), echo_dgram).expect_err("in use");
    assert!(err.to_string().contains("address in use"), "{err}");
    drop(live);
}

#[test]
fn a_path_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    fs::write(&path, b"keep me").unwrap();
    let err = UnixStreamServer::bind(path.as_path(), echo_line).expect_err("not a socket");
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn a_replaced_socket_file_is_not_removed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    // Someone else takes the path over while this server runs.
    fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    server.server_close();
    assert!(
        is_socket(&path),
        "another server's file is not ours to remove"
    );
    drop(other);
}

#[test]
fn abstract_names_work_and_leave_no_file() {
    // The time as well as the pid: containers sharing a network namespace repeat small pids.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("@sockserve-test-{}-{nanos}", std::process::id());
    let server = UnixStreamServer::bind(name.as_str(), echo_line).unwrap();
    assert_eq!(server.server_address().to_string(), name);
    let serving = Serving::start(server, Duration::from_millis(10));
    let address: Address = name.parse().unwrap();
    let c = Socket::new(address.family(), Type::Stream).unwrap();
    c.settimeout(Some(GENEROUS));
    c.connect(&address).unwrap();
    c.sendall(TEST_STR).unwrap();
    assert_eq!(c.recv(100).unwrap(), TEST_STR);
    serving.stop();
    // The name is free again once the server is closed.
    drop(UnixStreamServer::bind(name.as_str(), echo_line).unwrap());
}

#[test]
fn unnamed_datagram_clients_get_no_reply_and_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let rec = Shared::default();
    let server = UnixDatagramServer::builder(echo_dgram)
        .hooks(rec.clone())
        .bind(path.as_path())
        .unwrap();
    let serving = Serving::start(server, Duration::from_millis(10));
    let unnamed = UnixDatagram::unbound().unwrap();
    for _ in 0..3 {
        unnamed.send_to(b"anyone?", &path).unwrap();
    }
    // A named client after them is answered: the unnamed ones were handled, not errors.
    let named = UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
    named.set_read_timeout(Some(GENEROUS)).unwrap();
    named.send_to(b"me", &path).unwrap();
    let mut buf = [0u8; 16];
    let n = named.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"me");
    assert_eq!(
        rec.0.error_count(),
        0,
        "an unnamed client is not an error (CPython: TypeError)"
    );
    rec.0
        .wait_for("shutdown_request for all four datagrams", |r| {
            r.shutdowns.load(std::sync::atomic::Ordering::SeqCst) == 4
        });
    serving.stop();
}

#[test]
fn unnamed_stream_clients_have_an_unnamed_address_and_nagle_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let rec = Shared::default();
    let handler = (|req: &mut StreamRequest| writeln!(req.wfile, "{}", req.client_address))
        .with_options(StreamOptions::default().disable_nagle_algorithm(true));
    let mut server = UnixStreamServer::builder_handler(handler)
        .hooks(rec.clone())
        .bind(path.as_path())
        .unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    server.handle_request().unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut c, &mut got).unwrap();
    assert_eq!(got, format!("{}\n", Address::Unnamed));
    assert_eq!(
        rec.0.error_count(),
        0,
        "TCP_NODELAY is quietly not applied (CPython: EOPNOTSUPP)"
    );
}

#[test]
fn unix_servers_refuse_inet_addresses() {
    let err = UnixStreamServer::bind("127.0.0.1:0", echo_line).expect_err("wrong family");
    assert!(err.to_string().contains("UnixStreamServer"), "{err}");
}

/// How long a bind may take before it counts as hung: generous, it only detects a hang.
const BIND_BOUND: Duration = Duration::from_secs(5);

/// Runs `bind` (a second server on a path in use) in a thread and waits at most
/// [`BIND_BOUND`] for its result and how long it took: `None` if it hung. Then runs
/// `end_the_hang`, which must make a hanging bind return, and joins the thread whatever
/// happened, so no thread outlives the test.
fn bind_in_thread_bounded<T: Send + 'static>(
    bind: impl FnOnce() -> sockserve_server::Result<T> + Send + 'static,
    end_the_hang: impl FnOnce(),
) -> Option<(sockserve_server::Result<()>, Duration)> {
    let (tx, rx) = mpsc::channel();
    let binder = thread::spawn(move || {
        let started = Instant::now();
        // A server that did bind is closed at once: only the outcome matters.
        let result = bind().map(drop);
        let _ = tx.send((result, started.elapsed()));
    });
    let outcome = rx.recv_timeout(BIND_BOUND).ok();
    end_the_hang();
    binder.join().expect("the binding thread panicked");
    outcome
}

#[test]
fn a_live_server_with_a_full_backlog_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    // A live server that never accepts.
    let live = UnixStreamServer::builder(echo_line)
        .request_queue_size(1)
        .bind(path.as_path())
        .unwrap();
    // Fill its backlog: Linux queues backlog + 1 connections, then a non-blocking connect fails
    // with EAGAIN (a blocking one waits until the server accepts).
    let mut queued = Vec::new();
    loop {
        let client = Socket::new(Family::Unix, Type::Stream).unwrap();
        client.setblocking(false).unwrap();
        match client.connect(path.as_path()) {
            Ok(()) => queued.push(client),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 1000, "a backlog of 1 never filled");
    }
    let mut file_kept = false;
    let outcome = bind_in_thread_bounded(
        {
            let path = path.clone();
            move || UnixStreamServer::bind(path.as_path(), echo_line)
        },
        || {
            file_kept = is_socket(&path);
            // Closing the listener wakes a connect waiting on its backlog, so a hanging bind
            // returns and its thread can be joined.
            drop(queued);
            drop(live);
        },
    );
    let (result, took) = outcome.unwrap_or_else(|| {
        panic!("bind hung > {BIND_BOUND:?} on a live server whose backlog is full")
    });
    let err = result.expect_err("a live server answers there");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("a live server answers"), "{message}");
    assert!(message.contains("backlog is full"), "{message}");
    assert_eq!(
        io::Error::from(err).kind(),
        io::ErrorKind::AddrInUse,
        "{message} (after {took:?})"
    );
    assert!(file_kept, "the live server's file is untouched");
    dir.close().expect("the temp dir is removed");
}

#[test]
fn a_live_datagram_socket_is_refused_at_once_even_when_full_or_connected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    let live = UnixDatagram::bind(&path).unwrap();
    // Fill its receive queue until a non-blocking send fails with EAGAIN: a Unix datagram
    // connect only names the peer, it never waits for room.
    let sender = UnixDatagram::unbound().unwrap();
    sender.set_nonblocking(true).unwrap();
    let mut sent = 0;
    loop {
        match sender.send_to(b"x", &path) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the queue: {e}"),
        }
        assert!(sent < 100_000, "the receive queue never filled");
    }
    let outcome = bind_in_thread_bounded(
        {
            let path = path.clone();
            move || UnixDatagramServer::bind(path.as_path(), echo_dgram)
        },
        || {}, // nothing to end: a datagram probe does not wait
    );
    let (result, _) = outcome.unwrap_or_else(|| {
        panic!("bind hung > {BIND_BOUND:?} on a live datagram socket with a full queue")
    });
    let err = result.expect_err("a live socket answers there");
    assert!(err.to_string().contains("a live server answers"), "{err}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::AddrInUse);
    // A live socket connected to another one refuses the probe's connect with EPERM: that is
    // a socket in use, not a permission problem.
    let other = UnixDatagram::bind(dir.path().join("other.sock")).unwrap();
    live.connect(dir.path().join("other.sock")).unwrap();
    let err = UnixDatagramServer::bind(path.as_path(), echo_dgram).expect_err("in use");
    let message = err.to_string();
    assert_eq!(
        io::Error::from(err).kind(),
        io::ErrorKind::AddrInUse,
        "a connected live socket: {message}"
    );
    assert!(is_socket(&path), "the live socket's file is untouched");
    drop((live, other, sender));
    dir.close().expect("the temp dir is removed");
}
