//! `Builder::from_activation`: a server on a socket passed by a service manager (systemd's
//! socket activation, `LISTEN_FDS`).

use crate::{Builder, Error, Kind, Result, Server, SharedState, Strategy};

impl<K: Kind, C: Strategy, S: SharedState> Builder<K, C, S> {
    /// Builds the server on a socket passed by a service manager (systemd socket activation):
    /// the one named `name` in `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`), or the first
    /// one for `None`.
    ///
    /// The sockets are taken with [`socket::activation::listen_fds`], which reads and then
    /// removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`: process-wide state, so call this
    /// early in `main`, once. The other passed sockets are closed; a service with several
    /// sockets takes them all with `listen_fds` and builds each server with
    /// [`from_listener`](Builder::from_listener). As with `from_listener`, the socket's family
    /// and type must suit the server (a UDP socket for a `TcpServer` is an error), and a stream
    /// socket is (re)activated with `listen`.
    ///
    /// # Errors
    ///
    /// [`Error::Address`] with the socket layer's error: `NotFound` when the process was not
    /// socket-activated ("no sockets were passed (LISTEN_FDS is not set)", "LISTEN_PID is 123,
    /// not this process (456)") or no socket has the name ("no socket named 'web' among web2,
    /// admin"); `InvalidData` for malformed variables; `InvalidInput` for a passed fd that is
    /// not an open socket or does not suit this server.
    ///
    /// # Examples
    ///
    /// Serve the socket systemd passed, or bind one when started by hand:
    ///
    /// ```
    /// use sockserve_server::{Error, TcpServer};
    /// use sockserve_server::StreamRequest;
    /// use std::io::{ErrorKind, Write};
    ///
    /// fn hello(req: &mut StreamRequest) -> Result<(), sockserve_server::BoxError> {
    ///     Ok(req.wfile.write_all(b"hello\n")?)
    /// }
    ///
    /// let server = match TcpServer::builder(hello).from_activation(Some("web")) {
    ///     Ok(server) => server,
    ///     Err(Error::Address(e)) if e.kind() == ErrorKind::NotFound => {
    ///         TcpServer::bind("127.0.0.1:0", hello)?
    ///     }
    ///     Err(e) => return Err(e.into()),
    /// };
    /// println!("serving on {}", server.server_address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_activation(self, name: Option<&str>) -> Result<Server<K, C, S>> {
        let passed = socket::activation::listen_fds().map_err(Error::Address)?;
        let count = passed.len();
        let chosen = passed.take(name).map_err(Error::Address)?;
        log::debug!(
            "{}: serving passed socket {chosen} (fd {}, one of {count})",
            K::NAME,
            chosen.socket().fileno()
        );
        let fd = chosen.into_socket().detach()?;
        self.from_listener(fd)
    }
}
