//! What the peers of `cargo xtask bench` share: the command line (`--flag value` pairs), the
//! announcement every server of the bench prints first (`listening on ADDR`), and raising the
//! open-file limit (10,000 connections need 10,000 descriptors; `echo_server` raises its own
//! the same way).

use std::io::{self, Write};

/// The value of `--name` in `args` (`--name value` pairs), or `default`; an unknown flag or a
/// flag without a value is an error.
pub fn flag(args: &[String], known: &[&str], name: &str, default: &str) -> Result<String, String> {
    let mut value = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !known.contains(&flag.as_str()) {
            return Err(format!(
                "unknown flag `{flag}` (known: {})",
                known.join(", ")
            ));
        }
        let v = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        if flag == name {
            value = Some(v.clone());
        }
    }
    Ok(value.unwrap_or_else(|| default.to_owned()))
}

/// Prints `listening on ADDR` and flushes it: the bench waits for this line.
pub fn announce(addr: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_fd_limit() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid `rlimit`; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
