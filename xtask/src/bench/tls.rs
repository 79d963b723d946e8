//! The TLS rows of `cargo xtask bench` (`--only tls`): 64-byte ping-pong over TLS 1.3 with 1
//! and `--connections` connections (a client thread per connection, one session each), and a
//! new TLS connection per request (a full handshake, one exchange, a close), against the
//! `tls_echo` example (`--mode threading`), CPython's `ThreadingTCPServer` wrapping each
//! connection with `ssl` in `get_request` (its handshake on the accept loop, as Python's docs
//! do it), and, beside them, the plaintext `echo_server --mode threading` under the same load:
//! what TLS costs this project, and the ratio to CPython's TLS.
//!
//! The client is rustls (ring), trusting any certificate (loopback, self-signed: the
//! handshake's cost is what is measured, not a chain's check). Every echoed byte is checked.
//! Each cell runs `--repeat` times on a fresh server; the tables show medians. Plugged into
//! `bench` by one call, `tls::section(&bins.examples, dir.path(), opts)`, and by
//! [`selected`] in the "selects nothing" check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::{Options, STARTUP_LIMIT, align, median, stop};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};
use crate::integration::example_bin;

/// The section's heading, and what `--only` matches it by.
pub(crate) const LABEL: &str = "tls echo";

/// The request's size.
const MESSAGE: usize = 64;

/// Whether `--only` selects the TLS rows.
pub(crate) fn selected(opts: &Options) -> bool {
    opts.selects(LABEL)
}

/// A CPython TLS echo server: `ThreadingTCPServer`, each accepted socket wrapped by
/// `ssl.SSLContext.wrap_socket` in `get_request`, the handler a loop of `recv`/`sendall`.
const CPYTHON_TLS_ECHO: &str = r#"
import socketserver, ssl, sys
cert, key, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    def get_request(self):
        conn, addr = self.socket.accept()
        return ctx.wrap_socket(conn, server_side=True), addr
    def handle_error(self, request, client_address):
        pass
server = Server((host, port), Echo)
print(f"listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
server.serve_forever()
"#;

/// The servers of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    TlsEcho,
    CPythonTls,
    Plaintext,
}

const PEERS: [Peer; 3] = [Peer::TlsEcho, Peer::CPythonTls, Peer::Plaintext];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::TlsEcho => "sockserve tls_echo threading",
            Peer::CPythonTls => "CPython ThreadingTCPServer + ssl",
            Peer::Plaintext => "sockserve echo_server threading (plaintext)",
        }
    }

    fn cmd(self, examples: &Path, dir: &Path) -> Cmd {
        match self {
            Peer::TlsEcho => Cmd::new(example_bin(examples, "tls_echo")).args([
                "--addr",
                "127.0.0.1:0",
                "--mode",
                "threading",
            ]),
            Peer::Plaintext => Cmd::new(example_bin(examples, "echo_server")).args([
                "--addr",
                "127.0.0.1:0",
                "--mode",
                "threading",
            ]),
            Peer::CPythonTls => Cmd::new("python3")
                .arg("-c")
                .arg_shown_as(CPYTHON_TLS_ECHO, "CPYTHON_TLS_ECHO")
                .arg(dir.join("cert.pem"))
                .arg(dir.join("key.pem"))
                .args(["127.0.0.1", "0"]),
        }
    }
}

/// One workload of the section.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// Ping-pong over this many sessions, each kept for the whole window.
    Sessions(usize),
    /// A new connection per request (handshake, one exchange, close), from this many threads.
    NewConnections(usize),
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Sessions(n) => format!("{LABEL}: {MESSAGE}-byte ping-pong, {n} connection(s)"),
            Load::NewConnections(n) => {
                format!("{LABEL}: a new connection per request (handshake included), {n} clients")
            }
        }
    }
}

/// What one cell measured.
#[derive(Debug, Clone)]
struct Cell {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Accepts any certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection to `addr`: TLS (`config`) or plaintext (`None`).
enum Conn {
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

impl Conn {
    fn open(addr: &str, config: Option<&Arc<ClientConfig>>) -> Result<Conn> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(match config {
            None => Conn::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from("localhost")?;
                let conn = ClientConnection::new(Arc::clone(config), name)?;
                Conn::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        })
    }

    /// One exchange: `message` out, the same back.
    fn exchange(&mut self, message: &[u8]) -> Result<()> {
        let mut back = [0u8; MESSAGE];
        match self {
            Conn::Plain(s) => {
                s.write_all(message)?;
                s.read_exact(&mut back)?;
            }
            Conn::Tls(s) => {
                s.write_all(message)?;
                s.flush()?;
                s.read_exact(&mut back)?;
            }
        }
        if back[..] != message[..] {
            return Err("the echo differs from the request".into());
        }
        Ok(())
    }

    fn close(self) {
        if let Conn::Tls(mut s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// One client thread's part of a cell: its latencies, until `until`.
fn client(
    addr: &str,
    config: Option<Arc<ClientConfig>>,
    load: Load,
    id: usize,
    until: Instant,
) -> Result<Vec<Duration>> {
    let mut message = [0u8; MESSAGE];
    for (i, b) in message.iter_mut().enumerate() {
        *b = (id + i) as u8;
    }
    let mut latencies = Vec::new();
    match load {
        Load::Sessions(_) => {
            let mut conn = Conn::open(addr, config.as_ref())?;
            while Instant::now() < until {
                let began = Instant::now();
                conn.exchange(&message)?;
                latencies.push(began.elapsed());
            }
            conn.close();
        }
        Load::NewConnections(_) => {
            while Instant::now() < until {
                let began = Instant::now();
                let mut conn = Conn::open(addr, config.as_ref())?;
                conn.exchange(&message)?;
                conn.close();
                latencies.push(began.elapsed());
            }
        }
    }
    Ok(latencies)
}

/// One cell: `load` against the server at `addr` for `duration`.
fn cell(addr: &str, tls: bool, load: Load, duration: Duration) -> Result<Cell> {
    let config = if tls { Some(client_config()?) } else { None };
    let threads = match load {
        Load::Sessions(n) | Load::NewConnections(n) => n,
    };
    let started = Instant::now();
    let until = started + duration;
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let (addr, config) = (addr.to_owned(), config.clone());
            std::thread::spawn(move || {
                client(&addr, config, load, id, until).map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        let part = handle.join().map_err(|_| "a client thread panicked")??;
        latencies.extend(part);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or_default()
    };
    Ok(Cell {
        rate: latencies.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// The certificate and key of the CPython peer, self-signed by `openssl req`.
fn make_certificate(dir: &Path) -> Result<()> {
    Cmd::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output_within(Duration::from_secs(30))
        .and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned().into())
            }
        })
}

/// Runs the section if `--only` selects it and prints its tables; a failure of our servers is
/// an error, CPython's a note.
pub(crate) fn section(examples: &Path, dir: &Path, opts: &Options) -> Result<()> {
    if !selected(opts) {
        return Ok(());
    }
    make_certificate(dir)?;
    let loads = [
        Load::Sessions(1),
        Load::Sessions(opts.connections),
        Load::NewConnections(opts.connections),
    ];
    // runs[load][peer]
    let mut runs: Vec<Vec<Vec<std::result::Result<Cell, String>>>> = loads
        .iter()
        .map(|_| PEERS.iter().map(|_| Vec::new()).collect())
        .collect();
    for run in 1..=opts.repeat {
        eprintln!("==> bench {LABEL}: run {run} of {}", opts.repeat);
        for (p, peer) in PEERS.into_iter().enumerate() {
            for (l, load) in loads.into_iter().enumerate() {
                // A fresh server per cell: no cell inherits another's threads or sessions.
                let result = RunningServer::start(&peer.cmd(examples, dir), STARTUP_LIMIT)
                    .and_then(|server| {
                        let tls = peer != Peer::Plaintext;
                        let measured = cell(&server.addr, tls, load, opts.duration);
                        // SIGTERM: tls_echo removes its certificate's file as it stops.
                        stop(server);
                        measured
                    })
                    .map_err(|e| e.to_string());
                runs[l][p].push(result);
            }
        }
    }
    let mut failures = Vec::new();
    for (load, row) in loads.iter().zip(&runs) {
        let medians: Vec<Option<Cell>> = row.iter().map(|r| median_cell(r)).collect();
        let ours = medians[0].as_ref().map(|c| c.rate);
        let mut lines = vec![vec![
            "server".to_owned(),
            "req/s".to_owned(),
            "p50".to_owned(),
            "p99".to_owned(),
            "vs tls_echo".to_owned(),
        ]];
        for ((peer, cells), m) in PEERS.iter().zip(row).zip(&medians) {
            for e in cells.iter().filter_map(|c| c.as_ref().err()) {
                failures.push((*peer, format!("{} / {}: {e}", load.label(), peer.name())));
            }
            lines.push(match m {
                Some(c) => vec![
                    peer.name().to_owned(),
                    format!("{:.0}", c.rate),
                    format!("{:.0} us", c.p50.as_secs_f64() * 1e6),
                    format!("{:.0} us", c.p99.as_secs_f64() * 1e6),
                    ours.map_or("-".to_owned(), |o| format!("{:.2}x", c.rate / o)),
                ],
                None => vec![peer.name().to_owned(), "failed".to_owned()],
            });
        }
        println!("\n{}\n{}", load.label(), align(&lines));
    }
    let (cpython, ours): (Vec<_>, Vec<_>) = failures
        .into_iter()
        .partition(|(peer, _)| *peer == Peer::CPythonTls);
    for (_, failure) in &cpython {
        println!(
            "\nnote: CPython failed a TLS cell (a finding, not an error of the bench): {failure}"
        );
    }
    if ours.is_empty() {
        Ok(())
    } else {
        let ours: Vec<String> = ours.into_iter().map(|(_, f)| f).collect();
        Err(format!(
            "{} TLS cell(s) failed:\n  {}",
            ours.len(),
            ours.join("\n  ")
        )
        .into())
    }
}

/// The run of median throughput among those that succeeded.
fn median_cell(runs: &[std::result::Result<Cell, String>]) -> Option<Cell> {
    let rate = median(
        runs.iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|c| c.rate)
            .collect(),
    )?;
    runs.iter()
        .filter_map(|r| r.as_ref().ok())
        .min_by(|a, b| (a.rate - rate).abs().total_cmp(&(b.rate - rate).abs()))
        .cloned()
}
