//! `berth certs list | show | export` read the store and never contact a CA; `berth
//! certs prune` removes stale certificates (revoking them only with --revoke).

use std::time::SystemTime;

use berth_acme_core::revocation::{retire, stored_account};
use berth_acme_core::stale::{self, StaleCert};
use berth_acme_core::store::{CatalogEntry, Store, export_combined, export_live};

use super::{account_config, days_left, not_found, open_store, read_catalog, read_store, rfc3339};
use crate::cli::{
    CertsCommand, CertsExportArgs, CertsListArgs, CertsPruneArgs, CertsShowArgs, ExportFormat,
};
use crate::failure::Failure;

pub(crate) async fn run(command: CertsCommand) -> Result<(), Failure> {
    match command {
        CertsCommand::List(args) => list(args).await,
        CertsCommand::Show(args) => show(args).await,
        CertsCommand::Export(args) => export(args).await,
        CertsCommand::Prune(args) => prune(args).await,
    }
}

fn cert_json(entry: &CatalogEntry, now: SystemTime) -> serde_json::Value {
    let cert = &entry.cert;
    let info = cert.certificate.info();
    let failures = entry.failures.as_ref();
    serde_json::json!({
        "resolver": cert.resolver,
        "main": cert.domains.main().as_str(),
        "domains": cert.domains.names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "issuer": info.issuer,
        "serial": info.serial_hex,
        "not_before": rfc3339(info.not_before),
        "not_after": rfc3339(info.not_after),
        "days_left": days_left(info.not_after, now),
        "expiry": entry.expiry.as_str(),
        "profile": entry.profile,
        "renew_at": rfc3339(entry.renew_at),
        "renewal_window": entry.renewal_window.map(|(start, end)| serde_json::json!({"start": rfc3339(start), "end": rfc3339(end)})),
        "revoked": entry.revoked.as_ref().map(|r| rfc3339(r.at)),
        "ari_renewal": entry.ari_renewal,
        // false: berth run is not configured with these names and never renews them.
        "managed": entry.managed,
        "last_error": failures.map(|e| e.last_error.clone()),
        "consecutive_failures": failures.map(|e| e.consecutive_failures),
        "backoff_until": entry.backoff_until.map(rfc3339),
    })
}

async fn list(args: CertsListArgs) -> Result<(), Failure> {
    let catalog = read_catalog(&args.store).await?;
    let now = SystemTime::now();
    let (entries, unreadable) = catalog.entries(now);
    let ledger = catalog.state().ledger();
    if args.output.json {
        let doc = serde_json::json!({
            "certificates": entries.iter().map(|e| cert_json(e, now)).collect::<Vec<_>>(),
            "unreadable": unreadable.iter().map(|u| serde_json::json!({"resolver": u.resolver, "main": u.main, "reason": u.reason})).collect::<Vec<_>>(),
            "backoff": ledger.map(|e| serde_json::json!({
                "ca": e.ca, "domains": e.domains, "consecutive_failures": e.consecutive_failures,
                "last_error": e.last_error, "next_attempt": rfc3339(e.next_attempt_at),
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(());
    }
    if entries.is_empty() && unreadable.is_empty() {
        println!("no certificates in {}", args.store.store.display());
    } else {
        println!(
            "{:<12} {:<40} {:<25} {:>9}  ISSUER",
            "RESOLVER", "NAMES", "NOT AFTER", "DAYS LEFT"
        );
        for entry in &entries {
            let (cert, info) = (&entry.cert, entry.cert.certificate.info());
            println!(
                "{:<12} {:<40} {:<25} {:>9}  {}{}{}",
                cert.resolver,
                cert.domains.to_string(),
                rfc3339(info.not_after),
                days_left(info.not_after, now),
                info.issuer,
                if entry.revoked.is_some() {
                    "  [revoked]"
                } else {
                    ""
                },
                if entry.managed == Some(false) {
                    "  [unmanaged]"
                } else {
                    ""
                }
            );
        }
        for bad in &unreadable {
            println!(
                "{:<12} {:<40} unreadable: {}",
                bad.resolver,
                bad.main.as_deref().unwrap_or("?"),
                bad.reason
            );
        }
    }
    for entry in ledger {
        let when = match entry.backing_off_until(now) {
            Some(next) => format!("next attempt {}", rfc3339(next)),
            None => "may retry now".into(),
        };
        println!(
            "backing off: {} at {} after {} failure(s), {when}; last error: {}",
            entry.domains, entry.ca, entry.consecutive_failures, entry.last_error
        );
    }
    Ok(())
}

async fn show(args: CertsShowArgs) -> Result<(), Failure> {
    let catalog = read_catalog(&args.store).await?;
    let now = SystemTime::now();
    let Some(entry) = catalog.find(&args.name, now) else {
        return Err(not_found(&args.store, &args.name));
    };
    let doc = cert_json(&entry, now);
    if args.output.json {
        println!("{doc}");
    } else if let Some(fields) = doc.as_object() {
        for (key, value) in fields {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{key:<21} {text}");
        }
    }
    Ok(())
}

async fn export(args: CertsExportArgs) -> Result<(), Failure> {
    let (store, _) = read_store(&args.store).await?;
    if args.format == ExportFormat::Traefik {
        let Some(out) = &args.out else {
            return Err(Failure::usage(
                "--format traefik writes one acme.json: pass --out /path/to/acme.json",
            ));
        };
        store
            .save(out)
            .map_err(|e| Failure::runtime(berth_acme_core::Error::from(e)))?;
        println!("{}", out.display());
        return Ok(());
    }
    let (Some(name), Some(dir)) = (&args.name, &args.dir) else {
        return Err(Failure::usage(
            "--format live/combined/both exports one certificate: pass its NAME and --dir",
        ));
    };
    let Some(cert) = store.find(&args.store.resolver, name) else {
        return Err(not_found(&args.store, name));
    };
    let to_failure = |e| Failure::runtime(berth_acme_core::Error::from(e));
    if matches!(args.format, ExportFormat::Live | ExportFormat::Both) {
        let paths = export_live(&cert.certificate, dir).map_err(to_failure)?;
        println!("{}", paths.cert.display());
        println!("{}", paths.chain.display());
        println!("{}", paths.fullchain.display());
        println!("{}", paths.privkey.display());
    }
    if matches!(args.format, ExportFormat::Combined | ExportFormat::Both) {
        println!(
            "{}",
            export_combined(&cert.certificate, dir)
                .map_err(to_failure)?
                .display()
        );
    }
    Ok(())
}

async fn prune(args: CertsPruneArgs) -> Result<(), Failure> {
    if !args.expired && !args.unmanaged {
        return Err(Failure::usage(
            "say what to prune: --expired, --unmanaged, or both (add --dry-run to see the list first)",
        ));
    }
    // A writer like `berth issue`: each removal takes the set's order lock.
    let store = open_store(&args.store).await?;
    let configured = stale::configured(store.as_ref()).await?;
    if args.unmanaged && configured.is_none() {
        return Err(Failure::usage(format!(
            "no berth run has recorded its configured certificates in {} yet, so none can be called unmanaged; start berth run with this store once, or prune with --expired only",
            args.store.store.display()
        )));
    }
    let found = stale::find_stale(
        store.as_ref(),
        configured.as_ref(),
        args.expired,
        args.unmanaged,
        SystemTime::now(),
    )
    .await?;
    let account = if args.revoke && !args.dry_run && found.iter().any(StaleCert::revocable) {
        Some(revoking_account(store.as_ref(), &args).await?)
    } else {
        None
    };
    let mut report = Vec::new();
    for cert in &found {
        let why = cert.reason();
        let mut revoked = false;
        if !args.dry_run {
            revoked = retire(store.as_ref(), cert, account.as_ref()).await?;
            tracing::info!(domains = %cert.domains, reason = why, revoked, "removed a stale certificate");
        }
        report.push(serde_json::json!({
            "domains": cert.domains.names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "not_after": rfc3339(cert.certificate.info().not_after),
            "reason": why,
            "revoked": revoked,
            "removed": !args.dry_run,
        }));
        if !args.output.json {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            let revoked = if revoked { ", revoked" } else { "" };
            println!("{verb} {} ({why}{revoked})", cert.domains);
        }
    }
    if args.output.json {
        println!(
            "{}",
            serde_json::json!({ "dry_run": args.dry_run, "certificates": report })
        );
    } else if found.is_empty() {
        println!("nothing to prune in {}", args.store.store.display());
    }
    Ok(())
}

/// The stored account at `--ca`, to revoke with.
async fn revoking_account(
    store: &dyn Store,
    args: &CertsPruneArgs,
) -> Result<berth_acme_core::AcmeAccount, Failure> {
    let config = account_config(&args.ca)?;
    stored_account(store, &config).await?.ok_or_else(|| {
        Failure::usage(format!(
            "no account for {} in {}; --revoke needs the --ca the certificates were issued from",
            config.ca.directory(),
            args.store.store.display()
        ))
    })
}
