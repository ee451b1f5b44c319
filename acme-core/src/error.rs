//! The crate's error type.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use berth_certs::CertError;

use crate::challenge::{ChallengeError, ChallengeKind};
use crate::domain::DomainError;

/// Everything that can go wrong getting, storing or loading a certificate.
///
/// Variants carry what a caller needs to act on (path, name, CA URL, retry time) and
/// never secret material (keys, EAB HMACs, key authorizations).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A domain name or set was refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A challenge type, or its combination with the names, was refused.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// Reading or writing `acme.json`, the state file or an export failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A key could not be generated or loaded, or a certificate could not be parsed or
    /// does not fit its key or names.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The CA answered a request with an RFC 7807 problem document (RFC 8555 §6.7) that
    /// has no more specific variant.
    #[error("the CA {ca} refused {action}: {problem}")]
    Acme {
        /// The CA (name and directory URL).
        ca: String,
        /// What berth asked for ("creating an account", "placing an order", ...).
        action: &'static str,
        /// The CA's problem document.
        problem: Box<AcmeProblem>,
    },
    /// The CA's answer could not be understood (not a problem document, missing data).
    #[error("unexpected answer from the CA {ca} while {action}: {reason}")]
    AcmeProtocol {
        /// The CA (name and directory URL).
        ca: String,
        /// What berth was doing.
        action: &'static str,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The CA tried to validate a name and failed: the authorization is invalid.
    #[error(
        "the CA {ca} could not validate {identifier} with {challenge}: {}; {}",
        problem.without_identifier(),
        validation_hint(*challenge, identifier)
    )]
    Validation {
        /// The CA (name and directory URL).
        ca: String,
        /// The name (or IP address) that failed, as the CA reported it.
        identifier: String,
        /// The challenge that was tried.
        challenge: ChallengeKind,
        /// The CA's problem document (`urn:ietf:params:acme:error:connection`, ...), for
        /// the failure ledger.
        problem: Box<AcmeProblem>,
    },
    /// A domain set asks for a challenge no solver was configured for.
    #[error(
        "no responder is configured for {challenge}; give the manager a solver for it (e.g. a DNS provider for dns-01) or choose another challenge"
    )]
    NoSolver {
        /// The challenge.
        challenge: ChallengeKind,
    },
    /// berth's own rate budget refused the order before it reached the CA.
    #[error(transparent)]
    Budget(#[from] Box<crate::budget::BudgetExceeded>),
    /// An earlier attempt for these names failed and the backoff window has not passed;
    /// no request was sent (the failure ledger survives restarts).
    #[error(
        "not asking {ca} for {domains} before {}: the last attempt failed ({last_error}); fix the cause and wait, or force the order",
        crate::timestamp::rfc3339(*until)
    )]
    BackingOff {
        /// The domain set.
        domains: String,
        /// The CA directory URL.
        ca: String,
        /// When the next attempt is allowed.
        until: SystemTime,
        /// The last failure, as recorded in the ledger.
        last_error: String,
    },
    /// Another process holds the order lock for these names (a `berth issue` beside a
    /// `berth run`, or another replica); it will store the certificate.
    #[error(
        "{domains} is being ordered by another berth using {store}; wait for it to finish (the certificate appears in the store)"
    )]
    OrderInProgress {
        /// The domain set.
        domains: String,
        /// The store whose lock is held.
        store: String,
    },
    /// The CA refused because a rate limit was hit (`urn:ietf:params:acme:error:rateLimited`,
    /// RFC 8555 §6.7).
    #[error(
        "the CA {ca} rate-limited the request: {detail}; {}",
        match retry_after { Some(at) => format!("retry after {}", crate::timestamp::rfc3339(*at)), None => "wait before retrying (see the CA's rate-limit documentation)".to_owned() }
    )]
    RateLimited {
        /// The CA (name and directory URL).
        ca: String,
        /// The CA's explanation (which limit, for which names).
        detail: String,
        /// When the CA said to retry (`Retry-After`), if it said.
        retry_after: Option<SystemTime>,
    },
    /// An order did not become ready (or its certificate did not arrive) in time.
    #[error(
        "the order for {domains} at the CA {ca} was not finished after {}s; the CA may be slow or still validating, try again later or allow a longer order timeout",
        waited.as_secs()
    )]
    OrderTimeout {
        /// The names of the order.
        domains: String,
        /// The CA (name and directory URL).
        ca: String,
        /// How long berth waited.
        waited: Duration,
    },
    /// Creating an account needs agreement to the CA's terms of service.
    #[error(
        "the CA {ca} requires agreeing to its terms of service at {tos_url}; read them and agree to them in the account settings"
    )]
    TermsNotAgreed {
        /// The CA (name and directory URL).
        ca: String,
        /// The terms of service URL from the CA's directory (`meta.termsOfService`).
        tos_url: String,
    },
    /// The CA only creates accounts bound to an external account (RFC 8555 §7.3.4).
    #[error(
        "the CA {ca} requires External Account Binding; give the account the key id and HMAC key from the CA's account dashboard"
    )]
    EabRequired {
        /// The CA (name and directory URL).
        ca: String,
    },
    /// The External Account Binding key could not be used.
    #[error(
        "the EAB HMAC key for key id {kid:?} is unusable: {reason}; copy it again from the CA's account dashboard"
    )]
    InvalidEab {
        /// The EAB key id.
        kid: String,
        /// What is wrong with it (never the key itself).
        reason: &'static str,
    },
    /// A certificate profile the CA does not offer (draft-ietf-acme-profiles): refused
    /// before any order is placed.
    #[error("{}", crate::ca::profile_refusal(ca, profile, offered))]
    ProfileUnavailable {
        /// The CA (name and directory).
        ca: String,
        /// The profile asked for.
        profile: String,
        /// The profiles the CA lists (name and description); empty when it lists none.
        offered: Vec<(String, String)>,
    },
    /// The CA could not be reached (DNS, connection, timeout, not an ACME directory).
    #[error(
        "cannot reach the CA {ca}: {reason}; check the CA's directory URL, DNS and outbound HTTPS"
    )]
    CaUnreachable {
        /// The CA (name and directory URL).
        ca: String,
        /// What went wrong.
        reason: String,
    },
    /// The CA's HTTPS certificate is not trusted.
    #[error(
        "the TLS certificate of the CA {ca} is not trusted ({reason}); for a private CA (step-ca, Pebble) add its root certificate to the account's CA roots"
    )]
    CaUntrusted {
        /// The CA (name and directory URL).
        ca: String,
        /// What the TLS library said.
        reason: String,
    },
    /// The trust roots given for the CA ([`AccountConfig::ca_roots_pem`]) are unusable.
    ///
    /// [`AccountConfig::ca_roots_pem`]: crate::AccountConfig::ca_roots_pem
    #[error(
        "the CA root certificates are unusable: {reason}; give them as PEM, the CA's root certificate"
    )]
    InvalidCaRoots {
        /// What is wrong.
        reason: String,
    },
    /// The contact email is not an email address.
    #[error("contact email {email:?} is not an address; give one such as admin@example.com")]
    InvalidEmail {
        /// The value given.
        email: String,
    },
    /// Stored account credentials could not be used.
    #[error(
        "the stored ACME account credentials are unusable: {reason}; remove the account from berth's state file to register a new one"
    )]
    InvalidAccountCredentials {
        /// What is wrong (never key material).
        reason: String,
    },
    /// The CA did not offer the requested challenge for a name.
    #[error(
        "the CA {ca} offers no {challenge} challenge for {identifier}; choose another challenge"
    )]
    ChallengeUnavailable {
        /// The CA (name and directory URL).
        ca: String,
        /// The name.
        identifier: String,
        /// The challenge asked for.
        challenge: ChallengeKind,
    },
    /// DNS-01 could not publish, check or remove a record.
    #[error(transparent)]
    Dns(#[from] crate::challenge::dns01::DnsError),
    /// A challenge solver could not publish or withdraw its response.
    #[error("could not {action} the {challenge} response for {identifier}: {reason}")]
    ChallengeSolver {
        /// "publish" or "withdraw".
        action: &'static str,
        /// The challenge.
        challenge: ChallengeKind,
        /// The name.
        identifier: String,
        /// What went wrong (never the key authorization).
        reason: String,
    },
    /// A standalone challenge listener could not bind its address.
    #[error("cannot listen on {addr} for {challenge}: {reason}; {}", listen_hint(*challenge, *kind))]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The challenge the listener answers.
        challenge: ChallengeKind,
        /// The OS error kind.
        kind: std::io::ErrorKind,
        /// The OS error, in words.
        reason: String,
    },
}

impl Error {
    pub(crate) fn key_generation(err: impl std::fmt::Display) -> Self {
        Self::Cert(CertError::KeyGeneration {
            reason: err.to_string(),
        })
    }

    /// A certificate that cannot be used; `context` names it (main name or file).
    pub(crate) fn invalid_certificate(context: Option<String>, reason: String) -> Self {
        Self::Cert(CertError::InvalidCertificate { context, reason })
    }

    /// The configuration input whose change fixes this error, when one does: what a
    /// program embedding the crate names in its own terms (a flag, a form field).
    ///
    /// ```
    /// use berth_acme_core::{Error, Setting};
    ///
    /// let error = Error::TermsNotAgreed {
    ///     ca: "Let's Encrypt".into(),
    ///     tos_url: "https://letsencrypt.org/repository/".into(),
    /// };
    /// assert_eq!(error.setting(), Some(Setting::AgreeTos));
    /// ```
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Self::Domain(e) => domain_setting(e),
            Self::Challenge(e) => e.setting(),
            Self::Store(e) => e.setting(),
            Self::Dns(e) => e.setting(),
            Self::NoSolver { .. } | Self::ChallengeUnavailable { .. } => {
                Some(Setting::Challenge(None))
            }
            Self::BackingOff { .. } => Some(Setting::Force),
            Self::TermsNotAgreed { .. } => Some(Setting::AgreeTos),
            Self::EabRequired { .. } | Self::InvalidEab { .. } => Some(Setting::Eab),
            Self::CaUnreachable { .. } => Some(Setting::Ca),
            Self::CaUntrusted { .. } | Self::InvalidCaRoots { .. } => Some(Setting::CaRoots),
            Self::InvalidEmail { .. } => Some(Setting::Email),
            Self::Listen {
                challenge,
                kind: std::io::ErrorKind::PermissionDenied,
                ..
            } => Some(Setting::ListenAddr(*challenge)),
            _ => None,
        }
    }
}

/// A configuration input of berth's libraries that an error says to change: the
/// structured form of the advice at the end of an error's message, so that a program
/// embedding the crates can name its own option for it (the `berth` binary names its
/// flags). Errors give theirs through `setting()` ([`Error::setting`],
/// [`StoreError::setting`](crate::store::StoreError::setting),
/// [`DnsError::setting`](crate::challenge::dns01::DnsError::setting),
/// [`ChallengeError::setting`]); [`Setting::of`] finds it anywhere in a cause chain.
///
/// ```
/// use berth_acme_core::{ChallengeKind, DomainSet, Setting};
///
/// let wildcard = DomainSet::parse(["*.example.com"])?;
/// let refused = ChallengeKind::Http01.check(&wildcard).unwrap_err();
/// let hint = match Setting::of(&refused) {
///     Some(Setting::Challenge(Some(kind))) => format!("choose {kind} in the challenge menu"),
///     _ => String::new(),
/// };
/// assert_eq!(hint, "choose dns-01 in the challenge menu");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`AccountConfig::agree_tos`](crate::AccountConfig::agree_tos): agreement to the
    /// CA's terms of service.
    AgreeTos,
    /// [`AccountConfig::eab`](crate::AccountConfig::eab): the External Account Binding
    /// key id and HMAC key.
    Eab,
    /// [`AccountConfig::ca`](crate::AccountConfig::ca): the CA's directory URL.
    Ca,
    /// [`AccountConfig::ca_roots_pem`](crate::AccountConfig::ca_roots_pem): the root
    /// certificates of a private CA.
    CaRoots,
    /// [`AccountConfig::email`](crate::AccountConfig::email): the contact address.
    Email,
    /// [`ManagedCert::challenge`](crate::ManagedCert::challenge): the challenge type,
    /// with the one that would work when the error knows it.
    Challenge(Option<ChallengeKind>),
    /// The `force` argument of [`CertManager::ensure`](crate::CertManager::ensure):
    /// order inside the backoff window after a failure.
    Force,
    /// The names of a [`DomainSet`](crate::DomainSet).
    Domains,
    /// The address a standalone listener for the challenge binds
    /// ([`serve_http01`](crate::challenge::serve_http01),
    /// [`serve_tls_alpn01`](crate::challenge::serve_tls_alpn01)).
    ListenAddr(ChallengeKind),
    /// [`Dns01Config::zone`](crate::challenge::dns01::Dns01Config::zone): the zone the
    /// TXT record goes into (detected when unset).
    DnsZone,
    /// [`Dns01Config::resolver`](crate::challenge::dns01::Dns01Config::resolver): the
    /// server DNS-01 lookups ask.
    DnsResolver,
    /// [`Dns01Config::propagation_servers`](crate::challenge::dns01::Dns01Config::propagation_servers):
    /// the servers checked for the record before the CA is told to look.
    DnsPropagationServers,
    /// [`Dns01Config::propagation_timeout`](crate::challenge::dns01::Dns01Config::propagation_timeout).
    DnsPropagationTimeout,
    /// The name given to [`TsigKey::parse`](crate::challenge::dns01::TsigKey::parse).
    TsigKeyName,
    /// The key file given to [`TsigKey::parse`](crate::challenge::dns01::TsigKey::parse).
    TsigSecret,
    /// The path of a [`FileStore`](crate::store::FileStore): a file in a directory berth
    /// can write, not a mount point of its own.
    StorePath,
    /// The name looked up among the stored certificates.
    StoredName,
    /// The password of a shared store (berth-stores' `RedisOptions::password`,
    /// `EtcdOptions::user`).
    StorePassword,
    /// The client certificate and key for a shared store that checks its clients
    /// (berth-stores' `identity` options).
    StoreIdentity,
    /// The log filter: the details are logged at debug level, under the crate's target
    /// (`berth_acme_core`).
    DebugLog,
}

impl Setting {
    /// The setting of the first error in `error`'s cause chain (itself, then its
    /// sources) that names one.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut next = Some(error);
        while let Some(error) = next {
            let found = if let Some(e) = error.downcast_ref::<Error>() {
                e.setting()
            } else if let Some(e) = error.downcast_ref::<ChallengeError>() {
                e.setting()
            } else if let Some(e) = error.downcast_ref::<crate::store::StoreError>() {
                e.setting()
            } else if let Some(e) = error.downcast_ref::<crate::challenge::dns01::DnsError>() {
                e.setting()
            } else if let Some(e) = error.downcast_ref::<DomainError>() {
                domain_setting(e)
            } else {
                None
            };
            if found.is_some() {
                return found;
            }
            next = error.source();
        }
        None
    }
}

fn domain_setting(error: &DomainError) -> Option<Setting> {
    matches!(error, DomainError::NoNames).then_some(Setting::Domains)
}

/// An RFC 7807 problem document from an ACME CA (RFC 8555 §6.7): what the CA said went
/// wrong, kept whole so the failure ledger can record it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcmeProblem {
    /// The problem type, e.g. `urn:ietf:params:acme:error:connection`.
    pub problem_type: Option<String>,
    /// The CA's explanation.
    pub detail: Option<String>,
    /// The HTTP status the CA answered with.
    pub status: Option<u16>,
    /// The identifier the problem is about (set on subproblems, RFC 8555 §6.7.1, and on
    /// validation failures).
    pub identifier: Option<String>,
    /// Per-identifier problems of a compound error.
    pub subproblems: Vec<AcmeProblem>,
}

impl AcmeProblem {
    /// The problem type without the `urn:ietf:params:acme:error:` prefix (`connection`).
    pub fn short_type(&self) -> Option<&str> {
        self.problem_type
            .as_deref()
            .map(|t| t.strip_prefix(ACME_ERROR_PREFIX).unwrap_or(t))
    }

    /// The problem as text without its identifier prefix, for messages that already
    /// name the identifier.
    fn without_identifier(&self) -> String {
        Self {
            identifier: None,
            ..self.clone()
        }
        .to_string()
    }

    /// Whether the problem (or one of its subproblems) has the ACME error type `short`
    /// (`rateLimited`, `badNonce`, ...).
    pub fn is(&self, short: &str) -> bool {
        self.short_type() == Some(short) || self.subproblems.iter().any(|p| p.is(short))
    }
}

/// RFC 8555 §6.7: ACME error types live under this URN.
pub(crate) const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

impl fmt::Display for AcmeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(identifier) = &self.identifier {
            write!(f, "{identifier}: ")?;
        }
        f.write_str(self.detail.as_deref().unwrap_or("no detail given"))?;
        if let Some(problem_type) = &self.problem_type {
            write!(f, " ({problem_type})")?;
        }
        for (i, sub) in self.subproblems.iter().enumerate() {
            f.write_str(if i == 0 { " [" } else { "; " })?;
            write!(f, "{sub}")?;
            if i + 1 == self.subproblems.len() {
                f.write_str("]")?;
            }
        }
        Ok(())
    }
}

fn validation_hint(challenge: ChallengeKind, identifier: &str) -> String {
    match challenge {
        ChallengeKind::Http01 => format!(
            "the CA fetches http://{identifier}/.well-known/acme-challenge/<token>: check that the name resolves to this host and that port 80 reaches berth"
        ),
        ChallengeKind::TlsAlpn01 => format!(
            "the CA connects to {identifier}:443 asking for acme-tls/1: check that the name resolves to this host and that port 443 reaches berth directly (no TLS-terminating load balancer in front)"
        ),
        ChallengeKind::Dns01 => format!(
            "check that the TXT record _acme-challenge.{} is published and visible from the internet (delegation, propagation)",
            identifier.strip_prefix("*.").unwrap_or(identifier)
        ),
    }
}

fn listen_hint(challenge: ChallengeKind, kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind;
    match (kind, challenge) {
        (ErrorKind::PermissionDenied, ChallengeKind::TlsAlpn01) => {
            "run as root, grant CAP_NET_BIND_SERVICE, or listen on a port that port 443 is forwarded to"
        }
        (ErrorKind::PermissionDenied, _) => {
            "run as root, grant CAP_NET_BIND_SERVICE, or listen on a port the CA reaches through a redirect"
        }
        (ErrorKind::AddrInUse, _) => {
            "another server holds it; stop it, or let that server answer the challenge (a proxy serving the port can answer challenges itself)"
        }
        (ErrorKind::AddrNotAvailable, _) => {
            "this host has no such address; use 0.0.0.0 or an address of one of its interfaces"
        }
        _ => "check the address",
    }
}
