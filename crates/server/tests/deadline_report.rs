//! How the default `handle_error` reports requests that a deadline ended: 50 silent clients cut
//! off by `StreamOptions::idle_timeout` give a line or two at info level (with the rest
//! counted), never an error line each; a failure of another kind is still an error line.
//!
//! The `log` logger is process-wide and set once, so each case runs in a process of its own:
//! this binary (`harness = false` in Cargo.toml) re-executes itself. With
//! `SOCKSERVE_DEADLINE_REPORT_ROLE` set it is a child that serves the 50 silent clients and one
//! failing request itself, then exits; the parent reads the child's stdout (where its logger
//! writes) and stderr (where the report goes without a logger) and judges them.

// A harness-less test reports on stdout and stderr itself, and so do its children.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod util;

use handler::StreamRequest;
use sockserve_server::{StreamOptions, TcpServer};
use std::{
    env, io,
    io::{BufRead, Read, Write},
    net::TcpStream,
    process::{self, Command},
    time::{Duration, Instant},
};
use util::{Check, GENEROUS, run_checks};

/// Selects the child's role; absent in the parent.
const ROLE: &str = "SOCKSERVE_DEADLINE_REPORT_ROLE";
/// How many silent clients each child serves.
const SILENT: usize = 50;
/// The start of a timed-out request's report (hooks.rs).
const TIMED_OUT: &str = "Request from ";
/// The start of a failure's report, as Python's `handle_error` prints it.
const FAILURE: &str = "Exception occurred during processing of request from ";
/// The most timed-out requests the default `handle_error` reports a second (`report.rs`).
const TIMED_OUT_LIMIT: usize = 1;

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    let checks: &[(&str, Check)] = &[
        (
            "timed_out_clients_are_info_lines_through_a_logger",
            timed_out_clients_are_info_lines_through_a_logger,
        ),
        (
            "timed_out_clients_are_a_few_stderr_lines_without_a_logger",
            timed_out_clients_are_a_few_stderr_lines_without_a_logger,
        ),
        (
            "a_logger_above_info_hears_nothing_of_timed_out_clients",
            a_logger_above_info_hears_nothing_of_timed_out_clients,
        ),
    ];
    run_checks("deadline_report", checks);
}

// ---------------------------------------------------------------------------------------------
// The children.

/// A logger that prints each record on stdout as `log: LEVEL: message`, for the parent to read.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            println!("log: {}: {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StdoutLogger = StdoutLogger;

/// Runs a child role and exits: 0 when all went as planned, 2 otherwise.
fn child(role: &str) -> ! {
    let level = match role {
        "no-logger" => None,
        "logger" => Some(log::LevelFilter::Trace),
        "logger-warn" => Some(log::LevelFilter::Warn),
        other => {
            eprintln!("unknown role {other:?}");
            process::exit(2);
        }
    };
    if let Some(level) = level {
        if let Err(e) = log::set_logger(&LOGGER) {
            eprintln!("{role}: set_logger: {e}");
            process::exit(2);
        }
        log::set_max_level(level);
    }
    match silent_clients_and_one_failure() {
        Ok(()) => process::exit(0),
        Err(message) => {
            eprintln!("{role}: {message}");
            process::exit(2);
        }
    }
}

/// A sync TCP server whose handler reads a line with a 20 ms idle timeout and fails on any
/// line it gets; `SILENT` clients connect and send nothing, then one sends a line. Each
/// client waits (bounded) until the server has closed its connection, which it does after
/// `handle_error` ran.
fn silent_clients_and_one_failure() -> Result<(), String> {
    let server = TcpServer::builder(|req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        Err::<(), _>(
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad input {:?}", line.trim_end()),
            )
            .into(),
        )
    })
    .request_options(StreamOptions::default().idle_timeout(Some(Duration::from_millis(20))))
    .bind("127.0.0.1:0")
    .map_err(|e| e.to_string())?;
    let running = server.spawn().map_err(|e| e.to_string())?;
    let address = util::inet(running.server_address());
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&address, GENEROUS)
            .map_err(|e| format!("connect to {address}: {e}"))?;
        s.set_read_timeout(Some(GENEROUS))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        Ok(s)
    };
    let mut clients = (0..SILENT)
        .map(|_| connect())
        .collect::<Result<Vec<_>, _>>()?;
    let mut failing = connect()?;
    failing
        .write_all(b"boom\n")
        .map_err(|e| format!("send: {e}"))?;
    clients.push(failing);
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .read_to_end(&mut Vec::new())
            .map_err(|e| format!("client {i} saw no end of its connection: {e}"))?;
    }
    running.shutdown().map_err(|e| e.to_string())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// What a child printed, line by line, and the clock seconds its run may have touched.
struct Run {
    stdout: Vec<String>,
    stderr: Vec<String>,
    seconds: usize,
}

/// Runs this binary as a child in `role` to its end (bounded); fails unless it exits with 0.
fn run(role: &str) -> Result<Run, String> {
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    // A logger of the parent's environment must not change the child's behaviour.
    cmd.env(ROLE, role).env_remove("RUST_LOG");
    let started = Instant::now();
    let output = util::output_within(cmd, &format!("the {role} child"), 3 * GENEROUS);
    // The rate limit counts per clock second: a run touches each second it spans, and the ones
    // it starts and ends in.
    let seconds = usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX) + 2;
    let lines = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let run = Run {
        stdout: lines(&output.stdout),
        stderr: lines(&output.stderr),
        seconds,
    };
    if !output.status.success() {
        return Err(format!(
            "the {role} child exited with {}; stdout: {:?}; stderr: {:?}",
            output.status, run.stdout, run.stderr
        ));
    }
    Ok(run)
}

/// The lines of `lines` that report a timed-out request, or say how many were not shown.
fn about_timeouts(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("ended by a deadline"))
        .collect()
}

fn timed_out_clients_are_info_lines_through_a_logger() -> Result<(), String> {
    let run = run("logger")?;
    let errors: Vec<&String> = run
        .stdout
        .iter()
        .filter(|l| l.starts_with("log: ERROR: "))
        .collect();
    // The one real failure, and nothing else, at error level.
    if errors.len() != 1 || !errors[0].contains(FAILURE) || !errors[0].contains("bad input") {
        return Err(format!(
            "expected exactly the one failure at error level, got {errors:?}"
        ));
    }
    let timeouts = about_timeouts(&run.stdout);
    if let Some(line) = timeouts.iter().find(|l| !l.starts_with("log: INFO: ")) {
        return Err(format!("a timed-out request reported above info: {line:?}"));
    }
    let shown = timeouts
        .iter()
        .filter(|l| l.starts_with(&format!("log: INFO: {TIMED_OUT}")))
        .count();
    if shown == 0 {
        return Err(format!("no timed-out request reported: {:?}", run.stdout));
    }
    if shown > TIMED_OUT_LIMIT * run.seconds {
        return Err(format!(
            "{shown} timed-out requests shown over {} seconds: {timeouts:?}",
            run.seconds
        ));
    }
    // At most a notice that the rest are counted and a count, each second.
    if timeouts.len() - shown > 2 * run.seconds {
        return Err(format!("too many summary lines: {timeouts:?}"));
    }
    if !timeouts.iter().any(|l| l.contains("not shown")) {
        return Err(format!(
            "nothing says that timed-out requests were held back: {timeouts:?}"
        ));
    }
    let example = timeouts
        .iter()
        .find(|l| l.contains(TIMED_OUT))
        .map_or("", |l| l.as_str());
    if !example.contains("idle for 20ms") || !example.contains("StreamOptions::idle_timeout") {
        return Err(format!(
            "the report does not say which deadline passed: {example:?}"
        ));
    }
    if let Some(line) = run
        .stderr
        .iter()
        .find(|l| l.contains(TIMED_OUT) || l.contains(FAILURE))
    {
        return Err(format!(
            "with a logger installed a report also went to stderr: {line:?}"
        ));
    }
    Ok(())
}

fn timed_out_clients_are_a_few_stderr_lines_without_a_logger() -> Result<(), String> {
    let run = run("no-logger")?;
    let failures: Vec<&String> = run
        .stderr
        .iter()
        .filter(|l| l.starts_with(FAILURE))
        .collect();
    if failures.len() != 1 || !failures[0].contains("bad input") {
        return Err(format!(
            "expected the one failure on stderr, got {:?}",
            run.stderr
        ));
    }
    let timeouts = about_timeouts(&run.stderr);
    let limit = (TIMED_OUT_LIMIT + 2) * run.seconds;
    if timeouts.is_empty() || timeouts.len() > limit {
        return Err(format!(
            "{SILENT} timed-out clients wrote {} lines (expected 1 to {limit}): {:?}",
            timeouts.len(),
            run.stderr
        ));
    }
    let others: Vec<&String> = run
        .stderr
        .iter()
        .filter(|l| !l.starts_with(FAILURE) && !l.contains("ended by a deadline"))
        .collect();
    if !others.is_empty() {
        return Err(format!("unexpected lines on stderr: {others:?}"));
    }
    Ok(())
}

fn a_logger_above_info_hears_nothing_of_timed_out_clients() -> Result<(), String> {
    let run = run("logger-warn")?;
    let all: Vec<String> = run.stdout.iter().chain(&run.stderr).cloned().collect();
    let timeouts = about_timeouts(&all);
    if !timeouts.is_empty() {
        return Err(format!(
            "a program that logs warnings and above was told of timed-out requests: \
             {timeouts:?}"
        ));
    }
    if !run
        .stdout
        .iter()
        .any(|l| l.starts_with("log: ERROR: ") && l.contains(FAILURE))
    {
        return Err(format!(
            "the one failure was not logged at error level: {all:?}"
        ));
    }
    Ok(())
}
