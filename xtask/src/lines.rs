//! `cargo xtask lines`: issue 8's bar for the paved path, measured. Each of the six Python
//! programs of the reference set (copied into `examples/python/` as black formats them, beside
//! `chat_test.py`, the client that checks `chat`) has a Rust port in `examples/` of the same
//! name; a port may take at most 1.2 times the lines of its original, or at most 3 lines more,
//! whichever is larger. This prints a table of both counts and fails if any port is over; it is
//! a step of `cargo xtask ci`.
//!
//! What counts is a line of code, the same way in both languages, kept simple enough to check
//! by eye (a line-based count, not a parser):
//!
//! - **Python**: every line but blank ones, `#` comments (a shebang too), and the lines of a
//!   docstring (a statement that is only a `"""` or `''''` string). The copies in
//!   `examples/python/` are the originals as `black` formats them (the measure; a test
//!   checks it where black and the reference set are at hand): the originals are black-style
//!   but for four lines longer than black's 88 columns, which black splits (`chat.py` is 33
//!   lines so, 31 as written; `forking.py` 54, 42 as written). `chat_test.py`, no port, is a
//!   plain copy.
//! - **Rust**: every line but blank ones, `//` comments (doc comments `///` and `//!`
//!   included), `/* */` blocks that start a line, and inner attributes `#![...]`. The only
//!   inner attribute the ports carry is `#![allow(clippy::print_stdout, ...)]`: this workspace
//!   makes printing a lint for its library crates, and the examples share that policy; a
//!   user's own program has no such line, and Python no counterpart. The text is the file as
//!   committed, checked first to be exactly what rustfmt makes of it (`rustfmt --check`, the
//!   repository's `rustfmt.toml`: what `cargo fmt` produces).

use std::fmt::Write as _;
use std::path::Path;

use crate::Result;
use crate::cmd::{Cmd, project_root};

/// The ported programs: `examples/python/NAME.py` and its port `examples/NAME.rs`.
pub(crate) const PORTS: &[&str] = &[
    "tcp_upper",
    "threaded_tcp_upper",
    "udp_upper",
    "threaded_docs",
    "chat",
    "forking",
];

/// The lines of code of a Python file: not blank, not a `#` comment, not in a docstring.
pub(crate) fn python_lines(text: &str) -> usize {
    let mut count = 0;
    // The closing delimiter of the docstring we are in, if any.
    let mut in_docstring: Option<&str> = None;
    for line in text.lines().map(str::trim) {
        if let Some(close) = in_docstring {
            if line.contains(close) {
                in_docstring = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(quote) = ["\"\"\"", "'''"].into_iter().find(|q| line.starts_with(q)) {
            // A docstring: one line if it closes on the line it opens, else up to its close.
            if !line[quote.len()..].contains(quote) {
                in_docstring = Some(quote);
            }
            continue;
        }
        count += 1;
    }
    count
}

/// The lines of code of a Rust file: not blank, not a comment, not an inner attribute.
pub(crate) fn rust_lines(text: &str) -> usize {
    let mut count = 0;
    let mut in_block_comment = false;
    // How many `[` of an inner attribute are still open (rustfmt may split a long one).
    let mut attribute_depth = 0usize;
    for line in text.lines().map(str::trim) {
        if in_block_comment {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if attribute_depth > 0 || line.starts_with("#![") {
            attribute_depth += line.matches('[').count();
            attribute_depth = attribute_depth.saturating_sub(line.matches(']').count());
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        count += 1;
    }
    count
}

/// The most lines a port of a `python`-line program may take: 1.2 times as many, or 3 more,
/// whichever is larger.
pub(crate) fn allowed(python: usize) -> usize {
    (python * 6 / 5).max(python + 3)
}

/// One program's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The program's name (`tcp_upper`).
    pub(crate) program: String,
    /// Lines of code of the Python original.
    pub(crate) python: usize,
    /// Lines of code of the Rust port.
    pub(crate) rust: usize,
}

impl Row {
    /// Whether the port is within the bar.
    pub(crate) fn passes(&self) -> bool {
        self.rust <= allowed(self.python)
    }
}

/// The table `run` prints: program, both counts, the bar, the ratio and the verdict.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<20} {:>6} {:>5} {:>7} {:>6}  verdict\n",
        "program", "python", "rust", "allowed", "ratio"
    );
    for row in rows {
        let allowed = allowed(row.python);
        let verdict = if row.passes() {
            "ok".to_owned()
        } else {
            format!("OVER by {}", row.rust - allowed)
        };
        let ratio = row.rust as f64 / row.python.max(1) as f64;
        let _ = writeln!(
            out,
            "{:<20} {:>6} {:>5} {:>7} {:>6.2}  {verdict}",
            row.program, row.python, row.rust, allowed, ratio
        );
    }
    out
}

/// Counts one port and its original, read from `examples` (the examples' folder).
fn count(examples: &Path, program: &str) -> Result<Row> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let original = read(&examples.join("python").join(format!("{program}.py")))?;
    Ok(Row {
        program: program.to_owned(),
        python: python_lines(&original),
        rust: rust_lines(&read(&examples.join(format!("{program}.rs")))?),
    })
}

/// Checks the ports are rustfmt's, counts every pair, prints the table; fails naming the ports
/// over the bar.
pub(crate) fn run() -> Result<()> {
    let examples = project_root().join("examples");
    let ports: Vec<String> = PORTS.iter().map(|p| format!("examples/{p}.rs")).collect();
    Cmd::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .args(&ports)
        .run()
        .map_err(|e| format!("the ports must be counted as rustfmt formats them: {e}"))?;
    let rows = PORTS
        .iter()
        .map(|program| count(&examples, program))
        .collect::<Result<Vec<_>>>()?;
    print!("{}", table(&rows));
    let over: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passes())
        .map(|r| r.program.as_str())
        .collect();
    if !over.is_empty() {
        return Err(format!(
            "over the bar (1.2 times the Python lines, or 3 more): {}",
            over.join(", ")
        )
        .into());
    }
    println!("lines: all {} ports within the bar", rows.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_skips_blanks_comments_and_docstrings() {
        let text = "#!/usr/bin/env python3\n\
                    # a comment\n\
                    import os  # a trailing comment: code\n\
                    \n\
                    def f():\n\
                    \x20   \"\"\"One line.\"\"\"\n\
                    \x20   '''Several\n\
                    \x20   lines # not a comment\n\
                    \x20   '''\n\
                    \x20   x = \"\"\"a string value\n\
                    is code\"\"\"\n\
                    \x20   return x\n";
        // import, def, x = ..., its second line, return.
        assert_eq!(python_lines(text), 5);
    }

    #[test]
    fn rust_skips_blanks_comments_and_inner_attributes() {
        let text = "//! The header.\n\
                    \n\
                    // Why.\n\
                    #![allow(clippy::print_stdout)]\n\
                    #![allow(\n\
                    \x20   clippy::print_stderr,\n\
                    )]\n\
                    /* a block\n\
                    \x20  comment */\n\
                    /// Docs.\n\
                    #[derive(Clone)]\n\
                    fn main() {\n\
                    \x20   let url = \"http://x\"; // trailing: code\n\
                    }\n";
        // #[derive], fn, let, }.
        assert_eq!(rust_lines(text), 4);
    }

    #[test]
    fn the_bar_is_the_larger_of_the_two() {
        // Small programs: 3 more lines is the larger allowance.
        assert_eq!(allowed(10), 13);
        assert_eq!(allowed(15), 18);
        // 1.2 times, rounded down, once it is larger: from 20 lines on.
        assert_eq!(allowed(20), 24);
        assert_eq!(allowed(42), 50);
        let row = |python, rust| Row {
            program: "p".into(),
            python,
            rust,
        };
        assert!(row(12, 15).passes());
        assert!(!row(12, 16).passes());
        assert!(row(30, 36).passes());
        assert!(!row(30, 37).passes());
    }

    #[test]
    fn the_table_gives_both_counts_and_the_verdict() {
        let rows = [
            Row {
                program: "good".into(),
                python: 10,
                rust: 12,
            },
            Row {
                program: "long".into(),
                python: 10,
                rust: 15,
            },
        ];
        let table = table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("program"), "{table}");
        let good: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(good, ["good", "10", "12", "13", "1.20", "ok"], "{table}");
        assert!(lines[2].ends_with("1.50  OVER by 2"), "{table}");
    }

    /// The copies in `examples/python/` are the reference programs, byte for byte, wherever
    /// the reference set is at hand (`../shared/reference/python-programs/` beside the
    /// workspace); a fresh clone without it counts its copies.
    #[test]
    fn the_copies_are_the_originals_as_black_formats_them() {
        let root = project_root();
        let reference = root.join("../shared/reference/python-programs");
        if !reference.is_dir() {
            eprintln!("no {}: the copies are not compared", reference.display());
            return;
        }
        let black = |text: &str| {
            Cmd::new("python3")
                .args(["-m", "black", "--quiet", "--code"])
                .arg_shown_as(text, "<original>")
                .read()
        };
        if black("x = 1\n").is_err() {
            eprintln!("no black (python3 -m pip install black): the copies are not compared");
            return;
        }
        for program in PORTS {
            let name = format!("{program}.py");
            let original = std::fs::read_to_string(reference.join(&name)).unwrap();
            let copy = std::fs::read_to_string(root.join("examples/python").join(&name)).unwrap();
            assert!(
                black(&original).unwrap() == copy,
                "examples/python/{name} is not the original as black formats it"
            );
        }
        // chat_test.py is no port (the client that checks the chat): a plain copy.
        let original = std::fs::read(reference.join("chat_test.py")).unwrap();
        let copy = std::fs::read(root.join("examples/python/chat_test.py")).unwrap();
        assert!(
            original == copy,
            "examples/python/chat_test.py differs from the original"
        );
    }

    /// Every port is an `[[example]]` and has its original beside it; the verdicts are
    /// `cargo xtask lines`'s (not every port is within the bar yet).
    #[test]
    fn every_port_is_an_example_with_its_original() {
        let examples = project_root().join("examples");
        let manifest = std::fs::read_to_string(examples.join("Cargo.toml")).unwrap();
        for program in PORTS {
            assert!(
                manifest.contains(&format!("name = \"{program}\"")),
                "examples/Cargo.toml has no [[example]] {program}"
            );
            let row = count(&examples, program).unwrap();
            assert!(row.python > 0 && row.rust > 0, "{row:?}");
        }
    }
}
