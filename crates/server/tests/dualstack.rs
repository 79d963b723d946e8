//! `dualstack_ipv6`: a TCP server on `[::]` that also serves IPv4 clients when asked to, and
//! only IPv6 clients otherwise (`IPV6_V6ONLY`), whatever the system default. Loopback traffic
//! only; the machines that run these tests have IPv6 loopback, and its absence is a failure.

mod util;

use sockserve_server::TcpServer;
use std::{
    io::ErrorKind,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};
use util::{GENEROUS, Serving, echo_line, inet, stream_examine};

const TICK: Duration = Duration::from_millis(10);

/// A TCP echo server on `[::]:0`, failing clearly if IPv6 is unavailable.
fn bind_any6(dualstack: bool) -> TcpServer {
    let server = TcpServer::builder(echo_line)
        .dualstack_ipv6(dualstack)
        .bind("[::]:0")
        .unwrap_or_else(|e| {
            panic!(
                "IPv6 is unavailable here: cannot bind [::]:0 ({e}); these tests need IPv6 loopback"
            )
        });
    let only = server
        .socket()
        .expect("open")
        .getsockopt(socket::opt::Ipv6Only)
        .expect("getsockopt IPV6_V6ONLY");
    assert_eq!(
        only, !dualstack,
        "IPV6_V6ONLY with dualstack_ipv6({dualstack})"
    );
    server
}

fn port(serving: &Serving<sockserve_server::Tcp, sockserve_server::Synchronous>) -> u16 {
    let address = inet(&serving.address);
    assert!(address.is_ipv6(), "server address {address} is not IPv6");
    address.port()
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

#[test]
fn dualstack_server_accepts_ipv4_and_ipv6_clients() {
    let serving = Serving::start(bind_any6(true), TICK);
    let port = port(&serving);
    stream_examine(v4(port));
    stream_examine(v6(port));
    // Holding the IPv4 side of the port too, the server leaves no room for an IPv4 listener.
    let err = TcpListener::bind(v4(port)).expect_err("127.0.0.1 on the dual-stack port is free");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    serving.stop();
}

#[test]
fn ipv6_only_by_default_refuses_ipv4_clients() {
    // An IPv6-only server leaves the IPv4 side of its port to anyone, so another process may
    // hold 127.0.0.1 on the very port the system gave us: then try another port.
    for _ in 0..5 {
        let serving = Serving::start(bind_any6(false), TICK);
        let port = port(&serving);
        match TcpListener::bind(v4(port)) {
            // Nobody, the server included, holds 127.0.0.1:port: an IPv4 client is refused.
            Ok(probe) => drop(probe),
            Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
            Err(e) => panic!("cannot probe 127.0.0.1:{port}: {e}"),
        }
        let err = TcpStream::connect_timeout(&v4(port), GENEROUS)
            .expect_err("an IPv4 client reached an IPv6-only server");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        stream_examine(v6(port));
        serving.stop();
        return;
    }
    panic!(
        "127.0.0.1 was taken on each of 5 ports the system gave the IPv6-only server \
         (by other processes, or by the server itself if it were not IPv6-only)"
    );
}

#[test]
fn ipv6_only_is_explicit_not_the_system_default() {
    // dualstack_ipv6(false) is the default and sets IPV6_V6ONLY itself, so a server on [::1]
    // behaves the same whatever net.ipv6.bindv6only says.
    let server = TcpServer::builder(echo_line)
        .bind("[::1]:0")
        .unwrap_or_else(|e| panic!("IPv6 loopback is unavailable here: cannot bind [::1]:0 ({e})"));
    let only = server
        .socket()
        .expect("open")
        .getsockopt(socket::opt::Ipv6Only)
        .expect("getsockopt IPV6_V6ONLY");
    assert!(
        only,
        "IPV6_V6ONLY is off on a server without dualstack_ipv6"
    );
    let serving = Serving::start(server, TICK);
    stream_examine(v6(port(&serving)));
    serving.stop();
}
