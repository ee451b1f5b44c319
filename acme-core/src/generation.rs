//! One generation of a reloadable [`CertManager`]: its renewal loop running, and the
//! certificate sets it publishes copied into a channel that outlives it. A server that
//! re-reads its configuration (SIGHUP) starts a new manager, stops the old generation
//! and starts the new one, while its TLS listener keeps reading the same channel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{CertManager, CertSet};

/// A running manager and the tasks that live and die with it. Dropping it leaves the
/// tasks running; [`Generation::stop`] ends them.
///
/// ```no_run
/// # async fn f(manager: std::sync::Arc<berth_acme_core::CertManager>) {
/// use std::time::Duration;
///
/// use berth_acme_core::{CertSet, Generation};
/// use tokio::sync::watch;
///
/// // The proxy reads `served` for its whole life.
/// let (certs, served) = watch::channel(CertSet::default());
/// let generation = Generation::start(manager, certs.clone());
/// // …on reload: stop this generation, start the next with the same `certs`.
/// generation.stop(Duration::from_secs(60)).await;
/// # drop(served);
/// # }
/// ```
#[derive(Debug)]
pub struct Generation {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Generation {
    /// Starts `manager`'s renewal loop ([`CertManager::run`]) and copies every set it
    /// publishes (the current one first) into `certs`.
    pub fn start(manager: Arc<CertManager>, certs: watch::Sender<CertSet>) -> Self {
        let stop = CancellationToken::new();
        let renewals = tokio::spawn({
            let (manager, stop) = (Arc::clone(&manager), stop.clone());
            async move { manager.run(stop).await }
        });
        let forward = tokio::spawn(forward(manager.subscribe(), certs, stop.clone()));
        Self {
            stop,
            tasks: vec![renewals, forward],
        }
    }

    /// Cancelled when the generation stops: for tasks started with [`Generation::spawn`].
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` (one that ends once [`Generation::stopping`] is cancelled, such as a
    /// counter of the manager's events) as part of this generation.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Stops the renewal loop after the order in flight (if any) and the other tasks,
    /// waiting at most `deadline`; what is still running then is aborted. Returns whether
    /// everything ended in time.
    pub async fn stop(self, deadline: Duration) -> bool {
        self.stop.cancel();
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(deadline, all).await.is_ok() {
            return true;
        }
        tracing::warn!(?deadline, "an order was still in flight; abandoning it");
        for abort in aborts {
            abort.abort();
        }
        false
    }
}

/// Copies what the manager publishes into `certs` until `stop` or the manager is gone.
async fn forward(
    mut published: watch::Receiver<CertSet>,
    certs: watch::Sender<CertSet>,
    stop: CancellationToken,
) {
    certs.send_replace(published.borrow_and_update().clone());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
                certs.send_replace(published.borrow_and_update().clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DEFAULT_RESOLVER, FileStore};
    use crate::{AccountConfig, Ca, ManagerConfig};

    async fn manager(dir: &std::path::Path) -> Arc<CertManager> {
        let store = FileStore::open(&dir.join("acme.json"), DEFAULT_RESOLVER)
            .await
            .unwrap();
        let account = AccountConfig::new(Ca::default());
        // No managed certificates: the loop never contacts the CA.
        Arc::new(CertManager::new(
            ManagerConfig::new(store, account),
            Vec::new(),
            Vec::new(),
        ))
    }

    #[tokio::test]
    async fn a_generation_forwards_its_managers_set_and_stops_with_its_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let (certs, mut served) = watch::channel(CertSet::default());
        let mut generation = Generation::start(manager(dir.path()).await, certs.clone());
        // The current set is forwarded at once, even an empty one.
        tokio::time::timeout(Duration::from_secs(5), served.changed())
            .await
            .unwrap()
            .unwrap();
        let stopping = generation.stopping();
        let (ended, mut ended_rx) = watch::channel(false);
        generation.spawn(async move {
            stopping.cancelled().await;
            ended.send_replace(true);
        });
        assert!(generation.stop(Duration::from_secs(5)).await);
        assert!(*ended_rx.borrow_and_update());
        // The channel outlives the generation: the next one sends into it.
        let next = Generation::start(manager(dir.path()).await, certs);
        assert!(next.stop(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_task_that_ignores_stop_is_aborted_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (certs, _served) = watch::channel(CertSet::default());
        let mut generation = Generation::start(manager(dir.path()).await, certs);
        generation.spawn(std::future::pending());
        assert!(!generation.stop(Duration::from_millis(100)).await);
    }
}
