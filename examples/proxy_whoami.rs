//! A server behind a load balancer that speaks the PROXY protocol (HAProxy's `send-proxy` or
//! `send-proxy-v2`): each connection is answered with one line, the client address its
//! handler sees, which is the real client's (from the header), not the proxy's; then it
//! closes.
//!
//! ```text
//! cargo run --example proxy_whoami -- [--addr ADDR] [--trusted CIDR,...] [--mode sync|threading|forking] [--drain SECS]
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9990)); s.sendall(b'PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n'); print(s.recv(100))"
//! ```
//!
//! The client prints `b'203.0.113.7:51000\n'`. Without a header (`s.sendall(b'hello\n')`) the
//! connection is refused: closed, `b''`, and the reason on the server's stderr (`no PROXY
//! protocol header from a trusted proxy`): the specification forbids guessing. Behind HAProxy:
//! `server s1 127.0.0.1:9990 send-proxy-v2 check check-send-proxy` with `option tcp-check`
//! and `tcp-check expect rstring ^[0-9]` in the backend (`cargo xtask integration` runs two
//! of these behind HAProxy). The options:
//!
//! - `--addr` (default `127.0.0.1:9990`; port 0 picks a free one): the first line on stdout is
//!   `listening on ADDR`.
//! - `--trusted` (default `127.0.0.1`): the proxies' addresses or networks, comma-separated
//!   (`127.0.0.1,10.0.0.0/8`); a connection from anyone else is refused.
//! - `--mode` (default `threading`): a pool of threads, one request at a time, or a child
//!   process per request.
//! - `--drain SECS` (default 0): on SIGTERM or SIGINT, first fail the proxy's health checks
//!   (HAProxy's `check-send-proxy` sends them as v2 `LOCAL` connections: they are closed
//!   unanswered) for SECS while serving on, so that the proxy takes this backend out before
//!   it stops; then stop gracefully. With HAProxy checking with `option tcp-check` and
//!   `tcp-check expect rstring ^[0-9]`, a drain longer than `inter` times `fall` lets clients see
//!   no error at all.
//!
//! A health check (v2 `LOCAL`) is answered with the proxy's own address.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use sockserve::reactor::{Interest, Reactor, Signal, Signals};
use sockserve::{Forking, ProxyProtocol, Strategy, Synchronous, TcpServer, Threading};
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: proxy_whoami [--addr ADDR] [--trusted CIDR,...] \
                     [--mode sync|threading|forking] [--drain SECS]";
/// How long the requests in flight may take to finish once the stop begins.
const GRACE: Duration = Duration::from_secs(3);

struct Config {
    addr: String,
    trusted: Vec<String>,
    mode: String,
    drain: Duration,
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("proxy_whoami: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match config.mode.as_str() {
        "sync" => run(&config, Synchronous),
        "forking" => run(&config, Forking::new()),
        _ => run(&config, Threading::new()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy_whoami: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config {
        addr: "127.0.0.1:9990".to_owned(),
        trusted: vec!["127.0.0.1".to_owned()],
        mode: "threading".to_owned(),
        drain: Duration::ZERO,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => config.addr = value,
            "--trusted" => config.trusted = value.split(',').map(str::to_owned).collect(),
            "--mode" if matches!(value.as_str(), "sync" | "threading" | "forking") => {
                config.mode = value;
            }
            "--drain" => {
                let secs: f64 = value.parse().map_err(|e| format!("--drain {value}: {e}"))?;
                config.drain = Duration::try_from_secs_f64(secs)
                    .map_err(|e| format!("--drain {value}: {e}"))?;
            }
            _ => return Err(format!("unknown option {flag} {value}")),
        }
    }
    Ok(config)
}

fn run<C: Strategy>(config: &Config, strategy: C) -> io::Result<()> {
    // Before the announcement: whoever reads it may send SIGTERM at once.
    let signals = Signals::new(&[Signal::SIGTERM, Signal::SIGINT])?;
    let draining = Arc::new(AtomicBool::new(false));
    let drain = Arc::clone(&draining);
    let server = TcpServer::builder(move |req| {
        let proxy = req.connection.getpeername()?;
        if req.client_address == proxy && drain.load(Ordering::SeqCst) {
            // A health check while draining: unanswered, it fails.
            return Ok(());
        }
        // One write: a health check that has its answer closes at once (HAProxy resets its
        // checks' connections), and a second write would fail.
        req.wfile
            .write_all(format!("{}\n", req.client_address).as_bytes())?;
        Ok(())
    })
    .strategy(strategy)
    .allow_reuse_address(true)
    .proxy_protocol(ProxyProtocol::trusted(&config.trusted)?)
    .bind(config.addr.as_str())?
    .spawn()?;
    println!("listening on {}", server.server_address());
    io::stdout().flush()?;

    let mut reactor = Reactor::new()?;
    reactor.register(&signals, 0, Interest::READABLE)?;
    let first = wait_for_signal(&mut reactor, &signals, None)?
        .map_or("a signal".to_owned(), |s| s.to_string());
    let began = Instant::now();
    if !config.drain.is_zero() {
        draining.store(true, Ordering::SeqCst);
        eprintln!("proxy_whoami: {first}: draining for {:?}", config.drain);
        // A second signal cuts the drain short.
        wait_for_signal(&mut reactor, &signals, Some(began + config.drain))?;
    }
    let (mut server, stop) = server.shutdown_gracefully(GRACE)?;
    server.server_close();
    eprintln!(
        "proxy_whoami: stopped {:.2} s after {first}: {} request(s) still running",
        began.elapsed().as_secs_f64(),
        stop.still_running
    );
    Ok(())
}

/// Waits for SIGTERM or SIGINT, until `until` if given; the signal, or `None` at `until`.
fn wait_for_signal(
    reactor: &mut Reactor,
    signals: &Signals,
    until: Option<Instant>,
) -> io::Result<Option<Signal>> {
    loop {
        if let Some(signal) = signals.pending()?.into_iter().next() {
            return Ok(Some(signal));
        }
        let timeout = until.map(|at| at.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            return Ok(None);
        }
        reactor.select(timeout)?;
    }
}
