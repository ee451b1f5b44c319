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
/// has no account there, or only credentials made for another CA's directory (the
/// certificate was issued from another CA, or by another client). Never registers a new
/// account.
pub async fn stored_account(
    store: &dyn Store,
    config: &AccountConfig,
) -> Result<Option<AcmeAccount>, Error> {
    let key = records::account_key(config.ca.directory());
    let Some((stored, _)) = records::get_json::<StoredAccount>(store, &key).await? else {
        return Ok(None);
    };
    AcmeAccount::load_stored(config, &stored.credentials).await
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use berth_secrets::Secret;

    use super::*;
    use crate::ca::Ca;
    use crate::store::{Expect, FileStore};

    /// Credentials stored under this CA's key but made for another directory: there is no
    /// account here to revoke with. The CA (nothing listens on its port) is never asked,
    /// so no account is registered.
    #[tokio::test]
    async fn credentials_made_for_another_directory_are_no_account_and_register_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("acme.json"), "berth")
            .await
            .unwrap();
        let ca = Ca::custom("https://127.0.0.1:9/dir", None).unwrap();
        let config = AccountConfig::new(ca.clone());
        for directory in [Some("https://other.example/dir"), None] {
            let mut credentials = serde_json::json!({
                "id": "https://other.example/acct/1",
                "key_pkcs8": "AAAA",
                "urls": {
                    "newNonce": "https://other.example/nonce",
                    "newAccount": "https://other.example/account",
                    "newOrder": "https://other.example/order",
                },
            });
            if let Some(directory) = directory {
                credentials["directory"] = directory.into();
            }
            let stored = StoredAccount {
                credentials: Secret::new(credentials.to_string()),
                email: None,
                created_at: SystemTime::now(),
            };
            records::put_json(
                store.as_ref(),
                &records::account_key(ca.directory()),
                &stored,
                Expect::Any,
                None,
            )
            .await
            .unwrap();
            let account = stored_account(store.as_ref(), &config).await;
            assert!(
                matches!(account, Ok(None)),
                "{directory:?}: {:?}",
                account.map(|a| a.is_some())
            );
        }
    }
}
