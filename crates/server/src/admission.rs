//! Admission: `max_connections`, the bound on open connections every strategy shares, its
//! default (from the open-file limit), and [`Overload`], what the server does at it.

use crate::{LimitGauge, RequestRef, job::guard_hook};
use socket::{Address, Socket, opt};
use std::{fmt, io, sync::Arc, time::Duration};

/// What a server does with a new connection while [`max_connections`] are open: set with
/// [`Builder::overload`](crate::Builder::overload). Whatever the policy, reaching the limit is
/// logged once at warn (the limit, its value, how to raise it) and its end once at info.
///
/// - [`Pause`](Overload::Pause) (the default): stop accepting until a connection closes. New
///   connections wait in the kernel's listen backlog (up to
///   [`request_queue_size`](crate::Builder::request_queue_size)), then are taken in arrival
///   order, and no client is refused. A client sees its connect succeed (the kernel completes
///   the handshake) and its answer come late. The default because it loses nothing and needs
///   nothing from the program: a burst over the limit is served as room comes back; it is
///   what a threading or forking server does at its own limits too. A datagram server stops
///   reading: the kernel's receive buffer holds what arrives, then drops.
/// - [`Close`](Overload::Close): accept each connection over the limit and close it at once,
///   with a reset: `SO_LINGER` 0, so the client sees `RST` (not `FIN`), and its next read or
///   write fails with `ECONNRESET` ("connection reset by peer"), whatever it sent; no
///   `TIME_WAIT` stays on the server. Over a Unix stream socket (which has no reset) the client
///   sees end of file, or `ECONNRESET` if it had sent data. For a client that should fail fast
///   and retry elsewhere. A datagram over the limit is received and dropped.
/// - [`reply`](Overload::reply): accept each connection over the limit, let a hook write a
///   short reply (a "busy" line, an HTTP 503), then close it. The hook runs on the serving
///   loop, so it must not block: it gets the connection in non-blocking mode, and
///   [`Rejected::send`] writes once, without waiting. Then what the client had sent is read
///   and dropped (up to 64 KiB, without waiting), and the connection is shut down and closed:
///   the client reads the reply, then end of file (a client still sending more may see a
///   reset instead). For a datagram server the hook answers the datagram's sender.
///
/// Connections turned away count in
/// [`ShutdownHandle::turned_away`](crate::ShutdownHandle::turned_away); they never reach
/// `verify_request`, a handler or `shutdown_request`.
///
/// [`max_connections`]: crate::Builder::max_connections
///
/// # Examples
///
/// A server of one connection at a time, the others told so (its strategy runs each request
/// on a thread of its own, so that the loop goes on accepting):
///
/// ```
/// use sockserve_server::{Job, Overload, Strategy, TcpServer};
/// use std::io::Read;
/// use std::net::TcpStream;
///
/// struct ThreadEach;
/// impl Strategy for ThreadEach {
///     fn process_request(&mut self, job: Job) {
///         std::thread::spawn(move || job.run());
///     }
/// }
///
/// let running = TcpServer::builder(|req| {
///     let mut rest = Vec::new();
///     Ok(req.rfile.read_to_end(&mut rest).map(|_| ())?) // holds its connection open
/// })
/// .strategy(ThreadEach)
/// .max_connections(1)
/// .overload(Overload::reply(|rejected| rejected.send(b"busy, try again later\n")))
/// .bind("127.0.0.1:0")?
/// .spawn()?;
/// let address = running.server_address().as_inet().expect("TCP");
/// let _first = TcpStream::connect(address)?; // takes the one place
/// while running.in_flight() == 0 {
///     std::thread::yield_now();
/// }
/// let mut second = TcpStream::connect(address)?;
/// let mut reply = String::new();
/// second.read_to_string(&mut reply)?;
/// assert_eq!(reply, "busy, try again later\n");
/// assert_eq!(running.shutdown_handle().turned_away(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Overload {
    /// Stop accepting until a connection closes; new ones wait in the listen backlog.
    #[default]
    Pause,
    /// Accept and close at once, with a reset (`RST`, through `SO_LINGER` 0).
    Close,
    /// Accept, let the hook write a short reply, then close: made by [`Overload::reply`].
    Reply(OverloadReply),
}

/// The hook of [`Overload::reply`].
///
/// # Examples
///
/// See [`Overload`].
#[derive(Clone)]
pub struct OverloadReply(Arc<ReplyHook>);

/// The closure of [`Overload::reply`].
type ReplyHook = dyn Fn(&Rejected<'_>) -> io::Result<()> + Send + Sync;

impl Overload {
    /// The reply policy: `hook` writes a short reply to each connection turned away at the
    /// limit (see [`Overload`]), with [`Rejected::send`]. It runs on the serving loop; an
    /// error it returns is logged at debug (a reply that did not fit is not worth more), and
    /// a panic is caught and reported.
    ///
    /// # Examples
    ///
    /// An HTTP server's 503:
    ///
    /// ```
    /// use sockserve_server::{Overload, TcpServer};
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .overload(Overload::reply(|rejected| {
    ///         rejected.send(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
    ///                         Content-Length: 0\r\nConnection: close\r\n\r\n")
    ///     }))
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reply<F>(hook: F) -> Overload
    where
        F: Fn(&Rejected<'_>) -> io::Result<()> + Send + Sync + 'static,
    {
        Overload::Reply(OverloadReply(Arc::new(hook)))
    }

    /// What happens to a connection at the limit, for the limit's log line.
    fn effect(&self) -> &'static str {
        match self {
            Overload::Pause => {
                "accepting pauses until one closes: new connections wait in the listen backlog"
            }
            Overload::Close => "new connections are closed at once with a reset (Overload::Close)",
            Overload::Reply(_) => {
                "new connections get the overload reply and are closed (Overload::reply)"
            }
        }
    }
}

impl fmt::Debug for Overload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overload::Pause => f.write_str("Pause"),
            Overload::Close => f.write_str("Close"),
            Overload::Reply(_) => f.write_str("Reply(..)"),
        }
    }
}

impl fmt::Debug for OverloadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OverloadReply(..)")
    }
}

/// A connection (or a datagram) turned away at `max_connections`, as the hook of
/// [`Overload::reply`] sees it.
///
/// # Examples
///
/// See [`Overload`].
#[derive(Debug)]
pub struct Rejected<'a> {
    request: RequestRef<'a>,
    client_address: &'a Address,
}

impl Rejected<'_> {
    /// The client's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::Overload;
    ///
    /// let policy = Overload::reply(|rejected| {
    ///     log::info!("turning {} away", rejected.client_address());
    ///     Ok(())
    /// });
    /// # drop(policy);
    /// ```
    pub fn client_address(&self) -> &Address {
        self.client_address
    }

    /// What was received: a stream server's connection (in non-blocking mode), or a datagram
    /// and the server's socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Overload, RequestRef};
    ///
    /// let policy = Overload::reply(|rejected| {
    ///     if let RequestRef::Stream(connection) = rejected.request() {
    ///         assert!(!connection.getblocking());
    ///     }
    ///     Ok(())
    /// });
    /// # drop(policy);
    /// ```
    pub fn request(&self) -> RequestRef<'_> {
        self.request
    }

    /// Sends `reply` without waiting: on a connection, one non-blocking `send`; to a datagram's
    /// sender, one `sendto` on the server's (non-blocking) socket.
    ///
    /// # Errors
    ///
    /// The OS error; `WouldBlock` when the socket's buffer did not take the whole reply at
    /// once (a part of it may have gone).
    ///
    /// # Examples
    ///
    /// See [`Overload`].
    pub fn send(&self, reply: &[u8]) -> io::Result<()> {
        let sent = match self.request {
            RequestRef::Stream(connection) => connection.send(reply)?,
            RequestRef::Datagram { socket, .. } => socket.sendto(reply, self.client_address)?,
        };
        if sent < reply.len() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{sent} of the reply's {} bytes went out", reply.len()),
            ));
        }
        Ok(())
    }
}

/// How much of what a turned-away client sent is read and dropped before the close, so that
/// the close sends `FIN` after the reply rather than a reset (closing a socket with unread
/// data resets it).
const DRAIN_LIMIT: usize = 64 << 10;

/// Turns one request away under `policy` (never `Pause`, which does not accept). The
/// connection, if any, closes as its last reference drops, after this.
fn turn_away(
    policy: &Overload,
    request: RequestRef<'_>,
    connection: Option<&Socket>,
    client_address: &Address,
) {
    match policy {
        Overload::Pause => {}
        Overload::Close => {
            if let Some(conn) = connection {
                // Linger 0: the close resets the connection at once.
                if let Err(e) = conn.setsockopt(opt::Linger, Some(Duration::ZERO)) {
                    log::debug!(
                        "overload: SO_LINGER 0 on the connection from {client_address}: {e}"
                    );
                }
            }
        }
        Overload::Reply(OverloadReply(hook)) => {
            if let Some(conn) = connection {
                if let Err(e) = conn.setblocking(false) {
                    log::debug!("overload: the connection from {client_address}: {e}");
                    return;
                }
            }
            let rejected = Rejected {
                request,
                client_address,
            };
            if let Some(Err(e)) = guard_hook("overload reply", || hook(&rejected)) {
                log::debug!("overload: the reply to {client_address}: {e}");
            }
            if let Some(conn) = connection {
                let mut scratch = [0u8; 4096];
                let mut drained = 0;
                while drained < DRAIN_LIMIT {
                    match conn.recv_into(&mut scratch) {
                        Ok(n @ 1..) => drained += n,
                        _ => break,
                    }
                }
                let _ = conn.shutdown(socket::Shutdown::Write);
            }
        }
    }
}

/// The descriptors `max_connections`' default leaves to the rest of the process: a tenth of the
/// soft limit, and at least this many.
const FD_MARGIN_MIN: u64 = 32;

/// The default `max_connections` for a soft open-file limit of `soft`: `soft` less a tenth of
/// it (at least [`FD_MARGIN_MIN`]), at least 1.
pub(crate) fn max_connections_for(soft: u64) -> usize {
    let margin = (soft / 10).max(FD_MARGIN_MIN);
    let n = soft.saturating_sub(margin).max(1);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The default `max_connections` now, from the process's soft `RLIMIT_NOFILE`.
pub(crate) fn default_max_connections() -> usize {
    match socket::fd_limit() {
        Ok(limit) => max_connections_for(limit.soft),
        // getrlimit does not fail on Linux; Linux's usual soft limit is the guess.
        Err(_) => max_connections_for(1024),
    }
}

/// A server's admission: its `max_connections` (set, or derived at each start), the policy at
/// it, and the gauge that logs it.
#[derive(Debug)]
pub(crate) struct Admission {
    /// The builder's `max_connections`; `None`: the default, derived when a loop starts.
    set: Option<usize>,
    overload: Overload,
    /// The limit in force since the last start, with its gauge.
    gauge: Option<LimitGauge>,
}

impl Admission {
    /// The builder's `max_connections` (`None`: the default) and policy.
    pub(crate) fn new(set: Option<usize>, overload: Overload) -> Self {
        Admission {
            set,
            overload,
            gauge: None,
        }
    }

    /// Fixes the limit for a loop that starts now (the default follows the open-file limit,
    /// which the program may have raised since the last loop).
    pub(crate) fn start(&mut self) {
        let limit = self.limit_now();
        if self.gauge.as_ref().is_none_or(|g| g.limit() != limit) {
            let default = if self.set.is_some() {
                ""
            } else {
                " (the default: the soft open-file limit less a tenth; raise that with \
                 socket::raise_fd_limit or `ulimit -n`)"
            };
            let advice = format!(
                "{}; raise it with Builder::max_connections{default}",
                self.overload.effect()
            );
            self.gauge = Some(LimitGauge::new(
                "max_connections",
                limit,
                "open connections",
                advice,
            ));
        }
    }

    /// The limit: the one in force, or what a start would fix now.
    pub(crate) fn limit_now(&self) -> usize {
        match (&self.gauge, self.set) {
            (_, Some(n)) => n,
            (Some(gauge), None) => gauge.limit(),
            (None, None) => default_max_connections(),
        }
    }

    /// Whether `open` connections leave room for one more; logs the limit's changes.
    pub(crate) fn has_room(&mut self, open: usize) -> bool {
        match &mut self.gauge {
            Some(gauge) => {
                gauge.observe(open);
                open < gauge.limit()
            }
            // Not started (cannot happen: every loop starts it): the limit as it would be.
            None => open < self.limit_now(),
        }
    }

    /// Whether the policy at the limit is to pause accepting (else: accept, to turn away).
    pub(crate) fn pauses(&self) -> bool {
        matches!(self.overload, Overload::Pause)
    }

    /// Turns one request that came at the limit away, as the policy says: the connection, if
    /// any, closes as its last reference drops, after this.
    pub(crate) fn turn_away(
        &self,
        request: RequestRef<'_>,
        connection: Option<&Socket>,
        client_address: &Address,
    ) {
        turn_away(&self.overload, request, connection, client_address);
    }

    /// A round of the loop: a line the gauge held back may be due.
    pub(crate) fn observe(&mut self, open: usize) {
        if let Some(gauge) = &mut self.gauge {
            gauge.observe(open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_a_tenth_of_the_descriptors() {
        assert_eq!(max_connections_for(20_000), 18_000);
        assert_eq!(max_connections_for(1024), 922);
        assert_eq!(max_connections_for(256), 224); // the margin is at least 32
        assert_eq!(max_connections_for(16), 1);
        assert!(max_connections_for(u64::MAX) > 1 << 30); // no limit: none to speak of
    }

    #[test]
    fn a_set_limit_wins_and_the_gauge_follows_it() {
        let mut admission = Admission::new(Some(2), Overload::Pause);
        admission.start();
        assert_eq!(admission.limit_now(), 2);
        assert!(admission.has_room(1));
        assert!(!admission.has_room(2));
    }
}
