//! [`serve_until_signal`]: serve until SIGTERM or SIGINT, then stop gracefully within a deadline
//! that nothing a handler does can stretch.

use crate::{CloseReport, GracefulStop, Kind, STOP_BOUND, Server, ShutdownHandle, Strategy};
use handler::SharedState;
use reactor::{Interest, Reactor, Signal, Signals, Waker};
use std::{
    fmt, io,
    panic::{self, AssertUnwindSafe},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// The reactor keys of the watcher: the signal pipe, and the waker that the serving and the
/// stopping threads use to say they are done.
const SIGNALS: usize = 0;
/// How often the watcher looks at the threads' "done" flags when no wake reaches it: a safety
/// net only, since both wake it at once; it keeps a failed wake from turning into a hang.
const SAFETY_TICK: Duration = Duration::from_secs(1);
/// How often the stopping thread, holding a signal, looks again for a serving loop that has not
/// started yet (the signal came between the handlers' installation and the loop's start).
const START_TICK: Duration = Duration::from_millis(10);
/// After a second signal, how long the watcher still waits for the serving thread (a forking
/// server reaps the children it killed) before it leaves it behind.
const HURRY_BOUND: Duration = Duration::from_millis(500);

/// What [`serve_until_signal`] saw: which signal ended the serving, what the graceful stop did,
/// and what was ended or left behind when it could wait no longer.
///
/// Its `Display` is a one-line report for a program to print as it exits.
///
/// # Examples
///
/// See [`serve_until_signal`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalStop {
    /// The signal that stopped the server (`SIGTERM` or `SIGINT`); `None` when `serve_forever`
    /// returned for another reason, such as a [`ShutdownHandle`] used elsewhere.
    pub signal: Option<Signal>,
    /// A second signal during the stop, which made it a forced stop: the rest of the grace was
    /// skipped, connections were shut down and forking children killed (`SIGKILL`) at once.
    pub forced_by: Option<Signal>,
    /// The report of the graceful stop the signal started; `None` when no graceful stop ran
    /// (no signal, or the loop had already ended when the signal came).
    pub graceful: Option<GracefulStop>,
    /// What the close after the stop ended or left behind (threads left running, children
    /// terminated or killed); all zero when every request ended by itself.
    pub closed: CloseReport,
    /// Whether the serving thread itself was left behind: its handler ignored the stop (a
    /// synchronous server runs its handler on that thread). The process should exit.
    pub serving_thread_abandoned: bool,
    /// Requests still running when control came back (left behind; they end with the process).
    pub still_running: usize,
    /// From the signal to the return; zero without a signal.
    pub took: Duration,
}

impl SignalStop {
    /// Whether the stop ended everything by itself: no second signal, nothing killed, nothing
    /// left running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockserve_server::SignalStop::default().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.forced_by.is_none()
            && self.closed.is_clean()
            && !self.serving_thread_abandoned
            && self.still_running == 0
    }
}

impl fmt::Display for SignalStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(signal) = self.signal else {
            return f.write_str("stopped");
        };
        write!(f, "{signal}: ")?;
        match self.forced_by {
            Some(second) => write!(f, "forced stop ({second} during the graceful stop)")?,
            None => f.write_str("stopped")?,
        }
        write!(f, " in {:.3} s", self.took.as_secs_f64())?;
        if let Some(g) = self.graceful.filter(|g| g.forced > 0) {
            let when = if g.hurried {
                "at once"
            } else {
                "at the deadline"
            };
            write!(f, "; {} connection(s) shut down {when}", g.forced)?;
        }
        if !self.closed.is_clean() {
            write!(f, "; {}", self.closed)?;
        }
        if self.serving_thread_abandoned {
            f.write_str("; the serving thread was left behind (its handler ignored the stop)")?;
        }
        if self.still_running > 0 {
            write!(
                f,
                "; {} request(s) still running, abandoned",
                self.still_running
            )?;
        }
        Ok(())
    }
}

/// Serves until a termination signal (`SIGTERM` or `SIGINT`), then stops gracefully within
/// `grace`, closes the server, and says what happened. Control comes back within `grace` plus
/// [`STOP_BOUND`] (3 s) of the signal, whatever the handlers do; a second signal makes it come
/// back at once.
///
/// This is what a long-running server's `main` usually wants, and what Python programs write
/// by hand with `signal.signal(SIGTERM, ...)` and a thread calling `server.shutdown()`. Step by
/// step:
///
/// 1. Installs handlers for `SIGTERM` and `SIGINT` through [`reactor::Signals`], which does
///    only async-signal-safe work in the handler (a flag and a byte written to a pipe). No other
///    signal is touched; `SIGCHLD` in particular stays with whoever reaps children.
/// 2. Moves the server to a serving thread of its own, which runs [`Server::serve_forever`] and
///    then closes the server; the calling thread waits for signals.
/// 3. On a signal, [`ShutdownHandle::shutdown_gracefully`]`(grace)` starts: the loop stops
///    accepting at once, requests in flight may finish until `grace` has passed, then the
///    connections that remain are shut down (`SHUT_RDWR`), which wakes a handler blocked
///    reading or writing them, even one on the serving thread of a synchronous server.
/// 4. Handlers have 2 s more to notice. Then the close ends what still runs
///    ([`Server::server_close_by`]): a forking server sends its own children (by pid, never
///    another process) `SIGTERM`, then `SIGKILL`; a threading server leaves the threads still
///    running behind and counts them. If the serving thread itself has not finished by
///    `grace` + [`STOP_BOUND`] (a synchronous server whose handler sleeps, loops, or waits on a
///    lock), it is left behind too, and the Unix socket file is removed from here.
/// 5. A second `SIGTERM` or `SIGINT` during the stop means "stop now"
///    ([`ShutdownHandle::stop_now`]): the rest of the grace is skipped, connections are shut
///    down, forking children get `SIGKILL`, the socket file is still removed, and control
///    comes back within a second, with [`SignalStop::forced_by`] set.
/// 6. Restores the previous dispositions of the two signals and returns the report. Anything
///    left behind ends with the process: a program should exit when the report is not
///    [`clean`](SignalStop::is_clean) (see its `Display`, a line to print).
///
/// Print your "listening on ..." line (or notify a supervisor) *before* calling this only if
/// a signal that arrives before the handlers are in place may kill the process; otherwise use
/// the two halves, [`StopSignals::install`] then [`StopSignals::serve_until_signal`], and say
/// you are ready in between.
///
/// The serving can also end without a signal: stop it through a [`ShutdownHandle`] taken
/// from the server before the call, and the result has `signal: None`.
///
/// Dispositions are process-wide: only one `serve_until_signal` (or other [`reactor::Signals`]
/// owning `SIGTERM` or `SIGINT`) may run at a time in a process. A child forked while it runs
/// (the forking strategy) gets the default action of both signals, so `SIGTERM` ends the child
/// as usual.
///
/// # Errors
///
/// - `AlreadyExists` when another [`reactor::Signals`] owns `SIGTERM` or `SIGINT` now (another
///   `serve_until_signal` or [`StopSignals`] among them); the server is then closed unserved.
/// - The OS error of the reactor or of spawning the serving thread, before serving: the server
///   is closed unserved.
/// - The error of `serve_forever` (as an `io::Error`), or of the watcher's reactor (then the
///   server is stopped rather than left running deaf to signals); the server is closed.
///
/// # Examples
///
/// A TCP echo server stopped by `SIGTERM`, as `kill -TERM <pid>` sends it from a shell:
///
/// ```
/// use sockserve_server::{TcpServer, serve_until_signal};
/// use sockserve_server::Signal;
/// use std::{io::{BufRead, Write}, process::Command, thread, time::Duration};
///
/// let server = TcpServer::bind("127.0.0.1:0", |req| loop {
///     let data = req.rfile.fill_buf()?;
///     if data.is_empty() {
///         return Ok(()); // the client closed its side
///     }
///     req.wfile.write_all(data)?;
///     let n = data.len();
///     req.rfile.consume(n);
/// })?;
/// println!("listening on {}", server.server_address());
///
/// // Stand-in for an operator: once the server runs, send this process a SIGTERM.
/// let handle = server.shutdown_handle();
/// let pid = std::process::id().to_string();
/// let operator = thread::spawn(move || {
///     while !handle.is_serving() {
///         thread::sleep(Duration::from_millis(10));
///     }
///     Command::new("kill").args(["-TERM", &pid]).status()
/// });
///
/// let stop = serve_until_signal(server, Duration::from_secs(2))?;
/// assert_eq!(stop.signal, Some(Signal::SIGTERM));
/// assert!(stop.graceful.is_some_and(|g| g.loop_stopped));
/// assert!(stop.is_clean(), "{stop}");
/// operator.join().expect("operator thread panicked")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_until_signal<K: Kind, C: Strategy, S: SharedState>(
    server: Server<K, C, S>,
    grace: Duration,
) -> io::Result<SignalStop> {
    StopSignals::install()?.serve_until_signal(server, grace)
}

/// `SIGTERM` and `SIGINT`, caught and held for [`StopSignals::serve_until_signal`]: the two
/// halves of [`serve_until_signal`], for a program that says it is ready only once a signal can
/// no longer kill it.
///
/// Between [`install`](StopSignals::install) and serving, the two signals no longer have their
/// default action (ending the process): one that arrives meanwhile is kept, and stops the
/// server as soon as it serves. So a program that installs first, then prints "listening on
/// ..." (or notifies its supervisor), can be stopped gracefully by anyone who saw that line.
/// Dropping a `StopSignals` without serving restores the previous dispositions.
///
/// # Examples
///
/// ```
/// use sockserve_server::{StopSignals, TcpServer};
/// use std::{process::Command, time::Duration};
///
/// let server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
/// let signals = StopSignals::install()?;
/// // From here a SIGTERM stops the server gracefully instead of killing the process, so it is
/// // time to tell the world.
/// println!("listening on {}", server.server_address());
///
/// // Stand-in for an operator who read that line: `kill -TERM <pid>`, even before serving.
/// let pid = std::process::id().to_string();
/// Command::new("kill").args(["-TERM", &pid]).status()?;
///
/// let stop = signals.serve_until_signal(server, Duration::from_secs(2))?;
/// assert_eq!(stop.signal.map(|s| s.as_str()), Some("SIGTERM"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StopSignals {
    signals: Signals,
}

impl StopSignals {
    /// Installs the handlers of `SIGTERM` and `SIGINT` (through [`reactor::Signals`]: only
    /// async-signal-safe work in the handler, no other signal touched).
    ///
    /// # Errors
    ///
    /// `AlreadyExists` when another [`reactor::Signals`] owns `SIGTERM` or `SIGINT` now, or the
    /// OS error of the pipe or `sigaction`; nothing is left installed then.
    ///
    /// # Examples
    ///
    /// See [`StopSignals`].
    pub fn install() -> io::Result<StopSignals> {
        Ok(StopSignals {
            signals: Signals::new(&[Signal::SIGTERM, Signal::SIGINT])?,
        })
    }

    /// Serves until `SIGTERM` or `SIGINT` (one that arrived since [`install`](Self::install)
    /// counts), then stops gracefully within `grace` and closes the server: everything
    /// [`serve_until_signal`] does after installing the handlers, which are restored when this
    /// returns.
    ///
    /// # Errors
    ///
    /// As [`serve_until_signal`], but for installing.
    ///
    /// # Examples
    ///
    /// See [`StopSignals`].
    pub fn serve_until_signal<K: Kind, C: Strategy, S: SharedState>(
        self,
        mut server: Server<K, C, S>,
        grace: Duration,
    ) -> io::Result<SignalStop> {
        let signals = self.signals;
        let mut reactor = Reactor::new()?;
        reactor.register(&signals, SIGNALS, Interest::READABLE)?;
        let handle = server.shutdown_handle();
        let serving: Arc<Done<(crate::Result<()>, CloseReport)>> = Done::new(reactor.waker());
        let deadline = handle.close_deadline();
        let loop_returned = Arc::new(AtomicBool::new(false));
        let spawned = thread::Builder::new()
            .name("sockserve-serve".into())
            .spawn({
                let (serving, loop_returned) = (Arc::clone(&serving), Arc::clone(&loop_returned));
                move || {
                    // Whatever happens here, the watcher hears of it: a panic (a strategy's,
                    // or a handler's Drop on a synchronous server) is an error, not a hang.
                    let run = panic::catch_unwind(AssertUnwindSafe(|| {
                        let served = server.serve_forever();
                        loop_returned.store(true, Ordering::SeqCst);
                        // Bounded by the graceful stop's deadline once a signal came; before
                        // that (the loop ended for another reason) it waits as server_close
                        // does, until a signal gives it a deadline.
                        let closed = server.server_close_by(&deadline);
                        drop(server);
                        (served, closed)
                    }));
                    loop_returned.store(true, Ordering::SeqCst);
                    serving.finish(run.unwrap_or_else(|payload| {
                        let error = handler::HandlerError::from_panic(payload);
                        let error =
                            io::Error::other(format!("the serving thread panicked: {error}"));
                        (Err(crate::Error::Io(error)), CloseReport::default())
                    }));
                }
            });
        // On failure the closure, and the server in it, are dropped: the server is closed.
        let serving_thread = spawned?;
        let watched = watch(
            &mut reactor,
            &signals,
            &serving,
            &handle,
            grace,
            &loop_returned,
        );
        let mut stop = match watched {
            Ok(stop) => stop,
            Err(e) => {
                // Deaf to signals from now on: stop now rather than serve on unstoppable, and
                // say why. The serving thread ends by itself.
                handle.stop_now();
                handle.remove_socket_file();
                return Err(e);
            }
        };
        let outcome = serving.take();
        match &outcome {
            Some((_, closed)) => {
                stop.closed = *closed;
                // It has handed over its result: all that is left of it is returning.
                if serving_thread.join().is_err() {
                    log::error!("the serving thread panicked after serving");
                }
            }
            None => {
                // Left behind: it still owns the server, so remove the socket file from here
                // (a signal after the dispositions are restored could kill the process with
                // the file left otherwise).
                stop.serving_thread_abandoned = true;
                handle.remove_socket_file();
            }
        }
        stop.still_running = handle.in_flight();
        drop(reactor);
        drop(signals);
        if let Some((served, _)) = outcome {
            served?;
        }
        Ok(stop)
    }
}

/// A result one thread hands the watcher, with the waker that tells it so.
struct Done<T> {
    value: Mutex<Option<T>>,
    finished: Arc<AtomicBool>,
    waker: Waker,
}

impl<T> Done<T> {
    fn new(waker: Waker) -> Arc<Self> {
        Arc::new(Done {
            value: Mutex::new(None),
            finished: Arc::new(AtomicBool::new(false)),
            waker,
        })
    }

    fn finish(&self, value: T) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        // Set the flag before waking, as the waker asks: the watcher looks at it after waking.
        self.finished.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            // The watcher's safety tick still sees the flag, within a second.
            log::warn!("cannot wake the signal watcher: {e}");
        }
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// The flag alone, for a thread that must not hold the value's type.
    fn finished_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.finished)
    }

    fn take(&self) -> Option<T> {
        self.value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The watcher, on the calling thread: waits for a signal or for the serving to end; on a
/// signal, runs the graceful stop on a thread of its own and keeps watching, for a second
/// signal and for the bound.
fn watch(
    reactor: &mut Reactor,
    signals: &Signals,
    serving: &Done<(crate::Result<()>, CloseReport)>,
    handle: &ShutdownHandle,
    grace: Duration,
    loop_returned: &Arc<AtomicBool>,
) -> io::Result<SignalStop> {
    let (signal, mut second) = loop {
        reactor.select(Some(SAFETY_TICK))?;
        // Signals first: one that arrived just as the loop ended is still reported. (Two
        // arrivals of one signal before this read are one; SIGTERM and SIGINT are two.)
        let pending = signals.pending()?;
        if let Some(&signal) = pending.first() {
            break (signal, pending.get(1).copied());
        }
        if serving.is_finished() {
            return Ok(SignalStop::default());
        }
    };
    let started = Instant::now();
    log::info!("{signal}: stopping gracefully (grace {grace:?})");
    // Past this, the serving thread is left behind. A grace too long for the clock: no bound.
    let mut give_up = started
        .checked_add(grace)
        .and_then(|t| t.checked_add(STOP_BOUND));
    let stopping: Arc<Done<Option<GracefulStop>>> = Done::new(reactor.waker());
    let stopper = thread::Builder::new()
        .name("sockserve-stop".into())
        .spawn({
            let (stopping, handle) = (Arc::clone(&stopping), handle.clone());
            let (serving_done, loop_returned) =
                (serving.finished_flag(), Arc::clone(loop_returned));
            move || {
                let report = stop_gracefully(&handle, grace, &loop_returned, &serving_done);
                stopping.finish(report)
            }
        })?;
    let mut stop = SignalStop {
        signal: Some(signal),
        ..SignalStop::default()
    };
    while !(serving.is_finished() && stopping.is_finished()) {
        if let Some(second) = second.take() {
            if stop.forced_by.is_none() {
                log::warn!("{second} during the graceful stop: stopping now");
                stop.forced_by = Some(second);
                handle.stop_now();
                give_up = Some(Instant::now() + HURRY_BOUND);
            }
        }
        let now = Instant::now();
        if give_up.is_some_and(|t| now >= t) {
            break;
        }
        let wait = give_up.map_or(SAFETY_TICK, |t| (t - now).min(SAFETY_TICK));
        reactor.select(Some(wait))?;
        second = signals.pending()?.first().copied();
    }
    // The graceful stop's own waits end at its deadline (or at once when hurried), before
    // `give_up`; should it still run, it is left behind rather than waited for.
    if stopping.is_finished() && stopper.join().is_err() {
        log::error!("the graceful stop panicked");
    }
    stop.graceful = stopping.take().flatten();
    stop.took = started.elapsed();
    Ok(stop)
}

/// The stopping thread: waits for the loop to be running (a stop asked for while no loop runs
/// is lost if a loop ran before: the handle keeps no stale state) or to have returned (its
/// requests may still be in flight, the close waiting for them: the graceful stop gives that
/// wait its deadline), then stops gracefully.
fn stop_gracefully(
    handle: &ShutdownHandle,
    grace: Duration,
    loop_returned: &AtomicBool,
    serving_done: &AtomicBool,
) -> Option<GracefulStop> {
    loop {
        if handle.is_serving() || loop_returned.load(Ordering::SeqCst) {
            return match handle.shutdown_gracefully(grace) {
                Ok(report) => Some(report),
                Err(e) => {
                    log::error!("graceful stop: {e}");
                    None
                }
            };
        }
        if serving_done.load(Ordering::SeqCst) {
            return None;
        }
        thread::sleep(START_TICK); // a poll for a loop about to start; rare and short
    }
}
