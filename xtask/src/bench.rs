//! `cargo xtask bench`: echo servers under one load generator, side by side in one run, as
//! ratios.
//!
//! The servers ([`Server`]): this project's `echo_server` in `--mode sync`, `threading` and
//! `forking`; a bare `std` thread-per-connection server, the floor of the blocking model
//! ([`std_server`], run as `xtask std-echo-server`); and CPython's `socketserver`
//! (`ThreadingTCPServer`, `ThreadingUDPServer`, `ThreadingUnixStreamServer`) with the same echo
//! handler, a loop of `recv`/`sendall` on `self.request`. The workloads ([`workloads`]): 64-byte
//! ping-pong over TCP with 1, `--connections` (10) and 100 connections, a new TCP connection per
//! request, UDP ping-pong from several sockets, Unix stream ping-pong. Every echoed byte is
//! checked; each cell reports throughput and latency percentiles, and the ratio to CPython and
//! to the `std` floor. Then the shutdown latency: SIGTERM to exit, no client connected.
//!
//! Everything runs in release: `cargo xtask bench` (a debug xtask) builds the examples and
//! xtask in release and re-runs itself from there, so the load generator and the `std` floor
//! are optimized like the servers they measure. Loopback only; each server is started on port
//! 0 (or a path in a temp directory), serves its family's workloads, and is stopped.

mod loadgen;
pub(crate) mod std_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog};
use crate::integration::{Family, Reply, example_bin, examples_dir, temp_dir};
use crate::metadata::Workspace;
use loadgen::{Endpoint, Report, Workload};

/// The command-line options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long each workload runs against each server.
    pub(crate) duration: Duration,
    /// Connections (UDP sockets, clients) of the several-connection workloads; the largest
    /// workload has [`MANY`] whatever this is.
    pub(crate) connections: usize,
    /// Only the workloads whose label contains this (any case); `shutdown` selects the
    /// shutdown-latency table. `None`: everything.
    pub(crate) only: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            duration: Duration::from_secs(3),
            connections: 10,
            only: None,
        }
    }
}

impl Options {
    /// Whether `--only` selects the section labelled `label`.
    fn selects(&self, label: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| label.to_lowercase().contains(&only.to_lowercase()))
    }
}

/// The connections of the largest persistent workload.
const MANY: usize = 100;
/// How long a server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(8);
/// Shutdowns measured per server.
const SHUTDOWN_TRIALS: usize = 5;
/// The shutdown table's heading, and what `--only` matches it by.
const SHUTDOWN_LABEL: &str = "shutdown latency";

/// One server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `echo_server --mode MODE`.
    Sockserve(&'static str),
    /// `xtask std-echo-server`.
    Std,
    /// CPython's `socketserver.Threading*Server`.
    CPython,
}

impl Server {
    const ALL: [Server; 5] = [
        Server::Sockserve("sync"),
        Server::Sockserve("threading"),
        Server::Sockserve("forking"),
        Server::Std,
        Server::CPython,
    ];

    fn name(self) -> String {
        match self {
            Server::Sockserve(mode) => format!("sockserve {mode}"),
            Server::Std => "std thread/conn".to_owned(),
            Server::CPython => "CPython Threading*Server".to_owned(),
        }
    }

    /// Serves one connection at a time: a second persistent connection would wait for the
    /// first to close, so it only runs the one-connection and connection-per-request workloads.
    fn one_at_a_time(self) -> bool {
        self == Server::Sockserve("sync")
    }

    fn cmd(self, bins: &Bins, family: Family, addr: &str) -> Cmd {
        match self {
            Server::Sockserve(mode) => Cmd::new(example_bin(&bins.examples, "echo_server")).args([
                "--family",
                family.arg(),
                "--mode",
                mode,
                "--addr",
                addr,
            ]),
            Server::Std => Cmd::new(&bins.xtask).args([
                "std-echo-server",
                "--family",
                family.arg(),
                "--addr",
                addr,
            ]),
            Server::CPython => cpython_echo_server(family, addr),
        }
    }
}

/// CPython's echo server: `socketserver`'s threading server of the family (`argv[1]`: `tcp`,
/// `udp`, `unix`) on `argv[2]` (`HOST:PORT` or a path), with the echo handler a Python user
/// writes. SIGTERM and SIGINT call `server.shutdown()` from a thread (it must not run on the
/// thread of `serve_forever`), which returns within `poll_interval` (0.5 s). Python's defaults
/// are kept (backlog 5, Nagle on) because they are what a Python user gets.
pub(crate) const CPYTHON_ECHO_SERVER: &str = r#"
import os, signal, socketserver, sys, threading
family, addr = sys.argv[1], sys.argv[2]

class StreamEcho(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            self.request.sendall(data)

class DatagramEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)

if family == "unix":
    base, handler, address = socketserver.ThreadingUnixStreamServer, StreamEcho, addr
else:
    host, _, port = addr.rpartition(":")
    address = (host.strip("[]"), int(port))
    base, handler = {
        "tcp": (socketserver.ThreadingTCPServer, StreamEcho),
        "udp": (socketserver.ThreadingUDPServer, DatagramEcho),
    }[family]

class Server(base):
    allow_reuse_address = True
    daemon_threads = True

server = Server(address, handler)

def stop(signum, frame):
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
if family == "unix":
    print(f"listening on {server.server_address}", flush=True)
else:
    print(f"listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
server.serve_forever()
server.server_close()
if family == "unix":
    os.unlink(addr)
"#;

/// The command that starts [`CPYTHON_ECHO_SERVER`] for `family` on `addr`.
pub(crate) fn cpython_echo_server(family: Family, addr: &str) -> Cmd {
    Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(CPYTHON_ECHO_SERVER, "CPYTHON_ECHO_SERVER")
        .args([family.arg(), addr])
}

/// Where the release binaries are.
#[derive(Debug)]
struct Bins {
    examples: PathBuf,
    xtask: PathBuf,
}

/// One workload: a family and what the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    family: Family,
    load: Workload,
}

impl Spec {
    fn label(self) -> String {
        match (self.family, self.load) {
            (Family::Udp, Workload::PingPong { connections }) => {
                format!(
                    "UDP ping-pong {} B, {connections} sockets",
                    loadgen::PAYLOAD
                )
            }
            (Family::Unix, Workload::PingPong { connections }) => format!(
                "Unix stream ping-pong {} B, {connections} connections",
                loadgen::PAYLOAD
            ),
            (_, Workload::PingPong { connections }) => format!(
                "TCP ping-pong {} B, {connections} connection(s)",
                loadgen::PAYLOAD
            ),
            (_, Workload::ConnectPerRequest { connections }) => format!(
                "TCP new connection per request ({} B), {connections} clients",
                loadgen::PAYLOAD
            ),
        }
    }

    /// Why `server` does not run this workload, if it does not.
    fn skip_reason(self, server: Server) -> Option<&'static str> {
        let several_connections = matches!(self.load, Workload::PingPong { connections } if connections > 1)
            && self.family != Family::Udp;
        (server.one_at_a_time() && several_connections)
            .then_some("n/a: serves one connection at a time")
    }
}

/// The workloads, grouped by family (each server is started once per family).
fn workloads(opts: &Options) -> Vec<Spec> {
    let n = opts.connections;
    let tcp = |load| Spec {
        family: Family::Tcp,
        load,
    };
    let mut specs = vec![tcp(Workload::PingPong { connections: 1 })];
    for connections in [n, MANY] {
        if connections > 1 && !specs.contains(&tcp(Workload::PingPong { connections })) {
            specs.push(tcp(Workload::PingPong { connections }));
        }
    }
    specs.push(tcp(Workload::ConnectPerRequest { connections: n }));
    specs.push(Spec {
        family: Family::Udp,
        load: Workload::PingPong { connections: n },
    });
    specs.push(Spec {
        family: Family::Unix,
        load: Workload::PingPong { connections: n },
    });
    specs
}

/// What one server did under one workload.
#[derive(Debug)]
enum Cell {
    Done(Report),
    /// Not run: the reason.
    Skipped(String),
    /// The server or a client failed: the message.
    Failed(String),
}

/// Builds in release and re-runs from there (see the module docs), or, already in release,
/// runs the benchmark.
pub(crate) fn run(opts: &Options) -> Result<()> {
    Cmd::cargo(&[
        "build",
        "--release",
        "-p",
        "sockserve-examples",
        "--examples",
    ])
    .run()?;
    let workspace = Workspace::load()?;
    let release_xtask = workspace
        .target_directory
        .join("release")
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    if cfg!(debug_assertions) {
        Cmd::cargo(&["build", "--release", "-p", "xtask"]).run()?;
        let mut cmd = Cmd::new(&release_xtask)
            .args(["bench", "--duration"])
            .arg(opts.duration.as_secs_f64().to_string())
            .args(["--connections", &opts.connections.to_string()]);
        if let Some(only) = &opts.only {
            cmd = cmd.args(["--only", only.as_str()]);
        }
        return cmd.run();
    }
    let bins = Bins {
        examples: examples_dir(&workspace, "release"),
        xtask: std::env::current_exe().unwrap_or(release_xtask),
    };
    bench(&bins, opts)
}

fn bench(bins: &Bins, opts: &Options) -> Result<()> {
    let started = Instant::now();
    let dir = temp_dir("bench")?;
    let specs: Vec<Spec> = workloads(opts)
        .into_iter()
        .filter(|spec| opts.selects(&spec.label()))
        .collect();
    let shutdown = opts.selects(SHUTDOWN_LABEL);
    if specs.is_empty() && !shutdown {
        let labels: Vec<String> = workloads(opts).iter().map(|s| s.label()).collect();
        return Err(format!(
            "--only {:?} selects nothing; the sections are:\n  {}\n  {SHUTDOWN_LABEL}",
            opts.only.as_deref().unwrap_or_default(),
            labels.join("\n  ")
        )
        .into());
    }
    // cells[workload][server]
    let mut cells: Vec<Vec<Cell>> = specs.iter().map(|_| Vec::new()).collect();
    for family in [Family::Tcp, Family::Udp, Family::Unix] {
        let indices: Vec<usize> = (0..specs.len())
            .filter(|&i| specs[i].family == family)
            .collect();
        for server in Server::ALL {
            let results = run_server(bins, dir.path(), server, family, &indices, &specs, opts);
            for (i, cell) in indices.iter().zip(results) {
                cells[*i].push(cell);
            }
        }
    }
    println!(
        "\nbench: {} s per cell, {} core(s), loopback; every echoed byte checked",
        opts.duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut failures = Vec::new();
    for (spec, row) in specs.iter().zip(&cells) {
        println!("\n{}\n{}", spec.label(), table(row));
        for (server, cell) in Server::ALL.iter().zip(row) {
            if let Cell::Failed(e) = cell {
                failures.push((
                    *server,
                    format!("{} / {}: {e}", spec.label(), server.name()),
                ));
            }
            if let Cell::Done(report) = cell
                && report.resends > 0
            {
                println!(
                    "  note: {}: {} datagram(s) sent again after no answer within 1 s",
                    server.name(),
                    report.resends
                );
            }
        }
    }
    if shutdown {
        println!(
            "\n{SHUTDOWN_LABEL}: SIGTERM to exit, no client connected, {SHUTDOWN_TRIALS} runs each"
        );
        println!("{}", shutdown_table(bins, dir.path()));
    }
    println!("\nbench: done in {:.0}s", started.elapsed().as_secs_f64());
    // CPython failing under a workload is a finding about CPython, reported above; any other
    // server failing (a wrong byte, a stall, a crash) fails the bench.
    let (cpython, ours): (Vec<_>, Vec<_>) = failures
        .into_iter()
        .partition(|(server, _)| *server == Server::CPython);
    for (_, failure) in &cpython {
        println!("\nnote: CPython failed a cell (a finding, not an error of the bench): {failure}");
    }
    if ours.is_empty() {
        Ok(())
    } else {
        let ours: Vec<String> = ours.into_iter().map(|(_, f)| f).collect();
        Err(format!("{} cell(s) failed:\n  {}", ours.len(), ours.join("\n  ")).into())
    }
}

/// Starts `server` for `family`, runs the workloads `indices` of `specs` it applies to, stops
/// it; one cell per workload.
fn run_server(
    bins: &Bins,
    dir: &Path,
    server: Server,
    family: Family,
    indices: &[usize],
    specs: &[Spec],
    opts: &Options,
) -> Vec<Cell> {
    let skip = |i: usize| specs[i].skip_reason(server);
    if indices.iter().all(|&i| skip(i).is_some()) {
        return indices
            .iter()
            .map(|&i| Cell::Skipped(skip(i).unwrap_or_default().to_owned()))
            .collect();
    }
    let mut server_proc = match start(bins, dir, server, family) {
        Ok(started) => started,
        Err(e) => {
            let e = e.to_string();
            return indices.iter().map(|_| Cell::Failed(e.clone())).collect();
        }
    };
    let mut cells = Vec::new();
    for &i in indices {
        if let Some(reason) = skip(i) {
            cells.push(Cell::Skipped(reason.to_owned()));
            continue;
        }
        eprintln!("--> {} against {}", specs[i].label(), server.name());
        let (proc, endpoint) = &mut server_proc;
        let cell = match loadgen::run(endpoint, specs[i].load, Reply::Echo, opts.duration) {
            Ok(report) => match proc.check_alive() {
                Ok(()) => Cell::Done(report),
                Err(e) => Cell::Failed(e.to_string()),
            },
            Err(e) => Cell::Failed(e.to_string()),
        };
        cells.push(cell);
    }
    let (mut proc, _) = server_proc;
    let _ = proc.guard.signal("TERM");
    let _ = proc.guard.wait_within(SHUTDOWN_LIMIT);
    cells
}

fn start(
    bins: &Bins,
    dir: &Path,
    server: Server,
    family: Family,
) -> Result<(RunningServer, Endpoint)> {
    let addr = if family.is_unix() {
        let slug = server.name().replace([' ', '/', '*'], "-");
        dir.join(format!("{}-{slug}.sock", family.arg()))
            .display()
            .to_string()
    } else {
        "127.0.0.1:0".to_owned()
    };
    let log = StderrLog::default();
    let cmd = server.cmd(bins, family, &addr).stderr_to(&log);
    let proc = match RunningServer::start(&cmd, STARTUP_LIMIT) {
        Ok(proc) => proc,
        Err(e) => {
            let stderr = log.text_within(Duration::from_secs(2));
            return Err(format!("{e}\n{}", stderr.trim_end()).into());
        }
    };
    let endpoint = match family {
        Family::Unix => Endpoint::Unix(proc.addr.clone().into()),
        Family::Udp => Endpoint::Udp(proc.addr.parse()?),
        _ => Endpoint::Tcp(proc.addr.parse()?),
    };
    Ok((proc, endpoint))
}

/// One workload's table: a row per server, its throughput and latency (p50, p99, and the
/// max, which shows a connection left waiting), and the ratio of its
/// throughput to CPython's and to the `std` floor's.
fn table(row: &[Cell]) -> String {
    let rate_of = |server: Server| {
        Server::ALL
            .iter()
            .position(|s| *s == server)
            .and_then(|i| match &row[i] {
                Cell::Done(report) => Some(report.rate()),
                _ => None,
            })
    };
    let (cpython, floor) = (rate_of(Server::CPython), rate_of(Server::Std));
    let ratio = |rate: f64, base: Option<f64>| {
        base.map_or_else(
            || "-".to_owned(),
            |base| format!("{:.2}x", rate / base.max(f64::EPSILON)),
        )
    };
    let mut lines = vec![vec![
        "  server".to_owned(),
        "req/s".to_owned(),
        "p50".to_owned(),
        "p99".to_owned(),
        "max".to_owned(),
        "vs CPython".to_owned(),
        "vs std".to_owned(),
    ]];
    for (server, cell) in Server::ALL.iter().zip(row) {
        let mut line = vec![format!("  {}", server.name())];
        match cell {
            Cell::Done(report) => line.extend([
                format!("{:.0}", report.rate()),
                micros(report.percentile(50.0)),
                micros(report.percentile(99.0)),
                micros(report.percentile(100.0)),
                ratio(report.rate(), cpython),
                ratio(report.rate(), floor),
            ]),
            Cell::Skipped(reason) => line.push(reason.clone()),
            Cell::Failed(e) => {
                line.push(format!("FAILED: {}", e.lines().next().unwrap_or_default()))
            }
        }
        lines.push(line);
    }
    align(&lines)
}

/// Left-aligns the first column and right-aligns the others; a row with fewer cells (a skip
/// or a failure) prints its text after the first column.
fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|col| {
            lines
                .iter()
                .filter(|l| col == 0 || l.len() == columns)
                .map(|l| l[col].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|line| {
            let mut out = format!("{:<w$}", line[0], w = widths[0]);
            for (col, cell) in line.iter().enumerate().skip(1) {
                if line.len() == columns {
                    out.push_str(&format!("  {cell:>w$}", w = widths[col]));
                } else {
                    out.push_str(&format!("  {cell}"));
                }
            }
            out.trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn micros(d: Duration) -> String {
    format!("{:.0}us", d.as_secs_f64() * 1e6)
}

/// For each server with a graceful stop (not the `std` floor, which SIGTERM just kills), the
/// time from SIGTERM to exit over TCP with no client, [`SHUTDOWN_TRIALS`] times.
fn shutdown_table(bins: &Bins, dir: &Path) -> String {
    let mut lines = vec![vec![
        "  server".to_owned(),
        "median".to_owned(),
        "max".to_owned(),
        "exit".to_owned(),
    ]];
    for server in Server::ALL.into_iter().filter(|s| *s != Server::Std) {
        eprintln!("--> shutdown latency of {}", server.name());
        let mut line = vec![format!("  {}", server.name())];
        match shutdown_times(bins, dir, server) {
            Ok((mut times, exits)) => {
                times.sort_unstable();
                line.extend([
                    millis(times[times.len() / 2]),
                    millis(times[times.len() - 1]),
                    exits,
                ]);
            }
            Err(e) => line.push(format!("FAILED: {e}")),
        }
        lines.push(line);
    }
    align(&lines)
}

fn shutdown_times(bins: &Bins, dir: &Path, server: Server) -> Result<(Vec<Duration>, String)> {
    let mut times = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..SHUTDOWN_TRIALS {
        let (mut proc, _) = start(bins, dir, server, Family::Tcp)?;
        // Let it settle into its loop, as a server that has been up a while is.
        std::thread::sleep(Duration::from_millis(100));
        let signalled = Instant::now();
        proc.guard.signal("TERM")?;
        let status = proc.guard.wait_within(SHUTDOWN_LIMIT)?;
        times.push(signalled.elapsed());
        let exit = status
            .code()
            .map_or_else(|| status.to_string(), |c| c.to_string());
        if !exits.contains(&exit) {
            exits.push(exit);
        }
    }
    Ok((times, exits.join(",")))
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_cover_the_plan_and_sync_skips_several_connections() {
        let specs = workloads(&Options::default());
        let labels: Vec<String> = specs.iter().map(|s| s.label()).collect();
        assert_eq!(specs.len(), 6, "{labels:#?}");
        let sync = Server::Sockserve("sync");
        let runs_on_sync: Vec<&String> = specs
            .iter()
            .zip(&labels)
            .filter(|(s, _)| s.skip_reason(sync).is_none())
            .map(|(_, l)| l)
            .collect();
        assert_eq!(runs_on_sync.len(), 3, "{runs_on_sync:#?}");
        assert!(
            specs
                .iter()
                .all(|s| s.skip_reason(Server::CPython).is_none())
        );
        let one = Options {
            connections: 1,
            ..Options::default()
        };
        assert_eq!(workloads(&one).len(), 5);
    }

    #[test]
    fn only_selects_sections_by_label_in_any_case() {
        let only = |s: &str| Options {
            only: Some(s.to_owned()),
            ..Options::default()
        };
        let all = Options::default();
        let count = |o: &Options| {
            workloads(o)
                .iter()
                .filter(|s| o.selects(&s.label()))
                .count()
        };
        assert_eq!(count(&all), 6);
        assert!(all.selects(SHUTDOWN_LABEL));
        assert_eq!(count(&only("udp")), 1);
        assert!(!only("udp").selects(SHUTDOWN_LABEL));
        assert_eq!(count(&only("TCP PING-PONG")), 3);
        assert_eq!(count(&only("new connection")), 1);
        assert_eq!(count(&only("shutdown")), 0);
        assert!(only("shutdown").selects(SHUTDOWN_LABEL));
    }

    /// The CPython servers the bench compares against, under the load generator: proves the
    /// harness end to end (start, announce, load, check, stop on SIGTERM) without the examples.
    #[test]
    fn cpython_echo_servers_under_load() {
        let dir = temp_dir("bench-test").unwrap();
        let bins = Bins {
            examples: PathBuf::from("/nonexistent"),
            xtask: PathBuf::from("/nonexistent"),
        };
        for family in [Family::Tcp, Family::Udp, Family::Unix] {
            let (mut proc, endpoint) = start(&bins, dir.path(), Server::CPython, family).unwrap();
            let report = loadgen::run(
                &endpoint,
                Workload::PingPong { connections: 2 },
                Reply::Echo,
                Duration::from_millis(200),
            )
            .unwrap();
            assert!(report.requests > 0, "{family:?}");
            proc.check_alive().unwrap();
            proc.guard.signal("TERM").unwrap();
            let status = proc.guard.wait_within(SHUTDOWN_LIMIT).unwrap();
            assert!(status.success(), "{family:?}: {status}");
        }
        let text = table(&[
            Cell::Skipped("n/a".into()),
            Cell::Failed("boom\nmore".into()),
            Cell::Skipped("x".into()),
            Cell::Skipped("y".into()),
            Cell::Skipped("z".into()),
        ]);
        assert!(text.contains("FAILED: boom"), "{text}");
        assert_eq!(text.lines().count(), 6, "{text}");
    }
}
