//! The accept loop: a burst of 200 connects before any is served, batches larger than one
//! wakeup, and backpressure that pauses and resumes the listener without losing anyone.

mod util;

use sockserve_server::{Job, Server, ServerLink, Strategy, Tcp, TcpServer};
use std::{
    io::Write,
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};
use util::*;

#[test]
fn two_hundred_clients_connected_before_serving_are_all_answered_within_5s() {
    let server = TcpServer::bind("127.0.0.1:0", echo_line).expect("bind");
    let address = inet(server.server_address());
    // All 200 connect (and send) before the loop runs: the backlog must hold them.
    let clients: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = TcpStream::connect_timeout(&address, GENEROUS)
                .unwrap_or_else(|e| panic!("connect #{i} was not queued: {e}"));
            c.write_all(TEST_STR).unwrap();
            c
        })
        .collect();
    let start = Instant::now();
    let serving = Serving::start(server, Duration::from_millis(10));
    for mut c in clients {
        assert_eq!(read_to_end(&mut c), TEST_STR);
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "200 queued clients took {took:?}"
    );
    serving.stop();
}

/// A strategy whose capacity the test opens and closes: backpressure on demand.
#[derive(Debug, Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    link: Arc<Mutex<Option<ServerLink>>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(link) = &*self.link.lock().unwrap() {
            link.notify();
        }
    }
}

impl Strategy for Gate {
    fn start(&mut self, link: &ServerLink) -> std::io::Result<()> {
        *self.link.lock().unwrap() = Some(link.clone());
        Ok(())
    }
    fn has_capacity(&mut self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
    fn process_request(&mut self, job: Job) {
        job.run()
    }
}

#[test]
fn paused_listener_serves_the_waiting_connections_when_resumed() {
    let gate = Gate::default();
    let server: Server<Tcp, Gate> = TcpServer::builder(echo_line)
        .strategy(gate.clone())
        .bind("127.0.0.1:0")
        .expect("bind");
    let address = inet(server.server_address());
    let serving = Serving::start(server, Duration::from_secs(60));
    // The gate is shut: the loop takes the listener out of the reactor. Connect 100 clients
    // (more than one batch) while it is paused; none is served.
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = TcpStream::connect(address).unwrap();
            c.write_all(TEST_STR).unwrap();
            c
        })
        .collect();
    // Nothing new arrives after this: opening the gate alone must serve all of them, with
    // no fresh connect to trigger an event (and a 60 s tick that would hide a lost wakeup).
    thread::sleep(Duration::from_millis(0));
    gate.open();
    for mut c in clients {
        assert_eq!(read_to_end(&mut c), TEST_STR);
    }
    serving.stop();
}
