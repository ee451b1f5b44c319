//! [`CertManager`]: the certificate lifecycle. For each domain set: load the store,
//! decide (valid / renew / issue / wait for backoff / refused by budget), order, persist,
//! publish.
//!
//! Every path to a CA goes through here — `berth issue`, `berth renew` and `berth run`
//! alike — so the failure ledger, the rate budget and staging-first apply to all of them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, OnceCell, broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::account::{AccountConfig, AcmeAccount};
use crate::budget::{self, HistoryEvent, HistoryKind, RateLimits};
use crate::ca::Ca;
use crate::certificate::CertSet;
use crate::certificate::Certificate;
use crate::challenge::shared::{self, SharedSolver};
use crate::challenge::{ChallengeKind, PendingChallenge, Solver, SolverFuture};
use crate::domain::DomainSet;
use crate::error::Error;
use crate::issuer::{DEFAULT_ORDER_TIMEOUT, Issuer, OrderJournal, OrderRequest};
use crate::key::KeyType;
use crate::ledger::BackoffPolicy;
use crate::renewal::{RenewalHint, due_at, renewal_due};
use crate::store::records::{self, CertRecord, CertState};
use crate::timestamp;

mod dry_run;
use crate::store::{
    Change, Expect, Lease, LedgerEntry, PendingOrder, StagingProof, Store, StoreError,
    StoredAccount,
};
pub use dry_run::{DryRunError, DryRunResult};

/// One certificate berth keeps: its names, how to validate them, its key type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCert {
    /// The names (main first).
    pub domains: DomainSet,
    /// The challenge to answer.
    pub challenge: ChallengeKind,
    /// The certificate key type.
    pub key_type: KeyType,
    /// The certificate profile to request (draft-ietf-acme-profiles), if any. `None`
    /// keeps the profile the stored certificate was issued with, else the CA's default.
    pub profile: Option<String>,
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
            profile: None,
        })
    }

    /// Requests `profile` from the CA for this certificate (its renewals too).
    pub fn with_profile(mut self, profile: Option<String>) -> Self {
        self.profile = profile;
        self
    }
}

/// Orders in flight at once by default (`--order-concurrency`): enough to issue a few
/// hundred certificates in minutes, few enough not to look like a flood to a CA.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How long another berth may hold a certificate's order lock before a store that
/// expires locks (not the file store) considers it dead: a replica killed mid-order is
/// taken over this soon (the holder renews at a third of it, and stops ordering if it
/// cannot).
const LEASE_TTL: Duration = Duration::from_secs(9);

/// How soon a pass comes back to names another berth was ordering.
const TAKEOVER_CHECK: Duration = Duration::from_secs(2);

/// How the manager behaves.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where certificates and state live.
    pub store: Arc<dyn Store>,
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
    /// Where a certificate that could not be stored is kept (0600) until storing
    /// works again; `None` keeps it in memory only.
    pub rescue_dir: Option<PathBuf>,
    /// Publish HTTP-01 and TLS-ALPN-01 answers in the store and answer those of other
    /// replicas (several replicas behind one load balancer share a store).
    pub share_challenges: bool,
}

impl ManagerConfig {
    /// Defaults: staging first, published limits, default backoff,
    /// [`DEFAULT_CONCURRENCY`].
    pub fn new(store: Arc<dyn Store>, account: AccountConfig) -> Self {
        Self {
            store,
            account,
            skip_staging: false,
            limits: None,
            backoff: BackoffPolicy::default(),
            order_timeout: DEFAULT_ORDER_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            rescue_dir: None,
            share_challenges: false,
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
        /// The setting whose change fixes it, when one does ([`Error::setting`]).
        setting: Option<crate::Setting>,
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

/// One managed domain set as the manager sees it now, from memory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertStatus {
    /// The names.
    pub domains: DomainSet,
    /// The certificate served for them, if any (valid or not).
    pub certificate: Option<Certificate>,
    /// When it is due for renewal.
    pub renew_at: Option<SystemTime>,
    /// The failure ledger's entry at the configured CA.
    pub ledger: Option<LedgerEntry>,
    /// An order for these names is in flight (or was interrupted and will be resumed).
    pub order_in_flight: bool,
    /// `false` while the certificate is only in memory because storing it failed.
    pub stored: bool,
}

/// What the manager holds in memory: the managed sets' certificates and state, read
/// from the store once and kept current by its change stream.
#[derive(Default)]
struct Index {
    certs: HashMap<String, Certificate>,
    states: HashMap<String, CertState>,
    /// Issued but not yet stored: served, and storing is retried — never dropped.
    unstored: HashMap<String, (DomainSet, Certificate)>,
}

/// Keeps a list of domain sets issued and renewed in a [`Store`], and publishes the
/// served [`CertSet`] on a watch channel.
///
/// Every decision reads memory: the store is read once (on the first call) and then
/// only for keys its change stream reports, so a pass over 10,000 certificates costs
/// no I/O unless something is due.
///
/// ```no_run
/// use std::sync::Arc;
/// use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver};
/// use berth_acme_core::store::FileStore;
/// use berth_acme_core::{
///     AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert,
///     ManagerConfig,
/// };
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let store = FileStore::open("/data/acme.json".as_ref(), "berth").await?;
/// let config = ManagerConfig::new(store, AccountConfig::new(Ca::letsencrypt_staging()));
/// let cert = ManagedCert::new(
///     DomainSet::parse(["example.com"])?,
///     ChallengeKind::Http01,
///     KeyType::Ec256,
/// )?;
/// let responder = Http01Responder::new(); // serve it on :80
/// let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
/// let manager = CertManager::new(config, vec![cert], vec![solver]);
/// let served = manager.subscribe(); // hand to a TLS server
/// for (names, outcome) in manager.ensure_all(false).await {
///     println!("{names}: {:?}", outcome.map(|o| o.certificate().info().not_after));
/// }
/// # drop(served); Ok(()) }
/// ```
pub struct CertManager {
    config: ManagerConfig,
    certs: Vec<ManagedCert>,
    managed_keys: HashSet<String>,
    solvers: HashMap<ChallengeKind, Arc<dyn Solver>>,
    index: std::sync::Mutex<Index>,
    loaded: OnceCell<()>,
    /// One order per domain set at a time in this process.
    in_flight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// One account registration at a time.
    registering: Mutex<()>,
    /// One order placed (and recorded) at a time; see [`OrderJournal::placement_lock`].
    placing: Mutex<()>,
    /// Other replicas' challenge answers presented here, by store key.
    mirrored: std::sync::Mutex<HashMap<String, PendingChallenge>>,
    published: watch::Sender<CertSet>,
    events: broadcast::Sender<CertEvent>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("store", &self.config.store.describe())
            .field("certs", &self.certs.len())
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
            managed_keys: certs.iter().map(|m| m.domains.key()).collect(),
            config,
            certs,
            solvers,
            index: std::sync::Mutex::new(Index::default()),
            loaded: OnceCell::new(),
            in_flight: Mutex::new(HashMap::new()),
            registering: Mutex::new(()),
            placing: Mutex::new(()),
            mirrored: std::sync::Mutex::new(HashMap::new()),
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

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.config.store
    }

    /// The configured CA.
    pub fn ca(&self) -> &Ca {
        &self.config.account.ca
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every managed set's status, from memory (admin API, status page, metrics).
    pub fn status(&self) -> Vec<CertStatus> {
        let ca = self.config.account.ca.directory();
        let index = self.index();
        self.certs
            .iter()
            .map(|m| {
                let key = m.domains.key();
                let unstored = index.unstored.get(&key).map(|(_, c)| c);
                let certificate = unstored.or_else(|| index.certs.get(&key)).cloned();
                let state = index.states.get(&key);
                CertStatus {
                    domains: m.domains.clone(),
                    renew_at: certificate
                        .as_ref()
                        .map(|c| due_at(c, state.and_then(|s| s.hints.get(&c.info().serial_hex)))),
                    certificate,
                    ledger: state.and_then(|s| s.ledger.get(ca)).cloned(),
                    order_in_flight: state.is_some_and(|s| s.order.is_some()),
                    stored: unstored.is_none(),
                }
            })
            .collect()
    }

    /// The certificates in the store whose sets this manager does not manage: never
    /// renewed or served by it (see [`crate::stale`]).
    pub async fn unmanaged(&self) -> Result<Vec<crate::stale::StaleCert>, Error> {
        let configured = crate::stale::ConfiguredSets {
            sets: self.certs.iter().map(|m| m.domains.key()).collect(),
            at: None,
        };
        Ok(crate::stale::find_stale(
            self.config.store.as_ref(),
            Some(&configured),
            false,
            true,
            SystemTime::now(),
        )
        .await?)
    }

    /// Reads the managed sets from the store (once; later calls return at once) and
    /// publishes the valid certificates, without contacting any CA: what `berth run`
    /// serves at start-up.
    pub async fn publish_from_store(&self) -> Result<CertSet, Error> {
        self.load().await?;
        Ok(self.publish())
    }

    /// Publishes the valid certificates in memory.
    fn publish(&self) -> CertSet {
        let now = SystemTime::now();
        let set = {
            let index = self.index();
            CertSet::new(
                self.certs
                    .iter()
                    .filter_map(|m| {
                        let key = m.domains.key();
                        index
                            .unstored
                            .get(&key)
                            .map(|(_, c)| c)
                            .or_else(|| index.certs.get(&key))
                            .filter(|c| c.is_valid_at(now))
                            .cloned()
                    })
                    .collect(),
            )
        };
        self.published.send_replace(set.clone());
        set
    }

    async fn load(&self) -> Result<(), Error> {
        self.loaded
            .get_or_try_init(|| async {
                let started = Instant::now();
                for m in &self.certs {
                    self.reload_entry(&m.domains.key()).await?;
                }
                self.import_rescued().await;
                if self.config.share_challenges {
                    self.mirror_all().await;
                }
                tracing::info!(
                    certificates = self.certs.len(),
                    store = %self.config.store.describe(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "store loaded"
                );
                Ok::<(), Error>(())
            })
            .await
            .map(|_| ())
    }

    /// Reads one set's certificate and state from the store into memory.
    async fn reload_entry(&self, key: &str) -> Result<(), Error> {
        let store = self.config.store.as_ref();
        let mut kept = false;
        let cert = match store.get(&records::cert_key(key)).await? {
            None => None,
            Some(found) => match CertRecord::decode(&found.value) {
                Ok(record) => Some(record.certificate),
                Err(reason) => {
                    // Garbage written over a certificate this replica holds must not take
                    // it out of service: keep serving it and write it back.
                    kept = self.keep_unreadable(key);
                    if kept {
                        tracing::warn!(domains = %key, store = %store.describe(), %reason, "stored certificate is unreadable; serving the one in memory and storing it again");
                    } else {
                        tracing::warn!(domains = %key, store = %store.describe(), %reason, "stored certificate is unreadable; it will be ordered again");
                    }
                    None
                }
            },
        };
        let state = match records::get_json::<CertState>(store, &records::state_key(key)).await {
            Ok(state) => state.map(|(s, _)| s).unwrap_or_default(),
            Err(e @ StoreError::BadRecord { .. }) => {
                tracing::error!(domains = %key, error = %e, "berth's state for these names is unreadable; starting it afresh");
                CertState::default()
            }
            Err(e) => return Err(e.into()),
        };
        let mut index = self.index();
        match cert {
            Some(cert) => index.certs.insert(key.to_owned(), cert),
            None if kept => None,
            None => index.certs.remove(key),
        };
        index.states.insert(key.to_owned(), state);
        Ok(())
    }

    /// After the stored certificate of `key` turned out unreadable: if a valid one is in
    /// memory, marks it unstored (served, and stored again on the next pass) and says so.
    fn keep_unreadable(&self, key: &str) -> bool {
        let Some(domains) = self.certs.iter().find(|m| m.domains.key() == key) else {
            return false;
        };
        let mut index = self.index();
        let Some(cert) = index.certs.get(key).cloned() else {
            return index.unstored.contains_key(key);
        };
        if !cert.is_valid_at(SystemTime::now()) {
            return false;
        }
        index
            .unstored
            .insert(key.to_owned(), (domains.domains.clone(), cert));
        true
    }

    /// Brings every managed set up to date once, at most `concurrency` at a time. Only
    /// that many are in progress at once (10,000 pending futures would hold their whole
    /// state machines in memory for the pass).
    pub async fn ensure_all(&self, force: bool) -> Vec<(DomainSet, Result<Outcome, Error>)> {
        use futures_util::StreamExt;
        // By index: a closure over `&ManagedCert` makes the future's lifetime
        // higher-ranked, which `tokio::spawn` callers cannot prove `Send` for.
        let results = futures_util::stream::iter(0..self.certs.len())
            .map(|i| async move {
                let managed = &self.certs[i];
                (managed.domains.clone(), self.ensure(managed, force).await)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        self.publish();
        results
    }

    /// Brings one set up to date: keeps a valid certificate, otherwise (or with `force`)
    /// orders one — unless the ledger says to wait, the budget refuses, or another
    /// berth on the same store is ordering it already.
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
        self.load().await?;
        self.retry_unstored(&key).await;
        if !force && let Some(valid) = self.still_valid(&key).await {
            return Ok(valid);
        }
        let store = &self.config.store;
        let Some(lease) = store.try_lock(&records::cert_key(&key), LEASE_TTL).await? else {
            return Err(Error::OrderInProgress {
                domains: key,
                store: store.describe(),
            });
        };
        // Whoever held the lock before may have stored a certificate meanwhile.
        let result = match self.reload_entry(&key).await {
            Err(e) => Err(e),
            Ok(()) => match self.still_valid(&key).await {
                Some(valid) if !force => {
                    self.publish();
                    Ok(valid)
                }
                _ => {
                    // A lease that expires (shared stores) is renewed in the background;
                    // if that fails, the order stops here — it is resumable — before
                    // another holder can take over.
                    let lost = lease.lost();
                    tokio::select! {
                        result = self.order_under_lease(managed, &key, force, &lease) => result,
                        () = lost.cancelled() => Err(Error::Store(StoreError::Fenced {
                            store: store.describe(),
                            key: records::cert_key(&key),
                            lock: lease.name().to_owned(),
                        })),
                    }
                }
            },
        };
        if let Err(e) = store.unlock(lease).await {
            tracing::warn!(domains = %key, error = %e, "could not release the order lock");
        }
        result
    }

    /// The stored certificate, if it is valid and not yet due.
    async fn still_valid(&self, key: &str) -> Option<Outcome> {
        let now = SystemTime::now();
        let (cert, state) = {
            let index = self.index();
            let cert = index
                .unstored
                .get(key)
                .map(|(_, c)| c)
                .or_else(|| index.certs.get(key))
                .cloned()?;
            (cert, index.states.get(key).cloned().unwrap_or_default())
        };
        if !cert.is_valid_at(now) {
            return None;
        }
        let hint = self.renewal_hint(&cert, key, &state, now).await;
        let renew_at = due_at(&cert, hint.as_ref());
        (now < renew_at).then_some(Outcome::Valid {
            certificate: cert,
            renew_at,
        })
    }

    async fn order_under_lease(
        &self,
        managed: &ManagedCert,
        key: &str,
        force: bool,
        lease: &Lease,
    ) -> Result<Outcome, Error> {
        let ca_url = self.config.account.ca.directory().to_owned();
        let now = SystemTime::now();
        let (stored, state) = {
            let index = self.index();
            (
                index.certs.get(key).cloned(),
                index.states.get(key).cloned().unwrap_or_default(),
            )
        };
        if let Some(entry) = state.ledger.get(&ca_url)
            && now < entry.next_attempt_at
        {
            if !force {
                tracing::warn!(domains = %key, ca = %ca_url, until = %timestamp::rfc3339(entry.next_attempt_at), last_error = %entry.last_error, "backing off after an earlier failure");
                let _ = self.events.send(CertEvent::BackingOff {
                    domains: key.to_owned(),
                    until: entry.next_attempt_at,
                });
                return Err(Error::BackingOff {
                    domains: key.to_owned(),
                    ca: ca_url,
                    until: entry.next_attempt_at,
                    last_error: entry.last_error.clone(),
                });
            }
            tracing::warn!(domains = %key, ca = %ca_url, "ordering inside the backoff window: the order is forced");
        }

        let limits = self
            .config
            .limits
            .unwrap_or_else(|| RateLimits::for_ca(&self.config.account.ca));
        let history = self.history(&ca_url).await?;
        if let Err(refusal) = budget::check(&limits, &history, &ca_url, &managed.domains, now) {
            tracing::warn!(domains = %key, ca = %ca_url, "{refusal}");
            let _ = self.events.send(CertEvent::Refused {
                domains: key.to_owned(),
                reason: refusal.to_string(),
            });
            return Err(refusal.into());
        }

        match self.order(managed, &state, stored.as_ref(), lease).await {
            Ok(certificate) => {
                self.record_success(managed, &certificate, lease).await?;
                let not_after = certificate.info().not_after;
                let domains = key.to_owned();
                let event = if stored.is_some() {
                    tracing::info!(domains = %key, ca = %ca_url, not_after = %timestamp::rfc3339(not_after), "certificate renewed");
                    CertEvent::Renewed { domains, not_after }
                } else {
                    tracing::info!(domains = %key, ca = %ca_url, not_after = %timestamp::rfc3339(not_after), "certificate issued");
                    CertEvent::Issued { domains, not_after }
                };
                let _ = self.events.send(event);
                self.publish();
                Ok(if stored.is_some() {
                    Outcome::Renewed(certificate)
                } else {
                    Outcome::Issued(certificate)
                })
            }
            Err(error) => {
                let next_attempt = self.record_failure(managed, &error, lease).await;
                tracing::error!(domains = %key, ca = %ca_url, next_attempt = %timestamp::rfc3339(next_attempt), error = %error, "order failed");
                let _ = self.events.send(CertEvent::Failed {
                    domains: key.to_owned(),
                    error: error.to_string(),
                    setting: error.setting(),
                    next_attempt,
                });
                Err(error)
            }
        }
    }

    /// Keeps certificates fresh until `shutdown`: one pass, then sleeps until the next
    /// renewal or backoff expiry (at most an hour), taking in changes others make to the
    /// store as they are reported.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut changes = self.config.store.changes();
        // What `certs list` and the status page call managed: certificates of other
        // sets in the store are never renewed here (Traefik #3376 renewed them forever).
        if let Err(e) = crate::stale::record_configured(
            self.config.store.as_ref(),
            self.certs.iter().map(|m| m.domains.key()),
        )
        .await
        {
            tracing::warn!(error = %e, "could not record the configured certificates in the store; certs list cannot tell which are unmanaged");
        }
        loop {
            let started = Instant::now();
            // Other replicas' challenge answers are mirrored while our own orders run:
            // the CA may ask us for theirs before this pass ends. Other changes wait for
            // the pass, in order, as before.
            let mut deferred = Vec::new();
            let results = {
                let pass = self.ensure_all(false);
                tokio::pin!(pass);
                let mut open = true;
                loop {
                    tokio::select! {
                        results = &mut pass => break results,
                        change = changes.recv(), if open => {
                            open = !matches!(change, Err(broadcast::error::RecvError::Closed));
                            if !self.take_in_answer(&change).await {
                                deferred.push(change);
                            }
                        }
                    }
                }
            };
            for change in deferred {
                self.take_in(change).await;
            }
            let failed = results.iter().filter(|(_, r)| r.is_err()).count();
            // Another berth is ordering some names: look again soon, to take over its
            // order if it died (its lease runs out after LEASE_TTL).
            let others_ordering = results
                .iter()
                .any(|(_, r)| matches!(r, Err(Error::OrderInProgress { .. })));
            for (domains, result) in results {
                if let Err(e) = result {
                    tracing::debug!(domains = %domains, error = %e, "not up to date yet");
                }
            }
            tracing::info!(
                certificates = self.certs.len(),
                not_up_to_date = failed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "renewal pass finished"
            );
            let wait = if others_ordering {
                TAKEOVER_CHECK
            } else {
                self.next_wakeup()
                    .min(Duration::from_secs(3600))
                    .max(Duration::from_secs(5))
            };
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(deadline) => break,
                    change = changes.recv() => self.take_in(change).await,
                }
            }
        }
    }

    /// Applies one change to the store (someone else's, or our own echo) to memory.
    async fn take_in(&self, change: Result<Change, broadcast::error::RecvError>) {
        if self.take_in_answer(&change).await {
            return;
        }
        if self.config.share_challenges
            && !matches!(change, Ok(Change::Put(_) | Change::Deleted(_)))
        {
            self.mirror_all().await;
        }
        let keys: Vec<String> = match change {
            Ok(Change::Put(key) | Change::Deleted(key)) => key
                .strip_prefix(records::CERTS)
                .or_else(|| key.strip_prefix(records::STATES))
                .filter(|set| self.managed_keys.contains(*set))
                .map(|set| vec![set.to_owned()])
                .unwrap_or_default(),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                self.managed_keys.iter().cloned().collect()
            }
            Err(broadcast::error::RecvError::Closed) => {
                // The store is gone; nothing more will come. Avoid a busy loop.
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
        };
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            if let Err(e) = self.reload_entry(key).await {
                tracing::warn!(domains = %key, error = %e, "could not read a changed certificate");
            }
        }
        self.publish();
    }

    /// Mirrors (or withdraws) another replica's challenge answer if `change` is one;
    /// true when it was.
    async fn take_in_answer(&self, change: &Result<Change, broadcast::error::RecvError>) -> bool {
        if !self.config.share_challenges {
            return false;
        }
        match change {
            Ok(Change::Put(key)) if key.starts_with(shared::CHALLENGES) => self.mirror(key).await,
            Ok(Change::Deleted(key)) if key.starts_with(shared::CHALLENGES) => {
                self.unmirror(key).await;
            }
            _ => return false,
        }
        true
    }

    /// Presents another replica's answer here, so the CA's request may land on us.
    async fn mirror(&self, key: &str) {
        let Some(kind) = shared::answer_kind(key) else {
            return;
        };
        let Some(solver) = self.solvers.get(&kind) else {
            return;
        };
        let answer = match records::get_json::<shared::SharedAnswer>(
            self.config.store.as_ref(),
            key,
        )
        .await
        {
            Ok(Some((answer, _))) => answer,
            Ok(None) => return self.unmirror(key).await,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not read a shared challenge answer");
                return;
            }
        };
        if answer.is_stale(SystemTime::now()) {
            // Left by a replica that died mid-order.
            let _ = self.config.store.delete(key, Expect::Any, None).await;
            return;
        }
        let Some(challenge) = answer.challenge() else {
            return;
        };
        if let Err(e) = solver.present(&challenge).await {
            tracing::warn!(identifier = %challenge.identifier(), error = %e, "could not present another replica's challenge answer");
            return;
        }
        self.mirrored_map().insert(key.to_owned(), challenge);
    }

    async fn unmirror(&self, key: &str) {
        let challenge = self.mirrored_map().remove(key);
        if let (Some(challenge), Some(solver)) = (
            challenge,
            shared::answer_kind(key).and_then(|k| self.solvers.get(&k)),
        ) {
            let _ = solver.cleanup(&challenge).await;
        }
    }

    /// Brings the mirrored answers in line with the store (at start, and when changes
    /// may have been missed).
    async fn mirror_all(&self) {
        let keys = match self.config.store.list(shared::CHALLENGES).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "could not list shared challenge answers");
                return;
            }
        };
        let gone: Vec<String> = self
            .mirrored_map()
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        for key in gone {
            self.unmirror(&key).await;
        }
        for key in keys {
            self.mirror(&key).await;
        }
    }

    fn mirrored_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingChallenge>> {
        self.mirrored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_wakeup(&self) -> Duration {
        let now = SystemTime::now();
        let ca_url = self.config.account.ca.directory();
        let index = self.index();
        self.certs
            .iter()
            .map(|m| {
                let key = m.domains.key();
                let state = index.states.get(&key);
                let due = index
                    .certs
                    .get(&key)
                    .map(|c| due_at(c, state.and_then(|s| s.hints.get(&c.info().serial_hex))))
                    .unwrap_or(now);
                let backoff = state
                    .and_then(|s| s.ledger.get(ca_url))
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
        state: &CertState,
        now: SystemTime,
    ) -> Option<RenewalHint> {
        let ca_url = self.config.account.ca.directory();
        let serial = &cert.info().serial_hex;
        let previous = state.hints.get(serial);
        if let Some(hint) = previous.filter(|h| !h.is_stale(now)) {
            return Some(hint.clone());
        }
        let credentials = self.stored_account(ca_url).await.ok()??.credentials;
        let answer =
            match AcmeAccount::load_or_create(&self.config.account, Some(&credentials)).await {
                Ok((account, _)) => account.renewal_window(cert).await,
                Err(e) => Err(e),
            };
        let hint = match answer {
            Ok(window) => {
                let hint = RenewalHint::from_answer(domains, window.as_ref(), previous, now);
                if let Some(at) = hint.renew_at.filter(|at| *at < renewal_due(cert)) {
                    tracing::info!(domains = %domains, ca = %ca_url, renew_at = %timestamp::rfc3339(at), explanation = hint.explanation_url.as_deref().unwrap_or("none given"), "the CA suggests renewing early (ACME Renewal Information)");
                }
                hint
            }
            Err(e) => {
                tracing::warn!(domains = %domains, ca = %ca_url, error = %e, "could not fetch renewal information; keeping the earlier schedule");
                RenewalHint::after_error(domains, previous, now)
            }
        };
        let (serial, stored) = (serial.clone(), hint.clone());
        if let Err(e) = self
            .update_state(domains, None, move |s| {
                s.hints.insert(serial.clone(), stored.clone());
            })
            .await
        {
            tracing::error!(error = %e, "could not record renewal information");
        }
        Some(hint)
    }

    async fn stored_account(&self, ca: &str) -> Result<Option<StoredAccount>, StoreError> {
        let found = records::get_json::<StoredAccount>(
            self.config.store.as_ref(),
            &records::account_key(ca),
        )
        .await?;
        Ok(found.map(|(account, _)| account))
    }

    async fn history(&self, ca: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let found = records::get_json::<Vec<HistoryEvent>>(
            self.config.store.as_ref(),
            &records::history_key(ca),
        )
        .await?;
        Ok(found.map(|(history, _)| history).unwrap_or_default())
    }

    async fn push_history(&self, event: HistoryEvent) -> Result<(), StoreError> {
        let key = records::history_key(&event.ca);
        records::update_json::<Vec<HistoryEvent>, _>(self.config.store.as_ref(), &key, None, |h| {
            h.push(event.clone());
            budget::prune(h, SystemTime::now());
        })
        .await
        .map(|_| ())
    }

    /// Staging first (unless proven or skipped), then the configured CA.
    async fn order(
        &self,
        managed: &ManagedCert,
        state: &CertState,
        replaces: Option<&Certificate>,
        lease: &Lease,
    ) -> Result<Certificate, Error> {
        let ca = &self.config.account.ca;
        let key = managed.domains.key();
        let profile = managed.profile.as_deref().or(state.profile.as_deref());
        if let Some(staging) = ca
            .staging_directory()
            .filter(|_| !self.config.skip_staging && replaces.is_none())
            && !state.staging_proven_for(ca.directory(), profile)
        {
            let staging_ca =
                Ca::custom(staging, None).unwrap_or_else(|_| Ca::letsencrypt_staging());
            tracing::info!(domains = %key, ca = %staging, "proving the domain set on the staging CA first");
            let mut account = self.config.account.clone();
            account.ca = staging_ca;
            self.order_from(&account, managed, None, state, lease)
                .await?;
            let proof = StagingProof {
                ca: ca.directory().to_owned(),
                staging: staging.to_owned(),
                domains: key.clone(),
                at: SystemTime::now(),
                profile: profile.map(str::to_owned),
            };
            self.update_state(&key, Some(lease), |s| {
                s.staging.push(proof.clone());
                s.order = None;
            })
            .await?;
            let _ = self.events.send(CertEvent::StagingProven {
                domains: key.clone(),
                staging: staging.to_owned(),
            });
        }
        tracing::info!(domains = %key, ca = %ca.directory(), staging = ca.is_staging(), "placing order");
        self.order_from(&self.config.account, managed, replaces, state, lease)
            .await
    }

    async fn order_from(
        &self,
        account_config: &AccountConfig,
        managed: &ManagedCert,
        replaces: Option<&Certificate>,
        state: &CertState,
        lease: &Lease,
    ) -> Result<Certificate, Error> {
        let mut solver = self
            .solvers
            .get(&managed.challenge)
            .cloned()
            .ok_or(Error::NoSolver {
                challenge: managed.challenge,
            })?;
        if self.config.share_challenges && managed.challenge != ChallengeKind::Dns01 {
            solver = Arc::new(SharedSolver::new(solver, Arc::clone(&self.config.store)));
        }
        let directory = account_config.ca.directory().to_owned();
        let account = self.account(account_config).await?;
        let request = OrderRequest {
            domains: managed.domains.clone(),
            key_type: managed.key_type,
            timeout: self.config.order_timeout,
            replaces: replaces.cloned(),
            // The configured profile, else the one the stored certificate came from:
            // a renewal never silently falls back to the CA's default profile.
            profile: managed.profile.clone().or_else(|| state.profile.clone()),
        };
        let now = SystemTime::now();
        let resume = state
            .order
            .clone()
            .filter(|o| o.ca == directory && o.resumable(now));
        let journal = Journal {
            manager: self,
            lease,
            domains: &managed.domains,
        };
        Issuer::new(account, solver)
            .issue_resumable(&request, resume, Some(&journal))
            .await
    }

    /// The account at `config`'s CA: the stored one, or one registered now — once, for
    /// every order of this process and every berth on the store (under the store's
    /// `accounts/<CA>` lock, re-reading after taking it). Orders placed with different
    /// accounts could not be resumed by the one stored, and every registration counts
    /// against the CA's new-account limit.
    async fn account(&self, config: &AccountConfig) -> Result<AcmeAccount, Error> {
        let _one_registration = self.registering.lock().await;
        let directory = config.ca.directory();
        if let Some(existing) = self.stored_account(directory).await? {
            return Ok(
                AcmeAccount::load_or_create(config, Some(&existing.credentials))
                    .await?
                    .0,
            );
        }
        let key = records::account_key(directory);
        let store = self.config.store.as_ref();
        let deadline = Instant::now() + LEASE_TTL;
        let lease = loop {
            if let Some(lease) = store.try_lock(&key, LEASE_TTL).await? {
                break lease;
            }
            if Instant::now() >= deadline {
                return Err(Error::OrderInProgress {
                    domains: format!("the account at {directory}"),
                    store: store.describe(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let result = async {
            if let Some(existing) = self.stored_account(directory).await? {
                return Ok(
                    AcmeAccount::load_or_create(config, Some(&existing.credentials))
                        .await?
                        .0,
                );
            }
            let (account, created) = AcmeAccount::load_or_create(config, None).await?;
            if let Some(credentials) = created {
                let stored = StoredAccount {
                    credentials,
                    email: config.email.clone(),
                    created_at: SystemTime::now(),
                };
                records::put_json(store, &key, &stored, Expect::Absent, Some(&lease)).await?;
            }
            Ok(account)
        }
        .await;
        if let Err(e) = store.unlock(lease).await {
            tracing::warn!(error = %e, "could not release the account lock");
        }
        result
    }

    async fn record_success(
        &self,
        managed: &ManagedCert,
        certificate: &Certificate,
        lease: &Lease,
    ) -> Result<(), Error> {
        let ca = self.config.account.ca.directory().to_owned();
        let key = managed.domains.key();
        let history = self.push_history(HistoryEvent {
            at: SystemTime::now(),
            ca,
            domains: managed.domains.clone(),
            kind: HistoryKind::CertificateIssued,
        });
        if !self
            .store_certificate(&key, &managed.domains, certificate, Some(lease))
            .await
        {
            // Kept and served; the state is brought up to date once storing works.
            if let Err(e) = history.await {
                tracing::error!(domains = %key, error = %e, "could not count the issuance in the rate budget's history");
            }
            return Ok(());
        }
        history.await?;
        let profile = managed.profile.clone().or_else(|| {
            self.index()
                .states
                .get(&key)
                .and_then(|s| s.profile.clone())
        });
        let recorded = self
            .index()
            .states
            .get(&key)
            .and_then(|s| s.profile.clone());
        if profile != recorded {
            self.update_state(&key, Some(lease), move |s| s.profile = profile.clone())
                .await?;
        }
        Ok(())
    }

    /// Stores an issued certificate; if the store fails, keeps it in memory (served) and
    /// in a rescue file, and tries again on every pass — an issued certificate is never
    /// dropped.
    async fn store_certificate(
        &self,
        key: &str,
        domains: &DomainSet,
        certificate: &Certificate,
        fence: Option<&Lease>,
    ) -> bool {
        let record = CertRecord {
            domains: domains.clone(),
            certificate: certificate.clone(),
        };
        match self
            .config
            .store
            .put(&records::cert_key(key), record.encode(), Expect::Any, fence)
            .await
        {
            Ok(_) => {
                {
                    let mut index = self.index();
                    index.certs.insert(key.to_owned(), certificate.clone());
                    index.unstored.remove(key);
                }
                self.forget_rescued(key).await;
                let ca = self.config.account.ca.directory().to_owned();
                let serial = &certificate.info().serial_hex;
                let cleared = self
                    .update_state(key, fence, |s| {
                        s.ledger.remove(&ca);
                        // Advice about the replaced certificate no longer applies.
                        s.hints.clear();
                        s.ari_renewal = s
                            .order
                            .as_ref()
                            .filter(|o| o.replaces_accepted)
                            .map(|_| serial.clone());
                        s.order = None;
                    })
                    .await;
                if let Err(e) = cleared {
                    tracing::error!(domains = %key, error = %e, "certificate stored, but its state could not be updated");
                }
                true
            }
            Err(e) => {
                let rescued = self.rescue(key, &record).await;
                tracing::error!(domains = %key, store = %self.config.store.describe(), error = %e, rescued = rescued.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "memory only".into()), "could not store the new certificate; serving it from memory and retrying");
                self.index()
                    .unstored
                    .insert(key.to_owned(), (domains.clone(), certificate.clone()));
                false
            }
        }
    }

    async fn retry_unstored(&self, key: &str) {
        let pending = self.index().unstored.get(key).cloned();
        if let Some((domains, certificate)) = pending {
            self.store_certificate(key, &domains, &certificate, None)
                .await;
        }
    }

    fn rescue_path(&self, key: &str) -> Option<PathBuf> {
        let dir = self.config.rescue_dir.as_ref()?;
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(dir.join(format!(".berth-unstored-{hash:016x}.json")))
    }

    // The rescue files are read and written on the blocking pool: the manager's loop
    // shares its runtime with the admin server.
    async fn rescue(&self, key: &str, record: &CertRecord) -> Option<PathBuf> {
        let path = self.rescue_path(key)?;
        let (bytes, target) = (record.encode(), path.clone());
        let written = tokio::task::spawn_blocking(move || {
            crate::store::atomic::write_atomic(&target, &bytes, crate::store::atomic::PRIVATE_MODE)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::io("writing", &path, std::io::Error::other(e))));
        match written {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::error!(domains = %key, error = %e, "could not write the rescue file either");
                None
            }
        }
    }

    async fn forget_rescued(&self, key: &str) {
        if let Some(path) = self.rescue_path(key) {
            let _ = crate::store::atomic::blocking_io(move || std::fs::remove_file(path)).await;
        }
    }

    /// Certificates a crashed run could not store: served and stored again.
    async fn import_rescued(&self) {
        for m in &self.certs {
            let key = m.domains.key();
            let Some(path) = self.rescue_path(&key) else {
                return;
            };
            let file = path.clone();
            let read = crate::store::atomic::blocking_io(move || {
                std::fs::read(file).map(zeroize::Zeroizing::new)
            })
            .await;
            let Ok(bytes) = read else {
                continue;
            };
            let Ok(record) = CertRecord::decode(&bytes) else {
                continue;
            };
            let newer =
                self.index().certs.get(&key).is_none_or(|stored| {
                    stored.info().not_after < record.certificate.info().not_after
                });
            if newer {
                tracing::info!(domains = %key, path = %path.display(), "storing a certificate an earlier run could not store");
                self.store_certificate(&key, &record.domains, &record.certificate, None)
                    .await;
            } else {
                self.forget_rescued(&key).await;
            }
        }
    }

    /// Updates the ledger after a failure; returns the next allowed attempt.
    async fn record_failure(
        &self,
        managed: &ManagedCert,
        error: &Error,
        lease: &Lease,
    ) -> SystemTime {
        let ca = self.config.account.ca.directory().to_owned();
        let key = managed.domains.key();
        let now = SystemTime::now();
        let backoff = self.config.backoff;
        let (error_type, retry_after, failed_identifier) = classify(error);
        // An order the CA has settled (invalid) cannot be resumed; one interrupted by a
        // timeout or an unreachable CA can.
        let order_settled = matches!(
            error,
            Error::Validation { .. } | Error::Acme { .. } | Error::RateLimited { .. }
        );
        let detail = error.to_string();
        let previous = self
            .index()
            .states
            .get(&key)
            .and_then(|s| s.ledger.get(&ca))
            .map_or(0, |e| e.consecutive_failures);
        let failures = previous + 1;
        let next = backoff.next_attempt(failures, now, retry_after);
        let entry = LedgerEntry {
            ca: ca.clone(),
            domains: key.clone(),
            consecutive_failures: failures,
            last_error_type: error_type,
            last_error: detail,
            last_failure_at: now,
            next_attempt_at: next,
        };
        let result = self
            .update_state(&key, Some(lease), |s| {
                let failures = s.ledger.get(&ca).map_or(0, |e| e.consecutive_failures) + 1;
                let mut entry = entry.clone();
                entry.consecutive_failures = failures.max(entry.consecutive_failures);
                entry.next_attempt_at =
                    backoff.next_attempt(entry.consecutive_failures, now, retry_after);
                s.ledger.insert(ca.clone(), entry);
                if order_settled {
                    s.order = None;
                }
            })
            .await;
        let next = match &result {
            Ok(state) => state.ledger.get(&ca).map_or(next, |e| e.next_attempt_at),
            Err(e) => {
                // The ledger could not be written: still report the in-memory backoff so
                // this process does not hammer the CA.
                tracing::error!(error = %e, "could not record the failure in the ledger");
                self.index()
                    .states
                    .entry(key.clone())
                    .or_default()
                    .ledger
                    .insert(ca.clone(), entry);
                next
            }
        };
        if let Some(identifier) = failed_identifier
            && let Err(e) = self
                .push_history(HistoryEvent {
                    at: now,
                    ca,
                    domains: managed.domains.clone(),
                    kind: HistoryKind::ValidationFailed { identifier },
                })
                .await
        {
            tracing::error!(error = %e, "could not record the failed validation");
        }
        next
    }

    /// Changes one set's state in the store (retrying on a concurrent write) and in
    /// memory.
    async fn update_state(
        &self,
        key: &str,
        fence: Option<&Lease>,
        change: impl FnMut(&mut CertState),
    ) -> Result<CertState, StoreError> {
        let state = records::update_json(
            self.config.store.as_ref(),
            &records::state_key(key),
            fence,
            change,
        )
        .await?;
        self.index().states.insert(key.to_owned(), state.clone());
        Ok(state)
    }
}

/// Records a placed order in the set's state before any challenge is answered, and
/// counts it for the rate budget.
struct Journal<'a> {
    manager: &'a CertManager,
    lease: &'a Lease,
    domains: &'a DomainSet,
}

impl OrderJournal for Journal<'_> {
    fn placement_lock(&self) -> Option<&Mutex<()>> {
        Some(&self.manager.placing)
    }

    fn placed(&self, order: PendingOrder) -> SolverFuture<'_> {
        Box::pin(async move {
            let event = HistoryEvent {
                at: order.placed_at,
                ca: order.ca.clone(),
                domains: self.domains.clone(),
                kind: HistoryKind::OrderPlaced,
            };
            let key = self.domains.key();
            // Written together (one flush of a file store): the time between the CA's
            // answer and a durable record is a window a crash turns into a lost order.
            let (recorded, counted) = tokio::join!(
                self.manager.update_state(&key, Some(self.lease), |s| {
                    s.order = Some(order.clone());
                }),
                self.manager.push_history(event),
            );
            recorded?;
            counted?;
            Ok(())
        })
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
