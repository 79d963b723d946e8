//! Property tests (fuzzing with bounded case counts) of the request head's reader and parser:
//! whatever the bytes, however they are split and whatever the limits, `HeadReader` never holds
//! more than `Limits::head` and a byte, takes all it is fed while it needs more, agrees with
//! itself on a head however it came, and `parse` never panics. A longer run:
//! `PROPTEST_CASES=50000 cargo test -p sockserve-examples --example http_server props`.

use super::*;
use proptest::prelude::*;

/// Bytes that look like a request head, mostly, and sometimes anything at all.
fn headish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"GET / HTTP/1.1".to_vec()),
        Just(b"HEAD /x?y HTTP/1.0".to_vec()),
        Just(b"Content-Length: 5".to_vec()),
        Just(b"Content-Length: 99999999999999999999999".to_vec()),
        Just(b"Connection: close, keep-alive".to_vec()),
        Just(b"Transfer-Encoding: chunked".to_vec()),
        Just(b"Expect: 100-continue".to_vec()),
        Just(Vec::new()),
        "[A-Z]{0,8} /[a-z%0-9]{0,20} HTTP/[0-9]\\.[0-9]".prop_map(String::into_bytes),
        "[!-~]{0,12}: ?[ -~]{0,30}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let end = prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b""[..])];
    proptest::collection::vec((line, end), 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(mut line, end)| {
                line.extend_from_slice(end);
                line
            })
            .collect()
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (0usize..80, 0usize..300, 0usize..8).prop_map(|(request_line, head, headers)| Limits {
            request_line,
            head,
            headers,
        }),
    ]
}

/// What [`feed_in_pieces`] saw: the last outcome (none for an empty input), the bytes taken
/// in all, and the head held.
type Gathered = (Option<Result<Fed, Reject>>, usize, Vec<u8>);

/// Feeds `input` in pieces of the given sizes (the rest whole) as a connection would: what a
/// feed does not take is fed again with the next bytes.
fn feed_in_pieces(
    input: &[u8],
    sizes: &[usize],
    limits: Limits,
) -> Result<Gathered, TestCaseError> {
    let mut reader = HeadReader::new(limits);
    let (mut start, mut end, mut sizes) = (0, 0, sizes.iter());
    let mut last = None;
    while start < input.len() {
        end = (end + sizes.next().copied().unwrap_or(input.len())).clamp(start + 1, input.len());
        let data = &input[start..end];
        let (taken, fed) = reader.feed(data);
        prop_assert!(taken <= data.len());
        prop_assert!(
            reader.len() <= limits.head + 1,
            "held {} > {}",
            reader.len(),
            limits.head
        );
        start += taken;
        match fed {
            Ok(Fed::NeedMore) => prop_assert_eq!(taken, data.len(), "took all while it needs more"),
            done => return Ok((Some(done), start, reader.take())),
        }
        last = Some(fed);
    }
    Ok((last, start, reader.take()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_head_is_gathered_alike_however_it_is_split(
        input in headish(),
        sizes in proptest::collection::vec(1usize..16, 0..40),
        limits in limits(),
    ) {
        let (whole, whole_taken, whole_head) = feed_in_pieces(&input, &[], limits)?;
        let (split, split_taken, split_head) = feed_in_pieces(&input, &sizes, limits)?;
        if let (Some(Ok(Fed::Complete)), Some(Ok(Fed::Complete))) = (&whole, &split) {
            prop_assert_eq!(whole_taken, split_taken);
            prop_assert_eq!(&whole_head, &split_head);
            // The head ends at its blank line; what follows was left for the body.
            prop_assert!(whole_head.ends_with(b"\n\n") || whole_head.ends_with(b"\n\r\n"));
            let _ = parse(&whole_head, limits);
        }
        // Parsing any bytes at all neither panics nor allocates past the headers' limit.
        if let Ok(head) = parse(&input, limits) {
            prop_assert!(matches!(head.method, Method::Get | Method::Head));
            prop_assert!(head.minor_version <= 1);
        }
    }
}
