//! `ShutdownHandle`: stops `serve_forever` at once, from any thread, with no state left behind.

use crate::{Error, Result};
use handler::StopServer;
use reactor::Waker;
use std::{
    fmt, io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, ThreadId},
};

/// The state shared by a server, its shutdown handles and its handlers' contexts.
pub(crate) struct Shared {
    state: Mutex<LoopState>,
    loop_ended: Condvar,
    /// Mirrors a stop request while a loop runs, so the loop checks it without locking.
    stop: AtomicBool,
    waker: Waker,
}

#[derive(Debug, Default)]
struct LoopState {
    /// The thread running `serve_forever`, if one is.
    running: Option<ThreadId>,
    /// A stop asked for before any loop ever started: the next loop returns at once.
    stop_before_start: bool,
    /// Whether a loop has started (or been stopped before starting) at least once.
    ever_started: bool,
    /// Counts ended loops, so `shutdown` waits for *its* loop to end.
    loops_ended: u64,
}

impl Shared {
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(LoopState::default()),
            loop_ended: Condvar::new(),
            stop: AtomicBool::new(false),
            waker,
        })
    }

    fn lock(&self) -> MutexGuard<'_, LoopState> {
        // The lock guards plain flags that are valid whatever a panicking holder left.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters a serving loop; `None` when a stop was asked for before this loop started.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<LoopGuard> {
        let mut state = self.lock();
        state.ever_started = true;
        if std::mem::take(&mut state.stop_before_start) {
            state.loops_ended += 1;
            return None;
        }
        state.running = Some(thread::current().id());
        self.stop.store(false, Ordering::SeqCst);
        Some(LoopGuard {
            shared: Arc::clone(self),
        })
    }

    /// Whether the running loop was asked to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn request_stop(&self, state: &mut LoopState) {
        match state.running {
            Some(_) => {
                self.stop.store(true, Ordering::SeqCst);
                if let Err(e) = self.waker.wake() {
                    log::error!("cannot wake the serving loop: {e}");
                }
            }
            // Never started: the next loop returns at once (CPython's test_shutdown). Already
            // ended: nothing to stop, and nothing is left to stop a later loop.
            None if !state.ever_started => state.stop_before_start = true,
            None => {}
        }
    }

    fn shutdown(&self) -> Result<()> {
        let mut state = self.lock();
        if state.running == Some(thread::current().id()) {
            return Err(Error::ShutdownFromServingThread);
        }
        let running = state.running.is_some();
        self.request_stop(&mut state);
        if running {
            let ended = state.loops_ended;
            while state.loops_ended == ended {
                state = self
                    .loop_ended
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        Ok(())
    }
}

/// Marks a running loop; dropping it (even while unwinding) ends the loop's state.
pub(crate) struct LoopGuard {
    shared: Arc<Shared>,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.running = None;
        state.loops_ended += 1;
        self.shared.stop.store(false, Ordering::SeqCst);
        drop(state);
        self.shared.loop_ended.notify_all();
    }
}

/// Stops a server's `serve_forever` from any thread: Python's `server.shutdown()`, without the
/// poll delay and without the stale state.
///
/// Three cases: the loop never started (the next `serve_forever` returns at once); the loop is
/// running (it is woken at once and `shutdown` returns when it has stopped); the loop already
/// ended (nothing to do, and nothing is left that would stop a later `serve_forever`). Called
/// from the serving thread itself, `shutdown` returns
/// [`Error::ShutdownFromServingThread`] instead of deadlocking.
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use handler::StreamRequest;
/// use std::time::Duration;
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let handle = server.shutdown_handle();
/// std::thread::scope(|s| {
///     // A long poll interval does not delay the stop: the handle wakes the loop.
///     let serving = s.spawn(|| server.serve_forever_with(Duration::from_secs(60)));
///     handle.shutdown()?;
///     serving.join().expect("serving thread panicked")
/// })?;
/// server.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ShutdownHandle { shared }
    }

    /// Stops `serve_forever` and waits until it has returned.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownFromServingThread`] when called from the thread running the loop.
    ///
    /// # Examples
    ///
    /// See [`ShutdownHandle`].
    pub fn shutdown(&self) -> Result<()> {
        self.shared.shutdown()
    }

    /// Asks `serve_forever` to stop and returns at once, from any thread (the serving thread
    /// included: the loop returns after the request in hand).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
    /// // Asked before the loop starts: serve_forever returns at once.
    /// server.shutdown_handle().request_shutdown();
    /// server.serve_forever()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_shutdown(&self) {
        let mut state = self.shared.lock();
        self.shared.request_stop(&mut state);
    }

    /// Whether a `serve_forever` is running now.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
    /// assert!(!server.shutdown_handle().is_serving());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_serving(&self) -> bool {
        self.shared.lock().running.is_some()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("serving", &self.is_serving())
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl StopServer for Shared {
    fn shutdown(&self) -> io::Result<()> {
        Shared::shutdown(self).map_err(io::Error::from)
    }

    fn request_shutdown(&self) {
        let mut state = self.lock();
        self.request_stop(&mut state);
    }
}
