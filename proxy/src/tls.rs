//! The rustls server configuration the :443 listener uses.

use std::sync::Arc;

use berth_certs::challenge::ACME_TLS_ALPN_PROTOCOL;
use berth_certs::crypto;
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;

use crate::error::Error;
use crate::resolver::CertResolver;

/// Sessions remembered for stateful resumption (TLS 1.2 session IDs, TLS 1.3 when
/// tickets are not used); rustls evicts the oldest beyond this.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// ALPN protocol ids offered to clients, in order of preference (RFC 7301 §3.2: the
/// server picks the first of its list the client offered).
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A rustls server configuration for `resolver`: TLS 1.3 and 1.2 only (older versions
/// are refused with a `protocol_version` alert), rustls' default cipher suites chosen
/// in the server's order of preference (not the client's), ALPN
/// `h2` and `http/1.1` (plus `acme-tls/1` when the resolver answers TLS-ALPN-01
/// challenges), and resumption by both session tickets and a server-side cache.
///
/// The same configuration serves every handshake across reloads: certificates come
/// from the resolver, never from the configuration.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, Error> {
    let answers_challenges = resolver.answers_challenges();
    let mut config = ServerConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // The server's suite order (AEADs only, AES-GCM first) wins over a client that
    // lists a weaker or slower one first; testssl.sh reports client order as a finding.
    config.ignore_client_order = true;
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    if answers_challenges {
        config.alpn_protocols.push(ACME_TLS_ALPN_PROTOCOL.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = crypto::ticketer()?;
    Ok(config)
}

/// Whether a completed handshake negotiated `acme-tls/1`: such a connection carries no
/// application data and is closed right after the handshake (RFC 8737 §3).
pub(crate) fn is_acme_challenge(alpn: Option<&[u8]>) -> bool {
    alpn == Some(ACME_TLS_ALPN_PROTOCOL)
}
