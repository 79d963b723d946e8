//! Accept errors: which to skip, and the backoff for the ones that mean "no fds left" (its
//! lines name the limit and how to raise it: `limits.rs`).

use std::{
    io,
    time::{Duration, Instant},
};

/// The first pause after an exhausting accept error; doubled per failure.
const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest pause: accepting resumes at least once a second.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// What an error of `get_request` means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptErrorKind {
    /// One connection failed (aborted, reset, a pending network error): skip it.
    Transient,
    /// Out of fds or memory: stop accepting for a while, or the loop spins.
    Exhausted,
    /// Anything else: treated like exhaustion, so an unknown error cannot make the loop spin.
    Other,
}

impl AcceptErrorKind {
    pub(crate) fn of(e: &io::Error) -> Self {
        if socket::is_transient_accept_error(e) {
            AcceptErrorKind::Transient
        } else if socket::is_resource_exhausted(e) {
            AcceptErrorKind::Exhausted
        } else {
            AcceptErrorKind::Other
        }
    }
}

/// The pause after exhausting accept errors: grows per failure, capped, logged once per episode.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// The current episode: when it started and the next delay.
    episode: Option<Episode>,
    /// Accepting resumes at this instant.
    until: Option<Instant>,
}

#[derive(Debug)]
struct Episode {
    started: Instant,
    delay: Duration,
    failures: u64,
}

impl Backoff {
    /// An exhausting error: pause for the episode's next delay.
    pub(crate) fn failed(&mut self, server: &str, e: &io::Error) {
        self.failed_at(Instant::now(), server, e);
    }

    /// [`failed`](Self::failed) at a given instant (tests pass their own clock).
    fn failed_at(&mut self, now: Instant, server: &str, e: &io::Error) {
        let episode = self.episode.get_or_insert_with(|| {
            // Which limit it is and how to raise it; on stderr too when no logger is installed.
            let line = crate::limits::exhausted(server, e, MAX_DELAY);
            crate::limits::backoff_line(log::Level::Error, format_args!("{line}"));
            Episode {
                started: now,
                delay: FIRST_DELAY,
                failures: 0,
            }
        });
        episode.failures += 1;
        self.until = Some(now + episode.delay);
        episode.delay = (episode.delay * 2).min(MAX_DELAY);
    }

    /// A request came through: the episode, if any, is over.
    pub(crate) fn succeeded(&mut self) {
        if let Some(episode) = self.episode.take() {
            crate::limits::backoff_line(
                log::Level::Warn,
                format_args!(
                    "accepting again after {:?} and {} failed attempts",
                    episode.started.elapsed(),
                    episode.failures
                ),
            );
        }
        self.until = None;
    }

    /// Whether the pause (if any) has run out.
    pub(crate) fn is_over(&self) -> bool {
        self.is_over_at(Instant::now())
    }

    fn is_over_at(&self, now: Instant) -> bool {
        self.until.is_none_or(|t| now >= t)
    }

    /// The loop's wait: never past the end of the pause.
    pub(crate) fn clamp(&self, poll_interval: Duration) -> Duration {
        self.clamp_at(Instant::now(), poll_interval)
    }

    fn clamp_at(&self, now: Instant, poll_interval: Duration) -> Duration {
        match self.until {
            Some(t) => poll_interval.min(t.saturating_duration_since(now)),
            None => poll_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_is_capped() {
        // A clock of the test's own: a preempted test thread cannot shorten the pauses seen.
        let now = Instant::now();
        let mut b = Backoff::default();
        let e = io::Error::other("test");
        let mut waits = Vec::new();
        for _ in 0..20 {
            b.failed_at(now, "test", &e);
            waits.push(b.clamp_at(now, Duration::from_secs(60)));
        }
        assert_eq!(waits[0], FIRST_DELAY);
        assert_eq!(waits[1], FIRST_DELAY * 2, "the delay doubles");
        assert!(waits.iter().all(|w| *w <= MAX_DELAY), "capped: {waits:?}");
        assert_eq!(waits.last(), Some(&MAX_DELAY), "grew to the cap: {waits:?}");
        assert!(!b.is_over_at(now));
        assert!(b.is_over_at(now + MAX_DELAY));
        b.succeeded();
        assert!(b.is_over_at(now));
        assert_eq!(
            b.clamp_at(now, Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn first_pause_is_short() {
        let mut b = Backoff::default();
        b.failed("test", &io::Error::other("test"));
        assert!(b.clamp(Duration::from_secs(60)) <= FIRST_DELAY);
    }
}
