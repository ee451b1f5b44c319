//! The deployment files use only variables the `berth` binary reads, and never put a
//! secret value in the environment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use clap::{Command, CommandFactory};

/// Every `BERTH_*` variable a flag of the `berth` binary reads (from its CLI definition),
/// plus the two it reads outside clap: the log filter and the secrets directory.
fn known_variables() -> Vec<String> {
    fn walk(command: &Command, names: &mut Vec<String>) {
        names.extend(
            command
                .get_arguments()
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned()),
        );
        for sub in command.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = vec!["BERTH_LOG".to_owned(), "BERTH_SECRETS_DIR".to_owned()];
    walk(&berth::cli::Cli::command(), &mut names);
    assert!(
        names.contains(&"BERTH_STORE".to_owned()) && names.len() > 40,
        "the CLI definition reads only {names:?}"
    );
    names
}

fn used_variables(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("BERTH_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        used.push(name.clone());
        rest = &rest[at + name.len()..];
    }
    used
}

#[test]
fn deployment_files_use_real_variables_and_secrets_only_as_files() {
    let known = known_variables();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        dir.join("compose.yaml"),
        dir.join("stack.yaml"),
        dir.join("cluster-stack.yaml"),
        dir.join("kubernetes/pod.yaml"),
        dir.join("kubernetes/cluster.yaml"),
        dir.join("../Dockerfile"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let used = used_variables(&text);
        assert!(
            !used.is_empty(),
            "{} uses no BERTH_ variable",
            file.display()
        );
        for name in used {
            assert!(
                known.contains(&name),
                "{}: {name} is not a berth variable",
                file.display()
            );
            assert!(
                ![
                    "BERTH_EAB_HMAC",
                    "BERTH_DNS_TSIG_SECRET",
                    "BERTH_STORE_PASSWORD"
                ]
                .contains(&name.as_str()),
                "{}: {name}: secrets go in *_FILE",
                file.display()
            );
        }
    }
}

#[test]
fn the_image_runs_as_non_root_with_a_healthcheck_and_sigterm() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))
        .unwrap();
    assert!(text.contains("HEALTHCHECK"), "no HEALTHCHECK");
    assert!(text.contains("CMD [\"berth\", \"healthcheck\"]"));
    assert!(text.contains("STOPSIGNAL SIGTERM"));
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") || user.contains("nonroot"), "{user}");
    assert!(!user.starts_with("USER 0"), "{user}");
}
