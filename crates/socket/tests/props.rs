//! Property tests (fuzzing with bounded case counts, so that they run in CI in seconds) of the
//! socket layer's parsers of untrusted text: the address parser (`Address::from_str`, then
//! `to_sockaddr`) and the `LISTEN_FDS` environment parser. On any input: no panic, an error
//! that says what was wrong, and memory bounded by the input (and, for `LISTEN_FDS`, by the
//! most descriptors a process can hold). Raise the counts for a longer run with
//! `PROPTEST_CASES=100000 cargo test -p sockserve-socket --test props`.

use proptest::prelude::*;
use sockserve_socket::{Address, Family, activation::parse_listen_env};
use std::{io::ErrorKind, str::FromStr};

/// Strings that look like addresses, mostly: digits, dots, colons, brackets, slashes, `@`,
/// `%`, spaces and a few letters, so that the parser's branches are all reached.
fn addressish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.:\\[\\]/@%a-f ]{0,40}",
        "\\[[0-9a-fA-F:%.]{0,45}\\]:[0-9]{0,7}",
        "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}:-?[0-9]{0,22}",
        "(/|\\./|\\.\\./|@)\\PC{0,130}",
        "@([a-z]|\\\\(x[0-9a-fA-F]{0,3}|[nrt'\"\\\\qx])?){0,20}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any string: an address, or `InvalidInput` naming the forms expected, the port range or
    /// the escapes of an abstract name; a parsed address converts to a sockaddr or says why
    /// not, and prints to a string that parses back to it. (This found that abstract names
    /// did not: `@'` printed as `@\'`, which parsed to a name of two bytes.)
    #[test]
    fn any_string_parses_or_says_why(s in addressish()) {
        match Address::from_str(&s) {
            Ok(address) => {
                match address.to_sockaddr() {
                    Ok(sa) => prop_assert_eq!(
                        Address::from_sockaddr(&sa).family(), address.family()
                    ),
                    Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidInput),
                }
                let again = Address::from_str(&address.to_string());
                prop_assert_eq!(again.ok(), Some(address));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                let message = e.to_string();
                prop_assert!(
                    message.contains("expected IP:PORT")
                        || message.contains("port must be 0-65535")
                        || message.contains("invalid abstract socket name"),
                    "{message}"
                );
            }
        }
    }

    /// Every abstract name, whatever its bytes, prints to a string that parses back to it.
    #[test]
    fn abstract_names_round_trip(name in proptest::collection::vec(any::<u8>(), 0..120)) {
        let address = Address::Abstract(name);
        prop_assert_eq!(Address::from_str(&address.to_string()).ok(), Some(address));
    }

    /// Every IPv4 and IPv6 socket address prints to a string that parses back to it.
    #[test]
    fn inet_addresses_round_trip(a in any::<std::net::SocketAddr>()) {
        let mut address = Address::from(a);
        if let Address::Inet6(v6) = &mut address {
            v6.set_flowinfo(0); // not part of the printed form
        }
        prop_assert_eq!(Address::from_str(&address.to_string()).ok(), Some(address.clone()));
        let family = if a.is_ipv4() { Family::Inet } else { Family::Inet6 };
        prop_assert_eq!(address.family(), family);
    }

    /// Any `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`: a list of as many descriptors as
    /// `LISTEN_FDS` says, numbered from 3, named from `LISTEN_FDNAMES`; or `NotFound` (nothing
    /// for this process) or `InvalidData` naming the variable. Never a list longer than the
    /// most descriptors a process can hold, whatever the number says.
    #[test]
    fn listen_env_parses_or_names_the_variable(
        pid in prop_oneof![Just(None), "[0-9]{0,22}".prop_map(Some), "\\PC{0,8}".prop_map(Some)],
        // Counts up to 999, and long ones: past the limit (but for leading zeros), refused
        // before any list is made.
        fds in prop_oneof![
            Just(None),
            "[0-9]{0,3}".prop_map(Some),
            "[0-9]{8,22}".prop_map(Some),
            "[-+ 0-9a]{0,6}".prop_map(Some),
        ],
        names in prop_oneof![Just(None), "[a-z:]{0,40}".prop_map(Some), "\\PC{0,20}".prop_map(Some)],
        ours in prop_oneof![Just(4242u32), any::<u32>()],
    ) {
        // The pid of the variables is ours in a third of the cases, so that the list is reached.
        let pid = pid.map(|p| if p.len() % 3 == 0 { ours.to_string() } else { p });
        match parse_listen_env(pid.as_deref(), fds.as_deref(), names.as_deref(), ours) {
            Ok(passed) => {
                let n: usize = fds.as_deref().unwrap_or_default().parse().expect("a count");
                prop_assert_eq!(passed.len(), n);
                prop_assert!(n <= 1 << 20);
                for (i, fd) in passed.iter().enumerate() {
                    prop_assert_eq!(usize::try_from(fd.fd).ok(), Some(3 + i));
                }
                if let Some(names) = names.as_deref() {
                    let listed: Vec<Option<&str>> =
                        names.split(':').map(|s| (!s.is_empty()).then_some(s)).collect();
                    let got: Vec<Option<&str>> = passed.iter().map(|p| p.name.as_deref()).collect();
                    prop_assert_eq!(got, listed);
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidData),
                    "{e:?}"
                );
                prop_assert!(message.contains("LISTEN_"), "{message}");
            }
        }
    }
}

/// A count past the most descriptors a process holds is refused before anything is allocated
/// for it (a list of 10^18 entries would abort the process).
#[test]
fn a_huge_listen_fds_allocates_nothing() {
    for count in ["1048577", "999999999999999999", "18446744073709551615"] {
        let e = parse_listen_env(Some("7"), Some(count), None, 7).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{count}");
        assert!(
            e.to_string().contains("more fds than a process can hold"),
            "{e}"
        );
    }
    let e = parse_listen_env(Some("7"), Some("18446744073709551616"), None, 7).unwrap_err();
    assert!(e.to_string().contains("not a positive number"), "{e}");
}
