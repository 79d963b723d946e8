//! `http_server` against real HTTP clients, in both of its modes (`sync`, `threading`), each
//! server serving a directory laid out here ([`lay_out_site`]) with `--timeout 2`:
//!
//! - `curl`: a file, `--http1.0`, `-I`, the 301 of a directory without its slash, two URLs on
//!   one connection, a `..` sent as is (`--path-as-is`);
//! - CPython's `urllib.request` and `http.client` ([`http_client.py`](http_client.py)
//!   `python`): headers, the listing, keep-alive, `If-Modified-Since`, 61 pipelined requests;
//! - the targets that try to leave the root (`safety`), the bad requests (`bad`), 300 clients
//!   that stop mid-request and one that dribbles (`stalled`: another client is answered
//!   meanwhile, the server holds no thread for them, each is dropped at its deadline);
//! - `wrk -t2 -c10 -d2s`, keep-alive and a connection per request: no error, no non-2xx;
//! - a sparse 1 GiB file, the server's VmRSS sampled while it streams (`rss`, threading only);
//! - SIGTERM with an idle keep-alive connection open: exit status 0, the connection closed.
//!
//! A case whose tool (`curl`, `wrk`) is missing is skipped, and says so; under `CI=true` it
//! fails instead (`.ci/run` installs both).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{CLIENT_LIMIT, NAME_WIDTH, STARTUP_LIMIT, example_bin, secs, temp_dir};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

/// The server's `--timeout`: the stalled clients are dropped after it.
const TIMEOUT_SECS: &str = "2";
/// How long a client case may take (the stalled one waits out three timeouts).
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM (its grace is 2 s).
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// The body of `hello.txt`.
const HELLO: &str = "hello, world\n";
/// In `secret.txt`, beside the root: no response may ever hold it.
const SECRET: &str = "TOP-SECRET";
/// The size of `big.bin`, a sparse file.
const BIG: u64 = 1 << 30;

/// One case against a running server.
#[derive(Debug, Clone, Copy)]
enum Case {
    Curl,
    /// A case of `http_client.py`.
    Python(&'static str),
    /// `wrk`, keep-alive or with `Connection: close`.
    Wrk {
        close: bool,
    },
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Curl => "curl (plain, --http1.0, -I, redirect, keep-alive)".to_owned(),
            Case::Python("python") => "CPython urllib.request, http.client, pipelining".to_owned(),
            Case::Python("safety") => "path safety: 23 ways out of the root".to_owned(),
            Case::Python("bad") => "bad requests: 400 413 414 431 501 505".to_owned(),
            Case::Python("stalled") => "300 clients stopped mid-request, a dribbler".to_owned(),
            Case::Python("rss") => "a sparse 1 GiB file at constant RSS".to_owned(),
            Case::Python(other) => other.to_owned(),
            Case::Wrk { close: false } => "wrk -t2 -c10 -d2s, keep-alive".to_owned(),
            Case::Wrk { close: true } => "wrk -t2 -c10 -d2s, Connection: close".to_owned(),
        }
    }

    /// The program the case needs beyond python3, which every case needs anyway.
    fn tool(self) -> Option<&'static str> {
        match self {
            Case::Curl => Some("curl"),
            Case::Wrk { .. } => Some("wrk"),
            Case::Python(_) => None,
        }
    }
}

/// The cases of both modes, in order.
const CASES: &[Case] = &[
    Case::Curl,
    Case::Python("python"),
    Case::Python("safety"),
    Case::Python("bad"),
    Case::Python("stalled"),
    Case::Wrk { close: false },
];

/// The cases of `--mode threading` alone, after [`CASES`]: a sync server would serve them as
/// well, only more slowly, and the file is large.
const THREADING_CASES: &[Case] = &[Case::Wrk { close: true }, Case::Python("rss")];

/// Runs every case of both modes; how many passed (all that were not skipped, or the first
/// failure is the error).
pub(crate) fn run(examples: &Path) -> Result<usize> {
    let dir = temp_dir("http")?;
    let root = lay_out_site(dir.path())?;
    let mut passed = 0;
    for (mode, extra) in [("sync", &[][..]), ("threading", THREADING_CASES)] {
        let cases: Vec<Case> = CASES.iter().chain(extra).copied().collect();
        passed += run_mode(examples, &root, mode, &cases)?;
    }
    Ok(passed)
}

/// Starts one server in `mode`, runs `cases` against it, then stops it with SIGTERM.
fn run_mode(examples: &Path, root: &Path, mode: &str, cases: &[Case]) -> Result<usize> {
    let cmd = Cmd::new(example_bin(examples, "http_server"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--mode",
            mode,
            "--timeout",
            TIMEOUT_SECS,
        ])
        .arg("--directory")
        .arg(root);
    let mut server = RunningServer::start(&cmd, STARTUP_LIMIT)?;
    let pid = server.guard.child_mut().id().to_string();
    let mut passed = 0;
    for &case in cases {
        let name = format!("http_server {mode}: {}", case.name());
        if let Some(tool) = case.tool().filter(|tool| !installed(tool)) {
            if std::env::var("CI").as_deref() == Ok("true") {
                return Err(format!("scenario `{name}` failed: `{tool}` is not installed").into());
            }
            println!("skip  {name:<NAME_WIDTH$}  (`{tool}` is not installed; .ci/run installs it)");
            continue;
        }
        eprintln!("--> integration: {name}");
        let began = Instant::now();
        let line = run_case(case, &server.addr, root, &pid)
            .map_err(|e| format!("scenario `{name}` failed: {e}"))?;
        server
            .check_alive()
            .map_err(|e| format!("scenario `{name}` failed: {e}"))?;
        println!("ok    {name:<NAME_WIDTH$} {:>5.1}s  ({line})", secs(began));
        passed += 1;
    }
    let name = format!("http_server {mode}: SIGTERM with a keep-alive connection open");
    eprintln!("--> integration: {name}");
    let began = Instant::now();
    let line = stop(&mut server).map_err(|e| format!("scenario `{name}` failed: {e}"))?;
    println!("ok    {name:<NAME_WIDTH$} {:>5.1}s  ({line})", secs(began));
    Ok(passed + 1)
}

/// Whether `tool` is on the PATH.
fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one case; its line of figures.
fn run_case(case: Case, addr: &str, root: &Path, pid: &str) -> Result<String> {
    match case {
        Case::Curl => curl_case(addr),
        Case::Wrk { close } => wrk_case(addr, close),
        Case::Python(which) => {
            let client = Cmd::new("python3")
                .arg("-c")
                .arg_shown_as(include_str!("http_client.py"), "http_client.py")
                .args([which, addr])
                .arg(root)
                .args([pid, TIMEOUT_SECS]);
            let stdout = checked_output(&client, CASE_LIMIT)?;
            Ok(stdout.lines().last().unwrap_or_default().to_owned())
        }
    }
}

/// Runs `cmd` within `limit`: its stdout, or an error with its output if it failed.
fn checked_output(cmd: &Cmd, limit: Duration) -> Result<String> {
    let output = cmd.output_within(limit)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`{}` failed ({}):\n{stdout}{}",
            cmd.display(),
            output.status,
            stderr.trim_end()
        )
        .into());
    }
    Ok(stdout)
}

/// `curl` with `args` (and a time bound): its stdout.
fn curl(args: &[&str]) -> Result<String> {
    let cmd = Cmd::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args);
    checked_output(&cmd, CLIENT_LIMIT)
}

/// An error saying what `what` was, unless `ok`.
fn expect(ok: bool, what: &str, got: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}").into())
    }
}

fn curl_case(addr: &str) -> Result<String> {
    let url = |path: &str| format!("http://{addr}{path}");
    let body = curl(&[&url("/hello.txt")])?;
    expect(body == HELLO, "curl GET /hello.txt", &body)?;
    let old = curl(&["-i", "--http1.0", &url("/hello.txt")])?;
    expect(
        old.starts_with("HTTP/1.1 200 OK\r\n")
            && old.contains("\r\nConnection: close\r\n")
            && old.ends_with(&format!("\r\n\r\n{HELLO}")),
        "curl --http1.0 -i",
        &old,
    )?;
    let head = curl(&["-I", &url("/hello.txt")])?;
    let fields = [
        "HTTP/1.1 200 OK\r\n",
        &format!("\r\nContent-Length: {}\r\n", HELLO.len()),
        "\r\nContent-Type: text/plain; charset=utf-8\r\n",
        "\r\nLast-Modified: ",
        "\r\nDate: ",
        "\r\nServer: sockserve-http_server/",
    ];
    let whole = fields.iter().all(|f| head.contains(f)) && head.ends_with("\r\n\r\n");
    expect(whole && !head.contains(HELLO), "curl -I", &head)?;
    let redirect = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &url("/docs"),
    ])?;
    expect(
        redirect == format!("301 http://{addr}/docs/"),
        "curl /docs",
        &redirect,
    )?;
    let two = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        &url("/hello.txt"),
        &url("/docs/"),
    ])?;
    expect(two == "200 1\n200 0\n", "two URLs, one connection", &two)?;
    let out = curl(&[
        "--path-as-is",
        "-w",
        "\n%{http_code}",
        &url("/../secret.txt"),
    ])?;
    expect(
        out.ends_with("\n404") && !out.contains(SECRET),
        "curl --path-as-is /../secret.txt",
        &out,
    )?;
    Ok("6 checks, the second URL on the first's connection".to_owned())
}

fn wrk_case(addr: &str, close: bool) -> Result<String> {
    let url = format!("http://{addr}/hello.txt");
    let mut cmd = Cmd::new("wrk").args(["-t2", "-c10", "-d2s", "--timeout", "5s"]);
    if close {
        cmd = cmd.args(["-H", "Connection: close"]);
    }
    let out = checked_output(&cmd.arg(&url), CLIENT_LIMIT)?;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    if out.contains("Non-2xx or 3xx responses") || out.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{out}").into());
    }
    let rate = field("Requests/sec:").ok_or_else(|| format!("no Requests/sec in:\n{out}"))?;
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| format!("no request count in:\n{out}"))?;
    expect(requests > 100, "wrk's request count", &out)?;
    Ok(format!("{requests} requests, {rate} a second, no errors"))
}

/// SIGTERM with an idle keep-alive connection open: exit 0, and the connection closed.
fn stop(server: &mut RunningServer) -> Result<String> {
    let mut idle = TcpStream::connect(&server.addr)?;
    idle.set_read_timeout(Some(STOP_LIMIT))?;
    idle.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(HELLO.as_bytes()) {
        let n = idle.read(&mut buf)?;
        if n == 0 {
            return Err("the keep-alive connection closed before its answer".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    let signalled = Instant::now();
    server.guard.signal("TERM")?;
    let status = server.guard.wait_within(STOP_LIMIT)?;
    let took = signalled.elapsed();
    if !status.success() {
        return Err(format!("after SIGTERM: {status}, not exit status 0").into());
    }
    match idle.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => return Err(format!("the idle connection got {n} bytes at the stop").into()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(format!("the idle connection, after the stop: {e}").into()),
    }
    Ok(format!(
        "exit 0 in {:.2}s, the idle connection closed",
        took.as_secs_f64()
    ))
}

/// Lays out the served directory under `top` and returns it:
///
/// ```text
/// top/secret.txt               outside the root: never served
/// top/site/hello.txt
/// top/site/docs/a&b <c>.txt    a name to escape and encode
/// top/site/docs/sub/out.txt    -> top/secret.txt
/// top/site/with-index/index.html
/// top/site/leak.txt            -> ../secret.txt
/// top/site/up                  -> .. (top)
/// top/site/big.bin             1 GiB, sparse
/// ```
fn lay_out_site(top: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::symlink;
    let site = top.join("site");
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    std::fs::create_dir_all(site.join("docs/sub"))?;
    std::fs::create_dir_all(site.join("with-index"))?;
    write(
        top.join("secret.txt"),
        &format!("{SECRET}: outside the served directory\n"),
    )?;
    write(site.join("hello.txt"), HELLO)?;
    write(site.join("docs/a&b <c>.txt"), "odd name\n")?;
    write(site.join("with-index/index.html"), "<h1>index</h1>\n")?;
    symlink(top.join("secret.txt"), site.join("docs/sub/out.txt"))?;
    symlink("../secret.txt", site.join("leak.txt"))?;
    symlink("..", site.join("up"))?;
    std::fs::File::create(site.join("big.bin"))?.set_len(BIG)?;
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case has a name of its own, and every client case is one `http_client.py` runs.
    #[test]
    fn every_case_is_named_and_known_to_the_client() {
        let script = include_str!("http_client.py");
        let all: Vec<Case> = CASES.iter().chain(THREADING_CASES).copied().collect();
        let mut names: Vec<String> = all.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "{names:?}");
        for case in all {
            if let Case::Python(which) = case {
                assert!(
                    script.contains(&format!("\"{which}\": {which}_case")),
                    "http_client.py has no case {which:?}"
                );
            }
        }
    }

    /// The site has what the cases ask for, and its big file takes no disk space.
    #[test]
    fn the_site_is_laid_out() {
        let dir = temp_dir("http-test").unwrap();
        let root = lay_out_site(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("hello.txt")).unwrap(),
            HELLO
        );
        let leak = std::fs::read_to_string(root.join("leak.txt")).unwrap();
        assert!(
            leak.contains(SECRET),
            "the symlink leads to the secret: {leak}"
        );
        assert!(root.join("up/secret.txt").exists());
        use std::os::unix::fs::MetadataExt;
        let big = std::fs::metadata(root.join("big.bin")).unwrap();
        assert_eq!(big.len(), BIG);
        assert!(
            big.blocks() * 512 < 1 << 20,
            "sparse: {} blocks",
            big.blocks()
        );
    }
}
