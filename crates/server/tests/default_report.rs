//! The default `handle_error` of a program that installed no logger: every failed request is
//! reported on stderr, as Python's `handle_error` prints it; with a logger installed the report
//! goes to the logger instead; and a flood of failures is rate-limited.
//!
//! The `log` logger is process-wide and set once, so each case needs a process of its own: this
//! binary (`harness = false` in Cargo.toml) re-executes itself. With `SOCKSERVE_REPORT_ROLE` set
//! it is a child server whose handler always fails, otherwise it is the parent that runs the
//! checks one after the other, prints "default_report: N passed, M failed" and exits non-zero on
//! failure. Every child is held by a `Kid`, whose `Drop` kills and reaps it; a child also exits
//! by itself when its stdin (a pipe from the parent) closes, so none outlives a parent that dies.

// A harness-less test reports on stdout and stderr itself, and so do its child servers.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod util;

use handler::StreamRequest;
use sockserve_server::TcpServer;
use std::{
    env,
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{self, Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::Instant,
};
use util::{Check, GENEROUS, run_checks};

/// Selects the child's role; absent in the parent.
const ROLE: &str = "SOCKSERVE_REPORT_ROLE";
/// The start of every report line, as Python's `handle_error` prints it.
const REPORT: &str = "Exception occurred during processing of request from ";
/// The most reports the default `handle_error` writes in one second (`report.rs`).
const LIMIT: usize = 10;
/// How many failing requests the flood sends.
const FLOOD: usize = 1000;

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    let checks: &[(&str, Check)] = &[
        (
            "errors_and_panics_reach_stderr_without_a_logger",
            errors_and_panics_reach_stderr_without_a_logger,
        ),
        (
            "an_installed_logger_gets_the_report_instead_of_stderr",
            an_installed_logger_gets_the_report_instead_of_stderr,
        ),
        (
            "a_flood_of_failures_is_rate_limited",
            a_flood_of_failures_is_rate_limited,
        ),
    ];
    run_checks("default_report", checks);
}

// ---------------------------------------------------------------------------------------------
// The children.

/// A logger that prints each record on stdout as `log: LEVEL: message`, for the parent to read.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        println!("log: {}: {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

static LOGGER: StdoutLogger = StdoutLogger;

/// Runs a child role and exits: 0 when the parent closes stdin, 2 when the server cannot start.
fn child(role: &str) -> ! {
    let result = match role {
        "no-logger" => failing_server(),
        "logger" => log::set_logger(&LOGGER)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                log::set_max_level(log::LevelFilter::Trace);
                failing_server()
            }),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(()) => process::exit(0),
        Err(message) => {
            eprintln!("{role}: {message}");
            process::exit(2);
        }
    }
}

/// A sync TCP server whose handler reads one line and fails on it: it panics on "panic",
/// and returns an error naming the line on anything else.
fn failing_server() -> Result<(), String> {
    let mut server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        let line = line.trim_end();
        if line == "panic" {
            panic!("the handler panicked on purpose");
        }
        Err::<(), _>(
            io::Error::new(io::ErrorKind::InvalidData, format!("bad input {line:?}")).into(),
        )
    })
    .map_err(|e| e.to_string())?;
    thread::spawn(|| {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        process::exit(0);
    });
    println!("listening on {}", server.server_address());
    server.serve_forever().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The parent's side of a child.

/// One line of the child's output, or the end of that stream.
type Line = Option<String>;

/// A running child: its stdout and stderr lines arrive on channels, so every wait is bounded.
/// Dropping it kills and reaps the child.
struct Kid {
    name: &'static str,
    child: Child,
    /// Held open until `finish`: the child exits when it closes.
    stdin: Option<ChildStdin>,
    stdout: Receiver<Line>,
    stderr: Receiver<Line>,
    /// Every stderr line received so far.
    stderr_seen: Vec<String>,
}

/// Sends each line of `stream` on a new channel, then `None` at end of file.
fn lines_of(stream: impl Read + Send + 'static) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    rx
}

impl Kid {
    /// This test binary as a child server in `role`.
    fn spawn(name: &'static str, role: &str) -> Result<Kid, String> {
        let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(ROLE, role)
            // A logger of the parent's environment must not change the child's behaviour.
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let stdout = lines_of(child.stdout.take().expect("stdout is piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
        Ok(Kid {
            name,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        })
    }

    /// The address of the child's "listening on ADDR" line.
    fn listening_on(&mut self) -> Result<SocketAddr, String> {
        let line = self.stdout_line(|l| l.starts_with("listening on "), "listening on ADDR")?;
        line.strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the {} printed {line:?}", self.name))
    }

    /// The first stdout line for which `wanted` holds, waiting at most GENEROUS overall.
    fn stdout_line(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        expecting: &str,
    ) -> Result<String, String> {
        let deadline = Instant::now() + GENEROUS;
        let mut other = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(Some(line)) if wanted(&line) => return Ok(line),
                Ok(Some(line)) => other.push(line),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.finish()?;
                    return Err(format!(
                        "the {} closed stdout without printing {expecting:?}; stdout: {other:?}; \
                         stderr: {stderr:?}",
                        self.name
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the {} did not print {expecting:?} on stdout within {GENEROUS:?}; \
                         stdout: {other:?}",
                        self.name
                    ));
                }
            }
        }
    }

    /// Waits (at most GENEROUS) until stderr has a line containing `text`; returns it.
    fn stderr_line(&mut self, text: &str) -> Result<String, String> {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(text)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + GENEROUS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(Some(line)) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(text) {
                        return Ok(line);
                    }
                }
                Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the {} closed stderr without a line containing {text:?}; stderr: {:?}",
                        self.name, self.stderr_seen
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the {}'s stderr had no line containing {text:?} within {GENEROUS:?}; \
                         stderr: {:?}",
                        self.name, self.stderr_seen
                    ));
                }
            }
        }
    }

    /// The stdout lines not read yet, up to end of file; for a child that `finish`ed.
    fn rest_of_stdout(&mut self) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(GENEROUS) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => return Ok(lines),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the {}'s stdout did not end within {GENEROUS:?} of its exit",
                        self.name
                    ));
                }
            }
        }
    }

    /// Closes the child's stdin (it exits), waits at most GENEROUS for the end of its stderr,
    /// reaps it and returns every stderr line it wrote.
    fn finish(&mut self) -> Result<Vec<String>, String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + GENEROUS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(Some(line)) => self.stderr_seen.push(line),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the {} did not exit within {GENEROUS:?} of its stdin closing",
                        self.name
                    ));
                }
            }
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the {}: {e}", self.name))?;
        if !status.success() {
            return Err(format!(
                "the {} exited with {status}; stderr: {:?}",
                self.name, self.stderr_seen
            ));
        }
        Ok(self.stderr_seen.clone())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Killing an exited (or already reaped) child fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `line` on a new connection and reads to end of file (the server closes it after its
/// handler failed, and after `handle_error` ran), all bounded. Returns the client's address.
fn failing_request(server: SocketAddr, line: &str) -> Result<SocketAddr, String> {
    let mut s = TcpStream::connect_timeout(&server, GENEROUS)
        .map_err(|e| format!("connect to {server}: {e}"))?;
    s.set_read_timeout(Some(GENEROUS))
        .and_then(|()| s.set_write_timeout(Some(GENEROUS)))
        .map_err(|e| format!("timeouts: {e}"))?;
    let client = s.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("reply from {server} (timed out?): {e}"))?;
    Ok(client)
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn errors_and_panics_reach_stderr_without_a_logger() -> Result<(), String> {
    let mut kid = Kid::spawn("server without a logger", "no-logger")?;
    let address = kid.listening_on()?;

    let client = failing_request(address, "hello")?;
    let expected = format!("{REPORT}{client}: handle failed: bad input \"hello\"");
    let line = kid.stderr_line(&format!("{REPORT}{client}"))?;
    if line != expected {
        return Err(format!("the report is {line:?}, not {expected:?}"));
    }

    let client = failing_request(address, "panic")?;
    let expected = format!("{REPORT}{client}: handle panicked: the handler panicked on purpose");
    let line = kid.stderr_line(&format!("{REPORT}{client}"))?;
    if line != expected {
        return Err(format!("the report is {line:?}, not {expected:?}"));
    }
    kid.finish()?;
    Ok(())
}

fn an_installed_logger_gets_the_report_instead_of_stderr() -> Result<(), String> {
    let mut kid = Kid::spawn("server with a logger", "logger")?;
    let address = kid.listening_on()?;
    let client = failing_request(address, "hello")?;
    let expected = format!("log: ERROR: {REPORT}{client}: handle failed: bad input \"hello\"");
    let line = kid.stdout_line(|l| l.contains(REPORT), "the report, through the logger")?;
    if line != expected {
        return Err(format!("the logger got {line:?}, not {expected:?}"));
    }
    // The limit holds on this path too.
    let started = Instant::now();
    for i in 0..FLOOD / 10 {
        failing_request(address, &format!("flood {i}"))?;
    }
    let seconds = seconds_spanned(started);
    let stderr = kid.finish()?;
    if let Some(line) = stderr.iter().find(|l| l.contains(REPORT)) {
        return Err(format!(
            "with a logger installed the report also went to stderr: {line:?}"
        ));
    }
    let logged = kid.rest_of_stdout()?;
    // The first report, read above, counts too.
    let reports = 1 + logged.iter().filter(|l| l.contains(REPORT)).count();
    if reports > LIMIT * seconds {
        return Err(format!(
            "{} failing requests logged {reports} reports, more than {LIMIT} a second over \
             {seconds} seconds",
            FLOOD / 10 + 1
        ));
    }
    if !logged
        .iter()
        .any(|l| l.starts_with("log: ERROR: ") && l.contains("not shown"))
    {
        return Err(format!(
            "the logger was not told that failures were held back: {logged:?}"
        ));
    }
    Ok(())
}

/// How many clock seconds the time since `started` may touch: the rate limit counts per clock
/// second, so a run touches each second it spans, and the ones it starts and ends in.
fn seconds_spanned(started: Instant) -> usize {
    usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX) + 2
}

fn a_flood_of_failures_is_rate_limited() -> Result<(), String> {
    let mut kid = Kid::spawn("server flooded with failing requests", "no-logger")?;
    let address = kid.listening_on()?;
    let started = Instant::now();
    for i in 0..FLOOD {
        failing_request(address, &format!("flood {i}"))?;
    }
    let elapsed = started.elapsed();
    let seconds = seconds_spanned(started);
    let stderr = kid.finish()?;
    let reports = stderr.iter().filter(|l| l.starts_with(REPORT)).count();
    let others: Vec<&String> = stderr.iter().filter(|l| !l.starts_with(REPORT)).collect();
    let detail = || {
        format!(
            "{FLOOD} failing requests in {elapsed:?} wrote {reports} reports and {} other \
             lines; the first lines: {:?}",
            others.len(),
            stderr.iter().take(2 * LIMIT + 4).collect::<Vec<_>>()
        )
    };
    if reports == 0 {
        return Err(format!("no report at all: {}", detail()));
    }
    if reports > LIMIT * seconds {
        return Err(format!(
            "more than {LIMIT} reports a second over {seconds} seconds: {}",
            detail()
        ));
    }
    // At most a notice that reports are being held back and a count of them, each second.
    if others.len() > 2 * seconds {
        return Err(format!("too many summary lines: {}", detail()));
    }
    if !others.iter().any(|l| l.contains("not shown")) {
        return Err(format!(
            "nothing says that failures were held back: {}",
            detail()
        ));
    }
    Ok(())
}
