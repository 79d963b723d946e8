//! Property tests (fuzzing with bounded case counts) of `rfile`'s line reader and its limit
//! (`StreamOptions::line_limit`): whatever the bytes, the line limit and the read buffer's
//! size, `read_until` returns nothing longer than the limit, loses no byte and invents none
//! (the pieces it returns, those of the errors included, add up to the input), fails only with
//! `InvalidData` naming the option, and never panics. The request is the real one, over one end
//! of a socket pair whose other end wrote the input and closed. A longer run:
//! `PROPTEST_CASES=20000 cargo test -p sockserve-handler --test props`.

use proptest::prelude::*;
use sockserve_handler::driver::{StopServer, server_context};
use sockserve_handler::socket::{Address, Family, Shutdown, Type, socketpair};
use sockserve_handler::{Request, StreamOptions, StreamRequest};
use std::{
    io::{BufRead, ErrorKind},
    sync::Arc,
    time::Duration,
};

#[derive(Debug)]
struct NoStop;

impl StopServer for NoStop {
    fn shutdown(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn request_shutdown(&self) {}
}

/// A request whose connection holds `input`, then EOF.
fn request_over(input: &[u8], options: &StreamOptions) -> StreamRequest {
    let (client, server) = socketpair(Family::Unix, Type::Stream).expect("socketpair");
    client
        .sendall(input)
        .expect("the input fits the pair's buffer");
    client.shutdown(Shutdown::Write).expect("EOF");
    let context = server_context(Address::Unnamed, Arc::new(NoStop), Arc::new(()));
    StreamRequest::setup(Arc::new(server), Address::Unnamed, context, options).expect("setup")
}

/// Bytes with many line ends, so that short and long lines both come.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..2048),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn line_reads_keep_to_the_limit_and_lose_nothing(
        input in input(),
        limit in prop_oneof![Just(None), (1usize..70).prop_map(Some)],
        rbufsize in 0usize..40,
    ) {
        let options = StreamOptions::default()
            .line_limit(limit)
            .rbufsize(rbufsize)
            .timeout(Some(Duration::from_secs(10)));
        let mut req = request_over(&input, &options);
        let mut seen = Vec::new();
        // Each call takes at least one byte until EOF: bounded by the input's length.
        for _ in 0..=input.len() + 1 {
            let mut piece = Vec::new();
            match req.rfile.read_until(b'\n', &mut piece) {
                Ok(0) => {
                    prop_assert!(piece.is_empty());
                    break;
                }
                Ok(n) => {
                    prop_assert_eq!(n, piece.len());
                    if let Some(limit) = limit {
                        prop_assert!(n <= limit, "a line of {} past the limit {}", n, limit);
                    }
                    // A piece without its line end is the input's last.
                    if piece.last() != Some(&b'\n') {
                        prop_assert_eq!(seen.len() + n, input.len());
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidData);
                    prop_assert!(e.to_string().contains("line_limit"), "{}", e);
                    let limit = limit.expect("an error only under a limit");
                    prop_assert_eq!(piece.len(), limit, "the error's piece is the limit's bytes");
                    prop_assert!(!piece.contains(&b'\n'));
                }
            }
            seen.extend_from_slice(&piece);
        }
        prop_assert_eq!(seen, input);
    }

    /// `read_line` on any bytes: text up to the limit, or an error; never a panic, and it
    /// ends (EOF) within as many calls as there are bytes.
    #[test]
    fn read_line_on_any_bytes_ends(
        input in input(),
        limit in prop_oneof![Just(None), (1usize..70).prop_map(Some)],
    ) {
        let options = StreamOptions::default().line_limit(limit);
        let mut req = request_over(&input, &options);
        let mut ended = false;
        for _ in 0..=input.len() + 1 {
            let mut line = String::new();
            match req.rfile.read_line(&mut line) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => prop_assert!(limit.is_none_or(|l| n <= l) && line.len() == n),
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidData),
            }
        }
        prop_assert!(ended, "no EOF after {} reads", input.len() + 1);
    }
}

/// Found by the properties above: under `line_limit(Some(0))` every line read failed and took
/// nothing, so a handler that reads on after an error (as `lines()` invites) never reached EOF.
/// A limit of 0 is now taken as 1.
#[test]
fn a_line_limit_of_zero_still_reaches_eof() {
    let options = StreamOptions::default().line_limit(Some(0));
    let mut req = request_over(b"a\nb\n", &options);
    for _ in 0..10 {
        let mut piece = Vec::new();
        if let Ok(0) = req.rfile.read_until(b'\n', &mut piece) {
            return;
        }
    }
    panic!("no EOF after 10 reads of 4 bytes under line_limit(Some(0))");
}
