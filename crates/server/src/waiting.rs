//! Connections that wait in the serving loop's reactor between their handler's turns
//! ([`Next::WaitForInput`](handler::Next)): a slab keyed by reactor key, one registration per
//! connection for its life, re-armed at each wait; their idle deadlines; and what a graceful
//! stop or a close does with them.
//!
//! The hot path of a turn, chosen for a loop that holds thousands of sockets:
//!
//! - Before it parks, a turn of a pool with room for the next job and nothing queued
//!   lingers on its own socket (`ServerLink::offer_linger`, job.rs): input within it runs
//!   the next turn on the same thread, with no registration and no hand-off; one `poll(2)`
//!   (`Socket::wait_input_by`) tells input from an end, with no peek. A connection whose
//!   linger found nothing parks at once at its next waits, until one of them turns out
//!   shorter than the linger (thousands of slow clients are not lingered on for nothing);
//!   one that lingers with success leaves the reactor (`quiet`), so that its input, which
//!   its thread reads, does not wake the loop at each request.
//! - The thread that ran the turn parks the connection itself: the first wait registers it
//!   (`EPOLL_CTL_ADD`, under the slab's lock), every later one re-arms it (`EPOLL_CTL_MOD`,
//!   outside the lock: the loop and the other turns go on meanwhile). Registrations are
//!   edge-triggered, not one-shot, and an end of file, or input the turn left unread, makes
//!   no new edge: the re-arm reports what is there now. The connection is published in its
//!   slot only after its re-arm, so that no other thread can take, end and release it (and
//!   its slot be reused) while the re-arm runs. A report handled between the re-arm and the
//!   publication finds the slot empty and sets its `pending` flag; `park` sees it under the
//!   lock and peeks (outside it) before it publishes: input or an end is given back to the
//!   turn's thread, which goes on with it.
//! - Whether the server is closing is an atomic, read without the lock at the end of each
//!   turn; it is written under the lock and read again under it by `park`, so that no
//!   connection is parked after a stop emptied the set.
//! - The loop, woken by readiness, takes the connection out of its slot (a lock and a
//!   `take()`, no system call) and hands the next turn to the strategy as a `Job`.
//! - Readiness that comes while a turn runs finds an empty slot and sets `pending`: the next
//!   wait looks before it parks. Only a connection parked while the loop's last `select`
//!   ran may be woken by a report older than its wait (its input read by the turn since): it
//!   is peeked (`MSG_PEEK | MSG_DONTWAIT`) before a turn is given, so that no worker blocks in
//!   a read with nothing to read.

use crate::{Job, Strategy, shutdown::InFlight, shutdown::Shared};
use handler::driver::Waited;
use reactor::{Interest, Ready, Registrar};
use socket::{Address, Socket};
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The first reactor key of a waiting connection: the ones below are the server's own
/// (listener, children, watched descriptors).
pub(crate) const FIRST_KEY: usize = 16;

/// A connection between turns, whatever its handler and request types.
pub(crate) trait Waiter: Send {
    /// The connection it waits on.
    fn connection(&self) -> Option<&Arc<Socket>>;
    /// The client, for the job's address.
    fn client_address(&self) -> &Address;
    /// Until when it may wait (idle timeout, the turn's end).
    fn deadline(&self) -> Option<Instant>;
    /// What the connection has now, without waiting (`None`: nothing yet).
    fn poll_input(&self) -> Option<Waited>;
    /// Its slot in the waiting set, once it has one.
    fn slot(&self) -> Option<usize>;
    fn set_slot(&mut self, slot: usize);
    /// Runs its next turns on this thread, until it waits again or ends.
    fn resume(self: Box<Self>, ticket: Option<InFlight>);
    /// Ends it without another turn.
    fn close(self: Box<Self>, why: Close, ticket: Option<InFlight>);
}

/// A connection [`Waiting::park`] gave back.
pub(crate) enum Unparked<W> {
    /// It may not wait: the server is closing, or the reactor refused it.
    Refused(Box<W>, InFlight),
    /// Input (or its end) came while its last turn ran.
    Waited(Box<W>, InFlight, Waited),
}

/// Why a waiting connection ends without another turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client closed or reset it.
    Gone,
    /// It waited past its deadline.
    TimedOut,
    /// The server stops or closes.
    Stopping,
}

/// The connections waiting between turns of one server.
pub(crate) struct Waiting {
    registrar: Registrar,
    shared: Arc<Shared>,
    /// Counts the loop's selects: a connection parked during the current one may be reported
    /// by an event older than its wait.
    epoch: AtomicU64,
    /// A graceful stop or a close began: no connection may wait any more. Read without the
    /// lock at the end of every turn (a hint: the turn's input gets its turn, else the end);
    /// written under the lock, and read again under it by `park`, so that no connection is
    /// parked after `take_all` emptied the set.
    closing: AtomicBool,
    /// The loop serves forever: turns may linger, and a re-arm runs outside the lock. Not
    /// under `handle_request`, where the input of a waiting connection is one request for the
    /// loop, so every wait goes through it.
    serving_forever: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Deadlines of waits: (when, slot, the wait's generation); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    parked: usize,
}

#[derive(Default)]
struct Slot {
    /// Bumped at each wait, so that a timer of an earlier wait does not end this one.
    generation: u64,
    parked: Option<Parked>,
    /// The connection of this slot is registered in the reactor (from its first wait to its
    /// end, but while it lingers), and which one.
    registered: Option<Arc<Socket>>,
    /// Readiness was reported while the connection was not parked (its turn ran): its next
    /// wait looks before it parks.
    pending: bool,
}

struct Parked {
    waiter: Box<dyn Waiter>,
    ticket: InFlight,
    epoch: u64,
}

impl Waiting {
    pub(crate) fn new(registrar: Registrar, shared: Arc<Shared>) -> Arc<Waiting> {
        Arc::new(Waiting {
            registrar,
            shared,
            epoch: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            serving_forever: AtomicBool::new(false),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics halfway (no user code runs under it).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket that becomes readable when a graceful stop begins, for a forked child's
    /// waiting connection to watch.
    pub(crate) fn stopping_socket(&self) -> Option<&Socket> {
        self.shared.stopping_socket()
    }

    /// Whether connections may no longer wait (a graceful stop or a close began).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// How long a turn that ends with `WaitForInput` may wait on its own thread for the next
    /// input before it parks (`ServerLink::offer_linger`; `None`: it parks at once).
    pub(crate) fn linger(&self) -> Option<Duration> {
        if !self.serving_forever.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.linger()
    }

    /// A serving loop starts: connections may wait again; `serving_forever`: their turns may
    /// linger (not under `handle_request`).
    pub(crate) fn open(&self, serving_forever: bool) {
        self.serving_forever
            .store(serving_forever, Ordering::Relaxed);
        let _state = self.lock();
        self.closing.store(false, Ordering::SeqCst);
    }

    /// Parks a connection whose turn ended with `WaitForInput`, from the thread that ran the
    /// turn. Given back when it cannot wait: the server is closing or the reactor refused it
    /// ([`Unparked::Refused`]), or input came while its turn ran ([`Unparked::Waited`]: what
    /// a peek found; the caller runs the next turn, or ends the connection, itself).
    pub(crate) fn park<W: Waiter + 'static>(
        &self,
        mut waiter: Box<W>,
        ticket: InFlight,
    ) -> Result<(), Unparked<W>> {
        let Some(connection) = waiter.connection().map(Arc::clone) else {
            return Err(Unparked::Refused(waiter, ticket));
        };
        let deadline = waiter.deadline();
        let mut state = self.lock();
        if self.closing.load(Ordering::SeqCst) {
            return Err(Unparked::Refused(waiter, ticket));
        }
        let slot = match waiter.slot() {
            Some(slot) => slot,
            None => {
                let slot = state.free.pop().unwrap_or_else(|| {
                    state.slots.push(Slot::default());
                    state.slots.len() - 1
                });
                waiter.set_slot(slot);
                slot
            }
        };
        let key = FIRST_KEY + slot;
        let entry = &mut state.slots[slot];
        if entry.registered.is_none() {
            // Its first wait (or its first since it lingered): registered until its end.
            // Under the lock: no report of it can be handled before it is in its slot.
            if let Err(e) = self
                .registrar
                .register(&*connection, key, Interest::READABLE)
            {
                log::error!("cannot watch a waiting connection: {e}");
                return Err(Unparked::Refused(waiter, ticket));
            }
            entry.registered = Some(Arc::clone(&connection));
            entry.pending = false;
        } else if !self.serving_forever.load(Ordering::Relaxed) {
            // Under `handle_request`, each input of a waiting connection is one request for
            // the loop: re-armed under the lock, so that its report reaches the loop, never
            // the turn's thread through `pending`.
            entry.pending = false;
            if let Err(e) = self.registrar.rearm(&*connection, key, Interest::READABLE) {
                log::error!("cannot watch a waiting connection: {e}");
                return Err(Unparked::Refused(waiter, ticket));
            }
        } else {
            // Serving forever: re-armed outside the lock (the loop and the other turns go on meanwhile):
            // registrations are edge-triggered, and an end of file, or input its turn
            // left unread, makes no new edge; the re-arm reports what is there now. A
            // report that comes before the connection is in its slot sets `pending`.
            entry.pending = false;
            drop(state);
            if let Err(e) = self.registrar.rearm(&*connection, key, Interest::READABLE) {
                log::error!("cannot watch a waiting connection: {e}");
                return Err(Unparked::Refused(waiter, ticket));
            }
            state = self.lock();
            while std::mem::take(&mut state.slots[slot].pending) {
                // Reported meanwhile: that edge will not come again. A peek (outside the
                // lock) tells whether the turn read it already; a report during the peek
                // is looked at again.
                drop(state);
                if let Some(waited) = waiter.poll_input() {
                    return Err(Unparked::Waited(waiter, ticket, waited));
                }
                state = self.lock();
            }
            if self.closing.load(Ordering::SeqCst) {
                return Err(Unparked::Refused(waiter, ticket));
            }
        }
        self.publish(state, slot, waiter, ticket, deadline);
        Ok(())
    }

    /// The end of [`park`](Self::park): the connection is in its slot, where the loop finds it
    /// when its readiness comes, and its deadline among the timers.
    fn publish(
        &self,
        mut state: MutexGuard<'_, State>,
        slot: usize,
        waiter: Box<dyn Waiter>,
        ticket: InFlight,
        deadline: Option<Instant>,
    ) {
        let earliest = state.timers.peek().map(|Reverse((at, _, _))| *at);
        let entry = &mut state.slots[slot];
        entry.generation += 1;
        let generation = entry.generation;
        entry.parked = Some(Parked {
            waiter,
            ticket,
            epoch: self.epoch.load(Ordering::SeqCst),
        });
        state.parked += 1;
        if let Some(at) = deadline {
            state.timers.push(Reverse((at, slot, generation)));
            // Stale entries of earlier waits are dropped once they outnumber the waits.
            if state.timers.len() > 2 * state.parked + 64 {
                let timers = std::mem::take(&mut state.timers);
                let slots = &state.slots;
                let kept: Vec<_> = timers
                    .into_iter()
                    .filter(|Reverse((_, s, g))| {
                        slots[*s].generation == *g && slots[*s].parked.is_some()
                    })
                    .collect();
                state.timers = kept.into();
            }
        }
        drop(state);
        self.shared.parked();
        // The loop sleeps until its earliest deadline: wake it for an earlier one.
        if deadline.is_some_and(|at| earliest.is_none_or(|e| at < e)) {
            self.shared.wake();
        }
    }

    /// A connection that waited before, whose turns now run on a thread that lingers on it
    /// (job.rs), leaves the reactor: its input would wake the loop for nothing at each
    /// request. It keeps its slot; its next wait registers it again.
    pub(crate) fn quiet(&self, slot: usize) {
        let mut state = self.lock();
        let Some(entry) = state.slots.get_mut(slot) else {
            return;
        };
        // Not parked: its turn runs on the caller's thread.
        debug_assert!(entry.parked.is_none());
        entry.pending = false;
        if let Some(connection) = entry.registered.take() {
            if let Err(e) = self.registrar.unregister(&*connection) {
                log::debug!("unregistering a lingering connection: {e}");
            }
        }
    }

    /// A connection that waited before ends: it leaves the reactor and its slot is free.
    /// Called before its socket closes.
    pub(crate) fn release(&self, slot: usize) {
        let mut state = self.lock();
        let Some(entry) = state.slots.get_mut(slot) else {
            return;
        };
        if let Some(connection) = entry.registered.take() {
            if let Err(e) = self.registrar.unregister(&*connection) {
                log::debug!("unregistering a waiting connection: {e}");
            }
        }
        entry.generation += 1;
        state.free.push(slot);
    }

    /// Before the loop's select: a new epoch.
    pub(crate) fn begin_select(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// `timeout` (`None`: none), shortened to the earliest deadline of a waiting connection.
    pub(crate) fn clamp(&self, timeout: Option<Duration>) -> Option<Duration> {
        let earliest = self.lock().timers.peek().map(|Reverse((at, _, _))| *at);
        let until = earliest.map(|at| at.saturating_duration_since(Instant::now()));
        match (timeout, until) {
            (Some(t), Some(u)) => Some(t.min(u)),
            (t, u) => t.or(u),
        }
    }

    /// Hands the strategy a job for each connection `woken` reports (its next turn, or its
    /// end when the client left), and for each that waited past its deadline (its end).
    /// `epoch` is the one of the select that reported them. Returns how many it handed on
    /// (turns and ends).
    pub(crate) fn dispatch<C: Strategy>(
        &self,
        woken: &mut Vec<Ready>,
        epoch: u64,
        strategy: &mut C,
    ) -> usize {
        let mut jobs = Vec::new();
        {
            let mut state = self.lock();
            for ready in woken.drain(..) {
                let Some(slot) = ready.key.checked_sub(FIRST_KEY) else {
                    continue;
                };
                let Some(entry) = state.slots.get_mut(slot) else {
                    continue;
                };
                // Empty: its turn runs; its next wait peeks before it parks.
                let Some(parked) = entry.parked.take() else {
                    entry.pending = entry.registered.is_some();
                    continue;
                };
                let suspect = parked.epoch >= epoch || ready.hangup || ready.error;
                let what = if suspect {
                    parked.waiter.poll_input()
                } else {
                    Some(Waited::Input)
                };
                match what {
                    None => entry.parked = Some(parked),
                    Some(Waited::Input) => {
                        state.parked -= 1;
                        jobs.push(resume_job(parked));
                    }
                    Some(_) => {
                        state.parked -= 1;
                        jobs.push(close_job(parked, Close::Gone));
                    }
                }
            }
            let now = Instant::now();
            while let Some(Reverse((at, slot, generation))) = state.timers.peek().copied() {
                if at > now {
                    break;
                }
                state.timers.pop();
                let entry = &mut state.slots[slot];
                if entry.generation != generation {
                    continue;
                }
                if let Some(parked) = entry.parked.take() {
                    state.parked -= 1;
                    jobs.push(close_job(parked, Close::TimedOut));
                }
            }
        }
        let count = jobs.len();
        for job in jobs {
            self.shared.unparked();
            strategy.process_request(job);
        }
        count
    }

    /// A graceful stop: no connection waits from now on. Those waiting with no input end at
    /// once; those with unread input get their turn (within the stop's grace). The jobs are
    /// for the strategy.
    pub(crate) fn settle(&self) -> Vec<Job> {
        self.take_all(|parked| match parked.waiter.poll_input() {
            Some(Waited::Input) => resume_job(parked),
            _ => close_job(parked, Close::Stopping),
        })
    }

    /// The server closes: every waiting connection ends now, without another turn. The jobs
    /// are for the closing thread to run.
    pub(crate) fn close_all(&self) -> Vec<Job> {
        self.take_all(|parked| close_job(parked, Close::Stopping))
    }

    fn take_all(&self, mut job: impl FnMut(Parked) -> Job) -> Vec<Job> {
        let jobs: Vec<Job> = {
            let mut state = self.lock();
            self.closing.store(true, Ordering::SeqCst);
            state.timers.clear();
            state.parked = 0;
            state
                .slots
                .iter_mut()
                .filter_map(|slot| slot.parked.take())
                .map(&mut job)
                .collect()
        };
        for _ in &jobs {
            self.shared.unparked();
        }
        jobs
    }
}

fn resume_job(parked: Parked) -> Job {
    let Parked { waiter, ticket, .. } = parked;
    let address = waiter.client_address().clone();
    Job::tracked(address, move |ticket| waiter.resume(ticket), ticket)
}

fn close_job(parked: Parked, why: Close) -> Job {
    let Parked { waiter, ticket, .. } = parked;
    let address = waiter.client_address().clone();
    Job::tracked(address, move |ticket| waiter.close(why, ticket), ticket)
}

impl fmt::Debug for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Waiting")
            .field("parked", &state.parked)
            .field("slots", &state.slots.len())
            .field("closing", &self.is_closing())
            .finish()
    }
}
