//! Helpers shared by the reactor's integration tests: bounded selects and connected pairs.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use sockserve_reactor::{Reactor, Ready};

/// The longest any test waits for something that should happen at once.
pub(crate) const BOUND: Duration = Duration::from_secs(5);

/// How long a test watches for something that must *not* happen.
pub(crate) const QUIET: Duration = Duration::from_millis(100);

/// One `select`, bounded by [`BOUND`]; fails the test with `what` if nothing is ready.
pub(crate) fn select_some(reactor: &mut Reactor, what: &str) -> Vec<Ready> {
    let ready = reactor
        .select(Some(BOUND))
        .unwrap_or_else(|e| panic!("{what}: select failed: {e}"))
        .to_vec();
    assert!(!ready.is_empty(), "{what}: nothing ready within {BOUND:?}");
    ready
}

/// Selects (each bounded by [`BOUND`]) until an entry for `key` satisfies `pred`; returns it.
pub(crate) fn select_until(
    reactor: &mut Reactor,
    key: usize,
    what: &str,
    pred: impl Fn(&Ready) -> bool,
) -> Ready {
    // A few rounds: an earlier edge (say, writable) may come before the one awaited.
    for _ in 0..10 {
        let ready = select_some(reactor, what);
        if let Some(r) = ready.iter().find(|r| r.key == key && pred(r)) {
            return *r;
        }
    }
    panic!("{what}: key {key} never reported the awaited readiness");
}

/// Checks that nothing is reported during [`QUIET`].
pub(crate) fn assert_quiet(reactor: &mut Reactor, what: &str) {
    let ready = reactor
        .select(Some(QUIET))
        .unwrap_or_else(|e| panic!("{what}: select failed: {e}"))
        .to_vec();
    assert!(ready.is_empty(), "{what}: unexpected readiness {ready:?}");
}

/// A connected TCP pair on 127.0.0.1: (client, server side).
pub(crate) fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}
