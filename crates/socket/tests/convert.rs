//! Tests of conversions between `Socket`, fds and the std socket types.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::Duration;

use sockserve_socket::{Family, Socket, Type};

#[test]
fn tcp_types_convert_both_ways() {
    let listener = Socket::from(TcpListener::bind("127.0.0.1:0").unwrap());
    assert_eq!(
        (listener.family(), listener.socket_type()),
        (Family::Inet, Type::Stream)
    );
    let addr = listener.getsockname().unwrap().as_inet().unwrap();
    let stream = Socket::from(TcpStream::connect(addr).unwrap());
    let (conn, _) = listener.accept().unwrap();
    let mut std_conn = TcpStream::try_from(conn).unwrap();
    std_conn.write_all(b"std to ours").unwrap();
    assert_eq!(stream.recv(64).unwrap(), b"std to ours");
    let std_listener = TcpListener::try_from(listener).unwrap();
    assert_eq!(std_listener.local_addr().unwrap(), addr);
    let v6 = Socket::from(TcpListener::bind("[::1]:0").unwrap());
    assert_eq!(v6.family(), Family::Inet6);
}

#[test]
fn udp_and_unix_types_convert_both_ways() {
    let udp = Socket::from(UdpSocket::bind("127.0.0.1:0").unwrap());
    assert_eq!(udp.socket_type(), Type::Datagram);
    let std_udp = UdpSocket::try_from(udp).unwrap();
    assert!(std_udp.local_addr().is_ok());

    let (x, y) = UnixStream::pair().unwrap();
    let x = Socket::from(x);
    assert_eq!((x.family(), x.socket_type()), (Family::Unix, Type::Stream));
    x.sendall(b"unix").unwrap();
    let mut y = y;
    let mut buf = [0u8; 4];
    y.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"unix");
    let _back: UnixStream = UnixStream::try_from(x).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listener = Socket::from(UnixListener::bind(dir.path().join("l.sock")).unwrap());
    let _std_listener = UnixListener::try_from(listener).unwrap();
    let (d1, _d2) = UnixDatagram::pair().unwrap();
    let d1 = Socket::from(d1);
    assert_eq!(d1.socket_type(), Type::Datagram);
    let _std_dgram = UnixDatagram::try_from(d1).unwrap();
}

#[test]
fn converting_to_the_wrong_std_type_fails() {
    let udp = Socket::new(Family::Inet, Type::Datagram).unwrap();
    let err = TcpStream::try_from(udp).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("cannot make a TcpStream from a AF_INET SOCK_DGRAM socket"),
        "{err}"
    );
    let unix = Socket::new(Family::Unix, Type::Stream).unwrap();
    assert!(UdpSocket::try_from(unix).is_err());
    let tcp = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert!(UnixStream::try_from(tcp).is_err());
}

#[test]
fn a_non_blocking_std_socket_keeps_its_mode() {
    let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let listener = Socket::from(std_listener);
    assert_eq!(listener.gettimeout(), Some(Duration::ZERO));
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn fd_conversions_and_borrows() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    let raw = sock.as_raw_fd();
    assert_eq!(sock.as_fd().as_raw_fd(), raw);
    let fd = OwnedFd::from(sock);
    assert_eq!(fd.as_raw_fd(), raw);
    let again = Socket::try_from(fd).unwrap();
    assert_eq!(again.fileno(), raw);
}
