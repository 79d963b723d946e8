//! A datagram reply never blocks the server: a Unix datagram client that sends and never reads
//! fills its queue after a few replies (10 datagrams by default), and a blocking `sendto` would
//! then wedge a synchronous server for good. Replies that cannot be sent at once are dropped and
//! counted; a handler's own `sendto` on the server socket gets `WouldBlock`, which reaches
//! `handle_error`. (Every strategy, under signals: `crates/sockserve/tests/signals.rs`.)

mod util;

use handler::DatagramRequest;
use sockserve_server::UnixDatagramServer;
use std::{
    io::{self, ErrorKind},
    os::unix::net::UnixDatagram,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};
use util::*;

/// More datagrams than a Unix datagram socket's queue holds by default.
const FLOOD: usize = 50;
/// The servers' `timeout`: how long one `handle_request` waits for a datagram, so that a wedged
/// test can end its serving thread once the sender is gone.
const WAIT: Duration = Duration::from_millis(200);

/// Serves `FLOOD` datagrams with `handle_request` on a thread while `bad` (which never reads)
/// sends them, and waits for that thread with a bound; on a hang, closing `bad` ends the blocked
/// `sendto` (the peer is gone), so the thread is always joined before the test fails.
fn serve_flood(mut server: UnixDatagramServer, bad: UnixDatagram) -> (UnixDatagramServer, bool) {
    let path = server.server_address().as_pathname().unwrap().to_owned();
    let (done_tx, done) = mpsc::channel();
    let give_up = Arc::new(AtomicBool::new(false));
    let serving = thread::spawn({
        let give_up = Arc::clone(&give_up);
        move || {
            for _ in 0..FLOOD {
                if give_up.load(Ordering::SeqCst) {
                    return server;
                }
                server.handle_request().unwrap(); // waits at most the server's timeout
            }
            let _ = done_tx.send(());
            server
        }
    });
    // The server's own queue is short too: these sends wait for it to take each datagram, and
    // give up after GENEROUS if it is wedged.
    bad.set_write_timeout(Some(GENEROUS)).unwrap();
    for i in 0..FLOOD {
        if bad
            .send_to(format!("datagram {i}").as_bytes(), &path)
            .is_err()
        {
            break;
        }
    }
    let finished = done.recv_timeout(GENEROUS).is_ok();
    give_up.store(true, Ordering::SeqCst);
    drop(bad); // ends a sendto blocked on its full queue, if the server is wedged
    (serving.join().unwrap(), finished)
}

#[test]
fn replies_to_a_client_that_never_reads_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let echo = |req: &mut DatagramRequest| {
        req.wfile.extend_from_slice(&req.packet);
        Ok(())
    };
    let server = UnixDatagramServer::builder(echo)
        .timeout(Some(WAIT))
        .bind(dir.path().join("s.sock"))
        .unwrap();
    let bad = UnixDatagram::bind(dir.path().join("bad.sock")).unwrap();
    let (mut server, finished) = serve_flood(server, bad);
    assert!(
        finished,
        "the server blocked replying to a client that never reads"
    );
    let dropped = server.context().dropped_replies();
    assert!(
        dropped > 0 && dropped < FLOOD as u64,
        "{dropped} of {FLOOD} replies dropped: the first ones fit the client's queue"
    );
    // A well-behaved client is answered.
    let good = UnixDatagram::bind(dir.path().join("good.sock")).unwrap();
    good.set_read_timeout(Some(GENEROUS)).unwrap();
    good.send_to(b"hello", dir.path().join("s.sock")).unwrap();
    server.handle_request().unwrap();
    let mut buf = [0; 16];
    let n = good.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
}

#[test]
fn a_handlers_own_sendto_gets_would_block_and_reaches_handle_error() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Shared::default();
    // Python's UDP examples reply with `self.socket.sendto(data, self.client_address)`.
    let own_sendto = |req: &mut DatagramRequest| -> io::Result<()> {
        req.socket.sendto(&req.packet, &req.client_address)?;
        Ok(())
    };
    let server = UnixDatagramServer::builder_handler(own_sendto)
        .hooks(recorder.clone())
        .timeout(Some(WAIT))
        .bind(dir.path().join("s.sock"))
        .unwrap();
    let bad = UnixDatagram::bind(dir.path().join("bad.sock")).unwrap();
    let (_server, finished) = serve_flood(server, bad);
    assert!(
        finished,
        "the handler's sendto blocked on a client that never reads"
    );
    let errors = recorder.0.errors.lock().unwrap().clone();
    assert!(
        !errors.is_empty() && errors.len() < FLOOD,
        "{} handle_error calls: {errors:?}",
        errors.len()
    );
    // EAGAIN, the OS error behind `WouldBlock` (11 on Linux), as handle_error shows it.
    let would_block = io::Error::from_raw_os_error(11);
    assert_eq!(would_block.kind(), ErrorKind::WouldBlock);
    let would_block = would_block.to_string();
    assert!(
        errors.iter().all(|e| e.contains(&would_block)),
        "every failure is the WouldBlock of a full queue: {errors:?}"
    );
}
