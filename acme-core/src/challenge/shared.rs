//! Challenge answers shared through a [`Store`], for replicas behind a load balancer:
//! the CA's validation request reaches any replica, so every replica must be able to
//! answer the HTTP-01 token or TLS-ALPN-01 handshake one of them presented.
//!
//! The presenting replica writes `challenges/<type>/<token>`; every replica mirrors those
//! keys into its own responders as the store reports them (the manager does), and the
//! key is deleted when the order settles. DNS-01 needs none of this: the TXT record is
//! public already.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ChallengeKind, PendingChallenge, Solver, SolverFuture};
use crate::domain::DomainName;
use crate::error::Error;
use crate::store::{Expect, Store, records};

/// Key prefix of shared answers.
pub(crate) const CHALLENGES: &str = "challenges/";

/// How long other replicas get to mirror an answer before the CA is told to validate:
/// pub/sub delivers in milliseconds, the poll behind it within two seconds.
const MIRROR_GRACE: Duration = Duration::from_secs(2);

/// Answers left behind by a replica that died mid-order are dropped after this.
pub(crate) const MAX_ANSWER_AGE: Duration = Duration::from_secs(3600);

/// One shared answer as stored. The key authorization is what the CA fetches publicly;
/// it is still never logged.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SharedAnswer {
    identifier: String,
    token: String,
    key_authorization: String,
    /// SHA-256 of the key authorization, hex (TLS-ALPN-01's `acmeIdentifier`).
    digest: String,
    at: SystemTime,
}

impl SharedAnswer {
    fn of(challenge: &PendingChallenge) -> Self {
        Self {
            identifier: challenge.identifier().as_str().to_owned(),
            token: challenge.token().to_owned(),
            key_authorization: challenge.key_authorization().to_owned(),
            digest: challenge
                .digest()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            at: SystemTime::now(),
        }
    }

    /// The challenge to present locally, if the record is sound.
    pub(crate) fn challenge(&self) -> Option<PendingChallenge> {
        let identifier = DomainName::parse(&self.identifier).ok()?;
        let mut digest = [0u8; 32];
        if self.digest.len() != 64 {
            return None;
        }
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(self.digest.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(PendingChallenge::new(
            identifier,
            self.token.clone(),
            self.key_authorization.clone(),
            digest,
        ))
    }

    /// Whether a replica that died mid-order left it behind.
    pub(crate) fn is_stale(&self, now: SystemTime) -> bool {
        now.duration_since(self.at)
            .is_ok_and(|age| age > MAX_ANSWER_AGE)
    }
}

/// The key of a shared answer.
pub(crate) fn answer_key(kind: ChallengeKind, token: &str) -> String {
    format!("{CHALLENGES}{kind}/{token}")
}

/// The challenge type of a shared-answer key.
pub(crate) fn answer_kind(key: &str) -> Option<ChallengeKind> {
    let rest = key.strip_prefix(CHALLENGES)?;
    rest.split_once('/')?.0.parse().ok()
}

/// Presents locally and publishes the answer for the other replicas.
#[derive(Debug)]
pub(crate) struct SharedSolver {
    inner: Arc<dyn Solver>,
    store: Arc<dyn Store>,
}

impl SharedSolver {
    pub(crate) fn new(inner: Arc<dyn Solver>, store: Arc<dyn Store>) -> Self {
        Self { inner, store }
    }
}

impl Solver for SharedSolver {
    fn kind(&self) -> ChallengeKind {
        self.inner.kind()
    }

    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            self.inner.present(challenge).await?;
            let key = answer_key(self.kind(), challenge.token());
            records::put_json(
                self.store.as_ref(),
                &key,
                &SharedAnswer::of(challenge),
                Expect::Any,
                None,
            )
            .await
            .map_err(Error::from)?;
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async move {
            let local = self.inner.cleanup(challenge).await;
            let key = answer_key(self.kind(), challenge.token());
            if let Err(e) = self.store.delete(&key, Expect::Any, None).await {
                tracing::warn!(identifier = %challenge.identifier(), error = %e, "could not withdraw the shared challenge answer; it expires within the hour");
            }
            local
        })
    }

    fn wait_visible<'a>(&'a self, challenges: &'a [PendingChallenge]) -> SolverFuture<'a> {
        Box::pin(async move {
            self.inner.wait_visible(challenges).await?;
            tokio::time::sleep(MIRROR_GRACE).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_round_trips_and_keys_name_their_type() {
        let challenge = PendingChallenge::new(
            DomainName::parse("a.example.com").unwrap(),
            "tok".into(),
            "tok.thumb".into(),
            [7; 32],
        );
        let answer = SharedAnswer::of(&challenge);
        let back = answer.challenge().unwrap();
        assert_eq!(back.digest(), &[7; 32]);
        assert_eq!(back.key_authorization(), "tok.thumb");
        let key = answer_key(ChallengeKind::TlsAlpn01, "tok");
        assert_eq!(answer_kind(&key), Some(ChallengeKind::TlsAlpn01));
        assert_eq!(answer_kind("certs/x"), None);
        assert!(!answer.is_stale(SystemTime::now()));
        assert!(answer.is_stale(SystemTime::now() + MAX_ANSWER_AGE * 2));
    }
}
