//! Turning a handler and a raw request into a `Job`: finish_request, handle_error and
//! shutdown_request, in one closure.

use crate::{Hooks, Job, shutdown::InFlight};
use handler::driver::finish_request;
use handler::{Handler, HandlerExt, Request, ServerContext, SharedState};
use socket::{Address, Shutdown, Socket};
use std::{
    panic::{self, AssertUnwindSafe},
    sync::Arc,
};

/// Makes jobs of one request type; a server holds its handler behind this, so the server's
/// type does not name the handler's.
pub(crate) trait MakeJob<R: Request>: Send {
    fn make(
        &self,
        raw: R::Raw,
        connection: Option<Arc<Socket>>,
        client_address: Address,
        context: ServerContext<R::State>,
        hooks: Arc<dyn Hooks<R::State>>,
        ticket: InFlight,
    ) -> Job;

    /// The same handler with these request options instead of its own.
    fn with_options(self: Box<Self>, options: R::Options) -> Box<dyn MakeJob<R>>;
}

struct HandlerJobs<R: Request, H> {
    handler: H,
    /// Request options set on the builder, in place of the handler's own.
    options: Option<R::Options>,
}

pub(crate) fn boxed<R: Request, H: Handler<R>>(handler: H) -> Box<dyn MakeJob<R>> {
    Box::new(HandlerJobs {
        handler,
        options: None,
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
        ticket: InFlight,
    ) -> Job {
        // One handler value per request, as Python makes one handler object per request.
        let handler = self.handler.clone();
        let parts = (raw, connection, client_address, context, hooks, ticket);
        match &self.options {
            Some(options) => job(handler.with_options(options.clone()), parts),
            None => job(handler, parts),
        }
    }

    fn with_options(mut self: Box<Self>, options: R::Options) -> Box<dyn MakeJob<R>> {
        self.options = Some(options);
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
);

/// The job of one request: finish_request, then handle_error on a failure, then
/// shutdown_request.
fn job<R: Request, H: Handler<R>>(mut handler: H, parts: Parts<R>) -> Job {
    let (raw, connection, client_address, context, hooks, ticket) = parts;
    let address = client_address.clone();
    let work = move || {
        let done = finish_request(&mut handler, raw, client_address.clone(), context.clone());
        if let Err(error) = done {
            guard_hook("handle_error", || {
                hooks.handle_error(&context, &client_address, &error)
            });
        }
        drop(handler);
        shutdown_request(connection, &context, &client_address, &*hooks);
    };
    // The job releases the ticket after the work: the request leaves the in-flight list (and
    // its fd closes) only then.
    Job::tracked(address, work, ticket)
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
