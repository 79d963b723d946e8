//! `cargo xtask soak [--short]`: sustained echo load against `echo_server`, every byte checked,
//! and the server's resources compared before, during and after it:
//!
//! - `echo_server --mode threading`: 1,000,000 requests over 64 connections;
//! - `echo_server --mode threading --park --max-threads 16`: 200,000 requests over 1,000
//!   connections, which wait in the server's reactor between their messages.
//!
//! A request is one message (1 to 1,024 bytes, a pattern of its connection and number) and
//! its whole echo, compared byte for byte; a connection sends its next message once the echo
//! of the last came. 16 client threads share the connections, each sending on all of its own
//! before reading their echoes. The run fails on any error or wrong byte, and unless the
//! server's figures hold: its descriptors (`/proc/PID/fd`) are as many at the end, once the
//! clients closed, as before the first connected; its RSS at the end of the load is within 10%
//! or 4 MiB (the larger) of its RSS after the warm-up (the first tenth of the requests); and
//! its threads come back to what they were before the load once idle workers retire
//! (`Threading`'s idle timeout, 10 s: `echo_server` has no flag to shorten it, so the soak
//! waits for it). Then SIGTERM: the server must stop gracefully (status 0).
//!
//! The full soak builds `echo_server` in release mode and takes a few minutes; `--short`, a
//! step of `cargo xtask ci`, runs 50,000 requests (30,000 and 20,000) on the debug build in
//! under a minute, the two idle timeouts included.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::cmd::{Cmd, RunningServer};
use crate::integration::{example_bin, examples_dir};
use crate::metadata::Workspace;

/// How long the server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// The longest a client waits for one echo, or to send one message.
const IO_LIMIT: Duration = Duration::from_secs(20);
/// The client threads, whatever the connections.
const CLIENT_THREADS: usize = 16;
/// The longest message.
const MAX_MESSAGE: usize = 1024;
/// `Threading`'s idle timeout (`DEFAULT_THREAD_IDLE_TIMEOUT`), which retires the workers.
const THREAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the load the server's descriptors and threads may take to come back.
const SETTLE_LIMIT: Duration = Duration::from_secs(THREAD_IDLE_TIMEOUT.as_secs() + 10);
/// How long the graceful stop may take (its grace, 2 s, and `STOP_BOUND`, 3 s, with margin).
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// The RSS drift allowed between warm-up and end: this fraction of the first, or
/// [`RSS_SLACK_KIB`], whichever is larger.
const RSS_DRIFT: f64 = 0.10;
/// See [`RSS_DRIFT`].
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// One soak: the server's arguments, the connections and the requests.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    connections: usize,
    requests: u64,
    /// The whole case's bound (an error, not a hang, if the server slows to a crawl).
    limit: Duration,
}

/// The full soak's cases.
const FULL: &[Case] = &[
    Case {
        name: "threading, 64 connections",
        args: &["--mode", "threading"],
        connections: 64,
        requests: 1_000_000,
        limit: Duration::from_secs(900),
    },
    Case {
        name: "threading --park --max-threads 16, 1,000 connections",
        args: &["--mode", "threading", "--park", "--max-threads", "16"],
        connections: 1_000,
        requests: 200_000,
        limit: Duration::from_secs(600),
    },
];

/// The short soak of `cargo xtask ci`: 50,000 requests in all.
const SHORT: &[Case] = &[
    Case {
        name: "threading, 64 connections (short)",
        args: &["--mode", "threading"],
        connections: 64,
        requests: 30_000,
        limit: Duration::from_secs(60),
    },
    Case {
        name: "threading --park --max-threads 16, 1,000 connections (short)",
        args: &["--mode", "threading", "--park", "--max-threads", "16"],
        connections: 1_000,
        requests: 20_000,
        limit: Duration::from_secs(60),
    },
];

/// What `/proc/PID` says of the server at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    fds: u64,
    threads: u64,
    rss_kib: u64,
}

/// What one case measured.
#[derive(Debug)]
struct Figures {
    requests: u64,
    errors: u64,
    bytes: u64,
    start: Sample,
    warm: Sample,
    loaded: Sample,
    end: Sample,
    load_secs: f64,
}

/// `cargo xtask soak`: the full cases (release build), or with `short` CI's (debug build).
pub(crate) fn run(short: bool) -> Result<()> {
    let (profile, cases) = if short {
        ("debug", SHORT)
    } else {
        ("release", FULL)
    };
    let mut build = Cmd::cargo(&[
        "build",
        "-p",
        "sockserve-examples",
        "--example",
        "echo_server",
    ]);
    if !short {
        build = build.arg("--release");
    }
    build.run()?;
    let examples = examples_dir(&Workspace::load()?, profile);
    for case in cases {
        eprintln!("--> soak: echo_server {}", case.name);
        let figures =
            run_case(&examples, case).map_err(|e| format!("soak `{}`: {e}", case.name))?;
        println!("soak: {:<62} {}", case.name, report(&figures));
    }
    Ok(())
}

/// The figures in one line.
fn report(f: &Figures) -> String {
    format!(
        "requests={} errors={} bytes={} in {:.1}s ({:.0}/s); fds {}->{}; threads {}->{} \
         (loaded {}); rss_kib start={} warm={} end_of_load={} after={}",
        f.requests,
        f.errors,
        f.bytes,
        f.load_secs,
        f.requests as f64 / f.load_secs.max(1e-9),
        f.start.fds,
        f.end.fds,
        f.start.threads,
        f.end.threads,
        f.loaded.threads,
        f.start.rss_kib,
        f.warm.rss_kib,
        f.loaded.rss_kib,
        f.end.rss_kib,
    )
}

fn run_case(examples: &Path, case: &Case) -> Result<Figures> {
    let cmd = Cmd::new(example_bin(examples, "echo_server"))
        .args(case.args)
        .args(["--addr", "127.0.0.1:0"]);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id();
    let addr: SocketAddr = server
        .addr
        .parse()
        .map_err(|e| format!("announced {:?}: {e}", server.addr))?;
    // Right after its announcement the server may still be opening what it keeps (the
    // descriptor count moved by one in a first try): the start is two samples alike, 100 ms
    // apart.
    let start = settled(pid)?;
    let deadline = Instant::now() + case.limit;

    let load = Load::new(case.requests);
    let began = Instant::now();
    let clients = start_clients(addr, case, &load, deadline)?;
    // The warm-up: the first tenth of the requests.
    wait_for(&load, deadline, || load.done() >= case.requests / 10)?;
    let warm = sample(pid)?;
    wait_for(&load, deadline, || {
        load.finished_threads.load(Ordering::SeqCst) == clients.len()
    })?;
    let load_secs = began.elapsed().as_secs_f64();
    let loaded = sample(pid)?;
    let mut streams = Vec::new();
    for client in clients {
        streams.extend(client.join().map_err(|_| "a client thread panicked")?);
    }
    let errors = load.errors.load(Ordering::SeqCst);
    if errors > 0 {
        let first = load
            .first_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        return Err(format!("{errors} errors; the first: {first}").into());
    }
    // Every connection closed: its descriptor in the server must go, and the workers retire.
    drop(streams);
    let settle = Instant::now() + SETTLE_LIMIT;
    let end = loop {
        let now = sample(pid)?;
        if (now.fds, now.threads) == (start.fds, start.threads) || Instant::now() >= settle {
            break now;
        }
        thread::sleep(Duration::from_millis(100));
    };
    server.check_alive()?;
    let figures = Figures {
        requests: load.done(),
        errors,
        bytes: load.bytes.load(Ordering::SeqCst),
        start,
        warm,
        loaded,
        end,
        load_secs,
    };
    check(&figures, case)?;
    server.guard.signal("TERM")?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    if !status.success() {
        return Err(format!("the graceful stop exited with {status}").into());
    }
    Ok(figures)
}

/// The soak's verdict on its figures.
fn check(f: &Figures, case: &Case) -> Result<()> {
    if f.requests != case.requests || f.errors != 0 {
        return Err(format!(
            "{} of {} requests, {} errors",
            f.requests, case.requests, f.errors
        )
        .into());
    }
    if f.end.fds != f.start.fds {
        return Err(format!(
            "the server holds {} descriptors after the load, {} before it: {}",
            f.end.fds,
            f.start.fds,
            report(f)
        )
        .into());
    }
    if f.end.threads != f.start.threads {
        return Err(format!(
            "the server has {} threads {}s after the load, {} before it: {}",
            f.end.threads,
            SETTLE_LIMIT.as_secs(),
            f.start.threads,
            report(f)
        )
        .into());
    }
    let allowed = ((f.warm.rss_kib as f64 * RSS_DRIFT) as u64).max(RSS_SLACK_KIB);
    if f.loaded.rss_kib.abs_diff(f.warm.rss_kib) > allowed {
        return Err(format!(
            "RSS went from {} KiB after the warm-up to {} KiB at the end (allowed: {allowed} \
             KiB either way): {}",
            f.warm.rss_kib,
            f.loaded.rss_kib,
            report(f)
        )
        .into());
    }
    Ok(())
}

/// The counters the client threads share.
struct Load {
    /// Requests to take, each thread taking one at a time, so the total is exact.
    left: AtomicU64,
    taken: AtomicU64,
    answered: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<String>,
    stop: AtomicBool,
    finished_threads: std::sync::atomic::AtomicUsize,
}

impl Load {
    fn new(requests: u64) -> Arc<Load> {
        Arc::new(Load {
            left: AtomicU64::new(requests),
            taken: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
            finished_threads: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Requests answered, every byte checked.
    fn done(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// Takes one request to send, if any is left.
    fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
            && {
                self.taken.fetch_add(1, Ordering::SeqCst);
                true
            }
    }

    fn failed(&self, what: String) {
        if self.errors.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Ok(mut first) = self.first_error.lock() {
                *first = what;
            }
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits (polling every 10 ms) for `done`, failing at `deadline` or when a client failed.
fn wait_for(load: &Load, deadline: Instant, mut done: impl FnMut() -> bool) -> Result<()> {
    while !done() {
        if load.stop.load(Ordering::SeqCst) && load.errors.load(Ordering::SeqCst) > 0 {
            return Ok(()); // the caller reports the errors
        }
        if Instant::now() >= deadline {
            load.stop.store(true, Ordering::SeqCst);
            return Err(format!(
                "not done by the case's bound: {} requests answered",
                load.done()
            )
            .into());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Opens the connections and starts the client threads, each with its share; each returns its
/// connections, still open, when the requests are all taken.
fn start_clients(
    addr: SocketAddr,
    case: &Case,
    load: &Arc<Load>,
    deadline: Instant,
) -> Result<Vec<thread::JoinHandle<Vec<TcpStream>>>> {
    let mut shares: Vec<Vec<Conn>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for id in 0..case.connections {
        let stream = TcpStream::connect_timeout(&addr, IO_LIMIT)
            .map_err(|e| format!("connection {id}: connect: {e}"))?;
        stream.set_read_timeout(Some(IO_LIMIT))?;
        stream.set_write_timeout(Some(IO_LIMIT))?;
        stream.set_nodelay(true)?;
        shares[id % CLIENT_THREADS].push(Conn {
            id: id as u64,
            seq: 0,
            stream,
        });
    }
    Ok(shares
        .into_iter()
        .filter(|share| !share.is_empty())
        .map(|share| {
            let load = Arc::clone(load);
            thread::spawn(move || client(share, &load, deadline))
        })
        .collect())
}

/// One connection of a client thread.
struct Conn {
    id: u64,
    seq: u64,
    stream: TcpStream,
}

/// A client thread: rounds of one message on each of its connections, then each echo read and
/// checked, until the requests are all taken (or one failed).
fn client(mut conns: Vec<Conn>, load: &Load, deadline: Instant) -> Vec<TcpStream> {
    let mut echo = vec![0u8; MAX_MESSAGE];
    'rounds: while !load.stop.load(Ordering::SeqCst) {
        if Instant::now() >= deadline {
            break;
        }
        let mut sent = Vec::with_capacity(conns.len());
        for (i, conn) in conns.iter_mut().enumerate() {
            if !load.take() {
                break;
            }
            conn.seq += 1;
            let message = message(conn.id, conn.seq);
            if let Err(e) = conn.stream.write_all(&message) {
                load.failed(format!(
                    "connection {} request {}: send: {e}",
                    conn.id, conn.seq
                ));
                break 'rounds;
            }
            sent.push((i, message));
        }
        if sent.is_empty() {
            break;
        }
        for (i, message) in sent {
            let conn = &mut conns[i];
            let echo = &mut echo[..message.len()];
            if let Err(e) = conn.stream.read_exact(echo) {
                load.failed(format!(
                    "connection {} request {}: echo: {e}",
                    conn.id, conn.seq
                ));
                break 'rounds;
            }
            if *echo != message[..] {
                let at = echo
                    .iter()
                    .zip(&message)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                load.failed(format!(
                    "connection {} request {}: byte {at} of {} differs",
                    conn.id,
                    conn.seq,
                    message.len()
                ));
                break 'rounds;
            }
            load.bytes.fetch_add(message.len() as u64, Ordering::SeqCst);
            load.answered.fetch_add(1, Ordering::SeqCst);
        }
    }
    load.finished_threads.fetch_add(1, Ordering::SeqCst);
    conns.into_iter().map(|c| c.stream).collect()
}

/// Message `seq` of connection `id`: 1 to [`MAX_MESSAGE`] bytes of a pattern of both, so that a
/// byte out of place, another connection's or an older message's, is seen.
fn message(id: u64, seq: u64) -> Vec<u8> {
    let mut x = (id << 32 ^ seq).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 1 + (next() % MAX_MESSAGE as u64) as usize;
    (0..len).map(|_| next() as u8).collect()
}

/// A [`sample`] that two taken 100 ms apart agree on (fds and threads), within 5 s.
fn settled(pid: u32) -> Result<Sample> {
    let bound = Instant::now() + Duration::from_secs(5);
    let mut last = sample(pid)?;
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = sample(pid)?;
        if (now.fds, now.threads) == (last.fds, last.threads) {
            return Ok(now);
        }
        if Instant::now() >= bound {
            return Err(format!("the server did not settle: {last:?}, then {now:?}").into());
        }
        last = now;
    }
}

/// The server's descriptors, threads and RSS, from `/proc/PID`.
fn sample(pid: u32) -> Result<Sample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
        .count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status").into())
    };
    Ok(Sample {
        fds,
        threads: field("Threads")?,
        rss_kib: field("VmRSS")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_by_connection_and_number_and_stay_in_bounds() {
        let a = message(1, 1);
        assert_eq!(a, message(1, 1), "the same message again");
        assert_ne!(a, message(2, 1));
        assert_ne!(a, message(1, 2));
        for seq in 0..1000 {
            let m = message(7, seq);
            assert!((1..=MAX_MESSAGE).contains(&m.len()));
        }
    }

    fn figures(fds: u64, threads: u64, warm: u64, loaded: u64) -> Figures {
        let s = |fds, threads, rss_kib| Sample {
            fds,
            threads,
            rss_kib,
        };
        Figures {
            requests: 10,
            errors: 0,
            bytes: 100,
            start: s(5, 3, 2000),
            warm: s(70, 20, warm),
            loaded: s(70, 20, loaded),
            end: s(fds, threads, loaded),
            load_secs: 1.0,
        }
    }

    #[test]
    fn the_verdict_checks_fds_threads_and_rss() {
        let case = Case {
            name: "t",
            args: &[],
            connections: 1,
            requests: 10,
            limit: Duration::from_secs(1),
        };
        check(&figures(5, 3, 100_000, 109_000), &case).unwrap();
        check(&figures(5, 3, 10_000, 14_000), &case).expect("4 MiB of slack");
        assert!(
            check(&figures(6, 3, 100_000, 100_000), &case).is_err(),
            "an fd left"
        );
        assert!(
            check(&figures(5, 4, 100_000, 100_000), &case).is_err(),
            "a thread left"
        );
        assert!(
            check(&figures(5, 3, 100_000, 111_000), &case).is_err(),
            "RSS grew"
        );
        let mut short = figures(5, 3, 1, 1);
        short.requests = 9;
        assert!(check(&short, &case).is_err(), "a request short");
    }
}
