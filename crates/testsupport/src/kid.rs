//! [`Kid`]: a child process a test talks to line by line (a server in a role of the test
//! binary, say), every wait bounded, killed and reaped when dropped.

use crate::GENEROUS;
use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::Instant,
};

/// One line of a child's output, or the end of that stream.
type Line = Option<String>;

/// A running child whose stdout and stderr lines arrive on channels, so that every wait for
/// one is bounded (by [`GENEROUS`]) and fails with what the child did say. Its stdin is a
/// pipe held open until [`finish`](Self::finish) or [`close_stdin`](Self::close_stdin): a
/// child that exits when its stdin ends never outlives its test. Dropping it kills and reaps
/// the child.
#[derive(Debug)]
pub struct Kid {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<Line>,
    stderr: Receiver<Line>,
    /// Every line received so far, of stdout and of stderr.
    stdout_seen: Vec<String>,
    stderr_seen: Vec<String>,
}

/// Sends each line of `stream` on a new channel, then `None` at end of file.
fn lines_of(stream: impl Read + Send + 'static) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// Which of a child's streams.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Kid {
    /// Starts `cmd` (its stdin, stdout and stderr piped here), called `name` in messages.
    ///
    /// # Errors
    ///
    /// The command could not start.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Kid, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let stdout = lines_of(child.stdout.take().expect("stdout is piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
        Ok(Kid {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
        })
    }

    /// The child's process id (to signal it, or to read `/proc/PID`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The first stdout line (seen before or arriving within [`GENEROUS`]) for which `wanted`
    /// holds; `expecting` names it in the error.
    ///
    /// # Errors
    ///
    /// No such line came in time, or stdout ended without one.
    pub fn stdout_line(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        expecting: &str,
    ) -> Result<String, String> {
        self.line(Stream::Stdout, wanted, expecting)
    }

    /// The first stderr line (seen before or arriving within [`GENEROUS`]) that contains
    /// `text`.
    ///
    /// # Errors
    ///
    /// No such line came in time, or stderr ended without one.
    pub fn stderr_line(&mut self, text: &str) -> Result<String, String> {
        self.line(Stream::Stderr, |l| l.contains(text), text)
    }

    fn line(
        &mut self,
        stream: Stream,
        wanted: impl Fn(&str) -> bool,
        expecting: &str,
    ) -> Result<String, String> {
        let (seen, rx) = match stream {
            Stream::Stdout => (&mut self.stdout_seen, &self.stdout),
            Stream::Stderr => (&mut self.stderr_seen, &self.stderr),
        };
        if let Some(line) = seen.iter().find(|l| wanted(l)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + GENEROUS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(line)) => {
                    seen.push(line.clone());
                    if wanted(&line) {
                        return Ok(line);
                    }
                }
                Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the {}'s {stream:?} ended without {expecting:?}; it said {seen:?}",
                        self.name
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the {}'s {stream:?} had no {expecting:?} within {GENEROUS:?}; it said \
                         {seen:?}",
                        self.name
                    ));
                }
            }
        }
    }

    /// The stderr lines received so far, without waiting.
    pub fn stderr_so_far(&mut self) -> &[String] {
        while let Ok(Some(line)) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
        &self.stderr_seen
    }

    /// Writes `text` to the child's stdin.
    ///
    /// # Errors
    ///
    /// Its stdin is closed, or the write failed.
    pub fn write_stdin(&mut self, text: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin is closed")?;
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the {}: {e}", self.name))
    }

    /// Closes the child's stdin.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes the child's stdin (a child that exits then, exits), waits at most
    /// [`GENEROUS`] for the end of its stdout and stderr, reaps it and returns every stderr
    /// line it wrote.
    ///
    /// # Errors
    ///
    /// The child did not end in time, or exited with a failure.
    pub fn finish(&mut self) -> Result<Vec<String>, String> {
        self.close_stdin();
        let deadline = Instant::now() + GENEROUS;
        for stream in [Stream::Stdout, Stream::Stderr] {
            let (seen, rx) = match stream {
                Stream::Stdout => (&mut self.stdout_seen, &self.stdout),
                Stream::Stderr => (&mut self.stderr_seen, &self.stderr),
            };
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Some(line)) => seen.push(line),
                    Ok(None) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(format!(
                            "the {} did not exit within {GENEROUS:?} of its stdin closing",
                            self.name
                        ));
                    }
                }
            }
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the {}: {e}", self.name))?;
        if !status.success() {
            return Err(format!(
                "the {} exited with {status}; stderr: {:?}",
                self.name, self.stderr_seen
            ));
        }
        Ok(self.stderr_seen.clone())
    }

    /// Every stdout line received so far (after [`finish`](Self::finish): all of them).
    pub fn stdout_seen(&self) -> &[String] {
        &self.stdout_seen
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Killing an exited (or already reaped) child fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
