//! The wait between attempts to re-open a change feed (Redis pub/sub, an etcd watch):
//! 200 ms, doubling up to 10 s while attempts fail, back to 200 ms once one works.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(200);
const LONGEST: Duration = Duration::from_secs(10);

/// The growing wait of one feed.
pub(crate) struct Reconnect {
    delay: Duration,
}

impl Reconnect {
    pub(crate) fn new() -> Self {
        Self { delay: FIRST }
    }

    /// The feed is open again: the next failure waits the shortest time.
    pub(crate) fn opened(&mut self) {
        self.delay = FIRST;
    }

    /// Waits before the next attempt and doubles the wait; `false` when `stop` came
    /// first.
    pub(crate) async fn wait(&mut self, stop: &CancellationToken) -> bool {
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(self.delay) => {}
        }
        self.delay = (self.delay * 2).min(LONGEST);
        true
    }
}
