//! Running external commands: each one is echoed (`$ cargo ...`) before it runs, runs from the
//! workspace root, and a failure says which command failed and how. Children that must not
//! outlive xtask (servers) are held by a [`ChildGuard`], whose `Drop` kills and waits them.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;

/// The workspace root: xtask's own manifest sits one level below it.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (`$CARGO` under `cargo run`), so that child builds use the same
/// toolchain; plain `cargo` otherwise.
fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// One external command, built up like `std::process::Command` but printable.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    program: OsString,
    /// The name echoed for the program (`cargo` rather than the full `$CARGO` path).
    shown: String,
    /// Each argument, with what the echo shows instead of it (for long scripts).
    args: Vec<(OsString, Option<String>)>,
    envs: Vec<(String, String)>,
    /// Capture the stderr of a server (still forwarded to ours, prefixed with its name).
    log: Option<StderrLog>,
    /// Send the stderr of a server to this file instead (a chatty access log).
    stderr_file: Option<PathBuf>,
}

impl Cmd {
    /// A command running `program`.
    pub(crate) fn new(program: impl Into<OsString>) -> Cmd {
        let program = program.into();
        let shown = program.to_string_lossy().into_owned();
        Cmd {
            program,
            shown,
            args: Vec::new(),
            envs: Vec::new(),
            log: None,
            stderr_file: None,
        }
    }

    /// A command running cargo with `args`.
    pub(crate) fn cargo(args: &[&str]) -> Cmd {
        let mut cmd = Cmd::new(cargo_program());
        cmd.shown = "cargo".to_owned();
        cmd.args(args.iter().copied())
    }

    /// Adds one argument.
    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push((arg.into(), None));
        self
    }

    /// Adds one argument that the echo shows as `<shown>` (a script passed to `python3 -c`
    /// is named, not printed line by line).
    pub(crate) fn arg_shown_as(mut self, arg: impl Into<OsString>, shown: &str) -> Cmd {
        self.args.push((arg.into(), Some(format!("<{shown}>"))));
        self
    }

    /// Adds several arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args
            .extend(args.into_iter().map(|arg| (arg.into(), None)));
        self
    }

    /// Sets an environment variable for the child (and shows it in the echo).
    pub(crate) fn env(mut self, key: &str, value: &str) -> Cmd {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Captures the stderr of a server started by [`Cmd::spawn_guarded`] into `log` (and still
    /// forwards each line to ours, prefixed with the program's name), so that a caller can read
    /// why a server that did not start gave up.
    pub(crate) fn stderr_to(mut self, log: &StderrLog) -> Cmd {
        self.log = Some(log.clone());
        self
    }

    /// Sends the stderr of a server started by [`Cmd::spawn_guarded`] to the file `path`
    /// (created or truncated) instead of ours: for a server that logs every request.
    pub(crate) fn stderr_to_file(mut self, path: &Path) -> Cmd {
        self.stderr_file = Some(path.to_owned());
        self
    }

    /// The command as a shell line, for the echo and for error messages.
    pub(crate) fn display(&self) -> String {
        let mut line = String::new();
        for (key, value) in &self.envs {
            line.push_str(&format!("{key}={} ", shell_quote(value)));
        }
        line.push_str(&shell_quote(&self.shown));
        for (arg, shown) in &self.args {
            line.push(' ');
            match shown {
                Some(shown) => line.push_str(shown),
                None => line.push_str(&shell_quote(&arg.to_string_lossy())),
            }
        }
        if let Some(path) = &self.stderr_file {
            line.push_str(&format!(" 2>{}", shell_quote(&path.to_string_lossy())));
        }
        line
    }

    /// The program's file name (`basic_server`, not its full path), for messages.
    fn short_name(&self) -> String {
        Path::new(&self.shown)
            .file_name()
            .map_or_else(|| self.shown.clone(), |n| n.to_string_lossy().into_owned())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(self.args.iter().map(|(arg, _)| arg))
            .current_dir(project_root())
            .stdin(Stdio::null());
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    fn echo(&self) {
        // Flush stdout first so the echo lands before anything the child prints.
        let _ = io::stdout().flush();
        eprintln!("$ {}", self.display());
    }

    /// Runs the command with stdout and stderr inherited; a non-zero exit is an error.
    pub(crate) fn run(&self) -> Result<()> {
        self.echo();
        let status = self
            .command()
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.display()).into())
        }
    }

    /// Runs the command and captures its output; a non-zero exit is an error that quotes the
    /// captured stderr.
    pub(crate) fn read(&self) -> Result<String> {
        let output = self.output()?;
        if !output.status.success() {
            return Err(format!(
                "`{}` failed ({}):\n{}",
                self.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )
            .into());
        }
        String::from_utf8(output.stdout)
            .map_err(|_| format!("`{}` printed non-UTF-8 output", self.display()).into())
    }

    /// Runs the command to completion with captured output, whatever its exit status.
    pub(crate) fn output(&self) -> Result<Output> {
        self.echo();
        self.command()
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()).into())
    }

    /// Runs the command with captured output, killing it if it has not finished within
    /// `limit`: a client that hangs fails the run instead of stalling it.
    pub(crate) fn output_within(&self, limit: Duration) -> Result<Output> {
        self.output_interrupted(None, limit)
    }

    /// [`output_within`](Self::output_within), with SIGINT sent to the command once
    /// `interrupt` has passed, if it is still running then (`wrk`, whose `-d` counts whole
    /// seconds, stops on it and reports what it measured until then).
    pub(crate) fn output_interrupted(
        &self,
        interrupt: Option<Duration>,
        limit: Duration,
    ) -> Result<Output> {
        self.echo();
        let child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        let mut guard = ChildGuard {
            child,
            name: self.short_name(),
        };
        // Drain both pipes on their own threads so a chatty child never blocks on a full pipe.
        let stdout = drain(guard.child.stdout.take());
        let stderr = drain(guard.child.stderr.take());
        let started = Instant::now();
        if let Some(interrupt) = interrupt
            && guard.exited_within(interrupt)?.is_none()
        {
            // It may exit between the look and the signal: then `signal` says so, harmlessly.
            let _ = guard.signal("INT");
        }
        let status = guard
            .wait_within(limit.saturating_sub(started.elapsed()))
            .map_err(|e| format!("`{}`: {e}", self.display()))?;
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Starts the command with piped stdout (stderr inherited, so a server's complaints reach
    /// the log), held by a guard that kills it when dropped.
    pub(crate) fn spawn_guarded(&self) -> Result<ChildGuard> {
        self.spawn_guarded_with(Stdio::null())
    }

    /// [`spawn_guarded`](Self::spawn_guarded), with the child's stdin a pipe: the caller
    /// writes to it, or closes it to tell the child it is done.
    pub(crate) fn spawn_guarded_with_stdin(&self) -> Result<ChildGuard> {
        self.spawn_guarded_with(Stdio::piped())
    }

    fn spawn_guarded_with(&self, stdin: Stdio) -> Result<ChildGuard> {
        self.echo();
        let stderr = match (&self.stderr_file, &self.log) {
            (Some(path), _) => Stdio::from(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            (None, Some(_)) => Stdio::piped(),
            (None, None) => Stdio::inherit(),
        };
        let child = self
            .command()
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        let mut guard = ChildGuard {
            child,
            name: self.short_name(),
        };
        if let (Some(log), Some(stderr)) = (&self.log, guard.child.stderr.take()) {
            log.capture(stderr, guard.name.clone());
        }
        Ok(guard)
    }
}

/// A child process that is killed and waited for when the guard is dropped, on every path out
/// (success, `?`, panic), so no server is ever left behind.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// The child, to take its pipes or poll it.
    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The program name, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends `signal` (`TERM`, `INT`) to the child with the shell's `kill`, unless it has already been
    /// reaped (its pid could then belong to another process).
    pub(crate) fn signal(&mut self, signal: &str) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!("{} had already exited ({status})", self.name).into());
        }
        // The shell's built-in kill: a slim machine may have no kill(1) (procps).
        let status = Command::new("sh")
            .args(["-c", "kill \"$1\" \"$2\"", "sh"])
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .map_err(|e| format!("could not run `kill`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`kill -{signal} {}` failed ({status})", self.child.id()).into())
        }
    }
}

impl ChildGuard {
    /// Waits for the child to exit, at most `limit`; past it the child is killed and this is
    /// an error. Polls every few milliseconds: std has no wait-with-timeout for a child.
    pub(crate) fn wait_within(&mut self, limit: Duration) -> Result<ExitStatus> {
        match self.exited_within(limit)? {
            Some(status) => Ok(status),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(format!("did not finish within {limit:?}; killed").into())
            }
        }
    }

    /// The child's exit status if it exits within `limit`; `None` (the child left running)
    /// if it does not.
    fn exited_within(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // `kill` fails only if the child already exited, which is fine: `wait` then reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stderr of a child, captured line by line as it comes (see [`Cmd::stderr_to`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrLog {
    /// The text so far, and whether the pipe has reached its end.
    inner: Arc<(Mutex<(String, bool)>, Condvar)>,
}

impl StderrLog {
    fn capture(&self, pipe: impl Read + Send + 'static, prefix: String) {
        let log = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(io::Result::ok) {
                eprintln!("[{prefix}] {line}");
                let mut state = log.inner.0.lock().unwrap_or_else(|e| e.into_inner());
                state.0.push_str(&line);
                state.0.push('\n');
            }
            let mut state = log.inner.0.lock().unwrap_or_else(|e| e.into_inner());
            state.1 = true;
            log.inner.1.notify_all();
        });
    }

    /// What the child has written so far, after waiting at most `limit` for its stderr to
    /// close (a child that exited has closed it, but the reader may not have caught up yet).
    pub(crate) fn text_within(&self, limit: Duration) -> String {
        let (lock, closed) = &*self.inner;
        let state = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = closed
            .wait_timeout_while(state, limit, |state| !state.1)
            .unwrap_or_else(|e| e.into_inner());
        state.0.clone()
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the capture; what was read so far is still worth showing.
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// A server process started by xtask, with the address it announced.
#[derive(Debug)]
pub(crate) struct RunningServer {
    /// Kills and waits the server when dropped.
    pub(crate) guard: ChildGuard,
    /// `ADDR` from its first stdout line, `listening on ADDR`.
    pub(crate) addr: String,
}

impl RunningServer {
    /// Starts `cmd` and waits, at most `limit`, for its first stdout line `listening on ADDR`.
    /// The rest of its stdout is forwarded to our stderr, prefixed with its name.
    pub(crate) fn start(cmd: &Cmd, limit: Duration) -> Result<RunningServer> {
        let (guard, line) = start_announced(cmd, "a `listening on ADDR` line", limit)?;
        let name = guard.name().to_owned();
        let addr = line
            .strip_prefix("listening on ")
            .map(str::trim)
            .filter(|addr| !addr.is_empty())
            .ok_or_else(|| {
                format!(
                    "`{}`: expected a first line `listening on ADDR`, got {line:?}",
                    cmd.display()
                )
            })?
            .to_owned();
        eprintln!("    {name} is listening on {addr}");
        Ok(RunningServer { guard, addr })
    }

    /// An error if the server has exited: it must outlive every client of a scenario.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.guard.child_mut().try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!("{} exited early ({status})", self.guard.name()).into()),
        }
    }
}

/// Starts `cmd` and waits, at most `limit`, for its first stdout line (`what` names the line
/// expected, for messages), which it returns with the guarded child. The rest of its stdout is
/// forwarded to our stderr, prefixed with its name.
pub(crate) fn start_announced(
    cmd: &Cmd,
    what: &str,
    limit: Duration,
) -> Result<(ChildGuard, String)> {
    let mut guard = cmd.spawn_guarded()?;
    let stdout = guard
        .child_mut()
        .stdout
        .take()
        .ok_or("stdout was not piped")?;
    let (first_line, rx) = mpsc::channel();
    let prefix = guard.name().to_owned();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = first_line.send(line);
        }
        for line in lines.map_while(io::Result::ok) {
            eprintln!("[{prefix}] {line}");
        }
    });
    match rx.recv_timeout(limit) {
        Ok(line) => Ok((guard, line)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("`{}` printed no {what} within {limit:?}", cmd.display()).into())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = guard.wait_within(Duration::from_secs(5))?;
            Err(format!(
                "`{}` closed its stdout without {what} ({status})",
                cmd.display()
            )
            .into())
        }
    }
}

/// Quotes `s` for display the way a POSIX shell would need it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,[]".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let cmd = Cmd::cargo(&["doc", "--workspace"]).env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(
            cmd.display(),
            "RUSTDOCFLAGS='-D warnings' cargo doc --workspace"
        );
        let cmd = Cmd::new("python3").arg("-c").arg("print('x')");
        assert_eq!(cmd.display(), r"python3 -c 'print('\''x'\'')'");
        let cmd = Cmd::new("python3")
            .arg("-c")
            .arg_shown_as("import sys\n", "SCRIPT")
            .arg("a b");
        assert_eq!(cmd.display(), "python3 -c <SCRIPT> 'a b'");
    }

    /// The interrupt ends a command still running at its time (as wrk, it reports and exits),
    /// and a command done before it is not signalled.
    #[test]
    fn output_interrupted_sends_sigint_once_its_time_has_passed() {
        // The handler is set explicitly: a SIGINT ignored on entry (a CI job in the
        // background) would otherwise stay ignored.
        let script = "import signal, sys, time\n\
                      signal.signal(signal.SIGINT, lambda *_: (print('interrupted', flush=True), sys.exit(0)))\n\
                      time.sleep(30)\n";
        let started = Instant::now();
        let out = Cmd::new("python3")
            .arg("-c")
            .arg(script)
            .output_interrupted(Some(Duration::from_secs(1)), Duration::from_secs(20))
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(15),
            "not interrupted: {elapsed:?}"
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "interrupted\n");
        let done = Cmd::new("python3")
            .args(["-c", "print('done')"])
            .output_interrupted(Some(Duration::from_secs(10)), Duration::from_secs(20))
            .unwrap();
        assert!(done.status.success(), "{done:?}");
        assert_eq!(String::from_utf8_lossy(&done.stdout), "done\n");
    }

    #[test]
    fn project_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
