//! [`Ready`]: one entry of [`Reactor::select`](crate::Reactor::select)'s answer.

use crate::Interest;

/// One ready registration, as reported by [`Reactor::select`](crate::Reactor::select).
///
/// Python's `select()` returns `(key, events)` pairs; here `key` is the number given at
/// registration and the events are flags. `readable` and `writable` are limited to what the
/// registration asked for, as in Python; `error` and `hangup` are reported whatever was asked,
/// and a registration that asked for reading also sees `readable` on an error or hangup, so that
/// the read that follows discovers it (EOF or the error), as Python's selectors do.
///
/// ```
/// use sockserve_reactor::{Interest, Reactor};
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut reactor = Reactor::new()?;
/// reactor.register(&a, 7, Interest::READABLE)?;
/// b.write_all(b"hello")?;
/// let ready = reactor.select(Some(Duration::from_secs(5)))?;
/// assert_eq!(ready.len(), 1);
/// let r = ready[0];
/// assert_eq!((r.key, r.readable, r.writable, r.error), (7, true, false, false));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ready {
    /// The key given to [`register`](crate::Reactor::register) (Python's `SelectorKey`, reduced
    /// to the user's own number).
    pub key: usize,
    /// A read (or `accept`) will not block: data, a pending connection, end of file or an error.
    pub readable: bool,
    /// A write will not block, or a non-blocking `connect` finished (successfully or not).
    pub writable: bool,
    /// The file descriptor has a pending error (`EPOLLERR`); read it with `SO_ERROR` or by the
    /// next read or write.
    pub error: bool,
    /// The peer closed its side (reads return end of file after any buffered data) or the
    /// connection is fully closed (`EPOLLHUP` / `EPOLLRDHUP`).
    pub hangup: bool,
}

impl Ready {
    /// The readiness of a mio event, limited to `interest` (when the registration is known).
    pub(crate) fn from_event(event: &mio::event::Event, interest: Option<Interest>) -> Ready {
        let error = event.is_error();
        let hangup = event.is_read_closed() || event.is_write_closed();
        let readable = event.is_readable() || event.is_read_closed() || error;
        let writable = event.is_writable() || event.is_write_closed() || error;
        let (want_read, want_write) = match interest {
            Some(i) => (i.is_readable(), i.is_writable()),
            None => (true, true),
        };
        Ready {
            key: event.token().0,
            readable: readable && want_read,
            writable: writable && want_write,
            error,
            hangup,
        }
    }

    /// A `still_ready` entry: the flags of `interest`, nothing else.
    pub(crate) fn again(key: usize, interest: Interest) -> Ready {
        Ready {
            key,
            readable: interest.is_readable(),
            writable: interest.is_writable(),
            error: false,
            hangup: false,
        }
    }

    /// Whether any flag is set.
    pub(crate) fn any(&self) -> bool {
        self.readable || self.writable || self.error || self.hangup
    }

    /// The interests this entry reports, if any (`readable` and/or `writable`).
    ///
    /// ```
    /// use sockserve_reactor::{Interest, Ready};
    ///
    /// let r = Ready { key: 1, readable: true, writable: false, error: false, hangup: false };
    /// assert_eq!(r.interest(), Some(Interest::READABLE));
    /// ```
    pub fn interest(&self) -> Option<Interest> {
        match (self.readable, self.writable) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}
