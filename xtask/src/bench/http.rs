//! The HTTP rows of `cargo xtask bench` (`--only http`): a 1 KiB file under `wrk`, keep-alive
//! with 10 and 100 connections and a new connection per request (`-H "Connection: close"`),
//! served by CPython's `python3 -m http.server` (its `ThreadingHTTPServer`, `--bind 127.0.0.1`,
//! port 0: one of its own; its defaults kept, so HTTP/1.0, a connection closed after each
//! answer; its access log, a line per request on stderr, goes to a file in the bench's temp
//! directory), tiny_http (`tiny-http-files`, from the peers' package) as shipped and with
//! `TCP_NODELAY` (as shipped it stalls each keep-alive request on Nagle's algorithm, about
//! 40 ms; the targets are against the faster one) and this project's `http_server` example in
//! `--mode threading` and `--mode sync`.
//!
//! Each cell is one bounded `wrk` run (`--duration`, `--timeout 5s`, killed past the duration
//! and [`WRK_SLACK`]; a window under a second, `--quick`'s, is a one-second run interrupted with
//! SIGINT at its end, on which wrk reports what it measured); its output is parsed ([`parse_wrk`]): requests/sec, latency percentiles,
//! and the non-2xx (or 3xx) answers and socket errors, any of which fails the cell (a failed
//! cell of sockserve's fails the bench; a peer's is a finding, noted). Then the targets of the
//! http_server issue: at least 10 times Python's throughput and at least 1.0 times tiny_http's
//! (with `TCP_NODELAY`), medians of the per-run ratios, each PASS or MISS per mode and row.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::report::{Output, Row, Table, Target, first_line, times};
use super::{Bins, Options, STARTUP_LIMIT, loadgen, median, micros, spread, stop};
use crate::Result;
use crate::cmd::{Cmd, RunningServer, start_announced};
use crate::integration::example_bin;

/// The file every server serves, its size.
const FILE_SIZE: usize = 1024;
/// Its name under the served directory.
const FILE_NAME: &str = "1k.txt";
/// How long `wrk` may take beyond its `-d` before it is killed.
const WRK_SLACK: Duration = Duration::from_secs(15);

/// One HTTP server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `http_server --mode MODE`.
    Sockserve(&'static str),
    /// `tiny-http-files`, `--nodelay true` or not.
    TinyHttp { nodelay: bool },
    /// `python3 -m http.server`.
    Python,
}

impl Server {
    const ALL: [Server; 5] = [
        Server::Sockserve("threading"),
        Server::Sockserve("sync"),
        Server::TinyHttp { nodelay: false },
        Server::TinyHttp { nodelay: true },
        Server::Python,
    ];
    /// The tiny_http the targets are against: the faster, without the Nagle stall.
    const TINY: Server = Server::TinyHttp { nodelay: true };

    fn name(self) -> String {
        match self {
            Server::Sockserve(mode) => format!("sockserve http_server {mode}"),
            Server::TinyHttp { nodelay: false } => "tiny_http".to_owned(),
            Server::TinyHttp { nodelay: true } => "tiny_http, TCP_NODELAY".to_owned(),
            Server::Python => "python3 -m http.server".to_owned(),
        }
    }

    fn position(self) -> usize {
        Server::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }

    /// Starts the server on a port of its own, serving `root`; Python's stderr goes to a file
    /// in `dir`.
    fn start(self, bins: &Bins, dir: &Path, root: &Path) -> Result<RunningServer> {
        let addr = "127.0.0.1:0";
        match self {
            Server::Sockserve(mode) => {
                let cmd = Cmd::new(example_bin(&bins.examples, "http_server"))
                    .arg("--directory")
                    .arg(root)
                    .args(["--addr", addr, "--mode", mode]);
                RunningServer::start(&cmd, STARTUP_LIMIT)
            }
            Server::TinyHttp { nodelay } => {
                let cmd = Cmd::new(bins.peers.join("tiny-http-files"))
                    .arg("--directory")
                    .arg(root)
                    .args(["--addr", addr, "--nodelay", &nodelay.to_string()]);
                RunningServer::start(&cmd, STARTUP_LIMIT)
            }
            Server::Python => {
                let cmd = Cmd::new("python3")
                    .args([
                        "-u",
                        "-m",
                        "http.server",
                        "--bind",
                        "127.0.0.1",
                        "--directory",
                    ])
                    .arg(root)
                    .arg("0")
                    .stderr_to_file(&dir.join("python-http-server.stderr.log"));
                let what = "`Serving HTTP on HOST port PORT`";
                let (guard, line) = start_announced(&cmd, what, STARTUP_LIMIT)?;
                let port = python_port(&line)
                    .ok_or_else(|| format!("python3 -m http.server: expected {what}: {line:?}"))?;
                Ok(RunningServer {
                    guard,
                    addr: format!("127.0.0.1:{port}"),
                })
            }
        }
    }
}

/// The port in http.server's first line, `Serving HTTP on 127.0.0.1 port 8000 (...) ...`.
fn python_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("Serving HTTP on ")?;
    let (_, rest) = rest.split_once(" port ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// One workload: `wrk` with this many connections, keep-alive or a connection per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    connections: usize,
    close: bool,
}

const SPECS: [Spec; 3] = [
    Spec {
        connections: 10,
        close: false,
    },
    Spec {
        connections: 100,
        close: false,
    },
    Spec {
        connections: 10,
        close: true,
    },
];

impl Spec {
    fn label(self) -> String {
        let how = if self.close {
            "Connection: close (a connection per request)"
        } else {
            "keep-alive"
        };
        format!(
            "HTTP GET of a {FILE_SIZE} B file under wrk, {how}, {} connections",
            self.connections
        )
    }
}

/// What `wrk` printed, parsed.
#[derive(Debug, Clone, PartialEq)]
struct Wrk {
    requests: u64,
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// `Non-2xx or 3xx responses: N`, 0 without the line.
    non_2xx: u64,
    /// `Socket errors: connect A, read B, write C, timeout D`, summed; 0 without the line.
    socket_errors: u64,
    /// The line itself, for the report.
    socket_line: Option<String>,
}

impl Wrk {
    /// Why the run failed, if it did: any non-2xx answer or socket error.
    fn errors(&self) -> Option<String> {
        let mut errors = Vec::new();
        if self.non_2xx > 0 {
            errors.push(format!("{} non-2xx/3xx", self.non_2xx));
        }
        if self.socket_errors > 0 {
            errors.push(self.socket_line.clone().unwrap_or_default());
        }
        (!errors.is_empty()).then(|| errors.join(", "))
    }
}

/// A duration as `wrk` prints it: `123.45us`, `1.20ms`, `2.00s`, `1.00m`.
fn wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Parses the output of `wrk --latency`; an error names what is missing.
fn parse_wrk(out: &str) -> Result<Wrk> {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let missing = |what: &str| format!("no {what} in wrk's output:\n{out}");
    let percentile = |p: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| wrk_duration(v.trim()))
            .ok_or_else(|| missing(&format!("{p} latency")))
    };
    let max = lines
        .iter()
        .find_map(|l| l.strip_prefix("Latency "))
        .and_then(|v| wrk_duration(v.split_whitespace().nth(2)?))
        .ok_or_else(|| missing("Latency max"))?;
    let requests = lines
        .iter()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| missing("request count"))?;
    let rate = lines
        .iter()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| missing("Requests/sec"))?;
    let non_2xx = match lines
        .iter()
        .find_map(|l| l.strip_prefix("Non-2xx or 3xx responses:"))
    {
        Some(n) => n.trim().parse().map_err(|_| missing("non-2xx count"))?,
        None => 0,
    };
    let socket_line = lines.iter().find(|l| l.starts_with("Socket errors:"));
    let socket_errors = match socket_line {
        Some(line) => line
            .trim_start_matches("Socket errors:")
            .split(',')
            .map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<Option<u64>>()
            .ok_or_else(|| missing("socket error counts"))?,
        None => 0,
    };
    Ok(Wrk {
        requests,
        rate,
        p50: percentile("50%")?,
        p99: percentile("99%")?,
        max,
        non_2xx,
        socket_errors,
        socket_line: socket_line.map(|l| (*l).to_owned()),
    })
}

/// One run of one server under one workload.
#[derive(Debug)]
enum Cell {
    /// wrk ran (with or without errors) and the server outlived it; its CPU time per request.
    Done(Wrk, Option<Duration>),
    Failed(String),
}

impl Cell {
    fn wrk(&self) -> Option<&Wrk> {
        match self {
            Cell::Done(wrk, _) => Some(wrk),
            Cell::Failed(_) => None,
        }
    }

    fn failure(&self) -> Option<String> {
        match self {
            Cell::Done(wrk, _) => wrk.errors(),
            Cell::Failed(e) => Some(e.clone()),
        }
    }
}

/// The HTTP section's cells across the runs: `cells[spec][server][run]`.
#[derive(Debug, Default)]
pub(super) struct Section {
    cells: Vec<Vec<Vec<Cell>>>,
}

/// What every label of the section contains (`--only http` selects it).
#[cfg(test)]
const LABEL: &str = "HTTP GET";

impl super::Section for Section {
    fn labels(&self, _opts: &Options) -> Vec<String> {
        SPECS.iter().map(|spec| spec.label()).collect()
    }

    /// One run: each server started on a fresh port, the selected workloads, stopped.
    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()> {
        if self.cells.is_empty() {
            self.cells = SPECS
                .iter()
                .map(|_| Server::ALL.iter().map(|_| Vec::new()).collect())
                .collect();
        }
        let root = dir.join("http-root");
        std::fs::create_dir_all(&root)?;
        let body: Vec<u8> = (0..FILE_SIZE).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(root.join(FILE_NAME), body)?;
        for (s, server) in Server::ALL.into_iter().enumerate() {
            let mut proc = match server.start(bins, dir, &root) {
                Ok(proc) => proc,
                Err(e) => {
                    for (i, _) in selected_specs(opts) {
                        self.cells[i][s].push(Cell::Failed(e.to_string()));
                    }
                    continue;
                }
            };
            for (i, spec) in selected_specs(opts) {
                super::progress(&format!("{} against {}", spec.label(), server.name()));
                let cell = measure(&mut proc, spec, opts.duration)
                    .unwrap_or_else(|e| Cell::Failed(e.to_string()));
                self.cells[i][s].push(cell);
            }
            stop(proc);
        }
        Ok(())
    }

    /// The tables and the targets; the failed cells of sockserve's servers fail the bench (a
    /// peer's failure is a finding about the peer, a note).
    fn report(&self, opts: &Options, out: &mut Output) {
        for (i, spec) in selected_specs(opts) {
            let row = &self.cells[i];
            out.tables.push(table(spec.label(), row));
            for (server, runs) in Server::ALL.iter().zip(row) {
                let failed: Vec<String> = runs.iter().filter_map(Cell::failure).collect();
                if matches!(server, Server::Sockserve(_)) {
                    out.failures.extend(
                        failed
                            .iter()
                            .map(|f| format!("{} / {}: {f}", spec.label(), server.name())),
                    );
                } else if let Some(first) = failed.first() {
                    out.notes.push(format!(
                        "{} / {} failed {} of {} run(s) (a finding about the peer): {first}",
                        spec.label(),
                        server.name(),
                        failed.len(),
                        runs.len()
                    ));
                }
            }
        }
        out.targets.extend(targets(opts, &self.cells));
    }
}

fn selected_specs(opts: &Options) -> impl Iterator<Item = (usize, Spec)> + '_ {
    SPECS
        .into_iter()
        .enumerate()
        .filter(|(_, spec)| opts.selects(&spec.label()))
}

/// Runs `wrk` for `spec` against `proc` for `duration`, with the server's CPU time watched.
fn measure(proc: &mut RunningServer, spec: Spec, duration: Duration) -> Result<Cell> {
    let pid = proc.guard.child_mut().id();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(spec.connections);
    // wrk's `-d` counts whole seconds: a shorter window (`--quick`'s) is a second's run
    // interrupted (SIGINT) once the window has passed, on which wrk reports what it measured.
    let secs = duration.as_secs().max(1);
    let interrupt = (duration < Duration::from_secs(1)).then_some(duration);
    let mut cmd = Cmd::new("wrk").args([
        format!("-t{threads}"),
        format!("-c{}", spec.connections),
        format!("-d{secs}s"),
        "--timeout".to_owned(),
        "5s".to_owned(),
        "--latency".to_owned(),
    ]);
    if spec.close {
        cmd = cmd.args(["-H", "Connection: close"]);
    }
    let cmd = cmd.arg(format!("http://{}/{FILE_NAME}", proc.addr));
    let cpu_before = loadgen::cpu_time(pid)?;
    let output = cmd
        .output_interrupted(interrupt, Duration::from_secs(secs) + WRK_SLACK)
        .map_err(|e| format!("{e} (is wrk installed? `apt-get install -y wrk`)"))?;
    let cpu = loadgen::cpu_time(pid)?.saturating_sub(cpu_before);
    let out = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}):\n{out}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let wrk = parse_wrk(&out)?;
    proc.check_alive()?;
    let per_request = (wrk.requests > 0).then(|| cpu / wrk.requests.try_into().unwrap_or(u32::MAX));
    Ok(Cell::Done(wrk, per_request))
}

/// The median, over the runs, of `of`'s requests/sec over `base`'s in the same run.
fn ratio(of: &[Cell], base: &[Cell]) -> Option<f64> {
    median(
        of.iter()
            .zip(base)
            .filter_map(|(a, b)| Some(a.wrk()?.rate / b.wrk()?.rate.max(f64::EPSILON)))
            .collect(),
    )
}

/// A row per server: its median run (by requests/sec), the spread of the runs, latency, CPU
/// time per request, the ratios to Python and tiny_http, and any errors.
fn table(label: String, row: &[Vec<Cell>]) -> Table {
    let mut table = Table::new(
        label,
        &[
            "req/s",
            "spread",
            "p50",
            "p99",
            "max",
            "CPU/req",
            "vs Python",
            "vs tiny_http nodelay",
            "errors",
        ],
    );
    for (server, runs) in Server::ALL.iter().zip(row) {
        let mut done: Vec<(&Wrk, Option<Duration>)> = runs
            .iter()
            .filter_map(|cell| match cell {
                Cell::Done(wrk, cpu) => Some((wrk, *cpu)),
                Cell::Failed(_) => None,
            })
            .collect();
        done.sort_by(|a, b| a.0.rate.total_cmp(&b.0.rate));
        let failure = runs.iter().find_map(Cell::failure);
        let Some((wrk, _)) = done.get(done.len() / 2) else {
            let failure = failure.unwrap_or_else(|| "no run".to_owned());
            table.rows.push(match server {
                Server::Sockserve(_) => Row::failed(server.name(), failure),
                _ => Row::finding(server.name(), failure),
            });
            continue;
        };
        let rates: Vec<f64> = done.iter().map(|(w, _)| w.rate).collect();
        let spread = spread(&rates);
        let cpu = median(
            done.iter()
                .filter_map(|(_, cpu)| Some(cpu.as_ref()?.as_secs_f64() * 1e6))
                .collect(),
        );
        let vs_python = ratio(runs, &row[Server::Python.position()]);
        let vs_tiny = ratio(runs, &row[Server::TINY.position()]);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let errors = runs.iter().filter(|c| c.failure().is_some()).count();
        table.rows.push(Row::figures(
            server.name(),
            vec![
                format!("{:.0}", wrk.rate),
                format!("{:.0}%", spread * 100.0),
                micros(wrk.p50),
                micros(wrk.p99),
                micros(wrk.max),
                cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.1}us")),
                times(vs_python),
                times(vs_tiny),
                failure.map_or_else(|| "none".to_owned(), |f| first_line(&f)),
            ],
            json!({
                "req_s": wrk.rate,
                "spread": spread,
                "p50_us": us(wrk.p50),
                "p99_us": us(wrk.p99),
                "max_us": us(wrk.max),
                "cpu_per_request_us": cpu,
                "vs_python": vs_python,
                "vs_tiny_http_nodelay": vs_tiny,
                "errors": errors,
                "runs": runs.len(),
            }),
        ));
    }
    table
}

/// A target per sockserve mode and workload: its ratios to Python (at least 10x) and to
/// tiny_http with `TCP_NODELAY` (at least 1.0x), PASS when both are met and none of its runs
/// failed.
fn targets(opts: &Options, cells: &[Vec<Vec<Cell>>]) -> Vec<Target> {
    let mut targets = Vec::new();
    for (i, spec) in selected_specs(opts) {
        let row = &cells[i];
        for mode in ["threading", "sync"] {
            let ours = &row[Server::Sockserve(mode).position()];
            let python = ratio(ours, &row[Server::Python.position()]);
            let tiny = ratio(ours, &row[Server::TINY.position()]);
            let plain = ratio(ours, &row[Server::TinyHttp { nodelay: false }.position()]);
            let clean = ours.iter().all(|cell| cell.failure().is_none());
            let how = if spec.close { "close" } else { "keep-alive" };
            let what = format!("http_server {mode}, {how}, {} conn", spec.connections);
            let vs_python = Target::at_least(format!("{what}: >= 10x Python"), python, 10.0, "");
            let vs_tiny = Target::at_least(format!("{what}: >= 1.0x tiny_http"), tiny, 1.0, "");
            let pass = match (vs_python.pass, vs_tiny.pass) {
                (Some(a), Some(b)) => Some(a && b && clean),
                _ => None,
            };
            targets.push(Target {
                what: format!("{what}: >= 10x Python, >= 1.0x tiny_http"),
                figure: format!(
                    "{} Python, {} tiny_http nodelay ({} plain){}",
                    times(python),
                    times(tiny),
                    times(plain),
                    if clean { "" } else { ", errors" }
                ),
                pass,
                bars: vs_python.bars.into_iter().chain(vs_tiny.bars).collect(),
            });
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 2s test @ http://127.0.0.1:8000/1k.txt
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   143.21us   58.10us   3.05ms   91.20%
    Req/Sec    33.10k     1.20k   36.00k    70.00%
  Latency Distribution
     50%  131.00us
     75%  160.00us
     90%  200.00us
     99%    1.20ms
  131720 requests in 2.00s, 160.01MB read
Requests/sec:  65860.00
Transfer/sec:     80.01MB
";

    #[test]
    fn a_clean_run_parses_with_its_percentiles_and_max() {
        let wrk = parse_wrk(CLEAN).unwrap();
        assert_eq!(wrk.requests, 131_720);
        assert!((wrk.rate - 65_860.0).abs() < 1e-6);
        assert_eq!(wrk.p50, Duration::from_micros(131));
        assert_eq!(wrk.p99, Duration::from_micros(1_200));
        assert_eq!(wrk.max, Duration::from_micros(3_050));
        assert_eq!(wrk.errors(), None);
    }

    #[test]
    fn socket_errors_and_non_2xx_fail_the_run() {
        let out = CLEAN.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 3, write 0, timeout 2\n  Non-2xx or 3xx \
             responses: 7\nRequests/sec:",
        );
        let wrk = parse_wrk(&out).unwrap();
        assert_eq!((wrk.non_2xx, wrk.socket_errors), (7, 5));
        let errors = wrk.errors().unwrap();
        assert!(
            errors.contains("7 non-2xx") && errors.contains("read 3"),
            "{errors}"
        );
        let only_socket = CLEAN.replace(
            "Requests/sec:",
            "Socket errors: connect 1, read 0, write 0, timeout 0\nRequests/sec:",
        );
        assert!(parse_wrk(&only_socket).unwrap().errors().is_some());
    }

    #[test]
    fn missing_or_garbled_fields_are_errors_naming_them() {
        let no_rate = CLEAN.replace("Requests/sec:  65860.00", "");
        let e = parse_wrk(&no_rate).unwrap_err().to_string();
        assert!(e.contains("Requests/sec"), "{e}");
        let no_latency = CLEAN.replace("     99%    1.20ms\n", "");
        assert!(
            parse_wrk(&no_latency)
                .unwrap_err()
                .to_string()
                .contains("99%")
        );
        let bad_socket = CLEAN.replace(
            "Requests/sec:",
            "Socket errors: connect x, read 0\nRequests/sec:",
        );
        assert!(parse_wrk(&bad_socket).is_err());
        assert!(parse_wrk("").is_err());
    }

    #[test]
    fn durations_in_every_unit_wrk_prints() {
        assert_eq!(wrk_duration("250.00us"), Some(Duration::from_micros(250)));
        assert_eq!(wrk_duration("1.50ms"), Some(Duration::from_micros(1_500)));
        assert_eq!(wrk_duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(wrk_duration("1.00m"), Some(Duration::from_secs(60)));
        assert_eq!(wrk_duration("3.00parsecs"), None);
        assert_eq!(wrk_duration("us"), None);
    }

    #[test]
    fn python_announces_its_port() {
        let line = "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ...";
        assert_eq!(python_port(line), Some(41_234));
        assert_eq!(python_port("listening on 127.0.0.1:1"), None);
    }

    #[test]
    fn only_http_selects_every_http_row_and_targets_name_both_modes() {
        let only = |s: &str| Options {
            only: vec![s.to_owned()],
            ..Options::default()
        };
        use super::super::Section as _;
        let section = Section::default();
        assert!(section.selected(&only("http")) && section.selected(&Options::default()));
        assert_eq!(selected_specs(&only("http")).count(), 3);
        assert_eq!(selected_specs(&only("Connection: close")).count(), 1);
        assert!(!section.selected(&only("udp")));
        assert!(SPECS.iter().all(|s| s.label().contains(LABEL)));
        let cells: Vec<Vec<Vec<Cell>>> = SPECS
            .iter()
            .map(|_| Server::ALL.iter().map(|_| Vec::new()).collect())
            .collect();
        let targets = targets(&only("http"), &cells);
        assert_eq!(targets.len(), 3 * 2);
        assert!(
            targets.iter().all(|t| t.pass.is_none()),
            "no figure: {targets:?}"
        );
    }
}
