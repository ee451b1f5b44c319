//! [`DnsError`]: what can go wrong answering DNS-01, each naming the provider or server,
//! the record, and what to do about it.

use std::time::Duration;

use crate::Setting;

/// A DNS-01 failure. Never carries a TSIG secret or a provider credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The provider could not add or remove the TXT record.
    #[error("dns provider {provider} could not {action} TXT {record}: {reason}")]
    Provider {
        /// The provider, e.g. `rfc2136 (10.0.0.53:53)` or `exec (/usr/local/bin/dns-hook)`.
        provider: String,
        /// `add` or `remove`.
        action: &'static str,
        /// The record's name.
        record: String,
        /// What went wrong and how to fix it.
        reason: String,
        /// The setting at fault, when the provider knows it.
        setting: Option<Setting>,
    },
    /// A lookup (CNAME, SOA, NS, TXT) failed.
    #[error("DNS lookup of {record_type} {name} at {server} failed: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The record type.
        record_type: String,
        /// The server asked.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// No zone holds the name (the SOA walk reached the root).
    #[error(
        "no DNS zone found for {name} (asked {server}); configure the zone, or check that the resolver is one that answers for the name"
    )]
    NoZone {
        /// The name.
        name: String,
        /// The server asked.
        server: String,
    },
    /// The record did not show up on every nameserver in time.
    #[error(
        "TXT {record} did not appear on {} within {:.0}s; the update may not have reached the secondaries — allow a longer propagation timeout or check zone transfers",
        missing.join(", "), waited.as_secs_f64()
    )]
    Propagation {
        /// The record's name.
        record: String,
        /// How long berth waited.
        waited: Duration,
        /// The nameservers that never answered with the value.
        missing: Vec<String>,
    },
    /// The DNS-01 settings are unusable.
    #[error("invalid DNS-01 settings: {reason}")]
    Config {
        /// What is wrong and how to fix it.
        reason: String,
        /// The setting at fault, when one is.
        setting: Option<Setting>,
    },
}

impl DnsError {
    /// The setting whose change fixes this error, when one does.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Self::Provider { setting, .. } | Self::Config { setting, .. } => *setting,
            Self::NoZone { .. } => Some(Setting::DnsZone),
            Self::Propagation { .. } => Some(Setting::DnsPropagationTimeout),
            _ => None,
        }
    }

    /// Unusable settings, none in particular at fault.
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
            setting: None,
        }
    }

    /// Unusable settings: `setting` is at fault.
    pub(crate) fn setting_at_fault(setting: Setting, reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
            setting: Some(setting),
        }
    }
}
