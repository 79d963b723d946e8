//! Tidy's checks on synthetic workspaces (each must fail on the fault it exists for) and on the
//! real one (it must pass).

use serde_json::json;

use super::*;

/// A dependency: `(name, kind)` with kind `None`, `Some("dev")` or `Some("build")`.
type Dep = (&'static str, Option<&'static str>);
/// A member: its name and its dependencies.
type Member = (&'static str, Vec<Dep>);

/// `cargo metadata --format-version 1 --no-deps` JSON for a workspace of `packages`.
fn metadata(packages: &[Member]) -> String {
    let packages: Vec<_> = packages
        .iter()
        .map(|(name, deps)| {
            json!({
                "name": name,
                "id": format!("path+file:///ws/{name}#0.1.0"),
                "manifest_path": format!("/ws/{name}/Cargo.toml"),
                "dependencies": deps.iter().map(|(dep, kind)| json!({
                    "name": dep,
                    "rename": null,
                    "kind": kind,
                    "req": "*",
                })).collect::<Vec<_>>(),
                "targets": [{
                    "kind": ["lib"],
                    "name": name,
                    "src_path": format!("/ws/{name}/src/lib.rs"),
                }],
            })
        })
        .collect();
    let members: Vec<_> = packages.iter().map(|p| p["id"].clone()).collect();
    json!({
        "packages": packages,
        "workspace_members": members,
        "target_directory": "/ws/target",
        "version": 1,
    })
    .to_string()
}

/// The house as ARCHITECTURE.md draws it, every allowed edge present once.
fn good_house() -> Vec<Member> {
    vec![
        (
            "sockserve-socket",
            vec![
                ("socket2", None),
                ("libc", None),
                ("log", None),
                ("tempfile", Some("dev")),
            ],
        ),
        (
            "sockserve-reactor",
            vec![("sockserve-socket", None), ("mio", None), ("nix", None)],
        ),
        (
            "sockserve-handler",
            vec![("sockserve-socket", None), ("thiserror", None)],
        ),
        (
            "sockserve-server",
            vec![
                ("sockserve-socket", None),
                ("sockserve-reactor", None),
                ("sockserve-handler", None),
            ],
        ),
        (
            "sockserve-mixins",
            vec![
                ("sockserve-server", None),
                ("crossbeam-channel", None),
                ("nix", None),
                ("sockserve-socket", Some("dev")),
            ],
        ),
        (
            "sockserve",
            vec![
                ("sockserve-socket", None),
                ("sockserve-reactor", None),
                ("sockserve-handler", None),
                ("sockserve-server", None),
                ("sockserve-mixins", None),
            ],
        ),
        ("sockserve-examples", vec![("sockserve", None)]),
        ("xtask", vec![("serde_json", None)]),
    ]
}

/// `good_house` with `dep` (of `kind`) added to `package`.
fn house_with(package: &str, dep: &'static str, kind: Option<&'static str>) -> Workspace {
    let mut house = good_house();
    house
        .iter_mut()
        .find(|(name, _)| *name == package)
        .unwrap()
        .1
        .push((dep, kind));
    Workspace::from_json(&metadata(&house)).unwrap()
}

fn checks(violations: &[Violation]) -> Vec<(Check, &str)> {
    violations
        .iter()
        .map(|v| (v.check, v.package.as_str()))
        .collect()
}

#[test]
fn the_drawn_house_passes() {
    let workspace = Workspace::from_json(&metadata(&good_house())).unwrap();
    assert_eq!(check_dependencies(&workspace), []);
}

#[test]
fn handler_naming_mio_fails_ownership() {
    let violations = check_dependencies(&house_with("sockserve-handler", "mio", None));
    assert_eq!(
        checks(&violations),
        [(Check::Ownership, "sockserve-handler")]
    );
    assert!(
        violations[0]
            .message
            .contains("belongs to sockserve-reactor"),
        "{}",
        violations[0]
    );
}

#[test]
fn socket_depending_on_server_fails_layering() {
    let violations = check_dependencies(&house_with("sockserve-socket", "sockserve-server", None));
    assert_eq!(checks(&violations), [(Check::Layering, "sockserve-socket")]);
    assert!(
        violations[0]
            .message
            .contains("allowed internal dependencies: none"),
        "{}",
        violations[0]
    );
}

#[test]
fn upward_dev_dependencies_fail_too() {
    let violations = check_dependencies(&house_with(
        "sockserve-server",
        "sockserve-mixins",
        Some("dev"),
    ));
    assert_eq!(checks(&violations), [(Check::Layering, "sockserve-server")]);
}

#[test]
fn examples_use_the_facade_only() {
    for dep in ["sockserve-server", "xtask"] {
        let violations = check_dependencies(&house_with("sockserve-examples", dep, None));
        assert_eq!(
            checks(&violations),
            [(Check::Layering, "sockserve-examples")]
        );
    }
    for dep in ["socket2", "mio", "nix", "libc", "crossbeam-channel"] {
        let violations = check_dependencies(&house_with("sockserve-examples", dep, None));
        assert_eq!(
            checks(&violations),
            [(Check::Ownership, "sockserve-examples")]
        );
    }
}

#[test]
fn nix_is_shared_by_reactor_and_mixins_only() {
    let violations = check_dependencies(&house_with("sockserve-server", "nix", None));
    assert!(
        violations[0]
            .message
            .contains("sockserve-reactor and sockserve-mixins"),
        "{}",
        violations[0]
    );
}

#[test]
fn xtask_may_not_use_the_crates_it_checks() {
    let violations = check_dependencies(&house_with("xtask", "sockserve", None));
    assert_eq!(checks(&violations), [(Check::Layering, "xtask")]);
}

#[test]
fn test_helpers_only_as_dev_dependencies() {
    let workspace = house_with("sockserve-server", "tempfile", Some("dev"));
    assert_eq!(check_dependencies(&workspace), []);
    let violations = check_dependencies(&house_with("sockserve-server", "tempfile", None));
    assert_eq!(
        checks(&violations),
        [(Check::Ownership, "sockserve-server")]
    );
}

#[test]
fn an_external_crate_outside_the_table_fails() {
    let violations = check_dependencies(&house_with("sockserve-socket", "tokio", None));
    assert_eq!(
        checks(&violations),
        [(Check::Ownership, "sockserve-socket")]
    );
    assert!(violations[0].message.contains("in no row of the table"));
}

#[test]
fn members_and_table_must_agree() {
    let mut house = good_house();
    house.retain(|(name, _)| *name != "sockserve-handler");
    house.push(("sockserve-extra", vec![]));
    let workspace = Workspace::from_json(&metadata(&house)).unwrap();
    let violations = check_dependencies(&workspace);
    // The edges to the missing member are still judged as internal ones (and allowed).
    assert_eq!(
        checks(&violations),
        [
            (Check::Layering, "sockserve-handler"),
            (Check::Layering, "sockserve-extra"),
        ]
    );
}

#[test]
fn manifest_checks_fail_on_versions_and_missing_lints() {
    let text = "[package]\nname = \"x\"\n\n[dependencies]\nmio = \"1\"\nlog.workspace = true\n";
    let violations = check_manifest("sockserve-reactor", text);
    assert_eq!(
        checks(&violations),
        [
            (Check::Lints, "sockserve-reactor"),
            (Check::WorkspaceDeps, "sockserve-reactor"),
        ]
    );
    assert!(
        violations[1].message.contains("line 5: `mio`"),
        "{}",
        violations[1]
    );
    let good = "[dependencies]\nmio.workspace = true\n\n[lints]\nworkspace = true\n";
    assert_eq!(check_manifest("sockserve-reactor", good), []);
}

#[test]
fn crate_doc_must_come_first() {
    assert_eq!(check_crate_doc("x", "//! The x layer.\n\nmod a;\n"), []);
    let violations = check_crate_doc("x", "#![allow(dead_code)]\n//! Late.\n");
    assert_eq!(checks(&violations), [(Check::CrateDoc, "x")]);
    assert_eq!(checks(&check_crate_doc("x", "")), [(Check::CrateDoc, "x")]);
}

#[test]
fn library_crates_do_not_print() {
    let code = "fn f() {\n    eprintln!(\"oops\");\n}\n";
    let violations = check_quiet("sockserve-socket", "src/socket.rs", code);
    assert_eq!(checks(&violations), [(Check::Quiet, "sockserve-socket")]);
    assert!(
        violations[0]
            .message
            .contains("src/socket.rs line 2: `eprintln!`"),
        "{}",
        violations[0]
    );
    for bad in [
        "print!(\"x\");",
        "println!();",
        "eprint!(\"x\");",
        "let e = std::io::stderr();",
        "io::stdout().flush()?;",
        "x(); eprintln!(\"after code\"); // and a comment",
    ] {
        let violations = check_quiet("sockserve-mixins", "src/lib.rs", bad);
        assert_eq!(
            checks(&violations),
            [(Check::Quiet, "sockserve-mixins")],
            "{bad}"
        );
    }
    // Doc examples and comments are not the library's code; longer names are other names.
    for fine in [
        "/// println!(\"in a doc example\");",
        "//! eprintln!(\"in the crate doc\");",
        "x(); // not eprintln!: it takes a lock",
        "let s = my_stderr();",
        "writeln!(out, \"x\")?;",
    ] {
        assert_eq!(
            check_quiet("sockserve-mixins", "src/lib.rs", fine),
            [],
            "{fine}"
        );
    }
}

#[test]
fn only_the_named_file_and_programs_may_print() {
    let code = "let _ = std::io::stderr().as_fd().try_clone_to_owned();\n";
    assert_eq!(check_quiet("sockserve-server", "src/report.rs", code), []);
    let violations = check_quiet("sockserve-server", "src/hooks.rs", code);
    assert_eq!(checks(&violations), [(Check::Quiet, "sockserve-server")]);
    assert!(
        violations[0]
            .message
            .contains("may write to stderr: sockserve-server's src/report.rs"),
        "{}",
        violations[0]
    );
    // The same path in another crate is not the exception.
    let violations = check_quiet("sockserve-mixins", "src/report.rs", code);
    assert_eq!(checks(&violations), [(Check::Quiet, "sockserve-mixins")]);
    for program in PROGRAMS {
        assert_eq!(check_quiet(program, "src/main.rs", "println!(\"hi\");"), []);
    }
}

#[test]
fn metadata_parsing_keeps_members_kinds_and_lib_roots() {
    let workspace = Workspace::from_json(&metadata(&good_house())).unwrap();
    assert_eq!(workspace.packages.len(), LAYERS.len());
    let socket = &workspace.packages[0];
    assert_eq!(socket.name, "sockserve-socket");
    assert_eq!(socket.dependencies[3].kind, DepKind::Dev);
    assert_eq!(
        socket.lib_src.as_deref(),
        Some(std::path::Path::new("/ws/sockserve-socket/src/lib.rs"))
    );
    assert!(Workspace::from_json("{\"packages\": 3}").is_err());
}

/// The real workspace keeps its own invariants: this is `cargo xtask tidy`, minus the printing.
#[test]
fn the_real_workspace_passes() {
    let workspace = Workspace::load().unwrap();
    let violations = check_workspace(&workspace).unwrap();
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}
