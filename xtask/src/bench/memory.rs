//! The memory table of `cargo xtask bench` (`--only memory`): each server holding [`IDLE`]
//! idle TCP connections (each did one exchange, then says nothing; CPython's are opened a few
//! at a time, see `opening_at_once`), its `VmRSS` from `/proc/PID/status` before and while they are open, KiB per
//! connection and its threads;
//! and the target of the waiting-connections issue (`--park --max-threads 16` in at most
//! 40 MiB).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::report::{Output, Row, Table, Target};
use super::{Bins, Options, PARK_THREADS, Server, many, median, mib, start, stop};
use crate::Result;
use crate::bench::loadgen::Endpoint;
use crate::integration::Family;

/// The idle connections of the memory table.
pub(super) const IDLE: usize = 10_000;

/// The servers of the memory table, and why one does not run.
const SERVERS: [(Server, Option<&str>); 7] = [
    (Server::Sockserve("threading"), None),
    (Server::Park, None),
    (
        Server::Sockserve("sync"),
        Some("n/a: serves one connection at a time"),
    ),
    (
        Server::Sockserve("forking"),
        Some("n/a: a process per connection"),
    ),
    (Server::Std, None),
    (Server::CPython("threading"), None),
    (Server::Tokio, None),
];

/// Why `server` has no figure in this table, if it has none.
fn skip(server: Server, opts: &Options) -> Option<&'static str> {
    let (_, reason) = SERVERS.iter().find(|(s, _)| *s == server)?;
    match (reason, server) {
        (Some(reason), _) => Some(reason),
        (None, Server::CPython(_)) if opts.quick => Some(super::QUICK_CPYTHON_SKIP),
        (None, _) => None,
    }
}

/// The table's heading, and what `--only` matches it by.
pub(super) fn label() -> String {
    format!("memory: {IDLE} idle connections (one exchange each, then silent)")
}

/// How long the server may settle after the last idle connection's answer before its RSS is
/// read (the turn that answered may still be ending: `--park` releases the read buffer and
/// goes back to the reactor after the write).
const SETTLE: Duration = Duration::from_millis(250);

/// One server's memory with no connection and with its idle ones.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// The idle connections.
    connections: usize,
    /// VmRSS in KiB just after it announced its address.
    empty_kib: u64,
    /// VmRSS in KiB with the idle connections open.
    idle_kib: u64,
    /// Its threads with the idle connections open.
    threads: u64,
}

impl Memory {
    fn per_connection_kib(self) -> f64 {
        self.idle_kib.saturating_sub(self.empty_kib) as f64 / self.connections.max(1) as f64
    }
}

/// The runs of every server: `cells[server][run]`.
#[derive(Debug, Default)]
pub(super) struct Section {
    cells: Vec<Vec<Result<Memory, String>>>,
}

impl super::Section for Section {
    fn labels(&self, _opts: &Options) -> Vec<String> {
        vec![label()]
    }

    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()> {
        self.cells.resize_with(SERVERS.len(), Vec::new);
        for (s, (server, _)) in SERVERS.into_iter().enumerate() {
            if skip(server, opts).is_some() {
                continue;
            }
            super::progress(&format!("{} against {}", label(), server.name()));
            self.cells[s].push(idle_memory(bins, dir, server).map_err(|e| e.to_string()));
        }
        Ok(())
    }

    fn report(&self, opts: &Options, out: &mut Output) {
        let mut table = Table::new(
            label(),
            &[
                "idle conns",
                "RSS, no conn",
                "RSS, idle",
                "spread",
                "KiB/conn",
                "threads",
            ],
        );
        for ((server, _), runs) in SERVERS.iter().zip(&self.cells) {
            let name = server.name();
            if let Some(reason) = skip(*server, opts) {
                table.rows.push(Row::skipped(name, reason));
                continue;
            }
            for e in runs.iter().filter_map(|r| r.as_ref().err()) {
                let failure = format!("{} / {name}: {e}", label());
                if matches!(server, Server::CPython(_)) {
                    out.notes.push(format!(
                        "CPython failed (a finding about CPython): {failure}"
                    ));
                } else {
                    out.failures.push(failure);
                }
            }
            match medians(runs) {
                Ok((m, spread)) => table.rows.push(Row::figures(
                    name,
                    vec![
                        m.connections.to_string(),
                        mib(m.empty_kib as f64),
                        mib(m.idle_kib as f64),
                        format!("{:.0}%", spread * 100.0),
                        format!("{:.1}", m.per_connection_kib()),
                        m.threads.to_string(),
                    ],
                    json!({
                        "rss_empty_kib": m.empty_kib,
                        "rss_idle_kib": m.idle_kib,
                        "spread": spread,
                        "kib_per_connection": m.per_connection_kib(),
                        "threads": m.threads,
                        "connections": m.connections,
                    }),
                )),
                Err(e) if matches!(server, Server::CPython(_)) => {
                    table.rows.push(Row::finding(name, e))
                }
                Err(e) => table.rows.push(Row::failed(name, e)),
            }
        }
        out.tables.push(table);
        let park = SERVERS.iter().position(|(s, _)| *s == Server::Park);
        if let Some(runs) = park.and_then(|i| self.cells.get(i)) {
            let idle = medians(runs).ok().map(|(m, _)| m.idle_kib as f64);
            let pass = idle.map(|kib| kib <= 40.0 * 1024.0);
            out.targets.push(Target {
                what: format!("--park --max-threads {PARK_THREADS}, {IDLE} idle: RSS <= 40 MiB"),
                figure: idle.map_or("-".to_owned(), mib),
                pass,
                // A bar of headroom: 40 MiB over the RSS, at least 1 to pass.
                bars: idle
                    .map(|kib| super::report::Bar {
                        label: format!("--park, {IDLE} idle: 40 MiB / RSS"),
                        ratio: 40.0 * 1024.0 / kib.max(1.0),
                        goal: Some(1.0),
                        pass,
                    })
                    .into_iter()
                    .collect(),
            });
        }
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

/// Starts `server` (TCP), reads its RSS, opens its idle connections, reads its RSS and
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
        let connections = IDLE;
        let idle = many::hold_idle(addr, connections, super::opening_at_once(server, 1))?;
        // Not a synchronisation: the figure is read after the server had a moment to finish
        // the turns that answered (see SETTLE).
        std::thread::sleep(SETTLE);
        let memory = Memory {
            connections,
            empty_kib,
            idle_kib: proc_status(pid, "VmRSS")?,
            threads: proc_status(pid, "Threads")?,
        };
        eprintln!(
            "    {connections} idle connections set up in {:.1}s",
            idle.setup.as_secs_f64()
        );
        drop(idle);
        proc.check_alive()?;
        Ok(memory)
    })();
    stop(proc);
    result
}

/// The median of each figure over the completed `runs` and the spread of the idle RSS; the
/// first failure without one.
fn medians(runs: &[Result<Memory, String>]) -> Result<(Memory, f64), String> {
    let done: Vec<Memory> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    if done.is_empty() {
        return Err(runs
            .iter()
            .find_map(|r| r.as_ref().err().cloned())
            .unwrap_or_else(|| "no run".to_owned()));
    }
    let med = |f: fn(&Memory) -> u64| median(done.iter().map(|m| f(m) as f64).collect());
    let idle: Vec<f64> = done.iter().map(|m| m.idle_kib as f64).collect();
    match (
        med(|m| m.empty_kib),
        med(|m| m.idle_kib),
        med(|m| m.threads),
    ) {
        (Some(empty), Some(idle_kib), Some(threads)) => Ok((
            Memory {
                connections: done[0].connections,
                empty_kib: empty as u64,
                idle_kib: idle_kib as u64,
                threads: threads as u64,
            },
            super::spread(&idle),
        )),
        _ => Err("no run".to_owned()),
    }
}
