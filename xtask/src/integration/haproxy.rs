//! The PROXY protocol behind a real HAProxy (the distribution's, installed by `.ci/run`): two
//! `proxy_whoami` backends (one threading, one forking) behind HAProxy on loopback, which
//! sends them `send-proxy-v2` headers and health-checks them (`check-send-proxy`: v2 `LOCAL`
//! connections, with `tcp-check` expecting the answer line). [`CLIENTS`] real clients, each
//! connection through HAProxy, check that every answer is the client's own address (the
//! handler saw the real client, not HAProxy's side of the backend connection). Mid-run one
//! backend gets SIGTERM: it drains (`--drain`, failing its health checks while it serves on),
//! HAProxy's stats socket shows it `DOWN`, it stops gracefully and exits 0, and the clients
//! see zero errors. Both backends must have had load (HAProxy's `stot`), and some requests
//! must come after the stop. The config lives in a temp dir; the ports are chosen free.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::echo::temp_dir;
use super::{STARTUP_LIMIT, example_bin};
use crate::Result;
use crate::cmd::{Cmd, RunningServer};

const NAME: &str = "proxy_whoami x2 behind HAProxy, send-proxy-v2, a backend stopped";
/// Concurrent clients, each one connection at a time.
const CLIENTS: usize = 4;
/// Requests of all clients together, at most (each is a connection through HAProxy and one
/// to a backend: loopback's ephemeral ports are the bound).
const MAX_REQUESTS: usize = 12_000;
/// Each client's interval between the starts of its requests: 200 a second.
const PACE: Duration = Duration::from_millis(5);
/// How long the clients run before the SIGTERM, and after the stopped backend is down.
const PHASE: Duration = Duration::from_millis(1500);
/// The stopped backend's drain: longer than HAProxy's `inter` x `fall` (200 ms x 2), with room
/// for a loaded machine.
const DRAIN_SECS: &str = "2";
/// The bound of every wait of the case (HAProxy up, the backend down, its exit).
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// One request's bound: connect, then the answer to its end.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// Runs the case; 1 passed, or the failure.
pub(crate) fn run(examples: &Path) -> Result<usize> {
    super::run_each(&[NAME], |name| name, |_| run_case(examples))
}

/// The HAProxy binary: on the PATH, else where Debian puts it (`/usr/sbin`, not on a
/// non-root PATH).
fn haproxy() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("haproxy"));
    let known = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].map(PathBuf::from);
    on_path
        .chain(known)
        .find(|p| p.is_file())
        .ok_or_else(|| "haproxy is not installed (apt-get install haproxy; .ci/run does)".into())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn config(stats: &Path, frontend: u16, s1: &str, s2: &str) -> String {
    format!(
        "global\n\
         \x20   stats socket {stats} mode 600 level admin\n\
         \x20   maxconn 1000\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 10s\n\
         \x20   timeout server 10s\n\
         \x20   timeout check 5s\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         frontend whoami\n\
         \x20   bind 127.0.0.1:{frontend}\n\
         \x20   default_backend whoami\n\
         backend whoami\n\
         \x20   balance roundrobin\n\
         \x20   option tcp-check\n\
         \x20   tcp-check expect rstring ^[0-9]\n\
         \x20   default-server send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 2\n\
         \x20   server s1 {s1}\n\
         \x20   server s2 {s2}\n",
        stats = stats.display()
    )
}

/// One server's row of `show stat`: its status and its sessions so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    status: String,
    sessions: u64,
}

/// `show stat` on HAProxy's stats socket: the rows of backend `whoami`'s servers.
fn stats(socket: &Path) -> Result<Vec<(String, Row)>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(REQUEST_LIMIT))?;
    stream.write_all(b"show stat\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    parse_stats(&text)
}

fn parse_stats(text: &str) -> Result<Vec<(String, Row)>> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| format!("show stat: no header in {text:?}"))?;
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("show stat: no column {name}"))
    };
    let (px, sv, status, stot) = (
        column("pxname")?,
        column("svname")?,
        column("status")?,
        column("stot")?,
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        if field(px) != "whoami" || matches!(field(sv), "FRONTEND" | "BACKEND") {
            continue;
        }
        let sessions = field(stot).parse().unwrap_or(0);
        rows.push((
            field(sv).to_owned(),
            Row {
                status: field(status).to_owned(),
                sessions,
            },
        ));
    }
    Ok(rows)
}

/// The row of server `name`.
fn row(socket: &Path, name: &str) -> Result<Row> {
    stats(socket)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, row)| row)
        .ok_or_else(|| format!("show stat: no server {name}").into())
}

/// Waits (bounded) until `cond` holds of the stats; how long it took.
fn wait_stats(
    socket: &Path,
    what: &str,
    cond: impl Fn(&[(String, Row)]) -> bool,
) -> Result<Duration> {
    let began = Instant::now();
    let mut last = String::from("no answer yet");
    while began.elapsed() < WAIT_LIMIT {
        match stats(socket) {
            Ok(rows) if cond(&rows) => return Ok(began.elapsed()),
            Ok(rows) => last = format!("{rows:?}"),
            Err(e) => last = e.to_string(),
        }
        // HAProxy's checks run every 200 ms: look a few times within each.
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!("HAProxy's stats never showed {what} within {WAIT_LIMIT:?}: {last}").into())
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    answered: AtomicUsize,
    errors: AtomicUsize,
    /// The first few errors, for the message.
    first_errors: Mutex<Vec<String>>,
}

/// One request through HAProxy: the answer must be this connection's own address.
fn request(frontend: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&frontend, REQUEST_LIMIT)?;
    stream.set_read_timeout(Some(REQUEST_LIMIT))?;
    let me = stream.local_addr()?.to_string();
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if answer.trim_end() != me {
        return Err(format!("the client {me} got {answer:?}, not its own address").into());
    }
    Ok(())
}

fn client(frontend: SocketAddr, seen: Arc<Seen>, stop: Arc<AtomicBool>, deadline: Instant) {
    let began = Instant::now();
    for n in 0u32.. {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        // Paced: the load is a rate, not as fast as the machine goes (whose ephemeral ports
        // would run out before the case ends).
        let due = began + PACE * n;
        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
            thread::sleep(ahead);
        }
        let total = seen.answered.load(Ordering::SeqCst) + seen.errors.load(Ordering::SeqCst);
        if total >= MAX_REQUESTS {
            return;
        }
        match request(frontend) {
            Ok(()) => {
                seen.answered.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                seen.errors.fetch_add(1, Ordering::SeqCst);
                let mut first = seen.first_errors.lock().unwrap_or_else(|e| e.into_inner());
                if first.len() < 5 {
                    first.push(e.to_string());
                }
            }
        }
    }
}

fn run_case(examples: &Path) -> Result<String> {
    let haproxy = haproxy()?;
    let dir = temp_dir("haproxy")?;
    let backend = |mode: &str| {
        Cmd::new(example_bin(examples, "proxy_whoami")).args([
            "--addr",
            "127.0.0.1:0",
            "--trusted",
            "127.0.0.1",
            "--mode",
            mode,
            "--drain",
            DRAIN_SECS,
        ])
    };
    let mut s1 = RunningServer::start(&backend("threading"), STARTUP_LIMIT)?;
    let mut s2 = RunningServer::start(&backend("forking"), STARTUP_LIMIT)?;
    let port = free_port()?;
    let stats_socket = dir.path().join("admin.sock");
    let config_path = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config_path,
        config(&stats_socket, port, &s1.addr, &s2.addr),
    )?;
    let _proxy = Cmd::new(&haproxy)
        .args(["-q", "-db", "-f"])
        .arg(config_path.display().to_string())
        .spawn_guarded()?;
    let up = |rows: &[(String, Row)]| rows.len() == 2 && rows.iter().all(|(_, r)| r.status == "UP");
    wait_stats(&stats_socket, "both servers UP", up)?;

    let frontend: SocketAddr = ([127, 0, 0, 1], port).into();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + WAIT_LIMIT * 3;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            thread::spawn(move || client(frontend, seen, stop, deadline))
        })
        .collect();
    let outcome = (|| -> Result<(Duration, Duration, usize)> {
        thread::sleep(PHASE); // the clients' load before the stop
        let before = seen.answered.load(Ordering::SeqCst);
        let signalled = Instant::now();
        s2.guard.signal("TERM")?;
        let down = wait_stats(&stats_socket, "s2 DOWN", |rows| {
            rows.iter()
                .any(|(n, r)| n == "s2" && r.status.starts_with("DOWN"))
        })?;
        let status = s2.guard.wait_within(WAIT_LIMIT)?;
        let exited = signalled.elapsed();
        if !status.success() {
            return Err(format!("the stopped backend exited with {status}").into());
        }
        let at_exit = seen.answered.load(Ordering::SeqCst);
        thread::sleep(PHASE); // the clients' load after it, on s1 alone
        let after = seen.answered.load(Ordering::SeqCst) - at_exit;
        if before == 0 || after == 0 {
            return Err(format!(
                "the clients made {before} requests before the stop and {after} after it: \
                 both must be some (MAX_REQUESTS {MAX_REQUESTS} reached?)"
            )
            .into());
        }
        Ok((down, exited, after))
    })();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().map_err(|_| "a client thread panicked")?;
    }
    let (down, exited, after) = outcome?;
    let s1_row = row(&stats_socket, "s1")?;
    let s2_row = row(&stats_socket, "s2")?;
    // Still serving; it and HAProxy are killed and waited by their guards.
    s1.check_alive()?;
    let answered = seen.answered.load(Ordering::SeqCst);
    let errors = seen.errors.load(Ordering::SeqCst);
    if errors > 0 {
        let first = seen.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        return Err(format!(
            "{errors} client error(s) of {}: {first:?}",
            answered + errors
        )
        .into());
    }
    if s1_row.sessions == 0 || s2_row.sessions == 0 {
        return Err(format!("a backend had no load: s1 {s1_row:?}, s2 {s2_row:?}").into());
    }
    Ok(format!(
        "{answered} requests from {CLIENTS} clients, 0 errors, each answer the client's own \
         address; sessions s1 {} (threading), s2 {} (forking); s2 SIGTERM -> DOWN in {} ms, \
         exited 0 in {} ms; {after} requests after, on s1; {} sessions beyond the requests \
         (HAProxy's retries)",
        s1_row.sessions,
        s2_row.sessions,
        down.as_millis(),
        exited.as_millis(),
        (s1_row.sessions + s2_row.sessions).saturating_sub(answered as u64)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_stat_rows_of_the_servers_are_read() {
        let text = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n\
                    whoami,FRONTEND,,,0,1,1000,5,0,0,0,0,0,,,,,OPEN\n\
                    whoami,s1,0,0,0,1,,3,0,0,,0,,0,0,0,0,UP\n\
                    whoami,s2,0,0,0,1,,2,0,0,,0,,0,0,0,0,DOWN 1/2\n\
                    whoami,BACKEND,0,0,0,1,100,5,0,0,0,0,,0,0,0,0,UP\n\n";
        let rows = parse_stats(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            (
                "s1".to_owned(),
                Row {
                    status: "UP".into(),
                    sessions: 3
                }
            )
        );
        assert_eq!(rows[1].1.status, "DOWN 1/2");
        assert!(parse_stats("no header").is_err());
    }

    #[test]
    fn the_config_has_the_proxy_protocol_and_the_checks() {
        let text = config(
            Path::new("/tmp/x/admin.sock"),
            8000,
            "127.0.0.1:1",
            "127.0.0.1:2",
        );
        assert!(text.contains("bind 127.0.0.1:8000"));
        assert!(text.contains("send-proxy-v2 check check-send-proxy"));
        assert!(text.contains("server s2 127.0.0.1:2"));
        assert!(text.contains("stats socket /tmp/x/admin.sock"));
    }
}
