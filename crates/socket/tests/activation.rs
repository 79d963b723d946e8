//! Socket activation: `parse_listen_env`'s rules (a pure function, so no environment is
//! touched), picking a passed socket by name, and `set_inheritable` / `get_inheritable`.
//!
//! `listen_fds` itself reads and changes process-wide state; the server layer's `process` test
//! binary runs it in child processes started the way a service manager starts them.

use std::io::ErrorKind;

use sockserve_socket::activation::{ListenFd, ListenFds, PassedFd, parse_listen_env};
use sockserve_socket::{Family, Socket, Type};

const PID: u32 = 456;

fn passed(fd: i32, name: Option<&str>) -> PassedFd {
    PassedFd {
        fd,
        name: name.map(str::to_owned),
    }
}

#[test]
fn absent_listen_fds_says_nothing_was_passed() {
    let err = parse_listen_env(None, None, None, PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "no sockets were passed (LISTEN_FDS is not set)"
    );
    // LISTEN_PID alone (or names alone) is still "nothing passed".
    let err = parse_listen_env(Some("456"), None, Some("web"), PID).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no sockets were passed (LISTEN_FDS is not set)"
    );
}

#[test]
fn zero_fds_is_nothing_passed() {
    let err = parse_listen_env(Some("456"), Some("0"), None, PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "no sockets were passed (LISTEN_FDS is 0)");
}

#[test]
fn another_process_pid_is_refused() {
    let err = parse_listen_env(Some("123"), Some("1"), None, PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "LISTEN_PID is 123, not this process (456)");
}

#[test]
fn missing_pid_is_refused() {
    let err = parse_listen_env(None, Some("1"), None, PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(msg.contains("LISTEN_PID is not set"), "{msg}");
}

#[test]
fn malformed_pid_is_invalid_data() {
    for bad in ["", "abc", "-456", "+456", " 456", "0", "4.5"] {
        let err = parse_listen_env(Some(bad), Some("1"), None, PID).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "LISTEN_PID={bad:?}");
        assert_eq!(
            err.to_string(),
            format!("LISTEN_PID is not a process id: {bad:?}")
        );
    }
}

#[test]
fn malformed_count_is_invalid_data() {
    for bad in [
        "",
        "two",
        "-1",
        "+1",
        "1 ",
        "0x2",
        "99999999999999999999999",
    ] {
        let err = parse_listen_env(Some("456"), Some(bad), None, PID).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "LISTEN_FDS={bad:?}");
        assert_eq!(
            err.to_string(),
            format!("LISTEN_FDS is not a positive number: {bad:?}")
        );
    }
}

#[test]
fn absurd_count_is_invalid_data_without_building_a_list() {
    let err = parse_listen_env(Some("456"), Some("4000000000"), None, PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(err.to_string().contains("more fds than a process can hold"));
}

#[test]
fn names_must_match_the_count() {
    let err = parse_listen_env(Some("456"), Some("3"), Some("web:admin"), PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert_eq!(
        err.to_string(),
        "LISTEN_FDNAMES has 2 names (\"web:admin\") but LISTEN_FDS is 3"
    );
    let err = parse_listen_env(Some("456"), Some("1"), Some("a:b"), PID).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
}

#[test]
fn one_unnamed_fd() {
    let got = parse_listen_env(Some("456"), Some("1"), None, PID).unwrap();
    assert_eq!(got, [passed(3, None)]);
}

#[test]
fn named_fds_start_at_three() {
    let got = parse_listen_env(Some("456"), Some("3"), Some("web:admin:metrics"), PID).unwrap();
    assert_eq!(
        got,
        [
            passed(3, Some("web")),
            passed(4, Some("admin")),
            passed(5, Some("metrics"))
        ]
    );
}

#[test]
fn empty_names_count_but_are_unnamed() {
    let got = parse_listen_env(Some("456"), Some("2"), Some(":admin"), PID).unwrap();
    assert_eq!(got, [passed(3, None), passed(4, Some("admin"))]);
    let got = parse_listen_env(Some("456"), Some("1"), Some(""), PID).unwrap();
    assert_eq!(got, [passed(3, None)]);
}

fn two_named() -> ListenFds {
    ListenFds::from(vec![
        ListenFd::new(
            Some("web2".into()),
            Socket::new(Family::Inet, Type::Stream).unwrap(),
        ),
        ListenFd::new(
            Some("admin".into()),
            Socket::new(Family::Unix, Type::Datagram).unwrap(),
        ),
    ])
}

#[test]
fn take_by_name_or_first() {
    let admin = two_named().take(Some("admin")).unwrap();
    assert_eq!(admin.name(), Some("admin"));
    assert_eq!(admin.socket().family(), Family::Unix);
    let first = two_named().take(None).unwrap();
    assert_eq!(first.name(), Some("web2"));
    assert_eq!(first.into_socket().socket_type(), Type::Stream);
}

#[test]
fn take_unknown_name_lists_the_names() {
    let err = two_named().take(Some("web")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "no socket named 'web' among web2, admin");
}

#[test]
fn take_from_unnamed_lists_the_fds() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    let fd = sock.fileno();
    let err = ListenFds::from(vec![ListenFd::new(None, sock)])
        .take(Some("web"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no socket named 'web' among fd {fd} (unnamed)")
    );
    let err = ListenFds::from(Vec::new()).take(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn set_inheritable_round_trip() {
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    assert!(
        !sock.get_inheritable().unwrap(),
        "sockets start close-on-exec"
    );
    sock.set_inheritable(true).unwrap();
    assert!(sock.get_inheritable().unwrap());
    sock.set_inheritable(false).unwrap();
    assert!(!sock.get_inheritable().unwrap());
}

#[test]
fn inheritable_is_per_fd_and_closed_sockets_fail() {
    let mut sock = Socket::new(Family::Unix, Type::Stream).unwrap();
    sock.set_inheritable(true).unwrap();
    // FD_CLOEXEC belongs to the fd, not the file description: a duplicate starts
    // close-on-exec whatever the original says.
    let copy = sock.dup().unwrap();
    assert!(!copy.get_inheritable().unwrap());
    assert!(sock.get_inheritable().unwrap());
    sock.close().unwrap();
    assert_eq!(
        sock.get_inheritable().unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        sock.set_inheritable(true).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn from_fd_makes_an_inherited_fd_close_on_exec() {
    // What listen_fds relies on: a passed fd arrives inheritable, and Socket::from_fd marks it.
    let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
    sock.set_inheritable(true).unwrap();
    let mut sock = sock;
    let again = Socket::from_fd(sock.detach().unwrap()).unwrap();
    assert!(!again.get_inheritable().unwrap());
}
