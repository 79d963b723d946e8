//! The facade composes: servers, handlers, hooks and sockets reached through `sockserve::`
//! paths only (the root, the prelude and the layer modules) serve real clients.

use sockserve::prelude::*;
use sockserve::socket::{ConnectOptions, Shutdown, create_connection};
use sockserve::{
    Address, BoxError, DatagramRequest, DefaultHooks, Family, GracefulStop, HandlerError, Next,
    RequestRef, Server, ServerContext, ShutdownHandle, Socket, StreamOptions, StreamRequest,
    Synchronous, Tcp, TcpServer, Type, UdpServer, UnixDatagramServer, UnixStreamServer,
};
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A stream echo handler type: per-request state, options, and the prelude's `Handler`.
#[derive(Clone, Default)]
struct Echo {
    bytes: usize,
}

impl Handler<StreamRequest> for Echo {
    fn options(&self) -> StreamOptions {
        StreamOptions::default().timeout(Some(Duration::from_secs(10)))
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        loop {
            let data = req.rfile.fill_buf()?;
            if data.is_empty() {
                return Ok(Next::Done);
            }
            req.wfile.write_all(data)?;
            let n = data.len();
            self.bytes += n;
            req.rfile.consume(n);
        }
    }
}

/// Hooks through the prelude's `Hooks`, counting what the server reports.
#[derive(Debug, Default)]
struct Counting {
    verified: AtomicUsize,
    closed: AtomicUsize,
}

impl Hooks for Counting {
    fn verify_request(&self, _: &ServerContext, request: RequestRef<'_>, _: &Address) -> bool {
        self.verified.fetch_add(1, Ordering::SeqCst);
        matches!(request, RequestRef::Stream(_))
    }
    fn handle_error(&self, _: &ServerContext, client: &Address, error: &HandlerError) {
        panic!("unexpected handler error from {client}: {error}");
    }
    fn shutdown_request(&self, _: &ServerContext, _client: &Address) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Serves `server` on a scoped thread while `client` runs, then shuts it down and closes it.
fn serve_while<K: sockserve::Kind, C: Strategy>(
    server: &mut Server<K, C>,
    client: impl FnOnce(&Address) -> io::Result<()> + Send,
) -> io::Result<()> {
    let address = server.server_address().clone();
    let handle: ShutdownHandle = server.shutdown_handle();
    std::thread::scope(|s| -> io::Result<()> {
        let serving = s.spawn(|| server.serve_forever());
        let result = client(&address);
        handle.shutdown()?;
        serving.join().expect("serving thread panicked")?;
        result
    })?;
    server.server_close();
    Ok(())
}

/// Sends `message`, says "that is all", and reads the reply to the end.
fn echo_once(address: &Address, message: &[u8]) -> io::Result<Vec<u8>> {
    let mut client = create_connection(address, &ConnectOptions::default())?;
    client.settimeout(Some(Duration::from_secs(10)));
    client.sendall(message)?;
    client.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    client.read_to_end(&mut reply)?;
    Ok(reply)
}

#[test]
fn tcp_echo_through_the_facade() -> io::Result<()> {
    let hooks = std::sync::Arc::new(Counting::default());
    #[derive(Debug)]
    struct Shared(std::sync::Arc<Counting>);
    impl Hooks for Shared {
        fn verify_request(&self, s: &ServerContext, r: RequestRef<'_>, c: &Address) -> bool {
            self.0.verify_request(s, r, c)
        }
        fn handle_error(&self, s: &ServerContext, c: &Address, e: &HandlerError) {
            self.0.handle_error(s, c, e)
        }
        fn shutdown_request(&self, s: &ServerContext, c: &Address) {
            self.0.shutdown_request(s, c)
        }
    }
    let mut server: Server<Tcp, Synchronous> = TcpServer::builder_handler(Echo::default())
        .hooks(Shared(hooks.clone()))
        .allow_reuse_address(true)
        .bind("127.0.0.1:0")?;
    assert_eq!(server.server_address().family(), Family::Inet);
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    serve_while(&mut server, |address| {
        assert_eq!(echo_once(address, b"hello")?, b"hello");
        assert_eq!(echo_once(address, &big)?, big);
        Ok(())
    })?;
    assert_eq!(hooks.verified.load(Ordering::SeqCst), 2);
    assert_eq!(hooks.closed.load(Ordering::SeqCst), 2);
    assert_eq!(server.fileno(), -1);
    Ok(())
}

#[test]
fn unix_stream_echo_and_socket_file_removed() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("echo.sock");
    let mut server = UnixStreamServer::builder_handler(Echo::default())
        .hooks(DefaultHooks)
        .bind(path.as_path())?;
    assert_eq!(server.server_address(), &Address::Unix(path.clone()));
    assert!(path.exists(), "the server creates its socket file");
    serve_while(&mut server, |address| {
        assert_eq!(echo_once(address, b"over unix")?, b"over unix");
        Ok(())
    })?;
    assert!(!path.exists(), "server_close removes the socket file");
    Ok(())
}

#[test]
fn udp_echo_with_a_closure_and_a_large_datagram() -> io::Result<()> {
    let mut server = UdpServer::builder(|req: &mut DatagramRequest| {
        req.wfile.extend_from_slice(&req.packet);
        Ok(())
    })
    .max_packet_size(65_535)
    .bind("127.0.0.1:0")?;
    serve_while(&mut server, |address| {
        let client = Socket::new(Family::Inet, Type::Datagram)?;
        client.settimeout(Some(Duration::from_secs(10)));
        client.bind("127.0.0.1:0")?;
        for size in [0, 1, 8192, 65_507] {
            let message = vec![b'u'; size];
            client.sendto(&message, address)?;
            let (reply, from) = client.recvfrom(65_535)?;
            assert_eq!(reply.len(), size);
            assert_eq!(&from, address);
        }
        Ok(())
    })
}

#[test]
fn unix_datagram_echo() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("echo-dgram.sock");
    let mut server = UnixDatagramServer::builder(|req: &mut DatagramRequest| {
        req.wfile.extend_from_slice(&req.packet);
        Ok(())
    })
    .bind(path.as_path())?;
    serve_while(&mut server, |address| {
        let client = Socket::new(Family::Unix, Type::Datagram)?;
        client.settimeout(Some(Duration::from_secs(10)));
        // An unbound Unix client has no address to answer: bind one.
        client.bind(dir.path().join("client.sock").as_path())?;
        client.sendto(b"dgram", address)?;
        assert_eq!(client.recv(100)?, b"dgram");
        Ok(())
    })?;
    assert!(!path.exists());
    Ok(())
}

#[test]
fn graceful_stop_and_errors_through_the_facade() -> io::Result<()> {
    let mut server = TcpServer::bind_handler("127.0.0.1:0", Echo::default())?;
    let address = server.server_address().clone();
    let handle = server.shutdown_handle();
    let report: GracefulStop = std::thread::scope(|s| -> io::Result<GracefulStop> {
        s.spawn(|| server.serve_forever());
        // An idle client: the synchronous server's only handler blocks reading it.
        let mut idle = create_connection(&address, &ConnectOptions::default())?;
        idle.settimeout(Some(Duration::from_secs(10)));
        idle.sendall(b"x")?;
        let mut one = [0; 1];
        idle.read_exact(&mut one)?; // the handler runs
        let report = handle.shutdown_gracefully(Duration::from_millis(100))?;
        assert_eq!(idle.read(&mut one)?, 0, "the idle client sees EOF");
        Ok(report)
    })?;
    assert_eq!(report.forced, 1);
    assert!(report.loop_stopped);
    server.server_close();
    // The server layer's error, at the root and in its module, is one type.
    let err: sockserve::Error = server.serve_forever().unwrap_err();
    assert!(matches!(err, sockserve::server::Error::Closed));
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::NotConnected);
    Ok(())
}

#[test]
fn root_types_are_the_layer_types() {
    // One type, two paths: these assignments compile only if the types are the same.
    let _: fn() -> sockserve::server::TcpServer = || -> TcpServer { unreachable!() };
    let _: Option<sockserve::handler::StreamRequest> = None::<StreamRequest>;
    let _: Option<sockserve::socket::Socket> = None::<Socket>;
    let _: Option<sockserve::reactor::Signal> = sockserve::SignalStop::default().signal;
    let options = StreamOptions::default().rbufsize(1);
    let handler =
        (|_r: &mut StreamRequest| Ok::<(), std::io::Error>(())).with_options(options.clone());
    assert_eq!(Handler::<StreamRequest>::options(&handler), options);
}
