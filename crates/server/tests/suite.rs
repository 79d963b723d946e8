//! CPython's test_socketserver checklist, written once and run for every server kind: TCP,
//! UDP, Unix stream and Unix datagram (sync strategy).

mod util;

use handler::{BoxError, DatagramRequest, StreamRequest};
use socket::{Address, Socket, Type};
use sockserve_server::{Kind, Server, Synchronous};
use std::{
    io::{BufRead, Write},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use util::*;

/// The one-line echo of CPython's `MyHandler`, for datagrams.
fn echo_line_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let mut line = Vec::new();
    req.rfile.read_until(b'\n', &mut line)?;
    Ok(req.wfile.write_all(&line)?)
}

/// CPython's `stream_examine`, for any family, through the socket layer.
fn stream_examine(address: &Address) {
    let s = Socket::new(address.family(), Type::Stream).unwrap();
    s.settimeout(Some(GENEROUS));
    s.connect(address).expect("connect");
    s.sendall(TEST_STR).unwrap();
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        let chunk = s.recv(100).expect("receive (timed out?)");
        if chunk.is_empty() {
            break;
        }
        buf.extend(chunk);
    }
    assert_eq!(buf, TEST_STR);
}

/// CPython's `dgram_examine`: a Unix client binds its own path, or it gets no reply.
fn dgram_examine(address: &Address, dir: &Path) {
    let s = Socket::new(address.family(), Type::Datagram).unwrap();
    s.settimeout(Some(GENEROUS));
    if address.as_inet().is_some() {
        s.bind("127.0.0.1:0").unwrap();
    } else {
        let path = dir.join(format!("client-{}.sock", unique()));
        s.bind(path.as_path()).unwrap();
    }
    s.sendto(TEST_STR, address).unwrap();
    let (data, from) = s.recvfrom(100).expect("receive (timed out?)");
    assert_eq!(data, TEST_STR);
    assert_eq!(&from, address);
}

fn unique() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Where a server of each family binds: port 0, or a fresh path in the test's temp dir.
fn address_in(unix: bool, dir: &Path) -> String {
    if unix {
        dir.join(format!("server-{}.sock", unique()))
            .to_string_lossy()
            .into_owned()
    } else {
        "127.0.0.1:0".to_owned()
    }
}

/// CPython's `run_server`: serve in a thread with a 10 ms poll, examine three times,
/// shutdown, close, and check the socket (and a Unix socket file) is gone.
fn run_server<K: Kind>(server: Server<K, Synchronous>, examine: impl Fn(&Address)) {
    assert_eq!(
        server.server_address(),
        &server.socket().unwrap().getsockname().unwrap(),
        "server_address is the bound address"
    );
    let serving = Serving::start(server, Duration::from_millis(10));
    for _ in 0..3 {
        examine(&serving.address);
    }
    let server = serving.stop();
    assert_eq!(server.fileno(), -1, "server_close closes the socket");
    if let Some(path) = server.server_address().as_pathname() {
        assert!(!path.exists(), "the socket file is removed on close");
    }
}

fn stream_suite<K: Kind<Request<()> = StreamRequest>>(unix: bool) {
    let dir = tempfile::tempdir().unwrap();
    // Echo, three clients.
    let server = Server::<K>::bind(address_in(unix, dir.path()), echo_line).unwrap();
    run_server(server, stream_examine);
    // 20 servers shut down right after their threads start.
    let servings: Vec<_> = (0..20)
        .map(|_| {
            let s = Server::<K>::bind(address_in(unix, dir.path()), echo_line).unwrap();
            Serving::start(s, Duration::from_millis(10))
        })
        .collect();
    servings.into_iter().for_each(|s| drop(s.stop()));
    // Close without ever serving; drop closes.
    let mut server = Server::<K>::bind(address_in(unix, dir.path()), echo_line).unwrap();
    server.server_close();
    assert_eq!(server.fileno(), -1);
    let address = {
        let server = Server::<K>::bind(address_in(unix, dir.path()), echo_line).unwrap();
        server.server_address().clone()
    };
    let probe = Socket::new(address.family(), Type::Stream).unwrap();
    assert!(
        probe.connect(&address).is_err(),
        "dropped server no longer listens"
    );
    // A handler error reaches handle_error once; shutdown_request runs once.
    let rec = Shared::default();
    let mut server = Server::<K>::builder(|_r: &mut StreamRequest| {
        Err::<(), _>(std::io::Error::other("Test error").into())
    })
    .hooks(rec.clone())
    .bind(address_in(unix, dir.path()))
    .unwrap();
    let client = Socket::new(server.server_address().family(), Type::Stream).unwrap();
    client.connect(server.server_address()).unwrap();
    server.handle_request().unwrap();
    assert_eq!(rec.0.error_count(), 1);
    assert_eq!(rec.0.shutdowns.load(Ordering::SeqCst), 1);
    // verify_request false: shutdown_request once, the handler never runs, the client sees EOF.
    let rec = Shared(Arc::new(Recorder::rejecting()));
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = ran.clone();
    let mut server = Server::<K>::builder(move |_r: &mut StreamRequest| {
        ran2.store(true, Ordering::SeqCst);
        Ok(())
    })
    .hooks(rec.clone())
    .bind(address_in(unix, dir.path()))
    .unwrap();
    let client = Socket::new(server.server_address().family(), Type::Stream).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(server.server_address()).unwrap();
    server.handle_request().unwrap();
    assert_eq!(rec.0.shutdowns.load(Ordering::SeqCst), 1);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(client.recv(10).unwrap(), b"");
}

fn datagram_suite<K: Kind<Request<()> = DatagramRequest>>(unix: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::<K>::bind(address_in(unix, dir.path()), echo_line_dgram).unwrap();
    run_server(server, |a| dgram_examine(a, dir.path()));
    let servings: Vec<_> = (0..20)
        .map(|_| {
            let s = Server::<K>::bind(address_in(unix, dir.path()), echo_line_dgram).unwrap();
            Serving::start(s, Duration::from_millis(10))
        })
        .collect();
    servings.into_iter().for_each(|s| drop(s.stop()));
    let mut server = Server::<K>::bind(address_in(unix, dir.path()), echo_line_dgram).unwrap();
    server.server_close();
    assert_eq!(server.fileno(), -1);
    // A handler error reaches handle_error once, and the reply written so far is still sent.
    let rec = Shared::default();
    let mut server = Server::<K>::builder(|r: &mut DatagramRequest| {
        r.wfile.write_all(b"partial")?;
        Err::<(), _>(std::io::Error::other("Test error").into())
    })
    .hooks(rec.clone())
    .bind(address_in(unix, dir.path()))
    .unwrap();
    let client = Socket::new(server.server_address().family(), Type::Datagram).unwrap();
    client.settimeout(Some(GENEROUS));
    if unix {
        client
            .bind(dir.path().join("err-client.sock").as_path())
            .unwrap();
    } else {
        client.bind("127.0.0.1:0").unwrap();
    }
    client.sendto(b"x", server.server_address()).unwrap();
    server.handle_request().unwrap();
    assert_eq!(rec.0.error_count(), 1);
    assert_eq!(rec.0.shutdowns.load(Ordering::SeqCst), 1);
    assert_eq!(client.recvfrom(100).unwrap().0, b"partial");
    // verify_request false: no reply, shutdown_request once.
    let rec = Shared(Arc::new(Recorder::rejecting()));
    let mut server = Server::<K>::builder(echo_line_dgram)
        .hooks(rec.clone())
        .bind(address_in(unix, dir.path()))
        .unwrap();
    client.sendto(TEST_STR, server.server_address()).unwrap();
    server.handle_request().unwrap();
    assert_eq!(rec.0.shutdowns.load(Ordering::SeqCst), 1);
    client.settimeout(Some(Duration::from_millis(100)));
    assert!(
        client.recvfrom(100).is_err(),
        "a rejected datagram gets no reply"
    );
}

#[test]
fn tcp_server() {
    stream_suite::<sockserve_server::Tcp>(false);
}

#[test]
fn udp_server() {
    datagram_suite::<sockserve_server::Udp>(false);
}

#[test]
fn unix_stream_server() {
    stream_suite::<sockserve_server::UnixStream>(true);
}

#[test]
fn unix_datagram_server() {
    datagram_suite::<sockserve_server::UnixDatagram>(true);
}
