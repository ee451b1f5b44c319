//! The crate's error type.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

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
    /// A private key could not be generated or encoded.
    #[error("could not generate a key: {reason}")]
    KeyGeneration {
        /// What the key library said.
        reason: String,
    },
    /// A private key could not be loaded (wrong format, unsupported algorithm).
    #[error("invalid private key: {reason}")]
    InvalidKey {
        /// What was wrong, never the key itself.
        reason: String,
    },
    /// A certificate (chain) could not be parsed or does not fit its key or names.
    #[error("invalid certificate{}: {reason}", context.as_deref().map(|c| format!(" for {c}")).unwrap_or_default())]
    InvalidCertificate {
        /// Which certificate (main name or file), when known.
        context: Option<String>,
        /// What is wrong.
        reason: String,
    },
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
        "no responder is configured for {challenge}; configure one (e.g. a DNS provider for dns-01) or choose another --challenge"
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
        "not asking {ca} for {domains} before {}: the last attempt failed ({last_error}); fix the cause and wait, or pass --force",
        format_time(*until)
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
        match retry_after { Some(at) => format!("retry after {}", format_time(*at)), None => "wait before retrying (see the CA's rate-limit documentation)".to_owned() }
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
        "the CA {ca} requires agreeing to its terms of service at {tos_url}; read them and pass --agree-tos"
    )]
    TermsNotAgreed {
        /// The CA (name and directory URL).
        ca: String,
        /// The terms of service URL from the CA's directory (`meta.termsOfService`).
        tos_url: String,
    },
    /// The CA only creates accounts bound to an external account (RFC 8555 §7.3.4).
    #[error(
        "the CA {ca} requires External Account Binding; pass --eab-kid and --eab-hmac-file with the key id and HMAC key from the CA's account dashboard"
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
    #[error("cannot reach the CA {ca}: {reason}; check the --ca URL, DNS and outbound HTTPS")]
    CaUnreachable {
        /// The CA (name and directory URL).
        ca: String,
        /// What went wrong.
        reason: String,
    },
    /// The CA's HTTPS certificate is not trusted.
    #[error(
        "the TLS certificate of the CA {ca} is not trusted ({reason}); for a private CA (step-ca, Pebble) pass its root certificate with --ca-root"
    )]
    CaUntrusted {
        /// The CA (name and directory URL).
        ca: String,
        /// What the TLS library said.
        reason: String,
    },
    /// The trust roots given for the CA (`--ca-root`) are unusable.
    #[error(
        "the CA root certificates (--ca-root) are unusable: {reason}; pass a PEM file with the CA's root certificate"
    )]
    InvalidCaRoots {
        /// What is wrong.
        reason: String,
    },
    /// The contact email is not an email address.
    #[error(
        "contact email {email:?} is not an address; pass --email with an address such as admin@example.com"
    )]
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
        "the CA {ca} offers no {challenge} challenge for {identifier}; choose another one with --challenge"
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
        Self::KeyGeneration {
            reason: err.to_string(),
        }
    }
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
            "run as root, grant CAP_NET_BIND_SERVICE, or use --tls-addr with a port that port 443 is forwarded to"
        }
        (ErrorKind::PermissionDenied, _) => {
            "run as root, grant CAP_NET_BIND_SERVICE, or use --http-addr with a port the CA reaches through a redirect"
        }
        (ErrorKind::AddrInUse, _) => {
            "another server holds it; stop it, or let that server answer the challenge (berth run serves challenges itself)"
        }
        (ErrorKind::AddrNotAvailable, _) => {
            "this host has no such address; use 0.0.0.0 or an address of one of its interfaces"
        }
        _ => "check the address",
    }
}

/// RFC 3339 in UTC, for retry times in messages.
fn format_time(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| httpdate::fmt_http_date(at))
}
