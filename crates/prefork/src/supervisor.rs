//! The supervisor's loop: one thread, one reactor watching the signal pipe and each child's
//! readiness pipe, `waitpid` by pid for its own children only.
//!
//! Each child (a worker, or the new supervisor of an upgrade) holds the write end of a pipe
//! whose read end the loop watches: a byte says "ready", end of file says "gone" (then the
//! child is reaped within a few milliseconds). The loop keeps `target` workers of the current
//! generation; `SIGHUP` starts a new generation, and the old one is told to stop once the new
//! one is all ready, so the listener always has ready workers taking from its queue.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use reactor::{Interest, Reactor, Signals};
use socket::Socket;

use crate::notify::{self, Notifier};
use crate::report::Report;
use crate::say::{say_error, say_info, say_warn};
use crate::spawn::{self, ExecPlan, Forked};
use crate::worker::{READY, Worker};
use crate::{OnReady, Prefork, ROLE, Start};

/// The reactor key of the signal pipe; children's pipes get keys above it.
const SIGNALS_KEY: usize = 0;
/// The signals the supervisor takes.
const SIGNALS: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR2,
];
/// The longest wait of the loop with nothing due: a child that closed its pipe long before it
/// ended (a program that dropped its [`Worker`] early) is reaped at this pace.
const TICK: Duration = Duration::from_secs(1);
/// The wait while a child whose pipe reached end of file is not reaped yet: the kernel closes
/// an exiting process's descriptors a moment before it can be waited for. For [`SETTLE`] after
/// the end of file, then at the [`TICK`].
const SETTLE_TICK: Duration = Duration::from_millis(5);
const SETTLE: Duration = Duration::from_millis(100);
/// A worker that dies sooner than this after its start, or before it was ready, counts
/// towards a crash loop.
const QUICK_DEATH: Duration = Duration::from_secs(1);
/// The first back-off of a crash loop; it doubles with each quick death, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Quick deaths in a row before any worker was ever ready, after which the supervisor gives
/// up: the program cannot serve (a handler that cannot build its server, a bad argument).
const GIVE_UP_AFTER: u32 = 5;
/// After a quick stop's signals, how long workers have before `SIGKILL`.
const QUICK_BOUND: Duration = Duration::from_secs(2);
/// After `SIGKILL`, how long the supervisor waits to reap before it leaves (the kernel ends a
/// killed process at once; this only bounds the wait).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How the supervisor's run ended, in this process.
pub(crate) enum Step {
    /// The supervisor is done.
    Done(Report),
    /// This is a forked worker: run the worker function, then `_exit`.
    Child(Worker),
}

/// What a child of the supervisor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker {
        number: usize,
        generation: u64,
    },
    /// The new supervisor of an upgrade.
    Upgrade,
}

/// A child, as the supervisor tracks it until it is reaped.
#[derive(Debug)]
struct Child {
    role: Role,
    key: usize,
    /// The read end of its readiness pipe; `None` after end of file.
    pipe: Option<OwnedFd>,
    /// When its pipe reached end of file.
    gone_at: Option<Instant>,
    ready: bool,
    started: Instant,
    /// Told to stop (it is not replaced when it ends).
    told: bool,
}

/// How a stop goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopKind {
    /// `SIGTERM`: each worker within its grace.
    Graceful,
    /// `SIGINT`, `SIGQUIT`: at once.
    Quick,
    /// An upgrade's new supervisor is ready: the old workers stop gracefully.
    Handover(Pid),
}

#[derive(Debug)]
struct Stopping {
    kind: StopKind,
    began: Instant,
    /// When the workers still running get `SIGKILL`.
    kill_at: Instant,
    killed: bool,
}

pub(crate) struct Supervisor {
    workers: usize,
    start: Start,
    grace: Duration,
    pid_file: Option<PathBuf>,
    on_ready: Option<OnReady>,
    listener: Socket,
    address: String,
    reactor: Reactor,
    signals: Signals,
    notifier: Notifier,
    /// The program and its arguments, for `exec` (resolved at the start: after an upgrade of
    /// the binary on disk, this path names the new one).
    program: CString,
    args: Vec<CString>,
    children: HashMap<Pid, Child>,
    next_key: usize,
    next_number: usize,
    generation: u64,
    /// Quick deaths in a row, and when the next worker may start.
    crashes: u32,
    next_start: Option<Instant>,
    /// Some worker of this supervisor was ready once.
    ever_ready: bool,
    announced: bool,
    /// Set in an upgraded supervisor: the old supervisor's readiness pipe.
    parent: Option<OwnedFd>,
    stopping: Option<Stopping>,
    /// The new supervisor this one hands over to, once its workers are ready: never signalled,
    /// never waited for, whatever stop follows.
    handover: Option<Pid>,
    signal: Option<Signal>,
    report: Report,
    /// The status of the last worker that died at start, for the give-up error.
    last_death: String,
    /// Why the supervisor gave up (workers failing at start), the run's error.
    gave_up: Option<String>,
}

impl Supervisor {
    pub(crate) fn new(
        config: Prefork,
        listener: Socket,
        parent: Option<OwnedFd>,
    ) -> io::Result<Supervisor> {
        let address = listener
            .getsockname()
            .map_or_else(|e| format!("(unknown address: {e})"), |a| a.to_string());
        let program = std::env::current_exe()?;
        let program = cstring(program.into_os_string())?;
        let args = std::env::args_os()
            .map(cstring)
            .collect::<io::Result<Vec<_>>>()?;
        let signals = Signals::new(&SIGNALS)?;
        let reactor = Reactor::new()?;
        reactor.register(&signals, SIGNALS_KEY, Interest::READABLE)?;
        Ok(Supervisor {
            workers: config.workers,
            start: config.start,
            grace: config.grace,
            pid_file: config.pid_file,
            on_ready: config.on_ready,
            listener,
            address,
            reactor,
            signals,
            notifier: Notifier::from_env()?,
            program,
            args,
            children: HashMap::new(),
            next_key: SIGNALS_KEY + 1,
            next_number: 1,
            generation: 0,
            crashes: 0,
            next_start: None,
            ever_ready: false,
            announced: false,
            parent,
            stopping: None,
            handover: None,
            signal: None,
            report: Report::default(),
            last_death: String::new(),
            gave_up: None,
        })
    }

    /// Supervises until stopped, or, in a forked worker, returns its [`Worker`].
    pub(crate) fn run(mut self) -> io::Result<Step> {
        say_info!(
            "supervising {} worker(s) on {} ({})",
            self.workers,
            self.address,
            match self.start {
                Start::Fork => "fork",
                Start::Exec => "exec",
            }
        );
        loop {
            if let Some(worker) = self.maintain()? {
                return Ok(Step::Child(worker));
            }
            if self.finished() {
                break;
            }
            let wait = self.next_wait();
            let keys: Vec<usize> = self
                .reactor
                .select(Some(wait))?
                .iter()
                .map(|r| r.key)
                .collect();
            for key in keys {
                if key == SIGNALS_KEY {
                    for signal in self.signals.pending()? {
                        self.on_signal(signal);
                    }
                } else {
                    self.on_pipe(key);
                }
            }
            self.reap();
        }
        let gave_up = self.gave_up.take();
        let report = self.finish();
        match gave_up {
            Some(why) => Err(io::Error::other(why)),
            None => Ok(Step::Done(report)),
        }
    }

    /// What the current state asks for: workers to start or to retire, the announcement, the
    /// stop's deadline.
    fn maintain(&mut self) -> io::Result<Option<Worker>> {
        if let Some(stopping) = &mut self.stopping {
            if !stopping.killed && Instant::now() >= stopping.kill_at {
                stopping.killed = true;
                let handover = self.handover;
                let pids: Vec<Pid> = self
                    .children
                    .keys()
                    .copied()
                    .filter(|&pid| Some(pid) != handover)
                    .collect();
                let killed = pids
                    .into_iter()
                    .filter(|&pid| kill(pid, Signal::SIGKILL).is_ok())
                    .count();
                if killed > 0 {
                    say_warn!(
                        "{killed} child(ren) still running at the stop's deadline: killed \
                         (raise the grace with Prefork::grace)"
                    );
                }
                self.report.killed += killed;
                stopping.kill_at = Instant::now() + KILL_WAIT;
            }
            return Ok(None);
        }
        let current = self.current_workers();
        if current < self.workers && self.next_start.is_none_or(|t| Instant::now() >= t) {
            self.next_start = None;
            for _ in current..self.workers {
                match self.start_worker() {
                    Ok(Some(worker)) => return Ok(Some(worker)),
                    Ok(None) => {}
                    // Forking with threads never becomes sound: the program must change.
                    Err(e) if e.kind() == io::ErrorKind::Unsupported => return Err(e),
                    Err(e) => {
                        // Out of processes or descriptors, say: the workers there are serve
                        // on; the start is tried again after a back-off.
                        let backoff = self.crashed(format!("a worker could not start: {e}"));
                        say_error!(
                            "cannot start a worker: {e}; trying again in {:.1} s",
                            backoff.as_secs_f64()
                        );
                        break;
                    }
                }
            }
        }
        let all_ready = self
            .children
            .values()
            .filter(|c| self.is_current(c))
            .all(|c| c.ready);
        if self.current_workers() >= self.workers && all_ready {
            // A reload's new generation is ready: the old one stops taking connections.
            let generation = self.generation;
            let told = self.tell_stop(
                |c| matches!(c.role, Role::Worker { generation: g, .. } if g < generation),
                &[Signal::SIGTERM],
            );
            if told > 0 {
                say_info!("reload: the new workers are ready; {told} old one(s) stop gracefully");
            }
            if !self.announced {
                self.announce();
            }
        }
        if self.current_workers() > self.workers {
            // SIGTTOU: the oldest current worker goes.
            let oldest = self
                .children
                .iter()
                .filter(|(_, c)| self.is_current(c))
                .min_by_key(|(_, c)| c.started)
                .map(|(&pid, _)| pid);
            if let Some(key) = oldest
                .and_then(|pid| self.children.get(&pid))
                .map(|c| c.key)
            {
                self.tell_stop(|c| c.key == key, &[Signal::SIGTERM]);
            }
        }
        let upgraded = self
            .children
            .iter()
            .find(|(_, c)| c.role == Role::Upgrade && c.ready)
            .map(|(&pid, _)| pid);
        if let Some(pid) = upgraded {
            say_info!("upgrade: supervisor {pid} is ready; stopping the old workers gracefully");
            self.begin_stop(StopKind::Handover(pid));
        }
        Ok(None)
    }

    /// Whether `child` is a worker of the current generation not told to stop.
    fn is_current(&self, child: &Child) -> bool {
        !child.told
            && matches!(child.role, Role::Worker { generation, .. } if generation == self.generation)
    }

    fn current_workers(&self) -> usize {
        self.children
            .values()
            .filter(|c| self.is_current(c))
            .count()
    }

    /// Once every first worker is ready: the pid file, `sd_notify`, the old supervisor of an
    /// upgrade, and the program's callback.
    fn announce(&mut self) {
        self.announced = true;
        let pid = std::process::id();
        if let Some(path) = &self.pid_file {
            if let Err(e) = notify::write_pid_file(path, pid) {
                say_error!("cannot write the pid file {}: {e}", path.display());
            }
        }
        if let Err(e) = self.notifier.send(&format!("READY=1\nMAINPID={pid}")) {
            say_error!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
        }
        if let Some(parent) = self.parent.take() {
            if let Err(e) = nix::unistd::write(&parent, &[READY]) {
                say_error!("cannot tell the old supervisor this one is ready: {e}");
            }
        }
        say_info!("{} worker(s) ready on {}", self.workers, self.address);
        if let Some(OnReady(announce)) = &mut self.on_ready {
            announce(&self.address);
        }
    }

    /// Starts one worker of the current generation. `Some` in the forked child.
    fn start_worker(&mut self) -> io::Result<Option<Worker>> {
        let number = self.next_number;
        self.next_number += 1;
        let role = Role::Worker {
            number,
            generation: self.generation,
        };
        let plan = match self.start {
            Start::Exec => Some(self.plan(
                false,
                &[
                    (ROLE, format!("worker:{number}")),
                    ("LISTEN_FDS", "1".to_owned()),
                ],
            )?),
            Start::Fork => None,
        };
        let (read, write) = spawn::pipe()?;
        let supervisor = nix::unistd::getpid();
        match spawn::fork_single_threaded()? {
            Forked::Child => {
                if spawn::become_worker(true, supervisor).is_err() {
                    socket::exit_now(1);
                }
                if let Some(plan) = &plan {
                    spawn::exec_child(plan, self.listener.as_fd(), write.as_fd());
                }
                drop(read);
                let listener = match self.listener.dup().and_then(|mut s| s.detach()) {
                    Ok(listener) => listener,
                    Err(e) => {
                        say_error!("worker {number}: cannot take the listener: {e}");
                        socket::exit_now(1)
                    }
                };
                Ok(Some(Worker::new(number, listener, write)))
            }
            Forked::Parent(pid) => {
                drop(write);
                self.adopt(pid, role, read)?;
                self.report.started += 1;
                log::debug!("worker {number} started: pid {pid}");
                Ok(None)
            }
        }
    }

    /// `SIGUSR2`: re-executes the program as a new supervisor with the listener.
    fn start_upgrade(&mut self) {
        if let Some(pid) = self.upgrade_pid() {
            say_warn!("SIGUSR2: an upgrade is under way (supervisor {pid}); ignored");
            return;
        }
        let started = (|| -> io::Result<Pid> {
            let plan = self.plan(
                true,
                &[
                    (ROLE, "supervisor".to_owned()),
                    ("LISTEN_FDS", "1".to_owned()),
                ],
            )?;
            let (read, write) = spawn::pipe()?;
            match spawn::fork_single_threaded()? {
                // The new supervisor stays in this process group, so a terminal's signals
                // reach it once it serves.
                Forked::Child => spawn::exec_child(&plan, self.listener.as_fd(), write.as_fd()),
                Forked::Parent(pid) => {
                    drop(write);
                    self.adopt(pid, Role::Upgrade, read)?;
                    Ok(pid)
                }
            }
        })();
        match started {
            Ok(pid) => say_info!(
                "SIGUSR2: upgrade: started {} as supervisor {pid}; the old workers stop once \
                 its workers are ready",
                self.program.to_string_lossy()
            ),
            Err(e) => say_error!("SIGUSR2: cannot start the upgrade: {e}; serving on"),
        }
    }

    fn upgrade_pid(&self) -> Option<Pid> {
        self.children
            .iter()
            .find(|(_, c)| c.role == Role::Upgrade)
            .map(|(&pid, _)| pid)
    }

    /// The plan to re-execute the program with `extra` in its environment (built here, before
    /// the fork).
    /// `keep_notify`: the new supervisor of an upgrade talks to the service manager too; a
    /// worker does not.
    fn plan(&self, keep_notify: bool, extra: &[(&str, String)]) -> io::Result<ExecPlan> {
        let env = crate::child_env(keep_notify, extra)
            .into_iter()
            .map(cstring)
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ExecPlan::new(self.program.clone(), self.args.clone(), env))
    }

    /// Tracks a new child and watches its readiness pipe.
    fn adopt(&mut self, pid: Pid, role: Role, pipe: OwnedFd) -> io::Result<()> {
        let key = self.next_key;
        self.next_key += 1;
        let watched = self.reactor.register(&pipe, key, Interest::READABLE);
        self.children.insert(
            pid,
            Child {
                role,
                key,
                pipe: Some(pipe),
                ready: false,
                started: Instant::now(),
                told: false,
                gone_at: None,
            },
        );
        if let Err(e) = watched {
            // It is still reaped on the tick; it is never seen ready, so tell it to go.
            say_error!("cannot watch the readiness pipe of child {pid}: {e}; stopping it");
            let _ = kill(pid, Signal::SIGTERM);
        }
        Ok(())
    }

    /// A readiness pipe is readable: a byte (ready) or end of file (gone).
    fn on_pipe(&mut self, key: usize) {
        let Some((&pid, child)) = self.children.iter_mut().find(|(_, c)| c.key == key) else {
            return;
        };
        let Some(pipe) = &child.pipe else { return };
        let mut buf = [0u8; 16];
        let (mut ready, mut gone) = (false, false);
        loop {
            match nix::unistd::read(pipe, &mut buf) {
                Ok(0) => {
                    let _ = self.reactor.unregister(pipe);
                    gone = true;
                    break;
                }
                Ok(n) => ready |= buf[..n].contains(&READY),
                Err(Errno::EINTR) => {}
                Err(_) => break, // EAGAIN: drained
            }
        }
        if gone {
            child.pipe = None;
            child.gone_at = Some(Instant::now());
        }
        if ready && !child.ready {
            child.ready = true;
            self.ever_ready = true;
            log::debug!("child {pid} ({:?}) is ready", child.role);
        }
    }

    /// Reaps the children that have ended, by pid: never a process this supervisor did not
    /// start.
    fn reap(&mut self) {
        let pids: Vec<Pid> = self.children.keys().copied().collect();
        for pid in pids {
            let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => continue,
                Ok(status) => status,
                Err(Errno::EINTR) => continue,
                // ECHILD: not ours to reap any more (SIGCHLD ignored, say): it is gone.
                Err(_) => WaitStatus::StillAlive,
            };
            if let Some(child) = self.children.remove(&pid) {
                if let Some(pipe) = &child.pipe {
                    let _ = self.reactor.unregister(pipe);
                }
                self.on_exit(pid, &child, status);
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, child: &Child, status: WaitStatus) {
        let how = describe(status);
        match child.role {
            Role::Upgrade if self.stopping.is_none() => {
                say_error!(
                    "upgrade failed: supervisor {pid} {how} before its workers were ready; \
                     serving on with the old workers"
                );
            }
            Role::Upgrade => {}
            Role::Worker { number, .. } if child.told || self.stopping.is_some() => {
                log::debug!("worker {number} (pid {pid}) {how}");
            }
            Role::Worker { number, .. } => {
                self.report.replaced += 1;
                let lived = child.started.elapsed();
                if !child.ready || lived < QUICK_DEATH {
                    let backoff = self.crashed(format!("worker {number} (pid {pid}) {how}"));
                    say_warn!(
                        "worker {number} (pid {pid}) {how} {:.1} s after its start{}: \
                         starting another in {:.1} s ({} quick death(s) in a row; the wait \
                         doubles up to {} s)",
                        lived.as_secs_f64(),
                        if child.ready { "" } else { ", never ready" },
                        backoff.as_secs_f64(),
                        self.crashes,
                        MAX_BACKOFF.as_secs()
                    );
                } else {
                    self.crashes = 0;
                    say_warn!("worker {number} (pid {pid}) {how}; starting another");
                }
            }
        }
    }

    /// Counts a quick death (or a failed start), `what`: the next start waits a back-off that
    /// doubles with each one in a row, which it returns.
    fn crashed(&mut self, what: String) -> Duration {
        self.crashes += 1;
        self.last_death = what;
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.crashes - 1).min(16))
            .min(MAX_BACKOFF);
        self.next_start = Some(Instant::now() + backoff);
        backoff
    }

    fn on_signal(&mut self, signal: Signal) {
        let quick = self
            .stopping
            .as_ref()
            .is_some_and(|s| s.kind == StopKind::Quick);
        match signal {
            Signal::SIGTERM if self.stopping.is_none() => {
                self.signal = Some(signal);
                say_info!("{signal}: stopping gracefully (grace {:?})", self.grace);
                self.begin_stop(StopKind::Graceful);
            }
            // A quick stop also hurries a graceful one (or a handover) under way.
            Signal::SIGINT | Signal::SIGQUIT if !quick => {
                self.signal.get_or_insert(signal);
                say_info!("{signal}: stopping now");
                self.begin_stop(StopKind::Quick);
            }
            _ if self.stopping.is_some() => {
                say_info!("{signal} during the stop: ignored");
            }
            Signal::SIGHUP => {
                self.generation += 1;
                say_info!(
                    "{signal}: replacing the {} worker(s); the old ones stop once the new are ready",
                    self.workers
                );
            }
            Signal::SIGTTIN => {
                self.workers += 1;
                say_info!("{signal}: {} worker(s)", self.workers);
            }
            Signal::SIGTTOU => {
                if self.workers > 1 {
                    self.workers -= 1;
                    say_info!("{signal}: {} worker(s)", self.workers);
                } else {
                    say_info!("{signal}: already at one worker; ignored");
                }
            }
            Signal::SIGUSR2 => self.start_upgrade(),
            _ => {}
        }
    }

    /// Starts a stop (or hurries one under way): signals every worker, sets the deadline.
    fn begin_stop(&mut self, kind: StopKind) {
        let now = Instant::now();
        let (signals, bound): (&[Signal], Duration) = match kind {
            StopKind::Quick => (&[Signal::SIGTERM, Signal::SIGINT], QUICK_BOUND),
            StopKind::Graceful | StopKind::Handover(_) => (
                &[Signal::SIGTERM],
                self.grace + server::STOP_BOUND + Duration::from_secs(1),
            ),
        };
        if let StopKind::Handover(pid) = kind {
            self.handover = Some(pid);
        }
        let handover = self.handover;
        // The service goes on in the new supervisor after a handover: nothing to tell.
        if handover.is_none() {
            if let Err(e) = self.notifier.send("STOPPING=1") {
                say_warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
            }
        }
        // A quick stop tells again those told gently; the new supervisor of a handover is left
        // alone, and one whose upgrade had not finished is stopped like a worker.
        for (&pid, child) in &mut self.children {
            if Some(pid) == handover {
                continue;
            }
            child.told = true;
            for &signal in signals {
                let _ = kill(pid, signal);
            }
        }
        let began = self.stopping.as_ref().map_or(now, |s| s.began);
        self.stopping = Some(Stopping {
            kind,
            began,
            kill_at: now + bound,
            killed: false,
        });
    }

    /// Sends `signals` to the children `which` selects, once, and marks them told; how many.
    fn tell_stop(&mut self, which: impl Fn(&Child) -> bool, signals: &[Signal]) -> usize {
        let mut told = 0;
        for (&pid, child) in &mut self.children {
            if !child.told && which(child) {
                child.told = true;
                told += 1;
                if let Role::Worker { number, .. } = child.role {
                    log::debug!("worker {number} (pid {pid}): stop");
                }
                for &signal in signals {
                    let _ = kill(pid, signal);
                }
            }
        }
        told
    }

    /// Whether the run is over: stopping, and no child left to wait for (the new supervisor
    /// of a handover is not waited for; killed children get [`KILL_WAIT`]); or the workers
    /// keep failing at start.
    fn finished(&mut self) -> bool {
        if self.stopping.is_none() && !self.ever_ready && self.crashes >= GIVE_UP_AFTER {
            let why = format!(
                "giving up: {} workers in a row died at start, none was ever ready (the last: \
                 {})",
                self.crashes, self.last_death
            );
            say_error!("{why}");
            self.gave_up = Some(why);
            self.begin_stop(StopKind::Quick);
            return false;
        }
        let Some(stopping) = &self.stopping else {
            return false;
        };
        let handover = self.handover;
        let waiting = self
            .children
            .keys()
            .filter(|&&pid| Some(pid) != handover)
            .count();
        waiting == 0 || (stopping.killed && Instant::now() >= stopping.kill_at)
    }

    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        let mut wait = TICK;
        if self
            .children
            .values()
            .any(|c| c.gone_at.is_some_and(|t| t.elapsed() < SETTLE))
        {
            wait = SETTLE_TICK;
        }
        let due = [self.next_start, self.stopping.as_ref().map(|s| s.kill_at)];
        for at in due.into_iter().flatten() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        // Never a zero wait that spins: what is due is done by `maintain` on the next round.
        wait.max(Duration::from_millis(1))
    }

    fn finish(mut self) -> Report {
        let stopping = self.stopping.take();
        let handover = self.handover;
        self.report.unreaped = self
            .children
            .keys()
            .filter(|&&pid| Some(pid) != handover)
            .count();
        self.report.signal = self.signal;
        self.report.handed_over_to = handover.and_then(|pid| u32::try_from(pid.as_raw()).ok());
        self.report.took = stopping.map_or(Duration::ZERO, |s| s.began.elapsed());
        if handover.is_none() {
            if let Some(path) = &self.pid_file {
                if let Err(e) = notify::remove_pid_file(path, std::process::id()) {
                    say_warn!("cannot remove the pid file {}: {e}", path.display());
                }
            }
        }
        self.report
    }
}

/// A child's end, in words: "exited with status 1", "was killed by SIGKILL".
fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, spawn::EXEC_FAILED) => {
            format!("exited with status {} (exec failed?)", spawn::EXEC_FAILED)
        }
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
        WaitStatus::StillAlive => "is gone (reaped elsewhere)".to_owned(),
        other => format!("ended ({other:?})"),
    }
}

/// `s` as a C string: `InvalidInput` if it holds a NUL.
fn cstring(s: OsString) -> io::Result<CString> {
    CString::new(s.into_vec()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a NUL byte in an argument or variable: {e}"),
        )
    })
}
