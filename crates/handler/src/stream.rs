//! `StreamRequest` (Python's `StreamRequestHandler`): a connection with `rfile` and `wfile`.

use crate::deadline::{ConnectionReader, DeadlineWriter, Deadlines, close_transport};
use crate::readbuf::Buffered;
use crate::transport::{Io, Transport};
use crate::{ConnectionWriter, Request, ServerContext, SharedState};
use socket::{Address, Family, Socket, opt};
use std::{
    fmt,
    io::{self, BufRead, BufWriter, Read, Write},
    sync::Arc,
    time::{Duration, Instant},
};

/// Options of a stream request: Python's `StreamRequestHandler` class attributes, and the
/// deadlines that keep a slow, silent or non-reading client from holding a worker.
///
/// # Deadlines
///
/// Four limits bound the time a connection's reads and writes may take. Each is off (`None`)
/// by default, as in Python, whose `StreamRequestHandler` waits for a client as long as it
/// takes: a default deadline would cut off the clients of programs ported from Python that
/// legitimately stay quiet (a chat member, a long poll, an interactive session). A server
/// that faces the network should set them; the examples of this project do.
///
/// | option | a read or write fails when |
/// |---|---|
/// | [`timeout`](Self::timeout) (Python's) | a read gets no byte, or a write is not done, within it |
/// | [`idle_timeout`](Self::idle_timeout) | a read gets no byte within it |
/// | [`write_timeout`](Self::write_timeout) | a write makes no progress within it |
/// | [`turn_timeout`](Self::turn_timeout) | the request's turn (setup to finish) has lasted it |
///
/// What the handler sees when one passes: its read or write on `rfile` / `wfile` returns an
/// `io::Error` of kind [`TimedOut`](io::ErrorKind::TimedOut) whose message names the limit
/// and the option that sets it, such as `timed out: idle for 30s, no byte received
/// (StreamOptions::idle_timeout)`. Bytes already buffered in `rfile` stay readable. Returned
/// with `?`, the error fails the request, and the server's default `handle_error` reports
/// it at info level, aggregated, not as an error line per client. Calls on
/// [`StreamRequest::connection`] itself are bound only by the connection's own timeout;
/// the socket's deadline calls (`recv_into_by`, `send_by`, `sendall_by`) with
/// [`StreamRequest::turn_deadline`] bound them by the turn too.
///
/// # Examples
///
/// ```
/// use sockserve_handler::StreamOptions;
/// use std::time::Duration;
///
/// let options = StreamOptions::default()
///     .rbufsize(65536)
///     .wbufsize(8192)
///     .timeout(Some(Duration::from_secs(10)))
///     .idle_timeout(Some(Duration::from_secs(30)))
///     .write_timeout(Some(Duration::from_secs(30)))
///     .turn_timeout(Some(Duration::from_secs(300)))
///     .line_limit(Some(1 << 20))
///     .disable_nagle_algorithm(false);
/// assert_eq!(options.rbufsize, 65536);
/// assert_eq!(StreamOptions::default().wbufsize, 0);
/// assert_eq!(StreamOptions::default().line_limit, Some(65_536));
/// assert!(StreamOptions::default().disable_nagle_algorithm); // not Python's default: see there
/// // No deadline by default, as in Python.
/// let default = StreamOptions::default();
/// assert_eq!(
///     (default.timeout, default.idle_timeout, default.write_timeout, default.turn_timeout),
///     (None, None, None, None)
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Capacity of `rfile`'s buffer; 0 reads unbuffered (one byte at a time for lines).
    /// Default 8192, Python's `io.DEFAULT_BUFFER_SIZE`.
    pub rbufsize: usize,
    /// Capacity of `wfile`'s buffer; 0 (the default) makes every write send at once.
    pub wbufsize: usize,
    /// Timeout of every read and write on the connection (Python's
    /// `StreamRequestHandler.timeout`, set on the connection with `settimeout`, so that calls
    /// on [`StreamRequest::connection`] have it too): a read that gets no byte, or a write
    /// that is not done, within it fails with `TimedOut`. `None` (the default, Python's)
    /// blocks; `Some(ZERO)` makes the connection non-blocking (`WouldBlock`).
    pub timeout: Option<Duration>,
    /// How long a read may wait for its next byte: a read of `rfile` that receives nothing
    /// for this long fails with `TimedOut` (`idle for 30s, no byte received
    /// (StreamOptions::idle_timeout)`). Counted from the start of each read that reaches the
    /// connection, so a client is idle only while the handler waits for its input: one
    /// downloading a large reply while sending nothing is never idle. Once connections wait in
    /// the reactor between a handler's turns (see [`Next`](crate::Next)), this limit bounds
    /// that wait too.
    ///
    /// Default `None` (wait as long as it takes), Python's behaviour: a client that is silent
    /// on purpose (a chat member, a long poll) must keep working in a program ported from
    /// Python. A server facing the network should set it.
    pub idle_timeout: Option<Duration>,
    /// How long a write of `wfile` may make no progress: a write fails with `TimedOut` when
    /// the client takes none of its bytes for this long (`a write made no progress for 30s
    /// (StreamOptions::write_timeout)`), so a client that never reads cannot hold a worker
    /// forever. Renewed by each send that makes progress: a large reply to a slow but steady
    /// reader is not cut off (the [`turn_timeout`](Self::turn_timeout) bounds it as a
    /// whole). How much was sent of a failed write is unknown, as with Python's `sendall`.
    ///
    /// Default `None`, Python's (a write waits as long as it takes), for the same reason as
    /// [`idle_timeout`](Self::idle_timeout)'s.
    pub write_timeout: Option<Duration>,
    /// How long the request's whole turn may last, from its setup (the request's own, before
    /// the handler's `setup`) to its finish: every read and write of `rfile` and `wfile`
    /// after it has passed fails with `TimedOut` (`the request's turn is over, 60s after its
    /// setup (StreamOptions::turn_timeout)`), even one that would not wait, and one waiting
    /// when it passes fails then. A client that dribbles one byte a second, each read making
    /// progress, cannot hold a worker past it. A flush at the request's finish that fails
    /// so is logged at debug level, as any failed final flush.
    ///
    /// Default `None`, Python's (no bound on a request), for the same reason as
    /// [`idle_timeout`](Self::idle_timeout)'s: a session that lasts is the point of some
    /// programs.
    pub turn_timeout: Option<Duration>,
    /// The longest line `rfile`'s line reads return (`read_line`, `read_until`, `lines`,
    /// `split`), delimiter included: Python's `readline(limit)`, applied to every line read. A
    /// longer line is an `InvalidData` error naming this option, after the first `limit` bytes
    /// (kept in the caller's buffer, as Python's `readline(limit)` returns them); the rest of the
    /// line is still there to read. Default [`DEFAULT_LINE_LIMIT`] (64 KiB, the line limit of
    /// Python's `http.server`), so that a client sending an endless line cannot grow a
    /// handler's buffer without bound; `None` lifts it. Reads of bytes (`read`, `fill_buf`)
    /// are not limited. `Some(0)` is taken as `Some(1)`: every line read takes at least a
    /// byte, so a handler that reads on after the error still reaches the end of the input.
    pub line_limit: Option<usize>,
    /// Sets `TCP_NODELAY` on TCP connections; quietly not applied to Unix sockets.
    ///
    /// Default `true`, where Python's is `False`: with Nagle's algorithm on, a reply written
    /// in two writes (a header, then a body) waits for the client's delayed ACK of the first,
    /// 40 ms on Linux, before the second goes out; a keep-alive handler then serves 25 requests
    /// a second per connection. Go's `net` package sets `TCP_NODELAY` on every TCP connection
    /// for the same reason. The cost is more small packets for a handler that writes many tiny
    /// pieces unbuffered: give it a `wbufsize`, or set this to `false`.
    pub disable_nagle_algorithm: bool,
    /// Whether a new connection, once set up (the request's setup and the handler's `setup`
    /// run at the accept, as always), waits for its first input before its handler's first
    /// `handle`, as it waits between turns after [`Next::WaitForInput`](crate::Next): a client
    /// that connects and says nothing then holds no thread (threading: the worker that ran
    /// `setup` is free at once) and does not block the loop (sync). Under forking the child
    /// is forked at the accept, runs `setup` and waits on its own socket, as it does between
    /// turns: the handler's state lives in the child, so the parent cannot hold the wait
    /// (use threading for many silent clients).
    ///
    /// The wait is the same as one between turns: bounded by
    /// [`idle_timeout`](Self::idle_timeout) (from the end of `setup`) and
    /// [`turn_timeout`](Self::turn_timeout); a client that closes or resets the connection
    /// before its first byte ends it cleanly (`finish` once, `shutdown_request`, no error); a
    /// graceful stop ends it at once. What `setup` wrote to a buffered `wfile` is flushed
    /// before the wait.
    ///
    /// Default `false`, Python's behaviour: `handle` runs right after `setup`. A protocol in
    /// which the server speaks first in `handle` (a banner, a welcome, a prompt) needs that,
    /// or a `setup` that speaks instead. Set it for protocols in which the client speaks
    /// first (an echo, HTTP, a key-value store, a chat room).
    pub wait_for_first_input: bool,
}

/// The default of [`StreamOptions::line_limit`]: 64 KiB, Python's `http.server` line limit.
///
/// # Examples
///
/// ```
/// use sockserve_handler::{DEFAULT_LINE_LIMIT, StreamOptions};
///
/// assert_eq!(StreamOptions::default().line_limit, Some(DEFAULT_LINE_LIMIT));
/// ```
pub const DEFAULT_LINE_LIMIT: usize = 65_536;

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            rbufsize: 8192,
            wbufsize: 0,
            timeout: None,
            idle_timeout: None,
            write_timeout: None,
            turn_timeout: None,
            line_limit: Some(DEFAULT_LINE_LIMIT),
            disable_nagle_algorithm: true,
            wait_for_first_input: false,
        }
    }
}

impl StreamOptions {
    /// Sets [`rbufsize`](Self::rbufsize).
    ///
    /// # Examples
    ///
    /// See [`StreamOptions`].
    pub fn rbufsize(mut self, size: usize) -> Self {
        self.rbufsize = size;
        self
    }

    /// Sets [`wbufsize`](Self::wbufsize).
    ///
    /// # Examples
    ///
    /// See [`StreamOptions`].
    pub fn wbufsize(mut self, size: usize) -> Self {
        self.wbufsize = size;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    ///
    /// # Examples
    ///
    /// See [`StreamOptions`].
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout); `None` (the default) for none.
    ///
    /// # Examples
    ///
    /// A silent client: the handler's read fails after 50 ms with `TimedOut`.
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, finish_request, server_context};
    /// use sockserve_handler::{HandlerExt, StreamOptions, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::{io::{self, BufRead}, sync::Arc, time::Duration};
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let options = StreamOptions::default().idle_timeout(Some(Duration::from_millis(50)));
    /// let mut handler = (|req: &mut StreamRequest| {
    ///     let mut line = String::new();
    ///     req.rfile.read_line(&mut line).map(drop)
    /// })
    /// .with_options(options);
    ///
    /// let (server_side, _silent_client) = socketpair(Family::Unix, Type::Stream)?;
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// let error = finish_request(&mut handler, Arc::new(server_side), "@c".parse()?, ctx)
    ///     .unwrap_err();
    /// assert!(error.is_timed_out());
    /// assert_eq!(error.io_error().map(io::Error::kind), Some(io::ErrorKind::TimedOut));
    /// assert!(error.to_string().contains("idle for 50ms"), "{error}");
    /// assert!(error.to_string().contains("StreamOptions::idle_timeout"), "{error}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout); `None` (the default) for none.
    ///
    /// # Examples
    ///
    /// A client that never reads: the handler's large write fails once the buffers are full
    /// and 50 ms pass with no progress.
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, finish_request, server_context};
    /// use sockserve_handler::{HandlerExt, StreamOptions, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::{io::Write, sync::Arc, time::Duration};
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let options = StreamOptions::default().write_timeout(Some(Duration::from_millis(50)));
    /// let mut handler = (|req: &mut StreamRequest| req.wfile.write_all(&vec![0; 16 << 20]))
    ///     .with_options(options);
    ///
    /// let (server_side, _never_reads) = socketpair(Family::Unix, Type::Stream)?;
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// let error = finish_request(&mut handler, Arc::new(server_side), "@c".parse()?, ctx)
    ///     .unwrap_err();
    /// assert!(error.is_timed_out());
    /// assert!(error.to_string().contains("StreamOptions::write_timeout"), "{error}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`turn_timeout`](Self::turn_timeout); `None` (the default) for none.
    ///
    /// # Examples
    ///
    /// A handler that reads and answers lines for as long as its client sends them: its turn
    /// ends 100 ms after its setup, however busy the client is.
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, finish_request, server_context};
    /// use sockserve_handler::{HandlerExt, StreamOptions, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::{io::Write, sync::Arc, thread, time::{Duration, Instant}};
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let options = StreamOptions::default().turn_timeout(Some(Duration::from_millis(100)));
    /// let mut handler = (|req: &mut StreamRequest| {
    ///     assert!(req.turn_deadline().is_some());
    ///     for line in req.rfile.split(b'\n') {
    ///         req.wfile.write_all(&line?)?;
    ///     }
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .with_options(options);
    ///
    /// let (server_side, client) = socketpair(Family::Unix, Type::Stream)?;
    /// // A busy client: a line every 10 ms, for up to 10 s, while its replies are read.
    /// let busy = thread::spawn(move || {
    ///     let started = Instant::now();
    ///     let mut reply = [0u8; 64];
    ///     while started.elapsed() < Duration::from_secs(10) {
    ///         if client.sendall(b"more\n").is_err() || client.recv_into(&mut reply).is_err() {
    ///             break;
    ///         }
    ///         thread::sleep(Duration::from_millis(10));
    ///     }
    /// });
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// let started = Instant::now();
    /// let error = finish_request(&mut handler, Arc::new(server_side), "@c".parse()?, ctx)
    ///     .unwrap_err();
    /// assert!(started.elapsed() < Duration::from_secs(5));
    /// assert!(error.to_string().contains("StreamOptions::turn_timeout"), "{error}");
    /// busy.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn turn_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.turn_timeout = timeout;
        self
    }

    /// Sets [`line_limit`](Self::line_limit); `None` for no limit.
    ///
    /// # Examples
    ///
    /// See [`StreamOptions`].
    pub fn line_limit(mut self, limit: Option<usize>) -> Self {
        self.line_limit = limit;
        self
    }

    /// Sets [`disable_nagle_algorithm`](Self::disable_nagle_algorithm).
    ///
    /// # Examples
    ///
    /// See [`StreamOptions`].
    pub fn disable_nagle_algorithm(mut self, on: bool) -> Self {
        self.disable_nagle_algorithm = on;
        self
    }

    /// Sets [`wait_for_first_input`](Self::wait_for_first_input).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamOptions;
    /// use std::time::Duration;
    ///
    /// // A client-speaks-first protocol: silent clients wait in the reactor, 30 s at most.
    /// let options = StreamOptions::default()
    ///     .wait_for_first_input(true)
    ///     .idle_timeout(Some(Duration::from_secs(30)));
    /// assert!(options.wait_for_first_input);
    /// assert!(!StreamOptions::default().wait_for_first_input); // Python's: handle at accept
    /// ```
    pub fn wait_for_first_input(mut self, on: bool) -> Self {
        self.wait_for_first_input = on;
        self
    }
}

/// `wfile` of a stream request: unbuffered (every write sends everything before it returns)
/// or buffered (`wbufsize > 0`, flushed when the request finishes).
///
/// A write never returns short: a 16 MiB write returns 16 MiB or an error. A write (or a
/// flush) that runs past one of the request's deadlines fails with `TimedOut`, its message
/// naming the option (see [`StreamOptions`]'s deadlines).
///
/// # Examples
///
/// ```
/// use sockserve_handler::StreamWriter;
/// use sockserve_handler::socket::{socketpair, Family, Type};
/// use std::{io::{Read, Write}, sync::Arc};
///
/// let (a, mut b) = socketpair(Family::Unix, Type::Stream)?;
/// let mut wfile = StreamWriter::new(Arc::new(a), 0);
/// assert_eq!(wfile.write(b"now")?, 3);
/// let mut got = [0; 3];
/// b.read_exact(&mut got)?;
/// assert_eq!(&got, b"now");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamWriter {
    inner: WriterKind,
}

enum WriterKind {
    Unbuffered(DeadlineWriter),
    Buffered(BufWriter<DeadlineWriter>),
}

impl StreamWriter {
    /// A writer over `connection`: unbuffered when `wbufsize` is 0, else buffered. Its writes
    /// are bound by the connection's timeout alone; a request's `wfile` also has the
    /// request's [`write_timeout`](StreamOptions::write_timeout) and
    /// [`turn_timeout`](StreamOptions::turn_timeout).
    ///
    /// # Examples
    ///
    /// See [`StreamWriter`].
    pub fn new(connection: Arc<Socket>, wbufsize: usize) -> Self {
        StreamWriter::with_deadlines(Io::new(connection, None), wbufsize, Deadlines::default())
    }

    /// A writer over `io` bound by `deadlines`.
    fn with_deadlines(io: Io, wbufsize: usize, deadlines: Deadlines) -> Self {
        let raw = DeadlineWriter::new(io, deadlines);
        let inner = if wbufsize == 0 {
            WriterKind::Unbuffered(raw)
        } else {
            WriterKind::Buffered(BufWriter::with_capacity(wbufsize, raw))
        };
        StreamWriter { inner }
    }

    /// Whether writes are buffered until `flush`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamWriter;
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::sync::Arc;
    ///
    /// let (a, _b) = socketpair(Family::Unix, Type::Stream)?;
    /// assert!(StreamWriter::new(Arc::new(a), 8192).is_buffered());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_buffered(&self) -> bool {
        matches!(self.inner, WriterKind::Buffered(_))
    }

    /// The writer under the buffer, if any.
    fn raw(&self) -> &DeadlineWriter {
        match &self.inner {
            WriterKind::Unbuffered(w) => w,
            WriterKind::Buffered(w) => w.get_ref(),
        }
    }
}

impl Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            WriterKind::Unbuffered(w) => w.write(buf),
            // BufWriter may return short when its buffer is partly full; callers of Python's
            // BufferedWriter never see that, so write everything here.
            WriterKind::Buffered(w) => w.write_all(buf).map(|()| buf.len()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            WriterKind::Unbuffered(w) => w.write_all(buf),
            WriterKind::Buffered(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            WriterKind::Unbuffered(w) => w.flush(),
            WriterKind::Buffered(w) => w.flush(),
        }
    }

    /// `write!` and `writeln!`: unbuffered, the whole formatted text goes out in one write,
    /// as Python's `self.wfile.write(f"...".encode())` does, not a write (and, with
    /// `TCP_NODELAY`, a segment) per piece of the format; a client's single `recv` sees it
    /// whole on loopback.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        match &mut self.inner {
            WriterKind::Unbuffered(w) => match args.as_str() {
                Some(text) => w.write_all(text.as_bytes()),
                None => w.write_all(fmt::format(args).as_bytes()),
            },
            WriterKind::Buffered(w) => w.write_fmt(args),
        }
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("buffered", &self.is_buffered())
            .finish_non_exhaustive()
    }
}

/// A stream request's `rfile` (Python's `self.rfile`): a buffered reader over the connection,
/// with `Read` and `BufRead` (`read_line`, `lines`, `fill_buf`, ...). Its type names no socket:
/// an encrypted connection stands behind it when a server layer installs a [`Transport`] (TLS). Its line reads stop at the
/// request's [`line_limit`](StreamOptions::line_limit). A read that runs past one of the
/// request's deadlines fails with `TimedOut`, naming the option (see [`StreamOptions`]'s
/// deadlines); what was buffered before stays readable.
///
/// # Examples
///
/// ```
/// use sockserve_handler::StreamRequest;
/// use std::io::BufRead;
///
/// fn first_line(req: &mut StreamRequest) -> std::io::Result<String> {
///     let mut line = String::new();
///     req.rfile.read_line(&mut line)?;
///     assert!(req.rfile.capacity() >= 1);
///     Ok(line)
/// }
/// # let _ = first_line;
/// ```
pub struct StreamReader {
    inner: Buffered<ConnectionReader>,
    /// [`StreamOptions::line_limit`].
    line_limit: Option<usize>,
    /// The buffer's capacity in a turn (`rbufsize`, at least 1); while the connection waits
    /// between turns with nothing buffered, the buffer is released.
    rbufsize: usize,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("connection", self.inner.get_ref())
            .field("buffered", &self.inner.buffer().len())
            .field("capacity", &self.inner.capacity())
            .field("line_limit", &self.line_limit)
            .finish()
    }
}

impl StreamReader {
    /// The longest line a line read returns ([`StreamOptions::line_limit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamRequest;
    ///
    /// fn limit(req: &StreamRequest) -> Option<usize> {
    ///     req.rfile.line_limit()
    /// }
    /// # let _ = limit;
    /// ```
    pub fn line_limit(&self) -> Option<usize> {
        self.line_limit
    }

    /// The size of the read buffer (`rbufsize`; 1 means unbuffered).
    ///
    /// # Examples
    ///
    /// See [`StreamReader`].
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The lines of the connection, each without its newline (Python's `for line in
    /// self.rfile`, but as `String`s: a line that is not UTF-8 is an error). `BufRead::lines`
    /// takes the reader by value; this borrows it, so `req.rfile.lines()` works in a handler
    /// (with `BufRead` imported, the trait's method is found first: write
    /// `req.rfile.by_ref().lines()` then).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{BoxError, StreamRequest};
    /// use std::io::Write;
    ///
    /// fn upper(req: &mut StreamRequest) -> Result<(), BoxError> {
    ///     for line in req.rfile.lines() {
    ///         writeln!(req.wfile, "{}", line?.to_uppercase())?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = upper;
    /// ```
    pub fn lines(&mut self) -> io::Lines<&mut StreamReader> {
        BufRead::lines(self)
    }

    /// The connection's bytes split at `byte`, without it (Python's `for line in self.rfile`
    /// with `byte` `b'\n'`, as bytes). Borrows the reader, as [`lines`](Self::lines).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{BoxError, StreamRequest};
    /// use std::io::Write;
    ///
    /// fn echo_lines(req: &mut StreamRequest) -> Result<(), BoxError> {
    ///     for line in req.rfile.split(b'\n') {
    ///         req.wfile.write_all(&line?)?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = echo_lines;
    /// ```
    pub fn split(&mut self, byte: u8) -> io::Split<&mut StreamReader> {
        BufRead::split(self, byte)
    }

    /// What is buffered now and not read yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamRequest;
    ///
    /// fn nothing_pending(req: &StreamRequest) -> bool {
    ///     req.rfile.buffer().is_empty()
    /// }
    /// # let _ = nothing_pending;
    /// ```
    pub fn buffer(&self) -> &[u8] {
        self.inner.buffer()
    }

    /// Swaps the buffer for one of `capacity` bytes, if nothing is buffered (buffered bytes
    /// are never dropped); the old one is kept for reuse by this thread (see `readbuf`).
    fn rebuffer(&mut self, capacity: usize) {
        self.inner.resize(capacity);
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BufRead for StreamReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount)
    }

    // `lines` and `split` read through these two, so the limit holds for them too.
    fn read_until(&mut self, byte: u8, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self.line_limit {
            None => self.inner.read_until(byte, buf),
            Some(limit) => read_until_limited(&mut self.inner, byte, buf, limit),
        }
    }

    fn read_line(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut line = Vec::new();
        let read = self.read_until(b'\n', &mut line);
        // As std's: what was read is kept if it is UTF-8, even when the read then failed.
        match String::from_utf8(line) {
            Ok(text) => buf.push_str(&text),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                ));
            }
        }
        read
    }
}

/// `BufRead::read_until`, reading at most `limit` bytes: a line that has no `byte` within them
/// is an error after they are appended to `buf` and consumed.
fn read_until_limited(
    reader: &mut impl BufRead,
    byte: u8,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<usize> {
    // A limit of 0 is taken as 1: each call then takes a byte, so a reader that reads on after
    // the error still reaches the end of the input.
    let limit = limit.max(1);
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let window = &available[..available.len().min(limit - read)];
        if let Some(at) = window.iter().position(|&b| b == byte) {
            buf.extend_from_slice(&window[..=at]);
            reader.consume(at + 1);
            return Ok(read + at + 1);
        }
        let taken = window.len();
        buf.extend_from_slice(window);
        reader.consume(taken);
        read += taken;
        if read >= limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line longer than {limit} bytes (the request's StreamOptions::line_limit; \
                     raise it, or set None for no limit)"
                ),
            ));
        }
    }
}

/// A stream request (Python's `StreamRequestHandler` attributes): the connection, a buffered
/// reader `rfile`, a writer `wfile`, the client's address and the server.
///
/// # Examples
///
/// ```
/// use sockserve_handler::StreamRequest;
/// use std::io::{self, BufRead, Write};
///
/// fn echo_line(req: &mut StreamRequest) -> io::Result<()> {
///     let mut line = Vec::new();
///     req.rfile.read_until(b'\n', &mut line)?;
///     req.wfile.write_all(&line)
/// }
/// # let _ = echo_line;
/// ```
#[non_exhaustive]
pub struct StreamRequest<S = ()> {
    /// The connected socket (Python's `self.request` and `self.connection`).
    pub connection: Arc<Socket>,
    /// Buffered reader over the connection (`rbufsize`).
    pub rfile: StreamReader,
    /// Writer over the connection (`wbufsize`).
    pub wfile: StreamWriter,
    /// The peer's address (`Address::Unnamed` for an unbound Unix client).
    pub client_address: Address,
    /// The server (Python's `self.server`), with its shared state of type `S`.
    pub server: ServerContext<S>,
}

impl<S> StreamRequest<S> {
    /// When this request's turn ends ([`StreamOptions::turn_timeout`] after its setup), if it
    /// is bounded: after it every read and write of `rfile` and `wfile` fails with `TimedOut`.
    /// For a handler's own calls on [`connection`](Self::connection), which the option does
    /// not bound: pass it to the socket's deadline calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamRequest;
    /// use std::io;
    ///
    /// /// Reads straight from the connection, by the turn's end.
    /// fn raw_read(req: &mut StreamRequest) -> io::Result<Vec<u8>> {
    ///     let mut buf = vec![0; 4096];
    ///     let n = req.connection.recv_into_by(&mut buf, req.turn_deadline())?;
    ///     buf.truncate(n);
    ///     Ok(buf)
    /// }
    /// # let _ = raw_read;
    /// ```
    pub fn turn_deadline(&self) -> Option<Instant> {
        self.rfile.inner.get_ref().deadlines().turn_deadline()
    }

    /// A writer to this connection that other threads may keep and use, also while the
    /// connection waits between turns ([`Next::WaitForInput`](crate::Next)): a chat room
    /// writes to its idle members so. Clone it freely; see [`ConnectionWriter`].
    ///
    /// # Examples
    ///
    /// See [`ConnectionWriter`].
    pub fn writer(&self) -> ConnectionWriter {
        let raw = self.wfile.raw();
        ConnectionWriter::new(raw.io(), raw.lock(), raw.deadlines().write_only())
    }

    /// The transport the connection's bytes go through when it is not the plain socket (a
    /// TLS session, installed by a server layer such as `sockserve-tls`), for its crate to
    /// downcast ([`Transport::as_any`]); `None` for a plain connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::StreamRequest;
    ///
    /// fn plain(req: &StreamRequest) -> bool {
    ///     req.transport().is_none()
    /// }
    /// # let _ = plain;
    /// ```
    pub fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.rfile.inner.get_ref().io().transport()
    }
}

// By hand: the state need not implement `Debug` (derive would demand it).
impl<S> std::fmt::Debug for StreamRequest<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRequest")
            .field("connection", &self.connection)
            .field("rfile", &self.rfile)
            .field("wfile", &self.wfile)
            .field("client_address", &self.client_address)
            .field("server", &self.server)
            .finish()
    }
}

impl<S: SharedState> Request for StreamRequest<S> {
    type Raw = Arc<Socket>;
    type Options = StreamOptions;
    type State = S;

    fn setup(
        connection: Arc<Socket>,
        client_address: Address,
        server: ServerContext<S>,
        options: &StreamOptions,
    ) -> io::Result<Self> {
        Self::setup_over(connection, None, client_address, server, options)
    }

    fn setup_over(
        connection: Arc<Socket>,
        transport: Option<Arc<dyn Transport>>,
        client_address: Address,
        server: ServerContext<S>,
        options: &StreamOptions,
    ) -> io::Result<Self> {
        // The turn starts here, before the handler's `setup`.
        let deadlines = Deadlines::new(options, Instant::now());
        if options.timeout.is_some() {
            connection.settimeout(options.timeout);
        }
        if options.disable_nagle_algorithm && connection.family() != Family::Unix {
            // CPython fails here on Unix sockets (EOPNOTSUPP); Nagle does not exist there.
            connection.setsockopt(opt::NoDelay, true)?;
        }
        if let Some(layer) = &transport {
            if layer.socket().fileno() != connection.fileno() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the transport is over another socket than the request's connection",
                ));
            }
        }
        let io = Io::new(Arc::clone(&connection), transport);
        // A capacity of 1 is the unbuffered reader: the buffer needs room for one byte.
        let rfile = StreamReader {
            inner: Buffered::with_capacity(
                options.rbufsize.max(1),
                ConnectionReader::new(io.clone(), deadlines),
            ),
            line_limit: options.line_limit,
            rbufsize: options.rbufsize.max(1),
        };
        let wfile = StreamWriter::with_deadlines(io, options.wbufsize, deadlines);
        Ok(StreamRequest {
            connection,
            rfile,
            wfile,
            client_address,
            server,
        })
    }

    fn waits_on(&self) -> Option<&Arc<Socket>> {
        Some(&self.connection)
    }

    fn before_wait(&mut self) -> io::Result<()> {
        self.wfile.flush()?;
        // An idle connection keeps no 8 KiB buffer: 10,000 of them would hold 80 MiB.
        self.rfile.rebuffer(0);
        Ok(())
    }

    fn after_wait(&mut self) {
        self.rfile.rebuffer(self.rfile.rbufsize);
    }

    fn has_buffered_input(&self) -> bool {
        !self.rfile.buffer().is_empty() || self.rfile.inner.get_ref().io().has_buffered_input()
    }

    fn wait_deadline(&self, since: Instant) -> Option<Instant> {
        self.rfile.inner.get_ref().deadlines().wait_deadline(since)
    }

    fn wait_timed_out(&self, since: Instant) -> io::Error {
        self.rfile.inner.get_ref().deadlines().wait_timed_out(since)
    }

    fn waits_for_first_input(options: &StreamOptions) -> bool {
        options.wait_for_first_input
    }

    fn finish(&mut self) -> io::Result<()> {
        // Python ignores a failed flush here: the client may be gone (bpo-14574).
        if let Err(e) = self.wfile.flush() {
            log::debug!("flush to {} failed: {e}", self.client_address);
        }
        // The transport's end (TLS: close_notify), ignored the same way when it fails.
        let raw = self.wfile.raw();
        if let Err(e) = close_transport(raw.io(), raw.lock(), raw.deadlines()) {
            log::debug!(
                "closing the transport to {} failed: {e}",
                self.client_address
            );
        }
        Ok(())
    }
}
