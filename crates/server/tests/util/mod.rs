//! Helpers shared by the server tests: serving in a thread, CPython's examine functions, and
//! hooks that record what happened.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of this module

use handler::{BoxError, HandlerError, ServerContext, StreamRequest};
use socket::Address;
use sockserve_server::{Hooks, Kind, RequestRef, Running, Server, ShutdownHandle, Strategy};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    process::{Command, Output, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

/// CPython's `TEST_STR`.
pub const TEST_STR: &[u8] = b"hello world\n";
/// The bound for anything that should happen "at once": generous, it only detects hangs.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// The one-line echo of CPython's `MyHandler`, for streams.
pub fn echo_line(req: &mut StreamRequest) -> Result<(), BoxError> {
    let mut line = Vec::new();
    req.rfile.read_until(b'\n', &mut line)?;
    Ok(req.wfile.write_all(&line)?)
}

pub fn inet(address: &Address) -> SocketAddr {
    address.as_inet().expect("an inet server address")
}

/// A server serving in a background thread (`Server::spawn_with`); `stop` shuts it down, joins
/// and closes it.
pub struct Serving<K: Kind, C: Strategy> {
    pub handle: ShutdownHandle,
    pub address: Address,
    running: Option<Running<K, C>>,
}

impl<K: Kind, C: Strategy> Serving<K, C> {
    pub fn start(server: Server<K, C>, poll_interval: Duration) -> Self {
        let running = server.spawn_with(poll_interval).expect("spawn failed");
        Serving {
            handle: running.shutdown_handle(),
            address: running.server_address().clone(),
            running: Some(running),
        }
    }

    /// Shuts down, joins, closes; returns the closed server for inspection.
    pub fn stop(mut self) -> Server<K, C> {
        let running = self.running.take().expect("not stopped twice");
        let mut server = running
            .shutdown()
            .expect("serve_forever or shutdown failed");
        server.server_close();
        server
    }
}

/// CPython's `stream_examine`: send TEST_STR, read until a newline or EOF, compare.
pub fn stream_examine(address: SocketAddr) {
    let mut s = TcpStream::connect(address).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    s.write_all(TEST_STR).expect("send");
    let mut buf = Vec::new();
    BufReader::new(&mut s)
        .read_until(b'\n', &mut buf)
        .expect("receive (timed out?)");
    assert_eq!(buf, TEST_STR);
}

/// CPython's `dgram_examine`: one datagram there and back.
pub fn dgram_examine(address: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    s.send_to(TEST_STR, address).expect("send");
    let mut buf = [0u8; 100];
    let (n, from) = s.recv_from(&mut buf).expect("receive (timed out?)");
    assert_eq!(&buf[..n], TEST_STR);
    assert_eq!(from, address);
}

/// Reads everything until EOF, bounded.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF (timed out?)");
    out
}

/// Hooks that count what the server did, with a way to wait for counts.
#[derive(Debug, Default)]
pub struct Recorder {
    pub errors: Mutex<Vec<String>>,
    pub shutdowns: AtomicUsize,
    pub timeouts: AtomicUsize,
    pub service_actions: AtomicUsize,
    pub reject: bool,
    changed: Condvar,
    lock: Mutex<()>,
}

impl Recorder {
    pub fn rejecting() -> Self {
        Recorder {
            reject: true,
            ..Self::default()
        }
    }

    fn bump(&self) {
        let _g = self.lock.lock().unwrap();
        self.changed.notify_all();
    }

    /// Waits until `cond` holds, failing the test with `what` after GENEROUS.
    pub fn wait_for(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + GENEROUS;
        let mut g = self.lock.lock().unwrap();
        while !cond(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            g = self
                .changed
                .wait_timeout(g, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    pub fn error_count(&self) -> usize {
        self.errors.lock().unwrap().len()
    }
}

/// Lets tests keep an `Arc<Recorder>` while the server owns the hooks.
#[derive(Debug, Clone, Default)]
pub struct Shared(pub Arc<Recorder>);

impl Hooks for Shared {
    fn verify_request(&self, _: &ServerContext, _: RequestRef<'_>, _client: &Address) -> bool {
        !self.0.reject
    }
    fn handle_error(&self, _: &ServerContext, _client: &Address, error: &HandlerError) {
        self.0.errors.lock().unwrap().push(error.to_string());
        self.0.bump();
    }
    fn handle_timeout(&self, _: &ServerContext) {
        self.0.timeouts.fetch_add(1, Ordering::SeqCst);
        self.0.bump();
    }
    fn service_actions(&self, _: &ServerContext) {
        self.0.service_actions.fetch_add(1, Ordering::SeqCst);
    }
    fn shutdown_request(&self, _: &ServerContext, _client: &Address) {
        self.0.shutdowns.fetch_add(1, Ordering::SeqCst);
        self.0.bump();
    }
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists()
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
        // Killing ends the pipes (the commands run here start no process that outlives them), so
        // the readers below finish.
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

/// A check of a harness-less test binary: `Err` says what went wrong.
pub type Check = fn() -> Result<(), String>;

/// The runner of a harness-less test binary (`harness = false`): runs each check in order (a
/// panic fails that check; its children are killed as it unwinds), prints
/// `BINARY: NAME ... ok|FAILED: why` and `BINARY: N passed, M failed`, as libtest would, and
/// exits non-zero on a failure.
#[allow(clippy::print_stdout)] // a harness-less test reports on stdout, as libtest does
pub fn run_checks(binary: &str, checks: &[(&str, Check)]) {
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
            .unwrap_or_else(|_| Err("panicked (message above)".to_owned()));
        match result {
            Ok(()) => {
                passed += 1;
                println!("{binary}: {name} ... ok");
            }
            Err(message) => {
                failed += 1;
                println!("{binary}: {name} ... FAILED: {message}");
            }
        }
    }
    println!("{binary}: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
