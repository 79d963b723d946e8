//! Reporting a failure (a failed request, a panicking hook) so that it is never silent: through
//! the `log` logger if the program installed one, else on stderr, as Python's `handle_error`
//! prints. At most [`LIMIT`] reports a second per process; the rest are counted, not shown.
//!
//! A request that a deadline ended (a read or write that timed out) is no failure of the
//! server: a client was slow or silent, and a server facing the network sees hundreds of them.
//! [`timed_out`] reports those apart, at info level with a logger, at most [`TIMED_OUT_LIMIT`]
//! a second with the rest counted, so that they neither flood the log nor use up the budget of
//! the failures that matter.
//!
//! This is the one file of a library crate that writes to stderr (ARCHITECTURE.md, invariant 6;
//! tidy's `quiet` check). It runs on worker threads and inside forked children, so it takes no
//! lock: a lock that another parent thread held at fork time stays held forever in the child.
//! Hence no `eprintln!` and no `stderr().lock()` (both take std's stderr lock): each report is
//! one `write` to a duplicate of fd 2, which also keeps the lines of concurrent threads and
//! processes from interleaving (a pipe writes up to `PIPE_BUF`, 4096 bytes, in one piece). The
//! rate limit is one atomic word.

use std::{
    fmt::{self, Write as _},
    fs::File,
    io::{self, Write as _},
    os::fd::AsFd,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// The most reports written in one clock second by one process.
pub(crate) const LIMIT: u32 = 10;

/// The most reports of requests ended by a deadline written in one clock second by one process.
pub(crate) const TIMED_OUT_LIMIT: u32 = 1;

/// A rate limit's state, packed so that one compare-and-swap updates it: the clock second of
/// the current window (bits 32..64), the reports shown in it (bits 24..32) and the reports held
/// back in it (bits 0..24, saturating).
static STATE: AtomicU64 = AtomicU64::new(0);

/// The state of the rate limit of [`timed_out`]'s reports, packed as [`STATE`].
static TIMED_OUT_STATE: AtomicU64 = AtomicU64::new(0);

/// The largest count of held-back reports the state can hold.
const HIDDEN_MAX: u32 = (1 << 24) - 1;

/// Set in a forked request child (its own copy of memory): reports then always go to stderr in
/// one `write`, never through the logger, whose own locks (std's stderr lock, for most loggers)
/// another thread of the parent may have held at the fork.
static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// Marks this process as a forked request child (see [`FORKED_CHILD`]).
pub(crate) fn in_forked_child() {
    FORKED_CHILD.store(true, Ordering::Relaxed);
}

/// Reports one failure: `message` is a whole line, without its newline.
///
/// With a logger installed (`log::max_level()` is not `Off`), it is logged at error level;
/// without one, written to stderr. Past [`LIMIT`] reports in a second, the rest of that
/// second's are counted, not shown: the first one held back writes a line saying so, and the
/// next report shown, in a later second, is preceded by their count.
pub(crate) fn failure(message: fmt::Arguments<'_>) {
    let verdict = admit(&STATE, clock_second(), LIMIT);
    let Some(text) = render(Series::Failures, verdict, message) else {
        return;
    };
    if log::max_level() == log::LevelFilter::Off || FORKED_CHILD.load(Ordering::Relaxed) {
        write_stderr(&text);
    } else {
        for line in text.lines() {
            log::error!("{line}");
        }
    }
}

/// Reports one request that a deadline ended: `message` is a whole line, without its newline.
///
/// With a logger installed, it is logged at info level; without one, written to stderr, as a
/// failure is. Past [`TIMED_OUT_LIMIT`] reports in a second the rest are counted, as
/// [`failure`] counts its own, apart from them. In a forked request child it is written to
/// stderr only if the program's level lets info records through (or it installed no logger).
pub(crate) fn timed_out(message: fmt::Arguments<'_>) {
    let max = log::max_level();
    if max != log::LevelFilter::Off && max < log::LevelFilter::Info {
        return; // the program asked not to see info records: no need to count either
    }
    let verdict = admit(&TIMED_OUT_STATE, clock_second(), TIMED_OUT_LIMIT);
    let Some(text) = render(Series::TimedOut, verdict, message) else {
        return;
    };
    if max == log::LevelFilter::Off || FORKED_CHILD.load(Ordering::Relaxed) {
        write_stderr(&text);
    } else {
        for line in text.lines() {
            log::info!("{line}");
        }
    }
}

/// Which kind of report a rate limit counts, for the words of its summary lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    /// [`failure`]'s, at most [`LIMIT`] a second.
    Failures,
    /// [`timed_out`]'s, at most [`TIMED_OUT_LIMIT`] a second.
    TimedOut,
}

/// What the rate limit decided for one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Show it, after a line counting `held_back` reports of an earlier second, if nonzero.
    Show { held_back: u32 },
    /// The first report over the limit in this second: say that reports are held back.
    FirstHeldBack,
    /// Over the limit: count it, show nothing.
    HeldBack,
}

/// The current clock second, truncated to 32 bits: windows are only compared for equality, so
/// a clock that steps back or wraps starts a new window rather than holding reports back.
fn clock_second() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Truncation intended: see above.
    seconds as u32
}

/// Counts one report at clock second `now` in the process-wide `state`, at most `limit` shown
/// a second.
fn admit(state: &AtomicU64, now: u32, limit: u32) -> Verdict {
    // The closure always returns Some, so fetch_update cannot fail; both arms are the old state.
    let old = state
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
            Some(step(s, now, limit).0)
        })
        .unwrap_or_else(|s| s);
    step(old, now, limit).1
}

/// The rate limit as a pure function: the state after one more report at `now`, and what to
/// do with that report, showing at most `limit` a second.
fn step(state: u64, now: u32, limit: u32) -> (u64, Verdict) {
    let window = (state >> 32) as u32;
    let shown = ((state >> 24) & 0xff) as u32;
    let hidden = (state & u64::from(HIDDEN_MAX)) as u32;
    let pack =
        |shown: u32, hidden: u32| u64::from(now) << 32 | u64::from(shown) << 24 | u64::from(hidden);
    if window != now {
        (pack(1, 0), Verdict::Show { held_back: hidden })
    } else if shown < limit {
        (pack(shown + 1, hidden), Verdict::Show { held_back: 0 })
    } else {
        let verdict = if hidden == 0 {
            Verdict::FirstHeldBack
        } else {
            Verdict::HeldBack
        };
        (pack(shown, (hidden + 1).min(HIDDEN_MAX)), verdict)
    }
}

/// The text to write for one report of `series` (whole lines, each ending in a newline), if
/// any.
fn render(series: Series, verdict: Verdict, message: fmt::Arguments<'_>) -> Option<String> {
    let mut text = String::new();
    // Writing to a String cannot fail: its fmt::Write never returns an error.
    let _ = match (verdict, series) {
        (Verdict::HeldBack, _) => return None,
        (Verdict::FirstHeldBack, Series::Failures) => writeln!(
            text,
            "More than {LIMIT} failures this second: the rest of this second's are counted, \
             not shown"
        ),
        (Verdict::FirstHeldBack, Series::TimedOut) => writeln!(
            text,
            "More requests ended by a deadline this second: the rest of this second's are \
             counted, not shown (at most {TIMED_OUT_LIMIT} report a second)"
        ),
        (Verdict::Show { held_back: 0 }, _) => writeln!(text, "{message}"),
        (Verdict::Show { held_back }, _) => {
            let at_least = if held_back == HIDDEN_MAX {
                "at least "
            } else {
                ""
            };
            let what = match series {
                Series::Failures => {
                    format!("failures not shown (at most {LIMIT} reports a second)")
                }
                Series::TimedOut => format!(
                    "requests ended by a deadline not shown (at most {TIMED_OUT_LIMIT} report \
                     a second)"
                ),
            };
            writeln!(text, "{at_least}{held_back} more {what}\n{message}")
        }
    };
    Some(text)
}

/// Writes `text` to stderr in one `write`, taking no lock. A failure to write is ignored: there
/// is nowhere left to report it.
fn write_stderr(text: &str) {
    // A duplicate of fd 2 as a File: safe code, no std lock, and closing it leaves fd 2 open.
    // If no fd is free (EMFILE) or stderr is closed, the report is lost.
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return;
    };
    // One write call carries the whole text; write_all only continues a short write (a
    // terminal may take part of it), rather than lose the rest.
    let _ = File::from(fd).write_all(text.as_bytes());
}

/// A line that must not be lost and rates itself (the limit lines of `limits.rs`): logged at
/// `level` under `target` when a logger is installed, else written to stderr in one `write`,
/// as `sockserve: LEVEL: line`. Not counted against the reports' rate limit. Outside a forked
/// child it writes through std's stderr, which needs no descriptor of its own: one of these
/// lines says that there are none left.
pub(crate) fn unmissable(target: &str, level: log::Level, line: fmt::Arguments<'_>) {
    let forked = FORKED_CHILD.load(Ordering::Relaxed);
    if log::max_level() != log::LevelFilter::Off && !forked {
        return log::log!(target: target, level, "{line}");
    }
    let text = format!("sockserve: {level}: {line}\n");
    if forked {
        write_stderr(&text);
    } else {
        let _ = io::stderr().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` reports at `now` from `state`: the verdicts, and the state after them.
    fn run(mut state: u64, now: u32, n: usize) -> (Vec<Verdict>, u64) {
        let mut verdicts = Vec::new();
        for _ in 0..n {
            let (next, verdict) = step(state, now, LIMIT);
            state = next;
            verdicts.push(verdict);
        }
        (verdicts, state)
    }

    #[test]
    fn limit_then_a_notice_then_silence_then_the_count() {
        let (verdicts, state) = run(0, 100, 25);
        let limit = LIMIT as usize;
        assert!(
            verdicts[..limit]
                .iter()
                .all(|v| *v == Verdict::Show { held_back: 0 })
        );
        assert_eq!(verdicts[limit], Verdict::FirstHeldBack);
        assert!(
            verdicts[limit + 1..]
                .iter()
                .all(|v| *v == Verdict::HeldBack)
        );
        // A later second: the count of the 15 held back comes with its first report.
        let (verdicts, _) = run(state, 103, 2);
        assert_eq!(
            verdicts,
            [
                Verdict::Show { held_back: 15 },
                Verdict::Show { held_back: 0 }
            ]
        );
    }

    #[test]
    fn a_clock_stepping_back_starts_a_new_window() {
        let (_, state) = run(0, 100, 12);
        assert_eq!(step(state, 99, LIMIT).1, Verdict::Show { held_back: 2 });
    }

    #[test]
    fn the_held_back_count_saturates() {
        let full = u64::from(100u32) << 32 | u64::from(LIMIT) << 24 | u64::from(HIDDEN_MAX);
        let (state, verdict) = step(full, 100, LIMIT);
        assert_eq!((state, verdict), (full, Verdict::HeldBack));
        let text = render(
            Series::Failures,
            step(state, 101, LIMIT).1,
            format_args!("boom"),
        )
        .unwrap();
        assert!(
            text.starts_with("at least 16777215 more failures"),
            "{text}"
        );
    }

    #[test]
    fn rendered_lines() {
        let show = |held_back| {
            render(
                Series::Failures,
                Verdict::Show { held_back },
                format_args!("boom {}", 1),
            )
        };
        assert_eq!(show(0).as_deref(), Some("boom 1\n"));
        assert_eq!(
            show(3).as_deref(),
            Some("3 more failures not shown (at most 10 reports a second)\nboom 1\n")
        );
        let notice = render(
            Series::Failures,
            Verdict::FirstHeldBack,
            format_args!("boom"),
        )
        .unwrap();
        assert!(
            notice.starts_with("More than 10 failures this second"),
            "{notice}"
        );
        assert_eq!(
            render(Series::Failures, Verdict::HeldBack, format_args!("boom")),
            None
        );
    }

    #[test]
    fn timed_out_requests_have_a_limit_and_words_of_their_own() {
        let mut state = 0;
        let mut verdicts = Vec::new();
        for _ in 0..50 {
            let (next, verdict) = step(state, 100, TIMED_OUT_LIMIT);
            state = next;
            verdicts.push(verdict);
        }
        assert_eq!(verdicts[0], Verdict::Show { held_back: 0 });
        assert_eq!(verdicts[1], Verdict::FirstHeldBack);
        assert!(verdicts[2..].iter().all(|v| *v == Verdict::HeldBack));
        let (_, later) = step(state, 101, TIMED_OUT_LIMIT);
        assert_eq!(later, Verdict::Show { held_back: 49 });
        let text = render(Series::TimedOut, later, format_args!("idle")).unwrap();
        assert_eq!(
            text,
            "49 more requests ended by a deadline not shown (at most 1 report a second)\nidle\n"
        );
        let notice = render(
            Series::TimedOut,
            Verdict::FirstHeldBack,
            format_args!("idle"),
        )
        .unwrap();
        assert!(notice.contains("counted, not shown"), "{notice}");
    }
}
