//! Where `--store` points: a file, or a shared store by URL.

use std::path::PathBuf;

/// The parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// A Traefik-compatible `acme.json` (the default).
    File(PathBuf),
    /// `redis://host:port/db` or `rediss://…` (TLS).
    Redis(String),
}

impl StoreLocation {
    /// Parses `--store`: a `redis://` or `rediss://` URL, else a file path. Other
    /// URL schemes are refused rather than taken for a file name.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        match value.split_once("://") {
            Some(("redis" | "rediss", rest)) if !rest.is_empty() => {
                Ok(Self::Redis(value.to_owned()))
            }
            Some((scheme, _)) => Err(format!(
                "unknown store scheme {scheme}://; use a file path (/data/acme.json) or redis://host:port/db (rediss:// for TLS)"
            )),
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
        let err = StoreLocation::parse("redsi://cache").unwrap_err();
        assert!(err.contains("redis://host:port/db"), "{err}");
        assert!(StoreLocation::parse(" ").is_err());
    }
}
