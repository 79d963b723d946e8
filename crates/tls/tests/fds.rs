//! No descriptor leaked by TLS connections, whatever their end: a binary holding this one test,
//! so that the process's descriptors (`/proc/self/fd`) are the server's and the test's alone.
//! Sessions closed cleanly, CPython-style closes without close_notify, plaintext clients,
//! silent clients past the handshake timeout, clients without a required certificate; then
//! the server's descriptors are back to where they started.

mod common;

use common::{Echo, ask, client_config, close_cleanly, connect, pki, serve};
use mixins::Threading;
use server::Tcp;
use sockserve_tls::Tls;
use std::{io::Write, time::Duration};
use testsupport::{EventLog, GENEROUS, wait_until};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn tls_connections_leak_no_descriptor() {
    let pki = pki();
    let log = EventLog::new();
    // Every handshake has the timeout, the ones meant to succeed too: 1 s, so that a loaded
    // machine does not fail them (the silent clients take it, five times).
    let running = serve::<Tcp, Threading>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, true)).handshake_timeout(Duration::from_secs(1)),
        Echo::default(),
        log.sender(),
    );
    let address = running.server_address().clone();
    // Warm up: the pool's first thread, the reactor's registrations.
    let mut first = connect(&address, client_config(&pki, true));
    ask(&mut first, "warm\n").expect("answer");
    ask(&mut first, "").expect("the echo");
    close_cleanly(first);
    let before = open_fds();
    let mut failures = 0;
    for _ in 0..5 {
        let mut clean = connect(&address, client_config(&pki, true));
        ask(&mut clean, "a\n").expect("answer");
        ask(&mut clean, "").expect("the echo");
        close_cleanly(clean);

        let mut rude = connect(&address, client_config(&pki, true));
        ask(&mut rude, "b\n").expect("answer");
        ask(&mut rude, "").expect("the echo");
        drop(rude); // no close_notify: the connection waits, and ends at its EOF

        let mut plain = testsupport::stream_client(&address);
        plain.write_all(b"plaintext\n").expect("send");
        drop(plain);

        let silent = testsupport::stream_client(&address);

        let mut without = connect(&address, client_config(&pki, false));
        let _ = ask(&mut without, "c\n");
        drop(without);

        failures += 3; // plain, silent, without
        log.wait_for(3);
        drop(silent);
    }
    assert_eq!(failures, 15);
    wait_until(
        "the server's descriptors back to their count before the connections",
        GENEROUS,
        || open_fds() <= before,
    );
    drop(running.shutdown().expect("shutdown"));
}
