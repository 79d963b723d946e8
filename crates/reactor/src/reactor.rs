//! [`Reactor`]: Python's `selectors.DefaultSelector`, over mio, with level-trigger emulation.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Poll, Registry, Token};

use crate::{Interest, Ready, Registrar, Waker};

/// The key reserved for the reactor's own [`Waker`]; [`Reactor::register`] refuses it.
///
/// ```
/// use sockserve_reactor::{Interest, Reactor, RESERVED_KEY};
/// use std::net::UdpSocket;
///
/// let reactor = Reactor::new()?;
/// let sock = UdpSocket::bind("127.0.0.1:0")?;
/// let err = reactor.register(&sock, RESERVED_KEY, Interest::READABLE).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const RESERVED_KEY: usize = usize::MAX;

const WAKER_TOKEN: Token = Token(RESERVED_KEY);

/// How many events one `select` takes from the kernel unless [`Reactor::with_capacity`] says
/// otherwise. More ready registrations than this are simply reported by the next `select`.
const DEFAULT_CAPACITY: usize = 1024;

/// Waits for file descriptors to become readable or writable: Python's
/// `selectors.DefaultSelector`, over mio (epoll on Linux, kqueue on the BSDs and macOS).
///
/// Anything with a file descriptor can be registered ([`AsRawFd`]: std's sockets, mio's, the
/// socket layer's `Socket`, a [`Signals`](crate::Signals) pipe) under a `key` of the caller's
/// choosing, which [`select`](Reactor::select) reports back in [`Ready`] entries.
///
/// Readiness is **edge-triggered** underneath: see the crate documentation for the contract
/// (drain until `WouldBlock`, or call [`still_ready`](Reactor::still_ready)).
///
/// The reactor does not own what is registered: unregister a file descriptor before closing it
/// (as Python requires too). The kernel drops a registration by itself when the last descriptor
/// of an open file is closed, but the reactor's bookkeeping of that key stays until the number is
/// registered again.
///
/// `register`, `modify` and `unregister` take `&self`; `select` and `still_ready` take
/// `&mut self`, so on the owner's thread registrations change between selects. Another thread
/// changes them with a [`Registrar`] ([`Reactor::registrar`]), even while a `select` waits.
///
/// ```
/// use sockserve_reactor::{Interest, Reactor};
/// use std::io::Write;
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// let mut reactor = Reactor::new()?;
/// reactor.register(&listener, 0, Interest::READABLE)?;
///
/// let mut client = TcpStream::connect(listener.local_addr()?)?;
/// client.write_all(b"ping")?;
///
/// let ready = reactor.select(Some(Duration::from_secs(5)))?;
/// assert_eq!(ready.len(), 1);
/// assert!(ready[0].key == 0 && ready[0].readable);
/// let (conn, _addr) = listener.accept()?;
/// # drop(conn);
/// reactor.unregister(&listener)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    poll: Poll,
    events: Events,
    /// The answer of the last `select`, lent out as a slice.
    ready: Vec<Ready>,
    /// Entries from `still_ready`, merged into the next `select`'s answer.
    again: Vec<Ready>,
    /// Shared with the reactor's [`Registrar`]s, which change it from other threads.
    registrations: Arc<Mutex<Registrations>>,
    waker: Waker,
}

/// What the reactor knows about its registrations: enough to mask events by interest and to
/// forget `still_ready` entries of keys that were unregistered. Several descriptors may share
/// a key: the key's interest is what any of them asks for, and it is in use while one is.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    of_fd: HashMap<RawFd, (usize, Interest)>,
    of_key: HashMap<usize, KeyUse>,
}

/// How many of a key's descriptors ask for reading and for writing.
#[derive(Debug, Default, Clone, Copy)]
struct KeyUse {
    readers: usize,
    writers: usize,
    fds: usize,
}

impl Registrations {
    fn set(&mut self, fd: RawFd, key: usize, interest: Interest) {
        if let Some((old_key, old_interest)) = self.of_fd.insert(fd, (key, interest)) {
            self.release(old_key, old_interest);
        }
        let used = self.of_key.entry(key).or_default();
        used.fds += 1;
        used.readers += usize::from(interest.is_readable());
        used.writers += usize::from(interest.is_writable());
    }

    fn remove(&mut self, fd: RawFd) {
        if let Some((key, interest)) = self.of_fd.remove(&fd) {
            self.release(key, interest);
        }
    }

    fn release(&mut self, key: usize, interest: Interest) {
        if let Some(used) = self.of_key.get_mut(&key) {
            used.fds -= 1;
            used.readers -= usize::from(interest.is_readable());
            used.writers -= usize::from(interest.is_writable());
            if used.fds == 0 {
                self.of_key.remove(&key);
            }
        }
    }

    /// What `key`'s descriptors ask for; `None` when no descriptor is registered under it.
    fn interest_of(&self, key: usize) -> Option<Interest> {
        let used = self.of_key.get(&key)?;
        match (used.readers > 0, used.writers > 0) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}

/// `register` on `registry`, recorded in `registrations`: for the reactor and its registrars.
pub(crate) fn register(
    registry: &Registry,
    registrations: &Mutex<Registrations>,
    raw: RawFd,
    key: usize,
    interest: Interest,
) -> io::Result<()> {
    check_key(key)?;
    // The table is locked across the system call, so that the table and the kernel's set
    // never disagree when two threads change the same descriptor.
    let mut table = lock(registrations);
    registry.register(&mut SourceFd(&raw), Token(key), interest.to_mio())?;
    table.set(raw, key, interest);
    Ok(())
}

/// `reregister` with what `raw` has already: the kernel checks its readiness again. The table
/// does not change, so it is not locked.
pub(crate) fn rearm(
    registry: &Registry,
    raw: RawFd,
    key: usize,
    interest: Interest,
) -> io::Result<()> {
    check_key(key)?;
    registry.reregister(&mut SourceFd(&raw), Token(key), interest.to_mio())
}

/// `unregister` on `registry`, recorded in `registrations`: for the reactor and its registrars.
pub(crate) fn unregister(
    registry: &Registry,
    registrations: &Mutex<Registrations>,
    raw: RawFd,
) -> io::Result<()> {
    let mut table = lock(registrations);
    registry.deregister(&mut SourceFd(&raw))?;
    table.remove(raw);
    Ok(())
}

fn lock(registrations: &Mutex<Registrations>) -> MutexGuard<'_, Registrations> {
    // The lock is held only for a few map operations that do not panic (and the system call
    // that goes with them), so a poisoned lock still holds consistent maps.
    registrations.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reactor {
    /// A new reactor, with its [`Waker`] registered under [`RESERVED_KEY`].
    ///
    /// ```
    /// use sockserve_reactor::Reactor;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// assert!(reactor.select(Some(Duration::ZERO))?.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_capacity(DEFAULT_CAPACITY)
    }

    /// A new reactor whose `select` takes at most `events` events from the kernel at a time (at
    /// least one; the default is 1024). Registrations beyond that stay ready for the next
    /// `select`.
    ///
    /// ```
    /// use sockserve_reactor::Reactor;
    ///
    /// let reactor = Reactor::with_capacity(64)?;
    /// # drop(reactor);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_capacity(events: usize) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(events.max(1)),
            ready: Vec::new(),
            again: Vec::new(),
            registrations: Arc::default(),
            waker,
        })
    }

    /// Watches `fd` for `interest`, reporting it under `key`: Python's
    /// `selector.register(fileobj, events, data)`.
    ///
    /// Errors: `fd` is already registered (`AlreadyExists`, `EEXIST`; use
    /// [`modify`](Reactor::modify)); `key` is [`RESERVED_KEY`] (`InvalidInput`); the operating
    /// system refuses (a closed descriptor: `EBADF`; a regular file: `EPERM`).
    ///
    /// Registering a descriptor that is already readable (or writable) reports it on the next
    /// `select`: the kernel checks readiness at registration. So a listener can be unregistered
    /// for a while (backpressure, out of file descriptors) and registered again without losing
    /// the connections that queued up meanwhile.
    ///
    /// Several descriptors may share a key, but then they cannot be told apart in the answer:
    /// one entry for the key says that one of them (or more) is ready. That suits a set of
    /// descriptors that all mean the same thing to the caller ("a child ended"), which looks
    /// at each of them itself.
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 1, Interest::READABLE | Interest::WRITABLE)?;
    /// assert!(reactor.register(&sock, 2, Interest::READABLE).is_err()); // twice: EEXIST
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(&self, fd: &impl AsRawFd, key: usize, interest: Interest) -> io::Result<()> {
        register(
            self.poll.registry(),
            &self.registrations,
            fd.as_raw_fd(),
            key,
            interest,
        )
    }

    /// Changes the interest and/or key of a registered `fd`: Python's
    /// `selector.modify(fileobj, events, data)`.
    ///
    /// Like [`register`](Reactor::register), the kernel checks readiness again, so a descriptor
    /// that is ready for the new interest is reported by the next `select`. Errors: `fd` is not
    /// registered (`NotFound`, `ENOENT`), `key` is [`RESERVED_KEY`] (`InvalidInput`).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 1, Interest::READABLE)?;
    /// reactor.modify(&sock, 2, Interest::WRITABLE)?;
    /// let ready = reactor.select(Some(Duration::from_secs(5)))?;
    /// assert!(ready[0].key == 2 && ready[0].writable && !ready[0].readable);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn modify(&self, fd: &impl AsRawFd, key: usize, interest: Interest) -> io::Result<()> {
        check_key(key)?;
        let raw = fd.as_raw_fd();
        let mut table = self.registrations();
        self.poll
            .registry()
            .reregister(&mut SourceFd(&raw), Token(key), interest.to_mio())?;
        table.set(raw, key, interest);
        Ok(())
    }

    /// Stops watching `fd`: Python's `selector.unregister(fileobj)`.
    ///
    /// A [`still_ready`](Reactor::still_ready) entry for its key is forgotten (unless the key is
    /// registered again before the next `select`). Errors: `fd` is not registered (`NotFound`,
    /// `ENOENT`) or already closed (`EBADF`).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 1, Interest::READABLE)?;
    /// reactor.unregister(&sock)?;
    /// assert!(reactor.unregister(&sock).is_err()); // not registered any more
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unregister(&self, fd: &impl AsRawFd) -> io::Result<()> {
        unregister(self.poll.registry(), &self.registrations, fd.as_raw_fd())
    }

    /// Waits until a registration is ready, the [`Waker`] is woken, or `timeout` runs out:
    /// Python's `selector.select(timeout)`.
    ///
    /// `None` waits for ever; `Some(Duration::ZERO)` only polls. An interrupted wait (`EINTR`,
    /// a signal handler ran) is resumed with the time left, as Python does since PEP 475. The
    /// answer is empty when the time ran out or the select was woken. Entries reported by
    /// [`still_ready`](Reactor::still_ready) are merged in (one entry per key), and make this
    /// select return at once. Timeouts are rounded up to whole milliseconds by the kernel.
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 3, Interest::READABLE)?;
    /// assert!(reactor.select(Some(Duration::from_millis(10)))?.is_empty());
    ///
    /// sock.send_to(b"x", sock.local_addr()?)?;
    /// for ready in reactor.select(None)? {
    ///     assert_eq!(ready.key, 3);
    ///     assert!(ready.readable);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn select(&mut self, timeout: Option<Duration>) -> io::Result<&[Ready]> {
        self.ready.clear();
        let timeout = if self.again.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        poll_resuming(&mut self.poll, &mut self.events, timeout)?;

        // A registrar may change the table from another thread meanwhile: an event of a
        // descriptor unregistered since the kernel reported it is still passed on (its key's
        // interest unknown), as it would have been a moment earlier.
        let registrations = lock(&self.registrations);
        for event in self.events.iter() {
            if event.token() == WAKER_TOKEN {
                self.waker.clear();
                continue;
            }
            let interest = registrations.interest_of(event.token().0);
            let ready = Ready::from_event(event, interest);
            if ready.any() {
                self.ready.push(ready);
            }
        }
        for again in self.again.drain(..) {
            // Only for a key that is still registered, and only for what it still asks for.
            let Some(interest) = registrations.interest_of(again.key) else {
                continue;
            };
            let readable = again.readable && interest.is_readable();
            let writable = again.writable && interest.is_writable();
            if let Some(ready) = self.ready.iter_mut().find(|r| r.key == again.key) {
                ready.readable |= readable;
                ready.writable |= writable;
            } else if readable || writable {
                self.ready.push(Ready {
                    readable,
                    writable,
                    ..again
                });
            }
        }
        Ok(&self.ready)
    }

    /// Says "I stopped before `WouldBlock`": the next [`select`](Reactor::select) returns at
    /// once and reports `key` as ready for `interest` again (merged with fresh events; one entry
    /// per key).
    ///
    /// This is how the edge-triggered reactor behaves level-triggered where the user wants it:
    /// a server that accepts a bounded batch (so that one busy listener does not starve the
    /// others) calls `still_ready` when the batch ended before `WouldBlock`. The entry is dropped
    /// if the key is unregistered before that `select`, and limited to the interest the key is
    /// registered with then. Calling it twice for a key before a `select` reports it once, with
    /// both interests.
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 5, Interest::READABLE)?;
    /// // Two datagrams arrive; the edge is reported once.
    /// sock.send_to(b"a", sock.local_addr()?)?;
    /// sock.send_to(b"b", sock.local_addr()?)?;
    /// assert_eq!(reactor.select(None)?.len(), 1);
    /// let mut buf = [0; 8];
    /// sock.recv_from(&mut buf)?; // one read, not until WouldBlock...
    /// reactor.still_ready(5, Interest::READABLE); // ...so say so
    /// let ready = reactor.select(None)?; // returns at once
    /// assert!(ready[0].key == 5 && ready[0].readable);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn still_ready(&mut self, key: usize, interest: Interest) {
        if let Some(entry) = self.again.iter_mut().find(|r| r.key == key) {
            entry.readable |= interest.is_readable();
            entry.writable |= interest.is_writable();
        } else {
            self.again.push(Ready::again(key, interest));
        }
    }

    /// A [`Waker`] that ends this reactor's `select` from any thread.
    ///
    /// ```
    /// use sockserve_reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// reactor.waker().wake()?;
    /// assert!(reactor.select(None)?.is_empty()); // woken: returns at once, nothing ready
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// A [`Registrar`]: registers and unregisters descriptors in this reactor from any thread,
    /// even while a `select` waits (which then reports a new registration that is ready).
    ///
    /// Errors: the operating system refuses to duplicate the reactor's descriptor (mio's
    /// `Registry::try_clone`; out of file descriptors, `EMFILE`).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let registrar = reactor.registrar()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// sock.send_to(b"x", sock.local_addr()?)?;
    /// std::thread::scope(|s| s.spawn(|| registrar.register(&sock, 3, Interest::READABLE)).join())
    ///     .expect("registering thread panicked")?;
    /// let ready = reactor.select(Some(Duration::from_secs(5)))?;
    /// assert!(ready[0].key == 3 && ready[0].readable);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn registrar(&self) -> io::Result<Registrar> {
        Ok(Registrar::new(
            self.poll.registry().try_clone()?,
            Arc::clone(&self.registrations),
        ))
    }

    fn registrations(&self) -> MutexGuard<'_, Registrations> {
        lock(&self.registrations)
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("poll", &self.poll)
            .field("capacity", &self.events.capacity())
            .field("registered", &self.registrations().of_fd.len())
            .field("still_ready", &self.again)
            .finish_non_exhaustive()
    }
}

fn check_key(key: usize) -> io::Result<()> {
    if key == RESERVED_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "key usize::MAX is reserved for the reactor's waker",
        ));
    }
    Ok(())
}

/// `poll`, resumed with the time left when a signal interrupts it (`EINTR`).
fn poll_resuming(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> io::Result<()> {
    // A timeout too large for an `Instant` is as good as no timeout.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut wait = timeout;
    loop {
        match poll.poll(events, wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let Some(deadline) = deadline {
                    wait = Some(deadline.saturating_duration_since(Instant::now()));
                }
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactor_is_send_and_sync() {
        fn check<T: Send + Sync + fmt::Debug>() {}
        check::<Reactor>();
        check::<Waker>();
    }

    #[test]
    fn still_ready_for_unregistered_key_is_dropped() -> io::Result<()> {
        let mut reactor = Reactor::new()?;
        reactor.still_ready(9, Interest::READABLE);
        assert!(reactor.select(Some(Duration::ZERO))?.is_empty());
        Ok(())
    }

    #[test]
    fn still_ready_twice_is_one_entry() -> io::Result<()> {
        let mut reactor = Reactor::new()?;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        reactor.register(&sock, 4, Interest::READABLE | Interest::WRITABLE)?;
        // Let the initial writable edge pass.
        reactor.select(Some(Duration::from_secs(5)))?;
        reactor.still_ready(4, Interest::READABLE);
        reactor.still_ready(4, Interest::WRITABLE);
        let ready = reactor.select(Some(Duration::from_secs(5)))?.to_vec();
        assert_eq!(ready.len(), 1, "{ready:?}");
        assert!(ready[0].readable && ready[0].writable);
        Ok(())
    }

    #[test]
    fn modify_limits_still_ready() -> io::Result<()> {
        let mut reactor = Reactor::new()?;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        reactor.register(&sock, 4, Interest::READABLE)?;
        reactor.still_ready(4, Interest::READABLE);
        reactor.modify(&sock, 4, Interest::WRITABLE)?;
        let ready = reactor.select(Some(Duration::from_secs(5)))?.to_vec();
        // The fresh writable edge from `modify`, no readable from the stale still_ready entry.
        assert_eq!(ready.len(), 1, "{ready:?}");
        assert!(ready[0].writable && !ready[0].readable);
        Ok(())
    }
}
