//! Where the served certificates come from, and how reloads reach the resolver.

mod files;
mod pem;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_certs::CertSet;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::resolver::CertResolver;
use files::{FileWatch, Layout};

/// After a change notification, wait this long for the writer's other events (a
/// rename usually comes with a create and a modify) so one change is one reload.
const SETTLE: Duration = Duration::from_millis(50);

/// Where the proxy gets its certificates from. Every source delivers whole
/// [`CertSet`]s; each new set is swapped in for new handshakes at once.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertSource {
    /// Sets published in this process, e.g. by `berth_acme_core`'s certificate
    /// manager (the embedded and sidecar cases). The current value is served from the
    /// start; each change is served as soon as it is published.
    Watch(watch::Receiver<CertSet>),
    /// One fixed set, never reloaded.
    Static(CertSet),
    /// Files another process writes, watched for changes: a directory of combined
    /// `<name>.pem` files (chain, leaf first, then the private key), or a single
    /// combined PEM file. Rewrites are served within a second; a rewrite that does not
    /// load is logged and the previous certificates keep serving.
    ///
    /// A `*.json` path is taken for an `acme.json` store (Traefik's or another berth's):
    /// every readable, unexpired certificate of every resolver section is served, the
    /// newest per set of names; the file is never modified.
    File(PathBuf),
    /// A PEM chain file and its PEM private key file, watched like [`CertSource::File`].
    PemPair {
        /// The chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, SEC1 or PKCS#1).
        key: PathBuf,
    },
}

/// A started source: the first set is loaded, and what delivers later ones is running
/// (a watch receiver, or a file watch whose events wait for [`Feed::run`]).
pub(crate) enum Feed {
    Static,
    Watch(watch::Receiver<CertSet>),
    Files { layout: Layout, watch: FileWatch },
}

impl Feed {
    /// Loads the first set and starts watching. Blocking file I/O for file sources.
    pub(crate) fn start(source: CertSource) -> Result<(CertSet, Self), Error> {
        match source {
            CertSource::Static(set) => Ok((set, Self::Static)),
            CertSource::Watch(mut rx) => {
                let first = rx.borrow_and_update().clone();
                Ok((first, Self::Watch(rx)))
            }
            CertSource::File(path) => Self::start_files(Layout::detect(path)),
            CertSource::PemPair { cert, key } => Self::start_files(Layout::PemPair { cert, key }),
        }
    }

    fn start_files(layout: Layout) -> Result<(CertSet, Self), Error> {
        // Watch first, then read: a rewrite between the two is then seen as a change
        // rather than lost.
        let watch = match files::watch(&layout) {
            Ok(watch) => watch,
            // A missing directory is better reported as the file that cannot be read.
            Err(watch_error) => return Err(layout.load().err().unwrap_or(watch_error)),
        };
        let first = layout.load()?;
        tracing::info!(
            source = %layout.describe(),
            certificates = first.certificates().len(),
            "loaded certificates"
        );
        Ok((first, Self::Files { layout, watch }))
    }

    /// Delivers new sets to `resolver` until `shutdown`.
    pub(crate) async fn run(
        self,
        resolver: Arc<CertResolver>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) {
        match self {
            Self::Static => {}
            Self::Watch(mut rx) => loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            tracing::info!("certificate publisher stopped; keeping the last certificates");
                            return;
                        }
                        let set = rx.borrow_and_update().clone();
                        let count = set.certificates().len();
                        resolver.replace(set);
                        tracing::info!(certificates = count, "reloaded certificates");
                    }
                }
            },
            Self::Files { layout, watch } => loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = watch.changed.notified() => {}
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(SETTLE) => {}
                }
                let reading = layout.clone();
                let loaded = tokio::task::spawn_blocking(move || reading.load()).await;
                match loaded {
                    Ok(Ok(set)) => {
                        let count = set.certificates().len();
                        resolver.replace(set);
                        tracing::info!(
                            source = %layout.describe(),
                            certificates = count,
                            "reloaded certificates"
                        );
                    }
                    Ok(Err(error)) => {
                        metrics.reload_failed();
                        tracing::error!(
                            source = %layout.describe(), %error,
                            "certificate files changed but do not load; still serving the previous certificates"
                        );
                    }
                    Err(join_error) => {
                        metrics.reload_failed();
                        tracing::error!(%join_error, "certificate reload task failed");
                    }
                }
            },
        }
    }
}
