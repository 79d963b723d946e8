//! Socket activation: sockets passed by a service manager (systemd's `sd_listen_fds(3)`
//! protocol, `LISTEN_PID` / `LISTEN_FDS` / `LISTEN_FDNAMES`), and Python's `set_inheritable` /
//! `get_inheritable`, which decide whether a socket is passed on to programs this one runs.
//!
//! The protocol: the manager binds the sockets, puts them at fds 3, 4, ... (`SD_LISTEN_FDS_START`
//! onwards), and runs the service with `LISTEN_PID` set to the service's pid, `LISTEN_FDS` to the
//! number of sockets and, optionally, `LISTEN_FDNAMES` to their colon-separated names.
//! [`parse_listen_env`] checks those three values (a pure function); [`listen_fds`] reads them
//! from the environment, takes the fds and unsets the variables.
//!
//! ```
//! use sockserve_socket::activation::parse_listen_env;
//!
//! // What systemd sets for a service with two sockets named "web" and "admin":
//! let passed = parse_listen_env(Some("4242"), Some("2"), Some("web:admin"), 4242)?;
//! assert_eq!(passed[1].fd, 4);
//! assert_eq!(passed[1].name.as_deref(), Some("admin"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Family, Socket, Type};

/// The first passed fd (systemd's `SD_LISTEN_FDS_START`): fds 0-2 are stdin, stdout, stderr.
///
/// ```
/// assert_eq!(sockserve_socket::activation::SD_LISTEN_FDS_START, 3);
/// ```
pub const SD_LISTEN_FDS_START: RawFd = 3;

/// More passed sockets than this is taken for a corrupt `LISTEN_FDS` rather than a list to
/// build: it is Linux's default limit on any process's fd table (`fs.nr_open`).
const MAX_LISTEN_FDS: usize = 1 << 20;

/// Set once the passed fds have been taken: they are owned at most once per process, even when
/// the variables could not be unset (see [`listen_fds`]).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// One fd the environment says was passed: its number and its name (`None` when
/// `LISTEN_FDNAMES` is not set or the name is empty). Nothing is known about the fd yet.
///
/// ```
/// use sockserve_socket::activation::{parse_listen_env, PassedFd};
///
/// let passed = parse_listen_env(Some("7"), Some("1"), None, 7)?;
/// assert_eq!(passed, [PassedFd { fd: 3, name: None }]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedFd {
    /// The fd number: [`SD_LISTEN_FDS_START`] plus the fd's index.
    pub fd: RawFd,
    /// Its name from `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`).
    pub name: Option<String>,
}

/// Checks the three variables of the protocol against this process's `pid` and lists the fds
/// they describe, touching neither the environment nor any fd.
///
/// The rules (systemd's `sd_listen_fds_with_names(3)`, with errors instead of a silent 0):
///
/// - `LISTEN_FDS` absent or `0`: `NotFound`, "no sockets were passed (LISTEN_FDS is not set)".
/// - `LISTEN_PID` absent or another process's pid: `NotFound` ("LISTEN_PID is 123, not this
///   process (456)"); the sockets were meant for another process, such as a parent that
///   passed its environment on.
/// - `LISTEN_PID` or `LISTEN_FDS` not a positive decimal number: `InvalidData`.
/// - `LISTEN_FDNAMES`, when set, must hold exactly `LISTEN_FDS` colon-separated names:
///   `InvalidData` otherwise. An empty name counts as no name.
///
/// So `NotFound` means "not socket-activated", where a program usually binds its own socket,
/// and `InvalidData` means a broken environment.
///
/// ```
/// use std::io::ErrorKind;
/// use sockserve_socket::activation::parse_listen_env;
///
/// let err = parse_listen_env(None, None, None, 456).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "no sockets were passed (LISTEN_FDS is not set)");
///
/// let err = parse_listen_env(Some("123"), Some("1"), None, 456).unwrap_err();
/// assert_eq!(err.to_string(), "LISTEN_PID is 123, not this process (456)");
///
/// let passed = parse_listen_env(Some("456"), Some("2"), Some("web:"), 456)?;
/// assert_eq!((passed[0].fd, passed[0].name.as_deref()), (3, Some("web")));
/// assert_eq!((passed[1].fd, passed[1].name.as_deref()), (4, None));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn parse_listen_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    pid: u32,
) -> io::Result<Vec<PassedFd>> {
    let not_found = |msg: String| io::Error::new(io::ErrorKind::NotFound, msg);
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);

    let Some(count) = listen_fds else {
        return Err(not_found(
            "no sockets were passed (LISTEN_FDS is not set)".to_owned(),
        ));
    };
    let Some(listen_pid) = listen_pid else {
        return Err(not_found(format!(
            "LISTEN_FDS is {count:?} but LISTEN_PID is not set, so the sockets are not known \
             to be for this process ({pid})"
        )));
    };
    let listen_pid = parse_decimal(listen_pid)
        .filter(|&p| p > 0)
        .ok_or_else(|| invalid(format!("LISTEN_PID is not a process id: {listen_pid:?}")))?;
    if listen_pid != u64::from(pid) {
        return Err(not_found(format!(
            "LISTEN_PID is {listen_pid}, not this process ({pid})"
        )));
    }
    let n = parse_decimal(count)
        .ok_or_else(|| invalid(format!("LISTEN_FDS is not a positive number: {count:?}")))?;
    if n == 0 {
        return Err(not_found(
            "no sockets were passed (LISTEN_FDS is 0)".to_owned(),
        ));
    }
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LISTEN_FDS)
        .ok_or_else(|| {
            invalid(format!(
                "LISTEN_FDS is {count}, more fds than a process can hold ({MAX_LISTEN_FDS})"
            ))
        })?;

    let names: Vec<Option<String>> = match listen_fdnames {
        None => vec![None; n],
        Some(list) => {
            let names: Vec<Option<String>> = list
                .split(':')
                .map(|s| (!s.is_empty()).then(|| s.to_owned()))
                .collect();
            if names.len() != n {
                return Err(invalid(format!(
                    "LISTEN_FDNAMES has {} names ({list:?}) but LISTEN_FDS is {n}",
                    names.len()
                )));
            }
            names
        }
    };
    Ok(names
        .into_iter()
        .zip(SD_LISTEN_FDS_START..)
        .map(|(name, fd)| PassedFd { fd, name })
        .collect())
}

/// A decimal number of digits only (no sign, no spaces), as systemd accepts them.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Takes the sockets a service manager passed to this process: systemd's
/// `sd_listen_fds_with_names(3)` with `unset_environment` true.
///
/// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (see [`parse_listen_env`] for the
/// rules and errors), checks that every passed fd is an open socket of a family and type this
/// crate handles (`InvalidInput` otherwise, and then no fd is taken), and wraps each in a
/// [`Socket`] (family and type from the kernel, as [`Socket::from_fd`]; close-on-exec, so the
/// sockets do not leak into programs this one runs).
///
/// # Process-wide state
///
/// The environment and the fd table belong to the whole process, so this is a once-per-process
/// call:
///
/// - The fds are taken at most once: a second call fails with `AlreadyExists` while the
///   variables are still set, so two owners never close the same fd.
/// - After taking the fds (or failing to), the three variables are removed from the
///   environment, as `sd_listen_fds(1)` does, so a program this one runs, or this program after
///   `exec`, does not take fds 3... for passed sockets. Changing the environment is only sound
///   while no other thread may read it (Rust 2024 made `std::env::remove_var` `unsafe` for that
///   reason), so they are removed only while the process has a single thread; call this early
///   in `main`, before starting threads, as systemd's manual also advises. In a process with
///   more threads the variables stay, and the once-only rule above still holds.
///
/// # Examples
///
/// ```no_run
/// use sockserve_socket::activation::listen_fds;
///
/// // Run under systemd with a socket unit (or `systemd-socket-activate -l 8080 ./server`).
/// let fds = listen_fds()?;
/// let web = fds.take(Some("web"))?.into_socket();
/// let (conn, peer) = web.accept()?;
/// println!("a client from {peer}");
/// # drop(conn);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_fds() -> io::Result<ListenFds> {
    let result = read_env().and_then(|(pid, fds, names)| {
        let passed = parse_listen_env(
            pid.as_deref(),
            fds.as_deref(),
            names.as_deref(),
            std::process::id(),
        )?;
        take(&passed)
    });
    unset_env();
    result
}

/// The three variables, or `InvalidData` for one that is not UTF-8.
fn read_env() -> io::Result<(Option<String>, Option<String>, Option<String>)> {
    let var = |key: &str| match std::env::var_os(key) {
        None => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|v| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{key} is not valid UTF-8: {v:?}"),
            )
        }),
    };
    Ok((
        var("LISTEN_PID")?,
        var("LISTEN_FDS")?,
        var("LISTEN_FDNAMES")?,
    ))
}

/// Removes the three variables if that is sound: only in a single-threaded process.
fn unset_env() {
    if !single_threaded() {
        if std::env::var_os("LISTEN_FDS").is_some() {
            log::debug!("LISTEN_* left in the environment: other threads may be reading it");
        }
        return;
    }
    for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: the process has one thread (this one), so nothing else reads or writes the
        // environment while it changes: the condition std documents for `remove_var`. No thread
        // can start in between, since starting one would take this thread.
        unsafe { std::env::remove_var(key) };
    }
}

/// Whether this process has exactly one thread, from `/proc/self/status` (false if unknown).
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    })
}

/// Checks every passed fd, then takes ownership of all of them (or of none).
fn take(passed: &[PassedFd]) -> io::Result<ListenFds> {
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the passed sockets were already taken by an earlier listen_fds() call",
        ));
    }
    if let Err(e) = passed.iter().try_for_each(|p| check_fd(p.fd)) {
        // Nothing was taken, so a later call may try again.
        TAKEN.store(false, Ordering::SeqCst);
        return Err(e);
    }
    let mut out = Vec::with_capacity(passed.len());
    for p in passed {
        // SAFETY: check_fd showed the fd is open and a socket, and the protocol passes it to
        // this process for it to own; TAKEN makes this the only place that ever takes it.
        let fd = unsafe { OwnedFd::from_raw_fd(p.fd) };
        // from_fd fails only if fcntl fails on an open fd, which it does not; should it ever,
        // the sockets taken so far close and TAKEN stays set, so no fd gets two owners.
        out.push(ListenFd::new(p.name.clone(), Socket::from_fd(fd)?));
    }
    Ok(ListenFds(out))
}

/// `InvalidInput` unless `fd` is open and a socket of a family and type this crate handles.
fn check_fd(fd: RawFd) -> io::Result<()> {
    let invalid = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS passes fd {fd}, but {what}"),
        )
    };
    // SAFETY: F_GETFD takes no pointer argument; for an fd that is not open it fails with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        let e = io::Error::last_os_error();
        return Err(invalid(format!("it is not open ({e})")));
    }
    // SAFETY: the fd is open (checked just above) and is only borrowed for the two queries below;
    // nothing closes it meanwhile, as no Rust value owns it yet.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&borrowed);
    let not_a_socket = |e: io::Error| {
        if e.raw_os_error() == Some(libc::ENOTSOCK) {
            invalid("it is not a socket".to_owned())
        } else {
            invalid(format!("its socket type cannot be read ({e})"))
        }
    };
    let domain = sock.domain().map_err(not_a_socket)?;
    let ty = sock.r#type().map_err(not_a_socket)?;
    Family::try_from(domain).map_err(|e| invalid(e.to_string()))?;
    Type::try_from(ty).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// One passed socket and its name.
///
/// ```
/// use sockserve_socket::activation::ListenFd;
/// use sockserve_socket::Socket;
///
/// let listener = Socket::from(std::net::TcpListener::bind("127.0.0.1:0")?);
/// let fd = ListenFd::new(Some("web".to_owned()), listener);
/// assert_eq!(fd.name(), Some("web"));
/// assert!(fd.socket().getsockname()?.as_inet().is_some());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ListenFd {
    name: Option<String>,
    socket: Socket,
}

impl ListenFd {
    /// A named (or unnamed) socket, as [`listen_fds`] makes them; for tests and for sockets
    /// received some other way.
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFd;
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fd = ListenFd::new(None, Socket::new(Family::Inet, Type::Stream)?);
    /// assert_eq!(fd.name(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(name: Option<String>, socket: Socket) -> ListenFd {
        ListenFd { name, socket }
    }

    /// The name from `LISTEN_FDNAMES`, if one was given.
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFd;
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fd = ListenFd::new(Some("admin".into()), Socket::new(Family::Unix, Type::Stream)?);
    /// assert_eq!(fd.name(), Some("admin"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The socket.
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFd;
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fd = ListenFd::new(None, Socket::new(Family::Inet6, Type::Datagram)?);
    /// assert_eq!(fd.socket().socket_type(), Type::Datagram);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The socket, owned.
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFd;
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fd = ListenFd::new(None, Socket::new(Family::Inet, Type::Stream)?);
    /// let socket: Socket = fd.into_socket();
    /// assert!(!socket.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_socket(self) -> Socket {
        self.socket
    }
}

impl fmt::Display for ListenFd {
    /// The name, or `fd N (unnamed)`, as error messages list passed sockets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "fd {} (unnamed)", self.socket.as_raw_fd()),
        }
    }
}

/// The sockets passed to this process, in fd order, from [`listen_fds`].
///
/// ```
/// use sockserve_socket::activation::{ListenFd, ListenFds};
/// use sockserve_socket::{Family, Socket, Type};
///
/// let fds = ListenFds::from(vec![
///     ListenFd::new(Some("web".into()), Socket::new(Family::Inet, Type::Stream)?),
///     ListenFd::new(Some("admin".into()), Socket::new(Family::Unix, Type::Stream)?),
/// ]);
/// assert_eq!(fds.len(), 2);
/// let admin = fds.take(Some("admin"))?;
/// assert_eq!(admin.socket().family(), Family::Unix);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ListenFds(Vec<ListenFd>);

impl ListenFds {
    /// How many sockets were passed.
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFds;
    /// assert_eq!(ListenFds::from(Vec::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no socket was passed (never the case for the result of [`listen_fds`]).
    ///
    /// ```
    /// use sockserve_socket::activation::ListenFds;
    /// assert!(ListenFds::from(Vec::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The passed sockets, in fd order.
    ///
    /// ```
    /// use sockserve_socket::activation::{ListenFd, ListenFds};
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let fds = ListenFds::from(vec![ListenFd::new(None, Socket::new(Family::Inet, Type::Stream)?)]);
    /// assert!(fds.iter().all(|fd| fd.name().is_none()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, ListenFd> {
        self.0.iter()
    }

    /// Takes the socket named `name`, or the first one for `None`; the others are closed.
    ///
    /// Fails with `NotFound` when no socket has that name, listing the names there are:
    /// "no socket named 'web' among web2, admin".
    ///
    /// ```
    /// use sockserve_socket::activation::{ListenFd, ListenFds};
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let passed = || -> std::io::Result<ListenFds> {
    ///     Ok(ListenFds::from(vec![
    ///         ListenFd::new(Some("web2".into()), Socket::new(Family::Inet, Type::Stream)?),
    ///         ListenFd::new(Some("admin".into()), Socket::new(Family::Inet, Type::Stream)?),
    ///     ]))
    /// };
    /// assert_eq!(passed()?.take(None)?.name(), Some("web2"));
    /// let err = passed()?.take(Some("web")).unwrap_err();
    /// assert_eq!(err.to_string(), "no socket named 'web' among web2, admin");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take(self, name: Option<&str>) -> io::Result<ListenFd> {
        let index = match name {
            None => (!self.0.is_empty()).then_some(0),
            Some(name) => self.0.iter().position(|fd| fd.name() == Some(name)),
        };
        let Some(index) = index else {
            let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
            let msg = match name {
                Some(name) if !list.is_empty() => {
                    format!("no socket named '{name}' among {}", list.join(", "))
                }
                Some(name) => format!("no socket named '{name}' (no sockets were passed)"),
                None => "no sockets were passed".to_owned(),
            };
            return Err(io::Error::new(io::ErrorKind::NotFound, msg));
        };
        let mut fds = self.0;
        Ok(fds.swap_remove(index))
    }
}

impl From<Vec<ListenFd>> for ListenFds {
    fn from(fds: Vec<ListenFd>) -> ListenFds {
        ListenFds(fds)
    }
}

impl IntoIterator for ListenFds {
    type Item = ListenFd;
    type IntoIter = std::vec::IntoIter<ListenFd>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ListenFds {
    type Item = &'a ListenFd;
    type IntoIter = std::slice::Iter<'a, ListenFd>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Socket {
    /// Sets whether the socket is passed on to programs this one runs (Python's
    /// `set_inheritable`): `true` clears `FD_CLOEXEC`. Sockets are created close-on-exec, as in
    /// Python; making one inheritable is how a parent hands a listener to a child, as a service
    /// manager does for [`listen_fds`]. Affects this fd only, not its duplicates.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let sock = Socket::new(Family::Inet, Type::Stream)?;
    /// assert!(!sock.get_inheritable()?);
    /// sock.set_inheritable(true)?;
    /// assert!(sock.get_inheritable()?);
    /// // std::process::Command would now pass `sock.fileno()` to the child it spawns.
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_inheritable(&self, inheritable: bool) -> io::Result<()> {
        self.sock()?.set_cloexec(!inheritable)
    }

    /// Whether the socket is passed on to programs this one runs (Python's `get_inheritable`):
    /// whether `FD_CLOEXEC` is clear. `EBADF` once closed.
    ///
    /// ```
    /// use sockserve_socket::{Family, Socket, Type};
    ///
    /// let sock = Socket::new(Family::Unix, Type::Datagram)?;
    /// assert!(!sock.get_inheritable()?); // close-on-exec from the start
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_inheritable(&self) -> io::Result<bool> {
        let fd = self.sock()?.as_raw_fd();
        // SAFETY: F_GETFD takes no pointer argument; `fd` is open while `self` holds it.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(flags & libc::FD_CLOEXEC == 0)
    }
}
