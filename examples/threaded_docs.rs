//! The threading example of Python's `socketserver` docs (`threaded_docs.py` of the reference
//! programs): a `ThreadingTCPServer` on port 0 serves on a thread of its own while the main
//! thread runs three clients against it, then shuts it down. Each reply names the thread that
//! handled the request. It runs to completion by itself:
//!
//! ```text
//! cargo run --example threaded_docs
//! ```
//!
//! It prints, as the original does:
//!
//! ```text
//! Server loop running in thread: sockserve-serve
//! Received: sockserve-worker: Hello World 1
//! Received: sockserve-worker: Hello World 2
//! Received: sockserve-worker: Hello World 3
//! ```
//!
//! The thread names are sockserve's, not Python's `Thread-1 (serve_forever)` and
//! `Thread-2 (process_request_thread)`, ...: requests run on a pool of reused worker threads,
//! not a new thread each.

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::{Address, Family, Socket, ThreadingTcpServer, Type};
use std::{io, thread};

fn client(address: &Address, message: &str) -> io::Result<()> {
    let sock = Socket::new(Family::Inet, Type::Stream)?;
    sock.connect(address)?;
    sock.sendall(message.as_bytes())?;
    let response = sock.recv(1024)?;
    println!("Received: {}", String::from_utf8_lossy(&response));
    Ok(())
}

fn main() -> Result<(), sockserve::Error> {
    // Port 0 means to select an arbitrary unused port.
    let server = ThreadingTcpServer::bind("localhost:0", |req| {
        let data = String::from_utf8_lossy(&req.connection.recv(1024)?).into_owned();
        let response = format!("{}: {data}", thread::current().name().unwrap_or_default());
        req.connection.sendall(response.as_bytes())?;
        Ok(())
    })?;
    // Python's `threading.Thread(target=server.serve_forever)`, started; the handle stops it.
    let running = server.spawn()?;
    // `Running` does not show its thread; `spawn` names it so.
    println!("Server loop running in thread: sockserve-serve");
    let address = running.server_address();
    client(address, "Hello World 1")?;
    client(address, "Hello World 2")?;
    client(address, "Hello World 3")?;
    // Stops the loop and gives the server back; dropped here, it is closed (Python's `with`).
    running.shutdown()?;
    Ok(())
}
