//! When to renew: the CA's ACME Renewal Information window (ARI, RFC 9773) when the CA
//! offers one, else two thirds into the certificate's validity.
//!
//! ARI lets a CA move renewals earlier — ahead of a mass revocation, say — so a client
//! that follows it never serves a revoked certificate. berth asks the CA about each stored
//! certificate, picks one random moment inside the suggested window (RFC 9773 §4.2, so a
//! fleet does not renew in lockstep), and remembers the pick and the CA's `Retry-After` in
//! its state file so a restart neither re-rolls the moment nor asks again early.

use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;

/// Ask again at least this often, whatever `Retry-After` said (RFC 9773 §4.3.2 lets a
/// client clamp unreasonably long values; a day keeps emergencies visible).
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Never ask more often than this, whatever `Retry-After` said.
const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// After asking failed (network, CA error), try again this much later.
pub(crate) const RETRY_AFTER_ERROR: Duration = Duration::from_secs(3600);

/// A CA's suggested renewal window for a certificate (RFC 9773 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Renew no earlier than this.
    pub start: SystemTime,
    /// Renew before this.
    pub end: SystemTime,
    /// Why the window is where it is, if the CA explains it.
    pub explanation_url: Option<String>,
    /// When to ask again (the CA's `Retry-After`).
    pub check_again_after: Duration,
}

impl RenewalWindow {
    /// The window from a CA's `renewalInfo` answer and its `Retry-After`.
    pub fn from_info(info: instant_acme::RenewalInfo, check_again_after: Duration) -> Self {
        Self {
            start: info.suggested_window.start.into(),
            end: info.suggested_window.end.into(),
            explanation_url: info.explanation_url,
            check_again_after,
        }
    }

    /// A uniformly random moment inside the window (RFC 9773 §4.2). A window that has
    /// already ended, or an inverted one, means "now".
    pub fn pick(&self, now: SystemTime) -> SystemTime {
        let start = self.start.max(now);
        match self.end.duration_since(start) {
            Ok(span) if !span.is_zero() => start + span.mul_f64(rand::rng().random_range(0.0..1.0)),
            _ => now,
        }
    }
}

/// What berth remembers of a CA's renewal advice for one stored certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalHint {
    /// The domain set's key, so hints of replaced certificates can be dropped.
    pub domains: String,
    /// The moment picked inside the CA's window; `None` when the CA offers no window.
    pub renew_at: Option<SystemTime>,
    /// The window the moment was picked from.
    pub window: Option<(SystemTime, SystemTime)>,
    /// The CA's explanation of the window, if any.
    #[serde(default)]
    pub explanation_url: Option<String>,
    /// Do not ask the CA again before this.
    pub check_again_at: SystemTime,
}

impl RenewalHint {
    /// The hint after the CA answered with `window` (or, with `None`, said it offers no
    /// renewal information). A moment picked earlier from the same window is kept, so
    /// asking again does not re-roll it.
    pub fn from_answer(
        domains: &str,
        window: Option<&RenewalWindow>,
        previous: Option<&RenewalHint>,
        now: SystemTime,
    ) -> Self {
        let Some(window) = window else {
            return Self::without_window(domains, now + MAX_CHECK_INTERVAL);
        };
        let bounds = (window.start, window.end);
        let renew_at = match previous {
            Some(RenewalHint {
                window: Some(w),
                renew_at: Some(at),
                ..
            }) if *w == bounds => *at,
            _ => window.pick(now),
        };
        Self {
            domains: domains.to_owned(),
            renew_at: Some(renew_at),
            window: Some(bounds),
            explanation_url: window.explanation_url.clone(),
            check_again_at: now
                + window
                    .check_again_after
                    .clamp(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL),
        }
    }

    /// The hint after asking failed: the earlier advice stands, ask again later.
    pub fn after_error(domains: &str, previous: Option<&RenewalHint>, now: SystemTime) -> Self {
        let check_again_at = now + RETRY_AFTER_ERROR;
        match previous {
            Some(previous) => Self {
                check_again_at,
                ..previous.clone()
            },
            None => Self::without_window(domains, check_again_at),
        }
    }

    /// No advice: the two-thirds schedule applies until `check_again_at`.
    fn without_window(domains: &str, check_again_at: SystemTime) -> Self {
        Self {
            domains: domains.to_owned(),
            renew_at: None,
            window: None,
            explanation_url: None,
            check_again_at,
        }
    }

    /// Whether the CA should be asked again.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        now >= self.check_again_at
    }
}

/// When `certificate` is due: the moment picked in the CA's renewal window when there
/// is one (and it falls before expiry), else [`renewal_due`].
pub fn due_at(certificate: &Certificate, hint: Option<&RenewalHint>) -> SystemTime {
    match hint.and_then(|h| h.renew_at) {
        Some(at) if at < certificate.info().not_after => at,
        _ => renewal_due(certificate),
    }
}

/// When a certificate is due without renewal information: two thirds into its validity
/// (day 60 of 90, day 30 of 45, day 4 of 6), minus up to 1/30 of the lifetime chosen
/// from the serial, so a fleet spreads out but one certificate's due time is the same
/// across restarts.
pub fn renewal_due(certificate: &Certificate) -> SystemTime {
    let info = certificate.info();
    let lifetime = info.lifetime();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    info.serial_hex.hash(&mut hasher);
    let spread = lifetime / 30;
    let jitter = if spread.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_nanos(
            hasher.finish() % u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX).max(1),
        )
    };
    info.not_before + lifetime * 2 / 3 - jitter
}

/// How near a certificate is to expiring, relative to its own lifetime: a 6-day
/// certificate with 3 days left is as healthy as a 90-day one with 45 (a fixed "14
/// days" threshold would show every short-lived certificate as expiring, forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ExpiryLevel {
    /// More than a quarter of its lifetime left: renewal is not late.
    Fine,
    /// Less than a quarter left: renewal (due at two thirds) is late.
    Soon,
    /// Less than a tenth left, or expired: it will stop working unless renewed now.
    Critical,
}

impl ExpiryLevel {
    /// The level of a certificate valid from `not_before` to `not_after`, at `now`.
    pub fn at(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> Self {
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let Ok(left) = not_after.duration_since(now) else {
            return Self::Critical;
        };
        if left <= lifetime / 10 {
            Self::Critical
        } else if left <= lifetime / 4 {
            Self::Soon
        } else {
            Self::Fine
        }
    }

    /// `fine`, `soon` or `critical`, for JSON and CSS.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fine => "fine",
            Self::Soon => "soon",
            Self::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_secrets::Secret;
    use rcgen::{CertificateParams, KeyPair};

    const DAY: Duration = Duration::from_secs(86400);

    /// A `renewalInfo` answer as Let's Encrypt sends it (RFC 9773 §4.2 format), recorded
    /// for a certificate issued 2025-01-01 for 90 days: the usual window around day 60.
    const RECORDED_NORMAL: &str = r#"{
  "suggestedWindow": {
    "start": "2025-03-01T00:00:00Z",
    "end": "2025-03-03T00:00:00Z"
  }
}"#;

    /// The same certificate during a revocation incident: the window moved into the
    /// past, with an explanation.
    const RECORDED_INCIDENT: &str = r#"{
  "suggestedWindow": {
    "start": "2025-01-10T00:00:00Z",
    "end": "2025-01-10T12:00:00Z"
  },
  "explanationURL": "https://community.letsencrypt.org/t/revoking-certain-certificates"
}"#;

    fn at(rfc3339: &str) -> SystemTime {
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .into()
    }

    fn cert(not_before: &str, days: i64) -> Certificate {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
        params.not_before =
            time::OffsetDateTime::parse(not_before, &time::format_description::well_known::Rfc3339)
                .unwrap();
        params.not_after = params.not_before + time::Duration::days(days);
        let pem = params.self_signed(&key).unwrap().pem();
        Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap()
    }

    fn window(recorded: &str, retry_after: Duration) -> RenewalWindow {
        let info: instant_acme::RenewalInfo = serde_json::from_str(recorded).unwrap();
        RenewalWindow::from_info(info, retry_after)
    }

    #[test]
    fn without_ari_due_is_two_thirds_into_validity_with_stable_jitter() {
        let cert = cert("2023-11-14T22:13:20Z", 90);
        let due = renewal_due(&cert);
        let start = cert.info().not_before;
        let at = due.duration_since(start).unwrap();
        assert!(at <= 60 * DAY, "{at:?}");
        assert!(at >= 57 * DAY, "{at:?}");
        assert_eq!(due, renewal_due(&cert));
        assert_eq!(due_at(&cert, None), due);
    }

    #[test]
    fn short_lived_certificates_are_due_two_thirds_in() {
        for days in [6, 45] {
            let cert = cert("2025-01-01T00:00:00Z", days);
            let elapsed = renewal_due(&cert)
                .duration_since(cert.info().not_before)
                .unwrap();
            let lifetime = cert.info().lifetime();
            assert!(elapsed <= lifetime * 2 / 3, "{days}: {elapsed:?}");
            assert!(
                elapsed >= lifetime * 2 / 3 - lifetime / 30,
                "{days}: {elapsed:?}"
            );
        }
    }

    #[test]
    fn recorded_window_is_parsed_and_a_moment_inside_it_is_picked() {
        let cert = cert("2025-01-01T00:00:00Z", 90);
        let now = at("2025-02-01T00:00:00Z");
        let window = window(RECORDED_NORMAL, Duration::from_secs(6 * 3600));
        assert_eq!(window.start, at("2025-03-01T00:00:00Z"));
        assert_eq!(window.end, at("2025-03-03T00:00:00Z"));
        assert_eq!(window.explanation_url, None);

        let hint = RenewalHint::from_answer("a.example.com", Some(&window), None, now);
        let picked = hint.renew_at.unwrap();
        assert!(picked >= window.start && picked < window.end, "{picked:?}");
        assert_eq!(due_at(&cert, Some(&hint)), picked);
        assert_eq!(hint.check_again_at, now + Duration::from_secs(6 * 3600));
        assert!(!hint.is_stale(now));
        assert!(hint.is_stale(hint.check_again_at));

        // Asking again with an unchanged window keeps the moment.
        let again = RenewalHint::from_answer("a.example.com", Some(&window), Some(&hint), now);
        assert_eq!(again.renew_at, hint.renew_at);
    }

    #[test]
    fn picks_spread_over_the_window() {
        let window = window(RECORDED_NORMAL, Duration::ZERO);
        let now = at("2025-02-01T00:00:00Z");
        let picks: std::collections::BTreeSet<_> = (0..50).map(|_| window.pick(now)).collect();
        assert!(picks.len() > 40, "{} distinct picks", picks.len());
    }

    #[test]
    fn an_incident_window_in_the_past_makes_the_certificate_due_now() {
        let cert = cert("2025-01-01T00:00:00Z", 90);
        let now = at("2025-01-20T00:00:00Z");
        let normal = RenewalHint::from_answer(
            "a.example.com",
            Some(&window(RECORDED_NORMAL, DAY)),
            None,
            at("2025-01-05T00:00:00Z"),
        );
        let incident = window(RECORDED_INCIDENT, Duration::from_secs(3600));
        assert_eq!(
            incident.explanation_url.as_deref(),
            Some("https://community.letsencrypt.org/t/revoking-certain-certificates")
        );
        // The window moved, so the old pick is dropped for one in the new window.
        let hint = RenewalHint::from_answer("a.example.com", Some(&incident), Some(&normal), now);
        assert_eq!(hint.renew_at, Some(now));
        assert_eq!(due_at(&cert, Some(&hint)), now);
        assert!(due_at(&cert, Some(&hint)) < renewal_due(&cert));
    }

    #[test]
    fn no_ari_and_errors_fall_back_and_bound_how_often_the_ca_is_asked() {
        let cert = cert("2025-01-01T00:00:00Z", 90);
        let now = at("2025-02-01T00:00:00Z");
        let none = RenewalHint::from_answer("a.example.com", None, None, now);
        assert_eq!(none.renew_at, None);
        assert_eq!(none.check_again_at, now + MAX_CHECK_INTERVAL);
        assert_eq!(due_at(&cert, Some(&none)), renewal_due(&cert));

        // A CA asking for a week between checks is clamped to a day; zero to a minute.
        let lazy = RenewalHint::from_answer(
            "a.example.com",
            Some(&window(RECORDED_NORMAL, 7 * DAY)),
            None,
            now,
        );
        assert_eq!(lazy.check_again_at, now + MAX_CHECK_INTERVAL);
        let eager = RenewalHint::from_answer(
            "a.example.com",
            Some(&window(RECORDED_NORMAL, Duration::ZERO)),
            None,
            now,
        );
        assert_eq!(eager.check_again_at, now + MIN_CHECK_INTERVAL);

        let failed = RenewalHint::after_error("a.example.com", Some(&lazy), now);
        assert_eq!(failed.renew_at, lazy.renew_at, "earlier advice stands");
        assert_eq!(failed.check_again_at, now + RETRY_AFTER_ERROR);
    }

    #[test]
    fn a_window_past_expiry_is_ignored() {
        let cert = cert("2025-01-01T00:00:00Z", 90);
        let hint = RenewalHint {
            domains: "a.example.com".into(),
            renew_at: Some(at("2025-06-01T00:00:00Z")),
            window: None,
            explanation_url: None,
            check_again_at: at("2025-02-01T00:00:00Z"),
        };
        assert_eq!(due_at(&cert, Some(&hint)), renewal_due(&cert));
    }

    #[test]
    fn expiry_level_is_relative_to_the_lifetime() {
        let start = at("2026-01-01T00:00:00Z");
        let level = |lifetime_days: u64, elapsed_hours: u64| {
            ExpiryLevel::at(
                start,
                start + DAY * lifetime_days as u32,
                start + Duration::from_secs(3600 * elapsed_hours),
            )
        };
        // A 6-day certificate half-way through is fine, where "14 days left" said it
        // was expiring from the moment it was issued.
        assert_eq!(level(6, 72), ExpiryLevel::Fine);
        assert_eq!(level(6, 4 * 24 + 12), ExpiryLevel::Soon);
        assert_eq!(level(6, 5 * 24 + 12), ExpiryLevel::Critical);
        assert_eq!(level(90, 24 * 45), ExpiryLevel::Fine);
        assert_eq!(level(90, 24 * 70), ExpiryLevel::Soon);
        assert_eq!(level(90, 24 * 85), ExpiryLevel::Critical);
        assert_eq!(level(90, 24 * 91), ExpiryLevel::Critical);
    }
}
