//! Helpers shared by the integration tests of sockserve-socket.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockserve_socket::{Address, Family, Socket, Type};

/// A generous bound for anything that should be quick: machines under load are slow.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

/// A TCP listener on 127.0.0.1 with an ephemeral port.
pub(crate) fn tcp_listener() -> Socket {
    let listener = Socket::new(Family::Inet, Type::Stream).expect("socket");
    listener.bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.listen(16).expect("listen");
    listener
}

/// A connected TCP pair over loopback: (client, accepted server side).
pub(crate) fn tcp_pair() -> (Socket, Socket) {
    let listener = tcp_listener();
    let client = Socket::new(Family::Inet, Type::Stream).expect("socket");
    client
        .connect(listener.getsockname().expect("getsockname"))
        .expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// A bound socket that does not listen: connecting to its address is refused at once. Keep the
/// socket alive as long as the address is used.
pub(crate) fn refusing_address() -> (Socket, Address) {
    let sock = Socket::new(Family::Inet, Type::Stream).expect("socket");
    sock.bind("127.0.0.1:0").expect("bind");
    let addr = sock.getsockname().expect("getsockname");
    (sock, addr)
}

/// A Linux abstract name unique to this process and call.
pub(crate) fn abstract_name(tag: &str) -> Vec<u8> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The time as well as the pid: containers sharing a network namespace repeat small pids.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("sockserve-test-{tag}-{}-{nanos}-{n}", std::process::id()).into_bytes()
}

/// Runs `f` on a thread and fails the test with `what` if it takes longer than `limit`.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
    }
}

/// Asserts that `elapsed` lies in `[low, high]`, naming the operation.
pub(crate) fn assert_took(what: &str, start: Instant, low: Duration, high: Duration) {
    let elapsed = start.elapsed();
    assert!(
        elapsed >= low && elapsed <= high,
        "{what}: took {elapsed:?}, expected between {low:?} and {high:?}"
    );
}

/// Whether the fd has FD_CLOEXEC set.
pub(crate) fn is_cloexec(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0, "fcntl(F_GETFD) on fd {fd} failed");
    flags & libc::FD_CLOEXEC != 0
}

/// Whether the fd has O_NONBLOCK set.
pub(crate) fn is_nonblocking_fd(fd: i32) -> bool {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "fcntl(F_GETFL) on fd {fd} failed");
    flags & libc::O_NONBLOCK != 0
}

/// Waits with poll(2) until `fd` is readable; false if `limit` passes first.
pub(crate) fn wait_readable(fd: i32, limit: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: pfd is a valid array of one pollfd for the call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}
