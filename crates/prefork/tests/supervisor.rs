//! The supervisor as a real process: this binary runs each case's supervisor as a child
//! process of its own (`PREFORK_TEST_CASE` names the case; in exec mode the workers are this
//! binary again), so signal dispositions, forks and `_exit` never touch the test's process.
//! The checks talk to it over loopback, read its workers from `/proc`, and signal it.

// The supervisor of a case speaks to the check through its stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use server::TcpServer;
use server::socket::{Family, ServerOptions, Socket, Type, create_server};
use sockserve_prefork::{Exit, Prefork, Start, Worker};
use testsupport::{GENEROUS, Kid};

const CASE: &str = "PREFORK_TEST_CASE";

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        std::process::exit(supervise(&case));
    }
    testsupport::run_checks_bounded(
        "supervisor",
        &[
            ("forked workers serve; a killed one is replaced", forked),
            ("re-executed workers share the one listener", executed),
            ("SIGHUP replaces every worker", reload),
            (
                "workers that panic at start: back-off, then give up",
                crash_loop,
            ),
            ("a supervisor with threads refuses to fork", threads),
            (
                "SIGTTIN and SIGTTOU add and remove a worker; SIGINT stops at once",
                resize,
            ),
            (
                "a failed upgrade leaves the old supervisor serving",
                failed_upgrade,
            ),
            (
                "SIGUSR2 hands over; a quick stop of the old spares the new",
                upgrade,
            ),
        ],
        Duration::from_secs(120),
    );
}

/// The child's side: a supervisor of two line-echo workers (or the case's variant). Its exit
/// status: 0 for a clean stop, 3 for an error (printed).
fn supervise(case: &str) -> i32 {
    if case == "bad-upgrade"
        && std::env::var_os("SOCKSERVE_PREFORK_ROLE").is_some_and(|r| r == "supervisor")
    {
        // The upgraded program cannot start (a broken new binary, say).
        eprintln!("the new binary fails");
        return 7;
    }
    let start = if case == "exec" {
        Start::Exec
    } else {
        Start::Fork
    };
    if case == "threads" {
        // A second thread: the supervisor must refuse to fork. It ends with the process.
        std::thread::spawn(std::thread::park);
    }
    let result = Prefork::new()
        .workers(2)
        .start(start)
        .grace(Duration::from_secs(1))
        .on_ready(|address| {
            println!("ready {address}");
            let _ = std::io::stdout().flush();
        })
        .run(
            || create_server("127.0.0.1:0", &ServerOptions::default()),
            |worker| match case {
                "panic" => panic!("this worker cannot start"),
                _ => echo_worker(worker),
            },
        );
    match result {
        Ok(Exit::Supervisor(report)) => {
            eprintln!("exit: {report}");
            i32::from(!report.is_clean())
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

fn echo_worker(mut worker: Worker) -> std::io::Result<()> {
    let server =
        TcpServer::builder(|req| Ok(testsupport::echo_line(&mut req.rfile, &mut req.wfile)?))
            .from_listener(worker.listener()?)?;
    worker.serve(server, Duration::from_secs(1))?;
    Ok(())
}

/// Starts the supervisor of `case`, with `NOTIFY_SOCKET` at `notify` if given.
fn start(case: &str, notify: Option<&Path>) -> Result<Kid, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.env(CASE, case);
    if let Some(path) = notify {
        cmd.env("NOTIFY_SOCKET", path);
    }
    Kid::spawn("supervisor", cmd)
}

/// The address of the `ready ADDR` line.
fn ready(kid: &mut Kid) -> Result<String, String> {
    let line = kid.stdout_line(|l| l.starts_with("ready "), "ready ADDR")?;
    Ok(line["ready ".len()..].to_owned())
}

/// The pids whose parent is `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if stat_field(pid, 1) == Some(parent) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Field `n` after the command name of `/proc/PID/stat` (0: state, 1: ppid, 2: pgrp).
fn stat_field(pid: u32, n: usize) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n)?.parse().ok()
}

/// Whether `pid` has exited: a zombie, or gone.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 2..].chars().next())
            .is_some_and(|state| state == 'Z')
    })
}

/// Waits (bounded) until `parent` has `n` children none of which is in `not`.
fn wait_for_children(parent: u32, n: usize, not: &[u32]) -> Result<Vec<u32>, String> {
    let deadline = Instant::now() + GENEROUS;
    loop {
        let now = children_of(parent);
        if now.len() == n && now.iter().all(|p| !not.contains(p)) {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "supervisor {parent}: children {now:?}, not {n} new ones (old: {not:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(20)); // polling /proc: no event to wait on
    }
}

/// One line there and back.
fn echo(address: &str, text: &str) -> Result<(), String> {
    let mut conn = TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    conn.set_read_timeout(Some(GENEROUS))
        .map_err(|e| e.to_string())?;
    conn.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| format!("receive: {e}"))?;
    if line != format!("{text}\n") {
        return Err(format!("sent {text:?}, got {line:?}"));
    }
    Ok(())
}

fn signal(pid: u32, signal: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|e| e.to_string())?;
    kill(Pid::from_raw(raw), signal).map_err(|e| format!("kill -{signal} {pid}: {e}"))
}

/// `signal` to the supervisor, then its end: exit status 0 and its report line, which starts
/// with `report`.
fn stop_by(kid: &mut Kid, signal_: Signal, report: &str) -> Result<(), String> {
    signal(kid.id(), signal_)?;
    let stderr = kid.finish()?;
    if stderr.iter().any(|l| l.starts_with(report)) {
        Ok(())
    } else {
        Err(format!("no {report:?} line after {signal_}: {stderr:?}"))
    }
}

/// SIGTERM, then the supervisor's end (see [`stop_by`]); its workers gone.
fn stop(mut kid: Kid, workers: &[u32]) -> Result<(), String> {
    stop_by(&mut kid, Signal::SIGTERM, "exit: SIGTERM: stopped")?;
    let left: Vec<&u32> = workers
        .iter()
        .filter(|&&w| Path::new(&format!("/proc/{w}")).exists())
        .collect();
    if !left.is_empty() {
        return Err(format!("workers {left:?} outlived their supervisor"));
    }
    Ok(())
}

fn forked() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let notify_path = dir.path().join("notify.sock");
    let notify = Socket::new(Family::Unix, Type::Datagram).map_err(|e| e.to_string())?;
    notify
        .bind(notify_path.as_path())
        .map_err(|e| e.to_string())?;
    notify.settimeout(Some(GENEROUS));
    let mut kid = start("fork", Some(&notify_path))?;
    let address = ready(&mut kid)?;
    let message = notify
        .recv(256)
        .map_err(|e| format!("no sd_notify message: {e}"))?;
    let expected = format!("READY=1\nMAINPID={}", kid.id());
    if message != expected.as_bytes() {
        return Err(format!(
            "sd_notify: {:?}, not {expected:?}",
            String::from_utf8_lossy(&message)
        ));
    }
    let workers = wait_for_children(kid.id(), 2, &[])?;
    for &w in &workers {
        // Its own process group: a terminal's Ctrl-C reaches the supervisor only.
        if stat_field(w, 2) != Some(w) {
            return Err(format!(
                "worker {w} is in process group {:?}",
                stat_field(w, 2)
            ));
        }
    }
    echo(&address, "before")?;
    let fds = open_fds(kid.id())?;
    signal(workers[0], Signal::SIGKILL)?;
    let now = wait_for_children(kid.id(), 2, &workers[..1])?;
    kid.stderr_line(&format!("(pid {}) was killed by SIGKILL", workers[0]))?;
    // The dead worker's pipe was closed, the new one's opened: no descriptor leaked.
    if open_fds(kid.id())? != fds {
        return Err(format!(
            "the supervisor had {fds} descriptors, now {}",
            open_fds(kid.id())?
        ));
    }
    for n in 0..4 {
        echo(&address, &format!("after {n}"))?;
    }
    stop(kid, &now)
}

fn executed() -> Result<(), String> {
    let mut kid = start("exec", None)?;
    let address = ready(&mut kid)?;
    let workers = wait_for_children(kid.id(), 2, &[])?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let supervisor_listener = listener_inode(kid.id())?;
    for &w in &workers {
        let run = std::fs::read_link(format!("/proc/{w}/exe")).map_err(|e| e.to_string())?;
        if run != exe {
            return Err(format!(
                "worker {w} runs {}, not {}",
                run.display(),
                exe.display()
            ));
        }
        // fd 3 is the supervisor's own listening socket: the same kernel socket.
        let fd3 = std::fs::metadata(format!("/proc/{w}/fd/3")).map_err(|e| e.to_string())?;
        if fd3.ino() != supervisor_listener {
            return Err(format!(
                "worker {w}'s fd 3 is not the supervisor's listener"
            ));
        }
    }
    echo(&address, "exec")?;
    stop(kid, &workers)
}

/// How many descriptors `pid` has open.
fn open_fds(pid: u32) -> Result<usize, String> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
        .count())
}

/// The inode of the listening socket of `pid`: its only TCP socket.
fn listener_inode(pid: u32) -> Result<u64, String> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?;
    let sockets: Vec<u64> = fds
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok().map(|m| m.ino()))
        .collect();
    match sockets.as_slice() {
        [one] => Ok(*one),
        more => Err(format!(
            "supervisor {pid} holds {} sockets, not one",
            more.len()
        )),
    }
}

fn reload() -> Result<(), String> {
    let mut kid = start("fork", None)?;
    let address = ready(&mut kid)?;
    let old = wait_for_children(kid.id(), 2, &[])?;
    let fds = open_fds(kid.id())?;
    signal(kid.id(), Signal::SIGHUP)?;
    let new = wait_for_children(kid.id(), 2, &old)?;
    kid.stderr_line("reload: the new workers are ready")?;
    if open_fds(kid.id())? != fds {
        return Err(format!(
            "the supervisor had {fds} descriptors, now {}",
            open_fds(kid.id())?
        ));
    }
    echo(&address, "reloaded")?;
    stop(kid, &new)
}

fn crash_loop() -> Result<(), String> {
    let began = Instant::now();
    let mut kid = start("panic", None)?;
    let line = kid.stderr_line("giving up")?;
    if !line.contains("never ready")
        && !kid
            .stderr_so_far()
            .iter()
            .any(|l| l.contains("never ready"))
    {
        return Err(format!("the deaths were not reported as such: {line}"));
    }
    // Each worker panicked and ended with `_exit(1)`: status 1, not a signal.
    kid.stderr_line("exited with status 1")?;
    // Backed off: the two workers die together, the second death of each round setting the
    // wait (0.2 s, then 0.8 s), and the fifth death gives up: at least 1 s in all.
    if began.elapsed() < Duration::from_millis(1_000) {
        return Err(format!("gave up after {:?}: no back-off", began.elapsed()));
    }
    match kid.finish() {
        Err(e) if e.contains("exit status: 3") => Ok(()),
        other => Err(format!("expected exit status 3, got {other:?}")),
    }
}

fn threads() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.env(CASE, "threads");
    // The fork case with a thread started first (see `supervise`).
    let mut kid = Kid::spawn("supervisor", cmd)?;
    kid.stderr_line("forks only while its process has one thread")?;
    match kid.finish() {
        Err(e) if e.contains("exit status: 3") => Ok(()),
        other => Err(format!("expected exit status 3, got {other:?}")),
    }
}

fn resize() -> Result<(), String> {
    let mut kid = start("fork", None)?;
    let address = ready(&mut kid)?;
    let two = wait_for_children(kid.id(), 2, &[])?;
    signal(kid.id(), Signal::SIGTTIN)?;
    let three = wait_for_children(kid.id(), 3, &[])?;
    signal(kid.id(), Signal::SIGTTOU)?;
    // The oldest goes: one of the first two.
    let left = wait_for_children(kid.id(), 2, &[])?;
    if left.iter().filter(|p| two.contains(p)).count() != 1 {
        return Err(format!(
            "after TTIN {three:?} and TTOU: {left:?} (first {two:?})"
        ));
    }
    echo(&address, "resized")?;
    stop_by(&mut kid, Signal::SIGINT, "exit: SIGINT: stopped")
}

fn failed_upgrade() -> Result<(), String> {
    let mut kid = start("bad-upgrade", None)?;
    let address = ready(&mut kid)?;
    let workers = wait_for_children(kid.id(), 2, &[])?;
    signal(kid.id(), Signal::SIGUSR2)?;
    kid.stderr_line("upgrade failed: supervisor")?;
    kid.stderr_line("exited with status 7")?;
    // The same workers serve on.
    if wait_for_children(kid.id(), 2, &[])? != workers {
        return Err("the workers changed after a failed upgrade".to_owned());
    }
    echo(&address, "still here")?;
    stop(kid, &workers)
}

/// The upgrade, with a client holding a connection to an old worker (so the handover lasts its
/// grace) and a quick stop of the old supervisor during it: the old workers stop, the new
/// supervisor serves on. This binary is a child subreaper for the check (and only then), so
/// the new supervisor, orphaned when the old one exits, is reaped here.
fn upgrade() -> Result<(), String> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string())?;
    let result = upgrade_as_subreaper();
    let _ = nix::sys::prctl::set_child_subreaper(false);
    result
}

fn upgrade_as_subreaper() -> Result<(), String> {
    let mut kid = start("fork", None)?;
    let address = ready(&mut kid)?;
    let old = wait_for_children(kid.id(), 2, &[])?;
    // An idle client: a synchronous worker blocks on its line until the grace ends it.
    let idle = TcpStream::connect(&address).map_err(|e| e.to_string())?;
    echo(&address, "warm")?;
    signal(kid.id(), Signal::SIGUSR2)?;
    let line = kid.stderr_line("upgrade: supervisor")?;
    let new: u32 = line
        .split("upgrade: supervisor ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| format!("no pid in {line:?}"))?;
    signal(kid.id(), Signal::SIGINT)?;
    // Not `finish`: the new supervisor holds the same stdout and stderr, which stay open.
    kid.stderr_line(&format!("exit: handed over to supervisor {new}"))?;
    let deadline = Instant::now() + GENEROUS;
    while !exited(kid.id()) {
        if Instant::now() >= deadline {
            return Err("the old supervisor did not exit after the handover".to_owned());
        }
        std::thread::sleep(Duration::from_millis(10)); // polling /proc: no event to wait on
    }
    // `kid` lives on to the end: its readers take the new supervisor's output too (without
    // them, the new one's last line would meet a closed pipe).
    drop(idle);
    let workers = wait_for_children(new, 2, &old)?;
    echo(&address, "served by the new supervisor")?;
    signal(new, Signal::SIGTERM)?;
    let pid = Pid::from_raw(i32::try_from(new).map_err(|e| e.to_string())?);
    match nix::sys::wait::waitpid(pid, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => {}
        other => return Err(format!("the new supervisor: {other:?}")),
    }
    kid.stderr_line("exit: SIGTERM: stopped")?;
    drop(kid); // reaps the old supervisor
    let left: Vec<&u32> = workers
        .iter()
        .filter(|&&w| Path::new(&format!("/proc/{w}")).exists())
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("workers {left:?} outlived the new supervisor"))
    }
}
