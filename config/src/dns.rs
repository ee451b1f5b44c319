//! `[dns]`: how DNS-01 answers are written and their propagation checked, and the solver
//! built from it. The keys are the `--dns-*` flags without the prefix, `_` for `-`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::dns01::{
    Dns01Config, Dns01Solver, DnsProvider, ExecProvider, Rfc2136Provider, TsigAlgorithm, TsigKey,
    journal_path, parse_server,
};
use berth_secrets::Loader;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How long one run of the exec hook may take unless `exec_timeout` says otherwise.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one RFC 2136 update may wait for the server's answer.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The DNS-01 settings one layer sets (`None`/empty: unset, left to the layer below), and
/// once resolved, what [`DnsSettings::solver`] builds the solver from.
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

    /// The DNS-01 solver these settings describe, or `None` when they name no provider.
    /// The TSIG secret is read from its file through `loader`, now (once per start and
    /// reload), and only from a file. `store` is the `acme.json` the record journal goes
    /// beside (none for a shared store).
    pub fn solver(
        &self,
        loader: &Loader,
        store: Option<&Path>,
    ) -> Result<Option<Arc<Dns01Solver>>, Error> {
        let Some(provider) = self.provider(loader)? else {
            return Ok(None);
        };
        let server =
            |flag: &str, text: &str| parse_server(text).map_err(|e| Error::refused(flag, e));
        let defaults = Dns01Config::default();
        let config = Dns01Config {
            resolver: self
                .resolver
                .as_deref()
                .map(|r| server("--dns-resolver", r))
                .transpose()?,
            zone: self.zone.clone().filter(|z| !z.trim().is_empty()),
            propagation_servers: self
                .propagation_servers
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| server("--dns-propagation-servers", s))
                .collect::<Result<_, _>>()?,
            propagation_timeout: self
                .propagation_timeout
                .unwrap_or(defaults.propagation_timeout),
            propagation_interval: self
                .propagation_interval
                .unwrap_or(defaults.propagation_interval),
            ttl: self.ttl.unwrap_or(defaults.ttl),
            journal: store.map(journal_path),
            ..defaults
        };
        Ok(Some(Arc::new(Dns01Solver::new(provider, config))))
    }

    /// The provider: named, or inferred from `exec` or `server`.
    fn provider(&self, loader: &Loader) -> Result<Option<Arc<dyn DnsProvider>>, Error> {
        let kind = match self.provider.as_deref().map(str::trim) {
            Some(kind) if !kind.is_empty() => kind.to_ascii_lowercase(),
            _ if self.exec.is_some() => "exec".into(),
            _ if self.server.is_some() || self.tsig_secret_file.is_some() => "rfc2136".into(),
            _ => return Ok(None),
        };
        match kind.as_str() {
            "rfc2136" => self.rfc2136(loader).map(Some),
            "exec" => {
                let program = self.exec.as_deref().ok_or(Error::Needs {
                    setting: "--dns-provider exec".into(),
                    needed: "--dns-exec (the hook program)",
                })?;
                let timeout = self.exec_timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT);
                Ok(Some(Arc::new(ExecProvider::new(program, timeout))))
            }
            other => Err(Error::UnknownDnsProvider(other.to_owned())),
        }
    }

    /// RFC 2136 updates to `server`, signed with the key in `tsig_secret_file`.
    fn rfc2136(&self, loader: &Loader) -> Result<Arc<dyn DnsProvider>, Error> {
        let needs = |needed| Error::Needs {
            setting: "--dns-provider rfc2136".into(),
            needed,
        };
        let server = (self.server.as_deref())
            .ok_or_else(|| needs("--dns-server (the zone's primary, IP[:port])"))?;
        let server = parse_server(server).map_err(|e| Error::refused("--dns-server", e))?;
        let file = (self.tsig_secret_file.as_deref())
            .ok_or_else(|| needs("--dns-tsig-secret-file (the key file tsig-keygen wrote)"))?;
        let secret = loader.read_file(file)?;
        let key = TsigKey::parse(self.tsig_key.as_deref(), self.tsig_algorithm, &secret)
            .map_err(|e| Error::refused(format!("--dns-tsig-secret-file {}", file.display()), e))?;
        Ok(Arc::new(Rfc2136Provider::new(server, key, UPDATE_TIMEOUT)))
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

    #[test]
    fn the_provider_is_named_or_inferred_and_a_missing_piece_is_named() {
        let loader = Loader::new();
        let none = DnsSettings::default();
        assert!(none.solver(&loader, None).unwrap().is_none());
        let exec = DnsSettings {
            exec: Some("/bin/true".into()),
            ..DnsSettings::default()
        };
        assert!(
            exec.solver(&loader, None).unwrap().is_some(),
            "inferred from exec"
        );
        let no_server = DnsSettings {
            provider: Some("rfc2136".into()),
            ..DnsSettings::default()
        };
        let err = no_server.solver(&loader, None).err().unwrap().to_string();
        assert_eq!(
            err,
            "--dns-provider rfc2136 needs --dns-server (the zone's primary, IP[:port])"
        );
        let unknown = DnsSettings {
            provider: Some("route53".into()),
            ..DnsSettings::default()
        };
        let err = unknown.solver(&loader, None).err().unwrap().to_string();
        assert!(
            err.starts_with("--dns-provider \"route53\" is not known"),
            "{err}"
        );
        let bad_resolver = DnsSettings {
            resolver: Some("not-an-address".into()),
            ..exec
        };
        let err = bad_resolver
            .solver(&loader, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("--dns-resolver: "), "{err}");
    }
}
