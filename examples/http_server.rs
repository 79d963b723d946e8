//! A static file server: Python's `python3 -m http.server`, on sockserve's waiting connections.
//! It serves the files under a directory over HTTP/1.0 and 1.1 (`GET` and `HEAD`):
//! persistent connections that wait in the server's reactor between requests, holding no
//! thread (closed after `--timeout` idle), pipelined requests answered in order,
//! `Content-Type` from the extension, `Last-Modified` and `If-Modified-Since` (304), a
//! directory's `index.html` or its listing, and files streamed in 64 KiB pieces (a 1 GiB file
//! costs no more memory than a small one).
//!
//! Where CPython's `http.server` trusts its client, this one does not: no request target
//! reaches outside the root (`..`, `%2e%2e`, `%2f`, backslashes, NUL bytes, symlinks that
//! lead out: 404 or 403); every bad request gets a status line (400, 413, 414, 431, 501, 505);
//! a client that stops in the middle of a request is dropped at its deadline, and holds no
//! thread while it is silent. `--mode threading` (the default: `python3 -m http.server` runs a
//! `ThreadingHTTPServer`) serves requests on a pool of threads; `--mode sync` (Python's
//! `HTTPServer`) one request at a time, however many connections wait (a long download holds
//! up the others).
//!
//! ```text
//! cargo run --example http_server -- --directory . --addr 127.0.0.1:8000
//! curl -v http://127.0.0.1:8000/README.md
//! curl -I http://127.0.0.1:8000/examples
//! python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/').read().decode())"
//! ```
//!
//! Options: `--directory DIR` (Python's name; default the current directory), `--addr ADDR`
//! (default `127.0.0.1:8000`; Python's binds every interface), `--mode threading|sync`,
//! `--timeout SECS` (default 30: how long an idle connection is kept, and how long a request
//! may take to arrive). It prints `listening on ADDR` first; SIGTERM or SIGINT stops it
//! gracefully (exit status 0), a second one at once (128 + the signal's number). Bad
//! arguments exit with status 2, a failure to serve with 1.

// An example program talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

mod http;

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use sockserve::prelude::*;
use sockserve::socket::Shutdown;
use sockserve::{
    Address, BoxError, DefaultHooks, HandlerError, Next, Overload, ServerContext, StopSignals,
    StreamOptions, StreamRequest, Synchronous, TcpServer, Threading,
};

use http::date::{http_date, parse_http_date};
use http::files::{self, Refused, Resolved};
use http::request::{self, Fed, HeadReader, Limits, Method, RequestHead};
use http::response::{ResponseHead, Status, error_response};

const USAGE: &str = "usage: http_server [--directory DIR] [--addr ADDR] [--mode threading|sync] \
                     [--timeout SECS]";
/// How long requests in flight may go on after SIGTERM or SIGINT.
const GRACE: Duration = Duration::from_secs(2);
/// How long a client may take none of a response (one that never reads).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body read (and thrown away) to keep a connection; a larger one is
/// answered 413 and the connection closed.
const MAX_BODY: u64 = 1 << 20;
/// How much of a file is read and sent at a time.
const CHUNK: usize = 64 * 1024;
/// How long a connection refused with an error is read (and what it sends dropped) before it
/// is closed.
const LINGER: Duration = Duration::from_secs(2);
/// The answer to a connection past `max_connections` (from the open-file limit).
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
                            Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The command line, parsed.
#[derive(Debug)]
struct Config {
    directory: PathBuf,
    addr: String,
    threading: bool,
    timeout: Duration,
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Some(problem)) => {
            eprintln!("http_server: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The root as a real path: every file served must be under it once its symlinks are
    // resolved.
    let root = match config.directory.canonicalize() {
        Ok(root) if root.is_dir() => root,
        Ok(_) => {
            eprintln!(
                "http_server: {}: not a directory",
                config.directory.display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("http_server: {}: {e}", config.directory.display());
            return ExitCode::from(2);
        }
    };
    // A descriptor per connection: hold as many as the hard limit allows.
    if let Err(e) = sockserve::socket::raise_fd_limit() {
        eprintln!("http_server: cannot raise the open-file limit: {e}");
    }
    let site = Arc::new(Site {
        root,
        timeout: config.timeout,
        limits: Limits::default(),
        reported: Mutex::default(),
    });
    let served = if config.threading {
        serve(&config.addr, site, Threading::new())
    } else {
        serve(&config.addr, site, Synchronous)
    };
    match served {
        Ok(status) => status,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The arguments, or `Err(None)` for `--help`, `Err(Some(problem))` for bad ones.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, Option<String>> {
    let mut config = Config {
        directory: PathBuf::from("."),
        addr: "127.0.0.1:8000".to_owned(),
        threading: true,
        timeout: Duration::from_secs(30),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Some(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--directory" | "-d" => config.directory = PathBuf::from(value()?),
            "--addr" => config.addr = value()?,
            "--mode" => {
                config.threading = match value()?.as_str() {
                    "sync" => false,
                    "threading" => true,
                    other => return Err(Some(format!("unknown mode {other:?}"))),
                }
            }
            "--timeout" => {
                let secs = value()?;
                config.timeout = match secs.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
                    _ => return Err(Some(format!("--timeout {secs}: not a number of seconds"))),
                };
            }
            "-h" | "--help" => return Err(None),
            other => return Err(Some(format!("unexpected argument {other:?}"))),
        }
    }
    Ok(config)
}

/// Binds, announces the address, serves until SIGTERM or SIGINT; the exit status.
fn serve<C: Strategy>(addr: &str, site: Arc<Site>, strategy: C) -> io::Result<ExitCode> {
    let root = site.root.clone();
    let server = TcpServer::builder_handler(HttpConnection::new(site))
        .allow_reuse_address(true)
        .handle_error(report_failure)
        .overload(Overload::reply(|rejected| rejected.send(OVERLOADED)))
        .strategy(strategy)
        .bind(addr)
        .map_err(|e| {
            // The message names the address; the kind is the error's own.
            let text = e.to_string();
            io::Error::new(io::Error::from(e).kind(), text)
        })?;
    // The handlers first: whoever reads the announcement may send SIGTERM at once.
    let signals = StopSignals::install()?;
    println!("listening on {}", server.server_address());
    io::stdout().flush()?;
    eprintln!("http_server: serving {}", root.display());
    let stop = signals.serve_until_signal(server, GRACE)?;
    eprintln!("http_server: {stop}");
    Ok(match stop.forced_by {
        Some(second) => ExitCode::from(128 + second as u8),
        None => ExitCode::SUCCESS,
    })
}

/// What every connection shares: the root and the limits.
#[derive(Debug)]
struct Site {
    /// The directory served, a real path.
    root: PathBuf,
    /// `--timeout`.
    timeout: Duration,
    limits: Limits,
    /// When [`Site::report`] last wrote a line, and how many it has not written since.
    reported: Mutex<(Option<Instant>, u64)>,
}

impl Site {
    /// Reports a client's request that was refused or cut short (`what`), at most one line a
    /// second, counting the others, so that a flood of bad clients cannot flood stderr.
    fn report(&self, client: &Address, what: &str) {
        // Poisoned only by a panic under the lock, and nothing here panics.
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let (last, unreported) = &mut *reported;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *unreported += 1;
            return;
        }
        let others = match std::mem::take(unreported) {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        };
        *last = Some(Instant::now());
        eprintln!("http_server: {client}: {what}{others}");
    }
}

/// One connection, across its requests: the handler's state between turns. A turn reads what
/// the connection has without waiting for more; when a request is not whole yet, the turn ends
/// (`Next::WaitForInput`) and the connection waits in the reactor, holding no thread, until
/// more comes.
#[derive(Debug, Clone)]
struct HttpConnection {
    site: Arc<Site>,
    /// The head of the next request, as far as it has come.
    head: HeadReader,
    /// A request whose body is still being read (and thrown away).
    request: Option<RequestHead>,
    /// How much of its body is still to come.
    body_left: u64,
    /// When the request in progress began to arrive: it must be whole `--timeout` later.
    started: Option<Instant>,
    /// When an error was answered and the writing side shut down: what the client still sends
    /// is read and dropped until it closes, for at most [`LINGER`]. Closing a socket with
    /// unread input sends a reset, which can destroy the answer before the client reads it.
    closing: Option<Instant>,
}

/// What a turn found on the connection.
enum Step {
    /// A whole request, its body read: answer it.
    Serve(RequestHead),
    /// Nothing more for now: wait for the client.
    Wait,
    /// The client closed its side.
    Closed,
    /// Answer this error and close the connection.
    Refuse(Status, String),
}

impl HttpConnection {
    fn new(site: Arc<Site>) -> Self {
        HttpConnection {
            head: HeadReader::new(site.limits),
            site,
            request: None,
            body_left: 0,
            started: None,
            closing: None,
        }
    }

    /// Reads what the connection has towards the next request, without waiting.
    fn next_request(&mut self, req: &mut StreamRequest) -> io::Result<Step> {
        while self.request.is_none() {
            let Some(input) = available(req)? else {
                return Ok(self.wait_or_expire());
            };
            if input.is_empty() {
                return Ok(Step::Closed);
            }
            self.started.get_or_insert_with(Instant::now);
            let (used, fed) = self.head.feed(input);
            req.rfile.consume(used);
            match fed {
                Ok(Fed::NeedMore) => {}
                Ok(Fed::Complete) => {
                    let request = match request::parse(&self.head.take(), self.site.limits) {
                        Ok(request) => request,
                        Err(reject) => return Ok(self.refuse(&reject)),
                    };
                    if request.content_length > MAX_BODY {
                        let why =
                            format!("a request body may be {MAX_BODY} bytes at most (MAX_BODY)");
                        return Ok(Step::Refuse(Status::CONTENT_TOO_LARGE, why));
                    }
                    if request.expect_continue && request.content_length > 0 {
                        // The client waits for this before it sends its body.
                        req.wfile.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    }
                    self.body_left = request.content_length;
                    self.request = Some(request);
                }
                Err(reject) => return Ok(self.refuse(&reject)),
            }
        }
        // Its body: thrown away, so that the next request is read from where it starts.
        while self.body_left > 0 {
            let Some(input) = available(req)? else {
                return Ok(self.wait_or_expire());
            };
            if input.is_empty() {
                return Ok(Step::Closed);
            }
            let n = input
                .len()
                .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
            req.rfile.consume(n);
            self.body_left -= n as u64;
        }
        self.started = None;
        Ok(self.request.take().map_or(Step::Closed, Step::Serve))
    }

    /// The step that refuses a request for `reject`.
    fn refuse(&self, reject: &request::Reject) -> Step {
        Step::Refuse(reject.status(), reject.message(&self.site.limits))
    }

    /// Wait for more, unless the request in progress is past its deadline (a client that
    /// dribbles a byte at a time, each within the idle timeout).
    fn wait_or_expire(&self) -> Step {
        match self.started {
            Some(started) if started.elapsed() >= self.site.timeout => Step::Refuse(
                Status::REQUEST_TIMEOUT,
                format!("a request must come whole within {:?}", self.site.timeout),
            ),
            _ => Step::Wait,
        }
    }

    /// Answers `request`; whether the connection stays open for the next.
    fn serve(&self, req: &mut StreamRequest, request: &RequestHead) -> io::Result<bool> {
        let root = &self.site.root;
        let page = match files::resolve(root, &request.target) {
            Ok(Resolved::File(path)) => return send_file(req, request, &path),
            Ok(Resolved::Directory(dir)) => match files::index_file(root, &dir) {
                Ok(Some(index)) => return send_file(req, request, &index),
                Ok(None) => send_listing(request, &dir),
                Err(refused) => refusal(request, refused),
            },
            Ok(Resolved::AddSlash(location)) => ResponseHead::new(Status::MOVED_PERMANENTLY)
                .header("Location", location)
                .header("Content-Length", 0)
                .finish(request.keep_alive, request.minor_version == 0),
            Err(refused) => refusal(request, refused),
        };
        req.wfile.write_all(&page)?;
        Ok(request.keep_alive)
    }
}

impl Handler<StreamRequest> for HttpConnection {
    fn options(&self) -> StreamOptions {
        // Reads never wait here (see `available`): the idle timeout bounds the waits between
        // turns, in the reactor.
        StreamOptions::default()
            .idle_timeout(Some(self.site.timeout))
            .write_timeout(Some(WRITE_TIMEOUT))
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        if let Some(since) = self.closing {
            return Ok(linger(req, since)?);
        }
        let keep_open = match self.next_request(req)? {
            Step::Serve(request) => self.serve(req, &request)?,
            Step::Wait => true,
            Step::Closed => false,
            Step::Refuse(status, message) => {
                // A request cut off at its deadline is reported by `finish`, as dropped.
                if status != Status::REQUEST_TIMEOUT {
                    let what = format!("{} {}: {message}", status.0, status.1);
                    self.site.report(&req.client_address, &what);
                    self.started = None;
                }
                req.wfile
                    .write_all(&error_response(status, &message, false, false, false))?;
                req.connection.shutdown(Shutdown::Write)?;
                self.closing = Some(Instant::now());
                return Ok(linger(req, Instant::now())?);
            }
        };
        Ok(if keep_open {
            Next::WaitForInput
        } else {
            Next::Done
        })
    }

    fn finish(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        if self.started.is_some() {
            let what = format!(
                "dropped in the middle of a request, {} bytes of its head read (a request must \
                 come whole within --timeout {:?})",
                self.head.len(),
                self.site.timeout
            );
            self.site.report(&req.client_address, &what);
        }
        Ok(())
    }
}

/// What the connection has now, without waiting: `None` when nothing has come yet (the turn
/// ends, and the connection waits in the reactor), an empty slice at its end.
fn available(req: &mut StreamRequest) -> io::Result<Option<&[u8]>> {
    if req.rfile.buffer().is_empty() {
        match req.connection.peek_nowait(&mut [0; 1]) {
            Ok(_) => {} // bytes, or the end: `fill_buf` returns at once
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    req.rfile.fill_buf().map(Some)
}

/// A turn of a connection whose error was answered (at `since`): drops what the client sends
/// until it closes or [`LINGER`] has passed.
fn linger(req: &mut StreamRequest, since: Instant) -> io::Result<Next> {
    loop {
        if since.elapsed() >= LINGER {
            return Ok(Next::Done);
        }
        match available(req)? {
            None => return Ok(Next::WaitForInput),
            Some([]) => return Ok(Next::Done),
            Some(input) => {
                let n = input.len();
                req.rfile.consume(n);
            }
        }
    }
}

/// The error page for a target that leads to no file.
fn refusal(request: &RequestHead, refused: Refused) -> Vec<u8> {
    let (status, message) = match refused {
        Refused::BadRequest => (Status::BAD_REQUEST, "Bad request target"),
        Refused::NotFound => (Status::NOT_FOUND, "File not found"),
        Refused::Forbidden => (Status::FORBIDDEN, "Forbidden"),
    };
    error_response(
        status,
        message,
        request.keep_alive,
        request.minor_version == 0,
        request.method == Method::Head,
    )
}

/// The listing of `dir`, as a whole response.
fn send_listing(request: &RequestHead, dir: &Path) -> Vec<u8> {
    let path = request.target.split(['?', '#']).next().unwrap_or_default();
    let shown = files::percent_decode(path).unwrap_or_default();
    let Ok(page) = files::listing(dir, &String::from_utf8_lossy(&shown)) else {
        return refusal(request, Refused::Forbidden);
    };
    let mut response = ResponseHead::new(Status::OK)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Length", page.len())
        .finish(request.keep_alive, request.minor_version == 0);
    if request.method == Method::Get {
        response.extend_from_slice(page.as_bytes());
    }
    response
}

/// Sends the file at `path`: a 304 when the client's copy is as new, else the file in
/// [`CHUNK`]s, the first one in the same write as the head. Whether the connection stays open.
fn send_file(req: &mut StreamRequest, request: &RequestHead, path: &Path) -> io::Result<bool> {
    let (keep_alive, http10) = (request.keep_alive, request.minor_version == 0);
    let opened = File::open(path).and_then(|file| Ok((file.metadata()?, file)));
    let (metadata, mut file) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let refused = match e.kind() {
                io::ErrorKind::PermissionDenied => Refused::Forbidden,
                _ => Refused::NotFound,
            };
            req.wfile.write_all(&refusal(request, refused))?;
            return Ok(keep_alive);
        }
    };
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let modified_secs = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let since = request
        .if_modified_since
        .as_deref()
        .and_then(parse_http_date);
    if since.is_some_and(|since| modified_secs <= since) {
        let head = ResponseHead::new(Status::NOT_MODIFIED)
            .header("Last-Modified", http_date(modified))
            .finish(keep_alive, http10);
        req.wfile.write_all(&head)?;
        return Ok(keep_alive);
    }
    let size = metadata.len();
    let mut buf = ResponseHead::new(Status::OK)
        .header("Content-Type", files::content_type(path))
        .header("Content-Length", size)
        .header("Last-Modified", http_date(modified))
        .finish(keep_alive, http10);
    if request.method == Method::Head {
        req.wfile.write_all(&buf)?;
        return Ok(keep_alive);
    }
    let changed = |e: io::Error| {
        let why = format!("{}: {e} (it changed while it was sent)", path.display());
        io::Error::new(e.kind(), why)
    };
    // The head and the first piece in one write: a small file is one `send`.
    let head_len = buf.len();
    let mut left = size;
    let first = CHUNK.min(usize::try_from(size).unwrap_or(CHUNK));
    buf.resize(head_len + first, 0);
    file.read_exact(&mut buf[head_len..]).map_err(changed)?;
    req.wfile.write_all(&buf)?;
    left -= first as u64;
    if left > 0 {
        buf.resize(CHUNK, 0);
        while left > 0 {
            let piece = &mut buf[..CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            file.read_exact(piece).map_err(changed)?;
            req.wfile.write_all(piece)?;
            left -= piece.len() as u64;
        }
    }
    Ok(keep_alive)
}

/// The `handle_error` hook. A connection closed after `--timeout` idle (the ordinary end of a
/// keep-alive connection; one that stopped mid-request is reported by `finish`) and a client
/// gone in the middle of a response are no failures of the server; every other error gets
/// the default report.
fn report_failure(server: &ServerContext, client: &Address, error: &HandlerError) {
    // The idle timeout can only end a wait between turns, since no read here waits; the
    // error says which deadline passed only in its message.
    let idle = error.is_timed_out() && error.to_string().contains("StreamOptions::idle_timeout");
    let gone = error.io_error().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        )
    });
    if !idle && !gone {
        DefaultHooks.handle_error(server, client, error);
    }
}

// The connection's turns, driven by hand over a socket pair.
#[cfg(test)]
#[path = "http/connection_tests.rs"]
mod tests;
