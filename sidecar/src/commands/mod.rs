//! One module per subcommand; shared flag handling lives here.

pub(crate) mod certs;
pub(crate) mod config;
pub(crate) mod healthcheck;
pub(crate) mod import;
pub(crate) mod issue;
pub(crate) mod renew;
pub(crate) mod responder;
pub(crate) mod revoke;
pub(crate) mod run;
pub(crate) mod secrets;
pub(crate) mod store;

use std::path::Path;
use std::sync::Arc;

use berth_acme_core::store::{
    AcmeJson, Catalog, FileStore, StateSnapshot, Store, StoreError, records,
};
use berth_acme_core::{AccountConfig, DomainSet, Eab};
use berth_secrets::Loader;
use berth_stores::{Access, ClientIdentity, OpenError, OpenOptions, StoreLocation};

use crate::cli::{CaArgs, DomainArgs, StoreArgs};
use crate::failure::Failure;

/// The secrets loader every command uses: Docker secrets are looked for in
/// `BERTH_SECRETS_DIR` when it is set (berth-secrets reads no variable of ours), else in
/// the library's default, `/run/secrets`.
pub(crate) fn secrets_loader() -> Loader {
    let loader = Loader::new();
    match std::env::var_os("BERTH_SECRETS_DIR") {
        Some(dir) if !dir.is_empty() => loader.with_secrets_dir(dir),
        _ => loader,
    }
}

/// The domain set from `-d` / `BERTH_DOMAINS`.
pub(crate) fn domain_set(args: &DomainArgs) -> Result<DomainSet, Failure> {
    DomainSet::parse(
        args.domains
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty()),
    )
    .map_err(|e| Failure::usage(format!("-d/--domain: {e}")))
}

/// The CA, its trust roots and the account settings from the shared CA flags. Secrets
/// (the EAB HMAC) come only from files.
pub(crate) fn account_config(args: &CaArgs) -> Result<AccountConfig, Failure> {
    let loader = secrets_loader();
    loader.refuse_plain_env("BERTH_EAB_HMAC")?;
    let ca = args
        .ca
        .clone()
        .with_staging(args.staging_ca.as_deref())
        .map_err(|e| Failure::usage(format!("--staging-ca: {e}")))?;
    let mut config = AccountConfig::new(ca);
    config.email = args.email.clone();
    config.agree_tos = args.agree_tos;
    if let Some(path) = &args.ca_root {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "--ca-root {}: {e}; pass a readable PEM file",
                path.display()
            ))
        })?;
        config.ca_roots_pem = Some(pem);
    }
    config.eab = match (&args.eab_kid, &args.eab_hmac_file) {
        (Some(kid), Some(file)) => Some(Eab {
            kid: kid.clone(),
            hmac: loader.read_file(file)?,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Failure::usage(
                "--eab-kid needs --eab-hmac-file (a file holding the HMAC key)",
            ));
        }
        (None, Some(_)) => {
            return Err(Failure::usage(
                "--eab-hmac-file needs --eab-kid (the key id the CA gave you)",
            ));
        }
    };
    Ok(config)
}

/// Where `--store` points.
pub(crate) fn store_location(args: &StoreArgs) -> Result<StoreLocation, Failure> {
    StoreLocation::parse(&args.store.to_string_lossy())
        .map_err(|e| Failure::usage(format!("--store: {e}")).with_setting(e.setting()))
}

/// Opens the store as its owner (commands that write): a file store refuses, before any
/// order, to be used when it cannot be written the way berth writes it; a shared store
/// must answer and accept the credentials.
pub(crate) async fn open_store(args: &StoreArgs) -> Result<Arc<dyn Store>, Failure> {
    open(args, Access::Owner).await
}

/// Opens the store only to read it: a file store read-only (never moved aside, rewritten
/// or chmodded; a file others can read is read with a warning), a shared store as usual.
pub(crate) async fn open_read_only(args: &StoreArgs) -> Result<Arc<dyn Store>, Failure> {
    open(args, Access::ReadOnly).await
}

async fn open(args: &StoreArgs, access: Access) -> Result<Arc<dyn Store>, Failure> {
    let location = store_location(args)?;
    let options = open_options(args)?;
    berth_stores::open(&location, options, access)
        .await
        .map_err(|e| match e {
            OpenError::MissingPassword { user } => Failure::usage(format!(
                "--store names the etcd user {user}: pass its password in a file with --store-password-file"
            )),
            OpenError::Store(e) => Failure::from(e),
            other => Failure::runtime(other),
        })
}

/// A file beside a file store for certificates that could not be stored; none for a
/// shared store.
pub(crate) fn rescue_dir(args: &StoreArgs) -> Option<std::path::PathBuf> {
    match store_location(args) {
        Ok(StoreLocation::File(path)) => path.parent().map(Path::to_path_buf),
        _ => None,
    }
}

/// The shared-store flags, their files read: the password and the client key like every
/// secret file.
fn open_options(args: &StoreArgs) -> Result<OpenOptions, Failure> {
    let loader = secrets_loader();
    loader.refuse_plain_env("BERTH_STORE_PASSWORD")?;
    let password = args
        .shared
        .store_password_file
        .as_deref()
        .map(|path| loader.read_file(path))
        .transpose()?;
    let ca_pem = match &args.shared.store_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            Failure::usage(format!(
                "--store-ca {}: {e}; pass a readable PEM file",
                path.display()
            ))
        })?),
        None => None,
    };
    Ok(OpenOptions {
        resolver: args.resolver.clone(),
        password,
        ca_pem,
        identity: store_identity(&args.shared, &loader)?,
        prefix: args.shared.store_prefix.clone(),
    })
}

/// `--store-cert` and `--store-key`: the client certificate for a store that checks
/// clients. The key file is read like every secret file (and never printed).
fn store_identity(
    args: &crate::cli::SharedStoreArgs,
    loader: &Loader,
) -> Result<Option<ClientIdentity>, Failure> {
    let (cert, key) = match (&args.store_cert, &args.store_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(Failure::usage(
                "--store-cert needs --store-key (BERTH_STORE_KEY): the file holding its private key",
            ));
        }
        (None, Some(_)) => {
            return Err(Failure::usage(
                "--store-key needs --store-cert (BERTH_STORE_CERT): the file holding the client certificate",
            ));
        }
    };
    if key.as_os_str().len() > 200 || key.to_string_lossy().contains("-----BEGIN") {
        return Err(Failure::usage(
            "--store-key (BERTH_STORE_KEY) takes the path of a file holding the key, not the key itself",
        ));
    }
    let cert_pem = std::fs::read(cert).map_err(|e| {
        Failure::usage(format!(
            "--store-cert {}: {e}; pass a readable PEM file",
            cert.display()
        ))
    })?;
    let key_pem = loader.read_file(key)?;
    Ok(Some(ClientIdentity { cert_pem, key_pem }))
}

/// The store's certificates, read without writing: a file store's whole `acme.json`
/// (every resolver's section), a shared store's certificates as one section.
async fn read_certificates(args: &StoreArgs) -> Result<(Arc<dyn Store>, AcmeJson), Failure> {
    if let StoreLocation::File(path) = store_location(args)? {
        let store = FileStore::open_read_only(&path, &args.resolver).await?;
        let acme = store.acme_json();
        return Ok((store, acme));
    }
    let store = open_store(args).await?;
    let acme = records::traefik_json(store.as_ref(), &args.resolver).await?;
    Ok((store, acme))
}

/// Reads the store for display (see [`read_certificates`]): certificates and state.
pub(crate) async fn read_store(args: &StoreArgs) -> Result<(AcmeJson, StateSnapshot), Failure> {
    let (store, acme) = read_certificates(args).await?;
    Ok((acme, StateSnapshot::read(store.as_ref()).await?))
}

/// Reads the store for display (see [`read_certificates`]): every certificate with what
/// berth knows about it.
pub(crate) async fn read_catalog(args: &StoreArgs) -> Result<Catalog, Failure> {
    let (store, acme) = read_certificates(args).await?;
    Ok(Catalog::read(store.as_ref(), acme, &args.resolver).await?)
}

/// No stored certificate carries `name`.
pub(crate) fn not_found(args: &StoreArgs, name: &str) -> Failure {
    Failure::usage(berth_acme_core::Error::from(StoreError::NotFound {
        name: name.to_owned(),
        path: args.store.clone(),
    }))
}

pub(crate) use berth_acme_core::timestamp::{days_left, rfc3339};
