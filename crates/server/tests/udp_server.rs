//! `UdpServer`: CPython's checklist for the synchronous UDP server, and datagram details.

mod util;

use handler::{BoxError, DatagramOptions, DatagramRequest, HandlerExt};
use sockserve_server::UdpServer;
use std::{
    io::{BufRead, Write},
    net::UdpSocket,
    time::Duration,
};
use util::*;

fn echo_line_dgram(req: &mut DatagramRequest) -> Result<(), BoxError> {
    let mut line = Vec::new();
    req.rfile.read_until(b'\n', &mut line)?;
    Ok(req.wfile.write_all(&line)?)
}

#[test]
fn empty_reply_is_sent_as_cpython_does_unless_disabled() {
    let mut server = UdpServer::bind("127.0.0.1:0", |_r: &mut DatagramRequest| Ok(())).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    client.send_to(b"x", inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).expect("a zero-length reply");
    assert_eq!(n, 0);

    let quiet = (|_r: &mut DatagramRequest| Ok::<(), std::io::Error>(()))
        .with_options(DatagramOptions::default().reply_when_empty(false));
    let mut server = UdpServer::bind_handler("127.0.0.1:0", quiet).unwrap();
    client.send_to(b"x", inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "no reply when disabled"
    );
}

#[test]
fn large_datagrams_up_to_max_packet_size() {
    let mut server = UdpServer::builder(|req: &mut DatagramRequest| {
        let p = req.packet.clone();
        Ok(req.wfile.write_all(&p)?)
    })
    .max_packet_size(65_507)
    .bind("127.0.0.1:0")
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let payload: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    client
        .send_to(&payload, inet(server.server_address()))
        .unwrap();
    server.handle_request().unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &payload[..]);
}

/// CPython hands the handler a datagram cut to `max_packet_size`; here a longer one is
/// discarded (its real length read through `MSG_TRUNC`) and `handle_error` gets both sizes.
#[test]
fn datagrams_beyond_max_packet_size_are_refused_with_both_sizes() {
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&errors);
    let mut server = UdpServer::builder(|req: &mut DatagramRequest| {
        let n = req.packet.len();
        Ok(write!(req.wfile, "{n}")?)
    })
    .handle_error(move |_server, _client, error| {
        let cut = error
            .truncated_datagram()
            .map(|c| (c.length, c.max_packet_size));
        seen.lock().unwrap().push((error.stage(), cut));
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let address = inet(server.server_address());
    client.send_to(&[7u8; 10_000], address).unwrap();
    server.handle_request().unwrap();
    assert_eq!(
        *errors.lock().unwrap(),
        [(handler::Stage::Setup, Some((10_000, 8192)))]
    );
    // No reply for it: the first reply is the next datagram's, one of exactly 8192 bytes.
    client.send_to(&[7u8; 8192], address).unwrap();
    server.handle_request().unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"8192");
    assert_eq!(
        errors.lock().unwrap().len(),
        1,
        "no error for the whole datagram"
    );
}

#[test]
fn many_datagrams_queued_before_serving_are_all_answered() {
    let server = UdpServer::bind("127.0.0.1:0", echo_line_dgram).unwrap();
    let address = inet(server.server_address());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    for i in 0..150 {
        client
            .send_to(format!("{i}\n").as_bytes(), address)
            .unwrap();
    }
    let serving = Serving::start(server, Duration::from_secs(60));
    let mut seen = [false; 150];
    for _ in 0..150 {
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).expect("every datagram answered");
        let i: usize = std::str::from_utf8(&buf[..n - 1]).unwrap().parse().unwrap();
        seen[i] = true;
    }
    assert!(seen.iter().all(|s| *s));
    serving.stop();
}

#[test]
fn a_max_packet_size_beyond_any_datagram_is_clamped_not_allocated() {
    // It used to be an OutOfMemory error (and 4 GiB was zero-filled at bind); no UDP datagram
    // is longer than 65,535 bytes, so that is all a server reserves.
    let server = UdpServer::builder(echo_line_dgram)
        .max_packet_size(usize::MAX)
        .bind("127.0.0.1:0")
        .expect("usize::MAX is clamped, not allocated");
    assert_eq!(server.max_packet_size(), 65_535);
}

#[test]
fn a_timeout_too_long_for_the_clock_means_no_deadline() {
    let mut server = UdpServer::builder(echo_line_dgram)
        .timeout(Some(Duration::MAX))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    client
        .send_to(TEST_STR, inet(server.server_address()))
        .unwrap();
    server
        .handle_request()
        .expect("no overflow, and the waiting datagram is served");
    let mut buf = [0u8; 100];
    let (n, _) = client.recv_from(&mut buf).expect("the echo");
    assert_eq!(&buf[..n], TEST_STR);
}

#[test]
fn request_options_on_the_builder_reach_a_closure() {
    // A handler that replies through the socket itself, with no empty reply afterwards.
    let mut server = UdpServer::builder(|req| {
        req.socket.sendto(b"mine", &req.client_address)?;
        Ok(())
    })
    .request_options(DatagramOptions::default().reply_when_empty(false))
    .bind("127.0.0.1:0")
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", inet(server.server_address())).unwrap();
    server.handle_request().unwrap();
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"mine");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "no empty reply after the handler's own"
    );
}
