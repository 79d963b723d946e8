//! `echo_server --park` with many keep-alive connections, each answered twice by a CPython
//! client ([`park_client.py`](park_client.py)), over loopback:
//!
//! - 10,000 connections to `--mode threading --park --max-threads 16`, opened, then a message
//!   on each at once and every echo read, then again: every one answered by 16 threads, while
//!   the connections wait in the server's reactor. The server's RSS and thread count, read
//!   from `/proc/PID/status` while all are open, go into the case's line and are bounded
//!   ([`MAX_RSS_KIB`], [`MAX_THREADS`]).
//! - 10,000 connections to the same server that say nothing until all are open: `--park`
//!   makes a new connection wait in the reactor for its first input
//!   (`StreamOptions::wait_for_first_input`), so the server holds them all with its 16
//!   threads; its RSS and threads are read then (same bounds), then every connection sends
//!   and is answered, twice.
//! - 1,000 connections to a sync `--park` server, one message at a time (each client sends,
//!   gets its echo and stays open, then the next; then each again): a sync server that held
//!   a connection between its messages would never answer the second client.
//!
//! Each case is bounded in time ([`CASE_LIMIT`]); the client says which connection failed.

use std::path::Path;
use std::time::Duration;

use super::{STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

/// How long one case's client may take in all (the 10,000 take a few seconds).
const CASE_LIMIT: Duration = Duration::from_secs(120);
/// The server's RSS bound with all connections open: its buffers are released while a
/// connection waits, so 10,000 idle connections cost about 11 MiB; 728 MiB with a thread
/// each.
const MAX_RSS_KIB: u64 = 64 * 1024;
/// The server's thread bound with all connections open: the pool's 16, the serving thread,
/// the signal watcher, and a margin.
const MAX_THREADS: u64 = 24;

/// One case: the server's arguments and the client's.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    connections: usize,
    /// `park_client.py`'s STYLE: `burst`, `silent` or `one-by-one`.
    style: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "echo_server threading --park, 10,000 connections",
        args: &["--mode", "threading", "--park", "--max-threads", "16"],
        connections: 10_000,
        style: "burst",
    },
    Case {
        name: "echo_server threading --park, 10,000 silent connections",
        args: &["--mode", "threading", "--park", "--max-threads", "16"],
        connections: 10_000,
        style: "silent",
    },
    Case {
        name: "echo_server sync --park, 1,000 keep-alive clients",
        args: &["--mode", "sync", "--park"],
        connections: 1_000,
        style: "one-by-one",
    },
];

/// Runs every case; returns how many passed (all, or the first failure is the error).
pub(crate) fn run(examples: &Path) -> Result<usize> {
    super::run_each(CASES, |case| case.name, |case| run_case(examples, case))
}

/// Starts the server, runs the client against it, checks the figures; the client's line.
fn run_case(examples: &Path, case: &Case) -> Result<String> {
    let server_cmd = Cmd::new(example_bin(examples, "echo_server"))
        .args(case.args)
        .args(["--addr", "127.0.0.1:0"]);
    let mut server = RunningServer::start(&server_cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id().to_string();
    let limit = CASE_LIMIT.as_secs().to_string();
    let count = case.connections.to_string();
    let client = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(include_str!("park_client.py"), "park_client.py")
        .args([server.addr.as_str(), &count, &pid, case.style, &limit]);
    // The client bounds itself; this bound is for a client stuck where it cannot look.
    let output = client.output_within(CASE_LIMIT + Duration::from_secs(10))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "the client failed ({}): {}{}",
            output.status,
            stdout,
            stderr.trim_end()
        )
        .into());
    }
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    check_figures(&line, case.connections)?;
    server.check_alive()?;
    Ok(line)
    // `server` drops here: killed and waited.
}

/// The client's line `answered=N rss_kib=R threads=T ...`: every connection answered twice,
/// the server's RSS and threads within their bounds.
fn check_figures(line: &str, connections: usize) -> Result<()> {
    let field = |name: &str| -> Result<u64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no `{name}=` in the client's line {line:?}").into())
    };
    let (answered, rss, threads) = (field("answered")?, field("rss_kib")?, field("threads")?);
    if answered != 2 * connections as u64 {
        return Err(format!("{answered} answers, not {}: {line}", 2 * connections).into());
    }
    if rss > MAX_RSS_KIB || threads > MAX_THREADS {
        return Err(format!(
            "the server used more than {MAX_RSS_KIB} KiB or {MAX_THREADS} threads: {line}"
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_checked() {
        let good = "answered=20000 rss_kib=11000 threads=18 open_s=1.0 round1_s=0.5 round2_s=0.4";
        check_figures(good, 10_000).unwrap();
        assert!(check_figures(good, 10_001).is_err(), "an answer short");
        let fat = good.replace("rss_kib=11000", "rss_kib=700000");
        assert!(check_figures(&fat, 10_000).is_err());
        let threads = good.replace("threads=18", "threads=10002");
        assert!(check_figures(&threads, 10_000).is_err());
        assert!(
            check_figures("answered=20000", 10_000).is_err(),
            "no figures"
        );
    }
}
