//! Placing an order and driving it to a certificate (RFC 8555 §7.4).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_secrets::Secret;

use instant_acme::{
    AuthorizationState, AuthorizationStatus, ChallengeHandle, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use tokio::time::Instant;

use crate::account::{AcmeAccount, MaybeBadNonce, certificate_id, problem, retry_bad_nonce};
use crate::certificate::Certificate;
use crate::challenge::{ChallengeKind, PendingChallenge, Solver, SolverFuture};
use crate::domain::{DomainName, DomainSet};
use crate::error::{AcmeProblem, Error};
use crate::key::KeyType;
use crate::store::PendingOrder;

/// How long an order may take from placing it to receiving the certificate, unless the
/// request says otherwise. Let's Encrypt validates in seconds; two minutes leaves room for
/// a slow CA without letting `berth issue` hang.
pub const DEFAULT_ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The first wait between order polls; it grows by half each poll, restarting every
/// [`POLL_WINDOW`] so a poll is never more than a few seconds apart (unless the CA's
/// `Retry-After` says otherwise).
const POLL_INITIAL_DELAY: Duration = Duration::from_millis(250);
const POLL_BACKOFF: f32 = 1.5;
const POLL_WINDOW: Duration = Duration::from_secs(10);

/// RFC 5280 §4.1.2.6 / CA/B BR: a CN is at most 64 characters.
const MAX_COMMON_NAME_LEN: usize = 64;

/// What to order: the names, the key type of the certificate, and how long to wait.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    /// The names of the certificate; the main name becomes the subject CN.
    pub domains: DomainSet,
    /// The certificate's key type; a fresh key is generated for every order.
    pub key_type: KeyType,
    /// The longest the order may take, validation and certificate included.
    pub timeout: Duration,
    /// The certificate this order renews. Named in the order (RFC 9773 `replaces`) when
    /// the CA supports renewal information, which exempts the renewal from some of its
    /// rate limits; ignored otherwise.
    pub replaces: Option<Certificate>,
    /// The certificate profile to request (draft-ietf-acme-profiles); `None` takes the
    /// CA's default. Refused before ordering unless the CA's directory lists it.
    pub profile: Option<String>,
}

impl OrderRequest {
    /// An order for `domains` with an ECDSA P-256 key and [`DEFAULT_ORDER_TIMEOUT`].
    pub fn new(domains: DomainSet) -> Self {
        Self {
            domains,
            key_type: KeyType::default(),
            timeout: DEFAULT_ORDER_TIMEOUT,
            replaces: None,
            profile: None,
        }
    }
}

/// Where a resumable order is recorded once it is placed (see
/// [`Issuer::issue_resumable`]).
pub trait OrderJournal: Send + Sync {
    /// Stores `order`; an error aborts the order before any challenge is answered.
    fn placed(&self, order: PendingOrder) -> SolverFuture<'_>;

    /// Held while an order is placed and recorded, so that an interruption (a crash
    /// between the CA's answer and the record) can leave at most one order unrecorded
    /// however many are placed at once. `None`: no serialisation.
    fn placement_lock(&self) -> Option<&tokio::sync::Mutex<()>> {
        None
    }
}

/// Gets certificates from one account's CA, answering challenges through one [`Solver`].
///
/// [`CertManager`](crate::CertManager) drives issuers for you (storage, renewal,
/// locking); use one directly for a one-off certificate:
///
/// ```no_run
/// use std::sync::Arc;
/// use berth_acme_core::challenge::{Http01Responder, Http01Solver};
/// use berth_acme_core::{AccountConfig, AcmeAccount, Ca, DomainSet, Issuer, KeyType, OrderRequest};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = AccountConfig::new(Ca::letsencrypt_staging());
/// config.agree_tos = true;
/// // `Some(credentials)` only when an account was registered: persist them and pass
/// // them back next time, or every run registers another account.
/// let (account, credentials) = AcmeAccount::load_or_create(&config, None).await?;
/// let responder = Http01Responder::new(); // serve it on :80 (`serve_http01`)
/// let issuer = Issuer::new(account, Arc::new(Http01Solver::new(responder)));
///
/// let mut request = OrderRequest::new(DomainSet::parse(["example.com", "www.example.com"])?);
/// request.key_type = KeyType::Rsa2048;
/// let certificate = issuer.issue(&request).await?;
/// assert!(certificate.covers(&request.domains));
/// println!("{}", certificate.chain_pem()); // the key is `certificate.key_pem()`
/// # drop(credentials); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Issuer {
    account: AcmeAccount,
    solver: Arc<dyn Solver>,
}

impl Issuer {
    /// An issuer ordering with `account` and answering with `solver`.
    pub fn new(account: AcmeAccount, solver: Arc<dyn Solver>) -> Self {
        Self { account, solver }
    }

    /// The account orders are placed with.
    pub fn account(&self) -> &AcmeAccount {
        &self.account
    }

    /// Places the order, naming the replaced certificate when there is one. A CA without
    /// renewal information, or one that refuses the `replaces` field (see
    /// [`refuses_replaces`]), gets the plain order instead, once: `replaces` is an
    /// optimisation, never a reason to fail. The flag says whether the CA accepted
    /// `replaces`.
    async fn new_order(
        &self,
        identifiers: &[Identifier],
        replaces: Option<&Certificate>,
        profile: Option<&str>,
    ) -> Result<(Order, bool), Error> {
        if let Some(profile) = profile {
            let offered = self
                .account
                .inner()
                .profiles()
                .map(|p| (p.name.to_owned(), p.description.to_owned()))
                .collect();
            crate::ca::check_profile(self.account.ca(), &offered, profile)?;
        }
        let new_order = || order_payload(identifiers, profile);
        let plain = new_order();
        if let Some(id) = replaces.map(certificate_id).transpose()?.flatten() {
            let named = new_order().replaces(id);
            match retry_bad_nonce!(self.account.inner().new_order(&named)) {
                Ok(order) => {
                    // Accepted as a replacement: exempt from some of the CA's rate limits
                    // (RFC 9773 §5).
                    tracing::info!(ca = %self.account.ca().name(), order = %order.url(), "order accepted as the renewal of the stored certificate (ARI replaces)");
                    return Ok((order, true));
                }
                Err(instant_acme::Error::Unsupported(_)) => {}
                Err(instant_acme::Error::Api(p)) if refuses_replaces(&p) => {
                    tracing::info!(ca = %self.account.ca().name(), problem = %problem(&p), "the CA refused `replaces` for this renewal; ordering once without it (not exempt from rate limits)");
                }
                Err(e) => return Err(self.account.error("placing an order", e)),
            }
        }
        retry_bad_nonce!(self.account.inner().new_order(&plain))
            .map(|order| (order, false))
            .map_err(|e| self.account.error("placing an order", e))
    }

    /// Orders a certificate for `request.domains` and waits for it.
    ///
    /// The challenge/name combination is checked before any request. Every challenge
    /// response that was presented is withdrawn again whatever the outcome. The
    /// certificate returned has been checked to match its fresh key and to cover every
    /// requested name.
    pub async fn issue(&self, request: &OrderRequest) -> Result<Certificate, Error> {
        self.issue_resumable(request, None, None).await
    }

    /// Like [`issue`](Self::issue), but resumable: a placed order (its URL and
    /// certificate key) is handed to `journal` before any challenge is answered, and
    /// `resume` — such an order from an earlier, interrupted run — is picked up where it
    /// stands instead of placing a new one. A resumed order the CA no longer has, or
    /// has marked invalid, is replaced by a new order.
    pub async fn issue_resumable(
        &self,
        request: &OrderRequest,
        resume: Option<PendingOrder>,
        journal: Option<&dyn OrderJournal>,
    ) -> Result<Certificate, Error> {
        let kind = self.solver.kind();
        kind.check(&request.domains)?;
        let domains = &request.domains;
        let started = Instant::now();

        let (mut order, key_pem, csr) = match self.resume(domains, resume).await {
            Some(resumed) => resumed,
            None => self.place(request, journal).await?,
        };

        let mut guard = CleanupGuard {
            solver: Arc::clone(&self.solver),
            presented: Vec::new(),
        };
        let outcome = self
            .validate_and_finalize(
                &mut order,
                kind,
                &csr,
                &mut guard.presented,
                started,
                request,
            )
            .await;
        let presented = std::mem::take(&mut guard.presented);
        drop(guard);
        cleanup(self.solver.as_ref(), &presented).await;
        let chain = outcome?;

        let certificate = Certificate::from_pem(&chain, key_pem)?;
        if !certificate.covers(domains) {
            return Err(Error::invalid_certificate(
                Some(domains.main().to_string()),
                format!(
                    "the CA issued a certificate for {} instead of {domains}",
                    certificate.info().domains
                ),
            ));
        }
        tracing::info!(
            ca = %self.account.ca().name(),
            domains = %domains,
            serial = %certificate.info().serial_hex,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "order finalized; certificate downloaded and verified"
        );
        Ok(certificate)
    }

    /// Places a new order for `request` with a fresh key, recorded in `journal` before
    /// anything else happens; returns it with the key and the CSR to finalize with.
    async fn place(
        &self,
        request: &OrderRequest,
        journal: Option<&dyn OrderJournal>,
    ) -> Result<(Order, Secret, Vec<u8>), Error> {
        let domains = &request.domains;
        // A fresh key per order (never reuse a key across renewals); RSA generation is
        // CPU-bound, so it runs off the async workers.
        let key_type = request.key_type;
        let (key, key_pem) = tokio::task::spawn_blocking(move || key_type.generate())
            .await
            .map_err(Error::key_generation)??;
        let csr = csr_der(domains, &key)?;
        drop(key);
        let identifiers = domains.names().iter().map(identifier).collect::<Vec<_>>();
        let _placing = match journal.and_then(OrderJournal::placement_lock) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let (order, replaces_accepted) = self
            .new_order(
                &identifiers,
                request.replaces.as_ref(),
                request.profile.as_deref(),
            )
            .await?;
        if let Some(journal) = journal {
            // Stored before any challenge is answered: an order that cannot be resumed
            // after a crash is not worth answering.
            journal
                .placed(PendingOrder {
                    ca: self.account.ca().directory().to_owned(),
                    url: order.url().to_owned(),
                    key_pem: key_pem.clone(),
                    key_type,
                    placed_at: SystemTime::now(),
                    replaces_accepted,
                })
                .await?;
        }
        // Logged once recorded: an order in the log is one a restart resumes.
        tracing::info!(
            ca = %self.account.ca().name(),
            domains = %domains,
            challenge = %self.solver.kind(),
            order = %order.url(),
            "placed order"
        );
        Ok((order, key_pem, csr))
    }

    /// Loads an interrupted order by its URL; `None` (log says why) when a new order
    /// has to be placed instead.
    async fn resume(
        &self,
        domains: &DomainSet,
        resume: Option<PendingOrder>,
    ) -> Option<(Order, Secret, Vec<u8>)> {
        let pending = resume?;
        let ca = self.account.ca().name();
        let key = match pending.key_type.load(&pending.key_pem) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(ca = %ca, domains = %domains, error = %e, "the stored order's key does not load; placing a new order");
                return None;
            }
        };
        let csr = csr_der(domains, &key).ok()?;
        let mut order = match retry_bad_nonce!(self.account.inner().order(pending.url.clone())) {
            Ok(order) => order,
            Err(e) => {
                tracing::warn!(ca = %ca, domains = %domains, order = %pending.url, error = %e, "could not load the interrupted order; placing a new one");
                return None;
            }
        };
        let status = order.state().status;
        if status == OrderStatus::Invalid {
            // Most often the CA validated while this process was down (a crash after
            // telling it to validate): that cost an order no client can save.
            tracing::warn!(ca = %ca, domains = %domains, order = %pending.url, "the interrupted order is invalid (expired, or validated while berth was down); placing a new one");
            return None;
        }
        tracing::info!(ca = %ca, domains = %domains, order = %pending.url, status = ?status, "resuming the interrupted order");
        Some((order, pending.key_pem, csr))
    }

    async fn validate_and_finalize(
        &self,
        order: &mut Order,
        kind: ChallengeKind,
        csr: &[u8],
        presented: &mut Vec<PendingChallenge>,
        started: Instant,
        request: &OrderRequest,
    ) -> Result<String, Error> {
        // A resumed order may be past validation: finalized (processing) or done.
        if matches!(
            order.state().status,
            OrderStatus::Processing | OrderStatus::Valid
        ) {
            return self
                .certificate(
                    order,
                    started,
                    request,
                    "the resumed order has no certificate",
                )
                .await;
        }
        // Every response is presented first and made visible (DNS propagation) before
        // the CA is told to validate any of them: a wildcard and its apex share one TXT
        // name, and one propagation wait covers all names.
        self.present_and_ready(order, &request.domains, kind, presented, false)
            .await?;
        self.solver.wait_visible(presented).await?;
        self.present_and_ready(order, &request.domains, kind, presented, true)
            .await?;

        match self.poll(order, Phase::Ready, started, request).await? {
            Polled::Ready => {}
            Polled::Invalid(order_problem) => {
                return Err(self.explain_invalid(order, kind, order_problem).await);
            }
            Polled::Certificate(_) => {}
        }

        retry_bad_nonce!(order.finalize_csr(csr))
            .map_err(|e| self.account.error("finalizing the order", e))?;
        self.certificate(
            order,
            started,
            request,
            "the order became invalid after finalization",
        )
        .await
    }

    /// Waits for a finalized order's certificate chain; `missing` says why there is none.
    async fn certificate(
        &self,
        order: &mut Order,
        started: Instant,
        request: &OrderRequest,
        missing: &str,
    ) -> Result<String, Error> {
        match self
            .poll(order, Phase::Certificate, started, request)
            .await?
        {
            Polled::Certificate(chain) => Ok(chain),
            Polled::Ready | Polled::Invalid(_) => Err(Error::AcmeProtocol {
                ca: self.account.ca().to_string(),
                action: "downloading the certificate",
                reason: missing.to_owned(),
            }),
        }
    }

    /// Presents a response for every pending authorization and, with `set_ready`, tells
    /// the CA to validate it (RFC 8555 §7.5.1). Authorizations the CA already holds as
    /// valid (reused from an earlier order) need nothing; a response is presented once.
    async fn present_and_ready(
        &self,
        order: &mut Order,
        domains: &DomainSet,
        kind: ChallengeKind,
        presented: &mut Vec<PendingChallenge>,
        set_ready: bool,
    ) -> Result<(), Error> {
        let mut ready: HashSet<String> = HashSet::new();
        // instant-acme's authorization stream moves past a failed fetch, so a `badNonce`
        // repeats the whole pass; what an earlier pass finished is skipped.
        let pass = Pass {
            domains,
            kind,
            set_ready,
        };
        retry_bad_nonce!(self.present_pass(order, &pass, presented, &mut ready)).map_err(
            |e| match e {
                PassError::Ca { action, error } => self.account.error(action, error),
                PassError::Refused(e) => e,
            },
        )
    }

    /// One pass of [`Self::present_and_ready`] over the order's authorizations; `ready`
    /// holds the authorizations whose validation was started.
    async fn present_pass(
        &self,
        order: &mut Order,
        pass: &Pass<'_>,
        presented: &mut Vec<PendingChallenge>,
        ready: &mut HashSet<String>,
    ) -> Result<(), PassError> {
        let ca = self.account.ca().to_string();
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next.map_err(|error| PassError::Ca {
                action: "fetching an authorization",
                error,
            })?;
            let url = authz.url().to_owned();
            if ready.contains(&url) {
                continue;
            }
            let identifier = authz.identifier().to_string();
            // Before anything is published for it: a name nobody asked for is never
            // answered, whatever its status.
            let name = requested_name(&ca, pass.domains, &identifier)?;
            if !needs_answer(&ca, &identifier, pass.kind, &authz)? {
                continue;
            }
            let Some(mut challenge) = authz.challenge(challenge_type(pass.kind)) else {
                return Err(PassError::Refused(Error::ChallengeUnavailable {
                    ca: ca.clone(),
                    identifier,
                    challenge: pass.kind,
                }));
            };
            if !presented.iter().any(|p| p.token() == challenge.token) {
                // Recorded before presenting, so a half-done present is withdrawn too.
                presented.push(pending_challenge(name, &challenge));
                if let Some(pending) = presented.last() {
                    self.solver.present(pending).await?;
                    tracing::debug!(identifier = %identifier, challenge = %pass.kind, "presented challenge response");
                }
            }
            if pass.set_ready {
                challenge.set_ready().await.map_err(|error| PassError::Ca {
                    action: "starting validation",
                    error,
                })?;
                ready.insert(url);
            }
        }
        Ok(())
    }

    /// Polls the order until `phase` is reached, honouring the CA's `Retry-After`
    /// (instant-acme's `RetryPolicy` waits for it), until `deadline`.
    async fn poll(
        &self,
        order: &mut Order,
        phase: Phase,
        started: Instant,
        request: &OrderRequest,
    ) -> Result<Polled, Error> {
        let deadline = started + request.timeout;
        let timeout = || Error::OrderTimeout {
            domains: request.domains.to_string(),
            ca: self.account.ca().to_string(),
            waited: started.elapsed(),
        };
        // Bounded: every pass waits at least POLL_INITIAL_DELAY, and the loop ends at
        // `deadline`.
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timeout());
            }
            let policy = RetryPolicy::new()
                .initial_delay(POLL_INITIAL_DELAY)
                .backoff(POLL_BACKOFF)
                .timeout(remaining.min(POLL_WINDOW));
            let polled = retry_bad_nonce!(async {
                match phase {
                    Phase::Ready => order.poll_ready(&policy).await.map(|status| match status {
                        OrderStatus::Invalid => Polled::Invalid(None),
                        _ => Polled::Ready,
                    }),
                    Phase::Certificate => order
                        .poll_certificate(&policy)
                        .await
                        .map(Polled::Certificate),
                }
            });
            match polled {
                Ok(polled) => return Ok(polled),
                Err(instant_acme::Error::Timeout(None)) => continue,
                Err(instant_acme::Error::Timeout(Some(next))) => {
                    // The CA asked to come back later (Retry-After); wait if that is
                    // before the deadline.
                    let next = Instant::from_std(next);
                    if next >= deadline {
                        return Err(timeout());
                    }
                    tokio::time::sleep_until(next).await;
                }
                // A `badNonce` left after the retries is a failed request, not the
                // order's problem document.
                Err(instant_acme::Error::Api(p)) if phase == Phase::Ready && !p.is_bad_nonce() => {
                    return Ok(Polled::Invalid(Some(p)));
                }
                Err(e) => {
                    let action = match phase {
                        Phase::Ready => "validating the order",
                        Phase::Certificate => "issuing the certificate",
                    };
                    return Err(self.account.error(action, e));
                }
            }
        }
    }

    /// The order became invalid: find the authorization that failed and report the CA's
    /// problem document for it, for the failure ledger.
    async fn explain_invalid(
        &self,
        order: &mut Order,
        kind: ChallengeKind,
        order_problem: Option<instant_acme::Problem>,
    ) -> Error {
        let ca = self.account.ca().to_string();
        let mut authorizations = order.authorizations();
        // Bounded by the number of authorizations in the order.
        while let Some(next) = authorizations.next().await {
            let Ok(mut authz) = next else { continue };
            if authz.refresh().await.is_err() || authz.status != AuthorizationStatus::Invalid {
                continue;
            }
            let identifier = authz.identifier().to_string();
            let wanted = challenge_type(kind);
            let failed = authz
                .challenges
                .iter()
                .filter(|c| c.r#type == wanted)
                .chain(authz.challenges.iter())
                .find_map(|c| c.error.as_ref());
            let problem = match (failed, &order_problem) {
                (Some(p), _) | (None, Some(p)) => problem(p),
                (None, None) => AcmeProblem {
                    detail: Some("the authorization became invalid".into()),
                    ..AcmeProblem::default()
                },
            };
            return validation_error(&ca, identifier, kind, problem);
        }
        match order_problem {
            Some(p) => self
                .account
                .error("validating the order", instant_acme::Error::Api(p)),
            None => Error::AcmeProtocol {
                ca,
                action: "validating the order",
                reason: "the order became invalid without an invalid authorization".into(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Certificate,
}

enum Polled {
    Ready,
    Invalid(Option<instant_acme::Problem>),
    Certificate(String),
}

fn validation_error(
    ca: &str,
    identifier: String,
    challenge: ChallengeKind,
    mut problem: AcmeProblem,
) -> Error {
    if problem.identifier.is_none() {
        problem.identifier = Some(identifier.clone());
    }
    if problem.is("rateLimited") {
        return Error::RateLimited {
            ca: ca.to_owned(),
            detail: problem.to_string(),
            retry_after: None,
        };
    }
    Error::Validation {
        ca: ca.to_owned(),
        identifier,
        challenge,
        problem: Box::new(problem),
    }
}

/// Withdraws every presented response; failures are logged, never hide the order's
/// outcome.
async fn cleanup(solver: &dyn Solver, presented: &[PendingChallenge]) {
    for challenge in presented {
        if let Err(e) = solver.cleanup(challenge).await {
            tracing::warn!(identifier = %challenge.identifier(), error = %e, "could not withdraw challenge response");
        }
    }
}

/// Withdraws presented responses if `issue` is cancelled mid-order (its future dropped):
/// the cleanup then runs on a task of its own, since a drop cannot await.
struct CleanupGuard {
    solver: Arc<dyn Solver>,
    presented: Vec<PendingChallenge>,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if self.presented.is_empty() {
            return;
        }
        let presented = std::mem::take(&mut self.presented);
        let solver = Arc::clone(&self.solver);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Owned by the runtime: it runs to completion or ends with it.
            runtime.spawn(async move { cleanup(solver.as_ref(), &presented).await });
        }
    }
}

/// Whether a CA's refusal of a new-order is about its `replaces` field (RFC 9773 §5),
/// so the order is worth placing again without it: `alreadyReplaced`, or Let's Encrypt's
/// "Could not validate ARI 'replaces' field :: requester account did not request the
/// certificate being replaced by this order" (the certificate was ordered by another
/// account, e.g. after moving to a new account) and its other `replaces` checks. A rate
/// limit is never retried.
fn refuses_replaces(problem: &instant_acme::Problem) -> bool {
    let kind = problem.r#type.as_deref().unwrap_or_default();
    if kind.ends_with(":rateLimited") {
        return false;
    }
    if kind == "urn:ietf:params:acme:error:alreadyReplaced" {
        return true;
    }
    let detail = problem.detail.as_deref().unwrap_or_default();
    detail.contains("'replaces'")
        || detail.contains("`replaces`")
        || detail.contains("certificate being replaced")
}

/// The name an authorization is for, if the order asked for it. RFC 8555 §7.1.3: an
/// order's authorizations are for its identifiers; one for any other name (a CA bug, or
/// an order URL that is not ours) is refused before a challenge answer or DNS record is
/// published for it.
fn requested_name(ca: &str, domains: &DomainSet, identifier: &str) -> Result<DomainName, Error> {
    let unrequested = |why: String| Error::AcmeProtocol {
        ca: ca.to_owned(),
        action: "checking an authorization",
        reason: format!(
            "the CA sent an authorization for {identifier:?}, {why}; the order was abandoned before any challenge was answered"
        ),
    };
    let name = DomainName::parse(identifier).map_err(|e| unrequested(e.to_string()))?;
    if domains.names().contains(&name) {
        Ok(name)
    } else {
        Err(unrequested(format!("which was not requested ({domains})")))
    }
}

/// What one pass of [`Issuer::present_and_ready`] works on.
struct Pass<'a> {
    domains: &'a DomainSet,
    kind: ChallengeKind,
    /// Whether to tell the CA to validate, or only to present the responses.
    set_ready: bool,
}

/// Why a pass over the authorizations stopped.
enum PassError {
    /// A request to the CA failed (a `badNonce` among them repeats the pass).
    Ca {
        action: &'static str,
        error: instant_acme::Error,
    },
    /// Something berth refuses, or the solver's failure.
    Refused(Error),
}

impl From<Error> for PassError {
    fn from(e: Error) -> Self {
        Self::Refused(e)
    }
}

impl MaybeBadNonce for PassError {
    fn is_bad_nonce(&self) -> bool {
        matches!(self, Self::Ca { error, .. } if error.is_bad_nonce())
    }
}

/// Whether an authorization still needs a response: pending does, valid (reused from an
/// earlier order) does not, anything else failed and ends the order with its problem.
fn needs_answer(
    ca: &str,
    identifier: &str,
    kind: ChallengeKind,
    authz: &AuthorizationState,
) -> Result<bool, Error> {
    match authz.status {
        AuthorizationStatus::Pending => Ok(true),
        AuthorizationStatus::Valid => Ok(false),
        status => {
            let problem = authz
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref())
                .map(problem)
                .unwrap_or_else(|| AcmeProblem {
                    detail: Some(format!("the authorization is {status:?}")),
                    ..AcmeProblem::default()
                });
            Err(validation_error(ca, identifier.to_owned(), kind, problem))
        }
    }
}

/// The response to publish for `challenge`, answering for `name`.
fn pending_challenge(name: DomainName, challenge: &ChallengeHandle<'_>) -> PendingChallenge {
    let key_authorization = challenge.key_authorization();
    let mut digest = [0; 32];
    digest.copy_from_slice(key_authorization.digest().as_ref());
    PendingChallenge::new(
        name,
        challenge.token.clone(),
        key_authorization.as_str().to_owned(),
        digest,
    )
}

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    }
}

fn identifier(name: &DomainName) -> Identifier {
    match name.as_str().parse::<IpAddr>() {
        Ok(ip) if name.is_ip() => Identifier::Ip(ip),
        _ => Identifier::Dns(name.as_str().to_owned()),
    }
}

/// A CSR (RFC 2986) naming every domain as a SAN (IP addresses as IP SANs, RFC 8738) and
/// the main name as CN when it fits, signed with the certificate's fresh key.
fn csr_der(domains: &DomainSet, key: &KeyPair) -> Result<Vec<u8>, Error> {
    let names: Vec<String> = domains
        .names()
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    let csr_error = |e: rcgen::Error| {
        Error::key_generation(format!("cannot build the certificate signing request: {e}"))
    };
    let mut params = CertificateParams::new(names).map_err(csr_error)?;
    params.distinguished_name = DistinguishedName::new();
    let main = domains.main();
    if !main.is_ip() && main.as_str().len() <= MAX_COMMON_NAME_LEN {
        params
            .distinguished_name
            .push(DnType::CommonName, main.as_str());
    }
    let csr = params.serialize_request(key).map_err(csr_error)?;
    Ok(csr.der().to_vec())
}

/// The new-order payload (RFC 8555 §7.4), with the profile when one is asked for
/// (draft-ietf-acme-profiles §4).
fn order_payload<'a>(identifiers: &'a [Identifier], profile: Option<&'a str>) -> NewOrder<'a> {
    let order = NewOrder::new(identifiers);
    match profile {
        Some(profile) => order.profile(profile),
        None => order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};

    #[test]
    fn csr_names_every_domain_with_ips_as_ip_sans_and_the_main_name_as_cn() {
        let domains = DomainSet::parse(["example.com", "www.example.com", "127.0.0.1"]).unwrap();
        let (key, _) = KeyType::Ec256.generate().unwrap();
        let der = csr_der(&domains, &key).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        let info = &csr.certification_request_info;
        let cn = info
            .subject
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "example.com");
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for ext in csr.requested_extensions().unwrap() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                        _ => {}
                    }
                }
            }
        }
        assert_eq!(dns, ["example.com", "www.example.com"]);
        assert_eq!(ips, [vec![127, 0, 0, 1]]);
    }

    #[test]
    fn ip_main_name_and_long_names_get_no_cn() {
        let long = format!("{}.example.com", "a".repeat(60));
        for names in [vec!["127.0.0.1".to_owned()], vec![long]] {
            let domains = DomainSet::parse(&names).unwrap();
            let (key, _) = KeyType::Ec256.generate().unwrap();
            let der = csr_der(&domains, &key).unwrap();
            let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
            assert!(
                csr.certification_request_info
                    .subject
                    .iter_common_name()
                    .next()
                    .is_none(),
                "{names:?}"
            );
        }
    }

    #[test]
    fn identifiers_are_ip_or_dns() {
        assert_eq!(
            identifier(&DomainName::parse("::1").unwrap()),
            Identifier::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            identifier(&DomainName::parse("*.example.com").unwrap()),
            Identifier::Dns("*.example.com".into())
        );
    }

    /// New-order refusals as Let's Encrypt (Boulder) and other CAs send them, recorded.
    fn recorded_problem(json: &str) -> instant_acme::Problem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_refused_replaces_is_retried_without_it_and_a_rate_limit_is_not() {
        let retried = [
            // Let's Encrypt, the certificate was ordered by another account (lego #2789).
            r#"{"type": "urn:ietf:params:acme:error:unauthorized", "detail": "Could not validate ARI 'replaces' field :: requester account did not request the certificate being replaced by this order", "status": 403}"#,
            // Let's Encrypt, a second renewal of the same certificate.
            r#"{"type": "urn:ietf:params:acme:error:alreadyReplaced", "detail": "While validating order as a replacement an error occurred :: cannot indicate an order replaces certificate with serial \"0536ea44fb503a297fde43f855c28b9ae255\", which already has a replacement order", "status": 409}"#,
            // Let's Encrypt, names changed completely.
            r#"{"type": "urn:ietf:params:acme:error:malformed", "detail": "Could not validate ARI 'replaces' field :: identifiers in this order do not match any identifiers in the certificate being replaced", "status": 400}"#,
        ];
        for json in retried {
            assert!(refuses_replaces(&recorded_problem(json)), "{json}");
        }
        let not_retried = [
            r#"{"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-11-30 00:00:00 UTC: see https://letsencrypt.org/docs/rate-limits/#new-certificates-per-exact-set-of-identifiers", "status": 429}"#,
            r#"{"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": "Error creating new order :: Cannot issue for \"example.invalid\": Domain name does not end with a valid public suffix (TLD)", "status": 400}"#,
            r#"{"type": "urn:ietf:params:acme:error:unauthorized", "detail": "Account is not valid, has status \"deactivated\"", "status": 403}"#,
        ];
        for json in not_retried {
            assert!(!refuses_replaces(&recorded_problem(json)), "{json}");
        }
    }

    #[test]
    fn an_authorization_for_a_name_not_requested_is_refused_naming_it() {
        let domains = DomainSet::parse(["*.example.com", "example.com", "192.0.2.1"]).unwrap();
        // What instant-acme's AuthorizedIdentifier prints: a wildcard authz (`"wildcard":
        // true` on `example.com`) as `*.example.com`; a CA may change case.
        for ok in ["*.example.com", "Example.COM", "192.0.2.1"] {
            assert!(requested_name("ca", &domains, ok).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example.net",
            "www.example.com",
            "192.0.2.2",
            "not a name",
        ] {
            let err = requested_name("https://ca.test/dir", &domains, bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(bad) && err.contains("abandoned before any challenge"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_new_order_payload_names_the_profile_only_when_one_is_asked_for() {
        let identifiers = [Identifier::Dns("example.com".into())];
        let with = serde_json::to_value(order_payload(&identifiers, Some("shortlived"))).unwrap();
        assert_eq!(with["profile"], "shortlived", "{with}");
        let without = serde_json::to_value(order_payload(&identifiers, None)).unwrap();
        assert!(without.get("profile").is_none(), "{without}");
    }
}
