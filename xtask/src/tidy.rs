//! `cargo xtask tidy`: the invariants of ARCHITECTURE.md, checked against the code.
//!
//! The house's table lives here as data ([`LAYERS`], [`SHARED`], [`TEST_HELPERS`], [`TEST_SUPPORT`], [`PROGRAMS`],
//! [`MAY_PRINT`], [`UNSAFE_FILES`], [`LIBC_ALLOWED`]); every check is a pure function from a
//! parsed model (`cargo metadata`, a manifest's text, a source file's text) to a list of
//! [`Violation`]s, so the tests can show each check failing on a synthetic workspace. `run` only
//! gathers the inputs and prints the verdict.
//!
//! The checks that read code read a member's own code: every `.rs` file under its `src/`, and
//! the root file of each of its library, binary and example targets wherever it is (the
//! examples' are `examples/*.rs`) with the modules in the folders beside a root outside `src/`
//! (`examples/http/`); not its tests. Comments, doc comments and the contents of
//! string and char literals are not code ([`code`]); `doc-paths` reads the Rust examples of doc
//! comments instead.
//!
//! | check            | invariant                                                                  |
//! |------------------|----------------------------------------------------------------------------|
//! | `layering`       | internal dependencies point one way, down the table; every member is in it |
//! | `ownership`      | an external crate is named only by the crate that owns it (or is shared)   |
//! | `lints`          | every member has `[lints] workspace = true`                                |
//! | `workspace-deps` | every member dependency is `workspace = true`: versions live in the root   |
//! | `crate-doc`      | every library's `lib.rs` starts with a `//!` crate doc                     |
//! | `quiet`          | library crates' `src/` never print, but for the files of [`MAY_PRINT`]     |
//! | `unsafe`         | `unsafe` only in [`UNSAFE_FILES`]; the other members forbid `unsafe_code`  |
//! | `libc`           | no `libc::` / `nix::libc` in code outside `sockserve-socket`               |
//! | `unused-deps`    | every normal dependency of a member is named in its code                   |
//! | `doc-paths`      | library doc examples name internal crates as users do: `sockserve_socket`  |
//!
//! Two more allow-lists are empty, and meant to stay so: [`DOC_PATHS_PENDING`] and
//! [`UNUSED_DEPS_PENDING`], what `doc-paths` and `unused-deps` would pass over while a debt is
//! paid. An entry of an allow-list that no longer allows anything is a note, not a violation
//! ([`stale_entries`]).

mod code;
mod manifest;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::metadata::{DepKind, Package, Workspace};

/// One workspace member's place in the house.
#[derive(Debug)]
pub(crate) struct Layer {
    /// The package name.
    pub(crate) package: &'static str,
    /// The internal crates it may depend on: only crates above it in this table.
    pub(crate) internal: &'static [&'static str],
    /// The external crates it owns: no crate outside this list's owners may name them.
    pub(crate) owns: &'static [&'static str],
}

/// The table of ARCHITECTURE.md, top (lowest layer) to bottom. Keep the two in step.
pub(crate) const LAYERS: &[Layer] = &[
    Layer {
        package: "sockserve-socket",
        internal: &[],
        owns: &["socket2", "libc"],
    },
    Layer {
        // The tests' shared helpers (never published): the socket layer and std only, so that
        // any layer's tests may use it without a second copy of a higher crate. Other members
        // depend on it only as a dev-dependency ([`TEST_SUPPORT`]).
        package: "sockserve-testsupport",
        internal: &["sockserve-socket"],
        owns: &[],
    },
    Layer {
        package: "sockserve-reactor",
        internal: &["sockserve-socket"],
        owns: &["mio", "nix"],
    },
    Layer {
        package: "sockserve-handler",
        internal: &["sockserve-socket"],
        owns: &[],
    },
    Layer {
        package: "sockserve-server",
        internal: &["sockserve-socket", "sockserve-reactor", "sockserve-handler"],
        // The PROXY protocol's parser: the server reads the header, in the request's job
        // before verify_request (proxy.rs).
        owns: &["ppp"],
    },
    Layer {
        package: "sockserve-mixins",
        internal: &[
            "sockserve-socket",
            "sockserve-reactor",
            "sockserve-handler",
            "sockserve-server",
        ],
        owns: &["crossbeam-channel", "nix"],
    },
    Layer {
        // The prefork supervisor: worker processes serving one listener. Above the server
        // (a worker serves a server), beside the mixins (it names no strategy: the program
        // picks one per worker); shares `nix` (fork, exec, wait, signals) with the layers
        // that make processes.
        package: "sockserve-prefork",
        internal: &["sockserve-socket", "sockserve-reactor", "sockserve-server"],
        owns: &["nix"],
    },
    Layer {
        // TLS over rustls; its tests run every strategy (the mixins, a dev-dependency) and
        // make their certificates with rcgen.
        package: "sockserve-tls",
        internal: &[
            "sockserve-socket",
            "sockserve-handler",
            "sockserve-server",
            "sockserve-mixins",
        ],
        owns: &["rustls", "rcgen"],
    },
    Layer {
        package: "sockserve",
        internal: &[
            "sockserve-socket",
            "sockserve-reactor",
            "sockserve-handler",
            "sockserve-server",
            "sockserve-mixins",
            "sockserve-prefork",
            "sockserve-tls",
        ],
        owns: &[],
    },
    Layer {
        package: "sockserve-examples",
        internal: &["sockserve"],
        // The request parser of `http_server` (examples/http/request.rs); the self-signed
        // certificate of `tls_echo`.
        owns: &["httparse", "rcgen"],
    },
    Layer {
        package: "xtask",
        internal: &[],
        // tempfile: a test helper everywhere else, and the temp directories of its own runs;
        // mio and nix (owned by the layers too): the bench's event-driven clients and its
        // open-file limit; rustls (owned by sockserve-tls too): the TLS rows' client.
        owns: &["serde_json", "tempfile", "mio", "nix", "rustls"],
    },
];

/// A table of files: (package, path in the package, with `/`).
type Files = &'static [(&'static str, &'static str)];

/// External crates any member may use as a normal, build or dev dependency.
pub(crate) const SHARED: &[&str] = &["log", "thiserror"];

/// External crates any member may use as a dev-dependency only (test helpers).
pub(crate) const TEST_HELPERS: &[&str] = &["tempfile", "proptest"];

/// Internal crates any member may use as a dev-dependency only, whatever its layer: the tests'
/// shared helpers. Like a program, such a crate may print (its runner of harness-less test
/// binaries reports on stdout, as libtest does).
pub(crate) const TEST_SUPPORT: &[&str] = &["sockserve-testsupport"];

/// The members that are programs, whose job includes printing; every other member is a library
/// crate, and `quiet` checks its `src/`.
pub(crate) const PROGRAMS: &[&str] = &["sockserve-examples", "xtask"];

/// The files of library crates that may write to stderr (package, path in the package): the
/// report of a failure when no logger is installed, so that it is never silent; the panic
/// hook of a forked request child, which reports a panic in one line without a backtrace; and
/// the prefork supervisor's lines (a worker died, a crash loop, an upgrade), on stderr when
/// no logger is installed.
pub(crate) const MAY_PRINT: Files = &[
    ("sockserve-server", "src/report.rs"),
    ("sockserve-mixins", "src/forking.rs"),
    ("sockserve-prefork", "src/say.rs"),
];

/// The files that may hold `unsafe` code (package, path in the package), each behind safe
/// functions of its crate. A member with no file here forbids `unsafe_code` in every crate root.
pub(crate) const UNSAFE_FILES: Files = &[
    // Raw libc calls that socket2 does not wrap (poll, fcntl, gethostname, getaddrinfo, ...).
    ("sockserve-socket", "src/sys.rs"),
    // Reading a `sockaddr_un` that socket2 hands back.
    ("sockserve-socket", "src/address.rs"),
    // A zeroed `addrinfo` hints struct.
    ("sockserve-socket", "src/resolve.rs"),
    // Inherited fds (LISTEN_FDS) and clearing the environment that announced them.
    ("sockserve-socket", "src/activation.rs"),
    // sigaction, and the self-pipe's fd in the handler.
    ("sockserve-reactor", "src/signals.rs"),
    // fork, and `_exit` in the child.
    ("sockserve-mixins", "src/forking.rs"),
    // fork, the descriptors put at 3 and 4 before execve, the inherited readiness pipe,
    // removing the role variable while single-threaded.
    ("sockserve-prefork", "src/spawn.rs"),
];

/// The files outside `sockserve-socket` whose code may still name `libc` (package, path in the
/// package). Each is a debt: the socket layer should offer the call instead.
pub(crate) const LIBC_ALLOWED: Files = &[];

/// The files whose doc examples still name internal crates by their workspace names (package,
/// path in the package): `doc-paths` passes them over until they are fixed.
// Empty: every library doc example names `sockserve_*::` paths.
pub(crate) const DOC_PATHS_PENDING: Files = &[];

/// The normal dependencies that their member's code does not name yet (package, dependency's
/// local name): `unused-deps` passes them over.
pub(crate) const UNUSED_DEPS_PENDING: &[(&str, &str)] = &[];

/// What `quiet` looks for in library code: the printing macros and std's process streams.
const PRINTING: &[&str] = &[
    "print!",
    "println!",
    "eprint!",
    "eprintln!",
    "stderr()",
    "stdout()",
];

/// The name of a check, as printed and as ARCHITECTURE.md cites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Internal dependencies point one way; every member is in the table.
    Layering,
    /// Each external crate is named only by its owner (or is shared, or a test helper).
    Ownership,
    /// `[lints] workspace = true` in every member.
    Lints,
    /// Every member dependency is `workspace = true`.
    WorkspaceDeps,
    /// Every library's `lib.rs` starts with `//!`.
    CrateDoc,
    /// Library crates never print (but for [`MAY_PRINT`]).
    Quiet,
    /// `unsafe` only in [`UNSAFE_FILES`]; other members forbid `unsafe_code`.
    Unsafe,
    /// No `libc` in code outside `sockserve-socket` (but for [`LIBC_ALLOWED`]).
    Libc,
    /// Every normal dependency is named in the member's code.
    UnusedDeps,
    /// Library doc examples name internal crates by their published names.
    DocPaths,
    /// `PARITY.md` has a row for every name of CPython's socketserver, and
    /// `examples/parity.rs` is generated from it.
    Parity,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Layering => "layering",
            Check::Ownership => "ownership",
            Check::Lints => "lints",
            Check::WorkspaceDeps => "workspace-deps",
            Check::CrateDoc => "crate-doc",
            Check::Quiet => "quiet",
            Check::Unsafe => "unsafe",
            Check::Libc => "libc",
            Check::UnusedDeps => "unused-deps",
            Check::DocPaths => "doc-paths",
            Check::Parity => "parity",
        })
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Which check found it.
    pub(crate) check: Check,
    /// The package at fault.
    pub(crate) package: String,
    /// What is wrong and what to do about it.
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.check, self.package, self.message)
    }
}

fn violation(check: Check, package: &str, message: String) -> Violation {
    Violation {
        check,
        package: package.to_owned(),
        message,
    }
}

/// The names of the checks, in the order `run` prints them.
const CHECKS: &[Check] = &[
    Check::Layering,
    Check::Ownership,
    Check::Lints,
    Check::WorkspaceDeps,
    Check::CrateDoc,
    Check::Quiet,
    Check::Unsafe,
    Check::Libc,
    Check::UnusedDeps,
    Check::DocPaths,
    Check::Parity,
];

/// Runs every check on the real workspace; fails listing every violation.
pub(crate) fn run() -> Result<()> {
    let workspace = Workspace::load()?;
    let (mut violations, notes) = check_workspace(&workspace)?;
    violations.extend(
        crate::parity::problems()?
            .into_iter()
            .map(|message| violation(Check::Parity, "sockserve", message)),
    );
    for note in &notes {
        eprintln!("tidy: note: {note}");
    }
    if violations.is_empty() {
        let names: Vec<String> = CHECKS.iter().map(ToString::to_string).collect();
        println!(
            "tidy: ok ({} members; checks: {})",
            workspace.packages.len(),
            names.join(", ")
        );
        return Ok(());
    }
    for v in &violations {
        eprintln!("tidy: {v}");
    }
    Err(format!(
        "{} violation(s) of ARCHITECTURE.md's invariants (see above)",
        violations.len()
    )
    .into())
}

/// What tidy reads of one member from disk.
#[derive(Debug)]
pub(crate) struct Sources {
    /// The package name.
    pub(crate) package: String,
    /// Its `Cargo.toml`.
    pub(crate) manifest: String,
    /// Its library root (`lib.rs`), if it has a library.
    pub(crate) lib: Option<String>,
    /// Its code: every `.rs` file under `src/` and every lib, bin and example root, each as
    /// `(path relative to the package, with `/`, text)`, sorted, once each.
    pub(crate) files: Vec<(String, String)>,
    /// The paths (as in `files`) of its lib, bin and example roots.
    pub(crate) roots: Vec<String>,
}

/// Every check on `workspace`, reading each member's manifest and code from disk: the
/// violations, and the notes of [`stale_entries`].
pub(crate) fn check_workspace(workspace: &Workspace) -> Result<(Vec<Violation>, Vec<String>)> {
    let sources = read_sources(workspace)?;
    Ok((
        check_sources(workspace, &sources),
        stale_entries(workspace, &sources),
    ))
}

/// Reads what the checks need of every member.
fn read_sources(workspace: &Workspace) -> Result<Vec<Sources>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
    };
    let mut out = Vec::new();
    for package in &workspace.packages {
        let root = package.manifest_path.parent().unwrap_or(Path::new("."));
        // The path as the tables spell it: relative to the package, with `/`.
        let relative = |file: &Path| {
            let relative = file.strip_prefix(root).unwrap_or(file);
            let parts: Vec<_> = relative.iter().map(|c| c.to_string_lossy()).collect();
            parts.join("/")
        };
        let mut paths = Vec::new();
        rust_files(&root.join("src"), &mut paths)?;
        paths.extend(package.roots.iter().cloned());
        // The modules of roots outside `src/`: an example's `mod http;` is `examples/http/`.
        for dir in module_dirs(root, &package.roots)? {
            rust_files(&dir, &mut paths)?;
        }
        let mut files: Vec<(String, String)> = Vec::new();
        for path in paths {
            let name = relative(&path);
            if !files.iter().any(|(seen, _)| *seen == name) {
                files.push((name, read(&path)?));
            }
        }
        files.sort();
        out.push(Sources {
            package: package.name.clone(),
            manifest: read(&package.manifest_path)?,
            lib: package.lib_src.as_deref().map(read).transpose()?,
            files,
            roots: package.roots.iter().map(|r| relative(r)).collect(),
        });
    }
    Ok(out)
}

/// Every check on `workspace`, over what [`read_sources`] read of its members.
fn check_sources(workspace: &Workspace, sources: &[Sources]) -> Vec<Violation> {
    let internal = internal_names(workspace);
    let mut violations = check_dependencies(workspace);
    for (package, source) in workspace.packages.iter().zip(sources) {
        let name = package.name.as_str();
        violations.extend(check_manifest(name, &source.manifest));
        if let Some(lib) = &source.lib {
            violations.extend(check_crate_doc(name, lib));
        }
        for (file, text) in &source.files {
            if file.starts_with("src/") {
                violations.extend(check_quiet(name, file, text));
            }
            violations.extend(check_unsafe(name, file, text));
            violations.extend(check_libc(name, file, text));
            violations.extend(check_doc_paths(name, file, text, &internal));
        }
        for root in &source.roots {
            if let Some((_, text)) = source.files.iter().find(|(file, _)| file == root) {
                violations.extend(check_forbid_unsafe(name, root, text));
            }
        }
        let texts: Vec<&str> = source.files.iter().map(|(_, text)| text.as_str()).collect();
        violations.extend(check_unused_deps(package, &texts));
    }
    violations
}

/// The entries of the allow-lists ([`UNSAFE_FILES`], [`LIBC_ALLOWED`], [`DOC_PATHS_PENDING`],
/// [`UNUSED_DEPS_PENDING`]) that no longer allow anything, as notes for `run` to print: the file
/// or dependency is gone, or the code passes the check without the entry. Notes, not
/// violations: the change that makes an entry stale is often made by someone who is not editing
/// tidy's tables.
pub(crate) fn stale_entries(workspace: &Workspace, sources: &[Sources]) -> Vec<String> {
    let internal = internal_names(workspace);
    let tables: [(&str, Files, Check); 3] = [
        ("UNSAFE_FILES", UNSAFE_FILES, Check::Unsafe),
        ("LIBC_ALLOWED", LIBC_ALLOWED, Check::Libc),
        ("DOC_PATHS_PENDING", DOC_PATHS_PENDING, Check::DocPaths),
    ];
    let mut notes = Vec::new();
    for (table, entries, check) in tables {
        for &(package, file) in entries {
            let text = sources
                .iter()
                .filter(|s| s.package == package)
                .flat_map(|s| &s.files)
                .find(|(name, _)| name == file)
                .map(|(_, text)| text.as_str());
            let why = match text {
                None => "does not exist",
                Some(text) => {
                    let needed = match check {
                        Check::Unsafe => !unsafe_lines(text).is_empty(),
                        Check::Libc => !libc_lines(text).is_empty(),
                        _ => !doc_path_lines(text, &internal).is_empty(),
                    };
                    if needed {
                        continue;
                    }
                    "passes without it"
                }
            };
            notes.push(format!(
                "{table} (xtask/src/tidy.rs) lists {package}'s {file}, which {why}: remove the \
                 entry"
            ));
        }
    }
    for &(package, dep) in UNUSED_DEPS_PENDING {
        let member = workspace.packages.iter().zip(sources);
        let unnamed = member
            .filter(|(p, _)| p.name == package)
            .flat_map(|(p, source)| {
                let texts: Vec<&str> = source.files.iter().map(|(_, t)| t.as_str()).collect();
                unnamed_deps(p, &texts)
            })
            .any(|(local, _)| local == dep);
        if !unnamed {
            notes.push(format!(
                "UNUSED_DEPS_PENDING (xtask/src/tidy.rs) lists {package}'s dependency `{dep}`, \
                 which its code names, or which it no longer has: remove the entry"
            ));
        }
    }
    notes
}

/// The folders beside the roots (lib, bin, example) that are outside the package's `src/`,
/// where their `mod` files live (`examples/http/` of `examples/http_server.rs`); its tests,
/// benches and build output are not its code.
fn module_dirs(package_root: &Path, roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let src = package_root.join("src");
    let mut dirs = Vec::new();
    for parent in roots.iter().filter_map(|r| r.parent()) {
        if parent.starts_with(&src) {
            continue;
        }
        let entries =
            std::fs::read_dir(parent).map_err(|e| format!("reading {}: {e}", parent.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", parent.display()))?
                .path();
            let skipped = ["src", "tests", "benches", "target"]
                .iter()
                .any(|name| path.file_name().is_some_and(|n| n == *name));
            if path.is_dir() && !skipped && !dirs.contains(&path) {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Every `.rs` file under `dir` (none if it does not exist), sorted, into `out`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display()).into()),
    };
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks `layering` and `ownership` over the dependency lists of `cargo metadata`.
pub(crate) fn check_dependencies(workspace: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for layer in LAYERS {
        if !workspace.packages.iter().any(|p| p.name == layer.package) {
            out.push(violation(
                Check::Layering,
                layer.package,
                "is in tidy's table but not a workspace member: update ARCHITECTURE.md and \
                 LAYERS in xtask/src/tidy.rs together"
                    .to_owned(),
            ));
        }
    }
    for package in &workspace.packages {
        match LAYERS.iter().find(|l| l.package == package.name) {
            None => out.push(violation(
                Check::Layering,
                &package.name,
                "is a workspace member missing from tidy's table: give it a row in \
                 ARCHITECTURE.md and in LAYERS (xtask/src/tidy.rs)"
                    .to_owned(),
            )),
            Some(layer) => check_package_deps(workspace, package, layer, &mut out),
        }
    }
    out
}

fn check_package_deps(
    workspace: &Workspace,
    package: &Package,
    layer: &Layer,
    out: &mut Vec<Violation>,
) {
    for dep in &package.dependencies {
        let name = dep.name.as_str();
        let kind = match dep.kind {
            DepKind::Normal => "dependency",
            DepKind::Build => "build-dependency",
            DepKind::Dev => "dev-dependency",
        };
        let internal = workspace.packages.iter().any(|p| p.name == name)
            || LAYERS.iter().any(|l| l.package == name);
        if internal && TEST_SUPPORT.contains(&name) {
            if dep.kind != DepKind::Dev {
                out.push(violation(
                    Check::Layering,
                    &package.name,
                    format!(
                        "may use the test support crate `{name}` only as a dev-dependency, not \
                         as a {kind}"
                    ),
                ));
            }
            continue;
        }
        if internal {
            // Dev-dependencies follow the same direction: a test of a lower layer that needs a
            // higher one belongs to the higher one.
            if !layer.internal.contains(&name) {
                let allowed = if layer.internal.is_empty() {
                    "none".to_owned()
                } else {
                    layer.internal.join(", ")
                };
                out.push(violation(
                    Check::Layering,
                    &package.name,
                    format!(
                        "may not depend on `{name}` ({kind}): dependencies point one way, down \
                         the table; its allowed internal dependencies: {allowed}"
                    ),
                ));
            }
            continue;
        }
        if layer.owns.contains(&name) || SHARED.contains(&name) {
            continue;
        }
        if dep.kind == DepKind::Dev && TEST_HELPERS.contains(&name) {
            continue;
        }
        let owners: Vec<&str> = LAYERS
            .iter()
            .filter(|l| l.owns.contains(&name))
            .map(|l| l.package)
            .collect();
        let message = if !owners.is_empty() {
            format!(
                "may not name `{name}` ({kind}): it belongs to {}; go through that layer's API",
                owners.join(" and ")
            )
        } else if TEST_HELPERS.contains(&name) {
            format!("may use the test helper `{name}` only as a dev-dependency, not as a {kind}")
        } else {
            format!(
                "names `{name}` ({kind}), which is in no row of the table: decide which crate owns \
                 it (or whether it is shared) in ARCHITECTURE.md and in xtask/src/tidy.rs"
            )
        };
        out.push(violation(Check::Ownership, &package.name, message));
    }
}

/// Checks `lints` and `workspace-deps` on one member manifest's text.
pub(crate) fn check_manifest(package: &str, text: &str) -> Vec<Violation> {
    let manifest = match manifest::Manifest::parse(text) {
        Ok(manifest) => manifest,
        Err(e) => {
            return vec![violation(
                Check::WorkspaceDeps,
                package,
                format!("Cargo.toml could not be read by tidy's manifest scanner: {e}"),
            )];
        }
    };
    let mut out = Vec::new();
    if !manifest.lints_workspace {
        out.push(violation(
            Check::Lints,
            package,
            "Cargo.toml lacks `[lints] workspace = true`: every member opts into the one lint \
             policy"
                .to_owned(),
        ));
    }
    for dep in manifest.dependencies.iter().filter(|d| !d.workspace) {
        out.push(violation(
            Check::WorkspaceDeps,
            package,
            format!(
                "Cargo.toml line {}: `{}` in [{}] does not use `workspace = true`: list it once \
                 in the root [workspace.dependencies] and write `{}.workspace = true`",
                dep.line, dep.name, dep.table, dep.name
            ),
        ));
    }
    out
}

/// Checks `crate-doc` on the text of a library's root file.
pub(crate) fn check_crate_doc(package: &str, lib_rs: &str) -> Vec<Violation> {
    if lib_rs.starts_with("//!") {
        return Vec::new();
    }
    vec![violation(
        Check::CrateDoc,
        package,
        "its library root (lib.rs) does not start with a `//!` crate doc saying what the crate is"
            .to_owned(),
    )]
}

/// Checks `quiet` on the text of one source file of a member's `src/`: a library crate logs
/// through `log` and never prints, but in the files of [`MAY_PRINT`]. Comments (doc examples
/// among them) and the contents of strings are not code.
pub(crate) fn check_quiet(package: &str, file: &str, text: &str) -> Vec<Violation> {
    if PROGRAMS.contains(&package)
        || TEST_SUPPORT.contains(&package)
        || MAY_PRINT.contains(&(package, file))
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (number, code) in code::code_only(text).lines().enumerate() {
        let Some(token) = PRINTING.iter().find(|token| mentions(code, token)) else {
            continue;
        };
        out.push(violation(
            Check::Quiet,
            package,
            format!(
                "{file} line {}: `{token}`: library crates never print; log through `log` \
                 (the only files that may write to stderr: {})",
                number + 1,
                listed(MAY_PRINT)
            ),
        ));
    }
    out
}

/// A table of files as a message lists it: `sockserve-server's src/report.rs, ...`.
fn listed(files: Files) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|(package, file)| format!("{package}'s {file}"))
        .collect();
    files.join(", ")
}

/// Whether `code` contains `token` not as the tail of a longer name (`my_stderr()` is not
/// `stderr()`, `eprint!` is not `print!`).
fn mentions(code: &str, token: &str) -> bool {
    code.match_indices(token).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The lines of `text` whose code says `unsafe` (a block, fn, impl or trait).
fn unsafe_lines(text: &str) -> Vec<usize> {
    let code = code::code_only(text);
    let mut lines: Vec<usize> = code::tokens(&code)
        .iter()
        .filter(|t| t.text == "unsafe")
        .map(|t| t.line)
        .collect();
    lines.dedup();
    lines
}

/// Checks `unsafe` on one file of a member's code: `unsafe` only in the files of
/// [`UNSAFE_FILES`].
pub(crate) fn check_unsafe(package: &str, file: &str, text: &str) -> Vec<Violation> {
    if UNSAFE_FILES.contains(&(package, file)) {
        return Vec::new();
    }
    unsafe_lines(text)
        .into_iter()
        .map(|line| {
            violation(
                Check::Unsafe,
                package,
                format!(
                    "{file} line {line}: `unsafe` outside the files that may hold it: call a \
                     safe function of the socket layer instead (or, if this file must be one of \
                     them, add it to UNSAFE_FILES in xtask/src/tidy.rs, with its reason, and to \
                     ARCHITECTURE.md; today: {})",
                    listed(UNSAFE_FILES)
                ),
            )
        })
        .collect()
}

/// Checks `unsafe` on one crate root (lib, bin or example) of a member: a member with no file in
/// [`UNSAFE_FILES`] says `#![forbid(unsafe_code)]` in each of its roots, so the compiler keeps it
/// so.
pub(crate) fn check_forbid_unsafe(package: &str, root: &str, text: &str) -> Vec<Violation> {
    if UNSAFE_FILES.iter().any(|(p, _)| *p == package) || forbids_unsafe(text) {
        return Vec::new();
    }
    vec![violation(
        Check::Unsafe,
        package,
        format!(
            "crate root {root} lacks `#![forbid(unsafe_code)]`: a member with no file in \
             UNSAFE_FILES (xtask/src/tidy.rs) forbids unsafe code in every lib, bin and example \
             root; add the attribute after the crate doc"
        ),
    )]
}

/// Whether the code of `text` has an inner `#![forbid(...)]` attribute naming `unsafe_code`.
fn forbids_unsafe(text: &str) -> bool {
    let code = code::code_only(text);
    let tokens = code::tokens(&code);
    let texts: Vec<&str> = tokens.iter().map(|t| t.text).collect();
    texts.windows(5).enumerate().any(|(at, w)| {
        w == ["#", "!", "[", "forbid", "("]
            && texts[at + 5..]
                .iter()
                .take_while(|&&t| t != ")")
                .any(|&t| t == "unsafe_code")
    })
}

/// The lines of `text` whose code names `libc`: a path `libc::...`, or `nix::libc`.
fn libc_lines(text: &str) -> Vec<(usize, &'static str)> {
    let code = code::code_only(text);
    let tokens = code::tokens(&code);
    let mut out = Vec::new();
    for (k, token) in tokens.iter().enumerate() {
        if token.text != "libc" {
            continue;
        }
        let before = |n: usize| k.checked_sub(n).map(|i| tokens[i].text);
        let after = tokens.get(k + 1).map(|t| t.text);
        let found = if before(1) == Some("::") && before(2) == Some("nix") {
            "nix::libc"
        } else if after == Some("::") {
            "libc::"
        } else {
            continue;
        };
        if out.last().is_none_or(|&(line, _)| line != token.line) {
            out.push((token.line, found));
        }
    }
    out
}

/// Checks `libc` on one file of a member's code: only `sockserve-socket` names `libc`, in code as
/// in its manifest (`ownership` sees only manifests; `nix` re-exports `libc` as `nix::libc`).
pub(crate) fn check_libc(package: &str, file: &str, text: &str) -> Vec<Violation> {
    if package == "sockserve-socket" || LIBC_ALLOWED.contains(&(package, file)) {
        return Vec::new();
    }
    libc_lines(text)
        .into_iter()
        .map(|(line, found)| {
            violation(
                Check::Libc,
                package,
                format!(
                    "{file} line {line}: `{found}`: only sockserve-socket names libc; call (or \
                     add) a safe function of the socket layer instead"
                ),
            )
        })
        .collect()
}

/// The local names of the normal dependencies of `package` that the code of `files` never
/// names, once each, in the manifest's order.
fn unnamed_deps(package: &Package, files: &[&str]) -> Vec<(String, String)> {
    let mut named: Vec<String> = Vec::new();
    for text in files {
        let code = code::code_only(text);
        let tokens = code::tokens(&code);
        for (k, token) in tokens.iter().enumerate() {
            let before = k.checked_sub(1).map(|i| tokens[i].text);
            let after = tokens.get(k + 1).map(|t| t.text);
            let used = matches!(before, Some("use" | "crate"))
                || (matches!(after, Some("::" | "!")) && code::starts_path(&tokens, k));
            if used && !named.iter().any(|n| n == token.text) {
                named.push(token.text.to_owned());
            }
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for dep in package
        .dependencies
        .iter()
        .filter(|d| d.kind == DepKind::Normal)
    {
        let local = dep.local_name();
        if !named.contains(&local) && !out.iter().any(|(seen, _)| *seen == local) {
            out.push((local, dep.name.clone()));
        }
    }
    out
}

/// Checks `unused-deps` on one member: each of its normal dependencies is named, by its local
/// name, in the code of `files` (the member's code: its `src/` and its roots): as a path
/// (`log::info!`, `::log::info!`), a macro (`name!`), or in `use name` / `extern crate name`.
/// A dependency that only the tests or doc examples use belongs in `[dev-dependencies]`.
pub(crate) fn check_unused_deps(package: &Package, files: &[&str]) -> Vec<Violation> {
    unnamed_deps(package, files)
        .into_iter()
        .filter(|(local, _)| {
            !UNUSED_DEPS_PENDING.contains(&(package.name.as_str(), local.as_str()))
        })
        .map(|(local, dep)| {
            violation(
                Check::UnusedDeps,
                &package.name,
                format!(
                    "depends on `{dep}` (as `{local}`), which its code never names (no \
                     `{local}::`, `use {local}` or `{local}!` outside comments, tests and doc \
                     examples): remove it from [dependencies] in its Cargo.toml, or move it to \
                     [dev-dependencies] if only tests or doc examples use it"
                ),
            )
        })
        .collect()
}

/// The workspace-internal crates as their dependents name them (local name, package): the
/// renames of internal dependencies (`socket` for `sockserve-socket`). A user's project names
/// them by the package (`sockserve_socket`), so a doc example must too.
pub(crate) fn internal_names(workspace: &Workspace) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for dep in workspace.packages.iter().flat_map(|p| &p.dependencies) {
        let internal = workspace.packages.iter().any(|p| p.name == dep.name);
        let local = dep.local_name();
        if internal
            && local != dep.name.replace('-', "_")
            && !names.iter().any(|(name, _)| *name == local)
        {
            names.push((local, dep.name.clone()));
        }
    }
    names.sort();
    names
}

/// The lines of the doc examples of `text` that name an internal crate by its workspace name, as
/// a path's first segment: `(line, local name, package)`.
fn doc_path_lines<'a>(
    text: &str,
    internal: &'a [(String, String)],
) -> Vec<(usize, &'a str, &'a str)> {
    let mut out = Vec::new();
    for block in code::doc_examples(text) {
        let joined: Vec<&str> = block.iter().map(|l| l.text.as_str()).collect();
        let code = code::code_only(&joined.join("\n"));
        let tokens = code::tokens(&code);
        for (k, token) in tokens.iter().enumerate() {
            let Some((local, package)) = internal.iter().find(|(name, _)| name == token.text)
            else {
                continue;
            };
            if tokens.get(k + 1).map(|t| t.text) == Some("::") && code::starts_path(&tokens, k) {
                let line = block[token.line - 1].line;
                if out.last().is_none_or(|&(last, _, _)| last != line) {
                    out.push((line, local.as_str(), package.as_str()));
                }
            }
        }
    }
    out
}

/// Checks `doc-paths` on one file of a library crate: its doc examples (```` ``` ```` blocks of
/// `///` and `//!` comments, hidden `# ` lines included) name no internal crate by its workspace
/// name (`socket::`), which a user's project does not have: it has `sockserve_socket::`, or the
/// layer's re-export (`sockserve_server::socket::`). `internal` is [`internal_names`].
pub(crate) fn check_doc_paths(
    package: &str,
    file: &str,
    text: &str,
    internal: &[(String, String)],
) -> Vec<Violation> {
    if PROGRAMS.contains(&package) || DOC_PATHS_PENDING.contains(&(package, file)) {
        return Vec::new();
    }
    doc_path_lines(text, internal)
        .into_iter()
        .map(|(line, local, dep)| {
            violation(
                Check::DocPaths,
                package,
                format!(
                    "{file} line {line}: a doc example names `{local}::`, the workspace's own \
                     name for {dep}; pasted into a user's project it does not compile: write \
                     `{}::` (or a re-export of this crate's)",
                    dep.replace('-', "_")
                ),
            )
        })
        .collect()
}
