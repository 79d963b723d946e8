//! The socket file of a Unix server: take over a stale one, refuse a live one, never touch what
//! is not a socket, and remove on close only the file this server created.

use crate::{Error, Result};
use socket::{Address, Family, Socket, Type};
use std::{
    fs, io,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// The file a Unix server created by binding, identified by device and inode.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// `EACCES`, written out because only the socket layer names `libc`: 13 on every Unix (the
/// number goes back to V7). `io::ErrorKind::PermissionDenied` would not do: it is `EPERM` too,
/// which a datagram connect returns for a live socket connected to another peer.
const EACCES: i32 = 13;

/// Before binding `address`: if a file is already at its path, remove it only if it is a
/// socket that nothing answers on (a stale file from a dead server).
///
/// The probe connects without blocking, so it never waits: a live stream server with a full
/// backlog answers at once with `EAGAIN`, and counts as in use.
///
/// # Errors
///
/// [`Error::Bind`] with `AddrInUse` if something answers there or the file is not a socket;
/// with `PermissionDenied` if this process may not probe the socket (connecting needs write
/// permission on the socket file) or may not remove a stale one (that needs write permission
/// on its directory, and ownership in a sticky directory).
pub(crate) fn prepare_bind(address: &Address, ty: Type) -> Result<()> {
    let Some(path) = address.as_pathname() else {
        return Ok(()); // abstract names and inet addresses have no file
    };
    // A path that cannot be a socket address (too long, a NUL byte) says so in the socket
    // layer's words, before any file is looked at.
    address.to_sockaddr().map_err(|e| bind_error(address, e))?;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bind_error(address, e)),
    };
    let in_use =
        |message: String| bind_error(address, io::Error::new(io::ErrorKind::AddrInUse, message));
    if !meta.file_type().is_socket() {
        return Err(in_use(format!(
            "{} exists and is not a socket; it is left alone",
            path.display()
        )));
    }
    let probe = Socket::new(Family::Unix, ty)?;
    // Non-blocking: a blocking connect to a stream listener whose backlog is full waits until
    // the server accepts, which may be never. (A datagram connect only names the peer; it
    // never waits, even for a peer whose queue is full.)
    probe.setblocking(false)?;
    match probe.connect(path) {
        Ok(()) => Err(in_use(format!(
            "address in use: a live server answers on {}",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use(format!(
            "address in use: a live server answers on {} (its backlog is full)",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing the stale socket file {}", path.display());
            match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                // EACCES (the directory is not writable) or EPERM (sticky, and not ours).
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    Err(cannot_remove(address, path, e))
                }
                Err(e) => Err(bind_error(address, e)),
            }
        }
        // Checked before the kernel looks for a socket there, so it may be live or stale.
        Err(e) if e.raw_os_error() == Some(EACCES) => Err(bind_error(
            address,
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "permission denied: cannot tell whether a server answers on {0}: \
                     connecting to {0} needs write permission on the socket file ({e})",
                    path.display()
                ),
            ),
        )),
        // Another socket type, or a datagram socket connected to another peer (EPERM): in use
        // by something, not ours to judge, so not ours to remove.
        Err(e) => Err(in_use(format!(
            "address in use: {} is a socket in use ({e})",
            path.display()
        ))),
    }
}

/// The error for a stale socket file at `path` that this process may not remove.
fn cannot_remove(address: &Address, path: &Path, e: io::Error) -> Error {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // In a sticky directory (S_ISVTX, like /tmp) only the owner of the file or of the
    // directory may remove it, write permission or not.
    let sticky = fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o1000 != 0);
    let ownership = if sticky {
        " and, as that directory is sticky, ownership of the file or of the directory"
    } else {
        ""
    };
    bind_error(
        address,
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "permission denied: {} is a stale socket file, and removing it needs write \
                 permission on its directory {}{ownership} ({e})",
                path.display(),
                dir.display()
            ),
        ),
    )
}

fn bind_error(address: &Address, source: io::Error) -> Error {
    Error::Bind {
        address: address.clone(),
        source,
    }
}

impl SocketFile {
    /// Records the file just created by binding to `address` (none for abstract names).
    pub(crate) fn record(address: &Address) -> Option<SocketFile> {
        let path = address.as_pathname()?;
        let meta = fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the file if it is still the one this server created.
    pub(crate) fn remove(self) {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("cannot remove the socket file {}: {e}", self.path.display());
                }
            }
            Ok(_) => log::info!(
                "{} was replaced by another file; leaving it",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}
