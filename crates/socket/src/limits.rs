//! The process's limit on open files, which bounds how many connections a server can hold:
//! [`fd_limit`] reads it and [`raise_fd_limit`] raises its soft limit to the hard one.

use std::io;

use crate::sys;

/// A process's limit on open file descriptors (`RLIMIT_NOFILE`): every socket, connection,
/// pipe and file counts against `soft`; the process may raise `soft` up to `hard` itself
/// ([`raise_fd_limit`]), and only a privileged process can raise `hard`. `u64::MAX` means no
/// limit.
///
/// # Examples
///
/// ```
/// let limit = sockserve_socket::fd_limit()?;
/// assert!(limit.soft <= limit.hard);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The limit in force: opening a descriptor beyond it fails with `EMFILE`.
    pub soft: u64,
    /// How far the process may raise `soft`.
    pub hard: u64,
}

/// The process's limit on open file descriptors.
///
/// # Errors
///
/// The OS error of `getrlimit` (none is expected on Linux).
///
/// # Examples
///
/// See [`FdLimit`].
pub fn fd_limit() -> io::Result<FdLimit> {
    let (soft, hard) = sys::nofile_limit()?;
    Ok(FdLimit { soft, hard })
}

/// Raises the soft limit on open file descriptors to the hard limit, as Go's runtime does for
/// every program, and returns the limit now in force. Many systems start programs with a soft
/// limit of 1,024 (for `select`'s sake) and a far higher hard one: a server that holds many
/// connections should call this first thing in `main` (sockserve's examples do). A hard limit
/// of "unlimited" is capped at what the kernel allows a process (`fs.nr_open`). Nothing changes
/// if the soft limit is already the hard one.
///
/// The limit is process-wide: a library should leave calling this to the program.
///
/// # Errors
///
/// The OS error of `getrlimit` or `setrlimit`.
///
/// # Examples
///
/// ```no_run
/// let limit = sockserve_socket::raise_fd_limit()?;
/// println!("up to {} open files", limit.soft);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    let (soft, hard) = sys::nofile_limit()?;
    let target = if hard == u64::MAX {
        nr_open().unwrap_or(soft.max(1 << 20))
    } else {
        hard
    };
    if target > soft {
        sys::set_nofile_soft_limit(target, hard)?;
        log::debug!("raised the open-file soft limit from {soft} to {target} (hard limit {hard})");
    }
    fd_limit()
}

/// The most descriptors the kernel lets a process have (`/proc/sys/fs/nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}
