//! A Unix stream server (Python's `ThreadingUnixStreamServer` with a `StreamRequestHandler`):
//! every line a client sends comes back uppercased, each connection on a thread of the pool.
//! SIGTERM or Ctrl-C stop it gracefully (2 s for the lines in flight), and its socket file is
//! removed, as Python's server does not; a stale file left by a dead server is replaced, a live
//! server's is not.
//!
//! ```text
//! cargo run --example unix_stream
//! python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/tmp/sockserve-unix-stream.sock'); s.sendall(b'hello\n'); print(s.recv(100))"
//! ```
//!
//! The client prints `b'HELLO\n'`. `--path PATH` serves another path (`@name` for a Linux
//! abstract name, which leaves no file). Its first line on stdout is `listening on PATH`.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{StopSignals, ThreadingUnixStreamServer};
use std::io::{BufRead, Write};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "/tmp/sockserve-unix-stream.sock".to_owned(),
        [flag, path] if flag == "--path" => path.clone(),
        _ => return Err("usage: unix_stream [--path PATH]".into()),
    };
    let signals = StopSignals::install()?;
    let server = ThreadingUnixStreamServer::bind(path.as_str(), |req| {
        let mut line = Vec::new();
        while req.rfile.read_until(b'\n', &mut line)? > 0 {
            req.wfile.write_all(&line.to_ascii_uppercase())?;
            line.clear();
        }
        Ok(())
    })?;
    println!("listening on {}", server.server_address());
    let stop = signals.serve_until_signal(server, Duration::from_secs(2))?;
    eprintln!("unix_stream: {stop}");
    Ok(())
}
