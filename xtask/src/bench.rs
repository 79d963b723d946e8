//! `cargo xtask bench`: this project's example echo server and CPython's `socketserver` echo
//! server under the same load generator, side by side in one run, as ratios.
//!
//! `basic_server` serves one client after another, so it is compared with CPython's plain
//! `TCPServer`, and persistent workloads use one connection ([`BASIC_SERVER_MODE`]).
//! Both servers are started once, on 127.0.0.1 port 0, and announce `listening on ADDR`; each
//! workload then runs against one and then the other for `--duration` seconds. Only loopback
//! traffic. The servers are built in release (`cargo build --release -p sockserve-examples
//! --examples`), which is why this is not part of `ci`. The load generator itself is
//! [`loadgen`]; the servers of DESIGN.md's performance plan (sync, threading and forking, a bare
//! `std` floor, UDP and Unix workloads) become more rows of [`targets`] and [`workloads`].

mod loadgen;

use std::net::SocketAddr;
use std::time::Duration;

use crate::Result;
use crate::cmd::{Cmd, RunningServer};
use crate::integration::{Reply, example_bin, examples_dir};
use crate::metadata::Workspace;

/// The command-line options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long each workload runs against each server.
    pub(crate) duration: Duration,
    /// Concurrent connections of the multi-connection workloads.
    pub(crate) connections: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            duration: Duration::from_secs(3),
            connections: 10,
        }
    }
}

/// How long a server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// How a server under test serves its clients, and so which of CPython's classes it is
/// compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "the threading and forking servers of the examples are to come"
)]
enum Mode {
    /// One client after another (`TCPServer`).
    Sync,
    /// A thread per client (`ThreadingTCPServer`).
    Threading,
    /// A process per client (`ForkingTCPServer`).
    Forking,
}

impl Mode {
    /// The `argv[1]` of [`CPYTHON_ECHO_SERVER`].
    fn cpython_class(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Threading => "threading",
            Mode::Forking => "forking",
        }
    }

    /// A server that serves one client at a time cannot take several persistent connections:
    /// the second would wait until the first closes.
    fn concurrent(self) -> bool {
        self != Mode::Sync
    }
}

/// `basic_server` serves one client after another, so the comparison is with `TCPServer`.
const BASIC_SERVER_MODE: Mode = Mode::Sync;
/// `basic_server` answers uppercased; the CPython server is told to do the same work.
const BASIC_SERVER_REPLY: Reply = Reply::Upper;

/// CPython's echo server: `socketserver` with a `StreamRequestHandler` that writes back each
/// chunk it reads until the client closes. `argv[1]` picks the class (`sync`, `threading`,
/// `forking`), `argv[2]` the reply (`echo`, or `upper` for `bytes.upper()`); it prints `listening on HOST:PORT` once bound to 127.0.0.1 port 0. Python's
/// defaults are kept (backlog 5, Nagle on) because they are what a Python user gets.
pub(crate) const CPYTHON_ECHO_SERVER: &str = r#"
import socketserver, sys
base = {
    "sync": socketserver.TCPServer,
    "threading": socketserver.ThreadingTCPServer,
    "forking": socketserver.ForkingTCPServer,
}[sys.argv[1]]
transform = {"echo": bytes, "upper": bytes.upper}[sys.argv[2]]

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            data = self.rfile.read1(65536)
            if not data:
                break
            self.wfile.write(transform(data))

class Server(base):
    allow_reuse_address = True
    daemon_threads = True

with Server(("127.0.0.1", 0), Echo) as server:
    host, port = server.server_address
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()
"#;

/// The command that starts [`CPYTHON_ECHO_SERVER`] with the given class (`sync`, `threading`,
/// `forking`) and reply.
pub(crate) fn cpython_echo_server(class: &str, reply: Reply) -> Cmd {
    Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(CPYTHON_ECHO_SERVER, "CPYTHON_ECHO_SERVER")
        .args([class, reply.python_name()])
}

/// One server under test.
struct Target {
    /// Its column heading.
    name: &'static str,
    /// How to start it.
    cmd: Cmd,
}

fn targets(release_examples: &std::path::Path) -> Vec<Target> {
    vec![
        Target {
            name: "sockserve",
            cmd: Cmd::new(example_bin(release_examples, "basic_server"))
                .args(["--addr", "127.0.0.1:0"])
                .quiet_stderr(),
        },
        Target {
            name: "CPython",
            cmd: cpython_echo_server(BASIC_SERVER_MODE.cpython_class(), BASIC_SERVER_REPLY)
                .quiet_stderr(),
        },
    ]
}

/// The workloads for servers of `mode`: persistent ping-pong on one connection, on
/// `--connections` connections if the servers are concurrent, and a new connection per request
/// from `--connections` clients (a sequential server queues them in its backlog).
fn workloads(opts: &Options, mode: Mode) -> Vec<loadgen::Workload> {
    use loadgen::Workload::{ConnectPerRequest, PingPong};
    let mut workloads = vec![PingPong { connections: 1 }];
    if mode.concurrent() && opts.connections > 1 {
        workloads.push(PingPong {
            connections: opts.connections,
        });
    }
    workloads.push(ConnectPerRequest {
        connections: opts.connections,
    });
    workloads
}

/// Builds the servers in release, runs every workload against each, prints the table.
pub(crate) fn run(opts: &Options) -> Result<()> {
    Cmd::cargo(&[
        "build",
        "--release",
        "-p",
        "sockserve-examples",
        "--examples",
    ])
    .run()?;
    let release = examples_dir(&Workspace::load()?, "release");
    let mut servers = Vec::new();
    for target in targets(&release) {
        let server = RunningServer::start(&target.cmd, STARTUP_LIMIT)?;
        let addr: SocketAddr = server
            .addr
            .parse()
            .map_err(|e| format!("{}: bad address {:?}: {e}", target.name, server.addr))?;
        servers.push((target.name, addr, server));
    }
    let workloads = workloads(opts, BASIC_SERVER_MODE);
    eprintln!(
        "bench: {} workload(s) x {} server(s), {:?} each",
        workloads.len(),
        servers.len(),
        opts.duration
    );
    let mut rows = Vec::new();
    for workload in workloads {
        let mut reports = Vec::new();
        for (name, addr, server) in &mut servers {
            eprintln!("--> {} against {name} ({addr})", workload.label());
            let report = loadgen::run(*addr, workload, BASIC_SERVER_REPLY, opts.duration)
                .map_err(|e| format!("{name}: {e}"))?;
            server.check_alive()?;
            reports.push(report);
        }
        rows.push((workload, reports));
    }
    let names: Vec<&str> = servers.iter().map(|(name, ..)| *name).collect();
    println!("{}", table(&names, &rows));
    Ok(())
    // `servers` drop here: every server is killed and waited.
}

/// The results as a text table: one row per workload, each server's req/s, p50 and p99, and
/// the first server's throughput as a multiple of each other server's.
fn table(names: &[&str], rows: &[(loadgen::Workload, Vec<loadgen::Report>)]) -> String {
    let mut header = vec!["workload".to_owned()];
    for name in names {
        header.extend([
            format!("{name} req/s"),
            format!("{name} p50"),
            format!("{name} p99"),
        ]);
    }
    for name in names.iter().skip(1) {
        header.push(format!("{}/{name}", names[0]));
    }
    let mut lines = vec![header];
    for (workload, reports) in rows {
        let mut line = vec![workload.label()];
        for report in reports {
            line.extend([
                format!("{:.0}", report.rate()),
                micros(report.percentile(50.0)),
                micros(report.percentile(99.0)),
            ]);
        }
        for other in reports.iter().skip(1) {
            line.push(format!(
                "{:.2}x",
                reports[0].rate() / other.rate().max(f64::EPSILON)
            ));
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|col| lines.iter().map(|l| l[col].len()).max().unwrap_or(0))
        .collect();
    lines
        .iter()
        .map(|line| {
            line.iter()
                .zip(&widths)
                .enumerate()
                .map(|(col, (cell, width))| {
                    if col == 0 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn micros(d: Duration) -> String {
    format!("{:.0}us", d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_follow_the_options() {
        let one = Options {
            connections: 1,
            ..Options::default()
        };
        assert_eq!(workloads(&one, Mode::Threading).len(), 2);
        assert_eq!(workloads(&Options::default(), Mode::Threading).len(), 3);
        assert_eq!(workloads(&Options::default(), Mode::Sync).len(), 2);
        assert_eq!(Mode::Forking.cpython_class(), "forking");
    }

    /// The CPython server the bench compares against, under the load generator: proves the
    /// harness end to end (start, announce, load, check, kill) without the examples.
    #[test]
    fn cpython_echo_server_under_load() {
        let cmd = cpython_echo_server("threading", Reply::Upper);
        let mut server = RunningServer::start(&cmd, STARTUP_LIMIT).unwrap();
        let addr: SocketAddr = server.addr.parse().unwrap();
        for workload in [
            loadgen::Workload::PingPong { connections: 2 },
            loadgen::Workload::ConnectPerRequest { connections: 2 },
        ] {
            let report =
                loadgen::run(addr, workload, Reply::Upper, Duration::from_millis(300)).unwrap();
            assert!(report.requests > 0, "{workload:?}");
        }
        server.check_alive().unwrap();
        let rows = vec![(
            loadgen::Workload::PingPong { connections: 1 },
            vec![
                loadgen::run(
                    addr,
                    loadgen::Workload::PingPong { connections: 1 },
                    Reply::Upper,
                    Duration::from_millis(100),
                )
                .unwrap(),
            ],
        )];
        let text = table(&["CPython"], &rows);
        assert!(text.starts_with("workload"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
