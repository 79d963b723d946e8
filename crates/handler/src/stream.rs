//! `StreamRequest` (Python's `StreamRequestHandler`): a connection with `rfile` and `wfile`.

use crate::{Request, ServerContext, SharedState};
use socket::{Address, Family, Socket, SocketReader, SocketWriter, opt};
use std::{
    fmt,
    io::{self, BufRead, BufWriter, Read, Write},
    sync::Arc,
    time::Duration,
};

/// Options of a stream request: Python's `StreamRequestHandler` class attributes.
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
///     .line_limit(Some(1 << 20))
///     .disable_nagle_algorithm(false);
/// assert_eq!(options.rbufsize, 65536);
/// assert_eq!(StreamOptions::default().wbufsize, 0);
/// assert_eq!(StreamOptions::default().line_limit, Some(65_536));
/// assert!(StreamOptions::default().disable_nagle_algorithm); // not Python's default: see there
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Capacity of `rfile`'s buffer; 0 reads unbuffered (one byte at a time for lines).
    /// Default 8192, Python's `io.DEFAULT_BUFFER_SIZE`.
    pub rbufsize: usize,
    /// Capacity of `wfile`'s buffer; 0 (the default) makes every write send at once.
    pub wbufsize: usize,
    /// Timeout of every read and write on the connection; `None` (the default) blocks.
    pub timeout: Option<Duration>,
    /// The longest line `rfile`'s line reads return (`read_line`, `read_until`, `lines`,
    /// `split`), delimiter included: Python's `readline(limit)`, applied to every line read. A
    /// longer line is an `InvalidData` error naming this option, after the first `limit` bytes
    /// (kept in the caller's buffer, as Python's `readline(limit)` returns them); the rest of the
    /// line is still there to read. Default [`DEFAULT_LINE_LIMIT`] (64 KiB, the line limit of
    /// Python's `http.server`), so that a client sending an endless line cannot grow a
    /// handler's buffer without bound; `None` lifts it. Reads of bytes (`read`, `fill_buf`)
    /// are not limited.
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
            line_limit: Some(DEFAULT_LINE_LIMIT),
            disable_nagle_algorithm: true,
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
}

/// `wfile` of a stream request: unbuffered (every write sends everything before it returns)
/// or buffered (`wbufsize > 0`, flushed when the request finishes).
///
/// A write never returns short: a 16 MiB write returns 16 MiB or an error.
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
    Unbuffered(SocketWriter<Arc<Socket>>),
    Buffered(BufWriter<SocketWriter<Arc<Socket>>>),
}

impl StreamWriter {
    /// A writer over `connection`: unbuffered when `wbufsize` is 0, else buffered.
    ///
    /// # Examples
    ///
    /// See [`StreamWriter`].
    pub fn new(connection: Arc<Socket>, wbufsize: usize) -> Self {
        let raw = SocketWriter::new(connection);
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
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("buffered", &self.is_buffered())
            .finish_non_exhaustive()
    }
}

/// A stream request's `rfile` (Python's `self.rfile`): a buffered reader over the connection,
/// with `Read` and `BufRead` (`read_line`, `lines`, `fill_buf`, ...). Its type names no socket,
/// so that an encrypted connection can stand behind it later. Its line reads stop at the
/// request's [`line_limit`](StreamOptions::line_limit).
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
#[derive(Debug)]
pub struct StreamReader {
    inner: SocketReader<Arc<Socket>>,
    /// [`StreamOptions::line_limit`].
    line_limit: Option<usize>,
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
        if options.timeout.is_some() {
            connection.settimeout(options.timeout);
        }
        if options.disable_nagle_algorithm && connection.family() != Family::Unix {
            // CPython fails here on Unix sockets (EOPNOTSUPP); Nagle does not exist there.
            connection.setsockopt(opt::NoDelay, true)?;
        }
        // A capacity of 1 is the unbuffered reader: `BufReader` needs room for one byte.
        let rfile = StreamReader {
            inner: SocketReader::with_capacity(options.rbufsize.max(1), Arc::clone(&connection)),
            line_limit: options.line_limit,
        };
        let wfile = StreamWriter::new(Arc::clone(&connection), options.wbufsize);
        Ok(StreamRequest {
            connection,
            rfile,
            wfile,
            client_address,
            server,
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        // Python ignores a failed flush here: the client may be gone (bpo-14574).
        if let Err(e) = self.wfile.flush() {
            log::debug!("flush to {} failed: {e}", self.client_address);
        }
        Ok(())
    }
}
