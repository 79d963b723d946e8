//! The shutdown latency of `cargo xtask bench` (`--only shutdown`), two tables.
//!
//! In process: `shutdown()` to `serve_forever` returning, for the facade's TCP servers (sync,
//! threading, forking) by the peers' `shutdown-latency` (a program with a path dependency on
//! `sockserve`), and for CPython's `ThreadingTCPServer` by [`CPYTHON_SHUTDOWN`] (whose
//! `serve_forever` looks for the request every `poll_interval`, 0.5 s). Each trial is a fresh
//! server that has answered one exchange.
//!
//! SIGTERM to exit, with no client connected, for `echo_server` (sync, threading, forking) and
//! CPython's threading echo server (the bench's, whose SIGTERM handler calls `shutdown()` from a
//! thread); not the `std` floor nor tokio, which SIGTERM just kills, nor `--park`, whose stop is
//! threading's.
//!
//! The targets of the full bench's issue: `shutdown()` median under 1 ms, SIGTERM to exit
//! median under 10 ms, for each of sockserve's modes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::report::{Output, Row, Table, Target};
use super::{Bins, Options, Server, median, millis, spread, start};
use crate::Result;
use crate::cmd::Cmd;
use crate::integration::Family;

/// The in-process table's heading.
pub(super) const IN_PROCESS: &str =
    "shutdown latency: shutdown() to serve_forever returning, in process";
/// The SIGTERM table's heading.
pub(super) const SIGTERM: &str = "shutdown latency: SIGTERM to exit, no client connected";

/// Trials per server and run (`--quick`: [`QUICK_TRIALS`]).
const TRIALS: usize = 5;
const QUICK_TRIALS: usize = 1;

fn trials(opts: &Options) -> usize {
    if opts.quick { QUICK_TRIALS } else { TRIALS }
}
/// How long a server may take to exit after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(8);
/// How long the in-process programs may take, all their trials together.
const PROGRAM_LIMIT: Duration = Duration::from_secs(60);
/// How long a server started for the SIGTERM figure runs before the signal: not a
/// synchronisation (it has announced its address, so it serves), a server that has been up a
/// moment, as one usually is.
const SETTLE: Duration = Duration::from_millis(100);

/// The servers of the SIGTERM table.
const SIGTERM_SERVERS: [Server; 4] = [
    Server::Sockserve("sync"),
    Server::Sockserve("threading"),
    Server::Sockserve("forking"),
    Server::CPython("threading"),
];

/// The rows of the in-process table: sockserve's modes, then CPython's.
const IN_PROCESS_ROWS: [&str; 4] = ["sync", "threading", "forking", "cpython"];

/// CPython's in-process figure: `ThreadingTCPServer` (its handler answers the one 4-byte
/// message with itself) serving on a thread, one exchange, then `server.shutdown()` timed; `argv[1]` trials; prints the microseconds of
/// each, space-separated.
const CPYTHON_SHUTDOWN: &str = r#"
import socket, socketserver, sys, threading, time

class Ping(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(self.request.recv(4))

times = []
for _ in range(int(sys.argv[1])):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Ping)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    with socket.create_connection(server.server_address, timeout=10) as client:
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
    started = time.perf_counter()
    server.shutdown()
    times.append((time.perf_counter() - started) * 1e6)
    serving.join()
    server.server_close()
print(" ".join(f"{t:.1}" for t in times), flush=True)
"#;

/// The figures of every run: `in_process[row][trial]` in microseconds,
/// `sigterm[server]` each trial's time or the failure, and the exit statuses seen.
#[derive(Debug, Default)]
pub(super) struct Section {
    in_process: Vec<Result<Vec<f64>, String>>,
    sigterm: Vec<Result<Exits, String>>,
}

/// SIGTERM's figures for one server: each trial's time, and the exit statuses seen.
type Exits = (Vec<Duration>, Vec<String>);

impl super::Section for Section {
    fn labels(&self, _opts: &Options) -> Vec<String> {
        vec![IN_PROCESS.to_owned(), SIGTERM.to_owned()]
    }

    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()> {
        if opts.selects(IN_PROCESS) {
            super::progress(IN_PROCESS);
            let results = in_process(bins, trials(opts));
            if self.in_process.is_empty() {
                self.in_process = results;
            } else {
                for (all, run) in self.in_process.iter_mut().zip(results) {
                    match (all, run) {
                        (Ok(all), Ok(run)) => all.extend(run),
                        (all @ Ok(_), Err(e)) => *all = Err(e),
                        (Err(_), _) => {}
                    }
                }
            }
        }
        if opts.selects(SIGTERM) {
            self.sigterm
                .resize_with(SIGTERM_SERVERS.len(), || Ok((Vec::new(), Vec::new())));
            for (s, server) in SIGTERM_SERVERS.into_iter().enumerate() {
                super::progress(&format!("{SIGTERM}: {}", server.name()));
                let run = sigterm_times(bins, dir, server, trials(opts));
                match (&mut self.sigterm[s], run) {
                    (Ok((times, exits)), Ok((more, seen))) => {
                        times.extend(more);
                        for exit in seen {
                            if !exits.contains(&exit) {
                                exits.push(exit);
                            }
                        }
                    }
                    (slot @ Ok(_), Err(e)) => *slot = Err(e.to_string()),
                    (Err(_), _) => {}
                }
            }
        }
        Ok(())
    }

    fn report(&self, opts: &Options, out: &mut Output) {
        let columns = ["median", "max", "spread", "trials", "exit"];
        if opts.selects(IN_PROCESS) {
            let mut table = Table::new(IN_PROCESS, &columns[..4]);
            for (row, result) in IN_PROCESS_ROWS.iter().zip(&self.in_process) {
                let (name, mode) = match *row {
                    "cpython" => ("CPython ThreadingTCPServer".to_owned(), None),
                    mode => (format!("sockserve {mode} (TcpServer)"), Some(mode)),
                };
                let figures = result.as_ref().map(|t| {
                    t.iter()
                        .map(|us| Duration::from_secs_f64(us / 1e6))
                        .collect::<Vec<_>>()
                });
                let figures = figures.as_ref().map_err(|e| e.to_string());
                table.rows.push(times_row(&name, figures.clone(), None));
                let goal = (
                    "shutdown() to serve_forever returning",
                    Duration::from_millis(1),
                );
                account(out, IN_PROCESS, &name, mode, goal, figures);
            }
            out.tables.push(table);
        }
        if opts.selects(SIGTERM) {
            let mut table = Table::new(SIGTERM, &columns);
            for (server, result) in SIGTERM_SERVERS.iter().zip(&self.sigterm) {
                let name = server.name();
                let figures = result.as_ref().map(|(t, _)| t).map_err(Clone::clone);
                let exits = result.as_ref().ok().map(|(_, e)| e.join(","));
                table.rows.push(times_row(&name, figures.clone(), exits));
                let mode = match server {
                    Server::Sockserve(mode) => Some(*mode),
                    _ => None,
                };
                let goal = ("SIGTERM to exit", Duration::from_millis(10));
                account(out, SIGTERM, &name, mode, goal, figures);
            }
            out.tables.push(table);
        }
    }
}

/// For a row of sockserve's (`mode`), its target (`goal`: what, the limit of its median) and
/// its failure, which fails the bench; a peer's failure is a note.
fn account(
    out: &mut Output,
    table: &str,
    name: &str,
    mode: Option<&str>,
    (what, limit): (&str, Duration),
    figures: Result<&Vec<Duration>, String>,
) {
    let failure = figures
        .as_ref()
        .err()
        .map(|e| format!("{table} / {name}: {e}"));
    match mode {
        Some(mode) => {
            out.targets.push(under(
                format!("{mode}: {what}, median < {}", millis_fine(limit)),
                figures.ok(),
                limit,
            ));
            out.failures.extend(failure);
        }
        None => out.notes.extend(failure),
    }
}

/// The median of `times`.
fn median_of(times: &[Duration]) -> Option<Duration> {
    median(times.iter().map(Duration::as_secs_f64).collect()).map(Duration::from_secs_f64)
}

/// A row of times: median, max, spread, trials (and the exit statuses, for SIGTERM).
fn times_row(name: &str, times: Result<&Vec<Duration>, String>, exits: Option<String>) -> Row {
    let times = match times {
        Ok(times) if !times.is_empty() => times,
        Ok(_) => return Row::failed(name, "no trial"),
        Err(e) => return Row::failed(name, e),
    };
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    let med = median_of(times).unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    let spread = spread(&secs);
    let mut cells = vec![
        millis_fine(med),
        millis_fine(max),
        format!("{:.0}%", spread * 100.0),
        times.len().to_string(),
    ];
    if let Some(exits) = &exits {
        cells.push(exits.clone());
    }
    Row::figures(
        name,
        cells,
        json!({
            "median_ms": med.as_secs_f64() * 1e3,
            "max_ms": max.as_secs_f64() * 1e3,
            "spread": spread,
            "trials": times.len(),
            "exit": exits,
        }),
    )
}

/// Milliseconds, with three decimals under 1 ms.
fn millis_fine(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else {
        millis(d)
    }
}

/// A target "median under `limit`".
fn under(what: String, times: Option<&Vec<Duration>>, limit: Duration) -> Target {
    let med = times.and_then(|t| median_of(t));
    Target {
        what,
        figure: med.map_or("-".to_owned(), millis_fine),
        pass: med.map(|m| m < limit),
        bars: Vec::new(),
    }
}

/// Runs `shutdown-latency` and CPython's program: a result per row of [`IN_PROCESS_ROWS`].
fn in_process(bins: &Bins, trials: usize) -> Vec<Result<Vec<f64>, String>> {
    let ours = Cmd::new(bins.peers.join("shutdown-latency"))
        .args(["--trials", &trials.to_string()])
        .output_within(PROGRAM_LIMIT)
        .map_err(|e| e.to_string())
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() {
                Ok(text)
            } else {
                Err(format!(
                    "shutdown-latency failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        });
    let mut rows: Vec<Result<Vec<f64>, String>> = IN_PROCESS_ROWS[..3]
        .iter()
        .map(|mode| {
            let text = ours.as_ref().map_err(Clone::clone)?;
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(mode)?.strip_prefix(' '))
                .ok_or_else(|| format!("shutdown-latency printed no `{mode}` line: {text:?}"))?;
            parse_micros(line)
        })
        .collect();
    let cpython = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(CPYTHON_SHUTDOWN, "CPYTHON_SHUTDOWN")
        .arg(trials.to_string())
        .output_within(PROGRAM_LIMIT)
        .map_err(|e| e.to_string())
        .and_then(|output| {
            if output.status.success() {
                parse_micros(String::from_utf8_lossy(&output.stdout).trim())
            } else {
                Err(format!(
                    "python3 failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        });
    rows.push(cpython);
    rows
}

/// Space-separated microseconds, at least one.
fn parse_micros(text: &str) -> Result<Vec<f64>, String> {
    let figures: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().map_err(|e| format!("`{f}`: {e}")))
        .collect::<Result<_, _>>()?;
    if figures.is_empty() || figures.iter().any(|f| !f.is_finite() || *f < 0.0) {
        return Err(format!("expected microseconds, got {text:?}"));
    }
    Ok(figures)
}

/// `trials` times: `server` started over TCP, SIGTERM, the time until it exited; the exit
/// statuses seen.
fn sigterm_times(bins: &Bins, dir: &Path, server: Server, trials: usize) -> Result<Exits> {
    let mut times = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..trials {
        let (mut proc, _) = start(bins, dir, server, Family::Tcp)?;
        std::thread::sleep(SETTLE);
        let signalled = Instant::now();
        proc.guard.signal("TERM")?;
        let status = proc.guard.wait_within(EXIT_LIMIT)?;
        times.push(signalled.elapsed());
        let exit = status
            .code()
            .map_or_else(|| status.to_string(), |c| c.to_string());
        if !exits.contains(&exit) {
            exits.push(exit);
        }
    }
    Ok((times, exits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_parse_and_bad_output_is_an_error_quoting_it() {
        assert_eq!(
            parse_micros("12.5 3 400.25").unwrap(),
            vec![12.5, 3.0, 400.25]
        );
        assert!(parse_micros("").unwrap_err().contains("expected"));
        assert!(parse_micros("1 x").unwrap_err().contains("`x`"));
        assert!(parse_micros("-1").is_err());
    }

    #[test]
    fn targets_judge_the_median() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_micros(*m))
                .collect::<Vec<_>>()
        };
        let fast = ms(&[200, 300, 5_000]);
        let t = under("x".into(), Some(&fast), Duration::from_millis(1));
        assert_eq!((t.pass, t.figure.as_str()), (Some(true), "0.300 ms"));
        let slow = ms(&[900, 1_200, 1_500]);
        assert_eq!(
            under("x".into(), Some(&slow), Duration::from_millis(1)).pass,
            Some(false)
        );
        assert_eq!(under("x".into(), None, Duration::from_millis(1)).pass, None);
    }

    /// CPython's in-process program runs and prints a figure per trial.
    #[test]
    fn cpython_shutdown_program_prints_its_trials() {
        let output = Cmd::new("python3")
            .arg("-c")
            .arg(CPYTHON_SHUTDOWN)
            .arg("2")
            .output_within(PROGRAM_LIMIT)
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let figures = parse_micros(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
        assert_eq!(figures.len(), 2, "{figures:?}");
    }
}
