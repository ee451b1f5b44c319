//! `berth config check`: the effective configuration and every finding, with fixes.

use berth_config::lint::{Level, Probe};
use clap::ArgMatches;

use crate::cli::RunArgs;
use crate::failure::Failure;
use crate::plan::Plan;

pub(crate) async fn check(args: &RunArgs, matches: &ArgMatches) -> Result<(), Failure> {
    let settings = crate::settings::resolve(args, matches)?;
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
            settings
                .eab_hmac_file
                .as_ref()
                .map_or_else(|| "?".into(), |p| p.display().to_string())
        );
    }
    println!();
    let findings = plan.findings(&settings, Probe::Live).await;
    for finding in &findings {
        println!("{}", crate::failure::finding_text(finding));
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    if errors > 0 {
        return Err(Failure::usage(format!(
            "{errors} error(s), {warnings} warning(s) in the configuration"
        )));
    }
    println!("configuration OK ({warnings} warning(s))");
    Ok(())
}
