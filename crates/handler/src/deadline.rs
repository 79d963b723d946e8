//! The deadlines of a stream connection ([`StreamOptions::idle_timeout`],
//! [`write_timeout`](StreamOptions::write_timeout), [`turn_timeout`](StreamOptions::turn_timeout)
//! and the connection's own timeout, [`StreamOptions::timeout`]), and the reader and writer that
//! apply them to every call through the socket layer's deadline calls (`recv_into_by`,
//! `send_by`): the socket's mode is never changed per call. A call that runs out of time fails
//! with a `TimedOut` error naming the option whose limit passed.

use crate::StreamOptions;
use crate::transport::Io;
use socket::Socket;
use std::{
    fmt,
    io::{self, Read, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Which limit ends a call, with its length for the error's message.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// The connection's timeout (`settimeout`, which [`StreamOptions::timeout`] sets), on a
    /// read: no byte within it.
    ReadTimeout(Duration),
    /// The connection's timeout on a write: the whole write not done within it (Python's
    /// `sendall`).
    WriteTimeout(Duration),
    /// [`StreamOptions::idle_timeout`].
    Idle(Duration),
    /// [`StreamOptions::write_timeout`].
    Write(Duration),
    /// [`StreamOptions::turn_timeout`].
    Turn(Duration),
}

impl Limit {
    /// The error of a call that this limit ended.
    fn error(self) -> io::Error {
        let message = match self {
            Limit::ReadTimeout(d) => format!(
                "timed out: no byte within {d:?} (the connection's timeout, StreamOptions::timeout)"
            ),
            Limit::WriteTimeout(d) => format!(
                "timed out: a write not done within {d:?} (the connection's timeout, \
                 StreamOptions::timeout)"
            ),
            Limit::Idle(d) => {
                format!("timed out: idle for {d:?}, no byte received (StreamOptions::idle_timeout)")
            }
            Limit::Write(d) => format!(
                "timed out: a write made no progress for {d:?} (StreamOptions::write_timeout)"
            ),
            Limit::Turn(d) => format!(
                "timed out: the request's turn is over, {d:?} after its setup \
                 (StreamOptions::turn_timeout)"
            ),
        };
        io::Error::new(io::ErrorKind::TimedOut, message)
    }
}

/// A deadline and the limit it comes from.
type Bound = (Instant, Limit);

/// `start + length` as a bound, if the sum is representable (a later one is no bound at all).
fn bound(start: Instant, length: Duration, limit: Limit) -> Option<Bound> {
    start.checked_add(length).map(|at| (at, limit))
}

/// The earliest of the bounds that are set.
fn earliest<const N: usize>(bounds: [Option<Bound>; N]) -> Option<Bound> {
    bounds.into_iter().flatten().min_by_key(|&(at, _)| at)
}

/// Runs one socket call that must be done by the earliest of `bounds`; a timeout is reported as
/// that bound's limit.
fn by<T, const N: usize>(
    bounds: [Option<Bound>; N],
    call: impl FnOnce(Option<Instant>) -> io::Result<T>,
) -> io::Result<T> {
    let chosen = earliest(bounds);
    call(chosen.map(|(at, _)| at)).map_err(|e| match chosen {
        Some((_, limit)) if e.kind() == io::ErrorKind::TimedOut => limit.error(),
        _ => e,
    })
}

/// The connection's own timeout, as the socket applies it (`Some(ZERO)` is non-blocking, not a
/// deadline: the socket's mode says `WouldBlock` then).
fn own_timeout(socket: &Socket) -> Option<Duration> {
    socket.gettimeout().filter(|t| !t.is_zero())
}

/// The limits of one connection that its reader and writer share.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Deadlines {
    idle: Option<Duration>,
    write: Option<Duration>,
    /// The end of the turn, and the `turn_timeout` it was set from.
    turn: Option<(Instant, Duration)>,
}

impl Deadlines {
    /// The limits of `options` for a turn that starts at `start`.
    pub(crate) fn new(options: &StreamOptions, start: Instant) -> Deadlines {
        Deadlines {
            idle: options.idle_timeout,
            write: options.write_timeout,
            turn: options
                .turn_timeout
                .and_then(|d| Some((start.checked_add(d)?, d))),
        }
    }

    /// When the turn ends, if it is bounded.
    pub(crate) fn turn_deadline(&self) -> Option<Instant> {
        self.turn.map(|(at, _)| at)
    }

    fn turn_bound(&self) -> Option<Bound> {
        self.turn.map(|(at, d)| (at, Limit::Turn(d)))
    }

    /// The bound of a wait between turns that started at `since`: the idle timeout from
    /// then, or the turn's end, whichever is first.
    fn wait_bound(&self, since: Instant) -> Option<Bound> {
        let idle = self.idle.and_then(|d| bound(since, d, Limit::Idle(d)));
        earliest([self.turn_bound(), idle])
    }

    /// When a wait between turns that started at `since` ends.
    pub(crate) fn wait_deadline(&self, since: Instant) -> Option<Instant> {
        self.wait_bound(since).map(|(at, _)| at)
    }

    /// The error of a wait between turns that reached its deadline.
    pub(crate) fn wait_timed_out(&self, since: Instant) -> io::Error {
        match self.wait_bound(since) {
            Some((_, limit)) => limit.error(),
            None => io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for input"),
        }
    }

    /// The same limits with another write timeout.
    pub(crate) fn with_write(self, write: Option<Duration>) -> Deadlines {
        Deadlines { write, ..self }
    }

    /// The write timeout alone (for writes from outside the request's turns).
    pub(crate) fn write_only(&self) -> Deadlines {
        Deadlines {
            idle: None,
            write: self.write,
            turn: None,
        }
    }
}

/// The lock that keeps the writes to one connection whole: `wfile`'s and those of every
/// [`ConnectionWriter`](crate::ConnectionWriter) of it, each `write_all` under it.
pub(crate) type WriteLock = Arc<Mutex<()>>;

/// A `Read` over a connection: each read waits at most until the earliest of the turn's end,
/// the idle timeout and the connection's timeout, all counted from the read's start.
pub(crate) struct ConnectionReader {
    io: Io,
    deadlines: Deadlines,
}

impl ConnectionReader {
    pub(crate) fn new(io: Io, deadlines: Deadlines) -> ConnectionReader {
        ConnectionReader { io, deadlines }
    }

    pub(crate) fn io(&self) -> &Io {
        &self.io
    }

    pub(crate) fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }
}

impl Read for ConnectionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (own, idle) = (own_timeout(self.io.socket()), self.deadlines.idle);
        // The clock is read only when a bound needs it (none by default: a read per request).
        let (own, idle) = if own.is_none() && idle.is_none() {
            (None, None)
        } else {
            let now = Instant::now();
            (
                own.and_then(|t| bound(now, t, Limit::ReadTimeout(t))),
                idle.and_then(|d| bound(now, d, Limit::Idle(d))),
            )
        };
        by([self.deadlines.turn_bound(), idle, own], |deadline| {
            self.io.read_by(buf, deadline)
        })
    }
}

impl fmt::Debug for ConnectionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionReader")
            .field("connection", &self.io)
            .field("deadlines", &self.deadlines)
            .finish()
    }
}

/// A `Write` over a connection whose every write sends everything (Python's `sendall`): it
/// fails when a send makes no progress for the write timeout, when the turn is over, or when
/// the whole write takes longer than the connection's timeout.
pub(crate) struct DeadlineWriter {
    io: Io,
    deadlines: Deadlines,
    lock: WriteLock,
}

impl DeadlineWriter {
    pub(crate) fn new(io: Io, deadlines: Deadlines) -> DeadlineWriter {
        DeadlineWriter {
            io,
            deadlines,
            lock: WriteLock::default(),
        }
    }

    pub(crate) fn io(&self) -> &Io {
        &self.io
    }

    pub(crate) fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    pub(crate) fn lock(&self) -> &WriteLock {
        &self.lock
    }
}

/// Sends all of `data` on the connection under `lock` (Python's `sendall`), bound by
/// `deadlines`: no progress for the write timeout, the turn's end, the connection's own
/// timeout.
pub(crate) fn send_all(
    io: &Io,
    lock: &WriteLock,
    deadlines: &Deadlines,
    data: &[u8],
) -> io::Result<()> {
    // A writer that panicked holding the lock left no state behind it: the lock guards none.
    let _whole = lock.lock().unwrap_or_else(|e| e.into_inner());
    let whole =
        own_timeout(io.socket()).and_then(|t| bound(Instant::now(), t, Limit::WriteTimeout(t)));
    let turn = deadlines.turn_bound();
    let mut sent = 0;
    while sent < data.len() {
        // Renewed after every send that made progress: a slow but steady reader is fine.
        let progress = deadlines
            .write
            .and_then(|d| bound(Instant::now(), d, Limit::Write(d)));
        let n = by([turn, whole, progress], |deadline| {
            io.write_by(&data[sent..], deadline)
        })?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0"));
        }
        sent += n;
    }
    Ok(())
}

/// Ends the connection's transport, if it has one (TLS: `close_notify`), under `lock`, bound
/// by the write timeout from now and the turn's end.
pub(crate) fn close_transport(io: &Io, lock: &WriteLock, deadlines: &Deadlines) -> io::Result<()> {
    let Some(transport) = io.transport() else {
        return Ok(());
    };
    let _whole = lock.lock().unwrap_or_else(|e| e.into_inner());
    let progress = deadlines
        .write
        .and_then(|d| bound(Instant::now(), d, Limit::Write(d)));
    by([deadlines.turn_bound(), progress], |deadline| {
        transport.close_by(deadline)
    })
}

impl Write for DeadlineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        send_all(&self.io, &self.lock, &self.deadlines, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for DeadlineWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineWriter")
            .field("connection", &self.io)
            .field("deadlines", &self.deadlines)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_bound_names_its_option() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let chosen = earliest([
            bound(now, 3 * second, Limit::Idle(3 * second)),
            None,
            bound(now, second, Limit::Turn(second)),
        ]);
        let (at, limit) = chosen.expect("two bounds are set");
        assert_eq!(at, now + second);
        let message = limit.error().to_string();
        assert!(message.contains("StreamOptions::turn_timeout"), "{message}");
        assert!(message.starts_with("timed out: "), "{message}");
        assert_eq!(earliest::<2>([None, None]).map(|(at, _)| at), None);
    }

    #[test]
    fn messages_say_how_long_and_which_option() {
        let d = Duration::from_millis(1500);
        let cases = [
            (
                Limit::Idle(d),
                "idle for 1.5s",
                "StreamOptions::idle_timeout",
            ),
            (
                Limit::Write(d),
                "no progress for 1.5s",
                "StreamOptions::write_timeout",
            ),
            (
                Limit::Turn(d),
                "1.5s after its setup",
                "StreamOptions::turn_timeout",
            ),
            (
                Limit::ReadTimeout(d),
                "within 1.5s",
                "StreamOptions::timeout",
            ),
            (
                Limit::WriteTimeout(d),
                "within 1.5s",
                "StreamOptions::timeout",
            ),
        ];
        for (limit, how_long, option) in cases {
            let e = limit.error();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            let message = e.to_string();
            assert!(
                message.contains(how_long) && message.contains(option),
                "{message}"
            );
        }
    }

    #[test]
    fn a_turn_too_long_to_represent_is_unbounded() {
        let options = StreamOptions::default().turn_timeout(Some(Duration::MAX));
        assert_eq!(
            Deadlines::new(&options, Instant::now()).turn_deadline(),
            None
        );
    }
}
