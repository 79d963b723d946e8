//! The `Request` trait, and `finish_request`: Python's setup/handle/finish ordering in one place.

use crate::{BoxError, Handler, HandlerError, ServerContext, SharedState, Stage};
use socket::{Address, Socket};
use std::{
    fmt, io,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
    time::Instant,
};

/// A kind of request a server hands to its handler: a stream connection or a datagram.
///
/// The request's own `setup` and `finish` are the built-in parts of Python's
/// `StreamRequestHandler` and `DatagramRequestHandler` (making `rfile` and `wfile`, flushing or
/// sending the reply); the user's [`Handler`] runs between them.
///
/// A handler generic over the request names it for its options and the server's state:
///
/// ```
/// use sockserve_handler::{BoxError, Handler, Next, Request, StreamRequest};
///
/// /// Works for any request, with the request's default options.
/// #[derive(Clone)]
/// struct Nothing;
///
/// impl<R: Request> Handler<R> for Nothing {
///     fn options(&self) -> R::Options {
///         R::Options::default()
///     }
///     fn handle(&mut self, _request: &mut R) -> Result<Next, BoxError> {
///         Ok(Next::Done)
///     }
/// }
///
/// fn stream_handler<H: Handler<StreamRequest>>(_: H) {}
/// stream_handler(Nothing);
/// ```
///
/// How a server drives a request (`Raw`, `setup`, `finish`) is the server layer's business,
/// out of sight here; see [`driver`](crate::driver).
pub trait Request: Sized + Send + 'static {
    /// What the server hands over: a connected socket, or a datagram and the server's socket.
    #[doc(hidden)]
    type Raw: Send;
    /// Options that shape the request (Python's handler class attributes).
    ///
    /// # Examples
    ///
    /// See [`Request`]'s example.
    type Options: Clone + Default + fmt::Debug + Send + Sync + 'static;
    /// The server's shared state, reached through the request's `server`
    /// ([`ServerContext::state`]); `()` for a server without state.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{Request, StreamRequest};
    /// use std::sync::atomic::AtomicU64;
    ///
    /// fn state_of<R: Request>() -> &'static str { std::any::type_name::<R::State>() }
    /// assert_eq!(state_of::<StreamRequest>(), "()");
    /// assert_eq!(state_of::<StreamRequest<AtomicU64>>(), "core::sync::atomic::AtomicU64");
    /// ```
    type State: SharedState;

    /// Builds the request (the built-in `setup`); the server layer calls it.
    ///
    /// # Errors
    ///
    /// A socket option that cannot be applied, such as a timeout.
    #[doc(hidden)]
    fn setup(
        raw: Self::Raw,
        client_address: Address,
        server: ServerContext<Self::State>,
        options: &Self::Options,
    ) -> io::Result<Self>;

    /// The built-in `finish`: flushes what the handler wrote, or sends the datagram reply; the
    /// server layer calls it.
    ///
    /// # Errors
    ///
    /// The reply could not be sent.
    /// The request's setup over a [`Transport`](crate::Transport) that a server layer's step
    /// installed on the connection before it (TLS): its reads and writes go through it.
    /// Only stream requests take one; the default refuses it.
    ///
    /// # Errors
    ///
    /// As [`setup`](Self::setup)'s; `Unsupported` for a request that takes no transport.
    #[doc(hidden)]
    fn setup_over(
        raw: Self::Raw,
        transport: Option<Arc<dyn crate::Transport>>,
        client_address: Address,
        server: ServerContext<Self::State>,
        options: &Self::Options,
    ) -> io::Result<Self> {
        match transport {
            None => Self::setup(raw, client_address, server, options),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a transport applies to stream requests only",
            )),
        }
    }

    #[doc(hidden)]
    fn finish(&mut self) -> io::Result<()>;

    /// The connection a request that ends its turn with [`Next::WaitForInput`](crate::Next)
    /// waits on; `None` (datagrams): it cannot wait, and the outcome means `Done`.
    #[doc(hidden)]
    fn waits_on(&self) -> Option<&Arc<Socket>> {
        None
    }

    /// Readies the request to wait between turns: flushes what the handler wrote, releases an
    /// empty read buffer.
    ///
    /// # Errors
    ///
    /// The flush failed.
    #[doc(hidden)]
    fn before_wait(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Readies the request for its next turn after a wait (its read buffer back).
    #[doc(hidden)]
    fn after_wait(&mut self) {}

    /// Whether input is buffered already: the next turn runs at once, without waiting.
    #[doc(hidden)]
    fn has_buffered_input(&self) -> bool {
        false
    }

    /// Until when a wait that starts at `since` may last (the idle timeout, the turn's end).
    #[doc(hidden)]
    fn wait_deadline(&self, since: Instant) -> Option<Instant> {
        let _ = since;
        None
    }

    /// The error of a wait that started at `since` and reached its deadline.
    #[doc(hidden)]
    fn wait_timed_out(&self, since: Instant) -> io::Error {
        let _ = since;
        io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for input")
    }

    /// Whether a new request of these options, once set up, waits for its connection's first
    /// input before its first turn (`StreamOptions::wait_for_first_input`).
    #[doc(hidden)]
    fn waits_for_first_input(options: &Self::Options) -> bool {
        let _ = options;
        false
    }
}

/// Runs one request through a handler, in Python's order: the request's setup, the handler's
/// `setup`, `handle`, `finish` (which runs even when `handle` fails or panics), then the
/// request's own finish. Python's `BaseServer.finish_request`. A turn that ends with
/// [`Next::WaitForInput`](crate::Next) waits here, on this thread, for the connection's next
/// input (see [`Session::wait_here`](crate::session::Session::wait_here)); a server waits in its
/// reactor instead.
///
/// Panics in the handler are caught and returned as [`HandlerError::Panicked`]; each error says
/// which [`Stage`] failed; the first error
/// wins, later ones are logged at debug level.
///
/// # Errors
///
/// The first error (or panic) of the sequence; the server passes it to `handle_error`.
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{StopServer, finish_request, server_context};
/// use sockserve_handler::StreamRequest;
/// use sockserve_handler::socket::{socketpair, Family, Type};
/// use std::{io::{BufRead, Read, Write}, sync::Arc};
///
/// # #[derive(Debug)] struct NoStop;
/// # impl StopServer for NoStop {
/// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
/// #     fn request_shutdown(&self) {}
/// # }
/// let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
/// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
/// client.sendall(b"hi\n")?;
/// let mut handler = |req: &mut StreamRequest| {
///     let mut line = String::new();
///     req.rfile.read_line(&mut line)?;
///     req.wfile.write_all(line.to_uppercase().as_bytes())
/// };
/// finish_request(&mut handler, Arc::new(server_side), "@client".parse()?, ctx)?;
/// let mut reply = [0; 3];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"HI\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn finish_request<R: Request, H: Handler<R>>(
    handler: &mut H,
    raw: R::Raw,
    client_address: Address,
    server: ServerContext<R::State>,
) -> Result<(), HandlerError> {
    let mut session =
        crate::session::Session::<R, H, &mut H>::start(handler, raw, client_address, server)?;
    loop {
        match session.turn() {
            Ok(crate::Next::WaitForInput) => match session.wait_here() {
                crate::session::Waited::Input => continue,
                crate::session::Waited::Closed => return session.end(Ok(())),
                crate::session::Waited::TimedOut(e) => return session.end(Err(e)),
            },
            Ok(_) => return session.end(Ok(())),
            Err(e) => return session.end(Err(e)),
        }
    }
}

/// Runs one step, turning an error or a panic into a `HandlerError` of that step.
pub(crate) fn guarded(
    stage: Stage,
    step: impl FnOnce() -> Result<(), BoxError>,
) -> Result<(), HandlerError> {
    match panic::catch_unwind(AssertUnwindSafe(step)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(HandlerError::Failed { stage, error }),
        Err(payload) => Err(HandlerError::from_panic(payload).at(stage)),
    }
}

#[cfg(test)]
mod tests {
    use crate::driver::{StopServer, server_context};
    use crate::{Request, ServerContext, StreamOptions, StreamRequest};
    use socket::{Address, Family, Type, socketpair};
    use std::{
        io::{self, Read, Write},
        sync::Arc,
    };

    #[derive(Debug)]
    struct NoStop;
    impl StopServer for NoStop {
        fn shutdown(&self) -> io::Result<()> {
            Ok(())
        }
        fn request_shutdown(&self) {}
    }

    /// The request's own setup, the work, the request's own finish.
    fn run<R: Request>(
        raw: R::Raw,
        client: Address,
        server: ServerContext<R::State>,
        options: &R::Options,
        work: impl FnOnce(&mut R) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut request = R::setup(raw, client, server, options)?;
        work(&mut request)?;
        request.finish()
    }

    /// A request driven by hand, as `finish_request` does around a handler: a buffered
    /// `wfile` holds the reply until the request's own finish flushes it.
    #[test]
    fn a_request_driven_by_hand_flushes_at_its_finish() -> Result<(), Box<dyn std::error::Error>> {
        let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
        let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
        let options = StreamOptions::default().wbufsize(64);
        run::<StreamRequest>(
            Arc::new(server_side),
            "@client".parse()?,
            ctx,
            &options,
            |req| {
                assert!(req.wfile.is_buffered());
                req.wfile.write_all(b"reply")
            },
        )?;
        let mut reply = String::new();
        client.read_to_string(&mut reply)?;
        assert_eq!(reply, "reply");
        Ok(())
    }
}
