//! `TcpServer`: CPython's test_socketserver checklist for the synchronous TCP server, and where
//! sockserve goes beyond it.

mod util;

use handler::{HandlerExt, StreamOptions, StreamRequest};
use sockserve_server::{Error, TcpServer};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};
use util::*;

#[test]
fn bind_errors_are_clear_and_release_the_socket() {
    let first = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let taken = first.server_address().to_string();
    let err = TcpServer::bind(taken.as_str(), echo_line).expect_err("address in use");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&taken), "{err}");
    let err = TcpServer::bind("127.0.0.1:70000", echo_line).expect_err("port out of range");
    assert!(matches!(err, Error::Address(_)), "{err:?}");
    assert!(err.to_string().contains("0-65535"), "{err}");
    let err = TcpServer::bind("/tmp/not-for-tcp.sock", echo_line).expect_err("wrong family");
    assert!(err.to_string().contains("TCPServer"), "{err}");
}

#[test]
fn unbound_then_bind_and_activate_by_hand() {
    let mut server = TcpServer::builder(echo_line)
        .build_unbound("127.0.0.1:0")
        .expect("create");
    assert_eq!(server.server_address().to_string(), "127.0.0.1:0");
    let err = server.handle_request().expect_err("not active yet");
    assert!(matches!(err, Error::NotActivated), "{err:?}");
    server.server_bind().expect("bind");
    assert_ne!(inet(server.server_address()).port(), 0);
    server.server_activate().expect("listen");
    let serving = Serving::start(server, Duration::from_millis(10));
    stream_examine(inet(&serving.address));
    serving.stop();
}

#[test]
fn handler_error_reaches_handle_error_exactly_once() {
    let rec = Shared::default();
    let mut server = TcpServer::builder(|req: &mut StreamRequest| {
        req.wfile.write_all(b"partial")?;
        Err::<(), _>(std::io::Error::other("Test error").into())
    })
    .hooks(rec.clone())
    .bind("127.0.0.1:0")
    .expect("bind");
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    server.handle_request().expect("handle_request");
    assert_eq!(read_to_end(&mut client), b"partial");
    assert_eq!(rec.0.error_count(), 1);
    assert!(rec.0.errors.lock().unwrap()[0].contains("Test error"));
    assert_eq!(rec.0.shutdowns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn handler_panic_reaches_handle_error_and_the_server_keeps_serving() {
    let rec = Shared::default();
    let server = TcpServer::builder(|req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        if line.starts_with("panic") {
            panic!("handler panicked on purpose");
        }
        Ok(req.wfile.write_all(line.as_bytes())?)
    })
    .hooks(rec.clone())
    .bind("127.0.0.1:0")
    .expect("bind");
    let serving = Serving::start(server, Duration::from_millis(10));
    let mut c = TcpStream::connect(inet(&serving.address)).unwrap();
    c.write_all(b"panic\n").unwrap();
    assert_eq!(read_to_end(&mut c), b"", "the panicking request is closed");
    rec.0
        .wait_for("handle_error after a panic", |r| r.error_count() == 1);
    assert!(rec.0.errors.lock().unwrap()[0].contains("on purpose"));
    stream_examine(inet(&serving.address));
    serving.stop();
}

#[test]
fn finish_runs_when_handle_fails_but_not_when_setup_fails() {
    use handler::{BoxError, Handler, Next};
    #[derive(Clone)]
    struct Steps(Arc<Mutex<Vec<&'static str>>>, bool);
    impl Handler<StreamRequest> for Steps {
        fn setup(&mut self, _r: &mut StreamRequest) -> Result<(), BoxError> {
            self.0.lock().unwrap().push("setup");
            if self.1 {
                Err("setup failed".into())
            } else {
                Ok(())
            }
        }
        fn handle(&mut self, _r: &mut StreamRequest) -> Result<Next, BoxError> {
            self.0.lock().unwrap().push("handle");
            Err("handle failed".into())
        }
        fn finish(&mut self, _r: &mut StreamRequest) -> Result<(), BoxError> {
            self.0.lock().unwrap().push("finish");
            Ok(())
        }
    }
    for (fail_setup, expected) in [
        (false, vec!["setup", "handle", "finish"]),
        (true, vec!["setup"]),
    ] {
        let steps = Arc::new(Mutex::new(Vec::new()));
        let rec = Shared::default();
        let mut server = TcpServer::builder_handler(Steps(steps.clone(), fail_setup))
            .hooks(rec.clone())
            .bind("127.0.0.1:0")
            .unwrap();
        let _c = TcpStream::connect(inet(server.server_address())).unwrap();
        server.handle_request().unwrap();
        assert_eq!(*steps.lock().unwrap(), expected);
        assert_eq!(rec.0.error_count(), 1, "the error reaches handle_error");
    }
}

#[test]
fn handle_request_times_out_into_handle_timeout() {
    let rec = Shared::default();
    let mut server = TcpServer::builder(echo_line)
        .hooks(rec.clone())
        .timeout(Some(Duration::from_millis(50)))
        .bind("127.0.0.1:0")
        .unwrap();
    let start = Instant::now();
    server.handle_request().unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "waited the timeout"
    );
    assert_eq!(rec.0.timeouts.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn handle_request_serves_one_waiting_client_each_time() {
    let mut server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    let address = inet(server.server_address());
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(address).unwrap();
            c.write_all(TEST_STR).unwrap();
            c
        })
        .collect();
    for mut c in clients {
        server.handle_request().unwrap();
        assert_eq!(read_to_end(&mut c), TEST_STR);
    }
}

#[test]
fn unbuffered_wfile_sends_without_flush_and_never_short() {
    const SOCK_MAX_SIZE: usize = 16 * 1024 * 1024 + 1;
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let mut server = TcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        let sent1 = req.wfile.write(b"write data\n")?;
        let mut received = String::new();
        req.rfile.read_line(&mut received)?;
        let sent2 = req.wfile.write(&vec![0u8; SOCK_MAX_SIZE])?;
        *seen2.lock().unwrap() = Some((sent1, received, sent2));
        Ok(())
    })
    .unwrap();
    let address = inet(server.server_address());
    let client = thread::spawn(move || {
        let s = TcpStream::connect(address).unwrap();
        s.set_read_timeout(Some(GENEROUS)).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut response1 = String::new();
        reader.read_line(&mut response1).unwrap();
        (&s).write_all(b"client response\n").unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        (response1, rest.len())
    });
    server.handle_request().unwrap();
    let (response1, received2) = client.join().unwrap();
    let (sent1, received, sent2) = seen.lock().unwrap().take().expect("handler ran");
    assert_eq!(response1, "write data\n", "sent without a flush");
    assert_eq!(sent1, response1.len());
    assert_eq!(received, "client response\n");
    assert_eq!(sent2, SOCK_MAX_SIZE, "a 16 MiB + 1 write is not cut short");
    assert_eq!(received2, SOCK_MAX_SIZE);
}

#[test]
fn buffered_wfile_is_flushed_in_finish() {
    let handler = (|req: &mut StreamRequest| {
        assert!(req.wfile.is_buffered());
        req.wfile.write_all(b"buffered\n")
    })
    .with_options(StreamOptions::default().wbufsize(8192));
    let mut server = TcpServer::bind_handler("127.0.0.1:0", handler).unwrap();
    let mut c = TcpStream::connect(inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    assert_eq!(read_to_end(&mut c), b"buffered\n");
}

#[test]
fn handler_timeout_limits_reads_and_nodelay_is_set() {
    let rec = Shared::default();
    let handler = (|req: &mut StreamRequest| {
        assert_eq!(
            req.connection.gettimeout(),
            Some(Duration::from_millis(100))
        );
        assert!(req.connection.getsockopt(socket::opt::NoDelay)?);
        let mut line = String::new();
        req.rfile.read_line(&mut line).map(|_| ())
    })
    .with_options(
        StreamOptions::default()
            .timeout(Some(Duration::from_millis(100)))
            .disable_nagle_algorithm(true),
    );
    let mut server = TcpServer::builder_handler(handler)
        .hooks(rec.clone())
        .bind("127.0.0.1:0")
        .unwrap();
    let mut silent = TcpStream::connect(inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    let errors = rec.0.errors.lock().unwrap().clone();
    assert_eq!(
        errors.len(),
        1,
        "the silent client's timeout reached handle_error"
    );
    assert!(errors[0].contains("timed out"), "{errors:?}");
    assert_eq!(read_to_end(&mut silent), b"");
}

#[test]
fn handlers_reach_state_address_and_shutdown() {
    let mut server = TcpServer::with_state(String::from("hi"))
        .bind("127.0.0.1:0", |req| {
            let greeting: &String = req.server.state();
            writeln!(req.wfile, "{greeting} from {}", req.server.server_address())?;
            // On the serving thread, a blocking shutdown would deadlock: it is an error.
            let err = req.server.shutdown().expect_err("from the serving thread");
            assert_eq!(err.kind(), std::io::ErrorKind::Deadlock);
            req.server.request_shutdown();
            Ok(())
        })
        .unwrap();
    let address = server.server_address().clone();
    let mut c = TcpStream::connect(inet(&address)).unwrap();
    // The handler's request_shutdown ends this loop after the request.
    server.serve_forever_with(Duration::from_secs(60)).unwrap();
    let reply = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(reply, format!("hi from {address}\n"));
}

#[test]
fn client_vanishing_mid_request_is_an_error_not_a_crash() {
    let rec = Shared::default();
    let server = TcpServer::builder(|req: &mut StreamRequest| {
        let mut buf = [0u8; 4];
        req.rfile.read_exact(&mut buf)?;
        Ok(())
    })
    .hooks(rec.clone())
    .bind("127.0.0.1:0")
    .unwrap();
    let serving = Serving::start(server, Duration::from_millis(10));
    let c = TcpStream::connect(inet(&serving.address)).unwrap();
    (&c).write_all(b"ab").unwrap();
    c.shutdown(Shutdown::Both).unwrap();
    drop(c);
    rec.0.wait_for("handle_error for the vanished client", |r| {
        r.error_count() == 1
    });
    stream_examine_after_vanish(&serving.address);
    serving.stop();
}

fn stream_examine_after_vanish(address: &socket::Address) {
    let mut c = TcpStream::connect(inet(address)).unwrap();
    c.write_all(b"abcd").unwrap();
    assert_eq!(read_to_end(&mut c), b"", "still serving");
}

#[test]
fn ipv6_server() {
    let server = match TcpServer::bind("[::1]:0", echo_line) {
        Ok(s) => s,
        Err(e) => panic!("IPv6 loopback must work here: {e}"),
    };
    assert!(server.server_address().to_string().starts_with("[::1]:"));
    let serving = Serving::start(server, Duration::from_millis(10));
    stream_examine(inet(&serving.address));
    serving.stop();
}
