//! `Threading`: Python's `ThreadingMixIn`, on a pool of reused threads that grows to
//! `max_threads`, queues what comes beyond, and lets idle threads retire.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use server::{CloseDeadline, CloseReport, Job, LimitGauge, ServerLink, Strategy};
use std::{
    fmt, io,
    panic::{self, AssertUnwindSafe},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::Duration,
};

/// The most threads a pool starts by default, where the process's limits allow: enough for
/// 10,000 connections that stay open, each served by a handler of its own (a chat room, a
/// keep-alive protocol, a fleet of devices). CPython has no bound at all (one thread per
/// request); this one keeps a flood from exhausting the machine's threads.
///
/// The default is lower where `RLIMIT_NPROC` (`ulimit -u`, the processes and threads a user
/// may run) leaves less: it is then the soft limit less the threads the process runs when the
/// pool starts and 64 more, logged at info ([`Threading::thread_limit`] tells it).
///
/// # Examples
///
/// ```
/// use sockserve_mixins::{Threading, DEFAULT_MAX_THREADS};
///
/// assert_eq!(DEFAULT_MAX_THREADS, 10_000);
/// assert!(Threading::new().thread_limit() <= DEFAULT_MAX_THREADS);
/// ```
pub const DEFAULT_MAX_THREADS: usize = 10_000;

/// How long a thread of the pool waits for a request before it ends, by default: a burst of
/// connections leaves no thousands of idle threads behind, and a steady load keeps its threads.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::DEFAULT_THREAD_IDLE_TIMEOUT;
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_THREAD_IDLE_TIMEOUT, Duration::from_secs(10));
/// ```
pub const DEFAULT_THREAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long, by default, a turn that ends with
/// [`Next::WaitForInput`](server::Next) waits on its thread for the connection's next input
/// before the connection parks in the serving loop's reactor, while the pool has idle threads
/// and nothing queued (see [`Threading::linger`]).
///
/// # Examples
///
/// ```
/// use sockserve_mixins::DEFAULT_LINGER;
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_LINGER, Duration::from_millis(1));
/// ```
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// Threads the default `max_threads` leaves, under `RLIMIT_NPROC`, for the process to start
/// later (and the rest of its user's processes, which count against the limit too).
const NPROC_HEADROOM: usize = 64;

/// How often a close bounded by a stop's deadline looks at the deadline again (it may move
/// to now when the stop is hurried).
const DEADLINE_STEP: Duration = Duration::from_millis(20);

/// Requests run on a pool of threads: Python's `ThreadingMixIn`, bounded and reused.
///
/// Threads are started as requests need them, up to [`max_threads`](Self::max_threads)
/// (default [`DEFAULT_MAX_THREADS`], 10,000), and reused. When every thread is busy and no
/// more may start, the server goes on accepting: the connections queue for a thread in
/// arrival order (logged once at warn, with the limit and how to raise it, and once at info
/// when the pool is back under it), counted in
/// [`Running::queued`](server::Running::queued). What bounds the open connections is the
/// server's [`max_connections`](server::Builder::max_connections), for every strategy; a
/// threading server accepts no more than that. A thread idle for
/// [`thread_idle_timeout`](Self::thread_idle_timeout) (default 10 s) ends, so a burst leaves no
/// crowd of idle threads behind. A panicking handler is caught, reported through
/// `handle_error`, and the thread lives on. The pool's size is a live figure:
/// [`Running::threads`](server::Running::threads).
///
/// `server_close` waits for the requests in flight (the queued ones too: the threads take them
/// first) unless `block_on_close` is false or `daemon_threads` is true (Python's attributes). A
/// close with a deadline (after a graceful stop, `server_close_by`; or dropping an open
/// server, 5 s) waits until the deadline whatever they say, then leaves the threads still
/// running behind and counts them.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::Threading;
/// use sockserve_mixins::{Server, Tcp, TcpServer};
/// use std::time::Duration;
///
/// let server: Server<Tcp, Threading> = TcpServer::builder(|_r| Ok(()))
///     .strategy(Threading::new().max_threads(16).thread_idle_timeout(Some(Duration::from_secs(60))))
///     .bind("127.0.0.1:0")?;
/// assert_eq!(server.strategy().threads(), 0); // started on demand
/// assert_eq!(server.strategy().thread_limit(), 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Threading {
    /// `None`: the default's rule, applied when the pool starts.
    max_threads: Option<usize>,
    thread_idle_timeout: Option<Duration>,
    linger: Option<Duration>,
    stack_size: Option<usize>,
    daemon_threads: bool,
    block_on_close: bool,
    pool: Option<Pool>,
}

struct Pool {
    jobs: Sender<Job>,
    receiver: Receiver<Job>,
    shared: Arc<PoolShared>,
    handles: Vec<thread::JoinHandle<()>>,
    /// Warns when every thread is taken and connections queue, says when that is over.
    gauge: LimitGauge,
}

/// What the pool's threads and the serving loop share.
struct PoolShared {
    state: Mutex<PoolState>,
    /// Signalled when a thread ends.
    ended: Condvar,
    max_threads: usize,
    idle_timeout: Option<Duration>,
    /// [`Threading::linger`], offered to turns while a thread is idle and nothing queued.
    linger: Option<Duration>,
    /// The server's counts of requests in flight and running (the pool keeps none of its
    /// own), and where the pool's size is published.
    link: ServerLink,
}

/// The pool's bookkeeping, under one lock, taken once by the loop per job handed over and once
/// by a thread per job it ends; each change is published to the turns as whether they may
/// linger ([`Threading::linger`]). Every job in the channel has a thread on its way to it: an
/// idle one the loop reserved (`idle` went down), a new one started for it, or (when neither
/// could be had) the next thread to end a job (`unclaimed`). So no job waits behind a busy
/// thread while another could take it, and `idle` and `unclaimed` are never both above 0.
#[derive(Debug, Default)]
struct PoolState {
    /// Threads alive.
    alive: usize,
    /// Threads waiting for a job that no job is reserved for.
    idle: usize,
    /// Jobs in the channel that no thread is reserved for: every thread was busy.
    unclaimed: usize,
}

impl Default for Threading {
    fn default() -> Self {
        Threading {
            max_threads: None,
            thread_idle_timeout: Some(DEFAULT_THREAD_IDLE_TIMEOUT),
            linger: Some(DEFAULT_LINGER),
            stack_size: None,
            daemon_threads: false,
            block_on_close: true,
            pool: None,
        }
    }
}

impl Threading {
    /// A pool with Python's defaults, at most [`DEFAULT_MAX_THREADS`] threads (where
    /// `RLIMIT_NPROC` allows), each ending after [`DEFAULT_THREAD_IDLE_TIMEOUT`] idle.
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The most threads (and so requests running) at once; at least 1. Past it, connections
    /// queue for a thread. Default: [`DEFAULT_MAX_THREADS`], lowered where `RLIMIT_NPROC`
    /// leaves less (see there).
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = Some(n.max(1));
        self
    }

    /// How long a thread waits for a request before it ends (`None`: threads never end
    /// while the server is open). Default [`DEFAULT_THREAD_IDLE_TIMEOUT`], 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = sockserve_mixins::Threading::new().thread_idle_timeout(Some(Duration::from_secs(1)));
    /// # drop(t);
    /// ```
    pub fn thread_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.thread_idle_timeout = timeout;
        self
    }

    /// The stack of each thread, in bytes (`None`, the default: Rust's, 2 MiB unless
    /// `RUST_MIN_STACK` says otherwise). A stack is address space reserved, not memory used:
    /// a thread's resident memory is the pages its handler touches, so 10,000 threads with the
    /// default stack use no more memory than with a small one (measured: `cargo xtask
    /// integration`'s 10,000-connection case). A smaller stack matters where address space or
    /// committed memory is bounded (`ulimit -v`, `vm.overcommit_memory = 2`); a handler that
    /// recurses deeply or keeps large arrays on its stack needs a larger one.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = sockserve_mixins::Threading::new().stack_size(Some(256 << 10));
    /// # drop(t);
    /// ```
    pub fn stack_size(mut self, bytes: Option<usize>) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How long a turn that ends with [`Next::WaitForInput`](server::Next) waits on its thread
    /// for the connection's next input before the connection parks in the serving loop's
    /// reactor (default [`DEFAULT_LINGER`], 1 ms; `None` or zero: it parks at once). Only while
    /// nothing is queued and the next request would get a thread at once (one is idle, or the
    /// pool may grow), so a lingering thread holds no other request back: a client that answers
    /// at once (a request-response protocol on a few busy connections) gets its next turn on
    /// the same thread, without two thread wakes through the serving loop; under a load that
    /// keeps every thread busy nothing lingers. A connection's `rfile` holds no buffer while it
    /// lingers either. The wait is bounded by the connection's idle timeout, and a graceful
    /// stop sees a lingering connection when its linger ends: keep it short (a millisecond or
    /// so).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = sockserve_mixins::Threading::new().linger(Some(Duration::from_micros(500)));
    /// # drop(t);
    /// ```
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger.filter(|d| !d.is_zero());
        self
    }

    /// Python's `daemon_threads`: when true, closing the server does not wait for requests in
    /// flight. Default false.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = sockserve_mixins::Threading::new().daemon_threads(true);
    /// # drop(t);
    /// ```
    pub fn daemon_threads(mut self, on: bool) -> Self {
        self.daemon_threads = on;
        self
    }

    /// Python's `block_on_close`: when true (the default), `server_close` waits for the
    /// requests in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = sockserve_mixins::Threading::new().block_on_close(false);
    /// # drop(t);
    /// ```
    pub fn block_on_close(mut self, on: bool) -> Self {
        self.block_on_close = on;
        self
    }

    /// The most threads the pool starts: [`max_threads`](Self::max_threads) if it was set,
    /// else the default's rule ([`DEFAULT_MAX_THREADS`], lowered where `RLIMIT_NPROC` leaves
    /// less), as fixed when the pool started (before: as it would be now).
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn thread_limit(&self) -> usize {
        match (&self.pool, self.max_threads) {
            (Some(pool), _) => pool.shared.max_threads,
            (None, Some(n)) => n,
            (None, None) => default_max_threads().0,
        }
    }

    /// Threads alive now, busy or idle (never more than the limit; idle ones end after
    /// [`thread_idle_timeout`](Self::thread_idle_timeout)).
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.shared.lock().alive)
    }

    /// Waits for the threads until the deadline (none: as long as they take), then leaves the
    /// ones still running behind (they end with the process) and counts them.
    ///
    /// Python's close (`deadline` `None`) honours `daemon_threads` and `block_on_close` (no
    /// wait at all); a bounded close waits until its deadline whatever they say.
    fn close_until(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
        let Some(pool) = self.pool.take() else {
            return CloseReport::default();
        };
        // The threads take what is queued, then see the channel closed and end.
        drop(pool.jobs);
        drop(pool.receiver);
        if deadline.is_none() && (self.daemon_threads || !self.block_on_close) {
            return CloseReport::default();
        }
        let deadline = deadline.cloned().unwrap_or_else(CloseDeadline::none);
        let mut state = pool.shared.lock();
        while state.alive > 0 {
            // Short steps: the deadline may move to now (a hurried stop).
            let step = match deadline.remaining() {
                Some(left) if left.is_zero() => {
                    // Threads with a request; idle ones are ending with the closed channel.
                    let left_running = pool.shared.link.running().min(state.alive);
                    if left_running == 0 {
                        return CloseReport::default();
                    }
                    log::warn!(
                        "{left_running} request thread(s) still running at the close's deadline; \
                         not waiting longer"
                    );
                    return CloseReport::new(left_running, 0, 0, 0);
                }
                Some(left) => left.min(DEADLINE_STEP),
                None => DEADLINE_STEP,
            };
            state = pool
                .shared
                .ended
                .wait_timeout(state, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(state);
        for handle in pool.handles {
            let _ = handle.join();
        }
        CloseReport::default()
    }
}

/// The default `max_threads` now, and the line saying why it is lower than
/// [`DEFAULT_MAX_THREADS`] if it is.
fn default_max_threads() -> (usize, Option<String>) {
    let Some(soft) = nproc_soft_limit() else {
        return (DEFAULT_MAX_THREADS, None);
    };
    let running = threads_now();
    let room = soft.saturating_sub(running + NPROC_HEADROOM).max(1);
    if room >= DEFAULT_MAX_THREADS {
        return (DEFAULT_MAX_THREADS, None);
    }
    let why = format!(
        "lowered from the default {DEFAULT_MAX_THREADS}: RLIMIT_NPROC lets this user run \
         {soft} processes and threads, this process runs {running}, and {NPROC_HEADROOM} are \
         left for later; raise the limit (`ulimit -u`, LimitNPROC= in a systemd unit) or set \
         Threading::max_threads"
    );
    (room, Some(why))
}

/// The soft `RLIMIT_NPROC`; `None` when there is none (or it cannot be read).
#[cfg(unix)]
fn nproc_soft_limit() -> Option<usize> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    let (soft, _hard) = getrlimit(Resource::RLIMIT_NPROC).ok()?;
    if soft == RLIM_INFINITY {
        return None;
    }
    Some(usize::try_from(soft).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn nproc_soft_limit() -> Option<usize> {
    None
}

/// The threads this process runs now (`Threads:` of `/proc/self/status`; 1 where there is no
/// such file).
fn threads_now() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Plain counts, valid whatever a panicking holder left (no code panics under it).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the turns whether they may linger (see [`Threading::linger`]) after `state`
    /// changed: while no job waits for a thread and the next job would get one at once (a
    /// thread is idle, not reserved for a job, or the pool may grow). A few connections
    /// that each linger on a thread of their own keep no thread idle: the room to grow
    /// lets them linger on.
    fn publish(&self, state: &PoolState) {
        let room = state.idle > 0 || state.alive < self.max_threads;
        let spare = room && state.unclaimed == 0;
        self.link.offer_linger(self.linger.filter(|_| spare));
    }
}

impl Pool {
    fn new(
        max_threads: usize,
        idle_timeout: Option<Duration>,
        linger: Option<Duration>,
        link: ServerLink,
    ) -> Self {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        let gauge = LimitGauge::new(
            "max_threads",
            max_threads,
            "open connections",
            "every thread is busy: a connection accepted now queues for a thread, in arrival \
             order, until one is free; raise it with Threading::max_threads \
             (Builder::max_connections bounds the open connections)",
        );
        Pool {
            jobs,
            receiver,
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState::default()),
                ended: Condvar::new(),
                max_threads,
                idle_timeout,
                linger,
                link,
            }),
            handles: Vec::new(),
            gauge,
        }
    }

    /// Finds a thread for one more job before it is sent: reserves an idle one, or starts one
    /// if the pool may grow; else the job queues for the next thread that ends a job. False
    /// when no thread runs at all (none could be started): the caller runs the job itself.
    fn reserve_thread(&mut self, stack_size: Option<usize>) -> bool {
        let mut state = self.shared.lock();
        if state.idle > 0 {
            state.idle -= 1;
            self.shared.publish(&state);
            return true;
        }
        if state.alive >= self.shared.max_threads {
            state.unclaimed += 1;
            self.shared.publish(&state);
            return true;
        }
        // Counted (and published, under the lock: in order) before it starts, outside the
        // lock, so that the count never overshoots.
        state.alive += 1;
        self.shared.link.record_threads(state.alive);
        self.shared.publish(&state);
        drop(state);
        if let Err(e) = self.spawn(stack_size) {
            log::error!("cannot start a request thread ({e}); the request queues for the others");
            let mut state = self.shared.lock();
            state.alive -= 1;
            self.shared.link.record_threads(state.alive);
            // A thread may have become idle meanwhile; with none alive, the caller runs it.
            if state.idle > 0 {
                state.idle -= 1;
            } else if state.alive > 0 {
                state.unclaimed += 1;
            }
            self.shared.publish(&state);
            return state.alive > 0;
        }
        true
    }

    fn spawn(&mut self, stack_size: Option<usize>) -> io::Result<()> {
        let receiver = self.receiver.clone();
        let shared = Arc::clone(&self.shared);
        let mut builder = thread::Builder::new().name("sockserve-worker".into());
        if let Some(bytes) = stack_size {
            builder = builder.stack_size(bytes);
        }
        let handle = builder.spawn(move || worker(&receiver, &shared))?;
        // Ended threads' handles are dropped now and then, not at every start (10,000 threads
        // would make that quadratic).
        if self.handles.len() >= 64 && self.handles.len() >= 2 * self.shared.lock().alive {
            self.handles.retain(|h| !h.is_finished());
        }
        self.handles.push(handle);
        Ok(())
    }
}

/// A pool thread: runs the job it was started or reserved for, then the next, until it has
/// been idle for the pool's idle timeout or the pool closes.
fn worker(jobs: &Receiver<Job>, shared: &PoolShared) {
    loop {
        let job = match shared.idle_timeout {
            Some(timeout) => jobs.recv_timeout(timeout),
            None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match job {
            Ok(job) => {
                // Job::run catches handler and hook panics; this is the last line of defence.
                if panic::catch_unwind(AssertUnwindSafe(|| job.run())).is_err() {
                    log::error!("a request panicked outside its handler; the worker lives on");
                }
                let mut state = shared.lock();
                if state.unclaimed > 0 {
                    // A job queued while every thread was busy: this thread takes it.
                    state.unclaimed -= 1;
                } else {
                    state.idle += 1;
                }
                shared.publish(&state);
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut state = shared.lock();
                // An idle thread no job is reserved for may end; if every waiting thread has a
                // job on its way (idle is 0), one of them is this one's: wait on.
                if state.idle > 0 {
                    state.idle -= 1;
                    shared.publish(&state);
                    return end(shared, state);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let mut state = shared.lock();
                state.idle = state.idle.saturating_sub(1);
                shared.publish(&state);
                return end(shared, state);
            }
        }
    }
}

/// A thread leaves the pool: counted out and published under the lock, then the close told.
fn end(shared: &PoolShared, mut state: MutexGuard<'_, PoolState>) {
    state.alive -= 1;
    shared.link.record_threads(state.alive);
    shared.publish(&state);
    drop(state);
    shared.ended.notify_all();
}

impl Strategy for Threading {
    fn start(&mut self, link: &ServerLink) -> io::Result<()> {
        if self.pool.is_none() {
            let (max_threads, lowered) = match self.max_threads {
                Some(n) => (n, None),
                None => default_max_threads(),
            };
            let pool = Pool::new(
                max_threads,
                self.thread_idle_timeout,
                self.linger,
                link.clone(),
            );
            if let Some(why) = lowered {
                pool.gauge.note(format_args!("{why}"));
            }
            self.pool = Some(pool);
        }
        Ok(())
    }

    // No `has_capacity`: the pool never stops the server from accepting; connections beyond
    // its threads queue, and the server's `max_connections` bounds them.

    fn process_request(&mut self, job: Job) {
        let stack_size = self.stack_size;
        let Some(pool) = self.pool.as_mut() else {
            // start() always runs first; if not, serving inline is still correct.
            return job.run();
        };
        let alive = pool.reserve_thread(stack_size);
        pool.gauge.observe(pool.shared.link.in_flight());
        if !alive {
            // No thread could be started at all: serve inline rather than never.
            return job.run();
        }
        if let Err(crossbeam_channel::SendError(job)) = pool.jobs.send(job) {
            // Unreachable while the pool holds its receiver; serve inline rather than drop.
            job.run();
        }
    }

    fn service_actions(&mut self) {
        // Back under the limit (or a line held back by its rate limit) is seen here.
        if let Some(pool) = self.pool.as_mut() {
            pool.gauge.observe(pool.shared.link.in_flight());
        }
    }

    fn server_close(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
        self.close_until(deadline)
    }
}

impl fmt::Debug for Threading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Threading")
            .field("max_threads", &self.max_threads)
            .field("thread_idle_timeout", &self.thread_idle_timeout)
            .field("linger", &self.linger)
            .field("stack_size", &self.stack_size)
            .field("daemon_threads", &self.daemon_threads)
            .field("block_on_close", &self.block_on_close)
            .field("threads", &self.threads())
            .finish()
    }
}
