//! `[dns]`: how DNS-01 answers are written and their propagation checked. The keys are
//! the `--dns-*` flags without the prefix, `_` for `-`.

use std::path::PathBuf;
use std::time::Duration;

use berth_acme_core::challenge::dns01::TsigAlgorithm;
use serde::{Deserialize, Serialize};

/// The DNS-01 settings one layer sets (`None`/empty: unset, left to the layer below).
/// Turned into a solver by the caller, which reads the TSIG secret file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// `rfc2136` or `exec`; inferred from `server` or `exec` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// rfc2136: the zone's primary server, IP[:port].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// rfc2136: TSIG key name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsig_key: Option<String>,
    /// rfc2136: the TSIG HMAC.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::option"
    )]
    pub tsig_algorithm: Option<TsigAlgorithm>,
    /// rfc2136: the file holding the TSIG secret (never the secret itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsig_secret_file: Option<PathBuf>,
    /// exec: the hook program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<PathBuf>,
    /// exec: how long one run of the hook may take.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub exec_timeout: Option<Duration>,
    /// The zone the records go in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// DNS server for berth's own lookups, IP[:port].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Servers to check propagation on instead of the zone's nameservers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub propagation_servers: Vec<String>,
    /// How long to wait for every nameserver to serve the record.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub propagation_timeout: Option<Duration>,
    /// How often to ask while waiting.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub propagation_interval: Option<Duration>,
    /// TTL of the TXT records, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

impl DnsSettings {
    /// These settings, each unset one taken from `lower`.
    pub fn or(self, lower: Self) -> Self {
        Self {
            provider: self.provider.or(lower.provider),
            server: self.server.or(lower.server),
            tsig_key: self.tsig_key.or(lower.tsig_key),
            tsig_algorithm: self.tsig_algorithm.or(lower.tsig_algorithm),
            tsig_secret_file: self.tsig_secret_file.or(lower.tsig_secret_file),
            exec: self.exec.or(lower.exec),
            exec_timeout: self.exec_timeout.or(lower.exec_timeout),
            zone: self.zone.or(lower.zone),
            resolver: self.resolver.or(lower.resolver),
            propagation_servers: if self.propagation_servers.is_empty() {
                lower.propagation_servers
            } else {
                self.propagation_servers
            },
            propagation_timeout: self.propagation_timeout.or(lower.propagation_timeout),
            propagation_interval: self.propagation_interval.or(lower.propagation_interval),
            ttl: self.ttl.or(lower.ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_layer_wins_and_the_lower_fills_the_rest() {
        let flags = DnsSettings {
            server: Some("192.0.2.53".into()),
            ..DnsSettings::default()
        };
        let file = DnsSettings {
            server: Some("198.51.100.53".into()),
            zone: Some("example.com".into()),
            propagation_servers: vec!["198.51.100.1".into()],
            ..DnsSettings::default()
        };
        let merged = flags.or(file);
        assert_eq!(merged.server.as_deref(), Some("192.0.2.53"));
        assert_eq!(merged.zone.as_deref(), Some("example.com"));
        assert_eq!(merged.propagation_servers, ["198.51.100.1"]);
    }
}
