//! Flag and variable names are a public contract: every command's arguments (long and
//! short name, `BERTH_*` variable, default) are compared with `flags.txt`, read from the
//! CLI definition itself. A change that renames, drops or re-defaults a flag fails here;
//! when the change is meant, regenerate the file with
//! `BERTH_UPDATE_FLAGS=1 cargo test -p berth --test flag_contract` and say why in the
//! commit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use clap::{Command, CommandFactory};

fn lines(command: &Command, path: &str, out: &mut Vec<String>) {
    for arg in command.get_arguments() {
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        out.push(format!(
            "{path} | {} | long={} short={} env={} default={}",
            arg.get_id(),
            arg.get_long().unwrap_or("-"),
            arg.get_short().map_or("-".to_owned(), String::from),
            arg.get_env().map_or("-".into(), |e| e.to_string_lossy()),
            defaults.join(","),
        ));
    }
    for sub in command.get_subcommands() {
        lines(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_commands_flags_variables_and_defaults_are_as_recorded() {
    let mut command = berth::cli::Cli::command();
    // Global flags reach the subcommands once the definition is built.
    command.build();
    let mut found = Vec::new();
    lines(&command, "berth", &mut found);
    found.sort();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flags.txt");
    let text = found.join("\n") + "\n";
    if std::env::var_os("BERTH_UPDATE_FLAGS").is_some() {
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&file).unwrap();
    let recorded: Vec<&str> = recorded.lines().collect();
    let gone: Vec<&str> = recorded
        .iter()
        .copied()
        .filter(|l| !found.iter().any(|f| f == l))
        .collect();
    let new: Vec<&String> = found
        .iter()
        .filter(|f| !recorded.contains(&f.as_str()))
        .collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "the flags differ from tests/flags.txt (a public contract; see this file's header)\nrecorded, now gone or changed: {gone:#?}\nnew: {new:#?}"
    );
}
