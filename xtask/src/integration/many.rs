//! The many-connections case: [`CONNECTIONS`] long-lived connections at once on a threading
//! server with every default (`echo_server --mode threading`, which raises its open-file limit
//! as a program that holds many connections should), from a CPython client in a process of its
//! own (a process may hold 20,000 descriptors on the project's machines; server and client
//! together would need more). Every connection stays open while every one is answered.
//!
//! The client (`many_clients.py`) opens them all, sends a line on each, reads each echo, says
//! how long that took, and waits; meanwhile the server's resident memory and threads are read
//! from `/proc/PID/status`. Then the client closes its connections and exits, and the server
//! is stopped by SIGTERM (exit status 0). The whole case is bounded by [`LIMIT`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::{STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

/// The connections held open at once.
pub(crate) const CONNECTIONS: usize = 10_000;
/// The bound of the whole case: it takes a few seconds.
const LIMIT: Duration = Duration::from_secs(120);
/// How long the server may take to stop once the client has gone.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// What the case measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// Seconds to open every connection.
    pub(crate) connect_secs: f64,
    /// Seconds, after that, until every connection had its answer.
    pub(crate) answer_secs: f64,
    /// The server's resident memory (`VmRSS`), in KiB, with every connection open.
    pub(crate) rss_kib: u64,
    /// The server's threads, with every connection open.
    pub(crate) threads: u64,
}

/// Runs the case against the examples in `examples`.
pub(crate) fn run(examples: &Path) -> Result<Figures> {
    let began = Instant::now();
    let server_cmd = Cmd::new(example_bin(examples, "echo_server")).args([
        "--mode",
        "threading",
        "--addr",
        "127.0.0.1:0",
    ]);
    let mut server = RunningServer::start(&server_cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id();
    let client_cmd = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(include_str!("many_clients.py"), "many_clients.py")
        .args([
            server.addr.clone(),
            CONNECTIONS.to_string(),
            LIMIT.as_secs().to_string(),
        ]);
    let mut client = client_cmd.spawn_guarded_with_stdin()?;
    let stdout = client
        .child_mut()
        .stdout
        .take()
        .ok_or("stdout was not piped")?;
    let lines = lines_of(stdout);
    let deadline = began + LIMIT;
    let connect_secs = seconds_of(&lines, "connected", deadline)?;
    let answer_secs = seconds_of(&lines, "answered", deadline)?;
    // Every connection is open and answered now: the server's figures.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading the server's /proc/{pid}/status: {e}"))?;
    let figures = Figures {
        connect_secs,
        answer_secs,
        rss_kib: status_field(&status, "VmRSS")?,
        threads: status_field(&status, "Threads")?,
    };
    server.check_alive()?;
    if figures.threads < CONNECTIONS as u64 {
        return Err(format!(
            "{CONNECTIONS} connections answered by {} threads: not a thread each",
            figures.threads
        )
        .into());
    }
    // Closing its stdin lets the client close every connection and exit.
    drop(client.child_mut().stdin.take());
    let left = deadline.saturating_duration_since(Instant::now());
    let status = client.wait_within(left)?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", client_cmd.display()).into());
    }
    server.guard.signal("TERM")?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    if !status.success() {
        return Err(format!("echo_server exited with {status} after SIGTERM").into());
    }
    Ok(figures)
}

/// Each line of `pipe`, on a channel (so every wait for one is bounded).
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(std::io::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The seconds of the client's `WORD N in SECS` line, waiting for it until `deadline`.
fn seconds_of(lines: &Receiver<String>, word: &str, deadline: Instant) -> Result<f64> {
    let left = deadline.saturating_duration_since(Instant::now());
    let line = match lines.recv_timeout(left) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => {
            return Err(format!("the client printed no `{word}` line within {LIMIT:?}").into());
        }
        // It failed: its own message is on stderr, which xtask's stderr shows.
        Err(RecvTimeoutError::Disconnected) => {
            return Err(format!("the client ended before its `{word}` line").into());
        }
    };
    let expected = format!("{word} {CONNECTIONS} in ");
    line.strip_prefix(&expected)
        .and_then(|secs| secs.trim().parse().ok())
        .ok_or_else(|| format!("the client printed {line:?}, not `{expected}SECS`").into())
}

/// The number of `NAME:` in `/proc/PID/status` text (`VmRSS:  12345 kB` gives 12345).
fn status_field(status: &str, name: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {name} in the server's /proc status").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_as_numbers() {
        let status = "Name:\techo_server\nVmRSS:\t  252844 kB\nThreads:\t10002\n";
        assert_eq!(status_field(status, "VmRSS").unwrap(), 252_844);
        assert_eq!(status_field(status, "Threads").unwrap(), 10_002);
        assert!(status_field(status, "VmHWM").is_err());
    }

    #[test]
    fn the_client_lines_give_their_seconds() {
        let (tx, rx) = mpsc::channel();
        tx.send(format!("connected {CONNECTIONS} in 1.41")).unwrap();
        tx.send("answered 3 in 0.5".to_owned()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(seconds_of(&rx, "connected", deadline).unwrap(), 1.41);
        assert!(seconds_of(&rx, "answered", deadline).is_err());
    }

    /// The client against a small CPython echo server: 50 connections, all answered.
    #[test]
    fn the_client_holds_and_checks_its_connections() {
        let cmd = crate::bench::cpython_echo_server(super::super::Family::Tcp, "127.0.0.1:0");
        let server = RunningServer::start(&cmd, STARTUP_LIMIT).unwrap();
        let out = Cmd::new("python3")
            .arg("-c")
            .arg_shown_as(include_str!("many_clients.py"), "many_clients.py")
            .args([server.addr.as_str(), "50", "30"])
            .output_within(Duration::from_secs(30))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("connected 50 in ") && stdout.contains("answered 50 in "),
            "{stdout}"
        );
    }
}
