//! Permission problems of a Unix server's socket file are reported as `PermissionDenied`, not
//! "address in use". A binary of its own: as root, the test re-runs itself as `nobody` (a child
//! process), and a process forked while other tests of the same binary hold sockets would keep
//! those sockets alive for an instant (until its `exec`), which made a neighbouring test see a
//! "live" stale socket.

mod util;

use handler::{BoxError, DatagramRequest};
use sockserve_server::{UnixDatagramServer, UnixStreamServer};
use std::{
    env, fs, io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::Command,
};
use util::*;

fn echo_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    req.wfile.extend_from_slice(&req.packet);
    Ok(())
}

fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
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
