//! [`Signals`]: signals delivered through a self-pipe that the reactor can watch (Python's
//! `signal.set_wakeup_fd` idea).
//!
//! The handler does only async-signal-safe work: it checks that it runs in the process that
//! installed it, sets a per-signal flag, and writes the signal number as one byte to a
//! non-blocking pipe whose write end it finds in a static atomic per signal, preserving `errno`.
//! Everything else happens in [`Signals::pending`], on the reactor's thread.

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// One slot per signal number; the numbers nix's `Signal` can name are all below this.
const SLOTS: usize = 65;

/// The write end of the owning `Signals`' pipe, per signal; -1 when no `Signals` owns the signal.
/// Claiming a slot (-1 to a descriptor) is what makes a `Signals` the only one for a signal.
static WRITE_FD: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// The process that installed the handler, per signal: a forked child inherits the handler and
/// the pipe, and must not report its signals to its parent.
static OWNER_PID: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// Set by the handler, cleared by `pending`: the signal arrived even if its byte did not fit into
/// a full pipe.
static ARRIVED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// Handler calls running right now, per signal. `Drop` waits for its signals' counts to reach
/// zero before closing the pipe, so a handler never writes to a descriptor number that has been
/// closed (and perhaps reused for something else).
static IN_HANDLER: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// Signals that must not be caught this way: SIGKILL and SIGSTOP cannot be caught; the fault
/// signals are raised by the faulting instruction, which a handler that returns would run again;
/// SIGCHLD belongs to whoever reaps children (the forking mixin's `waitpid`).
const REFUSED: &[Signal] = &[
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGCHLD,
];

/// A set of signals delivered through a pipe that a [`Reactor`](crate::Reactor) can watch:
/// Python's `signal.set_wakeup_fd` and its handlers, in one value.
///
/// [`Signals::new`] installs a handler for each signal; register the `Signals` (it is
/// [`AsRawFd`]: the read end of its pipe) for [`Interest::READABLE`](crate::Interest::READABLE),
/// and when it is reported readable, call [`pending`](Signals::pending), which drains the pipe
/// (so the edge-trigger contract is kept) and says which signals arrived. Dropping the `Signals`
/// restores the dispositions it replaced.
///
/// # Limitations
///
/// - **One `Signals` per signal per process** at a time: a second one for the same signal is
///   refused with `AlreadyExists` until the first is dropped. Disjoint sets are fine.
/// - **It replaces, it does not chain.** While a `Signals` lives, the previous disposition of
///   its signals (default action, ignore, another handler) does not run. Drop restores the
///   disposition seen by `new`, even if someone changed it in between.
/// - **Refused signals**: SIGKILL and SIGSTOP (cannot be caught), SIGSEGV, SIGBUS, SIGILL,
///   SIGFPE, SIGTRAP and SIGSYS (a fault handler that returns would fault again), and SIGCHLD,
///   which belongs to the code that reaps children. All give `InvalidInput`.
/// - **Coalescing**: a signal that arrives several times between two calls of `pending` is
///   reported once, as the kernel itself merges pending standard signals. Real-time signals
///   (which nix's [`Signal`] cannot name) are not supported.
/// - **A full pipe** (tens of thousands of unread signals) drops the extra bytes, never the
///   news: a per-signal flag records the arrival, and the bytes already in the pipe keep the
///   reactor waking.
/// - **Forked children** inherit the handler but not the right to the pipe: the handler compares
///   `getpid()` with the installing process, and in a child it restores the default action and
///   raises the signal again, so a child gets the default behaviour (SIGTERM ends it) and the
///   parent is not told about the child's signals. A child that wants otherwise sets its own
///   dispositions after `fork`.
///   The parent's `Signals` value is still in the child's memory (a copy): dropping it there
///   restores the dispositions in the child only, and is needed before the child makes a
///   `Signals` of its own for the same signals.
/// - **`exec`**: the pipe is close-on-exec and the kernel resets caught signals to their default
///   action, so a new program starts clean.
/// - **Threads**: a signal sent to the process is handled on any thread that does not block it;
///   that does not matter here, as the handler only writes to the pipe. A signal blocked in every
///   thread is never delivered.
/// - The handler is installed with `SA_RESTART`, so other blocking system calls of the program
///   are not interrupted by it (`select` is woken by the pipe, not by `EINTR`).
///
/// ```
/// use sockserve_reactor::{Interest, Reactor, Signal, Signals};
///
/// let signals = Signals::new(&[Signal::SIGUSR1])?;
/// let mut reactor = Reactor::new()?;
/// reactor.register(&signals, 0, Interest::READABLE)?;
///
/// nix::sys::signal::raise(Signal::SIGUSR1)?;
///
/// let ready = reactor.select(None)?;
/// assert!(ready[0].key == 0 && ready[0].readable);
/// assert_eq!(signals.pending()?, [Signal::SIGUSR1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Signals {
    read: OwnedFd,
    /// Kept open for the handler, which finds its number in `WRITE_FD`.
    write: OwnedFd,
    /// The signals, each with the disposition it had before, restored by `Drop`.
    previous: Vec<(Signal, SigAction)>,
}

impl Signals {
    /// Installs a handler for each of `signals` that reports them through this value's pipe.
    ///
    /// Duplicates in `signals` count once. Errors: a signal is already owned by another live
    /// `Signals` (`AlreadyExists`); a refused signal, see the limitations above
    /// (`InvalidInput`); the pipe or `sigaction` fails. On error nothing is left installed.
    ///
    /// ```
    /// use sockserve_reactor::{Signal, Signals};
    ///
    /// let signals = Signals::new(&[Signal::SIGWINCH, Signal::SIGURG])?;
    /// assert_eq!(signals.signals().count(), 2);
    /// // Only one `Signals` per signal at a time.
    /// let err = Signals::new(&[Signal::SIGURG]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    /// drop(signals);
    /// let again = Signals::new(&[Signal::SIGURG])?; // free again after the drop
    /// # drop(again);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(signals: &[Signal]) -> io::Result<Signals> {
        let mut wanted: Vec<Signal> = Vec::with_capacity(signals.len());
        for &signal in signals {
            if REFUSED.contains(&signal) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{signal} cannot be delivered through Signals"),
                ));
            }
            if slot(signal).is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signal number of {signal} is out of range"),
                ));
            }
            if !wanted.contains(&signal) {
                wanted.push(signal);
            }
        }

        let (read, write) = pipe()?;
        let mut this = Signals {
            read,
            write,
            previous: Vec::with_capacity(wanted.len()),
        };
        let fd = this.write.as_raw_fd();
        let pid = nix::unistd::getpid().as_raw();
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in wanted {
            // `slot` was checked above for every wanted signal.
            let Some(i) = slot(signal) else { continue };
            if WRITE_FD[i]
                .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                // `this` is dropped on return: it restores and releases what it already took.
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{signal} is already delivered by another Signals"),
                ));
            }
            OWNER_PID[i].store(pid, Ordering::SeqCst);
            ARRIVED[i].store(false, Ordering::SeqCst);
            // SAFETY: `on_signal` is async-signal-safe: it touches only atomics, errno and the
            // async-signal-safe calls getpid, write, sigaction and raise.
            match unsafe { sigaction(signal, &action) } {
                Ok(previous) => this.previous.push((signal, previous)),
                Err(e) => {
                    // Not installed, so release the slot here; `Drop` handles the others.
                    WRITE_FD[i].store(-1, Ordering::SeqCst);
                    return Err(e.into());
                }
            }
        }
        Ok(this)
    }

    /// The signals that arrived since the last call, each once, roughly in order of arrival;
    /// drains the pipe until it would block, as the edge-trigger contract asks.
    ///
    /// May return an empty list (a signal's byte can arrive just after its flag was taken by
    /// the previous call). Errors only if reading the pipe fails, which does not happen in
    /// practice.
    ///
    /// ```
    /// use sockserve_reactor::{Signal, Signals};
    ///
    /// let signals = Signals::new(&[Signal::SIGUSR2])?;
    /// assert!(signals.pending()?.is_empty());
    /// nix::sys::signal::raise(Signal::SIGUSR2)?;
    /// nix::sys::signal::raise(Signal::SIGUSR2)?;
    /// assert_eq!(signals.pending()?, [Signal::SIGUSR2]); // coalesced
    /// assert!(signals.pending()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending(&self) -> io::Result<Vec<Signal>> {
        let mut arrived = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for &byte in &buf[..n] {
                        self.take(usize::from(byte), &mut arrived);
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Arrivals whose byte did not fit into a full pipe.
        for (signal, _) in &self.previous {
            if let Some(i) = slot(*signal) {
                self.take(i, &mut arrived);
            }
        }
        Ok(arrived)
    }

    /// The signals this value delivers.
    ///
    /// ```
    /// use sockserve_reactor::{Signal, Signals};
    ///
    /// let signals = Signals::new(&[Signal::SIGPROF])?;
    /// assert_eq!(signals.signals().collect::<Vec<_>>(), [Signal::SIGPROF]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signals(&self) -> impl Iterator<Item = Signal> + '_ {
        self.previous.iter().map(|(signal, _)| *signal)
    }

    /// Moves signal `i` to `arrived` if its flag is set and it is one of ours.
    fn take(&self, i: usize, arrived: &mut Vec<Signal>) {
        let ours = self.previous.iter().any(|(s, _)| slot(*s) == Some(i));
        if ours && ARRIVED[i].swap(false, Ordering::SeqCst) {
            if let Ok(signal) = Signal::try_from(i as c_int) {
                arrived.push(signal);
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // First the dispositions, so that no new handler call starts...
        for (signal, previous) in &self.previous {
            // SAFETY: `previous` is the disposition the kernel gave us for this signal.
            if let Err(e) = unsafe { sigaction(*signal, previous) } {
                log::error!("cannot restore the disposition of {signal}: {e}");
            }
        }
        // ...then the slots, so that a handler call that starts now finds no pipe...
        for (signal, _) in &self.previous {
            if let Some(i) = slot(*signal) {
                WRITE_FD[i].store(-1, Ordering::SeqCst);
                ARRIVED[i].store(false, Ordering::SeqCst);
            }
        }
        // ...then wait for handler calls that may have loaded the old descriptor to finish
        // their write. They never block (the pipe is non-blocking), and no new call of our
        // handler starts now, so this is short.
        for (signal, _) in &self.previous {
            if let Some(i) = slot(*signal) {
                while IN_HANDLER[i].load(Ordering::SeqCst) != 0 {
                    std::thread::yield_now();
                }
            }
        }
        // The pipe's ends close when the fields drop.
    }
}

impl AsRawFd for Signals {
    /// The read end of the pipe, to register in a reactor.
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl AsFd for Signals {
    /// The read end of the pipe.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("signals", &self.signals().collect::<Vec<_>>())
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

/// The slot of `signal` in the static tables, if it has one.
fn slot(signal: Signal) -> Option<usize> {
    usize::try_from(signal as c_int).ok().filter(|&i| i < SLOTS)
}

/// The signal handler. Async-signal-safe: atomics, errno, getpid, write, sigaction, raise.
extern "C" fn on_signal(signum: c_int) {
    let Some(i) = usize::try_from(signum).ok().filter(|&i| i < SLOTS) else {
        return;
    };
    let saved_errno = Errno::last_raw();
    // Counted before `WRITE_FD` is read, so that `Drop`, which clears `WRITE_FD` first and then
    // waits for the count, either sees this call or makes it read -1.
    IN_HANDLER[i].fetch_add(1, Ordering::SeqCst);
    let fd = WRITE_FD[i].load(Ordering::SeqCst);
    if fd >= 0 && nix::unistd::getpid().as_raw() == OWNER_PID[i].load(Ordering::SeqCst) {
        ARRIVED[i].store(true, Ordering::SeqCst);
        // Signal numbers are below `SLOTS` (65), so one byte holds it.
        let byte = [i as u8];
        // SAFETY: `fd` stays open while this call runs: `Drop` clears `WRITE_FD` and then
        // waits for `IN_HANDLER` to reach zero before closing it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // A full pipe (EAGAIN) loses only the byte; `ARRIVED` keeps the news.
        let _ = nix::unistd::write(fd, &byte);
    } else if fd >= 0 {
        // A forked child: the pipe is the parent's.
        default_in_child(signum);
    }
    IN_HANDLER[i].fetch_sub(1, Ordering::SeqCst);
    Errno::set_raw(saved_errno);
}

/// In a forked child: give the signal its default action, delivered once this handler returns
/// (the signal is blocked while its handler runs, so `raise` leaves it pending until then).
fn default_in_child(signum: c_int) {
    if let Ok(signal) = Signal::try_from(signum) {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing the default disposition has no handler to be unsafe.
        let _ = unsafe { sigaction(signal, &default) };
        let _ = nix::sys::signal::raise(signal);
    }
}

/// A pipe whose ends are non-blocking (the handler must never block, `pending` reads until it
/// would block) and close-on-exec.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

/// A pipe whose ends are non-blocking and close-on-exec. Without `pipe2` the flags are set after
/// creation, so a concurrent `fork` + `exec` elsewhere could inherit the descriptors.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
)))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    let (read, write) = nix::unistd::pipe()?;
    for fd in [&read, &write] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_is_send_sync_debug() {
        fn check<T: Send + Sync + fmt::Debug>() {}
        check::<Signals>();
    }

    #[test]
    fn slots_hold_every_signal() {
        for signal in Signal::iterator() {
            assert!(slot(signal).is_some(), "{signal} has no slot");
        }
    }

    #[test]
    fn refused_signals_fail_before_anything_is_installed() {
        // No disposition changes here (this runs in the shared unit-test process): refused
        // signals are rejected before any pipe or handler exists.
        let err = Signals::new(&[Signal::SIGCHLD]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("SIGCHLD"), "{err}");
    }
}
