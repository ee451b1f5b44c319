//! `berth secrets check`: where each secret comes from and what trimming did, never
//! the value.

use berth_secrets::{Loader, Source};

use crate::cli::SecretsCheckArgs;
use crate::failure::Failure;

pub(crate) fn check(args: &SecretsCheckArgs) -> Result<(), Failure> {
    let loader = super::secrets_loader();
    let rows: Vec<serde_json::Value> = args.names.iter().map(|n| row(&loader, n)).collect();
    if args.output.json {
        println!("{}", serde_json::json!({ "secrets": rows }));
    } else {
        print_text(&rows);
    }
    let problems = rows.iter().filter(|r| r["status"] != "ok").count();
    if problems == 0 {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "{problems} of {} secret(s) could not be loaded",
            args.names.len()
        )))
    }
}

/// Where the secret `name` comes from and what trimming removed (status `ok`), or why
/// it could not be loaded (`missing`, `error`). Never the value.
fn row(loader: &Loader, name: &str) -> serde_json::Value {
    let loaded = match loader.from_env(name) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            return serde_json::json!({
                "name": name,
                "status": "missing",
                "error": format!(
                    "not set: looked at {name}, {name}_FILE and {}",
                    loader.secrets_dir().join(name.to_ascii_lowercase()).display()
                ),
            });
        }
        Err(e) => {
            return serde_json::json!({ "name": name, "status": "error", "error": e.to_string() });
        }
    };
    let (kind, path) = match &loaded.source {
        Source::Env { .. } => ("env", None),
        Source::File { path, .. } => ("file", Some(path.display().to_string())),
        Source::DockerSecret { path } => ("docker-secret", Some(path.display().to_string())),
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

fn print_text(rows: &[serde_json::Value]) {
    for row in rows {
        let name = row["name"].as_str().unwrap_or("?");
        if row["status"] != "ok" {
            println!("{name}: {}", row["error"].as_str().unwrap_or("?"));
            continue;
        }
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
    }
}
