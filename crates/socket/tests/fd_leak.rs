//! No fd leaks on failure. Counting open fds is process-wide, so this binary holds one test.

use std::io::ErrorKind;

use sockserve_socket::{
    ConnectOptions, Family, ServerOptions, Socket, Type, create_connection, create_server,
};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

#[test]
fn failed_binds_and_refused_connects_leave_no_fd_behind() {
    // The occupant listens, so a bind with SO_REUSEADDR still fails with EADDRINUSE.
    let occupant = create_server("127.0.0.1:0", &ServerOptions::default()).unwrap();
    let taken = occupant.getsockname().unwrap();
    // A bound port that does not listen refuses connections at once.
    let refuser = Socket::new(Family::Inet, Type::Stream).unwrap();
    refuser.bind("127.0.0.1:0").unwrap();
    let refusing = refuser.getsockname().unwrap();

    let before = open_fds();
    for _ in 0..1024 {
        let err = create_server(&taken, &ServerOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    }
    for _ in 0..1024 {
        let err = create_connection(&refusing, &ConnectOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
    for _ in 0..1024 {
        let sock = Socket::new(Family::Inet, Type::Stream).unwrap();
        assert_eq!(sock.bind(&taken).unwrap_err().kind(), ErrorKind::AddrInUse);
        assert_eq!(sock.connect_ex(&refusing).unwrap(), libc::ECONNREFUSED);
    }
    assert_eq!(
        open_fds(),
        before,
        "open fds before and after 3 x 1024 failures"
    );
}
