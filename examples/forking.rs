//! A forking server with per-connection state and Python's overridable hooks (`forking.py` of
//! the reference programs: `ForkingTCPServer` with a `StreamRequestHandler` that has `setup`,
//! `handle` and `finish`, a `verify_request` allow-list, a custom `handle_error`, and SIGTERM
//! to stop). Each connection is served in a child process (at most 8 at once): it is welcomed
//! with the child's pid, every line is answered numbered and uppercased, `bye` ends the
//! session, `boom` fails it with an error and `panic` with a panic (each reported on stderr by
//! the child's `handle_error`); every session ends with how many lines it took and how long.
//!
//! ```text
//! cargo run --example forking
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9997)); s.sendall(b'hi\nboom\n'); import time; time.sleep(0.5); print(s.recv(1000).decode())"
//! ```
//!
//! The original binds `0.0.0.0`; this port binds 127.0.0.1, as every example of this project
//! serves loopback only (the allow-list is kept: a client from another loopback address, such as
//! 127.0.0.2, is rejected). SIGTERM (or Ctrl-C) stops it gracefully with exit status 0:
//! sessions still open are given 5 s, then closed (Python waits for them however long).
//! Addresses are printed as Python prints its address tuples, `('127.0.0.1', 9997)`; the
//! error `handle_error` prints is sockserve's, `handle failed: the client asked for an error`
//! where Python prints `OSError('the client asked for an error')`, and a panic is also reported
//! in one line by the child's panic hook.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{BoxError, Forking, ForkingTcpServer, Handler, Next, StopSignals, StreamRequest};
use std::io::Write;
use std::{net::IpAddr, net::Ipv4Addr, process, time::Duration, time::Instant};

/// The clients `verify_request` lets in (Python's `allow` class attribute).
const ALLOW: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::LOCALHOST)];

/// One session's state: each connection is served by a fresh copy of the handler (Python makes
/// one handler object per request).
#[derive(Clone, Default)]
struct Session {
    lines: usize,
    /// Set by `setup`; `finish` runs only after `setup` succeeded.
    started: Option<Instant>,
}

impl Handler<StreamRequest> for Session {
    fn setup(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        self.started = Some(Instant::now());
        let (client, pid) = (&req.client_address, process::id());
        Ok(writeln!(
            req.wfile,
            "welcome {client:#}, served by pid {pid}"
        )?)
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        for line in req.rfile.split(b'\n') {
            // Python's `.decode()`: a line that is not UTF-8 is an error.
            let text = String::from_utf8(line?.trim_ascii().to_vec())?;
            match text.as_str() {
                "boom" => return Err("the client asked for an error".into()),
                "panic" => panic!("the client asked for a panic"),
                "bye" => break,
                _ => {}
            }
            self.lines += 1;
            writeln!(req.wfile, "{}: {}", self.lines, text.to_uppercase())?;
        }
        Ok(Next::Done)
    }

    fn finish(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        let took = self.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        writeln!(req.wfile, "bye after {} lines in {took:.6}s", self.lines)?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Python's `signal.signal(SIGTERM, ...)`: caught from here on, before the server says it is up.
    let signals = StopSignals::install()?;
    let server = ForkingTcpServer::builder_handler(Session::default())
        .allow_reuse_address(true)
        .strategy(Forking::new().max_children(8))
        .verify_request(|_server, _request, client| {
            let ok = client.as_inet().is_some_and(|a| ALLOW.contains(&a.ip()));
            if !ok {
                eprintln!("verify_request: rejecting {client:#}"); // `{:#}`: Python's tuple
            }
            ok
        })
        .handle_error(|_server, client, error| {
            let pid = process::id();
            eprintln!("handle_error (pid {pid}): request from {client:#} failed: {error}");
        })
        // Only loopback in this project: the original binds 0.0.0.0.
        .bind("127.0.0.1:9997")?;
    let (address, pid) = (server.server_address(), process::id());
    println!("forking server on {address:#} (pid {pid})");
    signals.serve_until_signal(server, Duration::from_secs(5))?;
    Ok(())
}
