//! [`Waker`]: ends a [`Reactor::select`](crate::Reactor::select) from any thread.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A handle that ends the reactor's [`select`](crate::Reactor::select) at once, from any thread.
///
/// Made by [`Reactor::waker`](crate::Reactor::waker); cheap to clone, and every clone wakes the
/// same reactor. This is what makes the server's `shutdown()` instant instead of waiting for a
/// `poll_interval` to run out, as CPython's does.
///
/// - A wake during a `select` ends it; the select returns, possibly with an empty slice: wakes are
///   never reported as [`Ready`](crate::Ready) entries.
/// - A wake while no `select` is running makes the next `select` return at once.
/// - Wakes coalesce: many wakes before the reactor looks end one `select`, and a wake that is
///   already pending costs one atomic operation, no system call. A wake that lands while a
///   `select` is already returning may be absorbed by that return; so set the state the wake is
///   about (a shutdown flag, a queue) *before* calling [`wake`](Waker::wake), and look at it
///   *after* `select` returns.
/// - Waking after the reactor was dropped does nothing and is not an error.
///
/// ```
/// use sockserve_reactor::Reactor;
/// use std::time::{Duration, Instant};
///
/// let mut reactor = Reactor::new()?;
/// let waker = reactor.waker();
/// let t = std::thread::spawn(move || waker.wake());
/// let start = Instant::now();
/// let ready = reactor.select(Some(Duration::from_secs(10)))?;
/// assert!(ready.is_empty());
/// assert!(start.elapsed() < Duration::from_secs(5));
/// t.join().expect("waking thread panicked")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Waker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    waker: mio::Waker,
    /// True from a wake until the reactor sees the waker's event: further wakes skip the system
    /// call. Only a wake that flips it from false to true writes to the eventfd (or pipe), so
    /// at most one wake-up is in flight, and an eventfd counter can never overflow.
    pending: AtomicBool,
}

impl Waker {
    pub(crate) fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<Waker> {
        Ok(Waker {
            inner: Arc::new(Inner {
                waker: mio::Waker::new(registry, token)?,
                pending: AtomicBool::new(false),
            }),
        })
    }

    /// Ends the current [`select`](crate::Reactor::select), or the next one if none is running.
    ///
    /// Errors only if the operating system refuses the wake-up write, which does not happen in
    /// practice; the wake can then be retried.
    ///
    /// ```
    /// use sockserve_reactor::Reactor;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let waker = reactor.waker();
    /// waker.wake()?; // before select: the next select returns at once
    /// waker.wake()?; // coalesced with the first
    /// assert!(reactor.select(None)?.is_empty());
    /// // Both wakes were used up by that one select.
    /// assert!(reactor.select(Some(Duration::ZERO))?.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        // SeqCst pairs with `clear`: a wake that finds the flag set is covered by the wake-up
        // already in flight, which the reactor has not yet seen (it clears the flag only after
        // seeing the event).
        if self.inner.pending.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = self.inner.waker.wake();
        if result.is_err() {
            // Nothing is in flight after all: let the next wake try again.
            self.inner.pending.store(false, Ordering::SeqCst);
        }
        result
    }

    /// Called by the reactor when it sees the waker's event: later wakes write again.
    pub(crate) fn clear(&self) {
        self.inner.pending.store(false, Ordering::SeqCst);
    }
}
