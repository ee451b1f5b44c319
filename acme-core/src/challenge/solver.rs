//! [`Solver`]: how the order flow publishes a challenge response and withdraws it.
//!
//! HTTP-01 and TLS-ALPN-01 write into the shared responders that whatever owns :80 /
//! :443 answers from; DNS-01 ([`Dns01Solver`](super::dns01::Dns01Solver)) writes TXT
//! records through a DNS provider.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ChallengeKind, Http01Responder, TlsAlpn01Responder};
use crate::domain::DomainName;
use crate::error::Error;

/// The future a [`Solver`] returns: boxed so that `dyn Solver` works.
pub type SolverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// Publishes challenge responses for one challenge type.
///
/// The order flow calls [`present`](Solver::present) for every pending authorization
/// before telling the CA to validate, and [`cleanup`](Solver::cleanup) for every
/// presented challenge once the order is settled — on success and on failure alike.
/// `cleanup` may be called for a challenge whose `present` failed, so it must tolerate
/// that. Implementations must never log the key authorization.
///
/// The provided solvers are [`Http01Solver`], [`TlsAlpn01Solver`] and
/// [`Dns01Solver`](super::dns01::Dns01Solver). A solver of your own, here one that
/// reports each name (never the key authorization) and then answers through another;
/// it forwards `wait_visible` too, where DNS-01 waits for propagation:
///
/// ```
/// use std::sync::Arc;
/// use berth_acme_core::ChallengeKind;
/// use berth_acme_core::challenge::{Http01Responder, Http01Solver};
/// use berth_acme_core::challenge::{PendingChallenge, Solver, SolverFuture};
///
/// #[derive(Debug)]
/// struct Reported<S>(S);
/// impl<S: Solver> Solver for Reported<S> {
///     fn kind(&self) -> ChallengeKind {
///         self.0.kind()
///     }
///     fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
///         eprintln!("{} for {}", self.kind().as_str(), challenge.identifier().as_str());
///         self.0.present(challenge)
///     }
///     fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
///         self.0.cleanup(challenge)
///     }
///     fn wait_visible<'a>(&'a self, challenges: &'a [PendingChallenge]) -> SolverFuture<'a> {
///         self.0.wait_visible(challenges)
///     }
/// }
///
/// let solver: Arc<dyn Solver> = Arc::new(Reported(Http01Solver::new(Http01Responder::new())));
/// assert_eq!(solver.kind(), ChallengeKind::Http01); // hand it to `CertManager::new`
/// ```
pub trait Solver: Send + Sync + fmt::Debug {
    /// The challenge type this solver answers.
    fn kind(&self) -> ChallengeKind;

    /// Makes the response for `challenge` visible to the CA; returns once it is.
    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a>;

    /// Withdraws the response for `challenge`.
    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a>;

    /// Returns once every presented response is visible where the CA will look — DNS-01
    /// waits for the zone's nameservers here. Called once per order, after every
    /// `present` and before the CA is told to validate. Responses served by this
    /// process are visible at once, which is the default.
    fn wait_visible<'a>(&'a self, challenges: &'a [PendingChallenge]) -> SolverFuture<'a> {
        let _ = challenges;
        Box::pin(async { Ok(()) })
    }
}

/// One challenge the CA wants answered: the name, the token, and the key authorization
/// (RFC 8555 §8.1) in the encodings the challenge types use.
#[derive(Clone)]
pub struct PendingChallenge {
    identifier: DomainName,
    token: String,
    key_authorization: String,
    digest: [u8; 32],
}

impl fmt::Debug for PendingChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingChallenge")
            .field("identifier", &self.identifier.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl PendingChallenge {
    pub(crate) fn new(
        identifier: DomainName,
        token: String,
        key_authorization: String,
        digest: [u8; 32],
    ) -> Self {
        Self {
            identifier,
            token,
            key_authorization,
            digest,
        }
    }

    /// The name being validated (`*.example.com` for a wildcard authorization).
    pub fn identifier(&self) -> &DomainName {
        &self.identifier
    }

    /// The challenge token (the last path segment for HTTP-01).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `token.thumbprint`: the HTTP-01 response body (RFC 8555 §8.3).
    pub fn key_authorization(&self) -> &str {
        &self.key_authorization
    }

    /// SHA-256 of the key authorization: the TLS-ALPN-01 `acmeIdentifier` value
    /// (RFC 8737 §3).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// base64url of [`digest`](Self::digest): the DNS-01 TXT record value (RFC 8555 §8.4).
    pub fn dns_value(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.digest)
    }

    /// `_acme-challenge.<name>`, where DNS-01 puts the TXT record (RFC 8555 §8.4); the
    /// wildcard label is dropped.
    pub fn dns_record_name(&self) -> String {
        dns_record_name(&self.identifier)
    }
}

/// `_acme-challenge.<name>` for `identifier`, the wildcard label dropped (RFC 8555 §8.4).
pub(crate) fn dns_record_name(identifier: &DomainName) -> String {
    format!("_acme-challenge.{}", identifier.base())
}

/// Answers HTTP-01 by publishing tokens in an [`Http01Responder`].
#[derive(Debug, Clone)]
pub struct Http01Solver {
    responder: Http01Responder,
}

impl Http01Solver {
    /// Publishes into `responder` (shared with the server on :80).
    pub fn new(responder: Http01Responder) -> Self {
        Self { responder }
    }
}

impl Solver for Http01Solver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            self.responder
                .insert(challenge.token(), challenge.key_authorization());
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            self.responder.remove(challenge.token());
            Ok(())
        })
    }
}

/// Answers TLS-ALPN-01 by publishing `acmeIdentifier` certificates in a
/// [`TlsAlpn01Responder`].
#[derive(Debug, Clone)]
pub struct TlsAlpn01Solver {
    responder: TlsAlpn01Responder,
}

impl TlsAlpn01Solver {
    /// Publishes into `responder` (shared with the server on :443).
    pub fn new(responder: TlsAlpn01Responder) -> Self {
        Self { responder }
    }
}

impl Solver for TlsAlpn01Solver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::TlsAlpn01
    }

    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            self.responder
                .insert(challenge.identifier(), challenge.digest())
                .map_err(Error::from)
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            self.responder.remove(challenge.identifier());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str) -> PendingChallenge {
        PendingChallenge::new(
            DomainName::parse(name).unwrap(),
            "tok".into(),
            "tok.thumb".into(),
            [7; 32],
        )
    }

    #[tokio::test]
    async fn http01_solver_publishes_and_withdraws_the_token() {
        let responder = Http01Responder::new();
        let solver: std::sync::Arc<dyn Solver> =
            std::sync::Arc::new(Http01Solver::new(responder.clone()));
        let challenge = pending("example.com");
        solver.present(&challenge).await.unwrap();
        assert_eq!(
            responder
                .respond("/.well-known/acme-challenge/tok")
                .as_deref(),
            Some("tok.thumb")
        );
        solver.cleanup(&challenge).await.unwrap();
        assert!(responder.is_empty());
        // Cleaning up twice (or without a present) is harmless.
        solver.cleanup(&challenge).await.unwrap();
    }

    #[tokio::test]
    async fn tls_alpn01_solver_answers_an_ip_under_its_reverse_dns_name() {
        let responder = TlsAlpn01Responder::new();
        let solver = TlsAlpn01Solver::new(responder.clone());
        let challenge = pending("127.0.0.1");
        solver.present(&challenge).await.unwrap();
        let cert = responder
            .get("1.0.0.127.in-addr.arpa")
            .expect("published under the name the CA sends (RFC 8738 §6)");
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.cert[0]).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![x509_parser::extensions::GeneralName::IPAddress(&[
                127, 0, 0, 1
            ])],
            "the only SAN is the address itself"
        );
        assert!(responder.get("127.0.0.1").is_none());
        solver.cleanup(&challenge).await.unwrap();
        assert!(responder.get("1.0.0.127.in-addr.arpa").is_none());
    }

    #[test]
    fn dns_values_use_base64url_and_the_base_name() {
        let challenge = pending("*.example.com");
        assert_eq!(challenge.dns_record_name(), "_acme-challenge.example.com");
        assert_eq!(challenge.dns_value().len(), 43);
        assert!(!challenge.dns_value().contains(['+', '/', '=']));
    }

    #[test]
    fn debug_never_shows_the_key_authorization() {
        let debug = format!("{:?}", pending("example.com"));
        assert!(!debug.contains("thumb"), "{debug}");
        assert!(debug.contains("example.com"), "{debug}");
    }
}
