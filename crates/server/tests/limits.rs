//! Defaults that keep a handler out of trouble: no Nagle stall between a reply's two writes,
//! and a bound on `rfile`'s line reads.

mod util;

use socket::{Family, Type, opt};
use sockserve_server::{StreamOptions, TcpServer, UnixStreamServer};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use util::*;

/// A keep-alive handler that answers each request line with a header and a body, written
/// separately, then waits for the next request: the pattern Nagle's algorithm stalls (the body
/// waits for the ACK of the header, which the client delays). Records whether the connection
/// had `TCP_NODELAY`.
#[test]
fn a_reply_in_two_writes_does_not_stall() {
    let nodelay = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&nodelay);
    let server = TcpServer::bind("127.0.0.1:0", move |req| {
        *seen.lock().unwrap() = Some(req.connection.getsockopt(opt::NoDelay)?);
        let mut line = String::new();
        while req.rfile.read_line(&mut line)? > 0 {
            req.wfile.write_all(b"header\n")?;
            req.wfile.write_all(b"body\n")?;
            line.clear();
        }
        Ok(())
    })
    .unwrap();
    let running = server.spawn().unwrap();
    let mut client = TcpStream::connect(inet(running.server_address())).unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let started = Instant::now();
    let mut reply = String::new();
    for _ in 0..100 {
        client.write_all(b"request\n").unwrap();
        for expected in ["header\n", "body\n"] {
            reply.clear();
            reader.read_line(&mut reply).unwrap();
            assert_eq!(reply, expected);
        }
    }
    let took = started.elapsed();
    drop((client, reader));
    running.shutdown().unwrap();
    assert_eq!(
        *nodelay.lock().unwrap(),
        Some(true),
        "TCP_NODELAY is on by default (what removes the stall)"
    );
    // With Nagle's algorithm each round trip waits ~40 ms for a delayed ACK: about 4 s.
    assert!(
        took < Duration::from_secs(2),
        "100 round trips took {took:?}"
    );
}

/// Python's `disable_nagle_algorithm = False` is still there to ask for.
#[test]
fn nagle_can_be_asked_for() {
    let nodelay = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&nodelay);
    let mut server = TcpServer::builder(move |req| {
        *seen.lock().unwrap() = Some(req.connection.getsockopt(opt::NoDelay)?);
        Ok(())
    })
    .request_options(StreamOptions::default().disable_nagle_algorithm(false))
    .bind("127.0.0.1:0")
    .unwrap();
    let _client = TcpStream::connect(inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    assert_eq!(*nodelay.lock().unwrap(), Some(false));
}

/// Reads one line with `rfile`'s limit; the reply says what happened.
fn line_server(limit: Option<usize>) -> TcpServer {
    TcpServer::builder(|req| {
        let mut line = Vec::new();
        let reply = match req.rfile.read_until(b'\n', &mut line) {
            Ok(n) => format!("line of {n}\n"),
            Err(e) => format!("error {:?}: {e}\n", e.kind()),
        };
        Ok(req.wfile.write_all(reply.as_bytes())?)
    })
    .request_options(StreamOptions::default().line_limit(limit))
    .bind("127.0.0.1:0")
    .unwrap()
}

/// Sends `data` and returns the server's reply.
fn exchange(server: &mut TcpServer, data: &[u8]) -> String {
    let mut client = TcpStream::connect(inet(server.server_address())).unwrap();
    // The server may stop reading before all is sent: write from a thread of its own.
    let mut writer = client.try_clone().unwrap();
    let data = data.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&data);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    server.handle_request().unwrap();
    let mut reply = String::new();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    client.read_to_string(&mut reply).unwrap();
    sending.join().unwrap();
    reply
}

#[test]
fn a_line_past_the_limit_is_a_clear_error() {
    let mut server = line_server(Some(1024));
    assert_eq!(exchange(&mut server, &[b'a'; 1023]), "line of 1023\n"); // EOF ends it
    let mut line = vec![b'a'; 1023];
    line.push(b'\n');
    assert_eq!(exchange(&mut server, &line), "line of 1024\n");
    let reply = exchange(&mut server, &[b'a'; 4096]);
    assert!(
        reply.starts_with("error InvalidData: line longer than 1024 bytes"),
        "{reply}"
    );
    assert!(
        reply.contains("line_limit"),
        "says how to raise it: {reply}"
    );
}

#[test]
fn the_default_limit_is_64_kib_and_none_lifts_it() {
    assert_eq!(StreamOptions::default().line_limit, Some(65_536));
    let endless = vec![b'x'; 1 << 20];
    let reply = exchange(
        &mut line_server(StreamOptions::default().line_limit),
        &endless,
    );
    assert!(reply.starts_with("error InvalidData"), "{reply}");
    let reply = exchange(&mut line_server(None), &endless);
    assert_eq!(reply, format!("line of {}\n", 1 << 20));
}

/// `lines()` goes through the same limit, and so does a Unix stream server's `rfile`.
#[test]
fn lines_are_limited_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.sock");
    let mut server = UnixStreamServer::builder(|req| {
        let mut lengths = Vec::new();
        for line in req.rfile.by_ref().lines() {
            match line {
                Ok(line) => lengths.push(line.len().to_string()),
                Err(e) => lengths.push(format!("{:?}", e.kind())),
            }
        }
        Ok(req.wfile.write_all(lengths.join(",").as_bytes())?)
    })
    .request_options(StreamOptions::default().line_limit(Some(16)))
    .bind(&path)
    .unwrap();
    let client = socket::Socket::new(Family::Unix, Type::Stream).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(path.as_path()).unwrap();
    client.sendall(b"short\n0123456789abcdefXYZ\n").unwrap();
    client.shutdown(socket::Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut reply = Vec::new();
    loop {
        let chunk = client.recv(100).unwrap();
        if chunk.is_empty() {
            break;
        }
        reply.extend(chunk);
    }
    // The long line fails, and reading goes on after it: the rest of it, then EOF.
    assert_eq!(String::from_utf8(reply).unwrap(), "5,InvalidData,3");
}
