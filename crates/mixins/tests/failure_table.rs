//! The failure table, cell by cell: an error or a panic in `setup`, `handle` and `finish`, and a
//! panic in `verify_request`, `handle_error` and `service_actions`, under each strategy (sync,
//! threading, forking), for a stream server (TCP) and a datagram server (UDP), and for a stream
//! connection that waits between its turns (`Next::WaitForInput`, the failure in its second
//! turn or in the `finish` after it). Each cell checks which hooks ran, in order, each the
//! number of times the table says (`setup`, `finish`, `handle_error`, `shutdown_request`
//! exactly once when they run); what the client saw; and that the server then answers a
//! fresh client as usual. The table is the one in the server crate's docs
//! (`sockserve_server::failures`).
//!
//! A binary without the test harness (forking is among the strategies); what runs in a forked
//! child is seen through an `EventLog`. One request of each cell fails, the victim: the
//! handler and the hooks fail only for the victim's address, set before it connects (a forked
//! child has a copy of it).
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use handler::{
    BoxError, DatagramRequest, Handler, HandlerError, Next, ServerContext, StreamRequest,
};
use server::{Hooks, RequestRef, Server, Strategy, Synchronous, Tcp, Udp};
use socket::{Address, Family, Shutdown, Socket, Type};
use sockserve_mixins::{Forking, Threading};
use std::{
    io::{BufRead, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use testsupport::{EventLog, EventSender, GENEROUS, run_panicking_checks};

/// What fails, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    SetupError,
    SetupPanic,
    HandleError,
    HandlePanic,
    FinishError,
    FinishPanic,
    VerifyPanic,
    HandleErrorPanic,
    ServiceActionsPanic,
}

const FAULTS: [Fault; 9] = [
    Fault::SetupError,
    Fault::SetupPanic,
    Fault::HandleError,
    Fault::HandlePanic,
    Fault::FinishError,
    Fault::FinishPanic,
    Fault::VerifyPanic,
    Fault::HandleErrorPanic,
    Fault::ServiceActionsPanic,
];

/// The faults of a waiting connection: in its second turn's `handle`, or in `finish` after it.
const WAITING_FAULTS: [Fault; 4] = [
    Fault::HandleError,
    Fault::HandlePanic,
    Fault::FinishError,
    Fault::FinishPanic,
];

/// The victim's address (`None`: no request fails).
type Victim = Arc<Mutex<Option<Address>>>;

fn is_victim(victim: &Victim, client: &Address) -> bool {
    victim.lock().unwrap().as_ref() == Some(client)
}

/// Reads a line and answers `ok`, once (or, waiting, once a turn until EOF); fails as its
/// fault says, for the victim only.
#[derive(Clone)]
struct Faulty {
    fault: Fault,
    victim: Victim,
    events: EventSender,
    wait: bool,
    turns: usize,
}

impl Faulty {
    fn victim(&self, client: &Address) -> bool {
        is_victim(&self.victim, client)
    }

    /// Records `step` for the victim, then fails if `step` is where the fault is (`turn`: the
    /// turn it must be in, for `handle`).
    fn step(&self, client: &Address, step: &str, fault_here: bool) -> Result<(), BoxError> {
        if !self.victim(client) {
            return Ok(());
        }
        self.events.send(step);
        if !fault_here {
            return Ok(());
        }
        match self.fault {
            Fault::SetupPanic | Fault::HandlePanic | Fault::FinishPanic => {
                panic!("{step} panics (as the cell asks)")
            }
            _ => Err(format!("{step} fails (as the cell asks)").into()),
        }
    }

    /// Whether `handle` fails in this turn: the first, or the second when waiting.
    fn handle_fails(&self) -> bool {
        matches!(
            self.fault,
            Fault::HandleError | Fault::HandlePanic | Fault::HandleErrorPanic
        ) && self.turns == if self.wait { 2 } else { 1 }
    }
}

impl Handler<StreamRequest> for Faulty {
    fn setup(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        let here = matches!(self.fault, Fault::SetupError | Fault::SetupPanic);
        self.step(&req.client_address, "setup", here)
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        self.turns += 1;
        let fails = self.handle_fails();
        self.step(&req.client_address, "handle", fails)?;
        let mut line = String::new();
        if req.rfile.read_line(&mut line)? == 0 {
            return Ok(Next::Done);
        }
        req.wfile.write_all(b"ok\n")?;
        Ok(if self.wait {
            Next::WaitForInput
        } else {
            Next::Done
        })
    }

    fn finish(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        let here = matches!(self.fault, Fault::FinishError | Fault::FinishPanic);
        self.step(&req.client_address, "finish", here)
    }
}

impl Handler<DatagramRequest> for Faulty {
    fn setup(&mut self, req: &mut DatagramRequest) -> Result<(), BoxError> {
        let here = matches!(self.fault, Fault::SetupError | Fault::SetupPanic);
        self.step(&req.client_address, "setup", here)
    }

    fn handle(&mut self, req: &mut DatagramRequest) -> Result<Next, BoxError> {
        self.turns += 1;
        let fails = self.handle_fails();
        self.step(&req.client_address, "handle", fails)?;
        req.wfile.extend_from_slice(b"ok\n");
        Ok(Next::Done)
    }

    fn finish(&mut self, req: &mut DatagramRequest) -> Result<(), BoxError> {
        let here = matches!(self.fault, Fault::FinishError | Fault::FinishPanic);
        self.step(&req.client_address, "finish", here)
    }
}

/// Records the hooks' runs for the victim, and panics in the one the fault names.
struct Recorder {
    fault: Fault,
    victim: Victim,
    events: EventSender,
    /// `service_actions` panics once, at its first run after this is set.
    armed: Arc<AtomicBool>,
}

impl Hooks for Recorder {
    fn verify_request(&self, _: &ServerContext, _: RequestRef<'_>, client: &Address) -> bool {
        if is_victim(&self.victim, client) {
            self.events.send("verify_request");
            if self.fault == Fault::VerifyPanic {
                panic!("verify_request panics (as the cell asks)");
            }
        }
        true
    }

    fn handle_error(&self, _: &ServerContext, client: &Address, error: &HandlerError) {
        if !is_victim(&self.victim, client) {
            return;
        }
        let how = if error.is_panic() {
            "panicked"
        } else {
            "failed"
        };
        self.events
            .send(&format!("handle_error({} {how})", error.stage()));
        if self.fault == Fault::HandleErrorPanic {
            panic!("handle_error panics (as the cell asks)");
        }
    }

    fn shutdown_request(&self, _: &ServerContext, client: &Address) {
        if is_victim(&self.victim, client) {
            self.events.send("shutdown_request");
        }
    }

    fn service_actions(&self, _: &ServerContext) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.events.send("service_actions");
            panic!("service_actions panics (as the cell asks)");
        }
    }
}

/// What a cell saw.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    events: Vec<String>,
    /// What the victim received: its bytes, then `closed` (stream) or nothing more
    /// (datagram: its reply, if any).
    client: String,
}

/// The expected events and client view of `fault` (`wait`: the stream connection waits between
/// two turns; `datagram`: a UDP server).
fn expected(fault: Fault, datagram: bool, wait: bool) -> Seen {
    let mut events: Vec<&str> = vec!["verify_request"];
    let handles: &[&str] = if wait {
        &["handle", "handle"]
    } else {
        &["handle"]
    };
    let failed = |stage: &str, how: &str| format!("handle_error({stage} {how})");
    let mut extra: Vec<String> = Vec::new();
    match fault {
        Fault::SetupError | Fault::SetupPanic => {
            events.push("setup");
            let how = if fault == Fault::SetupError {
                "failed"
            } else {
                "panicked"
            };
            extra.push(failed("setup", how));
        }
        Fault::HandleError | Fault::HandlePanic | Fault::HandleErrorPanic => {
            events.push("setup");
            events.extend(handles);
            events.push("finish");
            let how = if fault == Fault::HandlePanic {
                "panicked"
            } else {
                "failed"
            };
            extra.push(failed("handle", how));
        }
        Fault::FinishError | Fault::FinishPanic => {
            events.push("setup");
            // A waiting connection's end of input ends it with no further turn: `finish` next.
            events.extend(handles);
            events.push("finish");
            let how = if fault == Fault::FinishError {
                "failed"
            } else {
                "panicked"
            };
            extra.push(failed("finish", how));
        }
        Fault::VerifyPanic => {}
        Fault::ServiceActionsPanic => {
            events.extend(["setup", "handle", "finish"]);
        }
    }
    let mut events: Vec<String> = events.into_iter().map(str::to_owned).collect();
    events.extend(extra);
    events.push("shutdown_request".to_owned());
    if fault == Fault::ServiceActionsPanic {
        events.push("service_actions".to_owned());
    }
    let answered = match fault {
        Fault::SetupError | Fault::SetupPanic | Fault::VerifyPanic => false,
        Fault::HandleError | Fault::HandlePanic | Fault::HandleErrorPanic => wait,
        Fault::FinishError | Fault::FinishPanic | Fault::ServiceActionsPanic => true,
    };
    let client = match (datagram, answered) {
        (false, true) if wait => "ok\nok\nclosed".to_owned(),
        (false, true) => "ok\nclosed".to_owned(),
        (false, false) => "closed".to_owned(),
        (true, true) => "ok\n".to_owned(),
        (true, false) => String::new(),
    };
    // A waiting connection that failed in its second turn got the first turn's answer only.
    let client = if !datagram
        && wait
        && matches!(
            fault,
            Fault::HandleError | Fault::HandlePanic | Fault::HandleErrorPanic
        ) {
        "ok\nclosed".to_owned()
    } else {
        client
    };
    Seen { events, client }
}

/// The parts of a cell's server.
struct Parts {
    fault: Fault,
    victim: Victim,
    log: EventLog,
    armed: Arc<AtomicBool>,
}

impl Parts {
    fn new(fault: Fault) -> Parts {
        Parts {
            fault,
            victim: Arc::new(Mutex::new(None)),
            log: EventLog::new(),
            armed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn handler(&self, wait: bool) -> Faulty {
        Faulty {
            fault: self.fault,
            victim: Arc::clone(&self.victim),
            events: self.log.sender(),
            wait,
            turns: 0,
        }
    }

    fn hooks(&self) -> Recorder {
        Recorder {
            fault: self.fault,
            victim: Arc::clone(&self.victim),
            events: self.log.sender(),
            armed: Arc::clone(&self.armed),
        }
    }

    /// The events of the victim's request, once its `shutdown_request` (and, for the
    /// `service_actions` cell, that hook's panic) came.
    fn events(&self) -> Vec<String> {
        let mut events: Vec<String> = Vec::new();
        let seen = |events: &[String], what: &str| events.iter().any(|e| e == what);
        let actions = self.fault == Fault::ServiceActionsPanic;
        while !seen(&events, "shutdown_request") || (actions && !seen(&events, "service_actions")) {
            events.extend(self.log.wait_for(1));
        }
        // The serving loop's hook runs while a worker or a child serves the request: its place
        // among the request's events is not fixed. It goes last.
        if actions {
            events.retain(|e| e != "service_actions");
            events.push("service_actions".to_owned());
        }
        events
    }
}

/// A client socket bound to a port of its own, whose address is the victim's.
fn victim_socket(parts: &Parts, ty: Type) -> Socket {
    let s = Socket::new(Family::Inet, ty).expect("a socket");
    s.settimeout(Some(GENEROUS));
    s.bind("127.0.0.1:0").expect("bind");
    *parts.victim.lock().unwrap() = Some(s.getsockname().expect("its address"));
    s
}

/// Reads to the end of a stream connection (EOF or a reset: both are `closed`).
fn read_to_close(s: &Socket, got: &mut Vec<u8>) {
    loop {
        match s.recv(64) {
            Ok(chunk) if chunk.is_empty() => return,
            Ok(chunk) => got.extend(chunk),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the victim's read: {e} (after {got:?})"),
        }
    }
}

/// Reads one line's worth (`ok\n`) from a stream connection.
fn read_line(s: &Socket, got: &mut Vec<u8>) {
    while !got.ends_with(b"\n") {
        let chunk = s.recv(64).expect("an answer");
        assert!(!chunk.is_empty(), "closed before an answer, after {got:?}");
        got.extend(chunk);
    }
}

/// One stream cell: the victim, then a fresh client answered as usual.
fn stream_cell<C: Strategy>(strategy: C, fault: Fault, wait: bool) -> Seen {
    let parts = Parts::new(fault);
    let server: Server<Tcp, C> = Server::<Tcp, Synchronous>::builder_handler(parts.handler(wait))
        .hooks(parts.hooks())
        .strategy(strategy)
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let address = running.server_address().clone();
    let s = victim_socket(&parts, Type::Stream);
    s.connect(&address).expect("connect");
    let mut got = Vec::new();
    if fault == Fault::ServiceActionsPanic {
        parts.armed.store(true, Ordering::SeqCst);
    }
    s.sendall(b"a\n").expect("send");
    if wait {
        // The first turn answers; the second fails in handle, or reads the end of input and
        // the finish after it fails.
        read_line(&s, &mut got);
        if matches!(fault, Fault::FinishError | Fault::FinishPanic) {
            s.sendall(b"b\n").expect("send");
            read_line(&s, &mut got);
            s.shutdown(Shutdown::Write).expect("shutdown");
        } else {
            s.sendall(b"b\n").expect("send");
        }
    }
    read_to_close(&s, &mut got);
    let events = parts.events();
    fresh_stream_client(&address);
    stop(running);
    let later = parts.log.drain();
    assert!(
        later.is_empty(),
        "{fault:?}: ran again after the end: {later:?}"
    );
    Seen {
        events,
        client: format!("{}closed", String::from_utf8_lossy(&got)),
    }
}

/// A client that is not the victim: answered `ok`, then the server closes.
fn fresh_stream_client(address: &Address) {
    let c = Socket::new(Family::Inet, Type::Stream).expect("a socket");
    c.settimeout(Some(GENEROUS));
    c.connect(address).expect("connect");
    c.sendall(b"x\n").expect("send");
    let mut got = Vec::new();
    read_line(&c, &mut got);
    assert_eq!(got, b"ok\n", "the server still serves");
    // An end of input the server sees whatever copies of this socket exist: a forked child
    // has one (it was forked after this connected), so closing it here would not end the
    // connection, and a waiting connection would wait on.
    c.shutdown(Shutdown::Write).expect("shutdown");
    read_to_close(&c, &mut got);
    assert_eq!(got, b"ok\n", "nothing more");
}

/// One datagram cell: the victim's datagram, then a fresh client's answered.
fn datagram_cell<C: Strategy>(strategy: C, fault: Fault) -> Seen {
    let parts = Parts::new(fault);
    let server: Server<Udp, C> = Server::<Udp, Synchronous>::builder_handler(parts.handler(false))
        .hooks(parts.hooks())
        .strategy(strategy)
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let address = running.server_address().clone();
    let s = victim_socket(&parts, Type::Datagram);
    if fault == Fault::ServiceActionsPanic {
        parts.armed.store(true, Ordering::SeqCst);
    }
    s.sendto(b"a", &address).expect("send");
    let events = parts.events();
    // The request is over (its shutdown_request ran): a reply, if any, was sent before, and
    // loopback delivers it at once.
    s.setblocking(false).expect("non-blocking");
    let client = match s.recv(64) {
        Ok(reply) => String::from_utf8_lossy(&reply).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => String::new(),
        Err(e) => panic!("the victim's receive: {e}"),
    };
    let c = Socket::new(Family::Inet, Type::Datagram).expect("a socket");
    c.settimeout(Some(GENEROUS));
    c.bind("127.0.0.1:0").expect("bind");
    c.sendto(b"x", &address).expect("send");
    assert_eq!(
        c.recv(64).expect("a reply"),
        b"ok\n",
        "the server still serves"
    );
    stop(running);
    let later = parts.log.drain();
    assert!(
        later.is_empty(),
        "{fault:?}: ran again after the end: {later:?}"
    );
    Seen { events, client }
}

fn stop<C: Strategy, K: server::Kind>(running: server::Running<K, C>) {
    let mut server = running.shutdown().expect("stop");
    server.server_close();
}

/// Every cell of one strategy, stream (plain and waiting) and datagram; the table's rows as
/// they ran.
fn strategy_cells<C: Strategy>(name: &str, make: impl Fn() -> C) {
    let mut failures = Vec::new();
    let mut check = |cell: String, seen: Seen, want: Seen| {
        // Which cell ran last, should one hang (the runner's line comes at the check's end).
        eprintln!("failure_table: {cell} done");
        if seen != want {
            failures.push(format!("{cell}:\n   saw {seen:?}\n  want {want:?}"));
        }
    };
    for fault in FAULTS {
        let seen = stream_cell(make(), fault, false);
        check(
            format!("{name} stream {fault:?}"),
            seen,
            expected(fault, false, false),
        );
        let seen = datagram_cell(make(), fault);
        check(
            format!("{name} datagram {fault:?}"),
            seen,
            expected(fault, true, false),
        );
    }
    for fault in WAITING_FAULTS {
        let seen = stream_cell(make(), fault, true);
        check(
            format!("{name} waiting {fault:?}"),
            seen,
            expected(fault, false, true),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sync() {
    strategy_cells("sync", || Synchronous);
}
fn threading() {
    strategy_cells("threading", Threading::new);
}
fn forking() {
    strategy_cells("forking", Forking::new);
}

fn main() {
    run_panicking_checks(
        "failure_table",
        &[
            ("sync", sync),
            ("threading", threading),
            ("forking", forking),
        ],
    );
}
