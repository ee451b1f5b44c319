//! Answering challenges from this process for the length of one job, such as a one-off
//! order from the command line: the solver for the challenge type and, for HTTP-01 and
//! TLS-ALPN-01, a listener of its own that closes when the job is done.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::dns01::Dns01Solver;
use super::{
    ChallengeKind, ChallengeListener, Http01Responder, Http01Solver, Solver, TlsAlpn01Responder,
    TlsAlpn01Solver, serve_http01, serve_tls_alpn01,
};
use crate::error::Error;

/// Where a [`StandaloneSolver`] answers each challenge type.
#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    /// The challenge the CA is asked to check.
    pub challenge: ChallengeKind,
    /// Where to listen for HTTP-01 (the CA connects to port 80).
    pub http_addr: SocketAddr,
    /// Where to listen for TLS-ALPN-01 (the CA connects to port 443).
    pub tls_addr: SocketAddr,
    /// The DNS-01 solver (its provider writes the TXT records); needed for DNS-01 only.
    pub dns: Option<Arc<Dns01Solver>>,
}

/// A solver and whatever answers for it until [`StandaloneSolver::stop`].
///
/// ```no_run
/// use berth_acme_core::ChallengeKind;
/// use berth_acme_core::challenge::{StandaloneConfig, StandaloneSolver};
///
/// # async fn f() -> Result<(), berth_acme_core::Error> {
/// let answering = StandaloneSolver::start(StandaloneConfig {
///     challenge: ChallengeKind::Http01,
///     http_addr: "0.0.0.0:80".parse().unwrap(),
///     tls_addr: "0.0.0.0:443".parse().unwrap(),
///     dns: None,
/// })
/// .await?;
/// // …hand answering.solver() to a CertManager and order…
/// answering.stop().await;
/// # Ok(()) }
/// ```
pub struct StandaloneSolver {
    solver: Arc<dyn Solver>,
    listener: Option<ChallengeListener>,
}

impl StandaloneSolver {
    /// Starts answering `config.challenge`: binds the HTTP-01 or TLS-ALPN-01 listener, or
    /// takes the DNS-01 solver (refused with [`Error::NoSolver`] when there is none).
    pub async fn start(config: StandaloneConfig) -> Result<Self, Error> {
        // The listener has its own stop; this token only ties it to `stop`.
        let shutdown = CancellationToken::new();
        let (solver, listener): (Arc<dyn Solver>, _) = match config.challenge {
            ChallengeKind::Http01 => {
                let responder = Http01Responder::new();
                let listener = serve_http01(config.http_addr, responder.clone(), shutdown).await?;
                (Arc::new(Http01Solver::new(responder)), Some(listener))
            }
            ChallengeKind::TlsAlpn01 => {
                let responder = TlsAlpn01Responder::new();
                let listener =
                    serve_tls_alpn01(config.tls_addr, responder.clone(), shutdown).await?;
                (Arc::new(TlsAlpn01Solver::new(responder)), Some(listener))
            }
            ChallengeKind::Dns01 => match config.dns {
                Some(dns) => (dns, None),
                None => {
                    return Err(Error::NoSolver {
                        challenge: ChallengeKind::Dns01,
                    });
                }
            },
        };
        Ok(Self { solver, listener })
    }

    /// The solver to hand to a [`CertManager`](crate::CertManager) or
    /// [`Issuer`](crate::Issuer).
    pub fn solver(&self) -> Arc<dyn Solver> {
        Arc::clone(&self.solver)
    }

    /// Stops answering and waits until the listener has closed its port.
    pub async fn stop(self) {
        if let Some(listener) = self.listener {
            listener.stop().await;
        }
    }
}
