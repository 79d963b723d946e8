//! `Builder`: Python's server class attributes as builder methods, then bind.

use crate::{
    DefaultHooks, Hooks, Kind, Overload, ProxyProtocol, RequestRef, Result, Server, Strategy,
    hooks::HookSet, job::MakeJob,
};
use handler::{Handler, HandlerError, Request, ServerContext, SharedState};
use socket::{Address, Family, Socket, ToAddrs};
use std::{fmt, os::fd::OwnedFd, sync::Arc, time::Duration};

/// The shortest tick of [`Server::serve_forever`]: a shorter `poll_interval`, zero included, is
/// raised to this (with a debug log).
///
/// A short tick buys nothing here: the reactor's waker ends the wait the moment shutdown is
/// asked for, a request wakes the loop when it arrives, and a strategy's room when it comes
/// back (a request that ends, a forked child that exits), so the tick only paces
/// `service_actions` on an idle server. Python's `poll_interval=0` would be a busy loop,
/// burning a CPU while idle; 10 ms costs nothing measurable and still runs `service_actions`
/// a hundred times a second.
///
/// # Examples
///
/// ```
/// use sockserve_server::{MIN_POLL_INTERVAL, TcpServer};
/// use std::time::Duration;
///
/// assert_eq!(MIN_POLL_INTERVAL, Duration::from_millis(10));
/// let mut server = TcpServer::bind("127.0.0.1:0", |_r| Ok(()))?;
/// let handle = server.shutdown_handle();
/// std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
///     // Ticks every 10 ms rather than spinning; the shutdown still ends it at once.
///     let serving = s.spawn(|| server.serve_forever_with(Duration::ZERO));
///     handle.shutdown()?;
///     serving.join().expect("serving thread panicked")?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The largest UDP datagram: the most the 16-bit UDP length field can say, header included,
/// so no payload over IPv4 (at most 65,507 bytes) or IPv6 (65,527) is ever cut.
const UDP_DATAGRAM_LIMIT: usize = 65_535;

/// Linux refuses (`EMSGSIZE`) a Unix datagram longer than the sender's `SO_SNDBUF` minus
/// this (`af_unix.c`: `len > sk->sk_sndbuf - 32`).
const UNIX_SNDBUF_OVERHEAD: usize = 32;

/// The longest Unix datagram Linux can build, whatever the sender's `SO_SNDBUF` (even one
/// forced with `SO_SNDBUFFORCE`): the linear part of the skb is one kmalloc, at most 4 MiB
/// including 320 bytes of `skb_shared_info`, plus at most 17 page fragments (x86_64, 4 KiB
/// pages; measured on Linux 6.18: 4,263,616 bytes arrive, one more is `EMSGSIZE`). Also the
/// limit where `net.core.wmem_max` cannot be read: reserving it costs address space only.
const UNIX_DATAGRAM_CEILING: usize = (4 << 20) - 320 + 17 * 4096;

/// The largest datagram a socket of `family` can receive whole (see
/// [`Builder::max_packet_size`]).
pub(crate) fn max_datagram_size(family: Family) -> usize {
    match family {
        Family::Inet | Family::Inet6 => UDP_DATAGRAM_LIMIT,
        Family::Unix => match wmem_max() {
            // An unprivileged sender raises its SO_SNDBUF to at most twice wmem_max (the
            // kernel doubles what it is given, for its bookkeeping).
            Some(wmem_max) => wmem_max
                .saturating_mul(2)
                .saturating_sub(UNIX_SNDBUF_OVERHEAD)
                .min(UNIX_DATAGRAM_CEILING),
            None => UNIX_DATAGRAM_CEILING,
        },
    }
}

/// `net.core.wmem_max`, the largest `SO_SNDBUF` an unprivileged process may ask for; `None`
/// where it cannot be read (no /proc, another system).
fn wmem_max() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/core/wmem_max").ok()?;
    text.trim().parse().ok().filter(|&n| n > 0)
}

/// The `max_packet_size` a datagram server on `family` uses: the requested one, clamped to
/// the largest datagram the family carries, with a warning when it is.
pub(crate) fn effective_max_packet_size(requested: usize, family: Family, server: &str) -> usize {
    let limit = max_datagram_size(family);
    if requested > limit {
        log::warn!(
            "{server}: max_packet_size {requested} clamped to {limit}, the largest datagram \
             of family {family:?}"
        );
    }
    requested.min(limit)
}

/// The poll interval the serving loop uses: at least [`MIN_POLL_INTERVAL`], with a debug log
/// when it is raised.
pub(crate) fn effective_poll_interval(requested: Duration, server: &str) -> Duration {
    if requested < MIN_POLL_INTERVAL {
        log::debug!(
            "{server}: poll_interval {requested:?} raised to {MIN_POLL_INTERVAL:?} \
             (MIN_POLL_INTERVAL); shutdown wakes the loop at once whatever the tick"
        );
    }
    requested.max(MIN_POLL_INTERVAL)
}

/// The options Python sets as server class attributes.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) request_queue_size: i32,
    pub(crate) allow_reuse_address: bool,
    pub(crate) allow_reuse_port: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_packet_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) dualstack_ipv6: bool,
    /// `None`: the default, derived from the open-file limit when a loop starts.
    pub(crate) max_connections: Option<usize>,
    pub(crate) overload: Overload,
    /// The PROXY protocol's header is read at the start of each connection (streams only).
    pub(crate) proxy: Option<Arc<ProxyProtocol>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            request_queue_size: socket::SOMAXCONN,
            allow_reuse_address: false,
            allow_reuse_port: false,
            timeout: None,
            max_packet_size: 8192,
            poll_interval: Duration::from_millis(500),
            dualstack_ipv6: false,
            max_connections: None,
            overload: Overload::Pause,
            proxy: None,
        }
    }
}

/// Builds a server: set options by their Python names, then [`bind`](Builder::bind).
///
/// # Examples
///
/// ```
/// use sockserve_server::TcpServer;
/// use std::time::Duration;
///
/// let server = TcpServer::builder(|_req| Ok(()))
///     .request_queue_size(1024)
///     .allow_reuse_address(true)
///     .timeout(Some(Duration::from_secs(5)))
///     .bind("127.0.0.1:0")?;
/// assert_ne!(server.server_address().as_inet().map(|a| a.port()), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Builder<K: Kind, C: Strategy, S: SharedState = ()> {
    pub(crate) jobs: Box<dyn MakeJob<K::Request<S>>>,
    pub(crate) options: Options,
    pub(crate) hooks: HookSet<S>,
    pub(crate) state: Arc<S>,
    pub(crate) strategy: C,
}

impl<K: Kind, C: Strategy + Default, S: SharedState> Builder<K, C, S> {
    pub(crate) fn new<H: Handler<K::Request<S>>>(handler: H, state: Arc<S>) -> Self {
        Builder {
            jobs: crate::job::boxed(handler),
            options: Options::default(),
            hooks: HookSet::new(DefaultHooks),
            state,
            strategy: C::default(),
        }
    }
}

impl<K: Kind, C: Strategy, S: SharedState> Builder<K, C, S> {
    /// The `listen()` backlog. Default `SOMAXCONN` (CPython 3.15; older versions used 5 and
    /// dropped bursts of connects).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn request_queue_size(mut self, backlog: i32) -> Self {
        self.options.request_queue_size = backlog;
        self
    }

    /// Sets `SO_REUSEADDR` before binding. Default false, as Python.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn allow_reuse_address(mut self, on: bool) -> Self {
        self.options.allow_reuse_address = on;
        self
    }

    /// Sets `SO_REUSEPORT` before binding (IPv4 and IPv6 only; ignored for Unix sockets, where
    /// Linux rejects it), so several processes can serve one port. Default false.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let a = TcpServer::builder(|_r| Ok(())).allow_reuse_port(true).bind("127.0.0.1:0")?;
    /// let same_port = a.server_address().to_string();
    /// let b = TcpServer::builder(|_r| Ok(())).allow_reuse_port(true).bind(same_port.as_str())?;
    /// assert_eq!(a.server_address(), b.server_address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_reuse_port(mut self, on: bool) -> Self {
        self.options.allow_reuse_port = on;
        self
    }

    /// The server's `timeout`: how long `handle_request` waits for a request before calling
    /// `handle_timeout`. `None` (the default) waits forever. Not the handler's timeout, which
    /// limits every read and write of a connection.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// The largest datagram a datagram server receives. A longer one is never handed to a
    /// handler cut (CPython cuts it silently): the server reads its real length
    /// (`MSG_TRUNC`), discards it, sends no reply, and its request fails with a
    /// [`TruncatedDatagram`](crate::TruncatedDatagram) naming both sizes, which
    /// [`handle_error`](crate::Hooks::handle_error) gets (the default reports it, at most 10
    /// reports a second). Default 8192. Zero is refused when the server is made
    /// ([`Error::InvalidOption`](crate::Error::InvalidOption)): it would discard every datagram
    /// but an empty one.
    ///
    /// A size beyond the largest datagram the socket's family can carry is clamped to it at
    /// bind, with a warning naming the option and the limit; [`Server::max_packet_size`] tells
    /// the size in use. The buffer is reserved, never zeroed or touched in advance, so memory
    /// is used only as large datagrams arrive. The limits:
    ///
    /// - UDP (IPv4 and IPv6): 65,535 bytes, the most the UDP length field can say, so no
    ///   payload is cut (IPv4 carries at most 65,507, IPv6 65,527).
    /// - Unix datagram sockets: what a sender can send. Linux refuses a datagram longer than
    ///   the sender's `SO_SNDBUF` minus 32 bytes, and an unprivileged sender can raise
    ///   `SO_SNDBUF` to twice `net.core.wmem_max`, so the limit is `2 * wmem_max - 32`, read
    ///   from `/proc/sys/net/core/wmem_max` at bind (425,952 bytes with Linux's default
    ///   `wmem_max` of 212,992). It is never more than 4,263,616 bytes, the longest Unix
    ///   datagram Linux builds at all (x86_64, 4 KiB pages; measured: one byte more is
    ///   `EMSGSIZE` even with `SO_SNDBUFFORCE`), which is also the limit where `wmem_max`
    ///   cannot be read (another system, no /proc). A privileged sender that forces a larger
    ///   `SO_SNDBUF` than `wmem_max` allows can send more than `2 * wmem_max - 32`: such
    ///   datagrams are discarded as above; raise `net.core.wmem_max` to serve them.
    ///
    /// Stream servers do not use the option.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::UdpServer;
    ///
    /// let server = UdpServer::builder(|_r| Ok(()))
    ///     .max_packet_size(65_507)
    ///     .bind("127.0.0.1:0")?;
    /// assert_eq!(server.max_packet_size(), 65_507);
    ///
    /// // 4 GiB: clamped at bind to the largest UDP datagram, and nothing is zero-filled.
    /// let server = UdpServer::builder(|_r| Ok(()))
    ///     .max_packet_size(4 << 30)
    ///     .bind("127.0.0.1:0")?;
    /// assert_eq!(server.max_packet_size(), 65_535);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.options.max_packet_size = size;
        self
    }

    /// The tick of [`Server::serve_forever`]: how often `service_actions` runs when idle.
    /// Default 0.5 s, Python's. Shutdown never waits for it.
    ///
    /// Zero, or anything under [`MIN_POLL_INTERVAL`] (10 ms), is raised to it (with a debug
    /// log): in Python `poll_interval=0` is a busy loop, and here, where shutdown wakes the
    /// loop at once, a shorter tick would only burn CPU.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::time::Duration;
    ///
    /// let server = TcpServer::builder(|_r| Ok(()))
    ///     .poll_interval(Duration::from_millis(10))
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// For an IPv6 address: also accept IPv4 clients (`IPV6_V6ONLY` off). Default false: an
    /// IPv6 server is IPv6 only, whatever the system default. An IPv4 or Unix server has no
    /// such option and ignores it (as it ignores `allow_reuse_port` for Unix sockets).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::builder(|_r| Ok(()))
    ///     .dualstack_ipv6(true)
    ///     .bind("[::]:8080")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dualstack_ipv6(mut self, on: bool) -> Self {
        self.options.dualstack_ipv6 = on;
        self
    }

    /// The most connections open at once (for a datagram server, datagrams in hand), whatever
    /// the strategy: running, queued for a thread, or (to come) waiting in the reactor. At the
    /// limit the server does what [`overload`](Self::overload) says (by default it pauses
    /// accepting, and new connections wait in the listen backlog); reaching it is logged at
    /// warn, with the limit's value and how to raise it, and its end at info. Zero is refused
    /// when the server is made ([`Error::InvalidOption`](crate::Error::InvalidOption)): such
    /// a server would take no connection at all, and 0 is no way to say "no limit" either
    /// (leave the option unset for the default below).
    ///
    /// Default: derived when the serving loop starts from the process's soft open-file limit
    /// (`RLIMIT_NOFILE`, which every connection counts against), less a tenth of it (at least
    /// 32 descriptors) for the rest of the process (the listener, the reactor, logs, files a
    /// handler opens): 18,000 for a soft limit of 20,000, 922 for the common 1,024. So a
    /// server pauses at its own limit, with a line saying so, before `accept` fails for want
    /// of descriptors. A server that holds many connections raises the soft limit first:
    /// [`socket::raise_fd_limit`] at the start of `main` (the examples do). A handler that
    /// opens descriptors of its own for each connection (a proxy's upstream, a file) needs a
    /// lower limit, set here. The limit of a strategy (`max_threads`, `max_children`) applies
    /// too; [`Server::max_connections`] tells the limit in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .max_connections(5_000)
    ///     .bind("127.0.0.1:0")?;
    /// assert_eq!(server.max_connections(), 5_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.options.max_connections = Some(n);
        self
    }

    /// What the server does with a new connection while
    /// [`max_connections`](Self::max_connections) are open: pause accepting (the default),
    /// close it at once with a reset, or write it a short reply first. See [`Overload`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{Overload, TcpServer};
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .max_connections(1_000)
    ///     .overload(Overload::Close)
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn overload(mut self, policy: Overload) -> Self {
        self.options.overload = policy;
        self
    }

    /// The options of every request, in place of the handler's own
    /// ([`Handler::options`]): Python's handler class attributes (`timeout`, `rbufsize`,
    /// `wbufsize`, `disable_nagle_algorithm` for streams; `reply_when_empty` for datagrams),
    /// for a closure, which has no `options` of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{TcpServer, UdpServer};
    /// use sockserve_server::{DatagramOptions, StreamOptions};
    /// use std::time::Duration;
    ///
    /// // A stream handler whose reads and writes time out after 5 s.
    /// let tcp = TcpServer::builder(|_req| Ok(()))
    ///     .request_options(StreamOptions::default().timeout(Some(Duration::from_secs(5))))
    ///     .bind("127.0.0.1:0")?;
    /// // A datagram handler that replies itself: no empty reply when `wfile` stays empty.
    /// let udp = UdpServer::builder(|req| {
    ///     req.socket.sendto(&req.packet, &req.client_address)?;
    ///     Ok(())
    /// })
    /// .request_options(DatagramOptions::default().reply_when_empty(false))
    ///     .bind("127.0.0.1:0")?;
    /// # drop((tcp, udp));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_options(mut self, options: <K::Request<S> as Request>::Options) -> Self {
        self.jobs = self.jobs.with_options(options);
        self
    }

    /// Adds a [`Layer`](crate::Layer): a step each connection goes through on its worker
    /// (or forked child) before its request's setup, such as a TLS handshake
    /// (`sockserve-tls`). Layers run in the order they are added. Stream servers only.
    ///
    /// # Examples
    ///
    /// See [`Layer`](crate::Layer).
    pub fn layer(mut self, layer: impl crate::Layer) -> Self
    where
        K: Kind<Raw = Arc<Socket>>,
    {
        self.jobs = self.jobs.with_layer(Arc::new(layer));
        self
    }

    /// The server's hooks (`verify_request`, `handle_error`, ...) as a value of a [`Hooks`]
    /// type. Default: [`DefaultHooks`]. Calling it again replaces the value.
    ///
    /// The closures set with [`verify_request`](Self::verify_request),
    /// [`handle_error`](Self::handle_error), [`handle_timeout`](Self::handle_timeout) and
    /// [`service_actions`](Self::service_actions) win over the matching methods of this value,
    /// whether they are set before or after it; its other methods still run.
    ///
    /// # Examples
    ///
    /// A hooks type for `shutdown_request`, and a closure over its `verify_request` (set first,
    /// and still the one that runs):
    ///
    /// ```
    /// use sockserve_server::{Hooks, RequestRef, TcpServer};
    /// use sockserve_server::ServerContext;
    /// use sockserve_server::socket::{Address, create_connection};
    /// use std::io::{Read, Write};
    ///
    /// struct Log;
    /// impl Hooks for Log {
    ///     fn verify_request(&self, _: &ServerContext, _: RequestRef<'_>, _: &Address) -> bool {
    ///         false // never runs: the closure below replaces it
    ///     }
    ///     fn shutdown_request(&self, _server: &ServerContext, client: &Address) {
    ///         log::debug!("done with {client}");
    ///     }
    /// }
    ///
    /// let mut server = TcpServer::builder(|req| Ok(req.wfile.write_all(b"hi")?))
    ///     .verify_request(|_server, _request, _client| true)
    ///     .hooks(Log)
    ///     .bind("127.0.0.1:0")?;
    /// let mut client = create_connection(server.server_address(), &Default::default())?;
    /// server.handle_request()?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply)?;
    /// assert_eq!(reply, "hi"); // accepted
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hooks(mut self, hooks: impl Hooks<S>) -> Self {
        self.hooks.set_base(hooks);
        self
    }

    /// Python's `verify_request`, as a closure: called with the server, the request (a
    /// [`RequestRef`]) and the client's address before any handler runs; `false` rejects
    /// the request, which is then shut down and closed. Replaces
    /// [`Hooks::verify_request`] of the [`hooks`](Self::hooks) value; set again, the last
    /// closure wins.
    ///
    /// The server is what a handler sees as `request.server`: its
    /// [`server_address`](handler::ServerContext::server_address), its
    /// [`state`](handler::ServerContext::state). The closure may run on the serving thread
    /// while requests run elsewhere, so it is `Fn + Send + Sync`; a panic in it is caught and
    /// reported, the request rejected, and the server keeps serving.
    ///
    /// # Examples
    ///
    /// Loopback clients only:
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    ///
    /// let server = TcpServer::builder(|_req| Ok(()))
    ///     .verify_request(|_server, _request, client| {
    ///         client.as_inet().is_some_and(|a| a.ip().is_loopback())
    ///     })
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_request<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ServerContext<S>, RequestRef<'_>, &Address) -> bool + Send + Sync + 'static,
    {
        self.hooks.verify_request = Some(Box::new(hook));
        self
    }

    /// Python's `handle_error`, as a closure: called once for every failed request (an error
    /// or a panic of its handler) with the server, the client's address and the
    /// error. Replaces [`Hooks::handle_error`] of the [`hooks`](Self::hooks) value, and so
    /// the default report (see there); set again, the last closure wins.
    ///
    /// It runs where the request ran (a worker thread, a forked child), so it is
    /// `Fn + Send + Sync`; a panic in it is caught and reported, and the server keeps
    /// serving.
    ///
    /// # Examples
    ///
    /// Count the failures in the server's state, and log each one:
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let server = TcpServer::with_state(AtomicUsize::new(0))
    ///     .builder(|_req| Ok(()))
    ///     .handle_error(|server, client, error| {
    ///         server.state().fetch_add(1, Ordering::Relaxed); // an `&AtomicUsize`
    ///         let on = server.server_address();
    ///         log::error!("{on}: request from {client} failed: {error}");
    ///     })
    ///     .bind("127.0.0.1:0")?;
    /// # drop(server);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ServerContext<S>, &Address, &HandlerError) + Send + Sync + 'static,
    {
        self.hooks.handle_error = Some(Box::new(hook));
        self
    }

    /// Python's `handle_timeout`, as a closure: called with the server when
    /// [`Server::handle_request`] waited the builder's [`timeout`](Self::timeout) and no
    /// request came. Replaces [`Hooks::handle_timeout`] of the [`hooks`](Self::hooks) value;
    /// set again, the last closure wins. A panic in it is caught and reported.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::{sync::{Arc, atomic::{AtomicBool, Ordering}}, time::Duration};
    ///
    /// let timed_out = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&timed_out);
    /// let mut server = TcpServer::builder(|_req| Ok(()))
    ///     .timeout(Some(Duration::ZERO))
    ///     .handle_timeout(move |_server| flag.store(true, Ordering::Relaxed))
    ///     .bind("127.0.0.1:0")?;
    /// server.handle_request()?; // nobody connects
    /// assert!(timed_out.load(Ordering::Relaxed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_timeout<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ServerContext<S>) + Send + Sync + 'static,
    {
        self.hooks.handle_timeout = Some(Box::new(hook));
        self
    }

    /// Python's `service_actions`, as a closure: called with the server on every tick of
    /// [`Server::serve_forever`] (at least once per [`poll_interval`](Self::poll_interval)),
    /// on the serving thread. Replaces [`Hooks::service_actions`] of the
    /// [`hooks`](Self::hooks) value (the strategy's own actions, such as reaping children,
    /// still run); set again, the last closure wins. A panic in it is caught and reported, and
    /// the loop goes on.
    ///
    /// # Examples
    ///
    /// Stop after the first tick:
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::time::Duration;
    ///
    /// let mut server = TcpServer::builder(|_req| Ok(()))
    ///     .poll_interval(Duration::from_millis(10))
    ///     .service_actions(|server| server.request_shutdown())
    ///     .bind("127.0.0.1:0")?;
    /// server.serve_forever()?; // returns after one tick
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn service_actions<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ServerContext<S>) + Send + Sync + 'static,
    {
        self.hooks.service_actions = Some(Box::new(hook));
        self
    }

    /// Sets the concurrency strategy (with its own options), changing the server's type.
    ///
    /// # Examples
    ///
    /// See [`Strategy`].
    pub fn strategy<C2: Strategy>(self, strategy: C2) -> Builder<K, C2, S> {
        Builder {
            jobs: self.jobs,
            options: self.options,
            hooks: self.hooks,
            state: self.state,
            strategy,
        }
    }

    /// Creates the socket, binds it and activates it (`listen` for streams): Python's
    /// constructor with `bind_and_activate=True`. On failure the socket is closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for an option of 0 that must
    /// be at least 1, [`Error::Address`](crate::Error::Address) for an address that cannot
    /// be resolved or does not suit the server, [`Error::Bind`](crate::Error::Bind) and
    /// [`Error::Listen`](crate::Error::Listen) with the OS error.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn bind(self, address: impl ToAddrs) -> Result<Server<K, C, S>> {
        let mut server = self.build_unbound(address)?;
        server.server_bind()?;
        server.server_activate()?;
        Ok(server)
    }

    /// Creates the socket but neither binds nor activates it: Python's
    /// `bind_and_activate=False`, to set socket options first, then call
    /// [`Server::server_bind`] and [`Server::server_activate`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption),
    /// [`Error::Address`](crate::Error::Address), or the OS error creating the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use sockserve_server::socket::opt;
    ///
    /// let mut server = TcpServer::builder(|_r| Ok(())).build_unbound("127.0.0.1:0")?;
    /// server.socket().expect("open").setsockopt(opt::KeepAlive, true)?;
    /// server.server_bind()?;
    /// server.server_activate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_unbound(self, address: impl ToAddrs) -> Result<Server<K, C, S>> {
        self.check()?;
        Server::create(self, address)
    }

    /// Builds a server on an already bound socket, such as one inherited from a parent
    /// process; stream sockets are (re)activated with `listen`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) (the descriptor is closed),
    /// [`Error::Address`](crate::Error::Address) when the socket's family or type does not
    /// suit this server, or the OS error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::TcpServer;
    /// use std::{net::TcpListener, os::fd::OwnedFd};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let server = TcpServer::builder(|_r| Ok(()))
    ///     .from_listener(OwnedFd::from(listener))?;
    /// assert_eq!(server.server_address().as_inet().map(|a| a.port()), Some(port));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_listener(self, fd: OwnedFd) -> Result<Server<K, C, S>> {
        // On an invalid option `fd` is dropped here, closed: nothing is left open.
        self.check()?;
        Server::adopt(self, fd)
    }

    /// Refuses the option values no server can work with, before a socket exists.
    fn check(&self) -> Result<()> {
        let invalid = |option, reason: &str| {
            Err(crate::Error::InvalidOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.options.max_packet_size == 0 {
            return invalid(
                "max_packet_size",
                "0 bytes would discard every datagram but an empty one; give the largest \
                 datagram to receive (default 8192, at most 65,535 for UDP)",
            );
        }
        if self.options.max_connections == Some(0) {
            return invalid(
                "max_connections",
                "0 would admit no connection at all; give at least 1, or leave it unset for \
                 the default derived from the open-file limit",
            );
        }
        if let Some(proxy) = &self.options.proxy {
            proxy.check()?;
        }
        Ok(())
    }
}

/// The options of stream servers alone ([`Tcp`](crate::Tcp), [`UnixStream`](crate::UnixStream)).
impl<K: Kind<Raw = Arc<Socket>>, C: Strategy, S: SharedState> Builder<K, C, S> {
    /// Reads a PROXY protocol header (v1 or v2, as HAProxy, nginx's `stream` module or
    /// Envoy send it) at the start of each connection, from the trusted proxies alone: the
    /// client the handler and the hooks see (`client_address`, and the address
    /// `verify_request`, `handle_error` and `shutdown_request` get) is then the real client
    /// the header names. See [`ProxyProtocol`] for what is refused, the header's deadline, and
    /// where the header is read.
    ///
    /// `verify_request` runs once the header has been read, where the request runs (a pool
    /// worker, the forked child, or, under the sync strategy, on the loop once the header is
    /// whole), not on the accept loop: it sees the real client. The proxy's own address is the
    /// connection's peer: `req.connection.getpeername()` in a handler,
    /// `RequestRef::Stream(conn)` then `conn.getpeername()` in `verify_request`.
    ///
    /// Stream servers only: HAProxy sends no PROXY header over UDP, and a datagram server's
    /// builder has no such method.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_server::{ProxyProtocol, TcpServer};
    /// use sockserve_server::socket::create_connection;
    /// use std::io::{Read, Write};
    ///
    /// let mut server = TcpServer::builder(|req| {
    ///     // The real client, from the header; the proxy is the connection's peer.
    ///     let proxy = req.connection.getpeername()?;
    ///     writeln!(req.wfile, "{} via {proxy}", req.client_address)?;
    ///     Ok(())
    /// })
    /// .proxy_protocol(ProxyProtocol::trusted(["127.0.0.1"])?)
    /// .bind("127.0.0.1:0")?;
    ///
    /// let mut proxy = create_connection(server.server_address(), &Default::default())?;
    /// proxy.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n")?;
    /// server.handle_request()?;
    /// let mut reply = String::new();
    /// proxy.read_to_string(&mut reply)?;
    /// assert!(reply.starts_with("203.0.113.7:51000 via 127.0.0.1:"), "{reply}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy_protocol(mut self, proxy: ProxyProtocol) -> Self {
        self.options.proxy = Some(Arc::new(proxy));
        self
    }
}

impl<K: Kind, C: Strategy, S: SharedState> fmt::Debug for Builder<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("kind", &K::NAME)
            .field("options", &self.options)
            .field("hooks", &self.hooks)
            // Nor need the state.
            .field("state", &std::any::type_name::<S>())
            // A strategy need not implement `Debug`.
            .field("strategy", &std::any::type_name::<C>())
            .finish_non_exhaustive()
    }
}
