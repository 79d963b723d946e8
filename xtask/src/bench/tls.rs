//! The TLS section of `cargo xtask bench` (`--only tls`): 64-byte ping-pong over TLS 1.3 with
//! 1 and `--connections` (10) sessions (a client thread per connection, one session each, kept
//! for the whole window), and a new TLS connection per request (a full handshake, one
//! exchange, a close) from `--connections` client threads, against the `tls_echo` example
//! (`--mode threading`), CPython's `ThreadingTCPServer` wrapping each connection with `ssl` in
//! `get_request` (its handshake on the accept loop, as Python's docs do it), and, beside them,
//! the plaintext `echo_server --mode threading` under the same load: what TLS costs this
//! project (`vs plaintext`), and how it does against CPython's TLS (`vs CPython+ssl`).
//!
//! The client is rustls (ring), trusting any certificate (loopback, self-signed: the
//! handshake's cost is what is measured, not a chain's check). Every echoed byte is checked.
//! Each cell runs once per `--repeat` on a freshly started server; the tables show the median
//! run, the spread of the runs and the median of the per-run ratios. `tls_echo` is built with
//! the other examples (the examples' package enables the facade's `tls`), in release outside
//! `--quick`. The section has no target of the issues: its ratios are figures, not goals.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use serde_json::json;

use super::report::{Output, Row, Table, times};
use super::{Bins, Options, STARTUP_LIMIT, median, micros, progress, spread, stop};
use crate::Result;
use crate::cmd::{Cmd, RunningServer, StderrLog};
use crate::integration::example_bin;

/// The start of every heading of the section, and what `--only tls` matches.
const LABEL: &str = "TLS echo";

/// The request's size.
const MESSAGE: usize = 64;

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
    /// The client threads.
    fn clients(self) -> usize {
        match self {
            Load::Sessions(n) | Load::NewConnections(n) => n,
        }
    }

    fn label(self) -> String {
        match self {
            Load::Sessions(n) => format!("{LABEL}: ping-pong {MESSAGE} B, {n} session(s)"),
            Load::NewConnections(n) => format!(
                "{LABEL}: a new connection per request ({MESSAGE} B, handshake included), \
                 {n} clients"
            ),
        }
    }
}

/// The workloads, in the order of their tables.
fn loads(opts: &Options) -> Vec<Load> {
    let mut loads = vec![Load::Sessions(1)];
    if opts.connections > 1 {
        loads.push(Load::Sessions(opts.connections));
    }
    loads.push(Load::NewConnections(opts.connections));
    loads
}

/// The workloads whose tables `--only` selects (all of them without `--only`).
fn selected_loads(opts: &Options) -> Vec<Load> {
    loads(opts)
        .into_iter()
        .filter(|load| opts.selects(&load.label()))
        .collect()
}

/// What one cell measured.
#[derive(Debug, Clone)]
struct Cell {
    /// Requests (exchanges, or connections with their exchange) per second.
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
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
        let addr: std::net::SocketAddr = addr.parse()?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
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

/// The request of client `id`'s `seq`-th exchange: it differs by client and by exchange, so a
/// stale or misrouted echo fails the check.
fn message(id: usize, seq: usize) -> [u8; MESSAGE] {
    let mut message = [0u8; MESSAGE];
    message[..8].copy_from_slice(&(seq as u64).to_le_bytes());
    for (i, b) in message.iter_mut().enumerate().skip(8) {
        *b = (id.wrapping_mul(31) + i) as u8;
    }
    message
}

/// One client thread's part of a cell: the setup (a session's connection, its handshake and
/// one exchange; nothing for new connections), then, once every client is set up (`ready`),
/// its latencies for `duration`.
fn client(
    addr: &str,
    config: Option<&Arc<ClientConfig>>,
    load: Load,
    id: usize,
    ready: &Barrier,
    duration: Duration,
) -> Result<Vec<Duration>> {
    let setup = match load {
        Load::Sessions(_) => Conn::open(addr, config)
            .and_then(|mut conn| conn.exchange(&message(id, 0)).map(|()| Some(conn))),
        Load::NewConnections(_) => Ok(None),
    };
    // Every client waits here, set up or not, so the window starts for all at once.
    ready.wait();
    let mut session = setup?;
    let until = Instant::now() + duration;
    let mut latencies = Vec::new();
    let mut seq = 1;
    while Instant::now() < until {
        let request = message(id, seq);
        seq += 1;
        let began = Instant::now();
        match &mut session {
            Some(conn) => conn.exchange(&request)?,
            None => {
                let mut conn = Conn::open(addr, config)?;
                conn.exchange(&request)?;
                conn.close();
            }
        }
        latencies.push(began.elapsed());
    }
    if let Some(conn) = session {
        conn.close();
    }
    Ok(latencies)
}

/// One cell: `load` against the server at `addr` for `duration` (after the setup).
fn cell(addr: &str, tls: bool, load: Load, duration: Duration) -> Result<Cell> {
    let config = if tls { Some(client_config()?) } else { None };
    let ready = Barrier::new(load.clients() + 1);
    let (parts, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..load.clients())
            .map(|id| {
                let (config, ready) = (config.as_ref(), &ready);
                scope.spawn(move || {
                    client(addr, config, load, id, ready, duration).map_err(|e| e.to_string())
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let parts: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".to_owned()))
            })
            .collect();
        (parts, started.elapsed())
    });
    let mut latencies = Vec::new();
    for part in parts {
        latencies.extend(part?);
    }
    latencies.sort();
    let at = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or_default()
    };
    if latencies.is_empty() {
        return Err(format!("no request answered in {:.1}s", duration.as_secs_f64()).into());
    }
    Ok(Cell {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
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

/// Why `--quick` leaves CPython out of the rows of several clients: its accept loop runs the
/// handshakes one by one, so several connects at once overflow its listen backlog of 5 and one
/// waits out a SYN retransmission (a second), more than the rest of the section takes.
const QUICK_CPYTHON_SKIP: &str =
    "n/a in --quick: several connects at once against its backlog of 5 wait a second";

/// Why `peer` does not run `load` in this run, if it does not.
fn skip(peer: Peer, load: Load, opts: &Options) -> Option<&'static str> {
    (opts.quick && peer == Peer::CPythonTls && load.clients() > 1).then_some(QUICK_CPYTHON_SKIP)
}

/// One run of one server under one workload: its figures, or its failure.
type Run = std::result::Result<Cell, String>;

/// The runs of the section: `cells[load][peer][run]`, the loads of [`selected_loads`].
#[derive(Debug, Default)]
pub(super) struct Section {
    cells: Vec<Vec<Vec<Run>>>,
    /// Whether the CPython peer's certificate is made (once, in the bench's directory).
    certificate: bool,
}

impl super::Section for Section {
    fn labels(&self, opts: &Options) -> Vec<String> {
        loads(opts).into_iter().map(Load::label).collect()
    }

    fn run(&mut self, bins: &Bins, dir: &Path, opts: &Options) -> Result<()> {
        if !self.certificate {
            make_certificate(dir)?;
            self.certificate = true;
        }
        let loads = selected_loads(opts);
        self.cells
            .resize_with(loads.len(), || PEERS.iter().map(|_| Vec::new()).collect());
        for (p, peer) in PEERS.into_iter().enumerate() {
            for (l, load) in loads.iter().enumerate() {
                if skip(peer, *load, opts).is_some() {
                    continue;
                }
                progress(&format!("{} against {}", load.label(), peer.name()));
                // A fresh server per cell: no cell inherits another's threads or sessions.
                let run = measure(bins, dir, peer, *load, opts.duration).map_err(|e| e.to_string());
                self.cells[l][p].push(run);
            }
        }
        Ok(())
    }

    fn report(&self, opts: &Options, out: &mut Output) {
        for (load, row) in selected_loads(opts).into_iter().zip(&self.cells) {
            let table = table(load, row, opts, out);
            out.tables.push(table);
        }
    }
}

/// Starts `peer`, runs `load` against it for `duration`, checks it is still up, stops it.
fn measure(bins: &Bins, dir: &Path, peer: Peer, load: Load, duration: Duration) -> Result<Cell> {
    let log = StderrLog::default();
    let cmd = peer.cmd(&bins.examples, dir).stderr_to(&log);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT).map_err(|e| {
        let stderr = log.text_within(Duration::from_secs(2));
        format!("{e}\n{}", stderr.trim_end())
    })?;
    let measured = cell(&server.addr, peer != Peer::Plaintext, load, duration)
        .and_then(|cell| server.check_alive().map(|()| cell));
    // SIGTERM: tls_echo removes its certificate's file as it stops.
    stop(server);
    measured
}

/// The median, over the runs, of `of`'s throughput over `base`'s in the same run.
fn ratio(of: &[Run], base: &[Run]) -> Option<f64> {
    median(
        of.iter()
            .zip(base)
            .filter_map(|pair| match pair {
                (Ok(a), Ok(b)) => Some(a.rate / b.rate.max(f64::EPSILON)),
                _ => None,
            })
            .collect(),
    )
}

/// The table of one workload: a row per server, its median run (by throughput), the spread of
/// the runs, the runs that failed and its ratios to CPython's TLS and to the plaintext server.
/// A failed run of sockserve's servers goes to `out`'s failures, CPython's to its notes.
fn table(load: Load, row: &[Vec<Run>], opts: &Options, out: &mut Output) -> Table {
    let mut table = Table::new(
        load.label(),
        &[
            "req/s",
            "spread",
            "p50",
            "p99",
            "max",
            "errors",
            "vs CPython+ssl",
            "vs plaintext",
        ],
    );
    let runs_of = |peer: Peer| {
        PEERS
            .iter()
            .position(|p| *p == peer)
            .and_then(|i| row.get(i))
            .map_or(&[][..], Vec::as_slice)
    };
    for (peer, runs) in PEERS.iter().zip(row) {
        if let Some(reason) = skip(*peer, load, opts) {
            table.rows.push(Row::skipped(peer.name(), reason));
            continue;
        }
        let cpython = *peer == Peer::CPythonTls;
        for e in runs.iter().filter_map(|r| r.as_ref().err()) {
            let failure = format!("{} / {}: {e}", load.label(), peer.name());
            if cpython {
                out.notes.push(format!(
                    "CPython failed a TLS cell (a finding about CPython): {failure}"
                ));
            } else {
                out.failures.push(failure);
            }
        }
        let mut done: Vec<&Cell> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
        done.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let Some(mid) = done.get(done.len() / 2) else {
            let e = runs
                .iter()
                .find_map(|r| r.as_ref().err().cloned())
                .unwrap_or_else(|| "no run".to_owned());
            table.rows.push(if cpython {
                Row::finding(peer.name(), e)
            } else {
                Row::failed(peer.name(), e)
            });
            continue;
        };
        let rates: Vec<f64> = done.iter().map(|c| c.rate).collect();
        let spread = spread(&rates);
        let errors = runs.len() - done.len();
        let [vs_cpython, vs_plain] = [Peer::CPythonTls, Peer::Plaintext].map(|base| {
            (*peer != base)
                .then(|| ratio(runs, runs_of(base)))
                .flatten()
        });
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        table.rows.push(Row::figures(
            peer.name(),
            vec![
                format!("{:.0}", mid.rate),
                format!("{:.0}%", spread * 100.0),
                micros(mid.p50),
                micros(mid.p99),
                micros(mid.max),
                errors.to_string(),
                times(vs_cpython),
                times(vs_plain),
            ],
            json!({
                "req_s": mid.rate,
                "spread": spread,
                "p50_us": us(mid.p50),
                "p99_us": us(mid.p99),
                "max_us": us(mid.max),
                "errors": errors,
                "runs": runs.len(),
                "vs_cpython_ssl": vs_cpython,
                "vs_plaintext": vs_plain,
            }),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64) -> Run {
        let d = Duration::from_micros(100);
        Ok(Cell {
            rate,
            p50: d,
            p99: d,
            max: d,
        })
    }

    #[test]
    fn the_tables_show_median_runs_ratios_and_failures_where_they_belong() {
        // tls_echo: a failed run beside two; CPython: only a failure; plaintext: three runs.
        let row = vec![
            vec![run(900.0), Err("boom\nmore".to_owned()), run(1000.0)],
            vec![Err("refused".to_owned())],
            vec![run(2000.0), run(2000.0), run(2000.0)],
        ];
        let mut out = Output::default();
        let table = table(Load::Sessions(10), &row, &Options::default(), &mut out);
        let super::super::report::Outcome::Figures { cells, json } = &table.rows[0].outcome else {
            panic!("{table:?}");
        };
        assert_eq!(cells[0], "1000", "the upper of two runs: {cells:?}");
        assert_eq!(json["errors"], json!(1));
        // Runs 1 and 3 pair with plaintext's: 0.45 and 0.5, the median the upper one.
        assert_eq!(json["vs_plaintext"], json!(0.5));
        assert_eq!(json["vs_cpython_ssl"], json!(null));
        let text = table.text();
        assert!(text.contains("FAILED (the peer's): refused"), "{text}");
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert!(out.failures[0].contains("tls_echo") && out.failures[0].contains("boom"));
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
        assert!(out.notes[0].contains("CPython"), "{:?}", out.notes);
        // Plaintext has no ratio to itself.
        let super::super::report::Outcome::Figures { json, .. } = &table.rows[2].outcome else {
            panic!("{table:?}");
        };
        assert_eq!(json["vs_plaintext"], json!(null));
        assert_eq!(json["spread"], json!(0.0));
        // --quick leaves CPython out of the rows of several clients, and says so.
        let quick = Options {
            quick: true,
            ..Options::default()
        };
        let mut out = Output::default();
        let ten = super::table(Load::Sessions(10), &row, &quick, &mut out);
        assert!(ten.text().contains(QUICK_CPYTHON_SKIP), "{}", ten.text());
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        let one = super::table(Load::Sessions(1), &row, &quick, &mut out);
        assert!(one.text().contains("refused"), "{}", one.text());
    }

    /// The client against the CPython TLS peer (and, without TLS, the plaintext path against
    /// CPython's plain echo server): the certificate, the start, both workloads with every
    /// byte checked, the stop, without the examples.
    #[test]
    fn the_tls_client_runs_both_workloads_against_cpython() {
        let dir = crate::integration::temp_dir("bench-tls-test").unwrap();
        make_certificate(dir.path()).unwrap();
        let bins = Bins {
            examples: std::path::PathBuf::from("/nonexistent"),
            xtask: std::path::PathBuf::from("/nonexistent"),
            peers: std::path::PathBuf::from("/nonexistent"),
        };
        for load in [Load::Sessions(2), Load::NewConnections(2)] {
            let cell = measure(
                &bins,
                dir.path(),
                Peer::CPythonTls,
                load,
                Duration::from_millis(200),
            )
            .unwrap();
            assert!(
                cell.rate > 0.0 && cell.max >= cell.p50,
                "{load:?}: {cell:?}"
            );
        }
        let plain =
            super::super::cpython_echo_server(crate::integration::Family::Tcp, "127.0.0.1:0");
        let server = RunningServer::start(&plain, STARTUP_LIMIT).unwrap();
        let measured = cell(
            &server.addr,
            false,
            Load::Sessions(1),
            Duration::from_millis(200),
        );
        stop(server);
        assert!(measured.unwrap().rate > 0.0);
        // A TLS client against the plaintext server fails, with an error, not a hang.
        let server = RunningServer::start(&plain, STARTUP_LIMIT).unwrap();
        let mismatched = cell(
            &server.addr,
            true,
            Load::Sessions(1),
            Duration::from_millis(200),
        );
        stop(server);
        assert!(mismatched.is_err(), "{mismatched:?}");
    }

    #[test]
    fn only_tls_selects_this_section_alone() {
        let opts = Options {
            only: vec!["tls".to_owned()],
            ..Options::default()
        };
        let picked: Vec<Vec<String>> = super::super::sections(&opts)
            .iter()
            .filter(|s| s.selected(&opts))
            .map(|s| s.labels(&opts))
            .collect();
        assert_eq!(picked.len(), 1, "{picked:#?}");
        assert!(
            picked[0].iter().all(|l| l.starts_with(LABEL)),
            "{picked:#?}"
        );
    }

    #[test]
    fn the_labels_name_tls_and_follow_connections() {
        let labels = |connections| {
            let opts = Options {
                connections,
                ..Options::default()
            };
            super::super::Section::labels(&Section::default(), &opts)
        };
        let ten = labels(10);
        assert_eq!(ten.len(), 3, "{ten:#?}");
        assert!(ten.iter().all(|l| l.to_lowercase().contains("tls")));
        assert!(ten[1].contains("10 session(s)") && ten[2].contains("handshake"));
        assert_eq!(labels(1).len(), 2, "one session is one row");
        let only = |only: &str| Options {
            only: vec![only.to_owned()],
            ..Options::default()
        };
        assert_eq!(selected_loads(&only("tls")).len(), 3);
        assert_eq!(selected_loads(&only("TLS ECHO: PING-PONG")).len(), 2);
        assert_eq!(selected_loads(&only("handshake")).len(), 1);
        assert!(selected_loads(&only("udp")).is_empty());
    }
}
