//! One request's head (its request line and headers): gathered from the connection a piece at
//! a time ([`HeadReader`], bounded by [`Limits`]), then parsed with `httparse` ([`parse`]) into
//! what the server needs of it ([`RequestHead`]), or refused with the status that says why
//! ([`Reject`]).

use super::response::Status;

/// How large a request head may grow. The defaults are those of common servers (Apache's
/// `LimitRequestLine` is 8,190 bytes, nginx's header buffers 8 KiB each); Python's
/// `http.server` allows 64 KiB a line and 100 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest request line (method, target, version), line end excluded: past it, 414.
    pub(crate) request_line: usize,
    /// The largest head in all, request line included: past it, 431.
    pub(crate) head: usize,
    /// The most header fields: past it, 431.
    pub(crate) headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8 * 1024,
            head: 64 * 1024,
            headers: 100,
        }
    }
}

/// What [`Reject::HeadersTooLarge`] says of a head with too many fields.
pub(crate) const TOO_MANY_HEADERS: &str = "Too many headers";

/// Why a request is refused before it is served: each is a 4xx or 5xx with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not HTTP: a malformed request line or header (400).
    BadRequest(&'static str),
    /// The request line is longer than [`Limits::request_line`] (414).
    UriTooLong,
    /// The head is larger than [`Limits::head`], or has more than [`Limits::headers`] fields
    /// (431).
    HeadersTooLarge(&'static str),
    /// A method this server does not serve (501, as Python's `http.server` answers).
    NotImplemented(String),
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
}

impl Reject {
    /// The status of the answer.
    pub(crate) fn status(&self) -> Status {
        match self {
            Reject::BadRequest(_) => Status::BAD_REQUEST,
            Reject::UriTooLong => Status::URI_TOO_LONG,
            Reject::HeadersTooLarge(_) => Status::HEADERS_TOO_LARGE,
            Reject::NotImplemented(_) => Status::NOT_IMPLEMENTED,
            Reject::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
        }
    }

    /// The explanation in the answer's body (and the server's log line): a limit reached
    /// says which, and how large it is.
    pub(crate) fn message(&self, limits: &Limits) -> String {
        match self {
            Reject::BadRequest(why) => why.to_string(),
            Reject::UriTooLong => format!(
                "Request line longer than {} bytes (Limits::request_line)",
                limits.request_line
            ),
            Reject::HeadersTooLarge(TOO_MANY_HEADERS) => format!(
                "{TOO_MANY_HEADERS}: more than {} (Limits::headers)",
                limits.headers
            ),
            Reject::HeadersTooLarge(why) => {
                format!("{why}: more than {} bytes (Limits::head)", limits.head)
            }
            Reject::NotImplemented(method) => format!("Unsupported method ({method:?})"),
            Reject::VersionNotSupported => "Only HTTP/1.0 and HTTP/1.1 are served".to_owned(),
        }
    }
}

/// Gathers a request head from the bytes of a connection as they come, however they are split,
/// up to the blank line that ends it, taking nothing past it (the body, or a pipelined request,
/// stays for whoever reads next).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadReader {
    head: Vec<u8>,
    limits: Limits,
}

/// How far a head is after [`HeadReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fed {
    /// The blank line has not come yet.
    NeedMore,
    /// The head is whole: [`HeadReader::take`] it.
    Complete,
}

impl HeadReader {
    /// A reader bounded by `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        HeadReader {
            head: Vec::new(),
            limits,
        }
    }

    /// How many bytes of a head it holds (0 between requests).
    pub(crate) fn len(&self) -> usize {
        self.head.len()
    }

    /// Takes from `input` what belongs to the head; returns how many bytes it took (the caller
    /// consumes them) and whether the head is whole, or why it is refused. Empty lines before
    /// a request line are skipped, as RFC 9112 (2.2) asks.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, Result<Fed, Reject>) {
        let mut taken = 0;
        if self.head.is_empty() {
            taken = input
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        }
        let rest = &input[taken..];
        // The blank line may straddle two inputs: look from a little before the new bytes.
        let from = self.head.len().saturating_sub(2);
        let room = self.limits.head.saturating_sub(self.head.len());
        let take = rest.len().min(room + 1);
        self.head.extend_from_slice(&rest[..take]);
        let end = find_blank_line(&self.head[from..]).map(|at| from + at);
        if let Some(end) = end {
            // Give back what came after the blank line.
            let extra = self.head.len() - end;
            self.head.truncate(end);
            taken += take - extra;
        } else {
            taken += take;
        }
        let line_end = self.head.iter().position(|&b| b == b'\n');
        if line_end.unwrap_or(self.head.len()) > self.limits.request_line + 1 {
            return (taken, Err(Reject::UriTooLong));
        }
        match end {
            _ if self.head.len() > self.limits.head => (
                taken,
                Err(Reject::HeadersTooLarge("Request header fields too large")),
            ),
            Some(_) => (taken, Ok(Fed::Complete)),
            None => (taken, Ok(Fed::NeedMore)),
        }
    }

    /// The whole head, leaving the reader empty for the next request.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.head)
    }
}

/// Where the head in `bytes` ends: just past its blank line (`\r\n\r\n`, or `\n\n` from a lax
/// client, which `httparse` accepts too).
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'\n') {
        let next = i + at + 1;
        match bytes.get(next..) {
            Some([b'\n', ..]) => return Some(next + 1),
            Some([b'\r', b'\n', ..]) => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `GET`: the headers and the body.
    Get,
    /// `HEAD`: the headers alone.
    Head,
}

/// What the server needs of a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    /// The request target as sent (`/a%20b/?q`), not decoded.
    pub(crate) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    /// Whether the client wants the connection kept after this request: HTTP/1.1 unless it
    /// says `Connection: close`, HTTP/1.0 only if it says `Connection: keep-alive`.
    pub(crate) keep_alive: bool,
    /// The length of the body that follows the head (`Content-Length`; 0 without one).
    pub(crate) content_length: u64,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub(crate) expect_continue: bool,
    /// `If-Modified-Since`, as sent.
    pub(crate) if_modified_since: Option<String>,
}

/// Parses a whole head (what [`HeadReader::take`] gives) into a [`RequestHead`].
pub(crate) fn parse(head: &[u8], limits: Limits) -> Result<RequestHead, Reject> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.headers];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // A head that `HeadReader` found whole but `httparse` finds cut short: its blank line
        // came before the request line did (`GET / HTTP/1.1` alone is partial).
        Ok(httparse::Status::Partial) => return Err(Reject::BadRequest("incomplete request")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reject::HeadersTooLarge(TOO_MANY_HEADERS));
        }
        Err(httparse::Error::Version) => return Err(version_error(head)),
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(Reject::BadRequest("malformed header"));
        }
        Err(_) => return Err(Reject::BadRequest("malformed request line")),
    }
    // `Complete` sets all three.
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Reject::BadRequest("malformed request line"));
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        other => return Err(Reject::NotImplemented(other.to_owned())),
    };
    let mut parsed = RequestHead {
        method,
        target: target.to_owned(),
        minor_version,
        keep_alive: minor_version >= 1,
        content_length: 0,
        expect_continue: false,
        if_modified_since: None,
    };
    let mut content_length = None;
    for field in request.headers.iter() {
        let value = std::str::from_utf8(field.value).unwrap_or("").trim();
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    parsed.keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && minor_version == 0 {
                    parsed.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(Reject::BadRequest("invalid Content-Length"))?;
            // Two different lengths: which one frames the body? (A request smuggling trick.)
            if content_length.is_some_and(|seen| seen != length) {
                return Err(Reject::BadRequest("conflicting Content-Length"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // A body in chunks is not read here; its length is unknown, so the connection
            // could not be kept in step with the client.
            return Err(Reject::BadRequest(
                "Transfer-Encoding in a request is not supported",
            ));
        } else if name.eq_ignore_ascii_case("expect") {
            parsed.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            parsed.if_modified_since = Some(value.to_owned());
        }
    }
    parsed.content_length = content_length.unwrap_or(0);
    Ok(parsed)
}

/// The error for a request line whose version `httparse` refused: 505 for a well-formed
/// version other than 1.0 and 1.1 (`HTTP/2.0`), 400 for anything else.
fn version_error(head: &[u8]) -> Reject {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let version = line
        .trim_ascii()
        .rsplit(|&b| b == b' ')
        .next()
        .unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Reject::VersionNotSupported
        }
        _ => Reject::BadRequest("malformed request line"),
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
