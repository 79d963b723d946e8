//! Tests of `Address`: parsing, printing, sockaddr and std conversions, and `ToAddrs`.

mod util;

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;

use sockserve_socket::{Address, Family, ResolveError, ToAddrs, UNIX_PATH_MAX};

#[test]
fn ipv4_parses_and_prints() {
    let addr: Address = "127.0.0.1:80".parse().unwrap();
    assert_eq!(addr, Address::Inet("127.0.0.1:80".parse().unwrap()));
    assert_eq!(addr.to_string(), "127.0.0.1:80");
    assert_eq!(addr.family(), Family::Inet);
    assert_eq!(addr.as_inet(), Some("127.0.0.1:80".parse().unwrap()));
    assert_eq!(addr.as_pathname(), None);
}

#[test]
fn ipv6_parses_and_prints_with_scope_id() {
    let addr: Address = "[::1]:8080".parse().unwrap();
    assert_eq!(addr.to_string(), "[::1]:8080");
    assert_eq!(addr.family(), Family::Inet6);
    let scoped: Address = "[fe80::1%2]:80".parse().unwrap();
    match &scoped {
        Address::Inet6(a) => assert_eq!(a.scope_id(), 2),
        other => panic!("expected Inet6, got {other:?}"),
    }
    assert_eq!(scoped.to_string(), "[fe80::1%2]:80");
    assert_eq!(scoped.to_string().parse::<Address>().unwrap(), scoped);
}

#[test]
fn ipv6_flow_info_and_scope_id_survive_the_sockaddr() {
    let v6 = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4242, 0x12345, 7);
    let addr = Address::from(v6);
    let back = Address::from_sockaddr(&addr.to_sockaddr().unwrap());
    assert_eq!(back, addr);
    match back {
        Address::Inet6(a) => assert_eq!((a.flowinfo(), a.scope_id()), (0x12345, 7)),
        other => panic!("expected Inet6, got {other:?}"),
    }
}

#[test]
fn unix_paths_parse_absolute_and_relative() {
    for s in ["/tmp/x.sock", "./x.sock", "../run/x.sock"] {
        let addr: Address = s.parse().unwrap();
        assert_eq!(addr, Address::Unix(PathBuf::from(s)));
        assert_eq!(addr.to_string(), s);
        assert_eq!(addr.family(), Family::Unix);
        assert_eq!(addr.as_pathname(), Some(std::path::Path::new(s)));
        assert_eq!(Address::from_sockaddr(&addr.to_sockaddr().unwrap()), addr);
    }
}

#[test]
fn abstract_names_have_a_leading_nul_in_the_sockaddr() {
    let addr: Address = "@my-name".parse().unwrap();
    assert_eq!(addr, Address::Abstract(b"my-name".to_vec()));
    assert_eq!(addr.to_string(), "@my-name");
    let sa = addr.to_sockaddr().unwrap();
    assert_eq!(sa.as_abstract_namespace(), Some(&b"my-name"[..]));
    assert_eq!(sa.as_pathname(), None);
    assert_eq!(Address::from_sockaddr(&sa), addr);
    // Non-printable bytes are escaped when printed.
    assert_eq!(Address::Abstract(b"a\0b".to_vec()).to_string(), "@a\\x00b");
}

#[test]
fn abstract_names_print_escaped_and_parse_back() {
    for name in [&b"it's"[..], b"a\\b", b"\0\n\t\r\"", b"\xff\x7f", b""] {
        let address = Address::Abstract(name.to_vec());
        let text = address.to_string();
        assert_eq!(text.parse::<Address>().unwrap(), address, "{text}");
    }
    assert_eq!(
        r"@a\x41\\".parse::<Address>().unwrap(),
        Address::Abstract(b"aA\\".to_vec())
    );
    for bad in [r"@a\", r"@\q", r"@\x4", r"@\xg0"] {
        let err = bad.parse::<Address>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(
            err.to_string().contains("a backslash starts an escape"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn unnamed_prints_and_cannot_be_used() {
    assert_eq!(Address::Unnamed.to_string(), "<unnamed>");
    assert_eq!("<unnamed>".parse::<Address>().unwrap(), Address::Unnamed);
    assert_eq!(Address::Unnamed.family(), Family::Unix);
    let err = Address::Unnamed.to_sockaddr().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("unnamed"), "{err}");
}

#[test]
fn port_out_of_range_is_invalid_input() {
    for s in ["127.0.0.1:65536", "[::1]:70000", "127.0.0.1:99999999999"] {
        let err = s.parse::<Address>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{s}");
        assert!(
            err.to_string().contains("port must be 0-65535"),
            "{s}: {err}"
        );
        let err = s.to_addrs().unwrap_err();
        assert!(
            err.to_string().contains("port must be 0-65535"),
            "{s}: {err}"
        );
    }
    let err = "localhost:65536".to_addrs().unwrap_err();
    assert!(err.to_string().contains("port must be 0-65535"), "{err}");
}

#[test]
fn malformed_strings_say_what_was_expected() {
    for s in [
        "",
        "127.0.0.1",
        "::1:80",
        "1.2.3.4:http",
        "x.sock",
        "[::1]",
        "300.1.1.1:80",
    ] {
        let err = s.parse::<Address>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{s:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("expected IP:PORT, [IPv6]:PORT, /path"),
            "{s:?}: {msg}"
        );
        assert!(
            msg.contains(&format!("{s:?}")),
            "the message names the input: {msg}"
        );
    }
}

#[test]
fn unix_path_too_long_names_the_limit() {
    let ok = Address::Unix(PathBuf::from(format!("/{}", "a".repeat(UNIX_PATH_MAX - 1))));
    ok.to_sockaddr().expect("a path of exactly the limit fits");
    let long = Address::Unix(PathBuf::from(format!("/{}", "a".repeat(UNIX_PATH_MAX))));
    let err = long.to_sockaddr().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("the limit is 107"), "{err}");
    let err = Address::Abstract(vec![b'x'; 200])
        .to_sockaddr()
        .unwrap_err();
    assert!(err.to_string().contains("the limit is 107"), "{err}");
}

#[test]
fn converts_to_and_from_std_socket_addrs() {
    let std4: SocketAddr = "10.0.0.1:53".parse().unwrap();
    let std6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    for std in [std4, std6] {
        let addr = Address::from(std);
        assert_eq!(SocketAddr::try_from(addr.clone()).unwrap(), std);
        let sa = socket2::SockAddr::try_from(&addr).unwrap();
        assert_eq!(Address::from(&sa), addr);
    }
    let err = SocketAddr::try_from(Address::Unix("/x".into())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn to_addrs_handles_each_argument_form() {
    let want: Address = "127.0.0.1:80".parse().unwrap();
    assert_eq!("127.0.0.1:80".to_addrs().unwrap(), vec![want.clone()]);
    assert_eq!(
        String::from("127.0.0.1:80").to_addrs().unwrap(),
        vec![want.clone()]
    );
    assert_eq!(("127.0.0.1", 80).to_addrs().unwrap(), vec![want.clone()]);
    assert_eq!(("", 80).to_addrs().unwrap()[0].to_string(), "0.0.0.0:80");
    assert_eq!(
        ("<broadcast>", 9).to_addrs().unwrap()[0].to_string(),
        "255.255.255.255:9"
    );
    assert_eq!(("::1", 80).to_addrs().unwrap()[0].to_string(), "[::1]:80");
    let localhost = "localhost:80".to_addrs().unwrap();
    assert!(
        localhost
            .iter()
            .any(|a| a.as_inet().is_some_and(|s| s.ip().is_loopback()))
    );
    assert!(
        localhost
            .iter()
            .all(|a| a.as_inet().is_some_and(|s| s.port() == 80))
    );
    let path = std::path::Path::new("/tmp/x.sock");
    assert_eq!(path.to_addrs().unwrap(), vec![Address::Unix(path.into())]);
    assert_eq!(
        vec![want.clone(), want.clone()].to_addrs().unwrap().len(),
        2
    );
}

#[test]
fn to_addrs_of_an_unknown_host_carries_the_resolver_message() {
    let err = "no.such.host.invalid:80".to_addrs().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("failed to resolve 'no.such.host.invalid': "),
        "{msg}"
    );
    let detail = err.get_ref().and_then(|e| e.downcast_ref::<ResolveError>());
    assert!(detail.is_some(), "a ResolveError inside: {err:?}");
}
