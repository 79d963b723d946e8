//! `cargo xtask memcheck`: the test binaries of the crates with `unsafe` code (socket, reactor,
//! mixins, prefork) under `valgrind --tool=memcheck`, each failing the step on any error valgrind
//! reports (an invalid read or write, a use of uninitialised memory, a bad free), as Miri
//! would on a nightly toolchain CI does not have. Leaks are not counted: the tests leave
//! threads behind on purpose (a stuck handler left running), whose memory is still reachable.
//!
//! A forked child runs under valgrind too (a fork copies the valgrind process); a program a
//! test executes (`--trace-children=no`, the default) does not. Under valgrind code runs 20 to
//! 50 times slower, so the few tests that measure time itself are left out ([`SKIP`]), and the
//! property tests run a few cases each (`PROPTEST_CASES`). The whole step takes about four
//! minutes on two cores.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Result;
use crate::cmd::{Cmd, project_root};

/// The packages whose test binaries run under valgrind, those with `unsafe` code, and their
/// folders.
const PACKAGES: &[(&str, &str)] = &[
    ("sockserve-socket", "crates/socket"),
    ("sockserve-reactor", "crates/reactor"),
    ("sockserve-mixins", "crates/mixins"),
    ("sockserve-prefork", "crates/prefork"),
];

/// Tests left out under valgrind, each with why: (package, binary, test name).
pub(crate) const SKIP: &[(&str, &str, &str, &str)] = &[
    (
        "sockserve-socket",
        "deadline",
        "sendall_by_also_keeps_the_sockets_own_timeout",
        "measures how close to its 200 ms timeout a send gives up",
    ),
    (
        "sockserve-reactor",
        "signals",
        "full_pipe_keeps_the_news_and_errno",
        "sends signals until the self-pipe is full, within a 5 s watchdog",
    ),
];

/// The property tests' case count under valgrind (each case is a parse or a socket pair).
const PROPTEST_CASES: &str = "16";

/// How long one test binary may run under valgrind.
const BINARY_LIMIT: Duration = Duration::from_secs(300);

/// One test binary to run.
#[derive(Debug)]
struct Binary {
    package: String,
    name: String,
    path: PathBuf,
    /// Built without libtest (`harness = false`): the testsupport runner, which takes
    /// `--skip` but not libtest's other flags.
    harness: bool,
}

/// Builds the test binaries, then runs each under valgrind; the first to fail ends the run.
pub(crate) fn run() -> Result<()> {
    Cmd::new("valgrind").arg("--version").run().map_err(|e| {
        format!("{e}: valgrind is needed (apt-get install valgrind; .ci/run installs it)")
    })?;
    let mut build = Cmd::cargo(&["test", "--no-run", "--message-format=json"]);
    for (package, _) in PACKAGES {
        build = build.args(["-p", package]);
    }
    let binaries = binaries(&build.read()?)?;
    if binaries.is_empty() {
        return Err("cargo test --no-run listed no test binary".into());
    }
    let start = Instant::now();
    for binary in &binaries {
        let mut cmd = Cmd::new("valgrind")
            .args([
                "--tool=memcheck",
                "--error-exitcode=101",
                "--quiet",
                "--trace-children=no",
            ])
            .arg(&binary.path)
            .env("PROPTEST_CASES", PROPTEST_CASES);
        if binary.harness {
            cmd = cmd.arg("--test-threads=2");
        }
        for (_, _, test, _) in SKIP
            .iter()
            .filter(|(p, b, _, _)| *p == binary.package && *b == binary.name)
        {
            cmd = cmd.args(["--skip", test]);
        }
        let one = Instant::now();
        let output = cmd.output_within(BINARY_LIMIT)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!(
                "{} {} under valgrind failed ({}):\n{stdout}{stderr}",
                binary.package, binary.name, output.status
            )
            .into());
        }
        let summary = stdout
            .lines()
            .rfind(|l| l.contains("passed"))
            .unwrap_or("(no summary)");
        println!(
            "memcheck: {:<18} {:<18} {:>5.1}s  {}",
            binary.package,
            binary.name,
            one.elapsed().as_secs_f64(),
            summary.trim()
        );
    }
    println!(
        "memcheck: {} test binaries, no error from valgrind, in {:.0}s (left out: {})",
        binaries.len(),
        start.elapsed().as_secs_f64(),
        SKIP.iter()
            .map(|(_, b, t, _)| format!("{b}::{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The test binaries in the JSON messages of `cargo test --no-run --message-format=json`.
fn binaries(messages: &str) -> Result<Vec<Binary>> {
    let mut out = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message: Value = serde_json::from_str(line).map_err(|e| format!("cargo: {e}"))?;
        let (Some(path), Some(true)) = (
            message["executable"].as_str(),
            message["profile"]["test"].as_bool(),
        ) else {
            continue;
        };
        let manifest = Path::new(message["manifest_path"].as_str().unwrap_or_default());
        let name = message["target"]["name"].as_str().unwrap_or_default();
        let (package, _) = PACKAGES
            .iter()
            .find(|(_, dir)| manifest.parent().is_some_and(|m| m.ends_with(dir)))
            .ok_or_else(|| {
                format!(
                    "a test binary of an unexpected package: {}",
                    manifest.display()
                )
            })?;
        let harness = !harness_less(&std::fs::read_to_string(manifest)?).contains(&name);
        out.push(Binary {
            package: (*package).to_owned(),
            name: name.to_owned(),
            path: relative(Path::new(path)),
            harness,
        });
    }
    Ok(out)
}

/// The `[[test]]` targets of a manifest that say `harness = false`.
fn harness_less(manifest: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for block in manifest.split("[[").skip(1) {
        let Some(body) = block.strip_prefix("test]]") else {
            continue;
        };
        let body = body.split("\n[").next().unwrap_or_default();
        let name = body.lines().find_map(|l| {
            let value = l.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"'))
        });
        let no_harness = body
            .lines()
            .any(|l| l.split_whitespace().collect::<String>() == "harness=false");
        if let (Some(name), true) = (name, no_harness) {
            out.push(name);
        }
    }
    out
}

/// `path` shown from the project root when it is under it (shorter echoes).
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(project_root())
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_less_tests_are_read_from_the_manifest() {
        let manifest = "[package]\nname = \"x\"\n\n[[test]]\nname = \"forking\"\nharness = false\n\n\
                        [[test]]\nname = \"plain\"\n\n[[test]]\nname = \"limits\"\nharness=false\n\
                        [lints]\nworkspace = true\n";
        assert_eq!(harness_less(manifest), ["forking", "limits"]);
    }

    #[test]
    fn every_skipped_test_names_a_memchecked_package() {
        for (package, _, _, why) in SKIP {
            assert!(PACKAGES.iter().any(|(p, _)| p == package), "{package}");
            assert!(!why.is_empty());
        }
    }
}
