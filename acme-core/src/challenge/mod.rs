//! ACME challenge types and the responders that answer them.
//!
//! [`ChallengeKind`] is parsed from user input and refuses what cannot work before any
//! request reaches a CA. The responders ([`Http01Responder`], [`TlsAlpn01Responder`]) are
//! shared maps: the order flow writes into them, and whatever server owns :80 / :443 (the
//! berth proxy, an embedding app, or the standalone listeners of `berth issue`) answers
//! from them.

pub mod dns01;
mod listener;
pub(crate) mod shared;
mod solver;
mod standalone;

pub use berth_certs::challenge::{
    ACME_TLS_ALPN_PROTOCOL, AlpnChallengeResolver, HTTP01_PATH_PREFIX, Http01Responder,
    TlsAlpn01Responder,
};
pub use listener::{ChallengeListener, serve_http01, serve_tls_alpn01};
pub use solver::{Http01Solver, PendingChallenge, Solver, SolverFuture, TlsAlpn01Solver};
pub use standalone::{StandaloneConfig, StandaloneSolver};

use std::fmt;
use std::str::FromStr;

use crate::domain::DomainSet;

/// How the CA checks that we control a name (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// HTTP-01 (RFC 8555 §8.3): a token served on port 80. No wildcards.
    Http01,
    /// TLS-ALPN-01 (RFC 8737): a special certificate served on port 443. No wildcards.
    TlsAlpn01,
    /// DNS-01 (RFC 8555 §8.4): a TXT record under `_acme-challenge`. Wildcards allowed,
    /// IP identifiers not.
    Dns01,
}

/// Why a challenge name or a challenge/name combination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// TLS-SNI-01/02 were removed by every CA in 2019 (a shared-hosting vulnerability).
    #[error("challenge {name:?} was removed by the CAs in 2019; use tls-alpn-01 or http-01")]
    Removed {
        /// The name as given.
        name: String,
    },
    /// Not a challenge type berth knows.
    #[error("unknown challenge {name:?}; use http-01, tls-alpn-01 or dns-01")]
    Unknown {
        /// The name as given.
        name: String,
    },
    /// Wildcards can only be validated through DNS (RFC 8555 §7.1.3).
    #[error("wildcard {name} cannot be validated with {challenge}; use dns-01")]
    WildcardNeedsDns {
        /// The wildcard name.
        name: String,
        /// The challenge that was asked for.
        challenge: ChallengeKind,
    },
    /// IP identifiers have no DNS zone to put a TXT record in (RFC 8738 §7).
    #[error("IP address {name} cannot be validated with dns-01; use http-01 or tls-alpn-01")]
    IpNeedsHttpOrTls {
        /// The IP address.
        name: String,
    },
}

impl ChallengeKind {
    /// The name used on the command line and in ACME (`http-01`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Dns01 => "dns-01",
        }
    }

    /// Refuses combinations no CA can validate: wildcards without DNS-01, IP addresses
    /// with DNS-01. Runs before any request, so a typo never costs a failed
    /// authorization (which counts against the CA's failed-validation limit).
    pub fn check(self, domains: &DomainSet) -> Result<(), ChallengeError> {
        for name in domains.names() {
            if name.is_wildcard() && self != Self::Dns01 {
                return Err(ChallengeError::WildcardNeedsDns {
                    name: name.to_string(),
                    challenge: self,
                });
            }
            if name.is_ip() && self == Self::Dns01 {
                return Err(ChallengeError::IpNeedsHttpOrTls {
                    name: name.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl ChallengeError {
    /// The setting to change: the challenge, with the one that works when there is one.
    pub fn setting(&self) -> Option<crate::Setting> {
        Some(crate::Setting::Challenge(match self {
            Self::WildcardNeedsDns { .. } => Some(ChallengeKind::Dns01),
            _ => None,
        }))
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read from text through [`FromStr`], so a config file takes the same spellings (and
/// gives the same refusals) as `--challenge`.
impl<'de> serde::Deserialize<'de> for ChallengeKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl FromStr for ChallengeKind {
    type Err = ChallengeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http-01" | "http01" | "http" => Ok(Self::Http01),
            "tls-alpn-01" | "tlsalpn01" | "tls-alpn" => Ok(Self::TlsAlpn01),
            "dns-01" | "dns01" | "dns" => Ok(Self::Dns01),
            "tls-sni-01" | "tls-sni-02" | "tlssni01" | "tls-sni" => {
                Err(ChallengeError::Removed { name: s.to_owned() })
            }
            _ => Err(ChallengeError::Unknown { name: s.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_sni_is_refused_by_name_with_the_alternative() {
        for name in ["tls-sni-01", "TLS-SNI-02"] {
            let err = name.parse::<ChallengeKind>().unwrap_err().to_string();
            assert!(err.contains("removed by the CAs in 2019"), "{err}");
            assert!(err.contains("tls-alpn-01"), "{err}");
        }
    }

    #[test]
    fn known_names_round_trip_and_unknown_is_refused() {
        for kind in [
            ChallengeKind::Http01,
            ChallengeKind::TlsAlpn01,
            ChallengeKind::Dns01,
        ] {
            assert_eq!(kind.as_str().parse::<ChallengeKind>().unwrap(), kind);
        }
        assert!(matches!(
            "smtp-01".parse::<ChallengeKind>(),
            Err(ChallengeError::Unknown { .. })
        ));
    }

    #[test]
    fn wildcards_need_dns_and_ips_refuse_dns() {
        let wildcard = DomainSet::parse(["example.com", "*.example.com"]).unwrap();
        assert!(ChallengeKind::Dns01.check(&wildcard).is_ok());
        for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01] {
            let err = kind.check(&wildcard).unwrap_err();
            assert!(err.to_string().ends_with("; use dns-01"), "{err}");
            assert_eq!(
                crate::Setting::of(&err),
                Some(crate::Setting::Challenge(Some(ChallengeKind::Dns01)))
            );
        }
        let ip = DomainSet::parse(["127.0.0.1"]).unwrap();
        assert!(ChallengeKind::Http01.check(&ip).is_ok());
        assert!(matches!(
            ChallengeKind::Dns01.check(&ip),
            Err(ChallengeError::IpNeedsHttpOrTls { .. })
        ));
    }
}
