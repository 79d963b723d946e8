//! An echo server over TLS: every byte a client sends comes back, as `echo_server` does,
//! encrypted. The certificate is self-signed, made at start for `localhost` and `127.0.0.1`
//! (rcgen), and written to `/tmp/sockserve-tls-echo-PORT.pem` for clients to trust; the file
//! is removed at the stop. The handshake runs on the worker (or the forked child), never on the
//! accept loop, within 10 s (`Tls::handshake_timeout`); one that fails (a plaintext client, a
//! client that does not trust the certificate) is reported on stderr, and the server serves on.
//!
//! ```text
//! tls_echo [--addr ADDR] [--mode sync|threading|forking]
//! ```
//!
//! - `--addr` (default `127.0.0.1:9443`): `HOST:PORT`; port 0 picks a free port.
//! - `--mode` (default `threading`): `threading` serves on a pool of reused threads, `sync`
//!   one connection at a time, `forking` in a child process per connection.
//!
//! Once it is ready, the first line on stdout is `listening on ADDR`, with the real address,
//! and the second `certificate PATH`. SIGTERM or SIGINT stop it gracefully (2 s of grace), with
//! status 0. Bad arguments exit with status 2; a failure to serve with status 1.
//!
//! Run it, then try it from another terminal:
//!
//! ```text
//! cargo run --example tls_echo
//! python3 -c "import socket, ssl; c = ssl.create_default_context(cafile='/tmp/sockserve-tls-echo-9443.pem'); s = c.wrap_socket(socket.create_connection(('127.0.0.1', 9443)), server_hostname='localhost'); s.sendall(b'hi'); print(s.recv(100))"
//!
//! openssl s_client -connect 127.0.0.1:9443 -servername localhost -CAfile /tmp/sockserve-tls-echo-9443.pem -quiet
//! ```
//!
//! (`openssl s_client` echoes each line typed; Ctrl-D ends it.) A client that closes without
//! TLS's `close_notify` (CPython's does, unless it calls `unwrap()`) ends its request with a
//! truncated stream, which the default `handle_error` logs at debug level only.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sockserve::prelude::*;
use sockserve::tls::{Tls, TlsBuilderExt, pem};
use sockserve::{
    Address, BoxError, Forking, Kind, Next, Server, StopSignals, StreamOptions, StreamRequest,
    Synchronous, TcpServer, Threading,
};

const USAGE: &str = "usage: tls_echo [--addr ADDR] [--mode sync|threading|forking]";
/// How long requests in flight may go on after SIGTERM or SIGINT.
const GRACE: Duration = Duration::from_secs(2);
/// How long a client may send nothing, once its session is up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take none of its echo.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let (addr, mode) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(problem) => {
            eprintln!("tls_echo: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match mode.as_str() {
        "sync" => run(&addr, Synchronous),
        "forking" => run(&addr, Forking::new()),
        _ => run(&addr, Threading::new()),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            eprintln!("tls_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, String), String> {
    let (mut addr, mut mode) = ("127.0.0.1:9443".to_owned(), "threading".to_owned());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--mode" => {
                mode = value("--mode")?;
                if !matches!(mode.as_str(), "sync" | "threading" | "forking") {
                    return Err(format!("unknown mode {mode:?}"));
                }
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok((addr, mode))
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM: (certificate, key).
fn self_signed() -> Result<(String, String), BoxError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

fn run<C: Strategy>(addr: &str, strategy: C) -> Result<ExitCode, BoxError> {
    let (cert_pem, key_pem) = self_signed()?;
    let config = pem::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?;
    let server = TcpServer::builder_handler(TlsEcho)
        .allow_reuse_address(true)
        .tls(Tls::new(config))
        .strategy(strategy)
        .bind(addr)?;
    let port = match server.server_address() {
        Address::Inet(a) => a.port(),
        Address::Inet6(a) => a.port(),
        _ => 0,
    };
    let cert_file = PathBuf::from(format!("/tmp/sockserve-tls-echo-{port}.pem"));
    std::fs::write(&cert_file, &cert_pem)?;
    let status = serve(server, &cert_file);
    if let Err(e) = std::fs::remove_file(&cert_file) {
        eprintln!("tls_echo: cannot remove {}: {e}", cert_file.display());
    }
    Ok(status?)
}

/// Announces the address and the certificate's file, serves until SIGTERM or SIGINT, and says
/// how it stopped.
fn serve<K: Kind, C: Strategy>(
    server: Server<K, C>,
    cert_file: &std::path::Path,
) -> io::Result<ExitCode> {
    let signals = StopSignals::install()?;
    println!("listening on {}", server.server_address());
    println!("certificate {}", cert_file.display());
    io::stdout().flush()?;
    let stop = signals.serve_until_signal(server, GRACE)?;
    eprintln!("tls_echo: {stop}");
    Ok(match stop.forced_by {
        Some(second) => ExitCode::from(128 + second as u8),
        None => ExitCode::SUCCESS,
    })
}

/// The echo: whatever arrives (decrypted) is written back (encrypted) at once, until the
/// client ends its stream.
#[derive(Debug, Clone, Copy)]
struct TlsEcho;

impl Handler<StreamRequest> for TlsEcho {
    fn options(&self) -> StreamOptions {
        StreamOptions::default()
            .rbufsize(16 * 1024)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .write_timeout(Some(WRITE_TIMEOUT))
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        loop {
            let data = req.rfile.fill_buf()?;
            if data.is_empty() {
                return Ok(Next::Done); // the client's close_notify: a clean end
            }
            req.wfile.write_all(data)?;
            let n = data.len();
            req.rfile.consume(n);
        }
    }
}
