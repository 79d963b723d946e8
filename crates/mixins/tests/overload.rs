//! `max_connections` and the overload policies, on threading servers (whose pool would take
//! every connection): `Pause` (the default) leaves connections over the limit in the backlog
//! and serves them in turn, `Close` resets them, `reply` writes them a line first; and the
//! limit's default.

mod util;

use handler::{BoxError, DatagramRequest, StreamRequest};
use server::{Overload, RequestRef, Running, Server, Tcp, Udp};
use socket::{Family, Socket, Type};
use sockserve_mixins::{Threading, ThreadingTcpServer, ThreadingUdpServer};
use std::{
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};
use util::*;

/// A handler that says `started`, then echoes one line; counts the requests running at once.
fn held(
    peak: Arc<AtomicUsize>,
) -> impl FnMut(&mut StreamRequest) -> Result<(), BoxError> + Clone + Send + 'static {
    let running = Arc::new(AtomicUsize::new(0));
    move |req: &mut StreamRequest| {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        let served = (|| -> Result<(), BoxError> {
            req.wfile.write_all(b"started\n")?;
            let mut line = String::new();
            req.rfile.read_line(&mut line)?;
            Ok(req.wfile.write_all(line.as_bytes())?)
        })();
        running.fetch_sub(1, Ordering::SeqCst);
        served
    }
}

fn connect(running: &Running<Tcp, Threading>) -> BufReader<TcpStream> {
    let c = TcpStream::connect(running.server_address().as_inet().unwrap()).unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    BufReader::new(c)
}

fn read_line(c: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    c.read_line(&mut line).expect("a line (timed out?)");
    line
}

/// Sends a line and reads its echo.
fn finish(c: &mut BufReader<TcpStream>) {
    c.get_mut().write_all(b"bye\n").unwrap();
    assert_eq!(read_line(c), "bye\n");
}

#[test]
fn pause_holds_connections_over_the_limit_in_the_backlog_and_serves_them_in_turn() {
    let peak = Arc::new(AtomicUsize::new(0));
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held(peak.clone()))
        .max_connections(2)
        .bind("127.0.0.1:0")
        .unwrap();
    assert_eq!(server.max_connections(), 2);
    let running = server.spawn().unwrap();
    let mut open: Vec<_> = (0..2).map(|_| connect(&running)).collect();
    for c in &mut open {
        assert_eq!(read_line(c), "started\n");
    }
    // Two more connect (the kernel's backlog takes them) and are not served yet.
    let mut waiting: Vec<_> = (0..2).map(|_| connect(&running)).collect();
    for c in &mut waiting {
        c.get_mut().write_all(b"early\n").unwrap();
    }
    assert_eq!(running.in_flight(), 2);
    // Each that ends lets one in, in arrival order, and none is refused.
    for c in &mut open {
        finish(c);
    }
    for c in &mut waiting {
        assert_eq!(read_line(c), "started\n");
        assert_eq!(read_line(c), "early\n");
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "never more than 2 at once"
    );
    assert_eq!(running.shutdown_handle().turned_away(), 0);
    running.shutdown().unwrap().server_close();
}

#[test]
fn close_resets_connections_over_the_limit() {
    let peak = Arc::new(AtomicUsize::new(0));
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held(peak))
        .max_connections(1)
        .overload(Overload::Close)
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn().unwrap();
    let mut first = connect(&running);
    assert_eq!(read_line(&mut first), "started\n");
    for _ in 0..3 {
        let mut over = connect(&running);
        let mut rest = Vec::new();
        let err = over
            .read_to_end(&mut rest)
            .expect_err("a reset, not end of file");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }
    assert_eq!(running.shutdown_handle().turned_away(), 3);
    // Room again: served as usual.
    finish(&mut first);
    wait_until("the first request ended", || running.in_flight() == 0);
    let mut next = connect(&running);
    assert_eq!(read_line(&mut next), "started\n");
    finish(&mut next);
    running.shutdown().unwrap().server_close();
}

#[test]
fn reply_writes_a_line_then_closes_cleanly() {
    let peak = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let blocking = Arc::new(Mutex::new(Vec::new()));
    let (s, b) = (seen.clone(), blocking.clone());
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held(peak))
        .max_connections(1)
        .overload(Overload::reply(move |rejected| {
            s.lock().unwrap().push(rejected.client_address().clone());
            if let RequestRef::Stream(conn) = rejected.request() {
                b.lock().unwrap().push(conn.getblocking());
            }
            rejected.send(b"busy, try again later\n")
        }))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn().unwrap();
    let mut first = connect(&running);
    assert_eq!(read_line(&mut first), "started\n");
    let mut over = connect(&running);
    let client = over.get_ref().local_addr().unwrap();
    // The reply, then end of file (a FIN, not a reset).
    let mut reply = String::new();
    over.read_to_string(&mut reply)
        .expect("the reply, then end of file");
    assert_eq!(reply, "busy, try again later\n");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap()[0].as_inet(), Some(client));
    assert_eq!(
        *blocking.lock().unwrap(),
        [false],
        "the hook's connection never blocks"
    );
    finish(&mut first);
    running.shutdown().unwrap().server_close();
}

#[test]
fn a_datagram_server_at_the_limit_answers_with_the_reply() {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let server: Server<Udp, Threading> =
        ThreadingUdpServer::builder(move |req: &mut DatagramRequest| -> Result<(), BoxError> {
            // The first datagram's handler holds the one place until released.
            let _ = released.lock().unwrap().recv_timeout(GENEROUS);
            req.wfile = req.packet.to_vec();
            Ok(())
        })
        .max_connections(1)
        .overload(Overload::reply(|rejected| rejected.send(b"busy")))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn().unwrap();
    let first = Socket::new(Family::Inet, Type::Datagram).unwrap();
    first.settimeout(Some(GENEROUS));
    first.sendto(b"one", running.server_address()).unwrap();
    wait_until("the first datagram is in hand", || running.in_flight() == 1);
    let second = Socket::new(Family::Inet, Type::Datagram).unwrap();
    second.settimeout(Some(GENEROUS));
    second.sendto(b"two", running.server_address()).unwrap();
    assert_eq!(second.recv(64).unwrap(), b"busy");
    release.send(()).unwrap();
    assert_eq!(first.recv(64).unwrap(), b"one");
    assert_eq!(running.shutdown_handle().turned_away(), 1);
    running.shutdown().unwrap().server_close();
}

#[test]
fn max_connections_follows_the_open_file_limit_by_default() {
    let server = ThreadingTcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    let soft = socket::fd_limit().unwrap().soft;
    let expected = soft.saturating_sub((soft / 10).max(32)).max(1);
    assert_eq!(server.max_connections() as u64, expected);
    assert!(
        format!("{:?}", Overload::default()) == "Pause",
        "Pause is the default"
    );
}
