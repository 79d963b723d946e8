//! A key-value store over a line protocol, on a threading TCP server with shared state:
//!
//! - `SET key value` stores the value (the rest of the line, spaces included): `OK`;
//! - `GET key`: `VALUE value`, or `NOT_FOUND`;
//! - `DEL key`: `DELETED`, or `NOT_FOUND`;
//! - anything else: `ERROR unknown command`, and the connection stays open.
//!
//! Between lines a connection waits in the server's reactor (`Next::WaitForInput`), holding no
//! thread: thousands of idle clients cost a few threads (the pool is bounded at 8 here). A line
//! is at most 1024 bytes (`StreamOptions::line_limit`): a longer one gets `ERROR line too long`
//! and the connection is closed. A client silent for 5 minutes is disconnected. SIGTERM or
//! Ctrl-C stop it gracefully.
//!
//! ```text
//! cargo run --example kv_store
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',7379)); s.sendall(b'SET greeting hello world\nGET greeting\nDEL greeting\nGET greeting\n'); import time; time.sleep(0.2); print(s.recv(1000))"
//! ```
//!
//! The client prints `b'OK\nVALUE hello world\nDELETED\nNOT_FOUND\n'`. Try it by hand with
//! `nc 127.0.0.1 7379`. `--addr HOST:PORT` serves another address (port 0 picks a free one);
//! its first line on stdout is `listening on ADDR`.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{
    BoxError, Handler, Next, StopSignals, StreamOptions, StreamRequest, Threading,
    ThreadingTcpServer,
};
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest line a client may send, newline included.
const LINE_LIMIT: usize = 1024;

/// The store every connection shares.
type Store = Arc<Mutex<HashMap<String, String>>>;

/// One connection: a copy of the handler per connection, so `started` is its own.
#[derive(Clone)]
struct Session {
    store: Store,
    /// The first turn runs at accept, before the client sent anything: it only starts waiting.
    started: bool,
}

impl Handler<StreamRequest> for Session {
    fn options(&self) -> StreamOptions {
        StreamOptions::default()
            .line_limit(Some(LINE_LIMIT))
            .idle_timeout(Some(Duration::from_secs(300)))
            .write_timeout(Some(Duration::from_secs(30)))
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        if !std::mem::replace(&mut self.started, true) {
            return Ok(Next::WaitForInput);
        }
        // Input is there: one line, answered, then wait again. Lines already buffered run the
        // next turn at once.
        let mut line = String::new();
        match req.rfile.read_line(&mut line) {
            Ok(0) => return Ok(Next::Done), // the client closed its side
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                req.wfile.write_all(b"ERROR line too long\n")?;
                return Ok(Next::Done);
            }
            Err(e) => return Err(e.into()),
        }
        let reply = self.execute(line.trim_end_matches(['\r', '\n']));
        req.wfile.write_all(reply.as_bytes())?;
        Ok(Next::WaitForInput)
    }
}

impl Session {
    /// The reply to one command line, newline included.
    fn execute(&self, line: &str) -> String {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        // A lock is poisoned only by a panic while held; nothing below panics: hence `unwrap`.
        let mut store = self.store.lock().unwrap();
        match (command, rest.split_once(' ')) {
            ("SET", Some((key, value))) if !key.is_empty() => {
                store.insert(key.to_owned(), value.to_owned());
                "OK\n".to_owned()
            }
            ("GET", None) if !rest.is_empty() => match store.get(rest) {
                Some(value) => format!("VALUE {value}\n"),
                None => "NOT_FOUND\n".to_owned(),
            },
            ("DEL", None) if !rest.is_empty() => match store.remove(rest) {
                Some(_) => "DELETED\n".to_owned(),
                None => "NOT_FOUND\n".to_owned(),
            },
            _ => "ERROR unknown command\n".to_owned(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "127.0.0.1:7379".to_owned(),
        [flag, addr] if flag == "--addr" => addr.clone(),
        _ => return Err("usage: kv_store [--addr HOST:PORT]".into()),
    };
    let signals = StopSignals::install()?;
    let session = Session {
        store: Store::default(),
        started: false,
    };
    let server = ThreadingTcpServer::builder_handler(session)
        .allow_reuse_address(true)
        .strategy(Threading::new().max_threads(8))
        .bind(addr.as_str())?;
    println!("listening on {}", server.server_address());
    let stop = signals.serve_until_signal(server, Duration::from_secs(2))?;
    eprintln!("kv_store: {stop}");
    Ok(())
}
