//! `berth renew [NAME…] [--dry-run]`: renews now. By default it asks the running `berth
//! run` (admin API), so the new certificate is served without a restart and the ports
//! stay with the sidecar; `--standalone` renews on the store directly, answering the
//! challenges itself. `--dry-run` orders from the CA's staging endpoint into a throwaway
//! store and reports what would happen (certbot's habit); the real store is not written.

use std::time::Duration;

use berth_acme_core::stale;
use berth_acme_core::{CertManager, DomainName, ManagedCert, ManagerConfig};
use berth_admin::api::{RenewOutcome, RenewRequest, RenewResponse, RenewResult};
use berth_admin::renew::RenewRefusal;
use berth_admin::{AdminClient, ClientError};

use super::responder;
use super::{account_config, open_store, rescue_dir, rfc3339};
use crate::cli::RenewArgs;
use crate::failure::Failure;

/// An order with Pebble takes seconds; a production CA under load, minutes.
const RENEW_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(args: RenewArgs) -> Result<(), Failure> {
    if args.order.force && !args.order.dry_run {
        tracing::warn!(
            "--force renews every selected certificate now, due or not; the CA's rate limits still apply"
        );
    }
    let names = args
        .names
        .iter()
        .map(|name| {
            DomainName::parse(name).map_err(|e| Failure::usage(format!("NAME {name:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = RenewRequest {
        force: args.order.force,
        dry_run: args.order.dry_run,
        names,
    };
    if args.standalone {
        let response = standalone(&args, &request).await?;
        return report(response, args.output.json, args.order.dry_run);
    }
    let response = AdminClient::new(args.admin.admin_addr)
        .renew(&request, RENEW_TIMEOUT)
        .await
        .map_err(admin_failure)?;
    print(&response, args.output.json);
    if response.failed() > 0 {
        return Err(failure(&response, args.order.dry_run));
    }
    Ok(())
}

/// An admin request that got no usable answer: the server's refusal of an unknown NAME
/// or a dry run without a staging CA is the caller's to fix, as standalone.
pub(crate) fn admin_failure(error: ClientError) -> Failure {
    match error {
        ClientError::Unreachable { .. } => Failure::runtime(format!(
            "{error}; is `berth run` running with this --admin-addr?"
        )),
        e if e.is_bad_request() => Failure::usage(e),
        e => Failure::runtime(e),
    }
}

/// Prints what [`berth_admin::renew::renew`] returned and turns failures into the exit
/// status: a refusal (unknown NAME, no staging CA) is a usage error, a failed order a
/// runtime one.
pub(crate) fn report(
    response: Result<RenewResponse, RenewRefusal>,
    json: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let response = response.map_err(|refusal| match refusal {
        RenewRefusal::UnknownName { .. } => Failure::usage(refusal),
        RenewRefusal::NoStaging(_) => Failure::usage(format!(
            "{refusal}; pass --staging-ca URL (or use a CA preset that has one)"
        )),
        other => Failure::runtime(other),
    })?;
    print(&response, json);
    if response.failed() > 0 {
        return Err(failure(&response, dry_run));
    }
    Ok(())
}

fn print(response: &RenewResponse, json: bool) {
    if json {
        // The same text as the admin API's answer.
        match serde_json::to_value(response) {
            Ok(value) => println!("{value}"),
            Err(e) => tracing::error!(error = %e, "the results could not be written as JSON"),
        }
    } else {
        for result in &response.results {
            println!("{}", describe(result));
        }
    }
}

fn failure(response: &RenewResponse, dry_run: bool) -> Failure {
    let what = if dry_run {
        "the dry run failed"
    } else {
        "renewal did not succeed"
    };
    Failure::runtime(format!(
        "{what} for {} of {} certificate(s) (reasons above)",
        response.failed(),
        response.results.len()
    ))
}

/// Renews on the store without a running `berth run`: the certificates stored in berth's
/// resolver section, validated with `--challenge` on this process's own listeners.
async fn standalone(
    args: &RenewArgs,
    request: &RenewRequest,
) -> Result<Result<RenewResponse, RenewRefusal>, Failure> {
    let (challenge, key_type) = (args.challenge.challenge, args.order.key_type);
    let account = account_config(&args.ca)?;
    // A dry run writes nothing to the real store, so it only reads it.
    let store = if args.order.dry_run {
        super::open_read_only(&args.store).await?
    } else {
        open_store(&args.store).await?
    };
    // Renewing "all" leaves alone what the last berth run does not manage, unless named.
    let (sets, unmanaged) = stale::renewable(
        store.as_ref(),
        &args.store.resolver,
        !request.names.is_empty(),
    )
    .await?;
    let managed = sets
        .into_iter()
        .map(|set| ManagedCert::new(set, challenge, key_type))
        .collect::<Result<Vec<_>, _>>()?;
    let unmanaged: Vec<RenewResult> = unmanaged
        .into_iter()
        .map(|domains| RenewResult {
            domains,
            outcome: RenewOutcome::Unmanaged,
        })
        .collect();
    let mut config = ManagerConfig::new(store, account);
    config.skip_staging = args.order.skip_staging;
    config.rescue_dir = rescue_dir(&args.store);

    let responder = responder::start(&args.challenge, &args.store).await?;
    let manager = CertManager::new(config, managed, vec![responder.solver()]);
    let result = berth_admin::renew::renew(&manager, request).await;
    responder.stop().await;
    Ok(result.map(|mut response| {
        response.results.extend(unmanaged);
        response
    }))
}

/// One line per result, for people.
fn describe(result: &RenewResult) -> String {
    let domains = &result.domains;
    match &result.outcome {
        RenewOutcome::Failed { error } => format!("{domains}: failed: {error}"),
        RenewOutcome::DryRun { ca, not_after, .. } => format!(
            "{domains}: dry run succeeded: {ca} validated every name and issued a test certificate (valid until {}); nothing was stored, a renewal would succeed",
            rfc3339(*not_after)
        ),
        RenewOutcome::Unmanaged => format!(
            "{domains}: not renewed: berth run on this store is not configured with these names (name one to renew it anyway; berth certs prune --unmanaged removes it)"
        ),
        RenewOutcome::Valid(served) => format!(
            "{domains}: valid until {}, not due (renewal due {}; --force renews now)",
            rfc3339(served.not_after),
            served.renew_at.map_or_else(|| "?".to_owned(), rfc3339)
        ),
        RenewOutcome::Issued(served) => {
            format!(
                "{domains}: issued, valid until {}",
                rfc3339(served.not_after)
            )
        }
        RenewOutcome::Renewed(served) => {
            format!(
                "{domains}: renewed, valid until {}",
                rfc3339(served.not_after)
            )
        }
        RenewOutcome::Done(served) => {
            format!("{domains}: done, valid until {}", rfc3339(served.not_after))
        }
        other => format!("{domains}: {other:?}"),
    }
}
