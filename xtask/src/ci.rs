//! `cargo xtask ci`: exactly what CI runs (`.ci/run` ends in this command), in CI's order, so a
//! green run here is a green run there. The first failing step ends the run and is named.
//!
//! Fast on purpose: debug builds only; of the benchmark, only its smoke test (`bench --quick`,
//! on the debug builds, every row once and briefly: it fails unless every row produced figures).

use std::time::Instant;

use crate::cmd::Cmd;
use crate::{Result, bench, doclinks, integration, lines, memcheck, soak, tidy};

/// One step of the CI run.
enum Step {
    /// An external command.
    Cmd(Cmd),
    /// A step that runs inside xtask.
    InProcess(fn() -> Result<()>),
}

/// The steps, in order, each with the name a failure reports.
fn steps() -> Vec<(&'static str, Step)> {
    vec![
        (
            "fmt",
            Step::Cmd(Cmd::cargo(&["fmt", "--all", "--", "--check"])),
        ),
        (
            "clippy",
            Step::Cmd(Cmd::cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])),
        ),
        ("features", Step::InProcess(facade_features)),
        (
            "build",
            Step::Cmd(Cmd::cargo(&["build", "--workspace", "--all-targets"])),
        ),
        // Inherited stdout: CI reads cargo test's closing `test result:` lines from it.
        ("test", Step::Cmd(Cmd::cargo(&["test", "--workspace"]))),
        ("memcheck", Step::InProcess(memcheck::run)),
        (
            "doc",
            Step::Cmd(Cmd::cargo(&["doc", "--workspace", "--no-deps"]).env(
                "RUSTDOCFLAGS",
                "-D warnings -D rustdoc::broken_intra_doc_links",
            )),
        ),
        ("doc-links", Step::InProcess(doclinks::run)),
        ("tidy", Step::InProcess(tidy::run)),
        ("lines", Step::InProcess(lines::run)),
        ("integration", Step::InProcess(integration::run)),
        ("soak", Step::InProcess(|| soak::run(true))),
        (
            "bench --quick",
            Step::InProcess(|| {
                bench::run(&bench::Options {
                    quick: true,
                    duration: bench::QUICK_DURATION,
                    repeat: 1,
                    ..bench::Options::default()
                })
            }),
        ),
    ]
}

/// The facade's features only add API: it builds, lint-free, with none of them, with each
/// alone, and with the default set, which has no `tls` (clippy on its library: the layers below
/// are checked once, so this is quick), and its tests that need no strategy pass without
/// either. The rest of CI builds the workspace, where the examples turn `tls` on: with it.
fn facade_features() -> Result<()> {
    for features in [
        &[][..],
        &["--features", "threading"],
        &["--features", "forking"],
        &["--features", "prefork"],
        &["--features", "tls"],
        &["--features", "threading,forking,prefork"],
    ] {
        let mut args = vec!["clippy", "-p", "sockserve", "--no-default-features"];
        args.extend_from_slice(features);
        args.extend_from_slice(&["--", "-D", "warnings"]);
        Cmd::cargo(&args).run()?;
    }
    // The facade's own tests that need no strategy (the others require both features).
    Cmd::cargo(&[
        "test",
        "-p",
        "sockserve",
        "--no-default-features",
        "--tests",
    ])
    .run()
}

/// Runs every step; the first failure ends the run with an error naming the step.
pub(crate) fn run() -> Result<()> {
    let start = Instant::now();
    let steps = steps();
    let total = steps.len();
    for (i, (name, step)) in steps.into_iter().enumerate() {
        eprintln!("\n==> ci step {}/{total}: {name}", i + 1);
        let step_start = Instant::now();
        let result = match step {
            Step::Cmd(cmd) => cmd.run(),
            Step::InProcess(f) => f(),
        };
        if let Err(err) = result {
            return Err(format!("step `{name}` failed: {err}").into());
        }
        eprintln!(
            "==> ci step {name}: ok ({:.1}s)",
            step_start.elapsed().as_secs_f64()
        );
    }
    println!(
        "ci: all {total} steps passed in {:.0}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
