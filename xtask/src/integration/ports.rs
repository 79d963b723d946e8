//! The ports of the Python reference programs (`examples/python/`, counted by `cargo xtask
//! lines`) that run here as real processes: those that need no fixed port, which today is
//! `threaded_docs` (port 0, its own three clients, then it stops by itself). The others listen
//! on the fixed ports of their originals (9997-9999), which another program on the machine may
//! hold, so they are tried by hand: each one's header gives the commands.

use std::path::Path;
use std::time::Instant;

use super::{CLIENT_LIMIT, NAME_WIDTH, example_bin, secs};
use crate::Result;
use crate::cmd::Cmd;

/// Runs every case; returns how many passed (all, or the first failure is the error).
pub(crate) fn run(examples: &Path) -> Result<usize> {
    let name = "threaded_docs: server thread, three clients, shutdown";
    eprintln!("--> integration: {name}");
    let began = Instant::now();
    let cmd = Cmd::new(example_bin(examples, "threaded_docs"));
    let output = cmd.output_within(CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    check_threaded_docs(output.status.success(), &stdout)
        .map_err(|e| format!("scenario `{name}` failed: `{}`: {e}", cmd.display()))?;
    println!("ok    {name:<NAME_WIDTH$} {:>5.1}s", secs(began));
    Ok(1)
}

/// What `threaded_docs.py` prints, with the thread names left open (Python's are
/// `Thread-N (...)`, sockserve's its own): the server thread's line, then each client's reply
/// with the handler thread's name before the message, and a clean exit.
fn check_threaded_docs(success: bool, stdout: &str) -> Result<()> {
    let lines: Vec<&str> = stdout.lines().collect();
    let well_formed = lines.len() == 4
        && lines[0].starts_with("Server loop running in thread: ")
        && (1..=3).all(|n| {
            lines[n].starts_with("Received: ") && lines[n].ends_with(&format!(": Hello World {n}"))
        });
    match (success, well_formed) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("it failed; its output:\n{stdout}").into()),
        (true, false) => Err(format!("unexpected output:\n{stdout}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_docs_output_is_checked_line_by_line() {
        let python = "Server loop running in thread: Thread-1 (serve_forever)\n\
                      Received: Thread-2 (process_request_thread): Hello World 1\n\
                      Received: Thread-3 (process_request_thread): Hello World 2\n\
                      Received: Thread-4 (process_request_thread): Hello World 3\n";
        check_threaded_docs(true, python).unwrap();
        let short = python.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(check_threaded_docs(true, &short).is_err());
        let swapped = python.replace("World 2", "World 9");
        assert!(check_threaded_docs(true, &swapped).is_err());
        assert!(check_threaded_docs(false, python).is_err());
    }
}
