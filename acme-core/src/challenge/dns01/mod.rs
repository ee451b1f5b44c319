//! DNS-01 (RFC 8555 §8.4): the only way to wildcard certificates and to names that are
//! not reachable on :80/:443 — done so the DNS credential can be as narrow as possible.
//!
//! [`Dns01Solver`] does the parts every provider shares:
//! - **CNAME delegation**: when `_acme-challenge.<name>` is a CNAME (acme-dns style,
//!   into a throwaway zone), the TXT is written at the target, so the credential only
//!   needs rights on that zone.
//! - **Zone detection** by SOA walk (or a configured zone).
//! - **Propagation check**: before the CA is told to validate, every authoritative
//!   nameserver of the zone (or the configured servers, for split horizon) must answer
//!   with every expected value.
//! - **Exact cleanup**: only the values berth added are removed, also after a crash — a
//!   journal beside the store remembers what is still out there.
//!
//! A [`DnsProvider`] only adds and removes one TXT value: [`Rfc2136Provider`] (TSIG
//! signed dynamic updates) and [`ExecProvider`] (a user program, lego's convention).

mod error;
mod exec;
mod journal;
mod lookup;
mod provider;
mod rfc2136;

pub use error::DnsError;
pub use exec::ExecProvider;
#[cfg(test)]
pub(crate) use exec::redact_hook_stderr;
pub use lookup::parse_server;
pub use provider::{DnsProvider, ProviderError, ProviderFuture, TxtRecord};
pub use rfc2136::{Rfc2136Provider, TsigAlgorithm, TsigKey};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use self::journal::Journal;
use self::lookup::Lookup;
use super::solver::dns_record_name;
use super::{ChallengeKind, PendingChallenge, Solver, SolverFuture};
use crate::domain::DomainName;
use crate::error::{Error, Setting};

/// Default for [`Dns01Config::propagation_timeout`].
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for [`Dns01Config::propagation_interval`].
pub const DEFAULT_PROPAGATION_INTERVAL: Duration = Duration::from_secs(2);
/// Default TTL of the records berth adds: short, so a retry is not stuck behind a
/// cached old value at the CA's resolver.
pub const DEFAULT_TTL: u32 = 60;

/// How the DNS-01 solver finds zones and checks propagation.
#[derive(Debug, Clone)]
pub struct Dns01Config {
    /// Where lookups (CNAME, SOA, NS) go; `None` uses the first `nameserver` of
    /// `/etc/resolv.conf`.
    pub resolver: Option<SocketAddr>,
    /// The zone every record goes in; `None` finds it by SOA walk.
    pub zone: Option<String>,
    /// Check these servers instead of the zone's authoritative nameservers (split
    /// horizon: the servers the CA sees are not the ones this host resolves).
    pub propagation_servers: Vec<SocketAddr>,
    /// The port authoritative nameservers are asked on: 53 everywhere but in tests.
    pub nameserver_port: u16,
    /// How long to wait for every nameserver to answer with the record.
    pub propagation_timeout: Duration,
    /// How often to ask while waiting.
    pub propagation_interval: Duration,
    /// TTL of the added records.
    pub ttl: u32,
    /// How long one lookup may take.
    pub lookup_timeout: Duration,
    /// Where the record journal lives (`<acme.json>.berth-dns` in berth); `None` keeps
    /// no journal, so a crash can leave records behind.
    pub journal: Option<PathBuf>,
}

impl Default for Dns01Config {
    fn default() -> Self {
        Self {
            resolver: None,
            zone: None,
            propagation_servers: Vec::new(),
            nameserver_port: 53,
            propagation_timeout: DEFAULT_PROPAGATION_TIMEOUT,
            propagation_interval: DEFAULT_PROPAGATION_INTERVAL,
            ttl: DEFAULT_TTL,
            lookup_timeout: Duration::from_secs(5),
            journal: None,
        }
    }
}

/// The journal path that belongs to an `acme.json`.
pub fn journal_path(store: &std::path::Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".berth-dns");
    PathBuf::from(name)
}

/// Answers DNS-01 through a [`DnsProvider`].
#[derive(Debug)]
pub struct Dns01Solver {
    provider: Arc<dyn DnsProvider>,
    config: Dns01Config,
    journal: Option<Journal>,
    /// Records presented and not yet cleaned up, by challenge token, with whether the
    /// provider accepted the addition.
    presented: Mutex<HashMap<String, (TxtRecord, bool)>>,
    /// Leftovers from earlier runs are removed once, before the first record is added.
    leftovers: OnceCell<()>,
}

impl Dns01Solver {
    /// A solver publishing through `provider`.
    pub fn new(provider: Arc<dyn DnsProvider>, config: Dns01Config) -> Self {
        let journal = config.journal.clone().map(Journal::new);
        Self {
            provider,
            config,
            journal,
            presented: Mutex::new(HashMap::new()),
            leftovers: OnceCell::new(),
        }
    }

    async fn lookup(&self) -> Result<Lookup, DnsError> {
        let server = match self.config.resolver {
            Some(server) => server,
            None => lookup::system_resolver().await?,
        };
        Ok(Lookup::new(server, self.config.lookup_timeout))
    }

    /// Removes every record the journal says an earlier run left behind. Failures are
    /// logged and the entry kept for the next run; they never block a new order.
    pub async fn remove_leftovers(&self) {
        let Some(journal) = &self.journal else { return };
        for entry in journal.entries().await {
            let record = &entry.record;
            let in_use = self
                .presented
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .any(|(r, _)| r == record);
            if in_use {
                continue;
            }
            match self.provider.remove_txt(record).await {
                Ok(()) => {
                    tracing::info!(record = %record.fqdn, provider = %self.provider.describe(), "removed a TXT record an earlier run left behind");
                    journal.remove(record).await;
                }
                Err(e) => {
                    tracing::warn!(record = %record.fqdn, provider = %self.provider.describe(), added_by = %entry.provider, error = %e, "could not remove a TXT record an earlier run left behind; will retry next run");
                }
            }
        }
    }

    /// Where the TXT record for `name` goes — the CNAME target of
    /// `_acme-challenge.<name>` and its zone — found exactly as an order finds it, without
    /// writing anything: the dry run behind `berth config check`. Returns (record, zone).
    pub async fn preflight(&self, name: &DomainName) -> Result<(String, String), DnsError> {
        let (target, zone) = self.locate(&dns_record_name(name)).await?;
        Ok((target.to_string(), zone.to_string()))
    }

    /// Where the TXT record `record_name` goes: CNAME target and zone.
    async fn locate(&self, record_name: &str) -> Result<(Name, Name), DnsError> {
        let name = fqdn(record_name)?;
        let lookup = self.lookup().await?;
        let target = lookup.follow_cname(&name).await?;
        if target != name {
            tracing::info!(from = %name, to = %target, "_acme-challenge is delegated by CNAME; writing the record at the target");
        }
        let zone = match &self.config.zone {
            Some(zone) => {
                let zone = fqdn(zone)?;
                if !zone.zone_of(&target) {
                    return Err(DnsError::setting_at_fault(
                        Setting::DnsZone,
                        format!(
                            "{target} is not inside the configured zone {zone}; fix the zone or leave it unset to detect it"
                        ),
                    ));
                }
                zone
            }
            None => lookup.find_zone(&target).await?,
        };
        Ok((target, zone))
    }

    async fn publish(&self, challenge: &PendingChallenge) -> Result<(), DnsError> {
        self.leftovers.get_or_init(|| self.remove_leftovers()).await;
        let (target, zone) = self.locate(&challenge.dns_record_name()).await?;
        let record = TxtRecord {
            fqdn: target.to_string(),
            zone: zone.to_string(),
            value: challenge.dns_value(),
            ttl: self.config.ttl,
        };
        if let Some(journal) = &self.journal {
            // Journal first: a crash between the two leaves an entry to clean, never an
            // unrecorded record.
            journal.add(&record, self.provider.describe()).await;
        }
        let added = self.provider.add_txt(&record).await;
        self.presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                challenge.token().to_owned(),
                (record.clone(), added.is_ok()),
            );
        added.map_err(|e| self.provider_error("add", &record, e.message().to_owned(), &e))?;
        tracing::info!(record = %record.fqdn, zone = %record.zone, provider = %self.provider.describe(), "added TXT record");
        Ok(())
    }

    /// `error` as reported by the provider, told as `reason`.
    fn provider_error(
        &self,
        action: &'static str,
        record: &TxtRecord,
        reason: String,
        error: &ProviderError,
    ) -> DnsError {
        DnsError::Provider {
            provider: self.provider.describe(),
            action,
            record: record.fqdn.clone(),
            reason,
            setting: error.setting(),
        }
    }

    async fn withdraw(&self, challenge: &PendingChallenge) -> Result<(), DnsError> {
        let record = self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(challenge.token());
        let Some((record, added)) = record else {
            return Ok(());
        };
        if !added {
            // The provider refused the addition. One removal, in case it applied it
            // anyway (a lost answer); its failure is expected and not reported.
            let _ = self.provider.remove_txt(&record).await;
            if let Some(journal) = &self.journal {
                journal.remove(&record).await;
            }
            return Ok(());
        }
        self.provider.remove_txt(&record).await.map_err(|e| {
            let reason = format!("{}; the journal keeps it for the next run", e.message());
            self.provider_error("remove", &record, reason, &e)
        })?;
        if let Some(journal) = &self.journal {
            journal.remove(&record).await;
        }
        tracing::info!(record = %record.fqdn, provider = %self.provider.describe(), "removed TXT record");
        Ok(())
    }

    /// Waits until every server that answers for each record's zone returns all the
    /// values expected at that name.
    async fn propagated(&self, challenges: &[PendingChallenge]) -> Result<(), DnsError> {
        let expected = self.expected_values(challenges);
        let mut pending = self.checks(&expected).await?;
        let started = Instant::now();
        let mut last_error: HashMap<SocketAddr, String> = HashMap::new();
        loop {
            let mut still = Vec::new();
            for (name, server, values) in pending {
                let at = Lookup::new(server, self.config.lookup_timeout);
                match at.txt(&name).await {
                    Ok(found) if values.iter().all(|v| found.contains(v)) => {
                        last_error.remove(&server);
                    }
                    Ok(_) => still.push((name, server, values)),
                    Err(e) => {
                        last_error.insert(server, e.to_string());
                        still.push((name, server, values));
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                tracing::info!(
                    records = expected.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "TXT records visible on every nameserver"
                );
                return Ok(());
            }
            if started.elapsed() + self.config.propagation_interval
                > self.config.propagation_timeout
            {
                return Err(not_propagated(&pending, &last_error, started.elapsed()));
            }
            tokio::time::sleep(self.config.propagation_interval).await;
        }
    }

    /// The TXT values each challenged name must show: name -> (zone, values).
    fn expected_values(
        &self,
        challenges: &[PendingChallenge],
    ) -> BTreeMap<String, (String, BTreeSet<String>)> {
        let presented = self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut expected: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for (record, _) in challenges.iter().filter_map(|c| presented.get(c.token())) {
            expected
                .entry(record.fqdn.clone())
                .or_insert_with(|| (record.zone.clone(), BTreeSet::new()))
                .1
                .insert(record.value.clone());
        }
        expected
    }

    /// One check per name and nameserver that must answer it: the zone's authoritative
    /// servers, or the configured propagation servers when there are any.
    async fn checks(
        &self,
        expected: &BTreeMap<String, (String, BTreeSet<String>)>,
    ) -> Result<Vec<PropagationCheck>, DnsError> {
        let lookup = self.lookup().await?;
        let mut pending = Vec::new();
        for (name, (zone, values)) in expected {
            let servers = if self.config.propagation_servers.is_empty() {
                lookup
                    .nameservers(&fqdn(zone)?, self.config.nameserver_port)
                    .await?
            } else {
                self.config.propagation_servers.clone()
            };
            for server in servers {
                pending.push((fqdn(name)?, server, values.clone()));
            }
        }
        Ok(pending)
    }
}

/// A name, the nameserver asked for it, and the TXT values it must show.
type PropagationCheck = (Name, SocketAddr, BTreeSet<String>);

/// The error for checks still failing at the propagation timeout: the first record and
/// every nameserver that did not show it, with its last lookup error.
fn not_propagated(
    pending: &[PropagationCheck],
    last_error: &HashMap<SocketAddr, String>,
    waited: Duration,
) -> DnsError {
    DnsError::Propagation {
        record: pending
            .iter()
            .map(|(name, _, _)| name.to_string())
            .next()
            .unwrap_or_default(),
        waited,
        missing: pending
            .iter()
            .map(|(_, server, _)| match last_error.get(server) {
                Some(e) => format!("{server} ({e})"),
                None => server.to_string(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    }
}

impl Solver for Dns01Solver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Dns01
    }

    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move { self.publish(challenge).await.map_err(Error::from) })
    }

    fn wait_visible<'a>(&'a self, challenges: &'a [PendingChallenge]) -> SolverFuture<'a> {
        Box::pin(async move { self.propagated(challenges).await.map_err(Error::from) })
    }

    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move { self.withdraw(challenge).await.map_err(Error::from) })
    }
}

/// `name` as an absolute DNS name.
fn fqdn(name: &str) -> Result<Name, DnsError> {
    let mut parsed = Name::from_ascii(name)
        .map_err(|e| DnsError::config(format!("{name:?} is not a DNS name: {e}")))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}
