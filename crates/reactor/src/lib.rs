//! sockserve-reactor: Python's `selectors` module, a cross-thread waker and signal delivery
//! (the `signal.set_wakeup_fd` idea), over mio.
//!
//! # From Python's `selectors`
//!
//! | Python | here |
//! |---|---|
//! | `sel = selectors.DefaultSelector()` | [`Reactor::new`] |
//! | `sel.register(fileobj, events, data)` | [`Reactor::register`]`(&fd, key, interest)` |
//! | `sel.modify(fileobj, events, data)` | [`Reactor::modify`]`(&fd, key, interest)` |
//! | `sel.unregister(fileobj)` | [`Reactor::unregister`]`(&fd)` |
//! | `sel.select(timeout)` -> `[(key, events)]` | [`Reactor::select`]`(timeout)` -> `&[`[`Ready`]`]` |
//! | `timeout=None` / `timeout<=0` | `None` (wait for ever) / `Some(Duration::ZERO)` (poll) |
//! | `EVENT_READ`, `EVENT_WRITE` | [`Interest::READABLE`], [`Interest::WRITABLE`] |
//! | `key.data` | `Ready::key`, a `usize` of your choice (an index into your table) |
//! | a self-pipe written to from another thread | [`Waker`], from [`Reactor::waker`] |
//! | (none: one thread owns a selector) | [`Registrar`], from [`Reactor::registrar`]: register and unregister from any thread |
//! | `signal.set_wakeup_fd(fd)` + `signal.signal(...)` | [`Signals::new`], registered like a socket; [`Signals::pending`] |
//! | (none: the selector is level-triggered) | [`Reactor::still_ready`] |
//!
//! What differs: the reactor does not keep the registered objects (it keeps file descriptor
//! numbers, so unregister before closing); interrupted waits are resumed with the time left, as
//! Python does since PEP 475; and readiness is edge-triggered, which asks one thing of the user.
//!
//! # The edge-trigger contract
//!
//! Python's selectors are level-triggered: a socket with unread data is reported by every
//! `select`. This reactor is built on mio, which is **edge-triggered**: a registration is
//! reported when it *becomes* ready, not again while it stays ready. So after a `readable` (or
//! `writable`) entry the user must do one of two things, or that registration may never be
//! reported again:
//!
//! 1. **drain**: read (or `accept`, or write) until the call fails with
//!    [`WouldBlock`](std::io::ErrorKind::WouldBlock); new data after that is a new edge; or
//! 2. **stop early and say so**: call [`Reactor::still_ready`]`(key, interest)`; the next
//!    `select` returns at once and reports the key again. A server accepting a bounded batch per
//!    tick (so that one busy listener does not starve the rest) does this when the batch ends
//!    before `WouldBlock`.
//!
//! An error or end of file counts as draining: the descriptor will not block again.
//!
//! Registering is the other way to get an edge: the kernel checks readiness when a descriptor is
//! registered (`EPOLL_CTL_ADD`) or modified, so **unregistering and registering again a
//! descriptor that is already ready reports it on the next `select`**. A server that takes its
//! listener out of the reactor for a while (backpressure, out of file descriptors) gets the
//! connections that queued meanwhile when it puts the listener back, without a new connect.
//!
//! Wakes are not part of this contract: the [`Waker`] is the reactor's own and is never reported
//! as a [`Ready`] entry. [`Signals::pending`] drains its pipe by itself.
//!
//! # Example: a listener, a waker and a signal pipe in one loop
//!
//! ```
//! use sockserve_reactor::{Interest, Reactor, Signal, Signals};
//! use std::io::ErrorKind;
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//!
//! const LISTENER: usize = 0;
//! const SIGNALS: usize = 1;
//! const BATCH: usize = 8;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let signals = Signals::new(&[Signal::SIGHUP])?;
//! let mut reactor = Reactor::new()?;
//! reactor.register(&listener, LISTENER, Interest::READABLE)?;
//! reactor.register(&signals, SIGNALS, Interest::READABLE)?;
//! let waker = reactor.waker(); // give this to whoever may ask the loop to stop
//!
//! let clients: Vec<TcpStream> = (0..3)
//!     .map(|_| TcpStream::connect(listener.local_addr()?))
//!     .collect::<std::io::Result<_>>()?;
//!
//! let mut served = 0;
//! while served < clients.len() {
//!     let ready = reactor.select(Some(Duration::from_secs(5)))?.to_vec();
//!     assert!(!ready.is_empty(), "nothing happened within 5 s");
//!     for r in ready {
//!         match r.key {
//!             LISTENER => {
//!                 let mut drained = false;
//!                 for _ in 0..BATCH {
//!                     match listener.accept() {
//!                         Ok(_conn) => served += 1,
//!                         Err(e) if e.kind() == ErrorKind::WouldBlock => {
//!                             drained = true;
//!                             break;
//!                         }
//!                         Err(e) => return Err(e.into()),
//!                     }
//!                 }
//!                 if !drained {
//!                     reactor.still_ready(LISTENER, Interest::READABLE);
//!                 }
//!             }
//!             SIGNALS => {
//!                 for signal in signals.pending()? {
//!                     println!("got {signal}");
//!                 }
//!             }
//!             _ => unreachable!(),
//!         }
//!     }
//! }
//! waker.wake()?; // from another thread, this would end a select(None) at once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platforms
//!
//! Unix (mio's epoll and kqueue backends; tested on Linux). [`Signals`] is Unix by nature.
#![doc(test(attr(deny(warnings))))]

mod interest;
mod reactor;
mod ready;
mod registrar;
#[cfg(unix)]
mod signals;
mod waker;

pub use crate::interest::Interest;
pub use crate::reactor::{RESERVED_KEY, Reactor};
pub use crate::ready::Ready;
pub use crate::registrar::Registrar;
#[cfg(unix)]
pub use crate::signals::Signals;
pub use crate::waker::Waker;

/// A signal, as [`Signals::new`] takes it: nix's `Signal`, re-exported so that users need not
/// depend on nix.
///
/// ```
/// use sockserve_reactor::Signal;
///
/// assert_eq!(Signal::SIGTERM.as_str(), "SIGTERM");
/// assert_eq!(Signal::SIGTERM as i32, 15);
/// ```
#[cfg(unix)]
pub use nix::sys::signal::Signal;
