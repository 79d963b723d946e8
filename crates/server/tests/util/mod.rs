//! Helpers shared by the server tests: serving in a thread, CPython's examine functions, and
//! hooks that record what happened.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of this module

use handler::{BoxError, HandlerError, ServerContext, StreamRequest};
use socket::Address;
use sockserve_server::{Hooks, Kind, RequestRef, Running, Server, ShutdownHandle, Strategy};
use std::{
    net::SocketAddr,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

#[allow(unused_imports)] // each test binary uses part of these
pub use testsupport::{Check, GENEROUS, TEST_STR, output_within, read_to_end, run_checks};

/// The one-line echo of CPython's `MyHandler`, for streams.
pub fn echo_line(req: &mut StreamRequest) -> Result<(), BoxError> {
    Ok(testsupport::echo_line(&mut req.rfile, &mut req.wfile)?)
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

/// CPython's `stream_examine` (testsupport's), for an inet address.
pub fn stream_examine(address: SocketAddr) {
    testsupport::stream_examine(&Address::from(address));
}

/// CPython's `dgram_examine` (testsupport's), for an inet address.
pub fn dgram_examine(address: SocketAddr) {
    testsupport::dgram_examine(&Address::from(address), std::path::Path::new("."));
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
