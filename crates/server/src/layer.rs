//! [`Layer`]: a step a stream server runs on each connection on the worker (or the forked
//! child), after the accept and before the request's setup: a TLS handshake that installs a
//! [`Transport`] for `rfile` and `wfile`, a PROXY protocol header that replaces the client's
//! address.

use handler::{BoxError, HandlerError, Stage, Transport};
use socket::{Address, Socket};
use std::{
    fmt,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
};

/// A connection between its accept and its request's setup, as the server's [`Layer`]s see it
/// one after another: each may read from and write to the socket, replace the client's
/// address, and install the [`Transport`] the request's `rfile` and `wfile` will go through.
///
/// # Examples
///
/// See [`Layer`].
#[non_exhaustive]
pub struct Incoming {
    /// The accepted connection (blocking, as the request will have it).
    pub socket: Arc<Socket>,
    /// The client's address: the one `accept` gave, or what an earlier layer put there.
    pub client_address: Address,
    /// The transport of the request's `rfile` and `wfile`; `None`: the plain socket.
    pub transport: Option<Arc<dyn Transport>>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("socket", &self.socket)
            .field("client_address", &self.client_address)
            .field("transport", &self.transport)
            .finish()
    }
}

/// A step a stream server runs on each accepted connection, where its request runs (a pool
/// worker, the loop's thread under sync, the forked child), never on the accept loop: a slow
/// or silent client holds only its own worker, and only as long as the layer's own deadline.
/// Set with [`Builder::layer`](crate::Builder::layer); several run in the order they were
/// set (a PROXY header, then a TLS handshake). A layer that fails ends the request before
/// its setup: `handle_error` gets the error (stage `Setup`, the layer's error inside, to
/// downcast), `shutdown_request` runs, the server keeps serving.
///
/// `verify_request` runs on the accept loop, before the layers; a layer that must decide on
/// what it learned (the address of a PROXY header) refuses the connection by returning an
/// error.
///
/// # Examples
///
/// A layer that takes a one-line name from the client before its handler runs, and makes it
/// the client's address:
///
/// ```
/// use sockserve_server::{BoxError, Incoming, Layer, TcpServer};
/// use std::time::{Duration, Instant};
///
/// #[derive(Debug)]
/// struct Named;
///
/// impl Layer for Named {
///     fn on_connection(&self, incoming: &mut Incoming) -> Result<(), BoxError> {
///         let mut name = [0u8; 64];
///         let deadline = Some(Instant::now() + Duration::from_secs(5));
///         let n = incoming.socket.recv_into_by(&mut name, deadline)?;
///         let name = std::str::from_utf8(&name[..n])?.trim();
///         incoming.client_address = format!("@{name}").parse()?;
///         Ok(())
///     }
/// }
///
/// let server = TcpServer::builder(|_req| Ok(())).layer(Named).bind("127.0.0.1:0")?;
/// # drop(server);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Layer: Send + Sync + fmt::Debug + 'static {
    /// Runs on the connection before its request's setup.
    ///
    /// # Errors
    ///
    /// Anything that should end the connection unserved: it goes to `handle_error`.
    fn on_connection(&self, incoming: &mut Incoming) -> Result<(), BoxError>;
}

/// The layers of a server, shared by its jobs (`None` when it has none: a plain server's job
/// clones no list).
pub(crate) type Layers = Option<Arc<Vec<Arc<dyn Layer>>>>;

/// Runs `layers` in order on a connection: its transport and client's address for the
/// request, or the first failure (a panic included) as a setup error, with the address as far
/// as the layers had got.
pub(crate) fn run_layers(
    layers: &[Arc<dyn Layer>],
    socket: Option<&Arc<Socket>>,
    client_address: Address,
) -> (Address, Result<Option<Arc<dyn Transport>>, HandlerError>) {
    let Some(socket) = socket else {
        // Set only on stream servers (Builder::layer's bound): a datagram has no connection.
        return (client_address, Ok(None));
    };
    let mut incoming = Incoming {
        socket: Arc::clone(socket),
        client_address,
        transport: None,
    };
    for layer in layers {
        let ran = panic::catch_unwind(AssertUnwindSafe(|| layer.on_connection(&mut incoming)));
        let failed = match ran {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => HandlerError::failed(Stage::Setup, error),
            Err(payload) => HandlerError::from_panic(payload).at(Stage::Setup),
        };
        return (incoming.client_address, Err(failed));
    }
    (incoming.client_address, Ok(incoming.transport))
}
