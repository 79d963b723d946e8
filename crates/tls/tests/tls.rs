//! TLS servers seen from their side: rustls clients against sync and threading, over TCP and
//! Unix stream sockets (waiting connections, pipelined lines); a CPython `ssl` client; a
//! plaintext client, a stalled handshake, a client certificate required and missing, a
//! configuration replaced while serving: each asserted on what reached `handle_error`, and a
//! fresh client served after it. Forking is in `forking.rs` (a binary of its own), the fd
//! count in `fds.rs` (one test in its binary).

mod common;

use common::{Echo, ask, client_config, close_cleanly, connect, pki, serve};
use mixins::Threading;
use server::{Synchronous, Tcp};
use sockserve_tls::Tls;
use std::{
    io::{Read, Write},
    time::Instant,
};
use testsupport::{EventLog, GENEROUS};

#[test]
fn rustls_clients_under_sync() {
    common::every_kind::<Synchronous>();
}

#[test]
fn rustls_clients_under_threading() {
    common::every_kind::<Threading>();
}

#[test]
fn a_cpython_ssl_client_is_served_and_its_close_without_close_notify_is_told_apart() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write the CA");
    let log = EventLog::new();
    // One turn that reads to the end: the end of the stream is seen by a read.
    let handler = Echo {
        one_turn: true,
        ..Echo::default()
    };
    let running = serve::<Tcp, Threading>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, false)),
        handler,
        log.sender(),
    );
    let out = common::python_client(running.server_address(), &ca);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["sni=localhost alpn=echo/1 certs=0", "one", "two"],
        "{out}"
    );
    assert!(lines[3].starts_with("TLSv1."), "{out}");
    // CPython closed without unwrap(): the handler's read saw a truncated stream, a kind of
    // its own (the default handle_error logs it at debug level).
    assert_eq!(log.wait_for(1), ["truncated"]);
    drop(running.shutdown().expect("shutdown"));
}

#[test]
fn a_plaintext_client_fails_its_handshake_and_the_server_serves_on() {
    let pki = pki();
    let log = EventLog::new();
    let running = serve::<Tcp, Threading>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, false)),
        Echo::default(),
        log.sender(),
    );
    let mut plain = testsupport::stream_client(running.server_address());
    plain
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send plaintext");
    let mut answer = Vec::new();
    // The server's alert, then its close: never a hang.
    let _ = plain.read_to_end(&mut answer);
    let events = log.wait_for(1);
    assert!(events[0].starts_with("handshake:tls:"), "{events:?}");
    common::echo_session(running.server_address(), &pki);
    drop(running.shutdown().expect("shutdown"));
    assert_eq!(log.drain(), Vec::<String>::new());
}

#[test]
fn stalled_handshakes_end_at_the_handshake_timeout_and_hold_no_one_else() {
    let pki = pki();
    let log = EventLog::new();
    let timeout = common::HANDSHAKE_TIMEOUT;
    let running = common::serve_timing_out::<Threading>(&pki, log.sender());
    let started = Instant::now();
    let silent = testsupport::stream_client(running.server_address());
    let stalled = testsupport::stream_client(running.server_address());
    stalled
        .sendall(&common::half_a_client_hello(&pki))
        .expect("half a hello");
    // Meanwhile a client that completes its handshake is served at once.
    common::echo_session(running.server_address(), &pki);
    let events = log.wait_for(2);
    let took = started.elapsed();
    assert_eq!(events, ["handshake:timed-out", "handshake:timed-out"]);
    assert!(took >= timeout, "ended after {took:?}, before the timeout");
    assert!(took < GENEROUS, "ended only after {took:?}");
    // Both were closed by the server.
    for client in [silent, stalled] {
        client.settimeout(Some(GENEROUS));
        let mut rest = [0u8; 64];
        let end = client.recv_into(&mut rest);
        assert!(matches!(end, Ok(0)) || end.is_err(), "{end:?}");
    }
    drop(running.shutdown().expect("shutdown"));
}

#[test]
fn under_sync_a_stalled_handshake_holds_the_loop_no_longer_than_its_timeout() {
    let pki = pki();
    let log = EventLog::new();
    let running = common::serve_timing_out::<Synchronous>(&pki, log.sender());
    let started = Instant::now();
    let _silent = testsupport::stream_client(running.server_address());
    common::echo_session(running.server_address(), &pki);
    let took = started.elapsed();
    assert!(took < GENEROUS, "the next client waited {took:?}");
    assert_eq!(log.wait_for(1), ["handshake:timed-out"]);
    drop(running.shutdown().expect("shutdown"));
}

#[test]
fn a_required_client_certificate_missing_fails_the_handshake() {
    let pki = pki();
    let log = EventLog::new();
    let running = serve::<Tcp, Threading>(
        "127.0.0.1:0",
        Tls::new(common::server_config(&pki, true)),
        Echo::default(),
        log.sender(),
    );
    let mut without = connect(running.server_address(), client_config(&pki, false));
    // TLS 1.3: the client learns it at its first read.
    let refused = ask(&mut without, "hello\n");
    assert!(
        refused.as_ref().map_or(true, String::is_empty),
        "{refused:?}"
    );
    let events = log.wait_for(1);
    assert!(
        events[0].starts_with("handshake:tls:") && events[0].contains("no certificates"),
        "{events:?}"
    );
    // With its certificate, the handler sees it.
    let mut with = connect(running.server_address(), client_config(&pki, true));
    assert_eq!(
        ask(&mut with, "hello\n").expect("answer"),
        "sni=localhost alpn=echo/1 certs=1\n"
    );
    assert_eq!(ask(&mut with, "").expect("answer"), "hello\n");
    close_cleanly(with);
    drop(running.shutdown().expect("shutdown"));
    assert_eq!(log.drain(), Vec::<String>::new());
}

#[test]
fn a_configuration_replaced_while_serving_takes_the_next_handshakes() {
    let (old, new) = (pki(), pki());
    let log = EventLog::new();
    let tls = Tls::new(common::server_config(&old, false));
    let keep = tls.clone();
    let running = serve::<Tcp, Threading>("127.0.0.1:0", tls, Echo::default(), log.sender());
    common::echo_session(running.server_address(), &old);
    // A session open across the change keeps its own.
    let mut open = connect(running.server_address(), client_config(&old, false));
    assert!(ask(&mut open, "x\n").expect("answer").starts_with("sni="));
    keep.set_config(common::server_config(&new, false));
    common::echo_session(running.server_address(), &new);
    assert_eq!(ask(&mut open, "").expect("answer"), "x\n");
    close_cleanly(open);
    // A client that trusts only the old CA now refuses the server's certificate.
    let mut stale = connect(running.server_address(), client_config(&old, false));
    assert!(ask(&mut stale, "y\n").is_err());
    drop(stale); // (rustls leaves its alert unsent: the server sees the close)
    let events = log.wait_for(1);
    assert!(
        events[0].starts_with("handshake:") && events[0] != "handshake:timed-out",
        "{events:?}"
    );
    drop(running.shutdown().expect("shutdown"));
}

#[test]
fn a_certificate_resolver_replaced_while_serving_presents_the_new_certificate() {
    use sockserve_tls::rustls::{ServerConfig, sign::CertifiedKey};
    let (old, new) = (pki(), pki());
    let certified = |pki: &common::Pki| {
        let key =
            sockserve_tls::rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.clone().into());
        CertifiedKey::from_der(pki.server_chain.clone(), key, &sockserve_tls::provider())
            .expect("certified key")
    };
    let resolver = sockserve_tls::CertResolver::new(certified(&old));
    let mut config = ServerConfig::builder_with_provider(sockserve_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(std::sync::Arc::new(resolver.clone()));
    config.alpn_protocols = vec![b"echo/1".to_vec()];
    let log = EventLog::new();
    let running = serve::<Tcp, Threading>(
        "127.0.0.1:0",
        Tls::new(config),
        Echo::default(),
        log.sender(),
    );
    common::echo_session(running.server_address(), &old);
    resolver.replace(certified(&new));
    common::echo_session(running.server_address(), &new);
    drop(running.shutdown().expect("shutdown"));
    assert_eq!(log.drain(), Vec::<String>::new());
}

/// Behind a proxy: the PROXY header first (read by the server's preamble), then the TLS
/// handshake (the layer), and the handler sees the header's client.
#[test]
fn a_proxy_header_then_tls() {
    use sockserve_tls::TlsBuilderExt;
    let pki = pki();
    let server = server::TcpServer::builder(|req: &mut handler::StreamRequest| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut req.rfile, &mut line)?;
        Ok(write!(req.wfile, "{} said {line}", req.client_address)?)
    })
    .proxy_protocol(server::ProxyProtocol::trusted(["127.0.0.1"]).expect("trusted"))
    .tls(common::server_config(&pki, false))
    .bind("127.0.0.1:0")
    .expect("bind");
    let address = server.server_address().clone();
    let running = server.spawn().expect("spawn");
    let socket = testsupport::stream_client(&address);
    socket
        .sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n")
        .expect("the header");
    let name = sockserve_tls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = sockserve_tls::rustls::ClientConnection::new(client_config(&pki, false), name)
        .expect("client");
    let mut client = sockserve_tls::rustls::StreamOwned::new(conn, socket);
    assert_eq!(
        ask(&mut client, "hello\n").expect("answer"),
        "203.0.113.7:51000 said hello\n"
    );
    drop(running.shutdown().expect("shutdown"));
}
