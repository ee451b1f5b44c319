//! `berth run`: the sidecar. Certificate manager, :80 (HTTP-01 + redirect), :443 (TLS
//! proxy to the app) and the admin server, until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::{
    Http01Responder, Http01Solver, Solver, TlsAlpn01Responder, TlsAlpn01Solver,
};
use berth_acme_core::{CertManager, ChallengeKind, KeyType, ManagedCert, ManagerConfig};
use berth_proxy::{CertSource, Metrics, Proxy, Route, Routes, Upstream};
use tokio_util::sync::CancellationToken;

use super::{account_config, domain_set};
use crate::admin;
use crate::cli::RunArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: RunArgs) -> Result<(), Failure> {
    let domains = domain_set(&args.domains)?;
    let challenge: ChallengeKind = args
        .challenge
        .parse()
        .map_err(|e| Failure::usage(format!("--challenge: {e}")))?;
    let key_type: KeyType = args
        .key_type
        .parse()
        .map_err(|e| Failure::usage(format!("--key-type: {e}")))?;
    let managed = ManagedCert::new(domains, challenge, key_type)?;
    let routes = routes(&args)?;
    let account = account_config(&args.ca)?;
    let mut config = ManagerConfig::new(args.store.store.clone(), account);
    config.resolver = args.store.resolver.clone();
    config.skip_staging = args.skip_staging;

    let http01 = Http01Responder::new();
    let tls_alpn01 = TlsAlpn01Responder::new();
    let solvers: Vec<Arc<dyn Solver>> = vec![
        Arc::new(Http01Solver::new(http01.clone())),
        Arc::new(TlsAlpn01Solver::new(tls_alpn01.clone())),
    ];
    let manager = Arc::new(CertManager::new(config, vec![managed], solvers));
    // Valid certificates in the store are served at once; missing ones are issued in the
    // background while the rest serves (readiness says which).
    manager.publish_from_store().await?;

    let metrics = Metrics::new();
    let mut proxy = Proxy::builder()
        .tls_addr(args.tls_addr)
        .http_addr(args.http_addr)
        .routes(routes)
        .cert_source(CertSource::Watch(manager.subscribe()))
        .http01(http01)
        .tls_alpn01(tls_alpn01)
        .metrics(metrics.clone());
    if let Some(port) = args.https_port {
        proxy = proxy.https_redirect_port(port);
    }
    if let Some(max_age) = args.hsts_max_age {
        proxy = proxy.hsts(Duration::from_secs(max_age));
    }
    let proxy = proxy
        .build()
        .map_err(Failure::usage)?
        .bind()
        .await
        .map_err(Failure::runtime)?;
    let shutdown = CancellationToken::new();
    let admin = admin::serve(
        args.admin_addr,
        admin::AdminState::new(manager.clone(), metrics),
        shutdown.clone(),
    )
    .await
    .map_err(|e| {
        Failure::runtime(format!(
            "cannot listen on --admin-addr {}: {e}",
            args.admin_addr
        ))
    })?;
    tracing::info!(
        tls = ?proxy.tls_addr(), http = ?proxy.http_addr(), admin = %admin.local_addr(),
        ca = %manager.ca().directory(), "berth is serving"
    );

    let renewals = tokio::spawn({
        let manager = manager.clone();
        let shutdown = shutdown.clone();
        async move { manager.run(shutdown).await }
    });
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let served = proxy.serve(shutdown.clone()).await;
    shutdown.cancel();
    if let Err(e) = renewals.await {
        tracing::error!(error = %e, "renewal task ended abnormally");
    }
    admin.stopped().await;
    tracing::info!("berth stopped");
    served.map_err(Failure::runtime)
}

fn routes(args: &RunArgs) -> Result<Routes, Failure> {
    let mut routes = Routes::new();
    for text in args.routes.iter().filter(|r| !r.trim().is_empty()) {
        let route: Route = text
            .parse()
            .map_err(|e| Failure::usage(format!("--route {text:?}: {e}")))?;
        routes = routes.with(route);
    }
    if let Some(upstream) = &args.upstream {
        let upstream =
            Upstream::parse(upstream).map_err(|e| Failure::usage(format!("--upstream: {e}")))?;
        routes = routes.with(Route::new(upstream));
    }
    if routes.is_empty() {
        return Err(Failure::usage(
            "nothing to forward to; pass --upstream http://app:3000 (or --route)",
        ));
    }
    Ok(routes)
}

/// SIGTERM (orchestrators) and SIGINT (Ctrl-C) start a graceful drain.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::error!("cannot listen for SIGTERM; stop berth with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "draining"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
