//! Data transfer on a [`Socket`]: `recv*`, `send*`, and the `Read`/`Write` impls.
//!
//! Every send passes `MSG_NOSIGNAL`, so a closed peer gives `BrokenPipe` instead of `SIGPIPE`.
//! The `_by` calls (`recv_into_by`, `send_by`, `sendall_by`) take an absolute deadline of
//! their own besides the socket's timeout.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::sys::{self, Wait};
use crate::timeout::Mode;
use crate::{Address, Socket, ToAddrs};

impl Socket {
    /// Receives up to `bufsize` bytes (Python's `recv`). An empty result on a stream socket
    /// means the peer closed its side (orderly end-of-file); `recv(0)` is empty too.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, mut b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"ping")?;
    /// assert_eq!(b.recv(1024)?, b"ping");
    /// drop(a);
    /// assert!(b.recv(1024)?.is_empty());
    /// # b.close()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv(&self, bufsize: usize) -> io::Result<Vec<u8>> {
        let mut buf = sys::receive_buffer(bufsize)?;
        let n = self.call(Wait::Readable, |s, flags| {
            s.recv_with_flags(buf.spare_capacity_mut(), flags)
        })?;
        sys::set_received(&mut buf, n);
        Ok(buf)
    }

    /// Receives into `buf`, returning the count (Python's `recv_into`).
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// let n = b.recv_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.call(Wait::Readable, |s, flags| {
            s.recv_with_flags(sys::as_uninit(buf), flags)
        })
    }

    /// Receives up to `bufsize` bytes and the sender's address (Python's `recvfrom`). For
    /// datagrams the excess of a longer datagram is discarded. An unbound Unix sender, or a
    /// connected stream socket, gives [`Address::Unnamed`].
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let server = Socket::new(Family::Inet, Type::Datagram)?;
    /// server.bind("127.0.0.1:0")?;
    /// let client = Socket::new(Family::Inet, Type::Datagram)?;
    /// client.bind("127.0.0.1:0")?;
    /// client.sendto(b"hi", server.getsockname()?)?;
    /// let (data, from) = server.recvfrom(1500)?;
    /// assert_eq!((data.as_slice(), from), (&b"hi"[..], client.getsockname()?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recvfrom(&self, bufsize: usize) -> io::Result<(Vec<u8>, Address)> {
        let mut buf = sys::receive_buffer(bufsize)?;
        let (n, sa) = self.call(Wait::Readable, |s, flags| {
            s.recv_from_with_flags(buf.spare_capacity_mut(), flags)
        })?;
        sys::set_received(&mut buf, n);
        Ok((buf, Address::from_sockaddr(&sa)))
    }

    /// Receives into `buf`, returning the count and the sender (Python's `recvfrom_into`).
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let server = Socket::new(Family::Inet, Type::Datagram)?;
    /// server.bind("127.0.0.1:0")?;
    /// let client = Socket::new(Family::Inet, Type::Datagram)?;
    /// client.sendto(b"hello", server.getsockname()?)?;
    /// let mut buf = [0u8; 3];
    /// let (n, _from) = server.recvfrom_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hel"); // the rest of the datagram is discarded
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recvfrom_into(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        let (n, sa) = self.call(Wait::Readable, |s, flags| {
            s.recv_from_with_flags(sys::as_uninit(buf), flags)
        })?;
        Ok((n, Address::from_sockaddr(&sa)))
    }

    /// Like [`recvfrom_into`](Socket::recvfrom_into), but never waits, whatever the timeout:
    /// `WouldBlock` if no datagram is queued (`MSG_DONTWAIT`). For servers that were told the
    /// socket is readable but share it with other threads, which may have taken the datagram.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let sock = Socket::new(Family::Inet, Type::Datagram)?;
    /// sock.bind("127.0.0.1:0")?;
    /// let mut buf = [0u8; 16];
    /// let err = sock.recvfrom_into_nowait(&mut buf).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recvfrom_into_nowait(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        let (n, sa) = self.call_in(Mode::NonBlocking, Wait::Readable, |s, flags| {
            s.recv_from_with_flags(sys::as_uninit(buf), flags)
        })?;
        Ok((n, Address::from_sockaddr(&sa)))
    }

    /// Like [`recvfrom_into_nowait`](Socket::recvfrom_into_nowait), but into the spare
    /// capacity of `buf` (`buf.capacity() - buf.len()` bytes of room), appending what arrived:
    /// nothing is zeroed or touched beyond what the kernel writes, so a large reserved buffer
    /// costs memory only as large datagrams arrive. A datagram longer than the room is cut;
    /// with no room at all it is discarded, so reserve first. Returns the count appended.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Datagram)?;
    /// let mut buf = Vec::with_capacity(1 << 20); // reserved, not touched
    /// let err = b.recvfrom_spare_nowait(&mut buf).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// a.send(b"ping")?;
    /// let (n, _unnamed) = b.recvfrom_spare_nowait(&mut buf)?;
    /// assert_eq!((n, buf.as_slice()), (4, &b"ping"[..]));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recvfrom_spare_nowait(&self, buf: &mut Vec<u8>) -> io::Result<(usize, Address)> {
        let (n, sa) = self.call_in(Mode::NonBlocking, Wait::Readable, |s, flags| {
            s.recv_from_with_flags(buf.spare_capacity_mut(), flags)
        })?;
        let n = sys::set_received(buf, n);
        Ok((n, Address::from_sockaddr(&sa)))
    }

    /// Like [`recvfrom_spare_nowait`](Socket::recvfrom_spare_nowait), but returns the
    /// datagram's real length (`MSG_TRUNC`), which is larger than the room when the datagram
    /// was cut: `min(length, room)` bytes are appended either way. A datagram server uses it
    /// to refuse a cut datagram rather than hand it on as if whole.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Datagram)?;
    /// a.send(b"0123456789")?;
    /// let mut buf = Vec::with_capacity(4);
    /// let (length, _unnamed) = b.recvfrom_spare_trunc_nowait(&mut buf)?;
    /// assert_eq!((length, buf.as_slice()), (10, &b"0123"[..])); // cut: 10 > 4
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recvfrom_spare_trunc_nowait(&self, buf: &mut Vec<u8>) -> io::Result<(usize, Address)> {
        let (length, sa) = self.call_in(Mode::NonBlocking, Wait::Readable, |s, flags| {
            s.recv_from_with_flags(buf.spare_capacity_mut(), flags | sys::TRUNC)
        })?;
        // `set_received` clamps to the room: the kernel wrote no more than that.
        sys::set_received(buf, length);
        Ok((length, Address::from_sockaddr(&sa)))
    }

    /// Sends some of `data`, returning how much was sent, which may be less (Python's `send`).
    /// A closed peer gives `BrokenPipe` (or `ConnectionReset`), never `SIGPIPE`.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// let n = a.send(b"data")?;
    /// assert_eq!(b.recv(n)?, b"data");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        self.call(Wait::Writable, |s, flags| {
            s.send_with_flags(data, flags | sys::SEND_FLAGS)
        })
    }

    /// Sends all of `data` (Python's `sendall`). A timeout bounds the whole call, not each
    /// send; on error there is no telling how much was sent.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"all of it")?;
    /// a.shutdown(std::net::Shutdown::Write)?;
    /// let mut got = Vec::new();
    /// std::io::Read::read_to_end(&mut &b, &mut got)?;
    /// assert_eq!(got, b"all of it");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sendall(&self, data: &[u8]) -> io::Result<()> {
        // One deadline for the whole call (Python 3.5+).
        self.sendall_in(Mode::start(self.gettimeout()), data)
    }

    /// `sendall` in `mode`: one mode, so one deadline, for every send of the call.
    fn sendall_in(&self, mode: Mode, data: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        while sent < data.len() {
            let rest = &data[sent..];
            let n = self.call_in(mode, Wait::Writable, |s, flags| {
                s.send_with_flags(rest, flags | sys::SEND_FLAGS)
            })?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0"));
            }
            sent += n;
        }
        Ok(())
    }

    /// Like [`recv_into`](Socket::recv_into), but done by `deadline` whatever the socket's
    /// timeout mode: the call waits until the earlier of `deadline` and the socket's own
    /// timeout, then fails with `TimedOut` ("timed out"). `None` is `recv_into` itself.
    ///
    /// A deadline that has already passed fails at once, even if bytes are waiting (as Go's
    /// `SetReadDeadline`): after it, every call fails. A non-blocking socket
    /// ([`setblocking(false)`](Socket::setblocking)) still never waits (`WouldBlock`). The fd's
    /// `O_NONBLOCK` flag is neither read nor changed: a blocking socket waits with
    /// `MSG_DONTWAIT` and `poll`, so a deadline per call costs no `fcntl` (unlike
    /// [`settimeout`](Socket::settimeout) before each call).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockserve_socket::{socketpair, Family, Type};
    ///
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// let mut buf = [0u8; 16];
    /// // b is blocking (no timeout), yet this read gives up after 50 ms.
    /// let deadline = Instant::now() + Duration::from_millis(50);
    /// let err = b.recv_into_by(&mut buf, Some(deadline)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// assert!(Instant::now() >= deadline);
    /// assert_eq!(b.gettimeout(), None); // the socket's mode is untouched
    ///
    /// a.sendall(b"abc")?;
    /// let n = b.recv_into_by(&mut buf, Some(Instant::now() + Duration::from_secs(10)))?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_into_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let mode = Mode::start_by(self.gettimeout(), deadline)?;
        self.call_in(mode, Wait::Readable, |s, flags| {
            s.recv_with_flags(sys::as_uninit(buf), flags)
        })
    }

    /// Like [`send`](Socket::send) (some of `data`, maybe less), but done by `deadline`: it
    /// waits for room to write until the earlier of `deadline` and the socket's own timeout,
    /// then fails with `TimedOut`. `None` is `send` itself; a passed deadline fails at once;
    /// see [`recv_into_by`](Socket::recv_into_by) for the rest.
    ///
    /// A loop of `send_by` with a deadline renewed after each send that made progress is a
    /// write timeout that a slow but steady reader never hits, where
    /// [`sendall_by`](Socket::sendall_by) bounds the whole transfer.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockserve_socket::{socketpair, Family, Type};
    ///
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// // Nobody reads _b: fill the buffers, then the next send has no room until the deadline.
    /// let chunk = vec![0u8; 65536];
    /// let err = loop {
    ///     match a.send_by(&chunk, Some(Instant::now() + Duration::from_millis(50))) {
    ///         Ok(n) => assert!(n > 0),
    ///         Err(e) => break e,
    ///     }
    /// };
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        let mode = Mode::start_by(self.gettimeout(), deadline)?;
        self.call_in(mode, Wait::Writable, |s, flags| {
            s.send_with_flags(data, flags | sys::SEND_FLAGS)
        })
    }

    /// Like [`sendall`](Socket::sendall), but done by `deadline`: the whole call ends by the
    /// earlier of `deadline` and the socket's own timeout (counted from the start of the call),
    /// else fails with `TimedOut`, with no telling how much was sent. `None` is `sendall`
    /// itself; a passed deadline fails at once; see [`recv_into_by`](Socket::recv_into_by) for
    /// the rest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockserve_socket::{socketpair, Family, Type};
    ///
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall_by(b"all of it", Some(Instant::now() + Duration::from_secs(10)))?;
    /// assert_eq!(b.recv(64)?, b"all of it");
    /// // Past the deadline nothing is sent.
    /// let past = Instant::now();
    /// let err = a.sendall_by(b"late", Some(past)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sendall_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<()> {
        let mode = Mode::start_by(self.gettimeout(), deadline)?;
        self.sendall_in(mode, data)
    }

    /// Sends a datagram to `addr` (Python's `sendto`), returning the bytes sent.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    /// let server = Socket::new(Family::Inet, Type::Datagram)?;
    /// server.bind("127.0.0.1:0")?;
    /// let client = Socket::new(Family::Inet, Type::Datagram)?;
    /// assert_eq!(client.sendto(b"abc", server.getsockname()?)?, 3);
    /// assert_eq!(server.recv(16)?, b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sendto(&self, data: &[u8], addr: impl ToAddrs) -> io::Result<usize> {
        let sa = self.pick_sockaddr(addr)?;
        self.call(Wait::Writable, |s, flags| {
            s.send_to_with_flags(data, &sa, flags | sys::SEND_FLAGS)
        })
    }
}

/// Reads with [`Socket::recv_into`]: timeouts are honoured, `Ok(0)` is end-of-file.
impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }
}

/// Reads with [`Socket::recv_into`].
impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }
}

/// `write` is one [`Socket::send`] (it may be partial; `write_all` loops); `flush` does nothing.
impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `write` is one [`Socket::send`]; `flush` does nothing.
impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
