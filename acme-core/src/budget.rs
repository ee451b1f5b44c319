//! The client-side rate budget: before an order is placed, the issuance history in the
//! state file is checked against the CA's published limits, and an order that would
//! exceed one is refused locally — with the limit's name and when it frees up — instead
//! of being sent to the CA, where it would count against the account.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ca::{Ca, CaFamily};
use crate::domain::DomainSet;
use crate::timestamp::rfc3339;

const HOUR: Duration = Duration::from_secs(3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// One limit: at most `count` events per sliding `period`.
///
/// `count` is never 0: a limit that allows no event at all would never free up, and
/// a CA without a limit is a `None` window in [`RateLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// How many events the CA allows…
    pub count: NonZeroU32,
    /// …in this period.
    pub period: Duration,
}

impl Window {
    /// `count` per `period`.
    pub const fn new(count: NonZeroU32, period: Duration) -> Self {
        Self { count, period }
    }
}

/// A published limit's count, checked when compiled.
#[expect(
    clippy::expect_used,
    reason = "only evaluated in constants, where a 0 fails the build"
)]
const fn limit(count: u32) -> NonZeroU32 {
    NonZeroU32::new(count).expect("a published limit allows at least one event")
}

/// The limits the budget mirrors; `None` means the CA publishes no such limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimits {
    /// New orders per account.
    pub new_orders_per_account: Option<Window>,
    /// Certificates per registered domain (public-suffix + 1), across all its names.
    pub certificates_per_registered_domain: Option<Window>,
    /// Certificates for exactly the same set of names ("duplicate certificates").
    pub certificates_per_exact_set: Option<Window>,
    /// Failed authorizations per identifier per account.
    pub failed_validations_per_identifier: Option<Window>,
}

impl RateLimits {
    /// Let's Encrypt's published limits (letsencrypt.org/docs/rate-limits, updated
    /// 2025): 300 new orders per account per 3 h; 50 certificates per registered domain
    /// per 7 days; 5 certificates per exact set of identifiers per 7 days; 5
    /// authorization failures per identifier per account per hour. The staging
    /// environment's limits are higher, but mirroring production there too means a
    /// setup that passes staging also fits production.
    pub const LETS_ENCRYPT: Self = Self {
        new_orders_per_account: Some(Window::new(limit(300), Duration::from_secs(3 * 3600))),
        certificates_per_registered_domain: Some(Window::new(limit(50), WEEK)),
        certificates_per_exact_set: Some(Window::new(limit(5), WEEK)),
        failed_validations_per_identifier: Some(Window::new(limit(5), HOUR)),
    };

    /// No limits: for private CAs unless configured.
    pub const NONE: Self = Self {
        new_orders_per_account: None,
        certificates_per_registered_domain: None,
        certificates_per_exact_set: None,
        failed_validations_per_identifier: None,
    };

    /// The published limits of a CA's family. ZeroSSL and Google publish no per-domain
    /// issuance limits; Let's Encrypt's failed-validation limit is applied to them too,
    /// since every CA treats validation storms as abuse.
    pub fn for_ca(ca: &Ca) -> Self {
        match ca.family() {
            CaFamily::LetsEncrypt => Self::LETS_ENCRYPT,
            CaFamily::ZeroSsl | CaFamily::Google => Self {
                failed_validations_per_identifier: Self::LETS_ENCRYPT
                    .failed_validations_per_identifier,
                ..Self::NONE
            },
            _ => Self::NONE,
        }
    }
}

/// What happened, as recorded in the issuance history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HistoryKind {
    /// An order was placed.
    OrderPlaced,
    /// A certificate was issued.
    CertificateIssued,
    /// An authorization for one identifier failed.
    ValidationFailed {
        /// The identifier that failed.
        identifier: String,
    },
}

/// One entry of the issuance history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When.
    pub at: SystemTime,
    /// The CA's directory URL.
    pub ca: String,
    /// The domain set, stored as its [`DomainSet::key`] (so read back, its names are in
    /// key order).
    #[serde(with = "crate::store::records::set_key")]
    pub domains: DomainSet,
    /// What.
    #[serde(flatten)]
    pub kind: HistoryKind,
}

/// An order the budget refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to order {domains} from {ca}: it would exceed the CA's limit of {count} {what} per {} ({scope}); the budget frees up at {}. Fix what failed (the certificate's status shows the last error), or raise the limit for a private CA",
    human_duration(*period),
    rfc3339(*frees_at)
)]
pub struct BudgetExceeded {
    /// The domain set.
    pub domains: String,
    /// The CA's directory URL.
    pub ca: String,
    /// Which limit, e.g. "certificates for the same set of names".
    pub what: &'static str,
    /// What the limit is counted over (account, registered domain, identifier).
    pub scope: String,
    /// The limit's count.
    pub count: u32,
    /// The limit's period.
    pub period: Duration,
    /// When the oldest counted event leaves the window.
    pub frees_at: SystemTime,
}

/// The registered domain of a name: the public suffix plus one label
/// (`www.example.co.uk` → `example.co.uk`), as Let's Encrypt counts certificates.
pub fn registered_domain(name: &str) -> String {
    let base = name.strip_prefix("*.").unwrap_or(name);
    match psl::domain_str(base) {
        Some(domain) => domain.to_owned(),
        None => base.to_owned(),
    }
}

/// Checks whether an order for `domains` from `ca` fits the budget at `now`.
pub fn check(
    limits: &RateLimits,
    history: &[HistoryEvent],
    ca: &str,
    domains: &DomainSet,
    now: SystemTime,
) -> Result<(), Box<BudgetExceeded>> {
    let budget = Budget {
        history,
        ca,
        domains,
        now,
    };
    if let Some(window) = &limits.new_orders_per_account {
        budget.limit(window, "new orders", "per account".into(), |e| {
            e.kind == HistoryKind::OrderPlaced
        })?;
    }
    if let Some(window) = &limits.certificates_per_exact_set {
        budget.limit(
            window,
            "certificates for the same set of names",
            "this exact set".into(),
            |e| e.kind == HistoryKind::CertificateIssued && e.domains.same_names(domains),
        )?;
    }
    if let Some(window) = &limits.certificates_per_registered_domain {
        for reg in registered_domains(domains) {
            budget.limit(
                window,
                "certificates",
                format!("registered domain {reg}"),
                |e| {
                    e.kind == HistoryKind::CertificateIssued
                        && e.domains
                            .names()
                            .iter()
                            .any(|n| registered_domain(n.as_str()) == reg)
                },
            )?;
        }
    }
    if let Some(window) = &limits.failed_validations_per_identifier {
        for name in domains.names() {
            budget.limit(
                window,
                "failed validations",
                format!("identifier {}", name.base()),
                |e| matches!(&e.kind, HistoryKind::ValidationFailed { identifier } if identifier == name.base()),
            )?;
        }
    }
    Ok(())
}

/// The registered domains of a set's DNS names, each once.
fn registered_domains(domains: &DomainSet) -> Vec<String> {
    let mut registered: Vec<String> = domains
        .names()
        .iter()
        .filter(|n| !n.is_ip())
        .map(|n| registered_domain(n.as_str()))
        .collect();
    registered.sort_unstable();
    registered.dedup();
    registered
}

/// One order checked against the history: the CA and names asked for, and when.
struct Budget<'a> {
    history: &'a [HistoryEvent],
    ca: &'a str,
    domains: &'a DomainSet,
    now: SystemTime,
}

impl Budget<'_> {
    /// Refuses the order when the events at this CA that `counts` selects inside
    /// `window` already reach its count; `what` and `scope` name the limit.
    fn limit(
        &self,
        window: &Window,
        what: &'static str,
        scope: String,
        counts: impl Fn(&HistoryEvent) -> bool,
    ) -> Result<(), Box<BudgetExceeded>> {
        let mut times: Vec<SystemTime> = self
            .history
            .iter()
            .filter(|e| self.in_window(e, window) && counts(e))
            .map(|e| e.at)
            .collect();
        let allowed = window.count.get() as usize;
        if times.len() < allowed {
            return Ok(());
        }
        // The budget frees up when enough of the oldest events age out to leave room.
        times.sort_unstable();
        let oldest_to_expire = times[times.len() - allowed];
        Err(Box::new(BudgetExceeded {
            domains: self.domains.to_string(),
            ca: self.ca.to_owned(),
            what,
            scope,
            count: window.count.get(),
            period: window.period,
            frees_at: oldest_to_expire + window.period,
        }))
    }

    /// Whether `event` happened at this CA within `window` before now (an event in the
    /// future, from a clock that went back, counts).
    fn in_window(&self, event: &HistoryEvent, window: &Window) -> bool {
        event.ca == self.ca
            && self
                .now
                .duration_since(event.at)
                .map(|age| age < window.period)
                .unwrap_or(true)
    }
}

/// Drops history older than the longest window any limit uses (a week), so the state
/// file stays small.
pub fn prune(history: &mut Vec<HistoryEvent>, now: SystemTime) {
    history.retain(|e| {
        now.duration_since(e.at)
            .map(|age| age <= WEEK)
            .unwrap_or(true)
    });
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "https://ca.example/dir";

    fn event(at: SystemTime, domains: &str, kind: HistoryKind) -> HistoryEvent {
        HistoryEvent {
            at,
            ca: CA.into(),
            domains: set(&[domains]),
            kind,
        }
    }

    fn set(names: &[&str]) -> DomainSet {
        DomainSet::parse(names).unwrap()
    }

    /// [`check`] against Let's Encrypt's limits at [`CA`].
    fn lets_encrypt(
        history: &[HistoryEvent],
        domains: &DomainSet,
        now: SystemTime,
    ) -> Result<(), Box<BudgetExceeded>> {
        check(&RateLimits::LETS_ENCRYPT, history, CA, domains, now)
    }

    #[test]
    fn duplicate_certificate_limit_refuses_the_sixth_and_says_when() {
        let now = SystemTime::now();
        let domains = set(&["a.example.com"]);
        let history: Vec<_> = (0..5)
            .map(|i| {
                event(
                    now - Duration::from_secs(3600 * (i + 1)),
                    "a.example.com",
                    HistoryKind::CertificateIssued,
                )
            })
            .collect();
        let err = lets_encrypt(&history, &domains, now).unwrap_err();
        assert_eq!(err.what, "certificates for the same set of names");
        // The oldest of the five (5 h ago) leaves the 7-day window first.
        assert_eq!(err.frees_at, now - Duration::from_secs(5 * 3600) + WEEK);
        let text = err.to_string();
        assert!(
            text.contains("5 certificates for the same set of names per 7 days"),
            "{text}"
        );
        // Another CA's history does not count.
        assert!(
            check(
                &RateLimits::LETS_ENCRYPT,
                &history,
                "https://other/dir",
                &domains,
                now
            )
            .is_ok()
        );
    }

    #[test]
    fn events_outside_the_window_do_not_count() {
        let now = SystemTime::now();
        let history: Vec<_> = (0..10)
            .map(|_| {
                event(
                    now - WEEK - Duration::from_secs(1),
                    "a.example.com",
                    HistoryKind::CertificateIssued,
                )
            })
            .collect();
        assert!(lets_encrypt(&history, &set(&["a.example.com"]), now).is_ok());
    }

    #[test]
    fn registered_domain_limit_counts_across_subdomains() {
        let now = SystemTime::now();
        let history: Vec<_> = (0..50)
            .map(|i| {
                event(
                    now - Duration::from_secs(60),
                    &format!("h{i}.example.co.uk"),
                    HistoryKind::CertificateIssued,
                )
            })
            .collect();
        let err = lets_encrypt(&history, &set(&["new.example.co.uk"]), now).unwrap_err();
        assert_eq!(err.scope, "registered domain example.co.uk");
        assert!(lets_encrypt(&history, &set(&["new.example.org"]), now).is_ok());
    }

    #[test]
    fn failed_validations_per_identifier_per_hour() {
        let now = SystemTime::now();
        let failed = HistoryKind::ValidationFailed {
            identifier: "a.example.com".into(),
        };
        let history: Vec<_> = (0..5)
            .map(|_| {
                event(
                    now - Duration::from_secs(60),
                    "a.example.com",
                    failed.clone(),
                )
            })
            .collect();
        let err = lets_encrypt(&history, &set(&["*.a.example.com"]), now).unwrap_err();
        assert_eq!(err.what, "failed validations");
        assert!(
            check(
                &RateLimits::NONE,
                &history,
                CA,
                &set(&["a.example.com"]),
                now
            )
            .is_ok()
        );
    }

    #[test]
    fn tiny_configured_limit_refuses_next_order() {
        let now = SystemTime::now();
        let limits = RateLimits {
            new_orders_per_account: Some(Window::new(NonZeroU32::MIN, HOUR)),
            ..RateLimits::NONE
        };
        let history = vec![event(
            now - Duration::from_secs(10),
            "b.example.com",
            HistoryKind::OrderPlaced,
        )];
        let err = check(&limits, &history, CA, &set(&["a.example.com"]), now).unwrap_err();
        assert_eq!(err.what, "new orders");
        assert_eq!(err.frees_at, now - Duration::from_secs(10) + HOUR);
    }

    #[test]
    fn a_window_of_zero_events_is_refused_where_it_is_read() {
        let zero = r#"{"count": 0, "period": {"secs": 3600, "nanos": 0}}"#;
        let err = serde_json::from_str::<Window>(zero).unwrap_err();
        assert!(err.to_string().contains("nonzero"), "{err}");
        let one = r#"{"count": 1, "period": {"secs": 3600, "nanos": 0}}"#;
        assert_eq!(
            serde_json::from_str::<Window>(one).unwrap(),
            Window::new(NonZeroU32::MIN, HOUR)
        );
    }

    #[test]
    fn registered_domain_uses_the_public_suffix_list() {
        assert_eq!(registered_domain("www.example.com"), "example.com");
        assert_eq!(registered_domain("new.blog.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("*.example.com"), "example.com");
    }

    #[test]
    fn a_stored_history_event_reads_back_as_names_and_is_written_the_same_way() {
        // The format every berth so far has written: the set's key, comma-joined.
        let stored = r#"{"at":{"secs_since_epoch":1700000000,"nanos_since_epoch":0},"ca":"https://ca.example/dir","domains":"a.example.org,www.example.co.uk","kind":"certificate_issued"}"#;
        let read: HistoryEvent = serde_json::from_str(stored).unwrap();
        assert!(
            read.domains
                .same_names(&set(&["www.example.co.uk", "a.example.org"]))
        );
        assert_eq!(serde_json::to_string(&read).unwrap(), stored);
        // Written from a set in configuration order, it is stored as the key.
        let mut written = read.clone();
        written.domains = set(&["www.example.co.uk", "a.example.org"]);
        assert_eq!(serde_json::to_string(&written).unwrap(), stored);
        // Each name of the set counts for its registered domain.
        let limits = RateLimits {
            certificates_per_registered_domain: Some(Window::new(NonZeroU32::MIN, WEEK)),
            ..RateLimits::NONE
        };
        let now = read.at + Duration::from_secs(60);
        let err = check(&limits, &[read], CA, &set(&["new.example.co.uk"]), now).unwrap_err();
        assert_eq!(err.scope, "registered domain example.co.uk");
    }

    #[test]
    fn a_stored_history_event_with_a_malformed_set_is_refused_naming_it() {
        let stored = r#"{"at":{"secs_since_epoch":0,"nanos_since_epoch":0},"ca":"x","domains":"a.example.com,bad name","kind":"order_placed"}"#;
        let err = serde_json::from_str::<HistoryEvent>(stored).unwrap_err();
        assert!(err.to_string().contains("a.example.com,bad name"), "{err}");
    }

    #[test]
    fn prune_drops_only_old_events() {
        let now = SystemTime::now();
        let mut history = vec![
            event(
                now - WEEK - Duration::from_secs(5),
                "a.example.com",
                HistoryKind::OrderPlaced,
            ),
            event(
                now - Duration::from_secs(5),
                "a.example.com",
                HistoryKind::OrderPlaced,
            ),
        ];
        prune(&mut history, now);
        assert_eq!(history.len(), 1);
    }
}
