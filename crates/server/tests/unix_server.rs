//! `UnixStreamServer` and `UnixDatagramServer`: the socket file rules, abstract names and
//! unnamed clients.

mod util;

use handler::{BoxError, DatagramRequest, HandlerExt, StreamOptions, StreamRequest};
use socket::{Address, Family, Socket, Type};
use sockserve_server::{Error, UnixDatagramServer, UnixStreamServer};
use std::{
    env, fs,
    io::{self, Write},
    os::unix::fs::{FileTypeExt, PermissionsExt},
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};
use util::*;

fn echo_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let packet = req.packet.clone();
    Ok(req.wfile.write_all(&packet)?)
}

fn is_socket(path: &std::path::Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn socket_file_is_created_and_removed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    assert!(is_socket(&path));
    assert_eq!(server.server_address().as_pathname(), Some(path.as_path()));
    server.server_close();
    assert!(!path.exists(), "removed on server_close");
    // Drop removes it too.
    drop(UnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap());
    assert!(!path.exists(), "removed on drop");
}

#[test]
fn stale_socket_file_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A server that died without cleaning up: the file stays, nothing listens.
    drop(UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path));
    let server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    let serving = Serving::start(server, Duration::from_millis(10));
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(TEST_STR).unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut c, &mut got).unwrap();
    assert_eq!(got, TEST_STR);
    serving.stop();
    // Same for datagrams.
    drop(UnixDatagram::bind(&path).unwrap());
    drop(UnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap());
}

#[test]
fn live_socket_file_is_refused_with_address_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let live = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    let err = UnixStreamServer::bind(path.as_path(), echo_line).expect_err("in use");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains("address in use"), "{err}");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::AddrInUse
    );
    assert!(is_socket(&path), "the live server's file is untouched");
    drop(live);
    // A live datagram socket too.
    let live = UnixDatagram::bind(&path).unwrap();
    let err = UnixDatagramServer::bind(path.as_path(), echo_dgram).expect_err("in use");
    assert!(err.to_string().contains("address in use"), "{err}");
    drop(live);
}

#[test]
fn a_path_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    fs::write(&path, b"keep me").unwrap();
    let err = UnixStreamServer::bind(path.as_path(), echo_line).expect_err("not a socket");
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn a_replaced_socket_file_is_not_removed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut server = UnixStreamServer::bind(path.as_path(), echo_line).unwrap();
    // Someone else takes the path over while this server runs.
    fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    server.server_close();
    assert!(
        is_socket(&path),
        "another server's file is not ours to remove"
    );
    drop(other);
}

#[test]
fn abstract_names_work_and_leave_no_file() {
    // The time as well as the pid: containers sharing a network namespace repeat small pids.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("@sockserve-test-{}-{nanos}", std::process::id());
    let server = UnixStreamServer::bind(name.as_str(), echo_line).unwrap();
    assert_eq!(server.server_address().to_string(), name);
    let serving = Serving::start(server, Duration::from_millis(10));
    let address: Address = name.parse().unwrap();
    let c = Socket::new(address.family(), Type::Stream).unwrap();
    c.settimeout(Some(GENEROUS));
    c.connect(&address).unwrap();
    c.sendall(TEST_STR).unwrap();
    assert_eq!(c.recv(100).unwrap(), TEST_STR);
    serving.stop();
    // The name is free again once the server is closed.
    drop(UnixStreamServer::bind(name.as_str(), echo_line).unwrap());
}

#[test]
fn unnamed_datagram_clients_get_no_reply_and_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let rec = Shared::default();
    let server = UnixDatagramServer::builder(echo_dgram)
        .hooks(rec.clone())
        .bind(path.as_path())
        .unwrap();
    let serving = Serving::start(server, Duration::from_millis(10));
    let unnamed = UnixDatagram::unbound().unwrap();
    for _ in 0..3 {
        unnamed.send_to(b"anyone?", &path).unwrap();
    }
    // A named client after them is answered: the unnamed ones were handled, not errors.
    let named = UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
    named.set_read_timeout(Some(GENEROUS)).unwrap();
    named.send_to(b"me", &path).unwrap();
    let mut buf = [0u8; 16];
    let n = named.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"me");
    assert_eq!(
        rec.0.error_count(),
        0,
        "an unnamed client is not an error (CPython: TypeError)"
    );
    rec.0
        .wait_for("shutdown_request for all four datagrams", |r| {
            r.shutdowns.load(std::sync::atomic::Ordering::SeqCst) == 4
        });
    serving.stop();
}

#[test]
fn unnamed_stream_clients_have_an_unnamed_address_and_nagle_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let rec = Shared::default();
    let handler = (|req: &mut StreamRequest| writeln!(req.wfile, "{}", req.client_address))
        .with_options(StreamOptions::default().disable_nagle_algorithm(true));
    let mut server = UnixStreamServer::builder_handler(handler)
        .hooks(rec.clone())
        .bind(path.as_path())
        .unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    server.handle_request().unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut c, &mut got).unwrap();
    assert_eq!(got, format!("{}\n", Address::Unnamed));
    assert_eq!(
        rec.0.error_count(),
        0,
        "TCP_NODELAY is quietly not applied (CPython: EOPNOTSUPP)"
    );
}

#[test]
fn unix_servers_refuse_inet_addresses() {
    let err = UnixStreamServer::bind("127.0.0.1:0", echo_line).expect_err("wrong family");
    assert!(err.to_string().contains("UnixStreamServer"), "{err}");
}

/// How long a bind may take before it counts as hung: generous, it only detects a hang.
const BIND_BOUND: Duration = Duration::from_secs(5);

/// Runs `bind` (a second server on a path in use) in a thread and waits at most
/// [`BIND_BOUND`] for its result and how long it took: `None` if it hung. Then runs
/// `end_the_hang`, which must make a hanging bind return, and joins the thread whatever
/// happened, so no thread outlives the test.
fn bind_in_thread_bounded<T: Send + 'static>(
    bind: impl FnOnce() -> sockserve_server::Result<T> + Send + 'static,
    end_the_hang: impl FnOnce(),
) -> Option<(sockserve_server::Result<()>, Duration)> {
    let (tx, rx) = mpsc::channel();
    let binder = thread::spawn(move || {
        let started = Instant::now();
        // A server that did bind is closed at once: only the outcome matters.
        let result = bind().map(drop);
        let _ = tx.send((result, started.elapsed()));
    });
    let outcome = rx.recv_timeout(BIND_BOUND).ok();
    end_the_hang();
    binder.join().expect("the binding thread panicked");
    outcome
}

#[test]
fn a_live_server_with_a_full_backlog_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    // A live server that never accepts.
    let live = UnixStreamServer::builder(echo_line)
        .request_queue_size(1)
        .bind(path.as_path())
        .unwrap();
    // Fill its backlog: Linux queues backlog + 1 connections, then a non-blocking connect fails
    // with EAGAIN (a blocking one waits until the server accepts).
    let mut queued = Vec::new();
    loop {
        let client = Socket::new(Family::Unix, Type::Stream).unwrap();
        client.setblocking(false).unwrap();
        match client.connect(path.as_path()) {
            Ok(()) => queued.push(client),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 1000, "a backlog of 1 never filled");
    }
    let mut file_kept = false;
    let outcome = bind_in_thread_bounded(
        {
            let path = path.clone();
            move || UnixStreamServer::bind(path.as_path(), echo_line)
        },
        || {
            file_kept = is_socket(&path);
            // Closing the listener wakes a connect waiting on its backlog, so a hanging bind
            // returns and its thread can be joined.
            drop(queued);
            drop(live);
        },
    );
    let (result, took) = outcome.unwrap_or_else(|| {
        panic!("bind hung > {BIND_BOUND:?} on a live server whose backlog is full")
    });
    let err = result.expect_err("a live server answers there");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("a live server answers"), "{message}");
    assert!(message.contains("backlog is full"), "{message}");
    assert_eq!(
        io::Error::from(err).kind(),
        io::ErrorKind::AddrInUse,
        "{message} (after {took:?})"
    );
    assert!(file_kept, "the live server's file is untouched");
    dir.close().expect("the temp dir is removed");
}

#[test]
fn a_live_datagram_socket_is_refused_at_once_even_when_full_or_connected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    let live = UnixDatagram::bind(&path).unwrap();
    // Fill its receive queue until a non-blocking send fails with EAGAIN: a Unix datagram
    // connect only names the peer, it never waits for room.
    let sender = UnixDatagram::unbound().unwrap();
    sender.set_nonblocking(true).unwrap();
    let mut sent = 0;
    loop {
        match sender.send_to(b"x", &path) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the queue: {e}"),
        }
        assert!(sent < 100_000, "the receive queue never filled");
    }
    let outcome = bind_in_thread_bounded(
        {
            let path = path.clone();
            move || UnixDatagramServer::bind(path.as_path(), echo_dgram)
        },
        || {}, // nothing to end: a datagram probe does not wait
    );
    let (result, _) = outcome.unwrap_or_else(|| {
        panic!("bind hung > {BIND_BOUND:?} on a live datagram socket with a full queue")
    });
    let err = result.expect_err("a live socket answers there");
    assert!(err.to_string().contains("a live server answers"), "{err}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::AddrInUse);
    // A live socket connected to another one refuses the probe's connect with EPERM: that is
    // a socket in use, not a permission problem.
    let other = UnixDatagram::bind(dir.path().join("other.sock")).unwrap();
    live.connect(dir.path().join("other.sock")).unwrap();
    let err = UnixDatagramServer::bind(path.as_path(), echo_dgram).expect_err("in use");
    let message = err.to_string();
    assert_eq!(
        io::Error::from(err).kind(),
        io::ErrorKind::AddrInUse,
        "a connected live socket: {message}"
    );
    assert!(is_socket(&path), "the live socket's file is untouched");
    drop((live, other, sender));
    dir.close().expect("the temp dir is removed");
}

/// Set in the unprivileged child of [`permission_problems_are_reported_as_permission_denied`]:
/// the directory of the fixtures its parent made.
const PERMISSION_FIXTURES: &str = "SOCKSERVE_TEST_PERMISSION_FIXTURES";
/// The user and group the child runs as: `nobody` and `nogroup` on Debian.
const NOBODY: &str = "65534";

/// A stream socket file that nothing listens on.
fn stale_socket(path: &Path, mode: u32) {
    drop(UnixListener::bind(path).unwrap());
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The fixtures of the permission test, in a temp dir that gives write permission back to
/// its owner when dropped, so that it can be removed even by a user that permissions bind.
struct PermissionFixtures {
    dir: tempfile::TempDir,
}

impl PermissionFixtures {
    /// `locked.sock`, which no one may write (so no one may connect to it);
    /// `readonly/stale.sock`, writable, in a directory no one may write; `sticky/stale.sock`,
    /// writable, in a sticky directory that everyone may write (like /tmp).
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The child, another user, must reach the fixtures (whatever the umask made of them).
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        stale_socket(&root.join("locked.sock"), 0o555);
        for (sub, mode) in [("readonly", 0o555), ("sticky", 0o1777)] {
            fs::create_dir(root.join(sub)).unwrap();
            stale_socket(&root.join(sub).join("stale.sock"), 0o777);
            fs::set_permissions(root.join(sub), fs::Permissions::from_mode(mode)).unwrap();
        }
        PermissionFixtures { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PermissionFixtures {
    fn drop(&mut self) {
        // Before TempDir's own Drop (fields drop after this), which removes the tree.
        let _ = fs::set_permissions(
            self.dir.path().join("readonly"),
            fs::Permissions::from_mode(0o755),
        );
    }
}

/// The checks of the permission test, run as a user that permissions bind. In `root`'s
/// fixtures, when `owned_by_another_user` (or else the sticky bit does not stop the owner).
fn check_permission_errors(root: &Path, owned_by_another_user: bool) {
    let locked = root.join("locked.sock");
    let readonly = root.join("readonly");
    let sticky = root.join("sticky");
    let socket_file = format!(
        "connecting to {} needs write permission on the socket file",
        locked.display()
    );
    let directory = |dir: &Path| format!("write permission on its directory {}", dir.display());
    // (case, the path to bind, datagram?, what the message must say)
    let mut cases = vec![
        (
            "a socket it may not write",
            locked.clone(),
            false,
            vec![socket_file.clone()],
        ),
        ("the same, for datagrams", locked, true, vec![socket_file]),
        (
            "a stale socket in a directory it may not write",
            readonly.join("stale.sock"),
            false,
            vec![directory(&readonly)],
        ),
    ];
    if owned_by_another_user {
        cases.push((
            "another user's stale socket in a sticky directory",
            sticky.join("stale.sock"),
            false,
            vec![
                directory(&sticky),
                "as that directory is sticky, ownership of the file or of the directory".to_owned(),
            ],
        ));
    }
    // Every case is tried, and the failures reported together.
    let mut failures = Vec::new();
    for (case, path, datagram, needs) in cases {
        let result = if datagram {
            UnixDatagramServer::bind(path.as_path(), echo_dgram).map(drop)
        } else {
            UnixStreamServer::bind(path.as_path(), echo_line).map(drop)
        };
        let got = match result {
            Ok(()) => Some("it bound".to_owned()),
            Err(err) => {
                let message = err.to_string();
                let kind = io::Error::from(err).kind();
                let says_all = needs.iter().all(|n| message.contains(n.as_str()));
                (kind != io::ErrorKind::PermissionDenied || !says_all)
                    .then(|| format!("{kind:?}: {message}"))
            }
        };
        if let Some(got) = got {
            failures.push(format!(
                "{case}: expected PermissionDenied saying {needs:?}; got {got}"
            ));
        }
        if !is_socket(&path) {
            failures.push(format!("{case}: {} was removed", path.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Whether the permission bits bind this process: root (CAP_DAC_OVERRIDE) may write a
/// read-only file.
fn permission_checks_apply(dir: &Path) -> bool {
    let probe = dir.join("read-only.txt");
    fs::write(&probe, b"").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o444)).unwrap();
    let writable = fs::OpenOptions::new().write(true).open(&probe).is_ok();
    fs::remove_file(&probe).unwrap();
    !writable
}

/// Whether a user that owns none of them may search every directory above `path` and, for a
/// file, execute it (by the mode bits; ACLs aside).
fn reachable_by_others(path: &Path, needs: u32) -> bool {
    let Ok(path) = fs::canonicalize(path) else {
        return false;
    };
    let others_may =
        |p: &Path, bits: u32| fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits);
    others_may(&path, needs) && path.ancestors().skip(1).all(|d| others_may(d, 0o001))
}

/// This test binary, where `nobody` may run it: where it is if every directory above it
/// lets others search (the usual target dir), otherwise a copy in `dir`. A clone under a
/// private home (`/root`, 0700, as on a CI machine that builds as root) is the case the copy
/// is for; the copy in place would not do for a temp dir on a `noexec` mount, hence not always.
fn executable_for_nobody(dir: &Path) -> PathBuf {
    let exe = env::current_exe().expect("current_exe");
    if reachable_by_others(&exe, 0o001) {
        return exe;
    }
    let copy = dir.join("unix_server-as-nobody");
    fs::copy(&exe, &copy).expect("copy the test binary where nobody may run it");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// Connecting to a Unix socket needs write permission on its file; removing a stale one needs
/// write permission on its directory (and, in a sticky one, ownership). Neither is "address
/// in use". Root ignores permission bits, so as root the checks run in this test binary
/// re-executed as `nobody` (`setpriv`, util-linux), on fixtures root owns.
#[test]
fn permission_problems_are_reported_as_permission_denied() {
    if let Some(dir) = env::var_os(PERMISSION_FIXTURES) {
        check_permission_errors(Path::new(&dir), true);
        return;
    }
    let fixtures = PermissionFixtures::new();
    let root = fixtures.path().to_owned();
    if permission_checks_apply(&root) {
        check_permission_errors(&root, false);
    } else {
        assert!(
            reachable_by_others(&root, 0o005),
            "the temp dir {} is not reachable by uid {NOBODY}: set TMPDIR to a directory \
             others may search",
            root.display()
        );
        let exe = executable_for_nobody(&root);
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args([
            "permission_problems_are_reported_as_permission_denied",
            "--exact",
            "--test-threads=1",
        ])
        .env(PERMISSION_FIXTURES, &root)
        .current_dir(&root);
        let out = output_within(cmd, "the test re-run as nobody (setpriv)", GENEROUS);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "as nobody: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(fixtures);
    assert!(!root.exists(), "the temp dir is removed");
}
