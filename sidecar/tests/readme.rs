//! The README is a public contract: every `BERTH_*` variable the binary reads is in its
//! flag table, every flag the table names exists (with its variable and default) on the
//! commands it names, checked against the CLI definition itself (`Cli::command()`), and
//! every message its troubleshooting table quotes is one berth prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use clap::{Arg, Command, CommandFactory};

/// Every command of the CLI with its path (`["certs", "list"]`), the root first.
fn commands() -> Vec<(Vec<String>, Command)> {
    fn walk(path: Vec<String>, command: &Command, out: &mut Vec<(Vec<String>, Command)>) {
        for sub in command.get_subcommands() {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            walk(sub_path, sub, out);
        }
        out.push((path, command.clone()));
    }
    let mut root = berth::cli::Cli::command();
    // Global arguments reach the subcommands only once the definition is built.
    root.build();
    let mut out = Vec::new();
    walk(Vec::new(), &root, &mut out);
    out
}

/// Every argument of every command, with the command's path.
fn arguments() -> Vec<(String, Arg)> {
    commands()
        .into_iter()
        .flat_map(|(path, command)| {
            let path = path.join(" ");
            command
                .get_arguments()
                .cloned()
                .map(move |arg| (path.clone(), arg))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn env_name(arg: &Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// One row of the README's flag table.
#[derive(Debug)]
struct Row {
    /// `--domain`, `-d`, …: every flag the first column names.
    flags: Vec<String>,
    /// The `BERTH_*` variable, if the row names one.
    variable: Option<String>,
    /// The default column when it is one backticked value.
    default: Option<String>,
    /// The commands the meaning column says take the flag, e.g. `(issue, renew)`.
    commands: Vec<String>,
}

/// The rows of the table under "## Configuration" whose header is `| flag | variable |`.
fn flag_table(readme: &str, command_paths: &[String]) -> Vec<Row> {
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let table = section
        .split("\n| flag | variable |")
        .nth(1)
        .expect("the Configuration section has a flag table");
    table
        .lines()
        .skip(2) // the rest of the header and the |---| line
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let code = |cell: &str| -> Vec<String> {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect()
            };
            let flags = code(cells[0])
                .iter()
                .flat_map(|c| c.split(", ").map(str::to_owned).collect::<Vec<_>>())
                .filter(|f| f.starts_with('-'))
                .collect();
            let variable = code(cells[1]).into_iter().find(|v| v.starts_with("BERTH_"));
            let default = match code(cells[2]).as_slice() {
                [one] if cells[2].trim() == format!("`{one}`") => Some(one.clone()),
                _ => None,
            };
            // A parenthesis listing only command names says where the flag is taken.
            let meaning = cells.get(3).copied().unwrap_or_default();
            let commands = meaning
                .split('(')
                .skip(1)
                .filter_map(|part| part.split(')').next())
                .map(|inside| {
                    let list = inside.split(';').next().unwrap_or_default();
                    list.split(',')
                        .map(|c| c.trim().to_owned())
                        .collect::<Vec<_>>()
                })
                .filter(|list| list.iter().all(|c| command_paths.contains(c)))
                .last()
                .unwrap_or_default();
            Row {
                flags,
                variable,
                default,
                commands,
            }
        })
        .collect()
}

fn readme() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("../README.md")).unwrap()
}

#[test]
fn every_berth_variable_is_in_the_readme() {
    let mut names: Vec<String> = arguments()
        .iter()
        .filter_map(|(_, arg)| env_name(arg))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 20, "found only {names:?}");
    let readme = readme();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document {missing:?}"
    );
}

/// Whether `arg` answers to `flag` (`--name` or `-n`).
fn is_flag(arg: &Arg, flag: &str) -> bool {
    match flag.strip_prefix("--") {
        Some(long) => arg.get_long() == Some(long),
        None => flag
            .strip_prefix('-')
            .and_then(|s| s.chars().next())
            .is_some_and(|short| arg.get_short() == Some(short)),
    }
}

#[test]
fn every_flag_in_the_readme_table_exists_with_its_variable_and_default_on_the_commands_it_names() {
    let commands = commands();
    let paths: Vec<String> = commands
        .iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, _)| path.join(" "))
        .collect();
    let rows = flag_table(&readme(), &paths);
    assert!(rows.len() > 40, "found only {} rows", rows.len());
    assert!(
        rows.iter().any(|r| r.commands == ["issue", "renew"]),
        "no row names its commands: {rows:#?}"
    );
    let mut wrong = Vec::new();
    for row in &rows {
        let in_path = |path: &[String], wanted: &str| {
            let path = path.join(" ");
            path == wanted || path.starts_with(&format!("{wanted} "))
        };
        // Each flag exists on a command the row names (any command when it names none).
        for flag in &row.flags {
            let exists = commands.iter().any(|(path, command)| {
                (row.commands.is_empty() || row.commands.iter().any(|c| in_path(path, c)))
                    && command.get_arguments().any(|a| is_flag(a, flag))
            });
            if !exists {
                wrong.push(format!("{flag}: none of {:?} takes it", row.commands));
            }
        }
        // Each command the row names (a group such as `certs`: one of its subcommands)
        // takes one of the row's flags, or reads its variable under another flag name.
        for wanted in &row.commands {
            let takes = commands.iter().any(|(path, command)| {
                in_path(path, wanted)
                    && command.get_arguments().any(|a| {
                        row.flags.iter().any(|f| is_flag(a, f))
                            || (row.variable.is_some() && env_name(a) == row.variable)
                    })
            });
            if !takes {
                wrong.push(format!("`berth {wanted}` takes none of {:?}", row.flags));
            }
        }
        // The variable belongs to one of the row's flags, and the default is clap's.
        let args: Vec<&Arg> = commands
            .iter()
            .flat_map(|(_, c)| c.get_arguments())
            .filter(|a| row.flags.iter().any(|f| is_flag(a, f)))
            .collect();
        if let Some(variable) = &row.variable
            && !row.flags.is_empty()
            && !args.iter().any(|a| env_name(a).as_ref() == Some(variable))
        {
            wrong.push(format!("{:?}: none reads {variable}", row.flags));
        }
        if let Some(default) = &row.default {
            for arg in &args {
                let defaults: Vec<_> = arg.get_default_values().iter().collect();
                if !defaults.is_empty() && defaults != [default.as_str()] {
                    wrong.push(format!(
                        "{:?}: README says the default is {default}, the CLI {defaults:?}",
                        row.flags
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README.md's flag table is wrong: {wrong:#?}"
    );
}

/// The crates whose messages reach a user of the binary.
const MESSAGE_SOURCES: [&str; 5] = [
    "../acme-core/src",
    "../proxy/src",
    "../secrets/src",
    "../config/src",
    "src",
];

/// The string literals of the non-test code in the `.rs` files under `dir`, as written
/// (escapes decoded, `{…}` placeholders kept).
fn string_literals(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            string_literals(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests come last in a file; their literals are expectations, not messages.
            let code = text
                .split("\n#[cfg(test)]\nmod ")
                .next()
                .unwrap_or_default();
            found.extend(literals_in(code));
        }
    }
}

/// The string literals in Rust source, skipping comments and char literals.
fn literals_in(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut literals = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match (at(i), at(i + 1)) {
            ('/', '/') => {
                while i < chars.len() && at(i) != '\n' {
                    i += 1;
                }
            }
            ('/', '*') => {
                while i < chars.len() && !(at(i) == '*' && at(i + 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
            ('r', '"' | '#') if !at(i.wrapping_sub(1)).is_alphanumeric() => {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if at(i + 1 + hashes) != '"' {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let len = chars[start..]
                    .windows(close.len())
                    .position(|w| w == close)
                    .unwrap_or(chars.len() - start);
                literals.push(chars[start..start + len].iter().collect());
                i = start + len + close.len();
            }
            ('"', _) => {
                let mut literal = String::new();
                i += 1;
                while i < chars.len() && at(i) != '"' {
                    if at(i) == '\\' {
                        i += 1;
                        match at(i) {
                            'n' => literal.push('\n'),
                            't' => literal.push('\t'),
                            // A line continuation: the newline and the next line's indent go.
                            '\n' => {
                                while at(i + 1).is_whitespace() {
                                    i += 1;
                                }
                            }
                            other => literal.push(other),
                        }
                    } else {
                        literal.push(at(i));
                    }
                    i += 1;
                }
                literals.push(literal);
                i += 1;
            }
            // A char literal ('"', '\'', '\u{2026}') rather than a lifetime.
            ('\'', '\\') => {
                i += 3;
                while i < chars.len() && at(i) != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', _) if at(i + 2) == '\'' => i += 3,
            _ => i += 1,
        }
    }
    literals
}

/// One character of a message format, or a `{…}` placeholder.
#[derive(Clone, Copy, PartialEq)]
enum Piece {
    Char(char),
    Placeholder,
}

fn pieces(format: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                pieces.push(Piece::Char('{'));
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                pieces.push(Piece::Char('}'));
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                pieces.push(Piece::Placeholder);
            }
            c => pieces.push(Piece::Char(c)),
        }
    }
    pieces
}

/// Whether `quote` can be part of a message printed from `format`: each placeholder
/// stands for one word (a name, an address, a path, a number), and most of the quote
/// is the format's own wording, so that a quote does not fit `"{}: {}"` or a table row
/// format just by having few words.
fn fits(quote: &str, format: &[Piece]) -> bool {
    // For each position in `format` the quote read so far can end at: the most
    // characters matched as wording rather than by placeholders. A quote may start
    // anywhere in a message.
    let mut best: Vec<Option<i32>> = vec![Some(0); format.len() + 1];
    let skip_placeholders = |best: &mut Vec<Option<i32>>| {
        for j in 0..format.len() {
            if format[j] == Piece::Placeholder {
                best[j + 1] = best[j + 1].max(best[j]);
            }
        }
    };
    skip_placeholders(&mut best);
    for c in quote.chars() {
        let mut next = vec![None; format.len() + 1];
        for (j, score) in best.iter().enumerate() {
            let (Some(score), Some(piece)) = (score, format.get(j)) else {
                continue;
            };
            match piece {
                Piece::Char(expected) if *expected == c => {
                    next[j + 1] = next[j + 1].max(Some(score + 1));
                }
                Piece::Placeholder if !c.is_whitespace() => {
                    next[j] = next[j].max(Some(score - 1));
                }
                _ => {}
            }
        }
        skip_placeholders(&mut next);
        best = next;
    }
    best.into_iter()
        .flatten()
        .max()
        .is_some_and(|score| score > 0)
}

/// The backtick-quoted messages in the first column ("you see") of the README's
/// troubleshooting table.
fn troubleshooting_quotes(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## Troubleshooting\n")
        .nth(1)
        .expect("README.md has a Troubleshooting section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and the |---| line
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|you_see| you_see.split('`').skip(1).step_by(2).map(str::to_owned))
        .collect()
}

#[test]
fn every_message_the_troubleshooting_table_quotes_is_printed_by_berth() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let quotes = troubleshooting_quotes(&readme);
    assert!(quotes.len() > 10, "found only {quotes:?}");
    let mut literals = Vec::new();
    for dir in MESSAGE_SOURCES {
        string_literals(&root.join(dir), &mut literals);
    }
    let formats: Vec<Vec<Piece>> = literals.iter().map(|l| pieces(l)).collect();
    // `…` in a quote stands for the parts that differ from run to run.
    let untrue: Vec<(&str, &str)> = quotes
        .iter()
        .flat_map(|quote| {
            quote
                .split('…')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(move |part| (quote.as_str(), part))
        })
        .filter(|(_, part)| !formats.iter().any(|format| fits(part, format)))
        .collect();
    assert!(
        untrue.is_empty(),
        "README.md's troubleshooting table quotes messages berth does not print (quote, missing part): {untrue:#?}"
    );
}

#[test]
fn a_quote_fits_a_format_by_its_wording_with_one_word_per_placeholder() {
    let format = pieces("cannot listen on {addr} for {challenge}: {reason}; {{hint}}");
    assert!(fits("cannot listen on 0.0.0.0:80 for http-01", &format));
    assert!(fits("listen on", &format));
    assert!(fits("denied; {hint}", &format));
    assert!(!fits(
        "cannot listen on 0.0.0.0:80: permission denied",
        &format
    ));
    assert!(!fits("cannot listen on all ports", &format));
    // A placeholder is no wording: a few words fit any table row's format otherwise.
    assert!(!fits("backing off until", &pieces("{:<12} {:<40} {:<25}")));
    assert!(!fits("0.0.0.0:80 for", &format));
    let literals = literals_in(
        r##"// "in a comment"
        let c = '"'; let q = '\''; let e = '\u{2026}'; fn f<'a>(_: &'a str) {}
        #[error("one {x} \
                 two")]
        let raw = r#"say "hi""#;"##,
    );
    assert_eq!(literals, ["one {x} two", r#"say "hi""#]);
}
