//! A graceful stop on SIGTERM or SIGINT, and the process's view of it. Each line `work MS`
//! takes MS milliseconds (at most 60,000) and is answered `done MS`, on a threading server.
//! When the signal comes, the server stops accepting, lets the requests in flight finish for
//! up to the grace (`--grace SECS`, default 3), shuts down what still runs, closes, and prints
//! the stop report on stderr: the one-line summary (`SignalStop`'s `Display`), then its parts
//! (the signal, the connections it had to shut down, the requests left running, how long it
//! took). A second signal during the stop ends it at once. It exits 0 after a stop that needed
//! no force, 1 otherwise.
//!
//! ```text
//! cargo run --example graceful_stop
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9993)); s.sendall(b'work 500\n'); print(s.recv(100))"
//! ```
//!
//! The client prints `b'done 500\n'`. Send `kill -TERM <pid>` while a `work 2000` is running:
//! the client still gets its `done 2000`, and the report says `stopped in 2.0 s`; with
//! `work 9000` the grace runs out, the connection is shut down, and the report counts it.
//! `--addr HOST:PORT` serves another address (port 0 picks a free one); the first line on
//! stdout is `listening on ADDR`.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::{StopSignals, ThreadingTcpServer};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (mut addr, mut grace) = ("127.0.0.1:9993".to_owned(), 3.0);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--grace", Some(secs)) => grace = secs.parse::<f64>()?,
            _ => return Err("usage: graceful_stop [--addr HOST:PORT] [--grace SECS]".into()),
        }
    }
    let signals = StopSignals::install()?;
    let server = ThreadingTcpServer::builder(|req| {
        let mut line = String::new();
        while req.rfile.read_line(&mut line)? > 0 {
            let ms = line
                .strip_prefix("work ")
                .and_then(|n| n.trim().parse::<u64>().ok());
            match ms.filter(|ms| *ms <= 60_000) {
                Some(ms) => {
                    std::thread::sleep(Duration::from_millis(ms)); // the work
                    writeln!(req.wfile, "done {ms}")?;
                }
                None => req.wfile.write_all(b"ERROR expected: work MS\n")?,
            }
            line.clear();
        }
        Ok(())
    })
    .allow_reuse_address(true)
    .bind(addr.as_str())?;
    println!("listening on {}", server.server_address());
    let stop = signals.serve_until_signal(server, Duration::from_secs_f64(grace))?;
    // The process's view of its stop.
    eprintln!("graceful_stop: {stop}");
    let signal = stop.signal.map_or("none".to_owned(), |s| s.to_string());
    let forced = stop.graceful.map_or(0, |g| g.forced);
    eprintln!(
        "graceful_stop: signal {signal}, forced by {:?}, {forced} connection(s) shut down, \
         {} request(s) left running, closed: {}, took {:.3} s",
        stop.forced_by.map(|s| s.to_string()),
        stop.still_running,
        stop.closed,
        stop.took.as_secs_f64()
    );
    Ok(if stop.is_clean() && forced == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
