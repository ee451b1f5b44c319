//! The answering half of ACME challenges: shared maps an order flow writes into and
//! whatever server owns :80 / :443 (the berth proxy, an embedding app, or the standalone
//! listeners of `berth issue`) answers from. The solvers that fill them are in
//! `berth-acme-core`.

mod http01;
mod tls_alpn01;

pub use http01::{HTTP01_PATH_PREFIX, Http01Responder};
pub use tls_alpn01::{ACME_TLS_ALPN_PROTOCOL, AlpnChallengeResolver, TlsAlpn01Responder};
