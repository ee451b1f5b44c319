//! HTTP-01 (RFC 8555 §8.3): the token → key authorization map served on port 80.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// The path prefix under which the CA fetches HTTP-01 tokens.
pub const HTTP01_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 tokens, shared between the order flow (which inserts and removes
/// them) and every HTTP server that answers the CA. Cloning shares the same map.
///
/// Key authorizations are not secret once published, but they are still never logged.
///
/// ```
/// use berth_certs::challenge::Http01Responder;
///
/// let responder = Http01Responder::new();
/// let order_flow = responder.clone(); // the same map
/// order_flow.insert("tok", "tok.thumbprint");
/// assert_eq!(
///     responder.respond("/.well-known/acme-challenge/tok").as_deref(),
///     Some("tok.thumbprint")
/// );
/// assert_eq!(responder.respond("/index.html"), None); // not a challenge: serve normally
/// ```
#[derive(Clone, Default)]
pub struct Http01Responder {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl std::fmt::Debug for Http01Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http01Responder")
            .field("pending", &self.len())
            .finish()
    }
}

impl Http01Responder {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes a token and its key authorization.
    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.into(), key_authorization.into());
    }

    /// Withdraws a token once its authorization is settled.
    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// The key authorization for a token, if one is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Answers a request path: `Some(body)` when `path` is
    /// `/.well-known/acme-challenge/<token>` for a pending token, `None` otherwise (the
    /// caller then falls through to its normal handling, e.g. an HTTPS redirect).
    pub fn respond(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PATH_PREFIX)?;
        if token.is_empty() || token.contains('/') {
            return None;
        }
        self.get(token)
    }

    /// How many tokens are pending.
    pub fn len(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no token is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responds_only_to_pending_tokens_under_the_well_known_path() {
        let responder = Http01Responder::new();
        let shared = responder.clone();
        shared.insert("tok123", "tok123.thumb");
        assert_eq!(
            responder
                .respond("/.well-known/acme-challenge/tok123")
                .as_deref(),
            Some("tok123.thumb")
        );
        assert_eq!(responder.respond("/.well-known/acme-challenge/other"), None);
        assert_eq!(responder.respond("/tok123"), None);
        assert_eq!(responder.respond("/.well-known/acme-challenge/"), None);
        assert_eq!(
            responder.respond("/.well-known/acme-challenge/tok123/x"),
            None
        );
        shared.remove("tok123");
        assert!(responder.is_empty());
        assert_eq!(
            responder.respond("/.well-known/acme-challenge/tok123"),
            None
        );
    }
}
