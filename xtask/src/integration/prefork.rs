//! `prefork_server` (a supervisor of prefork workers) under load from clients of two kinds, each
//! a thread of this process over loopback, every echoed byte checked:
//!
//! - *fresh* clients open a new connection per request (connect, 64 bytes, the echo, close):
//!   a refused connection, a reset, a short or wrong echo is a failure;
//! - *persistent* clients keep one connection for many requests: an end of file between
//!   requests (a worker that stopped gracefully closed it) is counted and the request is sent
//!   again on a new connection; a reset, a refusal or a wrong echo is a failure.
//!
//! The cases, each with its figures (requests, failures by kind, end-of-files) in its `ok`
//! line:
//!
//! - 4 workers (`--mode threading`, forked) serve both kinds; 4 synchronous workers started by
//!   `exec` serve fresh clients; the CPU time of each worker (`/proc/PID/stat`) goes into the
//!   line, and at least two must have served;
//! - `kill -9` of a worker under load: it is replaced, and the failures are at most one per
//!   client, all before the replacement (only the killed worker's connections);
//! - `SIGHUP` under load: every worker replaced, not one failure;
//! - `SIGUSR2` under load: the program re-executed as a new supervisor on the same socket,
//!   the old one exits, the pid file and `sd_notify`'s `MAINPID` name the new one; not one
//!   failure. Each case ends with `SIGTERM`: exit status 0, `STOPPING=1`, the pid file
//!   removed. The upgrade case makes xtask a child subreaper (Linux's `PR_SET_CHILD_SUBREAPER`)
//!   while the old supervisor exits, so that the new one, orphaned, becomes xtask's child and
//!   is reaped here (this machine's init may not reap orphans); it is unset at once after.
//!
//! The workers are read from `/proc/*/stat` (the supervisor's children). Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{STARTUP_LIMIT, example_bin, temp_dir};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

/// The payload of one request.
const PAYLOAD: usize = 64;
/// Clients of each kind.
const FRESH: usize = 6;
const PERSISTENT: usize = 4;
/// How long the load runs before and after each event.
const SETTLE: Duration = Duration::from_millis(700);
/// The bound of any wait for the supervisor (a reload waits for the old workers' grace, 2 s,
/// and the new workers' start).
const EVENT_LIMIT: Duration = Duration::from_secs(20);
/// One client's connect, read and write timeout: generous, a stall fails it.
const IO_LIMIT: Duration = Duration::from_secs(10);
/// The most requests one client makes (a bound on every load loop, beside the time).
const MAX_REQUESTS: u64 = 1_000_000;
/// The longest one client runs, whatever happens to its case.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);
/// The workers of every case.
const WORKERS: usize = 4;

/// One case.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    persistent: usize,
    event: Event,
}

#[derive(Clone, Copy)]
enum Event {
    None,
    KillWorker,
    Reload,
    Upgrade,
}

const CASES: &[Case] = &[
    Case {
        name: "prefork_server 4 workers (fork, threading), echo",
        args: &["--mode", "threading", "--start", "fork"],
        persistent: PERSISTENT,
        event: Event::None,
    },
    Case {
        name: "prefork_server 4 workers (exec, sync), echo",
        args: &["--mode", "sync", "--start", "exec"],
        // A synchronous worker serves one connection at a time: persistent clients would
        // hold the workers.
        persistent: 0,
        event: Event::None,
    },
    Case {
        name: "prefork_server: kill -9 of a worker under load",
        args: &["--mode", "threading"],
        persistent: PERSISTENT,
        event: Event::KillWorker,
    },
    Case {
        name: "prefork_server: SIGHUP under load",
        args: &["--mode", "threading"],
        persistent: PERSISTENT,
        event: Event::Reload,
    },
    Case {
        name: "prefork_server: SIGUSR2 upgrade under load",
        args: &["--mode", "threading"],
        persistent: PERSISTENT,
        event: Event::Upgrade,
    },
];

/// Runs every case; returns how many passed (all, or the first failure is the error).
pub(crate) fn run(examples: &Path) -> Result<usize> {
    super::run_each(CASES, |case| case.name, |case| run_case(examples, case))
}

fn run_case(examples: &Path, case: &Case) -> Result<String> {
    let dir = temp_dir("prefork")?;
    let pid_file = dir.path().join("prefork.pid");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path)?;
    notify.set_read_timeout(Some(EVENT_LIMIT))?;
    let cmd = Cmd::new(example_bin(examples, "prefork_server"))
        .args(case.args)
        .args(["--workers", &WORKERS.to_string(), "--addr", "127.0.0.1:0"])
        .arg("--pid-file")
        .arg(&pid_file)
        .env("NOTIFY_SOCKET", &notify_path.display().to_string());
    // The upgrade's new supervisor must become this process's child when the old one exits.
    let subreaper = matches!(case.event, Event::Upgrade)
        .then(Subreaper::set)
        .transpose()?;
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let supervisor = server.guard.child_mut().id();
    let addr: SocketAddr = server.addr.parse()?;
    expect_notify(&notify, supervisor)?;
    let workers = wait_for_workers(supervisor, &[])?;
    if read_pid(&pid_file) != Some(supervisor) {
        return Err(format!("the pid file does not name the supervisor {supervisor}").into());
    }
    let cpu_before: Vec<u64> = workers.iter().map(|&w| cpu_ticks(w)).collect();
    let load = Load::start(addr, FRESH, case.persistent);
    thread::sleep(SETTLE); // the load runs for this long before the event: it is the load
    let mut upgraded = None;
    let detail = match case.event {
        Event::None => {
            // Every worker takes its share from the one accept queue: their CPU time grew.
            let used: Vec<u64> = workers
                .iter()
                .zip(&cpu_before)
                .map(|(&w, before)| cpu_ticks(w).saturating_sub(*before))
                .collect();
            let busy = used.iter().filter(|&&t| t > 0).count();
            if busy < 2 {
                return Err(
                    format!("only {busy} of the workers served (CPU ticks {used:?})").into(),
                );
            }
            format!("; CPU ticks per worker {used:?}")
        }
        Event::KillWorker => {
            signal(workers[0], Signal::SIGKILL)?;
            let now = wait_for_workers(supervisor, &workers[..1])?;
            load.mark_replaced();
            format!("; worker {} killed, replaced by {:?}", workers[0], now)
        }
        Event::Reload => {
            signal(supervisor, Signal::SIGHUP)?;
            let now = wait_for_workers(supervisor, &workers)?;
            wait_gone(&workers)?;
            format!("; workers {workers:?} replaced by {now:?}")
        }
        Event::Upgrade => {
            signal(supervisor, Signal::SIGUSR2)?;
            let status = server.guard.wait_within(EVENT_LIMIT)?;
            if !status.success() {
                return Err(format!("the old supervisor exited with {status}").into());
            }
            drop(subreaper); // reparented by now: later orphans go to init as usual
            let new = read_pid(&pid_file)
                .filter(|&p| p != supervisor)
                .ok_or_else(|| {
                    format!("the pid file still names {supervisor} after the upgrade")
                })?;
            let guard = Orphan(new);
            expect_notify(&notify, new)?;
            let now = wait_for_workers(new, &[])?;
            wait_gone(&workers)?;
            upgraded = Some(guard);
            format!("; supervisor {supervisor} -> {new} (pid file, MAINPID), workers {now:?}")
        }
    };
    thread::sleep(SETTLE); // the load goes on after the event, against the new workers
    let figures = load.stop()?;
    figures.check(case)?;
    match upgraded {
        Some(orphan) => orphan.stop()?,
        None => {
            server.guard.signal("TERM")?;
            let status = server.guard.wait_within(EVENT_LIMIT)?;
            if !status.success() {
                return Err(format!("prefork_server exited with {status} after SIGTERM").into());
            }
        }
    }
    expect_message(&notify, "STOPPING=1")?;
    if pid_file.exists() {
        return Err("the pid file outlived the supervisor it names".into());
    }
    Ok(format!("{figures}{detail}"))
}

/// The next `sd_notify` message must be `READY=1\nMAINPID=<pid>`.
fn expect_notify(notify: &UnixDatagram, pid: u32) -> Result<()> {
    expect_message(notify, &format!("READY=1\nMAINPID={pid}"))
}

/// The next `sd_notify` message must be `expected`.
fn expect_message(notify: &UnixDatagram, expected: &str) -> Result<()> {
    let mut buf = [0u8; 256];
    let n = notify
        .recv(&mut buf)
        .map_err(|e| format!("no sd_notify message {expected:?}: {e}"))?;
    let got = String::from_utf8_lossy(&buf[..n]);
    if got != expected {
        return Err(format!("sd_notify: {got:?}, expected {expected:?}").into());
    }
    Ok(())
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn signal(pid: u32, signal: Signal) -> Result<()> {
    kill(Pid::from_raw(i32::try_from(pid)?), signal)
        .map_err(|e| format!("kill -{signal} {pid}: {e}").into())
}

/// The children of `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| ppid(pid) == Some(parent))
        .collect();
    pids.sort_unstable();
    pids
}

/// The CPU time of `pid` so far, user and system, in clock ticks (`/proc/PID/stat` fields 14
/// and 15); 0 if it cannot be read.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(end) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[end + 2..].split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Waits until `supervisor` has [`WORKERS`] children, none of them in `not`.
fn wait_for_workers(supervisor: u32, not: &[u32]) -> Result<Vec<u32>> {
    let deadline = Instant::now() + EVENT_LIMIT;
    loop {
        let now = children_of(supervisor);
        if now.len() == WORKERS && now.iter().all(|p| !not.contains(p)) {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "supervisor {supervisor}: workers {now:?} within {EVENT_LIMIT:?}, not {WORKERS} \
                 new ones (old: {not:?})"
            )
            .into());
        }
        thread::sleep(Duration::from_millis(20)); // polling /proc: no event to wait on
    }
}

/// Waits until none of `pids` exists any more (reaped by their supervisor).
fn wait_gone(pids: &[u32]) -> Result<()> {
    let deadline = Instant::now() + EVENT_LIMIT;
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        if Instant::now() >= deadline {
            return Err(format!("old workers {pids:?} still there after {EVENT_LIMIT:?}").into());
        }
        thread::sleep(Duration::from_millis(20)); // polling /proc: no event to wait on
    }
    Ok(())
}

/// xtask as a child subreaper, while it lives.
struct Subreaper;

impl Subreaper {
    fn set() -> Result<Subreaper> {
        nix::sys::prctl::set_child_subreaper(true)?;
        Ok(Subreaper)
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_child_subreaper(false);
    }
}

/// An upgraded supervisor, reparented to xtask: killed and reaped when dropped.
struct Orphan(u32);

impl Orphan {
    /// SIGTERM, then its exit status must be 0 within the bound.
    fn stop(self) -> Result<()> {
        signal(self.0, Signal::SIGTERM)?;
        let pid = Pid::from_raw(i32::try_from(self.0)?);
        let deadline = Instant::now() + EVENT_LIMIT;
        loop {
            match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))? {
                WaitStatus::StillAlive if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10)); // no wait-with-timeout
                }
                WaitStatus::Exited(_, 0) => {
                    std::mem::forget(self);
                    return Ok(());
                }
                other => return Err(format!("the upgraded supervisor: {other:?}").into()),
            }
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Ok(raw) = i32::try_from(self.0) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(raw), None);
        }
    }
}

/// What the clients counted.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    other: AtomicU64,
    eof: AtomicU64,
    /// Failures that began after the killed worker was replaced.
    late: AtomicU64,
}

/// The clients, running until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    replaced: Arc<Mutex<Option<Instant>>>,
    counters: Arc<Counters>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Drop for Load {
    /// A case that fails before [`Load::stop`] still stops its clients (and waits for them:
    /// each ends within its I/O timeout).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

/// The figures of one case.
#[derive(Debug)]
struct Figures {
    requests: u64,
    refused: u64,
    reset: u64,
    other: u64,
    eof: u64,
    late: u64,
    clients: usize,
    first_errors: Vec<String>,
}

impl Load {
    fn start(addr: SocketAddr, fresh: usize, persistent: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let replaced = Arc::new(Mutex::new(None));
        let counters = Arc::new(Counters::default());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..fresh + persistent)
            .map(|id| {
                let client = Client {
                    id,
                    addr,
                    stop: Arc::clone(&stop),
                    replaced: Arc::clone(&replaced),
                    counters: Arc::clone(&counters),
                    errors: Arc::clone(&errors),
                };
                let persistent = id >= fresh;
                thread::spawn(move || client.run(persistent))
            })
            .collect();
        Load {
            stop,
            replaced,
            counters,
            errors,
            threads,
        }
    }

    fn mark_replaced(&self) {
        *self.replaced.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn stop(mut self) -> Result<Figures> {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        let clients = threads.len();
        for t in threads {
            t.join().map_err(|_| "a client thread panicked")?;
        }
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Ok(Figures {
            requests: get(&c.requests),
            refused: get(&c.refused),
            reset: get(&c.reset),
            other: get(&c.other),
            eof: get(&c.eof),
            late: get(&c.late),
            clients,
            first_errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }
}

impl Figures {
    fn failures(&self) -> u64 {
        self.refused + self.reset + self.other
    }

    /// Not one failure, but for `kill -9`: at most one per client, none after the replacement.
    fn check(&self, case: &Case) -> Result<()> {
        if self.requests == 0 {
            return Err("no request was answered".into());
        }
        let allowed = match case.event {
            Event::KillWorker => self.clients as u64,
            _ => 0,
        };
        if self.failures() > allowed || self.late > 0 {
            return Err(format!(
                "{self}: more failures than allowed ({allowed}), or after the replacement; \
                 the first: {:?}",
                self.first_errors
            )
            .into());
        }
        if matches!(case.event, Event::KillWorker) && self.failures() + self.eof > allowed {
            return Err(
                format!("{self}: the kill cost more than one connection per client").into(),
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests from {} clients, {} errors ({} refused, {} reset, {} other), {} EOF \
             between requests",
            self.requests,
            self.clients,
            self.failures(),
            self.refused,
            self.reset,
            self.other,
            self.eof
        )
    }
}

/// One client thread.
struct Client {
    id: usize,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    replaced: Arc<Mutex<Option<Instant>>>,
    counters: Arc<Counters>,
    errors: Arc<Mutex<Vec<String>>>,
}

/// How one exchange failed.
enum Failure {
    /// End of file before the echo, on a connection that served before (persistent only).
    Eof,
    Io(io::Error),
    Wrong(String),
}

impl Client {
    fn run(self, persistent: bool) {
        let mut conn: Option<TcpStream> = None;
        let mut seq = 0u64;
        let deadline = Instant::now() + CLIENT_LIMIT;
        while !self.stop.load(Ordering::SeqCst) && seq < MAX_REQUESTS && Instant::now() < deadline {
            seq += 1;
            let began = Instant::now();
            let fresh_conn = conn.is_none();
            let result = match conn.take() {
                Some(c) => Ok(c),
                None => connect(self.addr),
            }
            .map_err(Failure::Io)
            .and_then(|mut c| exchange(&mut c, self.id, seq, fresh_conn).map(|()| c));
            match result {
                Ok(c) => {
                    self.counters.requests.fetch_add(1, Ordering::SeqCst);
                    if persistent {
                        conn = Some(c);
                    }
                }
                Err(Failure::Eof) => {
                    // A stopping worker closed the connection between requests: again, anew.
                    self.counters.eof.fetch_add(1, Ordering::SeqCst);
                    seq -= 1;
                }
                Err(failure) => self.fail(failure, began),
            }
        }
    }

    fn fail(&self, failure: Failure, began: Instant) {
        let c = &self.counters;
        let text = match failure {
            Failure::Io(e) => {
                match e.kind() {
                    io::ErrorKind::ConnectionRefused => &c.refused,
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe => &c.reset,
                    _ => &c.other,
                }
                .fetch_add(1, Ordering::SeqCst);
                e.to_string()
            }
            Failure::Wrong(why) => {
                c.other.fetch_add(1, Ordering::SeqCst);
                why
            }
            Failure::Eof => return,
        };
        let replaced = *self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        if replaced.is_some_and(|at| began > at) {
            c.late.fetch_add(1, Ordering::SeqCst);
        }
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 5 {
            errors.push(format!("client {}: {text}", self.id));
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&addr, IO_LIMIT)?;
    conn.set_read_timeout(Some(IO_LIMIT))?;
    conn.set_write_timeout(Some(IO_LIMIT))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// A request no other request of the run equals: the client's number and the request's, then
/// a pattern.
fn fill(buf: &mut [u8; PAYLOAD], id: usize, seq: u64) {
    buf[..8].copy_from_slice(&(id as u64).to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[16..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ (seq as u8);
    }
}

/// One request and its echo. An end of file before any byte of the echo, on a connection that
/// had served before, is [`Failure::Eof`]; on a new connection it is a failure.
fn exchange(conn: &mut TcpStream, id: usize, seq: u64, new: bool) -> Result<(), Failure> {
    let mut request = [0u8; PAYLOAD];
    fill(&mut request, id, seq);
    conn.write_all(&request).map_err(Failure::Io)?;
    let mut reply = [0u8; PAYLOAD];
    let mut got = 0;
    while got < PAYLOAD {
        match conn.read(&mut reply[got..]) {
            Ok(0) if got == 0 && !new => return Err(Failure::Eof),
            Ok(0) => {
                return Err(Failure::Wrong(format!(
                    "end of file after {got} of {PAYLOAD} bytes of the echo"
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    if reply != request {
        return Err(Failure::Wrong(
            "the echo differs from the request".to_owned(),
        ));
    }
    Ok(())
}
