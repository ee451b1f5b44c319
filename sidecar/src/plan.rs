//! The plan berth-config builds from the settings, plus what needs secret files read:
//! the account (EAB HMAC, CA roots) and the DNS-01 solver (TSIG secret) — built the same
//! way at start and on SIGHUP.

use std::sync::Arc;

use berth_acme_core::challenge::dns01::Dns01Solver;
use berth_acme_core::store::StateSnapshot;
use berth_acme_core::{AccountConfig, ChallengeKind};
use berth_config::RunSettings;
use berth_config::lint::{self, Context, Finding, Probe, StoreView};
use berth_stores::StoreLocation;

use crate::commands::{account_config, read_store, rescue_dir, store_location};
use crate::dns;
use crate::failure::Failure;
use crate::settings::{ca_args, store_args};

pub(crate) use berth_config::profile;

/// The parsed, checked form of the settings, secrets read.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Domain sets and routes.
    pub(crate) config: berth_config::Plan,
    /// The CA and account, the EAB HMAC read from its file.
    pub(crate) account: AccountConfig,
    /// The DNS-01 solver, when a provider is configured (its TSIG secret read now).
    pub(crate) dns: Option<Arc<Dns01Solver>>,
}

impl Plan {
    /// Parses every name, challenge, key type and route; reads the secrets.
    pub(crate) fn build(settings: &RunSettings) -> Result<Self, Failure> {
        let config = berth_config::Plan::build(settings).map_err(Failure::usage)?;
        let account = account_config(&ca_args(settings))?;
        let store = rescue_dir(&store_args(settings)).map(|_| settings.store.as_path());
        let mut dns = dns::solver(&settings.dns, store)?;
        if config.uses(ChallengeKind::Dns01) {
            dns = Some(dns::require(dns)?);
        }
        Ok(Self {
            config,
            account,
            dns,
        })
    }

    /// Every finding for the settings and this plan (berth-config's checks); a shared
    /// store is read for them only when `probe` is live.
    pub(crate) async fn findings(&self, settings: &RunSettings, probe: Probe) -> Vec<Finding> {
        let args = store_args(settings);
        let store = match store_location(&args) {
            Err(e) => StoreView::Unusable(e.to_string()),
            Ok(StoreLocation::File(path)) => StoreView::File(path),
            Ok(_) if probe == Probe::Live => StoreView::Shared(Some(
                read_store(&args)
                    .await
                    .map(|(_, state): (_, StateSnapshot)| state)
                    .map_err(|e| e.to_string()),
            )),
            Ok(_) => StoreView::Shared(None),
        };
        let context = Context {
            account: &self.account,
            dns: self.dns.as_deref(),
            store,
        };
        lint::check(settings, &self.config, context, probe).await
    }
}
