//! `Reactor`: register / modify / unregister, their errors, timeouts and the readiness flags.

mod util;

use std::io::{self, ErrorKind, Read, Write};
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use sockserve_reactor::{Interest, RESERVED_KEY, Reactor};
use util::{BOUND, assert_quiet, select_some, select_until, tcp_pair};

/// A bare descriptor number, for the error paths.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn register_modify_unregister() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 1, Interest::WRITABLE)?;
    let r = select_until(&mut reactor, 1, "writable after register", |r| r.writable);
    assert!(!r.readable, "only writable was asked for: {r:?}");

    reactor.modify(&sock, 2, Interest::READABLE)?;
    sock.send_to(b"x", sock.local_addr()?)?;
    let r = select_until(&mut reactor, 2, "readable under the new key", |r| {
        r.readable
    });
    assert!(!r.writable, "writable was dropped by modify: {r:?}");

    reactor.unregister(&sock)?;
    sock.send_to(b"y", sock.local_addr()?)?;
    assert_quiet(&mut reactor, "after unregister");
    Ok(())
}

#[test]
fn unregister_of_never_registered_fd_fails() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let err = reactor.unregister(&sock).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    Ok(())
}

#[test]
fn unregister_twice_fails() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 0, Interest::READABLE)?;
    reactor.unregister(&sock)?;
    let err = reactor.unregister(&sock).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    Ok(())
}

#[test]
fn register_twice_fails() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 0, Interest::READABLE)?;
    let err = reactor.register(&sock, 1, Interest::READABLE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    Ok(())
}

#[test]
fn modify_of_unregistered_fd_fails() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let err = reactor.modify(&sock, 0, Interest::READABLE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    Ok(())
}

#[test]
fn register_of_bad_fd_fails() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let err = reactor
        .register(&Fd(-1), 0, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(9), "EBADF expected, got {err}");
    Ok(())
}

#[test]
fn reserved_key_is_refused() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let err = reactor
        .register(&sock, RESERVED_KEY, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    reactor.register(&sock, 0, Interest::READABLE)?;
    let err = reactor
        .modify(&sock, RESERVED_KEY, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    Ok(())
}

#[test]
fn select_timeout_returns_empty_after_the_timeout() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 0, Interest::READABLE)?;
    let timeout = Duration::from_millis(150);
    let start = Instant::now();
    let ready = reactor.select(Some(timeout))?;
    let elapsed = start.elapsed();
    assert!(ready.is_empty(), "nothing should be ready: {ready:?}");
    // The kernel never returns early; allow a little clock skew downwards only.
    assert!(
        elapsed >= timeout - Duration::from_millis(5),
        "returned after {elapsed:?}, before the {timeout:?} timeout"
    );
    assert!(elapsed < BOUND, "returned only after {elapsed:?}");
    Ok(())
}

#[test]
fn select_zero_only_polls() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 0, Interest::READABLE)?;
    let start = Instant::now();
    assert!(reactor.select(Some(Duration::ZERO))?.is_empty());
    assert!(start.elapsed() < BOUND, "Some(ZERO) blocked");
    Ok(())
}

#[test]
fn writable_on_connected_socket() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let (client, _server) = tcp_pair()?;
    reactor.register(&client, 3, Interest::WRITABLE)?;
    let ready = select_some(&mut reactor, "connected socket writable");
    assert_eq!(ready.len(), 1, "{ready:?}");
    let r = ready[0];
    assert!(
        r.key == 3 && r.writable && !r.readable && !r.error && !r.hangup,
        "{r:?}"
    );
    Ok(())
}

#[test]
fn readable_on_data_then_quiet_once_drained() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let (mut client, mut server) = tcp_pair()?;
    server.set_nonblocking(true)?;
    reactor.register(&server, 4, Interest::READABLE)?;
    assert_quiet(&mut reactor, "no data yet");

    client.write_all(b"hello")?;
    let ready = select_some(&mut reactor, "data arrived");
    assert_eq!(ready.len(), 1, "{ready:?}");
    let r = ready[0];
    assert!(
        r.key == 4 && r.readable && !r.writable && !r.hangup,
        "{r:?}"
    );

    // Drain until WouldBlock, as the contract asks.
    let mut buf = [0u8; 64];
    let n = server.read(&mut buf)?;
    assert_eq!(&buf[..n], b"hello");
    let err = server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_quiet(&mut reactor, "drained");

    // New data is a new edge.
    client.write_all(b"again")?;
    select_until(&mut reactor, 4, "second write", |r| r.readable);
    Ok(())
}

#[test]
fn hangup_when_the_peer_closes() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let (client, mut server) = tcp_pair()?;
    server.set_nonblocking(true)?;
    reactor.register(&server, 5, Interest::READABLE)?;
    drop(client);
    let r = select_until(&mut reactor, 5, "peer closed", |r| r.hangup);
    assert!(
        r.readable,
        "a hangup is readable (the read sees EOF): {r:?}"
    );
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf)?, 0, "EOF expected");
    Ok(())
}

#[test]
fn error_when_the_peer_resets() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let (mut client, server) = tcp_pair()?;
    reactor.register(&client, 6, Interest::READABLE | Interest::WRITABLE)?;
    drop(server);
    select_until(&mut reactor, 6, "FIN from the peer", |r| r.hangup);
    // Writing to a closed peer makes it answer with RST: ECONNRESET, EPOLLERR | EPOLLHUP.
    client.write_all(b"into the void")?;
    let r = select_until(&mut reactor, 6, "RST from the peer", |r| r.error);
    assert!(r.hangup && r.readable && r.writable, "{r:?}");
    Ok(())
}

#[test]
fn hangup_is_reported_but_readable_is_masked_for_writable_only() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let (a, b) = UnixStream::pair()?;
    reactor.register(&a, 7, Interest::WRITABLE)?;
    select_until(&mut reactor, 7, "initial writable", |r| r.writable);
    drop(b);
    let r = select_until(&mut reactor, 7, "peer closed", |r| r.hangup);
    assert!(!r.readable, "readable was not asked for: {r:?}");
    Ok(())
}

#[test]
fn keys_are_reported_per_registration() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let socks: Vec<UdpSocket> = (0..10)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<_>>()?;
    for (i, s) in socks.iter().enumerate() {
        reactor.register(s, 100 + i, Interest::READABLE)?;
    }
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    for i in [2, 5, 7] {
        sender.send_to(b"x", socks[i].local_addr()?)?;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        for r in select_some(&mut reactor, "three datagrams") {
            assert!(r.readable, "{r:?}");
            seen.push(r.key);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [102, 105, 107]);
    Ok(())
}

#[test]
fn select_with_small_capacity_reports_the_rest_next_time() -> io::Result<()> {
    let mut reactor = Reactor::with_capacity(1)?;
    let socks: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<_>>()?;
    for (i, s) in socks.iter().enumerate() {
        reactor.register(s, i, Interest::WRITABLE)?;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ready = select_some(&mut reactor, "three writable sockets");
        assert_eq!(ready.len(), 1, "capacity 1: {ready:?}");
        seen.push(ready[0].key);
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
    Ok(())
}

#[test]
fn reactor_debug_is_useful() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 0, Interest::READABLE)?;
    let text = format!("{reactor:?}");
    assert!(text.contains("registered: 1"), "{text}");
    Ok(())
}

#[test]
fn a_registrar_registers_from_another_thread_while_select_waits() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let registrar = reactor.registrar()?;
    let (watched, mut peer) = UnixStream::pair()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || -> io::Result<UnixStream> {
        // Once the owner waits (or is about to): the registration must reach that wait.
        rx.recv().expect("the owner is waiting");
        registrar.register(&watched, 9, Interest::READABLE)?;
        peer.write_all(b"x")?;
        Ok(watched)
    });
    tx.send(()).expect("the registering thread is alive");
    let r = select_until(
        &mut reactor,
        9,
        "a descriptor registered by another thread",
        |r| r.readable,
    );
    assert!(!r.writable, "only readable was asked for: {r:?}");
    let watched = t.join().expect("registering thread panicked")?;
    reactor.unregister(&watched)?;
    Ok(())
}

#[test]
fn descriptors_sharing_a_key_keep_it_until_the_last_is_unregistered() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let registrar = reactor.registrar()?;
    let (a, mut a_peer) = UnixStream::pair()?;
    let (b, mut b_peer) = UnixStream::pair()?;
    registrar.register(&a, 4, Interest::READABLE)?;
    registrar.register(&b, 4, Interest::READABLE)?;
    registrar.unregister(&a)?;
    b_peer.write_all(b"b")?;
    let r = select_until(&mut reactor, 4, "the key's other descriptor", |r| {
        r.readable
    });
    assert!(
        !r.writable,
        "the key's interest is still readable only: {r:?}"
    );
    reactor.still_ready(4, Interest::READABLE);
    registrar.unregister(&b)?;
    a_peer.write_all(b"a")?;
    assert_quiet(
        &mut reactor,
        "after both descriptors of the key were unregistered",
    );
    Ok(())
}
