//! Helpers shared by the mixins tests: CPython's echo handlers and examine functions.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of this module

use handler::{BoxError, DatagramRequest, ServerContext, StreamRequest};
use server::ShutdownHandle;
use socket::{Address, Socket, Type};
use std::{
    io::{BufRead, Write},
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// CPython's `TEST_STR`.
pub const TEST_STR: &[u8] = b"hello world\n";
/// The bound for anything that should happen at once: generous, it only detects hangs.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// The one-line echo of CPython's `MyHandler`, for streams.
pub fn echo_line(req: &mut StreamRequest) -> Result<(), BoxError> {
    let mut line = Vec::new();
    req.rfile.read_until(b'\n', &mut line)?;
    Ok(req.wfile.write_all(&line)?)
}

/// The datagram echo: the reply is the packet.
pub fn echo_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let p = req.packet.clone();
    Ok(req.wfile.write_all(&p)?)
}

/// CPython's `stream_examine`, for any family.
pub fn stream_examine(address: &Address) {
    let s = Socket::new(address.family(), Type::Stream).unwrap();
    s.settimeout(Some(GENEROUS));
    s.connect(address).unwrap();
    s.sendall(TEST_STR).unwrap();
    let mut buf = Vec::new();
    while !buf.ends_with(b"\n") {
        let chunk = s.recv(100).expect("reply");
        assert!(!chunk.is_empty(), "closed without a reply");
        buf.extend(chunk);
    }
    assert_eq!(buf, TEST_STR);
}

/// CPython's `dgram_examine`: a Unix client binds its own path, or it gets no reply.
pub fn dgram_examine(address: &Address, client: Option<&Path>) {
    let s = Socket::new(address.family(), Type::Datagram).unwrap();
    s.settimeout(Some(GENEROUS));
    match client {
        Some(p) => s.bind(p).unwrap(),
        None => s.bind("127.0.0.1:0").unwrap(),
    }
    s.sendto(TEST_STR, address).unwrap();
    assert_eq!(s.recvfrom(100).unwrap().0, TEST_STR);
}

/// Waits (bounded by `GENEROUS`) until `done` holds, failing with `what`.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + GENEROUS;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {GENEROUS:?}");
        std::thread::yield_now();
    }
}

/// Notes a round of the serving loop that ends while `full` holds, through a `service_actions`
/// hook: with room for one request and one running, such a round has tried to take the next
/// request, found no room, and paused accepting (the loop pauses in the round that fills it).
#[derive(Clone, Default)]
pub struct FullRound {
    seen: Arc<AtomicBool>,
    handle: Arc<OnceLock<ShutdownHandle>>,
}

impl FullRound {
    /// The hook to give `Builder::service_actions`.
    pub fn hook(
        &self,
        full: fn(&ShutdownHandle) -> bool,
    ) -> impl Fn(&ServerContext) + Send + Sync + 'static {
        let this = self.clone();
        move |_server| {
            if this.handle.get().is_some_and(full) {
                this.seen.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Starts looking, at the server this handle stops.
    pub fn arm(&self, handle: ShutdownHandle) {
        let _ = self.handle.set(handle);
    }

    /// Waits (bounded by `GENEROUS`) for such a round.
    pub fn wait(&self) {
        wait_until("a round of the loop that ends full", || {
            self.seen.load(Ordering::SeqCst)
        });
    }
}
