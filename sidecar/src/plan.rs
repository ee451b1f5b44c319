//! What [`RunSettings`] turn into: the managed certificates, the route table, the
//! account (secrets read now) — built the same way at start and on SIGHUP.

use std::sync::Arc;

use berth_acme_core::challenge::dns01::Dns01Solver;
use berth_acme_core::{AccountConfig, ChallengeKind, DomainSet, ManagedCert};
use berth_proxy::{Route, Routes, TrustedProxies, Upstream};

use crate::commands::account_config;
use crate::dns;
use crate::failure::Failure;
use crate::settings::RunSettings;

/// The parsed, checked form of the settings.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Domain sets to keep issued.
    pub(crate) managed: Vec<ManagedCert>,
    /// Where requests go.
    pub(crate) routes: Routes,
    /// Every distinct upstream (for reachability checks).
    pub(crate) upstreams: Vec<Upstream>,
    /// Peers whose forwarding headers the proxy keeps.
    pub(crate) trusted_proxies: TrustedProxies,
    /// The CA and account, the EAB HMAC read from its file.
    pub(crate) account: AccountConfig,
    /// The DNS-01 solver, when a provider is configured (its TSIG secret read now).
    pub(crate) dns: Option<Arc<Dns01Solver>>,
}

impl Plan {
    /// Parses every name, challenge, key type and route; reads the secrets.
    pub(crate) fn build(settings: &RunSettings) -> Result<Self, Failure> {
        if settings.certificates.is_empty() {
            return Err(Failure::usage(
                "no domains to get certificates for; pass -d app.example.com (BERTH_DOMAINS) or add [[certificates]] to --config",
            ));
        }
        let mut managed = Vec::with_capacity(settings.certificates.len());
        // Set keys seen so far: a duplicate check that stays linear for 10,000 sets.
        let mut seen = std::collections::HashSet::with_capacity(settings.certificates.len());
        for cert in &settings.certificates {
            let domains = DomainSet::parse(
                cert.domains
                    .iter()
                    .map(|d| d.trim())
                    .filter(|d| !d.is_empty()),
            )
            .map_err(|e| Failure::usage(format!("domains {:?}: {e}", cert.domains)))?;
            let challenge = cert.challenge.unwrap_or(settings.challenge);
            let key_type = cert.key_type.unwrap_or(settings.key_type);
            if !seen.insert(domains.key()) {
                return Err(Failure::usage(format!(
                    "the domain set {domains} is listed twice; list each certificate once"
                )));
            }
            let profile = profile(cert.profile.as_ref().or(settings.profile.as_ref()))
                .map_err(|e| Failure::usage(format!("profile for {domains}: {e}")))?;
            managed.push(
                ManagedCert::new(domains.clone(), challenge, key_type)
                    .map_err(|e| Failure::usage(format!("{domains}: {e}")))?
                    .with_profile(profile),
            );
        }

        let mut routes = Routes::new();
        for text in settings.routes.iter().filter(|r| !r.trim().is_empty()) {
            let route: Route = text
                .parse()
                .map_err(|e| Failure::usage(format!("--route: {e}")))?;
            routes = routes.with(route);
        }
        if let Some(upstream) = &settings.upstream {
            let upstream = Upstream::parse(upstream)
                .map_err(|e| Failure::usage(format!("--upstream: {e}")))?;
            routes = routes.with(Route::new(upstream));
        }
        if routes.is_empty() {
            return Err(Failure::usage(
                "nothing to forward to; pass --upstream http://app:3000 (BERTH_UPSTREAM) or --route",
            ));
        }
        let mut upstreams: Vec<Upstream> = Vec::new();
        for route in routes.routes() {
            if !upstreams.contains(route.upstream()) {
                upstreams.push(route.upstream().clone());
            }
        }
        let trusted_proxies = TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|e| Failure::usage(format!("--trusted-proxies: {e}")))?;
        let account = account_config(&settings.ca_args())?;
        let store =
            crate::commands::rescue_dir(&settings.store_args()).map(|_| settings.store.as_path());
        let mut dns = dns::solver(&settings.dns, store)?;
        if managed.iter().any(|m| m.challenge == ChallengeKind::Dns01) {
            dns = Some(dns::require(dns)?);
        }
        Ok(Self {
            managed,
            routes,
            upstreams,
            trusted_proxies,
            account,
            dns,
        })
    }
}

/// A profile name as given (`--profile`, `profile = "…"`): trimmed; empty means none.
/// Whether the CA offers it is checked against its directory before ordering.
pub(crate) fn profile(text: Option<&String>) -> Result<Option<String>, String> {
    let Some(name) = text.map(|t| t.trim()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{name:?} is not a profile name; profile names are short ASCII words such as shortlived or tlsserver"
        ));
    }
    Ok(Some(name.to_owned()))
}
