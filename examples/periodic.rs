//! A server that does periodic work beside its requests, with Python's two hooks for it:
//! `service_actions`, which `serve_forever` runs at every tick of its poll interval (here
//! 1 s), and `handle_timeout`, which `handle_request` runs when no request came within the
//! server's `timeout`. Each client line `PING` is answered `PONG` (anything else `ERROR`), one
//! client at a time (Python's `TCPServer`); the requests are counted in the server's state.
//!
//! - By default it serves until SIGTERM or Ctrl-C (a graceful stop), and every tick writes
//!   `periodic: tick N, M request(s) served` on stderr.
//! - `--handle-request N` serves N rounds of `handle_request` with a 1 s timeout instead, then
//!   exits: each round with no client writes `periodic: no request within 1 s (round R)`.
//!
//! ```text
//! cargo run --example periodic
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9994)); s.sendall(b'PING\n'); print(s.recv(100))"
//! ```
//!
//! The client prints `b'PONG\n'`; the next tick's line counts it. `--addr HOST:PORT` serves
//! another address (port 0 picks a free one); the first line on stdout is `listening on ADDR`.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{StopSignals, TcpServer};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the hooks see: requests served, ticks run and rounds that timed out.
#[derive(Default)]
struct Stats {
    served: AtomicU64,
    ticks: AtomicU64,
    rounds: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut addr, mut rounds) = ("127.0.0.1:9994".to_owned(), None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--handle-request", Some(n)) => rounds = Some(n.parse::<u64>()?),
            _ => return Err("usage: periodic [--addr HOST:PORT] [--handle-request N]".into()),
        }
    }
    let signals = StopSignals::install()?;
    let mut server = TcpServer::with_state(Stats::default())
        .builder(|req| {
            let mut line = String::new();
            while req.rfile.read_line(&mut line)? > 0 {
                let reply: &[u8] = if line.trim_end() == "PING" {
                    b"PONG\n"
                } else {
                    b"ERROR\n"
                };
                req.wfile.write_all(reply)?;
                req.server.state().served.fetch_add(1, Ordering::Relaxed);
                line.clear();
            }
            Ok(())
        })
        .allow_reuse_address(true)
        .poll_interval(Duration::from_secs(1))
        .timeout(Some(Duration::from_secs(1)))
        .service_actions(|server| {
            let stats = server.state();
            let tick = stats.ticks.fetch_add(1, Ordering::Relaxed) + 1;
            let served = stats.served.load(Ordering::Relaxed);
            eprintln!("periodic: tick {tick}, {served} request(s) served");
        })
        .handle_timeout(|server| {
            let round = server.state().rounds.load(Ordering::Relaxed);
            eprintln!("periodic: no request within 1 s (round {round})");
        })
        .bind(addr.as_str())?;
    println!("listening on {}", server.server_address());
    match rounds {
        Some(n) => {
            for round in 1..=n {
                server
                    .context()
                    .state()
                    .rounds
                    .store(round, Ordering::Relaxed);
                server.handle_request()?;
            }
            server.server_close();
        }
        None => {
            let stop = signals.serve_until_signal(server, Duration::from_secs(2))?;
            eprintln!("periodic: {stop}");
        }
    }
    Ok(())
}
