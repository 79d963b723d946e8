//! [`serve_until_signal`]: serve until SIGTERM or SIGINT, then stop gracefully within a deadline.

use reactor::{Interest, Reactor, Signal, Signals};
use server::{GracefulStop, Kind, Server, ShutdownHandle, Strategy};
use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

/// The reactor key of the signal pipe in the watcher's reactor.
const SIGNALS: usize = 0;
/// How often the watcher looks at the "serving ended" flag when no wake reaches it: a safety
/// net only, since the serving thread wakes it at once; it keeps a failed wake from turning into
/// a hang in `join`.
const SAFETY_TICK: Duration = Duration::from_secs(1);
/// How often the watcher, holding a signal, looks again for a serving loop that has not started
/// yet (the signal came between the handler's installation and the loop's start).
const START_TICK: Duration = Duration::from_millis(10);

/// What [`serve_until_signal`] saw: which signal ended the serving, and what the graceful stop
/// did.
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
    /// The report of the graceful stop the signal started; `None` when no graceful stop ran
    /// (no signal, or the loop had already ended when the signal came).
    pub graceful: Option<GracefulStop>,
}

/// Serves until a termination signal (`SIGTERM` or `SIGINT`), then stops gracefully within
/// `grace`, closes the server, and says what happened.
///
/// This is what a long-running server's `main` usually wants, and what Python programs write
/// by hand with `signal.signal(SIGTERM, ...)` and a thread calling `server.shutdown()`. Step by
/// step:
///
/// 1. Installs handlers for `SIGTERM` and `SIGINT` through [`reactor::Signals`], which does
///    only async-signal-safe work in the handler (a flag and a byte written to a pipe). No other
///    signal is touched; `SIGCHLD` in particular stays with whoever reaps children.
/// 2. Starts a watcher thread that waits on a [`Reactor`] for the signal pipe (and for a waker,
///    so that it can be told to exit).
/// 3. Runs [`Server::serve_forever`] on the calling thread.
/// 4. On a signal, the watcher calls [`ShutdownHandle::shutdown_gracefully`]`(grace)`: the loop
///    stops accepting at once, requests in flight may finish until `grace` has passed, then the
///    connections that remain are shut down (`SHUT_RDWR`), which wakes a handler blocked reading
///    or writing them, even a handler running on the serving thread of a synchronous server.
///    So an idle client cannot hold the server open for longer than `grace` (plus the server
///    layer's short wait for handlers to notice).
/// 5. When `serve_forever` returns, for whatever reason: tells the watcher to exit and joins
///    it, calls [`Server::server_close`] (which removes a Unix socket file the server created),
///    and restores the previous dispositions of the two signals.
///
/// Print your "listening on ..." line (or notify a supervisor) *before* calling this only if
/// a signal that arrives before the handlers are in place may kill the process; otherwise use
/// the two halves, [`StopSignals::install`] then [`StopSignals::serve_until_signal`], and say
/// you are ready in between.
///
/// The serving can also end without a signal: stop it through a [`ShutdownHandle`] taken
/// from the server before the call, and the result has `signal: None`.
///
/// A second signal during the grace period does not shorten it. Dispositions are process-wide:
/// only one `serve_until_signal` (or other [`reactor::Signals`] owning `SIGTERM` or `SIGINT`)
/// may run at a time in a process. A child forked while it runs (the forking strategy) gets the
/// default action of both signals, so `SIGTERM` ends the child as usual.
///
/// # Errors
///
/// - `AlreadyExists` when another [`reactor::Signals`] owns `SIGTERM` or `SIGINT` now (another
///   `serve_until_signal` or [`StopSignals`] among them); the server is then left untouched
///   (not served, not closed).
/// - The OS error of the reactor or of spawning the watcher, before serving: the server is left
///   untouched.
/// - The error of `serve_forever` (as an `io::Error`), or of the watcher's reactor; the server
///   is closed in both cases. If the watcher cannot wait for signals any more, it stops the
///   server rather than leave it running deaf to them.
///
/// # Examples
///
/// A TCP echo server stopped by `SIGTERM`, as `kill -TERM <pid>` sends it from a shell:
///
/// ```
/// use sockserve::{StreamRequest, TcpServer, serve_until_signal};
/// use sockserve::reactor::Signal;
/// use std::{io::{BufRead, Write}, process::Command, thread, time::Duration};
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| loop {
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
/// let stop = serve_until_signal(&mut server, Duration::from_secs(2))?;
/// assert_eq!(stop.signal, Some(Signal::SIGTERM));
/// assert!(stop.graceful.is_some_and(|g| g.loop_stopped));
/// assert_eq!(server.fileno(), -1); // closed
/// operator.join().expect("operator thread panicked")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_until_signal<K: Kind, C: Strategy>(
    server: &mut Server<K, C>,
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
/// use sockserve::{StopSignals, StreamRequest, TcpServer};
/// use std::{process::Command, time::Duration};
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |_req: &mut StreamRequest| Ok(()))?;
/// let signals = StopSignals::install()?;
/// // From here a SIGTERM stops the server gracefully instead of killing the process, so it is
/// // time to tell the world.
/// println!("listening on {}", server.server_address());
///
/// // Stand-in for an operator who read that line: `kill -TERM <pid>`, even before serving.
/// let pid = std::process::id().to_string();
/// Command::new("kill").args(["-TERM", &pid]).status()?;
///
/// let stop = signals.serve_until_signal(&mut server, Duration::from_secs(2))?;
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
    pub fn serve_until_signal<K: Kind, C: Strategy>(
        self,
        server: &mut Server<K, C>,
        grace: Duration,
    ) -> io::Result<SignalStop> {
        let signals = self.signals;
        let mut reactor = Reactor::new()?;
        reactor.register(&signals, SIGNALS, Interest::READABLE)?;
        let waker = reactor.waker();
        let handle = server.shutdown_handle();
        let done = AtomicBool::new(false);

        let outcome = thread::scope(|s| -> io::Result<_> {
            let watcher = thread::Builder::new()
                .name("sockserve-signals".into())
                .spawn_scoped(s, || {
                    let watched = watch(&mut reactor, &signals, &done, &handle, grace);
                    if watched.is_err() {
                        // Deaf to signals from now on: stop rather than serve on unstoppable.
                        handle.request_shutdown();
                    }
                    watched
                })?;
            let served = server.serve_forever();
            // Close before joining the watcher: closing waits for the requests in flight
            // (threads joined, children reaped), which is what the watcher's graceful stop
            // waits for; at its deadline it shuts their connections down, so this ends.
            // The server is closed (its Unix socket file removed) before the dispositions are
            // restored, so a signal now still cannot kill the process with the file left.
            server.server_close();
            // Set the flag before waking, as the waker asks: the watcher looks at it after
            // waking.
            done.store(true, Ordering::SeqCst);
            if let Err(e) = waker.wake() {
                // The watcher's safety tick still sees `done`, within a second.
                log::warn!("cannot wake the signal watcher: {e}");
            }
            let watched = watcher
                .join()
                .map_err(|_| io::Error::other("the signal watcher panicked"))?;
            Ok((served, watched))
        });
        // Closed above on every path but a failed watcher spawn; closing again is a no-op.
        server.server_close();
        drop(reactor);
        drop(signals);

        let (served, watched) = outcome?;
        served?;
        let (signal, graceful) = watched?;
        Ok(SignalStop { signal, graceful })
    }
}

/// The watcher: waits for a signal or for the serving to end; on a signal, stops the loop
/// gracefully.
fn watch(
    reactor: &mut Reactor,
    signals: &Signals,
    done: &AtomicBool,
    handle: &ShutdownHandle,
    grace: Duration,
) -> io::Result<(Option<Signal>, Option<GracefulStop>)> {
    let signal = loop {
        reactor.select(Some(SAFETY_TICK))?;
        // Signals first: one that arrived just as the loop ended is still reported.
        if let Some(&signal) = signals.pending()?.first() {
            break signal;
        }
        if done.load(Ordering::SeqCst) {
            return Ok((None, None));
        }
    };
    log::info!("{signal}: stopping gracefully (grace {grace:?})");
    loop {
        // A stop asked for while no loop runs is lost if a loop ran before (the handle keeps no
        // stale state), so wait for the loop to be running, or to be over.
        if handle.is_serving() {
            let report = handle.shutdown_gracefully(grace)?;
            return Ok((Some(signal), Some(report)));
        }
        if done.load(Ordering::SeqCst) {
            return Ok((Some(signal), None));
        }
        reactor.select(Some(START_TICK))?;
    }
}
