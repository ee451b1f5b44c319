//! Certificate authorities: presets for the public ACME CAs and custom directory URLs.

use std::fmt;
use std::str::FromStr;

const LE_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LE_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
const ZEROSSL: &str = "https://acme.zerossl.com/v2/DV90";
const GOOGLE_PRODUCTION: &str = "https://dv.acme-v02.api.pki.goog/directory";
const GOOGLE_STAGING: &str = "https://dv.acme-v02.test-api.pki.goog/directory";

/// Which rate limits a CA publishes, so the client-side budget can mirror them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaFamily {
    /// Let's Encrypt production or staging.
    LetsEncrypt,
    /// ZeroSSL.
    ZeroSsl,
    /// Google Trust Services.
    Google,
    /// Any other RFC 8555 CA (step-ca, Pebble, a company CA): limits are configured.
    Custom,
}

/// An ACME CA: its directory URL, whether that is a staging endpoint, and its staging
/// counterpart if it has one (`--ca`, `--staging-ca`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ca {
    name: String,
    directory: String,
    staging: Option<String>,
    is_staging: bool,
    requires_eab: bool,
    family: CaFamily,
}

/// A `--ca` value that is neither a preset nor an https URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown CA {0:?}; use letsencrypt-staging, letsencrypt, zerossl, google, google-staging or an https:// directory URL"
)]
pub struct CaError(pub String);

impl Ca {
    /// Let's Encrypt's staging endpoint: the default, so that a misconfiguration burns
    /// staging limits, never production ones.
    pub fn letsencrypt_staging() -> Self {
        Self::preset(
            "letsencrypt-staging",
            LE_STAGING,
            None,
            true,
            false,
            CaFamily::LetsEncrypt,
        )
    }

    /// Let's Encrypt production (explicit only).
    pub fn letsencrypt() -> Self {
        Self::preset(
            "letsencrypt",
            LE_PRODUCTION,
            Some(LE_STAGING),
            false,
            false,
            CaFamily::LetsEncrypt,
        )
    }

    /// A CA given by its directory URL. `staging` is its staging counterpart, if any.
    pub fn custom(directory: &str, staging: Option<&str>) -> Result<Self, CaError> {
        let check = |url: &str| {
            if url.starts_with("https://") && url.len() > "https://".len() {
                Ok(url.to_owned())
            } else {
                Err(CaError(url.to_owned()))
            }
        };
        let directory = check(directory)?;
        let staging = staging.map(check).transpose()?;
        Ok(Self {
            name: directory.clone(),
            is_staging: false,
            directory,
            staging,
            requires_eab: false,
            family: CaFamily::Custom,
        })
    }

    fn preset(
        name: &str,
        directory: &str,
        staging: Option<&str>,
        is_staging: bool,
        requires_eab: bool,
        family: CaFamily,
    ) -> Self {
        Self {
            name: name.to_owned(),
            directory: directory.to_owned(),
            staging: staging.map(str::to_owned),
            is_staging,
            requires_eab,
            family,
        }
    }

    /// Replaces (or sets) the staging counterpart (`--staging-ca`).
    pub fn with_staging(mut self, staging: Option<&str>) -> Result<Self, CaError> {
        if let Some(url) = staging {
            if !url.starts_with("https://") {
                return Err(CaError(url.to_owned()));
            }
            self.staging = Some(url.to_owned());
        }
        Ok(self)
    }

    /// The preset name, or the URL for custom CAs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> &str {
        &self.directory
    }

    /// The staging counterpart's directory URL, if the CA has one and this is not
    /// already it.
    pub fn staging_directory(&self) -> Option<&str> {
        if self.is_staging {
            None
        } else {
            self.staging.as_deref()
        }
    }

    /// Whether this endpoint issues untrusted test certificates.
    pub fn is_staging(&self) -> bool {
        self.is_staging
    }

    /// Whether the CA refuses accounts without External Account Binding.
    pub fn requires_eab(&self) -> bool {
        self.requires_eab
    }

    /// Whose published rate limits apply.
    pub fn family(&self) -> CaFamily {
        self.family
    }
}

impl Default for Ca {
    fn default() -> Self {
        Self::letsencrypt_staging()
    }
}

impl fmt::Display for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.directory {
            f.write_str(&self.directory)
        } else {
            write!(f, "{} ({})", self.name, self.directory)
        }
    }
}

impl FromStr for Ca {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "letsencrypt-staging" | "le-staging" | "staging" => Self::letsencrypt_staging(),
            "letsencrypt" | "le" | "letsencrypt-production" => Self::letsencrypt(),
            "zerossl" => Self::preset("zerossl", ZEROSSL, None, false, true, CaFamily::ZeroSsl),
            "google" => Self::preset(
                "google",
                GOOGLE_PRODUCTION,
                Some(GOOGLE_STAGING),
                false,
                true,
                CaFamily::Google,
            ),
            "google-staging" => Self::preset(
                "google-staging",
                GOOGLE_STAGING,
                None,
                true,
                true,
                CaFamily::Google,
            ),
            _ => return Self::custom(s, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_letsencrypt_staging() {
        let ca = Ca::default();
        assert!(ca.is_staging());
        assert_eq!(ca.directory(), LE_STAGING);
        assert_eq!(ca.staging_directory(), None);
    }

    #[test]
    fn production_presets_know_their_staging_counterpart() {
        let le: Ca = "letsencrypt".parse().unwrap();
        assert!(!le.is_staging());
        assert_eq!(le.staging_directory(), Some(LE_STAGING));
        let google: Ca = "google".parse().unwrap();
        assert_eq!(google.staging_directory(), Some(GOOGLE_STAGING));
        assert!(google.requires_eab());
        let zerossl: Ca = "zerossl".parse().unwrap();
        assert_eq!(zerossl.staging_directory(), None);
        assert!(zerossl.requires_eab());
    }

    #[test]
    fn custom_urls_need_https_and_take_a_staging_counterpart() {
        let ca = Ca::custom(
            "https://127.0.0.1:14000/dir",
            Some("https://127.0.0.1:14001/dir"),
        )
        .unwrap();
        assert_eq!(ca.family(), CaFamily::Custom);
        assert_eq!(ca.staging_directory(), Some("https://127.0.0.1:14001/dir"));
        let err = "http://ca.example/dir"
            .parse::<Ca>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("letsencrypt-staging"), "{err}");
        assert!("lets-encrypt".parse::<Ca>().is_err());
    }
}
