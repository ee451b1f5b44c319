//! `berth revoke`: revoke a stored certificate at its CA and mark it in the store.

use berth_acme_core::revocation::{revoke, stored_account};

use super::{account_config, not_found, open_store, read_store};
use crate::cli::RevokeArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: RevokeArgs) -> Result<(), Failure> {
    let store = open_store(&args.store).await?;
    let (acme, _) = read_store(&args.store).await?;
    let Some(cert) = acme.find(&args.store.resolver, &args.name) else {
        return Err(not_found(&args.store, &args.name));
    };
    let config = account_config(&args.ca)?;
    let Some(account) = stored_account(store.as_ref(), &config).await? else {
        return Err(Failure::usage(format!(
            "no account for {} in {}; revoke with the --ca the certificate was issued from",
            config.ca.directory(),
            args.store.store.display()
        )));
    };
    let record = revoke(store.as_ref(), &account, &cert, args.reason).await?;
    tracing::info!(domains = %cert.domains, serial = %record.serial_hex, "certificate revoked");
    println!("revoked {} (serial {})", cert.domains, record.serial_hex);
    Ok(())
}
