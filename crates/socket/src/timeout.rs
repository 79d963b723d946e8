//! Timeouts with Python's meaning: the per-socket setting, and the process-wide default.
//!
//! Python's three modes: `None` is a blocking fd; `Some(ZERO)` is a non-blocking fd whose calls
//! fail with `WouldBlock`; `Some(d)` is an `O_NONBLOCK` fd on which each call waits with `poll`
//! for at most `d` (for `sendall` and `connect`, the whole call), then fails with `TimedOut`.
//!
//! The calls that take a deadline of their own (`recv_into_by`, `send_by`, `sendall_by` in
//! `transfer.rs`) wait until the earlier of it and the socket's timeout, whatever the mode of the
//! fd: `MSG_DONTWAIT` and `poll` make a blocking fd wait no longer, with no `fcntl` per call.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Socket;
use crate::sys::{self, Wait};

/// The encoding of `None` (blocking) in a [`TimeoutCell`].
const BLOCKING: u64 = u64::MAX;

/// An `Option<Duration>` in an atomic, so that `settimeout(&self)` works on a shared socket.
///
/// Nanoseconds; durations past about 584 years are stored as the longest finite value.
#[derive(Debug)]
pub(crate) struct TimeoutCell(AtomicU64);

impl TimeoutCell {
    pub(crate) const fn blocking() -> TimeoutCell {
        TimeoutCell(AtomicU64::new(BLOCKING))
    }

    pub(crate) fn new(t: Option<Duration>) -> TimeoutCell {
        TimeoutCell(AtomicU64::new(encode(t)))
    }

    pub(crate) fn get(&self) -> Option<Duration> {
        decode(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, t: Option<Duration>) {
        self.0.store(encode(t), Ordering::Relaxed);
    }
}

fn encode(t: Option<Duration>) -> u64 {
    match t {
        None => BLOCKING,
        Some(d) => u64::try_from(d.as_nanos())
            .unwrap_or(BLOCKING - 1)
            .min(BLOCKING - 1),
    }
}

fn decode(raw: u64) -> Option<Duration> {
    (raw != BLOCKING).then(|| Duration::from_nanos(raw))
}

/// How one call behaves, decided once at its start from the socket's timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Wait as long as it takes (timeout `None`).
    Blocking,
    /// Never wait: `WouldBlock` is the caller's (timeout `Some(ZERO)`).
    NonBlocking,
    /// Wait until this instant, then fail with `TimedOut`.
    Until(Instant),
}

impl Mode {
    /// The mode of a call starting now on a socket with timeout `t`.
    pub(crate) fn start(t: Option<Duration>) -> Mode {
        match t {
            None => Mode::Blocking,
            Some(d) if d.is_zero() => Mode::NonBlocking,
            // An instant too far away to represent is as good as no deadline.
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Mode::Blocking, Mode::Until),
        }
    }

    /// The mode of a call starting now on a socket with timeout `t` that must also be done by
    /// `deadline`: the earlier of the two deadlines; a non-blocking socket stays non-blocking.
    /// A `deadline` that has already passed fails at once with `TimedOut`, before any call is
    /// tried (Go's deadlines do the same): a handler past its deadline gets no more bytes.
    pub(crate) fn start_by(t: Option<Duration>, deadline: Option<Instant>) -> io::Result<Mode> {
        let Some(deadline) = deadline else {
            return Ok(Mode::start(t));
        };
        if deadline <= Instant::now() {
            return Err(sys::timed_out());
        }
        Ok(match Mode::start(t) {
            Mode::NonBlocking => Mode::NonBlocking,
            Mode::Blocking => Mode::Until(deadline),
            Mode::Until(own) => Mode::Until(own.min(deadline)),
        })
    }

    /// The deadline to wait for, `None` for no deadline.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Mode::Until(t) => Some(t),
            Mode::Blocking | Mode::NonBlocking => None,
        }
    }
}

/// The process-wide default timeout (Python's `socket.setdefaulttimeout`).
static DEFAULT_TIMEOUT: TimeoutCell = TimeoutCell::blocking();

/// Sets the timeout every new socket starts with (Python's `socket.setdefaulttimeout`).
///
/// It applies to sockets made afterwards by [`Socket::new`](crate::Socket::new),
/// [`socketpair`](crate::socketpair), [`Socket::from_fd`](crate::Socket::from_fd), to accepted
/// sockets, and to [`create_connection`](crate::create_connection) without an explicit timeout.
///
/// **This is process-wide state**: every thread of the program sees it. Tests that change it
/// race with every other test of the same binary that makes a socket, so a test that touches it
/// belongs alone in its own test binary (one file under `tests/` with a single `#[test]`), and
/// should put the old value back.
///
/// ```
/// use std::time::Duration;
/// use sockserve_socket::{getdefaulttimeout, setdefaulttimeout, Family, Socket, Type};
///
/// let old = getdefaulttimeout();
/// setdefaulttimeout(Some(Duration::from_secs(5)));
/// let sock = Socket::new(Family::Inet, Type::Stream)?;
/// assert_eq!(sock.gettimeout(), Some(Duration::from_secs(5)));
/// setdefaulttimeout(old);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn setdefaulttimeout(t: Option<Duration>) {
    DEFAULT_TIMEOUT.set(t);
}

/// The timeout new sockets start with (Python's `socket.getdefaulttimeout`); `None` unless
/// [`setdefaulttimeout`] changed it. Process-wide, see [`setdefaulttimeout`].
///
/// ```
/// // Nothing in this program sets a default, so new sockets are blocking.
/// assert_eq!(sockserve_socket::getdefaulttimeout(), None);
/// ```
pub fn getdefaulttimeout() -> Option<Duration> {
    DEFAULT_TIMEOUT.get()
}

impl Socket {
    /// Runs one OS call in this socket's timeout mode, see [`Socket::call_in`].
    pub(crate) fn call<T>(
        &self,
        what: Wait,
        f: impl FnMut(&socket2::Socket, libc::c_int) -> io::Result<T>,
    ) -> io::Result<T> {
        self.call_in(Mode::start(self.gettimeout()), what, f)
    }

    /// Runs `f(socket, flags)` until it does not fail with `EINTR` or `WouldBlock`.
    ///
    /// `flags` is `MSG_DONTWAIT` unless blocking, so that timeouts hold even if another socket
    /// sharing the fd (a `dup`) changed `O_NONBLOCK`. On `WouldBlock` it waits with `poll` until
    /// the deadline of `mode` (none when blocking); a non-blocking socket gets `WouldBlock`.
    pub(crate) fn call_in<T>(
        &self,
        mode: Mode,
        what: Wait,
        mut f: impl FnMut(&socket2::Socket, libc::c_int) -> io::Result<T>,
    ) -> io::Result<T> {
        let sock = self.sock()?;
        let flags = if matches!(mode, Mode::Blocking) {
            0
        } else {
            sys::DONTWAIT
        };
        loop {
            match f(sock, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if matches!(mode, Mode::NonBlocking) {
                        return Err(e);
                    }
                    sys::wait(sock.as_raw_fd(), what, mode.deadline())?;
                }
                result => return result,
            }
        }
    }

    /// Sets the timeout (Python's `settimeout`): `None` makes the socket blocking, `Some(ZERO)`
    /// non-blocking (calls fail with `WouldBlock`), `Some(d)` makes each call wait at most `d`
    /// and then fail with `TimedOut` ("timed out"); for `sendall` and `connect`, `d` bounds the
    /// whole call. On a closed socket only the value is recorded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.settimeout(Some(Duration::from_millis(50)));
    /// assert_eq!(a.recv(16).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn settimeout(&self, t: Option<Duration>) {
        self.timeout.set(t);
        if let Ok(inner) = self.sock() {
            // fcntl(F_SETFL) on an open fd does not fail in practice; and if it did, only
            // accept and connect would notice, because every other call chooses its own mode
            // (MSG_DONTWAIT or a poll on WouldBlock).
            if let Err(e) = inner.set_nonblocking(t.is_some()) {
                log::warn!(
                    "settimeout: cannot change O_NONBLOCK of fd {}: {e}",
                    self.fileno()
                );
            }
        }
    }

    /// The timeout: `None` (blocking), `Some(ZERO)` (non-blocking) or `Some(d)`.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.setblocking(false)?;
    /// assert_eq!(sock.gettimeout(), Some(std::time::Duration::ZERO));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn gettimeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    /// `true` is `settimeout(None)`, `false` is `settimeout(Some(ZERO))` (Python's
    /// `setblocking`); unlike `settimeout` it reports `EBADF` on a closed socket.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.setblocking(false)?;
    /// assert!(!sock.getblocking());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn setblocking(&self, on: bool) -> io::Result<()> {
        self.sock()?.set_nonblocking(!on)?;
        self.timeout
            .set(if on { None } else { Some(Duration::ZERO) });
        Ok(())
    }

    /// `false` only for a non-blocking socket; a socket in timeout mode counts as blocking, as
    /// in Python.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// sock.settimeout(Some(std::time::Duration::from_secs(1)));
    /// assert!(sock.getblocking());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn getblocking(&self) -> bool {
        self.gettimeout() != Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        for t in [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_millis(1500)),
        ] {
            assert_eq!(TimeoutCell::new(t).get(), t);
        }
        let huge = TimeoutCell::new(Some(Duration::MAX));
        assert!(
            huge.get().is_some(),
            "a huge timeout must stay a timeout, not become blocking"
        );
    }
}
