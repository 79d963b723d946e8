//! `HttpConnection`'s turns, driven one by one over a socket pair as the server drives them:
//! a turn never waits for the rest of a request, pipelined requests come one a turn, a body is
//! thrown away across turns, a request past its deadline is cut off.

use super::*;
use sockserve::handler::driver::{Session, StopServer, server_context};
use sockserve::{Family, Socket, Type, socketpair};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
struct NoStop;

impl StopServer for NoStop {
    fn shutdown(&self) -> io::Result<()> {
        Ok(())
    }
    fn request_shutdown(&self) {}
}

/// A served directory holding `hello.txt`, removed on drop, and a connection to a session of
/// `HttpConnection` on it.
struct Fixture {
    dir: PathBuf,
    session: Option<Session<StreamRequest, HttpConnection>>,
    client: Socket,
}

impl Fixture {
    fn new(timeout: Duration) -> Fixture {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("http-conn-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello.txt"), "hello").unwrap();
        let site = Arc::new(Site {
            root: dir.canonicalize().unwrap(),
            timeout,
            limits: Limits::default(),
            reported: Mutex::default(),
        });
        let (server_side, client) = socketpair(Family::Unix, Type::Stream).unwrap();
        client.settimeout(Some(Duration::from_secs(5)));
        let ctx = server_context("@test".parse().unwrap(), Arc::new(NoStop), Arc::new(()));
        let connection = HttpConnection::new(site);
        let session = Session::start(
            connection,
            Arc::new(server_side),
            "@c".parse().unwrap(),
            ctx,
        )
        .unwrap();
        Fixture {
            dir,
            session: Some(session),
            client,
        }
    }

    /// One turn, which must not wait: what it says comes next.
    fn turn(&mut self) -> Next {
        let started = Instant::now();
        let next = self.session.as_mut().unwrap().turn().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the turn waited"
        );
        next
    }

    /// What the server has sent so far (reading until `want` bytes have come).
    fn read(&mut self, want: usize) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want {
            let n = self.client.recv_into(&mut buf).unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.end(Ok(()));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The length of the answer `GET /hello.txt` gets (its head has a `Date`, of fixed length).
fn hello_len(f: &mut Fixture) -> usize {
    f.client
        .sendall(b"HEAD /hello.txt HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    f.read(1).len() + "hello".len()
}

#[test]
fn a_turn_never_waits_for_the_rest_of_a_request() {
    let mut f = Fixture::new(Duration::from_secs(30));
    // The first turn, before any input: it ends at once, to wait in the reactor.
    assert_eq!(f.turn(), Next::WaitForInput);
    let answer = hello_len(&mut f);
    f.client.sendall(b"GET /hello.txt HTTP/1.1\r\nHo").unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    f.client.sendall(b"st: x\r\n").unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    f.client.sendall(b"\r\n").unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    let reply = f.read(answer);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.ends_with("\r\n\r\nhello"),
        "{reply}"
    );
}

#[test]
fn pipelined_requests_are_answered_one_a_turn_in_order() {
    let mut f = Fixture::new(Duration::from_secs(30));
    let answer = hello_len(&mut f);
    f.client
        .sendall(b"GET /hello.txt HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    assert!(
        f.session.as_ref().unwrap().has_buffered_input(),
        "the rest is buffered"
    );
    assert!(f.read(answer).ends_with("hello"));
    assert_eq!(f.turn(), Next::WaitForInput);
    assert!(f.read(1).starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(f.turn(), Next::Done, "Connection: close");
    let last = f.read(answer + "Connection: close\r\n".len());
    assert!(
        last.contains("\r\nConnection: close\r\n") && last.ends_with("hello"),
        "{last}"
    );
}

#[test]
fn a_body_is_thrown_away_across_turns() {
    let mut f = Fixture::new(Duration::from_secs(30));
    let answer = hello_len(&mut f);
    f.client
        .sendall(b"GET /hello.txt HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
        .unwrap();
    assert_eq!(
        f.turn(),
        Next::WaitForInput,
        "half the body: wait for the rest"
    );
    f.client
        .sendall(b"56789GET /hello.txt HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    assert!(f.read(answer).ends_with("hello"));
    assert_eq!(f.turn(), Next::WaitForInput, "the request after the body");
    assert!(f.read(answer).ends_with("hello"));
}

#[test]
fn a_request_past_its_deadline_is_cut_off() {
    let mut f = Fixture::new(Duration::from_millis(50));
    f.client.sendall(b"GET /hel").unwrap();
    assert_eq!(f.turn(), Next::WaitForInput);
    // Time itself is what is tested: the deadline must have passed (no other thread runs).
    std::thread::sleep(Duration::from_millis(60));
    f.client.sendall(b"lo.txt HTTP/1.1\r\n").unwrap();
    assert_eq!(
        f.turn(),
        Next::WaitForInput,
        "lingering: reading what the client still sends"
    );
    let reply = f.read(1);
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply}"
    );
    // The writing side is shut: the client sees the end after the answer.
    let mut rest = [0u8; 4096];
    let mut total = reply.len();
    loop {
        let n = f.client.recv_into(&mut rest).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total < 4096, "nothing more than the answer");
}
