//! `ShutdownHandle`: stops `serve_forever` at once, from any thread, with no state left behind.

use crate::{Error, Result};
use handler::StopServer;
use reactor::Waker;
use socket::{Shutdown, Socket};
use std::{
    fmt, io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, ThreadId},
    time::{Duration, Instant},
};

/// After a graceful stop shut the remaining connections down, how long it waits for their
/// handlers to notice.
const AFTER_FORCE: Duration = Duration::from_secs(5);

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
    /// Requests in flight, with their connection (none for datagrams).
    in_flight: InFlightSet,
    /// Threads waiting on `loop_ended`: a request that ends notifies only when one waits, so
    /// the common case costs no futex syscall per request.
    waiters: usize,
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

    /// Records a request in flight; the returned ticket ends it.
    pub(crate) fn begin_request(self: &Arc<Self>, connection: Option<Arc<Socket>>) -> InFlight {
        let mut state = self.lock();
        let id = state.in_flight.insert(connection);
        InFlight {
            shared: Arc::clone(self),
            id,
        }
    }

    /// The number of requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Waits until no loop runs and no request is in flight, or `deadline` passes (`None`:
    /// no deadline); true if idle.
    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.lock();
        loop {
            if state.running.is_none() && state.in_flight.is_empty() {
                return true;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                return false;
            }
            state.waiters += 1;
            state = match left {
                None => self
                    .loop_ended
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(left) => {
                    let waited = self.loop_ended.wait_timeout(state, left);
                    waited.unwrap_or_else(|e| e.into_inner()).0
                }
            };
            state.waiters -= 1;
        }
    }

    fn shutdown_gracefully(&self, grace: Duration) -> Result<GracefulStop> {
        let started = Instant::now();
        {
            let mut state = self.lock();
            if state.running == Some(thread::current().id()) {
                return Err(Error::ShutdownFromServingThread);
            }
            self.request_stop(&mut state);
        }
        let mut report = GracefulStop::default();
        // A grace too long for the clock is no deadline: wait for the requests to end.
        if !self.wait_idle(started.checked_add(grace)) {
            // Shutting both directions down wakes a handler blocked in a read (it sees EOF)
            // or a write (EPIPE), even on the serving thread of a synchronous server.
            let connections: Vec<Arc<Socket>> =
                self.lock().in_flight.connections().cloned().collect();
            for conn in &connections {
                if conn.shutdown(Shutdown::Both).is_ok() {
                    report.forced += 1;
                }
            }
            self.wait_idle(Instant::now().checked_add(AFTER_FORCE));
        }
        let state = self.lock();
        report.still_running = state.in_flight.len();
        report.loop_stopped = state.running.is_none();
        report.took = started.elapsed();
        Ok(report)
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
                state.waiters += 1;
                state = self
                    .loop_ended
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                state.waiters -= 1;
            }
        }
        Ok(())
    }
}

/// A request in flight; dropping it (once the request is closed) takes it off the list.
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    id: usize,
}

/// The requests in flight, with their connections (none for datagrams): a slab, so a request
/// costs a push and a pop of a free slot, not a hash (it is on every request's path).
#[derive(Debug, Default)]
struct InFlightSet {
    slots: Vec<Option<Option<Arc<Socket>>>>,
    free: Vec<usize>,
    len: usize,
}

impl InFlightSet {
    fn insert(&mut self, connection: Option<Arc<Socket>>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(connection);
                id
            }
            None => {
                self.slots.push(Some(connection));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id) {
            if slot.take().is_some() {
                self.len -= 1;
                self.free.push(id);
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn connections(&self) -> impl Iterator<Item = &Arc<Socket>> {
        self.slots.iter().flatten().flatten()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.in_flight.remove(self.id);
        // Read under the lock a waiter holds until it waits: none can be missed.
        let notify = state.in_flight.is_empty() && state.waiters > 0;
        drop(state);
        if notify {
            self.shared.loop_ended.notify_all();
        }
    }
}

/// What a graceful stop did: returned by [`ShutdownHandle::shutdown_gracefully`].
///
/// # Examples
///
/// See [`ShutdownHandle::shutdown_gracefully`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GracefulStop {
    /// Connections still open at the deadline, shut down (`SHUT_RDWR`) to end their requests.
    pub forced: usize,
    /// Requests still running when the stop returned (handlers that ignored the shutdown).
    pub still_running: usize,
    /// Whether the serving loop had returned when the stop returned.
    pub loop_stopped: bool,
    /// How long the stop took.
    pub took: Duration,
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
        let notify = state.waiters > 0;
        drop(state);
        if notify {
            self.shared.loop_ended.notify_all();
        }
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

    /// Stops gracefully: the loop stops accepting at once, requests in flight may finish until
    /// `grace` has passed, then the connections that remain are shut down (`SHUT_RDWR`), which
    /// wakes handlers blocked reading or writing them, on worker threads or on the serving
    /// thread of a synchronous server alike.
    ///
    /// Returns when the loop has stopped and no request is in flight, or a bounded time
    /// after the deadline if a handler ignores the shutdown (the report says so). Call
    /// `server_close` afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownFromServingThread`] when called from the thread running the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    /// use std::{io::Read, net::TcpStream, time::Duration};
    ///
    /// // A synchronous server whose only handler blocks reading from an idle client.
    /// let mut server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
    ///     let mut rest = Vec::new();
    ///     req.rfile.read_to_end(&mut rest).map(|_| ())
    /// })?;
    /// let address = server.server_address().as_inet().expect("inet");
    /// let handle = server.shutdown_handle();
    /// let _idle = TcpStream::connect(address)?;
    /// let report = std::thread::scope(|s| {
    ///     s.spawn(|| server.serve_forever());
    ///     while handle.in_flight() == 0 {
    ///         std::thread::yield_now(); // wait until the handler runs
    ///     }
    ///     handle.shutdown_gracefully(Duration::from_millis(100))
    /// })?;
    /// assert_eq!(report.forced, 1);
    /// assert!(report.loop_stopped);
    /// server.server_close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_gracefully(&self, grace: Duration) -> Result<GracefulStop> {
        self.shared.shutdown_gracefully(grace)
    }

    /// The number of requests in flight (accepted and not yet closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use handler::StreamRequest;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r: &mut StreamRequest| Ok(()))?;
    /// assert_eq!(server.shutdown_handle().in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
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

#[cfg(test)]
mod tests {
    use super::*;
    use socket::{Family, Type};

    #[test]
    fn in_flight_set_counts_reuses_slots_and_lists_connections() {
        let conn = Arc::new(Socket::new(Family::Inet, Type::Stream).expect("socket"));
        let mut set = InFlightSet::default();
        assert!(set.is_empty());
        let a = set.insert(None);
        let b = set.insert(Some(Arc::clone(&conn)));
        let c = set.insert(None);
        assert_eq!(set.len(), 3);
        assert_eq!(set.connections().count(), 1);
        set.remove(a);
        set.remove(a); // A second removal of the same ticket changes nothing.
        assert_eq!(set.len(), 2);
        let d = set.insert(None);
        assert_eq!(d, a, "a free slot is reused");
        set.remove(b);
        assert_eq!(set.connections().count(), 0);
        set.remove(c);
        set.remove(d);
        assert!(set.is_empty());
        assert_eq!(set.slots.len(), 3, "no slot is allocated while one is free");
    }
}
