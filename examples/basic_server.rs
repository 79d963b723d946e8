//! The classic socket server walk-through: create, bind, listen, accept, then receive and
//! answer in a loop until the client closes, and close. It serves clients one after another,
//! forever, and echoes each received chunk back UPPERCASED (ASCII letters only).
//!
//! Run it (port 0 picks a free port; the real address is printed):
//!
//! ```text
//! cargo run --example basic_server -- --addr 127.0.0.1:9999
//! ```
//!
//! Then try it with the Rust client, or with Python:
//!
//! ```text
//! cargo run --example basic_client -- --addr 127.0.0.1:9999 "hello world"
//! python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 9999)); s.sendall(b"hello"); print(s.recv(1024)); s.close()'
//! ```

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::io::{self, Write};

use sockserve::socket::SOMAXCONN;
use sockserve::{Address, Family, Socket, Type};

fn main() -> io::Result<()> {
    let addr = parse_args()?;

    // 1. Create a socket of the address's family: a TCP socket for IPv4/IPv6.
    let server = Socket::new(addr.family(), Type::Stream)?;
    // Restarting the server must not fail because old connections linger in TIME_WAIT.
    server.setsockopt(sockserve::socket::opt::ReuseAddress, true)?;
    // 2. Bind it to the address, 3. listen for connections.
    server.bind(&addr)?;
    server.listen(SOMAXCONN)?;
    println!("listening on {}", server.getsockname()?);
    io::stdout().flush()?;

    // 4. Accept clients one after another, forever.
    loop {
        let (mut conn, peer) = server.accept()?;
        eprintln!("connection from {peer}");
        if let Err(e) = serve(&conn) {
            // One client's failure (a reset, say) must not stop the server.
            eprintln!("{peer}: {e}");
        }
        // 6. Close the connection.
        conn.close()?;
        eprintln!("{peer} closed");
    }
}

/// 5. Receive and answer in a loop until the client closes its side (an empty `recv`).
fn serve(conn: &Socket) -> io::Result<()> {
    loop {
        let data = conn.recv(4096)?;
        if data.is_empty() {
            return Ok(());
        }
        conn.sendall(&data.to_ascii_uppercase())?;
    }
}

/// `--addr ADDR` (default 127.0.0.1:9999).
fn parse_args() -> io::Result<Address> {
    let mut addr = String::from("127.0.0.1:9999");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or_else(|| usage("--addr needs a value"))?,
            other => return Err(usage(&format!("unexpected argument {other:?}"))),
        }
    }
    let addr: Address = addr.parse()?;
    if addr.family() == Family::Unix {
        return Err(usage("this example serves TCP; give an IP:PORT address"));
    }
    Ok(addr)
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}\nusage: basic_server [--addr IP:PORT]"),
    )
}
