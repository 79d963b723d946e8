//! `HandlerError`: what a failed request reports to the server's `handle_error`; `BoxError`, any
//! error a handler returns; `Stage`, which step failed.

use std::{any::Any, error::Error, fmt, io};

/// Any error a handler returns: Python's "raise anything". `?` turns every
/// `std::error::Error + Send + Sync + 'static` into it (an `io::Error`, a `ParseIntError`, an
/// error type of your own), and a `&str` or `String` too.
///
/// # Examples
///
/// ```
/// use sockserve_handler::BoxError;
///
/// fn parse(text: &str) -> Result<u32, BoxError> {
///     let n: u32 = text.trim().parse()?; // a ParseIntError
///     if n == 0 {
///         return Err("zero is not allowed".into());
///     }
///     Ok(n)
/// }
/// assert_eq!(parse(" 7 ")?, 7);
/// assert_eq!(parse("0").unwrap_err().to_string(), "zero is not allowed");
/// assert!(parse("x").is_err());
/// # Ok::<(), BoxError>(())
/// ```
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Which step of a request failed: Python's `setup`, `handle` or `finish` (the request's own
/// setup, such as the stream's buffers, counts as `Setup`; its own finish, such as flushing
/// `wfile` or sending a datagram reply, as `Finish`).
///
/// # Examples
///
/// ```
/// use sockserve_handler::Stage;
///
/// assert_eq!(Stage::Handle.to_string(), "handle");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// `setup`, or the request's own setup.
    Setup,
    /// `handle`.
    Handle,
    /// `finish`, or the request's own finish (flush, reply).
    Finish,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Setup => "setup",
            Stage::Handle => "handle",
            Stage::Finish => "finish",
        })
    }
}

/// Why a request failed: which step, and the error it returned or the panic it raised.
///
/// Python's `handle_error` sees the exception raised by `setup`, `handle` or `finish`; here it
/// is any error a handler returns ([`BoxError`]), or a panic caught by the server (which keeps
/// serving either way).
///
/// # Examples
///
/// ```
/// use sockserve_handler::{HandlerError, Stage};
/// use std::io;
///
/// let err = HandlerError::from(io::Error::new(io::ErrorKind::InvalidData, "bad line"));
/// assert_eq!(err.to_string(), "handle failed: bad line");
/// assert_eq!(err.stage(), Stage::Handle);
/// let io_err: io::Error = err.into();
/// assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
///
/// let parse = "x".parse::<u32>().unwrap_err();
/// let err = HandlerError::failed(Stage::Setup, parse);
/// assert_eq!(err.to_string(), "setup failed: invalid digit found in string");
/// assert!(err.io_error().is_none() && !err.is_panic());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// A step returned an error.
    #[error("{stage} failed: {error}")]
    Failed {
        /// The step.
        stage: Stage,
        /// What it returned (shown in this error's message, so not also its `source`: see
        /// [`HandlerError::error`]).
        error: BoxError,
    },
    /// A step panicked; the payload's message, if it was a string.
    #[error("{stage} panicked: {message}")]
    Panicked {
        /// The step.
        stage: Stage,
        /// The panic's message.
        message: String,
    },
}

impl HandlerError {
    /// The error of a step that returned `error`.
    ///
    /// # Examples
    ///
    /// See [`HandlerError`].
    pub fn failed(stage: Stage, error: impl Into<BoxError>) -> Self {
        HandlerError::Failed {
            stage,
            error: error.into(),
        }
    }

    /// Builds the error for a panic caught in `handle` from its payload (see
    /// [`at`](Self::at) for another step).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::HandlerError;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// let err = HandlerError::from_panic(payload);
    /// assert_eq!(err.to_string(), "handle panicked: boom");
    /// assert_eq!(err.panic_message(), Some("boom"));
    /// ```
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        HandlerError::Panicked {
            stage: Stage::Handle,
            message,
        }
    }

    /// The same error, attributed to `stage`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{HandlerError, Stage};
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// let err = HandlerError::from_panic(payload).at(Stage::Finish);
    /// assert_eq!(err.to_string(), "finish panicked: boom");
    /// ```
    pub fn at(self, stage: Stage) -> Self {
        match self {
            HandlerError::Failed { error, .. } => HandlerError::Failed { stage, error },
            HandlerError::Panicked { message, .. } => HandlerError::Panicked { stage, message },
        }
    }

    /// Which step failed.
    ///
    /// # Examples
    ///
    /// See [`HandlerError`].
    pub fn stage(&self) -> Stage {
        match self {
            HandlerError::Failed { stage, .. } | HandlerError::Panicked { stage, .. } => *stage,
        }
    }

    /// The error the step returned, if it returned one (rather than panicked).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{HandlerError, Stage};
    ///
    /// let err = HandlerError::failed(Stage::Handle, "no such user");
    /// assert_eq!(err.error().map(|e| e.to_string()).as_deref(), Some("no such user"));
    /// ```
    pub fn error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match self {
            HandlerError::Failed { error, .. } => Some(&**error),
            HandlerError::Panicked { .. } => None,
        }
    }

    /// The `io::Error` the step returned, if that is what failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::HandlerError;
    /// use std::io;
    ///
    /// let err = HandlerError::from(io::Error::from(io::ErrorKind::TimedOut));
    /// assert_eq!(err.io_error().map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        self.error()?.downcast_ref::<io::Error>()
    }

    /// Whether the step failed because an I/O call timed out: its error, or one of that
    /// error's sources, is an `io::Error` of kind [`TimedOut`](io::ErrorKind::TimedOut), as
    /// a read or write of `rfile` / `wfile` returns when one of the request's deadlines
    /// passes (`StreamOptions::idle_timeout`, `write_timeout`, `turn_timeout`, `timeout`).
    /// The server's default `handle_error` reports such a request at info level, not as an
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::{HandlerError, Stage};
    /// use std::io;
    ///
    /// let idle = io::Error::new(io::ErrorKind::TimedOut, "timed out: idle for 30s");
    /// assert!(HandlerError::from(idle).is_timed_out());
    /// assert!(!HandlerError::failed(Stage::Handle, "bad request").is_timed_out());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        let mut next: Option<&(dyn Error + 'static)> = self.error().map(|e| e as _);
        while let Some(error) = next {
            if error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
            {
                return true;
            }
            next = error.source();
        }
        false
    }

    /// The [`TruncatedDatagram`](crate::TruncatedDatagram) a datagram request failed with,
    /// if that is why it failed: the datagram was longer than the server's
    /// `max_packet_size` and was discarded before any handler saw it.
    ///
    /// # Examples
    ///
    /// See [`TruncatedDatagram`](crate::TruncatedDatagram).
    pub fn truncated_datagram(&self) -> Option<&crate::TruncatedDatagram> {
        self.io_error()?.get_ref()?.downcast_ref()
    }

    /// The [`StreamTruncated`](crate::StreamTruncated) of a request whose stream ended
    /// without its protocol's end (a TLS peer that closed without `close_notify`), if that
    /// is how it failed.
    ///
    /// # Examples
    ///
    /// See [`StreamTruncated`](crate::StreamTruncated).
    pub fn truncated_stream(&self) -> Option<&crate::StreamTruncated> {
        self.io_error()?.get_ref()?.downcast_ref()
    }

    /// Whether the step panicked.
    ///
    /// # Examples
    ///
    /// See [`HandlerError`].
    pub fn is_panic(&self) -> bool {
        matches!(self, HandlerError::Panicked { .. })
    }

    /// The panic's message, if the step panicked.
    ///
    /// # Examples
    ///
    /// See [`from_panic`](Self::from_panic).
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            HandlerError::Panicked { message, .. } => Some(message),
            HandlerError::Failed { .. } => None,
        }
    }
}

/// An `io::Error` returned by `handle`.
impl From<io::Error> for HandlerError {
    fn from(e: io::Error) -> Self {
        HandlerError::failed(Stage::Handle, e)
    }
}

/// The `io::Error` itself when that is what failed (its kind and OS error code kept), else an
/// `io::Error` of kind `Other` carrying the message.
impl From<HandlerError> for io::Error {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Failed { stage, error } => match error.downcast::<io::Error>() {
                Ok(io) => *io,
                Err(other) => io::Error::other(format!("{stage} failed: {other}")),
            },
            HandlerError::Panicked { stage, message } => {
                io::Error::other(format!("{stage} panicked: {message}"))
            }
        }
    }
}
