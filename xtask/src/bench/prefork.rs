//! The bench's prefork section ("prefork echo, 4 workers", `--only prefork`): the
//! `prefork_server` example (a supervisor and 4 worker processes, each a threading echo
//! server, or a synchronous one) under the TCP workloads of the main tables, side by side with
//! the one-process `echo_server --mode threading` and tokio, as ratios, medians of
//! `--repeat` runs (each on freshly started servers). Every echoed byte is checked.
//!
//! It plugs into [`super::bench`] by one call, [`section`], which returns the failures of its
//! cells (empty when `--only` does not select it), and [`selected`] for the "selects nothing"
//! check.

use std::time::Duration;

use super::loadgen::{self, Endpoint, Report, Workload};
use super::{Bins, Options, STARTUP_LIMIT, align, example_bin, median, micros, stop};
use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog};
use crate::integration::Reply;

/// The section's heading, and what `--only` matches it by.
pub(crate) const LABEL: &str = "prefork echo, 4 workers";
/// The workers of the prefork servers.
const WORKERS: usize = 4;

/// The servers of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `prefork_server --workers 4 --mode MODE`.
    Prefork(&'static str),
    /// `echo_server --mode threading`: one process.
    Threading,
    /// The peers' `tokio-echo`.
    Tokio,
}

const SERVERS: [Server; 4] = [
    Server::Prefork("threading"),
    Server::Prefork("sync"),
    Server::Threading,
    Server::Tokio,
];

impl Server {
    fn name(self) -> String {
        match self {
            Server::Prefork(mode) => format!("prefork {mode}, {WORKERS} workers"),
            Server::Threading => "sockserve threading (1 process)".to_owned(),
            Server::Tokio => "tokio".to_owned(),
        }
    }

    fn cmd(self, bins: &Bins) -> Cmd {
        let addr = ["--addr", "127.0.0.1:0"];
        match self {
            Server::Prefork(mode) => Cmd::new(example_bin(&bins.examples, "prefork_server"))
                .args(["--workers", &WORKERS.to_string(), "--mode", mode])
                .args(addr),
            Server::Threading => Cmd::new(example_bin(&bins.examples, "echo_server"))
                .args(["--mode", "threading"])
                .args(addr),
            Server::Tokio => Cmd::new(bins.peers.join("tokio-echo"))
                .args(["--family", "tcp"])
                .args(addr),
        }
    }

    /// Why it does not run `workload`, if it does not: a synchronous worker serves one
    /// connection at a time, so more persistent connections than workers would wait.
    fn skips(self, workload: Workload) -> bool {
        matches!(
            (self, workload),
            (Server::Prefork("sync"), Workload::PingPong { connections }) if connections > WORKERS
        )
    }
}

/// Whether `--only` selects the section.
pub(crate) fn selected(opts: &Options) -> bool {
    opts.selects(LABEL) || opts.selects("prefork")
}

/// Runs the section if `--only` selects it and prints its table; the failures of its cells.
pub(crate) fn section(bins: &Bins, opts: &Options) -> Vec<String> {
    if !selected(opts) {
        return Vec::new();
    }
    let workloads = [
        Workload::PingPong { connections: 1 },
        Workload::PingPong {
            connections: opts.connections,
        },
        Workload::PingPong { connections: 100 },
        Workload::ConnectPerRequest {
            connections: opts.connections,
        },
    ];
    // runs[server][workload][run]
    let mut runs: Vec<Vec<Vec<Result<Report, String>>>> = SERVERS
        .iter()
        .map(|_| workloads.iter().map(|_| Vec::new()).collect())
        .collect();
    for run in 1..=opts.repeat {
        eprintln!("==> bench: {LABEL}, run {run} of {}", opts.repeat);
        for (s, server) in SERVERS.into_iter().enumerate() {
            let cells = run_server(bins, server, &workloads, opts.duration);
            for (w, cell) in cells.into_iter().enumerate() {
                runs[s][w].push(cell);
            }
        }
    }
    let mut failures = Vec::new();
    println!("\n{LABEL} (ratios: medians of the per-run ratios)");
    let mut lines = vec![
        [
            "  workload / server",
            "req/s",
            "p50",
            "p99",
            "vs 1 process",
            "vs tokio",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let base = |w: usize, s: Server| &runs[position(s)][w];
    for (w, workload) in workloads.iter().enumerate() {
        lines.push(vec![format!("  {}", workload.label())]);
        for (s, server) in SERVERS.iter().enumerate() {
            let cells = &runs[s][w];
            let mut line = vec![format!("    {}", server.name())];
            if server.skips(*workload) {
                line.push("n/a: one connection at a time per worker".to_owned());
                lines.push(line);
                continue;
            }
            let done: Vec<&Report> = cells.iter().filter_map(|c| c.as_ref().ok()).collect();
            for e in cells.iter().filter_map(|c| c.as_ref().err()) {
                failures.push(format!(
                    "{LABEL} / {} / {}: {e}",
                    workload.label(),
                    server.name()
                ));
            }
            let Some(mid) = median_report(&done) else {
                line.push("FAILED".to_owned());
                lines.push(line);
                continue;
            };
            line.extend([
                format!("{:.0}", mid.rate()),
                micros(mid.percentile(50.0)),
                micros(mid.percentile(99.0)),
                show(ratio(cells, base(w, Server::Threading))),
                show(ratio(cells, base(w, Server::Tokio))),
            ]);
            lines.push(line);
        }
    }
    println!("{}", align(&lines));
    failures
}

/// Starts `server`, runs each workload it takes against it, stops it.
fn run_server(
    bins: &Bins,
    server: Server,
    workloads: &[Workload],
    duration: Duration,
) -> Vec<Result<Report, String>> {
    let log = StderrLog::default();
    let cmd = server.cmd(bins).stderr_to(&log);
    let mut proc = match RunningServer::start(&cmd, STARTUP_LIMIT) {
        Ok(proc) => proc,
        Err(e) => {
            let why = format!(
                "{e}\n{}",
                log.text_within(Duration::from_secs(2)).trim_end()
            );
            return workloads.iter().map(|_| Err(why.clone())).collect();
        }
    };
    let cells = workloads
        .iter()
        .map(|&workload| {
            if server.skips(workload) {
                return Err("skipped".to_owned());
            }
            eprintln!(
                "--> {LABEL}: {} against {}",
                workload.label(),
                server.name()
            );
            let endpoint = Endpoint::Tcp(proc.addr.parse().map_err(|e| format!("{e}"))?);
            // The prefork servers' work is in their workers: no CPU figure of the supervisor.
            let report = loadgen::run_watching(&endpoint, workload, Reply::Echo, duration, None)
                .map_err(|e| e.to_string())?;
            proc.check_alive().map_err(|e| e.to_string())?;
            Ok(report)
        })
        .collect();
    stop(proc);
    cells
}

fn position(server: Server) -> usize {
    SERVERS
        .iter()
        .position(|s| *s == server)
        .unwrap_or_default()
}

/// The run of median throughput.
fn median_report<'a>(done: &[&'a Report]) -> Option<&'a Report> {
    let mut sorted = done.to_vec();
    sorted.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    sorted.get(sorted.len() / 2).copied()
}

/// The median of the per-run ratios of `of`'s throughput to `base`'s.
fn ratio(of: &[Result<Report, String>], base: &[Result<Report, String>]) -> Option<f64> {
    median(
        of.iter()
            .zip(base)
            .filter_map(|pair| match pair {
                (Ok(a), Ok(b)) => Some(a.rate() / b.rate().max(f64::EPSILON)),
                _ => None,
            })
            .collect(),
    )
}

fn show(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}
