//! [`TlsStream`]: a connection's TLS session as the [`Transport`] of its request's `rfile` and
//! `wfile`, and the handshake that makes one.

use crate::HandshakeError;
use handler::{StreamTruncated, Transport};
use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, ServerConfig, ServerConnection, SupportedCipherSuite};
use socket::Socket;
use std::{
    any::Any,
    fmt,
    io::{self, Read, Write},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// The most plaintext encrypted in one write: one full TLS record.
const RECORD: usize = 16 * 1024;

/// Room for the TLS bytes of one receive: a full record and its overhead.
const RECEIVE: usize = RECORD + 2048;

/// The TLS session of one connection: what a handler reads and writes through (its request's
/// `rfile` and `wfile` are plaintext over it) and what it learned in the handshake: the
/// client's certificate chain, the negotiated ALPN protocol, the SNI name, the protocol
/// version and cipher suite. A handler reaches it through
/// [`TlsRequest::tls`](crate::TlsRequest::tls).
///
/// Its reads and writes are shared with the request's
/// [`ConnectionWriter`](server::handler::ConnectionWriter)s: the session's state is under a
/// lock that no call holds while it waits for the socket.
///
/// # Examples
///
/// ```
/// use sockserve_tls::TlsRequest;
/// use sockserve_tls::server::StreamRequest;
/// use std::io::Write;
///
/// fn greet(req: &mut StreamRequest) -> std::io::Result<()> {
///     let name = req.tls().and_then(|tls| tls.server_name()).unwrap_or("-").to_owned();
///     let alpn = req.tls().and_then(|tls| tls.alpn_protocol()).map(<[u8]>::to_vec);
///     writeln!(req.wfile, "hello, you asked for {name} (ALPN {alpn:?})")
/// }
/// # let _ = greet;
/// ```
pub struct TlsStream {
    socket: Arc<Socket>,
    state: Mutex<State>,
    /// Taken by whoever sends TLS bytes (a write, a close, a reader's reply), for as long as
    /// it sends them: records leave in the order they were made. Its buffer is the bytes to
    /// send, reused.
    sending: Mutex<Vec<u8>>,
    /// The reader's receive buffer, reused (only `rfile` reads: never contended).
    receiving: Mutex<Box<[u8]>>,
    peer_certificates: Option<Vec<CertificateDer<'static>>>,
    alpn_protocol: Option<Vec<u8>>,
    server_name: Option<String>,
    protocol_version: Option<ProtocolVersion>,
    cipher_suite: Option<SupportedCipherSuite>,
}

struct State {
    conn: ServerConnection,
    /// TLS bytes received and not yet given to rustls (its plaintext buffer was full).
    unread: Vec<u8>,
}

impl State {
    /// Gives rustls what it can take of `unread` and processes it.
    fn feed(&mut self) -> io::Result<()> {
        while !self.unread.is_empty() && self.conn.wants_read() {
            let mut rest = &self.unread[..];
            let taken = self.conn.read_tls(&mut rest)?;
            self.unread.drain(..taken);
            self.process()?;
            if taken == 0 {
                break;
            }
        }
        Ok(())
    }

    fn process(&mut self) -> io::Result<()> {
        self.conn
            .process_new_packets()
            .map(drop)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Moves what rustls has to send into `out`.
    fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // rustls's calls do not panic halfway through our state; a poisoned lock's state is
    // rustls's own, which reports a broken session as an error.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends all of `data` by `deadline`.
fn send_all_by(socket: &Socket, data: &[u8], deadline: Option<Instant>) -> io::Result<()> {
    let mut sent = 0;
    while sent < data.len() {
        let n = socket.send_by(&data[sent..], deadline)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0"));
        }
        sent += n;
    }
    Ok(())
}

impl TlsStream {
    /// Runs the server's side of a handshake on `socket`, every wait bounded by `timeout`
    /// from now.
    pub(crate) fn accept(
        socket: Arc<Socket>,
        config: Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut conn = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
        let mut out = Vec::new();
        let mut receiving = vec![0u8; RECEIVE].into_boxed_slice();
        let timed_out = |e: io::Error| match e.kind() {
            io::ErrorKind::TimedOut => HandshakeError::timed_out(timeout),
            _ => HandshakeError::Io(e),
        };
        while conn.is_handshaking() {
            if conn.wants_write() {
                out.clear();
                while conn.wants_write() {
                    conn.write_tls(&mut out).map_err(HandshakeError::Io)?;
                }
                send_all_by(&socket, &out, deadline).map_err(timed_out)?;
                continue;
            }
            let n = socket
                .recv_into_by(&mut receiving, deadline)
                .map_err(timed_out)?;
            if n == 0 {
                return Err(HandshakeError::Closed);
            }
            let mut rest = &receiving[..n];
            while !rest.is_empty() {
                conn.read_tls(&mut rest).map_err(HandshakeError::Io)?;
                if let Err(e) = conn.process_new_packets() {
                    // The alert rustls queued tells the client why; best effort, briefly.
                    out.clear();
                    while conn.wants_write() {
                        if conn.write_tls(&mut out).is_err() {
                            break;
                        }
                    }
                    let brief = Instant::now() + Duration::from_millis(100);
                    let _ = send_all_by(
                        &socket,
                        &out,
                        Some(deadline.map_or(brief, |d| d.min(brief))),
                    );
                    return Err(HandshakeError::Tls(e));
                }
            }
        }
        // What the end of the handshake queued (TLS 1.3 session tickets).
        out.clear();
        while conn.wants_write() {
            conn.write_tls(&mut out).map_err(HandshakeError::Io)?;
        }
        send_all_by(&socket, &out, deadline).map_err(timed_out)?;
        out.clear();
        Ok(TlsStream {
            peer_certificates: conn.peer_certificates().map(<[_]>::to_vec),
            alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name: conn.server_name().map(str::to_owned),
            protocol_version: conn.protocol_version(),
            cipher_suite: conn.negotiated_cipher_suite(),
            socket,
            state: Mutex::new(State {
                conn,
                unread: Vec::new(),
            }),
            sending: Mutex::new(out),
            receiving: Mutex::new(receiving),
        })
    }

    /// The client's certificate chain, end entity first, when the server asked for one and
    /// the client sent it (a `ServerConfig` with a client certificate verifier).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_tls::TlsRequest;
    /// use sockserve_tls::server::StreamRequest;
    ///
    /// fn has_client_certificate(req: &StreamRequest) -> bool {
    ///     req.tls().and_then(|tls| tls.peer_certificates()).is_some_and(|c| !c.is_empty())
    /// }
    /// # let _ = has_client_certificate;
    /// ```
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.peer_certificates.as_deref()
    }

    /// The ALPN protocol the handshake agreed on (`b"h2"`, `b"http/1.1"`), if any.
    ///
    /// # Examples
    ///
    /// See [`TlsStream`].
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn_protocol.as_deref()
    }

    /// The name the client asked for in its SNI extension, if it sent one.
    ///
    /// # Examples
    ///
    /// See [`TlsStream`].
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The protocol version the handshake agreed on (TLS 1.3 or 1.2).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_tls::{TlsRequest, rustls::ProtocolVersion};
    /// use sockserve_tls::server::StreamRequest;
    ///
    /// fn modern(req: &StreamRequest) -> bool {
    ///     req.tls().and_then(|t| t.protocol_version()) == Some(ProtocolVersion::TLSv1_3)
    /// }
    /// # let _ = modern;
    /// ```
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.protocol_version
    }

    /// The cipher suite the handshake agreed on.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_tls::TlsRequest;
    /// use sockserve_tls::server::StreamRequest;
    ///
    /// fn suite(req: &StreamRequest) -> Option<String> {
    ///     Some(format!("{:?}", req.tls()?.cipher_suite()?.suite()))
    /// }
    /// # let _ = suite;
    /// ```
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.cipher_suite
    }

    /// Sends what rustls has queued, in order with every other sender.
    fn send_queued(&self, deadline: Option<Instant>) -> io::Result<()> {
        let mut out = lock(&self.sending);
        out.clear();
        lock(&self.state).take_output(&mut out)?;
        send_all_by(&self.socket, &out, deadline)
    }
}

impl Transport for TlsStream {
    fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }

    fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let replies = {
                let mut state = lock(&self.state);
                state.feed()?;
                match state.conn.reader().read(buf) {
                    Ok(n) => return Ok(n), // 0: the client's close_notify
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(StreamTruncated::error());
                    }
                    Err(e) => return Err(e),
                }
                state.conn.wants_write()
            };
            if replies {
                // A reply the session owes the client (a key update's).
                self.send_queued(deadline)?;
            }
            // Nothing decrypted yet: more bytes from the socket, without the session's lock.
            let mut receiving = lock(&self.receiving);
            let n = self.socket.recv_into_by(&mut receiving, deadline)?;
            let mut state = lock(&self.state);
            if n == 0 {
                // The end of the TCP stream: rustls tells a close_notify from a cut.
                state.conn.read_tls(&mut &[][..])?;
            } else {
                state.unread.extend_from_slice(&receiving[..n]);
            }
            if let Err(e) = state.feed().and_then(|()| state.process()) {
                drop(state);
                // The alert rustls queued, best effort.
                let _ = self.send_queued(deadline);
                return Err(e);
            }
        }
    }

    fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut out = lock(&self.sending);
        out.clear();
        let taken = {
            let mut state = lock(&self.state);
            let taken = state.conn.writer().write(&data[..data.len().min(RECORD)])?;
            state.take_output(&mut out)?;
            taken
        };
        if taken == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "TLS session took no byte",
            ));
        }
        send_all_by(&self.socket, &out, deadline)?;
        Ok(taken)
    }

    fn has_buffered_input(&self) -> bool {
        let mut state = lock(&self.state);
        if !state.unread.is_empty() {
            return true;
        }
        match state.conn.process_new_packets() {
            Ok(io_state) => io_state.plaintext_bytes_to_read() > 0,
            // A broken session: the next turn's read reports it.
            Err(_) => true,
        }
    }

    fn close_by(&self, deadline: Option<Instant>) -> io::Result<()> {
        lock(&self.state).conn.send_close_notify();
        self.send_queued(deadline)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("socket", &self.socket)
            .field("protocol_version", &self.protocol_version)
            .field("server_name", &self.server_name)
            .field(
                "alpn_protocol",
                &self.alpn_protocol.as_deref().map(String::from_utf8_lossy),
            )
            .field(
                "client_certificates",
                &self.peer_certificates.as_ref().map(Vec::len),
            )
            .finish_non_exhaustive()
    }
}
