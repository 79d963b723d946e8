//! The failure table: what a server does when a request's handler or one of its hooks fails,
//! for every strategy (sync, threading, forking), streams and datagrams alike. In every row the
//! server keeps serving: the next client is answered as usual. Each cell is a test
//! (`crates/mixins/tests/failure_table.rs`: the hooks that ran, in order, and what the client
//! got, under each strategy, then a fresh client).
//!
//! | failure | what runs, in order (each once) | `handle_error` gets | a stream client sees | a datagram client sees |
//! |---|---|---|---|---|
//! | a [`Layer`](crate::Layer) fails or panics (a TLS handshake: a plaintext client, a stall past its deadline, a missing client certificate) | `verify_request`, the layers up to it, `handle_error`, `shutdown_request`: no handler step runs | `Stage::Setup`, the layer's error (`sockserve_tls::HandshakeError`) or panic | what the layer sent (a TLS alert), then closed | - |
//! | `setup` returns an error | `verify_request`, `setup`, `handle_error`, `shutdown_request` | [`Stage::Setup`](crate::Stage), the error | the connection closed, nothing written | no reply |
//! | `setup` panics | the same | `Stage::Setup`, the panic's message ([`HandlerError::is_panic`](crate::HandlerError::is_panic)) | closed | no reply |
//! | `handle` returns an error | `verify_request`, `setup`, `handle`, `finish`, `handle_error`, `shutdown_request` | `Stage::Handle`, the error | closed | no reply (`wfile` is not sent) |
//! | `handle` panics | the same | `Stage::Handle`, the panic | closed | no reply |
//! | `finish` returns an error | the same | `Stage::Finish`, the error | what `handle` wrote, then closed | the reply (`wfile` is sent) |
//! | `finish` panics | the same | `Stage::Finish`, the panic | what `handle` wrote, then closed | the reply |
//! | `verify_request` panics | `verify_request`, `shutdown_request`: the request is refused, no handler step runs | nothing: the panic is reported as the default `handle_error` reports a failure | closed | no reply |
//! | `handle_error` panics | as for the failure it was given | (it was running) | as for that failure | as for that failure |
//! | `service_actions` panics | the request is served as usual; the panic is reported, and the loop goes on to its next round | nothing | the answer | the answer |
//! | a waiting connection's `handle` fails in a later turn ([`Next::WaitForInput`](crate::Next)) | `verify_request`, `setup`, `handle` once a turn, `finish`, `handle_error`, `shutdown_request` | `Stage::Handle` | the earlier turns' answers, then closed | - |
//! | a waiting connection's `finish` fails | `verify_request`, `setup`, `handle` once a turn, then (the end of input ends the wait: no turn for it) `finish`, `handle_error`, `shutdown_request` | `Stage::Finish` | every answer, then closed | - |
//!
//! "Closed" is the server's `SHUT_WR` and close: the client reads the end of the stream, or a
//! reset when input it sent was left unread. A panic is caught where it happened: in the
//! serving loop's thread (sync, and `verify_request` and `service_actions` under every
//! strategy), in a worker thread (threading) or in the forked child, which still ends in
//! `_exit` (forking). Where no `handle_error` runs (a panicking hook), the panic is reported
//! in one line as the default `handle_error` reports a failure, within the same rate limit
//! (on stderr without a logger).
//!
//! A layer's row is tested apart: `crates/server/tests/layer.rs` (an error and a panic, sync)
//! and `crates/tls/tests` (handshakes that fail, under each strategy).
//!
//! A datagram longer than `max_packet_size` fails its request before any handler step, and
//! before `verify_request` (which never sees a cut datagram): `handle_error` with a
//! [`TruncatedDatagram`](crate::TruncatedDatagram) at `Stage::Setup`, `shutdown_request`, no
//! reply (`crates/mixins/tests/truncated.rs`).
//!
//! With the PROXY protocol on ([`Builder::proxy_protocol`](crate::Builder::proxy_protocol),
//! stream servers), the header is read before `verify_request`, and its failures end the
//! request before it too: `handle_error` (with the proxy's address, the real client being
//! unknown) at `Stage::Setup`, then `shutdown_request`, no handler step; the client sees the
//! connection closed. A peer that is not trusted (`PermissionDenied`, naming
//! `ProxyProtocol::trusted`), a connection that starts with anything but a header, a malformed
//! one, one over `ProxyProtocol::max_header_len` (`InvalidData`), one cut by the connection's
//! end (`UnexpectedEof`), one not whole within `ProxyProtocol::header_timeout` (`TimedOut`,
//! reported at info level as other deadlines are). A connection that ends before its first
//! byte ends quietly (`shutdown_request` alone). `verify_request` refusing the real client:
//! `verify_request`, `shutdown_request`, as without the option (`crates/server/tests/proxy.rs`).
//!
//! # Examples
//!
//! A `handle_error` that tells the rows apart:
//!
//! ```
//! use sockserve_server::{Stage, TcpServer};
//!
//! let server = TcpServer::builder(|_req| Ok(()))
//!     .handle_error(|_server, client, error| match (error.stage(), error.is_panic()) {
//!         (Stage::Setup, _) => log::warn!("{client}: refused in setup: {error}"),
//!         (_, true) => log::error!("{client}: a handler panicked: {error}"),
//!         _ => log::info!("{client}: {error}"),
//!     })
//!     .bind("127.0.0.1:0")?;
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
