//! Python's `socketserver` docs example for datagrams, `UDPServer` with a
//! `DatagramRequestHandler` (`udp_upper.py` of the reference programs): every datagram is
//! printed with its sender and answered stripped and uppercased. Ctrl-C stops it.
//!
//! ```text
//! cargo run --example udp_upper
//! python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'hello\n', ('localhost',9999)); print(s.recv(100))"
//! ```
//!
//! It prints `127.0.0.1 wrote:` and `b'hello'`, as Python's `print(data)` of the bytes (quotes
//! are escaped Rust's way, see `tcp_upper`). Like the original it binds `localhost`: 127.0.0.1
//! on most machines.

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::UdpServer;
use std::io::Write;

fn main() -> Result<(), sockserve::Error> {
    UdpServer::bind("localhost:9999", |req| {
        // Python's `self.rfile.read()`: the whole datagram.
        let data = req.packet.trim_ascii();
        println!("{} wrote:", req.client_address.host()); // client_address[0]
        println!("b'{}'", data.escape_ascii());
        // `wfile` collects the reply, sent when the handler returns (as Python's).
        req.wfile.write_all(&data.to_ascii_uppercase())?;
        Ok(())
    })?
    .serve_forever()
}
