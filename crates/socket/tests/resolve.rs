//! Tests of `getaddrinfo` and `gethostname`.

mod util;

use std::io::ErrorKind;

use sockserve_socket::{
    AI_CANONNAME, AI_NUMERICHOST, AI_PASSIVE, AddrInfoHints, Family, ResolveError, Type,
    getaddrinfo, gethostname,
};

#[test]
fn numeric_hosts_resolve_for_each_type() {
    let answers = getaddrinfo(Some("127.0.0.1"), Some(8080), &AddrInfoHints::default()).unwrap();
    assert!(
        answers
            .iter()
            .any(|a| a.socket_type == Type::Stream && a.protocol == libc::IPPROTO_TCP)
    );
    assert!(
        answers
            .iter()
            .any(|a| a.socket_type == Type::Datagram && a.protocol == libc::IPPROTO_UDP)
    );
    for a in &answers {
        assert_eq!(
            (a.family, a.address.to_string().as_str()),
            (Family::Inet, "127.0.0.1:8080")
        );
    }
    let hints = AddrInfoHints {
        socket_type: Some(Type::Stream),
        ..AddrInfoHints::default()
    };
    let v6 = getaddrinfo(Some("::1"), Some(443), &hints).unwrap();
    assert_eq!(v6.len(), 1);
    assert_eq!(v6[0].address.to_string(), "[::1]:443");
}

#[test]
fn passive_flag_gives_the_wildcard_and_canonname_is_filled() {
    let hints = AddrInfoHints {
        family: Some(Family::Inet),
        socket_type: Some(Type::Stream),
        flags: AI_PASSIVE,
        ..AddrInfoHints::default()
    };
    let answers = getaddrinfo(None, Some(9000), &hints).unwrap();
    assert_eq!(answers[0].address.to_string(), "0.0.0.0:9000");
    let hints = AddrInfoHints {
        flags: AI_CANONNAME,
        ..hints
    };
    let answers = getaddrinfo(Some("localhost"), None, &hints).unwrap();
    // Some /etc/hosts name `localhost.localdomain` first: the canonical name is one of them.
    let canon = answers[0].canonname.as_deref().unwrap_or_default();
    assert!(canon.starts_with("localhost"), "canonname {canon:?}");
    assert_eq!(answers[0].address.as_inet().map(|a| a.port()), Some(0));
}

#[test]
fn an_unknown_host_carries_gai_strerror_and_the_code() {
    let err = getaddrinfo(
        Some("no.such.host.invalid"),
        Some(80),
        &AddrInfoHints::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("failed to resolve 'no.such.host.invalid': "),
        "{msg}"
    );
    let detail = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ResolveError>())
        .unwrap();
    assert!(detail.code() < 0, "an EAI_* code");
    assert_eq!(detail.host(), "no.such.host.invalid");
    // glibc's message for EAI_NONAME, as in Python's gaierror.
    if detail.code() == libc::EAI_NONAME {
        assert!(msg.ends_with("Name or service not known"), "{msg}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn a_name_with_numeric_host_only_or_a_nul_byte_is_rejected() {
    let hints = AddrInfoHints {
        flags: AI_NUMERICHOST,
        ..AddrInfoHints::default()
    };
    let err = getaddrinfo(Some("localhost"), Some(80), &hints).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to resolve 'localhost': "),
        "{err}"
    );
    let err = getaddrinfo(Some("local\0host"), None, &AddrInfoHints::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let hints = AddrInfoHints {
        family: Some(Family::Inet),
        ..AddrInfoHints::default()
    };
    assert!(
        getaddrinfo(Some("::1"), Some(1), &hints).is_err(),
        "an IPv6 literal is not AF_INET"
    );
}

#[test]
fn gethostname_matches_the_kernels_host_name() {
    let name = gethostname().unwrap();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(name, kernel.trim_end());
}
