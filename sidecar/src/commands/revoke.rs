//! `berth revoke`: revoke a stored certificate at its CA and mark it in the state file.

use std::time::SystemTime;

use berth_acme_core::store::{RevokedCert, State, state_path};
use berth_acme_core::{AcmeAccount, RevocationReason};

use super::{account_config, find_cert, read_store};
use crate::cli::RevokeArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: RevokeArgs) -> Result<(), Failure> {
    let reason: RevocationReason = args
        .reason
        .parse()
        .map_err(|e| Failure::usage(format!("--reason: {e}")))?;
    let store = read_store(&args.store.store)?;
    let cert = find_cert(&store, &args.store.resolver, &args.name, &args.store.store)?;
    let config = account_config(&args.ca)?;
    let state_file = state_path(&args.store.store);
    let state =
        State::load(&state_file).map_err(|e| Failure::runtime(berth_acme_core::Error::from(e)))?;
    let Some(stored) = state.accounts.get(config.ca.directory()) else {
        return Err(Failure::usage(format!(
            "no account for {} in {}; revoke with the --ca the certificate was issued from",
            config.ca.directory(),
            state_file.display()
        )));
    };
    let (account, _) = AcmeAccount::load_or_create(&config, Some(&stored.credentials)).await?;
    account.revoke(&cert.certificate, reason).await?;

    let info = cert.certificate.info();
    let mut state =
        State::load(&state_file).map_err(|e| Failure::runtime(berth_acme_core::Error::from(e)))?;
    state.revoked.push(RevokedCert {
        serial_hex: info.serial_hex.clone(),
        domains: cert.domains.key(),
        at: SystemTime::now(),
        reason: args.reason.clone(),
    });
    state
        .save(&state_file)
        .map_err(|e| Failure::runtime(berth_acme_core::Error::from(e)))?;
    tracing::info!(domains = %cert.domains, serial = %info.serial_hex, "certificate revoked");
    println!("revoked {} (serial {})", cert.domains, info.serial_hex);
    Ok(())
}
