//! The concurrency seam: `Strategy` (Python's `process_request` and the mix-ins), `Job`, and
//! the synchronous strategy.

use reactor::Waker;
use socket::Address;
use std::{fmt, time::Duration};

/// One request, ready to run: Python's `finish_request` followed by `shutdown_request`, with
/// errors routed to `handle_error`.
///
/// [`run`](Job::run) does all of it, exactly once. Dropping a job without running it only
/// closes the request (no `shutdown()`), which is what a forking parent must do with its copy
/// of a connection the child serves.
///
/// # Examples
///
/// ```
/// use sockserve_server::Job;
///
/// let job = Job::new("127.0.0.1:5000".parse()?, || println!("handled"));
/// assert_eq!(job.client_address().to_string(), "127.0.0.1:5000");
/// job.run();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Job {
    client_address: Address,
    work: Box<dyn FnOnce() + Send>,
}

impl Job {
    /// A job that runs `work`; servers build these, strategies run them.
    ///
    /// # Examples
    ///
    /// See [`Job`].
    pub fn new(client_address: Address, work: impl FnOnce() + Send + 'static) -> Self {
        Job {
            client_address,
            work: Box::new(work),
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
        (self.work)()
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
/// `process_request` plus what `ThreadingMixIn`/`ForkingMixIn` add to `service_actions`,
/// `handle_timeout` and `server_close`.
///
/// The server core never names a strategy; `sockserve-mixins` provides threading and forking.
///
/// # Examples
///
/// A strategy that runs every request on a thread of its own (a toy: use the mix-ins' pool):
///
/// ```
/// use sockserve_server::{Job, Strategy, Server, Tcp, TcpServer};
/// use handler::StreamRequest;
///
/// #[derive(Debug, Default)]
/// struct ThreadPerRequest(Vec<std::thread::JoinHandle<()>>);
///
/// impl Strategy for ThreadPerRequest {
///     fn process_request(&mut self, job: Job) {
///         self.0.push(std::thread::spawn(move || job.run()));
///     }
///     fn server_close(&mut self) {
///         for t in self.0.drain(..) {
///             let _ = t.join();
///         }
///     }
/// }
///
/// let server: Server<Tcp, ThreadPerRequest> = TcpServer::builder(|_req: &mut StreamRequest| Ok(()))
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
/// use sockserve_server::{Job, Strategy, UnixStreamServer};
/// use handler::StreamRequest;
/// use reactor::Waker;
/// use socket::{Family, Socket, Type};
/// use std::{collections::BTreeSet, sync::{Arc, Mutex}, time::Duration};
///
/// #[derive(Clone, Debug, Default)]
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
///     fn start(&mut self, _waker: &Waker) -> std::io::Result<()> {
///         self.saw("start");
///         Ok(())
///     }
///     fn has_capacity(&mut self) -> bool {
///         self.saw("has_capacity");
///         true
///     }
///     fn poll_hint(&self) -> Option<Duration> {
///         self.saw("poll_hint");
///         None
///     }
///     fn process_request(&mut self, job: Job) {
///         self.saw("process_request");
///         job.run()
///     }
///     fn service_actions(&mut self) { self.saw("service_actions") }
///     fn handle_timeout(&mut self) { self.saw("handle_timeout") }
///     fn server_close(&mut self) { self.saw("server_close") }
///     fn close_within(&mut self, _timeout: Duration) { self.saw("close_within") }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let calls = Recorder::default();
/// let bind = |name: &str| {
///     UnixStreamServer::builder(|req: &mut StreamRequest| {
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
/// assert_eq!(calls.take(), ["handle_timeout", "has_capacity", "start"]);
/// let client = Socket::new(Family::Unix, Type::Stream)?;
/// client.connect(server.server_address())?;
/// server.serve_forever()?;
/// let expected = ["has_capacity", "poll_hint", "process_request", "service_actions", "start"];
/// assert_eq!(calls.take(), expected);
/// server.server_close();
/// assert_eq!(calls.take(), ["server_close"]);
/// drop(bind("b.sock")?); // dropping an open server waits a bounded time
/// assert_eq!(calls.take(), ["close_within"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Strategy: Send + fmt::Debug + 'static {
    /// Called when a serving loop starts (and by each `handle_request`), with the loop's
    /// waker: a strategy that pauses accepting (see [`has_capacity`](Self::has_capacity))
    /// wakes the loop when it can take more.
    ///
    /// # Errors
    ///
    /// The strategy could not start (for example, a thread could not be spawned).
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn start(&mut self, waker: &Waker) -> std::io::Result<()> {
        let _ = waker;
        Ok(())
    }

    /// Whether the server may take another request now. When this returns false the server
    /// stops accepting (the listener leaves the reactor) until the strategy wakes the loop and
    /// this returns true again: backpressure instead of unbounded growth.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn has_capacity(&mut self) -> bool {
        true
    }

    /// At most how long the loop may wait before its next tick, for a strategy that must
    /// look again without being woken (forking at `max_children` polls for exited children
    /// rather than take `SIGCHLD`, which is process-wide). `None`: the poll interval is fine.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn poll_hint(&self) -> Option<Duration> {
        None
    }

    /// Python's `process_request`: runs the job, inline or elsewhere.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn process_request(&mut self, job: Job);

    /// Runs on every tick of the serving loop (forking reaps children here).
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn service_actions(&mut self) {}

    /// Runs when `handle_request` timed out.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn handle_timeout(&mut self) {}

    /// Runs when the server closes, after its socket is closed: waits for in-flight requests
    /// (threads joined, children reaped) as the strategy's options say.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn server_close(&mut self) {}

    /// Like `server_close`, but waits at most `timeout`; used when a server is dropped.
    ///
    /// # Examples
    ///
    /// See [`Strategy`]'s example of when each method runs.
    fn close_within(&mut self, timeout: Duration) {
        let _ = timeout;
        self.server_close()
    }
}

/// Requests run one at a time on the serving thread: plain `TCPServer`/`UDPServer`.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Server, Synchronous, Tcp};
/// use handler::StreamRequest;
///
/// let server: Server<Tcp, Synchronous> =
///     Server::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
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
