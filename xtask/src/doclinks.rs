//! The facade's docs as a user's `cargo doc --no-deps -p sockserve` builds them, checked for
//! dead links: rustdoc only warns about the links of the crate it documents, so a link in a
//! layer's docs that the facade inlines (`[x](crate::X)` for an item the facade does not carry)
//! comes out as a dead `href` without a word. `cargo xtask ci` builds those docs in a target
//! directory of their own (so the layers' pages are absent, as they are for a user) and fails
//! on every relative link that leads nowhere.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd::Cmd;
use crate::metadata::Workspace;

/// The crate whose docs are checked.
const FACADE: &str = "sockserve";

/// Builds the facade's docs alone (rustdoc's own link lints denied too) and checks their links.
pub(crate) fn run() -> Result<()> {
    let workspace = Workspace::load()?;
    let target = workspace.target_directory.join("doc-facade");
    Cmd::cargo(&["doc", "--no-deps", "-p", FACADE])
        .env("CARGO_TARGET_DIR", &target.to_string_lossy())
        .env(
            "RUSTDOCFLAGS",
            "-D warnings -D rustdoc::broken_intra_doc_links",
        )
        .run()?;
    let dead = dead_links(&target.join("doc"), FACADE)?;
    if dead.is_empty() {
        println!("doc-links: ok (the `{FACADE}` docs have no dead link)");
        return Ok(());
    }
    for link in &dead {
        eprintln!("doc-links: {link}");
    }
    Err(format!(
        "{} dead link(s) in `cargo doc --no-deps -p {FACADE}` (see above): re-export the target in \
         the facade, or link to what it carries",
        dead.len()
    )
    .into())
}

/// Every relative `href` of the HTML pages under `doc_root/krate` whose target file does not
/// exist, as `page: href`. Links with a scheme, fragments alone and rustdoc's own static files
/// (written by its script) are not checked.
pub(crate) fn dead_links(doc_root: &Path, krate: &str) -> Result<Vec<String>> {
    let mut pages = Vec::new();
    html_files(&doc_root.join(krate), &mut pages)?;
    let mut dead = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page)
            .map_err(|e| format!("reading {}: {e}", page.display()))?;
        let dir = page.parent().unwrap_or(doc_root);
        for href in hrefs(&text) {
            let target = href.split('#').next().unwrap_or_default();
            if target.is_empty() || has_scheme(target) || target.contains("static.files") {
                continue;
            }
            if !dir.join(target).exists() {
                let shown = page.strip_prefix(doc_root).unwrap_or(&page);
                dead.push(format!("{}: {href}", shown.display()));
            }
        }
    }
    dead.sort();
    dead.dedup();
    Ok(dead)
}

/// Whether `href` starts with a URL scheme (`https:`, `mailto:`); `crate::X`, a path that
/// rustdoc left unresolved, has none.
fn has_scheme(href: &str) -> bool {
    match href.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.starts_with(':')
        }
        None => false,
    }
}

/// The values of the `href="..."` attributes of `html`.
fn hrefs(html: &str) -> impl Iterator<Item = &str> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
}

/// Every `.html` file under `dir`, into `out`.
fn html_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            html_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "html") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_relative_links_are_found_and_live_ones_pass() {
        let root = tempfile::tempdir().unwrap();
        let krate = root.path().join("k");
        std::fs::create_dir_all(krate.join("m")).unwrap();
        std::fs::write(krate.join("struct.A.html"), "<p>A</p>").unwrap();
        std::fs::write(
            krate.join("m").join("index.html"),
            concat!(
                r#"<a href="../struct.A.html#method.x">live</a>"#,
                r#"<a href="crate::MISSING">dead</a>"#,
                r#"<a href="https://example.invalid/">scheme</a>"#,
                r##"<a href="#section">fragment</a>"##,
                r#"<a href="../../static.files/${f}">script</a>"#,
            ),
        )
        .unwrap();
        let dead = dead_links(root.path(), "k").unwrap();
        assert_eq!(
            dead,
            [format!(
                "{}: crate::MISSING",
                Path::new("k/m/index.html").display()
            )]
        );
    }
}
