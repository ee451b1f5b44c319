//! `berth revoke`: revoke a stored certificate at its CA and mark it in the state file.

use std::time::SystemTime;

use berth_acme_core::AcmeAccount;
use berth_acme_core::store::records::{self, REVOKED};
use berth_acme_core::store::{RevokedCert, StoredAccount};

use super::{account_config, find_cert, open_store};
use crate::cli::RevokeArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: RevokeArgs) -> Result<(), Failure> {
    let store = open_store(&args.store).await?;
    let (acme, _) = super::read_store(&args.store).await?;
    let cert = find_cert(&acme, &args.store.resolver, &args.name, &args.store.store)?;
    let config = account_config(&args.ca)?;
    let stored = records::get_json::<StoredAccount>(
        store.as_ref(),
        &records::account_key(config.ca.directory()),
    )
    .await?;
    let Some((stored, _)) = stored else {
        return Err(Failure::usage(format!(
            "no account for {} in {}; revoke with the --ca the certificate was issued from",
            config.ca.directory(),
            args.store.store.display()
        )));
    };
    let (account, _) = AcmeAccount::load_or_create(&config, Some(&stored.credentials)).await?;
    account.revoke(&cert.certificate, args.reason).await?;

    let info = cert.certificate.info();
    let revoked = RevokedCert {
        serial_hex: info.serial_hex.clone(),
        domains: cert.domains.key(),
        at: SystemTime::now(),
        reason: args.reason.as_str().to_owned(),
    };
    records::update_json::<Vec<RevokedCert>, _>(store.as_ref(), REVOKED, None, |list| {
        list.push(revoked.clone());
    })
    .await?;
    tracing::info!(domains = %cert.domains, serial = %info.serial_hex, "certificate revoked");
    println!("revoked {} (serial {})", cert.domains, info.serial_hex);
    Ok(())
}
