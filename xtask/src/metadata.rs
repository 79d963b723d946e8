//! The workspace as `cargo metadata --no-deps` describes it, reduced to what tidy, integration
//! and bench need. Parsing is a pure function of the JSON, so tests can feed synthetic metadata.

use std::path::PathBuf;

use serde_json::Value;

use crate::Result;
use crate::cmd::Cmd;

/// The workspace members and where cargo puts build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workspace {
    /// Every workspace member, in cargo's order.
    pub(crate) packages: Vec<Package>,
    /// `target_directory`: honours `CARGO_TARGET_DIR` and `build.target-dir`.
    pub(crate) target_directory: PathBuf,
}

/// One workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    /// The package name (`sockserve-socket`).
    pub(crate) name: String,
    /// Path of its `Cargo.toml`.
    pub(crate) manifest_path: PathBuf,
    /// Its direct dependencies, every kind and target.
    pub(crate) dependencies: Vec<Dependency>,
    /// The root file of its library target, if it has one.
    pub(crate) lib_src: Option<PathBuf>,
    /// The root files of its library, binary and example targets, in cargo's order: the crate
    /// roots of its own code (tests, benches and build scripts aside). For most members they are
    /// under `src/`; the examples' are not (`examples/lib.rs`, `examples/*.rs`).
    pub(crate) roots: Vec<PathBuf>,
}

/// One direct dependency as declared in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    /// The depended-on package's name (not the local rename): `sockserve-socket`, `mio`.
    pub(crate) name: String,
    /// The local name the manifest gives it (`socket` for `socket = { package =
    /// "sockserve-socket", ... }`), if it renames it.
    pub(crate) rename: Option<String>,
    /// Normal, dev or build.
    pub(crate) kind: DepKind,
}

/// Which table a dependency was declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepKind {
    /// `[dependencies]`
    Normal,
    /// `[dev-dependencies]`
    Dev,
    /// `[build-dependencies]`
    Build,
}

impl Dependency {
    /// The name code uses for it: the rename if there is one, else the package name with `-` as
    /// `_` (`crossbeam-channel` is `crossbeam_channel::`).
    pub(crate) fn local_name(&self) -> String {
        self.rename
            .clone()
            .unwrap_or_else(|| self.name.replace('-', "_"))
    }
}

impl Workspace {
    /// Runs `cargo metadata` for the workspace. `--no-deps` lists what the manifests declare
    /// without resolving the graph, so it needs neither the network nor the lock file.
    pub(crate) fn load() -> Result<Workspace> {
        let json = Cmd::cargo(&["metadata", "--format-version", "1", "--no-deps"]).read()?;
        Workspace::from_json(&json)
    }

    /// Parses the JSON printed by `cargo metadata --format-version 1`.
    pub(crate) fn from_json(json: &str) -> Result<Workspace> {
        let root: Value =
            serde_json::from_str(json).map_err(|e| format!("cargo metadata: bad JSON: {e}"))?;
        let members: Vec<&str> = array(&root, "workspace_members")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut packages = Vec::new();
        for package in array(&root, "packages")? {
            let id = string(package, "id")?;
            if !members.contains(&id) {
                continue;
            }
            let dependencies = array(package, "dependencies")?
                .iter()
                .map(|dep| {
                    let kind = match dep.get("kind").and_then(Value::as_str) {
                        None => DepKind::Normal,
                        Some("dev") => DepKind::Dev,
                        Some("build") => DepKind::Build,
                        Some(other) => return Err(format!("unknown dependency kind `{other}`")),
                    };
                    Ok(Dependency {
                        name: string(dep, "name")?.to_owned(),
                        rename: dep.get("rename").and_then(Value::as_str).map(str::to_owned),
                        kind,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut lib_src = None;
            let mut roots = Vec::new();
            for target in array(package, "targets")? {
                let kinds = array(target, "kind")?;
                let is = |wanted: &[&str]| {
                    kinds
                        .iter()
                        .any(|k| k.as_str().is_some_and(|k| wanted.contains(&k)))
                };
                let library = is(&["lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro"]);
                if !library && !is(&["bin", "example"]) {
                    continue;
                }
                let src_path = PathBuf::from(string(target, "src_path")?);
                if library && lib_src.is_none() {
                    lib_src = Some(src_path.clone());
                }
                roots.push(src_path);
            }
            packages.push(Package {
                name: string(package, "name")?.to_owned(),
                manifest_path: string(package, "manifest_path")?.into(),
                dependencies,
                lib_src,
                roots,
            });
        }
        Ok(Workspace {
            packages,
            target_directory: string(&root, "target_directory")?.into(),
        })
    }
}

fn array<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    value[key]
        .as_array()
        .ok_or_else(|| format!("cargo metadata: `{key}` is not an array"))
}

fn string<'a>(value: &'a Value, key: &str) -> Result<&'a str, String> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("cargo metadata: `{key}` is not a string"))
}
