//! `DatagramRequest` (Python's `DatagramRequestHandler`): one packet in, one reply out.

use crate::{Request, ServerContext, SharedState};
use socket::{Address, Socket};
use std::{
    io::{self, Cursor},
    sync::Arc,
};

/// Options of a datagram request.
///
/// # Examples
///
/// ```
/// use sockserve_handler::DatagramOptions;
///
/// assert!(DatagramOptions::default().reply_when_empty);
/// let quiet = DatagramOptions::default().reply_when_empty(false);
/// assert!(!quiet.reply_when_empty);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatagramOptions {
    /// Send a zero-length reply when the handler wrote nothing (CPython always replies).
    /// Default true, as CPython.
    pub reply_when_empty: bool,
}

impl Default for DatagramOptions {
    fn default() -> Self {
        DatagramOptions {
            reply_when_empty: true,
        }
    }
}

impl DatagramOptions {
    /// Sets [`reply_when_empty`](Self::reply_when_empty).
    ///
    /// # Examples
    ///
    /// See [`DatagramOptions`].
    pub fn reply_when_empty(mut self, on: bool) -> Self {
        self.reply_when_empty = on;
        self
    }
}

/// Why a datagram's request failed before its handler ran: the datagram was longer than the
/// server's `max_packet_size`, so the receive cut it (CPython hands the cut datagram to the
/// handler silently). The server found its real length through `MSG_TRUNC` and discarded it;
/// `handle_error` gets this error (at [`Stage::Setup`](crate::Stage::Setup), inside an
/// `io::Error` of kind `InvalidData`:
/// [`HandlerError::truncated_datagram`](crate::HandlerError::truncated_datagram) finds it),
/// and the client gets no reply.
///
/// # Examples
///
/// ```
/// use sockserve_handler::{HandlerError, Stage, TruncatedDatagram};
/// use std::io;
///
/// let cut = TruncatedDatagram::new(9000, 8192);
/// assert_eq!((cut.length, cut.max_packet_size), (9000, 8192));
/// let err = HandlerError::failed(Stage::Setup, io::Error::new(io::ErrorKind::InvalidData, cut));
/// assert_eq!(err.truncated_datagram(), Some(&cut));
/// assert!(err.to_string().contains("9000 bytes"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "datagram of {length} bytes is longer than max_packet_size ({max_packet_size} bytes): \
     discarded unhandled (raise the server's max_packet_size to take it)"
)]
#[non_exhaustive]
pub struct TruncatedDatagram {
    /// The datagram's real length.
    pub length: usize,
    /// The server's `max_packet_size`, the most it receives.
    pub max_packet_size: usize,
}

impl TruncatedDatagram {
    /// The error of a datagram of `length` bytes received with room for `max_packet_size`.
    ///
    /// # Examples
    ///
    /// See [`TruncatedDatagram`].
    pub fn new(length: usize, max_packet_size: usize) -> Self {
        TruncatedDatagram {
            length,
            max_packet_size,
        }
    }
}

/// A datagram request (Python's `DatagramRequestHandler` attributes): the packet, `rfile`
/// over it, a `wfile` whose bytes are sent back to the client when the request finishes, the
/// server's socket, the client's address and the server.
///
/// # Examples
///
/// ```
/// use sockserve_handler::DatagramRequest;
/// use std::io::{self, Write};
///
/// fn echo(req: &mut DatagramRequest) -> io::Result<()> {
///     let packet = req.packet.clone();
///     req.wfile.write_all(&packet)
/// }
/// # let _ = echo;
/// ```
#[non_exhaustive]
pub struct DatagramRequest<S = ()> {
    /// The datagram, whole: one longer than the server's `max_packet_size` is never handed
    /// to a handler (its request fails with a [`TruncatedDatagram`] instead).
    pub packet: Arc<[u8]>,
    /// A reader over `packet`.
    pub rfile: Cursor<Arc<[u8]>>,
    /// The reply, sent to `client_address` when the request finishes. It is sent without
    /// blocking: a reply the client cannot take at once (its queue is full) is dropped and
    /// counted ([`ServerContext::dropped_replies`]), never waited for.
    pub wfile: Vec<u8>,
    /// The server's socket, shared by every request (Python's `self.socket`). A handler that
    /// replies through it itself (as Python's docs' `BaseRequestHandler` UDP example does with
    /// `socket.sendto`) should leave `wfile` empty and turn off
    /// [`reply_when_empty`](DatagramOptions::reply_when_empty): like CPython's
    /// `DatagramRequestHandler`, the request sends `wfile` when it finishes, even empty. It is
    /// non-blocking: a handler's own `sendto` on it fails with `WouldBlock` when the client's
    /// queue is full, rather than block the server.
    pub socket: Arc<Socket>,
    /// The sender (`Address::Unnamed` for an unbound Unix client, which gets no reply).
    pub client_address: Address,
    /// The server (Python's `self.server`).
    pub server: ServerContext<S>,
    reply_when_empty: bool,
}

// By hand: the state need not implement `Debug` (derive would demand it).
impl<S> std::fmt::Debug for DatagramRequest<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramRequest")
            .field("packet", &self.packet)
            .field("rfile", &self.rfile)
            .field("wfile", &self.wfile)
            .field("socket", &self.socket)
            .field("client_address", &self.client_address)
            .field("server", &self.server)
            .field("reply_when_empty", &self.reply_when_empty)
            .finish()
    }
}

impl<S: SharedState> Request for DatagramRequest<S> {
    type Raw = crate::driver::DatagramRaw;
    type Options = DatagramOptions;
    type State = S;

    fn setup(
        raw: crate::driver::DatagramRaw,
        client_address: Address,
        server: ServerContext<S>,
        options: &DatagramOptions,
    ) -> io::Result<Self> {
        let crate::driver::DatagramRaw {
            packet,
            socket,
            truncated,
        } = raw;
        // A cut datagram is never handed to the handler as if it were whole: the request
        // fails its setup, so `handle_error` sees why (and no reply is sent).
        if let Some(truncated) = truncated {
            return Err(io::Error::new(io::ErrorKind::InvalidData, truncated));
        }
        Ok(DatagramRequest {
            rfile: Cursor::new(Arc::clone(&packet)),
            packet,
            wfile: Vec::new(),
            socket,
            client_address,
            server,
            reply_when_empty: options.reply_when_empty,
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.wfile.is_empty() && !self.reply_when_empty {
            return Ok(());
        }
        if matches!(self.client_address, Address::Unnamed) {
            // CPython raises a TypeError per datagram here (gh-152024); an unbound Unix client
            // simply has no address to answer. Say so once per server.
            if self.server.first_unnamed_warning() {
                log::warn!(
                    "datagram from an unnamed (unbound) client on {}: no reply can be sent; \
                     further ones are dropped silently",
                    self.server.server_address()
                );
            }
            return Ok(());
        }
        match self.socket.sendto(&self.wfile, &self.client_address) {
            Ok(_) => Ok(()),
            // The server's socket is non-blocking: a reply that cannot be queued now is
            // dropped rather than wait for a client that may never read (UDP's kernel drops
            // datagrams the same way; a Unix datagram socket would block the server instead).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let dropped = self.server.count_dropped_reply();
                // Not from a forked child: a logger's locks may be held by a parent thread.
                if self.server.in_forked_child() {
                    return Ok(());
                }
                let (client, server) = (&self.client_address, self.server.server_address());
                if self.server.first_dropped_reply() {
                    log::warn!(
                        "{server}: reply to {client} dropped: it cannot be queued now (the \
                         client does not read its replies, or the server's send buffer is full \
                         of replies to such clients); replies are never waited for, dropped \
                         ones are counted in ServerContext::dropped_replies, further drops are \
                         logged at debug"
                    );
                } else {
                    log::debug!("{server}: reply to {client} dropped ({dropped} so far)");
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
