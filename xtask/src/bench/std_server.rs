//! The floor of the blocking model: a bare `std` echo server, one thread per connection (TCP,
//! Unix stream) or one loop (UDP), with nothing of sockserve in it. `cargo xtask bench` runs it
//! as `xtask std-echo-server --family tcp|udp|unix --addr ADDR` (a hidden subcommand, in
//! release), and it announces `listening on ADDR` like the other servers. SIGTERM's default
//! action ends it.

use std::io::{self, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::thread;

use crate::Result;

/// `std-echo-server --family tcp|udp|unix --addr ADDR`: serves until killed.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut family = "tcp".to_owned();
    let mut addr = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value"))?
            .clone();
        match flag.as_str() {
            "--family" => family = value,
            "--addr" => addr = Some(value),
            other => return Err(format!("std-echo-server: unknown flag `{other}`").into()),
        }
    }
    let addr = addr.ok_or("std-echo-server: --addr is required")?;
    match family.as_str() {
        "tcp" => {
            let listener = TcpListener::bind(&addr)?;
            announce(&listener.local_addr()?.to_string())?;
            serve_tcp(&listener);
        }
        "unix" => {
            let listener = UnixListener::bind(&addr)?;
            announce(&addr)?;
            serve_unix(&listener);
        }
        "udp" => {
            let socket = UdpSocket::bind(&addr)?;
            announce(&socket.local_addr()?.to_string())?;
            serve_udp(&socket);
        }
        other => return Err(format!("std-echo-server: unknown family `{other}`").into()),
    }
    Ok(())
}

fn announce(addr: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()
}

/// A thread per connection, Nagle off (as `echo_server`), until the listener fails.
fn serve_tcp(listener: &TcpListener) {
    for stream in listener.incoming() {
        // A failed accept (a connection reset before it was taken, EMFILE) skips that one.
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        thread::spawn(move || echo(stream));
    }
}

/// A thread per Unix connection.
pub(crate) fn serve_unix(listener: &UnixListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        thread::spawn(move || echo(stream));
    }
}

/// One loop: each datagram answered with itself.
pub(crate) fn serve_udp(socket: &UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
        }
    }
}

/// Writes back whatever arrives until the peer closes (or fails).
fn echo(mut stream: impl Read + Write) {
    let mut buf = [0u8; 65_536];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}
