//! `cargo xtask tidy`: the invariants of ARCHITECTURE.md, checked against the code.
//!
//! The house's table lives here as data ([`LAYERS`], [`SHARED`], [`TEST_HELPERS`], [`PROGRAMS`],
//! [`MAY_PRINT`]); every check is a pure function from a parsed model (`cargo metadata`, a
//! manifest's text, a source file's text) to a list of [`Violation`]s, so the tests can show each check failing on a synthetic
//! workspace. `run` only gathers the inputs and prints the verdict.
//!
//! | check            | invariant                                                                  |
//! |------------------|----------------------------------------------------------------------------|
//! | `layering`       | internal dependencies point one way, down the table; every member is in it |
//! | `ownership`      | an external crate is named only by the crate that owns it (or is shared)    |
//! | `lints`          | every member has `[lints] workspace = true`                                |
//! | `workspace-deps` | every member dependency is `workspace = true`: versions live in the root   |
//! | `crate-doc`      | every library's `lib.rs` starts with a `//!` crate doc                     |
//! | `quiet`          | library crates' `src/` never print, but for the files of [`MAY_PRINT`]     |

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
        owns: &[],
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
        package: "sockserve",
        internal: &[
            "sockserve-socket",
            "sockserve-reactor",
            "sockserve-handler",
            "sockserve-server",
            "sockserve-mixins",
        ],
        owns: &[],
    },
    Layer {
        package: "sockserve-examples",
        internal: &["sockserve"],
        owns: &[],
    },
    Layer {
        package: "xtask",
        internal: &[],
        // tempfile: a test helper everywhere else, and the temp directories of its own runs.
        owns: &["serde_json", "tempfile"],
    },
];

/// External crates any member may use as a normal, build or dev dependency.
pub(crate) const SHARED: &[&str] = &["log", "thiserror"];

/// External crates any member may use as a dev-dependency only (test helpers).
pub(crate) const TEST_HELPERS: &[&str] = &["tempfile"];

/// The members that are programs, whose job includes printing; every other member is a library
/// crate, and `quiet` checks its `src/`.
pub(crate) const PROGRAMS: &[&str] = &["sockserve-examples", "xtask"];

/// The files of library crates that may write to stderr (package, path in the package): the
/// report of a failure when no logger is installed, so that it is never silent; and the panic
/// hook of a forked request child, which reports a panic in one line without a backtrace.
pub(crate) const MAY_PRINT: &[(&str, &str)] = &[
    ("sockserve-server", "src/report.rs"),
    ("sockserve-mixins", "src/forking.rs"),
];

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

/// Runs every check on the real workspace; fails listing every violation.
pub(crate) fn run() -> Result<()> {
    let workspace = Workspace::load()?;
    let violations = check_workspace(&workspace)?;
    if violations.is_empty() {
        println!(
            "tidy: ok ({} members; checks: layering, ownership, lints, workspace-deps, crate-doc, \
             quiet)",
            workspace.packages.len()
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

/// Every check on `workspace`, reading each member's manifest, library root and `src/` files
/// from disk.
pub(crate) fn check_workspace(workspace: &Workspace) -> Result<Vec<Violation>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
    };
    let mut violations = check_dependencies(workspace);
    for package in &workspace.packages {
        violations.extend(check_manifest(
            &package.name,
            &read(&package.manifest_path)?,
        ));
        if let Some(lib) = &package.lib_src {
            violations.extend(check_crate_doc(&package.name, &read(lib)?));
        }
        let Some(root) = package.manifest_path.parent() else {
            continue;
        };
        let mut files = Vec::new();
        rust_files(&root.join("src"), &mut files)?;
        for file in files {
            // The path as MAY_PRINT spells it: relative to the package, with `/`.
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let relative: Vec<_> = relative.iter().map(|c| c.to_string_lossy()).collect();
            violations.extend(check_quiet(
                &package.name,
                &relative.join("/"),
                &read(&file)?,
            ));
        }
    }
    Ok(violations)
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
/// among them) are not code: only the part of each line before `//` counts.
pub(crate) fn check_quiet(package: &str, file: &str, text: &str) -> Vec<Violation> {
    if PROGRAMS.contains(&package) || MAY_PRINT.contains(&(package, file)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let Some(token) = PRINTING.iter().find(|token| mentions(code, token)) else {
            continue;
        };
        let exceptions: Vec<String> = MAY_PRINT
            .iter()
            .map(|(package, file)| format!("{package}'s {file}"))
            .collect();
        out.push(violation(
            Check::Quiet,
            package,
            format!(
                "{file} line {}: `{token}`: library crates never print; log through `log` \
                 (the only files that may write to stderr: {})",
                number + 1,
                exceptions.join(", ")
            ),
        ));
    }
    out
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
