//! TLS under the forking strategy, in a binary of its own (forking a test harness with its
//! threads is not something to share): each connection's handshake runs in its forked child,
//! never in the parent's loop. A rustls client over TCP and Unix, a plaintext client and a
//! stalled handshake, each seen on the server's side through an `EventLog` (whose socket the
//! children inherit), and a fresh client served after each. Prints `forking: N passed, M
//! failed` and exits non-zero on a failure.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout)]

mod common;

use common::{Echo, ask, client_config, close_cleanly, connect, pki, serve};
use mixins::Forking;
use server::{Tcp, UnixStream};
use sockserve_tls::Tls;
use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};
use testsupport::{EventLog, GENEROUS, run_panicking_checks};

fn session(address: &socket::Address, pki: &common::Pki) {
    let mut client = connect(address, client_config(pki, false));
    client.write_all(b"one\ntwo\n").expect("send");
    assert_eq!(
        ask(&mut client, "").expect("answer"),
        "sni=localhost alpn=echo/1 certs=0\n"
    );
    assert_eq!(ask(&mut client, "").expect("answer"), "one\n");
    assert_eq!(ask(&mut client, "").expect("answer"), "two\n");
    // The child waits on its own socket between turns.
    assert_eq!(ask(&mut client, "three\n").expect("answer"), "three\n");
    close_cleanly(client);
}

fn rustls_clients_over_tcp_and_unix() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tls.sock");
    let log = EventLog::new();
    let tcp = serve::<Tcp, Forking>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, false)),
        Echo::default(),
        log.sender(),
    );
    let unix = serve::<UnixStream, Forking>(
        path.to_str().expect("utf-8 path"),
        Tls::new(common::server_config(&pki, false)),
        Echo::default(),
        log.sender(),
    );
    for address in [tcp.server_address().clone(), unix.server_address().clone()] {
        session(&address, &pki);
        session(&address, &pki);
    }
    drop(tcp.shutdown().expect("shutdown"));
    drop(unix.shutdown().expect("shutdown"));
    assert_eq!(log.drain(), Vec::<String>::new(), "no request failed");
}

fn plaintext_and_stalled_clients_fail_in_their_children() {
    let pki = pki();
    let log = EventLog::new();
    // Every handshake has this bound, the ones meant to succeed too: 1 s, not less, so that
    // a loaded machine does not fail them.
    let timeout = Duration::from_secs(1);
    let running = serve::<Tcp, Forking>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, false)).handshake_timeout(timeout),
        Echo::default(),
        log.sender(),
    );
    let started = Instant::now();
    let _silent = testsupport::stream_client(running.server_address());
    let mut plain = testsupport::stream_client(running.server_address());
    plain.write_all(b"hello?\n").expect("send plaintext");
    let _ = plain.read_to_end(&mut Vec::new());
    // The parent's loop is free: a TLS client is served meanwhile.
    session(running.server_address(), &pki);
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
