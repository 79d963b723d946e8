//! The limit lines: a threading server at `max_connections` and at `max_threads`, a forking one
//! at `max_children`, each warns once with the limit, its value and how to raise it, and says
//! once more when it clears; a count flapping at a limit writes a few lines, not one per
//! connection; without a logger the lines reach stderr, with one they go to it instead; an
//! accept out of descriptors names the open-file limit. And the defaults the process's limits
//! decide: `max_connections` from `RLIMIT_NOFILE`, `max_threads` from `RLIMIT_NPROC`.
//!
//! The logger and the process's limits are process-wide, so each case needs a process of its
//! own: this binary (`harness = false` in Cargo.toml) re-executes itself. With
//! `SOCKSERVE_LIMITS_ROLE` set it is a child server (started under `prlimit` where a case
//! lowers a limit), otherwise the parent that runs the checks one after the other. Every child
//! is a `testsupport::Kid`, killed and reaped when dropped, and exits by itself when its stdin
//! closes.

// A harness-less test reports on stdout and stderr itself, and so do its child servers.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use handler::{BoxError, StreamRequest};
use server::{Builder, Strategy, Tcp, TcpServer};
use sockserve_mixins::{DEFAULT_MAX_THREADS, Forking, Threading};
use std::{
    env,
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{self, Command},
    thread,
    time::{Duration, Instant},
};
use testsupport::{Check, GENEROUS, Kid, run_checks};

/// Selects the child's role; absent in the parent.
const ROLE: &str = "SOCKSERVE_LIMITS_ROLE";

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    let checks: &[(&str, Check)] = &[
        (
            "max_connections_warns_and_clears",
            max_connections_warns_and_clears,
        ),
        ("max_threads_warns_and_clears", max_threads_warns_and_clears),
        (
            "max_children_warns_and_clears",
            max_children_warns_and_clears,
        ),
        (
            "a_flapping_count_writes_few_lines",
            a_flapping_count_writes_few_lines,
        ),
        (
            "an_installed_logger_gets_the_lines",
            an_installed_logger_gets_the_lines,
        ),
        (
            "out_of_descriptors_names_the_limit",
            out_of_descriptors_names_the_limit,
        ),
        (
            "defaults_follow_the_process_limits",
            defaults_follow_the_process_limits,
        ),
        (
            "defaults_where_the_limits_allow",
            defaults_where_the_limits_allow,
        ),
    ];
    run_checks("limits", checks);
}

// ---------------------------------------------------------------------------------------------
// The children.

/// A logger that prints each record on stdout as `log: LEVEL: message`, for the parent to read.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        println!("log: {}: {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

static LOGGER: StdoutLogger = StdoutLogger;

/// A request that says `started`, then echoes one line: held in flight until its client sends.
fn held(req: &mut StreamRequest) -> Result<(), BoxError> {
    req.wfile.write_all(b"started\n")?;
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    Ok(req.wfile.write_all(line.as_bytes())?)
}

/// The one-line echo.
fn echo(req: &mut StreamRequest) -> Result<(), BoxError> {
    let mut line = String::new();
    req.rfile.read_line(&mut line)?;
    Ok(req.wfile.write_all(line.as_bytes())?)
}

/// Runs a child role and exits: 0 when the parent closes stdin, 2 when the server fails.
fn child(role: &str) -> ! {
    thread::spawn(|| {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        process::exit(0);
    });
    let held = TcpServer::builder(held);
    let result = match role {
        "connections" => serve(held.strategy(Threading::new()).max_connections(2)),
        "threads" => serve(held.strategy(Threading::new().max_threads(1))),
        "children" => serve(held.strategy(Forking::new().max_children(1))),
        "flapping" => serve(
            TcpServer::builder(echo)
                .strategy(Threading::new())
                .max_connections(1),
        ),
        "logger" => {
            log::set_logger(&LOGGER).expect("the first logger");
            log::set_max_level(log::LevelFilter::Trace);
            serve(held.strategy(Threading::new()).max_connections(1))
        }
        // Under `prlimit --nofile=64`: more connections than descriptors.
        "descriptors" => serve(held.strategy(Threading::new()).max_connections(1000)),
        "defaults" => defaults(),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(()) => process::exit(0),
        Err(message) => {
            eprintln!("{role}: {message}");
            process::exit(2);
        }
    }
}

/// Binds on port 0 with a 10 ms tick, prints `listening on ADDR` and serves.
fn serve<C: Strategy>(builder: Builder<Tcp, C>) -> Result<(), String> {
    let mut server = builder
        .poll_interval(Duration::from_millis(10))
        .bind("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    println!("listening on {}", server.server_address());
    server.serve_forever().map_err(|e| e.to_string())
}

/// Prints the limits a threading server with every default fixes when it starts.
fn defaults() -> Result<(), String> {
    let mut server = TcpServer::builder(echo)
        .strategy(Threading::new())
        .timeout(Some(Duration::ZERO))
        .bind("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    server.handle_request().map_err(|e| e.to_string())?; // starts the pool; nobody comes
    println!("max_connections {}", server.max_connections());
    println!("thread_limit {}", server.strategy().thread_limit());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// This binary as a child in `role`, through `prlimit` with `limits` when there are any.
fn kid(role: &str, limits: &[&str]) -> Result<Kid, String> {
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = if limits.is_empty() {
        Command::new(exe)
    } else {
        let mut cmd = Command::new("prlimit");
        cmd.args(limits).arg("--").arg(exe);
        cmd
    };
    // A logger of the parent's environment must not change the child's behaviour.
    cmd.env(ROLE, role).env_remove("RUST_LOG");
    Kid::spawn(&format!("{role} server"), cmd)
}

/// The address of the child's `listening on ADDR` line.
fn listening_on(kid: &mut Kid) -> Result<SocketAddr, String> {
    let line = kid.stdout_line(|l| l.starts_with("listening on "), "listening on ADDR")?;
    line.strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the child printed {line:?}"))
}

/// A client of a `held` request, once its handler runs (it read `started`).
fn started(address: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let mut client = waiting(address)?;
    expect_line(&mut client, "started\n")?;
    Ok(client)
}

/// A connected client, not yet served.
fn waiting(address: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let s = TcpStream::connect_timeout(&address, GENEROUS)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    s.set_read_timeout(Some(GENEROUS))
        .map_err(|e| format!("timeout: {e}"))?;
    Ok(BufReader::new(s))
}

fn expect_line(client: &mut BufReader<TcpStream>, expected: &str) -> Result<(), String> {
    let mut line = String::new();
    client
        .read_line(&mut line)
        .map_err(|e| format!("reading {expected:?} (timed out?): {e}"))?;
    if line == expected {
        Ok(())
    } else {
        Err(format!("read {line:?}, not {expected:?}"))
    }
}

/// Lets a `held` request go: sends its line and reads the echo.
fn release(client: &mut BufReader<TcpStream>) -> Result<(), String> {
    client
        .get_mut()
        .write_all(b"done\n")
        .map_err(|e| format!("send: {e}"))?;
    expect_line(client, "done\n")
}

/// The line, and that it is the `level` line of stderr without a logger.
fn expect_stderr(kid: &mut Kid, level: &str, text: &str) -> Result<String, String> {
    let line = kid.stderr_line(text)?;
    if !line.starts_with(&format!("sockserve: {level}: limit ")) {
        return Err(format!("the line is {line:?}, not at {level}"));
    }
    Ok(line)
}

/// The reached-and-cleared pair of a limit whose held requests are `clients`: the warning names
/// the limit, its value, what happens and how to raise it; the info line comes once it clears.
fn reached_then_cleared(
    kid: &mut Kid,
    reached: &str,
    raise: &str,
    mut clients: Vec<BufReader<TcpStream>>,
    mut then: impl FnMut() -> Result<Vec<BufReader<TcpStream>>, String>,
) -> Result<(), String> {
    let line = expect_stderr(kid, "WARN", reached)?;
    if !line.contains(raise) {
        return Err(format!(
            "the warning does not say how to raise it ({raise}): {line:?}"
        ));
    }
    for client in &mut clients {
        release(client)?;
    }
    for mut client in then()? {
        release(&mut client)?;
    }
    let name = reached.split(" reached").next().unwrap_or(reached);
    expect_stderr(kid, "INFO", &format!("{name} cleared"))?;
    let stderr = kid.finish()?;
    // A count that went under the limit and back while the test ran may warn again, but
    // never twice in a row: each warning is followed by its clear.
    let lines: Vec<&String> = stderr.iter().filter(|l| l.contains(name)).collect();
    let (warning, clear) = (format!("{name} reached "), format!("{name} cleared "));
    let twice = lines
        .windows(2)
        .any(|w| w.iter().all(|l| l.contains(&warning)));
    if twice || !lines.last().is_some_and(|l| l.contains(&clear)) {
        return Err(format!(
            "the lines do not alternate, ending cleared: {lines:?}"
        ));
    }
    Ok(())
}

/// `held` requests run in the child of `role` (each read `started`), one more client waits
/// behind them (in the backlog, or queued), and the limit is `reached`; released, they let the
/// waiting one in, and the limit clears.
fn held_then_one_waits(role: &str, held: usize, reached: &str, raise: &str) -> Result<(), String> {
    let mut kid = kid(role, &[])?;
    let address = listening_on(&mut kid)?;
    let held = (0..held)
        .map(|_| started(address))
        .collect::<Result<Vec<_>, _>>()?;
    let mut waiting = Some(waiting(address)?);
    reached_then_cleared(&mut kid, reached, raise, held, || {
        let mut waiting = waiting.take().ok_or("once")?;
        expect_line(&mut waiting, "started\n")?;
        Ok(vec![waiting])
    })
}

fn max_connections_warns_and_clears() -> Result<(), String> {
    // The third waits in the backlog while two are open, and is served after them.
    held_then_one_waits(
        "connections",
        2,
        "limit max_connections = 2 reached (open connections: 2); accepting pauses",
        "raise it with Builder::max_connections",
    )
}

fn max_threads_warns_and_clears() -> Result<(), String> {
    // The second is accepted and queued for the one thread; served once the first ends.
    held_then_one_waits(
        "threads",
        1,
        "limit max_threads = 1 reached (open connections: 1); every thread is busy: a \
         connection accepted now queues for a thread, in arrival order",
        "raise it with Threading::max_threads",
    )
}

fn max_children_warns_and_clears() -> Result<(), String> {
    held_then_one_waits(
        "children",
        1,
        "limit max_children = 1 reached (children: 1); accepting pauses until a child exits",
        "raise it with Forking::max_children",
    )
}

fn a_flapping_count_writes_few_lines() -> Result<(), String> {
    const CLIENTS: usize = 50;
    let mut kid = kid("flapping", &[])?;
    let address = listening_on(&mut kid)?;
    let started = Instant::now();
    // Each client alone reaches max_connections (1), and it clears as the client leaves.
    for i in 0..CLIENTS {
        let mut client = waiting(address)?;
        let line = format!("client {i}\n");
        client
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        expect_line(&mut client, &line)?;
    }
    let took = started.elapsed();
    let stderr = kid.finish()?;
    let lines: Vec<&String> = stderr.iter().filter(|l| l.contains("limit ")).collect();
    // One line at first, then at most one a second, the gap doubling as episodes repeat.
    let bound = 2 + took.as_secs_f64().log2().max(0.0).ceil() as usize + 1;
    if lines.is_empty() || lines.len() > bound {
        return Err(format!(
            "{CLIENTS} connections in {took:?} wrote {} limit lines (expected 1 to {bound}): \
             {lines:?}",
            lines.len()
        ));
    }
    Ok(())
}

fn an_installed_logger_gets_the_lines() -> Result<(), String> {
    let mut kid = kid("logger", &[])?;
    let address = listening_on(&mut kid)?;
    let mut first = started(address)?;
    let reached = "log: WARN: limit max_connections = 1 reached (open connections: 1)";
    kid.stdout_line(|l| l.starts_with(reached), reached)?;
    release(&mut first)?;
    let cleared = "log: INFO: limit max_connections = 1 cleared (open connections: 0)";
    kid.stdout_line(|l| l.starts_with(cleared), cleared)?;
    let stderr = kid.finish()?;
    if let Some(line) = stderr.iter().find(|l| l.contains("limit ")) {
        return Err(format!(
            "with a logger the line went to stderr too: {line:?}"
        ));
    }
    Ok(())
}

fn out_of_descriptors_names_the_limit() -> Result<(), String> {
    // 64 descriptors and max_connections 1,000: accepting fails first, for want of them.
    let mut kid = kid("descriptors", &["--nofile=64:64"])?;
    let address = listening_on(&mut kid)?;
    let clients: Vec<BufReader<TcpStream>> = (0..80)
        .map(|_| waiting(address))
        .collect::<Result<_, _>>()?;
    let line = kid.stderr_line("cannot accept")?;
    for needed in [
        "RLIMIT_NOFILE: soft 64, hard 64",
        "socket::raise_fd_limit()",
        "ulimit -n",
    ] {
        if !line.contains(needed) {
            return Err(format!("the line does not say {needed:?}: {line:?}"));
        }
    }
    if !line.starts_with("sockserve: ERROR: ") {
        return Err(format!("not an error line on stderr: {line:?}"));
    }
    // Descriptors come back as the clients leave: it accepts again, and says so.
    drop(clients);
    kid.stderr_line("accepting again after")?;
    kid.finish()?;
    Ok(())
}

/// The `NAME N` line of the `defaults` child.
fn figure(kid: &mut Kid, name: &str) -> Result<usize, String> {
    let line = kid.stdout_line(|l| l.starts_with(name), name)?;
    line[name.len()..]
        .trim()
        .parse()
        .map_err(|e| format!("{line:?}: {e}"))
}

fn defaults_follow_the_process_limits() -> Result<(), String> {
    let mut kid = kid("defaults", &["--nofile=256:256", "--nproc=500:500"])?;
    let max_connections = figure(&mut kid, "max_connections")?;
    // 256 less a tenth, and at least 32, for the process's other files.
    if max_connections != 224 {
        return Err(format!(
            "max_connections {max_connections} under 256 descriptors"
        ));
    }
    let thread_limit = figure(&mut kid, "thread_limit")?;
    let line = kid.stderr_line("limit max_threads")?;
    // "... RLIMIT_NPROC lets this user run 500 processes and threads, this process runs T, ..."
    let runs = line
        .split("this process runs ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("the line does not say what the process runs: {line:?}"))?;
    if !line.starts_with("sockserve: INFO: limit max_threads = ")
        || !line.contains("RLIMIT_NPROC lets this user run 500 processes and threads")
        || !line.contains("Threading::max_threads")
    {
        return Err(format!("the line on the lowered default: {line:?}"));
    }
    if thread_limit != 500 - runs - 64 {
        return Err(format!(
            "thread_limit {thread_limit} under RLIMIT_NPROC 500 with {runs} threads running"
        ));
    }
    kid.finish()?;
    Ok(())
}

fn defaults_where_the_limits_allow() -> Result<(), String> {
    // Lowering a limit needs no privilege; the machine's RLIMIT_NPROC is what it is.
    let mut kid = kid("defaults", &["--nofile=2048:2048"])?;
    let max_connections = figure(&mut kid, "max_connections")?;
    let thread_limit = figure(&mut kid, "thread_limit")?;
    if max_connections != 2048 - 204 {
        return Err(format!(
            "max_connections {max_connections} with 2,048 descriptors"
        ));
    }
    let (nproc, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .map_err(|e| format!("getrlimit: {e}"))?;
    let stderr = kid.finish()?;
    // Room for the default and the process's own threads (a few dozen): the full default.
    if nproc >= 20_000 {
        if thread_limit != DEFAULT_MAX_THREADS {
            return Err(format!(
                "thread_limit {thread_limit} under RLIMIT_NPROC {nproc}"
            ));
        }
        if let Some(line) = stderr.iter().find(|l| l.contains("limit ")) {
            return Err(format!("nothing was lowered, yet: {line:?}"));
        }
    } else {
        println!("limits: RLIMIT_NPROC is {nproc} here: the full default is not checked");
    }
    Ok(())
}
