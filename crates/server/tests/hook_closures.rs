//! Hooks as closures on the builder (`verify_request`, `handle_error`, `handle_timeout`,
//! `service_actions`): each runs with the server (address and state), the request's own
//! arguments, wins over the matching method of a `.hooks()` value, and a panic in one is
//! caught while the server keeps serving. Also: hooks and strategies without `Debug`.

mod util;

use handler::StreamRequest;
use handler::{BoxError, SharedState};
use socket::Address;
use sockserve_server::{Job, RequestRef, Strategy, TcpServer};
use std::{
    io::{BufRead, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};
use util::*;

/// The user state the hooks look for.
#[derive(Debug, PartialEq)]
struct Tag(&'static str);

/// What a hook saw: the server's address, its state's tag, and the client.
type Seen = Arc<Mutex<Vec<(Address, &'static str, Address)>>>;

/// Records what a hook saw of the server and the client.
fn record(seen: &Seen, server: &handler::ServerContext<Tag>, client: &Address) {
    let tag = server.state().0;
    let entry = (server.server_address().clone(), tag, client.clone());
    seen.lock().unwrap().push(entry);
}

/// Asserts that one hook call saw `server`'s address, the state tagged `tag`, and `client`.
fn assert_saw_once(seen: &Seen, server: &TcpServer<Tag>, tag: &'static str, client: &TcpStream) {
    let client_address = Address::from(client.local_addr().unwrap());
    let expected = (server.server_address().clone(), tag, client_address);
    assert_eq!(*seen.lock().unwrap(), [expected]);
}

/// The one-line echo, failing on a line that starts with "fail".
fn echo_or_fail<S: SharedState>(req: &mut StreamRequest<S>) -> Result<(), BoxError> {
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    if line.starts_with("fail") {
        return Err(std::io::Error::other("failed on purpose").into());
    }
    Ok(req.wfile.write_all(line.as_bytes())?)
}

/// Connects, sends `line`, and reads the reply to the end.
fn exchange(client: &mut TcpStream, line: &[u8]) -> Vec<u8> {
    client.write_all(line).expect("send");
    read_to_end(client)
}

#[test]
fn verify_request_closure_rejects_and_sees_the_server_and_client() {
    let seen = Seen::default();
    let streams = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicBool::new(false));
    let (s, n, h) = (seen.clone(), streams.clone(), handled.clone());
    let mut server = TcpServer::with_state(Tag("verify"))
        .builder(move |_req| {
            h.store(true, Ordering::SeqCst);
            Ok(())
        })
        .verify_request(move |server, request, client| {
            if matches!(request, RequestRef::Stream(_)) {
                n.fetch_add(1, Ordering::SeqCst);
            }
            record(&s, server, client);
            false
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(exchange(&mut client, b"hello\n"), b"", "rejected: closed");
    assert!(
        !handled.load(Ordering::SeqCst),
        "a rejected request runs no handler"
    );
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    assert_saw_once(&seen, &server, "verify", &client);
}

#[test]
fn handle_error_closure_sees_the_error_state_and_addresses() {
    let seen = Seen::default();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (s, e) = (seen.clone(), errors.clone());
    let mut server = TcpServer::with_state(Tag("errors"))
        .builder(echo_or_fail)
        .handle_error(move |server, client, error| {
            record(&s, server, client);
            e.lock().unwrap().push(error.to_string());
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    client.write_all(b"fail\n").unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(read_to_end(&mut client), b"");
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1, "handle_error runs once: {errors:?}");
    assert!(errors[0].contains("failed on purpose"), "{errors:?}");
    assert_saw_once(&seen, &server, "errors", &client);
}

#[test]
fn handle_timeout_closure_runs_when_handle_request_times_out() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut server = TcpServer::with_state(Tag("timeout"))
        .builder(echo_or_fail)
        .timeout(Some(Duration::ZERO))
        .handle_timeout(move |server| {
            let tag = server.state().0;
            s.lock()
                .unwrap()
                .push((server.server_address().clone(), tag));
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    server.handle_request().expect("handle_request");
    server.handle_request().expect("handle_request");
    let expected = (server.server_address().clone(), "timeout");
    assert_eq!(*seen.lock().unwrap(), [expected.clone(), expected]);
}

#[test]
fn service_actions_closure_ticks_while_serving() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let addresses = Arc::new(Mutex::new(Vec::new()));
    let (t, a) = (ticks.clone(), addresses.clone());
    let (third_tick, ticked) = mpsc::sync_channel(1);
    let mut server = TcpServer::builder(echo_line)
        .service_actions(move |server| {
            a.lock().unwrap().push(server.server_address().clone());
            if t.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                let _ = third_tick.try_send(());
            }
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let address = server.server_address().clone();
    let handle = server.shutdown_handle();
    let serving = thread::spawn(move || {
        server
            .serve_forever_with(Duration::from_millis(10))
            .expect("serve_forever");
    });
    ticked
        .recv_timeout(GENEROUS)
        .expect("service_actions did not tick three times");
    handle.shutdown().expect("shutdown");
    serving.join().expect("the serving thread panicked");
    assert!(ticks.load(Ordering::SeqCst) >= 3);
    assert!(addresses.lock().unwrap().iter().all(|a| *a == address));
}

#[test]
fn closures_win_over_the_hooks_value_whichever_is_set_first() {
    // The value rejects every request; the closure set before it accepts them all.
    let rec = Shared(Arc::new(Recorder::rejecting()));
    let errors = Arc::new(AtomicUsize::new(0));
    let e = errors.clone();
    let mut server = TcpServer::builder(echo_or_fail)
        .timeout(Some(Duration::ZERO))
        .verify_request(|_server, _request, _client| true)
        .hooks(rec.clone())
        .handle_error(move |_server, _client, _error| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    client.write_all(b"hello\n").unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(
        read_to_end(&mut client),
        b"hello\n",
        "the closure accepted it"
    );
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    client.write_all(b"fail\n").unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(read_to_end(&mut client), b"");
    assert_eq!(
        errors.load(Ordering::SeqCst),
        1,
        "the closure saw the error"
    );
    assert_eq!(
        rec.0.error_count(),
        0,
        "the value's handle_error is replaced"
    );
    // The value's methods without a closure still run.
    assert_eq!(rec.0.shutdowns.load(Ordering::SeqCst), 2);
    server.handle_request().expect("handle_request"); // times out at once
    assert_eq!(rec.0.timeouts.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_closure_hook_is_caught_and_the_server_keeps_serving() {
    let verified = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let (v, e) = (verified.clone(), errors.clone());
    let mut server = TcpServer::builder(echo_or_fail)
        .verify_request(move |_server, _request, _client| {
            // The first request makes it panic: that request is rejected, not the server.
            assert!(
                v.fetch_add(1, Ordering::SeqCst) > 0,
                "verify_request panicked on purpose"
            );
            true
        })
        .handle_error(move |_server, _client, _error| {
            e.fetch_add(1, Ordering::SeqCst);
            panic!("handle_error panicked on purpose");
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let address = inet(server.server_address());

    let mut rejected = TcpStream::connect(address).unwrap();
    server
        .handle_request()
        .expect("handle_request after a verify_request panic");
    assert_eq!(exchange(&mut rejected, b"hello\n"), b"", "a panic rejects");

    let mut failing = TcpStream::connect(address).unwrap();
    failing.write_all(b"fail\n").unwrap();
    server
        .handle_request()
        .expect("handle_request after a handle_error panic");
    assert_eq!(read_to_end(&mut failing), b"");
    assert_eq!(errors.load(Ordering::SeqCst), 1);

    stream_examine_once(&mut server);
    assert_eq!(verified.load(Ordering::SeqCst), 3);
}

#[test]
fn a_panicking_handle_timeout_closure_is_caught() {
    let timeouts = Arc::new(AtomicUsize::new(0));
    let t = timeouts.clone();
    let mut server = TcpServer::builder(echo_line)
        .timeout(Some(Duration::ZERO))
        .handle_timeout(move |_server| {
            t.fetch_add(1, Ordering::SeqCst);
            panic!("handle_timeout panicked on purpose");
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    server.handle_request().expect("a panicking handle_timeout");
    server.handle_request().expect("and again");
    assert_eq!(timeouts.load(Ordering::SeqCst), 2);
    stream_examine_once(&mut server);
}

/// Serves one echo request with `handle_request`, the client on this thread.
fn stream_examine_once(server: &mut TcpServer) {
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    client.write_all(TEST_STR).unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(read_to_end(&mut client), TEST_STR);
}

/// Hooks and a strategy of types that do not implement `Debug`.
struct Quiet;
impl sockserve_server::Hooks for Quiet {}

struct Inline;
impl Strategy for Inline {
    fn process_request(&mut self, job: Job) {
        job.run()
    }
}

#[test]
fn builder_and_server_debug_name_types_that_are_not_debug() {
    let builder = TcpServer::builder(echo_line)
        .hooks(Quiet)
        .handle_error(|_server, _client, _error| {})
        .strategy(Inline);
    let text = format!("{builder:?}");
    assert!(text.contains("hook_closures::Quiet"), "{text}");
    assert!(text.contains("[\"handle_error\"]"), "{text}");
    assert!(text.contains("hook_closures::Inline"), "{text}");
    let server = builder.bind("127.0.0.1:0").expect("bind");
    let text = format!("{server:?}");
    assert!(text.contains("hook_closures::Inline"), "{text}");
}
