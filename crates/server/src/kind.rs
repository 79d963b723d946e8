//! `Kind`: what differs between TCP, UDP and their Unix twins (Python's `TCPServer` vs
//! `UDPServer` methods: `server_activate`, `get_request`, `shutdown_request`).

use crate::RequestRef;
use handler::driver::DatagramRaw;
use handler::{DatagramRequest, Request, SharedState, StreamRequest};
use socket::{Address, Family, Socket, Type};
use std::{io, sync::Arc};

/// The kind of a server: its socket type, the families it takes, and the request its handlers
/// get.
///
/// Implemented by [`Tcp`], [`Udp`], [`UnixStream`] and [`UnixDatagram`], and sealed: a server
/// is `Server<Kind, Strategy>`. How a kind gets its requests is the server's business, out of
/// sight.
///
/// # Examples
///
/// ```
/// use sockserve_server::{Family, Kind, Tcp, Type, Udp};
/// use std::io;
///
/// assert_eq!(Tcp::SOCKET_TYPE, Type::Stream);
/// assert_eq!(Udp::SOCKET_TYPE, Type::Datagram);
/// assert_eq!(Udp::NAME, "UDPServer");
/// assert!(Tcp::accepts_family(Family::Inet6) && !Tcp::accepts_family(Family::Unix));
///
/// // The handlers of a UDP server get a `DatagramRequest` (of the server's state, here none).
/// fn echo(req: &mut <Udp as Kind>::Request<()>) -> io::Result<()> {
///     req.wfile = req.packet.to_vec();
///     Ok(())
/// }
/// # let _ = echo;
/// ```
pub trait Kind: sealed::Sealed + Send + Sync + 'static {
    /// The request its handlers get, for a server whose shared state is `S`
    /// (`StreamRequest<S>` or `DatagramRequest<S>`).
    ///
    /// # Examples
    ///
    /// See [`Kind`]'s example.
    type Request<S: SharedState>: Request<State = S, Raw = Self::Raw>;
    /// What `get_request` hands over (the request's raw form, whatever the state).
    #[doc(hidden)]
    type Raw: Send;
    /// `SOCK_STREAM` or `SOCK_DGRAM`.
    ///
    /// # Examples
    ///
    /// See [`Kind`]'s example.
    const SOCKET_TYPE: Type;
    /// Python's class name, for messages.
    ///
    /// # Examples
    ///
    /// See [`Kind`]'s example.
    const NAME: &'static str;

    /// Whether an address of `family` suits this kind (TCP: IPv4 and IPv6; Unix: paths).
    ///
    /// # Examples
    ///
    /// See [`Kind`]'s example.
    fn accepts_family(family: Family) -> bool;

    /// Python's `server_activate`: `listen` for streams, nothing for datagrams.
    ///
    /// # Errors
    ///
    /// The OS error of `listen`.
    #[doc(hidden)]
    fn activate(socket: &Socket, request_queue_size: i32) -> io::Result<()>;

    /// Python's `get_request`, never blocking: `WouldBlock` when nothing is waiting.
    ///
    /// `scratch` is the server's datagram buffer, with a capacity of its `max_packet_size`:
    /// a datagram kind clears it and receives into its spare capacity, which is never zeroed,
    /// so memory is touched only as far as datagrams reach; a longer datagram (its real
    /// length read through `MSG_TRUNC`) is discarded, and its request fails with a
    /// `TruncatedDatagram` naming both sizes. Stream kinds leave it alone.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when drained, or the OS error of accept or recvfrom.
    #[doc(hidden)]
    fn get_request(socket: &Arc<Socket>, scratch: &mut Vec<u8>)
    -> io::Result<(Self::Raw, Address)>;

    /// What `verify_request` sees of a request.
    #[doc(hidden)]
    fn request_ref(raw: &Self::Raw) -> RequestRef<'_>;

    /// The connection `shutdown_request` shuts down and closes (`None` for datagrams).
    #[doc(hidden)]
    fn connection(raw: &Self::Raw) -> Option<Arc<Socket>>;

    /// Whether the request is a datagram cut to `max_packet_size`: it fails without
    /// `verify_request` seeing its empty stand-in packet.
    #[doc(hidden)]
    fn is_truncated(_raw: &Self::Raw) -> bool {
        false
    }
}

/// Only this crate's four kinds implement [`Kind`].
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Tcp {}
    impl Sealed for super::Udp {}
    impl Sealed for super::UnixStream {}
    impl Sealed for super::UnixDatagram {}
}

fn accept(socket: &Socket) -> io::Result<(Arc<Socket>, Address)> {
    let (conn, addr) = socket.accept()?;
    Ok((Arc::new(conn), addr))
}

fn recvfrom(socket: &Arc<Socket>, scratch: &mut Vec<u8>) -> io::Result<(DatagramRaw, Address)> {
    scratch.clear();
    let room = scratch.capacity();
    // `MSG_TRUNC`: the real length, so that a datagram cut to the room is told apart.
    let (length, addr) = socket.recvfrom_spare_trunc_nowait(scratch)?;
    if length > room {
        // Its request fails its setup with both sizes (handle_error reports it, within the
        // report's rate limit); no handler sees the cut bytes.
        return Ok((
            DatagramRaw::truncated(Arc::clone(socket), length, room),
            addr,
        ));
    }
    // One copy, straight into the shared packet the request reads.
    Ok((
        DatagramRaw::whole(Arc::from(scratch.as_slice()), Arc::clone(socket)),
        addr,
    ))
}

macro_rules! stream_kind {
    ($(#[$doc:meta])* $name:ident, $python:literal, $($family:pat_param)|+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Kind for $name {
            type Request<S: SharedState> = StreamRequest<S>;
            type Raw = Arc<Socket>;
            const SOCKET_TYPE: Type = Type::Stream;
            const NAME: &'static str = $python;

            fn accepts_family(family: Family) -> bool {
                matches!(family, $($family)|+)
            }

            fn activate(socket: &Socket, request_queue_size: i32) -> io::Result<()> {
                socket.listen(request_queue_size)
            }

            fn get_request(socket: &Arc<Socket>, _scratch: &mut Vec<u8>) -> io::Result<(Arc<Socket>, Address)> {
                accept(socket)
            }

            fn request_ref(raw: &Arc<Socket>) -> RequestRef<'_> {
                RequestRef::Stream(raw)
            }

            fn connection(raw: &Arc<Socket>) -> Option<Arc<Socket>> {
                Some(Arc::clone(raw))
            }
        }
    };
}

macro_rules! datagram_kind {
    ($(#[$doc:meta])* $name:ident, $python:literal, $($family:pat_param)|+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Kind for $name {
            type Request<S: SharedState> = DatagramRequest<S>;
            type Raw = DatagramRaw;
            const SOCKET_TYPE: Type = Type::Datagram;
            const NAME: &'static str = $python;

            fn accepts_family(family: Family) -> bool {
                matches!(family, $($family)|+)
            }

            fn activate(_socket: &Socket, _request_queue_size: i32) -> io::Result<()> {
                Ok(())
            }

            fn get_request(
                socket: &Arc<Socket>,
                scratch: &mut Vec<u8>,
            ) -> io::Result<(DatagramRaw, Address)> {
                recvfrom(socket, scratch)
            }

            fn request_ref(raw: &DatagramRaw) -> RequestRef<'_> {
                RequestRef::Datagram { packet: &raw.packet, socket: &raw.socket }
            }

            fn connection(_raw: &DatagramRaw) -> Option<Arc<Socket>> {
                None
            }

            fn is_truncated(raw: &DatagramRaw) -> bool {
                raw.truncated.is_some()
            }
        }
    };
}

stream_kind!(
    /// TCP over IPv4 or IPv6: Python's `TCPServer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Kind, Tcp};
    /// assert_eq!(Tcp::NAME, "TCPServer");
    /// ```
    Tcp, "TCPServer", Family::Inet | Family::Inet6
);
datagram_kind!(
    /// UDP over IPv4 or IPv6: Python's `UDPServer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Kind, Udp};
    /// assert_eq!(Udp::NAME, "UDPServer");
    /// ```
    Udp, "UDPServer", Family::Inet | Family::Inet6
);
stream_kind!(
    /// Unix stream sockets (paths and Linux abstract names): Python's `UnixStreamServer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Kind, UnixStream};
    /// assert_eq!(UnixStream::NAME, "UnixStreamServer");
    /// ```
    UnixStream, "UnixStreamServer", Family::Unix
);
datagram_kind!(
    /// Unix datagram sockets: Python's `UnixDatagramServer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Kind, UnixDatagram};
    /// assert_eq!(UnixDatagram::NAME, "UnixDatagramServer");
    /// ```
    UnixDatagram, "UnixDatagramServer", Family::Unix
);

#[cfg(test)]
mod tests {
    use super::*;
    use socket::{create_connection, socketpair};

    /// What a server does with its kind, done by hand.
    #[test]
    fn kinds_activate_get_and_describe_requests() -> Result<(), Box<dyn std::error::Error>> {
        // A stream kind: `activate` listens, `get_request` accepts, `request_ref` is what
        // `verify_request` sees and `connection` what `shutdown_request` shuts down.
        let listener = Arc::new(Socket::new(Family::Inet, Tcp::SOCKET_TYPE)?);
        listener.bind("127.0.0.1:0")?;
        Tcp::activate(&listener, 8)?;
        let client = create_connection(&listener.getsockname()?, &Default::default())?;
        // (a server's socket is non-blocking; this one waits for the connection)
        let (conn, client_address) = Tcp::get_request(&listener, &mut Vec::new())?;
        assert_eq!(client_address, client.getsockname()?);
        assert!(matches!(Tcp::request_ref(&conn), RequestRef::Stream(_)));
        assert!(Tcp::connection(&conn).is_some());

        // A datagram kind: `activate` does nothing, `get_request` never blocks.
        let (server_side, client) = socketpair(Family::Unix, UnixDatagram::SOCKET_TYPE)?;
        let server_side = Arc::new(server_side);
        UnixDatagram::activate(&server_side, 8)?;
        // Datagrams land in the scratch buffer's spare capacity: reserved, never zeroed.
        let mut scratch = Vec::with_capacity(64);
        let drained = UnixDatagram::get_request(&server_side, &mut scratch).unwrap_err();
        assert_eq!(drained.kind(), io::ErrorKind::WouldBlock);
        client.send(b"ping")?;
        let (raw, _unnamed) = UnixDatagram::get_request(&server_side, &mut scratch)?;
        let seen = UnixDatagram::request_ref(&raw);
        assert!(matches!(seen, RequestRef::Datagram { packet, .. } if packet == b"ping"));
        assert!(UnixDatagram::connection(&raw).is_none());
        Ok(())
    }
}
