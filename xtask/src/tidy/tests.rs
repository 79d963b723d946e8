//! Tidy's checks on synthetic workspaces (each must fail on the fault it exists for) and on the
//! real one (it must pass).

use serde_json::json;

use super::*;

/// A dependency: `(name, kind)` with kind `None`, `Some("dev")` or `Some("build")`.
type Dep = (&'static str, Option<&'static str>);
/// A member: its name and its dependencies.
type Member = (&'static str, Vec<Dep>);

/// `cargo metadata --format-version 1 --no-deps` JSON for a workspace of `packages`. As in the
/// real workspace, internal dependencies are renamed to their layer word (`sockserve-socket` is
/// `socket`); every member has a library (`xtask` a binary instead), the examples an example
/// target beside it, and every member a test target.
fn metadata(packages: &[Member]) -> String {
    let packages: Vec<_> = packages
        .iter()
        .map(|(name, deps)| {
            let target = |kind: &str, path: &str| {
                json!({
                    "kind": [kind],
                    "name": name,
                    "src_path": format!("/ws/{name}/{path}"),
                })
            };
            let mut targets = match *name {
                "xtask" => vec![target("bin", "src/main.rs")],
                "sockserve-examples" => vec![target("lib", "lib.rs"), target("example", "echo.rs")],
                _ => vec![target("lib", "src/lib.rs")],
            };
            targets.push(target("test", "tests/it.rs"));
            json!({
                "name": name,
                "id": format!("path+file:///ws/{name}#0.1.0"),
                "manifest_path": format!("/ws/{name}/Cargo.toml"),
                "dependencies": deps.iter().map(|(dep, kind)| json!({
                    "name": dep,
                    "rename": dep.strip_prefix("sockserve-"),
                    "kind": kind,
                    "req": "*",
                })).collect::<Vec<_>>(),
                "targets": targets,
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
        ("sockserve-testsupport", vec![("sockserve-socket", None)]),
        (
            "sockserve-reactor",
            vec![
                ("sockserve-socket", None),
                ("mio", None),
                ("nix", None),
                ("sockserve-testsupport", Some("dev")),
            ],
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
            "sockserve-prefork",
            vec![
                ("sockserve-socket", None),
                ("sockserve-reactor", None),
                ("sockserve-server", None),
                ("nix", None),
                ("sockserve-testsupport", Some("dev")),
            ],
        ),
        (
            "sockserve-tls",
            vec![
                ("sockserve-server", None),
                ("rustls", None),
                ("rcgen", Some("dev")),
                ("sockserve-mixins", Some("dev")),
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
                ("sockserve-prefork", None),
                ("sockserve-tls", None),
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
fn nix_is_shared_by_reactor_mixins_and_prefork_only() {
    let violations = check_dependencies(&house_with("sockserve-server", "nix", None));
    assert!(
        violations[0]
            .message
            .contains("sockserve-reactor and sockserve-mixins and sockserve-prefork"),
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
fn test_support_only_as_a_dev_dependency() {
    // Any layer's tests may use it, the lowest included...
    let dev = check_dependencies(&house_with(
        "sockserve-handler",
        "sockserve-testsupport",
        Some("dev"),
    ));
    assert_eq!(dev, []);
    // ...but no library may ship with it.
    let violations = check_dependencies(&house_with(
        "sockserve-server",
        "sockserve-testsupport",
        None,
    ));
    assert_eq!(checks(&violations), [(Check::Layering, "sockserve-server")]);
    assert!(
        violations[0].message.contains("only as a dev-dependency"),
        "{violations:?}"
    );
}

#[test]
fn test_support_may_print() {
    let code = "pub fn report() {\n    println!(\"suite: ok\");\n}\n";
    assert_eq!(check_quiet("sockserve-testsupport", "src/lib.rs", code), []);
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

#[test]
fn metadata_parsing_keeps_every_crate_root_and_local_names() {
    let workspace = Workspace::from_json(&metadata(&good_house())).unwrap();
    let package = |name: &str| workspace.packages.iter().find(|p| p.name == name).unwrap();
    // Lib, bin and example roots, wherever they are; never a test target's.
    let roots = |name: &str| -> Vec<String> {
        package(name)
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .collect()
    };
    assert_eq!(
        roots("sockserve-examples"),
        [
            "/ws/sockserve-examples/lib.rs",
            "/ws/sockserve-examples/echo.rs"
        ]
    );
    assert_eq!(roots("xtask"), ["/ws/xtask/src/main.rs"]);
    assert_eq!(package("xtask").lib_src, None);
    // The name code uses: the rename, else the package name with `_`.
    let locals: Vec<String> = package("sockserve-mixins")
        .dependencies
        .iter()
        .map(|d| d.local_name())
        .collect();
    assert_eq!(locals, ["server", "crossbeam_channel", "nix", "socket"]);
}

/// `good_house` as a parsed workspace.
fn good_workspace() -> Workspace {
    Workspace::from_json(&metadata(&good_house())).unwrap()
}

#[test]
fn code_is_what_comments_and_literals_leave() {
    let text = concat!(
        "let a = \"unsafe { x } // not a comment\"; // unsafe\n",
        "let q = '\"'; let e = '\\''; fn f<'a>(x: &'a str) {}\n",
        "/* unsafe /* nested */ still a comment */ let b = b'x';\n",
        "let r = r#\"a \"quoted\" unsafe\"#; let h = br\"unsafe\";\n",
        "let s = \"two\n",
        "lines\"; unsafe {}\n",
    );
    let code = code::code_only(text);
    assert_eq!(code.lines().count(), text.lines().count());
    let tokens: Vec<(usize, &str)> = code::tokens(&code)
        .into_iter()
        .filter(|t| t.text.chars().all(code::is_word))
        .map(|t| (t.line, t.text))
        .collect();
    assert_eq!(
        tokens,
        [
            (1, "let"),
            (1, "a"),
            (2, "let"),
            (2, "q"),
            (2, "let"),
            (2, "e"),
            (2, "fn"),
            (2, "f"),
            (2, "a"),
            (2, "x"),
            (2, "a"),
            (2, "str"),
            (3, "let"),
            (3, "b"),
            (3, "b"),
            (4, "let"),
            (4, "r"),
            (4, "r"),
            (4, "let"),
            (4, "h"),
            (4, "br"),
            (5, "let"),
            (5, "s"),
            (6, "unsafe"),
        ]
    );
}

/// Asserts that `violations` is one violation, of `check` in `package`, whose message says `says`.
#[track_caller]
fn one(violations: &[Violation], check: Check, package: &str, says: &str) {
    assert_eq!(checks(violations), [(check, package)], "{violations:?}");
    assert!(violations[0].message.contains(says), "{}", violations[0]);
}

#[test]
fn unsafe_outside_its_files_fails() {
    let code = "fn f() {\n    let x = unsafe { g() };\n}\n";
    let violations = check_unsafe("sockserve-server", "src/hooks.rs", code);
    let says = "src/hooks.rs line 2: `unsafe` outside";
    one(&violations, Check::Unsafe, "sockserve-server", says);
    for bad in [
        "unsafe fn f() {}",
        "unsafe impl Send for X {}",
        "x(); unsafe{ y() } // and a comment",
    ] {
        let violations = check_unsafe("sockserve-handler", "src/lib.rs", bad);
        one(&violations, Check::Unsafe, "sockserve-handler", "line 1");
    }
    // Docs, comments and strings are not code; `unsafe_code` is another word.
    for fine in [
        "/// let rc = unsafe { libc::poll(p, 1, 0) };",
        "//! Nothing here is `unsafe`.",
        "x(); // SAFETY: this is not unsafe",
        "let s = \"unsafe\";",
        "/* unsafe { } */",
        "#![forbid(unsafe_code)]",
    ] {
        let violations = check_unsafe("sockserve-handler", "src/lib.rs", fine);
        assert_eq!(violations, [], "{fine}");
    }
    // The files of UNSAFE_FILES may; the same path in another crate may not.
    assert_eq!(check_unsafe("sockserve-socket", "src/sys.rs", code), []);
    let violations = check_unsafe("sockserve-server", "src/sys.rs", code);
    one(&violations, Check::Unsafe, "sockserve-server", "src/sys.rs");
}

#[test]
fn members_without_unsafe_files_forbid_unsafe_code() {
    let forbidden = "//! The handler layer.\n#![forbid(unsafe_code)]\n\nmod a;\n";
    let violations = check_forbid_unsafe("sockserve-handler", "src/lib.rs", forbidden);
    assert_eq!(violations, []);
    let also = "//! Doc.\n#![forbid(missing_docs, unsafe_code)]\n";
    assert_eq!(check_forbid_unsafe("xtask", "src/main.rs", also), []);
    for bad in [
        "//! The handler layer.\n\nmod a;\n",
        "//! Doc.\n#![deny(unsafe_code)]\n",
        "//! Doc.\n// #![forbid(unsafe_code)]\n",
        "//! Doc: `#![forbid(unsafe_code)]`.\n",
    ] {
        let violations = check_forbid_unsafe("sockserve-examples", "echo.rs", bad);
        let says = "crate root echo.rs lacks";
        one(&violations, Check::Unsafe, "sockserve-examples", says);
    }
    // A member with a file in UNSAFE_FILES cannot forbid it.
    let violations = check_forbid_unsafe("sockserve-socket", "src/lib.rs", "//! Doc.\n");
    assert_eq!(violations, []);
}

#[test]
fn libc_outside_the_socket_layer_fails() {
    for bad in [
        "unsafe { nix::libc::_exit(1) }",
        "use nix::libc;",
        "let e = libc::EACCES;",
        "let e = ::libc::EACCES;",
    ] {
        let violations = check_libc("sockserve-server", "src/unix.rs", bad);
        one(
            &violations,
            Check::Libc,
            "sockserve-server",
            "src/unix.rs line 1",
        );
    }
    for fine in [
        "/// `EACCES`, written out because only the socket layer names `libc`",
        "x(); // nix::libc::_exit would do",
        "let owner = \"libc::\";",
        "let libc = 3;",
        "my_libc::f();",
    ] {
        let violations = check_libc("sockserve-server", "src/unix.rs", fine);
        assert_eq!(violations, [], "{fine}");
    }
    let code = "libc::close(fd);";
    assert_eq!(check_libc("sockserve-socket", "src/sys.rs", code), []);
    // LIBC_ALLOWED is empty: the forking strategy ends its children through the socket layer.
    let violations = check_libc("sockserve-mixins", "src/forking.rs", code);
    one(&violations, Check::Libc, "sockserve-mixins", "`libc::`");
}

#[test]
fn unused_normal_dependencies_fail() {
    let workspace = good_workspace();
    let mixins = workspace
        .packages
        .iter()
        .find(|p| p.name == "sockserve-mixins")
        .unwrap();
    // Its normal dependencies: server (renamed), crossbeam-channel, nix; socket is a dev one.
    let uses = [
        "pub use server;\nfn f() { let (tx, rx) = crossbeam_channel::unbounded(); }\n",
        "use nix::unistd::fork;\n",
    ];
    assert_eq!(check_unused_deps(mixins, &uses), []);
    // Every way of naming a crate counts: a path, `::path`, a macro, `use`, `extern crate`.
    for uses in [
        [
            "let p = ::nix::unistd::getpid();",
            "use server; use crossbeam_channel as c;",
        ],
        [
            "nix!();",
            "extern crate server; use crossbeam_channel::{Sender};",
        ],
    ] {
        assert_eq!(check_unused_deps(mixins, &uses), [], "{uses:?}");
    }
    // Named only in comments, doc examples, strings, or as another crate's module: unused.
    let only_mentioned = [
        "use server; use crossbeam_channel::Sender;\n",
        "// nix::unistd::fork\n/// ```\n/// nix::unistd::fork();\n/// ```\n",
        "let s = \"nix::unistd\"; let t = other::nix::fork(); x.nix::<u8>();\n",
    ];
    let violations = check_unused_deps(mixins, &only_mentioned);
    let says = "depends on `nix` (as `nix`), which its code never names";
    one(&violations, Check::UnusedDeps, "sockserve-mixins", says);
    // A renamed dependency is looked for under its rename, not its package name.
    let by_package_name = ["use sockserve_server; crossbeam_channel::x(); nix::y();"];
    let violations = check_unused_deps(mixins, &by_package_name);
    let says = "`sockserve-server` (as `server`)";
    one(&violations, Check::UnusedDeps, "sockserve-mixins", says);
}

#[test]
fn internal_names_come_from_the_renames() {
    let names = internal_names(&good_workspace());
    let names: Vec<(&str, &str)> = names
        .iter()
        .map(|(l, p)| (l.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("handler", "sockserve-handler"),
            ("mixins", "sockserve-mixins"),
            ("prefork", "sockserve-prefork"),
            ("reactor", "sockserve-reactor"),
            ("server", "sockserve-server"),
            ("socket", "sockserve-socket"),
            ("testsupport", "sockserve-testsupport"),
            ("tls", "sockserve-tls"),
        ]
    );
}

#[test]
fn doc_examples_name_internal_crates_as_users_do() {
    let internal = internal_names(&good_workspace());
    let check =
        |text: &str| check_doc_paths("sockserve-handler", "src/request.rs", text, &internal);
    let text = "/// Reads.\n///\n/// ```\n/// use socket::Socket;\n/// ```\nfn read() {}\n";
    let violations = check(text);
    let says = "src/request.rs line 4: a doc example names `socket::`, the workspace's own name \
                for sockserve-socket";
    one(&violations, Check::DocPaths, "sockserve-handler", says);
    assert!(violations[0].message.contains("write `sockserve_socket::`"));
    for bad in [
        // A hidden line is pasted too (rustdoc shows it behind a button, and tests it).
        "/// ```\n/// # use handler::StreamRequest;\n/// ```\n",
        // A crate doc, a fence with rustdoc's attributes, a `::`-rooted path.
        "//! ```no_run\n//! let s = ::server::Server::bind(a, h)?;\n//! ```\n",
        "    /// ```rust,ignore\n    /// let m = mixins::Threading::default();\n    /// ```\n",
        "/// ~~~\n/// reactor::Reactor::new()?;\n/// ~~~\n",
    ] {
        one(&check(bad), Check::DocPaths, "sockserve-handler", "line 2");
    }
    for fine in [
        // The published names, and the re-exports under them.
        concat!(
            "/// ```\n/// use sockserve_socket::Socket;\n",
            "/// use sockserve_server::socket::Address;\n/// ```\n",
        ),
        "/// ```\n/// use sockserve::socket::Socket;\n/// ```\n",
        // Not a Rust example: a `text` block, prose, a comment or string in the example.
        "/// ```text\n/// socket::accept -> handler::handle\n/// ```\n",
        "/// See [`socket::Socket`] and `handler::Handler`.\n",
        "/// ```\n/// // socket::Socket would not do here\n/// let s = \"socket::\";\n/// ```\n",
        // The library's own code names its dependencies so.
        "use socket::Socket;\nfn f() -> socket::Address { todo!() }\n",
        // An unclosed fence ends with its comment.
        "/// ```\n/// let a = 1;\nfn f() {}\n/// socket::Socket\n",
    ] {
        assert_eq!(check(fine), [], "{fine}");
    }
    // Programs are not libraries; the pending files wait for their fix.
    let bad = "/// ```\n/// use socket::Socket;\n/// ```\n";
    let violations = check_doc_paths("sockserve-examples", "lib.rs", bad, &internal);
    assert_eq!(violations, []);
    if let Some((package, file)) = DOC_PATHS_PENDING.first() {
        assert_eq!(check_doc_paths(package, file, bad, &internal), []);
    }
}

#[test]
fn stale_allow_list_entries_are_noted() {
    let workspace = good_workspace();
    let sources = |files: Vec<(&str, &str)>| -> Vec<Sources> {
        workspace
            .packages
            .iter()
            .map(|p| Sources {
                package: p.name.clone(),
                manifest: String::new(),
                lib: None,
                files: if p.name == "sockserve-mixins" {
                    files
                        .iter()
                        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
                        .collect()
                } else {
                    Vec::new()
                },
                roots: Vec::new(),
            })
            .collect()
    };
    let needed = "fn f() { let pid = unsafe { fork() }; }\n";
    let notes = stale_entries(&workspace, &sources(vec![("src/forking.rs", needed)]));
    let about = |notes: &[String], table: &str| {
        notes
            .iter()
            .any(|n| n.starts_with(table) && n.contains("sockserve-mixins's src/forking.rs"))
    };
    assert!(!about(&notes, "UNSAFE_FILES"), "{notes:?}");
    // forking.rs without its unsafe: its entry is stale.
    let clean = "fn f() { socket::exit_now(1) }\n";
    let notes = stale_entries(&workspace, &sources(vec![("src/forking.rs", clean)]));
    let note = "UNSAFE_FILES (xtask/src/tidy.rs) lists sockserve-mixins's src/forking.rs, which \
                passes without it: remove the entry";
    assert!(notes.iter().any(|n| n == note), "{notes:?}");
    // A listed file that is gone.
    let notes = stale_entries(&workspace, &sources(Vec::new()));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("lists sockserve-socket's src/sys.rs, which does not exist")),
        "{notes:?}"
    );
}

/// The real workspace keeps its own invariants: this is `cargo xtask tidy`, minus the printing.
#[test]
fn the_real_workspace_passes() {
    let workspace = Workspace::load().unwrap();
    let (violations, _notes) = check_workspace(&workspace).unwrap();
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}
