//! Connections that wait between their handler's turns (`Next::WaitForInput`) under the
//! forking strategy, in a binary of its own (forking a test harness with its threads is not
//! something to share): the child serves its one connection across turns and waits on its own
//! socket in between. What the handler and the hooks do in a child is seen through an
//! `EventLog`, whose socket the children inherit. Prints `waiting_forking: N passed, M failed`
//! and exits non-zero on a failure.
// A harness-less test reports on stdout itself, as libtest would.
#![allow(clippy::print_stdout)]

use handler::{BoxError, Handler, HandlerError, Next, ServerContext, StreamOptions, StreamRequest};
use nix::sys::wait::{WaitPidFlag, waitpid};
use server::{Hooks, Server, Tcp, TcpServer};
use socket::{Address, Shutdown, Socket, Type, opt};
use sockserve_mixins::Forking;
use std::{
    io::{BufRead, Write},
    time::{Duration, Instant},
};
use testsupport::{EventLog, EventSender, GENEROUS, wait_until};

/// Answers each line with its number across turns; records setup, the end of input and
/// finish, each with the process it ran in.
#[derive(Clone)]
struct Counter {
    lines: usize,
    events: EventSender,
    options: StreamOptions,
}

impl Handler<StreamRequest> for Counter {
    fn options(&self) -> StreamOptions {
        self.options.clone()
    }
    fn setup(&mut self, _req: &mut StreamRequest) -> Result<(), BoxError> {
        self.events
            .send(&format!("setup in {}", std::process::id()));
        Ok(())
    }
    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut line = String::new();
        if req.rfile.read_line(&mut line)? == 0 {
            self.events.send("eof");
            return Ok(Next::Done);
        }
        match line.as_str() {
            "fail\n" => return Err("asked to fail".into()),
            // A thread of the child writes while the connection waits.
            "bg\n" => {
                let writer = req.writer();
                let events = self.events.clone();
                std::thread::spawn(move || {
                    let sent = writer.write_all(b"from a thread\n").is_ok();
                    events.send(&format!("thread wrote: {sent}"));
                });
            }
            _ => {}
        }
        self.lines += 1;
        writeln!(req.wfile, "{} {}", self.lines, line.trim_end())?;
        Ok(Next::WaitForInput)
    }
    fn finish(&mut self, _req: &mut StreamRequest) -> Result<(), BoxError> {
        let pid = std::process::id();
        self.events
            .send(&format!("finish after {} in {pid}", self.lines));
        Ok(())
    }
}

/// Records `handle_error` (its error is a timeout or not) and `shutdown_request`.
struct Recorder(EventSender);

impl Hooks for Recorder {
    fn handle_error(&self, _: &ServerContext, _: &Address, error: &HandlerError) {
        let what = if error.is_timed_out() {
            "timed out"
        } else {
            "failed"
        };
        self.0.send(&format!("handle_error: {what}: {error}"));
    }
    fn shutdown_request(&self, _: &ServerContext, _: &Address) {
        self.0.send("shutdown_request");
    }
}

/// A forking server of `Counter`, serving on a thread of its own (10 ms ticks), and its log.
fn serve(options: StreamOptions) -> (server::Running<Tcp, Forking>, EventLog) {
    let log = EventLog::new();
    let handler = Counter {
        lines: 0,
        events: log.sender(),
        options,
    };
    let server: Server<Tcp, Forking> = TcpServer::builder_handler(handler)
        .strategy(Forking::new())
        .hooks(Recorder(log.sender()))
        .bind("127.0.0.1:0")
        .expect("bind");
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    (running, log)
}

/// A client whose reads and writes give up after `GENEROUS`.
fn client(running: &server::Running<Tcp, Forking>) -> Socket {
    let address = running.server_address();
    let c = Socket::new(address.family(), Type::Stream).expect("a client socket");
    c.settimeout(Some(GENEROUS));
    c.connect(address).expect("connect");
    c
}

/// Reads until `n` newlines came (bounded by the client's timeout).
fn lines(c: &Socket, n: usize) -> String {
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == b'\n').count() < n {
        let chunk = c.recv(100).expect("a reply within 10 s");
        assert!(!chunk.is_empty(), "closed early, after {got:?}");
        got.extend(chunk);
    }
    String::from_utf8(got).expect("text")
}

/// Reads to the server's end of the connection; what came before it.
fn rest(c: &Socket) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let chunk = c.recv(100).expect("the server's end within 10 s");
        if chunk.is_empty() {
            return got;
        }
        got.extend(chunk);
    }
}

/// The events of a request that ended cleanly after `n` lines: setup and finish in the same
/// process (a child, not this one), `extra` between them, then `shutdown_request`.
fn assert_ended(events: &[String], n: usize, extra: &[&str]) {
    let setup = events.first().map(String::as_str).unwrap_or_default();
    let pid = setup
        .strip_prefix("setup in ")
        .unwrap_or_else(|| panic!("no setup first: {events:?}"));
    assert_ne!(pid, std::process::id().to_string(), "set up in the parent");
    let mut expected = vec![format!("setup in {pid}")];
    expected.extend(extra.iter().map(|&e| e.to_owned()));
    expected.push(format!("finish after {n} in {pid}"));
    expected.push("shutdown_request".to_owned());
    assert_eq!(events, expected);
}

/// Stops the server and checks that no child and no request is left.
fn stop(running: server::Running<Tcp, Forking>) {
    let handle = running.shutdown_handle();
    wait_until("the child reaped", GENEROUS, || {
        handle.children() == 0 && handle.in_flight() == 0
    });
    let mut server = running.shutdown().expect("stop");
    server.server_close();
    assert_eq!(server.strategy().active_children(), 0);
}

/// Three turns in one child, each answered with the count kept across them; setup and
/// finish once, in that child. Nothing waits in the parent's reactor: the child waits on its
/// own socket.
fn state_is_kept_and_setup_and_finish_run_once() {
    let (running, log) = serve(StreamOptions::default());
    let handle = running.shutdown_handle();
    let c = client(&running);
    for i in 1..=3 {
        c.sendall(format!("m{i}\n").as_bytes()).unwrap();
        assert_eq!(lines(&c, 1), format!("{i} m{i}\n"));
        assert_eq!((handle.children(), handle.in_flight()), (1, 1));
        assert_eq!(handle.waiting(), 0, "a child waits in itself");
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rest(&c), b"");
    assert_ended(&log.wait_for(3), 3, &[]);
    stop(running);
}

/// Lines pipelined in one write, and a line split across writes: every one answered, none
/// lost in the buffer between turns.
fn pipelined_bytes_are_not_lost() {
    let (running, log) = serve(StreamOptions::default());
    let c = client(&running);
    c.sendall(b"a\nb\nc\nd").unwrap();
    assert_eq!(lines(&c, 3), "1 a\n2 b\n3 c\n");
    c.sendall(b"e\nf\n").unwrap();
    assert_eq!(lines(&c, 2), "4 de\n5 f\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rest(&c), b"");
    assert_ended(&log.wait_for(3), 5, &[]);
    stop(running);
}

/// A turn after a wait fails in the child: `finish` once, then `handle_error` with the
/// error, then `shutdown_request`; the client sees the close.
fn an_error_in_a_later_turn_ends_it_with_finish_once() {
    let (running, log) = serve(StreamOptions::default());
    let c = client(&running);
    c.sendall(b"x\n").unwrap();
    assert_eq!(lines(&c, 1), "1 x\n");
    c.sendall(b"fail\n").unwrap();
    assert_eq!(rest(&c), b"");
    let mut events = log.wait_for(4);
    let error = events.remove(2);
    assert!(
        error.starts_with("handle_error: failed:") && error.contains("asked to fail"),
        "{error}"
    );
    assert_ended(&events, 1, &[]);
    stop(running);
}

/// Another thread of the child writes to the connection (its `ConnectionWriter`) while the
/// connection waits between turns; the next turn is served as usual.
fn writes_from_another_thread_reach_a_waiting_connection() {
    let (running, log) = serve(StreamOptions::default());
    let c = client(&running);
    c.sendall(b"bg\n").unwrap();
    let mut got: Vec<String> = lines(&c, 2).lines().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ["1 bg", "from a thread"]);
    c.sendall(b"y\n").unwrap();
    assert_eq!(lines(&c, 1), "2 y\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rest(&c), b"");
    // The thread's own event may come at any point after the setup.
    let mut events = log.wait_for(4);
    let at = events.iter().position(|e| e.starts_with("thread wrote"));
    assert_eq!(
        at.map(|i| events.remove(i)).as_deref(),
        Some("thread wrote: true"),
        "{events:?}"
    );
    assert_ended(&events, 2, &[]);
    stop(running);
}

/// The role of this binary re-executed as a client (`eof ADDR` or `reset ADDR`): a client
/// in a process of its own, since a forked request child holds a copy of every descriptor
/// this process had at the fork, the client's own socket among them, and a close here would
/// not end the connection. Sends a line, reads its answer, then leaves: a plain close (an
/// EOF), or `SO_LINGER` 0 and close (an RST); `silent` closes (an EOF) without sending.
const CLIENT_ROLE: &str = "SOCKSERVE_WAITING_CLIENT";

fn client_role(how: &str) -> ! {
    let (how, address) = how.split_once(' ').expect("HOW ADDR");
    let address: Address = address.parse().expect("an address");
    let c = Socket::new(address.family(), Type::Stream).expect("a client socket");
    c.settimeout(Some(GENEROUS));
    c.connect(&address).expect("connect");
    if how != "silent" {
        c.sendall(b"x\n").unwrap();
        assert_eq!(lines(&c, 1), "1 x\n");
    }
    if how == "reset" {
        c.setsockopt(opt::Linger, Some(Duration::ZERO)).unwrap();
    }
    drop(c);
    println!("client left by {how}");
    std::process::exit(0)
}

/// Runs the client role (`eof` or `reset`) against `running`, bounded.
fn client_leaving_by(how: &str, running: &server::Running<Tcp, Forking>) {
    let mut role = std::process::Command::new(std::env::current_exe().unwrap());
    role.env(CLIENT_ROLE, format!("{how} {}", running.server_address()));
    let output = testsupport::output_within(role, "the client process", GENEROUS);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("client left by"),
        "{}: {stdout} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A client in a process of its own leaves (`how`: the client role's) while its connection
/// waits: the child's wait ends, `finish` and `shutdown_request` run, no error is reported,
/// nothing more happens, and the counts go back to 0.
fn client_leaves_while_waiting(how: &str) {
    let (running, log) = serve(StreamOptions::default());
    client_leaving_by(how, &running);
    assert_ended(&log.wait_for(3), 1, &[]);
    stop(running);
    assert!(log.drain().is_empty(), "nothing after shutdown_request");
}

/// The client closes (an EOF) while its connection waits.
fn eof_while_waiting_ends_it_cleanly() {
    client_leaves_while_waiting("eof");
}

/// The client resets the connection (`SO_LINGER` 0, then close: an RST) while it waits: the
/// request ends as cleanly as at an EOF.
fn a_reset_while_waiting_ends_it_cleanly() {
    client_leaves_while_waiting("reset");
}

/// A client silent past the idle timeout while its connection waits: the child closes it,
/// reports the timeout through `handle_error`, and ends.
fn idle_timeout_ends_a_waiting_connection() {
    let idle = Duration::from_millis(200);
    let (running, log) = serve(StreamOptions::default().idle_timeout(Some(idle)));
    let c = client(&running);
    c.sendall(b"x\n").unwrap();
    assert_eq!(lines(&c, 1), "1 x\n");
    let waited = Instant::now();
    assert_eq!(rest(&c), b"");
    let took = waited.elapsed();
    assert!(
        took >= idle - Duration::from_millis(20) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    // finish runs first, then handle_error reports the wait's error, then shutdown_request.
    let mut events = log.wait_for(4);
    let error = events.remove(2);
    assert!(
        error.starts_with("handle_error: timed out:") && error.contains("idle_timeout"),
        "{error}"
    );
    assert_ended(&events, 1, &[]);
    stop(running);
}

/// A graceful stop with connections waiting in their children: the parent tells its
/// children the stop began (a socket they all watch beside their connection), so a child
/// whose connection has no input ends at once, cleanly (finish, shutdown_request, no error),
/// and one with unread input gets its turn first; the stop returns long before its grace,
/// with nothing forced and nothing left running.
fn a_graceful_stop_ends_waiting_children() {
    let (running, log) = serve(StreamOptions::default());
    let handle = running.shutdown_handle();
    let clients = [client(&running), client(&running)];
    for c in &clients {
        c.sendall(b"x\n").unwrap();
        assert_eq!(lines(c, 1), "1 x\n");
    }
    // A child may answer before the parent, back from its fork, has counted it.
    wait_until("both children counted", GENEROUS, || handle.children() == 2);
    // Unread when the stop comes (or read by the turn it starts before: the same answer).
    clients[1].sendall(b"last\n").unwrap();
    let grace = GENEROUS;
    let (mut server, report) = running.shutdown_gracefully(grace).expect("graceful stop");
    assert!(
        report.took < Duration::from_secs(5),
        "waited for the grace: {report:?}"
    );
    assert_eq!((report.forced, report.still_running), (0, 0), "{report:?}");
    assert!(report.loop_stopped, "{report:?}");
    assert_eq!(rest(&clients[0]), b"", "the idle waiting connection ended");
    assert_eq!(
        rest(&clients[1]),
        b"2 last\n",
        "the pending input got its turn"
    );
    // Two children's events, interleaved.
    let events = log.wait_for(6);
    let mut finishes: Vec<_> = events
        .iter()
        .filter_map(|e| e.strip_prefix("finish after "))
        .map(|e| e.split(' ').next().unwrap_or_default())
        .collect();
    finishes.sort_unstable();
    let shutdowns = events.iter().filter(|e| *e == "shutdown_request").count();
    assert_eq!((finishes, shutdowns), (vec!["1", "2"], 2), "{events:?}");
    assert!(
        !events.iter().any(|e| e.starts_with("handle_error")),
        "{events:?}"
    );
    assert_eq!(server.strategy().active_children(), 0, "{report:?}");
    server.server_close();
    assert_eq!((handle.children(), handle.in_flight()), (0, 0));
}

/// `wait_for_first_input` under forking: the child is forked at the accept, runs `setup`
/// and waits for the first line on its own socket (the handler's state is the child's);
/// then its turns as usual. A client that closes before its first byte (a process of its
/// own: the child holds a copy of this process's client socket) ends it cleanly, `finish`
/// after no turn; one silent past the idle timeout is reported as timed out.
fn silent_new_connections_wait_in_their_child() {
    let idle = Duration::from_millis(300);
    let options = StreamOptions::default()
        .wait_for_first_input(true)
        .idle_timeout(Some(idle));
    let (running, log) = serve(options);
    let handle = running.shutdown_handle();
    let c = client(&running);
    let setup = log.wait_for(1);
    assert!(setup[0].starts_with("setup in "), "{setup:?}");
    // The child's setup may run before the parent, back from its fork, has counted it.
    wait_until("the child counted", GENEROUS, || handle.children() == 1);
    assert_eq!(handle.waiting(), 0);
    c.sendall(b"a\n").unwrap();
    assert_eq!(lines(&c, 1), "1 a\n");
    c.sendall(b"b\n").unwrap();
    assert_eq!(lines(&c, 1), "2 b\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rest(&c), b"");
    let mut events = setup;
    events.extend(log.wait_for(2));
    assert_ended(&events, 2, &[]);
    drop(c);
    client_leaving_by("silent", &running);
    assert_ended(&log.wait_for(3), 0, &[]);
    let c = client(&running);
    let waited = Instant::now();
    assert_eq!(rest(&c), b"");
    let took = waited.elapsed();
    assert!(
        took >= idle - Duration::from_millis(20) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let mut events = log.wait_for(4);
    let error = events.remove(2);
    assert!(
        error.starts_with("handle_error: timed out:") && error.contains("idle_timeout"),
        "{error}"
    );
    assert_ended(&events, 0, &[]);
    stop(running);
    assert!(log.drain().is_empty(), "nothing after shutdown_request");
}

fn no_children_left_at_all() {
    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        Err(nix::errno::Errno::ECHILD) => {}
        other => panic!("a child was left behind: {other:?}"),
    }
}

fn main() {
    if let Ok(how) = std::env::var(CLIENT_ROLE) {
        client_role(&how);
    }
    let checks: &[(&str, fn())] = &[
        (
            "state kept, setup and finish once",
            state_is_kept_and_setup_and_finish_run_once,
        ),
        ("pipelined bytes not lost", pipelined_bytes_are_not_lost),
        (
            "an error in a later turn",
            an_error_in_a_later_turn_ends_it_with_finish_once,
        ),
        (
            "writes from another thread",
            writes_from_another_thread_reach_a_waiting_connection,
        ),
        ("EOF while waiting", eof_while_waiting_ends_it_cleanly),
        ("reset while waiting", a_reset_while_waiting_ends_it_cleanly),
        (
            "idle timeout while waiting",
            idle_timeout_ends_a_waiting_connection,
        ),
        (
            "graceful stop with waiting children",
            a_graceful_stop_ends_waiting_children,
        ),
        (
            "silent new connections wait in their child",
            silent_new_connections_wait_in_their_child,
        ),
        ("no zombies", no_children_left_at_all),
    ];
    testsupport::run_panicking_checks("waiting_forking", checks);
}
