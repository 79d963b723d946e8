//! [`ConnectionWriter`]: a cloneable writer to a stream connection, for other threads, safe
//! beside the connection's own turns.

use crate::deadline::{Deadlines, WriteLock, send_all};
use crate::transport::{Io, WeakIo};
use std::{fmt, io, sync::Arc, time::Duration};

/// A writer to one stream connection that any thread may hold and use, while the connection's
/// handler runs a turn or while the connection waits between turns: made by
/// [`StreamRequest::writer`](crate::StreamRequest::writer). `Clone + Send + Sync`.
///
/// Each [`write_all`](Self::write_all) sends its bytes whole: it is serialized with the other
/// writers of the connection and with the handler's own `wfile` writes (a per-connection lock,
/// held for one write), so two messages never interleave. A write is bound by the request's
/// [`write_timeout`](crate::StreamOptions::write_timeout) (no progress for that long fails
/// with `TimedOut`; renewed by each send that moves bytes), or by
/// [`with_write_timeout`](Self::with_write_timeout)'s. With neither, a client that never reads
/// holds the writer, and the lock, until it does: set one.
///
/// The writer does not keep the connection open: once the server closed it (the request
/// ended), writes fail with `NotConnected`. A buffered `wfile`'s bytes reach the client when it
/// flushes (at the end of each turn at the latest); they are not ordered with this writer's.
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{StopServer, finish_request, server_context};
/// use sockserve_handler::{ConnectionWriter, StreamRequest};
/// use sockserve_handler::socket::{socketpair, Family, Type};
/// use std::{io::Read, sync::{Arc, Mutex}, thread};
///
/// # #[derive(Debug)] struct NoStop;
/// # impl StopServer for NoStop {
/// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
/// #     fn request_shutdown(&self) {}
/// # }
/// let kept: Arc<Mutex<Option<ConnectionWriter>>> = Arc::default();
/// let room = Arc::clone(&kept);
/// let mut handler = move |req: &mut StreamRequest| {
///     let writer = req.writer();
///     *room.lock().unwrap() = Some(writer.clone());
///     // Another thread writes to this connection, beside the handler's own writes.
///     thread::spawn(move || writer.write_all(b"from elsewhere\n")).join().unwrap()
/// };
/// let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
/// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
/// finish_request(&mut handler, Arc::new(server_side), "@c".parse()?, ctx)?;
/// let mut got = String::new();
/// client.read_to_string(&mut got)?;
/// assert_eq!(got, "from elsewhere\n");
/// // The request ended and its connection closed: the writer kept says so.
/// let late = kept.lock().unwrap().take().unwrap();
/// assert_eq!(late.write_all(b"late").unwrap_err().kind(), std::io::ErrorKind::NotConnected);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ConnectionWriter {
    io: WeakIo,
    lock: WriteLock,
    deadlines: Deadlines,
}

impl ConnectionWriter {
    pub(crate) fn new(io: &Io, lock: &WriteLock, deadlines: Deadlines) -> Self {
        ConnectionWriter {
            io: io.downgrade(),
            lock: Arc::clone(lock),
            deadlines,
        }
    }

    /// The same writer with its own write timeout in place of the request's
    /// [`write_timeout`](crate::StreamOptions::write_timeout): a write fails with `TimedOut`
    /// when the client takes none of its bytes for `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{ConnectionWriter, StreamRequest};
    /// use std::time::Duration;
    ///
    /// fn patient(req: &StreamRequest) -> ConnectionWriter {
    ///     req.writer().with_write_timeout(Some(Duration::from_secs(10)))
    /// }
    /// # let _ = patient;
    /// ```
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.deadlines = self.deadlines.with_write(timeout);
        self
    }

    /// Sends all of `data` (Python's `sendall`), whole, serialized with the connection's other
    /// writes.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the request ended; `TimedOut` when the write made no progress for
    /// the write timeout; the OS error (`BrokenPipe`, `ConnectionReset`) of a client gone.
    ///
    /// # Examples
    ///
    /// See [`ConnectionWriter`].
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let io = self.io.upgrade().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection's request has ended",
            )
        })?;
        send_all(&io, &self.lock, &self.deadlines, data)
    }

    /// Whether the connection's request is still open (a write may still reach the client).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::ConnectionWriter;
    ///
    /// fn open(writers: &[ConnectionWriter]) -> usize {
    ///     writers.iter().filter(|w| w.is_open()).count()
    /// }
    /// # let _ = open;
    /// ```
    pub fn is_open(&self) -> bool {
        self.io.is_open()
    }
}

impl io::Write for &ConnectionWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        ConnectionWriter::write_all(self, data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        ConnectionWriter::write_all(self, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for ConnectionWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionWriter")
            .field("open", &self.is_open())
            .field("deadlines", &self.deadlines)
            .finish()
    }
}
