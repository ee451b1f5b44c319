//! Where `--store` points: a file, or a shared store by URL.

use std::path::PathBuf;

use berth_acme_core::Setting;

/// Why a store location was refused: what is wrong, and the setting at fault when the
/// location is right but belongs elsewhere (a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationError {
    reason: String,
    setting: Option<Setting>,
}

impl std::fmt::Display for LocationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for LocationError {}

impl LocationError {
    /// The setting whose change fixes this error, when one does.
    pub fn setting(&self) -> Option<Setting> {
        self.setting
    }
}

impl From<String> for LocationError {
    fn from(reason: String) -> Self {
        Self {
            reason,
            setting: None,
        }
    }
}

impl From<&str> for LocationError {
    fn from(reason: &str) -> Self {
        reason.to_owned().into()
    }
}

/// The parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// A Traefik-compatible `acme.json` (the default).
    File(PathBuf),
    /// `redis://host:port/db` or `rediss://…` (TLS).
    Redis(String),
    /// `etcd://[user@]host:port[,host:port…]` or `etcds://…` (TLS).
    Etcd {
        /// `host:port` of each member.
        endpoints: Vec<String>,
        /// Whether to speak TLS.
        tls: bool,
        /// The user name, when etcd has authentication on (the password comes from a file).
        user: Option<String>,
    },
}

impl StoreLocation {
    /// Parses `--store`: a `redis://` or `rediss://` URL, else a file path. Other
    /// URL schemes are refused rather than taken for a file name.
    pub fn parse(value: &str) -> Result<Self, LocationError> {
        let value = value.trim();
        match value.split_once("://") {
            Some(("redis" | "rediss", rest)) if !rest.is_empty() => {
                Ok(Self::Redis(value.to_owned()))
            }
            Some((scheme @ ("etcd" | "etcds"), rest)) if !rest.is_empty() => {
                let (user, hosts) = match rest.rsplit_once('@') {
                    Some((user, _)) if user.contains(':') => {
                        return Err(LocationError {
                            reason: "the etcd URL holds a password; give it with the user in the options instead (`EtcdOptions::user`), read from a file".into(),
                            setting: Some(Setting::StorePassword),
                        });
                    }
                    Some((user, hosts)) => (Some(user.to_owned()), hosts),
                    None => (None, rest),
                };
                let endpoints: Vec<String> = hosts
                    .trim_end_matches('/')
                    .split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect();
                if endpoints.is_empty() {
                    return Err("no etcd endpoint; use etcd://host:2379[,host:2379…]".into());
                }
                Ok(Self::Etcd {
                    endpoints,
                    tls: scheme == "etcds",
                    user,
                })
            }
            Some((scheme, _)) => Err(LocationError::from(format!(
                "unknown store scheme {scheme}://; use a file path (/data/acme.json), redis://host:port/db (rediss:// for TLS) or etcd://host:2379[,host:2379…] (etcds:// for TLS)"
            ))),
            None if value.is_empty() => Err("the store path is empty".into()),
            None => Ok(Self::File(PathBuf::from(value))),
        }
    }

    /// Whether several replicas can share it.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_urls_and_typos() {
        assert_eq!(
            StoreLocation::parse("/data/acme.json").unwrap(),
            StoreLocation::File("/data/acme.json".into())
        );
        assert!(matches!(
            StoreLocation::parse("rediss://cache:6380/1").unwrap(),
            StoreLocation::Redis(_)
        ));
        assert_eq!(
            StoreLocation::parse("etcds://berth@e1:2379,e2:2379").unwrap(),
            StoreLocation::Etcd {
                endpoints: vec!["e1:2379".into(), "e2:2379".into()],
                tls: true,
                user: Some("berth".into()),
            }
        );
        let err = StoreLocation::parse("etcd://berth:pw@e1:2379").unwrap_err();
        assert_eq!(err.setting(), Some(Setting::StorePassword));
        let err = err.to_string();
        assert!(
            err.contains("`EtcdOptions::user`") && !err.contains("pw@"),
            "{err}"
        );
        let err = StoreLocation::parse("redsi://cache").unwrap_err();
        assert_eq!(err.setting(), None);
        assert!(err.to_string().contains("redis://host:port/db"), "{err}");
        assert!(StoreLocation::parse(" ").is_err());
    }
}
