//! What the TLS tests share: a small PKI made at start (rcgen: a CA, a server certificate for
//! `localhost`, a client certificate), server and client configurations, a rustls client, the
//! echo handler that tells what it knows of the session, a CPython `ssl` client, and a server
//! of any stream kind and strategy that records its `handle_error` calls.
#![allow(dead_code, unreachable_pub)]

use handler::{BoxError, Handler, HandlerError, Next, StreamOptions, StreamRequest};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use server::{Kind, Running, Server, Strategy, Tcp, UnixStream};
use socket::{Address, Socket};
use sockserve_tls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use sockserve_tls::rustls::server::WebPkiClientVerifier;
use sockserve_tls::rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned,
};
use sockserve_tls::{HandshakeError, Tls, TlsBuilderExt, TlsRequest, handshake_error, provider};
use std::{
    io::{BufRead, Read, Write},
    path::Path,
    process::Command,
    sync::Arc,
    time::Duration,
};
use testsupport::{EventLog, EventSender, GENEROUS, output_within};

/// A CA, a server certificate for `localhost` and a client certificate, both signed by it.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub ca_pem: String,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: Vec<u8>,
}

pub fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "sockserve test CA");
    let ca = params.self_signed(&ca_key).expect("CA");
    let issue = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
        (vec![cert.der().clone()], key.serialize_der())
    };
    let (server_chain, server_key) = issue("localhost");
    let (client_chain, client_key) = issue("client");
    Pki {
        ca: ca.der().clone(),
        ca_pem: ca.pem(),
        server_chain,
        server_key,
        client_chain,
        client_key,
    }
}

fn key(der: &[u8]) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()))
}

fn roots(pki: &Pki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("CA into roots");
    Arc::new(roots)
}

/// The server's configuration: ALPN `echo/1`, and client certificates required if asked.
pub fn server_config(pki: &Pki, client_auth: bool) -> ServerConfig {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if client_auth {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(pki), provider())
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(pki.server_chain.clone(), key(&pki.server_key))
        .expect("server certificate");
    config.alpn_protocols = vec![b"echo/1".to_vec()];
    config
}

/// A client that trusts the test CA, offers ALPN `echo/1`, with its certificate if asked.
pub fn client_config(pki: &Pki, with_certificate: bool) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots(pki));
    let mut config = if with_certificate {
        builder
            .with_client_auth_cert(pki.client_chain.clone(), key(&pki.client_key))
            .expect("client certificate")
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"echo/1".to_vec()];
    Arc::new(config)
}

pub type Client = StreamOwned<ClientConnection, Socket>;

/// A rustls client connected to `address` (SNI `localhost`), its handshake not yet done
/// (the first read or write does it).
pub fn connect(address: &Address, config: Arc<ClientConfig>) -> Client {
    let socket = testsupport::stream_client(address);
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(config, name).expect("client connection");
    StreamOwned::new(conn, socket)
}

/// Sends `line` and reads the answer line.
pub fn ask(client: &mut Client, line: &str) -> std::io::Result<String> {
    client.write_all(line.as_bytes())?;
    client.flush()?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") {
        if client.read(&mut byte)? == 0 {
            break;
        }
        answer.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Ends a client the polite way: close_notify, then the server's own close_notify (a clean
/// end of its stream, `Ok(0)`), which the test asserts.
pub fn close_cleanly(mut client: Client) {
    client.conn.send_close_notify();
    client.flush().expect("send close_notify");
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("the server's close_notify: a clean end");
    assert!(rest.is_empty(), "unexpected bytes after the echo: {rest:?}");
}

/// Echoes each line: the first answer of a connection tells what the handler knows of its
/// session (`sni=.. alpn=.. certs=N`), then each line comes back as it was. One line a turn
/// (`Next::WaitForInput`): a connection waits between lines, and lines sent together
/// (buffered plaintext) run their turns at once; with `one_turn`, every line in one turn,
/// to the end of the stream.
#[derive(Clone, Default)]
pub struct Echo {
    pub told: bool,
    pub one_turn: bool,
    pub options: StreamOptions,
}

impl Handler<StreamRequest> for Echo {
    fn options(&self) -> StreamOptions {
        self.options.clone()
    }

    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut line = String::new();
        if req.rfile.read_line(&mut line)? == 0 {
            return Ok(Next::Done);
        }
        if !self.told {
            self.told = true;
            let tls = req.tls().ok_or("not a TLS request")?;
            let told = format!(
                "sni={} alpn={} certs={}\n",
                tls.server_name().unwrap_or("-"),
                String::from_utf8_lossy(tls.alpn_protocol().unwrap_or(b"-")),
                tls.peer_certificates().map_or(0, <[_]>::len),
            );
            req.wfile.write_all(told.as_bytes())?;
        }
        req.wfile.write_all(line.as_bytes())?;
        if self.one_turn {
            return self.handle(req);
        }
        Ok(Next::WaitForInput)
    }
}

/// How a failed request reached `handle_error`, in a word: the handshake's kind, a stream
/// without close_notify, or the error's text.
pub fn classify(error: &HandlerError) -> String {
    match handshake_error(error) {
        Some(HandshakeError::TimedOut(_)) => "handshake:timed-out".into(),
        Some(HandshakeError::Tls(e)) => format!("handshake:tls:{e}"),
        Some(HandshakeError::Closed) => "handshake:closed".into(),
        Some(HandshakeError::Io(e)) => format!("handshake:io:{e}"),
        Some(other) => format!("handshake:{other}"),
        None if error.truncated_stream().is_some() => "truncated".into(),
        None => format!("other:{error}"),
    }
}

/// A TLS echo server of kind `K` and strategy `C` on `address`, serving in the background,
/// each `handle_error` recorded (`classify`) in `events`.
pub fn serve<K, C>(address: &str, tls: Tls, handler: Echo, events: EventSender) -> Running<K, C>
where
    K: Kind<Raw = Arc<Socket>, Request<()> = StreamRequest>,
    C: Strategy + Default,
{
    let server: Server<K, C> = Server::<K, C>::builder_handler(handler)
        .tls(tls)
        .handle_error(move |_server, _client, error| events.send(&classify(error)))
        .bind(address)
        .expect("bind");
    server.spawn_with(Duration::from_millis(10)).expect("spawn")
}

/// The events recorded so far, after waiting a moment for none to come (the log says what
/// came: used where no event is expected).
pub fn none_within(log: &EventLog, bound: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + bound;
    let mut seen = log.drain();
    while seen.is_empty() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
        seen = log.drain();
    }
    seen
}

/// A CPython `ssl` client: connects to a TCP `address`, trusting `ca_file`, sends two lines
/// and prints the answers; closes without unwrap (no close_notify), as CPython's clients
/// usually do.
pub fn python_client(address: &Address, ca_file: &Path) -> String {
    let inet = address.as_inet().expect("a TCP address");
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         ctx.set_alpn_protocols(['echo/1'])\n\
         with socket.create_connection(('127.0.0.1', {port}), timeout=10) as raw:\n\
         \x20   with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n\
         \x20       s.sendall(b'one\\n')\n\
         \x20       f = s.makefile('rb')\n\
         \x20       print(f.readline().decode().strip())\n\
         \x20       print(f.readline().decode().strip())\n\
         \x20       s.sendall(b'two\\n')\n\
         \x20       print(f.readline().decode().strip())\n\
         \x20       print(s.version())\n",
        ca = ca_file.display().to_string(),
        port = inet.port(),
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    let out = output_within(cmd, "the CPython ssl client", GENEROUS);
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A session over `address`: pipelined lines (the second's turn runs from buffered
/// plaintext), a line after a wait, the handler's view of the session, a clean close.
pub fn echo_session(address: &socket::Address, pki: &Pki) {
    let mut client = connect(address, client_config(pki, false));
    client.write_all(b"one\ntwo\n").expect("send");
    assert_eq!(
        ask(&mut client, "").expect("answer"),
        "sni=localhost alpn=echo/1 certs=0\n"
    );
    assert_eq!(ask(&mut client, "").expect("answer"), "one\n");
    assert_eq!(ask(&mut client, "").expect("answer"), "two\n");
    // Now the connection waits (in the reactor, or lingering): a later line wakes it.
    assert_eq!(ask(&mut client, "three\n").expect("answer"), "three\n");
    close_cleanly(client);
}

/// Two sessions over TCP and two over a Unix socket against servers of strategy `C`; no
/// request fails, and the socket file is gone after the stop.
pub fn every_kind<C: server::Strategy + Default>() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tls.sock");
    let log = EventLog::new();
    let tcp = serve::<Tcp, C>(
        "127.0.0.1:0",
        Tls::new(server_config(&pki, false)),
        Echo::default(),
        log.sender(),
    );
    let unix = serve::<UnixStream, C>(
        path.to_str().expect("utf-8 path"),
        Tls::new(server_config(&pki, false)),
        Echo::default(),
        log.sender(),
    );
    for address in [tcp.server_address().clone(), unix.server_address().clone()] {
        echo_session(&address, &pki);
        echo_session(&address, &pki);
    }
    drop(tcp.shutdown().expect("shutdown"));
    drop(unix.shutdown().expect("shutdown"));
    assert_eq!(log.drain(), Vec::<String>::new(), "no request failed");
    assert!(!path.exists(), "the socket file is removed");
}

/// Half of a client's first flight: a ClientHello cut short.
pub fn half_a_client_hello(pki: &Pki) -> Vec<u8> {
    let name = sockserve_tls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = sockserve_tls::rustls::ClientConnection::new(client_config(pki, false), name)
        .expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("client hello");
    hello.truncate(hello.len() / 2);
    hello
}

/// The handshake timeout of the tests with stalling clients. Every handshake has it, those
/// meant to succeed too: 1 s, not less, so that a loaded machine does not fail them.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// A TLS echo server over TCP of strategy `C` whose handshakes end at [`HANDSHAKE_TIMEOUT`].
pub fn serve_timing_out<C: Strategy + Default>(pki: &Pki, events: EventSender) -> Running<Tcp, C> {
    let tls = Tls::new(server_config(pki, false)).handshake_timeout(HANDSHAKE_TIMEOUT);
    serve::<Tcp, C>("127.0.0.1:0", tls, Echo::default(), events)
}
