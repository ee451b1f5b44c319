//! Dry runs (certbot's `--dry-run`): order from the CA's staging endpoint into a throwaway
//! store, answering the challenges for real through the manager's own solvers, so a
//! configuration is proven end to end while the real store, its ledger, budget history
//! and account stay untouched.

use std::path::Path;
use std::sync::Arc;

use super::{CertManager, ManagedCert, ManagerConfig};
use crate::ca::Ca;
use crate::certificate::Certificate;
use crate::challenge::shared::SharedSolver;
use crate::challenge::{ChallengeKind, Solver};
use crate::domain::DomainSet;
use crate::error::Error;
use crate::store::atomic::blocking_io;
use crate::store::{Expect, FileStore, Store, StoreError, records};

/// Why a dry run could not start (an order that fails is a per-set result instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DryRunError {
    /// The CA has no staging endpoint, so a dry run has nowhere to order.
    #[error(
        "the CA {ca} has no staging endpoint to dry-run against (a dry run never orders from production)"
    )]
    NoStagingCa {
        /// The CA as configured.
        ca: String,
    },
    /// The throwaway store could not be created.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a dry run did for one domain set: the staging certificate it got, or why not.
pub type DryRunResult = (DomainSet, Result<Certificate, Error>);

impl CertManager {
    /// The staging endpoint a dry run orders from: the configured CA when it is a
    /// staging endpoint itself, else its staging counterpart (a preset's, or the one set
    /// with [`Ca::with_staging`]).
    pub fn dry_run_ca(&self) -> Result<Ca, DryRunError> {
        let ca = &self.config.account.ca;
        if ca.is_staging() {
            return Ok(ca.clone());
        }
        ca.staging_directory()
            .and_then(|url| Ca::custom(url, None).ok())
            .ok_or_else(|| DryRunError::NoStagingCa { ca: ca.to_string() })
    }

    /// Orders a certificate for each of `certs` from [`Self::dry_run_ca`] into a store in
    /// a temporary directory that is deleted afterwards. Every set is ordered (due or
    /// not); the challenges are answered by this manager's solvers (shared with other
    /// replicas as configured). Nothing is written to this manager's store: no
    /// certificate, ledger entry, history or account; nothing is published.
    pub async fn dry_run(&self, certs: &[ManagedCert]) -> Result<Vec<DryRunResult>, DryRunError> {
        let staging = self.dry_run_ca()?;
        let dir = TempStore::create().await?;
        let results = self.dry_run_in(dir.path(), staging, certs).await;
        dir.close().await;
        results
    }

    /// [`Self::dry_run`] with its throwaway store in `dir`.
    async fn dry_run_in(
        &self,
        dir: &Path,
        staging: Ca,
        certs: &[ManagedCert],
    ) -> Result<Vec<DryRunResult>, DryRunError> {
        let store = FileStore::open(&dir.join("acme.json"), "berth").await?;
        // The staging account the real store holds (from a staging proof) is reused, so
        // a daily dry run does not register an account every time; a new one is not kept.
        let account_key = records::account_key(staging.directory());
        if let Some(found) = self.config.store.get(&account_key).await? {
            store
                .put(&account_key, found.value, Expect::Absent, None)
                .await?;
        }
        let mut account = self.config.account.clone();
        account.ca = staging;
        let mut config = ManagerConfig::new(store, account);
        // The throwaway store is the staging proof's only reader: go straight to staging.
        config.skip_staging = true;
        config.limits = self.config.limits;
        config.order_timeout = self.config.order_timeout;
        config.concurrency = self.config.concurrency;
        let solvers: Vec<Arc<dyn Solver>> = self
            .solvers
            .iter()
            .map(|(kind, solver)| {
                if self.config.share_challenges && *kind != ChallengeKind::Dns01 {
                    // Another replica may receive the staging CA's validation request.
                    Arc::new(SharedSolver::new(
                        Arc::clone(solver),
                        Arc::clone(&self.config.store),
                    )) as Arc<dyn Solver>
                } else {
                    Arc::clone(solver)
                }
            })
            .collect();
        let manager = CertManager::new(config, certs.to_vec(), solvers);
        let results = manager
            .ensure_all(true)
            .await
            .into_iter()
            .map(|(domains, result)| (domains, result.map(|o| o.certificate().clone())))
            .collect();
        Ok(results)
    }
}

/// The dry run's temporary directory. Creating and removing it is file I/O, so it runs
/// on tokio's blocking pool: a dry run asked through the admin API runs on the
/// runtime that also serves requests and renews certificates.
struct TempStore(Option<tempfile::TempDir>);

impl TempStore {
    async fn create() -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            action: "creating a temporary directory in",
            path: std::env::temp_dir(),
            source,
        };
        blocking_io(|| tempfile::Builder::new().prefix("berth-dry-run-").tempdir())
            .await
            .map(|dir| Self(Some(dir)))
            .map_err(io)
    }

    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map_or(Path::new(""), tempfile::TempDir::path)
    }

    /// Removes the directory, warning when that fails.
    async fn close(mut self) {
        let Some(dir) = self.0.take() else { return };
        if let Err(e) = blocking_io(move || dir.close()).await {
            tracing::warn!(error = %e, "could not remove the dry run's temporary store");
        }
    }
}

impl Drop for TempStore {
    /// A dry run that failed or was cancelled before [`TempStore::close`] still removes
    /// its directory, off the runtime when there is one.
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(dir))),
                Err(_) => drop(dir),
            }
        }
    }
}
