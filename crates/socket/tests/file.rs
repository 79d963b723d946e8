//! Tests of `SocketReader` and `SocketWriter` (Python's `makefile`).

mod util;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sockserve_socket::{Family, Socket, SocketReader, SocketWriter, Type, socketpair};
use util::{BOUND, within};

#[test]
fn reader_reads_lines_then_eof() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    a.sendall(b"one\ntwo\nthree").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let reader = b.makefile_reader(None);
    assert_eq!(reader.capacity(), 8192);
    let lines: Vec<String> = reader.lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
}

#[test]
fn a_small_buffer_still_reads_everything_and_large_reads_bypass_it() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    a.sendall(&data).unwrap();
    drop(a);
    let mut reader = SocketReader::with_capacity(7, &b);
    let mut first = [0u8; 3];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(
        reader.buffer().len(),
        4,
        "the rest of the 7-byte fill stays buffered"
    );
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!([&first[..], &rest[..]].concat(), data);
}

#[test]
fn writer_sends_everything_and_returns_the_full_length() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let data = vec![9u8; 3 << 20];
    let expected = data.len();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        (&b).read_to_end(&mut all).map(|_| all)
    });
    let mut writer = SocketWriter::new(&a);
    assert_eq!(
        writer.write(&data).unwrap(),
        expected,
        "one write sends it all"
    );
    writer.flush().unwrap();
    drop(a);
    let got = within(BOUND, "reading 3 MiB", move || {
        reader.join().unwrap().unwrap()
    });
    assert_eq!(got.len(), expected);
}

#[test]
fn reader_and_writer_over_one_arc_socket_work_from_two_threads() {
    fn assert_send<T: Send>(_: &T) {}
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    let a = Arc::new(a);
    let mut reader = SocketReader::new(Arc::clone(&a));
    let mut writer = SocketWriter::new(Arc::clone(&a));
    assert_send(&reader);
    assert_send(&writer);
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let mut line = String::new();
        SocketReader::new(&b).read_line(&mut line)?;
        b.sendall(line.to_uppercase().as_bytes())
    });
    let sender = thread::spawn(move || writer.write_all(b"shout\n"));
    sender.join().unwrap().unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "SHOUT\n");
    echo.join().unwrap().unwrap();
    assert_eq!(reader.get_ref().fileno(), a.fileno());
}

#[test]
fn a_reader_can_go_on_after_a_timeout() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    b.settimeout(Some(Duration::from_millis(100)));
    let mut reader = b.makefile_reader(Some(16));
    a.sendall(b"partial").unwrap();
    let mut line = String::new();
    let err = reader.read_line(&mut line).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(line, "partial", "what was read before the timeout is kept");
    a.sendall(b" line\n").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "partial line\n");
}

#[test]
fn writer_reports_a_closed_peer() {
    let (a, b) = socketpair(Family::Unix, Type::Stream).unwrap();
    drop(b);
    let mut writer = a.makefile_writer();
    assert_eq!(
        writer.write(b"lost").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    let sock: Socket = SocketWriter::new(a).into_inner();
    assert!(!sock.is_closed());
}
