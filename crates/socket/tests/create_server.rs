//! Tests of `create_server` and `ServerOptions`.

mod util;

use std::io::ErrorKind;

use sockserve_socket::{
    Address, BindError, ConnectOptions, Family, ServerOptions, create_connection, create_server,
    opt,
};

#[test]
fn listens_with_reuse_address_on() {
    let server = create_server("127.0.0.1:0", &ServerOptions::default()).unwrap();
    assert!(server.getsockopt(opt::ReuseAddress).unwrap());
    assert!(!server.getsockopt(opt::ReusePort).unwrap());
    let client = create_connection(server.getsockname().unwrap(), &ConnectOptions::default());
    let client = client.unwrap();
    let (conn, _) = server.accept().unwrap();
    client.sendall(b"ok").unwrap();
    assert_eq!(conn.recv(4).unwrap(), b"ok");
}

#[test]
fn bind_errors_name_the_address_and_keep_the_kind() {
    let first = create_server("127.0.0.1:0", &ServerOptions::default()).unwrap();
    let addr = first.getsockname().unwrap();
    let err = create_server(&addr, &ServerOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(
        msg.ends_with(&format!("(while attempting to bind on address {addr})")),
        "{msg}"
    );
    let detail = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<BindError>())
        .unwrap();
    assert_eq!(detail.address(), &addr);
    let os = std::error::Error::source(detail).and_then(|e| e.downcast_ref::<std::io::Error>());
    assert_eq!(
        os.and_then(std::io::Error::raw_os_error),
        Some(libc::EADDRINUSE)
    );
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let opts = ServerOptions::new().reuse_port(true).backlog(8);
    let a = create_server("127.0.0.1:0", &opts).unwrap();
    let b = create_server(a.getsockname().unwrap(), &opts).unwrap();
    assert_eq!(a.getsockname().unwrap(), b.getsockname().unwrap());
    assert!(a.getsockopt(opt::ReusePort).unwrap());
}

#[test]
fn dualstack_ipv6_accepts_ipv4_clients() {
    let server = create_server("[::]:0", &ServerOptions::new().dualstack_ipv6(true)).unwrap();
    assert!(!server.getsockopt(opt::Ipv6Only).unwrap());
    let port = server.getsockname().unwrap().as_inet().unwrap().port();
    let client = create_connection(("127.0.0.1", port), &ConnectOptions::default()).unwrap();
    let (_conn, peer) = server.accept().unwrap();
    // An IPv4 client appears as an IPv4-mapped IPv6 address.
    let Address::Inet6(peer) = peer else {
        panic!("expected an IPv6 peer, got {peer:?}")
    };
    assert_eq!(
        peer.ip().to_ipv4_mapped(),
        Some(std::net::Ipv4Addr::LOCALHOST)
    );
    drop(client);
}

#[test]
fn ipv6_servers_are_ipv6_only_unless_asked() {
    let server = create_server("[::1]:0", &ServerOptions::default()).unwrap();
    assert!(server.getsockopt(opt::Ipv6Only).unwrap());
    let err = create_server("127.0.0.1:0", &ServerOptions::new().dualstack_ipv6(true)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("dualstack_ipv6 needs an IPv6 address"),
        "{err}"
    );
}

#[test]
fn family_option_picks_the_address_and_unix_paths_work() {
    let server = create_server(("localhost", 0), &ServerOptions::new().family(Family::Inet));
    assert_eq!(server.unwrap().family(), Family::Inet);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    let unix = create_server(path.as_path(), &ServerOptions::default()).unwrap();
    assert_eq!(unix.getsockname().unwrap(), Address::Unix(path.clone()));
    let client = create_connection(path.as_path(), &ConnectOptions::default()).unwrap();
    assert_eq!(client.getpeername().unwrap(), Address::Unix(path));
    let err = create_server("[::1]:0", &ServerOptions::new().family(Family::Inet)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
