//! Helpers shared by the mixins tests: CPython's echo handlers and examine functions.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of this module

use handler::{BoxError, DatagramRequest, ServerContext, StreamRequest};
use server::ShutdownHandle;
use socket::Address;
use std::{
    io::Write,
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

#[allow(unused_imports)] // each test binary uses part of these
pub use testsupport::{GENEROUS, TEST_STR, stream_examine};

/// The one-line echo of CPython's `MyHandler`, for streams (testsupport's).
pub fn echo_line(req: &mut StreamRequest) -> Result<(), BoxError> {
    Ok(testsupport::echo_line(&mut req.rfile, &mut req.wfile)?)
}

/// The datagram echo: the reply is the packet.
pub fn echo_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let p = req.packet.clone();
    Ok(req.wfile.write_all(&p)?)
}

/// CPython's `dgram_examine` (testsupport's): a Unix client binds a path of its own in the
/// directory of `client`, or it gets no reply; an inet client binds `127.0.0.1:0`.
pub fn dgram_examine(address: &Address, client: Option<&Path>) {
    let dir = client.and_then(Path::parent).unwrap_or(Path::new("."));
    testsupport::dgram_examine(address, dir);
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
