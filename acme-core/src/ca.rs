//! Certificate authorities: presets for the public ACME CAs and custom directory URLs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::account::AccountConfig;
use crate::error::Error;

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

/// The certificate profiles `config`'s CA lists in its directory (`meta.profiles`,
/// draft-ietf-acme-profiles §3), name → description; empty when it lists none (Pebble
/// before 2.7, most CAs other than Let's Encrypt). Reads the directory only.
pub async fn ca_profiles(config: &AccountConfig) -> Result<BTreeMap<String, String>, Error> {
    crate::account::directory_profiles(config).await
}

/// Refuses `profile` unless `offered` (the CA's `meta.profiles`) lists it, naming the
/// CA's profiles — checked before an order is placed, so a typo costs no order.
pub fn check_profile(
    ca: &Ca,
    offered: &BTreeMap<String, String>,
    profile: &str,
) -> Result<(), Error> {
    if offered.contains_key(profile) {
        return Ok(());
    }
    Err(Error::ProfileUnavailable {
        ca: ca.to_string(),
        profile: profile.to_owned(),
        offered: offered
            .iter()
            .map(|(name, description)| (name.clone(), description.clone()))
            .collect(),
    })
}

/// The message of [`Error::ProfileUnavailable`].
pub(crate) fn profile_refusal(ca: &str, profile: &str, offered: &[(String, String)]) -> String {
    if offered.is_empty() {
        return format!(
            "the CA {ca} offers no certificate profiles (its directory has no meta.profiles), so profile {profile:?} cannot be requested; remove the profile setting to get the CA's default certificate"
        );
    }
    let names: Vec<&str> = offered.iter().map(|(name, _)| name.as_str()).collect();
    format!(
        "the CA {ca} has no certificate profile {profile:?}; it offers: {}",
        names.join(", ")
    )
}

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
    /// Let's Encrypt's staging directory as it answered in 2026 (recorded; Debian's
    /// Pebble 2.4 lists no profiles, so the accepting side is tested on this).
    const RECORDED_LE_STAGING_DIRECTORY: &str = r#"{
  "PnuDTgQP-bo": "https://community.letsencrypt.org/t/adding-random-entries-to-the-directory/33417",
  "keyChange": "https://acme-staging-v02.api.letsencrypt.org/acme/key-change",
  "meta": {
    "caaIdentities": ["letsencrypt.org"],
    "profiles": {
      "classic": "https://letsencrypt.org/docs/profiles#classic",
      "shortlived": "https://letsencrypt.org/docs/profiles#shortlived",
      "tlsclient": "https://letsencrypt.org/docs/profiles#tlsclient",
      "tlsserver": "https://letsencrypt.org/docs/profiles#tlsserver"
    },
    "termsOfService": "https://letsencrypt.org/documents/LE-SA-v1.7-June-04-2026.pdf",
    "website": "https://letsencrypt.org/docs/staging-environment/"
  },
  "newAccount": "https://acme-staging-v02.api.letsencrypt.org/acme/new-acct",
  "newNonce": "https://acme-staging-v02.api.letsencrypt.org/acme/new-nonce",
  "newOrder": "https://acme-staging-v02.api.letsencrypt.org/acme/new-order",
  "renewalInfo": "https://acme-staging-v02.api.letsencrypt.org/acme/renewal-info",
  "revokeCert": "https://acme-staging-v02.api.letsencrypt.org/acme/revoke-cert"
}"#;

    #[test]
    fn recorded_letsencrypt_directory_accepts_its_profiles_and_refuses_a_typo_with_the_list() {
        let offered =
            crate::account::parse_directory_profiles(RECORDED_LE_STAGING_DIRECTORY.as_bytes())
                .unwrap();
        let ca = Ca::letsencrypt_staging();
        for profile in ["classic", "shortlived", "tlsserver"] {
            check_profile(&ca, &offered, profile).unwrap();
        }
        let err = check_profile(&ca, &offered, "shortlive").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the CA {ca} has no certificate profile \"shortlive\"; it offers: classic, shortlived, tlsclient, tlsserver"
            )
        );
    }

    #[test]
    fn a_ca_without_profiles_refuses_any_profile_and_says_to_remove_it() {
        let offered =
            crate::account::parse_directory_profiles(br#"{"newAccount": "https://ca/acct"}"#)
                .unwrap();
        assert!(offered.is_empty());
        let err = check_profile(&Ca::letsencrypt(), &offered, "shortlived").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("offers no certificate profiles"), "{text}");
        assert!(text.contains("remove the profile setting"), "{text}");
    }

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
