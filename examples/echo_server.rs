//! An echo server for every family sockserve serves, stopped gracefully by SIGTERM or SIGINT:
//! stream families send every byte back as it arrives, datagram families answer each datagram
//! with the same bytes. It shows every family and strategy behind one handler, deadlines set
//! for a server facing the network, waiting connections (`--park`) and a graceful stop; it is
//! what `cargo xtask integration` and `cargo xtask bench` run.
//!
//! ```text
//! echo_server [--family tcp|tcp6|udp|unix|unix-datagram] [--mode sync|threading|forking] [--addr ADDR]
//!             [--park] [--max-threads N]
//! ```
//!
//! - `--family` (default `tcp`): `tcp` is TCP over IPv4, `tcp6` TCP over IPv6, `udp` UDP over
//!   IPv4 or IPv6 (the address decides), `unix` and `unix-datagram` Unix stream and datagram
//!   sockets.
//! - `--addr`: `HOST:PORT` for `tcp`, `tcp6` and `udp` (port 0 picks a free port; a host name is
//!   resolved), a filesystem path for the Unix families (`@name` for a Linux abstract name).
//!   Defaults: `127.0.0.1:9999` (tcp, udp), `[::1]:9999` (tcp6), `/tmp/sockserve-echo.sock`
//!   (unix), `/tmp/sockserve-echo-datagram.sock` (unix-datagram). A stale socket file left by
//!   a dead server is replaced; a live server's is not.
//! - `--mode` (default `threading`): `threading` serves on a bounded pool of reused threads
//!   (Python's `ThreadingTCPServer`), `sync` one request at a time (the plain `TCPServer`),
//!   `forking` in a child process per request (`ForkingTCPServer`).
//! - `--park` (stream families): the echo ends its turn after each chunk
//!   (`Next::WaitForInput`), and a new connection waits for its first bytes
//!   (`StreamOptions::wait_for_first_input`), so an idle connection waits in the server's
//!   reactor instead of holding a thread (or, forking, its child waits on its own socket).
//! - `--max-threads N` (threading): the pool's bound (default: the pool's own).
//!
//! Once it is ready, the first line on stdout is `listening on ADDR`, with the real address
//! (`127.0.0.1:40211`, `[::1]:40211`, or the path). Datagrams are received whole up to 65,535
//! bytes over UDP (more than the 65,507 an IPv4 datagram carries) and 212,992 bytes over Unix
//! datagram sockets (Linux's default `net.core.wmem_max`: with default buffers a client cannot
//! send a larger one). SIGTERM or SIGINT (Ctrl-C) stop it gracefully: it stops accepting, lets
//! the request in flight finish for up to 2 s, then closes the connections that remain (an
//! idle client does not keep it alive), removes its Unix socket file, prints one line on stderr
//! saying how it stopped, and exits with status 0. Whatever a handler does, it exits within the
//! grace plus 3 s (`sockserve::server::STOP_BOUND`): what still runs then is ended (forking:
//! its children get SIGTERM, then SIGKILL) or left behind to end with the process, and the
//! line says so. A second SIGTERM or SIGINT during the stop forces it: connections are shut
//! down and children killed at once, the socket file is still removed, and the exit status is
//! 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), as a shell reports a process
//! the signal killed. Bad arguments exit with status 2 and the usage on stderr; a failure to
//! serve with status 1.
//!
//! Run it, then try it from another terminal:
//!
//! ```text
//! cargo run --example echo_server
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9999)); s.sendall(b'hi'); print(s.recv(100))"
//!
//! cargo run --example echo_server -- --park --max-threads 16
//! nc 127.0.0.1 9999      # type lines: each comes back; an idle nc holds no thread
//!
//! cargo run --example echo_server -- --family tcp6
//! python3 -c "import socket; s=socket.create_connection(('::1',9999)); s.sendall(b'hi'); print(s.recv(100))"
//!
//! cargo run --example echo_server -- --family udp
//! python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'hi', ('127.0.0.1',9999)); print(s.recv(65535))"
//!
//! cargo run --example echo_server -- --family unix
//! python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/tmp/sockserve-echo.sock'); s.sendall(b'hi'); print(s.recv(100))"
//!
//! cargo run --example echo_server -- --family unix-datagram
//! python3 -c "import socket,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); p='/tmp/echo-client-%d.sock' % os.getpid(); s.bind(p); s.sendto(b'hi', '/tmp/sockserve-echo-datagram.sock'); print(s.recv(65535)); os.unlink(p)"
//! ```
//!
//! (A Unix datagram client must bind an address of its own, as above: an unbound one cannot be
//! answered.) Stop the server with Ctrl-C, or `kill -TERM <pid>`.
//!
//! A stream connection has deadlines, as a server facing the network should (sockserve's
//! defaults, like Python's, have none): it is closed when its client sends nothing for 60 s
//! (`StreamOptions::idle_timeout`), takes none of the echo for 30 s (`write_timeout`: a
//! client that never reads), or after 10 minutes in all (`turn_timeout`: a client that
//! dribbles a byte at a time). Such a client is reported by the default `handle_error`, at
//! most one line a second with the rest counted; every other failure gets a line of its own.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sockserve::prelude::*;
use sockserve::{
    Address, BoxError, DatagramRequest, DefaultHooks, Family, Forking, HandlerError, Kind, Next,
    Server, ServerContext, StopSignals, StreamOptions, StreamRequest, Synchronous, TcpServer,
    Threading, UdpServer, UnixDatagramServer, UnixStreamServer,
};

const USAGE: &str = "usage: echo_server [--family tcp|tcp6|udp|unix|unix-datagram] \
                     [--mode sync|threading|forking] [--addr ADDR] [--park] [--max-threads N]";
/// How long requests in flight may go on after SIGTERM or SIGINT.
const GRACE: Duration = Duration::from_secs(2);
/// The largest UDP datagram: 65,507 bytes of payload over IPv4, 65,527 over IPv6.
const UDP_MAX_PACKET: usize = 65_535;
/// Linux's default `net.core.wmem_max`: with default buffers, no Unix datagram is larger.
const UNIX_MAX_PACKET: usize = 212_992;
/// How much one read of a connection takes at most.
const READ_CHUNK: usize = 65_536;
/// How long a stream client may send nothing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stream client may take none of its echo.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stream connection may last in all.
const TURN_TIMEOUT: Duration = Duration::from_secs(600);

/// `--family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoFamily {
    Tcp,
    Tcp6,
    Udp,
    Unix,
    UnixDatagram,
}

impl EchoFamily {
    fn default_addr(self) -> &'static str {
        match self {
            EchoFamily::Tcp | EchoFamily::Udp => "127.0.0.1:9999",
            EchoFamily::Tcp6 => "[::1]:9999",
            EchoFamily::Unix => "/tmp/sockserve-echo.sock",
            EchoFamily::UnixDatagram => "/tmp/sockserve-echo-datagram.sock",
        }
    }
}

/// The command line, parsed.
#[derive(Debug)]
struct Config {
    family: EchoFamily,
    mode: String,
    addr: Option<String>,
    park: bool,
    max_threads: Option<usize>,
}

/// Why the program stops before serving.
enum Exit {
    /// Asked for `--help`.
    Help,
    /// Bad arguments: the problem, shown above the usage.
    Usage(String),
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(Exit::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Usage(problem)) => {
            eprintln!("echo_server: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let address = match address_of(config.family, config.addr.as_deref()) {
        Ok(address) => address,
        Err(problem) => {
            eprintln!("echo_server: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Every connection is a descriptor: many systems start a program with a soft limit of
    // 1,024, far below the hard one. Hold as many as the hard limit allows (Go does this for
    // every program), so that `max_connections`, which follows the soft limit, is as high.
    if let Err(e) = sockserve::socket::raise_fd_limit() {
        eprintln!("echo_server: cannot raise the open-file limit: {e}");
    }
    let result = match config.mode.as_str() {
        "threading" => {
            let pool = Threading::new();
            let pool = match config.max_threads {
                Some(n) => pool.max_threads(n),
                None => pool,
            };
            run(config.family, address, config.park, pool)
        }
        "forking" => run(config.family, address, config.park, Forking::new()),
        _ => run(config.family, address, config.park, Synchronous),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, Exit> {
    let mut config = Config {
        family: EchoFamily::Tcp,
        mode: "threading".to_owned(),
        addr: None,
        park: false,
        max_threads: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Exit::Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--family" => {
                config.family = match value("--family")?.as_str() {
                    "tcp" => EchoFamily::Tcp,
                    "tcp6" => EchoFamily::Tcp6,
                    "udp" => EchoFamily::Udp,
                    "unix" => EchoFamily::Unix,
                    "unix-datagram" => EchoFamily::UnixDatagram,
                    other => return Err(Exit::Usage(format!("unknown family {other:?}"))),
                }
            }
            "--mode" => {
                config.mode = value("--mode")?;
                if !matches!(config.mode.as_str(), "sync" | "threading" | "forking") {
                    return Err(Exit::Usage(format!("unknown mode {:?}", config.mode)));
                }
            }
            "--addr" => config.addr = Some(value("--addr")?),
            "--park" => config.park = true,
            "--max-threads" => {
                let n = value("--max-threads")?;
                config.max_threads = match n.parse() {
                    Ok(n) if n > 0 => Some(n),
                    _ => return Err(Exit::Usage(format!("--max-threads {n}: not a count"))),
                };
            }
            "-h" | "--help" => return Err(Exit::Help),
            other => return Err(Exit::Usage(format!("unexpected argument {other:?}"))),
        }
    }
    Ok(config)
}

/// The address to bind: `addr` (or the family's default), checked against the family.
fn address_of(family: EchoFamily, addr: Option<&str>) -> Result<Address, String> {
    let addr = addr.unwrap_or(family.default_addr());
    match family {
        EchoFamily::Unix | EchoFamily::UnixDatagram => match addr.parse::<Address>() {
            Ok(address) if address.family() == Family::Unix => Ok(address),
            Ok(_) => Err(format!(
                "--addr {addr}: the Unix families take a filesystem path"
            )),
            // Not one of the forms `Address` parses (`/abs`, `./rel`, `@name`, `IP:PORT`):
            // a relative path such as `echo.sock`.
            Err(_) => Ok(Address::Unix(PathBuf::from(addr))),
        },
        EchoFamily::Tcp | EchoFamily::Tcp6 | EchoFamily::Udp => {
            let (wanted, name) = match family {
                EchoFamily::Tcp => (Some(Family::Inet), "an IPv4"),
                EchoFamily::Tcp6 => (Some(Family::Inet6), "an IPv6"),
                _ => (None, "an IP"),
            };
            let resolved = addr
                .to_addrs()
                .map_err(|e| format!("--addr {addr}: {e} (expected HOST:PORT)"))?;
            resolved
                .into_iter()
                .find(|a| match wanted {
                    Some(f) => a.family() == f,
                    None => matches!(a.family(), Family::Inet | Family::Inet6),
                })
                .ok_or_else(|| {
                    let hint = match family {
                        EchoFamily::Tcp => " (use --family tcp6 for IPv6)",
                        EchoFamily::Tcp6 => " (use --family tcp for IPv4)",
                        _ => "",
                    };
                    format!("--addr {addr} is not {name} address{hint}")
                })
        }
    }
}

fn run<C: Strategy>(
    family: EchoFamily,
    address: Address,
    park: bool,
    strategy: C,
) -> io::Result<ExitCode> {
    match family {
        EchoFamily::Tcp | EchoFamily::Tcp6 => serve(
            TcpServer::builder_handler(StreamEcho { park })
                .allow_reuse_address(true)
                .handle_error(report_failure)
                .strategy(strategy)
                .bind(address)
                .map_err(with_context)?,
        ),
        EchoFamily::Udp => serve(
            UdpServer::builder(datagram_echo)
                .max_packet_size(UDP_MAX_PACKET)
                .handle_error(report_failure)
                .strategy(strategy)
                .bind(address)
                .map_err(with_context)?,
        ),
        EchoFamily::Unix => serve(
            UnixStreamServer::builder_handler(StreamEcho { park })
                .handle_error(report_failure)
                .strategy(strategy)
                .bind(address)
                .map_err(with_context)?,
        ),
        EchoFamily::UnixDatagram => serve(
            UnixDatagramServer::builder(datagram_echo)
                .max_packet_size(UNIX_MAX_PACKET)
                .handle_error(report_failure)
                .strategy(strategy)
                .bind(address)
                .map_err(with_context)?,
        ),
    }
}

/// A server error as an `io::Error` that keeps its message (the address it could not bind).
fn with_context(e: sockserve::Error) -> io::Error {
    let text = e.to_string();
    io::Error::new(io::Error::from(e).kind(), text)
}

/// Announces the address, serves until SIGTERM or SIGINT, and says how it stopped: the exit
/// status (0, or 128 + the signal number for a forced stop).
fn serve<K: Kind, C: Strategy>(server: Server<K, C>) -> io::Result<ExitCode> {
    // The handlers first: whoever reads the announcement may send SIGTERM at once, and must
    // get a graceful stop, not the default action.
    let signals = StopSignals::install()?;
    println!("listening on {}", server.server_address());
    io::stdout().flush()?;
    let stop = signals.serve_until_signal(server, GRACE)?;
    // One line: how long, what was shut down at the deadline, what was ended or left behind.
    eprintln!("echo_server: {stop}");
    Ok(match stop.forced_by {
        // As a shell reports a process the signal killed: 130 for SIGINT, 143 for SIGTERM.
        Some(second) => ExitCode::from(128 + second as u8),
        None => ExitCode::SUCCESS,
    })
}

/// The stream echo: whatever arrives is written back at once, until the client closes its
/// side (a client that only shut down its writing side still gets everything back).
#[derive(Debug, Clone, Copy)]
struct StreamEcho {
    /// `--park`: end the turn after each chunk, to wait in the reactor for the next.
    park: bool,
}

impl Handler<StreamRequest> for StreamEcho {
    fn options(&self) -> StreamOptions {
        // Each chunk is written as it arrives; Nagle's algorithm would hold back a chunk's
        // small tail until the previous segment is acknowledged (a 40 ms stall against a
        // client that delays its ACKs).
        StreamOptions::default()
            .rbufsize(READ_CHUNK)
            .disable_nagle_algorithm(true)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .write_timeout(Some(WRITE_TIMEOUT))
            .turn_timeout(Some(TURN_TIMEOUT))
            // The client speaks first: with --park a silent new connection waits in the
            // reactor too, holding no thread (and, forking, no process) until it sends.
            .wait_for_first_input(self.park)
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        loop {
            // One read of whatever is available (up to READ_CHUNK), without waiting for more.
            let data = req.rfile.fill_buf()?;
            if data.is_empty() {
                return Ok(Next::Done); // end of file: the client is done sending
            }
            req.wfile.write_all(data)?; // unbuffered: sent before it returns
            let n = data.len();
            req.rfile.consume(n);
            if self.park {
                return Ok(Next::WaitForInput);
            }
        }
    }
}

/// The datagram echo: the reply is the datagram itself.
fn datagram_echo(req: &mut DatagramRequest) -> Result<(), BoxError> {
    req.wfile.extend_from_slice(&req.packet);
    Ok(())
}

/// The `handle_error` hook: every failed request, one line on stderr in the program's own words
/// (the default writes Python's line, at most 10 a second). A client cut off by a deadline is
/// no failure of the server, and there may be hundreds: the default reports those, at most one
/// line a second with the rest counted.
fn report_failure(server: &ServerContext, client_address: &Address, error: &HandlerError) {
    if error.is_timed_out() {
        DefaultHooks.handle_error(server, client_address, error);
    } else {
        eprintln!("echo_server: {client_address}: {error}");
    }
}
