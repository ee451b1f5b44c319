//! `berth run`: the sidecar. Certificate manager, :80 (HTTP-01 + redirect), :443 (TLS
//! proxy to the app) and the admin server, until SIGTERM/SIGINT; SIGHUP re-reads the
//! configuration file and the secrets.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_acme_core::challenge::{
    Http01Responder, Http01Solver, Solver, TlsAlpn01Responder, TlsAlpn01Solver,
};
use berth_acme_core::store::Store;
use berth_acme_core::{CertManager, CertSet, Generation, ManagerConfig};
use berth_admin::{AdminServer, OrderCounters};
use berth_config::lint::{Finding, Level, Probe};
use berth_config::{RestartOnly, RunSettings};
use berth_proxy::{BoundProxy, CertSource, Metrics, Proxy, RouteTable};
use clap::ArgMatches;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::commands::{open_store, rescue_dir, store_location};
use crate::failure::Failure;
use crate::plan::Plan;
use crate::settings::store_args;

/// How long a reload waits for the old manager's order in flight.
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);

/// The challenge responders the proxy answers from; shared by every manager generation.
#[derive(Clone, Default)]
struct Responders {
    http01: Http01Responder,
    tls_alpn01: TlsAlpn01Responder,
}

impl Responders {
    fn manager(
        &self,
        settings: &RunSettings,
        plan: &Plan,
        store: &Arc<dyn Store>,
    ) -> Arc<CertManager> {
        let mut config = ManagerConfig::new(Arc::clone(store), plan.account.clone());
        config.skip_staging = settings.skip_staging;
        config.concurrency = settings.order_concurrency;
        config.rescue_dir = rescue_dir(&store_args(settings));
        // Replicas behind one load balancer: the CA's request may reach any of them.
        config.share_challenges =
            store_location(&store_args(settings)).is_ok_and(|location| location.is_shared());
        let mut solvers: Vec<Arc<dyn Solver>> = vec![
            Arc::new(Http01Solver::new(self.http01.clone())),
            Arc::new(TlsAlpn01Solver::new(self.tls_alpn01.clone())),
        ];
        if let Some(dns) = &plan.dns {
            solvers.push(Arc::clone(dns) as Arc<dyn Solver>);
        }
        Arc::new(CertManager::new(
            config,
            plan.config.managed.clone(),
            solvers,
        ))
    }
}

/// `berth run`; `workers` threads serve connections (`--workers`).
pub(crate) async fn run(
    args: RunArgs,
    workers: NonZeroUsize,
    matches: ArgMatches,
) -> Result<(), Failure> {
    let (settings, plan) = configure(&args, &matches).await?;
    if args.proxy_protocol && plan.config.trusted_proxies.is_empty() {
        return Err(Failure::usage(
            "--proxy-protocol needs --trusted-proxies: only the load balancers listed there may send a PROXY header; add their addresses, e.g. --trusted-proxies 10.0.0.0/8",
        ));
    }
    let responders = Responders::default();
    // Opened once, as its owner, and proven writable before any order.
    let store = open_store(&store_args(&settings)).await?;
    let manager = responders.manager(&settings, &plan, &store);
    // Valid certificates in the store are served at once; missing ones are issued in the
    // background while the rest serves (readiness says which).
    manager.publish_from_store().await?;
    let (certs, served) = watch::channel(CertSet::default());
    let metrics = Metrics::new();
    let proxy = bind_proxy(
        &args,
        &settings,
        plan,
        &responders,
        served,
        &metrics,
        workers,
    )
    .await?;

    let shutdown = CancellationToken::new();
    let current = Arc::new(ArcSwap::new(Arc::clone(&manager)));
    let orders = Arc::new(OrderCounters::default());
    let admin = serve_admin(&settings, &current, metrics, &orders, &shutdown).await?;
    tracing::info!(
        tls = ?proxy.tls_addr(), http = ?proxy.http_addr(), admin = %admin.local_addr(),
        ca = %manager.ca().directory(), certificates = manager.managed().len(), "berth is serving"
    );
    let mut sidecar = Sidecar {
        routes: proxy.route_table(),
        generation: Some(start_generation(manager, &certs, &orders)),
        args,
        matches,
        settings,
        responders,
        store,
        certs,
        orders,
        current,
    };
    let proxy_task = tokio::spawn(proxy.serve(shutdown.clone()));
    let signals = sidecar.serve_until_stopped(&shutdown).await;
    shutdown.cancel();
    if let Some(generation) = sidecar.generation.take() {
        generation.stop(sidecar.settings.limits.drain_timeout).await;
    }
    let served = match proxy_task.await {
        Ok(served) => served.map_err(Failure::runtime),
        Err(e) => Err(Failure::runtime(format!(
            "the proxy task ended abnormally: {e}"
        ))),
    };
    admin.stopped().await;
    tracing::info!("berth stopped");
    signals.and(served)
}

/// The settings from flags, environment and the config file, and the plan built from
/// them; refuses a configuration `berth config check` reports an error in.
async fn configure(args: &RunArgs, matches: &ArgMatches) -> Result<(RunSettings, Plan), Failure> {
    let settings = crate::settings::resolve(args, matches)?;
    let plan = Plan::build(&settings)?;
    report(&plan.findings(&settings, Probe::Static).await)?;
    Ok((settings, plan))
}

/// Binds the proxy's listeners (HTTPS, and :80 for HTTP-01 and redirects).
async fn bind_proxy(
    args: &RunArgs,
    settings: &RunSettings,
    plan: Plan,
    responders: &Responders,
    served: watch::Receiver<CertSet>,
    metrics: &Metrics,
    workers: NonZeroUsize,
) -> Result<BoundProxy, Failure> {
    let default_name = plan.config.default_server_name().map(str::to_owned);
    let mut proxy = Proxy::builder()
        .tls_addr(settings.tls_addr)
        .http_addr(settings.http_addr)
        .routes(plan.config.routes)
        .trusted_proxies(plan.config.trusted_proxies)
        .proxy_protocol(args.proxy_protocol)
        .cert_source(CertSource::Watch(served))
        .http01(responders.http01.clone())
        .tls_alpn01(responders.tls_alpn01.clone())
        .limits(settings.limits.clone())
        .metrics(metrics.clone())
        .workers(workers);
    if let Some(name) = default_name {
        proxy = proxy.default_server_name(name);
    }
    if let Some(port) = settings.https_port {
        proxy = proxy.https_redirect_port(port);
    }
    if let Some(max_age) = settings.hsts_max_age {
        proxy = proxy.hsts(Duration::from_secs(max_age));
    }
    proxy
        .build()
        .map_err(Failure::usage)?
        .bind()
        .await
        .map_err(Failure::runtime)
}

/// Starts the admin server: health, readiness, metrics and the status page of whichever
/// manager is `current`.
async fn serve_admin(
    settings: &RunSettings,
    current: &Arc<ArcSwap<CertManager>>,
    metrics: Metrics,
    orders: &Arc<OrderCounters>,
    shutdown: &CancellationToken,
) -> Result<AdminServer, Failure> {
    berth_admin::serve(
        settings.admin_addr,
        berth_admin::AdminState::new(Arc::clone(current), metrics, Arc::clone(orders)),
        shutdown.clone(),
    )
    .await
    .map_err(|e| {
        Failure::runtime(format!(
            "cannot listen on --admin-addr {}: {e}",
            settings.admin_addr
        ))
    })
}

/// Runs `manager` as the current generation: its certificates go to the proxy, its
/// orders are counted for /metrics and a failed order's flag hint is logged.
fn start_generation(
    manager: Arc<CertManager>,
    certs: &watch::Sender<CertSet>,
    orders: &Arc<OrderCounters>,
) -> Generation {
    let mut generation = Generation::start(Arc::clone(&manager), certs.clone());
    generation.spawn(
        orders
            .clone()
            .count(manager.events(), generation.stopping()),
    );
    // The failed orders' flag hints (the manager logs the failure in library terms).
    generation.spawn(crate::failure::log_hints(
        manager.events(),
        generation.stopping(),
    ));
    generation
}

/// What a reload replaces, and what it needs to build the replacement.
struct Sidecar {
    args: RunArgs,
    matches: ArgMatches,
    settings: RunSettings,
    responders: Responders,
    store: Arc<dyn Store>,
    certs: watch::Sender<CertSet>,
    orders: Arc<OrderCounters>,
    current: Arc<ArcSwap<CertManager>>,
    routes: RouteTable,
    /// The running manager's generation; `None` only while a reload swaps it.
    generation: Option<Generation>,
}

impl Sidecar {
    /// Serves until SIGTERM, SIGINT or `shutdown`; SIGHUP reloads.
    async fn serve_until_stopped(&mut self, shutdown: &CancellationToken) -> Result<(), Failure> {
        let (mut term, mut hup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(hup)) => (term, hup),
            (Err(e), _) | (_, Err(e)) => {
                return Err(Failure::runtime(format!(
                    "cannot listen for SIGTERM/SIGHUP: {e}"
                )));
            }
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!(signal = "SIGTERM", "draining");
                    return Ok(());
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!(signal = "SIGINT", "draining");
                    return Ok(());
                }
                _ = hup.recv() => {
                    tracing::info!(signal = "SIGHUP", "re-reading the configuration and secrets");
                    self.reload().await;
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Swaps in a manager for the configuration as it is now; a configuration that does
    /// not load leaves the running one in effect.
    async fn reload(&mut self) {
        let loaded = reload(
            &self.args,
            &self.matches,
            &self.settings,
            &self.responders,
            &self.store,
        )
        .await;
        let (settings, plan, manager) = match loaded {
            Ok(loaded) => loaded,
            Err(failure) => {
                tracing::error!(error = %failure, "reload failed; the running configuration stays in effect");
                return;
            }
        };
        // One manager at a time: the old one finishes its order in flight first.
        if let Some(old) = self.generation.take() {
            old.stop(RELOAD_DEADLINE).await;
        }
        self.generation = Some(start_generation(
            Arc::clone(&manager),
            &self.certs,
            &self.orders,
        ));
        self.routes.replace(plan.config.routes);
        self.current.store(manager);
        self.settings = settings;
        tracing::info!(
            certificates = plan.config.managed.len(),
            routes = self.routes.current().routes().len(),
            "configuration reloaded"
        );
    }
}

/// The configuration as it is now (file re-read, secrets re-read), with a manager ready
/// to take over. What changes only on restart (berth-config's
/// [`RunSettings::restart_only_changes`]) is logged.
async fn reload(
    args: &RunArgs,
    matches: &ArgMatches,
    old: &RunSettings,
    responders: &Responders,
    store: &Arc<dyn Store>,
) -> Result<(RunSettings, Plan, Arc<CertManager>), Failure> {
    let (settings, plan) = configure(args, matches).await?;
    for change in old.restart_only_changes(&settings) {
        match change {
            RestartOnly::Listener {
                setting,
                before,
                after,
            } => {
                tracing::warn!(setting, %before, %after, "listener addresses change only on restart; still on the old one");
            }
            RestartOnly::Limits => tracing::warn!("proxy limits change only on restart"),
            RestartOnly::TrustedProxies => {
                tracing::warn!("--trusted-proxies changes only on restart");
            }
            RestartOnly::Store { before } => {
                tracing::warn!(store = %before.display(), "the store changes only on restart; still using the old one");
            }
            // A setting a newer berth-config adds: logged by name.
            other => tracing::warn!(change = ?other, "changes only on restart"),
        }
    }
    let manager = responders.manager(&settings, &plan, store);
    manager.publish_from_store().await?;
    Ok((settings, plan, manager))
}

/// Logs every finding; refuses to go on when one is an error.
fn report(findings: &[Finding]) -> Result<(), Failure> {
    for f in findings {
        match f.level {
            Level::Error => tracing::error!(setting = f.setting, "{}", f.message),
            Level::Warning => tracing::warn!(setting = f.setting, "{}", f.message),
            Level::Note => tracing::info!(setting = f.setting, "{}", f.message),
        }
    }
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .map(crate::failure::finding_text)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "the configuration has errors (see `berth config check`):\n  {}",
            errors.join("\n  ")
        )))
    }
}
