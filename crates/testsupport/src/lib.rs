//! Helpers shared by the workspace's tests: CPython's test constants and examine functions,
//! the one-line echo, bounded reads, an event log that works across `fork`, unique socket
//! paths, the runner of harness-less test binaries, and [`Kid`], a child process read line by
//! line. Depends on the socket layer and std
//! alone, so any layer's tests can use it without pulling in a higher crate. Never published.
#![forbid(unsafe_code)]
// Test support: a failed expectation panics with a message, as a test would.
#![allow(clippy::missing_panics_doc, clippy::print_stdout)]

mod kid;

pub use kid::Kid;

use socket::{Address, Family, Socket, Type, socketpair};
use std::{
    io::{self, BufRead, Read, Write},
    net::TcpStream,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

/// CPython's `TEST_STR`.
pub const TEST_STR: &[u8] = b"hello world\n";

/// The bound for anything that should happen at once: generous, it only detects hangs.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// The one-line echo of CPython's `MyHandler`: reads a line from `rfile`, writes it back.
/// A handler writes `|req| Ok(echo_line(&mut req.rfile, &mut req.wfile)?)`.
///
/// # Errors
///
/// The read or the write failed.
pub fn echo_line(rfile: &mut impl BufRead, wfile: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    rfile.read_until(b'\n', &mut line)?;
    wfile.write_all(&line)
}

/// CPython's `stream_examine`, for any family: connect, send `TEST_STR`, read until a
/// newline, compare.
pub fn stream_examine(address: &Address) {
    let s = Socket::new(address.family(), Type::Stream).expect("a client socket");
    s.settimeout(Some(GENEROUS));
    s.connect(address).expect("connect");
    s.sendall(TEST_STR).expect("send");
    let mut buf = Vec::new();
    while !buf.ends_with(b"\n") {
        let chunk = s.recv(100).expect("receive (timed out?)");
        assert!(!chunk.is_empty(), "closed without a reply: {buf:?}");
        buf.extend(chunk);
    }
    assert_eq!(buf, TEST_STR);
}

/// CPython's `dgram_examine`, for any family: one datagram there and back, from the server's
/// address. A Unix client binds a path of its own in `dir` (an unbound one gets no reply).
pub fn dgram_examine(address: &Address, dir: &Path) {
    let s = datagram_client(address, dir);
    s.sendto(TEST_STR, address).expect("send");
    let (data, from) = s.recvfrom(100).expect("receive (timed out?)");
    assert_eq!(data, TEST_STR);
    assert_eq!(&from, address);
}

/// A datagram client for a server at `address`, bound (to `127.0.0.1:0`, or a fresh path in
/// `dir` for a Unix server) and with a generous timeout.
pub fn datagram_client(address: &Address, dir: &Path) -> Socket {
    let s = Socket::new(address.family(), Type::Datagram).expect("a client socket");
    s.settimeout(Some(GENEROUS));
    match address.family() {
        Family::Unix => s.bind(unique_path(dir, "client").as_path()),
        Family::Inet6 => s.bind("[::1]:0"),
        _ => s.bind("127.0.0.1:0"),
    }
    .expect("bind the client");
    s
}

/// A stream client connected to `address`, with a generous timeout.
pub fn stream_client(address: &Address) -> Socket {
    let s = Socket::new(address.family(), Type::Stream).expect("a client socket");
    s.settimeout(Some(GENEROUS));
    s.connect(address).expect("connect");
    s
}

/// A path in `dir` no other call of this process returns: `{prefix}-{n}.sock`.
pub fn unique_path(dir: &Path, prefix: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!(
        "{prefix}-{}.sock",
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Where a test server binds: `127.0.0.1:0`, or a fresh path in `dir` for a Unix server.
pub fn server_address(unix: bool, dir: &Path) -> String {
    if unix {
        unique_path(dir, "server").to_string_lossy().into_owned()
    } else {
        "127.0.0.1:0".to_owned()
    }
}

/// Reads everything until EOF, bounded by [`GENEROUS`].
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF (timed out?)");
    out
}

/// Waits until `done()` holds, checking every millisecond, for at most `bound`; panics with
/// `what` if it never does. For a condition with no event to wait on (a count read from
/// `/proc`, say); the bound only detects a hang.
pub fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A log of events that works across threads and `fork`: a hook or a handler records an event
/// with [`EventSender::send`], wherever it runs (a pool thread, a forked child, whose memory
/// the test cannot see), and the test reads them back in order from the [`EventLog`]. Events
/// are datagrams on a Unix socket pair, so each is whole and none is lost while the log is
/// alive.
#[derive(Debug)]
pub struct EventLog {
    receiver: Socket,
    sender: EventSender,
}

/// The sending half of an [`EventLog`]: cheap to clone, usable from any thread or child.
#[derive(Debug, Clone)]
pub struct EventSender(Arc<Socket>);

impl EventLog {
    /// A new, empty log.
    pub fn new() -> Self {
        let (receiver, sender) = socketpair(Family::Unix, Type::Datagram).expect("socketpair");
        EventLog {
            receiver,
            sender: EventSender(Arc::new(sender)),
        }
    }

    /// A sender that records into this log.
    pub fn sender(&self) -> EventSender {
        self.sender.clone()
    }

    /// The events recorded so far, without waiting: for when whatever records them has
    /// finished (a server closed, which joins its threads and reaps its children).
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.receiver.setblocking(false).expect("non-blocking");
        while let Ok(data) = self.receiver.recv(256) {
            out.push(String::from_utf8_lossy(&data).into_owned());
        }
        out
    }

    /// Waits (bounded by [`GENEROUS`]) until `n` events came, and returns them; panics,
    /// listing what came, if fewer do.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.receiver.settimeout(Some(GENEROUS));
        while out.len() < n {
            match self.receiver.recv(256) {
                Ok(data) => out.push(String::from_utf8_lossy(&data).into_owned()),
                Err(e) => panic!("waited {GENEROUS:?} for {n} events, got {out:?}: {e}"),
            }
        }
        out
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSender {
    /// Records `event`. Never fails silently: a lost event would fail the test later anyway,
    /// so a failure to send panics here with the reason.
    pub fn send(&self, event: &str) {
        self.0.send(event.as_bytes()).expect("record an event");
    }
}

/// One check of a harness-less test binary: `Err` (or a panic) says what went wrong.
pub type Check = fn() -> Result<(), String>;

/// A check as the runner holds it.
type Boxed = Box<dyn Fn() -> Result<(), String>>;

/// The runner of a harness-less test binary (`harness = false`): runs each check in order (a
/// panic fails that check, not the run; its children are killed as it unwinds), prints
/// `BINARY: NAME ... ok|FAILED: why` per check and `BINARY: N passed, M failed`, as libtest
/// would, and exits with status 1 if any failed. A command-line argument that is not a flag
/// runs only the checks whose name contains it; `--skip NAME` leaves out those whose name
/// contains NAME (as libtest's flag; `cargo xtask memcheck` uses it).
pub fn run_checks(binary: &str, checks: &[(&str, Check)]) {
    run(binary, checks, None);
}

/// [`run_checks`] for checks that fail by panicking (an assertion) rather than returning `Err`.
pub fn run_panicking_checks(binary: &str, checks: &[(&str, fn())]) {
    // Each check becomes one that returns `Ok(())` when it did not panic.
    let wrapped: Vec<(&str, Boxed)> = checks
        .iter()
        .map(|&(name, check)| {
            let body: Boxed = Box::new(move || {
                check();
                Ok(())
            });
            (name, body)
        })
        .collect();
    run_boxed(binary, &wrapped, None);
}

/// [`run_checks`], with a watchdog: a check still running after `bound` ends the whole
/// process (status 1, naming the check), for checks whose failure mode is a hang that no
/// in-check timeout can catch (a signal that never wakes a wait).
pub fn run_checks_bounded(binary: &str, checks: &[(&str, Check)], bound: Duration) {
    run(binary, checks, Some(bound));
}

fn run(binary: &str, checks: &[(&str, Check)], bound: Option<Duration>) {
    let boxed: Vec<(&str, Boxed)> = checks
        .iter()
        .map(|&(name, check)| {
            let body: Boxed = Box::new(check);
            (name, body)
        })
        .collect();
    run_boxed(binary, &boxed, bound);
}

/// The runner behind every entry point: each check is a boxed closure.
fn run_boxed(binary: &str, checks: &[(&str, Boxed)], bound: Option<Duration>) {
    // As libtest: `NAME` runs only the checks whose name contains it, `--skip NAME` (repeated
    // at will) leaves out those whose name contains NAME; other flags are ignored.
    let (mut filter, mut skip) = (None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            skip.extend(args.next());
        } else if !arg.starts_with('-') && filter.is_none() {
            filter = Some(arg);
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        if filter.as_deref().is_some_and(|f| !name.contains(f))
            || skip.iter().any(|s| name.contains(s.as_str()))
        {
            continue;
        }
        let (done, watched) = mpsc::channel::<()>();
        let watchdog = bound.map(|bound| {
            let (binary, name) = (binary.to_owned(), (*name).to_owned());
            thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(bound) {
                    println!("{binary}: {name} ... FAILED: hung for {bound:?}");
                    println!("{binary}: {passed} passed, {} failed (hung)", failed + 1);
                    std::process::exit(1);
                }
            })
        });
        let outcome = match panic::catch_unwind(AssertUnwindSafe(check)) {
            Ok(outcome) => outcome,
            Err(payload) => Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .map_or_else(|| "panicked".to_owned(), |m| format!("panicked: {m}"))),
        };
        drop(done);
        if let Some(watchdog) = watchdog {
            let _ = watchdog.join();
        }
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("{binary}: {name} ... ok");
            }
            Err(why) => {
                failed += 1;
                println!("{binary}: {name} ... FAILED: {why}");
            }
        }
    }
    println!("{binary}: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Runs `cmd` to its end (stdin empty, stdout and stderr captured), waiting at most `bound`;
/// a command still running then is killed and reaped, and the test fails naming `what`.
pub fn output_within(mut cmd: Command, what: &str, bound: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (tx, rx) = mpsc::channel();
    let readers = [
        read_to_end_in_thread(child.stdout.take().expect("stdout is piped"), 0, tx.clone()),
        read_to_end_in_thread(child.stderr.take().expect("stderr is piped"), 1, tx),
    ];
    // Both pipes reach end of file once the child, and any process that inherited them, exits.
    let deadline = Instant::now() + bound;
    let mut texts = [None, None];
    while texts.iter().any(Option::is_none) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, text)) => texts[i] = Some(text),
            Err(_) => break,
        }
    }
    let finished = texts.iter().all(Option::is_some);
    if !finished {
        // Killing ends the pipes (the commands run here start no process that outlives them),
        // so the readers below finish.
        let _ = child.kill();
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    for reader in readers {
        reader.join().expect("a pipe reader panicked");
    }
    for (i, text) in rx.try_iter() {
        texts[i] = Some(text);
    }
    let [stdout, stderr] = texts.map(Option::unwrap_or_default);
    assert!(
        finished,
        "{what} did not finish within {bound:?} and was killed; stdout: {:?}; stderr: {:?}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

fn read_to_end_in_thread(
    mut pipe: impl Read + Send + 'static,
    index: usize,
    done: mpsc::Sender<(usize, Vec<u8>)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut text = Vec::new();
        // A read error ends the text early; what was read so far is still worth showing.
        let _ = pipe.read_to_end(&mut text);
        let _ = done.send((index, text));
    })
}
