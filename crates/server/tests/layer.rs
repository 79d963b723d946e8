//! Layers (`Builder::layer`): steps on each connection before its request's setup, where the
//! request runs. One reads a name line and makes it the client's address (as a PROXY header
//! layer would), the handler and `handle_error` see that address; one that fails and one that
//! panics end the request before any handler step, at `Stage::Setup`, and the server serves on.

use handler::{BoxError, HandlerError, Stage, StreamRequest};
use sockserve_server::{Incoming, Layer, TcpServer};
use std::{
    io::{BufRead, Read, Write},
    net::TcpStream,
    sync::mpsc,
    time::{Duration, Instant},
};
use testsupport::GENEROUS;

/// Reads `NAME\n` byte by byte (nothing past the line is taken from the socket) and makes
/// `@NAME` the client's address; `fail` and `panic` as names fail or panic.
#[derive(Debug)]
struct Named;

impl Layer for Named {
    fn on_connection(&self, incoming: &mut Incoming) -> Result<(), BoxError> {
        let deadline = Some(Instant::now() + GENEROUS);
        let mut name = Vec::new();
        let mut byte = [0u8; 1];
        while incoming.socket.recv_into_by(&mut byte, deadline)? == 1 && byte[0] != b'\n' {
            name.push(byte[0]);
        }
        match &name[..] {
            b"fail" => Err("no such name".into()),
            b"panic" => panic!("the layer panicked on purpose"),
            _ => {
                let name = String::from_utf8(name)?;
                incoming.client_address = format!("@{name}").parse()?;
                Ok(())
            }
        }
    }
}

fn exchange(address: &str, first: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(address).expect("connect");
    client.set_read_timeout(Some(GENEROUS)).expect("timeout");
    client.write_all(first).expect("send");
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got);
    got
}

#[test]
fn layers_run_before_setup_and_their_failures_reach_handle_error() {
    let (errors, failed) = mpsc::channel::<(String, Stage, bool, String)>();
    let server = TcpServer::builder(|req: &mut StreamRequest| {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        // What the layer left unread is the handler's; the address is the layer's.
        Ok(write!(req.wfile, "{} said {line}", req.client_address)?)
    })
    .layer(Named)
    .handle_error(move |_server, client, error: &HandlerError| {
        let _ = errors.send((
            client.to_string(),
            error.stage(),
            error.is_panic(),
            error.to_string(),
        ));
    })
    .bind("127.0.0.1:0")
    .expect("bind");
    let address = server.server_address().to_string();
    let running = server.spawn().expect("spawn");

    assert_eq!(
        exchange(&address, b"alice\nhello\n"),
        b"@alice said hello\n"
    );
    assert_eq!(exchange(&address, b"fail\nhello\n"), b"");
    let (client, stage, panicked, message) = failed
        .recv_timeout(GENEROUS)
        .expect("handle_error for the failing layer");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert_eq!((stage, panicked), (Stage::Setup, false));
    assert!(message.contains("no such name"), "{message}");
    assert_eq!(exchange(&address, b"panic\nhello\n"), b"");
    let (_, stage, panicked, message) = failed
        .recv_timeout(GENEROUS)
        .expect("handle_error for the panicking layer");
    assert_eq!((stage, panicked), (Stage::Setup, true));
    assert!(message.contains("on purpose"), "{message}");
    // The server serves on.
    assert_eq!(exchange(&address, b"bob\nhi\n"), b"@bob said hi\n");
    drop(running.shutdown().expect("shutdown"));
    assert!(
        failed.recv_timeout(Duration::from_millis(1)).is_err(),
        "no other failure"
    );
}
