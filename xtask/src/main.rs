//! `cargo xtask`: the project's automation, in Rust so that it runs wherever cargo runs.
//!
//! ```text
//! cargo xtask ci            everything CI runs, in CI's order (fmt, clippy, features, build, test, memcheck, doc, doc-links, tidy, lines, integration, soak --short)
//! cargo xtask tidy          the invariants of ARCHITECTURE.md, checked against `cargo metadata`, the manifests and the code
//! cargo xtask integration   the examples as real processes, against real clients (CPython's among them)
//! cargo xtask parity        examples/parity.rs from PARITY.md; every socketserver name has a row
//! cargo xtask memcheck      the tests of the crates with `unsafe` (socket, reactor, mixins, prefork) under valgrind
//! cargo xtask soak [--short] 1,000,000 + 200,000 echo requests against echo_server (threading, --park),
//!                           every byte checked, fds, threads and RSS compared (--short: CI's 50,000)
//! cargo xtask lines         the ports of the six Python programs against their originals' line counts
//! cargo xtask bench [--duration SECS] [--connections N] [--repeat N] [--only TEXT]...
//!                           echo_server (sync, threading, threading --park, forking), a bare std
//!                           server, CPython's socketserver and tokio under one load generator, side
//!                           by side, with the targets of the waiting-connections issue (release)
//! ```
//!
//! The shape is rust-analyzer's: this file parses the command line and dispatches to one module
//! per subcommand; `cmd` holds the one way every external command is run (echoed first, failing
//! loudly). Every command runs from the workspace root, whatever the caller's directory.

// xtask is a command-line tool: printing progress and results is its whole interface, so the
// workspace's `print_stdout`/`print_stderr` lints (meant for the library crates) do not apply.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

mod bench;
mod ci;
mod cmd;
mod doclinks;
mod integration;
mod lines;
mod memcheck;
mod metadata;
mod parity;
mod soak;
mod tidy;

use std::process::ExitCode;
use std::time::Duration;

/// The error type of every xtask step: a message for a human, with the cause chained in.
type Error = Box<dyn std::error::Error + Send + Sync>;
/// `Result` with [`Error`].
type Result<T, E = Error> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci            run exactly what CI runs (fmt, clippy, build, test, memcheck, doc, doc-links, tidy, lines,
                integration, soak --short)
  tidy          check the invariants of ARCHITECTURE.md
  doc-links     build the facade's docs as `cargo doc --no-deps -p sockserve` does and fail on a
                dead link
  integration   run the examples as real processes against real clients (Rust and CPython)
  parity        write examples/parity.rs from PARITY.md and check the table against CPython's
                socketserver (tidy checks the same)
  memcheck      run the test binaries of socket, reactor and mixins under valgrind's memcheck
                (no error allowed; a few timing tests left out)
  soak          1,000,000 echo requests over 64 connections (threading) and 200,000 over 1,000
                (--park), every byte checked; the server's fds, threads and RSS must come back
                (release build; `--short`: 50,000 requests on the debug build, as ci runs)
  lines         count the lines of the six Python programs' ports against their originals
                (at most 1.2 times, or 3 more)
  bench         load-test echo_server (sync, threading, threading --park, forking), a bare
                std server, CPython's socketserver and tokio, side by side (release build;
                not part of ci); ends with the targets, PASS or MISS
                  --duration SECS     seconds per workload and server (default 3)
                  --connections N     connections of the several-connection workloads
                                      (default 10; others always use 100, 1000 and 10000)
                  --repeat N          runs of every cell; tables show medians (default 3)
                  --only TEXT         only the tables whose heading contains TEXT (any
                                      case; repeat it for several): `udp`, `new connection`,
                                      `1000 conn`, `10000 conn`, `memory`, `shutdown`, ...
  help          print this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let result = match command.as_str() {
        "ci" => no_flags(command, rest).and_then(|()| ci::run()),
        "tidy" => no_flags(command, rest).and_then(|()| tidy::run()),
        "doc-links" => no_flags(command, rest).and_then(|()| doclinks::run()),
        "integration" => no_flags(command, rest).and_then(|()| integration::run()),
        "lines" => no_flags(command, rest).and_then(|()| lines::run()),
        "parity" => no_flags(command, rest).and_then(|()| parity::run()),
        "memcheck" => no_flags(command, rest).and_then(|()| memcheck::run()),
        "soak" => match rest {
            [] => soak::run(false),
            [flag] if flag == "--short" => soak::run(true),
            _ => Err(format!("`soak` takes only `--short`\n\n{USAGE}").into()),
        },
        "bench" => parse_bench_flags(rest).and_then(|opts| bench::run(&opts)),
        // Hidden: one case of integration alone, while working on it.
        "integration-hostile" => no_flags(command, rest).and_then(|()| integration::run_hostile()),
        "integration-haproxy" => no_flags(command, rest).and_then(|()| integration::run_haproxy()),
        "integration-prefork" => no_flags(command, rest).and_then(|()| integration::run_prefork()),
        // Hidden: the bench's `std` floor, run by the bench as a subprocess.
        "std-echo-server" => bench::std_server::run(rest),
        // Hidden: the bench's event-driven clients against a running server, for profiling.
        "bench-crowd" => bench::crowd(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {command}: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn no_flags(command: &str, rest: &[String]) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(flag) => Err(format!("`{command}` takes no arguments, got `{flag}`").into()),
    }
}

fn parse_bench_flags(rest: &[String]) -> Result<bench::Options> {
    let mut opts = bench::Options::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| Error::from(format!("`{name}` needs a value")))
        };
        match flag.as_str() {
            "--duration" => {
                let secs: f64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                if !(secs > 0.0 && secs <= 600.0) {
                    return Err("--duration must be in (0, 600] seconds".into());
                }
                opts.duration = Duration::from_secs_f64(secs);
            }
            "--connections" => {
                let n: usize = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?;
                if !(1..=1000).contains(&n) {
                    return Err("--connections must be in 1..=1000".into());
                }
                opts.connections = n;
            }
            "--repeat" => {
                let n: usize = value("--repeat")?
                    .parse()
                    .map_err(|e| format!("--repeat: {e}"))?;
                if !(1..=20).contains(&n) {
                    return Err("--repeat must be in 1..=20".into());
                }
                opts.repeat = n;
            }
            "--only" => opts.only.push(value("--only")?.clone()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown bench flag `{other}`\n\n{USAGE}").into()),
        }
    }
    Ok(opts)
}
