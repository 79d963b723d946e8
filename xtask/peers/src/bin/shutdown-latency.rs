//! The in-process shutdown figure of `cargo xtask bench`: how long `shutdown()` takes to bring
//! `serve_forever` back, for the facade's TCP servers, sync, threading and forking.
//!
//! ```text
//! shutdown-latency [--trials N]
//! ```
//!
//! Each trial binds a fresh server on 127.0.0.1:0 (an echo handler), runs `serve_forever` on a
//! thread of its own, does one checked exchange with it (so the loop is serving, not starting),
//! then times `ShutdownHandle::shutdown()`, which returns once `serve_forever` has returned,
//! and joins the serving thread. Prints a line per server, `MODE MICROS MICROS ...` (one figure
//! per trial, in microseconds); any error ends it with status 1 and the message on stderr.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use sockserve::{ForkingTcpServer, StreamRequest, TcpServer, ThreadingTcpServer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long the exchange that proves a server serves may take.
const IO_LIMIT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("shutdown-latency: {e}");
        std::process::exit(1);
    }
}

/// The handler: every chunk written back as it arrives.
fn echo(req: &mut StreamRequest) -> Result<(), sockserve::BoxError> {
    loop {
        let data = req.rfile.fill_buf()?;
        if data.is_empty() {
            return Ok(());
        }
        let n = data.len();
        req.wfile.write_all(data)?;
        req.rfile.consume(n);
    }
}

/// One exchange with the server at `addr`: proves `serve_forever` is serving.
fn exchange(addr: &str) -> Result<(), Error> {
    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(IO_LIMIT))?;
    client.write_all(b"ping")?;
    let mut got = [0u8; 4];
    client.read_exact(&mut got)?;
    if &got != b"ping" {
        return Err(format!("{addr}: echoed {got:?}, not ping").into());
    }
    // A forking server's child inherits a copy of this descriptor (the client lives in the
    // server's process): shutting the socket down, not just closing the descriptor, is what
    // gives the handler its EOF.
    client.shutdown(Shutdown::Both)?;
    Ok(())
}

/// One trial of one server type: how long its shutdown took.
type Trial = fn() -> Result<Duration, Error>;

/// A trial for one server type: bind, serve on a thread, one exchange, time the shutdown.
macro_rules! trial {
    ($server:ty) => {{
        let mut server = <$server>::bind("127.0.0.1:0", echo)?;
        let addr = server.server_address().to_string();
        let handle = server.shutdown_handle();
        let took = std::thread::scope(|s| -> Result<Duration, Error> {
            let serving = s.spawn(|| server.serve_forever());
            let exchanged = exchange(&addr);
            let started = Instant::now();
            let stopped = handle.shutdown();
            let took = started.elapsed();
            let served = serving.join().map_err(|_| "the serving thread panicked")?;
            exchanged?;
            stopped?;
            served?;
            Ok(took)
        })?;
        server.server_close();
        took
    }};
}

fn run(args: &[String]) -> Result<(), Error> {
    let trials: usize = sockserve_bench_peers::flag(args, &["--trials"], "--trials", "5")?
        .parse()
        .map_err(|e| format!("--trials: {e}"))?;
    if !(1..=100).contains(&trials) {
        return Err("--trials must be in 1..=100".into());
    }
    let modes: [(&str, Trial); 3] = [
        ("sync", || Ok(trial!(TcpServer))),
        ("threading", || Ok(trial!(ThreadingTcpServer))),
        ("forking", || Ok(trial!(ForkingTcpServer))),
    ];
    let mut out = std::io::stdout().lock();
    for (mode, trial) in modes {
        let mut line = mode.to_owned();
        for _ in 0..trials {
            let took = trial().map_err(|e| format!("{mode}: {e}"))?;
            line.push_str(&format!(" {:.1}", took.as_secs_f64() * 1e6));
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
