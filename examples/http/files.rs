//! The files under the root: where a request target leads ([`resolve`], which no target can
//! take outside the root), the `Content-Type` of a file, and a directory's listing.

use super::response::html_escape;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where a request target leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// A regular file under the root (its real path, symlinks resolved).
    File(PathBuf),
    /// A directory under the root, asked for with its trailing slash.
    Directory(PathBuf),
    /// A directory asked for without its trailing slash: where to send the client (301), as
    /// Python does, so that the relative links of its page resolve inside it.
    AddSlash(String),
}

/// Why a target leads to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a path at all (not `/...`, a broken `%` escape): 400.
    BadRequest,
    /// Nothing there, or a name no file under the root can have (`..`, an encoded `/`, a
    /// backslash, a NUL byte): 404.
    NotFound,
    /// Something there that is not served: a symlink out of the root, a file that cannot be
    /// read, a device or a FIFO (opening one would block): 403.
    Forbidden,
}

/// Where `target` (a request target as sent) leads under `root` (a canonical path: see
/// [`std::fs::canonicalize`]).
///
/// The path is split at `/` first and each segment decoded after, so an encoded slash
/// (`%2f`) stays inside its segment, and such a segment is refused: a file name cannot hold
/// one. A segment that is `.` or `..` once decoded (`%2e%2e`), or that holds a backslash or a
/// NUL byte, is refused too, rather than interpreted. What is left is joined to the root and
/// its symlinks resolved; a real path outside the root is refused.
pub(crate) fn resolve(root: &Path, target: &str) -> Result<Resolved, Refused> {
    let (path, query) = split_target(target)?;
    let mut candidate = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let name = percent_decode(segment).ok_or(Refused::BadRequest)?;
        let unsafe_name = name == b"." || name == b".." || name.contains(&b'/');
        if unsafe_name || name.contains(&b'\\') || name.contains(&0) {
            return Err(Refused::NotFound);
        }
        candidate.push(OsStr::from_bytes(&name));
    }
    let real = std::fs::canonicalize(&candidate).map_err(refusal)?;
    if !real.starts_with(root) {
        return Err(Refused::Forbidden);
    }
    let metadata = std::fs::metadata(&real).map_err(refusal)?;
    if metadata.is_dir() {
        if !path.ends_with('/') {
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            return Ok(Resolved::AddSlash(format!("{path}/{query}")));
        }
        return Ok(Resolved::Directory(real));
    }
    if !metadata.is_file() {
        return Err(Refused::Forbidden);
    }
    Ok(Resolved::File(real))
}

/// The path of `target` and its query: origin form (`/a/b?q`), or absolute form
/// (`http://host/a/b?q`, which RFC 9112 (3.2.2) says a server must accept), without a fragment.
fn split_target(target: &str) -> Result<(&str, Option<&str>), Refused> {
    let target = target.split('#').next().unwrap_or_default();
    let target = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |at| &rest[at..])
        }
        _ => target,
    };
    if !target.starts_with('/') {
        return Err(Refused::BadRequest);
    }
    Ok(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

/// The bytes of `text` with its `%XX` escapes decoded; `None` for a broken escape.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `name` with every byte but the unreserved ones (RFC 3986: letters, digits, `-._~`)
/// percent-encoded, for a link (Python's `urllib.parse.quote`, without its safe `/`).
pub(crate) fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The refusal an I/O error stands for.
fn refusal(e: io::Error) -> Refused {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Refused::Forbidden,
        _ => Refused::NotFound,
    }
}

/// The `index.html` of `dir` (a directory under `root`), if it has one that may be served: a
/// regular file whose real path is under the root too.
pub(crate) fn index_file(root: &Path, dir: &Path) -> Result<Option<PathBuf>, Refused> {
    let index = dir.join("index.html");
    if std::fs::symlink_metadata(&index).is_err() {
        return Ok(None);
    }
    let real = std::fs::canonicalize(&index).map_err(refusal)?;
    if !real.starts_with(root) || !std::fs::metadata(&real).map_err(refusal)?.is_file() {
        return Err(Refused::Forbidden);
    }
    Ok(Some(real))
}

/// The `Content-Type` of a file, from its extension (`application/octet-stream` for any
/// other, as Python's `http.server`).
pub(crate) fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "text" | "log" | "md" | "rs" | "py" | "toml") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("csv") => "text/csv",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/vnd.microsoft.icon",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The HTML listing of `dir`, shown at `url_path` (the request's path, decoded): one link a
/// name, sorted as Python sorts them (case aside), a directory with `/` after it, a symlink
/// with `@` (its link is the name itself). Names are HTML-escaped where shown and
/// percent-encoded in links, so no file name can inject markup or a foreign link.
pub(crate) fn listing(dir: &Path, url_path: &str) -> io::Result<String> {
    let mut entries: Vec<(OsString, bool, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_link = entry.file_type()?.is_symlink();
        // `metadata` follows a symlink: a link to a directory is listed as one.
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        entries.push((entry.file_name(), is_dir, is_link));
    }
    entries.sort_by_key(|(name, _, _)| name.to_string_lossy().to_lowercase());
    let title = html_escape(&format!("Directory listing for {url_path}"));
    let mut page = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n"
    );
    for (name, is_dir, is_link) in entries {
        let (mut shown, mut link) = (
            name.to_string_lossy().into_owned(),
            percent_encode(name.as_bytes()),
        );
        if is_dir {
            shown.push('/');
            link.push('/');
        }
        if is_link {
            shown.push('@');
        }
        page.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            link,
            html_escape(&shown)
        ));
    }
    page.push_str("</ul>\n<hr>\n</body>\n</html>\n");
    Ok(page)
}

#[cfg(test)]
mod tests;
