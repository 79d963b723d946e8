//! The `Handler` trait (Python's `BaseRequestHandler`), closures as handlers, and options.

use crate::{BoxError, Request};

/// What a handler's turn says should happen next. Returned by [`Handler::handle`]; a closure
/// returning `Ok(())` means [`Next::Done`].
///
/// A stream handler that serves a keep-alive connection one message at a time returns
/// [`Next::WaitForInput`] after each message: the connection then waits in the server's
/// reactor, holding no thread, and `handle` runs again (a new turn, on the same handler value
/// and request) when the client sends more. A thread blocked in `recv` costs about 31 KiB; a
/// connection waiting in epoll about 0.2 KiB.
///
/// # Examples
///
/// ```
/// use sockserve_handler::Next;
///
/// assert_eq!(Next::from(()), Next::Done);
/// assert_eq!(Next::default(), Next::Done);
/// assert_ne!(Next::WaitForInput, Next::Done);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Next {
    /// Done with this request: the server finishes it (`finish`, then the connection is shut
    /// down and closed).
    #[default]
    Done,
    /// Wait for more input on this connection, then call `handle` again: the turn is over,
    /// the connection is not.
    ///
    /// What `wfile` holds is flushed first. While the connection waits, it holds no thread
    /// (under threading; under forking its child waits on the connection alone), an empty
    /// `rfile` buffer is released (it comes back for the next turn), and the connection
    /// counts as open (in flight). The next turn runs, on the same handler value (the
    /// connection's state across turns: `setup` ran once, `finish` runs once at the end):
    ///
    /// - at once, without waiting, if `rfile` still holds bytes (a pipelined request);
    /// - when the connection is readable, else.
    ///
    /// The connection ends without another turn (`finish`, `shutdown_request`, the open count)
    /// when the client closes or resets it while it waits, when it has waited for the
    /// [`idle_timeout`](crate::StreamOptions::idle_timeout) (reported to `handle_error` as a
    /// timed-out request) or past the [`turn_timeout`](crate::StreamOptions::turn_timeout),
    /// which bounds the connection's whole life across turns, and at a graceful stop when it
    /// has no unread input (one with unread input gets its turn within the grace).
    ///
    /// Datagram requests have no connection to wait on: for them it means `Done`.
    ///
    /// ```
    /// use sockserve_handler::{BoxError, Handler, Next, StreamRequest};
    /// use std::io::{BufRead, Write};
    ///
    /// /// Answers each line, holding no thread between lines; counts them across turns.
    /// #[derive(Clone, Default)]
    /// struct Counter {
    ///     lines: u64,
    /// }
    ///
    /// impl Handler<StreamRequest> for Counter {
    ///     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
    ///         let mut line = String::new();
    ///         if req.rfile.read_line(&mut line)? == 0 {
    ///             return Ok(Next::Done); // the client is done
    ///         }
    ///         self.lines += 1;
    ///         writeln!(req.wfile, "{} {}", self.lines, line.trim_end())?;
    ///         Ok(Next::WaitForInput)
    ///     }
    /// }
    /// # fn assert_handler<H: Handler<StreamRequest>>(_: H) {}
    /// # assert_handler(Counter::default());
    /// ```
    WaitForInput,
}

impl From<()> for Next {
    fn from((): ()) -> Next {
        Next::Done
    }
}

/// What a closure that is a [`Handler`] may return: `io::Result<()>`, `Result<(), E>` or
/// `Result<Next, E>` for any error `E` that converts into a [`BoxError`] (every
/// `std::error::Error + Send + Sync`, `&str`, `String`), or `()`. The server turns it into the
/// closure's outcome.
///
/// The servers' closure entry points (`Server::bind`, `Server::builder`) take the one form that
/// infers without annotations, `Result<(), BoxError>` (or `Result<Next, BoxError>`): `?` on any
/// error, `Ok(())` at the end, `Ok(call?)` for a closing I/O call; options for such a closure
/// go on the builder (`request_options`). The other forms reach a server as a handler value,
/// through `Server::bind_handler` / `builder_handler` (with `HandlerExt::with_options`, say).
///
/// # Examples
///
/// ```
/// use sockserve_handler::{IntoOutcome, Next};
/// use std::io;
///
/// assert_eq!(Ok::<(), io::Error>(()).into_outcome().ok(), Some(Next::Done));
/// assert!(Err::<(), _>("bad input").into_outcome().is_err());
/// assert_eq!(().into_outcome().ok(), Some(Next::Done));
/// ```
pub trait IntoOutcome {
    /// The outcome: what comes next, or the error.
    ///
    /// # Errors
    ///
    /// The handler's error, boxed.
    ///
    /// # Examples
    ///
    /// See [`IntoOutcome`].
    fn into_outcome(self) -> Result<Next, BoxError>;
}

impl<T: Into<Next>, E: Into<BoxError>> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> Result<Next, BoxError> {
        self.map(Into::into).map_err(Into::into)
    }
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Result<Next, BoxError> {
        Ok(Next::Done)
    }
}

/// A request handler: Python's `BaseRequestHandler` with `setup`, `handle` and `finish`.
///
/// The server clones its handler for every request, so each request gets a value of its own,
/// as Python makes one handler object per request: fields of a handler type are per-request
/// state. Shared state belongs in an `Arc` field or in the server's state
/// ([`ServerContext::state`](crate::ServerContext::state)).
///
/// Ordering is Python's: `setup`, then `handle`, then `finish`; `finish` runs even when `handle`
/// fails (or panics), but not when `setup` fails. The first error of a request reaches the
/// server's `handle_error`, with the step that failed
/// ([`HandlerError::stage`](crate::HandlerError::stage)); a later one of the same request (a
/// `finish` that fails after `handle` failed) is logged at debug level.
///
/// Each step may fail with any error (a [`BoxError`]: `?` converts an `io::Error`, a
/// `ParseIntError`, your own error type), as a Python handler may raise anything. `handle`
/// returns what comes next ([`Next`]: done, or wait for more input and run again).
///
/// Any `FnMut(&mut R) -> O` closure that is `Clone + Send`, where `O` is an [`IntoOutcome`]
/// (`io::Result<()>`, `Result<(), E>`, `()`, ...), is a handler too: it is its own `handle`.
///
/// # Examples
///
/// A handler type with per-request state:
///
/// ```
/// use sockserve_handler::{BoxError, Handler, Next, StreamRequest};
/// use std::io::{BufRead, Write};
///
/// #[derive(Clone, Default)]
/// struct Sum {
///     lines: usize,
/// }
///
/// impl Handler<StreamRequest> for Sum {
///     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
///         let mut line = String::new();
///         while req.rfile.read_line(&mut line)? > 0 {
///             self.lines += 1;
///             let n: i64 = line.trim().parse()?; // any error: a ParseIntError here
///             writeln!(req.wfile, "{}", n * 2)?;
///             line.clear();
///         }
///         Ok(Next::Done)
///     }
///
///     fn finish(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
///         log::info!("{} sent {} lines", req.client_address, self.lines);
///         Ok(())
///     }
/// }
/// # fn assert_handler<H: Handler<StreamRequest>>(_: H) {}
/// # assert_handler(Sum::default());
/// ```
///
/// A closure:
///
/// ```
/// use sockserve_handler::{Handler, StreamRequest};
/// use std::io::{BufRead, Write};
///
/// let upper = |req: &mut StreamRequest| {
///     let mut line = String::new();
///     req.rfile.read_line(&mut line)?;
///     req.wfile.write_all(line.to_uppercase().as_bytes())
/// };
/// # fn assert_handler<H: Handler<StreamRequest>>(_: H) {}
/// assert_handler(upper);
/// ```
pub trait Handler<R: Request>: Clone + Send + 'static {
    /// The request options (Python's handler class attributes, such as `timeout` or
    /// `rbufsize` for streams). Defaults to `R::Options::default()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{BoxError, Handler, Next, StreamOptions, StreamRequest};
    /// use std::time::Duration;
    ///
    /// #[derive(Clone)]
    /// struct Patient;
    /// impl Handler<StreamRequest> for Patient {
    ///     fn options(&self) -> StreamOptions {
    ///         StreamOptions::default().timeout(Some(Duration::from_secs(30)))
    ///     }
    ///     fn handle(&mut self, _req: &mut StreamRequest) -> Result<Next, BoxError> {
    ///         Ok(Next::Done)
    ///     }
    /// }
    /// assert_eq!(Patient.options().timeout, Some(Duration::from_secs(30)));
    /// ```
    fn options(&self) -> R::Options {
        R::Options::default()
    }

    /// Runs before `handle`; if it fails, neither `handle` nor `finish` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, finish_request, server_context};
    /// use sockserve_handler::{BoxError, Handler, Next, Stage, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::{io::{Read, Write}, sync::Arc};
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// #[derive(Clone)]
    /// struct Greeter {
    ///     open: bool,
    /// }
    ///
    /// impl Handler<StreamRequest> for Greeter {
    ///     fn setup(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
    ///         if !self.open {
    ///             return Err("closed for the day".into());
    ///         }
    ///         Ok(req.wfile.write_all(b"hello, ")?)
    ///     }
    ///     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
    ///         req.wfile.write_all(b"world")?;
    ///         Ok(Next::Done)
    ///     }
    /// }
    ///
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// for open in [true, false] {
    ///     let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
    ///     let raw = Arc::new(server_side);
    ///     let done = finish_request(&mut Greeter { open }, raw, "@c".parse()?, ctx.clone());
    ///     let mut reply = String::new();
    ///     client.read_to_string(&mut reply)?;
    ///     assert_eq!(done.is_ok(), open);
    ///     assert!(done.err().is_none_or(|e| e.stage() == Stage::Setup));
    ///     // A failed setup: no `handle`, nothing written.
    ///     assert_eq!(reply, if open { "hello, world" } else { "" });
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn setup(&mut self, request: &mut R) -> Result<(), BoxError> {
        let _ = request;
        Ok(())
    }

    /// Does the work of the request.
    ///
    /// # Examples
    ///
    /// See [`Handler`].
    fn handle(&mut self, request: &mut R) -> Result<Next, BoxError>;

    /// Runs after `handle`, even when `handle` failed.
    ///
    /// # Examples
    ///
    /// See [`Handler`].
    fn finish(&mut self, request: &mut R) -> Result<(), BoxError> {
        let _ = request;
        Ok(())
    }
}

impl<R, F, O> Handler<R> for F
where
    R: Request,
    F: FnMut(&mut R) -> O + Clone + Send + 'static,
    O: IntoOutcome,
{
    fn handle(&mut self, request: &mut R) -> Result<Next, BoxError> {
        self(request).into_outcome()
    }
}

/// A handler with options set from outside: what [`HandlerExt::with_options`] returns.
///
/// # Examples
///
/// ```
/// use sockserve_handler::{Handler, HandlerExt, StreamOptions, StreamRequest};
///
/// let h = (|_req: &mut StreamRequest| {}).with_options(StreamOptions::default().wbufsize(8192));
/// assert_eq!(h.options().wbufsize, 8192);
/// ```
#[derive(Clone, Debug)]
pub struct WithOptions<H, O> {
    handler: H,
    options: O,
}

impl<R, H> Handler<R> for WithOptions<H, R::Options>
where
    R: Request,
    H: Handler<R>,
{
    fn options(&self) -> R::Options {
        self.options.clone()
    }
    fn setup(&mut self, request: &mut R) -> Result<(), BoxError> {
        self.handler.setup(request)
    }
    fn handle(&mut self, request: &mut R) -> Result<Next, BoxError> {
        self.handler.handle(request)
    }
    fn finish(&mut self, request: &mut R) -> Result<(), BoxError> {
        self.handler.finish(request)
    }
}

/// Extra methods for every handler.
///
/// # Examples
///
/// ```
/// use sockserve_handler::{HandlerExt, StreamOptions, StreamRequest};
/// use std::time::Duration;
///
/// let handler = (|_req: &mut StreamRequest| {})
///     .with_options(StreamOptions::default().timeout(Some(Duration::from_secs(5))));
/// # let _ = handler;
/// ```
pub trait HandlerExt<R: Request>: Handler<R> + Sized {
    /// Sets the request options (Python's handler class attributes) for this handler,
    /// overriding its [`Handler::options`].
    ///
    /// # Examples
    ///
    /// See [`HandlerExt`].
    fn with_options(self, options: R::Options) -> WithOptions<Self, R::Options> {
        WithOptions {
            handler: self,
            options,
        }
    }
}

impl<R: Request, H: Handler<R>> HandlerExt<R> for H {}
