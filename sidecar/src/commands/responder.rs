//! The challenge side of `berth issue` and `berth renew --standalone`: the solver for
//! `--challenge` and, for HTTP-01 and TLS-ALPN-01, this process's own listener, which
//! answers only for the duration of the command.

use std::sync::Arc;

use berth_acme_core::ChallengeKind;
use berth_acme_core::challenge::{
    ChallengeListener, Http01Responder, Http01Solver, Solver, TlsAlpn01Responder, TlsAlpn01Solver,
    serve_http01, serve_tls_alpn01,
};
use tokio_util::sync::CancellationToken;

use super::rescue_dir;
use crate::cli::{ChallengeArgs, StoreArgs};
use crate::dns;
use crate::failure::Failure;

/// A solver and whatever answers for it until [`Responder::stop`].
pub(crate) struct Responder {
    /// Hands the CA's challenges to the listener (or the DNS provider).
    pub(crate) solver: Arc<dyn Solver>,
    listener: Option<ChallengeListener>,
    shutdown: CancellationToken,
}

impl Responder {
    /// Starts answering `args.challenge`: binds `--http-addr` or `--tls-addr`, or sets
    /// up the DNS-01 provider (its rescue file next to the `--store` file).
    pub(crate) async fn start(args: &ChallengeArgs, store: &StoreArgs) -> Result<Self, Failure> {
        let shutdown = CancellationToken::new();
        let (solver, listener): (Arc<dyn Solver>, _) = match args.challenge {
            ChallengeKind::Http01 => {
                let responder = Http01Responder::new();
                let listener =
                    serve_http01(args.http_addr, responder.clone(), shutdown.clone()).await?;
                (Arc::new(Http01Solver::new(responder)), Some(listener))
            }
            ChallengeKind::TlsAlpn01 => {
                let responder = TlsAlpn01Responder::new();
                let listener =
                    serve_tls_alpn01(args.tls_addr, responder.clone(), shutdown.clone()).await?;
                (Arc::new(TlsAlpn01Solver::new(responder)), Some(listener))
            }
            ChallengeKind::Dns01 => (
                dns::require(dns::solver(
                    &crate::settings::dns_settings(&args.dns),
                    rescue_dir(store).map(|_| store.store.as_path()),
                )?)?,
                None,
            ),
            challenge => return Err(berth_acme_core::Error::NoSolver { challenge }.into()),
        };
        Ok(Self {
            solver,
            listener,
            shutdown,
        })
    }

    /// Stops answering and waits until the listener has closed its port.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        if let Some(listener) = self.listener {
            listener.stop().await;
        }
    }
}
