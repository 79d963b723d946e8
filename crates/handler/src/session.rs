//! [`Session`]: a request across its turns (setup once, `handle` per turn, finish once), and
//! the wait between turns for a driver that waits on the connection itself.

use crate::request::guarded;
use crate::{BoxError, Handler, HandlerError, Next, Request, ServerContext, Stage, Transport};
use socket::{Address, Socket};
use std::{borrow::BorrowMut, io, marker::PhantomData, sync::Arc, time::Instant};

/// How a wait for a connection's next input ended ([`Session::wait_here`]).
///
/// # Examples
///
/// See [`Session`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Waited {
    /// Input is there: run the next turn.
    Input,
    /// The client closed or reset the connection while it waited: end it cleanly, with no
    /// error to report.
    Closed,
    /// The wait reached the idle timeout or the turn's end: end the request with this error.
    TimedOut(HandlerError),
}

impl Waited {
    /// What `connection` has now, without waiting and without taking it (a peek of one byte):
    /// input, its end (an EOF, a reset or another error: `Closed`), or nothing yet (`None`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::Waited;
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    ///
    /// let (server_side, client) = socketpair(Family::Unix, Type::Stream)?;
    /// assert!(Waited::poll(&server_side).is_none());
    /// client.sendall(b"x")?;
    /// assert!(matches!(Waited::poll(&server_side), Some(Waited::Input)));
    /// drop(client);
    /// assert!(matches!(Waited::poll(&server_side), Some(Waited::Input))); // still unread
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(connection: &Socket) -> Option<Waited> {
        match connection.peek_nowait(&mut [0u8; 1]) {
            Ok(0) => Some(Waited::Closed),
            Ok(_) => Some(Waited::Input),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => {
                log::debug!("a waiting connection failed: {e}");
                Some(Waited::Closed)
            }
        }
    }
}

/// One request across its turns: the request's setup and the handler's `setup` once
/// ([`start`](Self::start)), `handle` once per turn ([`turn`](Self::turn)), the handler's
/// `finish` and the request's own once ([`end`](Self::end)). What a server layer drives when
/// a handler returns [`Next::WaitForInput`]; [`finish_request`](crate::driver::finish_request)
/// drives one on its own thread. `B` is how the session holds the handler: the handler itself
/// (`B = H`, the default) or a borrow of it (`&mut H`).
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{Session, StopServer, Waited, server_context};
/// use sockserve_handler::{Next, StreamRequest};
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
/// let upper = |req: &mut StreamRequest| {
///     let mut line = String::new();
///     if req.rfile.read_line(&mut line)? == 0 {
///         return Ok(Next::Done);
///     }
///     req.wfile.write_all(line.to_uppercase().as_bytes())?;
///     Ok::<_, std::io::Error>(Next::WaitForInput)
/// };
/// let mut session = Session::start(upper, Arc::new(server_side), "@c".parse()?, ctx)?;
/// client.sendall(b"one\ntwo\n")?; // two lines at once: the second is buffered
/// assert_eq!(session.turn()?, Next::WaitForInput);
/// assert!(session.has_buffered_input()); // run the next turn at once
/// assert_eq!(session.turn()?, Next::WaitForInput);
/// assert!(!session.has_buffered_input());
/// client.shutdown(sockserve_handler::socket::Shutdown::Write)?;
/// assert!(matches!(session.wait_here(), Waited::Closed));
/// session.end(Ok(()))?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "ONE\nTWO\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<R: Request, H, B = H> {
    handler: B,
    request: R,
    /// When the current wait began, if the request waits between turns now.
    waiting_since: Option<Instant>,
    _handler: PhantomData<fn() -> H>,
}

impl<R: Request, H: Handler<R>, B: BorrowMut<H>> Session<R, H, B> {
    /// The request's own setup, then the handler's `setup`.
    ///
    /// # Errors
    ///
    /// Either setup failed: the request ends there (no `handle`, no `finish`), and the error
    /// goes to `handle_error`.
    ///
    /// # Examples
    ///
    /// See [`Session`].
    pub fn start(
        handler: B,
        raw: R::Raw,
        client_address: Address,
        server: ServerContext<R::State>,
    ) -> Result<Self, HandlerError> {
        Self::start_over(handler, raw, None, client_address, server)
    }

    /// As [`start`](Self::start), with the request's `rfile` and `wfile` over `transport`
    /// (what a server layer's step on the worker installed: TLS) when there is one.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start)'s; a transport for a request that takes none (a datagram)
    /// fails its setup.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::{Session, StopServer, server_context};
    /// use sockserve_handler::{Next, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::sync::Arc;
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let (server_side, _client) = socketpair(Family::Unix, Type::Stream)?;
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// let done = |_req: &mut StreamRequest| Ok::<_, std::io::Error>(Next::Done);
    /// let session = Session::start_over(done, Arc::new(server_side), None, "@c".parse()?, ctx)?;
    /// assert!(session.request().transport().is_none()); // the plain socket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_over(
        mut handler: B,
        raw: R::Raw,
        transport: Option<Arc<dyn Transport>>,
        client_address: Address,
        server: ServerContext<R::State>,
    ) -> Result<Self, HandlerError> {
        let options = handler.borrow_mut().options();
        let mut request = R::setup_over(raw, transport, client_address, server, &options)
            .map_err(|e| HandlerError::failed(Stage::Setup, e))?;
        guarded(Stage::Setup, || handler.borrow_mut().setup(&mut request))?;
        Ok(Session {
            handler,
            request,
            waiting_since: None,
            _handler: PhantomData,
        })
    }

    /// One turn: the handler's `handle`. When it returns [`Next::WaitForInput`] and the
    /// request can wait (a stream), the request is readied for the wait: `wfile` flushed, an
    /// empty `rfile` buffer released; a datagram's turn always ends `Done`. A turn after a
    /// wait gets its buffer back first.
    ///
    /// # Errors
    ///
    /// `handle` failed or panicked, or the flush before the wait failed: call
    /// [`end`](Self::end) with the error.
    ///
    /// # Examples
    ///
    /// See [`Session`].
    pub fn turn(&mut self) -> Result<Next, HandlerError> {
        if self.waiting_since.take().is_some() {
            self.request.after_wait();
        }
        let mut next = Next::Done;
        guarded(Stage::Handle, || {
            next = self.handler.borrow_mut().handle(&mut self.request)?;
            Ok(())
        })?;
        if next != Next::WaitForInput || self.request.waits_on().is_none() {
            return Ok(Next::Done);
        }
        self.request
            .before_wait()
            .map_err(|e| HandlerError::failed(Stage::Handle, BoxError::from(e)))?;
        self.waiting_since = Some(Instant::now());
        Ok(Next::WaitForInput)
    }

    /// Readies a request just [`start`](Self::start)ed to wait for its first input before its
    /// first turn (`StreamOptions::wait_for_first_input`), as [`turn`](Self::turn) readies it
    /// after a turn that returned [`Next::WaitForInput`] (`wfile` flushed, an empty `rfile`
    /// buffer released): then wait, and call `turn`. A request that cannot wait (a datagram)
    /// runs its first turn here instead.
    ///
    /// # Errors
    ///
    /// The flush failed (or, for a request that cannot wait, its turn did): call
    /// [`end`](Self::end) with the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::{Session, StopServer, Waited, server_context};
    /// use sockserve_handler::{Next, StreamRequest};
    /// use sockserve_handler::socket::{socketpair, Family, Type};
    /// use std::{io::{BufRead, Write}, sync::Arc};
    ///
    /// # #[derive(Debug)] struct NoStop;
    /// # impl StopServer for NoStop {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let (server_side, client) = socketpair(Family::Unix, Type::Stream)?;
    /// let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    /// let echo = |req: &mut StreamRequest| {
    ///     let mut line = String::new();
    ///     req.rfile.read_line(&mut line)?;
    ///     req.wfile.write_all(line.as_bytes())?;
    ///     Ok::<_, std::io::Error>(Next::Done)
    /// };
    /// let mut session = Session::start(echo, Arc::new(server_side), "@c".parse()?, ctx)?;
    /// assert_eq!(session.wait_before_first_turn()?, Next::WaitForInput);
    /// assert!(session.poll_input().is_none()); // the client has said nothing yet
    /// client.sendall(b"hi\n")?;
    /// assert!(matches!(session.wait_here(), Waited::Input));
    /// assert_eq!(session.turn()?, Next::Done);
    /// session.end(Ok(()))?;
    /// assert_eq!(client.recv(10)?, b"hi\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_before_first_turn(&mut self) -> Result<Next, HandlerError> {
        if self.request.waits_on().is_none() {
            return self.turn();
        }
        self.request
            .before_wait()
            .map_err(|e| HandlerError::failed(Stage::Handle, BoxError::from(e)))?;
        self.waiting_since = Some(Instant::now());
        Ok(Next::WaitForInput)
    }

    /// Whether the request's read buffer holds input already (a pipelined request): its next
    /// turn should run at once, without waiting for the connection.
    ///
    /// # Examples
    ///
    /// See [`Session`].
    pub fn has_buffered_input(&self) -> bool {
        self.request.has_buffered_input()
    }

    /// Until when the current wait may last: the idle timeout from the wait's start, or the
    /// end of the request's turn (the connection's whole life), whichever is first; `None`
    /// when neither is set or the request does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::Session;
    /// use sockserve_handler::{Handler, StreamRequest};
    ///
    /// fn bounded<H: Handler<StreamRequest>>(session: &Session<StreamRequest, H>) -> bool {
    ///     session.wait_deadline().is_some()
    /// }
    /// # let _ = bounded::<fn(&mut StreamRequest)>;
    /// ```
    pub fn wait_deadline(&self) -> Option<Instant> {
        self.request.wait_deadline(self.waiting_since?)
    }

    /// When the current wait began (the end of the last turn), if the request waits now.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::Session;
    /// use sockserve_handler::{Handler, StreamRequest};
    /// use std::time::Duration;
    ///
    /// fn waited_long<H: Handler<StreamRequest>>(session: &Session<StreamRequest, H>) -> bool {
    ///     session.waiting_since().is_some_and(|t| t.elapsed() > Duration::from_secs(1))
    /// }
    /// # let _ = waited_long::<fn(&mut StreamRequest)>;
    /// ```
    pub fn waiting_since(&self) -> Option<Instant> {
        self.waiting_since
    }

    /// The error of a wait that reached its [`deadline`](Self::wait_deadline): a `TimedOut`
    /// I/O error naming the option, as a read that waited so long would have failed.
    ///
    /// # Examples
    ///
    /// See [`wait_deadline`](Self::wait_deadline).
    pub fn wait_timed_out(&self) -> HandlerError {
        let since = self.waiting_since.unwrap_or_else(Instant::now);
        HandlerError::failed(Stage::Handle, self.request.wait_timed_out(since))
    }

    /// The request itself: its connection, `rfile`, `wfile`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::Session;
    /// use sockserve_handler::{Handler, StreamRequest};
    ///
    /// fn fd<H: Handler<StreamRequest>>(session: &Session<StreamRequest, H>) -> i32 {
    ///     session.request().connection.fileno()
    /// }
    /// # let _ = fd::<fn(&mut StreamRequest)>;
    /// ```
    pub fn request(&self) -> &R {
        &self.request
    }

    /// What the connection has for the waiting request now, without waiting: input, its end
    /// (or an error), or nothing yet (`None`).
    ///
    /// # Examples
    ///
    /// See [`Session`]; [`wait_here`](Self::wait_here) uses it after each wakeup.
    pub fn poll_input(&self) -> Option<Waited> {
        if self.request.has_buffered_input() {
            return Some(Waited::Input);
        }
        Waited::poll(self.request.waits_on()?)
    }

    /// Waits on this thread for the connection's next input, up to the
    /// [`wait_deadline`](Self::wait_deadline): what a forked child (which serves one
    /// connection) and [`finish_request`](crate::driver::finish_request) do between turns.
    ///
    /// # Examples
    ///
    /// See [`Session`].
    pub fn wait_here(&mut self) -> Waited {
        let deadline = self.wait_deadline();
        loop {
            if let Some(waited) = self.poll_input() {
                return waited;
            }
            let Some(connection) = self.request.waits_on() else {
                return Waited::Closed;
            };
            match connection.wait_readable_by(deadline) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Waited::TimedOut(self.wait_timed_out());
                }
                Err(e) => {
                    log::debug!("waiting on a connection failed: {e}");
                    return Waited::Closed;
                }
            }
        }
    }

    /// Ends the request: the handler's `finish` (also after a failed turn), then the
    /// request's own finish (the last flush). `handled` is how the turns ended; the first
    /// error wins, later ones are logged at debug level.
    ///
    /// # Errors
    ///
    /// The first error: `handled`'s, else `finish`'s.
    ///
    /// # Examples
    ///
    /// See [`Session`].
    pub fn end(mut self, handled: Result<(), HandlerError>) -> Result<(), HandlerError> {
        if self.waiting_since.take().is_some() {
            self.request.after_wait();
        }
        let handler = self.handler.borrow_mut();
        let request = &mut self.request;
        let finished = guarded(Stage::Finish, || handler.finish(request));
        let flushed = guarded(Stage::Finish, || request.finish().map_err(BoxError::from));
        let mut first = None;
        for result in [handled, finished, flushed] {
            if let Err(e) = result {
                if first.is_none() {
                    first = Some(e);
                } else {
                    log::debug!("a later error of the same request: {e}");
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<R: Request + std::fmt::Debug, H, B> std::fmt::Debug for Session<R, H, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("request", &self.request)
            .field("waiting", &self.waiting_since.is_some())
            .finish_non_exhaustive()
    }
}
