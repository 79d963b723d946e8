//! Where targets lead: every way out of the root refused, directories, types, listings.

use super::*;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory tree, removed on drop: `site/` (the root) and `secret.txt` beside it.
struct Tree {
    top: PathBuf,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let top = std::env::temp_dir().join(format!("http-files-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let root = top.join("site");
        std::fs::create_dir_all(root.join("docs/inner")).unwrap();
        std::fs::write(top.join("secret.txt"), "SECRET").unwrap();
        std::fs::write(root.join("hello.txt"), "hello").unwrap();
        std::fs::write(root.join("docs/inner/page.html"), "<p>").unwrap();
        symlink(top.join("secret.txt"), root.join("leak.txt")).unwrap();
        symlink(&top, root.join("up")).unwrap();
        symlink(root.join("hello.txt"), root.join("alias.txt")).unwrap();
        let root = root.canonicalize().unwrap();
        Tree { top, root }
    }

    fn resolve(&self, target: &str) -> Result<Resolved, Refused> {
        resolve(&self.root, target)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

#[test]
fn files_and_directories_resolve() {
    let tree = Tree::new();
    let hello = tree.root.join("hello.txt");
    assert_eq!(
        tree.resolve("/hello.txt"),
        Ok(Resolved::File(hello.clone()))
    );
    assert_eq!(
        tree.resolve("/hello.txt?x=1#top"),
        Ok(Resolved::File(hello.clone()))
    );
    assert_eq!(
        tree.resolve("//hello.txt"),
        Ok(Resolved::File(hello.clone()))
    );
    assert_eq!(
        tree.resolve("/hell%6F.txt"),
        Ok(Resolved::File(hello.clone()))
    );
    assert_eq!(
        tree.resolve("http://example.com/hello.txt"),
        Ok(Resolved::File(hello.clone()))
    );
    // A symlink that stays inside the root is followed.
    assert_eq!(tree.resolve("/alias.txt"), Ok(Resolved::File(hello)));
    let docs = tree.root.join("docs");
    assert_eq!(tree.resolve("/docs/"), Ok(Resolved::Directory(docs)));
    assert_eq!(
        tree.resolve("/"),
        Ok(Resolved::Directory(tree.root.clone()))
    );
    assert_eq!(tree.resolve("/no-such-file"), Err(Refused::NotFound));
}

#[test]
fn a_directory_without_its_slash_is_redirected_with_its_query() {
    let tree = Tree::new();
    let add = |to: &str| Ok(Resolved::AddSlash(to.to_owned()));
    assert_eq!(tree.resolve("/docs"), add("/docs/"));
    assert_eq!(
        tree.resolve("/docs/inner?sort=name"),
        add("/docs/inner/?sort=name")
    );
}

#[test]
fn no_target_reaches_outside_the_root() {
    let tree = Tree::new();
    let not_found = [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/docs/..",
        "/./hello.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/docs%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/docs\\..\\..\\secret.txt",
        "/hello.txt%00.html",
        "/%00",
        "http://example.com/../secret.txt",
    ];
    for target in not_found {
        assert_eq!(tree.resolve(target), Err(Refused::NotFound), "{target}");
    }
    // An absolute path is taken under the root, never as it is.
    let absolute = format!("/{}", tree.top.join("secret.txt").display());
    assert_eq!(
        tree.resolve(&absolute),
        Err(Refused::NotFound),
        "{absolute}"
    );
    // Symlinks that lead out of the root, to a file or to a directory above it.
    for target in ["/leak.txt", "/up/secret.txt", "/up/", "/up"] {
        assert_eq!(tree.resolve(target), Err(Refused::Forbidden), "{target}");
    }
    // Not a path at all.
    for target in ["secret.txt", "*", "/%zz", "/%2", "ftp://example.com/x"] {
        assert_eq!(tree.resolve(target), Err(Refused::BadRequest), "{target}");
    }
}

#[test]
fn only_regular_files_are_served() {
    let tree = Tree::new();
    let socket = tree.root.join("a.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    assert_eq!(tree.resolve("/a.sock"), Err(Refused::Forbidden));
}

#[test]
fn an_index_file_is_served_only_from_inside_the_root() {
    let tree = Tree::new();
    let docs = tree.root.join("docs");
    assert_eq!(index_file(&tree.root, &docs), Ok(None));
    std::fs::write(docs.join("index.html"), "<h1>").unwrap();
    assert_eq!(
        index_file(&tree.root, &docs),
        Ok(Some(docs.join("index.html")))
    );
    let inner = docs.join("inner");
    symlink(tree.top.join("secret.txt"), inner.join("index.html")).unwrap();
    assert_eq!(index_file(&tree.root, &inner), Err(Refused::Forbidden));
}

#[test]
fn content_types_come_from_the_extension() {
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("A.HTM", "text/html; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("x.css", "text/css"),
        ("x.js", "text/javascript"),
        ("x.json", "application/json"),
        ("x.png", "image/png"),
        ("x.jpeg", "image/jpeg"),
        ("x.svg", "image/svg+xml"),
        ("x.tar.gz", "application/gzip"),
        ("Makefile", "application/octet-stream"),
        ("x.unknown", "application/octet-stream"),
    ];
    for (name, want) in cases {
        assert_eq!(content_type(Path::new(name)), want, "{name}");
    }
}

#[test]
fn percent_encoding_round_trips_every_byte() {
    let every: Vec<u8> = (0..=255).collect();
    let encoded = percent_encode(&every);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b))
    );
    assert_eq!(percent_decode(&encoded).unwrap(), every);
    assert_eq!(percent_decode("a%20b%2F"), Some(b"a b/".to_vec()));
    assert_eq!(percent_decode("%4"), None);
    assert_eq!(percent_decode("%g0"), None);
}

#[test]
fn a_listing_escapes_names_and_encodes_links() {
    let tree = Tree::new();
    let dir = tree.root.join("docs");
    std::fs::write(dir.join("<b>&\"x\".txt"), "").unwrap();
    std::fs::write(dir.join("a b#?.txt"), "").unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"raw\xff.bin")), "").unwrap();
    symlink(tree.root.join("hello.txt"), dir.join("link")).unwrap();
    let page = listing(&dir, "/docs/<x>/").unwrap();
    assert!(
        page.contains("<title>Directory listing for /docs/&lt;x&gt;/</title>"),
        "{page}"
    );
    assert!(
        page.contains(r#"<a href="%3Cb%3E%26%22x%22.txt">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<a href="a%20b%23%3F.txt">a b#?.txt</a>"#),
        "{page}"
    );
    assert!(page.contains(r#"<a href="inner/">inner/</a>"#), "{page}");
    assert!(page.contains(r#"<a href="link">link@</a>"#), "{page}");
    assert!(page.contains(r#"<a href="raw%FF.bin">raw"#), "{page}");
    // Sorted, case aside: `<b>...` (0x3C) before `a b...`, `inner/`, `link`, `raw...`.
    let at = |needle: &str| page.find(needle).unwrap();
    assert!(at("%3Cb%3E") < at("a%20b") && at("a%20b") < at("inner/") && at("link") < at("raw"));
}
