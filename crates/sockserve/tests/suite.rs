//! CPython's `test_socketserver` checklist, written once and run for all twelve combinations:
//! sync, threading and forking, each over TCP, UDP, Unix stream and Unix datagram. One suite,
//! instantiated per kind and per strategy (not copied).
//!
//! Hooks and handlers record what they do in an [`EventLog`]: datagrams on a socket pair, which
//! a forked child inherits, so a child's `handle_error` reaches the test as a pool thread's
//! does. Counts are read after `server_close`, which joins the threads and reaps the children,
//! so nothing is still on its way.
//!
//! A binary of its own without libtest's harness (forking a process whose test threads run
//! other tests is not something to share): checks run one after the other; it prints
//! `suite: <kind>/<strategy>/<check> ... ok` per check and exits non-zero on a failure.

use sockserve::{
    Address, Forking, HandlerError, Hooks, Kind, RequestRef, Server, ServerContext, Socket,
    Strategy, Synchronous, Tcp, Threading, Type, Udp, UnixDatagram, UnixStream,
};
use std::{io::Write, path::Path, time::Duration};
use testsupport::{
    Check, EventLog, EventSender, GENEROUS, TEST_STR, datagram_client, dgram_examine, echo_line,
    run_checks, server_address, stream_client, stream_examine,
};

/// Hooks that record `verify`, `error: ...` and `shutdown` events, and may reject requests.
#[derive(Clone)]
struct Record {
    events: EventSender,
    reject: bool,
}

impl Hooks for Record {
    fn verify_request(&self, _: &ServerContext, _: RequestRef<'_>, _: &Address) -> bool {
        self.events.send("verify");
        !self.reject
    }

    fn handle_error(&self, _: &ServerContext, _: &Address, error: &HandlerError) {
        self.events.send(&format!("error: {error}"));
    }

    fn shutdown_request(&self, _: &ServerContext, _: &Address) {
        self.events.send("shutdown");
    }
}

/// What is left running of a strategy's requests after `server_close` (threads, children).
trait Left: Strategy + Default {
    /// Python's name of the mix-in, for the report.
    const LABEL: &'static str;
    fn left(&self) -> usize;
}

impl Left for Synchronous {
    const LABEL: &'static str = "sync";
    fn left(&self) -> usize {
        0
    }
}

impl Left for Threading {
    const LABEL: &'static str = "threading";
    fn left(&self) -> usize {
        self.threads()
    }
}

impl Left for Forking {
    const LABEL: &'static str = "forking";
    fn left(&self) -> usize {
        self.active_children()
    }
}

/// What differs between stream and datagram kinds in the checklist.
trait Shape: Kind + Sized {
    /// The kind's name in the report.
    const LABEL: &'static str;
    /// A Unix kind (binds a path in the test's directory).
    const UNIX: bool;
    /// A server of CPython's `MyHandler` (the one-line echo).
    fn echo<C: Left>(address: &str) -> Server<Self, C>;
    /// A server whose handler records `handled`, writes `partial` and then fails.
    fn failing<C: Left>(address: &str, hooks: Record) -> Server<Self, C>;
    /// CPython's `stream_examine` / `dgram_examine`.
    fn examine(address: &Address, dir: &Path);
    /// A client that makes one request the server will take.
    fn request(address: &Address, dir: &Path) -> Socket;
    /// What that client gets back (to EOF for a stream; one datagram, or none, for datagrams).
    fn reply(client: &Socket) -> Option<Vec<u8>>;
}

fn stream_reply(client: &Socket) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let chunk = client.recv(4096).expect("read to EOF (timed out?)");
        if chunk.is_empty() {
            return Some(out);
        }
        out.extend(chunk);
    }
}

fn datagram_reply(client: &Socket) -> Option<Vec<u8>> {
    // The absence of a reply can only be seen by waiting: briefly, after the server has closed.
    client.settimeout(Some(Duration::from_millis(200)));
    let reply = client.recvfrom(100).ok().map(|(data, _)| data);
    client.settimeout(Some(GENEROUS));
    reply
}

macro_rules! stream_shape {
    ($kind:ty, $name:literal, $unix:literal) => {
        impl Shape for $kind {
            const LABEL: &'static str = $name;
            const UNIX: bool = $unix;
            fn echo<C: Left>(address: &str) -> Server<Self, C> {
                Server::<Self, C>::bind(address, |req| {
                    Ok(echo_line(&mut req.rfile, &mut req.wfile)?)
                })
                .expect("bind")
            }
            fn failing<C: Left>(address: &str, hooks: Record) -> Server<Self, C> {
                let events = hooks.events.clone();
                Server::<Self, C>::builder(move |req| {
                    events.send("handled");
                    req.wfile.write_all(b"partial")?;
                    Err::<(), _>(std::io::Error::other("Test error").into())
                })
                .hooks(hooks)
                .bind(address)
                .expect("bind")
            }
            fn examine(address: &Address, _dir: &Path) {
                stream_examine(address)
            }
            fn request(address: &Address, _dir: &Path) -> Socket {
                stream_client(address)
            }
            fn reply(client: &Socket) -> Option<Vec<u8>> {
                stream_reply(client)
            }
        }
    };
}

macro_rules! datagram_shape {
    ($kind:ty, $name:literal, $unix:literal) => {
        impl Shape for $kind {
            const LABEL: &'static str = $name;
            const UNIX: bool = $unix;
            fn echo<C: Left>(address: &str) -> Server<Self, C> {
                Server::<Self, C>::bind(address, |req| {
                    Ok(echo_line(&mut req.rfile, &mut req.wfile)?)
                })
                .expect("bind")
            }
            fn failing<C: Left>(address: &str, hooks: Record) -> Server<Self, C> {
                let events = hooks.events.clone();
                Server::<Self, C>::builder(move |req| {
                    events.send("handled");
                    req.wfile.write_all(b"partial")?;
                    Err::<(), _>(std::io::Error::other("Test error").into())
                })
                .hooks(hooks)
                .bind(address)
                .expect("bind")
            }
            fn examine(address: &Address, dir: &Path) {
                dgram_examine(address, dir)
            }
            fn request(address: &Address, dir: &Path) -> Socket {
                let client = datagram_client(address, dir);
                client.sendto(TEST_STR, address).expect("send");
                client
            }
            fn reply(client: &Socket) -> Option<Vec<u8>> {
                datagram_reply(client)
            }
        }
    };
}

stream_shape!(Tcp, "tcp", false);
stream_shape!(UnixStream, "unix-stream", true);
datagram_shape!(Udp, "udp", false);
datagram_shape!(UnixDatagram, "unix-datagram", true);

/// Fails the check with `what` unless `ok`.
fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Tests 1-12, CPython's `run_server`: serve in a thread with a 10 ms poll, examine three
/// times, shutdown, close; the address is the bound one, the socket and its file are gone,
/// and no thread or child of a request is left.
fn echo<K: Shape, C: Left>() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = K::echo::<C>(&server_address(K::UNIX, dir.path()));
    let bound = server
        .socket()
        .expect("open")
        .getsockname()
        .expect("getsockname");
    ensure(server.server_address() == &bound, || {
        format!(
            "server_address {} is not the bound {bound}",
            server.server_address()
        )
    })?;
    let running = server.spawn_with(Duration::from_millis(10)).expect("spawn");
    for _ in 0..3 {
        K::examine(running.server_address(), dir.path());
    }
    let mut server = running.shutdown().map_err(|e| e.to_string())?;
    server.server_close();
    ensure(server.fileno() == -1, || {
        "server_close closes the socket".into()
    })?;
    if let Some(path) = server.server_address().as_pathname() {
        ensure(!path.exists(), || {
            format!("{} is left after close", path.display())
        })?;
    }
    let left = server.strategy().left();
    ensure(left == 0, || {
        format!("{left} request thread(s)/child(ren) left after close")
    })
}

/// Test 13, `test_shutdown` (Issue #2302): 20 servers, each stopped right after its thread
/// starts, whoever wins the race; none hangs.
fn shutdown_race<K: Shape, C: Left>() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let running: Vec<_> = (0..20)
        .map(|_| K::echo::<C>(&server_address(K::UNIX, dir.path())))
        .map(|server| server.spawn_with(Duration::from_millis(10)).expect("spawn"))
        .collect();
    for r in running {
        r.shutdown().map_err(|e| e.to_string())?.server_close();
    }
    Ok(())
}

/// Tests 14 and 16, `test_close_immediately` and `test_context_manager`: closing a server that
/// never served, and dropping one, close its socket; a dropped stream server refuses.
fn close_unserved<K: Shape, C: Left>() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut server = K::echo::<C>(&server_address(K::UNIX, dir.path()));
    server.server_close();
    ensure(server.fileno() == -1, || {
        "server_close closes the socket".into()
    })?;
    let address = K::echo::<C>(&server_address(K::UNIX, dir.path()))
        .server_address()
        .clone();
    if K::SOCKET_TYPE == Type::Stream {
        let probe = Socket::new(address.family(), Type::Stream).expect("socket");
        ensure(probe.connect(&address).is_err(), || {
            "a dropped server still accepts connections".into()
        })?;
    }
    if let Some(path) = address.as_pathname() {
        ensure(!path.exists(), || {
            format!("{} is left after drop", path.display())
        })?;
    }
    Ok(())
}

/// Tests 17, 19 and 21 (`test_*_handled`): a failing handler's error reaches `handle_error`
/// once, wherever the request ran (a forked child's through the event log), `shutdown_request`
/// runs once after it, and what the handler wrote before failing is still sent.
fn error_handled<K: Shape, C: Left>() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = EventLog::new();
    let hooks = Record {
        events: log.sender(),
        reject: false,
    };
    let mut server = K::failing::<C>(&server_address(K::UNIX, dir.path()), hooks);
    let client = K::request(server.server_address(), dir.path());
    server.handle_request().map_err(|e| e.to_string())?;
    // The reply first: a stream's EOF comes with shutdown_request, wherever the request runs.
    let reply = K::reply(&client);
    server.server_close(); // joins the thread, reaps the child: every event is in the log
    let events = log.drain();
    let expected = [
        "verify",
        "handled",
        "error: handle failed: Test error",
        "shutdown",
    ];
    ensure(events == expected, || {
        format!("events {events:?}, expected {expected:?}")
    })?;
    ensure(reply.as_deref() == Some(b"partial".as_slice()), || {
        format!("reply {reply:?}, expected the partial one")
    })
}

/// Test 26, `test_shutdown_request_called_if_verify_request_false` (bpo-26309): a rejected
/// request runs no handler, is shut down once, and the client gets EOF (no datagram reply).
fn verify_false<K: Shape, C: Left>() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = EventLog::new();
    let hooks = Record {
        events: log.sender(),
        reject: true,
    };
    let mut server = K::failing::<C>(&server_address(K::UNIX, dir.path()), hooks);
    let client = K::request(server.server_address(), dir.path());
    server.handle_request().map_err(|e| e.to_string())?;
    let reply = K::reply(&client);
    server.server_close();
    let events = log.drain();
    ensure(events == ["verify", "shutdown"], || {
        format!("events {events:?}, expected [verify, shutdown] and no handler")
    })?;
    let expected = (K::SOCKET_TYPE == Type::Stream).then(Vec::new);
    ensure(reply == expected, || {
        format!("reply {reply:?} to a rejected request, expected {expected:?}")
    })
}

/// One check's body.
type Body = fn() -> Result<(), String>;

/// The checks of one combination, named `kind/strategy/check`.
fn combination<K: Shape, C: Left>() -> Vec<(String, Body)> {
    let checks: [(&str, Body); 5] = [
        ("echo", echo::<K, C>),
        ("shutdown-race", shutdown_race::<K, C>),
        ("close-unserved", close_unserved::<K, C>),
        ("error-handled", error_handled::<K, C>),
        ("verify-false", verify_false::<K, C>),
    ];
    checks
        .into_iter()
        .map(|(check, body)| (format!("{}/{}/{check}", K::LABEL, C::LABEL), body))
        .collect()
}

/// The four kinds under one strategy.
fn strategy<C: Left>() -> Vec<(String, Body)> {
    let mut all = combination::<Tcp, C>();
    all.extend(combination::<Udp, C>());
    all.extend(combination::<UnixStream, C>());
    all.extend(combination::<UnixDatagram, C>());
    all
}

fn main() {
    let mut all = strategy::<Synchronous>();
    all.extend(strategy::<Threading>());
    all.extend(strategy::<Forking>());
    let checks: Vec<(&str, Check)> = all
        .iter()
        .map(|(name, body)| (name.as_str(), *body))
        .collect();
    run_checks("suite", &checks)
}
