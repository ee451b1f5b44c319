//! The libraries speak their own terms: no string in the non-test source of berth's
//! library crates names a flag of the `berth` binary (`--agree-tos`), one of its
//! environment variables (`BERTH_SECRETS_DIR`) or one of its commands (`berth certs
//! list`). An application embedding the crates has none of those; errors carry a
//! structured `Setting` instead, which the binary turns into its flag hint.
//!
//! The rule is about source text, so the test reads source text: every string literal
//! outside comments and `#[cfg(test)]` code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// The library crates (paths from the workspace root).
const LIBRARIES: &[&str] = &["acme-core", "certs", "secrets", "stores", "proxy"];

/// Environment variables a library may name: the DNS hook's contract with the user's
/// script (`ExecProvider` sets them), not settings of the binary.
const ALLOWED_ENV: &[&str] = &["BERTH_DNS_HOOK_ZONE", "BERTH_DNS_HOOK_TTL"];

/// The binary's subcommands, as they would appear in advice (`berth certs list`).
const COMMANDS: &[&str] = &[
    "run",
    "issue",
    "certs",
    "revoke",
    "store",
    "renew",
    "import",
    "config",
    "secrets",
    "healthcheck",
];

#[test]
fn library_strings_name_no_flag_variable_or_command_of_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut scanned = 0;
    for library in LIBRARIES {
        let src = root.join(library).join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            if test_only_modules(&src).contains(&file) {
                continue;
            }
            scanned += 1;
            for (line, literal) in string_literals(without_test_code(&text)) {
                for offence in offences(&literal) {
                    found.push(format!("{name}:{line}: {offence} in {literal:?}"));
                }
            }
        }
    }
    assert!(
        scanned > 50,
        "only {scanned} files scanned; did the layout change?"
    );
    assert!(
        found.is_empty(),
        "library strings that speak the binary's language (give the error a `Setting` and let sidecar/src/failure.rs name the flag):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_finds_what_it_looks_for_and_skips_comments_and_tests() {
    let source = r##"
// "--in-a-comment" and BERTH_IN_A_COMMENT
/// pass `--doc-flag`
fn f() -> &'static str {
    let _c = '"';
    let _raw = r#"raw --raw-flag"#;
    let _ok = "-----BEGIN CERTIFICATE----- and BERTH_DNS_HOOK_ZONE";
    "pass --agree-tos or set BERTH_SECRETS_DIR; see `berth certs list`"
}
#[cfg(test)]
mod tests {
    const X: &str = "--in-a-test";
}
"##;
    let literals = string_literals(without_test_code(source));
    let offences: Vec<String> = literals.iter().flat_map(|(_, l)| offences(l)).collect();
    assert_eq!(
        offences,
        [
            "flag --raw-flag",
            "flag --agree-tos",
            "variable BERTH_SECRETS_DIR",
            "command `berth certs`",
        ],
        "{literals:?}"
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Files of modules declared `#[cfg(test)] mod name;` anywhere under `src`.
fn test_only_modules(src: &Path) -> Vec<PathBuf> {
    let mut modules = Vec::new();
    for file in rust_files(src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs" | "mod.rs" | "main.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            if let Some(name) = next
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
            {
                modules.push(dir.join(format!("{name}.rs")));
                modules.push(dir.join(name).join("mod.rs"));
            }
        }
    }
    modules
}

/// `text` up to its first `#[cfg(test)]` item (test modules close the file, by the
/// project's convention).
fn without_test_code(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// The string literals of Rust source `text` with their line numbers, comments and
/// char literals skipped; escapes are kept as written (enough for matching words).
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut literals = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count_lines =
        |from: usize, to: usize| chars[from..to].iter().filter(|c| **c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            line += count_lines(start, i.min(chars.len()));
        } else if c == '\'' {
            // A char literal ('"', '\'', '\u{..}') or a lifetime ('static).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            let start = j + 1;
            let mut end = start;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while end < chars.len() && !chars[end..].starts_with(&closing) {
                end += 1;
            }
            literals.push((line, chars[start..end].iter().collect()));
            line += count_lines(i, end.min(chars.len()));
            i = end + closing.len();
        } else if c == '"' {
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            let end = end.min(chars.len());
            literals.push((line, chars[start..end].iter().collect()));
            line += count_lines(i, end);
            i = end + 1;
        } else {
            if c == '\n' {
                line += 1;
            }
            i += 1;
        }
    }
    literals
}

/// What in `literal` belongs to the binary: `--flag`, `BERTH_VARIABLE`, `berth <command>`.
fn offences(literal: &str) -> Vec<String> {
    let chars: Vec<char> = literal.chars().collect();
    let word = |from: usize, ok: &dyn Fn(char) -> bool| -> String {
        chars[from..].iter().take_while(|c| ok(**c)).collect()
    };
    let mut found = Vec::new();
    for i in 0..chars.len() {
        let before = (i > 0).then(|| chars[i - 1]);
        let starts_word = before.is_none_or(|b| !(b.is_alphanumeric() || b == '-' || b == '_'));
        if !starts_word {
            continue;
        }
        if chars[i..].starts_with(&['-', '-'])
            && chars.get(i + 2).is_some_and(char::is_ascii_lowercase)
        {
            let flag = word(i + 2, &|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            });
            found.push(format!("flag --{flag}"));
        }
        if chars[i..].starts_with(&['B', 'E', 'R', 'T', 'H', '_']) {
            let var = word(i, &|c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
            });
            if !ALLOWED_ENV.contains(&var.as_str()) {
                found.push(format!("variable {var}"));
            }
        }
        if chars[i..].starts_with(&['b', 'e', 'r', 't', 'h', ' ']) {
            let command = word(i + 6, &|c| c.is_ascii_lowercase());
            if COMMANDS.contains(&command.as_str()) {
                found.push(format!("command `berth {command}`"));
            }
        }
    }
    found
}
