//! Connections that wait between their handler's turns (`Next::WaitForInput`), under the
//! synchronous and the threading strategy: state kept across turns, setup and finish once,
//! buffered bytes not lost, the client's end (EOF or reset) and the idle timeout while waiting,
//! writes from another thread, and a graceful stop with waiting connections; and new
//! connections that wait for their first input (`StreamOptions::wait_for_first_input`).

use handler::{BoxError, ConnectionWriter, Handler, Next, StreamOptions, StreamRequest};
use server::{Server, Strategy, Synchronous, Tcp, TcpServer};
use sockserve_mixins::Threading;
use std::{
    io::{BufRead, Read, Write},
    net::TcpStream,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use testsupport::{GENEROUS, wait_until};

/// What the handler saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// Answers each line with its number across turns; records setup, turns and finish.
#[derive(Clone)]
struct Counter {
    lines: usize,
    log: Log,
    options: StreamOptions,
    writers: Arc<Mutex<Vec<ConnectionWriter>>>,
}

impl Counter {
    fn new(options: StreamOptions) -> Self {
        Counter {
            lines: 0,
            log: Log::default(),
            options,
            writers: Arc::default(),
        }
    }
    fn saw(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

impl Handler<StreamRequest> for Counter {
    fn options(&self) -> StreamOptions {
        self.options.clone()
    }
    fn setup(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        self.writers.lock().unwrap().push(req.writer());
        self.saw("setup".into());
        Ok(())
    }
    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut line = String::new();
        if req.rfile.read_line(&mut line)? == 0 {
            self.saw("eof".into());
            return Ok(Next::Done);
        }
        if line == "fail\n" {
            return Err("asked to fail".into());
        }
        self.lines += 1;
        writeln!(req.wfile, "{} {}", self.lines, line.trim_end())?;
        Ok(Next::WaitForInput)
    }
    fn finish(&mut self, _req: &mut StreamRequest) -> Result<(), BoxError> {
        self.saw(format!("finish after {}", self.lines));
        Ok(())
    }
}

fn serve<C: Strategy + Default>(handler: Counter) -> server::Running<Tcp, C> {
    let server: Server<Tcp, C> = TcpServer::builder_handler(handler)
        .strategy(C::default())
        .bind("127.0.0.1:0")
        .expect("bind");
    server.spawn_with(Duration::from_millis(10)).expect("spawn")
}

fn connect(
    running: &server::Running<Tcp, impl Strategy>,
) -> (TcpStream, std::io::BufReader<TcpStream>) {
    let address = running.server_address().to_string();
    let client = TcpStream::connect(address).expect("connect");
    client.set_read_timeout(Some(GENEROUS)).unwrap();
    let reader = std::io::BufReader::new(client.try_clone().unwrap());
    (client, reader)
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a reply within 10 s");
    line
}

fn state_is_kept_and_setup_and_finish_run_once<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default());
    let log = Arc::clone(&handler.log);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let (mut client, mut reader) = connect(&running);
    for i in 1..=3 {
        client.write_all(format!("m{i}\n").as_bytes()).unwrap();
        assert_eq!(read_line(&mut reader), format!("{i} m{i}\n"));
        // Between turns: waiting, counted as open.
        wait_until("the connection waits", GENEROUS, || handle.waiting() == 1);
        assert_eq!(handle.in_flight(), 1);
    }
    // Pipelined: two lines in one write, the second buffered in rfile, not lost.
    client.write_all(b"a\nb\n").unwrap();
    assert_eq!(read_line(&mut reader), "4 a\n");
    assert_eq!(read_line(&mut reader), "5 b\n");
    // The client leaves while its connection waits: finish once, the open count goes to 0.
    drop((client, reader));
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    assert_eq!(handle.waiting(), 0);
    assert_eq!(*log.lock().unwrap(), ["setup", "finish after 5"]);
    running.shutdown().expect("stop").server_close();
}

/// The client resets its waiting connection (`SO_LINGER` 0, then close: an RST): the request
/// ends as cleanly as at an EOF, `finish` once and no error reported.
fn a_reset_while_waiting_ends_it_cleanly<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default());
    let log = Arc::clone(&handler.log);
    let errors = Arc::clone(&handler.log);
    let server: Server<Tcp, C> = TcpServer::builder_handler(handler)
        .strategy(C::default())
        .handle_error(move |_, _, error| errors.lock().unwrap().push(format!("error: {error}")))
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let handle = running.shutdown_handle();
    let address = running.server_address().clone();
    let client = socket::Socket::new(address.family(), socket::Type::Stream).unwrap();
    client.settimeout(Some(GENEROUS));
    client.connect(&address).expect("connect");
    client.sendall(b"x\n").unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\n") {
        let chunk = client.recv(100).expect("an answer within 10 s");
        assert!(!chunk.is_empty(), "closed after {answer:?}");
        answer.extend(chunk);
    }
    assert_eq!(answer, b"1 x\n");
    wait_until("the connection waits", GENEROUS, || handle.waiting() == 1);
    client
        .setsockopt(socket::opt::Linger, Some(Duration::ZERO))
        .unwrap();
    drop(client);
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    assert_eq!(handle.waiting(), 0);
    assert_eq!(*log.lock().unwrap(), ["setup", "finish after 1"]);
    running.shutdown().expect("stop").server_close();
}

fn idle_timeout_ends_a_waiting_connection<C: Strategy + Default>() {
    let idle = Duration::from_millis(200);
    let handler = Counter::new(StreamOptions::default().idle_timeout(Some(idle)));
    let log = Arc::clone(&handler.log);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let (mut client, mut reader) = connect(&running);
    client.write_all(b"x\n").unwrap();
    assert_eq!(read_line(&mut reader), "1 x\n");
    let waited = Instant::now();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the server closes");
    let took = waited.elapsed();
    assert!(rest.is_empty());
    assert!(
        took >= idle - Duration::from_millis(20) && took < Duration::from_secs(3),
        "{took:?}"
    );
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    assert_eq!(*log.lock().unwrap(), ["setup", "finish after 1"]);
    running.shutdown().expect("stop").server_close();
}

fn writes_from_another_thread_reach_a_waiting_connection<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default());
    let writers = Arc::clone(&handler.writers);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let (mut client, mut reader) = connect(&running);
    client.write_all(b"hi\n").unwrap();
    assert_eq!(read_line(&mut reader), "1 hi\n");
    wait_until("the connection waits", GENEROUS, || handle.waiting() == 1);
    let writer = writers.lock().unwrap()[0].clone();
    std::thread::spawn(move || writer.write_all(b"broadcast\n"))
        .join()
        .unwrap()
        .expect("a write to a waiting connection");
    assert_eq!(read_line(&mut reader), "broadcast\n");
    client.write_all(b"again\n").unwrap();
    assert_eq!(read_line(&mut reader), "2 again\n");
    drop((client, reader));
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    let writer = writers.lock().unwrap()[0].clone();
    assert!(!writer.is_open());
    running.shutdown().expect("stop").server_close();
}

/// A turn after a wait that fails: `handle_error` sees its error, `finish` runs once, the
/// connection closes and the server serves on.
fn an_error_in_a_later_turn_ends_it_with_finish_once<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default());
    let log = Arc::clone(&handler.log);
    let errors = Arc::clone(&handler.log);
    let server: Server<Tcp, C> = TcpServer::builder_handler(handler)
        .strategy(C::default())
        .handle_error(move |_, _, error| errors.lock().unwrap().push(format!("error: {error}")))
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let handle = running.shutdown_handle();
    let (mut client, mut reader) = connect(&running);
    client.write_all(b"x\n").unwrap();
    assert_eq!(read_line(&mut reader), "1 x\n");
    wait_until("the connection waits", GENEROUS, || handle.waiting() == 1);
    client.write_all(b"fail\n").unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("the server closes");
    assert_eq!(rest, "");
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    let events = log.lock().unwrap().clone();
    assert_eq!(events[..2], ["setup", "finish after 1"], "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[2].contains("asked to fail"), "{events:?}");
    // Still serving.
    let (mut next, mut next_reader) = connect(&running);
    next.write_all(b"y\n").unwrap();
    assert_eq!(read_line(&mut next_reader), "1 y\n");
    drop((next, next_reader));
    running.shutdown().expect("stop").server_close();
}

fn a_graceful_stop_ends_idle_waiters_and_serves_pending_input<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default());
    let log = Arc::clone(&handler.log);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let (mut idle, mut idle_reader) = connect(&running);
    let (mut busy, mut busy_reader) = connect(&running);
    for (c, r) in [(&mut idle, &mut idle_reader), (&mut busy, &mut busy_reader)] {
        c.write_all(b"x\n").unwrap();
        assert_eq!(read_line(r), "1 x\n");
    }
    wait_until("both wait", GENEROUS, || handle.waiting() == 2);
    // Input that the stop finds unread gets its turn. The loop is held off by nothing: the
    // input is queued before the stop is asked for, and no turn can run before the loop looks.
    busy.write_all(b"last\n").unwrap();
    let started = Instant::now();
    let report = handle.shutdown_gracefully(GENEROUS).expect("graceful stop");
    assert!(started.elapsed() < Duration::from_secs(5), "{report:?}");
    assert_eq!(report.forced, 0, "{report:?}");
    let mut rest = String::new();
    busy_reader.read_to_string(&mut rest).unwrap();
    // The reply to "last" may come by the turn the readiness gave before the stop.
    assert_eq!(rest, "2 last\n");
    let mut none = String::new();
    idle_reader.read_to_string(&mut none).unwrap();
    assert_eq!(none, "");
    assert_eq!(handle.in_flight(), 0);
    let finishes = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("finish"))
        .count();
    assert_eq!(finishes, 2);
    running.shutdown().expect("stop").server_close();
}

/// `wait_for_first_input`: new connections that say nothing are set up at the accept, then
/// wait in the reactor, holding no thread and not blocking the loop (a client that speaks is
/// served beside them); `setup` and `finish` once each.
fn silent_new_connections_wait_before_their_first_turn<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default().wait_for_first_input(true));
    let log = Arc::clone(&handler.log);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let mut silent: Vec<_> = (0..3).map(|_| connect(&running)).collect();
    wait_until("three silent connections wait", GENEROUS, || {
        handle.waiting() == 3
    });
    assert_eq!((handle.in_flight(), handle.running()), (3, 0));
    assert_eq!(
        *log.lock().unwrap(),
        ["setup"; 3],
        "set up at the accept, no turn yet"
    );
    // The loop is free: a client that speaks is answered while the others stay silent.
    let (mut talker, mut talker_reader) = connect(&running);
    talker
        .write_all(
            b"hi
",
        )
        .unwrap();
    assert_eq!(
        read_line(&mut talker_reader),
        "1 hi
"
    );
    for (i, (client, reader)) in silent.iter_mut().enumerate() {
        client
            .write_all(
                format!(
                    "s{i}
"
                )
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(
            read_line(reader),
            format!(
                "1 s{i}
"
            )
        );
        client
            .write_all(
                b"again
",
            )
            .unwrap();
        assert_eq!(
            read_line(reader),
            "2 again
"
        );
    }
    drop((silent, talker, talker_reader));
    wait_until("the requests end", GENEROUS, || handle.in_flight() == 0);
    let mut events = log.lock().unwrap().clone();
    events.sort();
    // The talker's one line, the silent ones' two; four setups.
    let mut expected = vec!["finish after 1"];
    expected.extend(["finish after 2"; 3]);
    expected.extend(["setup"; 4]);
    assert_eq!(events, expected);
    running.shutdown().expect("stop").server_close();
}

/// `wait_for_first_input`: a client that closes (an EOF) or resets before its first byte
/// ends cleanly: `finish` once (after its setup), no turn, no error, the open count back to
/// 0; a client silent past the idle timeout is closed by the server and reported as timed
/// out.
fn silent_new_connections_end_cleanly<C: Strategy + Default>() {
    let idle = Duration::from_millis(300);
    let options = StreamOptions::default()
        .wait_for_first_input(true)
        .idle_timeout(Some(idle));
    let handler = Counter::new(options);
    let log = Arc::clone(&handler.log);
    let errors = Arc::clone(&handler.log);
    let server: Server<Tcp, C> = TcpServer::builder_handler(handler)
        .strategy(C::default())
        .handle_error(move |_, _, error| {
            let what = if error.is_timed_out() {
                "timed out"
            } else {
                "failed"
            };
            errors
                .lock()
                .unwrap()
                .push(format!("error: {what}: {error}"));
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    let handle = running.shutdown_handle();
    let address = running.server_address().clone();
    let leaving: Vec<_> = (0..2)
        .map(|_| {
            let c = socket::Socket::new(address.family(), socket::Type::Stream).unwrap();
            c.connect(&address).expect("connect");
            c
        })
        .collect();
    wait_until("both wait", GENEROUS, || handle.waiting() == 2);
    leaving[1]
        .setsockopt(socket::opt::Linger, Some(Duration::ZERO))
        .unwrap();
    drop(leaving); // one EOF, one RST
    wait_until("both end", GENEROUS, || handle.in_flight() == 0);
    assert_eq!(handle.waiting(), 0);
    let mut events = std::mem::take(&mut *log.lock().unwrap());
    events.sort();
    assert_eq!(
        events,
        ["finish after 0", "finish after 0", "setup", "setup"]
    );
    // Silent past the idle timeout: the server closes it, and says why.
    let (_client, mut reader) = connect(&running);
    let waited = Instant::now();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the server closes");
    let took = waited.elapsed();
    assert!(rest.is_empty());
    assert!(
        took >= idle - Duration::from_millis(20) && took < Duration::from_secs(5),
        "{took:?}"
    );
    wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
    let events = log.lock().unwrap().clone();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[..2], ["setup", "finish after 0"]);
    assert!(
        events[2].starts_with("error: timed out:") && events[2].contains("idle_timeout"),
        "{events:?}"
    );
    running.shutdown().expect("stop").server_close();
}

/// `wait_for_first_input`: a graceful stop ends silent new connections at once (`finish`,
/// no turn), and gives a first turn to one whose first line is there unread.
fn a_graceful_stop_ends_silent_new_connections<C: Strategy + Default>() {
    let handler = Counter::new(StreamOptions::default().wait_for_first_input(true));
    let log = Arc::clone(&handler.log);
    let running = serve::<C>(handler);
    let handle = running.shutdown_handle();
    let (_silent, mut silent_reader) = connect(&running);
    let (mut speaker, mut speaker_reader) = connect(&running);
    wait_until("both wait", GENEROUS, || handle.waiting() == 2);
    speaker
        .write_all(
            b"last
",
        )
        .unwrap();
    let started = Instant::now();
    let report = handle.shutdown_gracefully(GENEROUS).expect("graceful stop");
    assert!(started.elapsed() < Duration::from_secs(5), "{report:?}");
    assert_eq!(report.forced, 0, "{report:?}");
    let mut none = String::new();
    silent_reader.read_to_string(&mut none).unwrap();
    assert_eq!(none, "");
    let mut rest = String::new();
    speaker_reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "1 last\n");
    assert_eq!(handle.in_flight(), 0);
    let mut events = log.lock().unwrap().clone();
    events.sort();
    assert_eq!(
        events,
        ["finish after 0", "finish after 1", "setup", "setup"]
    );
    running.shutdown().expect("stop").server_close();
}

/// A loop driven by `handle_request` (Python's `while True: server.handle_request()`): each
/// call handles one request, and the input of a waiting connection is one, so the handler's
/// later turns run and its end (the client's EOF) too; `handle_timeout` never runs. With
/// `wait_for_first_input`, the accept (and setup) is one request and the first line another.
fn handle_request_serves_waiting_connections<C: Strategy + Default>() {
    for first in [false, true] {
        let options = StreamOptions::default().wait_for_first_input(first);
        let handler = Counter::new(options);
        let log = Arc::clone(&handler.log);
        let timeouts = Arc::clone(&handler.log);
        let mut server: Server<Tcp, C> = TcpServer::builder_handler(handler)
            .strategy(C::default())
            .timeout(Some(GENEROUS))
            .handle_timeout(move |_| timeouts.lock().unwrap().push("timeout".into()))
            .bind("127.0.0.1:0")
            .expect("bind");
        let handle = server.shutdown_handle();
        let address = server.server_address().to_string();
        let client = std::thread::spawn(move || {
            let mut client = TcpStream::connect(address).expect("connect");
            client.set_read_timeout(Some(GENEROUS)).unwrap();
            let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
            for i in 1..=3 {
                client.write_all(format!("m{i}\n").as_bytes()).unwrap();
                assert_eq!(read_line(&mut reader), format!("{i} m{i}\n"));
            }
        });
        // The accept (with the first line, unless it waits for it), the other lines, the EOF.
        for _ in 0..if first { 5 } else { 4 } {
            server.handle_request().expect("handle_request");
        }
        client.join().expect("the client's exchanges");
        wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
        assert_eq!(
            *log.lock().unwrap(),
            ["setup", "finish after 3"],
            "first input {first}"
        );
        server.server_close();
    }
}

macro_rules! suite {
    ($($name:ident),*) => {
        mod sync {
            $(#[test] fn $name() { super::$name::<super::Synchronous>() })*
        }
        mod threading {
            $(#[test] fn $name() { super::$name::<super::Threading>() })*
        }
    };
}

suite!(
    state_is_kept_and_setup_and_finish_run_once,
    a_reset_while_waiting_ends_it_cleanly,
    idle_timeout_ends_a_waiting_connection,
    writes_from_another_thread_reach_a_waiting_connection,
    an_error_in_a_later_turn_ends_it_with_finish_once,
    a_graceful_stop_ends_idle_waiters_and_serves_pending_input,
    silent_new_connections_wait_before_their_first_turn,
    silent_new_connections_end_cleanly,
    a_graceful_stop_ends_silent_new_connections,
    handle_request_serves_waiting_connections
);

/// Answers each line, recording the thread of each turn.
#[derive(Clone, Default)]
struct Turns(Arc<Mutex<Vec<std::thread::ThreadId>>>);

impl Handler<StreamRequest> for Turns {
    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut line = String::new();
        if req.rfile.read_line(&mut line)? == 0 {
            return Ok(Next::Done);
        }
        self.0.lock().unwrap().push(std::thread::current().id());
        req.wfile.write_all(line.as_bytes())?;
        Ok(Next::WaitForInput)
    }
}

/// `Threading::linger`: while the pool has room (below `max_threads`, nothing queued), a turn
/// that ends waits on its thread for the next input, not parked meanwhile, and the next turn
/// runs on that thread; with no linger the connection parks after each turn.
#[test]
fn a_turn_lingers_on_its_thread_while_the_pool_has_room() {
    for linger in [Some(GENEROUS), None] {
        let turns = Turns::default();
        let threads = Arc::clone(&turns.0);
        let server: Server<Tcp, Threading> = TcpServer::builder_handler(turns)
            .strategy(Threading::new().max_threads(4).linger(linger))
            .bind("127.0.0.1:0")
            .expect("bind");
        let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
        let handle = running.shutdown_handle();
        let (mut client, mut reader) = connect(&running);
        for i in 1..=3 {
            client.write_all(format!("m{i}\n").as_bytes()).unwrap();
            assert_eq!(read_line(&mut reader), format!("m{i}\n"));
            if linger.is_some() {
                assert_eq!(handle.waiting(), 0, "a lingering turn is not parked");
            } else {
                wait_until("the connection parks", GENEROUS, || handle.waiting() == 1);
            }
        }
        if linger.is_some() {
            let threads = threads.lock().unwrap();
            assert!(
                threads.iter().all(|t| *t == threads[0]),
                "the turns ran on one thread"
            );
        }
        drop((client, reader));
        wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
        running.shutdown().expect("stop").server_close();
    }
}

/// Answers each line once the test lets its turn end: the turn reads its line, tells the test,
/// and waits for the test's go, so that what the test sends meanwhile comes while the turn runs.
#[derive(Clone)]
struct Gated {
    read: std::sync::mpsc::SyncSender<String>,
    go: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl Handler<StreamRequest> for Gated {
    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut line = String::new();
        let n = req.rfile.read_line(&mut line)?;
        self.read.send(line.clone())?;
        self.go.lock().unwrap().recv_timeout(GENEROUS)?;
        if n == 0 {
            return Ok(Next::Done);
        }
        req.wfile.write_all(line.to_uppercase().as_bytes())?;
        Ok(Next::WaitForInput)
    }
}

/// Input, and the client's end, that come while a turn runs (after its read) are seen by the
/// wait that follows it: the reactor reports an edge once, and a report that comes while the
/// connection is not parked must not be lost (sync, threading parking at each wait, threading
/// with its default linger).
#[test]
fn input_and_the_end_during_a_turn_are_not_lost() {
    fn run<C: Strategy>(strategy: C, what: &str) {
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel(8);
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let handler = Gated {
            read: read_tx,
            go: Arc::new(Mutex::new(go_rx)),
        };
        let server: Server<Tcp, C> = TcpServer::builder_handler(handler)
            .strategy(strategy)
            .bind("127.0.0.1:0")
            .expect("bind");
        let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
        let handle = running.shutdown_handle();
        let (mut client, mut reader) = connect(&running);
        let turn_read = |expected: &str| {
            let line = read_rx
                .recv_timeout(GENEROUS)
                .unwrap_or_else(|e| panic!("{what}: no turn read {expected:?} within 10 s: {e}"));
            assert_eq!(line, expected, "{what}");
        };
        for i in 1..=5 {
            if i == 1 {
                client.write_all(b"m1\n").unwrap();
            }
            turn_read(&format!("m{i}\n"));
            // The next line comes while this turn runs, after its read.
            client
                .write_all(format!("m{}\n", i + 1).as_bytes())
                .unwrap();
            go_tx.send(()).unwrap();
            assert_eq!(read_line(&mut reader), format!("M{i}\n"), "{what}");
        }
        turn_read("m6\n");
        // The client's end comes while the turn runs: the wait after it sees it.
        client.shutdown(std::net::Shutdown::Write).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(read_line(&mut reader), "M6\n", "{what}");
        // An end while waiting ends the request with no further turn.
        assert_eq!(read_line(&mut reader), "", "{what}: the server closes");
        assert!(read_rx.try_recv().is_err(), "{what}: no turn after the end");
        wait_until("the request ends", GENEROUS, || handle.in_flight() == 0);
        running.shutdown().expect("stop").server_close();
    }
    run(Synchronous, "sync");
    run(Threading::new().linger(None), "threading, no linger");
    run(Threading::new(), "threading, its linger");
}
