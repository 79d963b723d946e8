//! The blocking HTTP peer of `cargo xtask bench`: tiny_http serving the files of a directory.
//!
//! ```text
//! tiny-http-files [--directory DIR] [--addr ADDR] [--nodelay true|false]
//! ```
//!
//! `GET /NAME` answers 200 with the file `DIR/NAME` (streamed from the file, `Content-Length`
//! from its size; keep-alive as tiny_http does it), 404 for anything else; a path with a `..`
//! component, a backslash or a NUL is refused (404): the peer must not serve outside `DIR`. A
//! thread per core takes requests off tiny_http's queue (tiny_http itself reads each connection
//! on a thread of its own). tiny_http leaves Nagle's algorithm on, and writes an answer's head
//! and body apart, so a keep-alive connection waits for the client's delayed ACK (about 40 ms)
//! at every request; `--nodelay true` sets `TCP_NODELAY` on the listening socket, which the
//! connections it accepts inherit (on Linux), to measure tiny_http without that stall. Prints `listening on ADDR` first; SIGTERM's default action ends it.

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiny_http::{Response, Server, StatusCode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("tiny-http-files: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let known = ["--directory", "--addr", "--nodelay"];
    let root = PathBuf::from(sockserve_bench_peers::flag(
        args,
        &known,
        "--directory",
        ".",
    )?);
    let addr = sockserve_bench_peers::flag(args, &known, "--addr", "127.0.0.1:0")?;
    sockserve_bench_peers::raise_fd_limit()?;
    let nodelay = match sockserve_bench_peers::flag(args, &known, "--nodelay", "false")?.as_str() {
        "true" => true,
        "false" => false,
        other => return Err(format!("--nodelay takes true or false, not `{other}`").into()),
    };
    let listener = TcpListener::bind(addr.as_str())?;
    if nodelay {
        set_nodelay(&listener)?;
    }
    let server = Arc::new(Server::from_listener(listener, None)?);
    let local = server
        .server_addr()
        .to_ip()
        .ok_or("tiny_http bound a non-IP address")?;
    sockserve_bench_peers::announce(&local.to_string())?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers: Vec<_> = (0..cores)
        .map(|_| {
            let server = Arc::clone(&server);
            let root = root.clone();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    // A client gone before its answer is no failure of the peer.
                    let _ = match file_of(&root, request.url()).and_then(|p| File::open(p).ok()) {
                        Some(file) => request.respond(Response::from_file(file)),
                        None => request.respond(Response::empty(StatusCode(404))),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

/// The file under `root` that `url` names, if it names one safely (no `..`, `\` or NUL; the
/// query is ignored).
fn file_of(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let relative = path.strip_prefix('/')?;
    if relative.contains(['\\', '\0']) || relative.split('/').any(|part| part == "..") {
        return None;
    }
    let file = root.join(relative);
    file.is_file().then_some(file)
}

/// Sets `TCP_NODELAY` on `listener` (the sockets it accepts inherit it).
fn set_nodelay(listener: &TcpListener) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is the listener's, open for the call; `one` is a valid `c_int`
    // of the length given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
