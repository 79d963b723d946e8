//! `ShutdownHandle`: stops `serve_forever` at once, from any thread, with no state left behind.

use crate::{Error, Result, unix::SocketFile};
use handler::driver::StopServer;
use reactor::Waker;
use socket::{Family, Shutdown, Socket, Type, socketpair};
use std::{
    fmt, io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::{self, ThreadId},
    time::{Duration, Instant},
};

/// After a graceful stop shut the remaining connections down, how long it waits for their
/// handlers to notice.
pub(crate) const AFTER_FORCE: Duration = Duration::from_secs(2);

/// How long after its grace period a graceful stop through `serve_until_signal` gives control
/// back, whatever the handlers do: 2 s for handlers to notice that their
/// connections were shut down, then up to 1 s for the strategy to end what still runs (forking:
/// `SIGTERM`, then `SIGKILL`, to its own children; threading: the threads still running are
/// left behind and counted; synchronous: the serving thread is left behind).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sockserve_server::STOP_BOUND, Duration::from_secs(3));
/// ```
pub const STOP_BOUND: Duration = Duration::from_secs(3);

/// The state shared by a server, its shutdown handles and its handlers' contexts.
pub(crate) struct Shared {
    state: Mutex<LoopState>,
    loop_ended: Condvar,
    /// Mirrors a stop request while a loop runs, so the loop checks it without locking.
    stop: AtomicBool,
    waker: Waker,
    /// The process that made the server: a handler running elsewhere runs in a forked child,
    /// whose copy of this state its parent never sees.
    pid: u32,
    /// Stop requests from forked children: they write a byte to `.1`, the serving loop
    /// watches `.0`. A child touches no lock of the parent's, only this socket.
    from_children: Option<(Socket, Socket)>,
    /// A test hook: hold the state lock across the fork of each request (see
    /// [`ShutdownHandle::hold_lock_across_fork`]).
    lock_across_fork: AtomicBool,
    /// The number of requests in flight, kept beside their set (changed under its lock) so
    /// that it is read without the lock: a strategy's `has_capacity` reads it per request.
    in_flight: AtomicUsize,
    /// Requests in flight whose work has started (on a thread, inline, in a forked child):
    /// the rest of `in_flight` is queued (waiting for a thread of the strategy's).
    running: AtomicUsize,
    /// Connections turned away at `max_connections` (closed at once, or replied to).
    turned_away: AtomicU64,
    /// The serving loop waits for a request to end (paused for capacity, or draining after a
    /// graceful stop): a request that ends wakes it.
    wake_on_end: AtomicBool,
    /// Live figures a strategy publishes through its `ServerLink`.
    threads: AtomicUsize,
    children: AtomicUsize,
    /// Requests in flight whose connection waits in the reactor between turns.
    waiting: AtomicUsize,
    /// How long a turn that ends with `WaitForInput` may wait on its own thread for the next
    /// input before it parks, in nanoseconds (0: it parks at once): what the strategy offers
    /// now (`ServerLink::offer_linger`).
    linger: AtomicU64,
    /// Says to forked children that a graceful stop began: the parent writes a byte to the
    /// second socket, and the first, which every child inherits and none reads, stays
    /// readable until the next loop starts (the parent drains it). A child whose connection
    /// waits between turns watches it beside its connection.
    stopping: Option<(Socket, Socket)>,
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
    /// When a graceful stop stops waiting for requests: its grace plus [`AFTER_FORCE`]; a
    /// close after the stop ends what still runs then. `None`: no graceful stop was asked for.
    stop_deadline: Option<Instant>,
    /// [`ShutdownHandle::stop_now`] was called: every wait of a stop ends at once.
    hurried: bool,
    /// The Unix socket file the server created; whoever closes first removes it.
    socket_file: Option<SocketFile>,
}

impl Shared {
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        let from_children = match children_channel() {
            Ok(pair) => Some(pair),
            Err(e) => {
                log::warn!(
                    "cannot make the channel for stop requests from forked children ({e}); \
                     request_shutdown in a forked child will not reach the server"
                );
                None
            }
        };
        Arc::new(Shared {
            state: Mutex::new(LoopState::default()),
            loop_ended: Condvar::new(),
            stop: AtomicBool::new(false),
            waker,
            pid: std::process::id(),
            from_children,
            lock_across_fork: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            turned_away: AtomicU64::new(0),
            wake_on_end: AtomicBool::new(false),
            threads: AtomicUsize::new(0),
            children: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            linger: AtomicU64::new(0),
            stopping: match children_channel() {
                Ok(pair) => Some(pair),
                Err(e) => {
                    log::warn!(
                        "cannot make the channel that tells forked children of a graceful \
                         stop ({e}): their waiting connections end at the stop's grace"
                    );
                    None
                }
            },
        })
    }

    /// The socket that becomes readable when a graceful stop begins (see `stopping`): what a
    /// forked child's waiting connection watches.
    pub(crate) fn stopping_socket(&self) -> Option<&Socket> {
        self.stopping.as_ref().map(|(reader, _)| reader)
    }

    /// Tells forked children that a graceful stop began (once is enough: the byte stays).
    fn tell_children_of_the_stop(&self) {
        if let Some((_, writer)) = &self.stopping {
            // Non-blocking; a full queue already says it.
            let _ = writer.send(b"s");
        }
    }

    /// A new loop: the stop of an earlier one is no longer news.
    fn forget_the_stop(&self) {
        if let Some((reader, _)) = &self.stopping {
            let mut scratch = [0u8; 16];
            // Non-blocking: ends with WouldBlock once drained.
            while reader.recv_into(&mut scratch).is_ok() {}
        }
    }

    /// The socket the serving loop watches for stop requests from forked children.
    pub(crate) fn children_socket(&self) -> Option<&Socket> {
        self.from_children.as_ref().map(|(reader, _)| reader)
    }

    /// Takes the stop requests children sent (the loop calls this when their socket is
    /// readable); true if there was one.
    pub(crate) fn drain_children_requests(&self) -> bool {
        let Some((reader, _)) = &self.from_children else {
            return false;
        };
        let mut scratch = [0u8; 16];
        let mut any = false;
        // Non-blocking: ends with WouldBlock once drained.
        while reader.recv_into(&mut scratch).is_ok() {
            any = true;
        }
        any
    }

    /// Whether this code runs in a process forked from the server's, where the state is a
    /// copy its parent never sees and whose locks may have been held at the fork.
    fn in_forked_child(&self) -> bool {
        std::process::id() != self.pid
    }

    /// From a forked child: asks the parent's loop to stop, through the children's socket
    /// (no lock, no allocation).
    fn ask_parent_to_stop(&self) {
        match &self.from_children {
            Some((_, writer)) => {
                // WouldBlock: the parent has requests queued already; one is enough.
                if let Err(e) = writer.send(b"s") {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        crate::report::failure(format_args!(
                            "cannot ask the server to stop from a forked child: {e}"
                        ));
                    }
                }
            }
            None => crate::report::failure(format_args!(
                "request_shutdown in a forked child: the server has no channel for it (see the \
                 warning at bind); the server keeps serving"
            )),
        }
    }

    /// Records the socket file the server created, for whoever closes first to remove.
    pub(crate) fn set_socket_file(&self, file: Option<SocketFile>) {
        self.lock().socket_file = file;
    }

    /// Removes the server's socket file, if it has one not removed yet.
    pub(crate) fn remove_socket_file(&self) -> bool {
        if self.in_forked_child() {
            return false; // the parent's live file: never a child's to remove
        }
        let file = self.lock().socket_file.take();
        match file {
            Some(file) => {
                file.remove();
                true
            }
            None => false,
        }
    }

    /// Runs `fork` (a strategy's fork of a request). When the test hook asks, another thread
    /// holds the state lock across it, as the signal watcher or a graceful stop may: the child
    /// then starts with that lock held by a thread it does not have, forever.
    pub(crate) fn around_fork<T>(self: &Arc<Self>, fork: impl FnOnce() -> T) -> T {
        if !self.lock_across_fork.load(Ordering::SeqCst) {
            return fork();
        }
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let shared = Arc::clone(self);
        let holder = thread::spawn(move || {
            let _guard = shared.lock();
            let _ = held_tx.send(());
            let _ = release_rx.recv();
        });
        let _ = held.recv();
        let forked = fork();
        // In the parent the holder lets go and ends; in the child there is no holder.
        let _ = release.send(());
        drop(holder);
        forked
    }

    /// The deadline of the graceful stop in progress, and whether it was cut short.
    pub(crate) fn stop_deadline(&self) -> (Option<Instant>, bool) {
        let state = self.lock();
        (state.stop_deadline, state.hurried)
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
        // A new loop starts with no stop in progress: a stop that was hurried or given a
        // deadline before belongs to an earlier loop (no state left behind).
        state.hurried = false;
        state.stop_deadline = None;
        self.stop.store(false, Ordering::SeqCst);
        drop(state);
        // Likewise a forked child's stop request that came after the last loop ended.
        self.drain_children_requests();
        self.forget_the_stop();
        Some(LoopGuard {
            shared: Arc::clone(self),
        })
    }

    /// Records a request in flight; the returned ticket ends it.
    pub(crate) fn begin_request(self: &Arc<Self>, connection: Option<Arc<Socket>>) -> InFlight {
        let mut state = self.lock();
        let id = state.in_flight.insert(connection);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            shared: Arc::clone(self),
            id,
            started: AtomicBool::new(false),
        }
    }

    /// The number of requests in flight (no lock taken).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The requests in flight whose work has started and whose connection is not waiting
    /// between turns (no lock taken). Counts read one after the other: a figure, not a bound.
    pub(crate) fn running(&self) -> usize {
        self.running
            .load(Ordering::Relaxed)
            .saturating_sub(self.waiting())
    }

    /// The requests in flight still waiting for their work to start (no lock taken); a
    /// connection waiting between turns has started. A figure, not a bound.
    pub(crate) fn queued(&self) -> usize {
        self.in_flight()
            .saturating_sub(self.running.load(Ordering::Relaxed))
    }

    /// Counts a connection turned away at `max_connections`.
    pub(crate) fn turned_away_one(&self) {
        self.turned_away.fetch_add(1, Ordering::Relaxed);
    }

    /// While on, a request that ends wakes the serving loop. Set it before looking at what
    /// a request's end would change (SeqCst, as the count): then either the look sees the
    /// request gone or the request's end sees the flag and wakes the loop.
    pub(crate) fn wake_when_a_request_ends(&self, on: bool) {
        // Most calls change nothing: they skip the fence of a SeqCst store.
        if self.wake_on_end.load(Ordering::Relaxed) != on {
            self.wake_on_end.store(on, Ordering::SeqCst);
        }
    }

    /// A connection began to wait between turns: it holds no thread now, which is room for a
    /// strategy whose room is its running requests, so a loop paused for room is woken (as by
    /// a request that ends; see `wake_when_a_request_ends`).
    pub(crate) fn parked(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.wake_on_end.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// A waiting connection runs its next turn, or ends.
    pub(crate) fn unparked(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// The connections waiting between turns.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Ends the serving loop's current (or next) wait.
    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the serving loop: {e}");
        }
    }

    pub(crate) fn offer_linger(&self, linger: Option<Duration>) {
        let nanos = linger.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        // Most calls change nothing: a load spares the shared line a write.
        if self.linger.load(Ordering::Relaxed) != nanos {
            self.linger.store(nanos, Ordering::Relaxed);
        }
    }

    pub(crate) fn linger(&self) -> Option<Duration> {
        match self.linger.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn record_threads(&self, n: usize) {
        self.threads.store(n, Ordering::Relaxed);
    }

    pub(crate) fn record_children(&self, n: usize) {
        self.children.store(n, Ordering::Relaxed);
    }

    /// Waits until no loop runs and no request is in flight, or `deadline` passes (`None`:
    /// no deadline); true if idle.
    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.lock();
        loop {
            if state.running.is_none() && state.in_flight.is_empty() {
                return true;
            }
            if state.hurried {
                return false;
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
        if self.in_forked_child() {
            // A child cannot stop its parent's requests or wait for them: it asks.
            self.ask_parent_to_stop();
            return Ok(GracefulStop::default());
        }
        let started = Instant::now();
        // A grace too long for the clock is no deadline: wait for the requests to end.
        let grace_end = started.checked_add(grace);
        {
            let mut state = self.lock();
            if state.running == Some(thread::current().id()) {
                return Err(Error::ShutdownFromServingThread);
            }
            let deadline = grace_end.and_then(|end| end.checked_add(AFTER_FORCE));
            // A stop already under way keeps the earlier deadline.
            state.stop_deadline = match (state.stop_deadline, deadline) {
                (Some(old), Some(new)) => Some(old.min(new)),
                (old, new) => old.or(new),
            };
            self.request_stop(&mut state);
        }
        self.tell_children_of_the_stop();
        let mut report = GracefulStop::default();
        if !self.wait_idle(grace_end) {
            report.forced = self.force_connections();
            self.wait_idle(Instant::now().checked_add(AFTER_FORCE));
        }
        let state = self.lock();
        report.still_running = state.in_flight.len();
        report.loop_stopped = state.running.is_none();
        report.hurried = state.hurried;
        report.took = started.elapsed();
        Ok(report)
    }

    /// Shuts down both directions of every connection in flight: wakes a handler blocked in a
    /// read (it sees EOF) or a write (EPIPE), even on the serving thread of a synchronous
    /// server. Returns how many were shut down.
    fn force_connections(&self) -> usize {
        let connections: Vec<Arc<Socket>> = self.lock().in_flight.connections().cloned().collect();
        connections
            .iter()
            .filter(|conn| conn.shutdown(Shutdown::Both).is_ok())
            .count()
    }

    fn stop_now(&self) -> usize {
        if self.in_forked_child() {
            self.ask_parent_to_stop();
            return 0;
        }
        {
            let mut state = self.lock();
            state.hurried = true;
            state.stop_deadline = Some(Instant::now());
            self.request_stop(&mut state);
        }
        self.tell_children_of_the_stop();
        // Also after the loop returned: the serving thread may wait for the stop's requests
        // (`Server::drain`), and its deadline just moved to now.
        self.wake();
        // Every waiter of a stop looks at `hurried` when woken.
        self.loop_ended.notify_all();
        self.force_connections()
    }

    /// Whether the running loop was asked to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn request_stop(&self, state: &mut LoopState) {
        match state.running {
            Some(_) => {
                self.stop.store(true, Ordering::SeqCst);
                self.wake();
            }
            // Never started: the next loop returns at once (CPython's test_shutdown). Already
            // ended: nothing to stop, and nothing is left to stop a later loop.
            None if !state.ever_started => state.stop_before_start = true,
            None => {}
        }
    }

    fn shutdown(&self) -> Result<()> {
        if self.in_forked_child() {
            // A child cannot wait for its parent's loop: ask, and return.
            self.ask_parent_to_stop();
            return Ok(());
        }
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

/// The channel of stop requests from forked children: a Unix datagram pair, both ends
/// non-blocking, so neither a child's request nor the loop's draining ever waits.
fn children_channel() -> io::Result<(Socket, Socket)> {
    let (reader, writer) = socketpair(Family::Unix, Type::Datagram)?;
    reader.setblocking(false)?;
    writer.setblocking(false)?;
    Ok((reader, writer))
}

/// A request in flight; dropping it (once the request is closed) takes it off the list.
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    id: usize,
    /// Whether its work started (it counts in `Shared::running` until it drops). Atomic only
    /// so that a forking strategy's `around_fork`, which has `&self`, can set it.
    started: AtomicBool,
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

    /// Frees the slot `id`; true if it was taken.
    fn remove(&mut self, id: usize) -> bool {
        if let Some(slot) = self.slots.get_mut(id) {
            if slot.take().is_some() {
                self.len -= 1;
                self.free.push(id);
                return true;
            }
        }
        false
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

impl InFlight {
    /// See [`Shared::around_fork`]. In the parent, the request counts as running from then on
    /// (its child runs it); the child's copy of the state is left alone.
    pub(crate) fn around_fork<T>(&self, fork: impl FnOnce() -> T) -> T {
        let forked = self.shared.around_fork(fork);
        if !self.shared.in_forked_child() {
            self.start();
        }
        forked
    }

    /// The request's work starts: it counts as running, no longer as queued. Once.
    pub(crate) fn start(&self) {
        if !self.started.swap(true, Ordering::Relaxed) {
            self.shared.running.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// In a forked child: lets go of the ticket without touching the parent's state (its lock
    /// may have been held by another thread at the fork). The parent's copy of the request
    /// keeps its own ticket until the child is reaped.
    pub(crate) fn forget_in_child(self) {
        std::mem::forget(self);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.in_flight.remove(self.id) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        if *self.started.get_mut() {
            self.shared.running.fetch_sub(1, Ordering::Relaxed);
        }
        // Read under the lock a waiter holds until it waits: none can be missed.
        let notify = state.in_flight.is_empty() && state.waiters > 0;
        drop(state);
        if notify {
            self.shared.loop_ended.notify_all();
        }
        // After the count went down (SeqCst): see `wake_when_a_request_ends`.
        if self.shared.wake_on_end.load(Ordering::SeqCst) {
            self.shared.wake();
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
    /// Whether [`ShutdownHandle::stop_now`] cut the stop short (a second signal, say).
    pub hurried: bool,
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
/// use std::time::Duration;
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
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

    /// Stops `serve_forever` and waits until it has returned. In a handler running in a
    /// forked child (the forking strategy) it asks the parent's loop to stop and returns at
    /// once: a child cannot wait for its parent.
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
    /// included: the loop returns after the request in hand), and from a handler running in a
    /// forked child (the forking strategy), whose request reaches the parent's loop through a
    /// socket made for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
    /// // Asked before the loop starts: serve_forever returns at once.
    /// server.shutdown_handle().request_shutdown();
    /// server.serve_forever()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_shutdown(&self) {
        StopServer::request_shutdown(&*self.shared)
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
    /// In a handler running in a forked child (forking) it asks the parent's loop to stop and
    /// returns at once with an empty report: a child can neither stop nor wait for its
    /// parent's requests.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownFromServingThread`] when called from the thread running the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::{io::Read, net::TcpStream, time::Duration};
    ///
    /// // A synchronous server whose only handler blocks reading from an idle client.
    /// let mut server = TcpServer::bind("127.0.0.1:0", |req| {
    ///     let mut rest = Vec::new();
    ///     Ok(req.rfile.read_to_end(&mut rest).map(|_| ())?)
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

    /// Stops now: the loop stops, every connection in flight is shut down (`SHUT_RDWR`) at
    /// once, a graceful stop in progress skips the rest of its grace and returns, and a close
    /// after it ([`Server::server_close_by`](crate::Server::server_close_by)) stops waiting:
    /// what a second `SIGTERM` does in `serve_until_signal`. Returns at once, from any thread,
    /// with the number of connections shut down.
    ///
    /// In a forked child (forking) it only asks the parent's loop to stop, and returns 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::{io::Read, net::TcpStream, time::Duration};
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", |req| {
    ///     let mut rest = Vec::new();
    ///     Ok(req.rfile.read_to_end(&mut rest).map(|_| ())?)
    /// })?;
    /// let address = server.server_address().as_inet().expect("inet");
    /// let handle = server.shutdown_handle();
    /// let _idle = TcpStream::connect(address)?;
    /// let report = std::thread::scope(|s| {
    ///     s.spawn(|| server.serve_forever());
    ///     while handle.in_flight() == 0 {
    ///         std::thread::yield_now(); // wait until the handler runs
    ///     }
    ///     // A graceful stop with an hour of grace, cut short from another thread.
    ///     let stopper = s.spawn(|| handle.shutdown_gracefully(Duration::from_secs(3600)));
    ///     while !handle.close_deadline().is_set() {
    ///         std::thread::yield_now(); // wait until the graceful stop began
    ///     }
    ///     handle.stop_now();
    ///     stopper.join().expect("stopper panicked")
    /// })?;
    /// assert!(report.hurried && report.took < Duration::from_secs(60));
    /// server.server_close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop_now(&self) -> usize {
        self.shared.stop_now()
    }

    /// The deadline by which a close after a graceful stop ends what still runs: set by
    /// [`shutdown_gracefully`](Self::shutdown_gracefully) (its grace plus 2 s) and moved to
    /// now by [`stop_now`](Self::stop_now). Pass it to
    /// [`Server::server_close_by`](crate::Server::server_close_by).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
    /// let deadline = server.shutdown_handle().close_deadline();
    /// assert!(!deadline.is_set()); // no graceful stop yet: a close waits as server_close
    /// server.shutdown_handle().stop_now();
    /// assert!(deadline.is_set() && deadline.expired() && deadline.is_hurried());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_deadline(&self) -> CloseDeadline {
        CloseDeadline {
            source: DeadlineSource::Shared(Arc::clone(&self.shared)),
        }
    }

    /// Removes the Unix socket file the server created, now rather than at `server_close`
    /// (which then leaves it alone): for a caller that gives up waiting on a serving thread
    /// whose handler ignores every stop. True if there was a file to remove.
    ///
    /// In a forked child (forking) it does nothing and returns false: the file is the
    /// parent's, and its server is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::UnixStreamServer;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("s.sock");
    /// let server = UnixStreamServer::bind(&path, |_req| Ok(()))?;
    /// assert!(path.exists());
    /// assert!(server.shutdown_handle().remove_socket_file());
    /// assert!(!path.exists());
    /// assert!(!server.shutdown_handle().remove_socket_file()); // once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_socket_file(&self) -> bool {
        self.shared.remove_socket_file()
    }

    /// A test hook: while on, the server holds its state lock across the fork of every
    /// request (through [`Job::around_fork`](crate::Job::around_fork)), so a forked child
    /// that touched that lock would deadlock every time. Not for production use.
    #[doc(hidden)]
    pub fn hold_lock_across_fork(&self, on: bool) {
        self.shared.lock_across_fork.store(on, Ordering::SeqCst);
    }

    /// The number of requests in flight (accepted and not yet closed): for a stream server,
    /// its open connections, whether running or queued for a thread. This is the count
    /// [`Builder::max_connections`](crate::Builder::max_connections) bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert_eq!(server.shutdown_handle().in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// The requests in flight whose handler runs now (on a thread, inline, or in a forked
    /// child, which counts until it is reaped); a connection [waiting](Self::waiting) between
    /// turns does not count.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let handle = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?.shutdown_handle();
    /// assert_eq!((handle.running(), handle.queued(), handle.waiting()), (0, 0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn running(&self) -> usize {
        self.shared.running()
    }

    /// The requests in flight waiting for their handler to start: a threading server's
    /// connections queued for a thread while every thread is busy.
    ///
    /// # Examples
    ///
    /// See [`running`](Self::running).
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Of the requests [in flight](Self::in_flight), those whose connection waits between its
    /// handler's turns ([`Next::WaitForInput`](crate::Next)), holding no thread.
    ///
    /// # Examples
    ///
    /// See [`running`](Self::running).
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    /// How many connections (datagrams, for a datagram server) the server turned away at
    /// [`max_connections`](crate::Builder::max_connections), under an
    /// [`Overload`](crate::Overload) policy that turns them away (`Close`, `reply`), since it
    /// was made.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let handle = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?.shutdown_handle();
    /// assert_eq!(handle.turned_away(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn turned_away(&self) -> u64 {
        self.shared.turned_away.load(Ordering::Relaxed)
    }

    /// The threads the server's strategy runs now, as it publishes them
    /// ([`ServerLink::record_threads`](crate::ServerLink::record_threads)): a threading
    /// server's pool (threads started and not yet ended; idle ones count), 0 for strategies
    /// that publish none.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert_eq!(server.shutdown_handle().threads(), 0); // a synchronous server has none
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.shared.threads.load(Ordering::Relaxed)
    }

    /// The child processes the server's strategy has now, as it publishes them
    /// ([`ServerLink::record_children`](crate::ServerLink::record_children)): a forking
    /// server's children, started and not yet reaped; 0 for strategies that publish none.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
    /// assert_eq!(server.shutdown_handle().children(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn children(&self) -> usize {
        self.shared.children.load(Ordering::Relaxed)
    }

    /// Whether a `serve_forever` is running now.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
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
    fn is_forked_child(&self) -> bool {
        self.in_forked_child()
    }

    fn shutdown(&self) -> io::Result<()> {
        Shared::shutdown(self).map_err(io::Error::from)
    }

    fn request_shutdown(&self) {
        if self.in_forked_child() {
            self.ask_parent_to_stop();
            return;
        }
        let mut state = self.lock();
        self.request_stop(&mut state);
    }
}

/// How long a close may still wait for requests in flight before it ends what still runs:
/// the deadline of a graceful stop, which [`ShutdownHandle::stop_now`] moves to now. A
/// strategy's [`server_close`](crate::Strategy::server_close) reads it as it waits.
///
/// # Examples
///
/// ```
/// use sockserve_server::CloseDeadline;
/// use std::time::{Duration, Instant};
///
/// let later = CloseDeadline::at(Instant::now() + Duration::from_secs(60));
/// assert!(later.is_set() && !later.expired());
/// assert!(later.remaining().is_some_and(|left| left > Duration::from_secs(50)));
/// assert!(CloseDeadline::at(Instant::now()).expired());
/// assert_eq!(CloseDeadline::none().remaining(), None); // wait as long as it takes
/// ```
#[derive(Debug, Clone)]
pub struct CloseDeadline {
    source: DeadlineSource,
}

#[derive(Debug, Clone)]
enum DeadlineSource {
    Fixed(Option<Instant>),
    Shared(Arc<Shared>),
}

impl CloseDeadline {
    /// A fixed deadline.
    ///
    /// # Examples
    ///
    /// See [`CloseDeadline`].
    pub fn at(deadline: Instant) -> Self {
        CloseDeadline {
            source: DeadlineSource::Fixed(Some(deadline)),
        }
    }

    /// No deadline: a close waits as long as the requests take (whatever `block_on_close` says:
    /// for Python's close, [`Server::server_close`](crate::Server::server_close)).
    ///
    /// # Examples
    ///
    /// See [`CloseDeadline`].
    pub fn none() -> Self {
        CloseDeadline {
            source: DeadlineSource::Fixed(None),
        }
    }

    fn read(&self) -> (Option<Instant>, bool) {
        match &self.source {
            DeadlineSource::Fixed(at) => (*at, false),
            DeadlineSource::Shared(shared) => shared.stop_deadline(),
        }
    }

    /// Whether there is a deadline now (a graceful stop began).
    ///
    /// # Examples
    ///
    /// See [`CloseDeadline`].
    pub fn is_set(&self) -> bool {
        self.read().0.is_some()
    }

    /// How long is left (zero once passed); `None` when there is no deadline.
    ///
    /// # Examples
    ///
    /// See [`CloseDeadline`].
    pub fn remaining(&self) -> Option<Duration> {
        self.read()
            .0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    ///
    /// # Examples
    ///
    /// See [`CloseDeadline`].
    pub fn expired(&self) -> bool {
        self.remaining().is_some_and(|left| left.is_zero())
    }

    /// Whether [`ShutdownHandle::stop_now`] cut the stop short: a strategy then ends what
    /// still runs at once, without the gentler steps (forking: `SIGKILL` without `SIGTERM`).
    ///
    /// # Examples
    ///
    /// See [`ShutdownHandle::close_deadline`].
    pub fn is_hurried(&self) -> bool {
        self.read().1
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
