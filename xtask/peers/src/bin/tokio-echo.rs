//! The async peer of `cargo xtask bench`: a tokio echo server as a tokio user writes it.
//!
//! ```text
//! tokio-echo [--family tcp|unix|udp] [--addr ADDR]
//! ```
//!
//! The multi-threaded runtime with a worker thread per core (tokio's default, stated), a task
//! per connection running the loop of tokio's own echo example (`read` into a 1 KiB buffer,
//! `write_all` it back), Nagle off as `echo_server` has it. UDP: one task answering each
//! datagram with itself. Prints `listening on ADDR` first; SIGTERM's default action ends it.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("tokio-echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let known = ["--family", "--addr"];
    let family = sockserve_bench_peers::flag(args, &known, "--family", "tcp")?;
    let addr = sockserve_bench_peers::flag(args, &known, "--addr", "127.0.0.1:0")?;
    sockserve_bench_peers::raise_fd_limit()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        match family.as_str() {
            "tcp" => {
                let listener = TcpListener::bind(&addr).await?;
                sockserve_bench_peers::announce(&listener.local_addr()?.to_string())?;
                loop {
                    // A failed accept (a reset before it was taken, EMFILE) skips that one.
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    stream.set_nodelay(true)?;
                    tokio::spawn(echo(stream));
                }
            }
            "unix" => {
                let listener = UnixListener::bind(&addr)?;
                sockserve_bench_peers::announce(&addr)?;
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(echo(stream));
                }
            }
            "udp" => {
                let socket = UdpSocket::bind(&addr).await?;
                sockserve_bench_peers::announce(&socket.local_addr()?.to_string())?;
                let mut buf = vec![0u8; 65_536];
                loop {
                    if let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                        let _ = socket.send_to(&buf[..n], peer).await;
                    }
                }
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown family `{other}`"),
            )),
        }
    })?;
    Ok(())
}

/// tokio's echo example: whatever arrives is written back, until the peer closes or fails.
async fn echo(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
