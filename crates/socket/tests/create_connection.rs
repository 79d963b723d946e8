//! Tests of `create_connection` and `ConnectOptions`.

mod util;

use std::io::ErrorKind;
use std::time::Duration;

use sockserve_socket::{Address, ConnectError, ConnectOptions, create_connection};
use util::{refusing_address, tcp_listener};

#[test]
fn connects_and_keeps_the_timeout() {
    let listener = tcp_listener();
    let opts = ConnectOptions::new().timeout(Some(Duration::from_secs(4)));
    let client = create_connection(listener.getsockname().unwrap(), &opts).unwrap();
    assert_eq!(
        client.getpeername().unwrap(),
        listener.getsockname().unwrap()
    );
    assert_eq!(client.gettimeout(), Some(Duration::from_secs(4)));
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.getsockname().unwrap());
    client.sendall(b"hi").unwrap();
    assert_eq!(conn.recv(8).unwrap(), b"hi");
    let blocking = create_connection(listener.getsockname().unwrap(), &ConnectOptions::default());
    assert_eq!(
        blocking.unwrap().gettimeout(),
        None,
        "no default timeout: blocking"
    );
}

#[test]
fn resolves_host_names() {
    let listener = tcp_listener();
    let port = listener.getsockname().unwrap().as_inet().unwrap().port();
    // localhost may resolve to ::1 first, which refuses; every address is tried in order.
    let client = create_connection(("localhost", port), &ConnectOptions::default()).unwrap();
    assert_eq!(
        client.getpeername().unwrap(),
        listener.getsockname().unwrap()
    );
}

#[test]
fn tries_every_address_in_order() {
    let (_r1, refused1) = refusing_address();
    let (_r2, refused2) = refusing_address();
    let listener = tcp_listener();
    let good = listener.getsockname().unwrap();
    let client = create_connection(
        [refused1.clone(), refused2, good.clone()],
        &ConnectOptions::default(),
    )
    .unwrap();
    assert_eq!(client.getpeername().unwrap(), good);
    let _ = refused1;
}

#[test]
fn when_all_fail_the_error_lists_every_failure() {
    let (_r1, refused1) = refusing_address();
    let (_r2, refused2) = refusing_address();
    let err = create_connection(
        vec![refused1.clone(), refused2.clone()],
        &ConnectOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ConnectionRefused,
        "the kind of the last failure"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&refused1.to_string()) && msg.contains(&refused2.to_string()),
        "{msg}"
    );
    let detail = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ConnectError>())
        .unwrap();
    let tried: Vec<&Address> = detail.attempts().iter().map(|(a, _)| a).collect();
    assert_eq!(tried, [&refused1, &refused2]);
    assert!(
        detail
            .attempts()
            .iter()
            .all(|(_, e)| e.raw_os_error() == Some(libc::ECONNREFUSED))
    );
    let source = std::error::Error::source(detail).unwrap();
    assert!(
        source.to_string().contains("refused"),
        "the source is the last error: {source}"
    );
}

#[test]
fn binds_the_source_address() {
    let listener = tcp_listener();
    let source: Address = "127.0.0.1:0".parse().unwrap();
    let opts = ConnectOptions::new().source_address(source);
    let client = create_connection(listener.getsockname().unwrap(), &opts).unwrap();
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.getsockname().unwrap());
    // A source address that is in use fails that attempt.
    let opts = ConnectOptions::new().source_address(listener.getsockname().unwrap());
    let err = create_connection(listener.getsockname().unwrap(), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[test]
fn resolution_errors_are_returned_as_they_are() {
    let err = create_connection("no.such.host.invalid:80", &ConnectOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to resolve 'no.such.host.invalid'"),
        "{err}"
    );
    let err = create_connection("127.0.0.1:65536", &ConnectOptions::default()).unwrap_err();
    assert!(err.to_string().contains("port must be 0-65535"), "{err}");
}
