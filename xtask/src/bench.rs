//! `cargo xtask bench`: echo servers under one load generator, side by side in one run, as
//! ratios.
//!
//! The servers ([`Server`]): this project's `echo_server` in `--mode sync`, `threading`,
//! `threading --park --max-threads 16` (idle connections wait in the reactor, not in a thread)
//! and `forking`; a bare `std` thread-per-connection server, the floor of the blocking model
//! ([`std_server`], run as `xtask std-echo-server`); CPython's `socketserver`
//! (`ThreadingTCPServer`, `ThreadingUDPServer`, `ThreadingUnixStreamServer`) with the same echo
//! handler, a loop of `recv`/`sendall` on `self.request`; and tokio (`tokio-echo`, the async
//! peer, with a worker thread per core). The peers that are Rust programs of their own live in
//! `xtask/peers/`, a package outside the workspace, which only this command builds (so the
//! workspace's build, clippy and tests never compile tokio).
//!
//! The sections ([`workloads`], each a table; `--only TEXT` picks them by heading): 64-byte
//! ping-pong over TCP with 1, `--connections` (10) and 100 connections, from a client thread
//! per connection ([`loadgen`]); 64-byte ping-pong with 1,000 and 10,000 connections from an
//! event-driven client, a `mio` poll per core ([`many`]), after a setup in which every
//! connection did one exchange; a new TCP connection per request; UDP ping-pong from several
//! sockets; Unix stream ping-pong. Every echoed byte is checked; each cell reports throughput,
//! latency percentiles, the *starved* connections (no answer in the whole window: a server
//! that serves some connections and leaves the rest waiting shows no error otherwise) and the
//! fewest answers one connection got, and the ratio to CPython, to the `std` floor and to
//! tokio. Then the memory of 10,000 idle connections (each did one exchange, then says
//! nothing): the server's `VmRSS` from `/proc/PID/status` before and while they are open, and
//! KiB per connection. Then the HTTP rows ([`http`], `--only http`): a 1 KiB file under `wrk`
//! (keep-alive at 10 and 100 connections, and `Connection: close`) from the `http_server`
//! example (`sync`, `threading`), tiny_http (as shipped and with `TCP_NODELAY`) and
//! `python3 -m http.server`, with their targets (at least 10x Python's, 1.0x tiny_http's).
//! Then the shutdown latency: SIGTERM to exit, no client connected. Then "prefork echo, 4
//! workers" ([`prefork`], `--only prefork`): `prefork_server` beside the one-process
//! threading server and tokio. Last, the targets of the
//! waiting-connections issue, each PASS or MISS.
//!
//! Every cell runs `--repeat` times (3), each time on a freshly started server; a table shows
//! the median run (by throughput), how far apart the runs were, and the median of the per-run
//! ratios.
//!
//! Everything runs in release: `cargo xtask bench` (a debug xtask) builds the examples, the
//! peers and xtask in release and re-runs itself from there, so the load generator and the
//! `std` floor are optimized like the servers they measure. It raises its own soft
//! `RLIMIT_NOFILE` to the hard limit (10,000 client connections; the servers it starts inherit
//! it). Loopback only; each server is started on port 0 (or a path in a temp directory),
//! serves its family's workloads, and is stopped.

mod http;
mod loadgen;
mod many;
mod prefork;
pub(crate) mod std_server;
mod tls;

use std::net::SocketAddr;
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
    /// Connections (UDP sockets, clients) of the several-connection workloads; the larger
    /// workloads have [`MANY`], and [`CROWDS`], whatever this is.
    pub(crate) connections: usize,
    /// Runs of every cell (each on a freshly started server); the tables show medians.
    pub(crate) repeat: usize,
    /// Only the sections whose heading contains one of these (any case); `shutdown` selects
    /// the shutdown-latency table, `memory` the memory table. Empty: everything.
    pub(crate) only: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            duration: Duration::from_secs(3),
            connections: 10,
            repeat: 3,
            only: Vec::new(),
        }
    }
}

impl Options {
    /// Whether `--only` selects the section labelled `label`.
    fn selects(&self, label: &str) -> bool {
        let label = label.to_lowercase();
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|only| label.contains(&only.to_lowercase()))
    }
}

/// The connections of the largest workload with a client thread per connection.
const MANY: usize = 100;
/// The connections of the event-driven workloads.
const CROWDS: [usize; 2] = [1_000, 10_000];
/// The idle connections of the memory table.
const IDLE: usize = 10_000;
/// `--max-threads` of the `--park` server: far fewer threads than connections.
const PARK_THREADS: usize = 16;
/// How long a server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM (one with 10,000 connections open too).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(8);
/// Shutdowns measured per server.
const SHUTDOWN_TRIALS: usize = 5;
/// The shutdown table's heading, and what `--only` matches it by.
const SHUTDOWN_LABEL: &str = "shutdown latency";

/// The memory table's heading, and what `--only` matches it by.
fn memory_label() -> String {
    format!("memory: {IDLE} idle connections (one exchange each, then silent)")
}

/// One server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `echo_server --mode MODE`.
    Sockserve(&'static str),
    /// `echo_server --mode threading --park --max-threads 16`.
    Park,
    /// `xtask std-echo-server`.
    Std,
    /// CPython's `socketserver.Threading*Server`.
    CPython,
    /// `tokio-echo`, from the peers' package.
    Tokio,
}

impl Server {
    const ALL: [Server; 7] = [
        Server::Sockserve("sync"),
        Server::Sockserve("threading"),
        Server::Park,
        Server::Sockserve("forking"),
        Server::Std,
        Server::CPython,
        Server::Tokio,
    ];

    fn name(self) -> String {
        match self {
            Server::Sockserve(mode) => format!("sockserve {mode}"),
            Server::Park => format!("sockserve threading --park ({PARK_THREADS} thr)"),
            Server::Std => "std thread/conn".to_owned(),
            Server::CPython => "CPython Threading*Server".to_owned(),
            Server::Tokio => "tokio".to_owned(),
        }
    }

    /// Serves one connection at a time: a second persistent connection would wait for the
    /// first to close, so it only runs the one-connection and connection-per-request workloads.
    fn one_at_a_time(self) -> bool {
        self == Server::Sockserve("sync")
    }

    fn cmd(self, bins: &Bins, family: Family, addr: &str) -> Cmd {
        let echo_server = |mode: &str| {
            Cmd::new(example_bin(&bins.examples, "echo_server")).args([
                "--family",
                family.arg(),
                "--mode",
                mode,
                "--addr",
                addr,
            ])
        };
        match self {
            Server::Sockserve(mode) => echo_server(mode),
            Server::Park => echo_server("threading").args([
                "--park".to_owned(),
                "--max-threads".to_owned(),
                PARK_THREADS.to_string(),
            ]),
            Server::Std => Cmd::new(&bins.xtask).args([
                "std-echo-server",
                "--family",
                family.arg(),
                "--addr",
                addr,
            ]),
            Server::CPython => cpython_echo_server(family, addr),
            Server::Tokio => Cmd::new(bins.peers.join("tokio-echo")).args([
                "--family",
                family.arg(),
                "--addr",
                addr,
            ]),
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
    /// The peers' package's release binaries (`tokio-echo`, `tiny-http-files`).
    peers: PathBuf,
}

/// What the clients of one section do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// A client thread per connection ([`loadgen`]).
    Threads(Workload),
    /// TCP ping-pong from the event-driven clients ([`many`]), this many connections.
    Crowd(usize),
}

/// One workload: a family and what the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    family: Family,
    load: Load,
}

impl Spec {
    fn label(self) -> String {
        let payload = loadgen::PAYLOAD;
        match (self.family, self.load) {
            (_, Load::Crowd(connections)) => format!(
                "TCP ping-pong {payload} B, {connections} connections (event-driven clients)"
            ),
            (Family::Udp, Load::Threads(Workload::PingPong { connections })) => {
                format!("UDP ping-pong {payload} B, {connections} sockets")
            }
            (Family::Unix, Load::Threads(Workload::PingPong { connections })) => {
                format!("Unix stream ping-pong {payload} B, {connections} connections")
            }
            (_, Load::Threads(Workload::PingPong { connections })) => {
                format!("TCP ping-pong {payload} B, {connections} connection(s)")
            }
            (_, Load::Threads(Workload::ConnectPerRequest { connections })) => {
                format!("TCP new connection per request ({payload} B), {connections} clients")
            }
        }
    }

    /// Why `server` does not run this workload, if it does not.
    fn skip_reason(self, server: Server) -> Option<&'static str> {
        if let Load::Crowd(connections) = self.load {
            return match server {
                Server::Sockserve("sync") => Some("n/a: serves one connection at a time"),
                Server::Sockserve("forking") => Some("n/a: a process per connection"),
                Server::CPython if connections > 1_000 => {
                    Some("n/a: run at 1000 connections only (a Python thread each)")
                }
                _ => None,
            };
        }
        if server == Server::Park && self.family == Family::Udp {
            return Some("n/a: --park is for stream families");
        }
        let several_connections = matches!(self.load, Load::Threads(Workload::PingPong { connections }) if connections > 1)
            && self.family != Family::Udp;
        (server.one_at_a_time() && several_connections)
            .then_some("n/a: serves one connection at a time")
    }
}

/// The workloads, in the order of their tables (each server is started once per family and
/// run, and once more for the crowds).
fn workloads(opts: &Options) -> Vec<Spec> {
    let n = opts.connections;
    let tcp = |load| Spec {
        family: Family::Tcp,
        load,
    };
    let ping_pong = |connections| Load::Threads(Workload::PingPong { connections });
    let mut specs = vec![tcp(ping_pong(1))];
    for connections in [n, MANY] {
        if connections > 1 && !specs.contains(&tcp(ping_pong(connections))) {
            specs.push(tcp(ping_pong(connections)));
        }
    }
    specs.extend(CROWDS.map(|connections| tcp(Load::Crowd(connections))));
    specs.push(tcp(Load::Threads(Workload::ConnectPerRequest {
        connections: n,
    })));
    specs.push(Spec {
        family: Family::Udp,
        load: ping_pong(n),
    });
    specs.push(Spec {
        family: Family::Unix,
        load: ping_pong(n),
    });
    specs
}

/// What one server did under one workload, in one run.
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
    let peers_target = workspace.target_directory.join("bench-peers");
    Cmd::cargo(&["build", "--release", "--locked", "--manifest-path"])
        .arg(Path::new("xtask").join("peers").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&peers_target)
        .run()?;
    let release_xtask = workspace
        .target_directory
        .join("release")
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    if cfg!(debug_assertions) {
        Cmd::cargo(&["build", "--release", "-p", "xtask"]).run()?;
        let mut cmd = Cmd::new(&release_xtask)
            .args(["bench", "--duration"])
            .arg(opts.duration.as_secs_f64().to_string())
            .args(["--connections", &opts.connections.to_string()])
            .args(["--repeat", &opts.repeat.to_string()]);
        for only in &opts.only {
            cmd = cmd.args(["--only", only.as_str()]);
        }
        return cmd.run();
    }
    let bins = Bins {
        examples: examples_dir(&workspace, "release"),
        xtask: std::env::current_exe().unwrap_or(release_xtask),
        peers: peers_target.join("release"),
    };
    bench(&bins, opts)
}

/// `bench-crowd --addr ADDR [--connections N] [--duration SECS]` (hidden): the event-driven
/// ping-pong against a server already running, its figures on stdout: for profiling a server
/// (`strace -c -f -p PID`, `perf record -p PID`) under the load of a crowd row.
pub(crate) fn crowd(args: &[String]) -> Result<()> {
    let (mut addr, mut connections, mut duration) = (None, 1_000, Duration::from_secs(3));
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--addr" => addr = Some(value.parse::<SocketAddr>()?),
            "--connections" => connections = value.parse()?,
            "--duration" => duration = Duration::from_secs_f64(value.parse()?),
            other => return Err(format!("bench-crowd: unknown flag `{other}`").into()),
        }
    }
    let addr = addr.ok_or("bench-crowd: --addr is required")?;
    raise_fd_limit()?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let report = many::ping_pong(addr, connections, duration, threads, None)?;
    println!(
        "{connections} connections, {:.1} s: {:.0} req/s, p50 {}, p99 {}, max {}, starved {}, \
         min/conn {}",
        duration.as_secs_f64(),
        report.rate(),
        micros(report.percentile(50.0)),
        micros(report.percentile(99.0)),
        micros(report.percentile(100.0)),
        report.starved,
        report.min_per_connection
    );
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the servers started after inherit it);
/// the new soft limit.
fn raise_fd_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// The sections `opts` selects, every cell `opts.repeat` times, then the targets.
fn bench(bins: &Bins, opts: &Options) -> Result<()> {
    let started = Instant::now();
    let dir = temp_dir("bench")?;
    let specs: Vec<Spec> = workloads(opts)
        .into_iter()
        .filter(|spec| opts.selects(&spec.label()))
        .collect();
    let shutdown = opts.selects(SHUTDOWN_LABEL);
    let memory = opts.selects(&memory_label());
    let http = http::selected(opts);
    if specs.is_empty()
        && !shutdown
        && !memory
        && !http
        && !prefork::selected(opts)
        && !tls::selected(opts)
    {
        let labels: Vec<String> = workloads(opts).iter().map(|s| s.label()).collect();
        return Err(format!(
            "--only {:?} selects nothing; the sections are:\n  {}\n  {}\n  {SHUTDOWN_LABEL}\n  \
             {} ... (http)",
            opts.only,
            labels.join("\n  "),
            memory_label(),
            http::LABEL
        )
        .into());
    }
    let fd_limit = raise_fd_limit()?;
    let needed = CROWDS.iter().max().copied().unwrap_or(0) as u64 + 100;
    if fd_limit < needed {
        eprintln!(
            "bench: note: RLIMIT_NOFILE's hard limit is {fd_limit}; the {needed} descriptors of \
             the 10000-connection sections are out of reach (raise it with `ulimit -Hn` as root)"
        );
    }
    // cells[workload][server][run]
    let mut cells: Vec<Vec<Vec<Cell>>> = specs
        .iter()
        .map(|_| Server::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut memory_cells: Vec<Vec<Result<Memory, String>>> =
        MEMORY_SERVERS.iter().map(|_| Vec::new()).collect();
    let mut http_section = http::Section::default();
    for run in 1..=opts.repeat {
        eprintln!("==> bench run {run} of {}", opts.repeat);
        // A server is started for each group: the crowds get fresh ones, last, so that the
        // teardown of 10,000 connections (and threads) falls in no other row's window.
        let groups = [
            (Family::Tcp, false),
            (Family::Udp, false),
            (Family::Unix, false),
            (Family::Tcp, true),
        ];
        for (family, crowd) in groups {
            let indices: Vec<usize> = (0..specs.len())
                .filter(|&i| {
                    specs[i].family == family && matches!(specs[i].load, Load::Crowd(_)) == crowd
                })
                .collect();
            if indices.is_empty() {
                continue;
            }
            for (s, server) in Server::ALL.into_iter().enumerate() {
                let results = run_server(bins, dir.path(), server, family, &indices, &specs, opts);
                for (i, cell) in indices.iter().zip(results) {
                    cells[*i][s].push(cell);
                }
            }
        }
        if memory {
            for (s, server) in MEMORY_SERVERS.into_iter().enumerate() {
                eprintln!("--> {} against {}", memory_label(), server.name());
                memory_cells[s]
                    .push(idle_memory(bins, dir.path(), server).map_err(|e| e.to_string()));
            }
        }
        if http {
            http_section.run(bins, dir.path(), opts)?;
        }
    }
    println!(
        "\nbench: {} s per cell, {} run(s) of each (the median shown; spread: (max - min) / \
         median of the runs' req/s), {} core(s), loopback; every echoed byte checked",
        opts.duration.as_secs_f64(),
        opts.repeat,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut failures = Vec::new();
    for (spec, row) in specs.iter().zip(&cells) {
        println!("\n{}\n{}", spec.label(), table(row));
        for (server, runs) in Server::ALL.iter().zip(row) {
            for cell in runs {
                if let Cell::Failed(e) = cell {
                    failures.push((
                        *server,
                        format!("{} / {}: {e}", spec.label(), server.name()),
                    ));
                }
            }
            let resends: u64 = runs
                .iter()
                .map(|cell| match cell {
                    Cell::Done(report) => report.resends,
                    _ => 0,
                })
                .sum();
            if resends > 0 {
                println!(
                    "  note: {}: {resends} datagram(s) sent again after no answer within 1 s",
                    server.name(),
                );
            }
        }
    }
    if memory {
        println!("\n{}\n{}", memory_label(), memory_table(&memory_cells));
        for (server, runs) in MEMORY_SERVERS.iter().zip(&memory_cells) {
            for e in runs.iter().filter_map(|r| r.as_ref().err()) {
                failures.push((
                    *server,
                    format!("{} / {}: {e}", memory_label(), server.name()),
                ));
            }
        }
    }
    let http_failures = if http {
        http_section.report(opts)
    } else {
        Vec::new()
    };
    tls::section(&bins.examples, dir.path(), opts)?;
    let prefork_failures = prefork::section(bins, opts);
    if shutdown {
        println!(
            "\n{SHUTDOWN_LABEL}: SIGTERM to exit, no client connected, {SHUTDOWN_TRIALS} runs each"
        );
        println!("{}", shutdown_table(bins, dir.path()));
    }
    let targets = targets(opts, &specs, &cells, &memory_cells);
    if !targets.is_empty() {
        println!(
            "\ntargets (the waiting-connections issue), medians of {} run(s)",
            opts.repeat
        );
        println!("{}", align(&targets));
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
    let mut ours: Vec<String> = ours.into_iter().map(|(_, f)| f).collect();
    ours.extend(http_failures);
    ours.extend(prefork_failures);
    if ours.is_empty() {
        Ok(())
    } else {
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
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut cells = Vec::new();
    for &i in indices {
        if let Some(reason) = skip(i) {
            cells.push(Cell::Skipped(reason.to_owned()));
            continue;
        }
        eprintln!("--> {} against {}", specs[i].label(), server.name());
        let (proc, endpoint) = &mut server_proc;
        // A forking server's work is in its children, which its own CPU time does not count.
        let pid = (server != Server::Sockserve("forking")).then(|| proc.guard.child_mut().id());
        let report = match (specs[i].load, &*endpoint) {
            (Load::Threads(load), _) => {
                loadgen::run_watching(endpoint, load, Reply::Echo, opts.duration, pid)
            }
            (Load::Crowd(n), Endpoint::Tcp(addr)) => {
                many::ping_pong(*addr, n, opts.duration, threads, pid)
            }
            (Load::Crowd(_), other) => {
                Err(format!("event-driven clients need TCP, not {other}").into())
            }
        };
        let cell = match report {
            Ok(report) => match proc.check_alive() {
                Ok(()) => Cell::Done(report),
                Err(e) => Cell::Failed(e.to_string()),
            },
            Err(e) => Cell::Failed(e.to_string()),
        };
        cells.push(cell);
    }
    let (proc, _) = server_proc;
    stop(proc);
    cells
}

/// Stops a server: SIGTERM, then (past [`SHUTDOWN_LIMIT`]) SIGKILL; either way it is reaped.
fn stop(mut proc: RunningServer) {
    let _ = proc.guard.signal("TERM");
    let _ = proc.guard.wait_within(SHUTDOWN_LIMIT);
}

fn start(
    bins: &Bins,
    dir: &Path,
    server: Server,
    family: Family,
) -> Result<(RunningServer, Endpoint)> {
    let addr = if family.is_unix() {
        let slug = server.name().replace([' ', '/', '*', '(', ')'], "-");
        let path = dir.join(format!("{}-{slug}.sock", family.arg()));
        // The file of an earlier run: the std floor and tokio, which SIGTERM kills, leave it.
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        path.display().to_string()
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

/// The median of `values` (the upper one of an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The runs of one server in one section, summed up.
struct Summary<'a> {
    /// The run of median throughput.
    median: &'a Report,
    /// (max - min) / median of the runs' throughput.
    spread: f64,
    /// The most starved connections of any run.
    starved: usize,
    /// The fewest answers one connection got, in any run.
    min_per_connection: u64,
}

/// The summary of `runs` if every run is done; else the first failure or skip.
fn summary(runs: &[Cell]) -> Result<Summary<'_>, &Cell> {
    let mut done = Vec::new();
    for cell in runs {
        match cell {
            Cell::Done(report) => done.push(report),
            other => return Err(other),
        }
    }
    done.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let median = *done.get(done.len() / 2).ok_or(&runs[0])?;
    let (lo, hi) = (done[0].rate(), done[done.len() - 1].rate());
    Ok(Summary {
        median,
        spread: (hi - lo) / median.rate().max(f64::EPSILON),
        starved: done.iter().map(|r| r.starved).max().unwrap_or(0),
        min_per_connection: done.iter().map(|r| r.min_per_connection).min().unwrap_or(0),
    })
}

/// The median, over the runs, of `of`'s throughput over `base`'s in the same run; `None` unless
/// both have a report in at least one same run.
fn ratio(of: &[Cell], base: &[Cell]) -> Option<f64> {
    let ratios: Vec<f64> = of
        .iter()
        .zip(base)
        .filter_map(|pair| match pair {
            (Cell::Done(a), Cell::Done(b)) => Some(a.rate() / b.rate().max(f64::EPSILON)),
            _ => None,
        })
        .collect();
    median(ratios)
}

/// The median, over the runs, of the server's CPU time per request, in microseconds.
fn cpu_per_request(runs: &[Cell]) -> Option<f64> {
    median(
        runs.iter()
            .filter_map(|cell| match cell {
                Cell::Done(report) => report.cpu_per_request(),
                _ => None,
            })
            .map(|d| d.as_secs_f64() * 1e6)
            .collect(),
    )
}

fn position(server: Server) -> usize {
    Server::ALL
        .iter()
        .position(|s| *s == server)
        .unwrap_or_default()
}

/// One workload's table: a row per server, its median throughput and the spread of the runs,
/// latency (p50, p99, and the max, which shows a connection left waiting), the starved
/// connections, the fewest answers of one connection, the server's CPU time per request (user
/// and system, all its threads: steadier than the throughput on a shared machine), and the
/// median ratio of its throughput to CPython's, to the `std` floor's and to tokio's.
fn table(row: &[Vec<Cell>]) -> String {
    let show = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
    let mut lines = vec![
        [
            "  server",
            "req/s",
            "spread",
            "p50",
            "p99",
            "max",
            "starved",
            "min/conn",
            "CPU/req",
            "vs CPython",
            "vs std",
            "vs tokio",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for (server, runs) in Server::ALL.iter().zip(row) {
        let mut line = vec![format!("  {}", server.name())];
        match summary(runs) {
            Ok(sum) => {
                let report = sum.median;
                line.extend([
                    format!("{:.0}", report.rate()),
                    format!("{:.0}%", sum.spread * 100.0),
                    micros(report.percentile(50.0)),
                    micros(report.percentile(99.0)),
                    micros(report.percentile(100.0)),
                    sum.starved.to_string(),
                    sum.min_per_connection.to_string(),
                    cpu_per_request(runs).map_or_else(|| "-".to_owned(), |d| format!("{d:.1}us")),
                ]);
                for base in [Server::CPython, Server::Std, Server::Tokio] {
                    line.push(show(ratio(runs, &row[position(base)])));
                }
            }
            Err(Cell::Skipped(reason)) => line.push(reason.clone()),
            Err(Cell::Failed(e)) => {
                line.push(format!("FAILED: {}", e.lines().next().unwrap_or_default()))
            }
            Err(Cell::Done(_)) => line.push("-".to_owned()),
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

/// The servers of the memory table.
const MEMORY_SERVERS: [Server; 4] = [
    Server::Sockserve("threading"),
    Server::Park,
    Server::Tokio,
    Server::Std,
];

/// How long the server may settle after the last idle connection's answer before its RSS is
/// read (the turn that answered may still be ending: `--park` releases the read buffer and
/// goes back to the reactor after the write).
const SETTLE: Duration = Duration::from_millis(250);

/// One server's memory with no connection and with [`IDLE`] idle ones.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// VmRSS in KiB just after it announced its address.
    empty_kib: u64,
    /// VmRSS in KiB with the idle connections open.
    idle_kib: u64,
    /// Its threads with the idle connections open.
    threads: u64,
}

impl Memory {
    fn per_connection_kib(self) -> f64 {
        self.idle_kib.saturating_sub(self.empty_kib) as f64 / IDLE as f64
    }
}

/// A field of `/proc/PID/status` (`VmRSS`, `Threads`), its number.
fn proc_status(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{path}: no {field} line").into())
}

/// Starts `server` (TCP), reads its RSS, opens [`IDLE`] idle connections, reads its RSS and
/// threads, closes them and stops it.
fn idle_memory(bins: &Bins, dir: &Path, server: Server) -> Result<Memory> {
    let (mut proc, endpoint) = start(bins, dir, server, Family::Tcp)?;
    let pid = proc.guard.child_mut().id();
    let addr: SocketAddr = match endpoint {
        Endpoint::Tcp(addr) => addr,
        other => return Err(format!("expected a TCP endpoint, got {other}").into()),
    };
    let result = (|| {
        let empty_kib = proc_status(pid, "VmRSS")?;
        let idle = many::hold_idle(addr, IDLE)?;
        std::thread::sleep(SETTLE);
        let memory = Memory {
            empty_kib,
            idle_kib: proc_status(pid, "VmRSS")?,
            threads: proc_status(pid, "Threads")?,
        };
        eprintln!(
            "    {IDLE} idle connections set up in {:.1}s",
            idle.setup.as_secs_f64()
        );
        drop(idle);
        proc.check_alive()?;
        Ok(memory)
    })();
    stop(proc);
    result
}

/// The memory table: per server, the median over the runs of each figure.
fn memory_table(cells: &[Vec<Result<Memory, String>>]) -> String {
    let mut lines = vec![
        [
            "  server",
            "RSS, no conn",
            "RSS, 10000 idle",
            "KiB/conn",
            "threads",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for (server, runs) in MEMORY_SERVERS.iter().zip(cells) {
        let mut line = vec![format!("  {}", server.name())];
        match memory_medians(runs) {
            Ok(m) => line.extend([
                mib(m.empty_kib as f64),
                mib(m.idle_kib as f64),
                format!("{:.1}", m.per_connection_kib()),
                m.threads.to_string(),
            ]),
            Err(e) => line.push(format!("FAILED: {}", e.lines().next().unwrap_or_default())),
        }
        lines.push(line);
    }
    align(&lines)
}

/// The median of each figure over `runs`, or the first failure.
fn memory_medians(runs: &[Result<Memory, String>]) -> Result<Memory, String> {
    let runs: Vec<Memory> = runs.iter().cloned().collect::<Result<_, _>>()?;
    let med = |f: fn(&Memory) -> u64| median(runs.iter().map(|m| f(m) as f64).collect());
    match (
        med(|m| m.empty_kib),
        med(|m| m.idle_kib),
        med(|m| m.threads),
    ) {
        (Some(empty), Some(idle), Some(threads)) => Ok(Memory {
            empty_kib: empty as u64,
            idle_kib: idle as u64,
            threads: threads as u64,
        }),
        _ => Err("no run".to_owned()),
    }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// The targets of the waiting-connections issue whose sections ran, each a line: what, the
/// figure, PASS or MISS.
fn targets(
    opts: &Options,
    specs: &[Spec],
    cells: &[Vec<Vec<Cell>>],
    memory: &[Vec<Result<Memory, String>>],
) -> Vec<Vec<String>> {
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" }.to_owned();
    let row_of = |load: Load| {
        specs
            .iter()
            .position(|s| s.family == Family::Tcp && s.load == load)
            .map(|i| &cells[i])
    };
    let park = position(Server::Park);
    let mut lines = vec![
        ["  target", "figure", "verdict"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for connections in CROWDS {
        let Some(row) = row_of(Load::Crowd(connections)) else {
            continue;
        };
        let vs_tokio = ratio(&row[park], &row[position(Server::Tokio)]);
        let starved = summary(&row[park]).ok().map(|s| s.starved);
        lines.push(vec![
            format!("  --park, {connections} connections: >= 0.8x tokio, none starved"),
            format!(
                "{} tokio, {} starved (CPU/req {})",
                vs_tokio.map_or("-".to_owned(), |r| format!("{r:.2}x")),
                starved.map_or("-".to_owned(), |s| s.to_string()),
                cpu_vs(&row[park], &row[position(Server::Tokio)], "tokio")
            ),
            verdict(vs_tokio.is_some_and(|r| r >= 0.8) && starved == Some(0)),
        ]);
    }
    if opts.connections == 10
        && let Some(row) = row_of(Load::Threads(Workload::PingPong { connections: 10 }))
    {
        let vs_threading = ratio(&row[park], &row[position(Server::Sockserve("threading"))]);
        let threading = &row[position(Server::Sockserve("threading"))];
        lines.push(vec![
            "  --park, 10 connections: >= 0.7x plain threading".to_owned(),
            format!(
                "{} threading (CPU/req {})",
                vs_threading.map_or("-".to_owned(), |r| format!("{r:.2}x")),
                cpu_vs(&row[park], threading, "threading")
            ),
            verdict(vs_threading.is_some_and(|r| r >= 0.7)),
        ]);
    }
    if let Some(runs) = MEMORY_SERVERS
        .iter()
        .position(|s| *s == Server::Park)
        .and_then(|i| memory.get(i))
        .filter(|runs| !runs.is_empty())
    {
        let idle = memory_medians(runs).ok().map(|m| m.idle_kib as f64);
        lines.push(vec![
            format!("  --park --max-threads {PARK_THREADS}, {IDLE} idle: RSS <= 40 MiB"),
            idle.map_or("-".to_owned(), mib),
            verdict(idle.is_some_and(|kib| kib <= 40.0 * 1024.0)),
        ]);
    }
    if lines.len() == 1 { Vec::new() } else { lines }
}

/// `runs`' CPU time per request beside `base`'s, for the targets' lines.
fn cpu_vs(runs: &[Cell], base: &[Cell], name: &str) -> String {
    match (cpu_per_request(runs), cpu_per_request(base)) {
        (Some(a), Some(b)) => format!("{a:.1}us vs {name} {b:.1}us"),
        _ => "-".to_owned(),
    }
}

/// For each server with a graceful stop (not the `std` floor nor tokio, which SIGTERM just
/// kills; not `--park`, whose stop is threading's), the time from SIGTERM to exit over TCP
/// with no client, [`SHUTDOWN_TRIALS`] times.
fn shutdown_table(bins: &Bins, dir: &Path) -> String {
    let mut lines = vec![vec![
        "  server".to_owned(),
        "median".to_owned(),
        "max".to_owned(),
        "exit".to_owned(),
    ]];
    for server in Server::ALL
        .into_iter()
        .filter(|s| !matches!(s, Server::Std | Server::Tokio | Server::Park))
    {
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
        assert_eq!(specs.len(), 8, "{labels:#?}");
        let sync = Server::Sockserve("sync");
        let runs_on_sync: Vec<&String> = specs
            .iter()
            .zip(&labels)
            .filter(|(s, _)| s.skip_reason(sync).is_none())
            .map(|(_, l)| l)
            .collect();
        assert_eq!(runs_on_sync.len(), 3, "{runs_on_sync:#?}");
        let cpython_skips = specs
            .iter()
            .filter(|s| s.skip_reason(Server::CPython).is_some())
            .count();
        assert_eq!(cpython_skips, 1, "only the 10000 connections");
        let one = Options {
            connections: 1,
            ..Options::default()
        };
        assert_eq!(workloads(&one).len(), 7);
        // The crowds: threading, --park, std, tokio; CPython at 1000 only.
        let crowds = |n| Spec {
            family: Family::Tcp,
            load: Load::Crowd(n),
        };
        let runs = |spec: Spec| {
            Server::ALL
                .into_iter()
                .filter(|s| spec.skip_reason(*s).is_none())
                .count()
        };
        assert_eq!((runs(crowds(1_000)), runs(crowds(10_000))), (5, 4));
    }

    #[test]
    fn only_selects_sections_by_label_in_any_case() {
        let only = |s: &str| Options {
            only: vec![s.to_owned()],
            ..Options::default()
        };
        let all = Options::default();
        let count = |o: &Options| {
            workloads(o)
                .iter()
                .filter(|s| o.selects(&s.label()))
                .count()
        };
        assert_eq!(count(&all), 8);
        assert!(all.selects(SHUTDOWN_LABEL) && all.selects(&memory_label()));
        assert_eq!(count(&only("udp")), 1);
        assert!(!only("udp").selects(SHUTDOWN_LABEL));
        assert_eq!(count(&only("TCP PING-PONG")), 5);
        assert_eq!(count(&only("1000 conn")), 1);
        assert_eq!(count(&only("10000 conn")), 1);
        assert_eq!(count(&only("10 connection(s)")), 1);
        assert!(only("memory").selects(&memory_label()));
        let two = Options {
            only: vec!["udp".to_owned(), "unix".to_owned()],
            ..Options::default()
        };
        assert_eq!(count(&two), 2);
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
            peers: PathBuf::from("/nonexistent"),
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
        let mut row: Vec<Vec<Cell>> = Server::ALL
            .iter()
            .map(|_| vec![Cell::Skipped("n/a".into())])
            .collect();
        row[1] = vec![Cell::Failed("boom\nmore".into())];
        let text = table(&row);
        assert!(text.contains("FAILED: boom"), "{text}");
        assert!(text.lines().next().unwrap().contains("CPU/req"), "{text}");
        assert_eq!(text.lines().count(), 8, "{text}");
    }
}
