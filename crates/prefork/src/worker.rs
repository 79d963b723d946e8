//! [`Worker`]: what a worker process gets from its supervisor (the listener, and the pipe on
//! which it says it is ready), and [`Worker::serve`], which serves a server built on that
//! listener until the supervisor says stop.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use server::{Kind, Server, SharedState, SignalStop, StopSignals, Strategy};

/// The byte a worker writes on its readiness pipe.
pub(crate) const READY: u8 = b'R';

/// One worker process's share of its supervisor: the listening socket (a duplicate of the
/// supervisor's, the same kernel socket and accept queue) and the pipe on which it tells the
/// supervisor it is ready. Dropping it closes the pipe, whose end of file tells the supervisor
/// the worker is gone, so hold it for as long as the worker serves ([`Worker::serve`] does).
///
/// A worker takes its stop commands from the supervisor alone: `SIGTERM` stops it gracefully,
/// `SIGTERM` and then `SIGINT` stop it at once (what [`Worker::serve`] does with them is
/// [`StopSignals::serve_until_signal`]'s). It runs in a process group of its own, so a
/// terminal's Ctrl-C reaches only the supervisor, and it gets `SIGTERM` if the supervisor
/// dies (Linux's parent-death signal).
///
/// # Examples
///
/// See [`Prefork`](crate::Prefork).
pub struct Worker {
    number: usize,
    listener: Option<OwnedFd>,
    ready: Option<OwnedFd>,
    said_ready: bool,
}

impl Worker {
    pub(crate) fn new(number: usize, listener: OwnedFd, ready: OwnedFd) -> Worker {
        Worker {
            number,
            listener: Some(listener),
            ready: Some(ready),
            said_ready: false,
        }
    }

    /// The worker's number: 1, 2, ... in the order the supervisor started them (a replaced
    /// worker gets a new number).
    ///
    /// # Examples
    ///
    /// ```
    /// fn log_start(worker: &sockserve_prefork::Worker) {
    ///     eprintln!("worker {} starting", worker.number());
    /// }
    /// # let _ = log_start;
    /// ```
    pub fn number(&self) -> usize {
        self.number
    }

    /// The listening socket, to build the worker's server on
    /// ([`Builder::from_listener`](server::Builder::from_listener)). It can be taken once:
    /// `AlreadyExists` after that.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_prefork::Worker;
    /// use sockserve_prefork::server::TcpServer;
    ///
    /// fn build(worker: &mut Worker) -> std::io::Result<()> {
    ///     let server = TcpServer::builder(|_req| Ok(())).from_listener(worker.listener()?)?;
    ///     # drop(server);
    ///     Ok(())
    /// }
    /// # let _ = build;
    /// ```
    pub fn listener(&mut self) -> io::Result<OwnedFd> {
        self.listener.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the worker's listener was already taken",
            )
        })
    }

    /// Tells the supervisor this worker is ready (once; later calls do nothing): until every
    /// worker is, the supervisor does not announce itself, and during a reload or an upgrade
    /// it does not stop the workers being replaced. [`serve`](Worker::serve) calls it once its
    /// stop signals are in place; call it yourself only if you serve another way.
    ///
    /// # Errors
    ///
    /// The write failed: the supervisor is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// fn serve_by_hand(mut worker: sockserve_prefork::Worker) -> std::io::Result<()> {
    ///     let _listener = worker.listener()?;
    ///     worker.ready()?;
    ///     // ... accept on the listener until told to stop ...
    ///     Ok(())
    /// }
    /// # let _ = serve_by_hand;
    /// ```
    pub fn ready(&mut self) -> io::Result<()> {
        if self.said_ready {
            return Ok(());
        }
        if let Some(pipe) = &self.ready {
            nix::unistd::write(pipe, &[READY])?;
        }
        self.said_ready = true;
        Ok(())
    }

    /// Serves `server` until the supervisor stops this worker: installs the handlers of
    /// `SIGTERM` and `SIGINT` ([`StopSignals::install`]), says it is ready, then
    /// [`StopSignals::serve_until_signal`] with `grace`: a `SIGTERM` stops the server
    /// gracefully (no new connection is accepted; the listener stays open in the supervisor
    /// and the other workers, so the connections queued on it wait for them; requests in
    /// flight may finish within `grace`), a `SIGINT` after it stops it at once.
    ///
    /// # Errors
    ///
    /// Those of [`StopSignals::serve_until_signal`], and a failed readiness write.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_prefork::Worker;
    /// use sockserve_prefork::server::TcpServer;
    /// use std::time::Duration;
    ///
    /// fn work(mut worker: Worker) -> std::io::Result<()> {
    ///     let server = TcpServer::builder(|_req| Ok(())).from_listener(worker.listener()?)?;
    ///     worker.serve(server, Duration::from_secs(10))?;
    ///     Ok(())
    /// }
    /// # let _ = work;
    /// ```
    pub fn serve<K: Kind, C: Strategy, S: SharedState>(
        mut self,
        server: Server<K, C, S>,
        grace: Duration,
    ) -> io::Result<SignalStop> {
        let signals = StopSignals::install()?;
        self.ready()?;
        signals.serve_until_signal(server, grace)
        // `self` drops here, closing the readiness pipe: the supervisor hears of it.
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("number", &self.number)
            .field("listener", &self.listener)
            .field("said_ready", &self.said_ready)
            .finish()
    }
}
