//! A Unix datagram server (Python's `UnixDatagramServer` with a `DatagramRequestHandler`):
//! every datagram is answered with the same bytes uppercased, sent back to the client's own
//! address. SIGTERM or Ctrl-C stop it gracefully and remove its socket file.
//!
//! ```text
//! cargo run --example unix_datagram
//! python3 -c "import socket,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); p='/tmp/dgram-client-%d.sock' % os.getpid(); s.bind(p); s.sendto(b'hello', '/tmp/sockserve-unix-datagram.sock'); print(s.recv(100)); os.unlink(p)"
//! ```
//!
//! The client prints `b'HELLO'`. A datagram client must bind an address of its own, as above:
//! an unbound one cannot be answered (its datagram is served, the reply has nowhere to go).
//! `--path PATH` serves another path. Its first line on stdout is `listening on PATH`.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{StopSignals, UnixDatagramServer};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "/tmp/sockserve-unix-datagram.sock".to_owned(),
        [flag, path] if flag == "--path" => path.clone(),
        _ => return Err("usage: unix_datagram [--path PATH]".into()),
    };
    let signals = StopSignals::install()?;
    let server = UnixDatagramServer::bind(path.as_str(), |req| {
        // `wfile` is the reply, sent as one datagram when the handler returns.
        req.wfile = req.packet.to_ascii_uppercase();
        Ok(())
    })?;
    println!("listening on {}", server.server_address());
    let stop = signals.serve_until_signal(server, Duration::from_secs(2))?;
    eprintln!("unix_datagram: {stop}");
    Ok(())
}
