//! `berth renew [NAME…] [--dry-run]`: renews now. By default it asks the running `berth
//! run` (admin API), so the new certificate is served without a restart and the ports
//! stay with the sidecar; `--standalone` renews on the store directly, answering the
//! challenges itself. `--dry-run` orders from the CA's staging endpoint into a throwaway
//! store and reports what would happen (certbot's habit); the real store is not written.

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::stale;
use berth_acme_core::store::{FileStore, Store, records};
use berth_acme_core::{CertManager, DomainName, DryRunError, ManagedCert, ManagerConfig, Outcome};
use berth_stores::StoreLocation;
use hyper::Method;

use super::responder::Responder;
use super::{account_config, open_store, rescue_dir, rfc3339, store_location};
use crate::admin_client;
use crate::cli::{RenewArgs, StoreArgs};
use crate::failure::Failure;

/// An order with Pebble takes seconds; a production CA under load, minutes.
const RENEW_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(args: RenewArgs) -> Result<(), Failure> {
    if args.order.force && !args.order.dry_run {
        tracing::warn!(
            "--force renews every selected certificate now, due or not; the CA's rate limits still apply"
        );
    }
    for name in &args.names {
        DomainName::parse(name).map_err(|e| Failure::usage(format!("NAME {name:?}: {e}")))?;
    }
    if args.standalone {
        let rows = standalone(&args).await?;
        return report(rows, args.output.json, args.order.dry_run);
    }
    let (rows, failed) = through_admin(&args).await?;
    print_rows(&rows, args.output.json);
    if failed {
        return Err(failure(&rows, args.order.dry_run));
    }
    Ok(())
}

/// Prints what [`renew`] returned and turns failures into the exit status: a refusal
/// (unknown NAME, no staging CA) is a usage error, a failed order a runtime one.
pub(crate) fn report(
    rows: Result<Vec<serde_json::Value>, Refusal>,
    json: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let rows = rows.map_err(|refusal| match refusal {
        Refusal::UnknownName(message) => Failure::usage(message),
        Refusal::NoStaging(message) => Failure::usage(format!(
            "{message}; pass --staging-ca URL (or use a CA preset that has one)"
        )),
        Refusal::Failed(message) => Failure::runtime(message),
    })?;
    print_rows(&rows, json);
    if rows.iter().any(|r| r["status"] == "failed") {
        return Err(failure(&rows, dry_run));
    }
    Ok(())
}

fn print_rows(rows: &[serde_json::Value], json: bool) {
    if json {
        println!("{}", serde_json::json!({ "results": rows }));
    } else {
        for row in rows {
            println!("{}", describe(row));
        }
    }
}

fn failure(rows: &[serde_json::Value], dry_run: bool) -> Failure {
    let what = if dry_run {
        "the dry run failed"
    } else {
        "renewal did not succeed"
    };
    Failure::runtime(format!(
        "{what} for {} of {} certificate(s) (reasons above)",
        rows.iter().filter(|r| r["status"] == "failed").count(),
        rows.len()
    ))
}

/// The request `berth run`'s admin server answers: the same work, its solvers and ports.
async fn through_admin(args: &RenewArgs) -> Result<(Vec<serde_json::Value>, bool), Failure> {
    let mut path = format!("/api/renew?force={}&dry_run={}", args.order.force, args.order.dry_run);
    if !args.names.is_empty() {
        // Names are letters, digits, '.', '-', '*' and ':' (checked above): safe in a query.
        path.push_str(&format!("&names={}", args.names.join(",")));
    }
    let url = admin_client::url(&args.admin, &path);
    let response = admin_client::send(Method::POST, &url, RENEW_TIMEOUT)
        .await
        .map_err(Failure::runtime)?;
    let doc: serde_json::Value = serde_json::from_str(&response.body).map_err(|_| {
        let message = format!(
            "{url} answered {}: {}",
            response.status,
            response.body.trim()
        );
        // An unknown NAME (404) or no staging CA (400) is the caller's to fix, as standalone.
        if matches!(response.status, 400 | 404) {
            Failure::usage(message)
        } else {
            Failure::runtime(message)
        }
    })?;
    let rows = doc["results"].as_array().cloned().unwrap_or_default();
    let failed = response.status != 200 || rows.iter().any(|r| r["status"] == "failed");
    Ok((rows, failed))
}

/// Renews on the store without a running `berth run`: the certificates stored in berth's
/// resolver section, validated with `--challenge` on this process's own listeners.
async fn standalone(args: &RenewArgs) -> Result<Result<Vec<serde_json::Value>, Refusal>, Failure> {
    let (challenge, key_type) = (args.challenge.challenge, args.order.key_type);
    let account = account_config(&args.ca)?;
    // A dry run writes nothing to the real store, so it only reads it.
    let store = if args.order.dry_run {
        read_only_store(&args.store).await?
    } else {
        open_store(&args.store).await?
    };
    let acme = records::traefik_json(store.as_ref(), &args.store.resolver).await?;
    let (stored, _) = acme.certificates(&args.store.resolver);
    let mut managed = stored
        .into_iter()
        .map(|c| ManagedCert::new(c.domains, challenge, key_type))
        .collect::<Result<Vec<_>, _>>()?;
    // Renewing "all" means what berth run manages: a certificate whose names it is no
    // longer configured with is left alone (renewing those forever burns rate limits,
    // Traefik #3376) unless it is named.
    let mut unmanaged = Vec::new();
    let configured = if args.names.is_empty() {
        stale::configured(store.as_ref()).await?
    } else {
        None
    };
    if let Some(configured) = configured {
        let (keep, skip): (Vec<_>, Vec<_>) = managed
            .into_iter()
            .partition(|m| configured.manages(&m.domains.key()));
        managed = keep;
        unmanaged = skip
            .iter()
            .map(|m| serde_json::json!({ "domains": m.domains.to_string(), "status": "unmanaged" }))
            .collect();
    }
    let mut config = ManagerConfig::new(store, account);
    config.skip_staging = args.order.skip_staging;
    config.rescue_dir = rescue_dir(&args.store);

    let responder = Responder::start(&args.challenge, &args.store).await?;
    let manager = CertManager::new(config, managed, vec![responder.solver.clone()]);
    let result = renew(&manager, &args.names, args.order.force, args.order.dry_run).await;
    responder.stop().await;
    Ok(result.map(|mut rows| {
        rows.extend(unmanaged);
        rows
    }))
}

/// Why a renewal request was not started.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A NAME matches no managed certificate; the message lists the names there are.
    UnknownName(String),
    /// `--dry-run` with a CA that has no staging endpoint.
    NoStaging(String),
    /// The work could not start (the dry run's temporary store).
    Failed(String),
}

/// The managed certificates that carry any of `names` (all of them when `names` is
/// empty).
pub(crate) fn select(
    managed: &[ManagedCert],
    names: &[String],
) -> Result<Vec<ManagedCert>, Refusal> {
    if names.is_empty() {
        return Ok(managed.to_vec());
    }
    let mut wanted = Vec::new();
    for name in names {
        let parsed = DomainName::parse(name)
            .map_err(|e| Refusal::UnknownName(format!("{name:?} is not a name: {e}")))?;
        let found: Vec<&ManagedCert> = managed
            .iter()
            .filter(|m| m.domains.names().contains(&parsed))
            .collect();
        if found.is_empty() {
            let known: Vec<String> = managed.iter().map(|m| m.domains.to_string()).collect();
            return Err(Refusal::UnknownName(format!(
                "no managed certificate has the name {parsed}; certificates: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join("; ")
                }
            )));
        }
        for m in found {
            if !wanted.contains(m) {
                wanted.push(m.clone());
            }
        }
    }
    Ok(wanted)
}

/// Renews (or dry-runs) the certificates `names` select; one JSON row per certificate,
/// `status` "failed" for those that did not succeed. Shared by `--standalone` and the
/// admin server's `/api/renew`.
pub(crate) async fn renew(
    manager: &CertManager,
    names: &[String],
    force: bool,
    dry_run: bool,
) -> Result<Vec<serde_json::Value>, Refusal> {
    let selected = select(manager.managed(), names)?;
    if dry_run {
        let staging = manager
            .dry_run_ca()
            .map_err(|e| Refusal::NoStaging(e.to_string()))?;
        tracing::info!(ca = %staging, certificates = selected.len(), "dry run: ordering from the staging CA into a throwaway store");
        let results = manager.dry_run(&selected).await.map_err(|e| match e {
            DryRunError::NoStagingCa { .. } => Refusal::NoStaging(e.to_string()),
            other => Refusal::Failed(format!("the dry run could not start: {other}")),
        })?;
        return Ok(results
            .into_iter()
            .map(|(domains, result)| match result {
                Ok(cert) => serde_json::json!({
                    "domains": domains.to_string(),
                    "status": "dry-run",
                    "ca": staging.to_string(),
                    "issuer": cert.info().issuer,
                    "not_after": rfc3339(cert.info().not_after),
                }),
                Err(e) => failed_row(&domains.to_string(), &e.to_string()),
            })
            .collect());
    }
    let results = if names.is_empty() {
        manager.ensure_all(force).await
    } else {
        let mut results = Vec::new();
        for m in &selected {
            results.push((m.domains.clone(), manager.ensure(m, force).await));
        }
        results
    };
    Ok(results
        .into_iter()
        .map(|(domains, result)| match result {
            Ok(outcome) => outcome_row(&domains.to_string(), &outcome),
            Err(e) => failed_row(&domains.to_string(), &e.to_string()),
        })
        .collect())
}

fn outcome_row(domains: &str, outcome: &Outcome) -> serde_json::Value {
    let (status, renew_at) = match outcome {
        Outcome::Valid { renew_at, .. } => ("valid", Some(rfc3339(*renew_at))),
        Outcome::Issued(_) => ("issued", None),
        Outcome::Renewed(_) => ("renewed", None),
        _ => ("done", None),
    };
    serde_json::json!({
        "domains": domains,
        "status": status,
        "not_after": rfc3339(outcome.certificate().info().not_after),
        "renew_at": renew_at,
    })
}

fn failed_row(domains: &str, error: &str) -> serde_json::Value {
    serde_json::json!({ "domains": domains, "status": "failed", "error": error })
}

/// One line per row, for people.
fn describe(row: &serde_json::Value) -> String {
    let text = |key: &str| row[key].as_str().unwrap_or("?").to_owned();
    let domains = text("domains");
    match row["status"].as_str() {
        Some("failed") => format!("{domains}: failed: {}", text("error")),
        Some("dry-run") => format!(
            "{domains}: dry run succeeded: {} validated every name and issued a test certificate (valid until {}); nothing was stored, a renewal would succeed",
            text("ca"),
            text("not_after")
        ),
        Some("unmanaged") => format!(
            "{domains}: not renewed: berth run on this store is not configured with these names (name one to renew it anyway; berth certs prune --unmanaged removes it)"
        ),
        Some("valid") => format!(
            "{domains}: valid until {}, not due (renewal due {}; --force renews now)",
            text("not_after"),
            text("renew_at")
        ),
        Some(status) => format!("{domains}: {status}, valid until {}", text("not_after")),
        None => format!("{domains}: {row}"),
    }
}

/// Opens the store without writing to it (a file store read-only; a shared store is
/// only read by a dry run).
pub(crate) async fn read_only_store(args: &StoreArgs) -> Result<Arc<dyn Store>, Failure> {
    match store_location(args)? {
        StoreLocation::File(path) => Ok(FileStore::open_read_only(&path, &args.resolver).await?),
        _ => open_store(args).await,
    }
}

#[cfg(test)]
mod tests {
    use berth_acme_core::{ChallengeKind, DomainSet, KeyType, ManagedCert};

    use super::{Refusal, select};

    fn managed(names: &[&str]) -> ManagedCert {
        let domains = DomainSet::parse(names).unwrap();
        ManagedCert::new(domains, ChallengeKind::Http01, KeyType::Ec256).unwrap()
    }

    #[test]
    fn names_select_every_certificate_that_carries_one_once() {
        let all = [
            managed(&["a.example.com", "www.example.com"]),
            managed(&["b.example.com"]),
            managed(&["c.example.com", "www.example.com"]),
        ];
        assert_eq!(select(&all, &[]).unwrap().len(), 3);
        let picked = select(&all, &["WWW.example.com".into(), "c.example.com".into()]).unwrap();
        let keys: Vec<String> = picked.iter().map(|m| m.domains.key()).collect();
        assert_eq!(
            keys,
            [
                "a.example.com,www.example.com",
                "c.example.com,www.example.com"
            ]
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_certificates_there_are() {
        let all = [managed(&["a.example.com"])];
        let Err(Refusal::UnknownName(message)) = select(&all, &["z.example.com".into()]) else {
            panic!("z.example.com was accepted");
        };
        assert!(
            message.contains("z.example.com") && message.contains("a.example.com"),
            "{message}"
        );
    }
}
