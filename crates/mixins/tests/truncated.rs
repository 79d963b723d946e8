//! Datagrams longer than `max_packet_size`: the server reads their real length through
//! `MSG_TRUNC`, discards them, and gives `handle_error` a `TruncatedDatagram` with both sizes;
//! no handler sees a cut datagram and the client gets no reply for it; the next datagram is
//! served as usual. For UDP and Unix datagram servers, under each strategy (sync, threading,
//! forking). A binary without the test harness, because forking a process that runs libtest's
//! threads is not something to share; what the children do is seen through an `EventLog`.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout)]

use handler::{DatagramRequest, HandlerError, ServerContext};
use server::{Hooks, Kind, RequestRef, Server, Strategy, Synchronous, Udp, UnixDatagram};
use socket::Address;
use sockserve_mixins::{Forking, Threading};
use std::time::Duration;
use testsupport::{EventLog, EventSender, datagram_client, run_panicking_checks, server_address};

/// The server's `max_packet_size` in these checks.
const MAX: usize = 16;

/// Records each `verify_request` (the packet's length) and each `handle_error` (the
/// truncation's sizes, or the error itself).
struct Recorder(EventSender);

impl Hooks for Recorder {
    fn verify_request(&self, _: &ServerContext, request: RequestRef<'_>, _: &Address) -> bool {
        if let RequestRef::Datagram { packet, .. } = request {
            self.0.send(&format!("verify {}", packet.len()));
        }
        true
    }

    fn handle_error(&self, _: &ServerContext, _: &Address, error: &HandlerError) {
        let event = match error.truncated_datagram() {
            Some(cut) => format!(
                "truncated {} > {} at {}",
                cut.length,
                cut.max_packet_size,
                error.stage()
            ),
            None => format!("handle_error: {error}"),
        };
        self.0.send(&event);
    }
}

/// Sends a datagram of `MAX + 1` bytes and one of 65,000 (both cut), then one of `MAX`
/// bytes and one of 1: only the last two are verified, handled and answered, and `handle_error`
/// ran once for each of the first two, with their sizes.
fn check<K: Kind<Request<()> = DatagramRequest>, C: Strategy>(unix: bool, strategy: C) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = EventLog::new();
    let events = log.sender();
    let server: Server<K, C> =
        Server::<K, Synchronous>::builder(move |req: &mut DatagramRequest| {
            events.send(&format!("handled {}", req.packet.len()));
            req.wfile = req.packet.to_vec();
            Ok(())
        })
        .max_packet_size(MAX)
        .hooks(Recorder(log.sender()))
        .strategy(strategy)
        .bind(server_address(unix, dir.path()))
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let address = running.server_address().clone();
    let client = datagram_client(&address, dir.path());
    for size in [MAX + 1, 65_000] {
        client.sendto(&vec![b'x'; size], &address).expect("send");
    }
    let whole = vec![b'y'; MAX];
    client.sendto(&whole, &address).expect("send");
    // The first reply is the whole datagram's: none came for the cut ones.
    let (reply, _) = client.recvfrom(70_000).expect("a reply (timed out?)");
    assert_eq!(reply, whole, "the first reply is the whole datagram's");
    client.sendto(b"z", &address).expect("send");
    let (reply, _) = client.recvfrom(70_000).expect("a reply (timed out?)");
    assert_eq!(reply, b"z");
    let mut got = log.wait_for(6);
    got.sort();
    // verify_request saw the whole datagrams only.
    let mut want = vec![
        format!("verify {MAX}"),
        "verify 1".to_owned(),
        format!("handled {MAX}"),
        "handled 1".to_owned(),
        format!("truncated {} > {MAX} at setup", MAX + 1),
        format!("truncated 65000 > {MAX} at setup"),
    ];
    want.sort();
    assert_eq!(got, want);
    let mut server = running.shutdown().expect("stop");
    server.server_close();
    assert_eq!(log.drain(), Vec::<String>::new(), "nothing more ran");
}

fn udp_sync() {
    check::<Udp, _>(false, Synchronous);
}
fn udp_threading() {
    check::<Udp, _>(false, Threading::new());
}
fn udp_forking() {
    check::<Udp, _>(false, Forking::new());
}
fn unix_sync() {
    check::<UnixDatagram, _>(true, Synchronous);
}
fn unix_threading() {
    check::<UnixDatagram, _>(true, Threading::new());
}
fn unix_forking() {
    check::<UnixDatagram, _>(true, Forking::new());
}

fn main() {
    run_panicking_checks(
        "truncated",
        &[
            ("udp_sync", udp_sync),
            ("udp_threading", udp_threading),
            ("udp_forking", udp_forking),
            ("unix_sync", unix_sync),
            ("unix_threading", unix_threading),
            ("unix_forking", unix_forking),
        ],
    );
}
