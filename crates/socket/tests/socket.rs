//! Tests of `Socket`: creation, connection set-up, data transfer, close/dup/detach, names.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;

use sockserve_socket::{Family, Socket, Type, socketpair};
use util::{BOUND, is_cloexec, refusing_address, tcp_listener, tcp_pair, within};

#[test]
fn socket_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Socket>();
}

#[test]
fn tcp_bind_listen_connect_accept_and_talk() {
    let listener = tcp_listener();
    let addr = listener.getsockname().unwrap();
    assert_ne!(
        addr.as_inet().map(|a| a.port()),
        Some(0),
        "port 0 became a real port"
    );
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    client.connect(&addr).unwrap();
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.getsockname().unwrap());
    assert_eq!(conn.getpeername().unwrap(), client.getsockname().unwrap());
    assert_eq!(client.getpeername().unwrap(), addr);
    client.sendall(b"hello").unwrap();
    assert_eq!(conn.recv(1024).unwrap(), b"hello");
    assert_eq!(conn.send(b"world").unwrap(), 5);
    assert_eq!(client.recv(1024).unwrap(), b"world");
}

#[test]
fn with_protocol_and_each_family_and_type() {
    for (family, ty) in [
        (Family::Inet, Type::Stream),
        (Family::Inet, Type::Datagram),
        (Family::Inet6, Type::Stream),
        (Family::Unix, Type::Stream),
        (Family::Unix, Type::Datagram),
    ] {
        let sock = Socket::new(family, ty).unwrap();
        assert_eq!((sock.family(), sock.socket_type()), (family, ty));
        assert!(sock.gettimeout().is_none(), "a new socket is blocking");
    }
    let udp = Socket::with_protocol(Family::Inet, Type::Datagram, libc::IPPROTO_UDP).unwrap();
    assert_eq!(udp.socket_type(), Type::Datagram);
    let err = Socket::with_protocol(Family::Inet, Type::Stream, libc::IPPROTO_UDP).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPROTONOSUPPORT));
}

#[test]
fn connect_to_a_port_that_does_not_listen_is_refused() {
    let (_bound, addr) = refusing_address();
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    let err = client.connect(&addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn connect_ex_returns_errno_values() {
    let (_bound, refused) = refusing_address();
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert_eq!(client.connect_ex(&refused).unwrap(), libc::ECONNREFUSED);
    let listener = tcp_listener();
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert_eq!(
        client.connect_ex(listener.getsockname().unwrap()).unwrap(),
        0
    );
    let nb = Socket::new(Family::Inet, Type::Stream).unwrap();
    nb.setblocking(false).unwrap();
    let rc = nb.connect_ex(listener.getsockname().unwrap()).unwrap();
    assert!(
        rc == libc::EINPROGRESS || rc == 0,
        "non-blocking connect_ex gave {rc}"
    );
}

#[test]
fn connect_ex_still_fails_for_resolution_errors() {
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    let err = client.connect_ex("no.such.host.invalid:80").unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to resolve 'no.such.host.invalid'"),
        "{err}"
    );
    let err = client.connect_ex("127.0.0.1:65536").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn bind_to_an_address_in_use_fails() {
    let listener = tcp_listener();
    let other = Socket::new(Family::Inet, Type::Stream).unwrap();
    let err = other.bind(listener.getsockname().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[test]
fn bind_with_an_address_of_another_family_fails_clearly() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    let err = sock.bind("[::1]:0").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no AF_INET address"), "{err}");
    let err = sock.bind("not an address").unwrap_err();
    assert!(err.to_string().contains("expected IP:PORT"), "{err}");
}

#[test]
fn recv_returns_empty_when_the_peer_closes() {
    let (client, server) = tcp_pair();
    client.sendall(b"last words").unwrap();
    drop(client);
    assert_eq!(server.recv(100).unwrap(), b"last words");
    assert!(server.recv(100).unwrap().is_empty());
    assert!(server.recv(0).unwrap().is_empty(), "recv(0) is empty too");
}

#[test]
fn recv_into_fills_the_buffer_and_reports_the_count() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.sendall(b"0123456789").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(b.recv_into(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"0123");
    let mut rest = [0u8; 32];
    let n = b.recv_into(&mut rest).unwrap();
    assert_eq!(&rest[..n], b"456789");
}

#[test]
fn udp_sendto_and_recvfrom_discard_the_excess() {
    let server = Socket::new(Family::Inet, Type::Datagram).unwrap();
    server.bind("127.0.0.1:0").unwrap();
    let client = Socket::new(Family::Inet, Type::Datagram).unwrap();
    client.bind("127.0.0.1:0").unwrap();
    assert_eq!(
        client
            .sendto(&[7u8; 100], server.getsockname().unwrap())
            .unwrap(),
        100
    );
    let (data, from) = server.recvfrom(10).unwrap();
    assert_eq!((data, from), (vec![7u8; 10], client.getsockname().unwrap()));
    client.sendto(b"", server.getsockname().unwrap()).unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = server.recvfrom_into(&mut buf).unwrap();
    assert_eq!(n, 0, "a zero-length datagram gives an empty result");
}

#[test]
fn close_is_idempotent_and_later_calls_fail_with_ebadf() {
    let (mut client, _server) = tcp_pair();
    assert!(client.fileno() >= 0);
    client.close().unwrap();
    client.close().unwrap();
    assert!(client.is_closed());
    assert_eq!(client.fileno(), -1);
    assert_eq!(client.as_raw_fd(), -1);
    assert_eq!(
        client.recv(1).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        client.send(b"x").unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        client.getsockname().unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(client.dup().unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(
        client.setblocking(true).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        client.detach().unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(client.connect_ex("127.0.0.1:1").unwrap(), libc::EBADF);
}

#[test]
fn dup_shares_the_connection_and_keeps_the_timeout() {
    let (client, server) = tcp_pair();
    client.settimeout(Some(std::time::Duration::from_secs(7)));
    let copy = client.dup().unwrap();
    assert_ne!(copy.fileno(), client.fileno());
    assert_eq!(copy.gettimeout(), Some(std::time::Duration::from_secs(7)));
    assert!(is_cloexec(copy.fileno()));
    drop(client);
    copy.sendall(b"via the copy").unwrap();
    assert_eq!(server.recv(64).unwrap(), b"via the copy");
}

#[test]
fn detach_gives_the_fd_and_from_fd_takes_it_back() {
    let (mut client, server) = tcp_pair();
    let fd: OwnedFd = client.detach().unwrap();
    assert_eq!(client.fileno(), -1);
    let again = Socket::from_fd(fd).unwrap();
    assert_eq!(
        (again.family(), again.socket_type()),
        (Family::Inet, Type::Stream)
    );
    assert!(is_cloexec(again.fileno()));
    again.sendall(b"still connected").unwrap();
    assert_eq!(server.recv(64).unwrap(), b"still connected");
    let unix = Socket::new(Family::Unix, Type::Datagram).unwrap();
    let unix = Socket::from_fd(OwnedFd::from(unix)).unwrap();
    assert_eq!(
        (unix.family(), unix.socket_type()),
        (Family::Unix, Type::Datagram)
    );
}

#[test]
fn from_fd_of_a_non_socket_fails_clearly() {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let err = Socket::from_fd(OwnedFd::from(file)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("is not a socket"), "{err}");
}

#[test]
fn from_fd_keeps_a_non_blocking_mode_and_fromfd_duplicates() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let sock = Socket::fromfd(std::os::fd::AsFd::as_fd(&std_listener)).unwrap();
    assert_ne!(sock.fileno(), std_listener.as_raw_fd());
    assert_eq!(sock.gettimeout(), Some(std::time::Duration::ZERO));
    assert_eq!(sock.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(is_cloexec(sock.fileno()));
    drop(sock);
    assert!(
        std_listener.local_addr().is_ok(),
        "the original fd stays open"
    );
}

#[test]
fn getpeername_of_an_unconnected_socket_is_not_connected() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert_eq!(sock.getsockname().unwrap().to_string(), "0.0.0.0:0");
    assert_eq!(
        sock.getpeername().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_needs_a_connection() {
    let (client, server) = tcp_pair();
    client.shutdown(Shutdown::Write).unwrap();
    assert!(server.recv(16).unwrap().is_empty());
    server.sendall(b"reply after EOF").unwrap();
    assert_eq!(client.recv(64).unwrap(), b"reply after EOF");
    let lone = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert_eq!(
        lone.shutdown(Shutdown::Both).unwrap_err().raw_os_error(),
        Some(libc::ENOTCONN)
    );
}

#[test]
fn accepted_socket_is_blocking_even_from_a_non_blocking_listener() {
    let listener = tcp_listener();
    listener.setblocking(false).unwrap();
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    client.connect(listener.getsockname().unwrap()).unwrap();
    // The connection is complete once connect returns; a blocking accept would also do.
    listener.settimeout(Some(BOUND));
    let (conn, _) = listener.accept().unwrap();
    assert_eq!(conn.gettimeout(), None);
    assert!(conn.getblocking());
    assert!(
        !util::is_nonblocking_fd(conn.fileno()),
        "the fd itself is blocking"
    );
    assert!(is_cloexec(conn.fileno()));
    // And the same from a listener that stays non-blocking.
    listener.setblocking(false).unwrap();
    let client2 = Socket::new(Family::Inet, Type::Stream).unwrap();
    client2.connect(listener.getsockname().unwrap()).unwrap();
    assert!(
        util::wait_readable(listener.fileno(), BOUND),
        "the connection is queued"
    );
    let (conn2, _) = listener.accept().unwrap();
    assert!(!util::is_nonblocking_fd(conn2.fileno()));
    assert_eq!(conn2.gettimeout(), None);
}

#[test]
fn every_socket_is_close_on_exec() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let (client, server) = tcp_pair();
    for sock in [
        &a,
        &b,
        &client,
        &server,
        &Socket::new(Family::Inet6, Type::Datagram).unwrap(),
    ] {
        assert!(is_cloexec(sock.fileno()), "{sock:?} is close-on-exec");
    }
}

#[test]
fn sending_to_a_closed_peer_is_broken_pipe_not_sigpipe() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    drop(b);
    // With SIGPIPE at its default disposition this would kill the test process.
    assert_eq!(a.send(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(a.sendall(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!((&a).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    let (client, server) = tcp_pair();
    drop(server);
    // TCP: the first send may be accepted, then the RST makes later ones fail.
    let err = within(BOUND, "sending to a closed TCP peer", move || {
        loop {
            if let Err(e) = client.sendall(&[0u8; 65536]) {
                break e;
            }
        }
    });
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "got {err:?}"
    );
}

#[test]
fn read_and_write_impls_for_socket_and_refs() {
    let (mut a, mut b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.write_all(b"owned ").unwrap();
    (&a).write_all(b"borrowed").unwrap();
    a.flush().unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    b.read_to_string(&mut got).unwrap();
    assert_eq!(got, "owned borrowed");
    let mut more = [0u8; 4];
    assert_eq!((&b).read(&mut more).unwrap(), 0);
}

#[test]
fn a_shared_socket_serves_two_threads() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let a = std::sync::Arc::new(a);
    let writer = {
        let a = std::sync::Arc::clone(&a);
        thread::spawn(move || a.sendall(b"from a thread"))
    };
    writer.join().unwrap().unwrap();
    assert_eq!(b.recv(64).unwrap(), b"from a thread");
    b.sendall(b"back").unwrap();
    assert_eq!(a.recv(64).unwrap(), b"back");
}

#[test]
fn a_receive_size_that_cannot_be_allocated_is_an_error_not_a_panic() {
    // Python raises MemoryError (or OverflowError) here; `vec![0; n]` would panic or abort.
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    for bufsize in [usize::MAX, isize::MAX as usize] {
        let err = b.recv(bufsize).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfMemory, "recv({bufsize}): {err}");
        let err = b.recvfrom(bufsize).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::OutOfMemory,
            "recvfrom({bufsize}): {err}"
        );
    }
    // The socket is unharmed, and a large request only costs what is received.
    a.sendall(b"still here").unwrap();
    assert_eq!(b.recv(1 << 20).unwrap(), b"still here");
    a.sendall(b"and here").unwrap();
    let (data, _) = b.recvfrom(1 << 20).unwrap();
    assert_eq!(data, b"and here");
}
