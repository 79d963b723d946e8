//! The transport seam, without TLS: a request whose `rfile` and `wfile` go through a
//! [`Transport`] (here one that XORs every byte), its `ConnectionWriter` too, its buffered
//! input seen by the session, its `close_by` at the finish, and a transport over another
//! socket refused at setup.

use socket::{Family, Socket, Type, socketpair};
use sockserve_handler::driver::{Session, StopServer, server_context};
use sockserve_handler::{Next, StreamRequest, Transport};
use std::{
    any::Any,
    io::{self, BufRead, Read, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

#[derive(Debug)]
struct NoStop;
impl StopServer for NoStop {
    fn shutdown(&self) -> io::Result<()> {
        Ok(())
    }
    fn request_shutdown(&self) {}
}

const KEY: u8 = 0x55;

#[derive(Debug)]
struct Xor {
    socket: Arc<Socket>,
    pretend_buffered: AtomicBool,
    closed: AtomicBool,
}

impl Transport for Xor {
    fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
    fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let n = self.socket.recv_into_by(buf, deadline)?;
        buf[..n].iter_mut().for_each(|b| *b ^= KEY);
        Ok(n)
    }
    fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        let coded: Vec<u8> = data.iter().map(|b| b ^ KEY).collect();
        self.socket.send_by(&coded, deadline)
    }
    fn has_buffered_input(&self) -> bool {
        self.pretend_buffered.load(Ordering::SeqCst)
    }
    fn close_by(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        let bye: Vec<u8> = b"bye\n".iter().map(|b| b ^ KEY).collect();
        self.socket.sendall_by(&bye, deadline)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn xor(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ KEY).collect()
}

#[test]
fn rfile_wfile_and_writers_go_through_the_transport() -> Result<(), Box<dyn std::error::Error>> {
    let (server_side, mut client) = socketpair(Family::Unix, Type::Stream)?;
    let server_side = Arc::new(server_side);
    let transport = Arc::new(Xor {
        socket: Arc::clone(&server_side),
        pretend_buffered: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    let upper = |req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        assert!(req.transport().is_some_and(|t| t.as_any().is::<Xor>()));
        req.writer().write_all(b"from a writer\n")?;
        req.wfile.write_all(line.to_uppercase().as_bytes())?;
        Ok::<_, io::Error>(Next::WaitForInput)
    };
    let layer: Arc<dyn Transport> = transport.clone();
    let mut session = Session::start_over(
        upper,
        Arc::clone(&server_side),
        Some(layer),
        "@c".parse()?,
        ctx,
    )?;
    client.sendall(&xor(b"hello\n"))?;
    assert_eq!(session.turn()?, Next::WaitForInput);
    // The transport's own buffered input counts as input: the next turn would run at once.
    assert!(!session.has_buffered_input());
    transport.pretend_buffered.store(true, Ordering::SeqCst);
    assert!(session.has_buffered_input());
    transport.pretend_buffered.store(false, Ordering::SeqCst);
    session.end(Ok(()))?;
    assert!(
        transport.closed.load(Ordering::SeqCst),
        "close_by at the finish"
    );
    drop(session_leftovers(server_side, transport));
    let mut got = Vec::new();
    client.read_to_end(&mut got)?;
    assert_eq!(xor(&got), b"from a writer\nHELLO\nbye\n");
    Ok(())
}

/// Drops the server's side of the connection (all its owners), so the client sees the end.
fn session_leftovers(socket: Arc<Socket>, transport: Arc<Xor>) -> (Arc<Socket>, Arc<Xor>) {
    socket.shutdown(socket::Shutdown::Write).expect("shutdown");
    (socket, transport)
}

#[test]
fn a_transport_over_another_socket_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let (server_side, _client) = socketpair(Family::Unix, Type::Stream)?;
    let (other, _peer) = socketpair(Family::Unix, Type::Stream)?;
    let layer: Arc<dyn Transport> = Arc::new(Xor {
        socket: Arc::new(other),
        pretend_buffered: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    let done = |_req: &mut StreamRequest| Ok::<_, io::Error>(Next::Done);
    let refused = Session::start_over(done, Arc::new(server_side), Some(layer), "@c".parse()?, ctx)
        .unwrap_err();
    assert!(refused.to_string().contains("another socket"), "{refused}");
    let io = refused.io_error().map(io::Error::kind);
    assert_eq!(io, Some(io::ErrorKind::InvalidInput));
    Ok(())
}

/// Records each write that reaches the connection.
#[derive(Debug)]
struct Recording {
    socket: Arc<Socket>,
    writes: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl Transport for Recording {
    fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
    fn read_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.socket.recv_into_by(buf, deadline)
    }
    fn write_by(&self, data: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.writes.lock().unwrap().push(data.to_vec());
        self.socket.send_by(data, deadline)
    }
    fn has_buffered_input(&self) -> bool {
        false
    }
    fn close_by(&self, _deadline: Option<Instant>) -> io::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An unbuffered `wfile` (Python's default) sends `writeln!`'s whole text in one write, not a
/// write per piece of the format: with `TCP_NODELAY` each write is a segment, and a client's
/// single `recv` would see `done ` without its number.
#[test]
fn an_unbuffered_wfile_sends_a_formatted_line_in_one_write()
-> Result<(), Box<dyn std::error::Error>> {
    let (server_side, _client) = socketpair(Family::Unix, Type::Stream)?;
    let server_side = Arc::new(server_side);
    let transport = Arc::new(Recording {
        socket: Arc::clone(&server_side),
        writes: std::sync::Mutex::default(),
    });
    let ctx = server_context("@example".parse()?, Arc::new(NoStop), Arc::new(()));
    let handler = |req: &mut StreamRequest| {
        assert!(!req.wfile.is_buffered());
        let ms = 500;
        writeln!(req.wfile, "done {ms}")?;
        write!(req.wfile, "plain")?;
        Ok::<_, io::Error>(Next::Done)
    };
    let layer: Arc<dyn Transport> = transport.clone();
    let mut session = Session::start_over(
        handler,
        Arc::clone(&server_side),
        Some(layer),
        "@c".parse()?,
        ctx,
    )?;
    assert_eq!(session.turn()?, Next::Done);
    session.end(Ok(()))?;
    let writes = transport.writes.lock().unwrap().clone();
    assert_eq!(writes, [b"done 500\n".to_vec(), b"plain".to_vec()]);
    Ok(())
}
