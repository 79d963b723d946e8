//! [`Report`]: what a supervisor did, as [`Prefork::run`](crate::Prefork::run) returns it.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;

/// What [`Prefork::run`](crate::Prefork::run) reports from a supervisor: what stopped it and
/// what its workers did.
///
/// Its `Display` is a one-line summary for a program to print as it exits.
///
/// # Examples
///
/// ```
/// let report = sockserve_prefork::Report::default();
/// assert!(report.is_clean());
/// assert_eq!(report.to_string(), "stopped; 0 worker(s) started, 0 replaced");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The signal that stopped the supervisor (`None`: it handed over to an upgrade).
    pub signal: Option<Signal>,
    /// The pid of the new supervisor an upgrade handed the listener to, if one did.
    pub handed_over_to: Option<u32>,
    /// Workers started in all (replacements, reloads and resizes included).
    pub started: usize,
    /// Workers that died without being told to, and were replaced.
    pub replaced: usize,
    /// Workers still running at the stop's deadline, killed (`SIGKILL`).
    pub killed: usize,
    /// Children not reaped when the supervisor left (after `SIGKILL` and a bounded wait).
    pub unreaped: usize,
    /// From the stop's signal (or the handover) to the return.
    pub took: Duration,
}

impl Report {
    /// Whether every worker stopped when told to: none killed, none left behind.
    ///
    /// ```
    /// assert!(sockserve_prefork::Report::default().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.killed == 0 && self.unreaped == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.signal, self.handed_over_to) {
            (_, Some(pid)) => write!(f, "handed over to supervisor {pid}")?,
            (Some(signal), None) => write!(f, "{signal}: stopped")?,
            (None, None) => f.write_str("stopped")?,
        }
        if !self.took.is_zero() {
            write!(f, " in {:.3} s", self.took.as_secs_f64())?;
        }
        write!(
            f,
            "; {} worker(s) started, {} replaced",
            self.started, self.replaced
        )?;
        if self.killed > 0 {
            write!(f, ", {} killed at the deadline", self.killed)?;
        }
        if self.unreaped > 0 {
            write!(f, ", {} not reaped", self.unreaped)?;
        }
        Ok(())
    }
}
