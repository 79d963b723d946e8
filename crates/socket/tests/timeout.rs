//! Tests of timeouts: the three modes, per-call deadlines, sendall's and connect's whole-call
//! deadline, and sockets sharing one fd description.

mod util;

use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use sockserve_socket::{Family, Socket, Type, opt, socketpair};
use util::{BOUND, assert_took, tcp_listener, tcp_pair};

const SHORT: Duration = Duration::from_millis(200);

#[test]
fn settimeout_and_setblocking_set_pythons_three_modes() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert_eq!((sock.gettimeout(), sock.getblocking()), (None, true));
    sock.settimeout(Some(Duration::from_millis(1500)));
    assert_eq!(
        (sock.gettimeout(), sock.getblocking()),
        (Some(Duration::from_millis(1500)), true)
    );
    assert!(
        util::is_nonblocking_fd(sock.fileno()),
        "timeout mode is O_NONBLOCK inside"
    );
    sock.settimeout(Some(Duration::ZERO));
    assert_eq!(
        (sock.gettimeout(), sock.getblocking()),
        (Some(Duration::ZERO), false)
    );
    sock.setblocking(true).unwrap();
    assert_eq!(sock.gettimeout(), None);
    assert!(!util::is_nonblocking_fd(sock.fileno()));
    sock.setblocking(false).unwrap();
    assert_eq!(sock.gettimeout(), Some(Duration::ZERO));
    sock.settimeout(None);
    assert!(!util::is_nonblocking_fd(sock.fileno()));
}

#[test]
fn recv_times_out_with_timed_out_and_pythons_message() {
    let (a, _b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.settimeout(Some(SHORT));
    let start = Instant::now();
    let err = a.recv(16).unwrap_err();
    assert_took("recv with a timeout", start, SHORT, BOUND);
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.to_string(), "timed out");
}

#[test]
fn the_timeout_applies_to_each_call() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.settimeout(Some(SHORT));
    for round in 0..2 {
        let start = Instant::now();
        assert_eq!(a.recv(16).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_took(&format!("recv number {round}"), start, SHORT, BOUND);
    }
    b.sendall(b"data").unwrap();
    assert_eq!(
        a.recv(16).unwrap(),
        b"data",
        "data that is there is returned at once"
    );
}

#[test]
fn non_blocking_calls_fail_with_would_block() {
    let (a, _b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.setblocking(false).unwrap();
    assert_eq!(a.recv(16).unwrap_err().kind(), ErrorKind::WouldBlock);
    let mut buf = [0u8; 4];
    assert_eq!(
        a.recvfrom_into(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let listener = tcp_listener();
    listener.setblocking(false).unwrap();
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    // Filling the send buffer ends with WouldBlock rather than waiting.
    a.setsockopt(opt::SendBufferSize, 4096).unwrap();
    let err = a.sendall(&vec![0u8; 4 << 20]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
}

#[test]
fn accept_times_out() {
    let listener = tcp_listener();
    listener.settimeout(Some(SHORT));
    let start = Instant::now();
    let err = listener.accept().unwrap_err();
    assert_took("accept with a timeout", start, SHORT, BOUND);
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn connect_timeout_bounds_the_whole_connect() {
    // A listener with backlog 0 holds one connection in its queue; further SYNs are dropped by
    // the kernel, so later connects hang until their timeout.
    let listener = Socket::new(Family::Inet, Type::Stream).unwrap();
    listener.bind("127.0.0.1:0").unwrap();
    listener.listen(0).unwrap();
    let addr = listener.getsockname().unwrap();
    let mut kept = Vec::new();
    let mut timed_out = None;
    for _ in 0..16 {
        let client = Socket::new(Family::Inet, Type::Stream).unwrap();
        client.settimeout(Some(SHORT));
        let start = Instant::now();
        match client.connect(&addr) {
            Ok(()) => kept.push(client),
            Err(e) => {
                timed_out = Some((e, start));
                break;
            }
        }
    }
    let (err, start) = timed_out.expect("a connect to a full accept queue timed out");
    assert_took("connect with a timeout", start, SHORT, BOUND);
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    // connect_ex reports the timeout as EAGAIN, as CPython does.
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    client.settimeout(Some(SHORT));
    assert_eq!(client.connect_ex(&addr).unwrap(), libc::EAGAIN);
}

#[test]
fn sendall_times_out_when_the_peer_does_not_read() {
    let (a, _b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.settimeout(Some(SHORT));
    let start = Instant::now();
    let err = a.sendall(&vec![1u8; 64 << 20]).unwrap_err();
    assert_took("sendall to a peer that does not read", start, SHORT, BOUND);
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.to_string(), "timed out");
}

#[test]
fn sendall_timeout_bounds_the_whole_call_not_each_send() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.setsockopt(opt::SendBufferSize, 4096).unwrap();
    b.setsockopt(opt::RecvBufferSize, 4096).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A slow reader: each send makes progress well within the timeout, but all of it would
    // take far longer. The sleep paces the reader; it does not synchronise the test.
    let reader = {
        let stop = std::sync::Arc::clone(&stop);
        thread::spawn(move || {
            // Receives before looking at `stop`: even a reader first scheduled after the
            // deadline finds what the sender left in the buffers.
            let mut total = 0;
            loop {
                match b.recv(1024) {
                    Ok(d) if d.is_empty() => break,
                    Ok(d) => total += d.len(),
                    Err(_) => break,
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            total
        })
    };
    let timeout = Duration::from_millis(400);
    a.settimeout(Some(timeout));
    let start = Instant::now();
    let err = a.sendall(&vec![2u8; 16 << 20]).unwrap_err();
    assert_took("sendall to a slow reader", start, timeout, BOUND);
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(a);
    let received = reader.join().unwrap();
    assert!(received > 0, "the reader got some data before the deadline");
}

#[test]
fn a_dup_in_blocking_mode_does_not_break_the_originals_timeout() {
    // dup shares O_NONBLOCK; the original's timeout must still hold after the copy is made
    // blocking, and the copy must still block (not fail with WouldBlock).
    let (client, server) = tcp_pair();
    client.settimeout(Some(SHORT));
    let copy = client.dup().unwrap();
    copy.settimeout(None);
    let start = Instant::now();
    assert_eq!(client.recv(8).unwrap_err().kind(), ErrorKind::TimedOut);
    assert_took("recv on the original", start, SHORT, BOUND);
    client.settimeout(Some(SHORT)); // makes the shared fd O_NONBLOCK again
    let got = util::within(BOUND, "a blocking recv on the copy", move || {
        let waiter = thread::spawn(move || copy.recv(8));
        server.sendall(b"late").unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(got.unwrap(), b"late");
}
