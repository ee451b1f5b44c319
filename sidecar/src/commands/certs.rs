//! `berth certs list | show | export` read the store and never contact a CA; `berth
//! certs prune` removes stale certificates (revoking them only with --revoke).

use std::time::SystemTime;

use std::sync::Arc;

use berth_acme_core::stale::{self, ConfiguredSets};
use berth_acme_core::store::records;
use berth_acme_core::store::{
    FileStore, StateSnapshot, Store, StoredAccount, StoredCert, export_combined, export_live,
};
use berth_acme_core::{AcmeAccount, ExpiryLevel, RevocationReason, due_at};
use berth_stores::StoreLocation;

use super::{
    account_config, days_left, find_cert, open_store, read_store, rfc3339, store_location,
};
use crate::cli::{
    CertsCommand, CertsExportArgs, CertsListArgs, CertsPruneArgs, CertsShowArgs, StoreArgs,
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

/// Whether `cert` is one the last `berth run` manages: `None` for another resolver's
/// certificate, or when no `berth run` recorded its configuration in the store.
fn managed(cert: &StoredCert, resolver: &str, configured: Option<&ConfiguredSets>) -> Option<bool> {
    (cert.resolver == resolver)
        .then_some(configured?)
        .map(|c| c.manages(&cert.domains.key()))
}

/// What the last `berth run` on the store was configured with. Read-only.
async fn configured_sets(args: &StoreArgs) -> Result<Option<ConfiguredSets>, Failure> {
    let store: Arc<dyn Store> = match store_location(args)? {
        StoreLocation::File(path) => FileStore::open_read_only(&path, &args.resolver).await?,
        _ => open_store(args).await?,
    };
    Ok(stale::configured(store.as_ref()).await?)
}

fn cert_json(cert: &StoredCert, state: &StateSnapshot, managed: Option<bool>) -> serde_json::Value {
    let info = cert.certificate.info();
    let key = cert.domains.key();
    let backoff = state.ledger().find(|e| e.domains == key);
    let revoked = state.revoked(&info.serial_hex);
    serde_json::json!({
        "resolver": cert.resolver,
        "main": cert.domains.main().as_str(),
        "domains": cert.domains.names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "issuer": info.issuer,
        "serial": info.serial_hex,
        "not_before": rfc3339(info.not_before),
        "not_after": rfc3339(info.not_after),
        "days_left": days_left(info.not_after, SystemTime::now()),
        // Relative to the lifetime, so a 6-day certificate is not always "expiring".
        "expiry": ExpiryLevel::at(info.not_before, info.not_after, SystemTime::now()).as_str(),
        "profile": state.cert(&key).profile,
        "renew_at": rfc3339(due_at(&cert.certificate, state.hint(&info.serial_hex))),
        "renewal_window": state.hint(&info.serial_hex).and_then(|h| h.window).map(|(start, end)| serde_json::json!({"start": rfc3339(start), "end": rfc3339(end)})),
        "revoked": revoked.map(|r| rfc3339(r.at)),
        // Ordered as an ARI renewal (RFC 9773 `replaces`) and accepted by the CA.
        "ari_renewal": state.cert(&key).ari_renewal.as_deref() == Some(info.serial_hex.as_str()),
        // false: berth run is not configured with these names and never renews them.
        "managed": managed,
        "last_error": backoff.map(|e| e.last_error.clone()),
        "consecutive_failures": backoff.map(|e| e.consecutive_failures),
        "backoff_until": backoff.filter(|e| e.next_attempt_at > SystemTime::now()).map(|e| rfc3339(e.next_attempt_at)),
    })
}

async fn list(args: CertsListArgs) -> Result<(), Failure> {
    let (store, state) = read_store(&args.store).await?;
    let configured = configured_sets(&args.store).await?;
    let is_managed = |c: &StoredCert| managed(c, &args.store.resolver, configured.as_ref());
    let (certs, unreadable) = store.all_certificates();
    if args.output.json {
        let doc = serde_json::json!({
            "certificates": certs.iter().map(|c| cert_json(c, &state, is_managed(c))).collect::<Vec<_>>(),
            "unreadable": unreadable.iter().map(|u| serde_json::json!({"resolver": u.resolver, "main": u.main, "reason": u.reason})).collect::<Vec<_>>(),
            "backoff": state.ledger().map(|e| serde_json::json!({
                "ca": e.ca, "domains": e.domains, "consecutive_failures": e.consecutive_failures,
                "last_error": e.last_error, "next_attempt": rfc3339(e.next_attempt_at),
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(());
    }
    if certs.is_empty() && unreadable.is_empty() {
        println!("no certificates in {}", args.store.store.display());
    } else {
        println!(
            "{:<12} {:<40} {:<25} {:>9}  ISSUER",
            "RESOLVER", "NAMES", "NOT AFTER", "DAYS LEFT"
        );
        for cert in &certs {
            let info = cert.certificate.info();
            let names = cert.domains.to_string();
            let revoked = state.revoked(&info.serial_hex).is_some();
            println!(
                "{:<12} {:<40} {:<25} {:>9}  {}{}{}",
                cert.resolver,
                names,
                rfc3339(info.not_after),
                days_left(info.not_after, SystemTime::now()),
                info.issuer,
                if revoked { "  [revoked]" } else { "" },
                if is_managed(cert) == Some(false) {
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
    let now = SystemTime::now();
    for entry in state.ledger() {
        let when = if entry.next_attempt_at > now {
            format!("next attempt {}", rfc3339(entry.next_attempt_at))
        } else {
            "may retry now".into()
        };
        println!(
            "backing off: {} at {} after {} failure(s), {when}; last error: {}",
            entry.domains, entry.ca, entry.consecutive_failures, entry.last_error
        );
    }
    Ok(())
}

async fn show(args: CertsShowArgs) -> Result<(), Failure> {
    let (store, state) = read_store(&args.store).await?;
    let cert = find_cert(&store, &args.store.resolver, &args.name, &args.store.store)?;
    let configured = configured_sets(&args.store).await?;
    let doc = cert_json(
        &cert,
        &state,
        managed(&cert, &args.store.resolver, configured.as_ref()),
    );
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
    if args.format == "traefik" {
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
    let cert = find_cert(&store, &args.store.resolver, name, &args.store.store)?;
    let to_failure = |e| Failure::runtime(berth_acme_core::Error::from(e));
    if args.format == "live" || args.format == "both" {
        let paths = export_live(&cert.certificate, dir).map_err(to_failure)?;
        println!("{}", paths.cert.display());
        println!("{}", paths.chain.display());
        println!("{}", paths.fullchain.display());
        println!("{}", paths.privkey.display());
    }
    if args.format == "combined" || args.format == "both" {
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
    let account = if args.revoke && !args.dry_run && found.iter().any(|c| !c.expired) {
        Some(revoking_account(store.as_ref(), &args).await?)
    } else {
        None
    };
    let mut report = Vec::new();
    for cert in &found {
        let why = match (cert.expired, cert.unmanaged) {
            (true, true) => "expired, unmanaged",
            (true, false) => "expired",
            _ => "unmanaged",
        };
        let mut revoked = false;
        if !args.dry_run {
            if let (Some(account), false) = (&account, cert.expired) {
                account
                    .revoke(&cert.certificate, RevocationReason::CessationOfOperation)
                    .await?;
                revoked = true;
            }
            stale::remove(store.as_ref(), &cert.key).await?;
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
) -> Result<AcmeAccount, Failure> {
    let config = account_config(&args.ca)?;
    let stored =
        records::get_json::<StoredAccount>(store, &records::account_key(config.ca.directory()))
            .await?;
    let Some((stored, _)) = stored else {
        return Err(Failure::usage(format!(
            "no account for {} in {}; --revoke needs the --ca the certificates were issued from",
            config.ca.directory(),
            args.store.store.display()
        )));
    };
    Ok(
        AcmeAccount::load_or_create(&config, Some(&stored.credentials))
            .await?
            .0,
    )
}
