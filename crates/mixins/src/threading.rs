//! `Threading`: Python's `ThreadingMixIn`, on a bounded pool of reused threads.

use crossbeam_channel::{Receiver, Sender};
use server::{CloseDeadline, CloseReport, Job, ServerLink, Strategy};
use std::{
    fmt, io,
    panic::{self, AssertUnwindSafe},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

/// The default `max_threads`: CPython has no bound at all (one thread per request).
///
/// # Examples
///
/// ```
/// use sockserve_mixins::{Threading, DEFAULT_MAX_THREADS};
///
/// let default = format!("{:?}", Threading::new());
/// assert_eq!(default, format!("{:?}", Threading::new().max_threads(DEFAULT_MAX_THREADS)));
/// assert_ne!(default, format!("{:?}", Threading::new().max_threads(16)));
/// ```
pub const DEFAULT_MAX_THREADS: usize = 256;

/// How often a close bounded by a stop's deadline looks at the deadline again (it may move
/// to now when the stop is hurried).
const DEADLINE_STEP: Duration = Duration::from_millis(20);

/// Requests run on a pool of threads: Python's `ThreadingMixIn`, bounded and reused.
///
/// Threads are started as requests need them, up to `max_threads`, and then reused. When all
/// of them are busy the server stops accepting (backpressure: connections wait in the kernel's
/// backlog) until one is free, instead of starting thread after thread: the room is the
/// server's own count of requests in flight, and the loop wakes when one ends. A panicking
/// handler is caught, reported through `handle_error`, and the thread lives on. The pool's
/// size is a live figure: [`Running::threads`](server::Running::threads).
///
/// `server_close` waits for the requests in flight unless `block_on_close` is false or
/// `daemon_threads` is true (Python's attributes). A close with a deadline (after a graceful
/// stop, `server_close_by`; or dropping an open server, 5 s) waits until the deadline whatever
/// they say, then leaves the threads still running behind and counts them.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::Threading;
/// use sockserve_mixins::{Server, Tcp, TcpServer};
///
/// let server: Server<Tcp, Threading> = TcpServer::builder(|_r| Ok(()))
///     .strategy(Threading::new().max_threads(16))
///     .bind("127.0.0.1:0")?;
/// assert_eq!(server.strategy().threads(), 0); // started on demand
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Threading {
    max_threads: usize,
    daemon_threads: bool,
    block_on_close: bool,
    pool: Option<Pool>,
}

struct Pool {
    jobs: Sender<Job>,
    receiver: Receiver<Job>,
    shared: Arc<PoolShared>,
    handles: Vec<thread::JoinHandle<()>>,
}

struct PoolShared {
    /// Threads waiting for a job and not yet claimed by one: every job sent is covered by a
    /// claimed idle thread or a new one, so no job waits behind a busy thread.
    idle: AtomicUsize,
    /// Threads alive, with a condvar to wait for them to end.
    alive: Mutex<usize>,
    ended: Condvar,
    max_threads: usize,
    /// The server's count of requests in flight (the pool keeps none of its own), and where
    /// the pool's size is published.
    link: ServerLink,
}

impl Default for Threading {
    fn default() -> Self {
        Threading {
            max_threads: DEFAULT_MAX_THREADS,
            daemon_threads: false,
            block_on_close: true,
            pool: None,
        }
    }
}

impl Threading {
    /// A pool with Python's defaults and at most [`DEFAULT_MAX_THREADS`] threads.
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The most threads (and so requests) at once; at least 1.
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = n.max(1);
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

    /// Threads started so far (they are reused; never more than `max_threads`).
    ///
    /// # Examples
    ///
    /// See [`Threading`].
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| {
            *p.shared.alive.lock().unwrap_or_else(|e| e.into_inner())
        })
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
        drop(pool.jobs);
        drop(pool.receiver);
        if deadline.is_none() && (self.daemon_threads || !self.block_on_close) {
            return CloseReport::default();
        }
        let deadline = deadline.cloned().unwrap_or_else(CloseDeadline::none);
        let mut alive = pool.shared.alive.lock().unwrap_or_else(|e| e.into_inner());
        while *alive > 0 {
            // Short steps: the deadline may move to now (a hurried stop).
            let step = match deadline.remaining() {
                Some(left) if left.is_zero() => {
                    // Threads with a request; idle ones are ending with the closed channel.
                    let left_running = pool.shared.link.in_flight().min(*alive);
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
            alive = pool
                .shared
                .ended
                .wait_timeout(alive, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(alive);
        for handle in pool.handles {
            let _ = handle.join();
        }
        CloseReport::default()
    }
}

impl Pool {
    fn new(max_threads: usize, link: ServerLink) -> Self {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        Pool {
            jobs,
            receiver,
            shared: Arc::new(PoolShared {
                idle: AtomicUsize::new(0),
                alive: Mutex::new(0),
                ended: Condvar::new(),
                max_threads,
                link,
            }),
            handles: Vec::new(),
        }
    }

    /// Finds a thread for one more job: claims an idle one, or starts one if the pool is not
    /// full (if it is, the job queues; `has_capacity` keeps that from outgrowing the pool, and
    /// a thread whose request ended is on its way to take it).
    fn grow(&mut self) -> io::Result<()> {
        let claimed = self
            .shared
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if claimed {
            return Ok(());
        }
        let mut alive = self.shared.alive.lock().unwrap_or_else(|e| e.into_inner());
        if *alive >= self.shared.max_threads {
            return Ok(());
        }
        let receiver = self.receiver.clone();
        let shared = Arc::clone(&self.shared);
        let handle = thread::Builder::new()
            .name("sockserve-worker".into())
            .spawn(move || worker(receiver, shared))?;
        *alive += 1;
        self.shared.link.record_threads(*alive);
        drop(alive);
        self.handles.retain(|h| !h.is_finished());
        self.handles.push(handle);
        Ok(())
    }
}

fn worker(jobs: Receiver<Job>, shared: Arc<PoolShared>) {
    // A new thread was started for a job, and an idle one is claimed before a job is sent:
    // either way the job this thread receives is already counted; it becomes idle after it.
    loop {
        let Ok(job) = jobs.recv() else { break };
        // Job::run catches handler and hook panics; this is the last line of defence.
        if panic::catch_unwind(AssertUnwindSafe(|| job.run())).is_err() {
            log::error!("a request panicked outside its handler; the worker lives on");
        }
        // The request left the server's in-flight count as it ended (which wakes a loop paused
        // for room), a moment before this thread is idle: a job the loop hands over in that
        // moment finds no idle thread to claim and queues, which only happens in a full pool
        // (else a thread is started for it), and this thread takes it next. So the idle count
        // may then run ahead of the threads really waiting, but only once no thread can be
        // started any more, where it decides nothing.
        shared.idle.fetch_add(1, Ordering::SeqCst);
    }
    let mut alive = shared.alive.lock().unwrap_or_else(|e| e.into_inner());
    *alive -= 1;
    shared.link.record_threads(*alive);
    drop(alive);
    shared.ended.notify_all();
}

impl Strategy for Threading {
    fn start(&mut self, link: &ServerLink) -> io::Result<()> {
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.max_threads, link.clone()));
        }
        Ok(())
    }

    fn has_capacity(&mut self) -> bool {
        // The server's count: a request counts from accept to close, whichever thread runs it.
        self.pool
            .as_ref()
            // Connections waiting between turns hold no thread: only running requests count.
            .is_none_or(|p| {
                let link = &p.shared.link;
                link.in_flight().saturating_sub(link.waiting()) < self.max_threads
            })
    }

    fn process_request(&mut self, job: Job) {
        let Some(pool) = self.pool.as_mut() else {
            // start() always runs first; if not, serving inline is still correct.
            return job.run();
        };
        if let Err(e) = pool.grow() {
            log::error!("cannot start a request thread ({e}); queueing for the ones there are");
        }
        if pool.handles.is_empty() {
            return job.run();
        }
        if let Err(crossbeam_channel::SendError(job)) = pool.jobs.send(job) {
            // Unreachable while the pool holds its receiver; serve inline rather than drop.
            job.run();
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
            .field("daemon_threads", &self.daemon_threads)
            .field("block_on_close", &self.block_on_close)
            .field("threads", &self.threads())
            .finish()
    }
}
