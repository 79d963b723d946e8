//! The `echo_server` matrix: every family (`tcp`, `tcp6`, `udp`, `unix`, `unix-datagram`) in
//! every mode (`sync`, `threading`, `forking`), each against CPython clients written as a
//! newcomer would write them, then stopped by a signal.
//!
//! One case: start `echo_server --family F --mode M --addr A` (port 0, or a path in a temp
//! directory), read `listening on ADDR`, run the client script of the family (several messages
//! up to 1 MiB on one connection, every byte compared, and a client that half-closes with
//! `shutdown(SHUT_WR)` and still reads everything back; two connections at once in the
//! concurrent modes; datagrams from 1 byte to 65,507), then hold an idle connection open (stream
//! families), send SIGTERM (SIGINT in one case) with `kill(1)`, and require: exit status 0 within
//! [`SHUTDOWN_LIMIT`], the idle client seeing EOF or a reset, and the Unix socket file gone.
//!
//! A mode that `echo_server` does not offer yet (it exits non-zero saying `--mode M is not
//! available yet`) is reported as skipped; any other failure fails the case.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{CLIENT_LIMIT, STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog, start_announced};

/// How long the server may take to exit after the signal: the contract's 2 s grace for
/// requests in flight, the library's 5 s at most for forced handlers to end, and a margin
/// for a loaded CI machine. (It takes about 2 s.)
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(12);
/// How long the idle client may take to see the end of its connection once the server exited.
const IDLE_CLIENT_LIMIT: Duration = Duration::from_secs(5);

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

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) family: Family,
    pub(crate) mode: &'static str,
    /// The signal that stops it (`TERM` or `INT`).
    pub(crate) signal: &'static str,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "echo_server {}/{} SIG{}",
            self.family.arg(),
            self.mode,
            self.signal
        )
    }
}

/// Every family in every mode, stopped by SIGTERM, and one case stopped by SIGINT (Ctrl-C).
pub(crate) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for family in Family::ALL {
        for mode in MODES {
            cases.push(Case {
                family,
                mode,
                signal: "TERM",
            });
        }
    }
    cases.push(Case {
        family: Family::Unix,
        mode: "sync",
        signal: "INT",
    });
    cases
}

/// How a case ended, when it did not fail.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Everything checked; what the shutdown took.
    Passed {
        /// From the signal to the server's exit.
        shutdown: Duration,
    },
    /// `echo_server` said the mode is not available yet.
    ModeNotAvailable,
}

/// The message `echo_server` gives for a mode it does not offer yet: the only failure that
/// is a skip.
pub(crate) fn not_available_message(mode: &str) -> String {
    format!("--mode {mode} is not available yet")
}

/// Runs one case against the `echo_server` in `examples`, with Unix socket paths in `dir`.
pub(crate) fn run_case(examples: &Path, dir: &Path, case: &Case) -> Result<Outcome> {
    let slug = format!("{}-{}-{}", case.family.arg(), case.mode, case.signal);
    let addr = case.family.addr(dir, &slug);
    let log = StderrLog::default();
    let cmd = Cmd::new(example_bin(examples, "echo_server"))
        .args(["--family", case.family.arg(), "--mode", case.mode, "--addr"])
        .arg(&addr)
        .stderr_to(&log);
    let mut server = match RunningServer::start(&cmd, STARTUP_LIMIT) {
        Ok(server) => server,
        Err(err) => {
            let stderr = log.text_within(Duration::from_secs(2));
            let exited_non_zero = !err.to_string().contains("exit status: 0");
            if exited_non_zero && stderr.contains(&not_available_message(case.mode)) {
                return Ok(Outcome::ModeNotAvailable);
            }
            return Err(format!("{err}\nits stderr:\n{}", stderr.trim_end()).into());
        }
    };
    check_announced(case.family, &addr, &server.addr)?;

    let client = client_cmd(case, &server.addr, dir);
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
    server.check_alive()?;

    // An idle connection, held open across the signal: it must not keep the server alive.
    let idle = if case.family.is_stream() {
        let cmd = Cmd::new("python3")
            .arg("-c")
            .arg_shown_as(IDLE_CLIENT, "IDLE_CLIENT")
            .args([case.family.arg(), server.addr.as_str()]);
        let (guard, line) = start_announced(&cmd, "a `connected` line", CLIENT_LIMIT)?;
        if line != "connected" {
            return Err(format!("the idle client said {line:?}, not `connected`").into());
        }
        Some((cmd, guard))
    } else {
        None
    };

    let signalled = Instant::now();
    server.guard.signal(case.signal)?;
    let status = server
        .guard
        .wait_within(SHUTDOWN_LIMIT)
        .map_err(|e| format!("after SIG{}: the server {e}", case.signal))?;
    let shutdown = signalled.elapsed();
    if !status.success() {
        return Err(format!(
            "after SIG{} the server exited with {status}, not 0; its stderr:\n{}",
            case.signal,
            log.text_within(Duration::from_secs(1)).trim_end()
        )
        .into());
    }
    eprintln!(
        "    ok: SIG{} -> exit 0 in {:.3}s",
        case.signal,
        shutdown.as_secs_f64()
    );
    if let Some((cmd, mut guard)) = idle {
        let status = guard
            .wait_within(IDLE_CLIENT_LIMIT)
            .map_err(|e| format!("the idle client, after the server exited, {e}"))?;
        if !status.success() {
            return Err(format!("`{}` failed ({status})", cmd.display()).into());
        }
    }
    if case.family.is_unix() && Path::new(&addr).exists() {
        return Err(format!("the socket file {addr} is still there after exit").into());
    }
    Ok(Outcome::Passed { shutdown })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_covers_every_family_and_mode_and_both_signals() {
        let cases = cases();
        assert_eq!(cases.len(), 16);
        for family in Family::ALL {
            for mode in MODES {
                assert!(
                    cases
                        .iter()
                        .any(|c| c.family == family && c.mode == mode && c.signal == "TERM")
                );
            }
        }
        assert!(cases.iter().any(|c| c.signal == "INT"));
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

    #[test]
    fn only_the_exact_message_is_a_skip() {
        assert_eq!(
            not_available_message("forking"),
            "--mode forking is not available yet"
        );
    }
}
