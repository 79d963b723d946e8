//! `tcp_upper` on a threading server (`threaded_tcp_upper.py` of the reference programs:
//! Python's `ThreadingTCPServer` with a `StreamRequestHandler`): each connection on a thread
//! of the pool, every line printed with its client and sent back stripped and uppercased (no
//! newline, as the original). Ctrl-C stops it.
//!
//! ```text
//! cargo run --example threaded_tcp_upper
//! python3 -c "import socket; s=socket.create_connection(('localhost',9999)); s.sendall(b'hello\n'); print(s.recv(100))"
//! ```
//!
//! It prints `('127.0.0.1', 54321) wrote: b'hello'`, as Python prints the address tuple and
//! the bytes (a line with quotes in it is escaped Rust's way, `\'` and `\"`, where Python would
//! switch quotes). Like the original it binds `localhost`: 127.0.0.1 on most machines (see
//! `tcp_upper`).

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::ThreadingTcpServer;
use std::io::Write;

fn main() -> Result<(), sockserve::Error> {
    ThreadingTcpServer::bind("localhost:9999", |req| {
        // Python's `for line in self.rfile`, each line stripped: the newline is split off.
        for line in req.rfile.split(b'\n') {
            let data = line?.trim_ascii().to_vec();
            // `{:#}`: the address as Python prints its tuple.
            println!("{:#} wrote: b'{}'", req.client_address, data.escape_ascii());
            req.wfile.write_all(&data.to_ascii_uppercase())?;
        }
        Ok(())
    })?
    .serve_forever()
}
