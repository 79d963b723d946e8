//! `serve_until_signal`: SIGTERM and SIGINT stop a server gracefully, an idle client is closed
//! after the grace period, the Unix socket file is removed, and the process exits 0.
//!
//! Signal dispositions are process-wide, so this is a test binary of its own (`harness = false`
//! in Cargo.toml). Its `main` runs each check in turn; a check re-executes this binary with
//! [`CHILD_ENV`] set, which makes the child a server (see [`child_main`]), and signals it with
//! `kill`. `main` prints "signals: N passed, M failed" and exits non-zero on failure.

// A harness-less test reports on stdout and stderr itself.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sockserve::reactor::Signal;
use sockserve::{
    Address, StopSignals, StreamRequest, TcpServer, UnixStreamServer, serve_until_signal,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Set in a child: `tcp`, `tcp-late` (serves half a second after announcing), `tcp-long-grace`
/// (a grace period of [`LONG_GRACE`]) or `unix:PATH`, the server it runs.
const CHILD_ENV: &str = "SOCKSERVE_SIGNALS_TEST_CHILD";
/// The grace period the child's server gets.
const GRACE: Duration = Duration::from_secs(2);
/// A grace period no check waits out: a stop that takes it shows a wait that should not be.
const LONG_GRACE: Duration = Duration::from_secs(60);
/// A generous bound for anything the child does (start, stop, exit).
const BOUND: Duration = Duration::from_secs(10);

type Check = fn() -> Result<(), String>;

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        std::process::exit(match child_main(&mode) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("signals child: {e}");
                1
            }
        });
    }
    let checks: &[(&str, Check)] = &[
        (
            "tcp_sigterm_closes_an_idle_client_and_exits_0",
            tcp_sigterm_closes_an_idle_client_and_exits_0,
        ),
        (
            "unix_sigterm_removes_the_socket_file",
            unix_sigterm_removes_the_socket_file,
        ),
        ("tcp_sigint_without_clients", tcp_sigint_without_clients),
        (
            "a_signal_before_serving_is_kept",
            a_signal_before_serving_is_kept,
        ),
        (
            "shutdown_handle_ends_it_without_a_signal",
            shutdown_handle_ends_it_without_a_signal,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        let outcome = panic::catch_unwind(AssertUnwindSafe(check))
            .unwrap_or_else(|_| Err("panicked".to_owned()));
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("signals: {name} ... ok");
            }
            Err(message) => {
                failed += 1;
                println!("signals: {name} ... FAILED: {message}");
            }
        }
    }
    println!("signals: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The child: an echo server stopped by a signal. Prints `listening on ADDR` first, then
/// `stopped: signal=... forced=N loop_stopped=B` once `serve_until_signal` returned.
fn child_main(mode: &str) -> io::Result<()> {
    let echo = |req: &mut StreamRequest| loop {
        let data = req.rfile.fill_buf()?;
        if data.is_empty() {
            return Ok(());
        }
        req.wfile.write_all(data)?;
        let n = data.len();
        req.rfile.consume(n);
    };
    // The handlers before the announcement: the parent signals as soon as it reads it.
    let stop = if mode == "tcp" || mode == "tcp-late" || mode == "tcp-long-grace" {
        let mut server = TcpServer::bind("127.0.0.1:0", echo)?;
        let signals = StopSignals::install()?;
        announce(server.server_address())?;
        if mode == "tcp-late" {
            // Not synchronisation: a window in which the parent's signal surely arrives
            // before the loop starts, which is the case under test.
            thread::sleep(Duration::from_millis(500));
        }
        let grace = if mode == "tcp-long-grace" {
            LONG_GRACE
        } else {
            GRACE
        };
        signals.serve_until_signal(&mut server, grace)?
    } else if let Some(path) = mode.strip_prefix("unix:") {
        let mut server = UnixStreamServer::bind(Path::new(path), echo)?;
        let signals = StopSignals::install()?;
        announce(server.server_address())?;
        signals.serve_until_signal(&mut server, GRACE)?
    } else {
        return Err(io::Error::other(format!("unknown child mode {mode:?}")));
    };
    let signal = stop.signal.map_or("none", Signal::as_str);
    let graceful = stop.graceful.unwrap_or_default();
    println!(
        "stopped: signal={signal} forced={} loop_stopped={}",
        graceful.forced, graceful.loop_stopped
    );
    io::stdout().flush()
}

fn announce(address: &Address) -> io::Result<()> {
    println!("listening on {address}");
    io::stdout().flush()
}

/// A child server; dropping it kills and waits it, on every path out of a check.
struct ChildServer {
    child: Child,
    lines: Receiver<String>,
    address: String,
}

impl ChildServer {
    fn start(mode: &str) -> Result<ChildServer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the child: {e}"))?;
        let stdout = child.stdout.take().ok_or("the child has no stdout")?;
        let lines = read_lines(stdout);
        let mut server = ChildServer {
            child,
            lines,
            address: String::new(),
        };
        let first = server.next_line("its address")?;
        server.address = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("first line {first:?} is not `listening on ADDR`"))?
            .to_owned();
        Ok(server)
    }

    fn next_line(&self, what: &str) -> Result<String, String> {
        self.lines
            .recv_timeout(BOUND)
            .map_err(|_| format!("the child did not print {what} within {BOUND:?}"))
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        // The shell's built-in kill: a slim machine may have no kill(1) (procps).
        let status = Command::new("sh")
            .args(["-c", "kill \"$1\" \"$2\"", "sh", signal])
            .arg(self.child.id().to_string())
            .status()
            .map_err(|e| format!("running kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill {signal} failed: {status}"));
        }
        Ok(())
    }

    /// Waits for the child to exit within `BOUND`.
    fn wait_exit(&mut self) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + BOUND;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return Err(format!("the child did not exit within {BOUND:?}")),
                Err(e) => return Err(format!("waiting for the child: {e}")),
            }
        }
    }

    /// Signals the child, checks it exits 0 within the bound, and returns its last line.
    fn stop_with(&mut self, signal: &str) -> Result<(String, Duration), String> {
        let started = Instant::now();
        self.signal(signal)?;
        let status = self.wait_exit()?;
        let took = started.elapsed();
        if !status.success() {
            return Err(format!("the child exited with {status} after {signal}"));
        }
        let last = self.next_line("its `stopped:` line")?;
        Ok((last, took))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's stdout lines, read on a thread so that reads can be bounded.
fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends a byte and reads it back: the handler is running on this connection.
fn ping(stream: &mut impl ReadWrite) -> Result<(), String> {
    stream.write_all(b"x").map_err(|e| format!("ping: {e}"))?;
    let mut one = [0; 1];
    stream
        .read_exact(&mut one)
        .map_err(|e| format!("ping reply: {e}"))
}

/// After the stop, the idle client reads EOF (not a timeout, not a reset).
fn expect_eof(stream: &mut impl ReadWrite) -> Result<(), String> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("the idle client read {n} unexpected bytes")),
        Err(e) => Err(format!("the idle client did not read EOF: {e}")),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn check_line(line: &str, signal: &str, forced: usize) -> Result<(), String> {
    let want = format!("stopped: signal={signal} forced={forced} loop_stopped=true");
    if line == want {
        Ok(())
    } else {
        Err(format!("last line {line:?}, expected {want:?}"))
    }
}

fn tcp_sigterm_closes_an_idle_client_and_exits_0() -> Result<(), String> {
    let mut server = ChildServer::start("tcp")?;
    let mut idle =
        TcpStream::connect(server.address.as_str()).map_err(|e| format!("connect: {e}"))?;
    idle.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    ping(&mut idle)?;
    let (line, took) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 1)?;
    if took < GRACE {
        return Err(format!("stopped after {took:?}, before the grace period"));
    }
    expect_eof(&mut idle)
}

fn unix_sigterm_removes_the_socket_file() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path: PathBuf = dir.path().join("server.sock");
    let mut server = ChildServer::start(&format!("unix:{}", path.display()))?;
    if server.address != path.display().to_string() {
        return Err(format!("announced {:?}, bound {path:?}", server.address));
    }
    if !path.exists() {
        return Err("the socket file does not exist while serving".to_owned());
    }
    let mut idle = UnixStream::connect(&path).map_err(|e| format!("connect: {e}"))?;
    idle.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    ping(&mut idle)?;
    let (line, _) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 1)?;
    expect_eof(&mut idle)?;
    if path.exists() {
        return Err("the socket file is still there after the stop".to_owned());
    }
    Ok(())
}

fn tcp_sigint_without_clients() -> Result<(), String> {
    let mut server = ChildServer::start("tcp-long-grace")?;
    let (line, took) = server.stop_with("-INT")?;
    check_line(&line, "SIGINT", 0)?;
    // Nothing in flight: no grace period to wait out.
    if took >= BOUND {
        return Err(format!("an idle server took {took:?} to stop"));
    }
    Ok(())
}

/// A signal between `StopSignals::install` and serving neither kills the process nor is lost:
/// the server stops as soon as it serves.
fn a_signal_before_serving_is_kept() -> Result<(), String> {
    let mut server = ChildServer::start("tcp-late")?;
    let (line, _) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 0)
}

/// In this process: a `ShutdownHandle` ends the serving, no signal is reported, the server is
/// closed, and the signals are free again for a second call.
fn shutdown_handle_ends_it_without_a_signal() -> Result<(), String> {
    for round in 0..2 {
        let mut server = TcpServer::bind("127.0.0.1:0", |_r: &mut StreamRequest| Ok(()))
            .map_err(|e| format!("bind: {e}"))?;
        let handle = server.shutdown_handle();
        let stopper = thread::spawn(move || {
            let deadline = Instant::now() + BOUND;
            while !handle.is_serving() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            handle.shutdown()
        });
        let stop = serve_until_signal(&mut server, GRACE)
            .map_err(|e| format!("round {round}: serve_until_signal: {e}"))?;
        stopper
            .join()
            .map_err(|_| "the stopper panicked".to_owned())?
            .map_err(|e| format!("shutdown: {e}"))?;
        if stop.signal.is_some() || stop.graceful.is_some() {
            return Err(format!("round {round}: unexpected {stop:?}"));
        }
        if server.fileno() != -1 {
            return Err(format!("round {round}: the server is still open"));
        }
    }
    Ok(())
}
