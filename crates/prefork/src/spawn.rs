//! The process calls of the supervisor, each behind a safe function: `fork` (only while the
//! process has one thread), what a new worker does between `fork` and its work (its own
//! process group, a parent-death signal, the inherited descriptors at fds 3 and 4), `execve`
//! with an environment built before the fork, and the inherited readiness descriptor that a
//! re-executed process takes at its start.
//!
//! Between `fork` and `execve` the child does only async-signal-safe work on memory prepared
//! before the fork: `setpgid`, `prctl`, `getppid`, `fcntl`, `dup2`, writing digits into a
//! buffer, and `execve` (nix builds its array of pointers there, the one allocation; the
//! supervisor is single-threaded when it forks, so no other thread can hold the allocator's
//! lock).

use std::ffi::{CStr, CString};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

/// Where a re-executed process finds the listener: systemd's first passed fd.
pub(crate) const LISTEN_FD: RawFd = socket::activation::SD_LISTEN_FDS_START;
/// Where a re-executed process finds the write end of its readiness pipe.
pub(crate) const READY_FD: RawFd = LISTEN_FD + 1;
/// Descriptors below this are kept clear of the two above while they are moved into place.
const HIGH_FD: RawFd = 10;
/// A child's status when `execve` failed (as a shell's "command not found").
pub(crate) const EXEC_FAILED: i32 = 127;

/// Whether this process has exactly one thread, from `/proc/self/status` (false if unknown).
pub(crate) fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    })
}

/// Which side of a fork this is.
#[derive(Debug)]
pub(crate) enum Forked {
    /// The supervisor, with the new process's pid.
    Parent(Pid),
    /// The new process.
    Child,
}

/// `fork`, refused (`Unsupported`) unless this process has one thread:
/// a fork copies only the calling thread, and a lock another thread held (the allocator's,
/// a logger's) would stay locked forever in the child.
pub(crate) fn fork_single_threaded() -> io::Result<Forked> {
    if !single_threaded() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the prefork supervisor forks only while its process has one thread; start no \
             thread before Prefork::run (the fork-safety rule: a lock held by another thread \
             would stay locked in the child)",
        ));
    }
    // SAFETY: the process has one thread (checked just above; only this thread could start
    // another), so the child inherits no lock held by a thread that does not exist there.
    // The child side of every caller ends in `execve` or in `exit_now`, never returning into
    // code that assumes it is the supervisor.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// In a new worker, first thing: its own process group (so that a terminal's Ctrl-C, sent to
/// the foreground group, reaches the supervisor alone, which stops the workers itself) when
/// `own_group`, and `SIGTERM` when the supervisor dies (Linux's parent-death signal; a
/// supervisor that already died before it was set ends the child at once).
/// Async-signal-safe. Fails only if `prctl` does.
pub(crate) fn become_worker(own_group: bool, supervisor: Pid) -> nix::Result<()> {
    if own_group {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    if nix::unistd::getppid() != supervisor {
        // The supervisor died between the fork and the line above: no signal will come.
        socket::exit_now(1);
    }
    Ok(())
}

/// What `execve` needs, built before the fork: the program, its arguments, and its
/// environment with a `LISTEN_PID=` entry that the child fills with its own pid.
#[derive(Debug)]
pub(crate) struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// The index in `env` of the `LISTEN_PID` entry.
    pid_slot: usize,
}

impl ExecPlan {
    /// The plan for `path` with `argv`, the environment `env` (`KEY=VALUE` entries, without
    /// `LISTEN_PID`, which is added here).
    pub(crate) fn new(path: CString, argv: Vec<CString>, mut env: Vec<CString>) -> ExecPlan {
        let pid_slot = env.len();
        // A placeholder: the child writes its own entry (its pid is known only there).
        env.push(c"LISTEN_PID=0".to_owned());
        ExecPlan {
            path,
            argv,
            env,
            pid_slot,
        }
    }
}

/// In the child of a fork, after [`become_worker`] (or not, for a new supervisor): puts
/// `listener` at fd 3 and `ready` at fd 4 (inheritable, the only ones: everything else of the
/// supervisor's is close-on-exec), writes `LISTEN_PID`, and runs `plan`. Never returns: if
/// `execve` fails the child ends with status [`EXEC_FAILED`].
pub(crate) fn exec_child(plan: &ExecPlan, listener: BorrowedFd<'_>, ready: BorrowedFd<'_>) -> ! {
    let mut pid_entry = [0u8; 32];
    // Allocated before anything else, so that the entry's buffer outlives the references.
    let mut env: Vec<&CStr> = Vec::with_capacity(plan.env.len());
    let status = (|| -> nix::Result<()> {
        // First out of the way of 3 and 4 (either may be there already), then into place.
        let listener = fcntl(listener, FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))?;
        let ready = fcntl(ready, FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))?;
        for (from, to) in [(listener, LISTEN_FD), (ready, READY_FD)] {
            // SAFETY: `from` is the duplicate made just above, open and owned by nobody else
            // here; it is only borrowed for the dup2 (and closes at exec, being close-on-exec).
            let from = unsafe { BorrowedFd::borrow_raw(from) };
            // SAFETY: fd `to` is not owned by any value of this child (the supervisor's are
            // all at other numbers or close-on-exec); ManuallyDrop never closes it: it is the
            // descriptor the program receives.
            let mut target = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(to) });
            // dup2 clears close-on-exec on the new descriptor.
            nix::unistd::dup2(from, &mut target)?;
        }
        Ok(())
    })();
    if status.is_err() {
        socket::exit_now(EXEC_FAILED);
    }
    let entry = listen_pid_entry(&mut pid_entry, nix::unistd::getpid().as_raw());
    env.extend(plan.env.iter().enumerate().map(|(i, e)| {
        if i == plan.pid_slot {
            entry
        } else {
            e.as_c_str()
        }
    }));
    let _ = nix::unistd::execve(&plan.path, &plan.argv, &env);
    socket::exit_now(EXEC_FAILED)
}

/// `LISTEN_PID=<pid>` with its NUL, written into `buf` without allocating.
fn listen_pid_entry(buf: &mut [u8; 32], pid: i32) -> &CStr {
    const PREFIX: &[u8] = b"LISTEN_PID=";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    // The buffer holds one NUL, just written, after ASCII digits: a valid C string. The
    // fallback is never taken.
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"LISTEN_PID=0")
}

/// A pipe whose ends are non-blocking (the supervisor drains it until it would block; a
/// worker's one-byte write never blocks) and close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

/// Takes the descriptor `fd` that the supervisor passed (the readiness pipe at
/// [`READY_FD`]), once: `InvalidInput` unless it is open; made close-on-exec, so that a
/// program a handler runs does not hold it (the supervisor reads its end of file as "this
/// worker is gone").
pub(crate) fn take_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the supervisor's readiness descriptor was already taken",
        ));
    }
    // SAFETY: only borrowed for the flags query; for a closed fd it fails with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the supervisor's readiness descriptor (fd {fd}) is not open: {e}"),
        )
    })?;
    // SAFETY: the fd is open (checked above), the supervisor put it there for this process,
    // and TAKEN makes this the only place that ever owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(owned.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

/// Removes `keys` from the environment if that is sound: only while the process has one
/// thread (Rust 2024 made `remove_var` `unsafe` for that reason). Returns whether it did.
pub(crate) fn remove_env(keys: &[&str]) -> bool {
    if !single_threaded() {
        return false;
    }
    for key in keys {
        // SAFETY: the process has one thread (this one), so nothing else reads or writes the
        // environment while it changes: the condition std documents for `remove_var`.
        unsafe { std::env::remove_var(key) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_entry_is_written_in_place() {
        let mut buf = [0xffu8; 32];
        assert_eq!(listen_pid_entry(&mut buf, 4_194_304), c"LISTEN_PID=4194304");
        let mut buf = [0u8; 32];
        assert_eq!(listen_pid_entry(&mut buf, 7), c"LISTEN_PID=7");
        let mut buf = [0u8; 32];
        assert_eq!(
            listen_pid_entry(&mut buf, i32::MAX),
            c"LISTEN_PID=2147483647"
        );
    }

    #[test]
    fn a_plan_has_a_slot_for_the_pid() {
        let plan = ExecPlan::new(c"/bin/true".to_owned(), vec![], vec![c"A=1".to_owned()]);
        assert_eq!(plan.env[plan.pid_slot].as_c_str(), c"LISTEN_PID=0");
        assert_eq!(plan.path.as_c_str(), c"/bin/true");
    }
}
