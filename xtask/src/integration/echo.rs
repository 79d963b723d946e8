//! The `echo_server` matrix: every family (`tcp`, `tcp6`, `udp`, `unix`, `unix-datagram`) in
//! every mode (`sync`, `threading`, `forking`), each against CPython clients written as a
//! newcomer would write them, then stopped by a signal; and the cases where a client or an
//! operator misbehaves, in every mode.
//!
//! Every case starts `echo_server --family F --mode M --addr A` (port 0, or a path in a temp
//! directory), reads `listening on ADDR`, runs what its [`Check`] says, sends its signals with
//! the shell's `kill`, and checks the stop: the exit status, how long it took, the one line the
//! server prints on stderr as it stops, the clients held across the stop, and the Unix socket
//! file gone.
//!
//! - [`Check::Clients`]: the client script of the family (several messages up to 1 MiB on one
//!   connection, every byte compared, and a client that half-closes with `shutdown(SHUT_WR)`
//!   and still reads everything back; two connections at once in the concurrent modes;
//!   datagrams from 1 byte to 65,507), then an idle connection held open (stream families)
//!   across SIGTERM (SIGINT in one case): exit status 0 within [`SHUTDOWN_LIMIT`], not before
//!   the [`GRACE`] when a connection is idle, a line `SIGTERM: stopped in ...; 1 connection(s)
//!   shut down at the deadline`, the idle client seeing EOF or a reset.
//! - [`Check::NeverReader`] (`unix-datagram`): a client that sends 2 x 200 datagrams and never
//!   reads its replies, next to one that does and must be answered each time (within
//!   [`ANSWER_WITHIN`]); then SIGTERM, exit status 0.
//! - [`Check::SecondSignal`] (`unix`, `tcp`): an idle connection in a handler, SIGTERM and then
//!   SIGINT: a forced stop, exit status 130 well within the grace ([`FORCED_STOP_LIMIT`]), a
//!   line saying `forced stop`, the idle client seeing EOF or a reset.
//!
//! Every case runs: `echo_server` offers every mode, so any failure fails the case.

use std::fmt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{CLIENT_LIMIT, STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{ChildGuard, Cmd, RunningServer, StderrLog, start_announced};

/// How long the server may take to exit after the signal: the contract's 2 s grace for
/// requests in flight, the library's 5 s at most for forced handlers to end, and a margin
/// for a loaded CI machine. (It takes about 2 s.)
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(12);
/// How long the idle client may take to see the end of its connection once the server exited.
const IDLE_CLIENT_LIMIT: Duration = Duration::from_secs(5);
/// `echo_server`'s grace for requests in flight: with an idle connection, a single signal's
/// stop lasts at least this long.
const GRACE: Duration = Duration::from_secs(2);
/// How long a stop forced by a second signal may take, from the first: well under the
/// [`GRACE`], which it must not wait out. (It takes a few milliseconds.)
const FORCED_STOP_LIMIT: Duration = Duration::from_millis(1500);
/// How long the well-behaved client of [`Check::NeverReader`] waits for each echo: the bound
/// only tells a wedged server from a slow one (an answer takes well under a millisecond).
const ANSWER_WITHIN: &str = "5";

/// The families of `echo_server --family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// TCP over IPv4.
    Tcp,
    /// TCP over IPv6.
    Tcp6,
    /// UDP over IPv4.
    Udp,
    /// Unix stream sockets.
    Unix,
    /// Unix datagram sockets.
    UnixDatagram,
}

impl Family {
    /// Every family, in the order the matrix runs them.
    pub(crate) const ALL: [Family; 5] = [
        Family::Tcp,
        Family::Tcp6,
        Family::Udp,
        Family::Unix,
        Family::UnixDatagram,
    ];

    /// The `--family` value.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Family::Tcp => "tcp",
            Family::Tcp6 => "tcp6",
            Family::Udp => "udp",
            Family::Unix => "unix",
            Family::UnixDatagram => "unix-datagram",
        }
    }

    /// Connections (and so an idle client at shutdown) rather than datagrams.
    fn is_stream(self) -> bool {
        matches!(self, Family::Tcp | Family::Tcp6 | Family::Unix)
    }

    /// A filesystem path rather than `HOST:PORT`.
    pub(crate) fn is_unix(self) -> bool {
        matches!(self, Family::Unix | Family::UnixDatagram)
    }

    /// The `--addr` of one case: port 0 on loopback, or a fresh path in `dir`.
    fn addr(self, dir: &Path, case: &str) -> String {
        match self {
            Family::Tcp | Family::Udp => "127.0.0.1:0".to_owned(),
            Family::Tcp6 => "[::1]:0".to_owned(),
            Family::Unix | Family::UnixDatagram => {
                dir.join(format!("{case}.sock")).display().to_string()
            }
        }
    }
}

/// The modes of `echo_server --mode`.
pub(crate) const MODES: [&str; 3] = ["sync", "threading", "forking"];

/// What a case does between the server's start and its stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The family's client script, then an idle connection (stream families) held across
    /// the signal.
    Clients,
    /// A Unix datagram client that never reads its replies must not keep the server from
    /// answering another client, nor from stopping.
    NeverReader,
    /// An idle connection in a handler, then a second signal during the graceful stop: a
    /// forced stop.
    SecondSignal,
}

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) family: Family,
    pub(crate) mode: &'static str,
    pub(crate) check: Check,
    /// The signals sent, in order, right after one another (`TERM`, `INT`).
    pub(crate) signals: &'static [&'static str],
}

impl Case {
    /// The signals as the report shows them: `SIGTERM`, `SIGTERM+SIGINT`.
    pub(crate) fn signals_shown(&self) -> String {
        let names: Vec<String> = self.signals.iter().map(|s| format!("SIG{s}")).collect();
        names.join("+")
    }

    /// The exit status the stop must end with: 0, or 128 + the number of the second signal
    /// (a forced stop, reported as a shell reports a process that signal killed).
    fn expected_exit(&self) -> i32 {
        match self.signals.get(1) {
            None => 0,
            Some(&second) => 128 + signal_number(second),
        }
    }

    /// A short name for the case's files (Unix socket paths have about 100 bytes).
    fn slug(&self) -> String {
        let check = match self.check {
            Check::Clients => "",
            Check::NeverReader => "-nr",
            Check::SecondSignal => "-2sig",
        };
        format!(
            "{}-{}-{}{check}",
            self.family.arg(),
            self.mode,
            self.signals.join("-")
        )
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.check == Check::NeverReader {
            "never-reader "
        } else {
            ""
        };
        write!(
            f,
            "echo_server {}/{} {what}{}",
            self.family.arg(),
            self.mode,
            self.signals_shown()
        )
    }
}

/// The number of a signal `case.signals` names (the same on every Unix).
fn signal_number(signal: &str) -> i32 {
    match signal {
        "INT" => 2,
        "TERM" => 15,
        other => unreachable!("no case sends SIG{other}"),
    }
}

/// Every family in every mode, stopped by SIGTERM, and one case stopped by SIGINT (Ctrl-C);
/// then, in every mode, a never-reading Unix datagram client, and a second signal over Unix
/// and TCP.
pub(crate) fn cases() -> Vec<Case> {
    let case = |family, mode, check, signals| Case {
        family,
        mode,
        check,
        signals,
    };
    let mut cases = Vec::new();
    for family in Family::ALL {
        for mode in MODES {
            cases.push(case(family, mode, Check::Clients, &["TERM"]));
        }
    }
    cases.push(case(Family::Unix, "sync", Check::Clients, &["INT"]));
    for mode in MODES {
        cases.push(case(
            Family::UnixDatagram,
            mode,
            Check::NeverReader,
            &["TERM"],
        ));
    }
    for family in [Family::Unix, Family::Tcp] {
        for mode in MODES {
            // Two different signals: two of one kind may arrive as one.
            cases.push(case(family, mode, Check::SecondSignal, &["TERM", "INT"]));
        }
    }
    cases
}

/// How a case ended, when it did not fail.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// From the first signal to the server's exit.
    pub(crate) shutdown: Duration,
    /// The server's exit status.
    pub(crate) exit: i32,
}

/// Runs one case against the `echo_server` in `examples`, with Unix socket paths in `dir`.
pub(crate) fn run_case(examples: &Path, dir: &Path, case: &Case) -> Result<Outcome> {
    let addr = case.family.addr(dir, &case.slug());
    let log = StderrLog::default();
    let cmd = Cmd::new(example_bin(examples, "echo_server"))
        .args(["--family", case.family.arg(), "--mode", case.mode, "--addr"])
        .arg(&addr)
        .stderr_to(&log);
    let mut server = match RunningServer::start(&cmd, STARTUP_LIMIT) {
        Ok(server) => server,
        Err(err) => {
            let stderr = log.text_within(Duration::from_secs(2));
            return Err(format!("{err}\nits stderr:\n{}", stderr.trim_end()).into());
        }
    };
    check_announced(case.family, &addr, &server.addr)?;

    // The clients still there when the signal comes.
    let held = match case.check {
        Check::Clients => {
            run_client(case, &server.addr, dir)?;
            server.check_alive()?;
            // An idle connection, held open across the signal: it must not keep the server
            // alive.
            if case.family.is_stream() {
                Some(idle_client(case, &server.addr)?)
            } else {
                None
            }
        }
        Check::NeverReader => Some(never_reader(case, &server.addr, dir, ANSWER_WITHIN)?),
        Check::SecondSignal => Some(idle_client(case, &server.addr)?),
    };
    server.check_alive()?;

    let signalled = Instant::now();
    for (i, signal) in case.signals.iter().enumerate() {
        server.guard.signal(signal).map_err(|e| match i {
            0 => e.to_string(),
            _ => format!("SIG{signal}, right after the first signal: {e} (it did not wait)"),
        })?;
    }
    let status = server
        .guard
        .wait_within(SHUTDOWN_LIMIT)
        .map_err(|e| format!("after {}: the server {e}", case.signals_shown()))?;
    let shutdown = signalled.elapsed();
    // The server has exited, so its stderr is closed (or about to be: a forked child may
    // hold it a moment longer).
    let stderr = log.text_within(Duration::from_secs(2));
    let exit = check_stop(case, status, shutdown, &stderr)?;
    eprintln!(
        "    ok: {} -> exit {exit} in {:.3}s",
        case.signals_shown(),
        shutdown.as_secs_f64()
    );
    if let Some(client) = held {
        client.finish()?;
    }
    if case.family.is_unix() && Path::new(&addr).exists() {
        return Err(format!("the socket file {addr} is still there after exit").into());
    }
    Ok(Outcome { shutdown, exit })
}

/// Checks how the server stopped after `case.signals`: its exit status, the time it took
/// (`took`, from the first signal), and its last line on stderr (all of `stderr`). Returns the
/// exit status.
fn check_stop(case: &Case, status: ExitStatus, took: Duration, stderr: &str) -> Result<i32> {
    let signals = case.signals_shown();
    let fail = |why: String| -> Result<i32> {
        Err(format!(
            "after {signals} the server {why}; its stderr:\n{}",
            stderr.trim_end()
        )
        .into())
    };
    let expected = case.expected_exit();
    if status.code() != Some(expected) {
        return fail(format!("exited with {status}, not exit status {expected}"));
    }
    let first = format!("SIG{}", case.signals[0]);
    let (limit, at_least, wanted) = match case.check {
        Check::SecondSignal => (
            FORCED_STOP_LIMIT,
            Duration::ZERO,
            vec!["forced stop".into()],
        ),
        Check::Clients if case.family.is_stream() => (
            SHUTDOWN_LIMIT,
            // The idle connection is in flight: the stop waits the grace out, then shuts it.
            GRACE,
            vec![
                format!("{first}: stopped in"),
                "shut down at the deadline".into(),
            ],
        ),
        Check::Clients | Check::NeverReader => (
            SHUTDOWN_LIMIT,
            Duration::ZERO,
            vec![format!("{first}: stopped in")],
        ),
    };
    if took >= limit {
        return fail(format!(
            "took {:.3}s to exit, not under {limit:?}",
            took.as_secs_f64()
        ));
    }
    if took < at_least {
        return fail(format!(
            "exited after {:.3}s, with a connection in flight and a grace of {GRACE:?}",
            took.as_secs_f64()
        ));
    }
    let last = stderr.lines().last().unwrap_or_default();
    if let Some(missing) = wanted.iter().find(|w| !last.contains(w.as_str())) {
        return fail(format!(
            "printed the last line {last:?} on stderr, without {missing:?}"
        ));
    }
    Ok(expected)
}

/// Runs the client script of `case.family` against `addr` to the end; it must succeed.
fn run_client(case: &Case, addr: &str, dir: &Path) -> Result<()> {
    let client = client_cmd(case, addr, dir);
    let output = client.output_within(CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}):\n{}{}",
            client.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    for line in stdout.lines() {
        eprintln!("    ok: {line}");
    }
    Ok(())
}

/// A CPython client held across the stop, checked once the server has exited.
#[derive(Debug)]
struct HeldClient {
    cmd: Cmd,
    guard: ChildGuard,
    /// For messages: `the idle client`.
    what: &'static str,
    /// The signal that ends it once the server has exited; `None`: it ends by itself then.
    stop: Option<&'static str>,
}

impl HeldClient {
    /// Starts `cmd` and waits for its first stdout line, which must start with `ready`: what
    /// it prints instead says why it is not (naming the case's family and mode).
    fn start(
        case: &Case,
        cmd: Cmd,
        what: &'static str,
        ready: &str,
        stop: Option<&'static str>,
    ) -> Result<HeldClient> {
        let (guard, line) = start_announced(&cmd, &format!("`{ready} ...` line"), CLIENT_LIMIT)?;
        if !line.starts_with(ready) {
            return Err(format!(
                "echo_server --family {} --mode {}: {what}: {line}",
                case.family.arg(),
                case.mode
            )
            .into());
        }
        eprintln!("    ok: {line}");
        Ok(HeldClient {
            cmd,
            guard,
            what,
            stop,
        })
    }

    /// Ends the client (its `stop` signal, if any) and requires exit status 0 within
    /// [`IDLE_CLIENT_LIMIT`].
    fn finish(mut self) -> Result<()> {
        if let Some(signal) = self.stop {
            self.guard.signal(signal)?;
        }
        let status = self
            .guard
            .wait_within(IDLE_CLIENT_LIMIT)
            .map_err(|e| format!("{}, after the server exited, {e}", self.what))?;
        if !status.success() {
            return Err(format!("`{}` failed ({status})", self.cmd.display()).into());
        }
        Ok(())
    }
}

/// [`IDLE_CLIENT`] against `addr`, once it has had its exchange (its handler is running).
fn idle_client(case: &Case, addr: &str) -> Result<HeldClient> {
    let cmd = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(IDLE_CLIENT, "IDLE_CLIENT")
        .args([case.family.arg(), addr]);
    HeldClient::start(case, cmd, "the idle client", "connected", None)
}

/// [`NEVER_READER_CLIENT`] against `addr` (its sockets in `dir`, each echo awaited at most
/// `answer_within` seconds), once the well-behaved client was answered twice; SIGTERM ends it.
fn never_reader(case: &Case, addr: &str, dir: &Path, answer_within: &str) -> Result<HeldClient> {
    let cmd = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(NEVER_READER_CLIENT, "NEVER_READER_CLIENT")
        .arg(addr)
        .arg(dir)
        .arg(answer_within);
    HeldClient::start(
        case,
        cmd,
        "a client that never reads next to one that does",
        "answered",
        Some("TERM"),
    )
}

/// The server must announce the address it was given, with the real port for port 0.
fn check_announced(family: Family, asked: &str, announced: &str) -> Result<()> {
    let ok = if family.is_unix() {
        announced == asked
    } else {
        let host = asked.trim_end_matches(":0");
        announced
            .strip_prefix(host)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|port| port.parse::<u16>().ok())
            .is_some_and(|port| port != 0)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("asked for {asked}, the server announced {announced:?}").into())
    }
}

/// The CPython client of a case's family.
fn client_cmd(case: &Case, addr: &str, dir: &Path) -> Cmd {
    if case.family.is_stream() {
        let concurrent = if case.mode == "sync" { "0" } else { "1" };
        Cmd::new("python3")
            .arg("-c")
            .arg_shown_as(STREAM_CLIENT, "STREAM_CLIENT")
            .args([case.family.arg(), addr, concurrent])
    } else {
        Cmd::new("python3")
            .arg("-c")
            .arg_shown_as(DATAGRAM_CLIENT, "DATAGRAM_CLIENT")
            .args([case.family.arg(), addr])
            .arg(dir)
    }
}

/// A fresh directory `$TMPDIR/sockserve-xtask-{what}-XXXXXX` (short enough for Unix socket
/// paths), removed with what is left in it when dropped; never another run's.
pub(crate) fn temp_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("sockserve-xtask-{what}-"))
        .tempdir()
        .map_err(|e| format!("could not create a temp directory for {what}: {e}").into())
}

/// The stream client (`tcp`, `tcp6`, `unix`); `argv[3]` is `1` to also check that two
/// connections are served at once.
const STREAM_CLIENT: &str = concat!(
    include_str!("echo_prelude.py"),
    r#"
def exchange(s, data, what):
    # Send from a thread while reading: 1 MiB does not fit in the socket buffers, and the
    # server echoes as it reads.
    sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    sender.start()
    got = recv_exact(s, len(data), what)
    sender.join()
    check(what, data, got)

messages = [b"hello", b"x", bytes(range(256)), b"\0" * 1000, os.urandom(1 << 20), b"bye\n"]
with connect() as s:
    for i, m in enumerate(messages):
        exchange(s, m, f"message {i} ({len(m)} bytes)")
print(f"{len(messages)} messages on one connection, 1 byte to 1 MiB: every byte echoed")

data = os.urandom(256 * 1024)
with connect() as s:
    def send_then_half_close():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send_then_half_close, daemon=True)
    sender.start()
    buf = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    sender.join()
    check("after shutdown(SHUT_WR)", data, bytes(buf))
print("256 KiB then shutdown(SHUT_WR): every byte back, then EOF")

if sys.argv[3] == "1":
    with connect() as a, connect() as b:
        exchange(a, b"first", "connection a")
        exchange(b, b"second", "connection b, while a is open")
        exchange(a, b"first again", "connection a, while b is open")
    print("two connections served at once")
"#
);

/// The datagram client (`udp`, `unix-datagram`); `argv[3]` is a directory for the Unix
/// client's own address (an unbound Unix datagram socket cannot be answered). Loopback does
/// not lose datagrams in practice, but a lost one is sent again (5 tries) rather than failing.
const DATAGRAM_CLIENT: &str = r#"
import os, socket, sys
family, addr = sys.argv[1], sys.argv[2]
if family == "udp":
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    target = (host, int(port))
    own = None
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    own = os.path.join(sys.argv[3], f"client-{os.getpid()}.sock")
    s.bind(own)
    target = addr
s.settimeout(1)
messages = [b"a", b"hello", bytes(range(256)), os.urandom(1400), os.urandom(65507), b"bye"]

def answered(i, m):
    s.sendto(m, target)
    while True:
        try:
            got = s.recv(70000)
        except socket.timeout:
            return False
        if got == m:
            return True
        if got not in messages[:i]:  # not a late answer to an earlier try
            sys.exit(f"datagram {i} ({len(m)} bytes): got {len(got)} other bytes back")

try:
    for i, m in enumerate(messages):
        if not any(answered(i, m) for _ in range(5)):
            sys.exit(f"datagram {i} ({len(m)} bytes): no answer after 5 tries of 1 s each")
finally:
    if own:
        os.unlink(own)
print(f"{len(messages)} datagrams, 1 to 65,507 bytes: each answered with the same bytes")
"#;

/// The idle client: one exchange (so the server is serving it), `connected` on stdout, then
/// nothing until the server closes the connection; exits 0 on EOF or a reset, 1 if the
/// connection is still open after 15 s.
const IDLE_CLIENT: &str = concat!(
    include_str!("echo_prelude.py"),
    r#"
s = connect()
s.sendall(b"ping")
check("idle client's first exchange", b"ping", recv_exact(s, 4, "idle client"))
print("connected", flush=True)
s.settimeout(15)
start = time.monotonic()
try:
    data = s.recv(1)
except ConnectionResetError:
    print(f"idle client: reset after {time.monotonic() - start:.2f}s")
    sys.exit(0)
except socket.timeout:
    sys.exit("idle client: the connection is still open 15 s after the server was signalled")
if data:
    sys.exit(f"idle client: unexpected bytes {data!r}")
print(f"idle client: EOF after {time.monotonic() - start:.2f}s")
"#
);

/// Two Unix datagram clients in one process, each bound to its own path in `argv[2]`: one
/// sends 200 datagrams without ever reading a reply (non-blocking sends; one the server's
/// queue cannot take is dropped), then the other, well-behaved, sends one and must get its
/// echo within `argv[3]` seconds; the same again. Its first stdout line is `answered ...`, or
/// why not (then it exits 1). It then holds its unread replies until SIGTERM, and exits 0.
const NEVER_READER_CLIENT: &str = r#"
import os, signal, socket, sys, time
addr, tmp, within = sys.argv[1], sys.argv[2], float(sys.argv[3])
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
paths = []

def fail(why):
    print(why, flush=True)  # the line xtask reads
    sys.exit(1)

def bound(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(tmp, f"{name}-{os.getpid()}.sock")
    s.bind(path)
    paths.append(path)
    return s

def flood(n):
    taken = 0
    for i in range(n):
        try:
            never_reads.sendto(b"never read %d" % i, addr)
            taken += 1
        except BlockingIOError:
            pass  # the server's queue is full: the datagram is dropped
    return taken

def answered(i):
    m = b"well-behaved %d" % i
    start = time.monotonic()
    reads.settimeout(within)
    try:
        reads.sendto(m, addr)
    except socket.timeout:
        fail(f"the well-behaved client's datagram {i} was not even taken within {within} s: "
             "the server stopped reading while another client never read its replies")
    reads.settimeout(max(0.001, within - (time.monotonic() - start)))
    try:
        got = reads.recv(65536)
    except socket.timeout:
        fail(f"no echo of the well-behaved client's datagram {i} within {within} s "
             "while another client never read its replies: the server is wedged")
    if got != m:
        fail(f"the well-behaved client's datagram {i}: sent {m!r}, got {got!r} back")
    return (time.monotonic() - start) * 1000

try:
    never_reads = bound("never-reads")
    never_reads.setblocking(False)
    reads = bound("reads")
    first = flood(200)
    ms1 = answered(1)
    second = flood(200)
    ms2 = answered(2)
    # Linux queues at most max_dgram_qlen + 1 datagrams for a reader: more taken than that,
    # and some replies found the never-reading client's queue full.
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            queue = int(f.read()) + 1
    except OSError:
        queue = 0
    if first + second <= queue:
        fail(f"only {first + second} of 400 datagrams were taken: not enough to fill the "
             f"never-reading client's queue of {queue}, the case proves nothing")
    print(f"answered twice ({ms1:.1f} ms, {ms2:.1f} ms) next to a client that never reads "
          f"({first} + {second} of 2 x 200 datagrams taken, the rest dropped)", flush=True)
    time.sleep(30)  # the unread replies stay queued until xtask's SIGTERM
    sys.exit("never-reading client: no SIGTERM within 30 s")
except Exception as e:
    fail(f"never-reading client: {e!r}")
finally:
    for path in paths:
        os.unlink(path)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_covers_every_family_and_mode_and_both_signals() {
        let cases = cases();
        assert_eq!(cases.len(), 25);
        let has = |family, mode, check, signals: &[&str]| {
            cases.iter().any(|c| {
                c.family == family && c.mode == mode && c.check == check && c.signals == signals
            })
        };
        for mode in MODES {
            for family in Family::ALL {
                assert!(has(family, mode, Check::Clients, &["TERM"]));
            }
            assert!(has(
                Family::UnixDatagram,
                mode,
                Check::NeverReader,
                &["TERM"]
            ));
            for family in [Family::Unix, Family::Tcp] {
                assert!(has(family, mode, Check::SecondSignal, &["TERM", "INT"]));
            }
        }
        assert!(has(Family::Unix, "sync", Check::Clients, &["INT"]));
        // Each case has its own socket path, and its own name in the report.
        for (i, a) in cases.iter().enumerate() {
            for b in &cases[i + 1..] {
                assert_ne!(a.slug(), b.slug());
                assert_ne!(a.to_string(), b.to_string());
            }
        }
    }

    #[test]
    fn cases_are_named_by_what_they_send() {
        let [plain, never_reader, forced] = [
            (Family::Unix, Check::Clients, &["TERM"][..]),
            (Family::UnixDatagram, Check::NeverReader, &["TERM"][..]),
            (Family::Tcp, Check::SecondSignal, &["TERM", "INT"][..]),
        ]
        .map(|(family, check, signals)| Case {
            family,
            mode: "forking",
            check,
            signals,
        });
        assert_eq!(plain.to_string(), "echo_server unix/forking SIGTERM");
        assert_eq!(
            never_reader.to_string(),
            "echo_server unix-datagram/forking never-reader SIGTERM"
        );
        assert_eq!(forced.to_string(), "echo_server tcp/forking SIGTERM+SIGINT");
        assert_eq!((plain.expected_exit(), forced.expected_exit()), (0, 130));
    }

    /// The stop of each kind of case, as `echo_server` reports it, and what fails it.
    #[test]
    fn stops_are_checked_by_status_time_and_last_line() {
        use std::os::unix::process::ExitStatusExt;
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        let secs = Duration::from_secs_f64;
        let case = |family, check, signals| Case {
            family,
            mode: "sync",
            check,
            signals,
        };
        let graceful = case(Family::Unix, Check::Clients, &["TERM"]);
        let line = "echo_server: SIGTERM: stopped in 2.003 s; 1 connection(s) shut down at \
                    the deadline\n";
        let err = |case: &Case, status, took, stderr| {
            check_stop(case, status, took, stderr)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(check_stop(&graceful, exit(0), secs(2.01), line).unwrap(), 0);
        assert!(err(&graceful, exit(1), secs(2.01), line).contains("not exit status 0"));
        assert!(err(&graceful, exit(0), secs(0.2), line).contains("a grace of 2s"));
        let short = "echo_server: SIGTERM: stopped in 2.003 s\n";
        assert!(err(&graceful, exit(0), secs(2.01), short).contains("shut down at the deadline"));
        // The report must be the last line: an earlier one does not count.
        let earlier = format!("{line}echo_server: something else\n");
        assert!(err(&graceful, exit(0), secs(2.01), &earlier).contains("something else"));

        let datagram = case(Family::UnixDatagram, Check::NeverReader, &["TERM"]);
        let line = "echo_server: SIGTERM: stopped in 0.001 s\n";
        assert_eq!(check_stop(&datagram, exit(0), secs(0.01), line).unwrap(), 0);
        assert!(err(&datagram, exit(0), secs(12.0), line).contains("not under 12s"));

        let forced = case(Family::Tcp, Check::SecondSignal, &["TERM", "INT"]);
        let line = "echo_server: SIGTERM: forced stop (SIGINT during the graceful stop) in \
                    0.004 s; 1 connection(s) shut down at the deadline\n";
        assert_eq!(
            check_stop(&forced, exit(130), secs(0.01), line).unwrap(),
            130
        );
        // The stop waited the grace out, or ended as a graceful one: not forced.
        assert!(err(&forced, exit(130), secs(2.01), line).contains("not under 1.5s"));
        assert!(err(&forced, exit(0), secs(0.01), line).contains("not exit status 130"));
        let graceful_line = "echo_server: SIGTERM: stopped in 0.004 s\n";
        assert!(err(&forced, exit(130), secs(0.01), graceful_line).contains("forced stop"));
        assert!(err(&forced, ExitStatus::from_raw(9), secs(0.01), "").contains("signal: 9"));
    }

    /// The never-reading client against a server that sends its replies blocking, as
    /// CPython's `socketserver.UnixDatagramServer` does (and `echo_server` did): the server
    /// wedges in `sendto`, and the case fails saying so, naming the family and mode.
    #[test]
    fn a_server_that_blocks_on_a_full_queue_fails_the_never_reader_case() {
        const WEDGING_SERVER: &str = r#"
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)  # blocks while the client's queue is full
server = socketserver.UnixDatagramServer(sys.argv[1], Echo)
print(f"listening on {sys.argv[1]}", flush=True)
server.serve_forever()
"#;
        let dir = temp_dir("never-reader-test").unwrap();
        let addr = dir.path().join("wedging.sock").display().to_string();
        let cmd = Cmd::new("python3")
            .arg("-c")
            .arg_shown_as(WEDGING_SERVER, "WEDGING_SERVER")
            .arg(&addr);
        let mut server = RunningServer::start(&cmd, STARTUP_LIMIT).unwrap();
        let case = Case {
            family: Family::UnixDatagram,
            mode: "sync",
            check: Check::NeverReader,
            signals: &["TERM"],
        };
        let err = never_reader(&case, &server.addr, dir.path(), "0.5")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("echo_server --family unix-datagram --mode sync: "),
            "{err}"
        );
        assert!(
            err.contains("the server is wedged") || err.contains("not even taken"),
            "{err}"
        );
        // Wedged for good: it is still there, and its guard kills it.
        server.check_alive().unwrap();
    }

    #[test]
    fn announced_addresses_are_checked() {
        check_announced(Family::Tcp, "127.0.0.1:0", "127.0.0.1:4000").unwrap();
        check_announced(Family::Tcp6, "[::1]:0", "[::1]:4000").unwrap();
        assert!(check_announced(Family::Tcp, "127.0.0.1:0", "127.0.0.1:0").is_err());
        assert!(check_announced(Family::Tcp6, "[::1]:0", "127.0.0.1:4000").is_err());
        check_announced(Family::Unix, "/tmp/x.sock", "/tmp/x.sock").unwrap();
        assert!(check_announced(Family::Unix, "/tmp/x.sock", "/tmp/y.sock").is_err());
    }
}
