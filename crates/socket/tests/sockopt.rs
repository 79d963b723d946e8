//! Tests of the typed socket options in `opt`.

mod util;

use std::time::Duration;

use sockserve_socket::{Family, Socket, Type, opt};

#[test]
fn boolean_options_round_trip() {
    let tcp = Socket::new(Family::Inet, Type::Stream).unwrap();
    for on in [true, false] {
        tcp.setsockopt(opt::ReuseAddress, on).unwrap();
        assert_eq!(tcp.getsockopt(opt::ReuseAddress).unwrap(), on);
        tcp.setsockopt(opt::ReusePort, on).unwrap();
        assert_eq!(tcp.getsockopt(opt::ReusePort).unwrap(), on);
        tcp.setsockopt(opt::NoDelay, on).unwrap();
        assert_eq!(tcp.getsockopt(opt::NoDelay).unwrap(), on);
        tcp.setsockopt(opt::KeepAlive, on).unwrap();
        assert_eq!(tcp.getsockopt(opt::KeepAlive).unwrap(), on);
    }
    let udp = Socket::new(Family::Inet, Type::Datagram).unwrap();
    udp.setsockopt(opt::Broadcast, true).unwrap();
    assert!(udp.getsockopt(opt::Broadcast).unwrap());
    let v6 = Socket::new(Family::Inet6, Type::Stream).unwrap();
    v6.setsockopt(opt::Ipv6Only, true).unwrap();
    assert!(v6.getsockopt(opt::Ipv6Only).unwrap());
    v6.setsockopt(opt::Ipv6Only, false).unwrap();
    assert!(!v6.getsockopt(opt::Ipv6Only).unwrap());
}

#[test]
fn buffer_sizes_and_linger_round_trip() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    sock.setsockopt(opt::RecvBufferSize, 32 * 1024).unwrap();
    // Linux doubles the value for its bookkeeping.
    assert_eq!(sock.getsockopt(opt::RecvBufferSize).unwrap(), 64 * 1024);
    sock.setsockopt(opt::SendBufferSize, 32 * 1024).unwrap();
    assert_eq!(sock.getsockopt(opt::SendBufferSize).unwrap(), 64 * 1024);
    assert_eq!(sock.getsockopt(opt::Linger).unwrap(), None);
    sock.setsockopt(opt::Linger, Some(Duration::from_secs(3)))
        .unwrap();
    assert_eq!(
        sock.getsockopt(opt::Linger).unwrap(),
        Some(Duration::from_secs(3))
    );
    sock.setsockopt(opt::Linger, None).unwrap();
    assert_eq!(sock.getsockopt(opt::Linger).unwrap(), None);
}

#[test]
fn options_that_do_not_apply_fail_with_the_os_error() {
    let unix = Socket::new(Family::Unix, Type::Stream).unwrap();
    let err = unix.setsockopt(opt::NoDelay, true).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));
    let v4 = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert!(
        v4.setsockopt(opt::Ipv6Only, true).is_err(),
        "IPV6_V6ONLY on an IPv4 socket"
    );
}

#[test]
fn options_on_a_closed_socket_fail_with_ebadf() {
    let mut sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    sock.close().unwrap();
    let err = sock.setsockopt(opt::ReuseAddress, true).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(
        sock.getsockopt(opt::KeepAlive).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}
