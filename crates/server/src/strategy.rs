//! The concurrency seam: `Strategy` (Python's `process_request` and the mix-ins), `Job`, and
//! the synchronous strategy.

use crate::{CloseDeadline, ServerLink, shutdown::InFlight};
use socket::Address;
use std::fmt;

/// One request, ready to run: Python's `finish_request` followed by `shutdown_request`, with
/// errors routed to `handle_error`.
///
/// [`run`](Job::run) does all of it, exactly once. Dropping a job without running it only
/// closes the request (no `shutdown()`), which is what a forking parent must do with its copy
/// of a connection the child serves.
///
/// Jobs are made by the server and handed to its [`Strategy`]; a strategy only runs them.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Job, Strategy};
///
/// /// Runs each request inline, logging who it is for.
/// struct Logged;
///
/// impl Strategy for Logged {
///     fn process_request(&mut self, job: Job) {
///         log::debug!("a request from {}", job.client_address());
///         job.run();
///     }
/// }
/// # let _ = Logged;
/// ```
pub struct Job {
    client_address: Address,
    /// Given the ticket, which it drops once the request is closed (or keeps with a
    /// connection that waits between turns); `None` in a forked child.
    work: Box<dyn FnOnce(Option<InFlight>) + Send>,
    /// The request's place in the server's in-flight list, released after the work.
    ticket: Option<InFlight>,
}

impl Job {
    /// A job that runs `work`, with no server behind it: for testing a strategy by hand. A
    /// server makes its own jobs.
    #[doc(hidden)]
    pub fn new(client_address: Address, work: impl FnOnce() + Send + 'static) -> Self {
        Job {
            client_address,
            work: Box::new(move |_| work()),
            ticket: None,
        }
    }

    /// A server's job: `ticket` leaves the in-flight list when the work is done.
    pub(crate) fn tracked(
        client_address: Address,
        work: impl FnOnce(Option<InFlight>) + Send + 'static,
        ticket: InFlight,
    ) -> Self {
        Job {
            client_address,
            work: Box::new(work),
            ticket: Some(ticket),
        }
    }

    /// The client this job serves.
    ///
    /// # Examples
    ///
    /// See [`Job`].
    pub fn client_address(&self) -> &Address {
        &self.client_address
    }

    /// Runs the request to its end: handler, error routing, shutdown and close. Never panics
    /// (handler and hook panics are caught inside).
    ///
    /// # Examples
    ///
    /// See [`Job`].
    pub fn run(self) {
        let Job { work, ticket, .. } = self;
        if let Some(ticket) = &ticket {
            ticket.start(); // running, no longer queued (once: a later turn's start is a no-op)
        }
        // The work drops it last: the request leaves the in-flight list (and its fd closes)
        // only then, or later when its connection waits between turns.
        work(ticket);
    }

    /// Runs the request in a forked child: as [`run`](Self::run), but the server's
    /// bookkeeping (the in-flight list, behind a lock another thread of the parent may have
    /// held at the fork) is left alone; the parent keeps its own copy of the job until it
    /// reaps the child. Follow it with `_exit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Job;
    ///
    /// // Outside a server a job has no bookkeeping; the work runs as with `run`.
    /// let job = Job::new("127.0.0.1:5000".parse()?, || println!("handled in the child"));
    /// job.run_in_forked_child();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_in_forked_child(self) {
        let Job { work, ticket, .. } = self;
        // Before the work: a panic escaping it must not drop the ticket (which would lock).
        if let Some(ticket) = ticket {
            ticket.forget_in_child();
        }
        // From here on, the server's own reports in this process take no lock either.
        crate::report::in_forked_child();
        // No ticket: a connection that waits between turns waits here, in the child.
        work(None);
    }

    /// Runs `fork`, a strategy's `fork()` of this request. Normally it only calls `fork`; a
    /// server's test hook may hold the server's locks across it, to prove the child never
    /// touches them.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Job;
    ///
    /// let job = Job::new("127.0.0.1:5000".parse()?, || {});
    /// let pid = job.around_fork(|| 42); // a forking strategy calls fork() here
    /// assert_eq!(pid, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn around_fork<T>(&self, fork: impl FnOnce() -> T) -> T {
        match &self.ticket {
            Some(ticket) => ticket.around_fork(fork),
            None => fork(),
        }
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("client_address", &self.client_address)
            .finish_non_exhaustive()
    }
}

/// How a server runs its requests: inline, on a thread pool, or in forked children. Python's
/// `process_request` plus what `ThreadingMixIn`/`ForkingMixIn` add to `service_actions`
/// (which Python's `handle_timeout` runs too) and `server_close`.
///
/// A small seam with no reactor type in it: run a job, say whether there is room, periodic
/// actions, close with an optional deadline. What a strategy needs of its server (the count of
/// requests in flight, a descriptor to watch, a way to wake the loop, live figures to publish)
/// comes through the [`ServerLink`] given to [`start`](Self::start).
///
/// The server core never names a strategy; `sockserve-mixins` provides threading and forking.
/// A strategy type need not implement `Debug` (a server's `Debug` names its strategy's type).
///
/// # Examples
///
/// A strategy that runs every request on a thread of its own (a toy: use the mix-ins' pool):
///
/// ```
/// use sockserve_server::{CloseDeadline, CloseReport, Job, Strategy, Server, Tcp, TcpServer};
///
/// #[derive(Default)]
/// struct ThreadPerRequest(Vec<std::thread::JoinHandle<()>>);
///
/// impl Strategy for ThreadPerRequest {
///     fn process_request(&mut self, job: Job) {
///         self.0.push(std::thread::spawn(move || job.run()));
///     }
///     fn server_close(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
///         // Waits for the threads until the deadline (none: as long as they take), then
///         // leaves the ones still running and says so.
///         while self.0.iter().any(|t| !t.is_finished()) {
///             if deadline.is_some_and(|d| d.expired()) {
///                 let running = self.0.iter().filter(|t| !t.is_finished()).count();
///                 return CloseReport::new(running, 0, 0, 0);
///             }
///             std::thread::yield_now(); // a toy: a real one waits on a condvar
///         }
///         self.0.clear();
///         CloseReport::default()
///     }
/// }
///
/// let server: Server<Tcp, ThreadPerRequest> = TcpServer::builder(|_req| Ok(()))
///     .strategy(ThreadPerRequest::default())
///     .bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// When a server calls each method, seen by a strategy that runs requests inline and records
/// the calls:
///
/// ```
/// use sockserve_server::{CloseDeadline, CloseReport, Job, ServerLink, Strategy, UnixStreamServer};
/// use sockserve_server::socket::{Family, Socket, Type};
/// use std::{collections::BTreeSet, sync::{Arc, Mutex}, time::Duration};
///
/// #[derive(Clone, Default)]
/// struct Recorder(Arc<Mutex<BTreeSet<&'static str>>>);
///
/// impl Recorder {
///     fn saw(&self, call: &'static str) {
///         self.0.lock().expect("not poisoned").insert(call);
///     }
///     fn take(&self) -> Vec<&'static str> {
///         std::mem::take(&mut *self.0.lock().expect("not poisoned")).into_iter().collect()
///     }
/// }
///
/// impl Strategy for Recorder {
///     fn start(&mut self, _link: &ServerLink) -> std::io::Result<()> {
///         self.saw("start");
///         Ok(())
///     }
///     fn has_capacity(&mut self) -> bool {
///         self.saw("has_capacity");
///         true
///     }
///     fn process_request(&mut self, job: Job) {
///         self.saw("process_request");
///         job.run()
///     }
///     fn service_actions(&mut self) { self.saw("service_actions") }
///     fn server_close(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
///         self.saw(if deadline.is_some() { "server_close(Some)" } else { "server_close(None)" });
///         CloseReport::default()
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let calls = Recorder::default();
/// let bind = |name: &str| {
///     UnixStreamServer::builder(|req| {
///         req.server.request_shutdown(); // one request, then serve_forever returns
///         Ok(())
///     })
///     .timeout(Some(Duration::ZERO))
///     .strategy(calls.clone())
///     .bind(dir.path().join(name))
/// };
///
/// let mut server = bind("a.sock")?;
/// server.handle_request()?; // nobody is there and the timeout is 0
/// assert_eq!(calls.take(), ["has_capacity", "service_actions", "start"]);
/// let client = Socket::new(Family::Unix, Type::Stream)?;
/// client.connect(server.server_address())?;
/// server.serve_forever()?;
/// let expected = ["has_capacity", "process_request", "service_actions", "start"];
/// assert_eq!(calls.take(), expected);
/// server.server_close();
/// assert_eq!(calls.take(), ["server_close(None)"]);
/// drop(bind("b.sock")?); // dropping an open server closes it with a deadline 5 s away
/// assert_eq!(calls.take(), ["server_close(Some)"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Strategy: Send + 'static {
    /// Called when a serving loop starts (and by each `handle_request`), with the server's
    /// [`ServerLink`]: the server's count of requests in flight, descriptors for the loop to
    /// watch, live figures to publish, and a way to wake the loop. Keep a clone of it.
    ///
    /// # Errors
    ///
    /// The strategy could not start (for example, a thread could not be spawned).
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs, and [`ServerLink`].
    fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
        let _ = link;
        Ok(())
    }

    /// Whether the server may take another request now. When this returns false the server
    /// stops accepting (the listener leaves the reactor) until this returns true again:
    /// backpressure instead of unbounded growth. The server's own bound on open connections,
    /// [`Builder::max_connections`](crate::Builder::max_connections), applies besides, for
    /// every strategy: a strategy whose work can wait for it (a pool that queues jobs) need
    /// not say no at all. The loop asks again when a request in flight
    /// ends, when a descriptor the strategy [watches](ServerLink::watch) becomes readable, and
    /// when the strategy [notifies](ServerLink::notify) it; never by polling.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn has_capacity(&mut self) -> bool {
        true
    }

    /// Python's `process_request`: runs the job, inline or elsewhere.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn process_request(&mut self, job: Job);

    /// Runs on every round of the serving loop (each wakeup, and the tick at least), and
    /// after a wakeup by a descriptor the strategy [watches](ServerLink::watch): forking reaps
    /// its children here.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn service_actions(&mut self) {}

    /// Python's `server_close` for the strategy, run once the server's socket is closed:
    /// waits for the requests in flight (threads joined, children reaped), then says what it
    /// ended or left behind.
    ///
    /// - `None` ([`Server::server_close`](crate::Server::server_close)): Python's close. It
    ///   waits as the strategy's options say (`block_on_close`, `daemon_threads`: maybe not at
    ///   all), as long as that takes.
    /// - `Some(deadline)` ([`Server::server_close_by`](crate::Server::server_close_by), the
    ///   close after a graceful stop; and dropping an open server, with a deadline 5 s away):
    ///   a bounded close. It waits until `deadline` *whatever those options say* (they are
    ///   Python's, for the close without one; a bounded close that skipped the wait would
    ///   report requests still running as ended), then ends (forking: `SIGTERM`, then
    ///   `SIGKILL`, to its own children) or leaves behind (threading: counted) what still
    ///   runs, within a short bound of its own, and reports it. Read the deadline as you wait:
    ///   it may move to now ([`CloseDeadline::is_hurried`]: end things at once), or not be set
    ///   yet (a graceful stop's, before one began: wait until it is set and passes).
    ///
    /// A graceful stop has already waited for the requests in flight, up to its grace, before
    /// this runs; a bounded close mostly finds them ended. Default: nothing to wait for, an
    /// empty report.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{CloseDeadline, CloseReport, Job, Strategy};
    /// use std::time::Instant;
    ///
    /// struct Inline;
    /// impl Strategy for Inline {
    ///     fn process_request(&mut self, job: Job) {
    ///         job.run()
    ///     }
    /// }
    ///
    /// let report = Inline.server_close(Some(&CloseDeadline::at(Instant::now())));
    /// assert_eq!(report, CloseReport::default());
    /// assert!(report.is_clean());
    /// assert!(Inline.server_close(None).is_clean());
    /// ```
    fn server_close(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
        let _ = deadline;
        CloseReport::default()
    }
}

/// What a close ended or left behind: returned by [`Strategy::server_close`] and
/// [`Server::server_close_by`](crate::Server::server_close_by).
///
/// # Examples
///
/// ```
/// use sockserve_server::CloseReport;
///
/// let report = CloseReport::default();
/// assert!(report.is_clean());
/// assert_eq!(report.to_string(), "every request ended");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Request threads still running at the deadline, left behind (they end with the process).
    pub threads_abandoned: usize,
    /// Request children ended by `SIGTERM` at the deadline.
    pub children_terminated: usize,
    /// Request children ended by `SIGKILL` (they outlived `SIGTERM`, or the stop was hurried).
    pub children_killed: usize,
    /// Request children that were signalled and still not reaped when the close gave up.
    pub children_unreaped: usize,
}

impl CloseReport {
    /// A report of the given counts (strategies outside this crate build theirs with it).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::CloseReport;
    ///
    /// let report = CloseReport::new(2, 0, 1, 0);
    /// assert!(!report.is_clean());
    /// assert_eq!(report.to_string(), "2 request thread(s) left running, 1 child(ren) killed (SIGKILL)");
    /// ```
    pub fn new(
        threads_abandoned: usize,
        children_terminated: usize,
        children_killed: usize,
        children_unreaped: usize,
    ) -> Self {
        CloseReport {
            threads_abandoned,
            children_terminated,
            children_killed,
            children_unreaped,
        }
    }

    /// Whether every request ended by itself: nothing was left behind or signalled.
    ///
    /// # Examples
    ///
    /// See [`CloseReport`].
    pub fn is_clean(&self) -> bool {
        *self == CloseReport::default()
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("every request ended");
        }
        let parts = [
            (self.threads_abandoned, "request thread(s) left running"),
            (self.children_terminated, "child(ren) terminated (SIGTERM)"),
            (self.children_killed, "child(ren) killed (SIGKILL)"),
            (self.children_unreaped, "child(ren) not reaped"),
        ];
        let mut first = true;
        for (n, what) in parts {
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{n} {what}")?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Requests run one at a time on the serving thread: plain `TCPServer`/`UDPServer`.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Server, Synchronous, Tcp};
///
/// let server: Server<Tcp, Synchronous> =
///     Server::bind("127.0.0.1:0", |_req| Ok(()))?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Synchronous;

impl Strategy for Synchronous {
    fn process_request(&mut self, job: Job) {
        job.run()
    }
}
