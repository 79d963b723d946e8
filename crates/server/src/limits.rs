//! [`LimitGauge`]: the lines a server writes when one of its limits (open connections, a pool's
//! threads, a forking server's children) is reached and when it clears, and the line that
//! names the open-file limit when accepting fails for want of descriptors. Both go where the
//! default `handle_error`'s reports go (`report.rs`): to the logger if the program installed
//! one, else to stderr, so that a server at a limit is never silent.

use std::{
    fmt, io,
    time::{Duration, Instant},
};

/// The shortest time between two lines of one gauge; it doubles (up to [`LONGEST_GAP`]) each
/// time a line has to count episodes it did not show, and falls back to this after a line
/// that had none.
const SHORTEST_GAP: Duration = Duration::from_secs(1);
/// The longest time between two lines of a gauge whose count flaps across its limit.
const LONGEST_GAP: Duration = Duration::from_secs(60);
/// Where the lines are logged (`log`'s target), whoever owns the gauge.
const TARGET: &str = module_path!();

/// Linux's (and every Unix's) `ENFILE` and `EMFILE`: the system's and the process's open-file
/// limits. The server layer names no `libc`; these two numbers have been the same on every
/// Unix since Version 7.
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// Watches one limit: a warning when its count reaches the limit, naming the limit, its value
/// and how to raise it, and one line at info when the count is back under it. The count must
/// fall to 90% of the limit (or one under it, for a small limit) to clear: a count flapping at
/// the limit writes nothing more. A count that keeps crossing that band (a small limit, say)
/// writes at most one line a second, then one every 2, 4, ... up to 60 seconds, each counting
/// the episodes it did not show.
///
/// The lines go to the `log` logger (target `sockserve_server::limits`) at warn and info
/// level; a program that installed no logger gets them on stderr, as `sockserve: WARN: ...`,
/// like the default [`handle_error`](crate::Hooks::handle_error)'s reports. A server watches
/// its `max_connections` with one; the threading and forking strategies watch their
/// `max_threads` and `max_children`.
///
/// Call [`observe`](Self::observe) with the count whenever it may have changed, and on every
/// round of the serving loop (a strategy's
/// [`service_actions`](crate::Strategy::service_actions)): a line held back by the rate limit
/// is written by a later call.
///
/// # Examples
///
/// ```
/// use sockserve_server::LimitGauge;
///
/// let mut gauge = LimitGauge::new(
///     "max_jobs",
///     20,
///     "jobs running",
///     "new jobs wait for one to end; raise it with Budget::max_jobs",
/// );
/// gauge.observe(19);
/// assert!(!gauge.is_reached());
/// gauge.observe(20); // warns: "limit max_jobs = 20 reached (jobs running: 20); new jobs wait ..."
/// assert!(gauge.is_reached());
/// gauge.observe(19); // still at the limit: it clears at 90% of it (one under a small one)
/// assert!(gauge.is_reached());
/// gauge.observe(18);
/// assert!(!gauge.is_reached()); // says so at info, at most a second after the warning
/// ```
#[derive(Debug)]
pub struct LimitGauge {
    name: &'static str,
    limit: usize,
    unit: &'static str,
    advice: String,
    /// Whether the count is at the limit, as the hysteresis sees it.
    reached: bool,
    /// What the last line said: reached (true), or cleared / no line yet (false).
    shown: bool,
    /// When the limit shown as reached was reached.
    since: Option<Instant>,
    /// When the last line was written, and how long the next one waits after it.
    last_line: Option<Instant>,
    gap: Duration,
    /// Times the limit was reached since the last line that the lines did not show.
    hidden: u32,
}

impl LimitGauge {
    /// A gauge for the limit `name` (the option's name, such as `max_threads`) of `limit`
    /// (at least 1), whose count is of `unit` (such as `"open connections"`, shown as `(open
    /// connections: 17)`); `advice` says
    /// what happens at the limit and how to raise it (the builder or strategy method).
    ///
    /// # Examples
    ///
    /// See [`LimitGauge`].
    pub fn new(
        name: &'static str,
        limit: usize,
        unit: &'static str,
        advice: impl Into<String>,
    ) -> Self {
        LimitGauge {
            name,
            limit: limit.max(1),
            unit,
            advice: advice.into(),
            reached: false,
            shown: false,
            since: None,
            last_line: None,
            gap: SHORTEST_GAP,
            hidden: 0,
        }
    }

    /// The limit watched.
    ///
    /// # Examples
    ///
    /// ```
    /// let gauge = sockserve_server::LimitGauge::new("max_jobs", 4, "jobs", "");
    /// assert_eq!(gauge.limit(), 4);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the count is at the limit now (reached, and not yet back under 90% of it).
    ///
    /// # Examples
    ///
    /// See [`LimitGauge`].
    pub fn is_reached(&self) -> bool {
        self.reached
    }

    /// The count now: writes the line of a change if it is due (see [`LimitGauge`]), or one
    /// held back earlier.
    ///
    /// # Examples
    ///
    /// See [`LimitGauge`].
    pub fn observe(&mut self, count: usize) {
        self.observe_at(Instant::now(), count);
    }

    /// Logs a line about this limit at info level, through the same path as its warnings (for
    /// a limit set by a rule, say why the rule chose it).
    ///
    /// # Examples
    ///
    /// ```
    /// let gauge = sockserve_server::LimitGauge::new("max_jobs", 4, "jobs", "");
    /// gauge.note(format_args!("lowered from 8: only 4 cores"));
    /// ```
    pub fn note(&self, message: fmt::Arguments<'_>) {
        let (name, limit) = (self.name, self.limit);
        crate::report::unmissable(
            TARGET,
            log::Level::Info,
            format_args!("limit {name} = {limit}: {message}"),
        );
    }

    fn observe_at(&mut self, now: Instant, count: usize) {
        if let Some(line) = self.step(now, count) {
            let level = if self.shown {
                log::Level::Warn
            } else {
                log::Level::Info
            };
            crate::report::unmissable(TARGET, level, format_args!("{line}"));
        }
    }

    /// The gauge as a pure function of the clock: the line to write now, if any.
    fn step(&mut self, now: Instant, count: usize) -> Option<String> {
        if self.reached {
            // Clears at 90% of the limit, and at one under it at least.
            let clear_at = self.limit - (self.limit / 10).max(1);
            self.reached = count > clear_at;
        } else if count >= self.limit {
            self.reached = true;
            self.hidden += 1;
            if !self.shown {
                self.since = Some(now);
            }
        }
        if self.reached == self.shown || self.last_line.is_some_and(|t| now < t + self.gap) {
            return None;
        }
        let (name, limit, unit) = (self.name, self.limit, self.unit);
        let mut line = if self.reached {
            self.hidden -= 1;
            format!(
                "limit {name} = {limit} reached ({unit}: {count}); {}",
                self.advice
            )
        } else {
            let ago = self.since.map_or(Duration::ZERO, |t| now - t);
            format!(
                "limit {name} = {limit} cleared ({unit}: {count}), {:.1} s after it was reached",
                ago.as_secs_f64()
            )
        };
        if self.hidden > 0 {
            line += &format!(
                " (reached {} more time(s) since the last line, not shown)",
                self.hidden
            );
            self.gap = (self.gap * 2).min(LONGEST_GAP);
        } else {
            self.gap = SHORTEST_GAP;
        }
        self.hidden = 0;
        self.shown = self.reached;
        self.last_line = Some(now);
        Some(line)
    }
}

/// The line of an accept that failed for want of descriptors or memory: which limit it is and
/// how to raise it.
pub(crate) fn exhausted(server: &str, e: &io::Error, pause: Duration) -> String {
    let what = match e.raw_os_error() {
        Some(EMFILE) => match socket::fd_limit() {
            Ok(limit) => format!(
                "the process's open-file limit is reached (RLIMIT_NOFILE: soft {}, hard {}): \
                 raise the soft limit to the hard one with socket::raise_fd_limit() at the \
                 start of main (or `ulimit -n`), the hard one as root (`ulimit -Hn`, \
                 LimitNOFILE= in a systemd unit), or lower Builder::max_connections under it",
                limit.soft, limit.hard
            ),
            Err(_) => "the process's open-file limit (RLIMIT_NOFILE) is reached".to_owned(),
        },
        Some(ENFILE) => "the system's open-file limit is reached: raise it with \
                         `sysctl fs.file-max`"
            .to_owned(),
        _ => "the system is short of memory for sockets".to_owned(),
    };
    format!("{server}: cannot accept ({e}): {what}; pausing accepts, backing off up to {pause:?}")
}

/// Logs one line of the accept backoff (an episode's start, or its end) where the limit lines
/// go.
pub(crate) fn backoff_line(level: log::Level, line: fmt::Arguments<'_>) {
    crate::report::unmissable(TARGET, level, line);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the counts at the given milliseconds: the lines written, each with its time.
    fn run(gauge: &mut LimitGauge, start: Instant, steps: &[(u64, usize)]) -> Vec<(u64, String)> {
        steps
            .iter()
            .filter_map(|&(ms, count)| {
                let line = gauge.step(start + Duration::from_millis(ms), count)?;
                Some((ms, line))
            })
            .collect()
    }

    #[test]
    fn reached_then_cleared_below_ninety_percent() {
        let mut gauge = LimitGauge::new("max_threads", 100, "busy", "raise it");
        let lines = run(
            &mut gauge,
            Instant::now(),
            &[
                (0, 99),
                (10, 100),
                (20, 95),
                (30, 100),
                (40, 91),
                (2000, 90),
            ],
        );
        assert_eq!(
            lines,
            [
                (
                    10,
                    "limit max_threads = 100 reached (busy: 100); raise it".to_owned()
                ),
                (
                    2000,
                    "limit max_threads = 100 cleared (busy: 90), 2.0 s after it was reached"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_small_limit_clears_one_under_it() {
        let mut gauge = LimitGauge::new("max_children", 2, "children", "");
        let lines = run(&mut gauge, Instant::now(), &[(0, 2), (5000, 1)]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].1.contains("cleared (children: 1)"), "{lines:?}");
    }

    #[test]
    fn a_flapping_count_writes_few_lines_and_counts_the_rest() {
        let mut gauge = LimitGauge::new("max_connections", 1, "open", "");
        // Reached and cleared every 10 ms for 10 s: 1,000 episodes.
        let steps: Vec<(u64, usize)> = (0..2000).map(|i| (i * 5, 1 - (i as usize % 2))).collect();
        let lines = run(&mut gauge, Instant::now(), &steps);
        // A line at 0 s, then gaps of 1, 2, 4 s: four or five lines, not 2,000.
        assert!((3..=6).contains(&lines.len()), "{lines:#?}");
        assert!(
            lines[1..].iter().all(|(_, l)| l.contains("more time(s)")),
            "{lines:#?}"
        );
        let gaps: Vec<u64> = lines.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    }

    #[test]
    fn a_held_back_clear_is_written_by_a_later_round() {
        let mut gauge = LimitGauge::new("max_connections", 10, "open", "");
        let start = Instant::now();
        assert!(gauge.step(start, 10).is_some());
        // Cleared within the gap: held back, then written by the next round after it.
        assert_eq!(gauge.step(start + Duration::from_millis(100), 0), None);
        assert!(!gauge.is_reached());
        let line = gauge.step(start + Duration::from_millis(1100), 0);
        assert!(line.is_some_and(|l| l.contains("cleared")));
        // A quiet episode later: immediate again.
        assert!(gauge.step(start + Duration::from_secs(30), 10).is_some());
    }

    #[test]
    fn the_exhaustion_line_names_the_open_file_limit() {
        let emfile = io::Error::from_raw_os_error(EMFILE);
        let line = exhausted("TCPServer", &emfile, Duration::from_secs(1));
        assert!(
            line.contains("RLIMIT_NOFILE") && line.contains("raise_fd_limit"),
            "{line}"
        );
        let enfile = io::Error::from_raw_os_error(ENFILE);
        let line = exhausted("TCPServer", &enfile, Duration::from_secs(1));
        assert!(line.contains("fs.file-max"), "{line}");
    }
}
