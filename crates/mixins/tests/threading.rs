//! `Threading`: CPython's checklist for the threading servers, plus the pool's bounds, its
//! queue, reuse, idle threads retiring, panics and graceful stop.

mod util;

use handler::{HandlerError, ServerContext, StreamRequest};
use server::{Hooks, Server, ShutdownHandle, Tcp};
use socket::Address;
use sockserve_mixins::{
    Threading, ThreadingTcpServer, ThreadingUdpServer, ThreadingUnixDatagramServer,
    ThreadingUnixStreamServer,
};
use std::{
    io::{BufRead, Read, Write},
    net::TcpStream,
    sync::{
        Arc, Barrier, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};
use util::*;

/// A threading server on a thread of its own (`Server::spawn_with`, 10 ms ticks).
struct Serving<K: server::Kind> {
    handle: ShutdownHandle,
    address: Address,
    running: Option<server::Running<K, Threading>>,
}

impl<K: server::Kind> Serving<K> {
    fn start(server: Server<K, Threading>) -> Self {
        let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
        Serving {
            handle: running.shutdown_handle(),
            address: running.server_address().clone(),
            running: Some(running),
        }
    }

    /// Stops the loop and gives the server back, not closed.
    fn stop_loop(&mut self) -> Server<K, Threading> {
        let running = self.running.take().expect("not stopped twice");
        running.shutdown().expect("serve or shutdown")
    }

    fn stop(mut self) -> Server<K, Threading> {
        let mut server = self.stop_loop();
        server.server_close();
        server
    }
}

#[test]
fn the_four_threading_servers_echo_three_clients() {
    let dir = tempfile::tempdir().unwrap();
    let serving = Serving::start(ThreadingTcpServer::bind("127.0.0.1:0", echo_line).unwrap());
    (0..3).for_each(|_| stream_examine(&serving.address));
    let handle = serving.handle.clone();
    let server = serving.stop();
    assert_eq!(server.fileno(), -1);
    assert_eq!(handle.in_flight(), 0);

    let path = dir.path().join("s.sock");
    let serving =
        Serving::start(ThreadingUnixStreamServer::bind(path.as_path(), echo_line).unwrap());
    (0..3).for_each(|_| stream_examine(&serving.address));
    serving.stop();
    assert!(!path.exists());

    let serving = Serving::start(ThreadingUdpServer::bind("127.0.0.1:0", echo_dgram).unwrap());
    (0..3).for_each(|_| dgram_examine(&serving.address, None));
    serving.stop();

    let path = dir.path().join("d.sock");
    let serving =
        Serving::start(ThreadingUnixDatagramServer::bind(path.as_path(), echo_dgram).unwrap());
    for i in 0..3 {
        dgram_examine(
            &serving.address,
            Some(&dir.path().join(format!("c{i}.sock"))),
        );
    }
    serving.stop();
}

#[test]
fn close_immediately_without_serving() {
    // CPython's test_close_immediately.
    let mut server = ThreadingTcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    server.server_close();
    assert_eq!(server.fileno(), -1);
}

/// Two clients connect at once and read their whole replies (only concurrent handlers answer
/// both when they wait for each other).
fn two_clients_at_once(addr: std::net::SocketAddr) -> Vec<String> {
    let clients: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(GENEROUS)).unwrap();
                let mut out = String::new();
                c.read_to_string(&mut out).expect("served concurrently");
                out
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn requests_run_concurrently() {
    // Two handlers wait for each other: only concurrent requests get past the barrier.
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        b.wait();
        Ok(req.wfile.write_all(b"both\n")?)
    })
    .unwrap();
    let serving = Serving::start(server);
    let addr = serving.address.as_inet().unwrap();
    assert_eq!(two_clients_at_once(addr), ["both\n", "both\n"]);
    serving.stop();
}

#[test]
fn threads_are_bounded_and_reused_and_the_rest_queue() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let server: Server<Tcp, Threading> =
        ThreadingTcpServer::builder(move |req: &mut StreamRequest| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let mut line = String::new();
            req.rfile.read_line(&mut line)?;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(req.wfile.write_all(line.as_bytes())?)
        })
        .strategy(Threading::new().max_threads(2))
        .bind("127.0.0.1:0")
        .unwrap();
    let serving = Serving::start(server);
    let addr = serving.address.as_inet().unwrap();
    // Six clients connect at once; they send only after all are connected, so the pool is
    // full and the rest queue for its two threads.
    let clients: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + GENEROUS;
    while running.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the pool never filled");
        thread::yield_now();
    }
    for mut c in clients {
        c.write_all(TEST_STR).unwrap();
        c.set_read_timeout(Some(GENEROUS)).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out, TEST_STR);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than max_threads at once"
    );
    // More sequential requests reuse the two threads.
    for _ in 0..10 {
        stream_examine(&serving.address);
    }
    let server = serving.stop();
    assert!(server.strategy().threads() <= 2);
}

#[derive(Debug, Default, Clone)]
struct Errors(Arc<Mutex<Vec<String>>>);
impl Hooks for Errors {
    fn handle_error(&self, _s: &ServerContext, _c: &Address, e: &HandlerError) {
        self.0.lock().unwrap().push(e.to_string());
    }
}

#[test]
fn a_panicking_handler_is_reported_and_the_worker_lives_on() {
    let errors = Errors::default();
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(|req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        assert!(!line.starts_with("panic"), "handler panicked on purpose");
        Ok(req.wfile.write_all(line.as_bytes())?)
    })
    .strategy(Threading::new().max_threads(1))
    .hooks(errors.clone())
    .bind("127.0.0.1:0")
    .unwrap();
    let serving = Serving::start(server);
    for _ in 0..3 {
        let mut c = TcpStream::connect(serving.address.as_inet().unwrap()).unwrap();
        c.write_all(b"panic\n").unwrap();
        c.set_read_timeout(Some(GENEROUS)).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        stream_examine(&serving.address);
    }
    let server = serving.stop();
    assert_eq!(errors.0.lock().unwrap().len(), 3);
    assert_eq!(
        server.strategy().threads(),
        0,
        "the one worker ended at close"
    );
}

#[test]
fn server_close_waits_for_requests_in_flight() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        d.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    let serving = Serving::start(server);
    let mut c = TcpStream::connect(serving.address.as_inet().unwrap()).unwrap();
    let deadline = Instant::now() + GENEROUS;
    while serving.handle.in_flight() == 0 {
        assert!(Instant::now() < deadline, "request never started");
        thread::yield_now();
    }
    let handle = serving.handle.clone();
    let closer = thread::spawn(move || serving.stop());
    // server_close cannot return while the handler waits for this line.
    c.write_all(b"go\n").unwrap();
    let _server = closer.join().unwrap();
    assert_eq!(
        done.load(Ordering::SeqCst),
        1,
        "the request finished before close returned"
    );
    assert_eq!(handle.in_flight(), 0);
}

#[test]
fn graceful_stop_forces_idle_connections_on_worker_threads() {
    let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        let mut rest = Vec::new();
        Ok(req.rfile.read_to_end(&mut rest).map(|_| ())?)
    })
    .unwrap();
    let serving = Serving::start(server);
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(serving.address.as_inet().unwrap()).unwrap())
        .collect();
    let deadline = Instant::now() + GENEROUS;
    while serving.handle.in_flight() < 3 {
        assert!(Instant::now() < deadline, "requests never started");
        thread::yield_now();
    }
    let report = serving
        .handle
        .shutdown_gracefully(Duration::from_millis(100))
        .unwrap();
    assert_eq!(report.forced, 3, "{report:?}");
    assert_eq!(report.still_running, 0, "{report:?}");
    assert!(report.loop_stopped);
    drop(idle);
    serving.stop();
}

#[test]
fn connections_arriving_together_each_get_a_thread_when_one_is_idle() {
    // Regression: two jobs could both count on the same idle thread, and the second waited
    // behind the first, a connection that stays open.
    let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        loop {
            let data = req.rfile.fill_buf()?.to_vec();
            if data.is_empty() {
                return Ok(());
            }
            req.wfile.write_all(&data)?;
            req.rfile.consume(data.len());
        }
    })
    .unwrap();
    let serving = Serving::start(server);
    let addr = serving.address.as_inet().unwrap();
    for round in 0..20 {
        // One earlier request leaves an idle thread; then two connections arrive together.
        let mut warm = TcpStream::connect(addr).unwrap();
        warm.write_all(b"w").unwrap();
        let mut one = [0u8; 1];
        warm.set_read_timeout(Some(GENEROUS)).unwrap();
        warm.read_exact(&mut one).unwrap();
        drop(warm);
        let mut a = TcpStream::connect(addr).unwrap();
        let mut b = TcpStream::connect(addr).unwrap();
        for (name, c) in [("first", &mut a), ("second", &mut b)] {
            c.set_read_timeout(Some(GENEROUS)).unwrap();
            c.write_all(b"x").unwrap();
            c.read_exact(&mut one)
                .unwrap_or_else(|e| panic!("round {round}: the {name} connection waited: {e}"));
        }
    }
    serving.stop();
}

#[test]
fn a_bounded_close_counts_only_threads_with_a_request_as_left_running() {
    // Two requests at once start two threads; once both are answered the threads are idle.
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        b.wait();
        Ok(req.wfile.write_all(b"done\n")?)
    })
    .unwrap();
    let mut serving = Serving::start(server);
    let addr = serving.address.as_inet().unwrap();
    assert_eq!(two_clients_at_once(addr), ["done\n", "done\n"]);
    let handle = serving.handle.clone();
    let deadline = Instant::now() + GENEROUS;
    while handle.in_flight() != 0 {
        assert!(Instant::now() < deadline, "the requests never ended");
        thread::yield_now();
    }
    let mut server = serving.stop_loop();
    assert_eq!(server.strategy().threads(), 2);
    // A deadline that has passed already: idle threads are ending, not left running.
    let report = server.server_close_by(&server::CloseDeadline::at(Instant::now()));
    assert!(report.is_clean(), "{report:?}");
}

/// A handler that says "started" and then waits (at most `GENEROUS`) for one message on the
/// channel: requests that stay in flight until the test lets each go.
fn held_requests() -> (
    std::sync::mpsc::Sender<()>,
    impl FnMut(&mut StreamRequest) -> Result<(), handler::BoxError> + Clone + Send + 'static,
) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let held = move |req: &mut StreamRequest| -> Result<(), handler::BoxError> {
        req.wfile.write_all(b"started\n")?;
        let _ = released.lock().unwrap().recv_timeout(GENEROUS);
        Ok(())
    };
    (release, held)
}

#[test]
fn a_bounded_close_waits_for_requests_even_with_daemon_threads() {
    // daemon_threads is for server_close; the graceful-stop close still waits until its deadline
    // and then says what it left.
    let (release, held) = held_requests();
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held)
        .strategy(Threading::new().daemon_threads(true))
        .bind("127.0.0.1:0")
        .unwrap();
    let mut serving = Serving::start(server);
    let mut client = TcpStream::connect(serving.address.as_inet().unwrap()).unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&client)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    let mut server = serving.stop_loop();
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let report = server.server_close_by(&server::CloseDeadline::at(started + wait));
    let took = started.elapsed();
    assert!(took >= wait, "returned after {took:?}, before its deadline");
    assert_eq!(report.threads_abandoned, 1, "{report:?}");
    release.send(()).unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
}

#[test]
fn a_server_at_max_connections_takes_the_next_client_when_a_request_ends_without_a_tick() {
    // One connection and a 60 s tick: once the loop has paused for room, only the end of the
    // first request can wake it in time.
    let full = FullRound::default();
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(echo_line)
        .max_connections(1)
        .service_actions(full.hook(|handle| handle.in_flight() == 1))
        .bind("127.0.0.1:0")
        .unwrap();
    full.arm(server.shutdown_handle());
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    let addr = running.server_address().as_inet().unwrap();
    let mut first = TcpStream::connect(addr).unwrap();
    first.set_read_timeout(Some(GENEROUS)).unwrap();
    // The handler waits for the first client's line: the loop paused accepting.
    full.wait();
    let mut second = TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(GENEROUS)).unwrap();
    second.write_all(TEST_STR).unwrap();
    first.write_all(TEST_STR).unwrap();
    let mut reply = vec![0; TEST_STR.len()];
    first.read_exact(&mut reply).unwrap();
    let freed = Instant::now();
    second
        .read_exact(&mut reply)
        .expect("the second client is served when the first request ends, not at a tick");
    assert_eq!(reply, TEST_STR);
    assert!(freed.elapsed() < GENEROUS, "took {:?}", freed.elapsed());
    let mut server = running.shutdown().unwrap();
    server.server_close();
}

#[test]
fn running_shows_live_threads_and_requests_in_flight() {
    let (release, held) = held_requests();
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held)
        .strategy(Threading::new().max_threads(4))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    assert_eq!((running.threads(), running.in_flight()), (0, 0));
    let clients: Vec<TcpStream> = (0..2)
        .map(|_| {
            let c = TcpStream::connect(running.server_address().as_inet().unwrap()).unwrap();
            c.set_read_timeout(Some(GENEROUS)).unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&c).read_line(&mut line).unwrap();
            assert_eq!(line, "started\n");
            c
        })
        .collect();
    // Both handlers are blocked now.
    assert_eq!((running.threads(), running.in_flight()), (2, 2));
    assert_eq!((running.running(), running.queued()), (2, 0));
    let shown = format!("{running:?}");
    assert!(
        shown.contains("in_flight: 2")
            && shown.contains("running: 2")
            && shown.contains("queued: 0")
            && shown.contains("threads: 2")
            && shown.contains("children: 0"),
        "{shown}"
    );
    for _ in &clients {
        release.send(()).unwrap();
    }
    for mut c in clients {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
    }
    wait_until("the requests ended", || running.in_flight() == 0);
    assert_eq!(running.threads(), 2, "idle threads stay in the pool");
    let handle = running.shutdown_handle();
    let mut server = running.shutdown().unwrap();
    server.server_close();
    assert_eq!((handle.threads(), handle.in_flight()), (0, 0), "closed");
}

#[test]
fn connections_beyond_max_threads_queue_and_run_in_arrival_order() {
    // Each request records its client, then waits for its line: with one thread, the others
    // are accepted at once (not left in the backlog) and wait for it in the order they came.
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let server: Server<Tcp, Threading> =
        ThreadingTcpServer::builder(move |req: &mut StreamRequest| {
            seen.lock().unwrap().push(req.client_address.clone());
            req.wfile.write_all(b"started\n")?;
            let mut line = String::new();
            req.rfile.read_line(&mut line)?;
            Ok(req.wfile.write_all(line.as_bytes())?)
        })
        .strategy(Threading::new().max_threads(1))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    let addr = running.server_address().as_inet().unwrap();
    let mut clients = Vec::new();
    for n in 1..=4 {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(GENEROUS)).unwrap();
        // Accepted before the next connects: the arrival order is this order.
        wait_until("the connection is accepted", || running.in_flight() == n);
        clients.push(std::io::BufReader::new(c));
    }
    // The first runs (it said so), the other three wait for its thread.
    let mut line = String::new();
    clients[0].read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    assert_eq!((running.running(), running.queued()), (1, 3));
    assert_eq!(running.threads(), 1);
    for (i, c) in clients.iter_mut().enumerate() {
        if i > 0 {
            line.clear();
            c.read_line(&mut line).unwrap();
            assert_eq!(line, "started\n");
        }
        c.get_mut().write_all(TEST_STR).unwrap();
        let mut echo = vec![0; TEST_STR.len()];
        c.read_exact(&mut echo).unwrap();
    }
    let expected: Vec<Address> = clients
        .iter()
        .map(|c| Address::from(c.get_ref().local_addr().unwrap()))
        .collect();
    assert_eq!(*order.lock().unwrap(), expected, "served in arrival order");
    wait_until("the requests ended", || running.in_flight() == 0);
    assert_eq!(running.queued(), 0);
    running.shutdown().unwrap().server_close();
}

#[test]
fn idle_threads_retire_after_the_idle_timeout() {
    let (release, held) = held_requests();
    let server: Server<Tcp, Threading> = ThreadingTcpServer::builder(held)
        .strategy(Threading::new().thread_idle_timeout(Some(Duration::from_millis(50))))
        .bind("127.0.0.1:0")
        .unwrap();
    let running = server.spawn_with(Duration::from_secs(60)).unwrap();
    let addr = running.server_address().as_inet().unwrap();
    // A burst of five at once: five threads.
    let clients: Vec<TcpStream> = (0..5)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(GENEROUS)).unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&c).read_line(&mut line).unwrap();
            assert_eq!(line, "started\n");
            c
        })
        .collect();
    assert_eq!(running.threads(), 5);
    for _ in &clients {
        release.send(()).unwrap();
    }
    drop(clients);
    // Idle for 50 ms, each ends: none is left behind by the burst.
    wait_until("the idle threads retired", || running.threads() == 0);
    // And a new request starts a thread again.
    release.send(()).unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut started = [0; 8];
    c.read_exact(&mut started).unwrap();
    assert_eq!(&started, b"started\n");
    let mut server = running.shutdown().unwrap();
    server.server_close();
    assert_eq!(server.strategy().threads(), 0);
}

#[test]
fn the_pool_defaults() {
    let shown = format!("{:?}", Threading::new());
    assert!(
        shown.contains("max_threads: None") // the rule: DEFAULT_MAX_THREADS where NPROC allows
            && shown.contains("thread_idle_timeout: Some(10s)")
            && shown.contains("stack_size: None"),
        "{shown}"
    );
    assert_eq!(sockserve_mixins::DEFAULT_MAX_THREADS, 10_000);
    assert!(Threading::new().thread_limit() <= sockserve_mixins::DEFAULT_MAX_THREADS);
    assert_eq!(Threading::new().max_threads(7).thread_limit(), 7);
}
