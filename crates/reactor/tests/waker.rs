//! `Waker`: ends a `select` from other threads, before or during it, and coalesces.

mod util;

use std::io;
use std::net::UdpSocket;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use sockserve_reactor::{Interest, RESERVED_KEY, Reactor};
use util::BOUND;

#[test]
fn wake_from_another_thread_ends_select_none() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let selecting = thread::spawn(move || {
        let _ = started_tx.send(());
        let result = reactor.select(None).map(|ready| ready.len());
        let _ = done_tx.send(result);
    });
    started_rx
        .recv_timeout(BOUND)
        .expect("the selecting thread did not start");
    // The wake lands during the select or just before it: both must end it.
    waker.wake()?;
    let n = done_rx
        .recv_timeout(BOUND)
        .expect("select(None) was not woken within 5 s")?;
    assert_eq!(n, 0, "a wake is not a Ready entry");
    selecting.join().expect("selecting thread panicked");
    Ok(())
}

#[test]
fn wake_before_select_makes_it_return_at_once() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    waker.wake()?;
    let start = Instant::now();
    let ready = reactor.select(Some(BOUND))?;
    assert!(ready.is_empty(), "{ready:?}");
    assert!(
        start.elapsed() < BOUND,
        "a pending wake did not end select at once ({:?})",
        start.elapsed()
    );
    Ok(())
}

#[test]
fn many_wakes_coalesce_into_one_return() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    for _ in 0..10_000 {
        waker.wake()?;
    }
    assert!(reactor.select(Some(BOUND))?.is_empty());
    let start = Instant::now();
    assert!(reactor.select(Some(util::QUIET))?.is_empty());
    assert!(
        start.elapsed() >= util::QUIET - Duration::from_millis(5),
        "the wakes were not coalesced: a second select returned at once"
    );
    Ok(())
}

#[test]
fn wakes_are_not_reported_among_ready_entries() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    reactor.register(&sock, 1, Interest::WRITABLE)?;
    reactor.waker().wake()?;
    let ready = reactor.select(Some(BOUND))?;
    assert!(
        ready.iter().all(|r| r.key != RESERVED_KEY),
        "the waker showed up: {ready:?}"
    );
    assert_eq!(ready.len(), 1, "the socket's writable edge: {ready:?}");
    Ok(())
}

#[test]
fn many_clones_from_many_threads() -> io::Result<()> {
    // Each round, every thread wakes its own clone at once, all released together after this
    // thread's last select returned: so each select has a wake it must see, and a lost one
    // shows as a select that runs to its bound. (Wakes left over from a round may end the next
    // select early; that is coalescing, not a failure.)
    const THREADS: usize = 8;
    const ROUNDS: usize = 500;
    let mut reactor = Reactor::new()?;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let waker = reactor.waker();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> io::Result<()> {
                for _ in 0..ROUNDS {
                    barrier.wait();
                    waker.wake()?;
                }
                Ok(())
            })
        })
        .collect();
    for round in 0..ROUNDS {
        barrier.wait();
        let start = Instant::now();
        reactor.select(Some(BOUND))?;
        assert!(
            start.elapsed() < BOUND,
            "round {round}: the wakes of {THREADS} threads were all lost"
        );
    }
    for t in threads {
        t.join().expect("waking thread panicked")?;
    }
    // Nothing is left in a state that blocks later wakes.
    reactor.select(Some(Duration::ZERO))?;
    reactor.waker().wake()?;
    let start = Instant::now();
    reactor.select(Some(BOUND))?;
    assert!(start.elapsed() < BOUND, "a later wake was lost");
    Ok(())
}

#[test]
fn no_wake_is_lost_in_ping_pong() -> io::Result<()> {
    // The coalescing flag must never swallow a wake that comes after the reactor saw the last
    // one: each round, the other thread wakes once, after this thread's select returned.
    const ROUNDS: usize = 2_000;
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let other = thread::spawn(move || -> io::Result<()> {
        while go_rx.recv().is_ok() {
            waker.wake()?;
        }
        Ok(())
    });
    for round in 0..ROUNDS {
        go_tx.send(()).expect("waking thread is gone");
        let start = Instant::now();
        reactor.select(Some(BOUND))?;
        assert!(start.elapsed() < BOUND, "wake of round {round} was lost");
    }
    drop(go_tx);
    other.join().expect("waking thread panicked")?;
    Ok(())
}

#[test]
fn wake_after_the_reactor_is_dropped_is_harmless() -> io::Result<()> {
    let reactor = Reactor::new()?;
    let waker = reactor.waker();
    drop(reactor);
    waker.wake()?;
    waker.wake()?;
    Ok(())
}

#[test]
fn waker_is_send_sync_clone_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<sockserve_reactor::Waker>();
}
