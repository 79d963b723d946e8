//! The process-wide default timeout. It is global state, so this binary holds one test only.

use std::time::Duration;

use sockserve_socket::{
    ConnectOptions, Family, Socket, Type, create_connection, getdefaulttimeout, setdefaulttimeout,
    socketpair,
};

#[test]
fn the_default_timeout_applies_to_new_accepted_paired_and_connected_sockets() {
    assert_eq!(getdefaulttimeout(), None);
    let before = Socket::new(Family::Inet, Type::Stream).unwrap();
    let listener = Socket::new(Family::Inet, Type::Stream).unwrap();
    listener.bind("127.0.0.1:0").unwrap();
    listener.listen(4).unwrap();

    let t = Duration::from_millis(2500);
    setdefaulttimeout(Some(t));
    assert_eq!(getdefaulttimeout(), Some(t));
    assert_eq!(
        before.gettimeout(),
        None,
        "existing sockets keep their timeout"
    );
    assert_eq!(
        Socket::new(Family::Inet, Type::Datagram)
            .unwrap()
            .gettimeout(),
        Some(t)
    );
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    assert_eq!((a.gettimeout(), b.gettimeout()), (Some(t), Some(t)));
    let client = create_connection(listener.getsockname().unwrap(), &ConnectOptions::default());
    assert_eq!(client.unwrap().gettimeout(), Some(t));
    let explicit = ConnectOptions::new().timeout(None);
    let blocking = create_connection(listener.getsockname().unwrap(), &explicit).unwrap();
    assert_eq!(
        blocking.gettimeout(),
        None,
        "an explicit timeout wins over the default"
    );
    // The listener is blocking, yet the accepted socket gets the default timeout.
    let (conn, _) = listener.accept().unwrap();
    assert_eq!(conn.gettimeout(), Some(t));
    let fd = std::os::fd::OwnedFd::from(Socket::new(Family::Inet, Type::Stream).unwrap());
    setdefaulttimeout(None);
    assert_eq!(
        Socket::new(Family::Inet, Type::Stream)
            .unwrap()
            .gettimeout(),
        None
    );
    // from_fd without a default reflects the fd: it was made in timeout mode, so O_NONBLOCK.
    assert_eq!(
        Socket::from_fd(fd).unwrap().gettimeout(),
        Some(Duration::ZERO)
    );
    let client = Socket::new(Family::Inet, Type::Stream).unwrap();
    client.connect(listener.getsockname().unwrap()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    assert_eq!(conn.gettimeout(), None, "back to blocking accepted sockets");
}
