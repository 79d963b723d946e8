//! Request handlers: Python's `BaseRequestHandler`, `StreamRequestHandler` and
//! `DatagramRequestHandler`.
//!
//! | Python | sockserve |
//! |---|---|
//! | `class H(BaseRequestHandler)` with `setup`/`handle`/`finish` | `impl Handler<R> for H` |
//! | one handler object per request | the server clones the handler per request |
//! | `StreamRequestHandler`: `self.rfile`, `self.wfile`, `self.connection` | [`StreamRequest`] fields |
//! | `rbufsize`, `wbufsize`, `timeout`, `disable_nagle_algorithm` | [`StreamOptions`] |
//! | `DatagramRequestHandler`: `self.packet`, `self.socket`, `rfile`, `wfile` | [`DatagramRequest`] fields |
//! | `self.client_address`, `self.server` | `request.client_address`, `request.server` ([`ServerContext`]) |
//! | `BaseServer.finish_request` | [`finish_request`] |
//!
//! A plain closure `|req: &mut StreamRequest| -> io::Result<()>` is a handler too.
//!
//! # Examples
//!
//! ```
//! use sockserve_handler::{BoxError, Handler, Next, StreamRequest};
//! use std::io::{BufRead, Write};
//!
//! #[derive(Clone, Default)]
//! struct Upper;
//!
//! impl Handler<StreamRequest> for Upper {
//!     fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
//!         let mut line = String::new();
//!         req.rfile.read_line(&mut line)?;
//!         req.wfile.write_all(line.to_uppercase().as_bytes())?;
//!         Ok(Next::Done)
//!     }
//! }
//! # let _ = Upper;
//! ```
#![doc(test(attr(deny(warnings))))]

mod context;
mod datagram;
mod error;
mod handler;
mod request;
mod stream;

/// The socket layer (the `sockserve-socket` crate), which this crate's types are built on:
/// a program that depends on this crate alone reaches it here.
///
/// ```
/// use sockserve_handler::socket::{Address, Family};
///
/// let address: Address = "127.0.0.1:8000".parse()?;
/// assert_eq!(address.family(), Family::Inet);
/// # Ok::<(), std::io::Error>(())
/// ```
pub use socket;
#[doc(no_inline)]
pub use socket::{Address, Socket};

pub use context::{ServerContext, SharedState, StopServer};
pub use datagram::{DatagramOptions, DatagramRequest};
pub use error::{BoxError, HandlerError, Stage};
pub use handler::{Handler, HandlerExt, IntoOutcome, Next, WithOptions};
pub use request::{Request, finish_request};
pub use stream::{StreamOptions, StreamReader, StreamRequest, StreamWriter};
