//! The socket file of a Unix server: take over a stale one, refuse a live one, never touch what
//! is not a socket, and remove on close only the file this server created.

use crate::{Error, Result};
use socket::{Address, Family, Socket, Type};
use std::{
    fs, io,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::PathBuf,
};

/// The file a Unix server created by binding, identified by device and inode.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Before binding `address`: if a file is already at its path, remove it only if it is a
/// socket that nothing answers on (a stale file from a dead server).
pub(crate) fn prepare_bind(address: &Address, ty: Type) -> Result<()> {
    let Some(path) = address.as_pathname() else {
        return Ok(()); // abstract names and inet addresses have no file
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bind_error(address, e)),
    };
    if !meta.file_type().is_socket() {
        return Err(bind_error(
            address,
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} exists and is not a socket; it is left alone",
                    path.display()
                ),
            ),
        ));
    }
    let probe = Socket::new(Family::Unix, ty)?;
    match probe.connect(path) {
        Ok(()) => Err(bind_error(
            address,
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "address in use: a live server answers on {}",
                    path.display()
                ),
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing the stale socket file {}", path.display());
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(bind_error(address, e)),
                _ => Ok(()),
            }
        }
        // Another socket type, or no permission: not ours to judge, so not ours to remove.
        Err(e) => Err(bind_error(
            address,
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "address in use: {} is a socket in use ({e})",
                    path.display()
                ),
            ),
        )),
    }
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
