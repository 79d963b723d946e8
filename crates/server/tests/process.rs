//! Servers across processes: a listener passed by socket activation (`LISTEN_FDS`), and
//! several processes serving one port with `allow_reuse_port`.
//!
//! Both need real child processes started with a particular environment and fd table, so this
//! binary (`harness = false` in Cargo.toml) re-executes itself: with `SOCKSERVE_PROCESS_ROLE` set
//! it is a child server, otherwise it is the parent that runs the checks one after the other,
//! prints "process: N passed, M failed" and exits non-zero on failure. Every child is held by a
//! `Kid`, whose `Drop` kills and reaps it; a child also exits by itself when its stdin (a pipe
//! from the parent) closes, so none outlives a parent that dies.

// A harness-less test reports on stdout and stderr itself, and so do its child servers.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod util;

use handler::StreamRequest;
use socket::{Family, Socket, Type};
use sockserve_server::TcpServer;
use std::{
    collections::BTreeSet,
    env,
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{self, Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
};
use util::{Check, GENEROUS, run_checks};

/// Selects the child's role; absent in the parent.
const ROLE: &str = "SOCKSERVE_PROCESS_ROLE";
/// The port a `pid-server` child binds (0: any).
const PORT: &str = "SOCKSERVE_PROCESS_PORT";
/// "1" if a `pid-server` child sets `allow_reuse_port`.
const REUSE_PORT: &str = "SOCKSERVE_PROCESS_REUSE_PORT";
/// The variables of the activation protocol, removed from every child's inherited environment.
const LISTEN_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
/// At most this many connections to see both servers of a shared port.
const MAX_CONNECTIONS: usize = 500;

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    let checks: &[(&str, Check)] = &[
        (
            "activated_child_serves_the_passed_socket",
            activated_child_serves_the_passed_socket,
        ),
        (
            "child_without_listen_fds_fails_clearly",
            child_without_listen_fds_fails_clearly,
        ),
        (
            "udp_socket_for_a_tcp_server_fails_clearly",
            udp_socket_for_a_tcp_server_fails_clearly,
        ),
        (
            "unknown_socket_name_fails_clearly",
            unknown_socket_name_fails_clearly,
        ),
        (
            "two_processes_share_a_port_with_reuse_port",
            two_processes_share_a_port_with_reuse_port,
        ),
        (
            "second_bind_without_reuse_port_is_in_use",
            second_bind_without_reuse_port_is_in_use,
        ),
    ];
    run_checks("process", checks);
}

// ---------------------------------------------------------------------------------------------
// The children.

/// Runs a child role and exits: 0 when the parent closes stdin, 2 when the server cannot start.
fn child(role: &str) -> ! {
    let result = match role {
        "activated-echo" => activated_echo(),
        "pid-server" => pid_server(),
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

/// A sync TCP echo server on the socket passed as "web".
fn activated_echo() -> Result<(), String> {
    // Before any thread starts: listen_fds only unsets the variables in a one-thread process.
    let mut server = TcpServer::builder(util::echo_line)
        .from_activation(Some("web"))
        .map_err(|e| e.to_string())?;
    if let Some(left) = LISTEN_VARS.iter().find(|v| env::var_os(v).is_some()) {
        return Err(format!("{left} is still set after from_activation"));
    }
    serve(&mut server)
}

/// A sync TCP server on 127.0.0.1:$PORT that answers every connection with its pid.
fn pid_server() -> Result<(), String> {
    let port = env::var(PORT).map_err(|e| format!("{PORT}: {e}"))?;
    let reuse = env::var(REUSE_PORT).is_ok_and(|v| v == "1");
    let mut server =
        TcpServer::builder(|req: &mut StreamRequest| Ok(writeln!(req.wfile, "{}", process::id())?))
            .allow_reuse_port(reuse)
            .bind(format!("127.0.0.1:{port}").as_str())
            .map_err(|e| e.to_string())?;
    serve(&mut server)
}

/// Announces the address, then serves until the parent closes stdin (or kills us).
fn serve(server: &mut TcpServer) -> Result<(), String> {
    thread::spawn(|| {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        process::exit(0);
    });
    println!("listening on {}", server.server_address());
    server.serve_forever().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The parent's side of a child.

/// A running child: its output lines arrive on a channel, so every wait is bounded.
/// Dropping it kills and reaps the child.
struct Kid {
    name: &'static str,
    child: Child,
    /// Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
    /// Lines of stdout; `None` at end of file.
    lines: Receiver<Option<String>>,
    /// The whole of stderr, sent at end of file.
    stderr_rx: Receiver<String>,
    stderr: Option<String>,
}

impl Kid {
    fn spawn(name: &'static str, mut cmd: Command) -> Result<Kid, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = line_tx.send(None);
        });
        let (err_tx, stderr_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        Ok(Kid {
            name,
            _stdin: child.stdin.take(),
            child,
            lines,
            stderr_rx,
            stderr: None,
        })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of stdout, waiting at most GENEROUS.
    fn line(&mut self, expecting: &str) -> Result<String, String> {
        match self.lines.recv_timeout(GENEROUS) {
            Ok(Some(line)) => Ok(line),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                let (status, stderr) = self.exit()?;
                Err(format!(
                    "the {} exited ({status}) instead of printing {expecting}; stderr: {stderr:?}",
                    self.name
                ))
            }
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the {} did not print {expecting} within {GENEROUS:?}",
                self.name
            )),
        }
    }

    /// The address of the child's "listening on ADDR" line.
    fn listening_on(&mut self) -> Result<SocketAddr, String> {
        let line = self.line("\"listening on ADDR\"")?;
        line.strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                format!(
                    "the {} printed {line:?}, not \"listening on ADDR\"",
                    self.name
                )
            })
    }

    /// Waits (at most GENEROUS) for the child to exit by itself: its status and stderr.
    fn exit(&mut self) -> Result<(ExitStatus, String), String> {
        if self.stderr.is_none() {
            // stderr reaches end of file when the child exits (it starts no other process).
            let text = self
                .stderr_rx
                .recv_timeout(GENEROUS)
                .map_err(|_| format!("the {} did not exit within {GENEROUS:?}", self.name))?;
            self.stderr = Some(text);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the {}: {e}", self.name))?;
        Ok((status, self.stderr.clone().unwrap_or_default()))
    }

    /// Expects the child to fail at start-up with `message` on stderr.
    fn fails_with(mut self, message: &str) -> Result<(), String> {
        let (status, stderr) = self.exit()?;
        if status.success() {
            return Err(format!("the {} succeeded; stderr: {stderr:?}", self.name));
        }
        if !stderr.contains(message) {
            return Err(format!(
                "the {} failed ({status}) without saying {message:?}; stderr: {stderr:?}",
                self.name
            ));
        }
        Ok(())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Killing an exited (or already reaped) child fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This test binary as a child in `role`, with no activation variables inherited.
fn this_binary(role: &str) -> Command {
    let exe = env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.env(ROLE, role);
    for var in LISTEN_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// An `activated-echo` child that gets `socket` at fd 3 with the activation variables, the
/// way systemd starts a service: `sh` moves the inherited fd to 3 and sets `LISTEN_PID` to its
/// own pid, which `exec` keeps.
fn activated(socket: &Socket, name: &str) -> Result<Command, String> {
    socket
        .set_inheritable(true)
        .map_err(|e| format!("set_inheritable: {e}"))?;
    let fd = socket.fileno();
    // dash, a common sh, parses only one-digit fds in redirections.
    if !(3..=9).contains(&fd) {
        return Err(format!(
            "the socket is fd {fd}; sh can only redirect fds 3 to 9"
        ));
    }
    let redirect = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    let script = format!(
        "{redirect}export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES={name}; exec \"$0\" \"$@\""
    );
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(exe)
        .env(ROLE, "activated-echo");
    for var in LISTEN_VARS {
        cmd.env_remove(var);
    }
    Ok(cmd)
}

/// A `pid-server` child on 127.0.0.1:`port`.
fn pid_server_child(port: u16, reuse_port: bool) -> Command {
    let mut cmd = this_binary("pid-server");
    cmd.env(PORT, port.to_string())
        .env(REUSE_PORT, if reuse_port { "1" } else { "0" });
    cmd
}

/// Connects, sends `data` (if any), and reads the reply to end of file, all bounded.
fn exchange(address: SocketAddr, data: &[u8]) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&address, GENEROUS)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    s.set_read_timeout(Some(GENEROUS))
        .and_then(|()| s.set_write_timeout(Some(GENEROUS)))
        .map_err(|e| format!("timeouts: {e}"))?;
    s.write_all(data).map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("reply from {address} (timed out?): {e}"))?;
    Ok(reply)
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn activated_child_serves_the_passed_socket() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let socket = Socket::from(listener);
    let mut kid = Kid::spawn("activated child", activated(&socket, "web")?)?;
    // The child holds the listener now; closing ours means a dead child refuses, not hangs.
    drop(socket);
    let announced = kid.listening_on()?;
    if announced != address {
        return Err(format!(
            "the child serves {announced}, not the passed {address}"
        ));
    }
    let reply = exchange(address, b"hello activation\n")?;
    if reply != "hello activation\n" {
        return Err(format!("echo: got {reply:?}"));
    }
    Ok(())
}

fn child_without_listen_fds_fails_clearly() -> Result<(), String> {
    let kid = Kid::spawn("child without LISTEN_FDS", this_binary("activated-echo"))?;
    kid.fails_with("no sockets were passed (LISTEN_FDS is not set)")
}

fn udp_socket_for_a_tcp_server_fails_clearly() -> Result<(), String> {
    let udp = Socket::new(Family::Inet, Type::Datagram).map_err(|e| e.to_string())?;
    udp.bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let kid = Kid::spawn("child given a UDP socket", activated(&udp, "web")?)?;
    drop(udp);
    kid.fails_with("does not suit a TCPServer")
}

fn unknown_socket_name_fails_clearly() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let socket = Socket::from(listener);
    let kid = Kid::spawn(
        "child given a socket named web2",
        activated(&socket, "web2")?,
    )?;
    drop(socket);
    kid.fails_with("no socket named 'web' among web2")
}

fn two_processes_share_a_port_with_reuse_port() -> Result<(), String> {
    let mut first = Kid::spawn("first pid server", pid_server_child(0, true))?;
    let address = first.listening_on()?;
    let mut second = Kid::spawn("second pid server", pid_server_child(address.port(), true))?;
    let second_address = second.listening_on()?;
    if second_address != address {
        return Err(format!(
            "the second server is on {second_address}, not {address}"
        ));
    }
    let expected: BTreeSet<u32> = [first.id(), second.id()].into();
    let mut seen = BTreeSet::new();
    for _ in 0..MAX_CONNECTIONS {
        let reply = exchange(address, b"")?;
        let pid: u32 = reply
            .trim()
            .parse()
            .map_err(|_| format!("a reply that is not a pid: {reply:?}"))?;
        if !expected.contains(&pid) {
            return Err(format!("pid {pid} answered, not one of {expected:?}"));
        }
        seen.insert(pid);
        if seen == expected {
            return Ok(());
        }
    }
    Err(format!(
        "after {MAX_CONNECTIONS} connections to {address} only {seen:?} answered, of {expected:?}"
    ))
}

fn second_bind_without_reuse_port_is_in_use() -> Result<(), String> {
    let mut first = Kid::spawn("first server", pid_server_child(0, false))?;
    let address = first.listening_on()?;
    let second = Kid::spawn("second server", pid_server_child(address.port(), false))?;
    second.fails_with("Address already in use")?;
    // The first one is unharmed.
    let reply = exchange(address, b"")?;
    if reply.trim() != first.id().to_string() {
        return Err(format!("the first server answered {reply:?}"));
    }
    Ok(())
}
