//! `Forking`: Python's `ForkingMixIn`, reaping only its own children, as they exit (each has
//! an exit pipe the serving loop watches), and never blocking the accept loop at
//! `max_children`.

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{ForkResult, Pid, fork},
};
use server::{CloseDeadline, CloseReport, Job, LimitGauge, ServerLink, Strategy, Watch};
use std::{
    collections::HashMap,
    fmt, io,
    os::fd::{AsFd, OwnedFd},
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
/// The longest one wait of a bounded close lasts before it looks at its deadline again (a
/// hurried stop moves it to now); children without an exit pipe are reaped at this pace. The
/// waits themselves end as soon as a child exits.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// How long the loop waits for a child whose exit pipe reads end of file to be reapable: the
/// kernel closes an exiting process's descriptors a moment before it can be waited for. A
/// child not reapable by then closed its pipe itself (or it is not the pipe's last holder) and
/// is reaped on the loop's tick instead.
const SETTLE: Duration = Duration::from_millis(20);
const SETTLE_STEP: Duration = Duration::from_micros(100);
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
/// the backlog) instead of blocking in `waitpid`, and accepts again the moment a child exits
/// (each child holds the write end of an exit pipe whose read end the serving loop watches, so
/// its end wakes the loop; no polling, and no `SIGCHLD`, which belongs to the whole process);
/// children are reaped by their pid only, so children the program started for other reasons
/// are never reaped; a child always ends in `_exit`, even when its handler panics (status 1, as
/// CPython's child after an exception). The number of children is a live figure:
/// [`Running::children`](server::Running::children).
///
/// If an exit pipe cannot be made (the process is out of file descriptors), the request is
/// served anyway and that child is reaped on the loop's tick (`poll_interval`), logged once. So
/// is a child whose handler forks a process of its own that keeps the pipe open (the pipe is
/// close-on-exec, so a program it runs does not).
///
/// Forking a multi-threaded process copies only the forking thread; the child runs just the
/// request and exits. Handlers should not rely on locks other threads might hold.
///
/// # Examples
///
/// ```no_run
/// use sockserve_mixins::Forking;
/// use sockserve_mixins::{Server, Tcp, TcpServer};
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
    /// Each child with the parent's copy of its request and its exit pipe.
    active_children: HashMap<Pid, Child>,
    /// The server's link, from `start`: the loop's watch, and where the number of children
    /// is published.
    link: Option<ServerLink>,
    /// A child was left to the tick (no exit pipe, or one closed early): logged once.
    fallback_logged: bool,
    /// Warns when `max_children` is reached, says when that is over (from `start`).
    gauge: Option<LimitGauge>,
}

/// A child, as its parent keeps it until it is reaped.
#[derive(Debug)]
struct Child {
    /// The parent's copy of the request: held until the child is reaped, so the request
    /// counts as in flight and a graceful stop can shut its connection down.
    #[allow(dead_code, reason = "never read: held for what dropping it does")]
    job: Job,
    /// The serving loop's watch of `exit` (before it: unwatched before the pipe closes).
    watch: Option<Watch>,
    /// The read end of the child's exit pipe; the child holds the only write end, so end of
    /// file says it ended. `None`: no pipe, the child is reaped on the loop's tick.
    exit: Option<OwnedFd>,
}

impl Default for Forking {
    fn default() -> Self {
        Forking {
            max_children: DEFAULT_MAX_CHILDREN,
            block_on_close: true,
            active_children: HashMap::new(),
            link: None,
            fallback_logged: false,
            gauge: None,
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
    /// child to exit; when false it reaps those that have ended and leaves the others. A close
    /// with a deadline (after a graceful stop, `server_close_by`; or dropping an open server,
    /// 5 s) waits until the deadline whatever this says, then ends its children still running
    /// (`SIGTERM`, then `SIGKILL`).
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

    /// Reaps the children that have ended, by pid: never a child this server did not start.
    /// A child whose exit pipe reads end of file has ended, or is a moment from being reapable:
    /// it is waited for, briefly ([`SETTLE`]).
    fn collect_children(&mut self) {
        let before = self.active_children.len();
        // A reaped child's request is dropped here: the parent's copy closes, and the request
        // leaves the server's in-flight list (which wakes a loop paused for room).
        self.active_children
            .retain(|&pid, _| !reap(pid, Some(WaitPidFlag::WNOHANG)));
        for pid in self.ended_unreaped() {
            self.settle(pid);
        }
        if self.active_children.len() != before {
            self.publish();
        }
    }

    /// Waits for every child (`waitpid` without `WNOHANG`, one after the other).
    fn wait_for_all(&mut self) {
        self.active_children.retain(|&pid, _| !reap(pid, None));
        self.publish();
    }

    /// The children not reaped whose exit pipe reads end of file (one `poll(2)`, no wait).
    fn ended_unreaped(&self) -> Vec<Pid> {
        let (pids, mut fds): (Vec<Pid>, Vec<PollFd<'_>>) = self
            .active_children
            .iter()
            .filter_map(|(&pid, child)| Some((pid, exit_poll_fd(child.exit.as_ref()?))))
            .unzip();
        if fds.is_empty() || !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..)) {
            return Vec::new();
        }
        pids.into_iter()
            .zip(&fds)
            .filter(|(_, fd)| fd.any() != Some(false))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// A child whose exit pipe reads end of file: reaps it within [`SETTLE`], or leaves it to
    /// the tick without its pipe (which would otherwise wake every wait at once).
    fn settle(&mut self, pid: Pid) {
        let until = Instant::now() + SETTLE;
        loop {
            if reap(pid, Some(WaitPidFlag::WNOHANG)) {
                self.active_children.remove(&pid);
                return;
            }
            if Instant::now() >= until {
                break;
            }
            // Not polling for an event: the exit is under way in the kernel (its descriptors
            // are closed), and only its last steps are left.
            std::thread::sleep(SETTLE_STEP);
        }
        if let Some(child) = self.active_children.get_mut(&pid) {
            child.watch = None;
            child.exit = None;
        }
        self.fall_back(format_args!(
            "request child {pid} closed its exit pipe but runs on"
        ));
    }

    /// Logs, once, that a child is left to the loop's tick.
    fn fall_back(&mut self, why: fmt::Arguments<'_>) {
        if !self.fallback_logged {
            self.fallback_logged = true;
            log::warn!(
                "{why}: it is reaped on the serving loop's tick (poll_interval), not as it \
                 exits (logged once)"
            );
        }
    }

    /// Publishes the number of children (the server's live figure), and tells the gauge.
    fn publish(&mut self) {
        if let Some(link) = &self.link {
            link.record_children(self.active_children.len());
        }
        if let Some(gauge) = &mut self.gauge {
            gauge.observe(self.active_children.len());
        }
    }

    /// Waits in `poll(2)` on the children's exit pipes until one reads end of file, or
    /// `timeout` has passed (a signal may end it sooner: the callers look again anyway).
    fn wait_for_an_exit(&self, timeout: Duration) {
        let mut fds: Vec<PollFd<'_>> = self
            .active_children
            .values()
            .filter_map(|child| child.exit.as_ref().map(exit_poll_fd))
            .collect();
        // Rounded up to whole milliseconds, so that a wait is never a spin of zeros.
        let millis = timeout.as_micros().div_ceil(1000);
        let timeout = u16::try_from(millis).map_or(PollTimeout::MAX, PollTimeout::from);
        let _ = poll(&mut fds, timeout);
    }

    /// Reaps children until none is left or `left` says the time is up (`Some(ZERO)`; `None`:
    /// no limit yet, as for a deadline not set), waiting on their exit pipes in between, at
    /// most [`WAIT_STEP`] at a time.
    fn reap_until(&mut self, left: impl Fn() -> Option<Duration>) {
        loop {
            self.collect_children();
            if self.active_children.is_empty() {
                return;
            }
            let wait = match left() {
                Some(left) if left.is_zero() => return,
                Some(left) => left.min(WAIT_STEP),
                None => WAIT_STEP,
            };
            self.wait_for_an_exit(wait);
        }
    }

    /// Sends `signal` to every child still running; returns how many it reached.
    fn signal_children(&self, signal: Signal) -> usize {
        self.active_children
            .keys()
            .filter(|&&pid| kill(pid, signal).is_ok())
            .count()
    }

    /// A child's exit pipe, made before the fork: close-on-exec, so that a program the
    /// child's handler runs does not hold it open. `None` (logged once): the child will be
    /// reaped on the tick.
    fn exit_pipe(&mut self) -> Option<(OwnedFd, OwnedFd)> {
        match cloexec_pipe() {
            Ok(pipe) => Some(pipe),
            Err(e) => {
                self.fall_back(format_args!(
                    "cannot make a request child's exit pipe ({e}); serving the request anyway"
                ));
                None
            }
        }
    }

    /// The parent's side of a child's exit pipe: closes the write end (the child holds the
    /// only one now) and has the loop watch the read end.
    fn watch_exit(&mut self, pipe: Option<(OwnedFd, OwnedFd)>) -> (Option<Watch>, Option<OwnedFd>) {
        let Some((read, write)) = pipe else {
            return (None, None);
        };
        drop(write);
        let watched = self.link.as_ref().map(|link| link.watch(read.as_fd()));
        match watched {
            Some(Ok(watch)) => (Some(watch), Some(read)),
            Some(Err(e)) => {
                self.fall_back(format_args!(
                    "cannot watch a request child's exit pipe ({e})"
                ));
                // The close still waits on the pipe; only the loop is not woken by it.
                (None, Some(read))
            }
            None => (None, Some(read)),
        }
    }
}

/// `waitpid(pid)`: true if the child was reaped (or is not ours to reap any more).
fn reap(pid: Pid, flags: Option<WaitPidFlag>) -> bool {
    loop {
        match waitpid(pid, flags) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: someone else reaped it (a SIGCHLD set to SIG_IGN, say).
            Err(_) => return true,
        }
    }
}

fn exit_poll_fd(exit: &OwnedFd) -> PollFd<'_> {
    // End of file shows as POLLHUP (and POLLIN), whatever is asked for.
    PollFd::new(exit.as_fd(), PollFlags::POLLIN)
}

/// A pipe whose ends close on exec, made atomically where the platform can (`pipe2`): a
/// program another thread starts meanwhile then never inherits a child's exit pipe.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn cloexec_pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// A pipe whose ends close on exec (no `pipe2` here: set just after it is made).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn cloexec_pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let (read, write) = nix::unistd::pipe()?;
    for end in [&read, &write] {
        fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((read, write))
}

impl Strategy for Forking {
    fn start(&mut self, link: &ServerLink) -> io::Result<()> {
        install_child_panic_hook();
        self.link = Some(link.clone());
        if self
            .gauge
            .as_ref()
            .is_none_or(|g| g.limit() != self.max_children)
        {
            self.gauge = Some(LimitGauge::new(
                "max_children",
                self.max_children,
                "children",
                "accepting pauses until a child exits: new connections wait in the listen \
                 backlog; raise it with Forking::max_children",
            ));
        }
        Ok(())
    }

    fn has_capacity(&mut self) -> bool {
        if self.active_children.len() >= self.max_children {
            self.collect_children();
        }
        self.active_children.len() < self.max_children
    }

    fn process_request(&mut self, job: Job) {
        let pipe = self.exit_pipe();
        // SAFETY: the child only runs the request and ends in `_exit`, never returning into
        // the caller's stack or running the parent's destructors (a Unix server's Drop would
        // remove the parent's socket file).
        // (`around_fork` only calls fork, unless a server test hook holds a lock across it.)
        match job.around_fork(|| unsafe { fork() }) {
            Ok(ForkResult::Child) => {
                // The exit pipe's write end stays open until the process ends: `_exit` below
                // runs no destructor.
                IN_REQUEST_CHILD.store(true, Ordering::Relaxed);
                // The child touches no lock of the parent's: `run_in_forked_child` leaves the
                // server's in-flight list (behind a lock) to the parent's copy of the job.
                let run = || job.run_in_forked_child();
                let status = match panic::catch_unwind(AssertUnwindSafe(run)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                // `_exit`: no destructors, no atexit handlers, no flushing of the parent's
                // buffers (the socket layer's safe wrapper: nix 0.32 has none).
                server::socket::exit_now(status)
            }
            Ok(ForkResult::Parent { child }) => {
                // The parent keeps its copy of the request, unshut, until the child is reaped
                // (CPython closes it at once): the request stays in the server's in-flight
                // list, so a graceful stop can shut the connection down at its deadline, which
                // ends a child blocked on an idle client.
                let (watch, exit) = self.watch_exit(pipe);
                self.active_children
                    .insert(child, Child { job, watch, exit });
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
        self.collect_children();
        // A line held back by the gauge's rate limit may be due.
        if let Some(gauge) = &mut self.gauge {
            gauge.observe(self.active_children.len());
        }
    }

    /// Python's close (`None`): waits for every child when `block_on_close` (the default),
    /// else reaps the ones that have ended and leaves the others.
    ///
    /// A bounded close (after a graceful stop, or dropping an open server): waits for the
    /// children until the deadline whatever `block_on_close` says (which is for Python's
    /// close), then sends the ones still running `SIGTERM`, gives them 400 ms, sends `SIGKILL`
    /// to the rest and reaps them for up to 400 ms more (a hurried stop goes straight to
    /// `SIGKILL`). Only this server's children are signalled, by pid.
    fn server_close(&mut self, deadline: Option<&CloseDeadline>) -> CloseReport {
        match deadline {
            None if self.block_on_close => self.wait_for_all(),
            None => self.collect_children(),
            Some(deadline) => return self.end_by(deadline),
        }
        CloseReport::default()
    }
}

impl Forking {
    /// The bounded close of [`Strategy::server_close`]: see there.
    fn end_by(&mut self, deadline: &CloseDeadline) -> CloseReport {
        self.reap_until(|| deadline.remaining());
        let mut report = CloseReport::default();
        if self.active_children.is_empty() {
            return report;
        }
        if !deadline.is_hurried() {
            let before = self.active_children.len();
            self.signal_children(Signal::SIGTERM);
            let until = Instant::now() + TERM_WAIT;
            self.reap_until(|| {
                let left = until.saturating_duration_since(Instant::now());
                Some(if deadline.is_hurried() {
                    Duration::ZERO
                } else {
                    left
                })
            });
            report.children_terminated = before - self.active_children.len();
        }
        if !self.active_children.is_empty() {
            let before = self.active_children.len();
            self.signal_children(Signal::SIGKILL);
            let until = Instant::now() + KILL_WAIT;
            self.reap_until(|| Some(until.saturating_duration_since(Instant::now())));
            report.children_killed = before - self.active_children.len();
            report.children_unreaped = self.active_children.len();
        }
        log::warn!(
            "request children still running at the close's deadline: {report} (own children \
             only, by pid)"
        );
        report
    }
}
