//! `Signals`: delivery through the reactor, restoration on drop, the one-owner rule, errno, a
//! full pipe and forked children.
//!
//! Signal dispositions are process-wide, so these checks run in a test binary of their own
//! (`harness = false` in Cargo.toml), one after the other on the main thread; `main` prints
//! "signals: N passed, M failed" and exits non-zero on failure.

// A harness-less test reports on stdout and stderr itself.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::io::{self, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, kill, raise, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, getpid};
use sockserve_reactor::{Interest, Reactor, Signal, Signals};

use testsupport::Check;

/// The longest a check may take before the watchdog declares it hung.
const BOUND: Duration = Duration::from_secs(5);

fn main() {
    let checks: &[(&str, Check)] = &[
        (
            "sigterm_to_the_process_wakes_select_none",
            sigterm_to_the_process_wakes_select_none,
        ),
        (
            "raise_on_another_thread_wakes_select_none",
            raise_on_another_thread_wakes_select_none,
        ),
        ("two_signals", two_signals),
        ("disposition_restored_on_drop", disposition_restored_on_drop),
        (
            "replaced_handler_is_not_called_and_comes_back",
            replaced_handler_is_not_called_and_comes_back,
        ),
        ("one_signals_per_signal", one_signals_per_signal),
        (
            "refused_signals_and_sigchld_untouched",
            refused_signals_and_sigchld_untouched,
        ),
        (
            "full_pipe_keeps_the_news_and_errno",
            full_pipe_keeps_the_news_and_errno,
        ),
        (
            "forked_child_gets_the_default_action",
            forked_child_gets_the_default_action,
        ),
    ];
    testsupport::run_checks_bounded("signals", checks, BOUND);
}

fn io(context: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

fn nix_err(context: &str) -> impl Fn(Errno) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Selects with no timeout (the watchdog bounds it) until `signals` has reported all of `want`.
fn wait_for(
    reactor: &mut Reactor,
    signals: &Signals,
    want: &[Signal],
) -> Result<BTreeSet<Signal>, String> {
    let want: BTreeSet<Signal> = want.iter().copied().collect();
    let mut got = BTreeSet::new();
    while !want.is_subset(&got) {
        reactor.select(None).map_err(io("select"))?;
        got.extend(signals.pending().map_err(io("pending"))?);
    }
    Ok(got)
}

/// The current disposition of `signal` (read by setting it and putting it back at once).
fn disposition(signal: Signal) -> Result<SigHandler, String> {
    let probe = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: the disposition is put back right away; no signal is sent meanwhile.
    let current = unsafe { sigaction(signal, &probe) }.map_err(nix_err("sigaction"))?;
    // SAFETY: the disposition put back is the one just read.
    unsafe { sigaction(signal, &current) }.map_err(nix_err("sigaction"))?;
    Ok(current.handler())
}

fn set_disposition(signal: Signal, handler: SigHandler) -> Result<SigAction, String> {
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handlers used here are async-signal-safe (SIG_IGN, SIG_DFL, `count_usr1`).
    unsafe { sigaction(signal, &action) }.map_err(nix_err("sigaction"))
}

fn sigterm_to_the_process_wakes_select_none() -> Result<(), String> {
    let signals = Signals::new(&[Signal::SIGTERM]).map_err(io("Signals::new"))?;
    let mut reactor = Reactor::new().map_err(io("Reactor::new"))?;
    reactor
        .register(&signals, 9, Interest::READABLE)
        .map_err(io("register"))?;
    // Process-directed: the kernel picks a thread, maybe this one inside epoll_wait (EINTR).
    let sender = thread::spawn(|| kill(getpid(), Signal::SIGTERM));
    let ready = reactor.select(None).map_err(io("select"))?.to_vec();
    sender
        .join()
        .map_err(|_| "sender panicked".to_owned())?
        .map_err(nix_err("kill"))?;
    if !ready.iter().any(|r| r.key == 9 && r.readable) {
        return Err(format!(
            "select returned without the signal pipe: {ready:?}"
        ));
    }
    let pending = signals.pending().map_err(io("pending"))?;
    if pending != [Signal::SIGTERM] {
        return Err(format!("pending() = {pending:?}, expected [SIGTERM]"));
    }
    Ok(())
}

fn raise_on_another_thread_wakes_select_none() -> Result<(), String> {
    let signals = Signals::new(&[Signal::SIGTERM]).map_err(io("Signals::new"))?;
    let mut reactor = Reactor::new().map_err(io("Reactor::new"))?;
    reactor
        .register(&signals, 0, Interest::READABLE)
        .map_err(io("register"))?;
    // Thread-directed: the handler runs on the other thread, the pipe wakes this one.
    let sender = thread::spawn(|| raise(Signal::SIGTERM));
    let got = wait_for(&mut reactor, &signals, &[Signal::SIGTERM])?;
    sender
        .join()
        .map_err(|_| "sender panicked".to_owned())?
        .map_err(nix_err("raise"))?;
    if got.len() != 1 {
        return Err(format!("unexpected signals: {got:?}"));
    }
    Ok(())
}

fn two_signals() -> Result<(), String> {
    let signals = Signals::new(&[Signal::SIGTERM, Signal::SIGINT]).map_err(io("Signals::new"))?;
    let mut reactor = Reactor::new().map_err(io("Reactor::new"))?;
    reactor
        .register(&signals, 0, Interest::READABLE)
        .map_err(io("register"))?;
    let sender = thread::spawn(|| -> nix::Result<()> {
        kill(getpid(), Signal::SIGINT)?;
        kill(getpid(), Signal::SIGTERM)
    });
    let got = wait_for(&mut reactor, &signals, &[Signal::SIGTERM, Signal::SIGINT])?;
    sender
        .join()
        .map_err(|_| "sender panicked".to_owned())?
        .map_err(nix_err("kill"))?;
    if got.len() != 2 {
        return Err(format!("unexpected signals: {got:?}"));
    }
    let again = signals.pending().map_err(io("pending"))?;
    if !again.is_empty() {
        return Err(format!("reported twice: {again:?}"));
    }
    Ok(())
}

fn disposition_restored_on_drop() -> Result<(), String> {
    let original = set_disposition(Signal::SIGUSR1, SigHandler::SigIgn)?;
    let result = (|| {
        let signals = Signals::new(&[Signal::SIGUSR1]).map_err(io("Signals::new"))?;
        if !matches!(disposition(Signal::SIGUSR1)?, SigHandler::Handler(_)) {
            return Err("Signals::new did not install a handler".to_owned());
        }
        drop(signals);
        match disposition(Signal::SIGUSR1)? {
            SigHandler::SigIgn => {}
            other => return Err(format!("after drop: {other:?}, expected SigIgn")),
        }
        // Ignored again: raising it now is harmless.
        raise(Signal::SIGUSR1).map_err(nix_err("raise"))?;
        // And from the default disposition, the default comes back.
        set_disposition(Signal::SIGUSR1, SigHandler::SigDfl)?;
        drop(Signals::new(&[Signal::SIGUSR1]).map_err(io("Signals::new"))?);
        match disposition(Signal::SIGUSR1)? {
            SigHandler::SigDfl => Ok(()),
            other => Err(format!("after drop: {other:?}, expected SigDfl")),
        }
    })();
    // SAFETY: restores what the process had.
    unsafe { sigaction(Signal::SIGUSR1, &original) }.map_err(nix_err("sigaction"))?;
    result
}

static USR1_COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_usr1(_: c_int) {
    USR1_COUNT.fetch_add(1, Ordering::SeqCst);
}

fn replaced_handler_is_not_called_and_comes_back() -> Result<(), String> {
    let original = set_disposition(Signal::SIGUSR1, SigHandler::Handler(count_usr1))?;
    let result = (|| {
        USR1_COUNT.store(0, Ordering::SeqCst);
        let signals = Signals::new(&[Signal::SIGUSR1]).map_err(io("Signals::new"))?;
        // `raise` runs the handler on this thread before it returns.
        raise(Signal::SIGUSR1).map_err(nix_err("raise"))?;
        let pending = signals.pending().map_err(io("pending"))?;
        if pending != [Signal::SIGUSR1] {
            return Err(format!("pending() = {pending:?}"));
        }
        if USR1_COUNT.load(Ordering::SeqCst) != 0 {
            return Err("the replaced handler was called".to_owned());
        }
        drop(signals);
        raise(Signal::SIGUSR1).map_err(nix_err("raise"))?;
        match USR1_COUNT.load(Ordering::SeqCst) {
            1 => Ok(()),
            n => Err(format!(
                "previous handler ran {n} times after drop, expected 1"
            )),
        }
    })();
    // SAFETY: restores what the process had.
    unsafe { sigaction(Signal::SIGUSR1, &original) }.map_err(nix_err("sigaction"))?;
    result
}

fn one_signals_per_signal() -> Result<(), String> {
    let first = Signals::new(&[Signal::SIGUSR2, Signal::SIGHUP]).map_err(io("Signals::new"))?;
    match Signals::new(&[Signal::SIGWINCH, Signal::SIGHUP]) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("wrong error for a taken signal: {e}")),
        Ok(_) => return Err("a second Signals for SIGHUP was allowed".to_owned()),
    }
    // The failed attempt left nothing behind: SIGWINCH is free and at its default.
    if !matches!(disposition(Signal::SIGWINCH)?, SigHandler::SigDfl) {
        return Err("the failed Signals::new left SIGWINCH changed".to_owned());
    }
    let disjoint = Signals::new(&[Signal::SIGWINCH]).map_err(io("disjoint Signals::new"))?;
    drop(first);
    let again = Signals::new(&[Signal::SIGUSR2, Signal::SIGHUP])
        .map_err(io("Signals::new after the first was dropped"))?;
    drop((disjoint, again));
    Ok(())
}

fn refused_signals_and_sigchld_untouched() -> Result<(), String> {
    let before = disposition(Signal::SIGCHLD)?;
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
    ] {
        match Signals::new(&[Signal::SIGUSR1, signal]) {
            Err(e) if e.kind() == ErrorKind::InvalidInput => {}
            Err(e) => return Err(format!("{signal}: wrong error {e}")),
            Ok(_) => return Err(format!("{signal} was accepted")),
        }
    }
    let after = disposition(Signal::SIGCHLD)?;
    if format!("{before:?}") != format!("{after:?}") {
        return Err(format!("SIGCHLD changed from {before:?} to {after:?}"));
    }
    // SIGUSR1 was not left claimed by the refused attempts.
    drop(Signals::new(&[Signal::SIGUSR1]).map_err(io("Signals::new"))?);
    Ok(())
}

fn full_pipe_keeps_the_news_and_errno() -> Result<(), String> {
    let signals = Signals::new(&[Signal::SIGUSR2]).map_err(io("Signals::new"))?;
    // More than a pipe holds (64 KiB on Linux): the handler's later writes fail with EAGAIN.
    for _ in 0..70_000 {
        raise(Signal::SIGUSR2).map_err(nix_err("raise"))?;
    }
    // The handler runs inside `raise`, its write fails, and errno must be as it was.
    Errno::ENOTTY.set();
    raise(Signal::SIGUSR2).map_err(nix_err("raise"))?;
    if Errno::last() != Errno::ENOTTY {
        return Err(format!("errno changed by the handler to {}", Errno::last()));
    }
    let pending = signals.pending().map_err(io("pending"))?;
    if pending != [Signal::SIGUSR2] {
        return Err(format!("pending() = {pending:?}, expected [SIGUSR2] once"));
    }
    // Drained: nothing more, and the pipe is usable again.
    let again = signals.pending().map_err(io("pending"))?;
    if !again.is_empty() {
        return Err(format!("pipe not drained: {again:?}"));
    }
    raise(Signal::SIGUSR2).map_err(nix_err("raise"))?;
    let pending = signals.pending().map_err(io("pending"))?;
    if pending != [Signal::SIGUSR2] {
        return Err(format!("after draining: pending() = {pending:?}"));
    }
    Ok(())
}

fn forked_child_gets_the_default_action() -> Result<(), String> {
    let signals = Signals::new(&[Signal::SIGTERM]).map_err(io("Signals::new"))?;
    // SAFETY: the child only calls async-signal-safe functions (raise, abort) and never returns.
    match unsafe { fork() }.map_err(nix_err("fork"))? {
        ForkResult::Child => {
            let _ = raise(Signal::SIGTERM);
            // Still alive: the handler did not give SIGTERM its default action.
            std::process::abort();
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).map_err(nix_err("waitpid"))?;
            match status {
                WaitStatus::Signaled(_, Signal::SIGTERM, _) => {}
                other => return Err(format!("child ended with {other:?}, expected SIGTERM")),
            }
            let pending = signals.pending().map_err(io("pending"))?;
            if !pending.is_empty() {
                return Err(format!(
                    "the child's signal reached the parent: {pending:?}"
                ));
            }
            Ok(())
        }
    }
}
