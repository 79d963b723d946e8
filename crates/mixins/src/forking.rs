//! `Forking`: Python's `ForkingMixIn`, reaping only its own children and never blocking the
//! accept loop at `max_children`.

use nix::{
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{ForkResult, Pid, fork},
};
use server::{CloseDeadline, CloseReport, Job, ServerLink, Strategy};
use std::{
    collections::HashMap,
    io,
    panic::{self, AssertUnwindSafe},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Python's `ForkingMixIn.max_children`.
///
/// # Examples
///
/// ```
/// use sockserve_mixins::{Forking, DEFAULT_MAX_CHILDREN};
///
/// assert_eq!(DEFAULT_MAX_CHILDREN, 40);
/// let default = format!("{:?}", Forking::new());
/// assert_eq!(default, format!("{:?}", Forking::new().max_children(DEFAULT_MAX_CHILDREN)));
/// assert_ne!(default, format!("{:?}", Forking::new().max_children(8)));
/// ```
pub const DEFAULT_MAX_CHILDREN: usize = 40;
/// How often the loop looks for exited children while it is at `max_children` (it never
/// takes `SIGCHLD`, which belongs to the whole process).
const FULL_POLL: Duration = Duration::from_millis(10);
/// After a graceful stop's deadline, how long children have to exit after `SIGTERM` before
/// they get `SIGKILL`; and how long a close then waits to reap the killed ones. Both fit in
/// what [`server::STOP_BOUND`] leaves after the handlers' 2 s.
const TERM_WAIT: Duration = Duration::from_millis(400);
const KILL_WAIT: Duration = Duration::from_millis(400);

/// Set in a forked request child (its own copy of memory): the panic hook then reports a panic
/// in one line, without a backtrace.
static IN_REQUEST_CHILD: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Wraps the process's panic hook, once: in a request child a panic is reported in one line
/// (message and location) without capturing a backtrace, whatever `RUST_BACKTRACE` says
/// (symbolising one costs a new process 150-190 ms of CPU, so a client that can make a handler
/// panic could otherwise keep the server busy); everywhere else the previous hook runs as
/// before.
fn install_child_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_REQUEST_CHILD.load(Ordering::Relaxed) {
                return previous(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic payload");
            let location = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let line = format!(
                "sockserve: request child {} panicked{location}: {message}\n",
                std::process::id()
            );
            // One write(2) on fd 2: no lock of std's stderr (another thread of the parent may
            // have held it at the fork), and the line is not interleaved with others'.
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        }));
    });
}

/// Each request runs in a forked child process: Python's `ForkingMixIn`.
///
/// Better than CPython's: at `max_children` the server stops accepting (connections wait in
/// the backlog) instead of blocking in `waitpid`; children are reaped by their pid only, so
/// children the program started for other reasons are never reaped; a child always ends in
/// `_exit`, even when its handler panics (status 1, as CPython's child after an exception).
///
/// Forking a multi-threaded process copies only the forking thread; the child runs just the
/// request and exits. Handlers should not rely on locks other threads might hold.
///
/// # Examples
///
/// ```no_run
/// use sockserve_mixins::Forking;
/// use server::{Server, Tcp, TcpServer};
///
/// let mut server: Server<Tcp, Forking> = TcpServer::builder(|_r| Ok(()))
///     .strategy(Forking::new().max_children(8))
///     .bind("127.0.0.1:0")?;
/// server.serve_forever()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Forking {
    max_children: usize,
    block_on_close: bool,
    /// Each child with the parent's copy of its request: held until the child is reaped, so
    /// the request counts as in flight and a graceful stop can shut its connection down.
    active_children: HashMap<Pid, Job>,
    /// The server's link, from `start`: where the number of children is published.
    link: Option<ServerLink>,
}

impl Default for Forking {
    fn default() -> Self {
        Forking {
            max_children: DEFAULT_MAX_CHILDREN,
            block_on_close: true,
            active_children: HashMap::new(),
            link: None,
        }
    }
}

impl Forking {
    /// Python's defaults: 40 children at most, `server_close` waits for them.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockserve_mixins::Forking::new().active_children(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The most children at once (at least 1); at the limit the server pauses accepting.
    ///
    /// # Examples
    ///
    /// See [`Forking`].
    pub fn max_children(mut self, n: usize) -> Self {
        self.max_children = n.max(1);
        self
    }

    /// Python's `block_on_close`: when true (the default), `server_close` waits for every
    /// child to exit.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = sockserve_mixins::Forking::new().block_on_close(false);
    /// # drop(f);
    /// ```
    pub fn block_on_close(mut self, on: bool) -> Self {
        self.block_on_close = on;
        self
    }

    /// Children started and not yet reaped (Python's `len(active_children)`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockserve_mixins::Forking::new().active_children(), 0);
    /// ```
    pub fn active_children(&self) -> usize {
        self.active_children.len()
    }

    /// Reaps exited children, by pid: never a child this server did not start.
    fn collect_children(&mut self, blocking: bool) {
        let flags = if blocking {
            None
        } else {
            Some(WaitPidFlag::WNOHANG)
        };
        // A reaped child's request is dropped here: the parent's copy closes, and the request
        // leaves the server's in-flight list.
        let before = self.active_children.len();
        self.active_children.retain(|&pid, _| {
            loop {
                match waitpid(pid, flags) {
                    Ok(WaitStatus::StillAlive) => return true,
                    Ok(_) => return false,
                    Err(nix::errno::Errno::EINTR) => continue,
                    // ECHILD: someone else reaped it (a SIGCHLD set to SIG_IGN, say).
                    Err(_) => return false,
                }
            }
        });
        if self.active_children.len() != before {
            self.publish();
        }
    }

    /// Publishes the number of children (the server's live figure).
    fn publish(&self) {
        if let Some(link) = &self.link {
            link.record_children(self.active_children.len());
        }
    }

    /// Sends `signal` to every child still running; returns how many it reached.
    fn signal_children(&self, signal: Signal) -> usize {
        self.active_children
            .keys()
            .filter(|&&pid| kill(pid, signal).is_ok())
            .count()
    }

    /// Reaps children until none is left or `until` says stop, polling (no `SIGCHLD`).
    fn reap_while(&mut self, mut go_on: impl FnMut() -> bool) {
        self.collect_children(false);
        while !self.active_children.is_empty() && go_on() {
            std::thread::sleep(FULL_POLL); // polling waitpid: no SIGCHLD to wait on
            self.collect_children(false);
        }
    }

    fn close(&mut self, wait: Option<Duration>) {
        if !self.block_on_close {
            self.collect_children(false);
            return;
        }
        // A wait too long for the clock is no limit at all.
        match wait.and_then(|limit| Instant::now().checked_add(limit)) {
            None => self.collect_children(true),
            Some(deadline) => {
                self.reap_while(|| Instant::now() < deadline);
                if !self.active_children.is_empty() {
                    log::warn!(
                        "{} request children still running; not waiting longer",
                        self.active_children.len()
                    );
                }
            }
        }
    }
}

impl Strategy for Forking {
    fn start(&mut self, link: &ServerLink) -> io::Result<()> {
        install_child_panic_hook();
        self.link = Some(link.clone());
        Ok(())
    }

    fn has_capacity(&mut self) -> bool {
        if self.active_children.len() >= self.max_children {
            self.collect_children(false);
        }
        self.active_children.len() < self.max_children
    }

    fn poll_hint(&self) -> Option<Duration> {
        (self.active_children.len() >= self.max_children).then_some(FULL_POLL)
    }

    fn process_request(&mut self, job: Job) {
        // SAFETY: the child only runs the request and ends in `_exit`, never returning into
        // the caller's stack or running the parent's destructors (a Unix server's Drop would
        // remove the parent's socket file).
        // (`around_fork` only calls fork, unless a server test hook holds a lock across it.)
        match job.around_fork(|| unsafe { fork() }) {
            Ok(ForkResult::Child) => {
                IN_REQUEST_CHILD.store(true, Ordering::Relaxed);
                // The child touches no lock of the parent's: `run_in_forked_child` leaves the
                // server's in-flight list (behind a lock) to the parent's copy of the job.
                let run = || job.run_in_forked_child();
                let status = match panic::catch_unwind(AssertUnwindSafe(run)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                // `_exit`: no destructors, no atexit handlers, no flushing of the parent's
                // buffers. nix 0.32 has no wrapper for it, so this is the libc it re-exports.
                // SAFETY: `_exit` has no preconditions; it ends the process at once.
                unsafe { nix::libc::_exit(status) }
            }
            Ok(ForkResult::Parent { child }) => {
                // The parent keeps its copy of the request, unshut, until the child is reaped
                // (CPython closes it at once): the request stays in the server's in-flight
                // list, so a graceful stop can shut the connection down at its deadline, which
                // ends a child blocked on an idle client.
                self.active_children.insert(child, job);
                self.publish();
            }
            Err(e) => {
                log::error!(
                    "cannot fork for the request from {}: {e}; closing it",
                    job.client_address()
                );
                drop(job);
            }
        }
    }

    fn service_actions(&mut self) {
        self.collect_children(false);
    }

    fn handle_timeout(&mut self) {
        self.collect_children(false);
    }

    fn server_close(&mut self) {
        self.close(None);
    }

    fn close_within(&mut self, timeout: Duration) {
        self.close(Some(timeout));
    }

    /// After a graceful stop: waits for the children until the deadline, then sends the ones
    /// still running `SIGTERM`, gives them 400 ms, sends `SIGKILL` to the rest and reaps them
    /// for up to 400 ms more (a hurried stop goes straight to `SIGKILL`). Only this server's
    /// children are signalled, by pid. This is the graceful-stop path, bounded by its deadline:
    /// it waits whatever `block_on_close` says (which is for `server_close`).
    fn close_by(&mut self, deadline: &CloseDeadline) -> CloseReport {
        self.reap_while(|| !deadline.expired());
        let mut report = CloseReport::default();
        if self.active_children.is_empty() {
            return report;
        }
        if !deadline.is_hurried() {
            let before = self.active_children.len();
            self.signal_children(Signal::SIGTERM);
            let until = Instant::now() + TERM_WAIT;
            self.reap_while(|| Instant::now() < until && !deadline.is_hurried());
            report.children_terminated = before - self.active_children.len();
        }
        if !self.active_children.is_empty() {
            let before = self.active_children.len();
            self.signal_children(Signal::SIGKILL);
            let until = Instant::now() + KILL_WAIT;
            self.reap_while(|| Instant::now() < until);
            report.children_killed = before - self.active_children.len();
            report.children_unreaped = self.active_children.len();
        }
        log::warn!(
            "request children still running at the stop's deadline: {report} (own children \
             only, by pid)"
        );
        report
    }
}
