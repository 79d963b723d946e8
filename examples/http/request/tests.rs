//! The request head: gathered however the bytes are split, parsed, refused with the right
//! status.

use super::*;

const SIMPLE: &[u8] =
    b"GET /a%20b/?q=1 HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 06 Nov 1994 \
                        08:49:37 GMT\r\n\r\n";

/// Feeds `input` whole; the bytes taken and the outcome.
fn feed_all(input: &[u8], limits: Limits) -> (usize, Result<Fed, Reject>, HeadReader) {
    let mut reader = HeadReader::new(limits);
    let (taken, fed) = reader.feed(input);
    (taken, fed, reader)
}

/// Gathers and parses one head from `input`.
fn head_of(input: &[u8]) -> Result<RequestHead, Reject> {
    let (_, fed, mut reader) = feed_all(input, Limits::default());
    assert_eq!(fed?, Fed::Complete, "{:?}", String::from_utf8_lossy(input));
    parse(&reader.take(), Limits::default())
}

#[test]
fn a_simple_request_is_parsed() {
    let head = head_of(SIMPLE).unwrap();
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.target, "/a%20b/?q=1");
    assert_eq!(head.minor_version, 1);
    assert!(head.keep_alive);
    assert_eq!(head.content_length, 0);
    assert!(!head.expect_continue);
    assert_eq!(
        head.if_modified_since.as_deref(),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
}

#[test]
fn a_head_split_anywhere_is_gathered_the_same_and_nothing_past_it_is_taken() {
    let mut input = SIMPLE.to_vec();
    input.extend_from_slice(b"NEXT REQUEST");
    for split in 0..=input.len() {
        let mut reader = HeadReader::new(Limits::default());
        let (first, fed) = reader.feed(&input[..split]);
        assert_eq!(first, split.min(SIMPLE.len()), "split at {split}");
        let done = match fed.unwrap() {
            Fed::Complete => first,
            Fed::NeedMore => {
                let (second, fed) = reader.feed(&input[split..]);
                assert_eq!(fed.unwrap(), Fed::Complete, "split at {split}");
                first + second
            }
        };
        assert_eq!(done, SIMPLE.len(), "split at {split}");
        assert_eq!(reader.take(), SIMPLE, "split at {split}");
    }
}

#[test]
fn byte_by_byte_is_gathered_too() {
    let mut reader = HeadReader::new(Limits::default());
    for (i, byte) in SIMPLE.iter().enumerate() {
        let (taken, fed) = reader.feed(std::slice::from_ref(byte));
        assert_eq!(taken, 1);
        let want = if i + 1 == SIMPLE.len() {
            Fed::Complete
        } else {
            Fed::NeedMore
        };
        assert_eq!(fed.unwrap(), want, "byte {i}");
    }
    assert_eq!(
        parse(&reader.take(), Limits::default()).unwrap().target,
        "/a%20b/?q=1"
    );
    assert_eq!(reader.len(), 0, "empty for the next request");
}

#[test]
fn pipelined_requests_come_one_at_a_time() {
    let input = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    let mut reader = HeadReader::new(Limits::default());
    let (taken, fed) = reader.feed(input);
    assert_eq!((taken, fed.unwrap()), (19, Fed::Complete));
    assert_eq!(
        parse(&reader.take(), Limits::default()).unwrap().target,
        "/1"
    );
    let (taken, fed) = reader.feed(&input[19..]);
    assert_eq!((taken, fed.unwrap()), (19, Fed::Complete));
    assert_eq!(
        parse(&reader.take(), Limits::default()).unwrap().target,
        "/2"
    );
}

#[test]
fn empty_lines_before_a_request_and_bare_newlines_are_accepted() {
    let head = head_of(b"\r\n\r\n\nGET /x HTTP/1.0\nHost: y\n\n").unwrap();
    assert_eq!((head.target.as_str(), head.minor_version), ("/x", 0));
    // Only empty lines: nothing yet, all of them taken.
    let (taken, fed, reader) = feed_all(b"\r\n\r\n", Limits::default());
    assert_eq!((taken, fed.unwrap(), reader.len()), (4, Fed::NeedMore, 0));
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_header() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (input, keep_alive) in cases {
        let head = head_of(input).unwrap();
        assert_eq!(
            head.keep_alive,
            *keep_alive,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn head_is_a_method_and_others_are_not_implemented() {
    assert_eq!(
        head_of(b"HEAD / HTTP/1.1\r\n\r\n").unwrap().method,
        Method::Head
    );
    for method in ["POST", "PUT", "DELETE", "BREW", "get"] {
        let input = format!("{method} / HTTP/1.1\r\n\r\n");
        let reject = head_of(input.as_bytes()).unwrap_err();
        assert_eq!(reject, Reject::NotImplemented(method.to_owned()));
        assert_eq!(reject.status().0, 501);
        let message = reject.message(&Limits::default());
        assert!(message.contains(method), "{message}");
    }
}

#[test]
fn garbage_is_a_bad_request() {
    let cases: &[&[u8]] = &[
        b"hello\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n", // HTTP/0.9: not served
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET /a\0b HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // TLS, on the wrong port
        b"GET / HTTP/1.x\r\n\r\n",
    ];
    for input in cases {
        let reject = head_of(input).unwrap_err();
        assert_eq!(
            reject.status().0,
            400,
            "{:?}: {reject:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn other_versions_are_not_supported() {
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0"] {
        let input = format!("GET / {version}\r\n\r\n");
        assert_eq!(
            head_of(input.as_bytes()).unwrap_err(),
            Reject::VersionNotSupported
        );
    }
}

#[test]
fn content_length_is_read_and_checked() {
    let with = |fields: &str| head_of(format!("GET / HTTP/1.1\r\n{fields}\r\n").as_bytes());
    assert_eq!(with("Content-Length: 42\r\n").unwrap().content_length, 42);
    assert_eq!(
        with("Content-Length: 7\r\ncontent-length: 7\r\n")
            .unwrap()
            .content_length,
        7
    );
    for bad in ["-1", "+5", "1,2", "abc", "", "99999999999999999999999"] {
        let reject = with(&format!("Content-Length: {bad}\r\n")).unwrap_err();
        assert_eq!(reject.status().0, 400, "{bad:?}");
    }
    let conflict = with("Content-Length: 1\r\nContent-Length: 2\r\n").unwrap_err();
    assert_eq!(conflict, Reject::BadRequest("conflicting Content-Length"));
    let chunked = with("Transfer-Encoding: chunked\r\n").unwrap_err();
    assert_eq!(chunked.status().0, 400);
    let expect = with("Content-Length: 3\r\nExpect: 100-continue\r\n").unwrap();
    assert!(expect.expect_continue);
}

#[test]
fn a_long_request_line_is_414_before_it_ends() {
    let limits = Limits::default();
    let mut line = b"GET /".to_vec();
    line.resize(limits.request_line + 10, b'a');
    let (_, fed, _) = feed_all(&line, limits);
    let reject = fed.unwrap_err();
    assert_eq!(reject, Reject::UriTooLong);
    let message = reject.message(&limits);
    assert!(
        message.contains("8192 bytes (Limits::request_line)"),
        "{message}"
    );
    // At the limit it is fine.
    let mut line = b"GET /".to_vec();
    line.resize(limits.request_line - " HTTP/1.1".len(), b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert!(head_of(&line).is_ok());
}

#[test]
fn a_large_head_is_431_before_it_ends() {
    let limits = Limits::default();
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    while head.len() <= limits.head {
        head.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let (taken, fed, reader) = feed_all(&head, limits);
    let reject = fed.unwrap_err();
    assert_eq!(reject.status().0, 431);
    let message = reject.message(&limits);
    assert!(message.contains("65536 bytes (Limits::head)"), "{message}");
    assert!(
        taken <= limits.head + 1 && reader.len() <= limits.head + 1,
        "bounded"
    );
}

#[test]
fn too_many_headers_is_431() {
    let limits = Limits::default();
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=limits.headers {
        head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(
        head_of(&head).unwrap_err(),
        Reject::HeadersTooLarge("Too many headers")
    );
    // One fewer is fine.
    let fewer: Vec<u8> = {
        let text = String::from_utf8(head).unwrap();
        text.replacen("X-0: y\r\n", "", 1).into_bytes()
    };
    assert!(head_of(&fewer).is_ok());
}
