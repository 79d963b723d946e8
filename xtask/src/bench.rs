//! `cargo xtask bench`: every workload against sockserve's servers and the peers a user would
//! pick instead, side by side in one run, as tables of figures and ratios, with the targets of
//! the issues PASS or MISS, JSON and a chart under `target/bench/`.
//!
//! The echo servers ([`Server`]): this project's `echo_server` in `--mode sync`, `threading`,
//! `threading --park --max-threads 16` (idle connections wait in the reactor, not in a thread)
//! and `forking`; a bare `std` thread-per-connection server, the floor of the blocking model
//! ([`std_server`], run as `xtask std-echo-server`); CPython's `socketserver` with the same
//! echo handler, a loop of `recv`/`sendall` on `self.request` (`Threading*Server` everywhere,
//! the synchronous `UDPServer` in the UDP row and `ForkingTCPServer` in the new-connection
//! row); and tokio (`tokio-echo`, the async peer, with a worker thread per core). The peers
//! that are Rust programs of their own live in `xtask/peers/`, a package outside the
//! workspace, which only this command builds (so the workspace's build, clippy and tests never
//! compile tokio or plotters).
//!
//! The sections ([`sections`], each a [`Section`] with tables; `--only TEXT` picks tables by
//! heading): the echo workloads ([`EchoSection`]: 64-byte ping-pong over TCP with 1,
//! `--connections` (10) and 100 connections from a client thread per connection
//! ([`loadgen`]); with 1,000 and 10,000 connections from an event-driven client, a `mio`
//! poll per core ([`many`]), after a setup in which every connection did one exchange; a new
//! TCP connection per request; UDP ping-pong from several sockets; Unix stream ping-pong), and
//! the same TCP rows (but the crowds) against the `prefork_server` example, 4 worker processes,
//! beside the one-process threading server and tokio ([`prefork`]; `--only prefork`).
//! Every echoed byte is checked; each cell reports throughput, latency percentiles (p50, p99,
//! max), the runs that failed (errors), the *starved* connections (no answer in the whole
//! window: a server that serves some connections and leaves the rest waiting shows no error
//! otherwise), the fewest answers one connection got, the server's CPU time per request, and
//! the ratio to CPython, to the `std` floor and to tokio, with the targets that apply to the
//! row beside them. Then the memory of 10,000 idle connections ([`memory`]), the HTTP rows
//! under `wrk` ([`http`]) and the shutdown latency ([`shutdown`]: `shutdown()` to
//! `serve_forever` returning in process, and SIGTERM to exit). Last, the targets of the
//! issues, each PASS or MISS.
//!
//! Every cell runs `--repeat` times (3), each time on a freshly started server; a table shows
//! the median run (by throughput), how far apart the runs were, and the median of the per-run
//! ratios. The run is written to `target/bench/latest.json` (`quick.json` for `--quick`,
//! `only.json` for a run with `--only`), the chart of its ratios to the `.svg` beside it
//! (drawn by the peers' `bench-chart` with plotters) and its tables as Markdown to the `.md`;
//! `--docs` also writes them into `docs/BENCH.md` (between its markers) and
//! `docs/bench-ratios.svg`.
//!
//! Everything runs in release: `cargo xtask bench` (a debug xtask) builds the examples, the
//! peers and xtask in release and re-runs itself from there, so the load generator and the
//! `std` floor are optimized like the servers they measure. `--quick` is the smoke test CI
//! runs: the debug builds CI has already made (the peers built in debug), every section and
//! row once for a fraction of a second, and it fails unless every row produced figures (it
//! does not judge the targets). The bench raises its own soft `RLIMIT_NOFILE` to the hard
//! limit (10,000 client connections; the servers it starts inherit it). Loopback only; each
//! server is started on port 0 (or a path in a temp directory), serves its workloads, and is
//! stopped.
//!
//! Adding a row: a server to the echo rows is a [`Server`] variant (its name, its command,
//! and where it runs in `in_row`/`skip_reason`); echo tables of other servers are a
//! [`Lineup`] (as [`prefork::LINEUP`]), registered in [`sections`] as an [`EchoSection`]; a
//! workload of its own is a module with a type that implements [`Section`], registered in
//! [`sections`].

mod http;
mod loadgen;
mod many;
mod memory;
mod prefork;
mod report;
mod shutdown;
pub(crate) mod std_server;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog, project_root};
use crate::integration::{Family, Reply, example_bin, examples_dir, temp_dir};
use crate::metadata::Workspace;
use loadgen::{Endpoint, Report, Workload};
use report::{Output, Row, Table, Target, times, verdict};

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
    /// Only the tables whose heading contains one of these (any case); `shutdown` selects
    /// the shutdown-latency tables, `memory` the memory table. Empty: everything.
    pub(crate) only: Vec<String>,
    /// The smoke test: debug builds, every row once, briefly; fails unless every row produced
    /// figures.
    pub(crate) quick: bool,
    /// Also write `docs/BENCH.md`'s tables and `docs/bench-ratios.svg`.
    pub(crate) docs: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            duration: Duration::from_secs(2),
            connections: 10,
            repeat: 3,
            only: Vec::new(),
            quick: false,
            docs: false,
        }
    }
}

/// `--quick`'s duration per cell, unless `--duration` says otherwise.
/// (Every row still gets a window of its own; HTTP's `wrk` is interrupted at its end, see
/// [`http`]. `--quick` must take under a minute, the issue says.)
pub(crate) const QUICK_DURATION: Duration = Duration::from_millis(150);

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

    /// The command line that makes this run again.
    fn command_line(&self) -> String {
        let mut line = "cargo xtask bench".to_owned();
        if self.quick {
            line.push_str(" --quick");
        }
        line.push_str(&format!(
            " --duration {} --connections {} --repeat {}",
            self.duration.as_secs_f64(),
            self.connections,
            self.repeat
        ));
        for only in &self.only {
            line.push_str(&format!(" --only {only:?}"));
        }
        if self.docs {
            line.push_str(" --docs");
        }
        line
    }

    /// The arguments of the re-run in release.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "bench".to_owned(),
            "--duration".to_owned(),
            self.duration.as_secs_f64().to_string(),
            "--connections".to_owned(),
            self.connections.to_string(),
            "--repeat".to_owned(),
            self.repeat.to_string(),
        ];
        for only in &self.only {
            args.extend(["--only".to_owned(), only.clone()]);
        }
        if self.docs {
            args.push("--docs".to_owned());
        }
        args
    }
}

/// The connections of the largest workload with a client thread per connection.
const MANY: usize = 100;
/// The connections of the event-driven workloads.
const CROWDS: [usize; 2] = [1_000, 10_000];
/// `--max-threads` of the `--park` server: far fewer threads than connections.
const PARK_THREADS: usize = 16;
/// How long a server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM (one with 10,000 connections open too).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(8);

/// One part of the bench: its tables, run `--repeat` times, then reported.
///
/// A new workload with servers of its own (a TLS echo, say) is a type implementing this in a
/// module of its own, added to [`sections`]: the driver runs it, prints its tables, writes them
/// to the JSON and the Markdown, charts its targets' ratios and, under `--quick`, fails unless
/// each of its rows produced figures.
trait Section {
    /// The headings of its tables, which `--only` matches.
    fn labels(&self, opts: &Options) -> Vec<String>;
    /// Whether `--only` selects any of its tables.
    fn selected(&self, opts: &Options) -> bool {
        self.labels(opts).iter().any(|label| opts.selects(label))
    }
    /// One run (of `--repeat`): start its servers, measure, stop them. An error here ends the
    /// bench (a cell's failure is recorded, not returned).
    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()>;
    /// Its tables, targets, failures and notes, from every run so far.
    fn report(&self, opts: &Options, out: &mut Output);
}

/// The sections, in the order they run and print.
fn sections(opts: &Options) -> Vec<Box<dyn Section>> {
    vec![
        Box::new(EchoSection::new(&ECHO, opts)),
        Box::new(EchoSection::new(&prefork::LINEUP, opts)),
        Box::new(memory::Section::default()),
        Box::new(http::Section::default()),
        Box::new(shutdown::Section::default()),
        Box::new(tls::Section::default()),
    ]
}

/// One echo server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `echo_server --mode MODE`.
    Sockserve(&'static str),
    /// `echo_server --mode threading --park --max-threads 16`.
    Park,
    /// `xtask std-echo-server`.
    Std,
    /// CPython's `socketserver`: `threading` (`Threading*Server`), `sync` (`TCPServer`,
    /// `UDPServer`, ...) or `forking` (`Forking*Server`).
    CPython(&'static str),
    /// `tokio-echo`, from the peers' package.
    Tokio,
    /// `prefork_server --workers 4 --mode MODE` (the prefork tables only: [`prefork`]).
    Prefork(&'static str),
}

impl Server {
    const ALL: [Server; 9] = [
        Server::Sockserve("sync"),
        Server::Sockserve("threading"),
        Server::Park,
        Server::Sockserve("forking"),
        Server::Std,
        Server::CPython("threading"),
        Server::CPython("sync"),
        Server::CPython("forking"),
        Server::Tokio,
    ];
    /// The CPython server the `vs CPython` column is against.
    const CPYTHON: Server = Server::CPython("threading");

    fn name(self) -> String {
        match self {
            Server::Sockserve(mode) => format!("sockserve {mode}"),
            Server::Park => format!("sockserve threading --park ({PARK_THREADS} thr)"),
            Server::Std => "std thread/conn".to_owned(),
            Server::CPython("threading") => "CPython Threading*Server".to_owned(),
            Server::CPython("forking") => "CPython Forking*Server".to_owned(),
            Server::CPython(_) => "CPython *Server (sync)".to_owned(),
            Server::Tokio => "tokio".to_owned(),
            Server::Prefork(mode) => format!("prefork {mode}, {} workers", prefork::WORKERS),
        }
    }

    /// A short name, for the targets.
    fn short(self) -> &'static str {
        match self {
            Server::Sockserve("sync") => "sync",
            Server::Sockserve("forking") => "forking",
            Server::Sockserve(_) => "threading",
            Server::Park => "--park",
            Server::Std => "std",
            Server::CPython("threading") => "CPython threading",
            Server::CPython("forking") => "CPython forking",
            Server::CPython(_) => "CPython sync",
            Server::Tokio => "tokio",
            Server::Prefork("sync") => "prefork sync",
            Server::Prefork(_) => "prefork threading",
        }
    }

    /// Whether the server has a line in `spec`'s table at all: CPython's synchronous and
    /// forking servers are there for the targets of the UDP and new-connection rows only.
    fn in_row(self, spec: Spec) -> bool {
        match self {
            Server::CPython("sync") => spec.family == Family::Udp,
            Server::CPython("forking") => {
                matches!(spec.load, Load::Threads(Workload::ConnectPerRequest { .. }))
            }
            Server::Prefork(_) => {
                spec.family == Family::Tcp && matches!(spec.load, Load::Threads(_))
            }
            _ => true,
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
            Server::CPython(mode) => cpython_echo_server_in(mode, family, addr),
            Server::Tokio => Cmd::new(bins.peers.join("tokio-echo")).args([
                "--family",
                family.arg(),
                "--addr",
                addr,
            ]),
            Server::Prefork(mode) => prefork::cmd(bins, mode, addr),
        }
    }
}

/// CPython's echo server: `socketserver`'s server of the family (`argv[1]`: `tcp`, `udp`,
/// `unix`) on `argv[2]` (`HOST:PORT` or a path), of the mode `argv[3]` (`threading`, the
/// default; `sync`; `forking`), with the echo handler a Python user writes. SIGTERM and SIGINT
/// call `server.shutdown()` from a thread (it must not run on the thread of `serve_forever`),
/// which returns within `poll_interval` (0.5 s). Python's defaults are kept (backlog 5, Nagle
/// on) because they are what a Python user gets.
pub(crate) const CPYTHON_ECHO_SERVER: &str = r#"
import os, signal, socketserver, sys, threading
family, addr = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "threading"

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

prefix = {"threading": "Threading", "sync": "", "forking": "Forking"}[mode]
if family == "unix":
    base, handler, address = getattr(socketserver, prefix + "UnixStreamServer"), StreamEcho, addr
else:
    host, _, port = addr.rpartition(":")
    address = (host.strip("[]"), int(port))
    kind, handler = {"tcp": ("TCPServer", StreamEcho), "udp": ("UDPServer", DatagramEcho)}[family]
    base = getattr(socketserver, prefix + kind)

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

/// The command that starts [`CPYTHON_ECHO_SERVER`] (its threading server) for `family` on
/// `addr` (integration's tests run it).
#[cfg(test)]
pub(crate) fn cpython_echo_server(family: Family, addr: &str) -> Cmd {
    cpython_echo_server_in("threading", family, addr)
}

/// The command that starts [`CPYTHON_ECHO_SERVER`] in `mode` for `family` on `addr`.
fn cpython_echo_server_in(mode: &str, family: Family, addr: &str) -> Cmd {
    Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(CPYTHON_ECHO_SERVER, "CPYTHON_ECHO_SERVER")
        .args([family.arg(), addr, mode])
}

/// Where the binaries are.
#[derive(Debug)]
struct Bins {
    examples: PathBuf,
    xtask: PathBuf,
    /// The peers' package's binaries (`tokio-echo`, `tiny-http-files`, `shutdown-latency`,
    /// `bench-chart`).
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
    fn tcp(load: Load) -> Spec {
        Spec {
            family: Family::Tcp,
            load,
        }
    }

    fn ping_pong(family: Family, connections: usize) -> Spec {
        Spec {
            family,
            load: Load::Threads(Workload::PingPong { connections }),
        }
    }

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

    /// A short name, for the targets.
    fn short(self) -> String {
        match (self.family, self.load) {
            (_, Load::Crowd(n)) => format!("ping-pong {n} conn"),
            (Family::Udp, Load::Threads(w)) => format!("UDP ping-pong {} sockets", w.connections()),
            (Family::Unix, Load::Threads(w)) => format!("Unix ping-pong {} conn", w.connections()),
            (_, Load::Threads(Workload::PingPong { connections })) => {
                format!("ping-pong {connections} conn")
            }
            (_, Load::Threads(Workload::ConnectPerRequest { connections })) => {
                format!("new conn/request, {connections} clients")
            }
        }
    }

    /// Whether the clients open 100 connections or more at once: CPython's backlog of 5
    /// drops most of such a burst, and its clients wait out SYN retransmissions (seconds).
    fn burst(self) -> bool {
        match self.load {
            Load::Crowd(_) => true,
            Load::Threads(Workload::PingPong { connections }) => connections >= MANY,
            Load::Threads(Workload::ConnectPerRequest { .. }) => false,
        }
    }

    /// Why `server` does not run this workload, if it does not.
    fn skip_reason(self, server: Server) -> Option<&'static str> {
        if let Load::Crowd(connections) = self.load {
            return match server {
                Server::Sockserve("sync") => Some("n/a: serves one connection at a time"),
                Server::Sockserve("forking") => Some("n/a: a process per connection"),
                Server::CPython(_) if connections > 1_000 => {
                    Some("n/a: run at 1000 connections only (a Python thread each)")
                }
                _ => None,
            };
        }
        if let Some(reason) = prefork::skip_reason(self, server) {
            return Some(reason);
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
    let mut specs = vec![Spec::ping_pong(Family::Tcp, 1)];
    for connections in [n, MANY] {
        let spec = Spec::ping_pong(Family::Tcp, connections);
        if connections > 1 && !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    specs.extend(CROWDS.map(|connections| Spec::tcp(Load::Crowd(connections))));
    specs.push(Spec::tcp(Load::Threads(Workload::ConnectPerRequest {
        connections: n,
    })));
    specs.push(Spec::ping_pong(Family::Udp, n));
    specs.push(Spec::ping_pong(Family::Unix, n));
    specs
}

/// A target of the echo rows: in `spec`'s table, `server`'s throughput at least `goal` times
/// `base`'s (median of the runs' ratios), and, with `no_starved`, no starved connection.
#[derive(Debug, Clone, Copy)]
struct EchoTarget {
    spec: Spec,
    server: Server,
    base: Server,
    goal: f64,
    no_starved: bool,
}

/// The targets of the issues for the echo rows (the full bench's issue, and `--park`'s at 10
/// connections from the waiting-connections issue). They name 10 connections: with another
/// `--connections` those rows are not run and their targets are not reported.
fn echo_targets() -> Vec<EchoTarget> {
    let t = |spec, server, base, goal| EchoTarget {
        spec,
        server,
        base,
        goal,
        no_starved: false,
    };
    let threading = Server::Sockserve("threading");
    let forking = Server::Sockserve("forking");
    let ping_pong = Spec::ping_pong(Family::Tcp, 10);
    let per_request = Spec::tcp(Load::Threads(Workload::ConnectPerRequest {
        connections: 10,
    }));
    let udp = Spec::ping_pong(Family::Udp, 10);
    let mut targets = vec![
        t(ping_pong, threading, Server::Std, 0.9),
        t(ping_pong, threading, Server::CPYTHON, 2.5),
        t(ping_pong, Server::Park, threading, 0.7),
        t(per_request, threading, Server::Std, 0.9),
        t(per_request, threading, Server::CPYTHON, 2.5),
        t(per_request, forking, Server::Std, 0.7),
        t(per_request, forking, Server::CPython("forking"), 5.0),
        t(udp, threading, Server::CPYTHON, 15.0),
        t(udp, threading, Server::CPython("sync"), 1.2),
    ];
    for connections in CROWDS {
        targets.push(EchoTarget {
            no_starved: true,
            ..t(
                Spec::tcp(Load::Crowd(connections)),
                Server::Park,
                Server::Tokio,
                1.0,
            )
        });
    }
    targets
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

/// Builds and re-runs in release from there (see the module docs), or, already in release
/// (or under `--quick`, on the debug builds), runs the benchmark.
pub(crate) fn run(opts: &Options) -> Result<()> {
    let profile = if opts.quick { "debug" } else { "release" };
    let mut build = vec!["build", "-p", "sockserve-examples", "--examples"];
    if !opts.quick {
        build.push("--release");
    }
    Cmd::cargo(&build).run()?;
    let workspace = Workspace::load()?;
    let peers_target = workspace.target_directory.join("bench-peers");
    // Not `--locked`: the peers build the facade by path, so a dependency the workspace's
    // crates gain must be able to enter the peers' lock (cargo keeps every version it holds).
    let mut peers = Cmd::cargo(&["build", "--manifest-path"])
        .arg(Path::new("xtask").join("peers").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&peers_target);
    if !opts.quick {
        peers = peers.arg("--release");
    }
    peers.run()?;
    let release_xtask = workspace
        .target_directory
        .join("release")
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    if cfg!(debug_assertions) && !opts.quick {
        Cmd::cargo(&["build", "--release", "-p", "xtask"]).run()?;
        return Cmd::new(&release_xtask).args(opts.args()).run();
    }
    // The binary of this profile by its path, not `current_exe`: a step of `cargo xtask ci`
    // before this one may have rebuilt it (a build with other features), and the running
    // binary's path is then "... (deleted)".
    let own = workspace
        .target_directory
        .join(profile)
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    let xtask = if own.is_file() {
        own
    } else {
        std::env::current_exe().unwrap_or(release_xtask)
    };
    let bins = Bins {
        examples: examples_dir(&workspace, profile),
        xtask,
        peers: peers_target.join(profile),
    };
    bench(&bins, opts, &workspace.target_directory.join("bench"))
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

/// The sections `opts` selects, every one `opts.repeat` times, then the tables, the targets,
/// and the files under `out_dir`.
fn bench(bins: &Bins, opts: &Options, out_dir: &Path) -> Result<()> {
    let started = *STARTED.get_or_init(Instant::now);
    let dir = temp_dir("bench")?;
    let all = sections(opts);
    let labels: Vec<String> = all.iter().flat_map(|s| s.labels(opts)).collect();
    let mut sections: Vec<Box<dyn Section>> =
        all.into_iter().filter(|s| s.selected(opts)).collect();
    if sections.is_empty() {
        return Err(format!(
            "--only {:?} selects nothing; the tables are:\n  {}",
            opts.only,
            labels.join("\n  ")
        )
        .into());
    }
    if opts.docs && (opts.quick || !opts.only.is_empty()) {
        return Err(
            "--docs writes docs/BENCH.md from a full run: not with --quick or --only".into(),
        );
    }
    let fd_limit = raise_fd_limit()?;
    let needed = CROWDS.iter().max().copied().unwrap_or(0) as u64 + 100;
    if fd_limit < needed {
        eprintln!(
            "bench: note: RLIMIT_NOFILE's hard limit is {fd_limit}; the {needed} descriptors of \
             the 10000-connection sections are out of reach (raise it with `ulimit -Hn` as root)"
        );
    }
    for run in 1..=opts.repeat {
        progress(&format!("bench run {run} of {}", opts.repeat));
        for section in &mut sections {
            section.run(bins, dir.path(), opts)?;
        }
    }
    let mut out = Output::default();
    for section in &sections {
        section.report(opts, &mut out);
    }
    let elapsed = started.elapsed();
    let meta = machine(opts, elapsed);
    println!(
        "\nbench: {} s per cell, {} run(s) of each (the median shown; spread: (max - min) / \
         median of the runs' figure), {}; loopback; every echoed byte checked",
        opts.duration.as_secs_f64(),
        opts.repeat,
        meta["machine"]["summary"].as_str().unwrap_or_default()
    );
    for table in &out.tables {
        println!("\n{}", table.text());
    }
    for note in &out.notes {
        println!("\nnote: {note}");
    }
    if !out.targets.is_empty() {
        println!(
            "\ntargets (the issues' goals), medians of {} run(s)\n{}",
            opts.repeat,
            out.targets_text()
        );
    }
    let written = write_files(bins, opts, &out, meta, out_dir);
    println!("\nbench: done in {:.0}s", elapsed.as_secs_f64());
    let mut failures = out.failures.clone();
    match written {
        Ok(files) => println!("bench: wrote {}", files.join(", ")),
        Err(e) => failures.push(format!("writing the results: {e}")),
    }
    if opts.quick {
        let missing = out.missing_figures();
        if !missing.is_empty() {
            failures.push(format!(
                "--quick: {} row(s) produced no figures:\n    {}",
                missing.len(),
                missing.join("\n    ")
            ));
        }
        if elapsed > QUICK_LIMIT {
            failures.push(format!(
                "--quick took {:.0}s, more than its {}s",
                elapsed.as_secs_f64(),
                QUICK_LIMIT.as_secs()
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} failure(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
        .into())
    }
}

/// When the bench started, for [`progress`].
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A progress line on stderr, with the seconds since the bench started: where the time goes.
fn progress(what: &str) {
    let secs = STARTED.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("--> [{secs:6.1}s] {what}");
}

/// How long `--quick` may take after its build (the issue's goal is a minute; a shared,
/// busy machine gets twice that before it fails).
const QUICK_LIMIT: Duration = Duration::from_secs(120);

/// The run's command, time, commit and machine, for the JSON and `docs/BENCH.md`.
fn machine(opts: &Options, elapsed: Duration) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("model name")?
                    .split_once(':')?
                    .1
                    .trim()
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024);
    let quiet = |cmd: Cmd| cmd.output().ok().filter(|o| o.status.success());
    let text = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let commit = quiet(Cmd::new("git").args(["rev-parse", "--short", "HEAD"]))
        .map(text)
        .unwrap_or_default();
    let date = quiet(Cmd::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(text)
        .unwrap_or_default();
    let python = quiet(Cmd::new("python3").arg("--version"))
        .map(text)
        .unwrap_or_default();
    json!({
        "command": opts.command_line(),
        "date": date,
        "commit": commit,
        "elapsed_s": elapsed.as_secs_f64(),
        "duration_s": opts.duration.as_secs_f64(),
        "repeat": opts.repeat,
        "connections": opts.connections,
        "quick": opts.quick,
        "machine": {
            "cores": cores,
            "kernel": kernel,
            "cpu": cpu,
            "memory_mib": memory_mib,
            "python": python,
            "summary": format!("{cores} core(s) ({cpu}), Linux {kernel}, {memory_mib} MiB"),
        },
    })
}

/// Writes the JSON, the chart and the Markdown under `out_dir` (and, with `--docs`, into
/// `docs/`); the paths written.
fn write_files(
    bins: &Bins,
    opts: &Options,
    out: &Output,
    meta: Value,
    out_dir: &Path,
) -> Result<Vec<String>> {
    let name = if opts.quick {
        "quick"
    } else if opts.only.is_empty() {
        "latest"
    } else {
        "only"
    };
    std::fs::create_dir_all(out_dir)?;
    let json_path = out_dir.join(format!("{name}.json"));
    let svg_path = out_dir.join(format!("{name}.svg"));
    let md_path = out_dir.join(format!("{name}.md"));
    let markdown_here = markdown(opts, out, &meta, &format!("{name}.svg"));
    let markdown_docs = markdown(opts, out, &meta, "bench-ratios.svg");
    let json = out.json(meta);
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")?;
    Cmd::new(bins.peers.join("bench-chart"))
        .arg("--input")
        .arg(&json_path)
        .arg("--output")
        .arg(&svg_path)
        .read()?;
    std::fs::write(&md_path, &markdown_here)?;
    let mut written = vec![
        json_path.display().to_string(),
        svg_path.display().to_string(),
        md_path.display().to_string(),
    ];
    if opts.docs {
        let docs = project_root().join("docs");
        let page = docs.join("BENCH.md");
        let old = std::fs::read_to_string(&page).map_err(|e| format!("{}: {e}", page.display()))?;
        std::fs::write(&page, splice(&old, &markdown_docs)?)?;
        std::fs::copy(&svg_path, docs.join("bench-ratios.svg"))?;
        written.push(page.display().to_string());
        written.push(docs.join("bench-ratios.svg").display().to_string());
    }
    Ok(written)
}

/// The markers of `docs/BENCH.md` between which `--docs` writes the run.
const BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench --docs`) -->";
const END: &str = "<!-- bench:end -->";

/// `page` with the text between its markers replaced by `generated`.
fn splice(page: &str, generated: &str) -> Result<String> {
    let (head, rest) = page
        .split_once(BEGIN)
        .ok_or_else(|| format!("docs/BENCH.md has no `{BEGIN}` line"))?;
    let (_, tail) = rest
        .split_once(END)
        .ok_or_else(|| format!("docs/BENCH.md has no `{END}` line after the first"))?;
    Ok(format!("{head}{BEGIN}\n{generated}\n{END}{tail}"))
}

/// The run as Markdown: the command and machine, the targets, the chart, every table.
fn markdown(opts: &Options, out: &Output, meta: &Value, chart: &str) -> String {
    let m = &meta["machine"];
    let mut md = format!(
        "Run {} at commit `{}`: `{}` ({} s per cell, {} run(s) of each; the tables show the \
         median run, the ratios are medians of the runs' ratios).\n\nMachine: {} core(s) ({}), \
         Linux {}, {} MiB of memory, {}.\n\n",
        meta["date"].as_str().unwrap_or_default(),
        meta["commit"].as_str().unwrap_or_default(),
        opts.command_line(),
        opts.duration.as_secs_f64(),
        opts.repeat,
        m["cores"],
        m["cpu"].as_str().unwrap_or_default(),
        m["kernel"].as_str().unwrap_or_default(),
        m["memory_mib"],
        m["python"].as_str().unwrap_or_default(),
    );
    md.push_str(&format!(
        "### Targets\n\n{}\n![ratios]({chart})\n\n",
        out.targets_markdown()
    ));
    md.push_str("### Tables\n\n");
    for table in &out.tables {
        md.push_str(&table.markdown());
        md.push('\n');
    }
    for note in &out.notes {
        md.push_str(&format!("- note: {}\n", note.replace('\n', " ")));
    }
    md
}

/// The servers of a set of echo tables, their workloads, the servers their ratio columns are
/// against, and their targets: the main echo rows ([`ECHO`]) and the prefork rows
/// ([`prefork::LINEUP`]).
struct Lineup {
    /// What the headings of its tables start with (before the workload's label).
    heading: &'static str,
    /// Its servers, in the order of their rows (and of their runs).
    servers: &'static [Server],
    /// The ratio columns: the server, the column's heading, the JSON key.
    bases: &'static [(Server, &'static str, &'static str)],
    /// Its workloads.
    workloads: fn(&Options) -> Vec<Spec>,
    /// Its targets.
    targets: fn() -> Vec<EchoTarget>,
}

impl Lineup {
    /// The heading of `spec`'s table.
    fn label(&self, spec: Spec) -> String {
        format!("{}{}", self.heading, spec.label())
    }

    /// Where `server` is in [`Lineup::servers`] (0 if it is not there).
    fn position(&self, server: Server) -> usize {
        self.servers
            .iter()
            .position(|s| *s == server)
            .unwrap_or_default()
    }
}

/// The main echo rows: every workload of [`workloads`] against every server of [`Server::ALL`].
const ECHO: Lineup = Lineup {
    heading: "",
    servers: &Server::ALL,
    bases: &[
        (Server::CPYTHON, "vs CPython", "vs_cpython"),
        (Server::Std, "vs std", "vs_std"),
        (Server::Tokio, "vs tokio", "vs_tokio"),
    ],
    workloads,
    targets: echo_targets,
};

/// Echo rows: every workload of a [`Lineup`] against each of its servers.
struct EchoSection {
    lineup: &'static Lineup,
    /// The selected workloads.
    specs: Vec<Spec>,
    /// `cells[workload][server][run]`.
    cells: Vec<Vec<Vec<Cell>>>,
}

impl EchoSection {
    fn new(lineup: &'static Lineup, opts: &Options) -> EchoSection {
        let specs: Vec<Spec> = (lineup.workloads)(opts)
            .into_iter()
            .filter(|spec| opts.selects(&lineup.label(*spec)))
            .collect();
        let cells = specs
            .iter()
            .map(|_| lineup.servers.iter().map(|_| Vec::new()).collect())
            .collect();
        EchoSection {
            lineup,
            specs,
            cells,
        }
    }

    /// `cells[..][server]` of the workload `spec`, if it ran.
    fn row(&self, spec: Spec) -> Option<&Vec<Vec<Cell>>> {
        let i = self.specs.iter().position(|s| *s == spec)?;
        Some(&self.cells[i])
    }
}

impl Section for EchoSection {
    fn labels(&self, opts: &Options) -> Vec<String> {
        (self.lineup.workloads)(opts)
            .into_iter()
            .map(|s| self.lineup.label(s))
            .collect()
    }

    fn selected(&self, _opts: &Options) -> bool {
        !self.specs.is_empty()
    }

    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()> {
        // A server is started for each group: the crowds get fresh ones, last, so that the
        // teardown of 10,000 connections (and threads) falls in no other row's window.
        let groups = [
            (Family::Tcp, false),
            (Family::Udp, false),
            (Family::Unix, false),
            (Family::Tcp, true),
        ];
        for (family, crowd) in groups {
            let indices: Vec<usize> = (0..self.specs.len())
                .filter(|&i| {
                    self.specs[i].family == family
                        && matches!(self.specs[i].load, Load::Crowd(_)) == crowd
                })
                .collect();
            if indices.is_empty() {
                continue;
            }
            for (s, &server) in self.lineup.servers.iter().enumerate() {
                let results = run_server(bins, dir, server, family, &indices, &self.specs, opts);
                for (i, cell) in indices.iter().zip(results) {
                    self.cells[*i][s].push(cell);
                }
            }
        }
        Ok(())
    }

    fn report(&self, _opts: &Options, out: &mut Output) {
        let lineup = self.lineup;
        let targets = (lineup.targets)();
        for (spec, row) in self.specs.iter().zip(&self.cells) {
            out.tables.push(table(lineup, *spec, row, &targets));
            for (server, runs) in lineup.servers.iter().zip(row) {
                for cell in runs {
                    if let Cell::Failed(e) = cell {
                        let failure = format!("{} / {}: {e}", lineup.label(*spec), server.name());
                        // CPython failing under a workload is a finding about CPython; any
                        // other server failing (a wrong byte, a stall, a crash) fails the bench.
                        if matches!(server, Server::CPython(_)) {
                            out.notes.push(format!(
                                "CPython failed a cell (a finding, not an error of the bench): \
                                 {failure}"
                            ));
                        } else {
                            out.failures.push(failure);
                        }
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
                    out.notes.push(format!(
                        "{} / {}: {resends} datagram(s) sent again after no answer within 1 s",
                        lineup.label(*spec),
                        server.name(),
                    ));
                }
            }
        }
        for target in &targets {
            let Some(row) = self.row(target.spec) else {
                continue;
            };
            out.targets.push(echo_target(lineup, target, row));
        }
    }
}

/// `target`'s line, from its workload's `row`.
fn echo_target(lineup: &Lineup, target: &EchoTarget, row: &[Vec<Cell>]) -> Target {
    let position = |server| lineup.position(server);
    let runs = &row[position(target.server)];
    let ratio = ratio(runs, &row[position(target.base)]);
    let what = format!(
        "{}, {}: >= {}x {}{}",
        target.server.short(),
        target.spec.short(),
        target.goal,
        target.base.short(),
        if target.no_starved {
            ", none starved"
        } else {
            ""
        }
    );
    let cpu = cpu_vs(runs, &row[position(target.base)], target.base.short());
    if !target.no_starved {
        return Target::at_least(what, ratio, target.goal, &format!(" (CPU/req {cpu})"));
    }
    let starved = summary(runs).ok().map(|s| s.starved);
    let mut t = Target::at_least(what, ratio, target.goal, "");
    t.figure = format!(
        "{}, {} starved (CPU/req {cpu})",
        times(ratio),
        starved.map_or("-".to_owned(), |s| s.to_string())
    );
    t.pass = match (t.pass, starved) {
        (Some(pass), Some(starved)) => Some(pass && starved == 0),
        _ => None,
    };
    for bar in &mut t.bars {
        bar.pass = t.pass;
    }
    t
}

/// `runs`' CPU time per request beside `base`'s, for the targets' lines.
fn cpu_vs(runs: &[Cell], base: &[Cell], name: &str) -> String {
    match (cpu_per_request(runs), cpu_per_request(base)) {
        (Some(a), Some(b)) => format!("{a:.1}us vs {name} {b:.1}us"),
        _ => "-".to_owned(),
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
    let skip = |i: usize| {
        if !server.in_row(specs[i]) {
            Some("not in this row")
        } else if opts.quick && matches!(server, Server::CPython(_)) && specs[i].burst() {
            Some(QUICK_CPYTHON_SKIP)
        } else {
            specs[i].skip_reason(server)
        }
    };
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
        progress(&format!("{} against {}", specs[i].label(), server.name()));
        let (proc, endpoint) = &mut server_proc;
        // A forking server's work is in its children, which its own CPU time does not count.
        // The prefork servers' work is in their workers.
        let forks = matches!(
            server,
            Server::Sockserve("forking") | Server::CPython("forking") | Server::Prefork(_)
        );
        let pid = (!forks).then(|| proc.guard.child_mut().id());
        let report = match (specs[i].load, &*endpoint) {
            (Load::Threads(load), _) => {
                loadgen::run_watching(endpoint, load, Reply::Echo, opts.duration, pid)
            }
            (Load::Crowd(n), Endpoint::Tcp(addr)) => {
                let in_flight = opening_at_once(server, threads);
                many::ping_pong_opening(*addr, n, crowd_window(opts), threads, in_flight, pid)
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

/// How many connections one of `threads` client threads may be opening at once against
/// `server` in the setup of a crowd or of the memory table: CPython's listen backlog is 5, and
/// a larger burst of connects gets resets and connections left unanswered for seconds (which
/// would measure its accept queue, not how it serves the connections once they are open).
fn opening_at_once(server: Server, threads: usize) -> usize {
    match server {
        Server::CPython(_) => (4 / threads.max(1)).max(1),
        _ => many::IN_FLIGHT,
    }
}

/// Why `--quick` leaves CPython out of the rows of 100 connections or more (and the memory
/// row): against its listen backlog of 5 they take from several to tens of seconds.
pub(crate) const QUICK_CPYTHON_SKIP: &str =
    "n/a in --quick: with its backlog of 5 this row takes several to tens of seconds";

/// The window of the crowd rows: `--quick`'s window is less than one round of 10,000
/// requests on a debug build, so its crowds get half a second (figures, if few).
fn crowd_window(opts: &Options) -> Duration {
    if opts.quick {
        opts.duration.max(QUICK_CROWD_WINDOW)
    } else {
        opts.duration
    }
}

/// The least window of a crowd row under `--quick`.
const QUICK_CROWD_WINDOW: Duration = Duration::from_millis(500);

/// Stops a server: SIGTERM, then (past [`SHUTDOWN_LIMIT`]) SIGKILL; either way it is reaped.
fn stop(mut proc: RunningServer) {
    let _ = proc.guard.signal("TERM");
    let _ = proc.guard.wait_within(SHUTDOWN_LIMIT);
}

/// Starts `server` for `family` (on port 0, or a socket file in `dir`), once it announced its
/// address.
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

/// (max - min) / median of `values`; 0 for fewer than two.
fn spread(values: &[f64]) -> f64 {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    match median(values.to_vec()) {
        Some(mid) if values.len() > 1 => (hi - lo) / mid.max(f64::EPSILON),
        _ => 0.0,
    }
}

/// The runs of one server in one section, summed up.
struct Summary<'a> {
    /// The run of median throughput, among those that completed.
    median: &'a Report,
    /// (max - min) / median of the completed runs' throughput.
    spread: f64,
    /// The most starved connections of any run.
    starved: usize,
    /// The fewest answers one connection got, in any run.
    min_per_connection: u64,
    /// The runs that failed (a wrong byte, a stall, a crash, a refused connection).
    errors: usize,
}

/// The summary of the completed runs of `runs`; without one, the first failure or skip.
fn summary(runs: &[Cell]) -> Result<Summary<'_>, &Cell> {
    let mut done: Vec<&Report> = runs
        .iter()
        .filter_map(|cell| match cell {
            Cell::Done(report) => Some(report),
            _ => None,
        })
        .collect();
    let errors = runs.iter().filter(|c| matches!(c, Cell::Failed(_))).count();
    if done.is_empty() {
        let first = runs
            .iter()
            .find(|c| matches!(c, Cell::Failed(_)))
            .or(runs.first());
        return Err(first.unwrap_or(&NOT_RUN));
    }
    done.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let rates: Vec<f64> = done.iter().map(|r| r.rate()).collect();
    Ok(Summary {
        median: done[done.len() / 2],
        spread: spread(&rates),
        starved: done.iter().map(|r| r.starved).max().unwrap_or(0),
        min_per_connection: done.iter().map(|r| r.min_per_connection).min().unwrap_or(0),
        errors,
    })
}

/// The cell of a server that has no run at all.
static NOT_RUN: Cell = Cell::Skipped(String::new());

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

/// One workload's table: a row per server in it, its median throughput and the spread of the
/// runs, latency (p50, p99, and the max, which shows a connection left waiting), the runs that
/// failed, the starved connections, the fewest answers of one connection, the server's CPU
/// time per request (user and system, all its threads: steadier than the throughput on a
/// shared machine), the median ratio of its throughput to that of each of the lineup's bases
/// (CPython's, the `std` floor's and tokio's in the main rows), and the targets of its row,
/// each with its verdict.
fn table(lineup: &Lineup, spec: Spec, row: &[Vec<Cell>], targets: &[EchoTarget]) -> Table {
    let position = |server| lineup.position(server);
    let mut columns = vec![
        "req/s", "spread", "p50", "p99", "max", "errors", "starved", "min/conn", "CPU/req",
    ];
    columns.extend(lineup.bases.iter().map(|(_, column, _)| *column));
    // A lineup without targets (the prefork rows) has no column of them.
    let with_targets = !targets.is_empty();
    if with_targets {
        columns.push("targets");
    }
    let mut table = Table::new(lineup.label(spec), &columns);
    for (server, runs) in lineup.servers.iter().zip(row) {
        if !server.in_row(spec) {
            continue;
        }
        let name = server.name();
        let sum = match summary(runs) {
            Ok(sum) => sum,
            Err(Cell::Failed(e)) if matches!(server, Server::CPython(_)) => {
                table.rows.push(Row::finding(name, e.clone()));
                continue;
            }
            Err(Cell::Failed(e)) => {
                table.rows.push(Row::failed(name, e.clone()));
                continue;
            }
            Err(Cell::Skipped(reason)) => {
                table.rows.push(Row::skipped(name, reason.clone()));
                continue;
            }
            Err(Cell::Done(_)) => continue,
        };
        let report = sum.median;
        let ratios: Vec<Option<f64>> = lineup
            .bases
            .iter()
            .map(|(base, _, _)| {
                (server != base)
                    .then(|| ratio(runs, &row[position(*base)]))
                    .flatten()
            })
            .collect();
        let verdicts: Vec<String> = targets
            .iter()
            .filter(|t| t.spec == spec && t.server == *server)
            .map(|t| {
                let r = ratio(runs, &row[position(t.base)]);
                let pass = r.map(|r| r >= t.goal && (!t.no_starved || sum.starved == 0));
                format!(
                    "{} >= {}x {} {}",
                    times(r),
                    t.goal,
                    t.base.short(),
                    verdict(pass)
                )
            })
            .collect();
        let cpu = cpu_per_request(runs);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mut json = json!({
            "req_s": report.rate(),
            "spread": sum.spread,
            "p50_us": us(report.percentile(50.0)),
            "p99_us": us(report.percentile(99.0)),
            "max_us": us(report.percentile(100.0)),
            "errors": sum.errors,
            "runs": runs.len(),
            "starved": sum.starved,
            "min_per_connection": sum.min_per_connection,
            "cpu_per_request_us": cpu,
        });
        for ((_, _, key), r) in lineup.bases.iter().zip(&ratios) {
            json[*key] = json!(r);
        }
        let mut cells = vec![
            format!("{:.0}", report.rate()),
            format!("{:.0}%", sum.spread * 100.0),
            micros(report.percentile(50.0)),
            micros(report.percentile(99.0)),
            micros(report.percentile(100.0)),
            sum.errors.to_string(),
            sum.starved.to_string(),
            sum.min_per_connection.to_string(),
            cpu.map_or_else(|| "-".to_owned(), |d| format!("{d:.1}us")),
        ];
        cells.extend(ratios.iter().map(|r| times(*r)));
        if with_targets {
            cells.push(if verdicts.is_empty() {
                "-".to_owned()
            } else {
                verdicts.join("; ")
            });
        }
        table.rows.push(Row::figures(name, cells, json));
    }
    table
}

fn micros(d: Duration) -> String {
    format!("{:.0}us", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
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
            .filter(|s| s.skip_reason(Server::CPYTHON).is_some())
            .count();
        assert_eq!(cpython_skips, 1, "only the 10000 connections");
        let one = Options {
            connections: 1,
            ..Options::default()
        };
        assert_eq!(workloads(&one).len(), 7);
        // The crowds: threading, --park, std, tokio; CPython at 1000 only.
        let runs = |spec: Spec| {
            Server::ALL
                .into_iter()
                .filter(|s| s.in_row(spec) && spec.skip_reason(*s).is_none())
                .count()
        };
        let crowds = |n| Spec::tcp(Load::Crowd(n));
        assert_eq!((runs(crowds(1_000)), runs(crowds(10_000))), (5, 4));
        // CPython's synchronous server is in the UDP row, its forking one in the
        // new-connection row, and neither elsewhere.
        let in_rows = |server: Server| specs.iter().filter(|s| server.in_row(**s)).count();
        assert_eq!(in_rows(Server::CPython("sync")), 1);
        assert_eq!(in_rows(Server::CPython("forking")), 1);
        assert_eq!(in_rows(Server::Tokio), 8);
    }

    #[test]
    fn every_echo_target_names_a_workload_of_the_default_run_and_servers_in_its_row() {
        let specs = workloads(&Options::default());
        let targets = echo_targets();
        assert_eq!(targets.len(), 11);
        for t in &targets {
            assert!(specs.contains(&t.spec), "{t:?}");
            for server in [t.server, t.base] {
                assert!(server.in_row(t.spec), "{t:?}: {server:?}");
                assert_eq!(t.spec.skip_reason(server), None, "{t:?}: {server:?}");
            }
        }
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
        assert_eq!(count(&only("udp")), 1);
        assert_eq!(count(&only("TCP PING-PONG")), 5);
        assert_eq!(count(&only("1000 conn")), 1);
        assert_eq!(count(&only("10000 conn")), 1);
        assert_eq!(count(&only("10 connection(s)")), 1);
        let two = Options {
            only: vec!["udp".to_owned(), "unix".to_owned()],
            ..Options::default()
        };
        assert_eq!(count(&two), 2);
        assert_eq!(count(&only("new connection")), 1);
        assert_eq!(count(&only("shutdown")), 0);
        // Each section by a word of its headings, and nothing else with it.
        let picked = |o: &Options| -> Vec<usize> {
            sections(o)
                .iter()
                .enumerate()
                .filter(|(_, s)| s.selected(o))
                .map(|(i, _)| i)
                .collect()
        };
        let every: Vec<usize> = (0..sections(&all).len()).collect();
        assert_eq!(picked(&all), every);
        assert_eq!(picked(&only("udp")), vec![0]);
        assert_eq!(picked(&only("prefork")), vec![1]);
        assert_eq!(picked(&only("4 workers")), vec![1]);
        assert_eq!(picked(&only("tcp ping-pong")), vec![0, 1]);
        assert_eq!(picked(&only("memory")), vec![2]);
        assert_eq!(picked(&only("http")), vec![3]);
        assert_eq!(picked(&only("shutdown")), vec![4]);
        assert_eq!(picked(&only("sigterm")), vec![4]);
        assert!(picked(&only("no such table")).is_empty());
    }

    #[test]
    fn a_failed_run_is_counted_beside_the_others_and_targets_show_in_the_row() {
        let report = |requests: usize| {
            Report::new(
                vec![Duration::from_micros(100); requests],
                Duration::from_secs(1),
                &[requests as u64],
            )
        };
        let spec = Spec::ping_pong(Family::Tcp, 10);
        let position = |server| ECHO.position(server);
        let mut row: Vec<Vec<Cell>> = Server::ALL.iter().map(|_| Vec::new()).collect();
        row[position(Server::Sockserve("threading"))] = vec![
            Cell::Done(report(900)),
            Cell::Failed("boom\nmore".into()),
            Cell::Done(report(1000)),
        ];
        row[position(Server::Std)] = (0..3).map(|_| Cell::Done(report(1000))).collect();
        row[position(Server::Park)] = vec![Cell::Failed("stuck".into())];
        let table = table(&ECHO, spec, &row, &echo_targets());
        let threading = &table.rows[position(Server::Sockserve("threading"))];
        let report::Outcome::Figures { cells, json } = &threading.outcome else {
            panic!("{threading:?}");
        };
        assert_eq!(json["errors"], json!(1));
        assert_eq!(cells[5], "1");
        // Two runs pair with std's: 0.9 and 1.0, the median the upper one.
        assert_eq!(json["vs_std"], json!(1.0));
        assert!(cells[12].contains("1.00x >= 0.9x std PASS"), "{cells:?}");
        assert!(cells[12].contains("CPython threading -"), "{cells:?}");
        let text = table.text();
        assert!(text.contains("FAILED: stuck"), "{text}");
        assert!(!text.contains("Forking"), "not in this row: {text}");
        let target = echo_target(&ECHO, &echo_targets()[0], &row);
        assert_eq!(target.pass, Some(true), "{target:?}");
        assert_eq!(target.bars.len(), 1);
        let missed = echo_target(&ECHO, &echo_targets()[1], &row);
        assert_eq!(missed.pass, None, "no CPython figure: {missed:?}");
    }

    #[test]
    fn the_docs_page_is_spliced_between_its_markers_only() {
        let page = format!("# Bench\n\nabout\n\n{BEGIN}\nold\n{END}\n\n## Limits\n");
        let new = splice(&page, "new table").unwrap();
        assert_eq!(
            new,
            format!("# Bench\n\nabout\n\n{BEGIN}\nnew table\n{END}\n\n## Limits\n")
        );
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{BEGIN} but no end"), "x").is_err());
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
        let cases = [
            (Server::CPYTHON, Family::Tcp),
            (Server::CPYTHON, Family::Udp),
            (Server::CPYTHON, Family::Unix),
            (Server::CPython("sync"), Family::Udp),
            (Server::CPython("forking"), Family::Tcp),
        ];
        for (server, family) in cases {
            let (mut proc, endpoint) = start(&bins, dir.path(), server, family).unwrap();
            let workload = if server == Server::CPython("forking") {
                Workload::ConnectPerRequest { connections: 2 }
            } else {
                Workload::PingPong { connections: 2 }
            };
            let report =
                loadgen::run(&endpoint, workload, Reply::Echo, Duration::from_millis(200)).unwrap();
            assert!(report.requests > 0, "{server:?} {family:?}");
            proc.check_alive().unwrap();
            proc.guard.signal("TERM").unwrap();
            let status = proc.guard.wait_within(SHUTDOWN_LIMIT).unwrap();
            assert!(status.success(), "{server:?} {family:?}: {status}");
        }
    }
}
