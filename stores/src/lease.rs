//! The renewal loop every expiring lock shares: renew at a third of the TTL, report the
//! lock lost when the store says it is gone, and give it up before the TTL runs out when
//! renewing keeps failing — so the next holder never overlaps with this one.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// This process as a lock holder, for other replicas' status pages: `host:pid`.
pub(crate) fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

/// A lock's token: the holder's name, then randomness (fencing compares the whole).
pub(crate) fn new_token() -> String {
    format!("{} {:032x}", holder_name(), rand::random::<u128>())
}

/// The holder's name in a token made by [`new_token`].
pub(crate) fn holder_of(token: &str) -> String {
    token
        .rsplit_once(' ')
        .map_or(token, |(holder, _)| holder)
        .to_owned()
}

/// What one renewal attempt found.
pub(crate) enum Renewal {
    /// Extended by another TTL.
    Renewed,
    /// The store says the lock is not ours any more.
    Gone,
    /// The store could not be asked; why.
    Failed(String),
}

/// One backend's way of extending a lock.
pub(crate) trait Renew: Send {
    /// Where the lock is, for log lines: the store and the lock's key.
    fn names(&self) -> (&str, &str);
    /// Extends the lock once.
    fn renew(&mut self) -> impl Future<Output = Renewal> + Send;
}

/// Starts renewing `lock` every `ttl / 3` (see [`keep_renewed`]); returns the token
/// cancelled when the lock is lost and the guard that stops the renewal when the lease
/// holding it is dropped.
pub(crate) fn spawn_renewal(
    lock: impl Renew + 'static,
    ttl: Duration,
) -> (CancellationToken, DropGuard) {
    let lost = CancellationToken::new();
    let stop = CancellationToken::new();
    tokio::spawn(keep_renewed(lock, ttl, lost.clone(), stop.clone()));
    (lost, stop.drop_guard())
}

/// Renews every `ttl / 3` until `stop`; cancels `lost` (and returns) when the lock is
/// gone or can no longer be kept.
pub(crate) async fn keep_renewed(
    mut lock: impl Renew,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let mut valid_until = Instant::now() + ttl;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        let asked = Instant::now();
        match lock.renew().await {
            Renewal::Renewed => valid_until = asked + ttl,
            Renewal::Gone => {
                let (store, key) = lock.names();
                tracing::warn!(store = %store, lock = %key, "lock lost to expiry or another holder; stopping the work it guarded");
                lost.cancel();
                return;
            }
            Renewal::Failed(error) => {
                if Instant::now() + ttl / 3 >= valid_until {
                    let (store, key) = lock.names();
                    tracing::warn!(store = %store, lock = %key, %error, "cannot renew a lock; giving it up before it expires");
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
