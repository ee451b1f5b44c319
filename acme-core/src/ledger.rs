//! The failure ledger's policy: how long to wait after a failure before asking the CA
//! again. The ledger itself is persisted in the state file, so the wait holds across
//! restarts — a crash-looping container asks the CA at most once per window.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Exponential backoff after failed orders.
///
/// The schedule starts at 5 minutes and doubles (5, 10, 20, 40, 80 min …) up to 24 h.
/// Why 5 minutes: Let's Encrypt allows 5 failed authorizations per identifier per
/// account per hour (rate-limits page, 2025); with this schedule at most 4 attempts fall
/// in any first hour, so berth never trips that limit on its own. Why 24 h: Let's
/// Encrypt pauses an identifier after days of consecutive failures; one attempt a day
/// keeps a broken setup visible in the logs without racing towards the pause. A random
/// 0–20 % is added so replicas that failed together do not retry in lockstep; the wait
/// is never shorter than the CA's own `Retry-After` or rate-limit reset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Extra random wait, as a fraction of the computed delay (0.2 = up to 20 %).
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5 * 60),
            max: Duration::from_secs(24 * 3600),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// The delay after `consecutive_failures` failures (1 for the first), without jitter.
    pub fn delay(&self, consecutive_failures: u32) -> Duration {
        let exponent = consecutive_failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// When the next attempt is allowed after a failure at `failed_at`: the backoff
    /// delay plus jitter, or the CA's `retry_after` if that is later.
    pub fn next_attempt(
        &self,
        consecutive_failures: u32,
        failed_at: SystemTime,
        retry_after: Option<SystemTime>,
    ) -> SystemTime {
        let delay = self.delay(consecutive_failures);
        let jitter = if self.jitter > 0.0 {
            delay.mul_f64(rand::rng().random_range(0.0..self.jitter))
        } else {
            Duration::ZERO
        };
        let ours = failed_at + delay + jitter;
        match retry_after {
            Some(theirs) if theirs > ours => theirs,
            _ => ours,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_minutes_and_caps_at_a_day() {
        let policy = BackoffPolicy::default();
        assert_eq!(policy.delay(1), Duration::from_secs(300));
        assert_eq!(policy.delay(2), Duration::from_secs(600));
        assert_eq!(policy.delay(5), Duration::from_secs(4800));
        assert_eq!(policy.delay(20), Duration::from_secs(86400));
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(86400));
    }

    #[test]
    fn at_most_four_attempts_in_the_first_hour() {
        // Let's Encrypt: 5 failed authorizations per identifier per hour.
        let policy = BackoffPolicy {
            jitter: 0.0,
            ..BackoffPolicy::default()
        };
        let mut at = Duration::ZERO;
        let mut attempts = 0;
        let mut failures = 0;
        while at < Duration::from_secs(3600) {
            attempts += 1;
            failures += 1;
            at += policy.delay(failures);
        }
        assert!(attempts <= 4, "{attempts} attempts in the first hour");
    }

    #[test]
    fn jitter_only_lengthens_and_retry_after_wins_when_later() {
        let policy = BackoffPolicy::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..100 {
            let next = policy.next_attempt(1, now, None);
            let waited = next.duration_since(now).unwrap();
            assert!(
                waited >= Duration::from_secs(300) && waited <= Duration::from_secs(360),
                "{waited:?}"
            );
        }
        let later = now + Duration::from_secs(7200);
        assert_eq!(policy.next_attempt(1, now, Some(later)), later);
        let earlier = now + Duration::from_secs(1);
        assert!(policy.next_attempt(1, now, Some(earlier)) > earlier);
    }
}
