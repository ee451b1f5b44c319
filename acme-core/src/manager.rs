//! [`CertManager`]: the certificate lifecycle. For each domain set: load the store,
//! decide (valid / renew / issue / wait for backoff / refused by budget), order, persist,
//! publish.
//!
//! Every path to a CA goes through here — `berth issue`, `berth renew` and `berth run`
//! alike — so the failure ledger, the rate budget and staging-first apply to all of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::account::{AccountConfig, AcmeAccount};
use crate::budget::{self, HistoryEvent, HistoryKind, RateLimits};
use crate::ca::Ca;
use crate::certificate::Certificate;
use crate::certset::CertSet;
use crate::challenge::{ChallengeKind, Solver};
use crate::domain::DomainSet;
use crate::error::Error;
use crate::issuer::{DEFAULT_ORDER_TIMEOUT, Issuer, OrderRequest};
use crate::key::KeyType;
use crate::ledger::BackoffPolicy;
use crate::renewal::{RenewalHint, due_at, renewal_due};
use crate::store::{
    AcmeJson, LedgerEntry, StagingProof, State, StoredAccount, ledger_key, state_path,
};

/// One certificate berth keeps: its names, how to validate them, its key type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCert {
    /// The names (main first).
    pub domains: DomainSet,
    /// The challenge to answer.
    pub challenge: ChallengeKind,
    /// The certificate key type.
    pub key_type: KeyType,
}

impl ManagedCert {
    /// A managed certificate; refuses combinations no CA can validate (wildcards without
    /// DNS-01, IP addresses with DNS-01).
    pub fn new(
        domains: DomainSet,
        challenge: ChallengeKind,
        key_type: KeyType,
    ) -> Result<Self, Error> {
        challenge.check(&domains)?;
        Ok(Self {
            domains,
            challenge,
            key_type,
        })
    }
}

/// How the manager behaves.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The `acme.json` path; the state file goes beside it.
    pub store: PathBuf,
    /// The resolver section berth writes.
    pub resolver: String,
    /// The production CA and account settings.
    pub account: AccountConfig,
    /// Order straight from production, without proving the set on staging first.
    pub skip_staging: bool,
    /// Limits the budget enforces; `None` uses the CA's published ones.
    pub limits: Option<RateLimits>,
    /// Waits after failures.
    pub backoff: BackoffPolicy,
    /// Longest an order may take.
    pub order_timeout: Duration,
    /// Orders in flight at once across domain sets.
    pub concurrency: usize,
}

impl ManagerConfig {
    /// Defaults: resolver `berth`, staging first, published limits, default backoff.
    pub fn new(store: PathBuf, account: AccountConfig) -> Self {
        Self {
            store,
            resolver: crate::store::DEFAULT_RESOLVER.to_owned(),
            account,
            skip_staging: false,
            limits: None,
            backoff: BackoffPolicy::default(),
            order_timeout: DEFAULT_ORDER_TIMEOUT,
            concurrency: 4,
        }
    }
}

/// What [`CertManager::ensure`] did for one domain set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// A valid certificate is stored and not yet due for renewal.
    Valid {
        /// The stored certificate.
        certificate: Certificate,
        /// When it becomes due.
        renew_at: SystemTime,
    },
    /// A certificate was issued (none was stored, or `force`).
    Issued(Certificate),
    /// A stored certificate was due and was replaced.
    Renewed(Certificate),
}

impl Outcome {
    /// The certificate now stored.
    pub fn certificate(&self) -> &Certificate {
        match self {
            Self::Valid { certificate, .. }
            | Self::Issued(certificate)
            | Self::Renewed(certificate) => certificate,
        }
    }
}

/// Something that happened to a certificate; logs, metrics and the admin API read these.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CertEvent {
    /// A certificate was issued for a new domain set.
    Issued {
        /// The names.
        domains: String,
        /// End of validity.
        not_after: SystemTime,
    },
    /// A certificate was renewed.
    Renewed {
        /// The names.
        domains: String,
        /// End of validity.
        not_after: SystemTime,
    },
    /// The set was proven on the CA's staging endpoint.
    StagingProven {
        /// The names.
        domains: String,
        /// The staging directory.
        staging: String,
    },
    /// An order failed; the ledger holds the next attempt.
    Failed {
        /// The names.
        domains: String,
        /// What went wrong.
        error: String,
        /// When berth will try again.
        next_attempt: SystemTime,
    },
    /// An order was not placed because of an earlier failure's backoff.
    BackingOff {
        /// The names.
        domains: String,
        /// When berth will try again.
        until: SystemTime,
    },
    /// The rate budget refused an order.
    Refused {
        /// The names.
        domains: String,
        /// Which limit and when it frees up.
        reason: String,
    },
}

/// Keeps a list of domain sets issued and renewed, persisting to `acme.json` and the
/// state file, and publishing the served [`CertSet`] on a watch channel.
pub struct CertManager {
    config: ManagerConfig,
    certs: Vec<ManagedCert>,
    solvers: HashMap<ChallengeKind, Arc<dyn Solver>>,
    /// Serialises read-modify-write of the store and state files.
    files: Mutex<()>,
    /// One order per domain set at a time.
    in_flight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    published: watch::Sender<CertSet>,
    events: broadcast::Sender<CertEvent>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("store", &self.config.store)
            .field("certs", &self.certs)
            .finish_non_exhaustive()
    }
}

impl CertManager {
    /// A manager for `certs`, answering challenges with `solvers` (one per kind used).
    pub fn new(
        config: ManagerConfig,
        certs: Vec<ManagedCert>,
        solvers: Vec<Arc<dyn Solver>>,
    ) -> Self {
        let solvers = solvers.into_iter().map(|s| (s.kind(), s)).collect();
        let (published, _) = watch::channel(CertSet::default());
        let (events, _) = broadcast::channel(256);
        Self {
            config,
            certs,
            solvers,
            files: Mutex::new(()),
            in_flight: Mutex::new(HashMap::new()),
            published,
            events,
        }
    }

    /// The served certificate set; changes after every issuance and renewal.
    pub fn subscribe(&self) -> watch::Receiver<CertSet> {
        self.published.subscribe()
    }

    /// Certificate events as they happen.
    pub fn events(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }

    /// The managed domain sets.
    pub fn managed(&self) -> &[ManagedCert] {
        &self.certs
    }

    /// The `acme.json` path (the state file is [`state_path`] of it).
    pub fn store_path(&self) -> &std::path::Path {
        &self.config.store
    }

    /// The configured CA.
    pub fn ca(&self) -> &Ca {
        &self.config.account.ca
    }

    /// Publishes what the store holds for the managed sets (valid certificates only),
    /// without contacting any CA: what `berth run` serves at start-up.
    pub async fn publish_from_store(&self) -> Result<CertSet, Error> {
        let store = {
            let _files = self.files.lock().await;
            AcmeJson::load(&self.config.store)?
        };
        let now = SystemTime::now();
        let certs = self
            .certs
            .iter()
            .filter_map(|m| self.find_stored(&store, &m.domains))
            .filter(|c| c.is_valid_at(now))
            .collect();
        let set = CertSet::new(certs);
        self.published.send_replace(set.clone());
        Ok(set)
    }

    /// Brings every managed set up to date once, at most `concurrency` orders at a time.
    pub async fn ensure_all(&self, force: bool) -> Vec<(DomainSet, Result<Outcome, Error>)> {
        let permits = tokio::sync::Semaphore::new(self.config.concurrency.max(1));
        let mut results = Vec::with_capacity(self.certs.len());
        let mut pending = Vec::with_capacity(self.certs.len());
        for managed in &self.certs {
            let permits = &permits;
            pending.push(Box::pin(async move {
                let _permit = permits.acquire().await;
                (managed.domains.clone(), self.ensure(managed, force).await)
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = _> + Send + '_>,
                >);
        }
        results.extend(futures_util::future::join_all(pending).await);
        if let Err(e) = self.publish_from_store().await {
            tracing::error!(error = %e, "could not publish certificates from the store");
        }
        results
    }

    /// Brings one set up to date: keeps a valid certificate, otherwise (or with `force`)
    /// orders one — unless the ledger says to wait or the budget refuses.
    pub async fn ensure(&self, managed: &ManagedCert, force: bool) -> Result<Outcome, Error> {
        let key = managed.domains.key();
        let lock = self
            .in_flight
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_order_per_set = lock.lock().await;

        let ca_url = self.config.account.ca.directory().to_owned();
        let (store, state) = {
            let _files = self.files.lock().await;
            (
                AcmeJson::load(&self.config.store)?,
                State::load(&state_path(&self.config.store))?,
            )
        };
        let now = SystemTime::now();
        let stored = self.find_stored(&store, &managed.domains);
        if let Some(cert) = &stored
            && !force
            && cert.is_valid_at(now)
        {
            let hint = self.renewal_hint(cert, &key, &state, now).await;
            let renew_at = due_at(cert, hint.as_ref());
            if now < renew_at {
                return Ok(Outcome::Valid {
                    certificate: cert.clone(),
                    renew_at,
                });
            }
        }

        if let Some(entry) = state.ledger_entry(&ca_url, &key)
            && now < entry.next_attempt_at
        {
            if !force {
                tracing::warn!(domains = %key, ca = %ca_url, until = %budget::rfc3339(entry.next_attempt_at), last_error = %entry.last_error, "backing off after an earlier failure");
                let _ = self.events.send(CertEvent::BackingOff {
                    domains: key.clone(),
                    until: entry.next_attempt_at,
                });
                return Err(Error::BackingOff {
                    domains: key,
                    ca: ca_url,
                    until: entry.next_attempt_at,
                    last_error: entry.last_error.clone(),
                });
            }
            tracing::warn!(domains = %key, ca = %ca_url, "--force: ordering inside the backoff window");
        }

        let limits = self
            .config
            .limits
            .unwrap_or_else(|| RateLimits::for_ca(&self.config.account.ca));
        if let Err(refusal) = budget::check(&limits, &state.history, &ca_url, &managed.domains, now)
        {
            tracing::warn!(domains = %key, ca = %ca_url, "{refusal}");
            let _ = self.events.send(CertEvent::Refused {
                domains: key.clone(),
                reason: refusal.to_string(),
            });
            return Err(refusal.into());
        }

        match self.order(managed, &state, stored.as_ref()).await {
            Ok(certificate) => {
                self.record_success(managed, &certificate).await?;
                let not_after = certificate.info().not_after;
                let event = if stored.is_some() {
                    tracing::info!(domains = %key, ca = %ca_url, not_after = %budget::rfc3339(not_after), "certificate renewed");
                    CertEvent::Renewed {
                        domains: key,
                        not_after,
                    }
                } else {
                    tracing::info!(domains = %key, ca = %ca_url, not_after = %budget::rfc3339(not_after), "certificate issued");
                    CertEvent::Issued {
                        domains: key,
                        not_after,
                    }
                };
                let _ = self.events.send(event);
                if let Err(e) = self.publish_from_store().await {
                    tracing::error!(error = %e, "could not publish certificates from the store");
                }
                Ok(if stored.is_some() {
                    Outcome::Renewed(certificate)
                } else {
                    Outcome::Issued(certificate)
                })
            }
            Err(error) => {
                let next_attempt = self.record_failure(managed, &error).await;
                tracing::error!(domains = %key, ca = %ca_url, next_attempt = %budget::rfc3339(next_attempt), error = %error, "order failed");
                let _ = self.events.send(CertEvent::Failed {
                    domains: key,
                    error: error.to_string(),
                    next_attempt,
                });
                Err(error)
            }
        }
    }

    /// Keeps certificates fresh until `shutdown`: one pass, then sleeps until the next
    /// renewal or backoff expiry (at most an hour, so changes by others are noticed).
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            for (domains, result) in self.ensure_all(false).await {
                if let Err(e) = result {
                    tracing::debug!(domains = %domains, error = %e, "not up to date yet");
                }
            }
            let wait = self
                .next_wakeup()
                .await
                .min(Duration::from_secs(3600))
                .max(Duration::from_secs(5));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn next_wakeup(&self) -> Duration {
        let now = SystemTime::now();
        let (store, state) = {
            let _files = self.files.lock().await;
            match (
                AcmeJson::load(&self.config.store),
                State::load(&state_path(&self.config.store)),
            ) {
                (Ok(store), Ok(state)) => (store, state),
                _ => return Duration::from_secs(300),
            }
        };
        let ca_url = self.config.account.ca.directory();
        self.certs
            .iter()
            .map(|m| {
                let due = self
                    .find_stored(&store, &m.domains)
                    .map(|c| due_at(&c, state.renewal_hint(&c.info().serial_hex)))
                    .unwrap_or(now);
                let backoff = state
                    .ledger_entry(ca_url, &m.domains.key())
                    .map(|e| e.next_attempt_at)
                    .unwrap_or(now);
                due.max(backoff).duration_since(now).unwrap_or_default()
            })
            .min()
            .unwrap_or(Duration::from_secs(3600))
    }

    /// The CA's renewal advice for `cert` (ARI): the remembered answer while it is fresh,
    /// else the CA is asked — with the stored account only, never registering one just
    /// to ask — and the answer remembered. Failures fall back to the earlier advice.
    async fn renewal_hint(
        &self,
        cert: &Certificate,
        domains: &str,
        state: &State,
        now: SystemTime,
    ) -> Option<RenewalHint> {
        let ca_url = self.config.account.ca.directory();
        let serial = &cert.info().serial_hex;
        let previous = state.renewal_hint(serial);
        if let Some(hint) = previous.filter(|h| !h.is_stale(now)) {
            return Some(hint.clone());
        }
        let credentials = state.accounts.get(ca_url)?.credentials.clone();
        let answer =
            match AcmeAccount::load_or_create(&self.config.account, Some(&credentials)).await {
                Ok((account, _)) => account.renewal_window(cert).await,
                Err(e) => Err(e),
            };
        let hint = match answer {
            Ok(window) => {
                let hint = RenewalHint::from_answer(domains, window.as_ref(), previous, now);
                if let Some(at) = hint.renew_at.filter(|at| *at < renewal_due(cert)) {
                    tracing::info!(domains = %domains, ca = %ca_url, renew_at = %budget::rfc3339(at), explanation = hint.explanation_url.as_deref().unwrap_or("none given"), "the CA suggests renewing early (ACME Renewal Information)");
                }
                hint
            }
            Err(e) => {
                tracing::warn!(domains = %domains, ca = %ca_url, error = %e, "could not fetch renewal information; keeping the earlier schedule");
                RenewalHint::after_error(domains, previous, now)
            }
        };
        let key = serial.clone();
        let stored = hint.clone();
        if let Err(e) = self
            .update_state(|s| {
                s.renewal_hints.insert(key, stored);
            })
            .await
        {
            tracing::error!(error = %e, "could not record renewal information");
        }
        Some(hint)
    }

    /// A stored certificate for exactly these names: berth's resolver first, then any
    /// other (an imported Traefik `acme.json`), newest expiry first.
    fn find_stored(&self, store: &AcmeJson, domains: &DomainSet) -> Option<Certificate> {
        let (certs, _) = store.all_certificates();
        let mut matching: Vec<_> = certs
            .into_iter()
            .filter(|c| c.domains.same_names(domains))
            .collect();
        matching.sort_by_key(|c| {
            (
                c.resolver == self.config.resolver,
                c.certificate.info().not_after,
            )
        });
        matching.pop().map(|c| c.certificate)
    }

    /// Staging first (unless proven or skipped), then the configured CA.
    async fn order(
        &self,
        managed: &ManagedCert,
        state: &State,
        replaces: Option<&Certificate>,
    ) -> Result<Certificate, Error> {
        let ca = &self.config.account.ca;
        let key = managed.domains.key();
        if let Some(staging) = ca
            .staging_directory()
            .filter(|_| !self.config.skip_staging && replaces.is_none())
            && !state.staging_proven(ca.directory(), &key)
        {
            let staging_ca =
                Ca::custom(staging, None).unwrap_or_else(|_| Ca::letsencrypt_staging());
            tracing::info!(domains = %key, ca = %staging, "proving the domain set on the staging CA first");
            let mut account = self.config.account.clone();
            account.ca = staging_ca;
            self.order_from(&account, managed, None).await?;
            let proof = StagingProof {
                ca: ca.directory().to_owned(),
                staging: staging.to_owned(),
                domains: key.clone(),
                at: SystemTime::now(),
            };
            self.update_state(|s| s.staging_proofs.push(proof)).await?;
            let _ = self.events.send(CertEvent::StagingProven {
                domains: key.clone(),
                staging: staging.to_owned(),
            });
        }
        tracing::info!(domains = %key, ca = %ca.directory(), staging = ca.is_staging(), "placing order");
        self.order_from(&self.config.account, managed, replaces)
            .await
    }

    async fn order_from(
        &self,
        account_config: &AccountConfig,
        managed: &ManagedCert,
        replaces: Option<&Certificate>,
    ) -> Result<Certificate, Error> {
        let solver = self
            .solvers
            .get(&managed.challenge)
            .cloned()
            .ok_or(Error::NoSolver {
                challenge: managed.challenge,
            })?;
        let directory = account_config.ca.directory().to_owned();
        let existing = {
            let _files = self.files.lock().await;
            State::load(&state_path(&self.config.store))?
                .accounts
                .get(&directory)
                .map(|a| a.credentials.clone())
        };
        let (account, created) =
            AcmeAccount::load_or_create(account_config, existing.as_ref()).await?;
        if let Some(credentials) = created {
            let email = account_config.email.clone();
            let dir = directory.clone();
            self.update_state(move |s| {
                s.accounts.insert(
                    dir,
                    StoredAccount {
                        credentials,
                        email,
                        created_at: SystemTime::now(),
                    },
                );
            })
            .await?;
        }
        let event = HistoryEvent {
            at: SystemTime::now(),
            ca: directory,
            domains: managed.domains.key(),
            kind: HistoryKind::OrderPlaced,
        };
        self.update_state(|s| s.history.push(event)).await?;
        let request = OrderRequest {
            domains: managed.domains.clone(),
            key_type: managed.key_type,
            timeout: self.config.order_timeout,
            replaces: replaces.cloned(),
        };
        Issuer::new(account, solver).issue(&request).await
    }

    async fn record_success(
        &self,
        managed: &ManagedCert,
        certificate: &Certificate,
    ) -> Result<(), Error> {
        let ca = self.config.account.ca.directory().to_owned();
        let key = managed.domains.key();
        let _files = self.files.lock().await;
        let mut store = AcmeJson::load(&self.config.store)?;
        store.upsert(&self.config.resolver, &managed.domains, certificate);
        store.save(&self.config.store)?;
        let path = state_path(&self.config.store);
        let mut state = State::load(&path)?;
        state.ledger.remove(&ledger_key(&ca, &key));
        // Advice about the replaced certificate no longer applies.
        state.renewal_hints.retain(|_, hint| hint.domains != key);
        let now = SystemTime::now();
        state.history.push(HistoryEvent {
            at: now,
            ca,
            domains: key,
            kind: HistoryKind::CertificateIssued,
        });
        budget::prune(&mut state.history, now);
        state.save(&path)?;
        Ok(())
    }

    /// Updates the ledger after a failure; returns the next allowed attempt.
    async fn record_failure(&self, managed: &ManagedCert, error: &Error) -> SystemTime {
        let ca = self.config.account.ca.directory().to_owned();
        let key = managed.domains.key();
        let now = SystemTime::now();
        let backoff = self.config.backoff;
        let (error_type, retry_after, failed_identifier) = classify(error);
        let detail = error.to_string();
        let mut next = now;
        let result = self
            .update_state(|state| {
                let failures = state
                    .ledger_entry(&ca, &key)
                    .map_or(0, |e| e.consecutive_failures)
                    + 1;
                next = backoff.next_attempt(failures, now, retry_after);
                state.ledger.insert(
                    ledger_key(&ca, &key),
                    LedgerEntry {
                        ca: ca.clone(),
                        domains: key.clone(),
                        consecutive_failures: failures,
                        last_error_type: error_type,
                        last_error: detail,
                        last_failure_at: now,
                        next_attempt_at: next,
                    },
                );
                if let Some(identifier) = failed_identifier {
                    state.history.push(HistoryEvent {
                        at: now,
                        ca: ca.clone(),
                        domains: key.clone(),
                        kind: HistoryKind::ValidationFailed { identifier },
                    });
                }
            })
            .await;
        if let Err(e) = result {
            // The ledger could not be written: still report the in-memory backoff so this
            // process does not hammer the CA.
            tracing::error!(error = %e, "could not record the failure in the ledger");
        }
        next
    }

    async fn update_state(&self, change: impl FnOnce(&mut State)) -> Result<(), Error> {
        let _files = self.files.lock().await;
        let path = state_path(&self.config.store);
        let mut state = State::load(&path)?;
        change(&mut state);
        state.save(&path)?;
        Ok(())
    }
}

/// The ledger's record of an error: its type, the CA's retry time, and the identifier
/// whose validation failed.
fn classify(error: &Error) -> (String, Option<SystemTime>, Option<String>) {
    match error {
        Error::Validation {
            identifier,
            problem,
            ..
        } => (
            problem
                .problem_type
                .clone()
                .unwrap_or_else(|| "validation".into()),
            None,
            Some(identifier.trim_start_matches("*.").to_owned()),
        ),
        Error::RateLimited { retry_after, .. } => (
            "urn:ietf:params:acme:error:rateLimited".into(),
            *retry_after,
            None,
        ),
        Error::Acme { problem, .. } => (
            problem
                .problem_type
                .clone()
                .unwrap_or_else(|| "acme".into()),
            None,
            None,
        ),
        Error::OrderTimeout { .. } => ("timeout".into(), None, None),
        Error::CaUnreachable { .. } => ("ca-unreachable".into(), None, None),
        Error::Dns(_) => ("dns".into(), None, None),
        _ => ("error".into(), None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_cert_refuses_wildcards_without_dns() {
        let domains = DomainSet::parse(["*.example.com"]).unwrap();
        assert!(ManagedCert::new(domains.clone(), ChallengeKind::Http01, KeyType::Ec256).is_err());
        assert!(ManagedCert::new(domains, ChallengeKind::Dns01, KeyType::Ec256).is_ok());
    }
}
