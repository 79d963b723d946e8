//! Slow and hostile clients, all at once, under load: 500 slowloris connections (a byte a
//! second, never a line, never reading), 200 that never read their echo (each with 4 KiB
//! `SO_RCVBUF` and `SO_SNDBUF`, so the server's writes to them block) and 100 that reset
//! mid-reply, from one CPython process ([`hostile_client.py`](hostile_client.py)), against
//! `echo_server --mode threading` and `--mode threading --park --max-threads 16`. Both run with
//! `echo_server`'s deadlines: `idle_timeout` 60 s, `write_timeout` 30 s, `turn_timeout` 10 min
//! (longer than the case: the point is that the server serves meanwhile, not that it cuts the
//! hostile clients off).
//!
//! While they are all connected, a fresh client must be answered within [`FRESH_LIMIT`] (a
//! generous bound: it only detects starvation; the figure goes in the case's line), and the
//! graceful stop (SIGTERM) must end within [`STOP_LIMIT`] with status 0: its grace (2 s) and
//! `STOP_BOUND` (3 s), whatever the hostile clients hold.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

/// How long the hostile clients may take to be all in place.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
/// How long a fresh client may wait for its echo while they are.
const FRESH_LIMIT: Duration = Duration::from_secs(10);
/// How long the graceful stop may take: grace 2 s and `STOP_BOUND` 3 s, with margin.
const STOP_LIMIT: Duration = Duration::from_secs(8);
/// How long the hostile clients stay connected at most (they leave when told).
const HOSTILE_SECONDS: u64 = 90;

/// One server configuration.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "hostile clients under load, threading",
        args: &["--mode", "threading"],
    },
    Case {
        name: "hostile clients under load, threading --park --max-threads 16",
        args: &["--mode", "threading", "--park", "--max-threads", "16"],
    },
];

/// The hostile clients of each kind.
const SLOWLORIS: usize = 500;
const NEVER_READERS: usize = 200;
const RESETTERS: usize = 100;

/// Runs every case; returns how many passed (all, or the first failure is the error).
pub(crate) fn run(examples: &Path) -> Result<usize> {
    super::run_each(CASES, |case| case.name, |case| run_case(examples, case))
}

fn run_case(examples: &Path, case: &Case) -> Result<String> {
    let server_cmd = Cmd::new(example_bin(examples, "echo_server"))
        .args(case.args)
        .args(["--addr", "127.0.0.1:0"]);
    let mut server = RunningServer::start(&server_cmd, STARTUP_LIMIT)?;
    let counts = [SLOWLORIS, NEVER_READERS, RESETTERS].map(|n| n.to_string());
    let client = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(include_str!("hostile_client.py"), "hostile_client.py")
        .arg(server.addr.as_str())
        .args(&counts)
        .arg(HOSTILE_SECONDS.to_string());
    let mut hostile = client.spawn_guarded_with_stdin()?;
    let stdout = hostile
        .child_mut()
        .stdout
        .take()
        .ok_or("the client's stdout was not piped")?;
    let (lines, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::io::Result::ok)
        {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let ready = rx
        .recv_timeout(SETUP_LIMIT)
        .map_err(|_| format!("the hostile clients were not in place within {SETUP_LIMIT:?}"))?;
    if !ready.starts_with("ready ") {
        return Err(format!("the hostile client said {ready:?}, not `ready ...`").into());
    }
    server.check_alive()?;

    // A fresh client, while they are all there.
    let asked = Instant::now();
    fresh_client(&server.addr)?;
    let fresh = asked.elapsed();

    // The graceful stop, with them still connected.
    let stopping = Instant::now();
    server.guard.signal("TERM")?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    let stop = stopping.elapsed();
    if !status.success() {
        return Err(format!("the graceful stop exited with {status}").into());
    }
    // Tell the hostile clients to leave (their stdin closes), then wait for them.
    drop(hostile.child_mut().stdin.take());
    hostile.wait_within(Duration::from_secs(20))?;
    Ok(format!(
        "{}; fresh client answered in {:.3}s; stopped in {:.2}s",
        ready.trim_start_matches("ready "),
        fresh.as_secs_f64(),
        stop.as_secs_f64()
    ))
}

/// Connects, sends a line and reads its echo, within [`FRESH_LIMIT`] in all.
fn fresh_client(addr: &str) -> Result<()> {
    let deadline = Instant::now() + FRESH_LIMIT;
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(FRESH_LIMIT))?;
    s.write_all(b"fresh\n")?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 6 {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("a fresh client got no echo within {FRESH_LIMIT:?}: {e}"))?;
        if n == 0 {
            return Err(format!("a fresh client's connection closed after {got:?}").into());
        }
        got.extend_from_slice(&buf[..n]);
        if Instant::now() > deadline {
            break;
        }
    }
    if got != b"fresh\n" {
        return Err(format!("a fresh client got {got:?}, not its echo").into());
    }
    Ok(())
}
