//! The `Handler` trait (Python's `BaseRequestHandler`), closures as handlers, and options.

use crate::Request;
use std::io;

/// A request handler: Python's `BaseRequestHandler` with `setup`, `handle` and `finish`.
///
/// The server clones its handler for every request, so each request gets a value of its own,
/// as Python makes one handler object per request: fields of a handler type are per-request
/// state. Shared state belongs in an `Arc` field or in the server's state
/// ([`ServerContext::state`](crate::ServerContext::state)).
///
/// Ordering is Python's: `setup`, then `handle`, then `finish`; `finish` runs even when `handle`
/// fails (or panics), but not when `setup` fails. Every error still reaches the server's
/// `handle_error`.
///
/// Any `FnMut(&mut R) -> io::Result<()>` closure that is `Clone + Send` is a handler too: it
/// is its own `handle`.
///
/// # Examples
///
/// A handler type with per-request state:
///
/// ```
/// use sockserve_handler::{Handler, StreamRequest};
/// use std::io::{self, BufRead, Write};
///
/// #[derive(Clone, Default)]
/// struct Echo {
///     lines: usize,
/// }
///
/// impl Handler<StreamRequest> for Echo {
///     fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
///         let mut line = String::new();
///         while req.rfile.read_line(&mut line)? > 0 {
///             self.lines += 1;
///             req.wfile.write_all(line.as_bytes())?;
///             line.clear();
///         }
///         Ok(())
///     }
///
///     fn finish(&mut self, req: &mut StreamRequest) -> io::Result<()> {
///         log::info!("{} sent {} lines", req.client_address, self.lines);
///         Ok(())
///     }
/// }
/// # fn assert_handler<H: Handler<StreamRequest>>(_: H) {}
/// # assert_handler(Echo::default());
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
    /// use sockserve_handler::{Handler, StreamOptions, StreamRequest};
    /// use std::{io, time::Duration};
    ///
    /// #[derive(Clone)]
    /// struct Patient;
    /// impl Handler<StreamRequest> for Patient {
    ///     fn options(&self) -> StreamOptions {
    ///         StreamOptions::default().timeout(Some(Duration::from_secs(30)))
    ///     }
    ///     fn handle(&mut self, _req: &mut StreamRequest) -> io::Result<()> { Ok(()) }
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
    /// use sockserve_handler::{finish_request, Handler, ServerContext, StopServer, StreamRequest};
    /// use socket::{socketpair, Family, Type};
    /// use std::{io::{self, Read, Write}, sync::Arc};
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
    ///     fn setup(&mut self, req: &mut StreamRequest) -> io::Result<()> {
    ///         if !self.open {
    ///             return Err(io::Error::other("closed for the day"));
    ///         }
    ///         req.wfile.write_all(b"hello, ")
    ///     }
    ///     fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
    ///         req.wfile.write_all(b"world")
    ///     }
    /// }
    ///
    /// let ctx = ServerContext::new("@example".parse()?, Arc::new(NoStop), None);
    /// for open in [true, false] {
    ///     let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
    ///     let raw = Arc::new(server_side);
    ///     let done = finish_request(&mut Greeter { open }, raw, "@c".parse()?, ctx.clone());
    ///     let mut reply = String::new();
    ///     client.read_to_string(&mut reply)?;
    ///     assert_eq!(done.is_ok(), open);
    ///     // A failed setup: no `handle`, nothing written.
    ///     assert_eq!(reply, if open { "hello, world" } else { "" });
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn setup(&mut self, request: &mut R) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Does the work of the request.
    ///
    /// # Examples
    ///
    /// See [`Handler`].
    fn handle(&mut self, request: &mut R) -> io::Result<()>;

    /// Runs after `handle`, even when `handle` failed.
    ///
    /// # Examples
    ///
    /// See [`Handler`].
    fn finish(&mut self, request: &mut R) -> io::Result<()> {
        let _ = request;
        Ok(())
    }
}

impl<R, F> Handler<R> for F
where
    R: Request,
    F: FnMut(&mut R) -> io::Result<()> + Clone + Send + 'static,
{
    fn handle(&mut self, request: &mut R) -> io::Result<()> {
        self(request)
    }
}

/// A handler with options set from outside: what [`HandlerExt::with_options`] returns.
///
/// # Examples
///
/// ```
/// use sockserve_handler::{Handler, HandlerExt, StreamOptions, StreamRequest};
///
/// let h = (|_req: &mut StreamRequest| Ok(())).with_options(StreamOptions::default().wbufsize(8192));
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
    fn setup(&mut self, request: &mut R) -> io::Result<()> {
        self.handler.setup(request)
    }
    fn handle(&mut self, request: &mut R) -> io::Result<()> {
        self.handler.handle(request)
    }
    fn finish(&mut self, request: &mut R) -> io::Result<()> {
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
/// let handler = (|_req: &mut StreamRequest| Ok(()))
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
