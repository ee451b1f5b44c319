//! `berth certs list | show | export`: read the store, never contact a CA.

use std::time::SystemTime;

use berth_acme_core::due_at;
use berth_acme_core::store::{StateSnapshot, StoredCert, export_combined, export_live};

use super::{days_left, find_cert, read_store, rfc3339};
use crate::cli::{CertsCommand, CertsExportArgs, CertsListArgs, CertsShowArgs};
use crate::failure::Failure;

pub(crate) async fn run(command: CertsCommand) -> Result<(), Failure> {
    match command {
        CertsCommand::List(args) => list(args).await,
        CertsCommand::Show(args) => show(args).await,
        CertsCommand::Export(args) => export(args).await,
    }
}

fn cert_json(cert: &StoredCert, state: &StateSnapshot) -> serde_json::Value {
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
        "days_left": days_left(info.not_after),
        "renew_at": rfc3339(due_at(&cert.certificate, state.hint(&info.serial_hex))),
        "renewal_window": state.hint(&info.serial_hex).and_then(|h| h.window).map(|(start, end)| serde_json::json!({"start": rfc3339(start), "end": rfc3339(end)})),
        "revoked": revoked.map(|r| rfc3339(r.at)),
        "last_error": backoff.map(|e| e.last_error.clone()),
        "consecutive_failures": backoff.map(|e| e.consecutive_failures),
        "backoff_until": backoff.filter(|e| e.next_attempt_at > SystemTime::now()).map(|e| rfc3339(e.next_attempt_at)),
    })
}

async fn list(args: CertsListArgs) -> Result<(), Failure> {
    let (store, state) = read_store(&args.store).await?;
    let (certs, unreadable) = store.all_certificates();
    if args.json {
        let doc = serde_json::json!({
            "certificates": certs.iter().map(|c| cert_json(c, &state)).collect::<Vec<_>>(),
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
                "{:<12} {:<40} {:<25} {:>9}  {}{}",
                cert.resolver,
                names,
                rfc3339(info.not_after),
                days_left(info.not_after),
                info.issuer,
                if revoked { "  [revoked]" } else { "" }
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
    let doc = cert_json(&cert, &state);
    if args.json {
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
