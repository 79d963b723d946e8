//! [`Server::spawn`]: a server serving on a thread of its own, and the handle that stops it and
//! gives it back.

use crate::{Error, GracefulStop, Kind, Result, Server, ShutdownHandle, Strategy};
use handler::SharedState;
use socket::Address;
use std::{
    fmt,
    sync::mpsc,
    thread::{self, JoinHandle},
    time::Duration,
};

/// What the serving thread hands back: the server, and how its loop ended.
type Served<K, C, S> = (Server<K, C, S>, Result<()>);

/// A server running [`serve_forever`](Server::serve_forever) on a thread of its own: the
/// threading pattern of Python's docs (`threading.Thread(target=server.serve_forever)`), with
/// the stop and the join in one call.
///
/// [`shutdown`](Self::shutdown) and [`shutdown_gracefully`](Self::shutdown_gracefully) stop the
/// loop, join the thread and give the server back, not closed (call
/// [`server_close`](Server::server_close), or drop it). Dropping a `Running` stops it within a
/// bounded time whatever its handlers do: a graceful stop with no grace (connections in flight
/// are shut down), then the server is closed as dropping a server does; a serving thread whose
/// handler ignores even that is left behind (logged) rather than waited for.
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use sockserve_server::socket::create_connection;
/// use std::io::{Read, Write};
///
/// let running = TcpServer::bind("127.0.0.1:0", |req| Ok(req.wfile.write_all(b"hello\n")?))?.spawn()?;
/// let mut client = create_connection(running.server_address(), &Default::default())?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "hello\n");
/// let mut server = running.shutdown()?;
/// server.server_close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a Running stops the server at once"]
pub struct Running<K: Kind, C: Strategy, S: SharedState = ()> {
    address: Address,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Served<K, C, S>>>,
}

impl<K: Kind, C: Strategy, S: SharedState> Server<K, C, S> {
    /// Runs [`serve_forever`](Self::serve_forever) on a new thread and returns at once with a
    /// [`Running`] handle. By the time it returns the loop is running, so a stop asked through
    /// the handle is never lost.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or [`Error::NotActivated`] for a server that cannot serve (the server
    /// is dropped), or the OS error of spawning the thread.
    ///
    /// # Examples
    ///
    /// See [`Running`].
    pub fn spawn(self) -> Result<Running<K, C, S>> {
        let poll_interval = self.options.poll_interval;
        self.spawn_with(poll_interval)
    }

    /// [`spawn`](Self::spawn) with the given tick for `service_actions` (as
    /// [`serve_forever_with`](Self::serve_forever_with)).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::time::{Duration, Instant};
    ///
    /// // A long tick does not delay the stop: the handle wakes the loop.
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?
    ///     .spawn_with(Duration::from_secs(60))?;
    /// let started = Instant::now();
    /// running.shutdown()?;
    /// assert!(started.elapsed() < Duration::from_secs(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_with(self, poll_interval: Duration) -> Result<Running<K, C, S>> {
        self.active_socket()?;
        let address = self.server_address().clone();
        let handle = self.shutdown_handle();
        let (entered, loop_started) = mpsc::channel();
        let deadline = handle.close_deadline();
        let thread = thread::Builder::new()
            .name("sockserve-serve".into())
            .spawn(move || {
                let mut server = self;
                let served = server.serve_loop(poll_interval, move || {
                    let _ = entered.send(());
                });
                // A graceful stop waits for the requests in flight; the strategy keeps ending
                // them (forking reaps its children) until they are done or its deadline passes.
                server.drain(&deadline);
                (server, served)
            })?;
        // The loop has entered (or failed before): a stop from now on reaches it. An error
        // here means the thread ended without entering (it panicked): `shutdown` reports it.
        let _ = loop_started.recv();
        Ok(Running {
            address,
            handle,
            thread: Some(thread),
        })
    }
}

impl<K: Kind, C: Strategy, S: SharedState> Running<K, C, S> {
    /// The address the server is bound to (the real port when it was bound to port 0).
    ///
    /// # Examples
    ///
    /// See [`Running`].
    pub fn server_address(&self) -> &Address {
        &self.address
    }

    /// A handle that stops the loop from anywhere (a handler, a signal watcher, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// assert!(running.shutdown_handle().is_serving());
    /// running.shutdown_handle().request_shutdown(); // the loop returns...
    /// let server = running.shutdown()?; // ...and this joins it
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Requests in flight now: accepted and not yet closed (a live figure; one count for
    /// every strategy, the server's own): a stream server's open connections, running or
    /// queued. A forking server's child counts until it is reaped,
    /// which the loop does as it exits (it watches the child's exit pipe).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// assert_eq!(running.in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.handle.in_flight()
    }

    /// Requests in flight whose handler runs now: see [`ShutdownHandle::running`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// assert_eq!((running.running(), running.queued()), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn running(&self) -> usize {
        self.handle.running()
    }

    /// Requests in flight waiting for their handler to start (a threading server's
    /// connections queued for a thread): see [`ShutdownHandle::queued`].
    ///
    /// # Examples
    ///
    /// See [`running`](Self::running).
    pub fn queued(&self) -> usize {
        self.handle.queued()
    }

    /// Threads the strategy runs now (a live figure the strategy publishes): a threading
    /// server's pool, idle threads included; 0 for a synchronous or forking server.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// assert_eq!(running.threads(), 0); // synchronous: requests run on the serving thread
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.handle.threads()
    }

    /// Child processes the strategy has now (a live figure the strategy publishes): a forking
    /// server's children, started and not yet reaped; 0 for a synchronous or threading server.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// assert_eq!(running.children(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn children(&self) -> usize {
        self.handle.children()
    }

    /// Stops the loop (Python's `server.shutdown()`), joins the serving thread and gives the
    /// server back, not closed. As Python's, it waits for the request in hand: on a synchronous
    /// server, as long as its handler runs (use [`shutdown_gracefully`](Self::shutdown_gracefully)
    /// for a bound).
    ///
    /// # Errors
    ///
    /// The error `serve_forever` ended with, if it failed (the server is then dropped), or
    /// [`Error::Io`] if the serving thread panicked.
    ///
    /// # Examples
    ///
    /// See [`Running`].
    pub fn shutdown(mut self) -> Result<Server<K, C, S>> {
        self.handle.shutdown()?;
        self.join()
    }

    /// Stops the loop gracefully ([`ShutdownHandle::shutdown_gracefully`]: requests in flight
    /// may finish within `grace`, then their connections are shut down), joins the serving
    /// thread and gives the server back with the report. Then close it: for a bounded close
    /// of what still runs, [`Server::server_close_by`] with the handle's
    /// [`close_deadline`](ShutdownHandle::close_deadline).
    ///
    /// # Errors
    ///
    /// As [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::time::Duration;
    ///
    /// let running = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?.spawn()?;
    /// let (mut server, report) = running.shutdown_gracefully(Duration::from_secs(2))?;
    /// assert!(report.loop_stopped && report.still_running == 0);
    /// server.server_close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_gracefully(
        mut self,
        grace: Duration,
    ) -> Result<(Server<K, C, S>, GracefulStop)> {
        let report = self.handle.shutdown_gracefully(grace)?;
        Ok((self.join()?, report))
    }

    fn join(&mut self) -> Result<Server<K, C, S>> {
        let thread = self.thread.take().ok_or(Error::Closed)?;
        match thread.join() {
            Ok((server, Ok(()))) => Ok(server),
            Ok((_, Err(e))) => Err(e),
            Err(payload) => {
                let panic = handler::HandlerError::from_panic(payload);
                Err(Error::Io(std::io::Error::other(format!(
                    "the serving thread panicked: {panic}"
                ))))
            }
        }
    }
}

impl<K: Kind, C: Strategy, S: SharedState> Drop for Running<K, C, S> {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        // No grace: connections in flight are shut down at once, which ends handlers blocked
        // on them; the stop itself waits a bounded time for them.
        let stopped = match self.handle.shutdown_gracefully(Duration::ZERO) {
            Ok(report) => report.loop_stopped,
            Err(e) => {
                log::error!("stopping a dropped Running server: {e}");
                false
            }
        };
        if !stopped {
            log::warn!(
                "a dropped Running server's loop did not stop (a handler ignores its socket); \
                 leaving its thread behind"
            );
            return;
        }
        // The server, if it comes back, is dropped too: closed with a bounded wait.
        if let Err(e) = self.join() {
            log::debug!("a dropped Running server had ended with: {e}");
        }
    }
}

impl<K: Kind, C: Strategy, S: SharedState> fmt::Debug for Running<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("server_address", &self.address)
            .field("serving", &self.handle.is_serving())
            .field("in_flight", &self.in_flight())
            .field("running", &self.running())
            .field("queued", &self.queued())
            .field("threads", &self.threads())
            .field("children", &self.children())
            .finish()
    }
}
