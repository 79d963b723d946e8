//! Graceful stop: requests in flight finish before the deadline; the ones still open at the
//! deadline are shut down, which wakes their handlers, even on a synchronous server's own
//! serving thread.

mod util;

use handler::StreamRequest;
use sockserve_server::TcpServer;
use std::{
    io::{BufRead, Read, Write},
    net::TcpStream,
    sync::mpsc,
    time::{Duration, Instant},
};
use util::*;

fn wait_in_flight(handle: &sockserve_server::ShutdownHandle, n: usize) {
    let deadline = Instant::now() + GENEROUS;
    while handle.in_flight() != n {
        assert!(
            Instant::now() < deadline,
            "never saw {n} requests in flight"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_request_that_finishes_within_the_deadline_is_not_forced() {
    // The handler answers when the client says "finish"; the client says it after the stop
    // has begun, well within the grace period.
    let server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        Ok(req.wfile.write_all(b"finished\n")?)
    })
    .unwrap();
    let serving = Serving::start(server, Duration::from_secs(60));
    let mut client = TcpStream::connect(inet(&serving.address)).unwrap();
    wait_in_flight(&serving.handle, 1);
    let (tx, rx) = mpsc::channel();
    let handle = serving.handle.clone();
    let stopper = std::thread::spawn(move || {
        tx.send(()).unwrap();
        handle.shutdown_gracefully(Duration::from_secs(30))
    });
    rx.recv().unwrap();
    client.write_all(b"finish\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"finished\n");
    let report = stopper.join().unwrap().expect("graceful stop");
    assert_eq!(report.forced, 0, "{report:?}");
    assert_eq!(report.still_running, 0);
    assert!(report.loop_stopped);
    assert!(
        report.took < GENEROUS,
        "returned once idle, not at the deadline: {report:?}"
    );
    serving.stop();
}

#[test]
fn an_idle_client_is_shut_down_at_the_deadline_and_the_sync_loop_returns() {
    let server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut rest = Vec::new();
        req.rfile.read_to_end(&mut rest)?; // blocks the serving thread until EOF
        Ok(req.wfile.write_all(b"bye\n")?)
    })
    .unwrap();
    let serving = Serving::start(server, Duration::from_secs(60));
    let mut idle = TcpStream::connect(inet(&serving.address)).unwrap();
    wait_in_flight(&serving.handle, 1);
    let grace = Duration::from_millis(200);
    let report = serving
        .handle
        .shutdown_gracefully(grace)
        .expect("graceful stop");
    assert_eq!(report.forced, 1, "{report:?}");
    assert!(report.loop_stopped, "{report:?}");
    assert_eq!(report.still_running, 0, "{report:?}");
    assert!(report.took >= grace, "waited the grace period: {report:?}");
    assert!(report.took < GENEROUS, "{report:?}");
    // The client's side was shut down too: it reads EOF (the reply could not be sent).
    let mut buf = Vec::new();
    idle.set_read_timeout(Some(GENEROUS)).unwrap();
    let _ = idle.read_to_end(&mut buf);
    assert!(!serving.handle.is_serving());
    serving.stop();
}

#[test]
fn new_connections_are_not_accepted_once_the_stop_began() {
    let server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    let serving = Serving::start(server, Duration::from_secs(60));
    stream_examine(inet(&serving.address));
    let report = serving
        .handle
        .shutdown_gracefully(Duration::from_secs(5))
        .unwrap();
    assert!(report.loop_stopped);
    assert_eq!(report.forced, 0);
    // The loop has returned: a connect may still be queued by the kernel, but is never served.
    let server = serving.stop();
    assert_eq!(server.fileno(), -1);
}

#[test]
fn graceful_stop_after_the_loop_ended_is_a_no_op() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    // Every request asks the loop to stop after it: each serve_forever serves exactly one.
    let mut server = TcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        req.server.request_shutdown();
        Ok(())
    })
    .unwrap();
    let handle = server.shutdown_handle();
    let _first = TcpStream::connect(inet(server.server_address())).unwrap();
    server.serve_forever().unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 1);
    // No loop runs and nothing is in flight: nothing to do, at once.
    let report = handle.shutdown_gracefully(Duration::from_secs(30)).unwrap();
    assert!(report.loop_stopped);
    assert_eq!((report.forced, report.still_running), (0, 0));
    // Waiting at all would mean waiting out the 30 s grace.
    assert!(report.took < GENEROUS, "{report:?}");
    // And no state is left behind: the next loop serves the next client.
    let _second = TcpStream::connect(inet(server.server_address())).unwrap();
    server.serve_forever().unwrap();
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "the next loop served a request"
    );
}

#[test]
fn a_grace_too_long_for_the_clock_means_no_deadline() {
    let mut server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    let handle = server.shutdown_handle();
    let report = handle
        .shutdown_gracefully(Duration::MAX)
        .expect("no overflow: nothing runs, so nothing to wait for");
    assert_eq!((report.forced, report.still_running), (0, 0));
    // The stop was asked before the loop started: the loop returns at once.
    server.serve_forever().unwrap();
}

#[test]
fn a_stop_now_leaves_no_hurry_for_a_later_loop() {
    // stop_now before serving (the next loop returns at once), then a second loop: its
    // graceful stop gets its whole grace, not the earlier stop's hurry.
    let server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut rest = Vec::new();
        req.rfile.read_to_end(&mut rest)?;
        Ok(())
    })
    .unwrap();
    let handle = server.shutdown_handle();
    handle.stop_now();
    let mut server = server;
    server.serve_forever().unwrap(); // returns at once: stopped before it started
    let serving = Serving::start(server, Duration::from_secs(60));
    let _idle = TcpStream::connect(inet(&serving.address)).unwrap();
    wait_in_flight(&serving.handle, 1);
    let grace = Duration::from_millis(300);
    let report = serving.handle.shutdown_gracefully(grace).unwrap();
    assert!(!report.hurried, "{report:?}");
    assert!(report.took >= grace, "the grace was cut short: {report:?}");
    assert_eq!(report.forced, 1, "{report:?}");
    serving.stop();
}

#[test]
fn dropping_a_running_server_is_bounded_even_with_a_handler_blocked_on_a_client() {
    // A synchronous server whose only handler reads until EOF from a client that never closes.
    let server = TcpServer::bind("127.0.0.1:0", |req| {
        let mut rest = Vec::new();
        req.rfile.read_to_end(&mut rest)?;
        Ok(())
    })
    .unwrap();
    let running = server.spawn().unwrap();
    let handle = running.shutdown_handle();
    let idle = TcpStream::connect(inet(running.server_address())).unwrap();
    wait_in_flight(&handle, 1);
    let (done, dropped) = mpsc::channel();
    let dropper = std::thread::spawn(move || {
        drop(running);
        let _ = done.send(());
    });
    let bounded = dropped.recv_timeout(GENEROUS).is_ok();
    drop(idle); // ends the handler if the drop is stuck waiting for it
    dropper.join().unwrap();
    assert!(bounded, "dropping the Running waited for the handler");
    assert_eq!(handle.in_flight(), 0);
}
