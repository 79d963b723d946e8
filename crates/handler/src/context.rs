//! `ServerContext`: what a handler sees of its server (Python's `self.server`).

use socket::Address;
use std::{
    fmt, io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

/// How a handler asks its server to stop; the server layer implements it.
///
/// This trait is the seam between the handler layer, which knows nothing of reactors and
/// serving loops, and the server layer, which does.
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{StopServer, server_context};
/// use std::{io, sync::{Arc, atomic::{AtomicBool, Ordering}}};
///
/// /// A stand-in for a server: a stop flag, and a loop that is never running.
/// #[derive(Debug, Default)]
/// struct Flag(AtomicBool);
/// impl StopServer for Flag {
///     fn shutdown(&self) -> io::Result<()> {
///         self.request_shutdown();
///         Ok(()) // a real server waits here until its loop has returned
///     }
///     fn request_shutdown(&self) { self.0.store(true, Ordering::SeqCst) }
/// }
///
/// let flag = Arc::new(Flag::default());
/// let ctx = server_context("127.0.0.1:8000".parse()?, flag.clone(), Arc::new(()));
/// ctx.request_shutdown();
/// assert!(flag.0.swap(false, Ordering::SeqCst));
/// ctx.shutdown()?;
/// assert!(flag.0.load(Ordering::SeqCst));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait StopServer: Send + Sync + fmt::Debug {
    /// Stops `serve_forever` and waits until it has returned; fails instead of deadlocking when
    /// called from the thread that runs the loop.
    ///
    /// # Errors
    ///
    /// Called from the thread that runs the loop (the server layer's error has the kind
    /// `Deadlock` there).
    ///
    /// # Examples
    ///
    /// See [`StopServer`]'s example ([`ServerContext::shutdown`] calls this).
    fn shutdown(&self) -> io::Result<()>;

    /// Asks the loop to stop and returns at once; safe from any thread, the serving one included.
    ///
    /// # Examples
    ///
    /// See [`StopServer`]'s example ([`ServerContext::request_shutdown`] calls this).
    fn request_shutdown(&self);

    /// Whether this runs in a process forked from the server's (a forking strategy's request
    /// child), where the server's state is a copy and its locks may be held by threads the
    /// child does not have. Default: false.
    ///
    /// # Examples
    ///
    /// See [`StopServer`]'s example.
    fn is_forked_child(&self) -> bool {
        false
    }
}

/// What a server's shared state must be: reachable from every request, on any thread (and
/// kept for the server's life). Implemented for every `Send + Sync + 'static` type; `()` is the
/// state of a server that has none.
///
/// # Examples
///
/// ```
/// use sockserve_handler::SharedState;
/// use std::sync::{Mutex, atomic::AtomicU64};
///
/// fn takes<S: SharedState>(_state: S) {}
/// takes(());
/// takes(AtomicU64::new(0));
/// takes(Mutex::new(vec!["a user"]));
/// ```
pub trait SharedState: Send + Sync + 'static {}

impl<T: Send + Sync + 'static> SharedState for T {}

/// A handler's view of its server: the address, the server's shared state and a way to stop it
/// (Python's `self.server`).
///
/// The state's type is the parameter `S` (default `()`, no state), fixed when the server is
/// made (`Server::with_state` in the server layer): [`state`](Self::state) gives `&S`, and
/// asking for another type is a compile error. Cheap to clone (two `Arc`s).
///
/// # Examples
///
/// ```
/// use sockserve_handler::driver::{StopServer, server_context};
/// use std::{io, sync::{Arc, atomic::{AtomicU32, Ordering}}};
///
/// #[derive(Debug)]
/// struct Never;
/// impl StopServer for Never {
///     fn shutdown(&self) -> io::Result<()> { Ok(()) }
///     fn request_shutdown(&self) {}
/// }
///
/// let ctx = server_context("127.0.0.1:8000".parse()?, Arc::new(Never), Arc::new(AtomicU32::new(41)));
/// assert_eq!(ctx.server_address().to_string(), "127.0.0.1:8000");
/// ctx.state().fetch_add(1, Ordering::Relaxed); // `state()` is a `&AtomicU32`
/// assert_eq!(ctx.state().load(Ordering::Relaxed), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Asking for state of another type does not compile:
///
/// ```compile_fail
/// # use sockserve_handler::driver::{StopServer, server_context};
/// # use std::{io, sync::Arc};
/// # #[derive(Debug)] struct Never;
/// # impl StopServer for Never {
/// #     fn shutdown(&self) -> io::Result<()> { Ok(()) }
/// #     fn request_shutdown(&self) {}
/// # }
/// let ctx = server_context("127.0.0.1:8000".parse().unwrap(), Arc::new(Never), Arc::new(7u32));
/// let text: &String = ctx.state(); // error: expected `&String`, found `&u32`
/// ```
pub struct ServerContext<S = ()> {
    inner: Arc<Inner>,
    state: Arc<S>,
}

impl<S> Clone for ServerContext<S> {
    fn clone(&self) -> Self {
        ServerContext {
            inner: Arc::clone(&self.inner),
            state: Arc::clone(&self.state),
        }
    }
}

struct Inner {
    server_address: Address,
    stop: Arc<dyn StopServer>,
    /// Set once an unnamed datagram client was logged, so the log says it once, not per datagram.
    warned_unnamed: AtomicBool,
    /// Datagram replies dropped because they could not be sent at once.
    dropped_replies: AtomicU64,
    /// Set once a dropped reply was logged at warn.
    warned_dropped: AtomicBool,
}

impl<S: SharedState> ServerContext<S> {
    /// Builds a context ([`driver::server_context`](crate::driver::server_context)).
    pub(crate) fn new(server_address: Address, stop: Arc<dyn StopServer>, state: Arc<S>) -> Self {
        ServerContext {
            inner: Arc::new(Inner {
                server_address,
                stop,
                warned_unnamed: AtomicBool::new(false),
                dropped_replies: AtomicU64::new(0),
                warned_dropped: AtomicBool::new(false),
            }),
            state,
        }
    }

    /// The address the server is bound to (the real port when port 0 was asked for).
    ///
    /// # Examples
    ///
    /// See [`ServerContext`].
    pub fn server_address(&self) -> &Address {
        &self.inner.server_address
    }

    /// The server's shared state (Python's attributes set on the server object): the value
    /// given to `Server::with_state`, or `()`.
    ///
    /// # Examples
    ///
    /// See [`ServerContext`].
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The shared state's `Arc`, to keep it beyond the request (a thread the handler starts).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, server_context};
    /// use std::sync::Arc;
    ///
    /// # #[derive(Debug)] struct Never;
    /// # impl StopServer for Never {
    /// #     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    /// #     fn request_shutdown(&self) {}
    /// # }
    /// let ctx = server_context("127.0.0.1:8000".parse()?, Arc::new(Never), Arc::new(String::from("shared")));
    /// let kept: Arc<String> = ctx.state_arc();
    /// std::thread::spawn(move || assert_eq!(*kept, "shared")).join().expect("no panic");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state_arc(&self) -> Arc<S> {
        Arc::clone(&self.state)
    }

    /// Stops the server's `serve_forever` and waits for it to return.
    ///
    /// From a handler on a worker thread (threading) this works as in Python; from a handler
    /// running on the serving thread itself (a synchronous server) it returns an error instead
    /// of deadlocking: use [`request_shutdown`](Self::request_shutdown) there. From a handler
    /// in a forked child (forking) it asks the parent to stop and returns at once: a child
    /// cannot wait for its parent's loop.
    ///
    /// # Examples
    ///
    /// See [`StopServer`]'s example.
    pub fn shutdown(&self) -> io::Result<()> {
        self.inner.stop.shutdown()
    }

    /// Asks the server to stop after the current request, without waiting; works from any
    /// thread, and from a handler in a forked child (forking), whose request reaches the
    /// parent's loop.
    ///
    /// # Examples
    ///
    /// See [`StopServer`]'s example.
    pub fn request_shutdown(&self) {
        self.inner.stop.request_shutdown()
    }

    /// Datagram replies this server dropped because they could not be sent at once (the
    /// client's queue was full: a client that never reads, say). A reply never blocks the
    /// server; like the kernel with UDP datagrams, it drops what does not fit, counts it here,
    /// and logs the first drop at warn level (with why), later ones at debug. Counted in this
    /// process: a reply dropped by a forked child (the forking strategy) is counted in the
    /// child's copy and not logged (a logger's locks may be held by a thread of the parent).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::driver::{StopServer, server_context};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug)]
    /// struct NoStop;
    /// impl StopServer for NoStop {
    ///     fn shutdown(&self) -> std::io::Result<()> { Ok(()) }
    ///     fn request_shutdown(&self) {}
    /// }
    ///
    /// let context = server_context("127.0.0.1:0".parse()?, Arc::new(NoStop), Arc::new(()));
    /// assert_eq!(context.dropped_replies(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dropped_replies(&self) -> u64 {
        self.inner.dropped_replies.load(Ordering::Relaxed)
    }

    /// Counts a dropped datagram reply; returns the count so far.
    pub(crate) fn count_dropped_reply(&self) -> u64 {
        self.inner.dropped_replies.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether the handler runs in a forked child (see [`StopServer::is_forked_child`]).
    pub(crate) fn in_forked_child(&self) -> bool {
        self.inner.stop.is_forked_child()
    }

    /// True for the first dropped reply of this server: it is logged at warn, later ones at
    /// debug.
    pub(crate) fn first_dropped_reply(&self) -> bool {
        !self.inner.warned_dropped.swap(true, Ordering::Relaxed)
    }

    /// True the first time it is called on this server, false afterwards: a log-once latch.
    pub(crate) fn first_unnamed_warning(&self) -> bool {
        !self.inner.warned_unnamed.swap(true, Ordering::Relaxed)
    }
}

impl<S> fmt::Debug for ServerContext<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state need not implement `Debug`: its type names it.
        f.debug_struct("ServerContext")
            .field("server_address", &self.inner.server_address)
            .field("state", &std::any::type_name::<S>())
            .finish_non_exhaustive()
    }
}
