//! [`ServerLink`]: what a strategy may ask of its server (wake the serving loop, have it watch a
//! descriptor, read the requests in flight, publish live figures), and [`Watch`].

use crate::shutdown::Shared;
use reactor::{Interest, Registrar};
use std::{
    fmt, io,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
    sync::Arc,
    time::Duration,
};

/// The reactor key of every descriptor a strategy watches: they all mean "look again".
pub(crate) const WATCHED: usize = 2;

/// A strategy's link to its server, given to [`Strategy::start`](crate::Strategy::start):
/// how it tells the serving loop to look again, what it asks the loop to watch, the server's
/// count of requests in flight, and the live figures it publishes. Cheap to clone, `Send` and
/// `Sync`; every method works from any thread and never blocks. What stands behind it (the
/// loop's reactor, the server's bookkeeping) is the server's business.
///
/// Room comes back by itself where it is about requests: when [`has_capacity`] said no, the
/// loop is woken as soon as a request in flight ends, and asks again. A strategy whose room
/// is about something else (a gate, a budget) calls [`notify`](Self::notify) when it changes,
/// or has the loop [`watch`](Self::watch) a descriptor that becomes readable then. Nothing
/// needs polling.
///
/// [`has_capacity`]: crate::Strategy::has_capacity
///
/// # Examples
///
/// A strategy that runs each request on a thread of its own, at most two at once, its room
/// being the server's own count of requests in flight:
///
/// ```
/// use sockserve_server::{Job, ServerLink, Strategy, TcpServer};
///
/// #[derive(Default)]
/// struct TwoAtATime {
///     link: Option<ServerLink>,
/// }
///
/// impl Strategy for TwoAtATime {
///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
///         self.link = Some(link.clone());
///         Ok(())
///     }
///     fn has_capacity(&mut self) -> bool {
///         // When this says no, the loop wakes again when a request ends.
///         self.link.as_ref().is_none_or(|link| link.in_flight() < 2)
///     }
///     fn process_request(&mut self, job: Job) {
///         // The request leaves the in-flight count as it ends.
///         std::thread::spawn(move || job.run());
///     }
/// }
///
/// let running = TcpServer::builder(|_req| Ok(()))
///     .strategy(TwoAtATime::default())
///     .bind("127.0.0.1:0")?
///     .spawn()?;
/// assert_eq!(running.in_flight(), 0);
/// let mut server = running.shutdown()?;
/// server.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ServerLink {
    shared: Arc<Shared>,
    registrar: Registrar,
}

impl ServerLink {
    pub(crate) fn new(shared: Arc<Shared>, registrar: Registrar) -> Self {
        ServerLink { shared, registrar }
    }

    /// Tells the serving loop to look again at
    /// [`Strategy::has_capacity`](crate::Strategy::has_capacity) (it wakes at once): for room
    /// that is not about requests in flight, whose end wakes the loop by itself.
    ///
    /// # Examples
    ///
    /// A strategy whose room is a gate the program opens and shuts:
    ///
    /// ```
    /// use sockserve_server::{Job, ServerLink, Strategy};
    /// use std::sync::{Arc, Mutex, atomic::{AtomicBool, Ordering}};
    ///
    /// #[derive(Clone, Default)]
    /// struct Gate {
    ///     open: Arc<AtomicBool>,
    ///     link: Arc<Mutex<Option<ServerLink>>>,
    /// }
    ///
    /// impl Gate {
    ///     fn open(&self) {
    ///         self.open.store(true, Ordering::SeqCst);
    ///         if let Some(link) = &*self.link.lock().expect("not poisoned") {
    ///             link.notify(); // a loop paused at the shut gate accepts again
    ///         }
    ///     }
    /// }
    ///
    /// impl Strategy for Gate {
    ///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
    ///         *self.link.lock().expect("not poisoned") = Some(link.clone());
    ///         Ok(())
    ///     }
    ///     fn has_capacity(&mut self) -> bool {
    ///         self.open.load(Ordering::SeqCst)
    ///     }
    ///     fn process_request(&mut self, job: Job) {
    ///         job.run()
    ///     }
    /// }
    /// # Gate::default().open();
    /// ```
    pub fn notify(&self) {
        self.shared.wake();
    }

    /// Has the serving loop watch `fd`: when it becomes readable (data, end of file, an error)
    /// the loop wakes, runs [`Strategy::service_actions`](crate::Strategy::service_actions)
    /// and asks [`Strategy::has_capacity`](crate::Strategy::has_capacity) again. The loop is
    /// told *that* one of the watched descriptors is ready, not which: `service_actions`
    /// looks. It is told once per change (the reactor is edge-triggered): `service_actions`
    /// reads what it was woken for, or keeps it in mind. Dropping the [`Watch`] stops
    /// watching; drop it before closing `fd`.
    ///
    /// A forking strategy watches the read end of a pipe whose write end only the child holds:
    /// end of file says the child ended, and the loop reaps it at once.
    ///
    /// # Errors
    ///
    /// The reactor refused the descriptor (`fd` is watched already, `AlreadyExists`; or a
    /// regular file, `EPERM`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Job, ServerLink, Strategy, TcpServer, Watch};
    /// use std::{io::Read, os::fd::AsFd, os::unix::net::UnixStream};
    ///
    /// /// Inline, but only while the controller has granted requests over its socket.
    /// struct Granted {
    ///     control: UnixStream,
    ///     granted: usize,
    ///     watch: Option<Watch>,
    /// }
    ///
    /// impl Strategy for Granted {
    ///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
    ///         if self.watch.is_none() {
    ///             self.control.set_nonblocking(true)?;
    ///             self.watch = Some(link.watch(self.control.as_fd())?);
    ///         }
    ///         Ok(())
    ///     }
    ///     fn service_actions(&mut self) {
    ///         // One byte a grant; read until WouldBlock (the loop is woken once a change).
    ///         let mut grants = [0; 64];
    ///         while let Ok(n @ 1..) = self.control.read(&mut grants) {
    ///             self.granted += n;
    ///         }
    ///     }
    ///     fn has_capacity(&mut self) -> bool {
    ///         self.granted > 0
    ///     }
    ///     fn process_request(&mut self, job: Job) {
    ///         self.granted -= 1;
    ///         job.run()
    ///     }
    /// }
    ///
    /// let (control, _controller) = UnixStream::pair()?;
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .strategy(Granted { control, granted: 0, watch: None })
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn watch(&self, fd: BorrowedFd<'_>) -> io::Result<Watch> {
        self.registrar.register(&fd, WATCHED, Interest::READABLE)?;
        Ok(Watch {
            registrar: self.registrar.clone(),
            fd: fd.as_raw_fd(),
        })
    }

    /// The server's count of requests in flight: accepted and not yet closed (the figure
    /// [`ShutdownHandle::in_flight`](crate::ShutdownHandle::in_flight) reads). A strategy whose
    /// room is its requests bases [`has_capacity`](crate::Strategy::has_capacity) on it rather
    /// than keep a count of its own. Read without a lock.
    ///
    /// # Examples
    ///
    /// See [`ServerLink`].
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// The server's count of requests in flight whose handler runs now: their work started
    /// ([`Job::run`](crate::Job::run), or a fork through
    /// [`Job::around_fork`](crate::Job::around_fork)) and their connection is not
    /// [waiting](Self::waiting) between turns; the rest of [`in_flight`](Self::in_flight)
    /// waits for the strategy to start them, or waits for input. Read without a lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Job, ServerLink, Strategy};
    ///
    /// /// Inline; logs how many requests were running when each arrived.
    /// #[derive(Default)]
    /// struct Inline(Option<ServerLink>);
    ///
    /// impl Strategy for Inline {
    ///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
    ///         self.0 = Some(link.clone());
    ///         Ok(())
    ///     }
    ///     fn process_request(&mut self, job: Job) {
    ///         if let Some(link) = &self.0 {
    ///             log::debug!("{} running, {} in flight", link.running(), link.in_flight());
    ///         }
    ///         job.run()
    ///     }
    /// }
    /// # let _ = Inline::default();
    /// ```
    pub fn running(&self) -> usize {
        self.shared.running()
    }

    /// Of the requests [in flight](Self::in_flight), those whose connection waits between its
    /// handler's turns ([`Next::WaitForInput`](crate::Next)) in the serving loop's reactor,
    /// holding no thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::ServerLink;
    ///
    /// fn holding_no_thread(link: &ServerLink) -> bool {
    ///     link.waiting() <= link.in_flight()
    /// }
    /// # let _ = holding_no_thread;
    /// ```
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    /// Publishes how many threads the strategy runs now:
    /// [`Running::threads`](crate::Running::threads) and
    /// [`ShutdownHandle::threads`](crate::ShutdownHandle::threads) read it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Job, ServerLink, Strategy, TcpServer};
    /// use std::time::Duration;
    ///
    /// /// Inline, but says it runs one thread: the serving one.
    /// struct Counted;
    ///
    /// impl Strategy for Counted {
    ///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
    ///         link.record_threads(1);
    ///         Ok(())
    ///     }
    ///     fn process_request(&mut self, job: Job) {
    ///         job.run()
    ///     }
    /// }
    ///
    /// let mut server = TcpServer::builder(|_req| Ok(()))
    ///     .strategy(Counted)
    ///     .timeout(Some(Duration::ZERO))
    ///     .bind("127.0.0.1:0")?;
    /// let handle = server.shutdown_handle();
    /// assert_eq!(handle.threads(), 0); // not started yet
    /// server.handle_request()?; // starts the strategy; nobody is there
    /// assert_eq!((handle.threads(), handle.children()), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_threads(&self, threads: usize) {
        self.shared.record_threads(threads);
    }

    /// Offers the turns that end with [`Next::WaitForInput`](handler::Next) a short wait for
    /// their connection's next input on the thread that ran them, before they park in the
    /// serving loop's reactor (`None`, the initial offer: they park at once). Input within
    /// `linger` runs the next turn on the same thread at once, with no hand-off through the
    /// loop: what a pool offers while it has idle threads and nothing queued (a lingering
    /// thread holds no request back then), and withdraws when work queues. Only for turns that
    /// run off the serving loop's thread: a strategy that runs them inline must not offer it
    /// (the loop would wait on one connection). Under `serve_forever` only: a loop driven by
    /// `handle_request` sees every wait (each input is one request for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Job, ServerLink, Strategy};
    /// use std::time::Duration;
    ///
    /// /// A thread per request: nothing ever queues, so its turns may always linger.
    /// struct Spawning;
    ///
    /// impl Strategy for Spawning {
    ///     fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
    ///         link.offer_linger(Some(Duration::from_millis(1)));
    ///         Ok(())
    ///     }
    ///     fn process_request(&mut self, job: Job) {
    ///         std::thread::spawn(move || job.run());
    ///     }
    /// }
    /// # let _ = Spawning;
    /// ```
    pub fn offer_linger(&self, linger: Option<Duration>) {
        self.shared.offer_linger(linger);
    }

    /// Publishes how many child processes the strategy has now (started and not yet reaped):
    /// [`Running::children`](crate::Running::children) and
    /// [`ShutdownHandle::children`](crate::ShutdownHandle::children) read it.
    ///
    /// # Examples
    ///
    /// See [`record_threads`](Self::record_threads); this is its twin for processes.
    pub fn record_children(&self, children: usize) {
        self.shared.record_children(children);
    }
}

impl fmt::Debug for ServerLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLink")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// A descriptor the serving loop watches, from [`ServerLink::watch`]; dropping it stops the
/// watch (drop it before closing the descriptor).
///
/// # Examples
///
/// See [`ServerLink::watch`].
#[derive(Debug)]
pub struct Watch {
    registrar: Registrar,
    fd: RawFd,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Err(e) = self.registrar.unregister(&self.fd) {
            log::debug!("unwatching fd {}: {e}", self.fd);
        }
    }
}
