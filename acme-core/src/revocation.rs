//! Revoking a stored certificate with the account the store holds for its CA, and
//! recording that in the store (`berth revoke`); retiring a stale one, revoked first when
//! asked (`berth certs prune --revoke`).

use std::time::SystemTime;

use crate::account::{AccountConfig, AcmeAccount, RevocationReason};
use crate::error::Error;
use crate::stale::{self, StaleCert};
use crate::store::records::{self, REVOKED};
use crate::store::{RevokedCert, Store, StoredAccount, StoredCert};

/// The account `store` holds for `config.ca`, ready to revoke with; `None` when the store
/// has no account there (the certificate was issued from another CA, or by another
/// client). Never registers a new account.
pub async fn stored_account(
    store: &dyn Store,
    config: &AccountConfig,
) -> Result<Option<AcmeAccount>, Error> {
    let key = records::account_key(config.ca.directory());
    let Some((stored, _)) = records::get_json::<StoredAccount>(store, &key).await? else {
        return Ok(None);
    };
    let (account, _) = AcmeAccount::load_or_create(config, Some(&stored.credentials)).await?;
    Ok(Some(account))
}

/// Revokes `cert` at the CA with `account` and adds it to the store's revocation list
/// (which `berth certs` shows), returning that record.
pub async fn revoke(
    store: &dyn Store,
    account: &AcmeAccount,
    cert: &StoredCert,
    reason: RevocationReason,
) -> Result<RevokedCert, Error> {
    account.revoke(&cert.certificate, reason).await?;
    let record = RevokedCert {
        serial_hex: cert.certificate.info().serial_hex.clone(),
        domains: cert.domains.key(),
        at: SystemTime::now(),
        reason: reason.as_str().to_owned(),
    };
    records::update_json::<Vec<RevokedCert>, _>(store, REVOKED, None, |list| {
        list.push(record.clone());
    })
    .await?;
    Ok(record)
}

/// Removes a stale certificate and its state ([`stale::remove`], under the set's order
/// lock), revoking it first with `account` when one is given and it has not expired
/// (reason cessation of operation: nothing serves it any more). Returns whether it was
/// revoked.
pub async fn retire(
    store: &dyn Store,
    cert: &StaleCert,
    account: Option<&AcmeAccount>,
) -> Result<bool, Error> {
    let revoking = account.filter(|_| cert.revocable());
    if let Some(account) = revoking {
        account
            .revoke(&cert.certificate, RevocationReason::CessationOfOperation)
            .await?;
    }
    stale::remove(store, &cert.key).await?;
    Ok(revoking.is_some())
}
