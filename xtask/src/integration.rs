//! `cargo xtask integration`: the examples as real processes, talking to real clients over
//! loopback — the project's own example clients and CPython's `socket` module.
//!
//! Each [`Scenario`] starts one example server on port 0, reads the address it announces
//! (`listening on ADDR`, within [`STARTUP_LIMIT`]), runs its clients one after another against
//! that one server (so the server must keep serving between clients), checks it is still alive,
//! and stops it. The server is held by a guard whose `Drop` kills and waits it, so no process is
//! left behind on any path out.
//!
//! Adding a scenario is adding a row to [`SCENARIOS`]. The `echo_server` example is run as a
//! matrix of its own, every family in every mode, each stopped by a signal, and the cases where
//! a client never reads its replies or a second signal forces the stop: see [`echo`]; with
//! thousands of keep-alive connections waiting between messages (`--park`): see [`park`]; with
//! 800 slow and hostile clients at once: see [`hostile`].
//! Last, 10,000 long-lived connections at once on a threading `echo_server` with every
//! default (a thread each), from a CPython client in another process, every one answered, with
//! the server's memory and threads: see [`many`]. `http_server` against curl, CPython's HTTP
//! clients and wrk, in both its modes: see [`http`]. `proxy_whoami` twice behind a real
//! HAProxy (`send-proxy-v2`, health checks), one backend stopped mid-run with zero client
//! errors: see [`haproxy`]. The examples' binaries are built once, up
//! front, by `cargo build -p sockserve-examples --examples`. The examples of issue 12
//! (`unix_stream`, `unix_datagram`, `kv_store`, `periodic`, `graceful_stop`) have their cases in
//! [`examples`]: each header's commands as written, concurrent clients, clients vanishing
//! mid-request, open descriptors back to their baseline, a graceful SIGTERM. `prefork_server`
//! (issue 16) under load through `kill -9` of a worker, `SIGHUP` and the `SIGUSR2` upgrade,
//! with the requests, errors and refused connections of each: see [`prefork`].
//!
//! One line per case, `ok` or `FAIL` with its time, goes to stdout; a failure is counted and
//! the run goes on. The last line is `N passed, N failed`, and any failure makes the run an
//! error (no case is ever skipped: a case that cannot run, say for want of `python3`, fails).

mod echo;
mod examples;
mod haproxy;
mod hostile;
mod http;
mod many;
mod park;
mod ports;
mod prefork;

pub(crate) use echo::{Family, temp_dir};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Result;
use crate::cmd::{Cmd, RunningServer};
use crate::metadata::Workspace;

/// How long a server may take to announce its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How long one client may take, connect to exit.
const CLIENT_LIMIT: Duration = Duration::from_secs(20);
/// The column of the scenario names in the report (the longest echo case fits).
const NAME_WIDTH: usize = 56;

/// One server and the clients run against it.
#[derive(Debug)]
struct Scenario {
    /// Printed before it runs and in a failure.
    name: &'static str,
    /// The example server to start.
    server: Server,
    /// How the server's reply relates to what a client sent.
    reply: Reply,
    /// Run in order against the same server.
    clients: &'static [Client],
}

/// An example server and its arguments (port 0: the server reports the real one).
#[derive(Debug)]
struct Server {
    /// The `[[example]]` name.
    example: &'static str,
    /// Its command line.
    args: &'static [&'static str],
}

/// What a server sends back for what it received (shared with the bench's load generator,
/// which checks every byte against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The same bytes (`echo_server`; the tests use it against CPython's server).
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the bench's echo servers are to come")
    )]
    Echo,
    /// The same bytes, ASCII letters uppercased (`basic_server`; Python's `bytes.upper()`).
    Upper,
}

impl Reply {
    /// The reply to the text `message`.
    pub(crate) fn expected(self, message: &str) -> String {
        match self {
            Reply::Echo => message.to_owned(),
            Reply::Upper => message.to_ascii_uppercase(),
        }
    }

    /// Turns `bytes` into the reply to them, in place.
    pub(crate) fn apply(self, bytes: &mut [u8]) {
        match self {
            Reply::Echo => {}
            Reply::Upper => bytes.make_ascii_uppercase(),
        }
    }
}

/// A client run against a scenario's server.
#[derive(Debug)]
enum Client {
    /// An example client run as `EXAMPLE --addr ADDR MESSAGE`; its stdout must contain the
    /// reply (`basic_client` prints `received: REPLY`).
    Example {
        /// The `[[example]]` name.
        example: &'static str,
        /// The message it sends.
        message: &'static str,
    },
    /// CPython: `socket.create_connection`, `sendall(message)`, then read until the whole
    /// reply has come back and compare it byte for byte.
    PythonStream {
        /// The message it sends.
        message: &'static str,
    },
}

/// The scenarios, run in order.
const SCENARIOS: &[Scenario] = &[Scenario {
    name: "basic_server over TCP/IPv4, Rust and CPython clients",
    server: Server {
        example: "basic_server",
        args: &["--addr", "127.0.0.1:0"],
    },
    // basic_server answers each chunk uppercased, one client after another.
    reply: Reply::Upper,
    clients: &[
        Client::Example {
            example: "basic_client",
            message: "hello from basic_client",
        },
        Client::PythonStream {
            message: "hello from CPython's socket module",
        },
        // A second client on the same server: it kept serving after the first went away.
        Client::Example {
            example: "basic_client",
            message: "and again",
        },
    ],
}];

/// CPython's side of [`Client::PythonStream`]: `ADDR MESSAGE EXPECTED` on the command line;
/// exits non-zero, saying why, unless the reply is exactly `EXPECTED`.
const PYTHON_STREAM_CLIENT: &str = r#"
import socket, sys
addr, message, expected = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
host, _, port = addr.rpartition(":")
with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
    sock.sendall(message)
    reply = b""
    while len(reply) < len(expected):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
if reply != expected:
    sys.exit(f"python client: sent {message!r}, expected {expected!r}, got {reply!r}")
print(f"python client: got {reply.decode()!r}")
"#;

/// `cargo xtask integration-hostile` (hidden): the hostile-clients cases alone.
pub(crate) fn run_hostile() -> Result<()> {
    Cmd::cargo(&[
        "build",
        "-p",
        "sockserve-examples",
        "--example",
        "echo_server",
    ])
    .run()?;
    hostile::run(&examples_dir(&Workspace::load()?, "debug")).map(|_| ())
}

/// `cargo xtask integration-haproxy` (hidden): the PROXY protocol case behind HAProxy alone.
pub(crate) fn run_haproxy() -> Result<()> {
    Cmd::cargo(&[
        "build",
        "-p",
        "sockserve-examples",
        "--example",
        "proxy_whoami",
    ])
    .run()?;
    haproxy::run(&examples_dir(&Workspace::load()?, "debug")).map(|_| ())
}

/// `cargo xtask integration-prefork` (hidden): the prefork cases alone.
pub(crate) fn run_prefork() -> Result<()> {
    Cmd::cargo(&[
        "build",
        "-p",
        "sockserve-examples",
        "--example",
        "prefork_server",
    ])
    .run()?;
    prefork::run(&examples_dir(&Workspace::load()?, "debug")).map(|_| ())
}

/// The count of cases that passed and failed; each case's line goes to stdout as it ends.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Records the case `name`, begun at `began`: `ok` with its detail, or `FAIL` with why.
    pub(crate) fn record(&mut self, name: &str, began: Instant, result: Result<String>) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                let detail = if detail.is_empty() {
                    detail
                } else {
                    format!("  ({detail})")
                };
                println!("ok    {name:<NAME_WIDTH$} {:>5.1}s{detail}", secs(began));
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL  {name:<NAME_WIDTH$} {:>5.1}s  {e}", secs(began));
            }
        }
    }

    /// `n` cases of a module that counts its own passes and stops at its first failure.
    fn record_module(&mut self, name: &str, result: Result<usize>) {
        match result {
            Ok(n) => self.passed += n,
            Err(e) => {
                self.failed += 1;
                println!("FAIL  {name:<NAME_WIDTH$} {e}");
            }
        }
    }
}

/// Runs `cases` one after another, each announced on stderr and given its `ok` line (with the
/// figures `run` returns) on stdout; the first failure ends them, as the error. Returns how
/// many passed.
pub(crate) fn run_each<C>(
    cases: &[C],
    name: impl Fn(&C) -> &str,
    run: impl Fn(&C) -> Result<String>,
) -> Result<usize> {
    for case in cases {
        let name = name(case);
        eprintln!("--> integration: {name}");
        let began = Instant::now();
        let figures = run(case).map_err(|e| format!("scenario `{name}` failed: {e}"))?;
        println!(
            "ok    {name:<NAME_WIDTH$} {:>5.1}s  ({figures})",
            secs(began)
        );
    }
    Ok(cases.len())
}

/// Builds the examples, then runs every case, each failure counted, not ending the run. The
/// last line is `N passed, N failed`; any failure (a skipped case counts as one) is an error.
pub(crate) fn run() -> Result<()> {
    Cmd::cargo(&["build", "-p", "sockserve-examples", "--examples"]).run()?;
    let examples = examples_dir(&Workspace::load()?, "debug");
    let mut tally = Tally::default();
    for scenario in SCENARIOS {
        eprintln!("--> integration: {}", scenario.name);
        let began = Instant::now();
        let result = run_scenario(&examples, scenario).map(|()| String::new());
        tally.record(scenario.name, began, result);
    }
    tally.record_module("ports", ports::run(&examples));
    tally.record_module("park", park::run(&examples));
    tally.record_module("hostile", hostile::run(&examples));
    tally.record_module("http", http::run(&examples));
    tally.record_module("haproxy", haproxy::run(&examples));
    tally.record_module("prefork", prefork::run(&examples));
    examples::run(&examples, &mut tally);
    match temp_dir("integration") {
        Ok(dir) => {
            for case in echo::cases() {
                eprintln!("--> integration: {case}");
                let began = Instant::now();
                let result = echo::run_case(&examples, dir.path(), &case).map(
                    |echo::Outcome { shutdown, exit }| {
                        format!(
                            "{} -> exit {exit} in {:.2}s",
                            case.signals_shown(),
                            shutdown.as_secs_f64()
                        )
                    },
                );
                tally.record(&case.to_string(), began, result);
            }
        }
        Err(e) => tally.record("echo_server: a temp dir", Instant::now(), Err(e)),
    }
    let name = format!(
        "{} long-lived connections, threading defaults",
        many::CONNECTIONS
    );
    eprintln!("--> integration: {name}");
    let began = Instant::now();
    let result = many::run(&examples).map(|figures| {
        format!(
            "all connected in {:.2}s, all answered {:.2}s later; server: {} MiB resident, {} threads",
            figures.connect_secs,
            figures.answer_secs,
            figures.rss_kib / 1024,
            figures.threads
        )
    });
    tally.record(&name, began, result);
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        return Err(format!(
            "integration: {} case(s) failed (see FAIL above)",
            tally.failed
        )
        .into());
    }
    Ok(())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Where cargo puts the example binaries of `profile` (`debug`, `release`).
pub(crate) fn examples_dir(workspace: &Workspace, profile: &str) -> PathBuf {
    workspace.target_directory.join(profile).join("examples")
}

/// The path of one example binary in `dir`.
pub(crate) fn example_bin(dir: &std::path::Path, example: &str) -> PathBuf {
    dir.join(format!("{example}{}", std::env::consts::EXE_SUFFIX))
}

fn run_scenario(examples: &std::path::Path, scenario: &Scenario) -> Result<()> {
    let server_cmd =
        Cmd::new(example_bin(examples, scenario.server.example)).args(scenario.server.args);
    let mut server = RunningServer::start(&server_cmd, STARTUP_LIMIT)?;
    for client in scenario.clients {
        run_client(examples, &server.addr, scenario.reply, client)?;
        server.check_alive()?;
    }
    Ok(())
    // `server` drops here: killed and waited.
}

fn run_client(examples: &std::path::Path, addr: &str, reply: Reply, client: &Client) -> Result<()> {
    let (cmd, expected) = match *client {
        Client::Example { example, message } => (
            Cmd::new(example_bin(examples, example)).args(["--addr", addr, message]),
            reply.expected(message),
        ),
        Client::PythonStream { message } => {
            let expected = reply.expected(message);
            (
                Cmd::new("python3")
                    .arg("-c")
                    .arg_shown_as(PYTHON_STREAM_CLIENT, "PYTHON_STREAM_CLIENT")
                    .args([addr, message, &expected]),
                expected,
            )
        }
    };
    let output = cmd.output_within(CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}):\n{}{}",
            cmd.display(),
            output.status,
            stdout,
            stderr.trim_end()
        )
        .into());
    }
    if !stdout.contains(&expected) {
        return Err(format!(
            "`{}`: expected the reply {expected:?} in its output, got:\n{}",
            cmd.display(),
            stdout.trim_end()
        )
        .into());
    }
    eprintln!("    ok: {}", stdout.trim_end());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_what_the_servers_send() {
        assert_eq!(Reply::Echo.expected("Hi there"), "Hi there");
        assert_eq!(Reply::Upper.expected("Hi there"), "HI THERE");
        let mut bytes = *b"Hi \xe9z";
        Reply::Upper.apply(&mut bytes);
        assert_eq!(&bytes, b"HI \xe9Z");
    }

    #[test]
    fn example_binaries_live_under_the_target_directory() {
        let workspace = Workspace {
            packages: Vec::new(),
            target_directory: "/t".into(),
        };
        let bin = example_bin(&examples_dir(&workspace, "release"), "basic_server");
        assert!(bin.starts_with("/t/release/examples/basic_server"));
    }

    /// The CPython client against the CPython echo server of the bench: the client half of a
    /// scenario, proven without the examples.
    #[test]
    fn python_client_checks_the_echo() {
        let cmd = crate::bench::cpython_echo_server(Family::Tcp, "127.0.0.1:0");
        let mut server = RunningServer::start(&cmd, STARTUP_LIMIT).unwrap();
        let dir = std::path::Path::new("/nonexistent");
        let client = Client::PythonStream { message: "ping" };
        run_client(dir, &server.addr, Reply::Echo, &client).unwrap();
        // The server echoes, it does not uppercase: expecting "PING" must fail, and say so.
        let err = run_client(dir, &server.addr, Reply::Upper, &client).unwrap_err();
        assert!(
            err.to_string().contains("expected b'PING', got b'ping'"),
            "{err}"
        );
        server.check_alive().unwrap();
    }

    #[test]
    fn every_scenario_has_a_client_and_a_port_zero_address() {
        for scenario in SCENARIOS {
            assert!(!scenario.clients.is_empty(), "{}", scenario.name);
            let args = scenario.server.args;
            let addr = args
                .iter()
                .position(|a| *a == "--addr")
                .map(|i| args[i + 1]);
            assert!(addr.is_some_and(|a| a.ends_with(":0")), "{}", scenario.name);
        }
    }
}
