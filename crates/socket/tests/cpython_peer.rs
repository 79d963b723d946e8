//! CPython as a real peer: our client against a `python3` server, and a `python3` client
//! against our server; the bytes are compared both ways.

mod util;

use std::io::{BufRead, BufReader, Read};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};

use sockserve_socket::{ConnectOptions, ServerOptions, create_connection, create_server};
use util::{BOUND, within};

/// Kills and reaps the child however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(script: &str, args: &[&str]) -> ChildGuard {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    match child {
        Ok(child) => ChildGuard(child),
        Err(e) => panic!("this test needs python3 on PATH as a peer, and it could not start: {e}"),
    }
}

fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 253) as u8).collect()
}

const PY_SERVER: &str = r#"
import socket
srv = socket.create_server(('127.0.0.1', 0))
print(srv.getsockname()[1], flush=True)
srv.settimeout(10)
conn, _ = srv.accept()
conn.settimeout(10)
data = b''
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
conn.sendall(b'python got %d bytes:' % len(data) + data[::-1])
conn.close()
"#;

#[test]
fn our_client_talks_to_a_python_server() {
    let mut child = python(PY_SERVER, &[]);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let port: u16 = within(BOUND, "python3 printing its port", move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the port line");
        line.trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad port line {line:?}: {e}"))
    });
    let data = payload();
    let sent = data.clone();
    let reply = within(BOUND, "the exchange with the python server", move || {
        let opts = ConnectOptions::new().timeout(Some(BOUND));
        let sock = create_connection(("127.0.0.1", port), &opts).expect("connect to python3");
        sock.sendall(&sent).expect("sendall");
        sock.shutdown(Shutdown::Write).expect("shutdown");
        let mut reply = Vec::new();
        (&sock).read_to_end(&mut reply).expect("read the reply");
        reply
    });
    let mut expected = format!("python got {} bytes:", data.len()).into_bytes();
    expected.extend(data.iter().rev());
    assert_eq!(reply.len(), expected.len());
    assert!(reply == expected, "the python server's reply differs");
}

const PY_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(bytes(i % 253 for i in range(300000)))
s.shutdown(socket.SHUT_WR)
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
sys.stdout.flush()
"#;

#[test]
fn a_python_client_talks_to_our_server() {
    let server = create_server("127.0.0.1:0", &ServerOptions::default()).unwrap();
    let port = server.getsockname().unwrap().as_inet().unwrap().port();
    let mut child = python(PY_CLIENT, &[&port.to_string()]);
    let stdout = child.0.stdout.take().expect("piped stdout");
    // Bounded: if python3 never connects, accept times out instead of hanging.
    server.settimeout(Some(BOUND));
    let (conn, _) = server.accept().expect("python3 connects");
    conn.settimeout(Some(BOUND));
    let mut got = Vec::new();
    (&conn)
        .read_to_end(&mut got)
        .expect("read what python3 sent");
    assert!(got == payload(), "the bytes python3 sent arrive intact");
    let mut reply = b"rust got ".to_vec();
    reply.extend(got.iter().rev());
    conn.sendall(&reply).unwrap();
    drop(conn);
    let printed = within(BOUND, "python3 printing the reply", move || {
        let mut out = Vec::new();
        BufReader::new(stdout)
            .read_to_end(&mut out)
            .expect("read python3's stdout");
        out
    });
    assert_eq!(printed.len(), reply.len());
    assert!(printed == reply, "python3 received our reply intact");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "python3 exited with {status}");
}
