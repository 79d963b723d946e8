//! Data transfer on a [`Socket`]: `recv*`, `send*`, and the `Read`/`Write` impls.
//!
//! Every send passes `MSG_NOSIGNAL`, so a closed peer gives `BrokenPipe` instead of `SIGPIPE`.

use std::io::{self, Read, Write};

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
        let mode = Mode::start(self.gettimeout());
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
