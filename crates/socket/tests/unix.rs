//! Tests of Unix domain sockets: paths, unnamed peers, Linux abstract names.

mod util;

use std::io::ErrorKind;

use sockserve_socket::{Address, Family, Socket, Type};
use util::abstract_name;

#[test]
fn unix_stream_over_a_path_with_an_unnamed_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    let listener = Socket::new(Family::Unix, Type::Stream).unwrap();
    listener.bind(&path).unwrap();
    listener.listen(4).unwrap();
    assert_eq!(listener.getsockname().unwrap(), Address::Unix(path.clone()));
    let client = Socket::new(Family::Unix, Type::Stream).unwrap();
    client.connect(path.as_path()).unwrap();
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, Address::Unnamed);
    assert_eq!(client.getpeername().unwrap(), Address::Unix(path));
    client.sendall(b"over unix").unwrap();
    assert_eq!(conn.recv(64).unwrap(), b"over unix");
}

#[test]
fn unix_datagram_from_an_unbound_sender_is_unnamed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dgram.sock");
    let server = Socket::new(Family::Unix, Type::Datagram).unwrap();
    server.bind(&path).unwrap();
    let client = Socket::new(Family::Unix, Type::Datagram).unwrap();
    client.sendto(b"anonymous", &path).unwrap();
    assert_eq!(
        server.recvfrom(64).unwrap(),
        (b"anonymous".to_vec(), Address::Unnamed)
    );
    let err = client.sendto(b"x", Address::Unnamed).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn abstract_names_bind_connect_and_report() {
    let name = Address::Abstract(abstract_name("stream"));
    let listener = Socket::new(Family::Unix, Type::Stream).unwrap();
    listener.bind(&name).unwrap();
    listener.listen(4).unwrap();
    assert_eq!(listener.getsockname().unwrap(), name);
    let client = Socket::new(Family::Unix, Type::Stream).unwrap();
    client.connect(name.to_string().as_str()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    assert_eq!(client.getpeername().unwrap(), name);
    conn.sendall(b"abstract").unwrap();
    assert_eq!(client.recv(64).unwrap(), b"abstract");
    let taken = Socket::new(Family::Unix, Type::Stream).unwrap();
    assert_eq!(taken.bind(&name).unwrap_err().kind(), ErrorKind::AddrInUse);
}

#[test]
fn unix_bind_with_a_too_long_path_fails_with_the_limit() {
    let sock = Socket::new(Family::Unix, Type::Stream).unwrap();
    let err = sock
        .bind(format!("/tmp/{}", "x".repeat(200)).as_str())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("the limit is 107"), "{err}");
}
