//! The accept loop with no fds left: it backs off instead of spinning, and serves again as
//! soon as fds are free. This binary holds only this test: it lowers its own fd limit and
//! fills its own fd table, which are process-wide state.

mod util;

use socket::{Address, Family, Socket, Type};
use sockserve_server::TcpServer;
use std::{
    fs::File,
    io,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};
use util::*;

/// Lowers this process's soft fd limit, so filling the table is quick whatever the machine's
/// default (some have a million).
fn lower_fd_limit(limit: u32) {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={limit}:"),
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed: {status}");
}

/// Opens /dev/null until the table is full; the files are the fds to give back.
fn fill_fd_table() -> Vec<File> {
    let mut files = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) if e.raw_os_error() == Some(24) => return files, // EMFILE
            Err(e) => panic!("unexpected error filling the fd table: {e}"),
        }
        assert!(files.len() < 100_000, "the fd limit was not lowered");
    }
}

#[test]
fn out_of_fds_backs_off_without_spinning_and_serves_again() {
    lower_fd_limit(512);
    let rec = Shared::default();
    let server = TcpServer::builder(echo_line)
        .hooks(rec.clone())
        .bind("127.0.0.1:0")
        .expect("bind");
    let address: Address = server.server_address().clone();
    // A 60 s tick: any loop activity below comes from wakeups, so it counts spinning.
    let serving = Serving::start(server, Duration::from_secs(60));
    stream_examine(inet(&address));

    // Client sockets are made first: connecting needs no new fd, accepting does.
    let clients: Vec<Socket> = (0..5)
        .map(|_| Socket::new(Family::Inet, Type::Stream).expect("client socket"))
        .collect();
    let spare = fill_fd_table();
    let ticks_before = rec.0.service_actions.load(Ordering::SeqCst);
    for c in &clients {
        c.settimeout(Some(GENEROUS));
        c.connect(&address).expect("connect (the backlog holds it)");
        c.sendall(TEST_STR).expect("send");
    }
    // The loop now meets EMFILE. Watch it for a while: a spinning loop would tick
    // hundreds of thousands of times; the backoff (10 ms doubling to 1 s) ticks a handful.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(500) {
        std::thread::park_timeout(Duration::from_millis(50));
    }
    let ticks = rec.0.service_actions.load(Ordering::SeqCst) - ticks_before;
    assert!(
        ticks < 50,
        "the loop spun on EMFILE: {ticks} ticks in 0.5 s"
    );

    // Give the fds back: every waiting client is served, without a new connect.
    drop(spare);
    let start = Instant::now();
    for c in &clients {
        let mut buf = Vec::new();
        while !buf.ends_with(b"\n") {
            let chunk = c.recv(100).unwrap_or_else(|e: io::Error| {
                panic!("a client waiting through EMFILE was not served: {e}")
            });
            assert!(!chunk.is_empty(), "closed without a reply");
            buf.extend(chunk);
        }
        assert_eq!(buf, TEST_STR);
    }
    assert!(
        // The backoff is capped at 1 s; the rest is slack for a loaded machine.
        start.elapsed() < Duration::from_secs(5),
        "serving resumed only after {:?}",
        start.elapsed()
    );
    serving.stop();
}
