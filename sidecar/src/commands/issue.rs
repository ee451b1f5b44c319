//! `berth issue`: get one certificate now, through the same ledger, budget and
//! staging-first logic as `berth run`.

use std::path::Path;
use std::time::SystemTime;

use berth_acme_core::store::{export_combined, export_live};
use berth_acme_core::{CertManager, Certificate, ManagedCert, ManagerConfig, Outcome};

use super::responder;
use super::{account_config, days_left, domain_set, open_store, rescue_dir, rfc3339};
use crate::cli::IssueArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: IssueArgs) -> Result<(), Failure> {
    let domains = domain_set(&args.domains)?;
    let (challenge, key_type) = (args.challenge.challenge, args.order.key_type);
    let profile = crate::plan::profile(args.profile.as_ref())
        .map_err(|e| Failure::usage(format!("--profile: {e}")))?;
    let managed = ManagedCert::new(domains, challenge, key_type)?.with_profile(profile);
    let account = account_config(&args.ca)?;
    if let Some(profile) = &managed.profile {
        // Before the store is opened or a listener bound: a profile the CA does not
        // list is a typo or the wrong CA, and the answer names the CA's profiles.
        let offered = berth_acme_core::ca_profiles(&account).await?;
        berth_acme_core::check_profile(&account.ca, &offered, profile)?;
    }

    // Opened (and proven writable) before anything is ordered; a dry run only reads it.
    let store = if args.order.dry_run {
        super::open_read_only(&args.store).await?
    } else {
        open_store(&args.store).await?
    };
    let mut config = ManagerConfig::new(store, account);
    config.skip_staging = args.order.skip_staging;
    config.rescue_dir = rescue_dir(&args.store);

    // The challenge responder runs only for the duration of this command.
    let responder = responder::start(&args.challenge, &args.store).await?;
    let manager = CertManager::new(config, vec![managed.clone()], vec![responder.solver()]);
    if args.order.dry_run {
        let request = berth_admin::api::RenewRequest {
            force: true,
            dry_run: true,
            names: Vec::new(),
        };
        let rows = berth_admin::renew::renew(&manager, &request).await;
        responder.stop().await;
        return super::renew::report(rows, args.output.json, true);
    }
    let result = manager.ensure(&managed, args.order.force).await;
    responder.stop().await;
    let outcome = result?;

    let exported = match &args.export_dir {
        Some(dir) => export(outcome.certificate(), dir)?,
        None => Vec::new(),
    };
    print(&args, &outcome, &exported);
    Ok(())
}

/// Writes the certificate as PEM files under `dir` (certbot's `live/` layout and
/// HAProxy's combined file); returns the paths worth printing.
fn export(certificate: &Certificate, dir: &Path) -> Result<Vec<String>, Failure> {
    let failure = |e| Failure::runtime(berth_acme_core::Error::from(e));
    let live = export_live(certificate, dir).map_err(failure)?;
    let combined = export_combined(certificate, dir).map_err(failure)?;
    Ok(vec![
        live.fullchain.display().to_string(),
        live.privkey.display().to_string(),
        combined.display().to_string(),
    ])
}

fn print(args: &IssueArgs, outcome: &Outcome, exported: &[String]) {
    let info = outcome.certificate().info();
    let now = SystemTime::now();
    let status = match outcome {
        Outcome::Valid { .. } => "valid",
        Outcome::Issued(_) => "issued",
        Outcome::Renewed(_) => "renewed",
        _ => "unknown",
    };
    if args.output.json {
        let doc = serde_json::json!({
            "status": status,
            "domains": info.domains.names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "issuer": info.issuer,
            "serial": info.serial_hex,
            "not_before": rfc3339(info.not_before),
            "not_after": rfc3339(info.not_after),
            "days_left": days_left(info.not_after, now),
            "store": args.store.store,
            "exported": exported,
        });
        println!("{doc}");
    } else {
        let what = match outcome {
            Outcome::Valid { renew_at, .. } => {
                format!(
                    "a valid certificate is already stored (renewal due {}; --force to replace it)",
                    rfc3339(*renew_at)
                )
            }
            Outcome::Renewed(_) => "certificate renewed".to_owned(),
            _ => "certificate issued".to_owned(),
        };
        println!("{what}: {}", info.domains);
        println!("  issuer:    {}", info.issuer);
        println!(
            "  expires:   {} ({} days)",
            rfc3339(info.not_after),
            days_left(info.not_after, now)
        );
        println!(
            "  stored in: {} (resolver {:?})",
            args.store.store.display(),
            args.store.resolver
        );
        for path in exported {
            println!("  exported:  {path}");
        }
    }
}
