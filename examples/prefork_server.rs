//! A TCP echo server of prefork workers, gunicorn's model: a supervisor binds the address once
//! and runs N worker processes that serve it, each echoing every byte back as it arrives, as
//! `echo_server` does. The supervisor serves no request; it replaces a worker that dies and
//! takes gunicorn's signals, so a reload or an upgrade refuses and resets no connection.
//!
//! ```text
//! prefork_server [--workers N] [--addr ADDR] [--mode sync|threading] [--start fork|exec]
//!                [--pid-file PATH] [--grace SECS]
//! ```
//!
//! - `--workers` (default 4): worker processes.
//! - `--addr` (default `127.0.0.1:9999`): `HOST:PORT` to bind (port 0 picks a free port).
//! - `--mode` (default `threading`): each worker is a threading server (a pool of reused
//!   threads) or a synchronous one (one connection at a time per worker).
//! - `--start` (default `fork`): workers are forks of the supervisor, or fresh executions of
//!   this program (`exec`), given the listener as systemd's `LISTEN_FDS`.
//! - `--pid-file PATH`: the serving supervisor's pid, kept true across an upgrade.
//! - `--grace SECS` (default 2): how long a stopping worker lets its requests finish.
//!
//! Once every worker is ready, the first line on stdout is `listening on ADDR` with the real
//! address. Signals to the supervisor (`kill -HUP <pid>`):
//!
//! - SIGTERM: graceful stop; SIGINT (Ctrl-C: the workers are in their own process group, so
//!   only the supervisor gets it) or SIGQUIT: quick stop. One line on stderr says how it
//!   stopped; the exit status is 0.
//! - SIGHUP: every worker is replaced by a fresh one; the old ones stop once the new are
//!   ready. SIGTTIN / SIGTTOU: one worker more / fewer.
//! - SIGUSR2: upgrade: the program on disk is executed as a new supervisor with the same
//!   listening socket; once its workers are ready the old supervisor stops gracefully and
//!   exits. The new one prints `listening on ADDR` again and serves on.
//!
//! Bad arguments exit with status 2 and the usage on stderr; a failure to serve with status 1.
//!
//! ```text
//! cargo run --example prefork_server -- --workers 4
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9999)); s.sendall(b'hi'); print(s.recv(100))"
//! kill -HUP $(pgrep -o prefork_server)   # fresh workers, no connection refused
//! ```

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use sockserve::prefork::{Exit, Prefork, Start, Worker};
use sockserve::{
    BoxError, Handler, Next, ServerOptions, Strategy, StreamOptions, StreamRequest, Synchronous,
    TcpServer, Threading, create_server,
};

const USAGE: &str = "usage: prefork_server [--workers N] [--addr ADDR] [--mode sync|threading] \
                     [--start fork|exec] [--pid-file PATH] [--grace SECS]";
/// How much one read of a connection takes at most.
const READ_CHUNK: usize = 65_536;
/// How long a client may send nothing, or take none of its echo (as `echo_server`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The command line, parsed.
#[derive(Debug)]
struct Config {
    workers: usize,
    addr: String,
    threading: bool,
    start: Start,
    pid_file: Option<String>,
    grace: Duration,
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Some(problem)) => {
            eprintln!("prefork_server: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut prefork = Prefork::new()
        .workers(config.workers)
        .start(config.start)
        .grace(config.grace)
        .on_ready(|address| {
            println!("listening on {address}");
            let _ = io::stdout().flush();
        });
    if let Some(path) = &config.pid_file {
        prefork = prefork.pid_file(path);
    }
    let (addr, threading, grace) = (config.addr.clone(), config.threading, config.grace);
    let result = prefork.run(
        // The supervisor binds, once; workers, reloads and upgrades share this socket.
        || create_server(addr.as_str(), &ServerOptions::default()),
        |worker| match threading {
            true => work(worker, Threading::new(), grace),
            false => work(worker, Synchronous, grace),
        },
    );
    match result {
        Ok(Exit::Supervisor(report)) => {
            eprintln!("prefork_server: {report}");
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One worker: an echo server on the supervisor's listener, served until the supervisor stops
/// this worker.
fn work<C: Strategy>(mut worker: Worker, strategy: C, grace: Duration) -> io::Result<()> {
    let server = TcpServer::builder_handler(StreamEcho)
        .strategy(strategy)
        .from_listener(worker.listener()?)
        .map_err(io::Error::from)?;
    worker.serve(server, grace)?;
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, Option<String>> {
    let mut config = Config {
        workers: 4,
        addr: "127.0.0.1:9999".to_owned(),
        threading: true,
        start: Start::Fork,
        pid_file: None,
        grace: Duration::from_secs(2),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Some(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--workers" => {
                let n = value("--workers")?;
                config.workers = match n.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(Some(format!("--workers {n}: not a count"))),
                };
            }
            "--addr" => config.addr = value("--addr")?,
            "--mode" => {
                config.threading = match value("--mode")?.as_str() {
                    "threading" => true,
                    "sync" => false,
                    other => return Err(Some(format!("unknown mode {other:?}"))),
                }
            }
            "--start" => {
                config.start = match value("--start")?.as_str() {
                    "fork" => Start::Fork,
                    "exec" => Start::Exec,
                    other => return Err(Some(format!("unknown start {other:?}"))),
                }
            }
            "--pid-file" => config.pid_file = Some(value("--pid-file")?),
            "--grace" => {
                let secs = value("--grace")?;
                config.grace = match secs.parse::<f64>() {
                    Ok(s) if (0.0..=3600.0).contains(&s) => Duration::from_secs_f64(s),
                    _ => return Err(Some(format!("--grace {secs}: not a number of seconds"))),
                };
            }
            "-h" | "--help" => return Err(None),
            other => return Err(Some(format!("unexpected argument {other:?}"))),
        }
    }
    Ok(config)
}

/// The stream echo: whatever arrives is written back at once, until the client closes its side.
#[derive(Debug, Clone, Copy)]
struct StreamEcho;

impl Handler<StreamRequest> for StreamEcho {
    fn options(&self) -> StreamOptions {
        StreamOptions::default()
            .rbufsize(READ_CHUNK)
            .disable_nagle_algorithm(true)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .write_timeout(Some(WRITE_TIMEOUT))
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        loop {
            let data = req.rfile.fill_buf()?;
            if data.is_empty() {
                return Ok(Next::Done);
            }
            req.wfile.write_all(data)?;
            let n = data.len();
            req.rfile.consume(n);
        }
    }
}
