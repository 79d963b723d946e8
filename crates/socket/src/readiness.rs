//! Looking at a connection's input without taking it: `peek_nowait` and `wait_readable_by`,
//! what a server needs for connections that wait between a handler's turns.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::Socket;
use crate::sys::{self, Wait};
use crate::timeout::Mode;

impl Socket {
    /// Copies up to `buf.len()` bytes of what is queued to read, without taking them and
    /// without waiting, whatever the timeout (`recv(MSG_PEEK | MSG_DONTWAIT)`). `Ok(0)` on a
    /// stream socket is the peer's end of file, `WouldBlock` an empty queue, another error
    /// (`ConnectionReset`) a broken connection: a server learns so what a waiting connection
    /// has for its handler.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.peek_nowait(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// a.sendall(b"hi")?;
    /// assert_eq!(b.peek_nowait(&mut buf)?, 2);
    /// assert_eq!(b.recv(8)?, b"hi"); // still there
    /// drop(a);
    /// assert_eq!(b.peek_nowait(&mut buf)?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek_nowait(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.call_in(Mode::NonBlocking, Wait::Readable, |s, flags| {
            s.recv_with_flags(sys::as_uninit(buf), flags | sys::PEEK)
        })
    }

    /// Waits until the socket is readable (input, end of file or an error to report) or
    /// `deadline` passes (`TimedOut`); `None` waits as long as it takes. Takes nothing.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// let soon = Instant::now() + Duration::from_millis(20);
    /// assert_eq!(b.wait_readable_by(Some(soon)).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// a.sendall(b"x")?;
    /// b.wait_readable_by(None)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_readable_by(&self, deadline: Option<Instant>) -> io::Result<()> {
        sys::wait(self.sock()?.as_raw_fd(), Wait::Readable, deadline)
    }

    /// As [`wait_readable_by`](Socket::wait_readable_by), and says what made the socket
    /// readable: [`Readable::Input`] when input is queued and the peer has not closed its side
    /// (a read takes the input without waiting; no peek is needed to know it), else
    /// [`Readable::Hangup`] (`POLLRDHUP`, `POLLHUP` or `POLLERR`: the end of file or an error
    /// is there, maybe after some input; [`peek_nowait`](Socket::peek_nowait) tells which).
    /// One `poll(2)`: what a server uses to wait briefly for a connection's next request.
    /// `POLLRDHUP` is Linux's: elsewhere a peer's end of file is reported as `Input` (the read
    /// finds it), and only a broken connection as `Hangup`.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, Readable, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"x")?;
    /// assert_eq!(b.wait_input_by(None)?, Readable::Input);
    /// drop(a);
    /// assert_eq!(b.wait_input_by(None)?, Readable::Hangup); // "x" is still queued
    /// assert_eq!(b.recv(8)?, b"x");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_input_by(&self, deadline: Option<Instant>) -> io::Result<Readable> {
        let fd = self.sock()?.as_raw_fd();
        let revents = sys::wait_events(fd, sys::INPUT_OR_HANGUP, deadline)?;
        Ok(if revents & sys::HANGUP != 0 {
            Readable::Hangup
        } else {
            Readable::Input
        })
    }
}

/// What made a socket readable ([`Socket::wait_input_by`]).
///
/// # Examples
///
/// ```
/// use sockserve_socket::{socketpair, Family, Readable, Type};
/// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
/// a.shutdown(std::net::Shutdown::Write)?;
/// assert_eq!(b.wait_input_by(None)?, Readable::Hangup);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readable {
    /// Input is queued, and the peer has not closed its side.
    Input,
    /// The peer closed its side or the connection broke, maybe after some queued input.
    Hangup,
}
