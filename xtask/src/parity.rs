//! `PARITY.md` kept true: every name of CPython's `socketserver` (and of the `socket` parts it
//! uses) has a row, and every `sockserve::` path a row cites resolves.
//!
//! The names come from the installed `python3` ([`PYTHON_NAMES`]); the paths go into
//! [`GENERATED`] (`examples/parity.rs`), a module of the examples' library whose doc links
//! every path (`cargo doc` with broken intra-doc links denied fails on one that does not
//! resolve) and whose `use` list imports every item path (`cargo build` fails on one that does
//! not exist). `cargo xtask parity` writes that file; tidy fails when it is stale or a name has
//! no row.

use std::collections::BTreeSet;
use std::path::Path;

use crate::Result;
use crate::cmd::{Cmd, project_root};

/// The table, relative to the workspace root.
pub(crate) const TABLE: &str = "PARITY.md";
/// The generated module, relative to the workspace root.
pub(crate) const GENERATED: &str = "examples/parity.rs";

/// Prints one required name a line: every name of `dir(socketserver)`; each public attribute
/// of a class the module defines, as `Definer.attr` with `Definer` the first class of its MRO
/// (of this module) that defines it; the instance attributes the docs name; and the `socket`
/// names (`socket.NAME`) and socket methods (`socket.socket.NAME`) the module's source uses.
const PYTHON_NAMES: &str = r#"
import inspect, re, socket, socketserver
names = set(dir(socketserver))
for n in dir(socketserver):
    cls = getattr(socketserver, n)
    if not inspect.isclass(cls) or cls.__module__ != "socketserver":
        continue
    for a in dir(cls):
        if a.startswith("_"):
            continue
        for c in cls.__mro__:
            if a in vars(c):
                if c.__module__ == "socketserver":
                    names.add(c.__name__ + "." + a)
                break
for attr in ["BaseServer.server_address", "BaseServer.socket", "BaseServer.RequestHandlerClass",
             "BaseServer.__enter__", "BaseServer.__exit__",
             "BaseRequestHandler.request", "BaseRequestHandler.client_address",
             "BaseRequestHandler.server", "StreamRequestHandler.connection",
             "StreamRequestHandler.rfile", "StreamRequestHandler.wfile",
             "DatagramRequestHandler.packet", "DatagramRequestHandler.socket",
             "DatagramRequestHandler.rfile", "DatagramRequestHandler.wfile"]:
    names.add(attr)
src = inspect.getsource(socketserver)
for n in re.findall(r"(?<![.\w])socket\.(\w+)", src):
    if hasattr(socket, n):
        names.add("socket." + n)
for n in re.findall(r"\.(\w+)\(", src):
    if not n.startswith("_") and hasattr(socket.socket, n):
        names.add("socket.socket." + n)
print("\n".join(sorted(names)))
"#;

/// One row of a table: the Python names of its first cell, the `sockserve` paths of its second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) python: Vec<String>,
    pub(crate) paths: Vec<String>,
}

/// The code spans of `cell` (the text between pairs of backticks).
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every row of every table in `text` (header and separator rows left out).
pub(crate) fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            if cells.len() < 3 || cells[0].trim().starts_with("---") || cells[0].trim() == "Python"
            {
                return None;
            }
            Some(Row {
                python: spans(cells[0]),
                paths: spans(cells[1])
                    .into_iter()
                    .filter(|p| p == "sockserve" || p.starts_with("sockserve::"))
                    .collect(),
            })
        })
        .collect()
}

/// The required names that no row covers.
pub(crate) fn missing(rows: &[Row], required: &[String]) -> Vec<String> {
    let covered: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.python.iter().map(String::as_str))
        .collect();
    required
        .iter()
        .filter(|name| !covered.contains(name.as_str()))
        .cloned()
        .collect()
}

/// Whether `path` names a member of a type or trait (a method, field or associated item:
/// `Type::member`), which only a doc link can reach; the rest can be `use`d.
fn is_member(path: &str) -> bool {
    let mut segments = path.rsplit("::");
    let last = segments.next().unwrap_or_default();
    let parent = segments.next().unwrap_or_default();
    parent.starts_with(|c: char| c.is_ascii_uppercase())
        && last.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The text of [`GENERATED`] for `rows`: every path once, sorted.
pub(crate) fn generate(rows: &[Row]) -> String {
    let paths: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.paths.iter().map(String::as_str))
        .collect();
    let mut out = String::from(
        "//! Every sockserve path that `PARITY.md` cites, so that a build proves each one exists:\n\
         //! `cargo doc` (broken intra-doc links denied, as `cargo xtask ci` runs it) resolves the\n\
         //! links below, and `cargo build` the `use` list. Generated from `PARITY.md` by\n\
         //! `cargo xtask parity`; `cargo xtask tidy` fails when it is stale. Do not edit.\n//!\n",
    );
    for path in &paths {
        out.push_str(&format!("//! - [`{path}`]\n"));
    }
    out.push_str("\n#![allow(unused_imports)]\n\n");
    for path in paths.iter().filter(|p| !is_member(p)) {
        out.push_str(&format!("use {path} as _;\n"));
    }
    out
}

/// The required names, from the installed `python3`.
fn python_names() -> Result<Vec<String>> {
    let text = Cmd::new("python3")
        .arg("-c")
        .arg_shown_as(PYTHON_NAMES, "PYTHON_NAMES")
        .read()
        .map_err(|e| format!("parity: `python3` is needed to list socketserver's names: {e}"))?;
    Ok(text.lines().map(str::to_owned).collect())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()).into())
}

/// What is wrong with `PARITY.md` and the generated module: one message each.
pub(crate) fn problems() -> Result<Vec<String>> {
    let root = project_root();
    let rows = rows(&read(&root.join(TABLE))?);
    let mut out: Vec<String> = missing(&rows, &python_names()?)
        .into_iter()
        .map(|name| format!("`{name}` of CPython's socketserver has no row in {TABLE}"))
        .collect();
    let generated = std::fs::read_to_string(root.join(GENERATED)).unwrap_or_default();
    if generated != generate(&rows) {
        out.push(format!(
            "{GENERATED} is not what {TABLE} makes of it: run `cargo xtask parity`"
        ));
    }
    Ok(out)
}

/// `cargo xtask parity`: writes [`GENERATED`] from the table, then reports what is missing.
pub(crate) fn run() -> Result<()> {
    let root = project_root();
    let rows = rows(&read(&root.join(TABLE))?);
    std::fs::write(root.join(GENERATED), generate(&rows))
        .map_err(|e| format!("writing {GENERATED}: {e}"))?;
    println!("parity: wrote {GENERATED}");
    let problems = problems()?;
    for p in &problems {
        eprintln!("parity: {p}");
    }
    if problems.is_empty() {
        println!("parity: ok ({} rows)", rows.len());
        Ok(())
    } else {
        Err(format!("{} problem(s) with {TABLE} (see above)", problems.len()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_TEXT: &str = "\
| Python | sockserve | why |
|---|---|---|
| `BaseServer.serve_forever` | `sockserve::Server::serve_forever`, `std::io::Error` | instant |
| `TCPServer`, `tcp` | `sockserve::TcpServer` | alias |
not a row
";

    #[test]
    fn rows_take_the_names_and_the_sockserve_paths() {
        let rows = rows(TABLE_TEXT);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].python, ["BaseServer.serve_forever"]);
        assert_eq!(rows[0].paths, ["sockserve::Server::serve_forever"]);
        assert_eq!(rows[1].python, ["TCPServer", "tcp"]);
    }

    #[test]
    fn a_name_without_a_row_is_missing() {
        let rows = rows(TABLE_TEXT);
        let required = ["TCPServer".to_owned(), "UDPServer".to_owned()];
        assert_eq!(missing(&rows, &required), ["UDPServer"]);
    }

    #[test]
    fn members_are_linked_items_are_also_used() {
        let text = generate(&rows(TABLE_TEXT));
        assert!(text.contains("//! - [`sockserve::Server::serve_forever`]\n"));
        assert!(text.contains("use sockserve::TcpServer as _;"));
        assert!(!text.contains("use sockserve::Server::serve_forever"));
        assert!(is_member("sockserve::socket::opt::NoDelay::x"));
        assert!(!is_member("sockserve::Family::Inet"));
        assert!(!is_member("sockserve::socket::raise_fd_limit"));
    }

    /// The real table: every name the installed CPython has, and the generated module current.
    #[test]
    fn the_real_table_is_complete_and_current() {
        let problems = problems().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
