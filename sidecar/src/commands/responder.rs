//! The challenge side of `berth issue` and `berth renew --standalone`: the library's
//! [`StandaloneSolver`] for `--challenge`, answering on `--http-addr` / `--tls-addr` or
//! through the `--dns-*` provider, only for the duration of the command.

use berth_acme_core::ChallengeKind;
use berth_acme_core::challenge::{StandaloneConfig, StandaloneSolver};

use super::rescue_dir;
use crate::cli::{ChallengeArgs, StoreArgs};
use crate::dns;
use crate::failure::Failure;

/// Starts answering `args.challenge`; a DNS-01 provider keeps its record journal next to
/// the `--store` file.
pub(crate) async fn start(
    args: &ChallengeArgs,
    store: &StoreArgs,
) -> Result<StandaloneSolver, Failure> {
    let dns = match args.challenge {
        ChallengeKind::Dns01 => Some(dns::require(dns::solver(
            &crate::settings::dns_settings(&args.dns),
            rescue_dir(store).map(|_| store.store.as_path()),
        )?)?),
        _ => None,
    };
    Ok(StandaloneSolver::start(StandaloneConfig {
        challenge: args.challenge,
        http_addr: args.http_addr,
        tls_addr: args.tls_addr,
        dns,
    })
    .await?)
}
