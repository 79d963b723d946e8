//! `serve_until_signal`: SIGTERM and SIGINT stop a server gracefully, an idle client is closed
//! after the grace period, the Unix socket file is removed, and the process exits 0.
//!
//! Signal dispositions are process-wide, so this is a test binary of its own (`harness = false`
//! in Cargo.toml). Its `main` runs each check in turn; a check re-executes this binary with
//! [`CHILD_ENV`] set, which makes the child a server (see [`child_main`]), and signals it with
//! `kill`. `main` prints "signals: N passed, M failed" and exits non-zero on failure.

// A harness-less test reports on stdout and stderr itself.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sockserve::reactor::Signal;
use sockserve::{
    Address, DatagramRequest, Forking, Kind, Server, SignalStop, StopSignals, Strategy,
    StreamRequest, Synchronous, TcpServer, Threading, UnixDatagramServer, UnixStreamServer,
    serve_until_signal,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Set in a child: `tcp`, `tcp-late` (serves half a second after announcing), `tcp-long-grace`
/// (a grace period of [`LONG_GRACE`]) or `unix:PATH`, the server it runs.
const CHILD_ENV: &str = "SOCKSERVE_SIGNALS_TEST_CHILD";
/// The grace period the child's server gets.
const GRACE: Duration = Duration::from_secs(2);
/// A grace period no check waits out: a stop that takes it shows a wait that should not be.
const LONG_GRACE: Duration = Duration::from_secs(60);
/// A generous bound for anything the child does (start, stop, exit).
const BOUND: Duration = Duration::from_secs(10);
/// How long the stuck handler sleeps, ignoring its socket: far longer than any stop may take.
const STUCK: Duration = Duration::from_secs(30);
/// The strategies the stop checks run under.
const STRATEGIES: [&str; 3] = ["sync", "threading", "forking"];

use testsupport::Check;

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        std::process::exit(match child_main(&mode) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("signals child: {e}");
                1
            }
        });
    }
    let checks: &[(&str, Check)] = &[
        (
            "tcp_sigterm_closes_an_idle_client_and_exits_0",
            tcp_sigterm_closes_an_idle_client_and_exits_0,
        ),
        (
            "unix_sigterm_removes_the_socket_file",
            unix_sigterm_removes_the_socket_file,
        ),
        ("tcp_sigint_without_clients", tcp_sigint_without_clients),
        (
            "a_signal_before_serving_is_kept",
            a_signal_before_serving_is_kept,
        ),
        (
            "shutdown_handle_ends_it_without_a_signal",
            shutdown_handle_ends_it_without_a_signal,
        ),
        (
            "a_stuck_handler_cannot_stretch_the_stop",
            a_stuck_handler_cannot_stretch_the_stop,
        ),
        ("a_second_signal_stops_now", a_second_signal_stops_now),
        (
            "a_datagram_client_that_never_reads_cannot_wedge_the_server",
            a_datagram_client_that_never_reads_cannot_wedge_the_server,
        ),
        (
            "a_signal_after_the_loop_ended_still_bounds_the_close",
            a_signal_after_the_loop_ended_still_bounds_the_close,
        ),
        (
            "a_panic_on_the_serving_thread_is_an_error_not_a_hang",
            a_panic_on_the_serving_thread_is_an_error_not_a_hang,
        ),
    ];
    testsupport::run_checks("signals", checks);
}

/// The child: an echo server stopped by a signal. Prints `listening on ADDR` first, then
/// `stopped: signal=... forced=N loop_stopped=B` once `serve_until_signal` returned.
fn child_main(mode: &str) -> io::Result<()> {
    let echo = |req: &mut StreamRequest| loop {
        let data = req.rfile.fill_buf()?;
        if data.is_empty() {
            return Ok(());
        }
        req.wfile.write_all(data)?;
        let n = data.len();
        req.rfile.consume(n);
    };
    // The handlers before the announcement: the parent signals as soon as it reads it.
    let stop = if mode == "tcp" || mode == "tcp-late" || mode == "tcp-long-grace" {
        let server = TcpServer::bind("127.0.0.1:0", echo)?;
        let signals = StopSignals::install()?;
        announce(server.server_address())?;
        if mode == "tcp-late" {
            // Not synchronisation: a window in which the parent's signal surely arrives
            // before the loop starts, which is the case under test.
            thread::sleep(Duration::from_millis(500));
        }
        let grace = if mode == "tcp-long-grace" {
            LONG_GRACE
        } else {
            GRACE
        };
        signals.serve_until_signal(server, grace)?
    } else if let Some(path) = mode.strip_prefix("unix:") {
        let server = UnixStreamServer::bind(Path::new(path), echo)?;
        let signals = StopSignals::install()?;
        announce(server.server_address())?;
        signals.serve_until_signal(server, GRACE)?
    } else if let Some((test, rest)) = mode.split_once(':') {
        let (strategy, path) = rest
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad child mode {mode:?}")))?;
        return match strategy {
            "sync" => stop_child(test, Path::new(path), Synchronous),
            "threading" => stop_child(test, Path::new(path), Threading::new()),
            "forking" => stop_child(test, Path::new(path), Forking::new()),
            _ => Err(io::Error::other(format!("unknown strategy in {mode:?}"))),
        };
    } else {
        return Err(io::Error::other(format!("unknown child mode {mode:?}")));
    };
    let signal = stop.signal.map_or("none", Signal::as_str);
    let graceful = stop.graceful.unwrap_or_default();
    println!(
        "stopped: signal={signal} forced={} loop_stopped={}",
        graceful.forced, graceful.loop_stopped
    );
    io::stdout().flush()
}

/// A child for the stop checks: `stuck` (a Unix stream server whose handler answers one byte
/// with its pid, then sleeps [`STUCK`] ignoring its socket; grace [`GRACE`]), `second` (the
/// same with a grace of [`LONG_GRACE`]) or `dgram` (a Unix datagram echo; grace [`GRACE`]).
/// Prints `stopping` once the graceful stop began, then the `stopped:` line and a `detail:`
/// line with the report's fields.
fn stop_child<C: Strategy>(test: &str, path: &Path, strategy: C) -> io::Result<()> {
    let stuck = |req: &mut StreamRequest| {
        let mut one = [0; 1];
        req.rfile.read_exact(&mut one)?;
        writeln!(req.wfile, "{}", std::process::id())?;
        thread::sleep(STUCK); // the handler under test: it ignores its socket and every stop
        Ok(())
    };
    let dgram_echo = |req: &mut DatagramRequest| {
        req.wfile.extend_from_slice(&req.packet);
        Ok(())
    };
    match test {
        "stuck" => stop_and_report(
            UnixStreamServer::builder(stuck)
                .strategy(strategy)
                .bind(path)?,
            GRACE,
        ),
        "quit" => {
            // A request that ends the loop ("q", as a handler's request_shutdown) beside a
            // stuck one: the close then waits for the stuck one, until the signal's stop gives
            // it a deadline.
            let quit_or_stick = |req: &mut StreamRequest| -> Result<(), sockserve::BoxError> {
                let mut one = [0; 1];
                req.rfile.read_exact(&mut one)?;
                if one == *b"q" {
                    req.server.request_shutdown();
                    return Ok(req.wfile.write_all(b"quitting\n")?);
                }
                writeln!(req.wfile, "{}", std::process::id())?;
                thread::sleep(STUCK);
                Ok(())
            };
            let server = UnixStreamServer::builder(quit_or_stick)
                .strategy(strategy)
                .bind(path)?;
            let handle = server.shutdown_handle();
            // Says when the loop has returned, so the parent's signal comes after it.
            thread::spawn(move || {
                // Serving began: seen serving, or a request in flight (the stuck one stays in
                // flight until the stop, even if the loop came and went between two looks).
                while !handle.is_serving() && handle.in_flight() == 0 {
                    thread::sleep(Duration::from_millis(5));
                }
                while handle.is_serving() {
                    thread::sleep(Duration::from_millis(5));
                }
                println!("loop-ended");
                let _ = io::stdout().flush();
            });
            stop_and_report(server, GRACE)
        }
        "second" => stop_and_report(
            UnixStreamServer::builder(stuck)
                .strategy(strategy)
                .bind(path)?,
            LONG_GRACE,
        ),
        "dgram" => stop_and_report(
            UnixDatagramServer::builder(dgram_echo)
                .strategy(strategy)
                .bind(path)?,
            GRACE,
        ),
        _ => Err(io::Error::other(format!("unknown stop test {test:?}"))),
    }
}

fn stop_and_report<K: Kind, C: Strategy>(server: Server<K, C>, grace: Duration) -> io::Result<()> {
    let signals = StopSignals::install()?;
    let deadline = server.shutdown_handle().close_deadline();
    // Says when the graceful stop began, so the parent's second signal comes after it.
    thread::spawn(move || {
        while !deadline.is_set() {
            thread::sleep(Duration::from_millis(5));
        }
        println!("stopping");
        let _ = io::stdout().flush();
    });
    announce(server.server_address())?;
    let stop = signals.serve_until_signal(server, grace)?;
    print_report(&stop)
}

fn print_report(stop: &SignalStop) -> io::Result<()> {
    let graceful = stop.graceful.unwrap_or_default();
    println!(
        "stopped: signal={} forced={} loop_stopped={}",
        stop.signal.map_or("none", Signal::as_str),
        graceful.forced,
        graceful.loop_stopped
    );
    println!(
        "detail: second={} serving_abandoned={} threads_abandoned={} terminated={} killed={} \
         still_running={} took_ms={} report={stop}",
        stop.forced_by.map_or("none", Signal::as_str),
        stop.serving_thread_abandoned,
        stop.closed.threads_abandoned,
        stop.closed.children_terminated,
        stop.closed.children_killed,
        stop.still_running,
        stop.took.as_millis(),
    );
    io::stdout().flush()
}

fn announce(address: &Address) -> io::Result<()> {
    println!("listening on {address}");
    io::stdout().flush()
}

/// A child server; dropping it kills and waits it, on every path out of a check.
struct ChildServer {
    child: Child,
    lines: Receiver<String>,
    address: String,
}

impl ChildServer {
    fn start(mode: &str) -> Result<ChildServer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the child: {e}"))?;
        let stdout = child.stdout.take().ok_or("the child has no stdout")?;
        let lines = read_lines(stdout);
        let mut server = ChildServer {
            child,
            lines,
            address: String::new(),
        };
        let first = server.next_line("its address")?;
        server.address = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("first line {first:?} is not `listening on ADDR`"))?
            .to_owned();
        Ok(server)
    }

    fn next_line(&self, what: &str) -> Result<String, String> {
        self.lines
            .recv_timeout(BOUND)
            .map_err(|_| format!("the child did not print {what} within {BOUND:?}"))
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        // The shell's built-in kill: a slim machine may have no kill(1) (procps).
        let status = Command::new("sh")
            .args(["-c", "kill \"$1\" \"$2\"", "sh", signal])
            .arg(self.child.id().to_string())
            .status()
            .map_err(|e| format!("running kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill {signal} failed: {status}"));
        }
        Ok(())
    }

    /// Waits for the child to exit within `BOUND`.
    fn wait_exit(&mut self) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + BOUND;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return Err(format!("the child did not exit within {BOUND:?}")),
                Err(e) => return Err(format!("waiting for the child: {e}")),
            }
        }
    }

    /// Signals the child, checks it exits 0 within the bound, and returns its last line.
    fn stop_with(&mut self, signal: &str) -> Result<(String, Duration), String> {
        let started = Instant::now();
        self.signal(signal)?;
        let status = self.wait_exit()?;
        let took = started.elapsed();
        if !status.success() {
            return Err(format!("the child exited with {status} after {signal}"));
        }
        let last = self.next_line("its `stopped:` line")?;
        Ok((last, took))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's stdout lines, read on a thread so that reads can be bounded.
fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends a byte and reads it back: the handler is running on this connection.
fn ping(stream: &mut impl ReadWrite) -> Result<(), String> {
    stream.write_all(b"x").map_err(|e| format!("ping: {e}"))?;
    let mut one = [0; 1];
    stream
        .read_exact(&mut one)
        .map_err(|e| format!("ping reply: {e}"))
}

/// After the stop, the idle client reads EOF (not a timeout, not a reset).
fn expect_eof(stream: &mut impl ReadWrite) -> Result<(), String> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("the idle client read {n} unexpected bytes")),
        Err(e) => Err(format!("the idle client did not read EOF: {e}")),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn check_line(line: &str, signal: &str, forced: usize) -> Result<(), String> {
    let want = format!("stopped: signal={signal} forced={forced} loop_stopped=true");
    if line == want {
        Ok(())
    } else {
        Err(format!("last line {line:?}, expected {want:?}"))
    }
}

fn tcp_sigterm_closes_an_idle_client_and_exits_0() -> Result<(), String> {
    let mut server = ChildServer::start("tcp")?;
    let mut idle =
        TcpStream::connect(server.address.as_str()).map_err(|e| format!("connect: {e}"))?;
    idle.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    ping(&mut idle)?;
    let (line, took) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 1)?;
    if took < GRACE {
        return Err(format!("stopped after {took:?}, before the grace period"));
    }
    expect_eof(&mut idle)
}

fn unix_sigterm_removes_the_socket_file() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path: PathBuf = dir.path().join("server.sock");
    let mut server = ChildServer::start(&format!("unix:{}", path.display()))?;
    if server.address != path.display().to_string() {
        return Err(format!("announced {:?}, bound {path:?}", server.address));
    }
    if !path.exists() {
        return Err("the socket file does not exist while serving".to_owned());
    }
    let mut idle = UnixStream::connect(&path).map_err(|e| format!("connect: {e}"))?;
    idle.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    ping(&mut idle)?;
    let (line, _) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 1)?;
    expect_eof(&mut idle)?;
    if path.exists() {
        return Err("the socket file is still there after the stop".to_owned());
    }
    Ok(())
}

fn tcp_sigint_without_clients() -> Result<(), String> {
    let mut server = ChildServer::start("tcp-long-grace")?;
    let (line, took) = server.stop_with("-INT")?;
    check_line(&line, "SIGINT", 0)?;
    // Nothing in flight: no grace period to wait out.
    if took >= BOUND {
        return Err(format!("an idle server took {took:?} to stop"));
    }
    Ok(())
}

/// A signal between `StopSignals::install` and serving neither kills the process nor is lost:
/// the server stops as soon as it serves.
fn a_signal_before_serving_is_kept() -> Result<(), String> {
    let mut server = ChildServer::start("tcp-late")?;
    let (line, _) = server.stop_with("-TERM")?;
    check_line(&line, "SIGTERM", 0)
}

/// In this process: a `ShutdownHandle` ends the serving, no signal is reported, the server is
/// closed, and the signals are free again for a second call.
fn shutdown_handle_ends_it_without_a_signal() -> Result<(), String> {
    for round in 0..2 {
        let server = TcpServer::bind("127.0.0.1:0", |_r: &mut StreamRequest| Ok(()))
            .map_err(|e| format!("bind: {e}"))?;
        let handle = server.shutdown_handle();
        let stopper = thread::spawn(move || {
            let deadline = Instant::now() + BOUND;
            while !handle.is_serving() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            handle.shutdown()
        });
        let closed = server.shutdown_handle();
        let stop = serve_until_signal(server, GRACE)
            .map_err(|e| format!("round {round}: serve_until_signal: {e}"))?;
        stopper
            .join()
            .map_err(|_| "the stopper panicked".to_owned())?
            .map_err(|e| format!("shutdown: {e}"))?;
        if stop.signal.is_some() || stop.graceful.is_some() {
            return Err(format!("round {round}: unexpected {stop:?}"));
        }
        if closed.is_serving() || closed.in_flight() != 0 || !stop.is_clean() {
            return Err(format!("round {round}: not cleanly stopped: {stop:?}"));
        }
    }
    Ok(())
}

/// The child's `detail:` line, as `key=value` pairs (the `report=` text last).
fn detail(server: &ChildServer) -> Result<String, String> {
    loop {
        let line = server.next_line("its `detail:` line")?;
        if let Some(rest) = line.strip_prefix("detail: ") {
            return Ok(rest.to_owned());
        }
    }
}

fn field<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Reads the `detail:` line of a stop that had to leave a stuck request, and checks it says
/// what each strategy does with one: sync leaves the serving thread, threading the thread,
/// forking ends the child with SIGTERM.
fn left_behind(server: &ChildServer, strategy: &str) -> Result<String, String> {
    let detail = detail(server)?;
    let (key, value) = match strategy {
        "sync" => ("serving_abandoned", "true"),
        "threading" => ("threads_abandoned", "1"),
        _ => ("terminated", "1"),
    };
    if field(&detail, key) != Some(value) {
        return Err(format!("{strategy}: expected {key}={value} in {detail:?}"));
    }
    Ok(detail)
}

/// Connects to the stuck server and returns the pid its handler runs in.
fn start_stuck_request(path: &Path) -> Result<UnixStream, String> {
    let stream = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn handler_pid(stream: &mut UnixStream) -> Result<u32, String> {
    stream.write_all(b"x").map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(&*stream)
        .read_line(&mut line)
        .map_err(|e| format!("reading the handler's pid: {e}"))?;
    line.trim()
        .parse()
        .map_err(|e| format!("the handler's pid {line:?}: {e}"))
}

/// A process that has ended: gone, or a zombie nobody reaped yet.
fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A handler that sleeps 30 s ignoring its socket: SIGTERM with a 2 s grace still exits 0
/// within the grace plus `STOP_BOUND` (3 s), in every mode, the socket file is removed, and
/// the report says what was left: sync, the serving thread; threading, the thread; forking,
/// the child ended by SIGTERM (and it is gone).
fn a_stuck_handler_cannot_stretch_the_stop() -> Result<(), String> {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("stuck.sock");
        let mut server = ChildServer::start(&format!("stuck:{strategy}:{}", path.display()))?;
        let mut client = start_stuck_request(&path)?;
        let pid = handler_pid(&mut client)?;
        let (line, took) = server
            .stop_with("-TERM")
            .map_err(|e| format!("{strategy}: {e}"))?;
        let limit = GRACE + sockserve::server::STOP_BOUND + Duration::from_millis(1500);
        if took > limit || took < GRACE {
            return Err(format!(
                "{strategy}: stopped after {took:?}, expected between {GRACE:?} and {limit:?}"
            ));
        }
        if !line.starts_with("stopping") && !line.starts_with("stopped: signal=SIGTERM forced=1") {
            return Err(format!("{strategy}: unexpected line {line:?}"));
        }
        let detail = left_behind(&server, strategy)?;
        if path.exists() {
            return Err(format!("{strategy}: the socket file is still there"));
        }
        if strategy == "forking" && !has_ended(pid) {
            return Err(format!("{strategy}: the request child {pid} still runs"));
        }
        println!("signals:   {strategy}: stopped in {took:?}: {detail}");
    }
    Ok(())
}

/// A second SIGTERM during a long graceful stop (60 s of grace) stops at once, in every mode:
/// the stuck request is shut down or killed, the socket file is removed, and the report says the
/// stop was forced.
fn a_second_signal_stops_now() -> Result<(), String> {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("second.sock");
        let mut server = ChildServer::start(&format!("second:{strategy}:{}", path.display()))?;
        let mut client = start_stuck_request(&path)?;
        let pid = handler_pid(&mut client)?;
        server.signal("-TERM")?;
        let line = server.next_line("`stopping`")?;
        if line != "stopping" {
            return Err(format!("{strategy}: expected `stopping`, got {line:?}"));
        }
        let (_, took) = server
            .stop_with("-TERM")
            .map_err(|e| format!("{strategy}: {e}"))?;
        if took > Duration::from_secs(3) {
            return Err(format!("{strategy}: a second signal took {took:?} to stop"));
        }
        let detail = detail(&server)?;
        if field(&detail, "second") != Some("SIGTERM") {
            return Err(format!("{strategy}: not reported as forced: {detail:?}"));
        }
        if strategy == "forking" && field(&detail, "killed") != Some("1") {
            return Err(format!("{strategy}: the child was not killed: {detail:?}"));
        }
        if path.exists() {
            return Err(format!("{strategy}: the socket file is still there"));
        }
        if strategy == "forking" && !has_ended(pid) {
            return Err(format!("{strategy}: the request child {pid} still runs"));
        }
        println!("signals:   {strategy}: second signal stopped it in {took:?}: {detail}");
    }
    Ok(())
}

/// A Unix datagram client that sends and never reads fills its queue after a few replies; the
/// server must go on serving others (replies are dropped, not waited for) and stop on SIGTERM.
fn a_datagram_client_that_never_reads_cannot_wedge_the_server() -> Result<(), String> {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("dgram.sock");
        let mut server = ChildServer::start(&format!("dgram:{strategy}:{}", path.display()))?;
        let bad = UnixDatagram::bind(dir.path().join("bad.sock")).map_err(|e| e.to_string())?;
        let good = UnixDatagram::bind(dir.path().join("good.sock")).map_err(|e| e.to_string())?;
        good.set_read_timeout(Some(BOUND))
            .map_err(|e| e.to_string())?;
        bad.set_nonblocking(true).map_err(|e| e.to_string())?;
        for round in 0..2 {
            // 200 datagrams, never read (a full server queue drops the rest: not our concern).
            let sent = (0..200)
                .filter(|i| bad.send_to(format!("bad {i}").as_bytes(), &path).is_ok())
                .count();
            if sent == 0 {
                return Err(format!("{strategy}: the bad client could send nothing"));
            }
            good.send_to(b"hello", &path)
                .map_err(|e| format!("{strategy}: good send: {e}"))?;
            let mut buf = [0; 64];
            let n = good.recv(&mut buf).map_err(|e| {
                format!("{strategy}: round {round}: the good client got no reply: {e}")
            })?;
            if &buf[..n] != b"hello" {
                return Err(format!("{strategy}: reply {:?}", &buf[..n]));
            }
        }
        let (line, took) = server
            .stop_with("-TERM")
            .map_err(|e| format!("{strategy}: {e}"))?;
        if !line.starts_with("stopping") && !line.starts_with("stopped: signal=SIGTERM") {
            return Err(format!("{strategy}: unexpected line {line:?}"));
        }
        if took > GRACE + Duration::from_secs(1) {
            return Err(format!("{strategy}: SIGTERM took {took:?}"));
        }
        if path.exists() {
            return Err(format!("{strategy}: the socket file is still there"));
        }
    }
    Ok(())
}

/// The loop ended without a signal (a handler's `request_shutdown`) while another request is
/// stuck, so the close waits for it; a SIGTERM then still ends it all within the grace plus
/// `STOP_BOUND`. Before, the close had no deadline and waited the stuck request out.
fn a_signal_after_the_loop_ended_still_bounds_the_close() -> Result<(), String> {
    for strategy in ["threading", "forking"] {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("quit.sock");
        let mut server = ChildServer::start(&format!("quit:{strategy}:{}", path.display()))?;
        let mut stuck = start_stuck_request(&path)?;
        let pid = handler_pid(&mut stuck)?;
        let mut quit = start_stuck_request(&path)?;
        quit.write_all(b"q").map_err(|e| format!("send q: {e}"))?;
        let mut reply = String::new();
        BufReader::new(&quit)
            .read_line(&mut reply)
            .map_err(|e| format!("{strategy}: quit reply: {e}"))?;
        let line = server
            .next_line("`loop-ended`")
            .map_err(|e| format!("{strategy}: {e}"))?;
        if line != "loop-ended" {
            return Err(format!("{strategy}: expected `loop-ended`, got {line:?}"));
        }
        let (_, took) = server
            .stop_with("-TERM")
            .map_err(|e| format!("{strategy}: {e}"))?;
        let limit = GRACE + sockserve::server::STOP_BOUND + Duration::from_millis(1500);
        if took > limit {
            return Err(format!(
                "{strategy}: stopped after {took:?}, over {limit:?}"
            ));
        }
        let detail = left_behind(&server, strategy)?;
        if strategy == "forking" && !has_ended(pid) {
            return Err(format!("{strategy}: the request child {pid} still runs"));
        }
        if path.exists() {
            return Err(format!("{strategy}: the socket file is still there"));
        }
        println!("signals:   {strategy}: stopped in {took:?}: {detail}");
    }
    Ok(())
}

/// A strategy that panics, which unwinds through `serve_forever` on the serving thread.
struct PanickingStrategy;

impl Strategy for PanickingStrategy {
    fn process_request(&mut self, _job: sockserve::Job) {
        panic!("the strategy panicked on purpose");
    }
}

/// In this process: a panic on the serving thread comes back as an error of
/// `serve_until_signal`, promptly. Before, the watcher waited for a signal, and then for ever.
fn a_panic_on_the_serving_thread_is_an_error_not_a_hang() -> Result<(), String> {
    let server = TcpServer::builder(|_r: &mut StreamRequest| Ok(()))
        .strategy(PanickingStrategy)
        .bind("127.0.0.1:0")
        .map_err(|e| format!("bind: {e}"))?;
    let address = server.server_address().as_inet().ok_or("not inet")?;
    let (tx, rx) = mpsc::channel();
    // Not joined on a hang (it would never end); the process ends with the check run.
    thread::spawn(move || {
        let _ = tx.send(serve_until_signal(server, GRACE));
    });
    let _client = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
    match rx.recv_timeout(BOUND) {
        Ok(Err(e)) if e.to_string().contains("panicked on purpose") => Ok(()),
        Ok(other) => Err(format!("expected the panic as an error, got {other:?}")),
        Err(_) => Err(format!(
            "serve_until_signal hung for {BOUND:?} after the panic"
        )),
    }
}
