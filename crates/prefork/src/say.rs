//! The supervisor's lines that must not be lost: a worker that died, a crash loop backing off,
//! an upgrade that failed, a worker whose work failed. Logged through `log` when the program
//! installed a logger; written to stderr, one `write` per line, when it did not
//! (`log::max_level()` is `Off`), as the server layer's report does, so that a default
//! supervisor is never silent about them.

use std::fmt;
use std::io::Write;

/// How bad a line is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

/// Logs `args` at `level`, or writes it to stderr when no logger is installed. Info lines go
/// to stderr too: the supervisor's life events (ready, reloading, handing over) are few and
/// what an operator watching a terminal wants to see.
pub(crate) fn say(level: Level, args: fmt::Arguments<'_>) {
    if log::max_level() == log::LevelFilter::Off {
        let line = format!("sockserve-prefork[{}]: {args}\n", std::process::id());
        // One write of the whole line: lines of the supervisor and of its workers, which share
        // the descriptor, do not interleave. A failed write has nowhere else to go.
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    }
    match level {
        Level::Info => log::info!("{args}"),
        Level::Warn => log::warn!("{args}"),
        Level::Error => log::error!("{args}"),
    }
}

/// [`say`] at info level.
macro_rules! say_info {
    ($($arg:tt)*) => { $crate::say::say($crate::say::Level::Info, format_args!($($arg)*)) };
}
/// [`say`] at warn level.
macro_rules! say_warn {
    ($($arg:tt)*) => { $crate::say::say($crate::say::Level::Warn, format_args!($($arg)*)) };
}
/// [`say`] at error level.
macro_rules! say_error {
    ($($arg:tt)*) => { $crate::say::say($crate::say::Level::Error, format_args!($($arg)*)) };
}
pub(crate) use {say_error, say_info, say_warn};
