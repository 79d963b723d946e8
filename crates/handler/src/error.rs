//! `HandlerError`: what a failed request reports to the server's `handle_error`.

use std::{any::Any, io};

/// Why a request failed: the handler returned an error, or it panicked.
///
/// Python's `handle_error` sees the exception raised by `setup`, `handle` or `finish`; here the
/// analogue of an `Exception` is an `io::Error` returned by the handler, or a panic caught by the
/// server (which keeps serving either way).
///
/// # Examples
///
/// ```
/// use sockserve_handler::HandlerError;
/// use std::io;
///
/// let err = HandlerError::from(io::Error::new(io::ErrorKind::InvalidData, "bad line"));
/// assert_eq!(err.to_string(), "handler failed: bad line");
/// let io_err: io::Error = err.into();
/// assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The handler (or the request's own setup or finish) returned an error.
    #[error("handler failed: {0}")]
    Io(#[source] io::Error),
    /// The handler panicked; the payload's message, if it was a string.
    #[error("handler panicked: {0}")]
    Panic(String),
}

impl HandlerError {
    /// Builds the error for a caught panic from its payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockserve_handler::HandlerError;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// assert_eq!(HandlerError::from_panic(payload).to_string(), "handler panicked: boom");
    /// ```
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        HandlerError::Panic(message)
    }

    /// The `io::Error` the handler returned, if that is what failed.
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
        match self {
            HandlerError::Io(e) => Some(e),
            HandlerError::Panic(_) => None,
        }
    }
}

impl From<io::Error> for HandlerError {
    fn from(e: io::Error) -> Self {
        HandlerError::Io(e)
    }
}

impl From<HandlerError> for io::Error {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Io(e) => e,
            HandlerError::Panic(msg) => io::Error::other(format!("handler panicked: {msg}")),
        }
    }
}
