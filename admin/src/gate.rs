//! One renewal request at a time, and the forced ones counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Forced renewals allowed in [`FORCED_WINDOW`]. A forced renewal orders every set anew
/// whether due or not; CAs without a preset budget (ZeroSSL, Google, a custom URL) would
/// otherwise let a loop of `berth renew --force` spend the account's real limits. Each one
/// renews every set, so this is also the limit per domain set.
pub(crate) const FORCED_PER_WINDOW: usize = 3;
const FORCED_WINDOW: Duration = Duration::from_secs(3600);

/// The renewal running now, and when the recent forced ones were asked.
#[derive(Debug, Default)]
pub(crate) struct RenewalGate {
    running: Option<RunningRenewal>,
    forced: VecDeque<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct RunningRenewal {
    since: SystemTime,
    force: bool,
}

/// Why a renewal request was not started.
#[derive(Debug, PartialEq)]
pub(crate) enum GateRefusal {
    /// One is running: asked at this time, forced or not.
    Running(SystemTime, bool),
    /// [`FORCED_PER_WINDOW`] forced renewals in the last hour.
    OverBudget { retry_after: Duration },
}

impl RenewalGate {
    /// Admits one renewal, or says what stands in its way.
    fn admit(&mut self, force: bool, now: Instant) -> Result<(), GateRefusal> {
        if let Some(running) = self.running {
            return Err(GateRefusal::Running(running.since, running.force));
        }
        if force {
            while self
                .forced
                .front()
                .is_some_and(|t| now.duration_since(*t) >= FORCED_WINDOW)
            {
                self.forced.pop_front();
            }
            if self.forced.len() >= FORCED_PER_WINDOW {
                let oldest = self.forced.front().copied().unwrap_or(now);
                return Err(GateRefusal::OverBudget {
                    retry_after: FORCED_WINDOW.saturating_sub(now.duration_since(oldest)),
                });
            }
            self.forced.push_back(now);
        }
        self.running = Some(RunningRenewal {
            since: SystemTime::now(),
            force,
        });
        Ok(())
    }
}

/// Admits a renewal through `gate`; the returned guard clears it when the request ends,
/// also when it is cancelled.
pub(crate) fn admit(gate: &Arc<Mutex<RenewalGate>>, force: bool) -> Result<Admitted, GateRefusal> {
    gate.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(force, Instant::now())?;
    Ok(Admitted(Arc::clone(gate)))
}

/// A renewal admitted by [`admit`], running until dropped.
pub(crate) struct Admitted(Arc<Mutex<RenewalGate>>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .running = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_second_renewal_waits_for_the_running_one() {
        let mut gate = RenewalGate::default();
        let now = Instant::now();
        gate.admit(false, now).unwrap();
        assert!(matches!(
            gate.admit(true, now),
            Err(GateRefusal::Running(_, false))
        ));
        gate.running = None;
        gate.admit(false, now).unwrap();
    }

    #[test]
    fn the_guard_frees_the_gate_when_the_request_ends() {
        let gate = Arc::new(Mutex::new(RenewalGate::default()));
        let admitted = admit(&gate, false).unwrap();
        assert!(admit(&gate, false).is_err());
        drop(admitted);
        assert!(admit(&gate, false).is_ok());
    }

    #[test]
    fn forced_renewals_are_limited_per_hour() {
        let mut gate = RenewalGate::default();
        let start = Instant::now();
        for i in 0..FORCED_PER_WINDOW {
            gate.admit(true, start + Duration::from_secs(i as u64))
                .unwrap();
            gate.running = None;
        }
        let later = start + Duration::from_secs(600);
        assert_eq!(
            gate.admit(true, later),
            Err(GateRefusal::OverBudget {
                retry_after: Duration::from_secs(3000)
            })
        );
        // Renewing what is due is not limited here (the CA budget and the ledger apply).
        gate.admit(false, later).unwrap();
        gate.running = None;
        gate.admit(true, start + FORCED_WINDOW).unwrap();
    }
}
