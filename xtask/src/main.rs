//! `cargo xtask`: the project's automation, in Rust so that it runs wherever cargo runs.
//!
//! ```text
//! cargo xtask ci            everything CI runs, in CI's order (fmt, clippy, features, build, test, memcheck, doc, doc-links, tidy, lines, integration, soak --short, bench --quick)
//! cargo xtask tidy          the invariants of ARCHITECTURE.md, checked against `cargo metadata`, the manifests and the code
//! cargo xtask integration   the examples as real processes, against real clients (CPython's among them)
//! cargo xtask parity        examples/parity.rs from PARITY.md; every socketserver name has a row
//! cargo xtask memcheck      the tests of the crates with `unsafe` (socket, reactor, mixins, prefork) under valgrind
//! cargo xtask soak [--short] 1,000,000 + 200,000 echo requests against echo_server (threading, --park),
//!                           every byte checked, fds, threads and RSS compared (--short: CI's 50,000)
//! cargo xtask lines         the ports of the six Python programs against their originals' line counts
//! cargo xtask bench [--quick] [--duration SECS] [--connections N] [--repeat N] [--only TEXT]... [--docs]
//!                           every workload (echo over TCP, UDP and Unix, memory of idle connections,
//!                           HTTP, shutdown latency) against sockserve's servers and the peers (a bare
//!                           std server, CPython's socketserver, tokio, tiny_http), side by side, with
//!                           ratios, the issues' targets PASS or MISS, JSON and an SVG chart under
//!                           target/bench/ (release; --quick: CI's smoke test on the debug builds)
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
                integration, soak --short, bench --quick)
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
  bench         every workload against sockserve's servers and the peers a user would pick
                instead (a bare std server, CPython's socketserver, tokio, tiny_http,
                python3 -m http.server): echo over TCP (1 to 10,000 connections, a new
                connection per request; the prefork example beside them), UDP and Unix,
                the memory of 10,000 idle connections, HTTP under wrk, shutdown latency;
                tables with ratios, the issues' targets PASS or MISS,
                target/bench/latest.{json,svg,md} (release build; about 10 minutes after
                the build)
                  --quick             CI's smoke test: the debug builds, every row once for
                                      0.15 s; fails unless every row produced figures
                  --duration SECS     seconds per workload and server (default 2)
                  --connections N     connections of the several-connection workloads
                                      (default 10; others always use 100, 1000 and 10000)
                  --repeat N          runs of every cell; tables show medians (default 3,
                                      --quick 1)
                  --only TEXT         only the tables whose heading contains TEXT (any
                                      case; repeat it for several): `udp`, `new connection`,
                                      `1000 conn`, `10000 conn`, `memory`, `http`,
                                      `shutdown`, `sigterm`, ...
                  --docs              also write the run into docs/BENCH.md (between its
                                      markers) and docs/bench-ratios.svg
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
    let (mut duration_set, mut repeat_set) = (false, false);
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
                duration_set = true;
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
                repeat_set = true;
            }
            "--quick" => opts.quick = true,
            "--docs" => opts.docs = true,
            "--only" => opts.only.push(value("--only")?.clone()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown bench flag `{other}`\n\n{USAGE}").into()),
        }
    }
    if opts.quick {
        if !duration_set {
            opts.duration = bench::QUICK_DURATION;
        }
        if !repeat_set {
            opts.repeat = 1;
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<bench::Options> {
        parse_bench_flags(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn quick_shortens_what_was_not_given_and_keeps_what_was() {
        let quick = parse(&["--quick"]).unwrap();
        assert!(quick.quick && !quick.docs);
        assert_eq!((quick.duration, quick.repeat), (bench::QUICK_DURATION, 1));
        let given = parse(&["--quick", "--repeat", "2", "--duration", "1.5"]).unwrap();
        assert_eq!(
            (given.duration, given.repeat),
            (Duration::from_millis(1500), 2)
        );
        let full = parse(&["--docs", "--only", "udp"]).unwrap();
        assert!(full.docs && !full.quick && full.only == ["udp"]);
        assert_eq!(full.repeat, 3);
        assert!(parse(&["--repeat", "0"]).is_err());
        assert!(
            parse(&["--bogus"])
                .unwrap_err()
                .to_string()
                .contains("--bogus")
        );
    }
}
