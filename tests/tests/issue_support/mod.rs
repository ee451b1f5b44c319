//! Shared pieces of the `issue_*` tests: an account at a Pebble, standalone challenge
//! listeners on the ports Pebble's VA uses, and a real TLS handshake to prove a chain.

#![allow(dead_code)] // Each issue_* binary uses a different subset.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_acme_core::challenge::{
    ChallengeListener, Http01Responder, Http01Solver, PendingChallenge, Solver, SolverFuture,
    TlsAlpn01Responder, TlsAlpn01Solver, serve_http01, serve_tls_alpn01,
};
use berth_acme_core::{
    AccountConfig, AcmeAccount, Ca, Certificate, ChallengeKind, Issuer, OrderRequest,
};
use berth_tests::{Pebble, tls_client_config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Upper bound for any one test; an order against Pebble takes about a second.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `test` and fails it if it takes longer than [`TEST_TIMEOUT`].
pub(crate) async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test exceeded its time bound")
}

/// Pebble as a custom CA.
pub(crate) fn pebble_ca(pebble: &Pebble) -> Ca {
    Ca::custom(&pebble.directory_url(), None).unwrap()
}

/// An account configuration for Pebble that agrees to its terms and trusts its TLS root.
pub(crate) fn pebble_config(pebble: &Pebble) -> AccountConfig {
    AccountConfig {
        agree_tos: true,
        email: Some("admin@example.com".into()),
        ca_roots_pem: Some(pebble.tls_root_pem().to_owned()),
        ..AccountConfig::new(pebble_ca(pebble))
    }
}

/// A fresh account at Pebble.
pub(crate) async fn pebble_account(pebble: &Pebble) -> AcmeAccount {
    let (account, credentials) = AcmeAccount::load_or_create(&pebble_config(pebble), None)
        .await
        .unwrap();
    assert!(
        credentials.is_some(),
        "a new account hands back credentials"
    );
    account
}

/// An HTTP-01 issuer with its standalone listener on Pebble's HTTP-01 port.
pub(crate) async fn http01_issuer(
    pebble: &Pebble,
    account: AcmeAccount,
) -> (Issuer, Http01Responder, ChallengeListener) {
    let responder = Http01Responder::new();
    let addr = SocketAddr::from(([127, 0, 0, 1], pebble.http_port()));
    let listener = serve_http01(addr, responder.clone(), CancellationToken::new())
        .await
        .unwrap();
    let issuer = Issuer::new(account, Arc::new(Http01Solver::new(responder.clone())));
    (issuer, responder, listener)
}

/// A TLS-ALPN-01 issuer with its standalone listener on Pebble's TLS-ALPN-01 port.
pub(crate) async fn tls_alpn01_issuer(
    pebble: &Pebble,
    account: AcmeAccount,
) -> (Issuer, ChallengeListener) {
    let responder = TlsAlpn01Responder::new();
    let addr = SocketAddr::from(([127, 0, 0, 1], pebble.tls_port()));
    let listener = serve_tls_alpn01(addr, responder.clone(), CancellationToken::new())
        .await
        .unwrap();
    let issuer = Issuer::new(account, Arc::new(TlsAlpn01Solver::new(responder)));
    (issuer, listener)
}

/// An order for `names` with the defaults.
pub(crate) fn order(names: &[&str]) -> OrderRequest {
    OrderRequest::new(berth_acme_core::DomainSet::parse(names).unwrap())
}

/// Serves `certificate` from a real TLS server on loopback and connects to it as
/// `server_name` with a rustls client that trusts exactly `root_pem`: the handshake
/// succeeds only if the chain verifies to that root and covers the name.
pub(crate) async fn handshake(
    certificate: &Certificate,
    root_pem: &str,
    server_name: &str,
) -> Result<(), String> {
    let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Fixed(Arc::clone(certificate.certified_key()))));
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(stream).await {
            let _ = tls.write_all(b"hello").await;
            let _ = tls.shutdown().await;
        }
    });

    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(root_pem)));
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let result = async {
        let mut tls = connector
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())?;
        let mut greeting = String::new();
        tls.read_to_string(&mut greeting)
            .await
            .map_err(|e| e.to_string())?;
        if greeting == "hello" {
            Ok(())
        } else {
            Err(format!("unexpected greeting {greeting:?}"))
        }
    }
    .await;
    server.abort();
    result
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A solver of any kind that only counts calls: for refusals that must happen before
/// anything is presented.
#[derive(Debug)]
pub(crate) struct CountingSolver {
    pub(crate) kind: ChallengeKind,
    pub(crate) presented: AtomicUsize,
}

impl CountingSolver {
    pub(crate) fn new(kind: ChallengeKind) -> Self {
        Self {
            kind,
            presented: AtomicUsize::new(0),
        }
    }

    pub(crate) fn presented(&self) -> usize {
        self.presented.load(Ordering::SeqCst)
    }
}

impl Solver for CountingSolver {
    fn kind(&self) -> ChallengeKind {
        self.kind
    }

    fn present<'a>(&'a self, _: &'a PendingChallenge) -> SolverFuture<'a> {
        self.presented.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn cleanup<'a>(&'a self, _: &'a PendingChallenge) -> SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// How many accounts Pebble created (it logs "There are now N accounts in memory" once
/// per creation; lookups of an existing account do not log it).
pub(crate) fn accounts_created(pebble: &Pebble) -> usize {
    pebble
        .log()
        .lines()
        .filter(|l| l.contains("accounts in memory"))
        .count()
}
