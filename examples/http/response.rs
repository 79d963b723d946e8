//! Responses: status codes, the response head with the headers every answer carries (`Date`,
//! `Server`, `Content-Length`, `Connection`), and the small HTML pages of errors.

use super::date::http_date;
use std::time::SystemTime;

/// The `Server` header of every response.
pub(crate) const SERVER: &str = concat!("sockserve-http_server/", env!("CARGO_PKG_VERSION"));

/// An HTTP status: its code and reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u16, pub(crate) &'static str);

impl Status {
    pub(crate) const OK: Status = Status(200, "OK");
    pub(crate) const MOVED_PERMANENTLY: Status = Status(301, "Moved Permanently");
    pub(crate) const NOT_MODIFIED: Status = Status(304, "Not Modified");
    pub(crate) const BAD_REQUEST: Status = Status(400, "Bad Request");
    pub(crate) const FORBIDDEN: Status = Status(403, "Forbidden");
    pub(crate) const NOT_FOUND: Status = Status(404, "Not Found");
    pub(crate) const REQUEST_TIMEOUT: Status = Status(408, "Request Timeout");
    pub(crate) const CONTENT_TOO_LARGE: Status = Status(413, "Content Too Large");
    pub(crate) const URI_TOO_LONG: Status = Status(414, "URI Too Long");
    pub(crate) const HEADERS_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
    pub(crate) const NOT_IMPLEMENTED: Status = Status(501, "Not Implemented");
    pub(crate) const VERSION_NOT_SUPPORTED: Status = Status(505, "HTTP Version Not Supported");
}

/// A response head being written: the status line, then header lines, then [`finish`]
/// (Self::finish) adds `Date`, `Server`, `Connection` and the blank line.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    bytes: Vec<u8>,
}

impl ResponseHead {
    /// A head with the status line of `status`.
    pub(crate) fn new(status: Status) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", status.0, status.1).as_bytes());
        ResponseHead { bytes }
    }

    /// Adds the header `name: value`.
    pub(crate) fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.bytes
            .extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        self
    }

    /// The whole head: the headers every response carries, then the blank line. `keep_alive`
    /// says whether the connection stays open after this response; `http10` whether the
    /// client spoke HTTP/1.0, which keeps a connection only when told so.
    pub(crate) fn finish(self, keep_alive: bool, http10: bool) -> Vec<u8> {
        let connection = match (keep_alive, http10) {
            (false, _) => Some("close"),
            (true, true) => Some("keep-alive"),
            (true, false) => None, // HTTP/1.1's default
        };
        let mut head = self
            .header("Date", http_date(SystemTime::now()))
            .header("Server", SERVER);
        if let Some(connection) = connection {
            head = head.header("Connection", connection);
        }
        head.bytes.extend_from_slice(b"\r\n");
        head.bytes
    }
}

/// An error page: its head (closing the connection unless `keep_alive`) and, unless `head_only`
/// (an answer to `HEAD`), its HTML body, in one buffer to send in one write.
pub(crate) fn error_response(
    status: Status,
    message: &str,
    keep_alive: bool,
    http10: bool,
    head_only: bool,
) -> Vec<u8> {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>Error response</title></head>\n<body>\n<h1>Error response</h1>\n\
         <p>Error code: {}</p>\n<p>Message: {}.</p>\n</body>\n</html>\n",
        status.0,
        html_escape(message)
    );
    let mut response = ResponseHead::new(status)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Length", body.len())
        .finish(keep_alive, http10);
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

/// `text` with the characters HTML gives a meaning escaped (Python's `html.escape`).
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_page_has_a_status_line_a_length_and_an_escaped_message() {
        let page = error_response(Status::NOT_FOUND, "no <such> file", false, false, false);
        let text = String::from_utf8(page).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(
            head.contains("\r\nServer: sockserve-http_server/"),
            "{head}"
        );
        assert!(head.contains("\r\nDate: "), "{head}");
        assert!(body.contains("no &lt;such&gt; file"), "{body}");
    }

    #[test]
    fn a_head_answer_has_no_body_and_http10_is_told_keep_alive() {
        let page = error_response(Status::NOT_FOUND, "gone", true, true, true);
        let text = String::from_utf8(page).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
        let kept = ResponseHead::new(Status::OK).finish(true, false);
        assert!(!String::from_utf8(kept).unwrap().contains("Connection:"));
    }

    #[test]
    fn html_escape_escapes_what_python_does() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }
}
