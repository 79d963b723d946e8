//! [`Registrar`]: registers and unregisters descriptors in a [`Reactor`](crate::Reactor) from
//! any thread.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use crate::Interest;
use crate::reactor::{self, Registrations};

/// Registers and unregisters descriptors in a [`Reactor`](crate::Reactor) from any thread, even
/// while the reactor's owner waits in [`select`](crate::Reactor::select): a clone of mio's
/// `Registry`. Made by [`Reactor::registrar`](crate::Reactor::registrar); cheap to clone, and
/// every clone changes the same reactor.
///
/// A descriptor registered while a `select` waits is reported by that `select` as soon as it is
/// ready (the kernel checks readiness at registration), so a thread that hands the serving loop
/// something to watch needs no [`Waker`](crate::Waker) on top. What the reactor's own
/// [`register`](crate::Reactor::register) and [`unregister`](crate::Reactor::unregister) say of
/// keys, errors and edges holds here too: unregister a descriptor before closing it.
///
/// ```
/// use sockserve_reactor::{Interest, Reactor};
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut reactor = Reactor::new()?;
/// let registrar = reactor.registrar()?;
/// let (watched, mut peer) = UnixStream::pair()?;
/// // Another thread registers while this one waits; the wait reports the descriptor.
/// let t = std::thread::spawn(move || -> std::io::Result<UnixStream> {
///     registrar.register(&watched, 1, Interest::READABLE)?;
///     peer.write_all(b"x")?;
///     Ok(watched)
/// });
/// let ready = reactor.select(Some(Duration::from_secs(5)))?.to_vec();
/// assert!(ready.iter().any(|r| r.key == 1 && r.readable), "{ready:?}");
/// let watched = t.join().expect("registering thread panicked")?;
/// reactor.unregister(&watched)?; // the reactor and its registrars share one table
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Registrar {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: mio::Registry,
    registrations: Arc<Mutex<Registrations>>,
}

impl Registrar {
    pub(crate) fn new(registry: mio::Registry, registrations: Arc<Mutex<Registrations>>) -> Self {
        Registrar {
            inner: Arc::new(Inner {
                registry,
                registrations,
            }),
        }
    }

    /// Watches `fd` for `interest`, reporting it under `key`, as
    /// [`Reactor::register`](crate::Reactor::register) does, from any thread.
    ///
    /// Several descriptors may share a key (one entry then says one of them is ready or more):
    /// the key's interest is what any of them asks for, and it stays registered until the last
    /// of them is unregistered.
    ///
    /// Errors: as [`Reactor::register`](crate::Reactor::register) (`AlreadyExists` for a
    /// descriptor registered already, `InvalidInput` for [`RESERVED_KEY`](crate::RESERVED_KEY),
    /// the operating system's refusal).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// const CHILDREN: usize = 7;
    /// let mut reactor = Reactor::new()?;
    /// let registrar = reactor.registrar()?;
    /// let (a, mut a_peer) = UnixStream::pair()?;
    /// let (b, _b_peer) = UnixStream::pair()?;
    /// registrar.register(&a, CHILDREN, Interest::READABLE)?;
    /// registrar.register(&b, CHILDREN, Interest::READABLE)?; // one key for both
    /// registrar.unregister(&b)?; // the key stays, for `a`
    /// a_peer.write_all(b"x")?;
    /// let ready = reactor.select(Some(Duration::from_secs(5)))?;
    /// assert!(ready.len() == 1 && ready[0].key == CHILDREN && ready[0].readable);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(&self, fd: &impl AsRawFd, key: usize, interest: Interest) -> io::Result<()> {
        reactor::register(
            &self.inner.registry,
            &self.inner.registrations,
            fd.as_raw_fd(),
            key,
            interest,
        )
    }

    /// Re-arms a descriptor registered already, with the key and interest it has: the next
    /// [`select`](crate::Reactor::select) reports it if it is ready now, even with no new
    /// edge since it was last reported (the kernel checks readiness again, `EPOLL_CTL_MOD`).
    /// What a thread does when it hands back a connection it has been reading: data that came
    /// while it read is not missed. One system call, and the reactor's table is not touched
    /// (no lock taken): the hot path of a connection that waits between turns.
    ///
    /// Errors: `fd` is not registered (`NotFound`), the key is
    /// [`RESERVED_KEY`](crate::RESERVED_KEY) (`InvalidInput`), the operating system's refusal.
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let registrar = reactor.registrar()?;
    /// let (mut conn, mut peer) = UnixStream::pair()?;
    /// registrar.register(&conn, 3, Interest::READABLE)?;
    /// peer.write_all(b"ab")?;
    /// assert_eq!(reactor.select(Some(Duration::from_secs(5)))?.len(), 1);
    /// conn.read_exact(&mut [0u8; 1])?; // one byte is left: no new edge will come for it
    /// assert!(reactor.select(Some(Duration::ZERO))?.is_empty());
    /// registrar.rearm(&conn, 3, Interest::READABLE)?;
    /// assert_eq!(reactor.select(Some(Duration::from_secs(5)))?[0].key, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn rearm(&self, fd: &impl AsRawFd, key: usize, interest: Interest) -> io::Result<()> {
        reactor::rearm(&self.inner.registry, fd.as_raw_fd(), key, interest)
    }

    /// Stops watching `fd`, as [`Reactor::unregister`](crate::Reactor::unregister) does, from
    /// any thread.
    ///
    /// Errors: `fd` is not registered (`NotFound`) or already closed (`EBADF`).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Reactor};
    /// use std::net::UdpSocket;
    ///
    /// let reactor = Reactor::new()?;
    /// let registrar = reactor.registrar()?;
    /// let sock = UdpSocket::bind("127.0.0.1:0")?;
    /// reactor.register(&sock, 1, Interest::READABLE)?;
    /// registrar.unregister(&sock)?; // registered by the reactor, unregistered here
    /// assert!(reactor.unregister(&sock).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unregister(&self, fd: &impl AsRawFd) -> io::Result<()> {
        reactor::unregister(
            &self.inner.registry,
            &self.inner.registrations,
            fd.as_raw_fd(),
        )
    }
}
