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
}

/// One direct dependency as declared in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    /// The depended-on package's name (not the local rename): `sockserve-socket`, `mio`.
    pub(crate) name: String,
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
                        kind,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let lib_src = array(package, "targets")?
                .iter()
                .find(|target| {
                    target["kind"].as_array().is_some_and(|kinds| {
                        kinds.iter().any(|k| {
                            matches!(k.as_str(), Some("lib" | "rlib" | "dylib" | "proc-macro"))
                        })
                    })
                })
                .map(|target| string(target, "src_path").map(PathBuf::from))
                .transpose()?;
            packages.push(Package {
                name: string(package, "name")?.to_owned(),
                manifest_path: string(package, "manifest_path")?.into(),
                dependencies,
                lib_src,
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
