//! Just enough of Rust's lexical structure for tidy's code checks: which text of a source file is
//! code (not a comment, not the inside of a string or char literal), the code as tokens with
//! their lines, and the lines of the Rust examples in doc comments.
//!
//! This is not a Rust lexer, only as much of one as the checks need: comments (`//`, nested
//! `/* */`), string literals (`"…"`, `b"…"`, `c"…"` and their raw forms `r#"…"#`) and char
//! literals (`'x'`, `'\n'`, `b'x'`, told apart from lifetimes and labels) are blanked, line breaks
//! kept, so that `"unsafe"`, `// println!` or `'"'` are never read as code.

/// `text` with every comment and the contents of every string and char literal replaced by
/// spaces (their quotes kept), and every line break kept: what remains is code, on the line it
/// stood on.
pub(crate) fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let word_before = i > 0 && is_word(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = block_comment(&chars, i, &mut out);
        } else if c == '"' {
            i = quoted(&chars, i, '"', &mut out);
        } else if c == '\'' {
            i = quote_mark(&chars, i, &mut out);
        } else if !word_before && let Some(hashes) = raw_string_start(&chars, i) {
            i = raw_string(&chars, i, hashes, &mut out);
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A letter, digit or `_`: a character of a word (identifier, keyword, number).
pub(crate) fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Pushes `c` blanked: a line break stays one, everything else becomes a space.
fn blank(c: char, out: &mut String) {
    out.push(if c == '\n' { '\n' } else { ' ' });
}

/// Blanks the (nested) block comment starting at `start`; returns the index after it.
fn block_comment(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let pair = (chars[i], chars.get(i + 1).copied());
        if pair == ('/', Some('*')) || pair == ('*', Some('/')) {
            depth += if pair.0 == '/' { 1 } else { -1 };
            out.push_str("  ");
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            blank(chars[i], out);
            i += 1;
        }
    }
    i
}

/// Keeps the quote at `start` and the closing `quote`, blanks what is between (escapes
/// included); returns the index after the closing quote.
fn quoted(chars: &[char], start: usize, quote: char, out: &mut String) -> usize {
    out.push(quote);
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                blank(chars[i], out);
                if let Some(&escaped) = chars.get(i + 1) {
                    blank(escaped, out);
                }
                i += 2;
            }
            c if c == quote => {
                out.push(quote);
                return i + 1;
            }
            c => {
                blank(c, out);
                i += 1;
            }
        }
    }
    i
}

/// A `'` at `start`: a char literal (`'x'`, `'\''`), blanked like a string, or the mark of a
/// lifetime or label (`'a`), kept as code.
fn quote_mark(chars: &[char], start: usize, out: &mut String) -> usize {
    let escaped = chars.get(start + 1) == Some(&'\\');
    let one_char = chars.get(start + 2) == Some(&'\'') && chars.get(start + 1) != Some(&'\'');
    if escaped || one_char {
        quoted(chars, start, '\'', out)
    } else {
        out.push('\'');
        start + 1
    }
}

/// If a raw string (`r"`, `r#"`, `br##"`, `cr"`) starts at `start`, the number of its `#`s.
fn raw_string_start(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    if matches!(chars.get(i), Some('b' | 'c')) {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    (chars.get(i + hashes) == Some(&'"')).then_some(hashes)
}

/// Keeps the prefix and quotes of the raw string at `start`, blanks its contents; returns the
/// index after its closing `"` and `#`s.
fn raw_string(chars: &[char], start: usize, hashes: usize, out: &mut String) -> usize {
    let mut i = start;
    while chars[i] != '"' {
        out.push(chars[i]);
        i += 1;
    }
    out.push('"');
    i += 1;
    while i < chars.len() {
        let closes =
            chars[i] == '"' && chars[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes;
        if closes {
            out.push('"');
            out.extend(std::iter::repeat_n('#', hashes));
            return i + 1 + hashes;
        }
        blank(chars[i], out);
        i += 1;
    }
    i
}

/// One token of code: a word (identifier, keyword or number), `::`, or one other character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The token's text.
    pub(crate) text: &'a str,
    /// Its 1-based line.
    pub(crate) line: usize,
}

/// The tokens of `code` (the output of [`code_only`]), white space dropped.
pub(crate) fn tokens(code: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut rest = code.char_indices().peekable();
    while let Some((at, c)) = rest.next() {
        if c == '\n' {
            line += 1;
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let mut end = at + c.len_utf8();
        if is_word(c) {
            while let Some(&(next_at, next)) = rest.peek() {
                if !is_word(next) {
                    break;
                }
                end = next_at + next.len_utf8();
                rest.next();
            }
        } else if c == ':' && rest.peek().is_some_and(|&(_, next)| next == ':') {
            rest.next();
            end += 1;
        }
        out.push(Token {
            text: &code[at..end],
            line,
        });
    }
    out
}

/// Whether the word at `tokens[k]` begins a path (`log` in `log::info!`), rather than continuing
/// one (`sockserve::log::`) or naming a method (`.log`).
pub(crate) fn starts_path(tokens: &[Token<'_>], k: usize) -> bool {
    let before = |n: usize| k.checked_sub(n).map(|i| tokens[i].text);
    match before(1) {
        // `::log::info!` starts from the crate root where nothing stands before the `::` that it
        // could be a segment of (`use ::log`, `(::log::x)`), but not after a path or a type
        // (`a::log`, `<T>::log`).
        Some("::") => match before(2) {
            None | Some("use") => true,
            Some(t) => !(t == ">" || t.chars().next().is_some_and(is_word)),
        },
        Some(".") => false,
        _ => true,
    }
}

/// One line of a Rust example in a doc comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocLine {
    /// Its 1-based line in the file.
    pub(crate) line: usize,
    /// The example's text on it, without the `///` or `//!` and rustdoc's hidden-line `# `.
    pub(crate) text: String,
}

/// The Rust code blocks of the `///` and `//!` comments of `text`, one list of lines a block.
/// A block is fenced with ```` ``` ```` (or `~~~`) and is Rust when its info string is empty or
/// only rustdoc's attributes (`rust`, `no_run`, `ignore`, `should_panic`, `compile_fail`,
/// `editionNNNN`, ...): a `text` or `sh` block is not code. A fence never runs past the end of
/// its comment.
pub(crate) fn doc_examples(text: &str) -> Vec<Vec<DocLine>> {
    let mut blocks = Vec::new();
    // The marker of the comment being read, and the block open in it (`Some(is_rust)`).
    let mut comment: Option<&str> = None;
    let mut open: Option<bool> = None;
    let mut current = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["///", "//!"]
            .into_iter()
            .find(|m| trimmed.starts_with(m) && !trimmed.starts_with("////"));
        if marker != comment {
            // Another comment (or code): an unclosed block ends with the one it was in.
            if open == Some(true) {
                blocks.push(std::mem::take(&mut current));
            }
            current.clear();
            open = None;
            comment = marker;
        }
        let Some(marker) = marker else {
            continue;
        };
        let content = &trimmed[marker.len()..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let fence = content.trim_start();
        if fence.starts_with("```") || fence.starts_with("~~~") {
            match open.take() {
                Some(is_rust) => {
                    if is_rust {
                        blocks.push(std::mem::take(&mut current));
                    }
                }
                None => open = Some(is_rust_info(&fence[3..])),
            }
            continue;
        }
        if open == Some(true) {
            let code = content.trim_start();
            let text = match code.strip_prefix('#') {
                Some("") => "",
                Some(hidden) if hidden.starts_with(' ') => &hidden[1..],
                _ => content,
            };
            current.push(DocLine {
                line: index + 1,
                text: text.to_owned(),
            });
        }
    }
    if open == Some(true) {
        blocks.push(current);
    }
    blocks
}

/// Whether a fence's info string leaves the block Rust, as rustdoc reads it.
fn is_rust_info(info: &str) -> bool {
    info.split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .all(|t| {
            matches!(
                t,
                "rust"
                    | "ignore"
                    | "no_run"
                    | "should_panic"
                    | "compile_fail"
                    | "test_harness"
                    | "standalone_crate"
            ) || t.starts_with("edition")
                || t.starts_with("ignore-")
        })
}
