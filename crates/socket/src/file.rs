//! Python's `socket.makefile` in Rust form: [`SocketReader`] (buffered reads) and
//! [`SocketWriter`] (every write sent in full), over any `Borrow<Socket>`.
//!
//! A reader and a writer can exist at once over one socket: both over `&Socket`, or both over
//! an `Arc<Socket>` (then they are `Send` and can go to another thread). Neither closes the
//! socket; Python's deferred close (`_io_refs`) is the borrow checker's job here.

use std::borrow::Borrow;
use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::Socket;

/// Python's `io.DEFAULT_BUFFER_SIZE`: the reader's default capacity.
///
/// ```
/// use sockserve_socket::{socketpair, Family, SocketReader, Type, DEFAULT_BUFFER_SIZE};
///
/// let (_a, b) = socketpair(Family::Unix, Type::Stream)?;
/// assert_eq!(SocketReader::new(&b).capacity(), DEFAULT_BUFFER_SIZE);
/// assert_eq!(b.makefile_reader(None).capacity(), DEFAULT_BUFFER_SIZE);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const DEFAULT_BUFFER_SIZE: usize = 8192;

/// A buffered reader over a socket (Python's `makefile('rb')`): `Read` + `BufRead`.
///
/// Timeouts of the socket apply to each read that reaches the socket; after a `TimedOut` the
/// buffered data is kept and reading can go on.
///
/// ```
/// use std::io::BufRead;
/// use sockserve_socket::{socketpair, Family, SocketReader, Type};
///
/// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
/// a.sendall(b"first line\nsecond line\n")?;
/// let mut reader = SocketReader::new(&b);
/// let mut line = String::new();
/// reader.read_line(&mut line)?;
/// assert_eq!(line, "first line\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SocketReader<S: Borrow<Socket>> {
    socket: S,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
}

impl<S: Borrow<Socket>> SocketReader<S> {
    /// A reader with a buffer of [`DEFAULT_BUFFER_SIZE`] (8192) bytes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// let reader = SocketReader::new(Arc::new(a));
    /// assert_eq!(reader.capacity(), 8192);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(socket: S) -> SocketReader<S> {
        SocketReader::with_capacity(DEFAULT_BUFFER_SIZE, socket)
    }

    /// A reader with a buffer of `capacity` bytes (at least 1).
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// assert_eq!(SocketReader::with_capacity(64, &a).capacity(), 64);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_capacity(capacity: usize, socket: S) -> SocketReader<S> {
        SocketReader {
            socket,
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            pos: 0,
            filled: 0,
        }
    }

    /// The socket.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// let reader = SocketReader::new(&a);
    /// assert_eq!(reader.get_ref().fileno(), a.fileno());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref(&self) -> &Socket {
        self.socket.borrow()
    }

    /// The buffer's size.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// assert_eq!(SocketReader::new(&a).capacity(), 8192);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The bytes read from the socket but not yet consumed.
    ///
    /// ```
    /// use std::io::BufRead;
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"xy")?;
    /// let mut reader = SocketReader::new(&b);
    /// reader.fill_buf()?;
    /// assert_eq!(reader.buffer(), b"xy");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The socket back; buffered bytes not yet consumed are lost.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketReader, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// let a = SocketReader::new(a).into_inner();
    /// assert!(!a.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.socket
    }
}

impl<S: Borrow<Socket>> Read for SocketReader<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A read at least as large as the buffer, with the buffer empty, skips the copy.
        if self.pos == self.filled && out.len() >= self.buf.len() {
            return self.socket.borrow().recv_into(out);
        }
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<S: Borrow<Socket>> BufRead for SocketReader<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            let n = self.socket.borrow().recv_into(&mut self.buf)?;
            self.pos = 0;
            self.filled = n;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}

impl<S: Borrow<Socket>> fmt::Debug for SocketReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketReader")
            .field("socket", self.socket.borrow())
            .field("buffered", &(self.filled - self.pos))
            .field("capacity", &self.buf.len())
            .finish()
    }
}

/// A writer over a socket (Python's `makefile('wb')`): each `write` sends everything with
/// [`Socket::sendall`] and returns the full length; `flush` does nothing (nothing is buffered).
///
/// ```
/// use std::io::Write;
/// use sockserve_socket::{socketpair, Family, SocketWriter, Type};
///
/// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
/// let mut writer = SocketWriter::new(&a);
/// writeln!(writer, "hello {}", 42)?;
/// assert_eq!(b.recv(64)?, b"hello 42\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SocketWriter<S: Borrow<Socket>> {
    socket: S,
}

impl<S: Borrow<Socket>> SocketWriter<S> {
    /// A writer over `socket`.
    ///
    /// ```
    /// use std::{io::Write, sync::Arc};
    /// use sockserve_socket::{socketpair, Family, SocketWriter, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// assert_eq!(SocketWriter::new(Arc::new(a)).write(b"abc")?, 3);
    /// assert_eq!(b.recv(8)?, b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(socket: S) -> SocketWriter<S> {
        SocketWriter { socket }
    }

    /// The socket.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketWriter, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// assert_eq!(SocketWriter::new(&a).get_ref().fileno(), a.fileno());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref(&self) -> &Socket {
        self.socket.borrow()
    }

    /// The socket back.
    ///
    /// ```
    /// use sockserve_socket::{socketpair, Family, SocketWriter, Type};
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// let a = SocketWriter::new(a).into_inner();
    /// assert!(!a.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.socket
    }
}

impl<S: Borrow<Socket>> Write for SocketWriter<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.socket.borrow().sendall(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Borrow<Socket>> fmt::Debug for SocketWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketWriter")
            .field("socket", self.socket.borrow())
            .finish()
    }
}

impl Socket {
    /// A buffered reader over this socket (Python's `makefile('rb', buffering)`); `None` gives
    /// [`DEFAULT_BUFFER_SIZE`]. Use [`SocketReader::new`] with an `Arc<Socket>` for a reader
    /// that owns its socket.
    ///
    /// ```
    /// use std::io::Read;
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// a.sendall(b"abc")?;
    /// drop(a);
    /// let mut all = String::new();
    /// b.makefile_reader(None).read_to_string(&mut all)?;
    /// assert_eq!(all, "abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn makefile_reader(&self, bufsize: Option<usize>) -> SocketReader<&Socket> {
        SocketReader::with_capacity(bufsize.unwrap_or(DEFAULT_BUFFER_SIZE), self)
    }

    /// A writer over this socket (Python's `makefile('wb')`).
    ///
    /// ```
    /// use std::io::Write;
    /// use sockserve_socket::{socketpair, Family, Type};
    /// let (a, b) = socketpair(Family::Unix, Type::Stream)?;
    /// let (mut r, mut w) = (b.makefile_reader(None), a.makefile_writer());
    /// w.write_all(b"x")?;
    /// assert_eq!(std::io::BufRead::fill_buf(&mut r)?, b"x");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn makefile_writer(&self) -> SocketWriter<&Socket> {
        SocketWriter::new(self)
    }
}
