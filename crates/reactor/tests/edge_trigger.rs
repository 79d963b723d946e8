//! The edge-trigger contract: bounded accept batches with `still_ready`, and a listener taken
//! out of the reactor and put back while connections wait.
//!
//! The listeners are Unix stream listeners: a Unix connect is queued before `connect` returns,
//! so a test knows exactly how many connections wait. (TCP's final ACK on loopback may be
//! processed a moment after the client's connect returned, on a loaded machine later still: a
//! TCP backlog can be short of what the test counts, or grow while it watches for silence.)

mod util;

use std::io::{self, ErrorKind};
use std::os::unix::net::{UnixListener, UnixStream};

use tempfile::TempDir;

use sockserve_reactor::{Interest, Reactor};
use util::{assert_quiet, select_some};

const LISTENER: usize = 0;
const BATCH: usize = 8;

/// A non-blocking listener in a directory of its own (removed with the `TempDir`).
struct Listener {
    listener: UnixListener,
    dir: TempDir,
}

impl Listener {
    fn new() -> io::Result<Listener> {
        let dir = tempfile::tempdir()?;
        let listener = UnixListener::bind(dir.path().join("l.sock"))?;
        listener.set_nonblocking(true)?;
        Ok(Listener { listener, dir })
    }

    /// `n` connections, each queued in the backlog when `connect` returns (the backlog is
    /// std's 128, more than any test here queues).
    fn connect(&self, n: usize) -> io::Result<Vec<UnixStream>> {
        let path = self.dir.path().join("l.sock");
        (0..n).map(|_| UnixStream::connect(&path)).collect()
    }
}

/// A non-blocking listener with `n` connections waiting in its backlog.
fn listener_with_backlog(n: usize) -> io::Result<(Listener, Vec<UnixStream>)> {
    let listener = Listener::new()?;
    let clients = listener.connect(n)?;
    Ok((listener, clients))
}

/// Accepts up to `BATCH` connections; `Ok(true)` if it stopped at `WouldBlock`.
fn accept_batch(listener: &UnixListener, served: &mut usize) -> io::Result<bool> {
    for _ in 0..BATCH {
        match listener.accept() {
            Ok(_) => *served += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Serves until `total` connections were accepted, in batches, calling `still_ready` when a
/// batch ends before `WouldBlock`. Returns the number of selects it took.
fn serve_in_batches(
    reactor: &mut Reactor,
    listener: &UnixListener,
    served: &mut usize,
    total: usize,
) -> io::Result<usize> {
    let mut selects = 0;
    while *served < total {
        selects += 1;
        let ready = select_some(
            reactor,
            &format!("serving, {served} of {total} accepted so far"),
        );
        assert_eq!(ready.len(), 1, "{ready:?}");
        assert!(ready[0].key == LISTENER && ready[0].readable, "{ready:?}");
        if !accept_batch(listener, served)? {
            reactor.still_ready(LISTENER, Interest::READABLE);
        }
    }
    Ok(selects)
}

#[test]
fn still_ready_serves_a_backlog_larger_than_one_batch() -> io::Result<()> {
    const PENDING: usize = 50;
    let (listener, _clients) = listener_with_backlog(PENDING)?;
    let listener = &listener.listener;
    let mut reactor = Reactor::new()?;
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    let mut served = 0;
    let selects = serve_in_batches(&mut reactor, listener, &mut served, PENDING)?;
    assert_eq!(served, PENDING);
    assert!(
        selects >= PENDING.div_ceil(BATCH),
        "{selects} selects for {PENDING} in batches of {BATCH}"
    );
    // Drained: the listener is quiet again, and still_ready is not left behind.
    assert!(accept_batch(listener, &mut served)?);
    assert_quiet(&mut reactor, "all served");
    Ok(())
}

#[test]
fn without_still_ready_the_edge_is_not_repeated() -> io::Result<()> {
    // Why the contract exists: stopping before WouldBlock without still_ready leaves
    // connections waiting that no select reports (until a new connect makes a new edge).
    let (listener, _clients) = listener_with_backlog(2 * BATCH)?;
    let listener = &listener.listener;

    let mut reactor = Reactor::new()?;
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    select_some(&mut reactor, "listener readable");
    let mut served = 0;
    for _ in 0..BATCH {
        listener.accept()?;
        served += 1;
    }
    assert_quiet(&mut reactor, "edge-triggered: no second report");
    // The connections are still there, and still_ready is how to get them reported.
    reactor.still_ready(LISTENER, Interest::READABLE);
    select_some(&mut reactor, "still_ready");
    loop {
        match listener.accept() {
            Ok(_) => served += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    assert_eq!(served, 2 * BATCH);
    Ok(())
}

#[test]
fn reregistering_a_paused_listener_reports_waiting_connections() -> io::Result<()> {
    const PENDING: usize = 30;
    let (listener, _clients) = listener_with_backlog(PENDING)?;
    let listener = &listener.listener;
    let mut reactor = Reactor::new()?;
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    select_some(&mut reactor, "listener readable");
    let mut served = 0;
    assert!(!accept_batch(listener, &mut served)?);

    // Pause: as the server does under backpressure. The still_ready said just before is
    // forgotten with the registration.
    reactor.still_ready(LISTENER, Interest::READABLE);
    reactor.unregister(listener)?;
    assert_quiet(&mut reactor, "paused listener");

    // Resume: registering a listener that is already readable reports it, with no new connect.
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    serve_in_batches(&mut reactor, listener, &mut served, PENDING)?;
    assert_eq!(served, PENDING);
    Ok(())
}

#[test]
fn connections_queued_while_unregistered_are_reported_on_register() -> io::Result<()> {
    let unix = Listener::new()?;
    let listener = &unix.listener;
    let mut reactor = Reactor::new()?;
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    assert_quiet(&mut reactor, "no connections yet");
    reactor.unregister(listener)?;

    let _clients = unix.connect(BATCH + 3)?;
    assert_quiet(&mut reactor, "unregistered listener");

    reactor.register(listener, LISTENER, Interest::READABLE)?;
    let mut served = 0;
    serve_in_batches(&mut reactor, listener, &mut served, BATCH + 3)?;
    assert_eq!(served, BATCH + 3);
    Ok(())
}

#[test]
fn still_ready_merges_with_a_fresh_event() -> io::Result<()> {
    let (listener, _clients) = listener_with_backlog(2 * BATCH)?;
    let listener = &listener.listener;
    let mut reactor = Reactor::new()?;
    reactor.register(listener, LISTENER, Interest::READABLE)?;
    select_some(&mut reactor, "listener readable");
    let mut served = 0;
    assert!(!accept_batch(listener, &mut served)?);
    reactor.still_ready(LISTENER, Interest::READABLE);
    // `modify` makes the kernel check readiness again: a fresh edge for the same key, queued
    // before `modify` returns. Merged with the still_ready entry, it is still one entry.
    reactor.modify(listener, LISTENER, Interest::READABLE)?;
    let ready = select_some(&mut reactor, "fresh edge plus still_ready");
    assert_eq!(ready.len(), 1, "no duplicates: {ready:?}");
    Ok(())
}
