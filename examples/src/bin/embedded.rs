//! An axum app that gets its own certificate and serves itself over HTTPS, using berth's
//! three crates directly — no sidecar:
//!
//! - `berth-secrets` loads an optional EAB HMAC (`EMBEDDED_EAB_HMAC_FILE` or the Docker
//!   secret `/run/secrets/embedded_eab_hmac`),
//! - `berth-acme-core`'s `CertManager` issues and renews the certificate (HTTP-01),
//! - `berth-proxy` terminates TLS in-process with the manager's certificates, hot-swapped
//!   on renewal, answers HTTP-01 on the plain listener, and forwards to the app.
//!
//! ```sh
//! source scripts/pebble-env.sh && pebble_start
//! cargo run -p berth-examples --bin embedded -- --domain app.example.test \
//!   --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" \
//!   --http-addr 127.0.0.1:$PEBBLE_HTTP_PORT --tls-addr 127.0.0.1:8443
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use berth_acme_core::challenge::{Http01Responder, Http01Solver};
use berth_acme_core::store::{DEFAULT_RESOLVER, FileStore};
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, Eab, KeyType, ManagedCert,
    ManagerConfig,
};
use berth_proxy::{CertSource, Proxy, Routes, Upstream};
use berth_secrets::Loader;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Serve an axum app over HTTPS with a certificate from an ACME CA.
#[derive(Debug, Parser)]
struct Args {
    /// The name to get a certificate for.
    #[arg(long)]
    domain: String,
    /// ACME directory URL.
    #[arg(long)]
    ca: String,
    /// PEM root to trust for the CA's API (private CAs such as Pebble).
    #[arg(long)]
    ca_root: Option<PathBuf>,
    /// Where the CA validates HTTP-01 (port 80 in production).
    #[arg(long, default_value = "127.0.0.1:80")]
    http_addr: SocketAddr,
    /// HTTPS listener.
    #[arg(long, default_value = "127.0.0.1:443")]
    tls_addr: SocketAddr,
    /// The store (Traefik-compatible acme.json).
    #[arg(long, default_value = "embedded-acme.json")]
    store: PathBuf,
    /// EAB key id, when the CA requires External Account Binding.
    #[arg(long)]
    eab_kid: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // 1. The app itself, on a loopback port only the in-process proxy talks to.
    let app = Router::new().route("/", get(|| async { "hello from the embedded app\n" }));
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = app_listener.local_addr()?;
    tokio::spawn(async move { axum::serve(app_listener, app).await });

    // 2. The ACME account: CA, trust roots, and the EAB secret from a file if given.
    let mut account = AccountConfig::new(Ca::custom(&args.ca, None)?);
    account.agree_tos = true;
    if let Some(root) = &args.ca_root {
        account.ca_roots_pem = Some(std::fs::read_to_string(root)?);
    }
    if let Some(kid) = args.eab_kid {
        let hmac = Loader::new().require_env("EMBEDDED_EAB_HMAC")?.secret;
        account.eab = Some(Eab { kid, hmac });
    }

    // 3. The certificate manager, answering HTTP-01 through the proxy's :80 listener.
    let http01 = Http01Responder::new();
    let domains = DomainSet::parse([args.domain.as_str()])?;
    let managed = ManagedCert::new(domains, ChallengeKind::Http01, KeyType::Ec256)?;
    let store = FileStore::open(&args.store, DEFAULT_RESOLVER).await?;
    let manager = Arc::new(CertManager::new(
        ManagerConfig::new(store, account),
        vec![managed],
        vec![Arc::new(Http01Solver::new(http01.clone()))],
    ));
    manager.publish_from_store().await?;

    // 4. TLS termination in-process, certificates hot-swapped from the manager.
    let proxy = Proxy::builder()
        .tls_addr(args.tls_addr)
        .http_addr(args.http_addr)
        .routes(Routes::single(Upstream::parse(&format!(
            "http://{app_addr}"
        ))?))
        .cert_source(CertSource::Watch(manager.subscribe()))
        .default_server_name(args.domain.clone())
        .http01(http01)
        .build()?
        .bind()
        .await?;
    let tls_addr = proxy.tls_addr().unwrap_or(args.tls_addr);

    let shutdown = CancellationToken::new();
    let renewals = tokio::spawn({
        let (manager, shutdown) = (Arc::clone(&manager), shutdown.clone());
        async move { manager.run(shutdown).await }
    });
    let announce = tokio::spawn({
        let mut certs = manager.subscribe();
        let domain = args.domain.clone();
        async move {
            while certs.borrow_and_update().is_empty() {
                if certs.changed().await.is_err() {
                    return;
                }
            }
            println!(
                "ready: https://{domain}:{} (via {tls_addr})",
                tls_addr.port()
            );
        }
    });
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        }
    });
    proxy.serve(shutdown.clone()).await?;
    shutdown.cancel();
    announce.abort();
    let _ = renewals.await;
    Ok(())
}
