//! The examples of issue 12 as real processes (`unix_stream`, `unix_datagram`, `kv_store`,
//! `periodic`, `graceful_stop`), each with these cases:
//!
//! - its header's commands as written: the `cargo run --example ...` line (fixed port or
//!   path), the client line run by `sh`, its output compared with what the header says it
//!   prints; then SIGTERM: exit 0, the socket file removed (or the port closed);
//! - many concurrent CPython clients ([`examples_client.py`](examples_client.py)), every reply
//!   compared byte for byte, and the server's open descriptors (`/proc/PID/fd`) back to their
//!   baseline afterwards; `kv_store` also holds its connections open between two requests,
//!   waiting in the reactor, with the server's threads bounded while all are open;
//! - clients that vanish mid-request (half a request, then FIN or RST; a datagram client gone
//!   before its reply), then a whole request still answered, descriptors back to baseline;
//! - SIGTERM with a client connected (or a request in flight): no zombie children, exit 0, the
//!   socket file removed, the stop report on stderr;
//! - the ports of Python programs that listen on their originals' fixed ports (`tcp_upper`,
//!   `threaded_tcp_upper`, `udp_upper`, `forking`): each header's commands as written, ready
//!   once the port is taken, the client's output checked, then the stop the header names
//!   (Ctrl-C's SIGINT ends it; `forking`: SIGTERM, exit 0, after its children are reaped);
//! - and per example: `periodic`'s tick lines and `--handle-request` rounds, `graceful_stop`
//!   with a request longer than its grace (the report counts the connection shut down, exit 1).
//!
//! Every wait is bounded; every server is held by a guard that kills and waits it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CLIENT_LIMIT, STARTUP_LIMIT, Tally, example_bin, temp_dir};
use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog, project_root};

/// How long a stop may take: the examples' grace (at most 3 s) plus `STOP_BOUND` and a margin.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long the open descriptors may take to come back to their baseline.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// How a client reaches the example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Tcp,
    Unix,
    UnixDatagram,
}

impl Family {
    /// `examples_client.py`'s FAMILY.
    fn arg(self) -> &'static str {
        match self {
            Family::Tcp => "tcp",
            Family::Unix => "unix",
            Family::UnixDatagram => "unix-dgram",
        }
    }
}

/// One example and what its clients send and get back.
#[derive(Debug)]
struct Spec {
    example: &'static str,
    family: Family,
    /// What the header's client command prints.
    header_output: &'static str,
    /// A request and its reply (`{i}`: the client's number).
    request: &'static str,
    reply: &'static str,
    /// Concurrent clients of the load case.
    load: usize,
    /// `kv_store`: connections held open at once, and the server's thread bound meanwhile.
    hold: Option<(usize, u64)>,
}

const SPECS: &[Spec] = &[
    Spec {
        example: "unix_stream",
        family: Family::Unix,
        header_output: r"b'HELLO\n'",
        request: "hello {i}\n",
        reply: "HELLO {i}\n",
        load: 50,
        hold: None,
    },
    Spec {
        example: "unix_datagram",
        family: Family::UnixDatagram,
        header_output: "b'HELLO'",
        request: "hello {i}",
        reply: "HELLO {i}",
        load: 50,
        hold: None,
    },
    Spec {
        example: "kv_store",
        family: Family::Tcp,
        header_output: r"b'OK\nVALUE hello world\nDELETED\nNOT_FOUND\n'",
        request: "SET k{i} v{i}\nGET k{i}\n",
        reply: "OK\nVALUE v{i}\n",
        load: 50,
        // The pool's 8, the serving thread, main, the stop's watcher, and a margin.
        hold: Some((300, 14)),
    },
    Spec {
        example: "periodic",
        family: Family::Tcp,
        header_output: r"b'PONG\n'",
        request: "PING\n",
        reply: "PONG\n",
        load: 20,
        hold: None,
    },
    Spec {
        example: "graceful_stop",
        family: Family::Tcp,
        header_output: r"b'done 500\n'",
        request: "work 10\n",
        reply: "done 10\n",
        load: 50,
        hold: None,
    },
];

/// `tls_echo`'s header: its client is CPython's `ssl`, trusting the certificate the example
/// wrote; its other cases are `tls_cases`' (a plaintext load case would not speak TLS).
const TLS_ECHO: Spec = Spec {
    example: "tls_echo",
    family: Family::Tcp,
    header_output: "b'hi'",
    request: "",
    reply: "",
    load: 0,
    hold: None,
};

/// A CPython `ssl` client of `tls_echo` at `addr` (`HOST:PORT`): a few messages over one
/// session, printed as they come back.
const TLS_CLIENT: &str = "import socket, ssl, sys
host, port = sys.argv[1].rsplit(':', 1)
ctx = ssl.create_default_context(cafile='/tmp/sockserve-tls-echo-%s.pem' % port)
with socket.create_connection((host, int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname='localhost') as s:
        for word in ('one', 'two', 'three'):
            s.sendall(word.encode())
            print(s.recv(100).decode())
";

/// `tls_echo` under each strategy: a plaintext client is refused (the server goes on), a
/// CPython `ssl` client's three messages come back; SIGTERM, exit 0, the certificate's file
/// removed.
fn tls_cases(examples: &Path) -> Result<String> {
    for mode in ["sync", "threading", "forking"] {
        let log = StderrLog::default();
        let cmd = Cmd::new(example_bin(examples, "tls_echo"))
            .args(["--addr", "127.0.0.1:0", "--mode", mode])
            .stderr_to(&log);
        let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
        let mut plain = std::net::TcpStream::connect(&server.addr)?;
        plain.set_read_timeout(Some(CLIENT_LIMIT))?;
        plain.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let _ = plain.read_to_end(&mut Vec::new()); // the alert and the close, never a hang
        let client = Cmd::new("python3").args(["-c", TLS_CLIENT, server.addr.as_str()]);
        let output = client.output_within(CLIENT_LIMIT)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || stdout != "one\ntwo\nthree\n" {
            return Err(format!(
                "--mode {mode}: the ssl client printed {stdout:?} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )
            .into());
        }
        server.check_alive()?;
        server.guard.signal("TERM")?;
        let status = server.guard.wait_within(STOP_LIMIT)?;
        let stderr = log.text_within(STOP_LIMIT);
        if !status.success() || !stderr.contains("TLS handshake failed") {
            return Err(format!("--mode {mode}: exit {status}, stderr:\n{stderr}").into());
        }
        let port = server.addr.rsplit(':').next().unwrap_or_default();
        let cert = format!("/tmp/sockserve-tls-echo-{port}.pem");
        if Path::new(&cert).exists() {
            return Err(format!("--mode {mode}: {cert} is still there after the stop").into());
        }
    }
    Ok("sync, threading, forking: a plaintext client refused, 3 echoes over TLS, exit 0".into())
}

/// Runs every case of every example, recording each in `tally`.
pub(crate) fn run(examples: &Path, tally: &mut Tally) {
    let dir = match temp_dir("examples") {
        Ok(dir) => dir,
        Err(e) => return tally.record("examples: a temp dir", Instant::now(), Err(e)),
    };
    for spec in SPECS {
        let ex = spec.example;
        let case = |name: &str| format!("{ex}: {name}");
        let began = Instant::now();
        tally.record(&case("its header's commands"), began, header_case(spec));
        let began = Instant::now();
        let result = load_case(examples, dir.path(), spec, "load", spec.load);
        tally.record(
            &case(&format!("{} concurrent clients, fds", spec.load)),
            began,
            result,
        );
        if let Some((n, _)) = spec.hold {
            let began = Instant::now();
            let result = load_case(examples, dir.path(), spec, "hold", n);
            tally.record(&case(&format!("{n} waiting connections")), began, result);
        }
        let began = Instant::now();
        let result = load_case(examples, dir.path(), spec, "vanish", 10);
        tally.record(&case("clients vanish mid-request, fds"), began, result);
        let began = Instant::now();
        tally.record(
            &case("SIGTERM, graceful"),
            began,
            sigterm_case(examples, dir.path(), spec),
        );
    }
    for port in PORTS {
        let began = Instant::now();
        let name = format!("{}: its header's commands", port.example);
        tally.record(&name, began, port_header_case(port));
    }
    let began = Instant::now();
    tally.record(
        "tls_echo: its header's commands",
        began,
        header_case(&TLS_ECHO),
    );
    let began = Instant::now();
    tally.record("tls_echo: every strategy", began, tls_cases(examples));
    let began = Instant::now();
    let result = periodic_rounds(examples);
    tally.record(
        "periodic: --handle-request 2, handle_timeout",
        began,
        result,
    );
    let began = Instant::now();
    let result = graceful_overrun(examples);
    tally.record(
        "graceful_stop: work past the grace, the report",
        began,
        result,
    );
}

/// An example whose header runs it on a fixed port (the ports of Python programs, which
/// `cargo xtask lines` holds to their originals' lines, announce nothing; the others are run
/// as the header says too): its header's commands, readiness seen by its fixed port.
#[derive(Debug)]
struct Port {
    example: &'static str,
    /// Its fixed port, and whether it is UDP.
    port: u16,
    udp: bool,
    /// What the client's output must contain.
    output: &'static [&'static str],
    /// How its header says it stops (`INT`: Ctrl-C, which ends it; `TERM`: a graceful stop,
    /// exit 0).
    stop: &'static str,
}

const PORTS: &[Port] = &[
    Port {
        example: "tcp_upper",
        port: 9999,
        udp: false,
        output: &["b'HELLO'"],
        stop: "INT",
    },
    Port {
        example: "threaded_tcp_upper",
        port: 9999,
        udp: false,
        output: &["b'HELLO'"],
        stop: "INT",
    },
    Port {
        example: "udp_upper",
        port: 9999,
        udp: true,
        output: &["b'HELLO'"],
        stop: "INT",
    },
    Port {
        example: "forking",
        port: 9997,
        udp: false,
        output: &["welcome ('127.0.0.1', ", "served by pid ", "1: HI"],
        stop: "TERM",
    },
    Port {
        example: "echo_server",
        port: 9999,
        udp: false,
        output: &["b'hi'"],
        stop: "TERM",
    },
    Port {
        example: "basic_server",
        port: 9999,
        udp: false,
        output: &["b'HELLO'"],
        stop: "INT",
    },
    Port {
        example: "http_server",
        port: 8000,
        udp: false,
        output: &["# sockserve"],
        stop: "TERM",
    },
    Port {
        example: "chat",
        port: 9998,
        udp: false,
        output: &["300/300 clients got all 299 broadcasts; 0 got none"],
        stop: "INT",
    },
];

/// Whether a UDP socket is bound to `port` (`/proc/net/udp`, `/proc/net/udp6`).
fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|local| format!("{local} ").ends_with(&needle))
        })
    })
}

/// Whether the port is taken: a TCP connect succeeds, or a UDP socket is bound.
fn port_open(port: &Port) -> bool {
    if port.udp {
        udp_bound(port.port)
    } else {
        std::net::TcpStream::connect(("localhost", port.port)).is_ok()
    }
}

/// A port's header: `cargo run --example ...` as written, ready once its port is, the client
/// line by `sh`; then its stop: Ctrl-C's SIGINT ends it, or SIGTERM stops it with exit 0
/// after its children are reaped (no zombies); its port is free again either way.
fn port_header_case(port: &Port) -> Result<String> {
    let (run, try_it) = read_header(port.example)?;
    if port_open(port) {
        return Err(format!("port {} is taken before `{run}` started", port.port).into());
    }
    let words: Vec<&str> = run.split_whitespace().collect();
    let mut guard = Cmd::cargo(&words[1..]).spawn_guarded()?;
    let deadline = Instant::now() + STARTUP_LIMIT * 6;
    while !port_open(port) {
        if let Some(status) = guard.child_mut().try_wait()? {
            return Err(format!("`{run}` exited ({status}) before serving").into());
        }
        if Instant::now() >= deadline {
            return Err(format!("`{run}` did not serve port {} in time", port.port).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Cmd::new("sh")
        .arg("-c")
        .arg(&try_it)
        .output_within(CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !port.output.iter().all(|o| stdout.contains(o)) {
        return Err(format!(
            "`{try_it}` ({}) printed {:?}, not all of {:?}",
            output.status,
            stdout.trim_end(),
            port.output
        )
        .into());
    }
    let pid = guard.child_mut().id();
    let deadline = Instant::now() + SETTLE_LIMIT;
    while !zombie_children(pid)?.is_empty() {
        if Instant::now() >= deadline {
            return Err(format!("zombie children of {pid} after {SETTLE_LIMIT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    guard.signal(port.stop)?;
    let status = guard.wait_within(STOP_LIMIT)?;
    let stopped = match port.stop {
        "TERM" => status.success(),
        _ => std::os::unix::process::ExitStatusExt::signal(&status) == Some(2),
    };
    if !stopped {
        return Err(format!("`{run}`: {status} after SIG{}", port.stop).into());
    }
    if port_open(port) {
        return Err(format!("port {} still taken after the stop", port.port).into());
    }
    Ok(format!("`{run}`; SIG{}: {status}", port.stop))
}

/// The server's command line on a fresh address (port 0, or a path in `dir`).
fn server_cmd(examples: &Path, dir: &Path, spec: &Spec, log: &StderrLog) -> (Cmd, Option<PathBuf>) {
    let cmd = Cmd::new(example_bin(examples, spec.example)).stderr_to(log);
    match spec.family {
        Family::Tcp => (cmd.args(["--addr", "127.0.0.1:0"]), None),
        Family::Unix | Family::UnixDatagram => {
            let path = dir.join(format!("{}.sock", spec.example));
            (cmd.arg("--path").arg(&path), Some(path))
        }
    }
}

/// `examples_client.py` against `addr`; its last line.
fn client(spec: &Spec, addr: &str, mode: &str, n: usize, pid: u32) -> Result<String> {
    let cmd = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(include_str!("examples_client.py"), "examples_client.py")
        .args([spec.family.arg(), addr, mode, &n.to_string()])
        .args([spec.request, spec.reply, &pid.to_string()]);
    let output = cmd.output_within(CLIENT_LIMIT * 3)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}{}",
            cmd.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    Ok(stdout.lines().last().unwrap_or_default().to_owned())
}

fn open_fds(pid: u32) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {dir}: {e}"))?
        .count())
}

/// Waits, at most [`SETTLE_LIMIT`], for the open descriptors of `pid` to be `baseline` again.
fn fds_back_to(pid: u32, baseline: usize) -> Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let now = open_fds(pid)?;
        if now == baseline {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server has {now} open descriptors {SETTLE_LIMIT:?} after the load, not its \
                 baseline {baseline}"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The children of `pid` that are zombies (`Z` in `/proc/CHILD/stat`).
fn zombie_children(pid: u32) -> Result<Vec<u32>> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(|e| format!("reading /proc: {e}"))? {
        let name = entry?.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end while we look: a missing file is no zombie of ours.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: COMM may hold spaces, so read after its last `)`.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse().ok()));
        if state == Some("Z") && ppid == Some(pid) {
            zombies.push(child);
        }
    }
    Ok(zombies)
}

/// Starts the example on a fresh address, warms it with one client (so the descriptors the
/// loop opens lazily are counted), reads its fd baseline, runs `mode` with `n` clients, and
/// waits for the baseline again.
fn load_case(examples: &Path, dir: &Path, spec: &Spec, mode: &str, n: usize) -> Result<String> {
    let log = StderrLog::default();
    let (cmd, _path) = server_cmd(examples, dir, spec, &log);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id();
    client(spec, &server.addr, "load", 1, pid)?;
    let baseline = open_fds(pid)?;
    let line = client(spec, &server.addr, mode, n, pid)?;
    if let Some((_, max_threads)) = spec.hold.filter(|_| mode == "hold") {
        let threads: u64 = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("threads="))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("no threads= in the client's line {line:?}"))?;
        if threads > max_threads {
            return Err(format!(
                "{threads} server threads with {n} waiting connections, more than {max_threads}"
            )
            .into());
        }
    }
    fds_back_to(pid, baseline)?;
    server.check_alive()?;
    Ok(format!("{line}; fds back to {baseline}"))
}

/// A client that stays connected through the stop (none for datagrams), and, for
/// `graceful_stop`, the request it has in flight.
enum Held {
    None,
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Held {
    fn connect(family: Family, addr: &str) -> Result<Held> {
        Ok(match family {
            Family::Tcp => Held::Tcp(std::net::TcpStream::connect(addr)?),
            Family::Unix => Held::Unix(std::os::unix::net::UnixStream::connect(addr)?),
            Family::UnixDatagram => Held::None,
        })
    }

    fn stream(&mut self) -> Option<&mut dyn ReadWrite> {
        match self {
            Held::None => None,
            Held::Tcp(s) => Some(s),
            Held::Unix(s) => Some(s),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// SIGTERM with a client connected: no zombies before, exit 0, the socket file gone, the stop
/// report on stderr; `graceful_stop`'s request in flight is answered in full first.
fn sigterm_case(examples: &Path, dir: &Path, spec: &Spec) -> Result<String> {
    let log = StderrLog::default();
    let (cmd, path) = server_cmd(examples, dir, spec, &log);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id();
    client(spec, &server.addr, "load", 2, pid)?;
    let mut held = Held::connect(spec.family, &server.addr)?;
    let in_flight = spec.example == "graceful_stop";
    if in_flight {
        let stream = held.stream().ok_or("no stream")?;
        stream.write_all(b"work 1000\n")?;
        if let Held::Tcp(s) = &held {
            // That is all it sends: after its reply the handler sees EOF, nothing is forced.
            s.shutdown(std::net::Shutdown::Write)?;
        }
        // A round trip on a later connection: the server has accepted the first, so its
        // request is in flight when the signal comes.
        round_trip(&server.addr)?;
    }
    if spec.example == "periodic" {
        // The tick's periodic work has counted the requests served.
        wait_for(&log, "request(s) served", Duration::from_secs(5))
            .then_some(())
            .ok_or("no `periodic: tick N, M request(s) served` line within 5 s")?;
    }
    let zombies = zombie_children(pid)?;
    if !zombies.is_empty() {
        return Err(format!("zombie children of the server: {zombies:?}").into());
    }
    server.guard.signal("TERM")?;
    if in_flight {
        let stream = held.stream().ok_or("no stream")?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        if reply != b"done 1000\n" {
            return Err(format!(
                "the request in flight got {:?}, not \"done 1000\\n\"",
                String::from_utf8_lossy(&reply)
            )
            .into());
        }
    }
    let status = server.guard.wait_within(STOP_LIMIT)?;
    drop(held);
    if !status.success() {
        return Err(format!("exit status {status} after SIGTERM, not 0").into());
    }
    if let Some(path) = path.filter(|p| p.exists()) {
        return Err(format!("{} is still there after the stop", path.display()).into());
    }
    let stderr = log.text_within(STOP_LIMIT);
    let report = stderr
        .lines()
        .find(|l| l.contains("SIGTERM: stopped"))
        .ok_or_else(|| format!("no stop report (`SIGTERM: stopped ...`) on stderr:\n{stderr}"))?;
    Ok(report.to_owned())
}

/// `work 0` answered `done 0` on a connection of its own (`graceful_stop`).
fn round_trip(addr: &str) -> Result<()> {
    let mut other = std::net::TcpStream::connect(addr)?;
    other.set_read_timeout(Some(CLIENT_LIMIT))?;
    other.write_all(b"work 0\n")?;
    let mut reply = [0; 7];
    other.read_exact(&mut reply)?;
    if &reply != b"done 0\n" {
        return Err(format!("`work 0` got {:?}", String::from_utf8_lossy(&reply)).into());
    }
    Ok(())
}

/// Polls `log`, at most `limit`, for a line containing `text`; true when one came.
fn wait_for(log: &StderrLog, text: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if log.text_within(Duration::ZERO).contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The header's commands as written: `cargo run --example ...` and the client line (by `sh`),
/// whose output must be `spec.header_output`; then SIGTERM, exit 0, the address released.
fn header_case(spec: &Spec) -> Result<String> {
    let (run, try_it) = read_header(spec.example)?;
    let words: Vec<&str> = run.split_whitespace().collect();
    let server_cmd = Cmd::cargo(&words[1..]);
    let mut server = RunningServer::start(&server_cmd, STARTUP_LIMIT * 6)?;
    let client = Cmd::new("sh").arg("-c").arg(&try_it);
    let output = client.output_within(CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || stdout.trim_end() != spec.header_output {
        return Err(format!(
            "`{try_it}` ({}) printed {:?}, not {:?}: {}",
            output.status,
            stdout.trim_end(),
            spec.header_output,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    server.check_alive()?;
    server.guard.signal("TERM")?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    if !status.success() {
        return Err(format!("`{run}`: exit status {status} after SIGTERM, not 0").into());
    }
    match spec.family {
        Family::Tcp => {
            if std::net::TcpStream::connect(&server.addr).is_ok() {
                return Err(format!("{} still accepts after the stop", server.addr).into());
            }
        }
        Family::Unix | Family::UnixDatagram => {
            if Path::new(&server.addr).exists() {
                return Err(format!("{} is still there after the stop", server.addr).into());
            }
        }
    }
    Ok(format!("`{run}`; the client printed {}", stdout.trim_end()))
}

/// The `cargo run` and client lines of `examples/EXAMPLE.rs`'s header.
fn read_header(example: &str) -> Result<(String, String)> {
    let file = project_root()
        .join("examples")
        .join(format!("{example}.rs"));
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    header_commands(example, &text).ok_or_else(|| {
        let file = file.display();
        format!("{file}: no ```text block with `cargo run` and a client").into()
    })
}

/// The lines of a header's ```text blocks that run `example` (the first that starts with
/// `cargo run --example {example}`) and a client (the first that starts with `python3`, `nc`
/// or `curl`).
fn header_commands(example: &str, text: &str) -> Option<(String, String)> {
    let mut inside = false;
    let mut block = Vec::new();
    for line in text
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(str::trim)
    {
        if line.starts_with("```") {
            inside = !inside && line == "```text";
        } else if inside {
            block.push(line);
        }
    }
    let run_line = format!("cargo run --example {example}");
    let run = block
        .iter()
        .find(|l| **l == run_line || l.starts_with(&format!("{run_line} ")))?;
    let client = block.iter().find(|l| {
        ["python3 ", "nc ", "curl "]
            .iter()
            .any(|c| l.starts_with(c))
    })?;
    Some(((*run).to_owned(), (*client).to_owned()))
}

/// `periodic --handle-request 2`: two rounds with no client, each ending in `handle_timeout`,
/// then exit 0.
fn periodic_rounds(examples: &Path) -> Result<String> {
    let log = StderrLog::default();
    let cmd = Cmd::new(example_bin(examples, "periodic"))
        .args(["--addr", "127.0.0.1:0", "--handle-request", "2"])
        .stderr_to(&log);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    let stderr = log.text_within(STOP_LIMIT);
    let rounds = (1..=2)
        .filter(|r| stderr.contains(&format!("no request within 1 s (round {r})")))
        .count();
    if !status.success() || rounds != 2 {
        return Err(format!("exit {status}, {rounds} of 2 handle_timeout lines:\n{stderr}").into());
    }
    Ok("2 rounds, 2 handle_timeout lines, exit 0".to_owned())
}

/// `graceful_stop --grace 1` with a request of 9 s in flight: the grace runs out, the
/// connection is shut down (the client gets no `done`), the report counts it, exit 1.
fn graceful_overrun(examples: &Path) -> Result<String> {
    let log = StderrLog::default();
    let cmd = Cmd::new(example_bin(examples, "graceful_stop"))
        .args(["--addr", "127.0.0.1:0", "--grace", "1"])
        .stderr_to(&log);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let mut conn = std::net::TcpStream::connect(&server.addr)?;
    conn.set_read_timeout(Some(STOP_LIMIT))?;
    conn.write_all(b"work 9000\n")?;
    // A round trip on a later connection: the server has accepted the first.
    round_trip(&server.addr)?;
    server.guard.signal("TERM")?;
    let mut got = Vec::new();
    conn.read_to_end(&mut got)?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    let stderr = log.text_within(STOP_LIMIT);
    if !got.is_empty() {
        return Err(format!("the cut request got {:?}", String::from_utf8_lossy(&got)).into());
    }
    if status.code() != Some(1) || !stderr.contains("1 connection(s) shut down") {
        return Err(format!("exit {status} (not 1) or no count in the report:\n{stderr}").into());
    }
    let report = stderr
        .lines()
        .find(|l| l.contains("SIGTERM"))
        .unwrap_or_default();
    Ok(report.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_commands_are_read_from_the_text_blocks() {
        let text = "//! Intro\n//!\n//! ```text\n//! usage: kv_store [--addr ADDR]\n//! ```\n\
                    //! ```text\n//! cargo run --example other\n//! cargo run --example kv_store\n\
                    //! python3 -c \"print(1)\"\n//! ```\n//! ```text\n//! nc x\n//! ```\nfn main() {}\n";
        let (run, client) = header_commands("kv_store", text).unwrap();
        assert_eq!(run, "cargo run --example kv_store");
        assert_eq!(client, "python3 -c \"print(1)\"");
        assert!(header_commands("kv_store", "//! no block\n").is_none());
        assert!(
            header_commands("kv", text).is_none(),
            "a prefix of the name is not the name"
        );
        let code = "//! ```text\n//! cargo run --example a\n//! ```\n//! nc x\n";
        assert!(
            header_commands("a", code).is_none(),
            "a client outside a block"
        );
    }

    /// Every example of the package has its cases here or in another module.
    #[test]
    fn every_spec_is_an_example_with_a_header() {
        for spec in SPECS.iter().chain([&TLS_ECHO]) {
            let file = project_root()
                .join("examples")
                .join(format!("{}.rs", spec.example));
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                header_commands(spec.example, &text).is_some(),
                "{}",
                spec.example
            );
        }
    }

    /// Every `[[example]]` has cases somewhere in `cargo xtask integration`: here, or in the
    /// modules of the examples named in `elsewhere`.
    #[test]
    fn every_example_has_its_cases() {
        let elsewhere = [
            "basic_client",
            "threaded_docs",
            "echo_server",
            "http_server",
            "proxy_whoami",
            "prefork_server",
        ];
        let manifest = std::fs::read_to_string(project_root().join("examples/Cargo.toml")).unwrap();
        for line in manifest.lines() {
            let Some(name) = line
                .strip_prefix("name = \"")
                .and_then(|l| l.strip_suffix('"'))
            else {
                continue;
            };
            let covered = SPECS.iter().chain([&TLS_ECHO]).any(|s| s.example == name)
                || PORTS.iter().any(|p| p.example == name)
                || elsewhere.contains(&name)
                || name == "sockserve-examples";
            assert!(covered, "the example {name} has no integration case");
        }
    }

    #[test]
    fn our_own_process_has_no_zombie_children() {
        // The other tests of this process start and reap children while this one looks: a
        // child that has just exited is a zombie until its test's wait returns. A leaked one
        // stays one.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let zombies = zombie_children(std::process::id()).unwrap();
            if zombies.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "zombie children of this process for 5 s: {zombies:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
