//! Tests of `socketpair`.

mod util;

use std::io::ErrorKind;
use std::thread;

use sockserve_socket::{Family, Type, socketpair};
use util::{BOUND, is_cloexec, within};

#[test]
fn sendall_of_several_mib_reaches_a_reader_thread_intact() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let data: Vec<u8> = (0..(8u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let expected = data.clone();
    let reader = thread::spawn(move || {
        let mut got = Vec::with_capacity(8 << 20);
        loop {
            let chunk = b.recv(65536).unwrap();
            if chunk.is_empty() {
                break got;
            }
            got.extend_from_slice(&chunk);
        }
    });
    within(BOUND, "sendall of 8 MiB", move || {
        a.sendall(&data).unwrap();
    });
    let got = within(BOUND, "the reader thread", move || reader.join().unwrap());
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes arrive in order and intact");
}

#[test]
fn datagram_pairs_keep_message_boundaries() {
    let (a, b) = socketpair(Family::Unix, Type::Datagram).unwrap();
    a.send(b"first").unwrap();
    a.send(b"second").unwrap();
    assert_eq!(b.recv(64).unwrap(), b"first");
    assert_eq!(b.recv(64).unwrap(), b"second");
    assert!(is_cloexec(a.fileno()) && is_cloexec(b.fileno()));
    assert_eq!(
        (a.family(), a.socket_type()),
        (Family::Unix, Type::Datagram)
    );
}

#[test]
fn inet_pairs_are_not_supported_by_the_kernel() {
    let err = socketpair(Family::Inet, Type::Stream).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));
    assert_ne!(err.kind(), ErrorKind::TimedOut);
}
