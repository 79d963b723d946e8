//! Prefork workers under a supervisor, gunicorn's model on sockserve's servers: the supervisor
//! binds the listener once and runs N worker processes that serve it, with any strategy; it
//! serves no request itself. A worker that dies is replaced (with a back-off when workers keep
//! dying at start); signals reload, resize and upgrade the service without refusing or
//! resetting a connection.
//!
//! | signal to the supervisor | what it does |
//! |---|---|
//! | `SIGTERM` | graceful stop: every worker stops accepting and finishes within its grace |
//! | `SIGINT`, `SIGQUIT` | quick stop: every worker stops at once |
//! | `SIGHUP` | replaces every worker with a fresh one; the old ones stop once the new are ready |
//! | `SIGTTIN`, `SIGTTOU` | one worker more, one fewer |
//! | `SIGUSR2` | upgrade: re-executes the program, handing it the listener; the new supervisor starts its workers, then the old one stops gracefully |
//!
//! **No connection is lost across a reload or an upgrade** because there is only ever one
//! listening socket: the supervisor, its workers and the upgraded supervisor all hold the
//! same kernel socket (inherited through `fork`, and through `exec` as systemd's `LISTEN_FDS`
//! protocol), so its accept queue never closes. A stopping worker only stops taking from it;
//! the others take what is queued. `SO_REUSEPORT` (a socket per process, the kernel spreading
//! connections among them) is not used for that: closing one of those sockets resets the
//! connections already queued on it (envoy#15818), so every restart would cost connections.
//!
//! Workers are started by `fork` ([`Start::Fork`], the default: the workers run the code the
//! supervisor runs) or by re-executing the program ([`Start::Exec`]: each worker is a fresh
//! process of the binary on disk, given the listener at fd 3 as `LISTEN_FDS`). The supervisor
//! is single-threaded whenever it forks (it refuses otherwise) and builds a re-executed
//! process's environment before the fork. With `NOTIFY_SOCKET` set (systemd's
//! `Type=notify`), it sends `READY=1` and `MAINPID` once every worker is ready, `STOPPING=1`
//! when it stops, and an upgraded supervisor sends its own `MAINPID` (the unit needs
//! `NotifyAccess=all`); a pid file, if asked for, names the supervisor that serves, across
//! upgrades.
//!
//! Linux is where this is tested and where all of it holds: the supervisor counts its threads
//! in `/proc/self/status` (elsewhere it cannot tell, and refuses to fork), and a worker gets
//! `SIGTERM` when its supervisor dies (`PR_SET_PDEATHSIG`; elsewhere a worker outlives a
//! supervisor killed with `SIGKILL`).
//!
//! # Examples
//!
//! A TCP echo served by four workers, each a threading server:
//!
//! ```no_run
//! use sockserve_prefork::{Exit, Prefork};
//! use sockserve_prefork::server::socket::{create_server, ServerOptions};
//! use sockserve_prefork::server::TcpServer;
//! use std::io::{BufRead, Write};
//! use std::time::Duration;
//!
//! fn main() -> std::io::Result<()> {
//!     let exit = Prefork::new()
//!         .workers(4)
//!         .on_ready(|address| println!("listening on {address}"))
//!         .run(
//!             // The supervisor binds, once.
//!             || create_server("127.0.0.1:9999", &ServerOptions::default()),
//!             // Each worker builds its server on the listener and serves until told to stop.
//!             |mut worker| {
//!                 let server = TcpServer::builder(|req| loop {
//!                     let data = req.rfile.fill_buf()?;
//!                     if data.is_empty() {
//!                         return Ok(());
//!                     }
//!                     req.wfile.write_all(data)?;
//!                     let n = data.len();
//!                     req.rfile.consume(n);
//!                 })
//!                 .from_listener(worker.listener()?)?;
//!                 worker.serve(server, Duration::from_secs(10))?;
//!                 Ok(())
//!             },
//!         )?;
//!     if let Exit::Supervisor(report) = exit {
//!         eprintln!("{report}");
//!     }
//!     Ok(())
//! }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg(unix)]

mod notify;
mod report;
mod say;
mod spawn;
mod supervisor;
mod worker;

/// The server layer (the `sockserve-server` crate), which also carries the layers below it
/// (`sockserve_prefork::server::socket`): what a worker builds its server with.
///
/// ```
/// use sockserve_prefork::server::TcpServer;
///
/// let server = TcpServer::bind("127.0.0.1:0", |_req| Ok(()))?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use server;

pub use report::Report;
pub use worker::Worker;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

use socket::Socket;

/// The variable that tells a re-executed process its role: `worker:N` or `supervisor`.
const ROLE: &str = "SOCKSERVE_PREFORK_ROLE";

/// How the supervisor starts a worker.
///
/// # Examples
///
/// ```
/// use sockserve_prefork::{Prefork, Start};
///
/// let supervisor = Prefork::new().start(Start::Exec);
/// # drop(supervisor);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// `fork`: the worker is a copy of the supervisor and runs the worker function at once.
    #[default]
    Fork,
    /// `fork` and `exec` of the program (the path it was started from, with its arguments):
    /// the worker runs `main` again, and [`Prefork::run`] there, seeing the listener passed
    /// as `LISTEN_FDS`, runs the worker function. A reload (`SIGHUP`) then starts workers of
    /// the binary now on disk.
    Exec,
}

/// The supervisor's settings, and [`run`](Prefork::run).
///
/// # Examples
///
/// See the [crate documentation](crate).
#[derive(Debug)]
pub struct Prefork {
    workers: usize,
    start: Start,
    grace: Duration,
    pid_file: Option<PathBuf>,
    on_ready: Option<OnReady>,
}

/// The announcement callback.
struct OnReady(Box<dyn FnMut(&str)>);

impl fmt::Debug for OnReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnReady(..)")
    }
}

impl Default for Prefork {
    fn default() -> Prefork {
        Prefork {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            start: Start::Fork,
            grace: DEFAULT_GRACE,
            pid_file: None,
            on_ready: None,
        }
    }
}

/// How long a worker told to stop gracefully may finish its requests: gunicorn's
/// `graceful_timeout`.
///
/// ```
/// assert_eq!(sockserve_prefork::DEFAULT_GRACE.as_secs(), 30);
/// ```
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl Prefork {
    /// A worker per core, started by `fork`, a grace of [`DEFAULT_GRACE`], no pid file.
    ///
    /// ```
    /// let supervisor = sockserve_prefork::Prefork::new();
    /// # drop(supervisor);
    /// ```
    pub fn new() -> Prefork {
        Prefork::default()
    }

    /// How many workers (at least 1; `SIGTTIN` and `SIGTTOU` change it while running).
    ///
    /// ```
    /// let supervisor = sockserve_prefork::Prefork::new().workers(4);
    /// # drop(supervisor);
    /// ```
    pub fn workers(mut self, n: usize) -> Prefork {
        self.workers = n.max(1);
        self
    }

    /// How workers are started: [`Start::Fork`] (the default) or [`Start::Exec`].
    ///
    /// ```
    /// use sockserve_prefork::{Prefork, Start};
    /// let supervisor = Prefork::new().start(Start::Fork);
    /// # drop(supervisor);
    /// ```
    pub fn start(mut self, start: Start) -> Prefork {
        self.start = start;
        self
    }

    /// How long a worker stopped gracefully (`SIGTERM`, a reload, an upgrade) may take before
    /// the supervisor kills it: the grace the worker gives its requests (the one it passes to
    /// [`Worker::serve`]; the supervisor waits this plus [`server::STOP_BOUND`] and a second).
    ///
    /// ```
    /// use std::time::Duration;
    /// let supervisor = sockserve_prefork::Prefork::new().grace(Duration::from_secs(5));
    /// # drop(supervisor);
    /// ```
    pub fn grace(mut self, grace: Duration) -> Prefork {
        self.grace = grace;
        self
    }

    /// A file to hold the serving supervisor's pid: written once every worker is ready
    /// (atomically, by a rename), rewritten by an upgraded supervisor before the old one
    /// stops, removed at the exit of the supervisor it names.
    ///
    /// ```
    /// let supervisor = sockserve_prefork::Prefork::new().pid_file("/run/echo.pid");
    /// # drop(supervisor);
    /// ```
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Prefork {
        self.pid_file = Some(path.into());
        self
    }

    /// Called in the supervisor, once, when every worker it started is ready, with the
    /// listener's address: the moment to print "listening on ..." (an upgraded supervisor
    /// calls it again, as it becomes the one that serves).
    ///
    /// ```
    /// let supervisor = sockserve_prefork::Prefork::new()
    ///     .on_ready(|address| println!("listening on {address}"));
    /// # drop(supervisor);
    /// ```
    pub fn on_ready(mut self, announce: impl FnMut(&str) + 'static) -> Prefork {
        self.on_ready = Some(OnReady(Box::new(announce)));
        self
    }

    /// Runs the process's part: the supervisor, or, in a process the supervisor re-executed
    /// ([`Start::Exec`]), a worker. Call it early in `main`, before starting any thread.
    ///
    /// - Started by hand (or by a service manager): calls `bind` for the listener, then
    ///   supervises until `SIGTERM`, `SIGINT` or `SIGQUIT`, or until an upgrade it started
    ///   has taken over; returns [`Exit::Supervisor`].
    /// - Re-executed as a worker: takes the listener from `LISTEN_FDS`, runs `worker`, and
    ///   returns [`Exit::Worker`] when it returns (its error, if any, as the error).
    /// - Re-executed by an upgrade: takes the listener from `LISTEN_FDS` (`bind` is not
    ///   called: the socket stays the same), supervises, and tells the old supervisor once its
    ///   workers are ready.
    ///
    /// A forked worker ([`Start::Fork`]) runs `worker` in the child and ends with `_exit`
    /// (status 0, or 1 when `worker` fails or panics, its error written as one line); it never
    /// returns from here.
    ///
    /// # Errors
    ///
    /// `bind`'s error; `Unsupported` when the process has more than one thread when the
    /// supervisor must fork; the OS errors of the reactor, the signal handlers, `fork` and
    /// the pipes; `Other` when the workers keep failing at start before any was ready
    /// (the error names their exit status).
    ///
    /// # Examples
    ///
    /// See the [crate documentation](crate).
    pub fn run<B, W>(self, bind: B, worker: W) -> io::Result<Exit>
    where
        B: FnOnce() -> io::Result<Socket>,
        W: Fn(Worker) -> io::Result<()>,
    {
        let role = std::env::var_os(ROLE);
        match role.as_ref().and_then(|r| r.to_str()) {
            Some(role) if role.starts_with("worker") => {
                let number = role
                    .strip_prefix("worker:")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let (listener, ready) = inherited()?;
                worker(Worker::new(number, listener, ready))?;
                Ok(Exit::Worker)
            }
            Some("supervisor") => {
                let (listener, parent) = inherited()?;
                let listener = Socket::from_fd(listener)?;
                self.supervise(listener, Some(parent), &worker)
            }
            Some(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ROLE}={other:?}: expected worker:N or supervisor"),
            )),
            None if role.is_some() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ROLE} is not valid UTF-8: {role:?}"),
            )),
            None => {
                let listener = bind()?;
                self.supervise(listener, None, &worker)
            }
        }
    }

    fn supervise<W>(self, listener: Socket, parent: Option<OwnedFd>, worker: &W) -> io::Result<Exit>
    where
        W: Fn(Worker) -> io::Result<()>,
    {
        match supervisor::Supervisor::new(self, listener, parent)?.run()? {
            supervisor::Step::Done(report) => Ok(Exit::Supervisor(report)),
            supervisor::Step::Child(w) => {
                // A forked worker: the supervisor's state (its signal handlers, reactor and
                // pipes, this process's copies) was dropped on the way here.
                let number = w.number();
                let status = match panic::catch_unwind(AssertUnwindSafe(|| worker(w))) {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) => {
                        say::say_error!("worker {number}: {e}");
                        1
                    }
                    Err(_) => 1, // the panic hook has reported it
                };
                socket::exit_now(status)
            }
        }
    }
}

/// The listener and the readiness pipe a re-executed process was given, and the role
/// variable removed (while single-threaded) so that programs it runs do not take it for theirs.
fn inherited() -> io::Result<(OwnedFd, OwnedFd)> {
    let listener = socket::activation::listen_fds()
        .and_then(|fds| fds.take(None))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{ROLE} is set but the listener was not passed: {e}"),
            )
        })?
        .into_socket()
        .detach()?;
    let ready = spawn::take_inherited(spawn::READY_FD)?;
    spawn::remove_env(&[ROLE]);
    Ok((listener, ready))
}

/// What [`Prefork::run`] did in this process.
///
/// # Examples
///
/// ```
/// use sockserve_prefork::Exit;
///
/// fn status(exit: &Exit) -> u8 {
///     match exit {
///         Exit::Supervisor(report) if !report.is_clean() => 1,
///         _ => 0,
///     }
/// }
/// assert_eq!(status(&Exit::Worker), 0);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit {
    /// This process supervised; what happened.
    Supervisor(Report),
    /// This process was a re-executed worker, and its work is done.
    Worker,
}

/// The environment of a re-executed process: this one's, without the variables of the
/// protocols (theirs are set afresh), with `extra` added.
fn child_env(keep_notify: bool, extra: &[(&str, String)]) -> Vec<OsString> {
    let dropped = [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        ROLE,
        notify::NOTIFY_SOCKET,
    ];
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(key, _)| {
            let key = key.to_string_lossy();
            !dropped.contains(&key.as_ref()) || (keep_notify && key == notify::NOTIFY_SOCKET)
        })
        .map(|(key, value)| {
            let mut entry = key;
            entry.push("=");
            entry.push(value);
            entry
        })
        .collect();
    env.extend(
        extra
            .iter()
            .map(|(key, value)| OsString::from(format!("{key}={value}"))),
    );
    env
}
