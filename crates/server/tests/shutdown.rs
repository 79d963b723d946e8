//! `ShutdownHandle`: instant shutdown, its three cases, and CPython's test_shutdown.

mod util;

use handler::StreamRequest;
use sockserve_server::{Error, TcpServer};
use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};
use util::*;

#[test]
fn shutdown_with_a_60s_poll_interval_returns_at_once() {
    let server = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let serving = Serving::start(server, Duration::from_secs(60));
    // Let the loop start and block in select: wait until it served a request.
    stream_examine(inet(&serving.address));
    assert!(serving.handle.is_serving());
    let start = Instant::now();
    serving.handle.shutdown().expect("shutdown");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?} with a 60 s poll interval"
    );
    assert!(!serving.handle.is_serving());
    serving.stop();
}

#[test]
fn shutdown_before_the_loop_started_makes_the_next_loop_return_at_once() {
    let mut server = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let handle = server.shutdown_handle();
    handle
        .shutdown()
        .expect("shutdown before start returns at once");
    let start = Instant::now();
    server
        .serve_forever_with(Duration::from_secs(60))
        .expect("serve");
    // A missed stop would wait out the 60 s poll interval.
    assert!(start.elapsed() < GENEROUS, "took {:?}", start.elapsed());
}

#[test]
fn shutdown_after_the_loop_ended_leaves_no_stale_state() {
    let mut server = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let handle = server.shutdown_handle();
    // First loop: started and stopped.
    thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever_with(Duration::from_millis(10)));
        handle.shutdown().expect("shutdown");
        t.join().unwrap().expect("serve");
    });
    // The loop has ended: this shutdown has nothing to do ...
    handle.shutdown().expect("shutdown after the end");
    // ... and must not stop the next loop (CPython's stale flag does).
    let address = inet(server.server_address());
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let t = s.spawn(|| server.serve_forever_with(Duration::from_millis(10)));
        s.spawn(move || {
            stream_examine(address);
            tx.send(()).unwrap();
        });
        rx.recv_timeout(GENEROUS)
            .expect("the second loop serves a client instead of exiting at once");
        handle.shutdown().expect("shutdown");
        t.join().unwrap().expect("serve");
    });
}

#[test]
fn shutdown_from_the_serving_thread_is_an_error_not_a_deadlock() {
    let err = Error::ShutdownFromServingThread;
    assert!(err.to_string().contains("deadlock"));
    let mut server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let result = req.server.shutdown();
        req.server.request_shutdown();
        Ok(result?)
    })
    .expect("bind");
    let rec = Shared::default();
    let _ = rec;
    let client = std::net::TcpStream::connect(inet(server.server_address())).unwrap();
    let start = Instant::now();
    server
        .serve_forever_with(Duration::from_secs(60))
        .expect("serve");
    assert!(start.elapsed() < GENEROUS);
    drop(client);
}

#[test]
fn shutdown_handles_are_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<sockserve_server::ShutdownHandle>();
    let server = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let serving = Serving::start(server, Duration::from_millis(10));
    stream_examine(inet(&serving.address));
    let handles: Vec<_> = (0..4).map(|_| serving.handle.clone()).collect();
    thread::scope(|s| {
        for h in &handles {
            s.spawn(move || h.shutdown().expect("shutdown from several threads"));
        }
    });
    assert!(!serving.handle.is_serving());
    serving.stop();
}

#[test]
fn service_actions_run_on_every_tick() {
    let rec = Shared::default();
    let server = TcpServer::builder(echo_line)
        .hooks(rec.clone())
        .bind("127.0.0.1:0")
        .expect("bind");
    let serving = Serving::start(server, Duration::from_millis(5));
    let deadline = Instant::now() + GENEROUS;
    while rec
        .0
        .service_actions
        .load(std::sync::atomic::Ordering::SeqCst)
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "service_actions did not run on idle ticks"
        );
        thread::yield_now();
    }
    serving.stop();
}
