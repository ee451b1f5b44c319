//! `berth config check`: the effective configuration and every finding, with fixes.

use berth_config::RunSettings;
use berth_config::lint::{Finding, Level, Probe};
use clap::ArgMatches;

use crate::cli::{JsonOutput, RunArgs};
use crate::failure::Failure;
use crate::plan::Plan;

pub(crate) async fn check(
    args: &RunArgs,
    output: JsonOutput,
    matches: &ArgMatches,
) -> Result<(), Failure> {
    let settings = crate::settings::resolve(args, matches)?;
    if output.json {
        return check_json(&settings).await;
    }
    let text = toml::to_string(&settings)
        .map_err(|e| Failure::runtime(format!("printing the configuration: {e}")))?;
    println!("# effective configuration (flags > BERTH_* variables > --config file)");
    println!("{}", text.trim_end());
    let plan = Plan::build(&settings)?;
    if let Some(eab) = &plan.account.eab {
        println!(
            "# EAB: key id {}, HMAC [redacted] ({} bytes) from {}",
            eab.kid,
            eab.hmac.len(),
            eab_file(&settings)
        );
    }
    println!();
    let findings = plan.findings(&settings, Probe::Live).await;
    for finding in &findings {
        println!("{}", crate::failure::finding_text(finding));
    }
    verdict(&findings, true)
}

/// `config check --json`: one object with the configuration, the EAB key (redacted) when
/// there is one, and the findings.
async fn check_json(settings: &RunSettings) -> Result<(), Failure> {
    let configuration = serde_json::to_value(settings)
        .map_err(|e| Failure::runtime(format!("printing the configuration: {e}")))?;
    let plan = Plan::build(settings)?;
    let findings = plan.findings(settings, Probe::Live).await;
    let mut doc = serde_json::json!({
        "configuration": configuration,
        "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
    });
    if let Some(eab) = &plan.account.eab {
        doc["eab"] = serde_json::json!({
            "kid": eab.kid,
            "hmac_bytes": eab.hmac.len(),
            "hmac_file": eab_file(settings),
        });
    }
    println!("{doc}");
    verdict(&findings, false)
}

/// Where the EAB HMAC was read from, for the redacted line.
fn eab_file(settings: &RunSettings) -> String {
    settings
        .eab_hmac_file
        .as_ref()
        .map_or_else(|| "?".into(), |p| p.display().to_string())
}

/// A finding as `--json` prints it: level, setting and message, and the flag hint the
/// text output prints below it, when there is one.
fn finding_json(finding: &Finding) -> serde_json::Value {
    let mut json = serde_json::json!({
        "level": finding.level,
        "setting": finding.setting,
        "message": finding.message,
    });
    if let Some(hint) = crate::failure::finding_hint(finding) {
        json["hint"] = hint.advice.into();
    }
    json
}

/// Exit 2 when a finding is an error; else, with `summary`, says how many warnings.
fn verdict(findings: &[Finding], summary: bool) -> Result<(), Failure> {
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    if errors > 0 {
        return Err(Failure::usage(format!(
            "{errors} error(s), {warnings} warning(s) in the configuration"
        )));
    }
    if summary {
        println!("configuration OK ({warnings} warning(s))");
    }
    Ok(())
}
