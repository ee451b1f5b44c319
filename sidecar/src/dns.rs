//! The DNS-01 solver for the `[dns]` settings (`--dns-*` flags over the config file's
//! table): berth-config builds it; the binary hands it the secrets loader and refuses a
//! TSIG secret passed in a variable.

use std::path::Path;
use std::sync::Arc;

use berth_acme_core::challenge::dns01::Dns01Solver;
use berth_config::DnsSettings;

use crate::failure::Failure;

/// The DNS-01 solver the settings describe, or `None` when no provider is configured.
/// `store` is the `acme.json` the record journal goes beside (none for a shared store).
pub(crate) fn solver(
    settings: &DnsSettings,
    store: Option<&Path>,
) -> Result<Option<Arc<Dns01Solver>>, Failure> {
    let loader = crate::commands::secrets_loader();
    loader.refuse_plain_env("BERTH_DNS_TSIG_SECRET")?;
    settings.solver(&loader, store).map_err(Failure::usage)
}

/// Refuses `--challenge dns-01` without a provider, with what to add.
pub(crate) fn require(solver: Option<Arc<Dns01Solver>>) -> Result<Arc<Dns01Solver>, Failure> {
    solver.ok_or_else(|| Failure::usage(berth_config::Error::NoDnsProvider))
}
