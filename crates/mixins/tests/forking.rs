//! `Forking`: CPython's checklist for the forking servers, in a binary of its own (forking a
//! test harness with its threads is not something to share). Runs its checks in order,
//! prints `forking: N passed, M failed`, and exits non-zero on a failure.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod util;

use handler::{BoxError, StreamRequest};
use nix::{
    sys::wait::{WaitPidFlag, WaitStatus, waitpid},
    unistd::{ForkResult, fork},
};
use server::{Kind, Server};
use socket::{Address, Socket, Type};
use sockserve_mixins::{
    Forking, ForkingTcpServer, ForkingUdpServer, ForkingUnixDatagramServer, ForkingUnixStreamServer,
};
use std::{
    io::{BufRead, Write},
    panic, thread,
    time::{Duration, Instant},
};
use util::*;

/// CPython's run_server for a forking server: serve in a thread, examine three times,
/// shutdown, close; then no child is left (`not active_children`).
fn run_server<K: Kind>(server: Server<K, Forking>, examine: impl Fn(&Address)) {
    let running = server.spawn_with(Duration::from_millis(10)).unwrap();
    for _ in 0..3 {
        examine(running.server_address());
    }
    let mut server = running.shutdown().unwrap();
    server.server_close();
    assert_eq!(server.fileno(), -1);
    assert_eq!(
        server.strategy().active_children(),
        0,
        "server_close reaps every child"
    );
}

/// CPython's simple_subprocess: a child of our own that must still be ours to reap.
fn with_foreign_child(body: impl FnOnce()) {
    // SAFETY: the child exits at once with `_exit`.
    let pid = match unsafe { fork() }.unwrap() {
        // SAFETY: `_exit` takes any status and ends the process without running anything.
        ForkResult::Child => unsafe { nix::libc::_exit(72) },
        ForkResult::Parent { child } => child,
    };
    body();
    let status = waitpid(pid, None).expect("the foreign child was reaped by the server");
    assert_eq!(status, WaitStatus::Exited(pid, 72));
}

fn tcp() {
    with_foreign_child(|| {
        run_server(
            ForkingTcpServer::bind("127.0.0.1:0", echo_line).unwrap(),
            stream_examine,
        )
    });
}

fn unix_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    with_foreign_child(|| {
        run_server(
            ForkingUnixStreamServer::bind(path.as_path(), echo_line).unwrap(),
            stream_examine,
        )
    });
    assert!(
        !path.exists(),
        "the parent removed its socket file; children never do"
    );
}

fn udp() {
    with_foreign_child(|| {
        run_server(
            ForkingUdpServer::bind("127.0.0.1:0", echo_dgram).unwrap(),
            |a| dgram_examine(a, None),
        )
    });
}

fn unix_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let n = std::cell::Cell::new(0);
    run_server(
        ForkingUnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap(),
        |a| {
            n.set(n.get() + 1);
            dgram_examine(a, Some(&dir.path().join(format!("c{}.sock", n.get()))))
        },
    );
}

fn panicking_child_exits_and_the_server_serves_on() {
    let server = ForkingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        assert!(
            !line.starts_with("panic"),
            "child handler panicked on purpose"
        );
        Ok(req.wfile.write_all(line.as_bytes())?)
    })
    .unwrap();
    run_server(server, |a| {
        let s = Socket::new(a.family(), Type::Stream).unwrap();
        s.settimeout(Some(GENEROUS));
        s.connect(a).unwrap();
        s.sendall(b"panic\n").unwrap();
        assert_eq!(
            s.recv(10).unwrap(),
            b"",
            "the panicking child closed the connection"
        );
        stream_examine(a);
    });
}

fn max_children_pauses_accepting_without_blocking_the_loop() {
    let mut server: Server<server::Tcp, Forking> = ForkingTcpServer::builder(echo_line)
        .strategy(Forking::new().max_children(1))
        .bind("127.0.0.1:0")
        .unwrap();
    let handle = server.shutdown_handle();
    let address = server.server_address().clone();
    thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever_with(Duration::from_secs(60)));
        // The first client holds the only child; the others wait in the backlog.
        let first = Socket::new(address.family(), Type::Stream).unwrap();
        first.settimeout(Some(GENEROUS));
        first.connect(&address).unwrap();
        let others: Vec<Socket> = (0..3)
            .map(|_| {
                let c = Socket::new(address.family(), Type::Stream).unwrap();
                c.settimeout(Some(GENEROUS));
                c.connect(&address).unwrap();
                c.sendall(TEST_STR).unwrap();
                c
            })
            .collect();
        first.sendall(TEST_STR).unwrap();
        assert_eq!(first.recv(100).unwrap(), TEST_STR);
        for c in &others {
            assert_eq!(
                c.recv(100).unwrap(),
                TEST_STR,
                "served once a child slot was free"
            );
        }
        // The loop was never stuck in waitpid: shutdown is still instant.
        let start = Instant::now();
        handle.shutdown().unwrap();
        assert!(start.elapsed() < GENEROUS, "took {:?}", start.elapsed());
        t.join().unwrap().unwrap();
    });
    server.server_close();
    assert_eq!(server.strategy().active_children(), 0);
}

fn graceful_stop_shuts_down_a_child_blocked_on_an_idle_client() {
    let server = ForkingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut rest = Vec::new();
        Ok(std::io::Read::read_to_end(&mut req.rfile, &mut rest).map(|_| ())?)
    })
    .unwrap();
    // A long tick: the stop must not wait for it to reap the child.
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    let handle = running.shutdown_handle();
    let idle = Socket::new(running.server_address().family(), Type::Stream).unwrap();
    idle.connect(running.server_address()).unwrap();
    let deadline = Instant::now() + GENEROUS;
    while handle.in_flight() == 0 {
        assert!(Instant::now() < deadline, "the child never started");
        thread::yield_now();
    }
    let (mut server, report) = running
        .shutdown_gracefully(Duration::from_millis(200))
        .unwrap();
    assert_eq!(
        report.forced, 1,
        "the parent's copy let it reach the child's connection"
    );
    assert_eq!(report.still_running, 0, "{report:?}");
    assert_eq!(server.strategy().active_children(), 0);
    server.server_close();
}

/// A graceful stop through `Running` of a forking server whose children are done returns at
/// once, with nothing left running: the children are reaped while the stop waits (before, it
/// waited out grace + 2 s and reported them as still running).
fn graceful_stop_of_finished_children_is_prompt() {
    let running = ForkingTcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .spawn_with(Duration::from_secs(60))
        .unwrap();
    stream_examine(running.server_address());
    let grace = Duration::from_secs(5);
    let (mut server, report) = running.shutdown_gracefully(grace).unwrap();
    assert_eq!(report.still_running, 0, "{report:?}");
    assert!(report.took < grace, "waited out the grace: {report:?}");
    assert_eq!(server.strategy().active_children(), 0);
    server.server_close();
}

/// A client connected to `address` whose reads and writes give up after `GENEROUS`.
fn client(address: &Address) -> Socket {
    let c = Socket::new(address.family(), Type::Stream).unwrap();
    c.settimeout(Some(GENEROUS));
    c.connect(address).unwrap();
    c
}

/// Sends `TEST_STR` and reads its echo.
fn echoed(c: &Socket) {
    c.sendall(TEST_STR).unwrap();
    assert_eq!(c.recv(100).unwrap(), TEST_STR);
}

/// At `max_children` the loop pauses accepting; a child's exit wakes it (its exit pipe), so
/// with a 60 s tick the next client is served at once, not at the tick.
fn max_children_resumes_when_a_child_exits_without_a_tick() {
    let full = FullRound::default();
    let server: Server<server::Tcp, Forking> = ForkingTcpServer::builder(echo_line)
        .strategy(Forking::new().max_children(1))
        .service_actions(full.hook(|handle| handle.children() == 1))
        .bind("127.0.0.1:0")
        .unwrap();
    full.arm(server.shutdown_handle());
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    let first = client(running.server_address());
    // The child's handler waits for the first client's line: the loop paused accepting.
    full.wait();
    let second = client(running.server_address());
    second.sendall(TEST_STR).unwrap();
    assert_eq!(running.children(), 1, "the second waits in the backlog");
    echoed(&first);
    let freed = Instant::now();
    assert_eq!(
        second.recv(100).unwrap(),
        TEST_STR,
        "the second client is served when the first child exits, not at a tick"
    );
    assert!(freed.elapsed() < GENEROUS, "took {:?}", freed.elapsed());
    let mut server = running.shutdown().unwrap();
    server.server_close();
    assert_eq!(server.strategy().active_children(), 0);
}

/// `Running` shows the child and its request while the handler is blocked, and both go back
/// to 0 as soon as the child exits (a 60 s tick: reaped through its exit pipe).
fn running_shows_live_children() {
    let running = ForkingTcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .spawn_with(Duration::from_secs(60))
        .unwrap();
    assert_eq!((running.children(), running.in_flight()), (0, 0));
    let c = client(running.server_address());
    // The child's handler waits for the line this client has not sent.
    wait_until("the child started", || running.children() == 1);
    assert_eq!((running.in_flight(), running.threads()), (1, 0));
    // Its child runs it: running from the fork, never queued.
    assert_eq!((running.running(), running.queued()), (1, 0));
    let shown = format!("{running:?}");
    assert!(
        shown.contains("in_flight: 1") && shown.contains("children: 1"),
        "{shown}"
    );
    echoed(&c);
    let exited = Instant::now();
    wait_until("the child reaped", || {
        running.children() == 0 && running.in_flight() == 0 && running.running() == 0
    });
    assert!(exited.elapsed() < GENEROUS, "took {:?}", exited.elapsed());
    let mut server = running.shutdown().unwrap();
    server.server_close();
}

/// A graceful stop with a long grace, of a forking server whose one child ends early (after
/// the loop returned): the stop returns as the child exits, not at the end of the grace or at
/// a tick.
fn graceful_stop_returns_when_its_child_exits_early() {
    let running = ForkingTcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .spawn_with(Duration::from_secs(60))
        .unwrap();
    let handle = running.shutdown_handle();
    let c = client(running.server_address());
    wait_until("the child started", || running.children() == 1);
    let grace = Duration::from_secs(60);
    let stopping = thread::spawn(move || running.shutdown_gracefully(grace));
    // The loop has returned and waits for the child (the stop drains it).
    wait_until("the loop stopped for the stop", || {
        handle.close_deadline().is_set() && !handle.is_serving()
    });
    echoed(&c);
    let exited = Instant::now();
    let (mut server, report) = stopping.join().unwrap().unwrap();
    let took = exited.elapsed();
    assert!(
        took < GENEROUS,
        "the stop returned {took:?} after the child exited"
    );
    assert_eq!((report.forced, report.still_running), (0, 0), "{report:?}");
    assert!(report.loop_stopped, "{report:?}");
    assert_eq!(server.strategy().active_children(), 0);
    server.server_close();
}

/// Runs `body` on a thread and waits for it at most `GENEROUS`; on a hang, kills this process's
/// children (the forked request children a hang leaves blocked) so that the thread can end, and
/// fails with `what`.
fn bounded<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(GENEROUS) {
        Ok(value) => {
            t.join().unwrap();
            value
        }
        Err(_) => {
            kill_own_children();
            panic!("{what}: no end within {GENEROUS:?}");
        }
    }
}

/// Serves on a thread of its own (10 ms ticks) until the handle stops it.
fn serve_on_a_thread<K: Kind>(server: Server<K, Forking>) -> server::Running<K, Forking> {
    server.spawn_with(Duration::from_millis(10)).unwrap()
}

/// SIGKILL to every child of this process (from /proc/self/task/*/children).
fn kill_own_children() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A handler in a forked child calls `request_shutdown` (its docs say it works from any
/// handler): the parent's loop stops. Before, the child set its own copy of the flag and the
/// parent served on.
fn request_shutdown_from_a_child_stops_the_parent() {
    let mut server = ForkingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        req.server.request_shutdown();
        Ok(req.wfile.write_all(b"bye\n")?)
    })
    .unwrap();
    let address = server.server_address().clone();
    let handle = server.shutdown_handle();
    let client = Socket::new(address.family(), Type::Stream).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(&address).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let serving = thread::spawn(move || {
        let served = server.serve_forever_with(Duration::from_secs(60));
        let _ = tx.send(served.is_ok());
        server.server_close();
        server
    });
    assert_eq!(client.recv(10).unwrap(), b"bye\n");
    let stopped = rx.recv_timeout(GENEROUS);
    if stopped.is_err() {
        handle.shutdown().unwrap(); // end the loop the child could not
    }
    let server = serving.join().unwrap();
    assert_eq!(stopped, Ok(true), "the parent's loop did not stop");
    assert_eq!(server.strategy().active_children(), 0);
}

/// With the server's state lock held across each fork (a test hook: another thread of the
/// parent, the signal watcher say, may hold it at that moment), the child still finishes and
/// exits: it touches no lock of the parent's. Before, its in-flight ticket locked that state as
/// it ended, and the child (and the parent's blocking close) hung forever.
fn a_child_touches_no_lock_of_the_parent() {
    let server = ForkingTcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    server.shutdown_handle().hold_lock_across_fork(true);
    let running = serve_on_a_thread(server);
    let address = running.server_address().clone();
    stream_examine(&address);
    let mut server = running.shutdown().unwrap();
    // server_close waits for the child; bounded, so a deadlocked child fails the check.
    let server = bounded(
        "the request child after a fork with the lock held",
        move || {
            server.server_close();
            server
        },
    );
    assert_eq!(server.strategy().active_children(), 0);
}

/// The role of this binary re-executed with `RUST_BACKTRACE=1`: serves `PANICS` requests whose
/// handler panics, then prints the CPU its reaped children used.
const PANIC_ROLE: &str = "SOCKSERVE_FORKING_PANIC_CHILD";
const PANICS: usize = 10;

fn panic_child() -> ! {
    // A closure that only panics says nothing of its outcome: `-> Result<(), _>` does.
    let mut server = ForkingTcpServer::bind("127.0.0.1:0", |_req| -> Result<(), BoxError> {
        panic!("request handler panicked on purpose")
    })
    .unwrap();
    let address = server.server_address().clone();
    let handle = server.shutdown_handle();
    let serving = thread::spawn(move || {
        server
            .serve_forever_with(Duration::from_millis(10))
            .unwrap();
        server.server_close(); // reaps every child: their CPU time is counted as ours
    });
    for _ in 0..PANICS {
        let c = Socket::new(address.family(), Type::Stream).unwrap();
        c.settimeout(Some(GENEROUS));
        c.connect(&address).unwrap();
        assert_eq!(c.recv(10).unwrap(), b"", "the child closed the connection");
    }
    handle.shutdown().unwrap();
    serving.join().unwrap();
    // /proc/self/stat fields 16 and 17: cutime and cstime, in clock ticks (100 a second).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    println!("children_cpu_ms={}", ticks * 10);
    std::process::exit(0)
}

/// With `RUST_BACKTRACE=1`, a panicking request child reports its panic in one line and does
/// not symbolise a backtrace (150-190 ms of CPU each before: a client that can trigger a panic
/// made a forking server do five requests a second).
fn a_panicking_child_reports_one_line_without_a_backtrace() {
    let mut role = std::process::Command::new(std::env::current_exe().unwrap());
    role.env(PANIC_ROLE, "1").env("RUST_BACKTRACE", "1");
    let (stdout, stderr) = run_role(role);
    let cpu_ms: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("children_cpu_ms="))
        .unwrap_or_else(|| panic!("no CPU line in {stdout:?}"))
        .parse()
        .unwrap();
    let reports = stderr
        .lines()
        .filter(|l| l.starts_with("sockserve: request child ") && l.contains(" panicked at "))
        .count();
    println!(
        "forking:   {PANICS} panicking children used {cpu_ms} ms of CPU, {reports} report lines"
    );
    assert_eq!(reports, PANICS, "one line per panic:\n{stderr}");
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("RUST_BACKTRACE"),
        "a backtrace was printed:\n{stderr}"
    );
    assert!(
        cpu_ms < 50 * PANICS as u64,
        "{cpu_ms} ms of CPU for {PANICS} panics"
    );
}

/// The role of this binary re-executed under `ulimit -n 64`: with no descriptor left for a
/// child's exit pipe, the request is served anyway and the child is reaped on the tick.
const NO_FDS_ROLE: &str = "SOCKSERVE_FORKING_NO_FDS_CHILD";

fn no_fds_child() -> ! {
    let running = ForkingTcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .spawn_with(Duration::from_millis(100))
        .unwrap();
    // Fill the descriptor table, then free two: one for the client, one for the accept, none
    // for the exit pipe.
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = null.try_clone() {
        fillers.push(f);
    }
    assert!(nix::unistd::pipe().is_err(), "the descriptor table is full");
    fillers.truncate(fillers.len() - 2);
    let c = client(running.server_address());
    echoed(&c);
    wait_until("the child without an exit pipe reaped on the tick", || {
        running.children() == 0 && running.in_flight() == 0
    });
    drop(fillers);
    let mut server = running.shutdown().unwrap();
    server.server_close();
    println!("no_fds_served_and_reaped");
    std::process::exit(0)
}

/// Out of descriptors for a child's exit pipe, the server serves the request anyway and
/// reaps that child on its tick (in a process of its own, under `ulimit -n 64`).
fn without_an_exit_pipe_the_child_is_served_and_reaped_on_the_tick() {
    let mut role = std::process::Command::new("sh");
    role.args(["-c", "ulimit -n 64 && exec \"$0\""])
        .arg(std::env::current_exe().unwrap())
        .env(NO_FDS_ROLE, "1");
    let (stdout, stderr) = run_role(role);
    assert!(
        stdout.contains("no_fds_served_and_reaped"),
        "{stdout}\n{stderr}"
    );
}

/// Runs this binary in one of its roles (no stdin) and checks it succeeded; its stdout and
/// stderr.
fn run_role(mut role: std::process::Command) -> (String, String) {
    let output = role.stdin(std::process::Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// The close after a graceful stop ends a stuck request child (SIGTERM at the deadline) and
/// never signals a child the program started for another reason.
fn close_by_ends_only_its_own_children() {
    // SAFETY: the child only waits for a signal, then `_exit`s.
    let foreign = match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // Not synchronisation: a foreign child that lives until the test kills it.
            loop {
                thread::sleep(Duration::from_secs(60));
            }
        }
        ForkResult::Parent { child } => child,
    };
    let server = ForkingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut one = [0; 1];
        std::io::Read::read_exact(&mut req.rfile, &mut one)?;
        req.wfile.write_all(b"!")?;
        thread::sleep(Duration::from_secs(60)); // ignores its socket and every stop
        Ok(())
    })
    .unwrap();
    let running = serve_on_a_thread(server);
    let address = running.server_address().clone();
    let client = Socket::new(address.family(), Type::Stream).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(&address).unwrap();
    client.sendall(b"x").unwrap();
    assert_eq!(client.recv(1).unwrap(), b"!", "the request child runs");
    let mut server = running.shutdown().unwrap();
    let started = Instant::now();
    let report = server.server_close_by(&server::CloseDeadline::at(Instant::now()));
    let took = started.elapsed();
    let foreign_alive = matches!(
        waitpid(foreign, Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::StillAlive)
    );
    let _ = nix::sys::signal::kill(foreign, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(foreign, None);
    assert_eq!(report.children_terminated, 1, "{report:?}");
    assert_eq!(server.strategy().active_children(), 0, "{report:?}");
    assert!(foreign_alive, "the foreign child was signalled");
    assert!(took < Duration::from_secs(2), "the close took {took:?}");
}

/// Dropping an open server is a bounded close: it waits 5 s for its children whatever
/// `block_on_close` says (false here: Python's close would not wait), then ends the ones still
/// running (SIGTERM) and reaps them, so none outlives the server unreaped.
fn dropping_an_open_server_ends_its_children_after_its_wait() {
    let server: Server<server::Tcp, Forking> =
        ForkingTcpServer::builder(|req: &mut StreamRequest| {
            let mut one = [0; 1];
            std::io::Read::read_exact(&mut req.rfile, &mut one)?;
            req.wfile.write_all(b"!")?;
            thread::sleep(Duration::from_secs(60)); // ignores its socket and every stop
            Ok(())
        })
        .strategy(Forking::new().block_on_close(false))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = serve_on_a_thread(server);
    let handle = running.shutdown_handle();
    let c = client(running.server_address());
    c.sendall(b"x").unwrap();
    assert_eq!(c.recv(1).unwrap(), b"!", "the request child runs");
    let server = running.shutdown().unwrap();
    let started = Instant::now();
    drop(server);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "the drop did not wait: {took:?}"
    );
    assert!(took < GENEROUS, "the drop took {took:?}");
    assert_eq!((handle.children(), handle.in_flight()), (0, 0));
    assert_eq!(
        c.recv(1).unwrap(),
        b"",
        "the child ended, and its connection with it"
    );
}

fn no_children_left_at_all() {
    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        Err(nix::errno::Errno::ECHILD) => {}
        other => panic!("a child was left behind: {other:?}"),
    }
}

fn main() {
    if std::env::var_os(PANIC_ROLE).is_some() {
        panic_child();
    }
    if std::env::var_os(NO_FDS_ROLE).is_some() {
        no_fds_child();
    }
    let checks: &[(&str, fn())] = &[
        ("forking TCP server, foreign child kept", tcp),
        ("forking Unix stream server", unix_stream),
        ("forking UDP server", udp),
        ("forking Unix datagram server", unix_datagram),
        (
            "panicking child",
            panicking_child_exits_and_the_server_serves_on,
        ),
        (
            "max_children",
            max_children_pauses_accepting_without_blocking_the_loop,
        ),
        (
            "graceful stop",
            graceful_stop_shuts_down_a_child_blocked_on_an_idle_client,
        ),
        (
            "graceful stop of finished children",
            graceful_stop_of_finished_children_is_prompt,
        ),
        (
            "max_children resumes when a child exits, without a tick",
            max_children_resumes_when_a_child_exits_without_a_tick,
        ),
        ("live children in Running", running_shows_live_children),
        (
            "graceful stop returns when its child exits early",
            graceful_stop_returns_when_its_child_exits_early,
        ),
        (
            "request_shutdown from a child",
            request_shutdown_from_a_child_stops_the_parent,
        ),
        (
            "no parent lock in the child",
            a_child_touches_no_lock_of_the_parent,
        ),
        (
            "one-line panic report",
            a_panicking_child_reports_one_line_without_a_backtrace,
        ),
        (
            "server_close_by ends only its own children",
            close_by_ends_only_its_own_children,
        ),
        (
            "no exit pipe: served, reaped on the tick",
            without_an_exit_pipe_the_child_is_served_and_reaped_on_the_tick,
        ),
        (
            "dropping an open server ends its children after its wait",
            dropping_an_open_server_ends_its_children_after_its_wait,
        ),
        ("no zombies", no_children_left_at_all),
    ];
    // The panicking-child check panics on purpose in its children: one line for those, not a
    // backtrace that buries a real failure in CI's log. (This binary is ours alone, so the hook,
    // process-wide state, is ours to set.)
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = (payload.downcast_ref::<&str>().copied())
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if message.is_some_and(|m| m.contains("on purpose")) {
            eprintln!("forking: a child handler panicked on purpose (expected)");
        } else {
            default_hook(info);
        }
    }));
    testsupport::run_panicking_checks("forking", checks);
}
