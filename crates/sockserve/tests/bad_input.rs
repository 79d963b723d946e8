//! Bad input at the API, every case a clear outcome and none a leaked descriptor: malformed
//! address strings, ports out of range, Unix paths too long or with a NUL byte, an address of
//! the wrong family for the server, socket options on a family that has none such,
//! `max_packet_size` of 0 and huge, limits of 0.
//!
//! One test in this binary, so that the descriptors it counts in `/proc/self/fd` are its own:
//! libtest runs a binary's tests as threads of one process.

use sockserve::{
    Error, Family, Forking, Socket, TcpServer, Threading, Type, UNIX_PATH_MAX, UdpServer,
    UnixDatagramServer, UnixStreamServer, opt,
};
use std::{io::ErrorKind, net::TcpListener, os::fd::OwnedFd, path::Path};

/// The descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// The error of a server made on `address`, for each of the four kinds that could take it.
fn errors_of(address: &str) -> Vec<(&'static str, Error)> {
    let h = |_r: &mut _| Ok(());
    let mut out = Vec::new();
    if let Err(e) = TcpServer::bind(address, h) {
        out.push(("TCPServer", e));
    }
    if let Err(e) = UdpServer::bind(address, |_r: &mut _| Ok(())) {
        out.push(("UDPServer", e));
    }
    if let Err(e) = UnixStreamServer::bind(address, |_r: &mut _| Ok(())) {
        out.push(("UnixStreamServer", e));
    }
    if let Err(e) = UnixDatagramServer::bind(address, |_r: &mut _| Ok(())) {
        out.push(("UnixDatagramServer", e));
    }
    out
}

/// Malformed strings: `Error::Address` (`InvalidInput`), naming the input and the forms
/// expected, from every kind of server.
fn malformed_addresses() {
    for address in [
        "",
        "127.0.0.1",
        "1.2.3.4:http",
        "[::1]",
        "[::1]:-1",
        "x.sock",
        "127.0.0.1: 0",
        "127.0.0.1:0\0",
    ] {
        let errors = errors_of(address);
        assert_eq!(errors.len(), 4, "{address:?}: every kind refuses it");
        for (kind, e) in errors {
            let message = e.to_string();
            assert!(matches!(e, Error::Address(_)), "{kind} {address:?}: {e:?}");
            assert!(
                message.contains(&format!("{address:?}")) && message.contains("expected IP:PORT"),
                "{kind} {address:?}: {message}"
            );
            assert_eq!(std::io::Error::from(e).kind(), ErrorKind::InvalidInput);
        }
    }
    // A host that is no IPv4 literal is a name to resolve (as in Python): not found.
    let errors = errors_of("300.1.1.1:80");
    assert_eq!(errors.len(), 4);
    for (kind, e) in errors {
        assert!(matches!(e, Error::Address(_)), "{kind}: {e:?}");
    }
}

/// Ports past 65535, numeric host or name: `Error::Address` saying the range.
fn ports_out_of_range() {
    for address in [
        "127.0.0.1:65536",
        "[::1]:70000",
        "localhost:99999",
        "127.0.0.1:99999999999999999999",
    ] {
        for (kind, e) in errors_of(address) {
            assert!(matches!(e, Error::Address(_)), "{kind} {address}: {e:?}");
            assert!(
                e.to_string().contains("port must be 0-65535"),
                "{kind} {address}: {e}"
            );
        }
    }
}

/// A Unix path too long or with a NUL byte: `Error::Bind` (`InvalidInput`) naming the limit
/// or the NUL, before any file is made or looked at; an address of the wrong family:
/// `Error::Address` naming the server.
fn unix_paths_and_families(dir: &Path) {
    let long = dir.join("x".repeat(UNIX_PATH_MAX));
    let long = long.to_str().expect("a UTF-8 temp dir");
    let nul = dir.join("a\0b");
    let nul = nul.to_str().expect("UTF-8");
    for (address, says) in [(long, "the limit is 107"), (nul, "NUL byte")] {
        let stream = UnixStreamServer::bind(address, |_r: &mut _| Ok(())).unwrap_err();
        let datagram = UnixDatagramServer::bind(address, |_r: &mut _| Ok(())).unwrap_err();
        for e in [stream, datagram] {
            assert!(matches!(e, Error::Bind { .. }), "{e:?}");
            assert!(e.to_string().contains(says), "{e}");
            assert_eq!(std::io::Error::from(e).kind(), ErrorKind::InvalidInput);
        }
    }
    let path = dir.join("s.sock");
    let path = path.to_str().expect("UTF-8");
    for (address, refused_by) in [
        (path, ["TCPServer", "UDPServer"]),
        ("127.0.0.1:0", ["UnixStreamServer", "UnixDatagramServer"]),
        ("@abstract-name", ["TCPServer", "UDPServer"]),
    ] {
        let errors = errors_of(address);
        let kinds: Vec<&str> = errors.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, refused_by, "{address}");
        for (kind, e) in errors {
            assert!(matches!(e, Error::Address(_)), "{kind} {address}: {e:?}");
            assert!(
                e.to_string()
                    .contains(&format!("{kind} cannot serve on {address}")),
                "{e}"
            );
        }
    }
    // The Unix servers that succeeded above closed and removed their files as they dropped.
    assert!(!Path::new(path).exists(), "a socket file left behind");
    assert_eq!(
        std::fs::read_dir(dir).expect("the temp dir").count(),
        0,
        "no file made for a refused path"
    );
}

/// Socket options on a family that has no such option: the OS error, never a panic, and the
/// server options that only some families have are ignored by the others.
fn options_on_the_wrong_family(dir: &Path) {
    let unix = Socket::new(Family::Unix, Type::Stream).expect("a socket");
    let e = unix.setsockopt(opt::NoDelay, true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let e = unix.setsockopt(opt::ReusePort, true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let inet = Socket::new(Family::Inet, Type::Stream).expect("a socket");
    let e = inet.setsockopt(opt::Ipv6Only, true).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(92), "ENOPROTOOPT: {e}");
    // Documented: `allow_reuse_port` is ignored for Unix sockets, `dualstack_ipv6` for all
    // but IPv6.
    let path = dir.join("reuse.sock");
    let server = UnixStreamServer::builder(|_r: &mut _| Ok(()))
        .allow_reuse_port(true)
        .dualstack_ipv6(true)
        .bind(path.as_path())
        .expect("options a Unix socket has not are ignored");
    drop(server);
    TcpServer::builder(|_r: &mut _| Ok(()))
        .dualstack_ipv6(true)
        .bind("127.0.0.1:0")
        .expect("dualstack_ipv6 is ignored for IPv4");
}

/// `max_packet_size` and `max_connections` of 0: `Error::InvalidOption` naming the option,
/// before any socket exists (from `from_listener`, the descriptor given is closed); a huge
/// `max_packet_size` is clamped to what the family carries; the strategies' limits of 0 are
/// raised to 1, as their docs say.
fn limits(dir: &Path) {
    let e = UdpServer::builder(|_r: &mut _| Ok(()))
        .max_packet_size(0)
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                option: "max_packet_size",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("max_packet_size"), "{e}");
    let e = TcpServer::builder(|_r: &mut _| Ok(()))
        .max_connections(0)
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                option: "max_connections",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(std::io::Error::from(e).kind(), ErrorKind::InvalidInput);
    let before = open_fds();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let e = TcpServer::builder(|_r: &mut _| Ok(()))
        .max_connections(0)
        .from_listener(OwnedFd::from(listener))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOption { .. }), "{e:?}");
    assert_eq!(open_fds(), before, "from_listener closed the descriptor");

    let udp = UdpServer::builder(|_r: &mut _| Ok(()))
        .max_packet_size(usize::MAX)
        .bind("127.0.0.1:0")
        .expect("clamped, not refused");
    assert_eq!(udp.max_packet_size(), 65_535);
    let unix = UnixDatagramServer::builder(|_r: &mut _| Ok(()))
        .max_packet_size(usize::MAX)
        .bind(dir.join("big.sock").as_path())
        .expect("clamped, not refused");
    assert!(
        (1..=4_263_616).contains(&unix.max_packet_size()),
        "{}",
        unix.max_packet_size()
    );
    assert_eq!(Threading::new().max_threads(0).thread_limit(), 1);
    // Forking has no reader of its limit: `max_children(0)` must at least make a server.
    drop(
        TcpServer::builder(|_r: &mut _| Ok(()))
            .strategy(Forking::new().max_children(0))
            .bind("127.0.0.1:0")
            .expect("max_children(0) is raised to 1"),
    );
    // A negative backlog is the kernel's to clamp (Linux takes it as SOMAXCONN).
    drop(
        TcpServer::builder(|_r: &mut _| Ok(()))
            .request_queue_size(-5)
            .bind("127.0.0.1:0")
            .expect("a negative backlog"),
    );
}

#[test]
fn bad_input_has_a_clear_outcome_and_leaks_no_descriptor() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // A first server of each kind, so that what is set up once per process (resolver, the
    // open-file limit's read) is not counted as a leak.
    drop(TcpServer::bind("127.0.0.1:0", |_r: &mut _| Ok(())).expect("bind"));
    let before = open_fds();
    malformed_addresses();
    ports_out_of_range();
    let unix_dir = dir.path().join("paths");
    std::fs::create_dir(&unix_dir).expect("a dir");
    unix_paths_and_families(&unix_dir);
    options_on_the_wrong_family(dir.path());
    limits(dir.path());
    assert_eq!(open_fds(), before, "a descriptor leaked");
}
