//! Python's `socketserver` docs example, `TCPServer` with a `StreamRequestHandler`
//! (`tcp_upper.py` of the reference programs): for every line a client sends, it prints who
//! wrote and what, and sends the line back stripped and uppercased (no newline, as the
//! original). One client at a time; Ctrl-C stops it.
//!
//! ```text
//! cargo run --example tcp_upper
//! python3 -c "import socket; s=socket.create_connection(('localhost',9999)); s.sendall(b'hello\n'); print(s.recv(100))"
//! ```
//!
//! It prints `127.0.0.1 wrote:` and `b'hello'`, as Python's `print(data)` of the bytes (a
//! line with quotes in it is escaped Rust's way, `\'` and `\"`, where Python would switch
//! quotes). Like the original it binds `localhost`: the first address the name resolves to,
//! 127.0.0.1 on most machines (Python's `TCPServer` asks for IPv4 only; a machine whose
//! `localhost` resolves to `::1` first gets an IPv6 server here).

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::TcpServer;
use std::io::Write;

fn main() -> Result<(), sockserve::Error> {
    TcpServer::bind("localhost:9999", |req| {
        // Python's `for line in self.rfile`, each line stripped: the newline is split off.
        for line in req.rfile.split(b'\n') {
            let data = line?.trim_ascii().to_vec();
            println!("{} wrote:", req.client_address.host()); // client_address[0]
            println!("b'{}'", data.escape_ascii());
            req.wfile.write_all(&data.to_ascii_uppercase())?;
        }
        Ok(())
    })?
    .serve_forever()
}
