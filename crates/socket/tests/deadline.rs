//! Tests of the calls with a deadline of their own (`recv_into_by`, `send_by`, `sendall_by`):
//! the earlier of the deadline and the socket's timeout wins, whatever the socket's mode, and
//! the fd's mode is never changed.

mod util;

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sockserve_socket::{Family, Type, socketpair};
use util::{BOUND, assert_took, tcp_pair};

const SHORT: Duration = Duration::from_millis(200);

#[test]
fn a_blocking_socket_waits_until_the_deadline_and_keeps_its_mode() {
    let (_a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    assert!(!util::is_nonblocking_fd(b.fileno()));
    let mut buf = [0u8; 16];
    for round in 0..2 {
        let start = Instant::now();
        let err = b.recv_into_by(&mut buf, Some(start + SHORT)).unwrap_err();
        assert_took(&format!("recv_into_by number {round}"), start, SHORT, BOUND);
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "timed out");
    }
    assert_eq!(b.gettimeout(), None, "the socket's timeout is untouched");
    assert!(
        !util::is_nonblocking_fd(b.fileno()),
        "the fd is still blocking: no fcntl per call"
    );
}

#[test]
fn bytes_that_arrive_before_the_deadline_are_returned_at_once() {
    let (a, b) = tcp_pair();
    let sender = thread::spawn(move || {
        a.sendall(b"late but in time").unwrap();
        a
    });
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < b"late but in time".len() {
        let n = b.recv_into_by(&mut buf, Some(start + BOUND)).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"late but in time");
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    drop(sender.join().unwrap());
}

#[test]
fn no_deadline_is_the_plain_call() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.sendall_by(b"abc", None).unwrap();
    assert_eq!(a.send_by(b"de", None).unwrap(), 2);
    let mut buf = [0u8; 8];
    let mut got = Vec::new();
    while got.len() < 5 {
        let n = b.recv_into_by(&mut buf, None).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"abcde");
}

#[test]
fn the_earlier_of_the_timeout_and_the_deadline_wins() {
    let (_a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let mut buf = [0u8; 16];
    // The socket's timeout is the earlier.
    b.settimeout(Some(SHORT));
    let start = Instant::now();
    let err = b
        .recv_into_by(&mut buf, Some(start + 20 * BOUND))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_took("the timeout before the deadline", start, SHORT, BOUND);
    // The deadline is the earlier.
    b.settimeout(Some(20 * BOUND));
    let start = Instant::now();
    let err = b.recv_into_by(&mut buf, Some(start + SHORT)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_took("the deadline before the timeout", start, SHORT, BOUND);
    assert_eq!(b.gettimeout(), Some(20 * BOUND));
}

#[test]
fn a_passed_deadline_fails_at_once_even_with_bytes_waiting() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.sendall(b"waiting").unwrap();
    let mut buf = [0u8; 16];
    let past = Instant::now();
    let err = b.recv_into_by(&mut buf, Some(past)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let err = b.send_by(b"x", Some(past)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let err = b.sendall_by(b"x", Some(past)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Nothing was consumed or sent: the bytes are still there, and nothing reached `a`.
    let n = b.recv_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"waiting");
    a.setblocking(false).unwrap();
    assert_eq!(a.recv(16).unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn a_non_blocking_socket_never_waits() {
    let (_a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    b.setblocking(false).unwrap();
    let mut buf = [0u8; 16];
    let start = Instant::now();
    let err = b.recv_into_by(&mut buf, Some(start + BOUND)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() < BOUND / 2, "took {:?}", start.elapsed());
}

/// A connected pair whose buffers have fixed sizes (16 KiB asked for each): the kernel's
/// autotuning would grow them while the test waits (the receiver's window opens as data
/// comes, even unread; seen under valgrind on a loaded machine), and a send into "full"
/// buffers would then make progress.
fn unread_pair() -> (sockserve_socket::Socket, sockserve_socket::Socket) {
    let (a, b) = tcp_pair();
    a.setsockopt(sockserve_socket::opt::SendBufferSize, 16 << 10)
        .expect("SO_SNDBUF");
    b.setsockopt(sockserve_socket::opt::RecvBufferSize, 16 << 10)
        .expect("SO_RCVBUF");
    (a, b)
}

/// Fills the send buffers of `a` (nobody reads the peer): sends until a send makes no
/// progress within a short deadline, and then none within a longer one (a loaded machine may
/// be slow to acknowledge what was sent: the buffers only looked full).
fn fill(a: &sockserve_socket::Socket) {
    let chunk = vec![7u8; 65536];
    let start = Instant::now();
    let mut wait = Duration::from_millis(20);
    loop {
        assert!(start.elapsed() < BOUND, "the buffers never filled");
        match a.send_by(&chunk, Some(Instant::now() + wait)) {
            Ok(n) => assert!(n > 0),
            Err(e) if e.kind() == ErrorKind::TimedOut && wait > Duration::from_millis(20) => {
                return;
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => wait = Duration::from_millis(300),
            Err(e) => panic!("send_by: {e}"),
        }
    }
}

#[test]
fn send_by_times_out_when_the_peer_does_not_read() {
    let (a, _b) = unread_pair();
    fill(&a);
    let start = Instant::now();
    let err = a.send_by(&[1u8; 4096], Some(start + SHORT)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_took("send_by into full buffers", start, SHORT, BOUND);
    assert!(!util::is_nonblocking_fd(a.fileno()));
}

#[test]
fn sendall_by_bounds_the_whole_call() {
    let (a, b) = tcp_pair();
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    // A reader that takes 4 KiB every 20 ms (the pace, not a synchronisation): progress all
    // along, but 32 MiB, more than loopback's buffers hold, would take minutes.
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match b.recv_into_by(&mut buf, Some(Instant::now() + BOUND)) {
                Ok(0) | Err(_) => return,
                Ok(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let data = vec![0u8; 32 << 20];
    let start = Instant::now();
    let err = a.sendall_by(&data, Some(start + 3 * SHORT)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_took("sendall_by to a slow reader", start, 3 * SHORT, BOUND);
    done.store(true, Ordering::Relaxed);
    drop(a);
    reader.join().unwrap();
}

#[test]
fn sendall_by_also_keeps_the_sockets_own_timeout() {
    let (a, _b) = unread_pair();
    fill(&a);
    a.settimeout(Some(SHORT));
    let start = Instant::now();
    let err = a
        .sendall_by(&[1u8; 4096], Some(start + 20 * BOUND))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_took("sendall_by with a shorter timeout", start, SHORT, BOUND);
}
