//! TLS under the forking strategy, in a binary of its own (forking a test harness with its
//! threads is not something to share): each connection's handshake runs in its forked child,
//! never in the parent's loop. A rustls client over TCP and Unix, a plaintext client and a
//! stalled handshake, each seen on the server's side through an `EventLog` (whose socket the
//! children inherit), and a fresh client served after each. Prints `forking: N passed, M
//! failed` and exits non-zero on a failure.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout)]

mod common;

use common::pki;
use mixins::Forking;
use std::{
    io::{Read, Write},
    time::Instant,
};
use testsupport::{EventLog, GENEROUS, run_panicking_checks};

fn rustls_clients_over_tcp_and_unix() {
    common::every_kind::<Forking>();
}

fn plaintext_and_stalled_clients_fail_in_their_children() {
    let pki = pki();
    let log = EventLog::new();
    let timeout = common::HANDSHAKE_TIMEOUT;
    let running = common::serve_timing_out::<Forking>(&pki, log.sender());
    let started = Instant::now();
    let _silent = testsupport::stream_client(running.server_address());
    let mut plain = testsupport::stream_client(running.server_address());
    plain.write_all(b"hello?\n").expect("send plaintext");
    let _ = plain.read_to_end(&mut Vec::new());
    // The parent's loop is free: a TLS client is served meanwhile.
    common::echo_session(running.server_address(), &pki);
    let mut events = log.wait_for(2);
    events.sort();
    assert_eq!(events[0], "handshake:timed-out", "{events:?}");
    assert!(events[1].starts_with("handshake:tls:"), "{events:?}");
    let took = started.elapsed();
    assert!(took >= timeout && took < GENEROUS, "{took:?}");
    drop(running.shutdown().expect("shutdown"));
}

fn main() {
    run_panicking_checks(
        "forking",
        &[
            (
                "rustls_clients_over_tcp_and_unix",
                rustls_clients_over_tcp_and_unix,
            ),
            (
                "plaintext_and_stalled_clients_fail_in_their_children",
                plaintext_and_stalled_clients_fail_in_their_children,
            ),
        ],
    );
}
