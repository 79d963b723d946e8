//! Just enough of a member's `Cargo.toml` for tidy: does it opt into the workspace lints, and is
//! every dependency inherited from the workspace? `cargo metadata` reports neither (it shows the
//! resolved requirement, not where it was written), so tidy reads the manifest text itself.
//!
//! This is a scanner for the TOML that Cargo manifests use, not a TOML parser: it tracks the
//! current `[table]`, joins a value that spans lines (an array or inline table) until its brackets
//! balance, and splits dotted keys, quoted parts included. Every key/value is seen under its full
//! path, so `[dependencies] mio.workspace = true`, `[dependencies] mio = { workspace = true }`
//! and `[dependencies.mio] workspace = true` all read the same.

/// What tidy needs from one member manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `[lints] workspace = true` is present.
    pub(crate) lints_workspace: bool,
    /// Every dependency entry, in order of first appearance.
    pub(crate) dependencies: Vec<ManifestDep>,
}

/// One dependency entry of a manifest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ManifestDep {
    /// The table it sits in, as written: `dependencies`, `target.'cfg(unix)'.dev-dependencies`.
    pub(crate) table: String,
    /// The key (the local name, as written).
    pub(crate) name: String,
    /// 1-based line of its first appearance.
    pub(crate) line: usize,
    /// It says `workspace = true`.
    pub(crate) workspace: bool,
}

const DEP_TABLES: &[&str] = &["dependencies", "dev-dependencies", "build-dependencies"];

impl Manifest {
    /// Scans a manifest's text.
    pub(crate) fn parse(text: &str) -> Result<Manifest, String> {
        let mut manifest = Manifest::default();
        let mut table: Vec<String> = Vec::new();
        let mut lines = text.lines().enumerate();
        while let Some((index, raw)) = lines.next() {
            let line_no = index + 1;
            let mut line = strip_comment(raw).trim().to_owned();
            if line.is_empty() {
                continue;
            }
            if line.starts_with("[[") {
                // An array of tables (`[[example]]`, `[[bin]]`): nothing tidy reads is inside.
                let inner = line.trim_start_matches('[').trim_end_matches(']');
                table = split_key(inner).map_err(|e| format!("line {line_no}: {e}"))?;
                table.insert(0, "[[array]]".to_owned());
                continue;
            }
            if let Some(inner) = line.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {line_no}: unclosed table header"))?;
                table = split_key(inner).map_err(|e| format!("line {line_no}: {e}"))?;
                continue;
            }
            // A value may continue over several lines (`features = [\n "a",\n]`).
            while depth(&line) > 0 {
                let (_, next) = lines
                    .next()
                    .ok_or_else(|| format!("line {line_no}: unbalanced brackets"))?;
                line.push(' ');
                line.push_str(strip_comment(next).trim());
            }
            let (key, value) = split_key_value(&line)
                .ok_or_else(|| format!("line {line_no}: expected `key = value`"))?;
            let mut path = table.clone();
            path.extend(split_key(key).map_err(|e| format!("line {line_no}: {e}"))?);
            manifest.see(&path, value.trim(), line_no);
        }
        Ok(manifest)
    }

    /// Records one `key = value` seen under its full key path.
    fn see(&mut self, path: &[String], value: &str, line: usize) {
        let is_true = value == "true";
        if path == ["lints", "workspace"] {
            self.lints_workspace |= is_true;
            return;
        }
        // `dependencies.NAME...` or `target.CFG.dependencies.NAME...`
        let (table_len, rest) = match path {
            [t, rest @ ..] if DEP_TABLES.contains(&t.as_str()) => (1, rest),
            [target, _, t, rest @ ..] if target == "target" && DEP_TABLES.contains(&t.as_str()) => {
                (3, rest)
            }
            _ => return,
        };
        let Some((name, sub)) = rest.split_first() else {
            return;
        };
        let says_workspace = match sub {
            // `name = "1.0"` or `name = { ... }`
            [] => inline_table_says_workspace(value),
            // `name.workspace = true`, or `workspace = true` under `[dependencies.name]`
            [key] if key == "workspace" => is_true,
            _ => false,
        };
        let table = join_key(&path[..table_len]);
        match self
            .dependencies
            .iter_mut()
            .find(|d| d.table == table && d.name == *name)
        {
            Some(dep) => dep.workspace |= says_workspace,
            None => self.dependencies.push(ManifestDep {
                table,
                name: name.clone(),
                line,
                workspace: says_workspace,
            }),
        }
    }
}

/// `{ workspace = true, features = [...] }` says `workspace = true` at its top level.
fn inline_table_says_workspace(value: &str) -> bool {
    let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) else {
        return false;
    };
    split_top_level(inner, ',').iter().any(|entry| {
        split_key_value(entry).is_some_and(|(k, v)| k.trim() == "workspace" && v.trim() == "true")
    })
}

/// The text before a `#` that is outside any string.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Open brackets minus closed ones, outside strings.
fn depth(s: &str) -> i32 {
    let mut quote = None;
    let mut depth = 0;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Splits `s` at `sep` where it is outside strings and brackets.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, _) if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `key = value` split at the first top-level `=`.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let parts = split_top_level(line, '=');
    if parts.len() < 2 {
        return None;
    }
    let key = parts[0];
    Some((key, &line[key.len() + 1..]))
}

/// `a.'b.c'."d"` -> `["a", "b.c", "d"]`.
fn split_key(key: &str) -> Result<Vec<String>, String> {
    split_top_level(key, '.')
        .into_iter()
        .map(|part| {
            let part = part.trim();
            let unquoted = part
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .or_else(|| part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')))
                .unwrap_or(part);
            if unquoted.is_empty() && part.is_empty() {
                Err(format!("empty key part in `{key}`"))
            } else {
                Ok(unquoted.to_owned())
            }
        })
        .collect()
}

/// The inverse of `split_key`, for messages: parts with dots or parentheses are quoted.
fn join_key(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| {
            if p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.clone()
            } else {
                format!("'{p}'")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(text: &str) -> Vec<(String, String, bool)> {
        Manifest::parse(text)
            .unwrap()
            .dependencies
            .into_iter()
            .map(|d| (d.table, d.name, d.workspace))
            .collect()
    }

    #[test]
    fn every_spelling_of_workspace_inheritance_is_seen() {
        let text = r#"
[package]
name = "x" # a comment
version.workspace = true

[dependencies]
socket.workspace = true
mio = { workspace = true, features = ["os-poll"] }
log = "0.4"
libc = { version = "0.2", features = ["workspace = true"] }

[target.'cfg(unix)'.dependencies]
nix = { workspace = true, features = [
    "process", # multi-line
    "signal",
] }

[dev-dependencies.tempfile]
workspace = true

[build-dependencies.cc]
version = "1"

[[example]]
name = "dependencies"

[lints]
workspace = true
"#;
        let manifest = Manifest::parse(text).unwrap();
        assert!(manifest.lints_workspace);
        assert_eq!(
            deps(text),
            [
                ("dependencies", "socket", true),
                ("dependencies", "mio", true),
                ("dependencies", "log", false),
                ("dependencies", "libc", false),
                ("target.'cfg(unix)'.dependencies", "nix", true),
                ("dev-dependencies", "tempfile", true),
                ("build-dependencies", "cc", false),
            ]
            .map(|(t, n, w)| (t.to_owned(), n.to_owned(), w))
        );
    }

    #[test]
    fn lints_must_be_the_workspace_ones() {
        let no_lints = "[package]\nname = \"x\"\n";
        assert!(!Manifest::parse(no_lints).unwrap().lints_workspace);
        let own_lints = "[lints.rust]\nmissing_docs = \"allow\"\n";
        assert!(!Manifest::parse(own_lints).unwrap().lints_workspace);
        let dotted = "lints.workspace = true\n";
        assert!(Manifest::parse(dotted).unwrap().lints_workspace);
    }

    #[test]
    fn broken_text_is_an_error_not_a_pass() {
        assert!(Manifest::parse("[dependencies\nmio = 1").is_err());
        assert!(Manifest::parse("[dependencies]\nmio = [\n").is_err());
        assert!(Manifest::parse("[dependencies]\nmio\n").is_err());
    }
}
