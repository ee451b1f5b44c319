//! `berth secrets check`: where each secret comes from and what trimming did, never
//! the value.

use berth_secrets::Source;

use crate::cli::SecretsCheckArgs;
use crate::failure::Failure;

pub(crate) fn check(args: &SecretsCheckArgs) -> Result<(), Failure> {
    let loader = super::secrets_loader();
    let mut problems = 0usize;
    let mut rows = Vec::new();
    for name in &args.names {
        let row = match loader.from_env(name) {
            Ok(Some(loaded)) => {
                let (kind, path) = match &loaded.source {
                    Source::Env { .. } => ("env", None),
                    Source::File { path, .. } => ("file", Some(path.display().to_string())),
                    Source::DockerSecret { path } => {
                        ("docker-secret", Some(path.display().to_string()))
                    }
                    _ => ("other", None),
                };
                let mut removed = Vec::new();
                if loaded.trimmed.bom {
                    removed.push("a UTF-8 BOM".to_owned());
                }
                if loaded.trimmed.trailing_newline_bytes > 0 {
                    removed.push(format!(
                        "{} trailing newline byte(s)",
                        loaded.trimmed.trailing_newline_bytes
                    ));
                }
                serde_json::json!({
                    "name": name,
                    "status": "ok",
                    "source": kind,
                    "path": path,
                    "described": loaded.source.to_string(),
                    "length": loaded.secret.len(),
                    "trimmed": removed,
                })
            }
            Ok(None) => {
                problems += 1;
                serde_json::json!({
                    "name": name,
                    "status": "missing",
                    "error": format!(
                        "not set: looked at {name}, {name}_FILE and {}",
                        loader.secrets_dir().join(name.to_ascii_lowercase()).display()
                    ),
                })
            }
            Err(e) => {
                problems += 1;
                serde_json::json!({ "name": name, "status": "error", "error": e.to_string() })
            }
        };
        rows.push(row);
    }
    if args.output.json {
        println!("{}", serde_json::json!({ "secrets": rows }));
    } else {
        for row in &rows {
            let name = row["name"].as_str().unwrap_or("?");
            if row["status"] == "ok" {
                let trimmed = row["trimmed"]
                    .as_array()
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        let parts: Vec<&str> = t.iter().filter_map(|v| v.as_str()).collect();
                        format!("; trimmed {}", parts.join(" and "))
                    })
                    .unwrap_or_default();
                println!(
                    "{name}: from {}, {} bytes{trimmed}",
                    row["described"].as_str().unwrap_or("?"),
                    row["length"],
                );
            } else {
                println!("{name}: {}", row["error"].as_str().unwrap_or("?"));
            }
        }
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "{problems} of {} secret(s) could not be loaded",
            args.names.len()
        )))
    }
}
