//! Times as people and programs read them: RFC 3339 text to the second, and whole days
//! left. The one formatter for log fields, error messages, `berth certs` and the admin
//! API, so a time reads the same everywhere.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use berth_acme_core::timestamp::{days_left, rfc3339};
//!
//! let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
//! assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
//! let now = SystemTime::UNIX_EPOCH;
//! assert_eq!(days_left(now + Duration::from_secs(3 * 86_400 + 5), now), 3);
//! assert_eq!(days_left(now, now + Duration::from_secs(5)), -1);
//! ```

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 text of a time in UTC, to the second (`2026-03-01T12:00:00Z`).
pub fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    // Formatting fails only for years outside 0..=9999, which no certificate carries.
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Whole days from `now` until `at`: rounded down while `at` is ahead, and negative
/// (rounded away from zero) once it has passed, so an expired certificate never shows 0.
pub fn days_left(at: SystemTime, now: SystemTime) -> i64 {
    const DAY: u64 = 86_400;
    match at.duration_since(now) {
        Ok(ahead) => i64::try_from(ahead.as_secs() / DAY).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs().div_ceil(DAY)).unwrap_or(i64::MAX),
    }
}
