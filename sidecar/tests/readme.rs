//! The README's flag table is a public contract: every `BERTH_*` variable the binary
//! reads must be documented there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

fn env_names(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            env_names(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("env = \"").skip(1) {
                let name: String = part.chars().take_while(|c| *c != '"').collect();
                if name.starts_with("BERTH_") && !found.contains(&name) {
                    found.push(name);
                }
            }
        }
    }
}

#[test]
fn every_berth_variable_is_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    env_names(&root.join("src"), &mut names);
    assert!(names.len() > 20, "found only {names:?}");
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document {missing:?}"
    );
}
