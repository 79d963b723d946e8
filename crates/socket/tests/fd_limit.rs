//! `raise_fd_limit`: the soft limit on open files goes up to the hard one. The limit is
//! process-wide, so the check runs in a child process (this test binary, re-run), which first
//! lowers its own soft limit to make the raise visible.

use sockserve_socket::{fd_limit, raise_fd_limit};
use std::process::Command;

/// Set in the child: the soft limit it starts from.
const CHILD_ENV: &str = "SOCKSERVE_FD_LIMIT_CHILD";

#[test]
fn raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() {
    if let Ok(start) = std::env::var(CHILD_ENV) {
        return child(start.parse().expect("a soft limit"));
    }
    let before = fd_limit().expect("getrlimit");
    assert!(before.soft <= before.hard, "{before:?}");
    let exe = std::env::current_exe().expect("the test binary");
    let output = testsupport::output_within(
        {
            let mut cmd = Command::new(exe);
            cmd.args([
                "--exact",
                "raise_fd_limit_lifts_the_soft_limit_to_the_hard_one",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "64");
            cmd
        },
        "the fd-limit child",
        testsupport::GENEROUS,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("raised from 64 to"), "{stdout}");
    // This process's own limit is untouched.
    assert_eq!(fd_limit().expect("getrlimit"), before);
}

/// In the child: lower the soft limit to `start`, raise it, and check it reached the hard one.
#[allow(clippy::print_stdout)] // the child reports to its parent on stdout
fn child(start: u64) {
    let hard = fd_limit().expect("getrlimit").hard;
    // Lowering one's own soft limit is always allowed; this process is the test's child.
    let lowered = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={start}:"),
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(lowered.success(), "prlimit failed");
    assert_eq!(fd_limit().expect("getrlimit").soft, start);
    let raised = raise_fd_limit().expect("raise_fd_limit");
    let expected = if hard == u64::MAX { raised.soft } else { hard };
    assert_eq!(raised.soft, expected, "{raised:?}");
    assert_eq!(raised.hard, hard);
    // Raising again changes nothing.
    assert_eq!(raise_fd_limit().expect("raise_fd_limit"), raised);
    println!("raised from {start} to {}", raised.soft);
}
