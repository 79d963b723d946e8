//! Telling the world the supervisor is ready: systemd's `sd_notify` protocol (a datagram
//! `READY=1\nMAINPID=<pid>` to the Unix socket `NOTIFY_SOCKET` names) and the pid file, both
//! kept true across an upgrade: the new supervisor sends its own `MAINPID` and writes its own
//! pid before the old one stops, and the old one removes the pid file at its exit only while
//! it still names the old one.

use std::io;
use std::path::{Path, PathBuf};

use socket::{Address, Family, Socket, Type};

/// The variable of the `sd_notify` protocol.
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where to send `sd_notify` messages, read from the environment at start.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    address: Option<Address>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`: an absolute path, or `@name` for a Linux abstract name. Unset:
    /// a notifier that sends nothing. Another value: an error naming it.
    pub(crate) fn from_env() -> io::Result<Notifier> {
        let Some(value) = std::env::var_os(NOTIFY_SOCKET) else {
            return Ok(Notifier { address: None });
        };
        let text = value.to_string_lossy();
        let address = match text.chars().next() {
            Some('/') => Address::Unix(PathBuf::from(&value)),
            Some('@') => text.parse::<Address>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={text}: {e}"),
                )
            })?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={text:?} is neither an absolute path nor @name"),
                ));
            }
        };
        Ok(Notifier {
            address: Some(address),
        })
    }

    /// Sends `state` (`READY=1\nMAINPID=123`, `STOPPING=1`, ...); nothing without
    /// `NOTIFY_SOCKET`.
    pub(crate) fn send(&self, state: &str) -> io::Result<()> {
        let Some(address) = &self.address else {
            return Ok(());
        };
        let sock = Socket::new(Family::Unix, Type::Datagram)?;
        sock.sendto(state.as_bytes(), address)?;
        Ok(())
    }
}

/// Writes `pid` to `path` atomically (a temporary file beside it, then a rename), so that a
/// reader never sees a half-written file.
pub(crate) fn write_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{pid}.tmp"));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The pid a pid file names, if it can be read.
pub(crate) fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes the pid file if it still names `pid` (after an upgrade it names the new
/// supervisor, and stays).
pub(crate) fn remove_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    if read_pid_file(path) == Some(pid) {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_file_is_removed_only_while_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pid");
        write_pid_file(&path, 41).unwrap();
        assert_eq!(read_pid_file(&path), Some(41));
        remove_pid_file(&path, 42).unwrap();
        assert!(path.exists(), "another supervisor's pid file was removed");
        remove_pid_file(&path, 41).unwrap();
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left"
        );
    }

    #[test]
    fn notify_sends_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = Socket::new(Family::Unix, Type::Datagram).unwrap();
        server.bind(path.as_path()).unwrap();
        let notifier = Notifier {
            address: Some(Address::Unix(path.clone())),
        };
        notifier.send("READY=1\nMAINPID=7").unwrap();
        server.settimeout(Some(std::time::Duration::from_secs(10)));
        assert_eq!(server.recv(100).unwrap(), b"READY=1\nMAINPID=7");
        Notifier { address: None }.send("READY=1").unwrap();
    }
}
