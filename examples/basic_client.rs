//! The classic socket client walk-through: create, connect, send, receive, close. It sends a
//! message to `basic_server` and prints what comes back.
//!
//! Start the server, then run the client:
//!
//! ```text
//! cargo run --example basic_server -- --addr 127.0.0.1:9999
//! cargo run --example basic_client -- --addr 127.0.0.1:9999 "hello world"
//! ```
//!
//! The Python client that does the same:
//!
//! ```text
//! python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 9999)); s.sendall(b"hello world"); print(s.recv(1024)); s.close()'
//! ```

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use std::io;
use std::net::Shutdown;

use sockserve::{Socket, ToAddrs, Type};

fn main() -> io::Result<()> {
    let (addr, message) = parse_args()?;

    // Resolve the address (a host name is fine: "localhost:9999").
    let target = addr
        .to_addrs()?
        .into_iter()
        .next()
        .ok_or_else(|| usage("no address"))?;
    // 1. Create a socket, 2. connect it.
    let mut sock = Socket::new(target.family(), Type::Stream)?;
    sock.connect(&target)?;
    // 3. Send the message, and say that nothing more will come.
    sock.sendall(message.as_bytes())?;
    sock.shutdown(Shutdown::Write)?;
    // 4. Receive until the server closes its side.
    let mut reply = Vec::new();
    loop {
        let chunk = sock.recv(4096)?;
        if chunk.is_empty() {
            break;
        }
        reply.extend_from_slice(&chunk);
    }
    println!("received: {}", String::from_utf8_lossy(&reply));
    // 5. Close.
    sock.close()
}

/// `--addr ADDR` (default 127.0.0.1:9999) and the message (default "hello, world").
fn parse_args() -> io::Result<(String, String)> {
    let mut addr = String::from("127.0.0.1:9999");
    let mut message = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or_else(|| usage("--addr needs a value"))?,
            _ if message.is_none() => message = Some(arg),
            other => return Err(usage(&format!("unexpected argument {other:?}"))),
        }
    }
    Ok((
        addr,
        message.unwrap_or_else(|| String::from("hello, world")),
    ))
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}\nusage: basic_client [--addr HOST:PORT] [MESSAGE]"),
    )
}
