//! Raw `libc` calls that `socket2` does not wrap: poll, fcntl flags, gethostname, getaddrinfo,
//! close.
//!
//! Most of what is `unsafe` in the crate lives here, behind small safe functions. The other files
//! that hold some are `address.rs` (reading a `sockaddr_un`), `resolve.rs` (zeroed `addrinfo`
//! hints) and `activation.rs` (inherited fds, and clearing the environment that announced them):
//! `cargo xtask tidy` lists every such file in `UNSAFE_FILES` (`xtask/src/tidy.rs`) and fails on
//! `unsafe` anywhere else.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Instant;

/// Flags added to every `send`/`sendto`: a write to a closed peer must return `EPIPE`
/// (`BrokenPipe`), never raise `SIGPIPE` and kill the process, because unlike CPython we cannot
/// assume the program ignores `SIGPIPE` at startup.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// Platforms without `MSG_NOSIGNAL` would need `SO_NOSIGPIPE` instead; only Linux is tested.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// `MSG_DONTWAIT`: makes one call non-blocking whatever the fd's `O_NONBLOCK` flag says. Sockets
/// made by `dup` share that flag with their original, so timeout mode must not rely on it alone.
pub(crate) const DONTWAIT: libc::c_int = libc::MSG_DONTWAIT;
/// `MSG_PEEK`: a receive that leaves the bytes queued.
pub(crate) const PEEK: libc::c_int = libc::MSG_PEEK;
/// `MSG_TRUNC` on a receive: the call returns the datagram's real length, even past the room it
/// was given (Linux, UDP and Unix datagram sockets alike), so a cut datagram can be told apart.
pub(crate) const TRUNC: libc::c_int = libc::MSG_TRUNC;

/// What a caller waits for in [`wait`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Data to read, a connection to accept, or EOF.
    Readable,
    /// Room to write, or a finished non-blocking connect.
    Writable,
}

/// The error of a call whose timeout expired: `TimedOut` with Python's message.
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// Waits with `poll(2)` until `fd` is ready or `deadline` passes (`None`: no deadline).
///
/// `EINTR` is retried with the remaining time (PEP 475). An expired deadline gives
/// [`timed_out`]. Errors and hangups count as ready: the next call reports them.
pub(crate) fn wait(fd: RawFd, what: Wait, deadline: Option<Instant>) -> io::Result<()> {
    let events = match what {
        Wait::Readable => libc::POLLIN,
        Wait::Writable => libc::POLLOUT,
    };
    wait_events(fd, events, deadline).map(drop)
}

/// Input, or the peer's end of its side: the events of [`wait_events`] for a connection's
/// next input.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const INPUT_OR_HANGUP: libc::c_short = libc::POLLIN | libc::POLLRDHUP;
/// Without `POLLRDHUP`, input alone: an end of file then looks like input (the read finds it).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const INPUT_OR_HANGUP: libc::c_short = libc::POLLIN;

/// The peer closed its side, or the connection broke: what `poll(2)` says besides `POLLIN`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const HANGUP: libc::c_short = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
/// The connection broke (no `POLLRDHUP` here).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const HANGUP: libc::c_short = libc::POLLHUP | libc::POLLERR;

/// As [`wait`] for `events` (`POLLIN`, `POLLOUT`, `POLLRDHUP`...), giving what `poll(2)`
/// reported (`revents`).
pub(crate) fn wait_events(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<libc::c_short> {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                // Round up, so that a wait of 0.4 ms does not become a busy loop of zero waits.
                let ms = left.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd array of length 1 for the whole call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match n {
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            0 => {} // Loop: the deadline check above turns this into `timed_out`.
            _ => {
                if pfd.revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                return Ok(pfd.revents);
            }
        }
    }
}

/// Whether `fd` has `O_NONBLOCK` set.
pub(crate) fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no pointer argument; an invalid fd only gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// The message of a resolver error code, as `gai_strerror(3)` gives it.
pub(crate) fn gai_strerror(code: libc::c_int) -> String {
    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated string (or NULL).
    let msg = unsafe { libc::gai_strerror(code) };
    if msg.is_null() {
        return format!("unknown resolver error {code}");
    }
    // SAFETY: not NULL, and NUL-terminated per gai_strerror's contract.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

/// One entry of a `getaddrinfo(3)` answer, with the address copied out.
#[derive(Debug)]
pub(crate) struct RawAddrInfo {
    pub(crate) family: libc::c_int,
    pub(crate) socktype: libc::c_int,
    pub(crate) protocol: libc::c_int,
    pub(crate) canonname: Option<String>,
    pub(crate) address: socket2::SockAddr,
}

/// Calls `getaddrinfo(3)`; `Err(code)` carries the `EAI_*` code (with `errno` for EAI_SYSTEM).
pub(crate) fn getaddrinfo(
    host: Option<&CStr>,
    service: Option<&CStr>,
    hints: &libc::addrinfo,
) -> Result<Vec<RawAddrInfo>, (libc::c_int, io::Error)> {
    let mut res: *mut libc::addrinfo = ptr::null_mut();
    let node = host.map_or(ptr::null(), CStr::as_ptr);
    let serv = service.map_or(ptr::null(), CStr::as_ptr);
    // SAFETY: node/serv are NULL or valid C strings, hints is a valid addrinfo, res is an out
    // pointer; the answer is freed below with freeaddrinfo.
    let code = unsafe { libc::getaddrinfo(node, serv, hints, &mut res) };
    let os_error = io::Error::last_os_error();
    if code != 0 {
        return Err((code, os_error));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned and has not been freed.
        let ai = unsafe { &*cur };
        let len = usize::try_from(ai.ai_addrlen).unwrap_or(usize::MAX);
        if !ai.ai_addr.is_null() && len <= std::mem::size_of::<libc::sockaddr_storage>() {
            // SAFETY: ai_addr points to ai_addrlen initialised bytes, which fit in the storage.
            let (_, address) = unsafe {
                socket2::SockAddr::try_init(|storage, socklen| {
                    ptr::copy_nonoverlapping(ai.ai_addr.cast::<u8>(), storage.cast::<u8>(), len);
                    *socklen = ai.ai_addrlen;
                    Ok(())
                })
            }
            .map_err(|e| (libc::EAI_SYSTEM, e))?;
            let canonname = if ai.ai_canonname.is_null() {
                None
            } else {
                // SAFETY: a non-NULL ai_canonname is a NUL-terminated string owned by the list.
                Some(
                    unsafe { CStr::from_ptr(ai.ai_canonname) }
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            out.push(RawAddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                canonname,
                address,
            });
        }
        cur = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo and is freed exactly once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// The host name, from `gethostname(2)`.
pub(crate) fn gethostname() -> io::Result<Vec<u8>> {
    // HOST_NAME_MAX is 64 on Linux; 256 leaves room for any other system.
    let mut buf = vec![0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(end);
    Ok(buf)
}

/// A C string for a host or service name, or `InvalidInput` if it holds a NUL byte.
pub(crate) fn c_string(what: &str, s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} must not contain a NUL byte: {s:?}"),
        )
    })
}

/// Views an initialised buffer as the `MaybeUninit` buffer `socket2`'s receive calls take.
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the layout of u8. socket2 only ever writes initialised bytes
    // into the buffer (it passes it to recv(2)), so the caller's `[u8]` stays initialised.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [std::mem::MaybeUninit<u8>]) }
}

/// An empty buffer with room for `bufsize` bytes, for a receive into its spare capacity
/// ([`set_received`]): nothing is zeroed or touched beyond what the kernel writes. A size that
/// cannot be allocated is an `OutOfMemory` error (Python's `MemoryError`), not a panic.
pub(crate) fn receive_buffer(bufsize: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(bufsize).map_err(|e| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate a receive buffer of {bufsize} bytes: {e}"),
        )
    })?;
    Ok(buf)
}

/// Appends the first `n` bytes of `buf`'s spare capacity, which a receive into
/// `buf.spare_capacity_mut()` reported writing, to its contents; returns the count appended.
pub(crate) fn set_received(buf: &mut Vec<u8>, n: usize) -> usize {
    // A receive never reports more than the room it was given; clamp rather than trust it.
    let n = n.min(buf.capacity() - buf.len());
    let len = buf.len() + n;
    // SAFETY: `len` is within the capacity, and `recv(2)` (through socket2, which takes
    // `&mut [MaybeUninit<u8>]` for this) initialised the `n` bytes it reported receiving,
    // which start at the old length: the spare capacity begins there.
    unsafe { buf.set_len(len) };
    n
}

/// Closes `fd` with `close(2)` and reports its error, which dropping an `OwnedFd` would hide.
///
/// `EINTR` is not an error: on Linux the fd is released anyway and must not be closed again.
pub(crate) fn close(fd: std::os::fd::OwnedFd) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an OwnedFd, so we own it and close it exactly once.
    if unsafe { libc::close(raw) } == -1 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// Ends the process at once with `status`: Python's `os._exit`. No destructors, no `atexit`
/// handlers, no flushing of stdio buffers: what a forked child must end with, so that it never
/// runs its parent's cleanup (a Unix server's drop would remove the parent's socket file) or
/// flushes a copy of the parent's buffered output. Only the OS closes the process's fds.
///
/// # Examples
///
/// ```no_run
/// // In a forked child, after its work:
/// sockserve_socket::exit_now(0);
/// ```
pub fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process and never returns.
    unsafe { libc::_exit(status) }
}

/// The process's `RLIMIT_NOFILE`: (soft, hard); `RLIM_INFINITY` is `u64::MAX`.
pub(crate) fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets the process's `RLIMIT_NOFILE` soft limit, keeping the hard one.
pub(crate) fn set_nofile_soft_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid `rlimit`; the call only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
