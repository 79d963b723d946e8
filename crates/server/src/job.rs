//! Turning a handler and a raw request into a `Job`: finish_request, handle_error and
//! shutdown_request, in one closure.

use crate::layer::{Layer, Layers, run_layers};
use crate::waiting::{Close, Unparked, Waiter, Waiting};
use crate::{Hooks, Job, ProxyProtocol, RequestRef, shutdown::InFlight};
use handler::driver::{Session, Waited};
use handler::{Handler, HandlerError, HandlerExt, Next, Request, ServerContext, SharedState};
use reactor::{Interest, Reactor};
use socket::{Address, Readable, Shutdown, Socket};
use std::{
    panic::{self, AssertUnwindSafe},
    sync::Arc,
    time::{Duration, Instant},
};

/// A request's place in the server's books: its in-flight ticket, and where its connection
/// waits between turns.
pub(crate) type Tracking = (InFlight, Arc<Waiting>);

/// Makes jobs of one request type; a server holds its handler behind this, so the server's
/// type does not name the handler's.
pub(crate) trait MakeJob<R: Request>: Send {
    // What a job is made of, each from a different part of the server: a struct of them would
    // only be taken apart again at once.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        raw: R::Raw,
        connection: Option<Arc<Socket>>,
        client_address: Address,
        context: ServerContext<R::State>,
        hooks: Arc<dyn Hooks<R::State>>,
        tracking: Tracking,
        proxy: Option<Arc<ProxyProtocol>>,
    ) -> Job;

    /// The same handler with these request options instead of its own.
    fn with_options(self: Box<Self>, options: R::Options) -> Box<dyn MakeJob<R>>;

    /// The same, with `layer` after the layers it has.
    fn with_layer(self: Box<Self>, layer: Arc<dyn Layer>) -> Box<dyn MakeJob<R>>;
}

struct HandlerJobs<R: Request, H> {
    handler: H,
    /// Request options set on the builder, in place of the handler's own.
    options: Option<R::Options>,
    /// The steps each connection goes through before its request's setup.
    layers: Layers,
}

pub(crate) fn boxed<R: Request, H: Handler<R>>(handler: H) -> Box<dyn MakeJob<R>> {
    Box::new(HandlerJobs {
        handler,
        options: None,
        layers: None,
    })
}

impl<R: Request, H: Handler<R>> MakeJob<R> for HandlerJobs<R, H> {
    fn make(
        &self,
        raw: R::Raw,
        connection: Option<Arc<Socket>>,
        client_address: Address,
        context: ServerContext<R::State>,
        hooks: Arc<dyn Hooks<R::State>>,
        (ticket, waiting): Tracking,
        proxy: Option<Arc<ProxyProtocol>>,
    ) -> Job {
        // One handler value per request, as Python makes one handler object per request.
        let handler = self.handler.clone();
        let parts = (
            raw,
            connection,
            client_address,
            context,
            hooks,
            ticket,
            waiting,
            self.layers.clone(),
        );
        match &self.options {
            Some(options) => job(handler.with_options(options.clone()), parts, proxy),
            None => job(handler, parts, proxy),
        }
    }

    fn with_options(mut self: Box<Self>, options: R::Options) -> Box<dyn MakeJob<R>> {
        self.options = Some(options);
        self
    }

    fn with_layer(mut self: Box<Self>, layer: Arc<dyn Layer>) -> Box<dyn MakeJob<R>> {
        Arc::make_mut(self.layers.get_or_insert_with(Default::default)).push(layer);
        self
    }
}

/// What a job is made of, besides its handler.
type Parts<R> = (
    <R as Request>::Raw,
    Option<Arc<Socket>>,
    Address,
    ServerContext<<R as Request>::State>,
    Arc<dyn Hooks<<R as Request>::State>>,
    InFlight,
    Arc<Waiting>,
    Layers,
);

/// The job of one request: the request's and the handler's setup, then its turns (see
/// [`Connection::run`]), `finish`, `handle_error` on a failure, `shutdown_request`. With the
/// PROXY protocol on, a preamble first: the header is read (proxy.rs), then `verify_request`
/// runs with the real client; then the server's layers (a TLS handshake), then the setup.
fn job<R: Request, H: Handler<R>>(
    handler: H,
    parts: Parts<R>,
    proxy: Option<Arc<ProxyProtocol>>,
) -> Job {
    let (raw, connection, client_address, context, hooks, ticket, waiting, layers) = parts;
    let address = client_address.clone();
    let wait_first = R::waits_for_first_input(&handler.options());
    let start = Start {
        handler,
        raw,
        connection,
        client_address,
        context,
        hooks,
        waiting,
        wait_first,
        layers,
    };
    let work = move |ticket: Option<InFlight>| match proxy {
        Some(proxy) => crate::proxy::read_header(proxy, start, ticket),
        None => start.run(ticket, None),
    };
    // The work releases the ticket last: the request leaves the in-flight list (and its fd
    // closes) only then, and not while its connection waits between turns.
    Job::tracked(address, work, ticket)
}

/// A request before its session starts: what its setup needs, and what its end needs if it
/// ends before (a PROXY header refused, `verify_request` saying no).
pub(crate) struct Start<R: Request, H> {
    handler: H,
    raw: R::Raw,
    pub(crate) connection: Option<Arc<Socket>>,
    /// The client its handler and hooks see: the peer, or the one a PROXY header names.
    pub(crate) client_address: Address,
    context: ServerContext<R::State>,
    hooks: Arc<dyn Hooks<R::State>>,
    pub(crate) waiting: Arc<Waiting>,
    wait_first: bool,
    /// The steps before its setup (Builder::layer).
    layers: Layers,
}

impl<R: Request, H: Handler<R>> Start<R, H> {
    /// The server's layers (a TLS handshake), the request's and the handler's setup, then its
    /// turns. `slot`: its slot among the waiting connections, if it waited already (for its
    /// PROXY header).
    pub(crate) fn run(self, ticket: Option<InFlight>, slot: Option<usize>) {
        let Start {
            handler,
            raw,
            connection,
            client_address,
            context,
            hooks,
            waiting,
            wait_first,
            layers,
        } = self;
        let (client_address, started) = match &layers {
            None => {
                let started = Session::start(handler, raw, client_address.clone(), context.clone());
                (client_address, started)
            }
            Some(layers) => {
                let (client_address, layered) =
                    run_layers(layers, connection.as_ref(), client_address);
                let started = layered.and_then(|transport| {
                    Session::start_over(
                        handler,
                        raw,
                        transport,
                        client_address.clone(),
                        context.clone(),
                    )
                });
                (client_address, started)
            }
        };
        match started {
            Ok(session) => Box::new(Connection {
                session,
                connection,
                client_address,
                context,
                hooks,
                waiting,
                slot,
                in_reactor: false,
                linger: Linger::Try,
            })
            .run(ticket, wait_first),
            Err(error) => {
                let slot = slot.map(|slot| (&*waiting, slot));
                let parts = (connection, &client_address, &context, &*hooks);
                end_request(Some(error), parts, slot, ticket);
            }
        }
    }

    /// `verify_request` with the client as it is now (with the PROXY protocol on: the real
    /// client, once the header was read). A panicking hook refuses the request.
    pub(crate) fn verify(&self) -> bool {
        let Some(connection) = &self.connection else {
            return true;
        };
        guard_hook("verify_request", || {
            self.hooks.verify_request(
                &self.context,
                RequestRef::Stream(connection),
                &self.client_address,
            )
        })
        .unwrap_or(false)
    }

    /// Ends the request before its session: `handle_error` with `error` if any, out of the
    /// waiting set, `shutdown_request`, the ticket last.
    pub(crate) fn end(
        self,
        error: Option<HandlerError>,
        ticket: Option<InFlight>,
        slot: Option<usize>,
    ) {
        let Start {
            raw,
            connection,
            client_address,
            context,
            hooks,
            waiting,
            ..
        } = self;
        drop(raw);
        let slot = slot.map(|slot| (&*waiting, slot));
        end_request(
            error,
            (connection, &client_address, &context, &*hooks),
            slot,
            ticket,
        );
    }
}

/// The end of a request, whatever it reached: `handle_error` with `error` if there is one,
/// out of the waiting set (its slot, if it waited), `shutdown_request`, the ticket last.
fn end_request<S: SharedState>(
    error: Option<HandlerError>,
    (connection, client_address, context, hooks): (
        Option<Arc<Socket>>,
        &Address,
        &ServerContext<S>,
        &dyn Hooks<S>,
    ),
    slot: Option<(&Waiting, usize)>,
    ticket: Option<InFlight>,
) {
    if let Some(error) = error {
        guard_hook("handle_error", || {
            hooks.handle_error(context, client_address, &error)
        });
    }
    if let Some((waiting, slot)) = slot {
        waiting.release(slot);
    }
    shutdown_request(connection, context, client_address, hooks);
    drop(ticket);
}

/// A request across its turns, with what its end needs.
struct Connection<R: Request, H> {
    session: Session<R, H>,
    connection: Option<Arc<Socket>>,
    client_address: Address,
    context: ServerContext<R::State>,
    hooks: Arc<dyn Hooks<R::State>>,
    waiting: Arc<Waiting>,
    /// Its slot among the waiting connections, from its first wait on.
    slot: Option<usize>,
    /// It may be registered in the loop's reactor (it parked since it last lingered).
    in_reactor: bool,
    /// Whether its next wait lingers on the thread (when the pool offers it).
    linger: Linger,
}

/// Whether a connection's wait lingers on its thread first: while lingering finds its input,
/// and again once a wait in the reactor turns out short enough that it would have. A client
/// slower than the linger (thousands of them, each answered in turn) parks at once, sparing
/// a thread's sleep and wake-up for nothing at each request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Linger {
    /// Linger at the next wait.
    Try,
    /// The last linger found nothing: park at once (until a wait turns out short).
    Skip,
}

impl<R: Request, H: Handler<R>> Connection<R, H> {
    /// Runs turns until the handler is done, or its connection waits: in the server's reactor
    /// when there is a ticket to keep meanwhile (sync, threading), on this thread when there is
    /// none (a forked child, which waits on its own socket). A turn that leaves bytes in
    /// `rfile` is followed by the next at once. `wait_first`: the request was just set up
    /// and waits for its first input before its first turn
    /// (`StreamOptions::wait_for_first_input`).
    fn run(mut self: Box<Self>, mut ticket: Option<InFlight>, wait_first: bool) {
        let mut next = wait_first.then(|| self.session.wait_before_first_turn());
        loop {
            match next.take().unwrap_or_else(|| self.session.turn()) {
                Ok(Next::WaitForInput) if self.session.has_buffered_input() => {}
                Ok(Next::WaitForInput) => {
                    let Some(held) = ticket.take() else {
                        match self.wait_in_child() {
                            Waited::Input => continue,
                            Waited::TimedOut(e) => return (*self).end(Err(e), None),
                            _ => return (*self).end(Ok(()), None),
                        }
                    };
                    if self.waiting.is_closing() {
                        // A graceful stop: input already there gets its turn; else the end.
                        match self.session.poll_input() {
                            Some(Waited::Input) => {
                                ticket = Some(held);
                                continue;
                            }
                            _ => return (*self).end(Ok(()), Some(held)),
                        }
                    }
                    if let Some(linger) =
                        self.waiting.linger().filter(|_| self.linger == Linger::Try)
                    {
                        // The pool has idle threads: wait here briefly, and run the next
                        // turn on this thread if input comes (no hand-off through the loop).
                        match self.linger(linger) {
                            Some(Waited::Input) => {
                                // Lingering works for this connection: out of the loop's
                                // reactor while it does, so that its input, which this thread
                                // reads, does not also wake the loop at each request.
                                if std::mem::take(&mut self.in_reactor) {
                                    if let Some(slot) = self.slot {
                                        self.waiting.quiet(slot);
                                    }
                                }
                                ticket = Some(held);
                                continue;
                            }
                            Some(_) => return (*self).end(Ok(()), Some(held)),
                            None => self.linger = Linger::Skip,
                        }
                    }
                    let waiting = Arc::clone(&self.waiting);
                    self.in_reactor = true;
                    match waiting.park(self, held) {
                        Ok(()) => return,
                        // Refused: the server began to close meanwhile.
                        Err(Unparked::Refused(waiter, ticket)) => return refused(waiter, ticket),
                        // Input came during the turn: the next turn runs here.
                        Err(Unparked::Waited(this, held, Waited::Input)) => {
                            self = this;
                            ticket = Some(held);
                        }
                        Err(Unparked::Waited(this, held, _)) => {
                            return (*this).end(Ok(()), Some(held));
                        }
                    }
                }
                Ok(_) => return (*self).end(Ok(()), ticket),
                Err(e) => return (*self).end(Err(e), ticket),
            }
        }
    }

    /// A short wait on this thread for the connection's next input (`linger`, bounded by the
    /// wait's deadline) before the connection parks: its input (`Input`), its end (`Closed`),
    /// or nothing within it (`None`: park). The `rfile` buffer was released already; the next
    /// turn on this thread takes it back from the thread's spares.
    fn linger(&self, linger: Duration) -> Option<Waited> {
        let connection = self.session.request().waits_on()?;
        let until = Instant::now() + linger;
        let until = self.session.wait_deadline().map_or(until, |d| d.min(until));
        match connection.wait_input_by(Some(until)) {
            // Input and no end: the next turn reads it (no peek to tell input from an end).
            Ok(Readable::Input) => Some(Waited::Input),
            Ok(_) => self.session.poll_input(),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
            Err(e) => {
                log::debug!("waiting on a connection failed: {e}");
                None
            }
        }
    }

    /// The wait between turns of a forked child, on its own connection: as
    /// [`Session::wait_here`], and a graceful stop of the parent ends it at once when no
    /// input is there (input already there gets its turn, within the stop's grace).
    fn wait_in_child(&mut self) -> Waited {
        let (Some(stopping), Some(connection)) = (
            self.waiting.stopping_socket(),
            self.session.request().waits_on(),
        ) else {
            return self.session.wait_here();
        };
        // A reactor of the child's own for this wait: its connection and the stop's socket.
        let mut reactor = match Reactor::new().and_then(|r| {
            r.register(&**connection, 0, Interest::READABLE)?;
            r.register(stopping, 1, Interest::READABLE)?;
            Ok(r)
        }) {
            Ok(reactor) => reactor,
            Err(e) => {
                log::debug!("a forked child waits on its connection alone: {e}");
                return self.session.wait_here();
            }
        };
        let deadline = self.session.wait_deadline();
        loop {
            if let Some(waited) = self.session.poll_input() {
                return waited;
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                return Waited::TimedOut(self.session.wait_timed_out());
            }
            let stop = match reactor.select(timeout) {
                Ok(ready) => ready.iter().any(|r| r.key == 1),
                Err(e) => {
                    log::debug!("waiting on a connection failed: {e}");
                    return Waited::Closed;
                }
            };
            if stop {
                // The parent's graceful stop: unread input gets its turn, else the end.
                return self.session.poll_input().unwrap_or(Waited::Closed);
            }
        }
    }

    /// The end of the request: `finish`, `handle_error` on a failure, out of the waiting set,
    /// `shutdown_request`, and the ticket last.
    fn end(self, handled: Result<(), HandlerError>, ticket: Option<InFlight>) {
        let Connection {
            session,
            connection,
            client_address,
            context,
            hooks,
            waiting,
            slot,
            in_reactor: _,
            linger: _,
        } = self;
        let error = session.end(handled).err();
        let slot = slot.map(|slot| (&*waiting, slot));
        end_request(
            error,
            (connection, &client_address, &context, &*hooks),
            slot,
            ticket,
        );
    }
}

/// A connection the waiting set refused (the server is closing): its input, if any, gets a
/// turn here; else it ends.
fn refused(waiter: Box<dyn Waiter>, ticket: InFlight) {
    match waiter.poll_input() {
        Some(Waited::Input) => waiter.resume(Some(ticket)),
        _ => waiter.close(Close::Stopping, Some(ticket)),
    }
}

impl<R: Request, H: Handler<R>> Waiter for Connection<R, H> {
    fn connection(&self) -> Option<&Arc<Socket>> {
        self.session.request().waits_on()
    }

    fn client_address(&self) -> &Address {
        &self.client_address
    }

    fn deadline(&self) -> Option<Instant> {
        self.session.wait_deadline()
    }

    fn poll_input(&self) -> Option<Waited> {
        self.session.poll_input()
    }

    fn slot(&self) -> Option<usize> {
        self.slot
    }

    fn set_slot(&mut self, slot: usize) {
        self.slot = Some(slot);
    }

    fn resume(mut self: Box<Self>, ticket: Option<InFlight>) {
        if let (Linger::Skip, Some(linger)) = (self.linger, self.waiting.linger()) {
            if self
                .session
                .waiting_since()
                .is_some_and(|t| t.elapsed() < linger)
            {
                self.linger = Linger::Try;
            }
        }
        self.run(ticket, false);
    }

    fn close(self: Box<Self>, why: Close, ticket: Option<InFlight>) {
        let handled = match why {
            Close::TimedOut => Err(self.session.wait_timed_out()),
            Close::Gone | Close::Stopping => Ok(()),
        };
        (*self).end(handled, ticket);
    }
}

/// Python's `shutdown_request`: shut down writes, tell the hook, close. Runs once per request.
pub(crate) fn shutdown_request<S: SharedState>(
    connection: Option<Arc<Socket>>,
    server: &ServerContext<S>,
    client_address: &Address,
    hooks: &dyn Hooks<S>,
) {
    if let Some(conn) = &connection {
        // The peer may already be gone (ENOTCONN); CPython ignores that too.
        if let Err(e) = conn.shutdown(Shutdown::Write) {
            log::debug!("shutdown of the connection from {client_address}: {e}");
        }
    }
    guard_hook("shutdown_request", || {
        hooks.shutdown_request(server, client_address)
    });
    drop(connection);
}

/// Runs a user hook, logging a panic instead of letting it end the serving loop.
pub(crate) fn guard_hook<T>(name: &str, hook: impl FnOnce() -> T) -> Option<T> {
    match panic::catch_unwind(AssertUnwindSafe(hook)) {
        Ok(value) => Some(value),
        Err(payload) => {
            // Through the default handle_error's report: never silent, even without a logger.
            let error = handler::HandlerError::from_panic(payload);
            let message = error.panic_message().unwrap_or_default();
            crate::report::failure(format_args!("The {name} hook panicked: {message}"));
            None
        }
    }
}
