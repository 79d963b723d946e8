//! What a server costs in memory and CPU: a huge `max_packet_size` must not be paid for at bind
//! (it is clamped to the largest datagram the family carries, and reserved without touching),
//! and an idle server must not spin, whatever its `poll_interval` (zero is floored).
//!
//! Memory and CPU are only measurable for a process of its own, so this binary (`harness =
//! false` in Cargo.toml) re-executes itself, as `process.rs` does: with `SOCKSERVE_RESOURCES_ROLE`
//! set it is a child server, otherwise it is the parent that runs the checks one after the
//! other, reads the children's `/proc/PID/status` and `/proc/PID/stat`, prints "resources: N
//! passed, M failed" and exits non-zero on failure. Every child is held by a `Kid`, whose `Drop`
//! kills and reaps it; a child also exits by itself when its stdin (a pipe from the parent)
//! closes, so none outlives a parent that dies.

// A harness-less test reports on stdout and stderr itself, and so do its child servers.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod util;

use handler::{DatagramRequest, StreamRequest};
use socket::{Family, Socket, Type, opt};
use sockserve_server::{TcpServer, UdpServer, UnixDatagramServer};
use std::{
    env, fs,
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{self, Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};
use util::{Check, GENEROUS, run_checks};

/// Selects the child's role; absent in the parent.
const ROLE: &str = "SOCKSERVE_RESOURCES_ROLE";
/// The temporary directory a `huge-packets` child binds its Unix socket in.
const DIR: &str = "SOCKSERVE_RESOURCES_DIR";
/// The poll interval of an `idle` child in milliseconds; absent: the default.
const POLL_MS: &str = "SOCKSERVE_RESOURCES_POLL_MS";

/// What the children ask for: 4 GiB, which took 10.7 s and 4 GiB of RSS per server to zero-fill.
const HUGE: usize = 4 << 30;
/// The largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
const LARGEST_UDP_V4: usize = 65_507;
/// The longest Unix datagram Linux builds (x86_64, 4 KiB pages), as the server crate documents.
const UNIX_CEILING: usize = 4_263_616;
/// Binding both huge servers must take less than this (it was ~21 s).
const BIND_LIMIT: Duration = Duration::from_secs(2);
/// A child's resident memory must stay under this (it was 8 GiB: two 4 GiB buffers).
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// How long an idle child is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// The CPU time an idle child may use in that window (it was ~2 s with a zero poll interval).
const IDLE_CPU_LIMIT: Duration = Duration::from_millis(100);
/// The bound on a child's start-up: only detects a hang, and leaves room for the old 21 s
/// bind, so a regression is reported with its figures rather than as a timeout.
const START_HANG: Duration = Duration::from_secs(60);
/// The unit of utime and stime in /proc/PID/stat: USER_HZ, which Linux fixes at 100 on every
/// architecture this crate builds for (x86, arm, riscv, ...; it is what sysconf(_SC_CLK_TCK)
/// reports, which would need libc, a crate this layer's tests do not name).
const USER_HZ: u64 = 100;

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    let checks: &[(&str, Check)] = &[
        (
            "huge_max_packet_size_binds_at_once_in_little_memory",
            huge_max_packet_size_binds_at_once_in_little_memory,
        ),
        (
            "largest_udp_datagram_arrives_whole_with_a_huge_max_packet_size",
            largest_udp_datagram_arrives_whole_with_a_huge_max_packet_size,
        ),
        (
            "huge_max_packet_size_is_clamped_to_the_largest_datagrams",
            huge_max_packet_size_is_clamped_to_the_largest_datagrams,
        ),
        (
            "unix_datagram_of_the_clamped_size_arrives_whole",
            unix_datagram_of_the_clamped_size_arrives_whole,
        ),
        (
            "zero_poll_interval_idles_without_spinning",
            zero_poll_interval_idles_without_spinning,
        ),
        (
            "default_poll_interval_idles_without_spinning",
            default_poll_interval_idles_without_spinning,
        ),
    ];
    run_checks("resources", checks);
}

// ---------------------------------------------------------------------------------------------
// The children.

/// Prints every log record on stdout as "log LEVEL MESSAGE", for the parent to check.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        println!("log {} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

/// Runs a child role and exits: 0 when the parent closes stdin, 2 when the server cannot start.
fn child(role: &str) -> ! {
    static LOGGER: StdoutLogger = StdoutLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let result = match role {
        "huge-packets" => huge_packets(),
        "idle" => idle(),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(()) => process::exit(0),
        Err(message) => {
            eprintln!("{role}: {message}");
            process::exit(2);
        }
    }
}

/// A UDP echo server and a Unix datagram server (answering with the length it received), both
/// with a 4 GiB `max_packet_size`. Prints "ready UDP_ADDRESS BIND_SECONDS" once both are bound.
fn huge_packets() -> Result<(), String> {
    let dir = env::var_os(DIR).ok_or_else(|| format!("{DIR} is not set"))?;
    let started = Instant::now();
    let udp = UdpServer::builder(|req: &mut DatagramRequest| {
        req.wfile = req.packet.to_vec();
        Ok(())
    })
    .max_packet_size(HUGE)
    .bind("127.0.0.1:0")
    .map_err(|e| format!("binding the UDP server: {e}"))?;
    let unix = UnixDatagramServer::builder(|req: &mut DatagramRequest| {
        Ok(write!(req.wfile, "{}", req.packet.len())?)
    })
    .max_packet_size(HUGE)
    .bind(Path::new(&dir).join("server.sock"))
    .map_err(|e| format!("binding the Unix datagram server: {e}"))?;
    let bind_time = started.elapsed();
    let address = udp.server_address().to_string();
    exit_with_stdin();
    for mut server in [Box::new(udp) as Box<dyn Serve>, Box::new(unix)] {
        thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("huge-packets: serving: {e}");
                process::exit(3);
            }
        });
    }
    println!("ready {address} {}", bind_time.as_secs_f64());
    park()
}

/// A TCP server that nobody connects to, with the poll interval of `POLL_MS` (or the default).
fn idle() -> Result<(), String> {
    let mut builder = TcpServer::builder(|_req: &mut StreamRequest| Ok(()));
    if let Some(ms) = env::var_os(POLL_MS) {
        let ms: u64 = ms
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{POLL_MS}={ms:?} is not a number"))?;
        builder = builder.poll_interval(Duration::from_millis(ms));
    }
    let mut server = builder.bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    exit_with_stdin();
    println!("ready {}", server.server_address());
    server.serve_forever().map_err(|e| e.to_string())
}

/// Servers of different kinds, served alike.
trait Serve: Send {
    fn serve(&mut self) -> Result<(), String>;
}

impl Serve for UdpServer {
    fn serve(&mut self) -> Result<(), String> {
        self.serve_forever().map_err(|e| e.to_string())
    }
}

impl Serve for UnixDatagramServer {
    fn serve(&mut self) -> Result<(), String> {
        self.serve_forever().map_err(|e| e.to_string())
    }
}

/// Exits the process when the parent closes our stdin (or dies).
fn exit_with_stdin() {
    thread::spawn(|| {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        process::exit(0);
    });
}

/// Waits for the thread of `exit_with_stdin` to end the process.
fn park() -> ! {
    loop {
        thread::park();
    }
}

// ---------------------------------------------------------------------------------------------
// The parent's side of a child.

/// A running child: its output lines arrive on a channel, so every wait is bounded.
/// Dropping it kills and reaps the child.
struct Kid {
    name: &'static str,
    child: Child,
    /// Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
    /// Lines of stdout; `None` at end of file.
    lines: Receiver<Option<String>>,
    /// The whole of stderr, sent at end of file.
    stderr: Receiver<String>,
    /// The "log LEVEL MESSAGE" lines seen so far, without "log ".
    logs: Vec<String>,
}

impl Kid {
    fn spawn(name: &'static str, mut cmd: Command) -> Result<Kid, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = line_tx.send(None);
        });
        let (err_tx, stderr_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        Ok(Kid {
            name,
            _stdin: child.stdin.take(),
            child,
            lines,
            stderr: stderr_rx,
            logs: Vec::new(),
        })
    }

    /// The words after "ready" of the child's ready line, waiting at most `within`; the log
    /// lines before it are kept in `logs`.
    fn ready(&mut self, within: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + within;
        let line = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(Some(line)) => match line.strip_prefix("log ") {
                    Some(log) => self.logs.push(log.to_owned()),
                    None => break Ok(line),
                },
                Ok(None) => break Err(RecvTimeoutError::Disconnected),
                Err(e) => break Err(e),
            }
        };
        match line {
            Ok(line) => match line.strip_prefix("ready ") {
                Some(rest) => Ok(rest.split(' ').map(str::to_owned).collect()),
                None => Err(format!(
                    "the {} printed {line:?}, not \"ready ...\"",
                    self.name
                )),
            },
            Err(RecvTimeoutError::Disconnected) => {
                // stderr reaches end of file when the child exits (it starts no other process).
                let stderr = self.stderr.recv_timeout(GENEROUS).unwrap_or_default();
                let status = self.child.wait().map_err(|e| e.to_string())?;
                Err(format!(
                    "the {} exited ({status}) before it was ready; stderr: {stderr:?}",
                    self.name
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("the {} was not ready within {within:?}", self.name))
            }
        }
    }

    /// Takes the log lines printed since, without waiting; any other line is an error.
    fn take_logs(&mut self) -> Result<Vec<String>, String> {
        while let Ok(Some(line)) = self.lines.try_recv() {
            match line.strip_prefix("log ") {
                Some(log) => self.logs.push(log.to_owned()),
                None => return Err(format!("the {} printed {line:?}", self.name)),
            }
        }
        Ok(std::mem::take(&mut self.logs))
    }

    /// A field of /proc/PID/status, such as "VmRSS".
    fn status_field(&self, field: &str) -> Result<String, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| format!("no {field} in {path}"))
    }

    /// The child's resident memory in KiB (VmRSS).
    fn rss_kib(&self) -> Result<u64, String> {
        let rss = self.status_field("VmRSS")?;
        rss.strip_suffix(" kB")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("VmRSS {rss:?} is not \"N kB\""))
    }

    /// The CPU time the child used so far, user and system, all threads (/proc/PID/stat).
    fn cpu_time(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // The command name, field 2, is in parentheses and may hold spaces: count from the
        // last ')'. After it come field 3 (state) ..., field 14 (utime) and 15 (stime).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("{path}: no field {} in {stat:?}", i + 3))
        };
        let total = ticks(11)? + ticks(12)?;
        Ok(Duration::from_millis(total * 1000 / USER_HZ))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Killing an exited (or already reaped) child fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This test binary as a child in `role`.
fn this_binary(role: &str) -> Command {
    let exe = env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.env(ROLE, role).env_remove(POLL_MS).env_remove(DIR);
    cmd
}

/// A `huge-packets` child, its UDP address and how long it took to bind both servers. The
/// child's Unix socket lives in `dir`.
fn huge_packets_child(dir: &Path) -> Result<(Kid, SocketAddr, Duration), String> {
    let mut cmd = this_binary("huge-packets");
    cmd.env(DIR, dir);
    let mut kid = Kid::spawn("huge-packets child", cmd)?;
    let words = kid.ready(START_HANG)?;
    let [address, seconds] = words.as_slice() else {
        return Err(format!("a ready line of {words:?}, not ADDRESS SECONDS"));
    };
    let address = address
        .parse()
        .map_err(|_| format!("{address:?} is not an address"))?;
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
    Ok((kid, address, Duration::from_secs_f64(seconds)))
}

/// Checks the child's resident memory against RSS_LIMIT_KIB.
fn rss_is_small(kid: &Kid, when: &str) -> Result<(), String> {
    let rss = kid.rss_kib()?;
    if rss >= RSS_LIMIT_KIB {
        return Err(format!(
            "{when}, the child's VmRSS is {rss} KiB, not under {RSS_LIMIT_KIB} KiB"
        ));
    }
    println!("resources:   {when}: VmRSS {rss} KiB");
    Ok(())
}

/// The CPU time an `idle` child with `poll_ms` (None: the default) uses in IDLE_WINDOW.
fn idle_cpu(poll_ms: Option<u64>) -> Result<(), String> {
    let mut cmd = this_binary("idle");
    if let Some(ms) = poll_ms {
        cmd.env(POLL_MS, ms.to_string());
    }
    let mut kid = Kid::spawn("idle child", cmd)?;
    kid.ready(GENEROUS)?;
    let before = kid.cpu_time()?;
    // A measurement window, not synchronisation: nothing is waited for.
    thread::sleep(IDLE_WINDOW);
    let used = kid.cpu_time()?.saturating_sub(before);
    if used >= IDLE_CPU_LIMIT {
        return Err(format!(
            "idle for {IDLE_WINDOW:?}, the child used {used:?} of CPU, not under {IDLE_CPU_LIMIT:?}"
        ));
    }
    println!("resources:   idle for {IDLE_WINDOW:?}: {used:?} of CPU");
    // A zero interval is raised, said once at debug level; the default is left alone.
    let raised: Vec<String> = kid
        .take_logs()?
        .into_iter()
        .filter(|l| l.contains("poll_interval"))
        .collect();
    let once = match raised.as_slice() {
        [] => poll_ms != Some(0),
        [only] => {
            poll_ms == Some(0)
                && only.starts_with("DEBUG TCPServer: poll_interval 0ns raised to 10ms")
        }
        _ => false,
    };
    if !once {
        return Err(format!(
            "with poll_interval {poll_ms:?} ms, the poll_interval logs are {raised:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn huge_max_packet_size_binds_at_once_in_little_memory() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (mut kid, _, bind_time) = huge_packets_child(dir.path())?;
    if bind_time >= BIND_LIMIT {
        return Err(format!(
            "binding two servers with max_packet_size(4 GiB) took {bind_time:?}, not under \
             {BIND_LIMIT:?} (VmRSS: {})",
            kid.rss_kib().map_or_else(|e| e, |kib| format!("{kib} KiB"))
        ));
    }
    println!("resources:   bind took {bind_time:?}");
    rss_is_small(&kid, "bound")?;
    // One warning per server, at bind, naming the option and the limit.
    let clamped: Vec<String> = kid
        .take_logs()?
        .into_iter()
        .filter(|l| l.contains("max_packet_size"))
        .collect();
    let udp = "WARN UDPServer: max_packet_size 4294967296 clamped to 65535, the largest datagram \
               of family Inet";
    let unix = "WARN UnixDatagramServer: max_packet_size 4294967296 clamped to ";
    match clamped.as_slice() {
        [a, b] if a == udp && b.starts_with(unix) => Ok(()),
        _ => Err(format!(
            "max_packet_size logs {clamped:?}, not one warning per server"
        )),
    }
}

fn largest_udp_datagram_arrives_whole_with_a_huge_max_packet_size() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (kid, address, _) = huge_packets_child(dir.path())?;
    let client = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    client
        .set_read_timeout(Some(GENEROUS))
        .map_err(|e| e.to_string())?;
    let datagram: Vec<u8> = (0..LARGEST_UDP_V4).map(|i| (i % 251) as u8).collect();
    client
        .send_to(&datagram, address)
        .map_err(|e| format!("send {} bytes to {address}: {e}", datagram.len()))?;
    let mut echo = vec![0; LARGEST_UDP_V4];
    let (n, from) = client
        .recv_from(&mut echo)
        .map_err(|e| format!("the echo from {address} (timed out?): {e}"))?;
    if from != address || echo[..n] != datagram[..] {
        return Err(format!(
            "sent {} bytes, got {n} bytes from {from}, {}",
            datagram.len(),
            if echo[..n] == datagram[..n] {
                "a prefix"
            } else {
                "other bytes"
            }
        ));
    }
    rss_is_small(&kid, "after a 65,507-byte echo")
}

fn huge_max_packet_size_is_clamped_to_the_largest_datagrams() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let udp = UdpServer::builder(|_req: &mut DatagramRequest| Ok(()))
        .max_packet_size(HUGE)
        .bind("127.0.0.1:0")
        .map_err(|e| format!("bind UDP: {e}"))?;
    if udp.max_packet_size() != 65_535 {
        return Err(format!("UDP: max_packet_size {}", udp.max_packet_size()));
    }
    let unix = UnixDatagramServer::builder(|_req: &mut DatagramRequest| Ok(()))
        .max_packet_size(HUGE)
        .bind(dir.path().join("server.sock"))
        .map_err(|e| format!("bind Unix: {e}"))?;
    // What an unprivileged sender can send: twice wmem_max (its largest SO_SNDBUF) less the
    // kernel's 32 bytes, and never more than Linux builds at all.
    let wmem_max: usize = fs::read_to_string("/proc/sys/net/core/wmem_max")
        .map_err(|e| format!("wmem_max: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("wmem_max: {e}"))?;
    let expected = (2 * wmem_max - 32).min(UNIX_CEILING);
    if unix.max_packet_size() != expected {
        return Err(format!(
            "Unix: max_packet_size {}, not {expected} (wmem_max {wmem_max})",
            unix.max_packet_size()
        ));
    }
    println!("resources:   UDP 65535, Unix {expected} (wmem_max {wmem_max})");
    Ok(())
}

fn unix_datagram_of_the_clamped_size_arrives_whole() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let mut server = UnixDatagramServer::builder(|req: &mut DatagramRequest| {
        Ok(write!(req.wfile, "{}", req.packet.len())?)
    })
    .max_packet_size(HUGE)
    .timeout(Some(GENEROUS))
    .bind(dir.path().join("server.sock"))
    .map_err(|e| format!("bind: {e}"))?;
    let size = server.max_packet_size();
    let client = Socket::new(Family::Unix, Type::Datagram).map_err(|e| e.to_string())?;
    client
        .bind(dir.path().join("client.sock"))
        .map_err(|e| format!("bind the client: {e}"))?;
    client.settimeout(Some(GENEROUS));
    // The kernel doubles what it is asked for, up to twice wmem_max: room for `size` + 32.
    client
        .setsockopt(opt::SendBufferSize, size)
        .map_err(|e| format!("SO_SNDBUF: {e}"))?;
    let datagram = vec![7u8; size];
    client
        .sendto(&datagram, server.server_address())
        .map_err(|e| format!("send a {size}-byte datagram: {e}"))?;
    server
        .handle_request()
        .map_err(|e| format!("handle_request: {e}"))?;
    let reply = client
        .recv(64)
        .map_err(|e| format!("the reply (timed out?): {e}"))?;
    if reply != size.to_string().as_bytes() {
        return Err(format!(
            "sent {size} bytes, the server received {:?}",
            String::from_utf8_lossy(&reply)
        ));
    }
    println!("resources:   a {size}-byte Unix datagram arrived whole");
    Ok(())
}

fn zero_poll_interval_idles_without_spinning() -> Result<(), String> {
    idle_cpu(Some(0))
}

fn default_poll_interval_idles_without_spinning() -> Result<(), String> {
    idle_cpu(None)
}
