//! `UnixStreamServer` and `UnixDatagramServer`: the socket file rules, abstract names and
//! unnamed clients.

mod util;

use handler::{DatagramRequest, HandlerExt, StreamOptions, StreamRequest};
use socket::{Address, Socket, Type};
use sockserve_server::{Error, UnixDatagramServer, UnixStreamServer};
use std::{
    fs,
    io::Write,
    os::unix::fs::FileTypeExt,
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    time::Duration,
};
use util::*;

fn echo_dgram(req: &mut DatagramRequest) -> std::io::Result<()> {
    let packet = req.packet.clone();
    req.wfile.write_all(&packet)
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
    let mut server = UnixStreamServer::builder(handler)
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
