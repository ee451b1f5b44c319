//! One layer of configuration: what the config file says, or what the flags and
//! `BERTH_*` variables say. Every setting is optional; [`Layer::or`] stacks layers and
//! [`Layer::resolve`](crate::Layer::resolve) fills what none sets with the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use berth_acme_core::{Ca, ChallengeKind, KeyType};
use serde::{Deserialize, Deserializer, Serialize};

use crate::dns::DnsSettings;
use crate::error::FileError;
use crate::limits::LimitsLayer;

/// One domain set (`[[certificates]]` in the file).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateSettings {
    /// Names, main first.
    pub domains: Vec<String>,
    /// Challenge for this set (default: the top-level `challenge`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::option"
    )]
    pub challenge: Option<ChallengeKind>,
    /// Key type for this set (default: the top-level `key_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
    /// Certificate profile for this set (default: the top-level `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The settings one source gives: the `--config` file as written (keys are the flag
/// names with `_` for `-`, plus `[[certificates]]`, `[limits]` and `[dns]`), or the
/// flags and variables a user set. `None` (or empty, for the lists of tables) leaves a
/// setting to the layer below. Unknown keys in the file are errors, so a typo is caught
/// instead of silently ignored.
///
/// Deliberately not `#[non_exhaustive]`: a caller that maps its flags onto a layer with
/// a struct expression is told by the compiler when a setting is added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The main domain set's names (`-d`); listed before `certificates`.
    pub domains: Option<Vec<String>>,
    /// More domain sets, each with its own challenge, key type, profile.
    #[serde(default)]
    pub certificates: Vec<CertificateSettings>,
    /// The one upstream every request goes to (a route matching everything).
    pub upstream: Option<String>,
    /// Routes: `[host][/prefix]=http://host:port`.
    pub routes: Option<Vec<String>>,
    /// The CA: a preset's name or a directory URL.
    #[serde(default, deserialize_with = "crate::serde_text::option::deserialize")]
    pub ca: Option<Ca>,
    /// Staging counterpart of a custom CA.
    pub staging_ca: Option<String>,
    /// Extra PEM roots to trust for the CA's API.
    pub ca_root: Option<PathBuf>,
    /// Contact email for the account.
    pub email: Option<String>,
    /// Whether the CA's terms of service are agreed.
    pub agree_tos: Option<bool>,
    /// External Account Binding key id.
    pub eab_kid: Option<String>,
    /// File holding the EAB HMAC key.
    pub eab_hmac_file: Option<PathBuf>,
    /// The store: an `acme.json` path or a shared store's URL.
    pub store: Option<PathBuf>,
    /// The resolver section of `acme.json` berth writes to.
    pub resolver: Option<String>,
    /// File holding a shared store's password.
    pub store_password_file: Option<PathBuf>,
    /// A private CA that signed a TLS store's certificate.
    pub store_ca: Option<PathBuf>,
    /// Client certificate for a store that checks clients.
    pub store_cert: Option<PathBuf>,
    /// The file holding `store_cert`'s private key.
    pub store_key: Option<PathBuf>,
    /// Prefix of every key in a shared store.
    pub store_prefix: Option<String>,
    /// Challenge for domain sets that do not name one.
    pub challenge: Option<ChallengeKind>,
    /// Key type for domain sets that do not name one.
    pub key_type: Option<KeyType>,
    /// Certificate profile for domain sets that do not name one.
    pub profile: Option<String>,
    /// The plain-HTTP listener.
    pub http_addr: Option<SocketAddr>,
    /// The HTTPS listener.
    pub tls_addr: Option<SocketAddr>,
    /// The port HTTP requests are redirected to.
    pub https_port: Option<u16>,
    /// The admin server.
    pub admin_addr: Option<SocketAddr>,
    /// `Strict-Transport-Security` max-age in seconds.
    pub hsts_max_age: Option<u64>,
    /// Load balancers whose forwarding headers are kept (CIDRs or addresses).
    pub trusted_proxies: Option<Vec<String>>,
    /// Whether to skip proving new names on the staging CA.
    pub skip_staging: Option<bool>,
    /// Orders in flight at once, 1 to 256.
    #[serde(default, deserialize_with = "order_concurrency")]
    pub order_concurrency: Option<usize>,
    /// The proxy limits.
    #[serde(default)]
    pub limits: LimitsLayer,
    /// DNS-01 settings.
    #[serde(default)]
    pub dns: DnsSettings,
}

/// The values `order_concurrency` takes.
const ORDER_CONCURRENCY: std::ops::RangeInclusive<usize> = 1..=256;

/// `n` if [`ORDER_CONCURRENCY`] holds it, else why not: the file's reader and
/// [`Layer::resolve`](crate::Layer::resolve) (for the other layers) both ask.
pub(crate) fn check_order_concurrency(n: usize) -> Result<usize, String> {
    if ORDER_CONCURRENCY.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range; use 1 to 256"))
    }
}

fn order_concurrency<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    Option::<usize>::deserialize(deserializer)?
        .map(check_order_concurrency)
        .transpose()
        .map_err(serde::de::Error::custom)
}

impl Layer {
    /// Reads a config file's text. The error names the line and key, never a value.
    pub fn from_toml(text: &str) -> Result<Self, FileError> {
        toml::from_str(text).map_err(|e| FileError::new(text, &e))
    }

    /// These settings, each unset one taken from `lower`. The domain sets are this
    /// layer's `domains`, else the lower one's, then both layers' `certificates`.
    pub fn or(self, lower: Self) -> Self {
        let mut certificates = self.certificates;
        certificates.extend(lower.certificates);
        Self {
            domains: self.domains.or(lower.domains),
            certificates,
            upstream: self.upstream.or(lower.upstream),
            routes: self.routes.or(lower.routes),
            ca: self.ca.or(lower.ca),
            staging_ca: self.staging_ca.or(lower.staging_ca),
            ca_root: self.ca_root.or(lower.ca_root),
            email: self.email.or(lower.email),
            agree_tos: self.agree_tos.or(lower.agree_tos),
            eab_kid: self.eab_kid.or(lower.eab_kid),
            eab_hmac_file: self.eab_hmac_file.or(lower.eab_hmac_file),
            store: self.store.or(lower.store),
            resolver: self.resolver.or(lower.resolver),
            store_password_file: self.store_password_file.or(lower.store_password_file),
            store_ca: self.store_ca.or(lower.store_ca),
            store_cert: self.store_cert.or(lower.store_cert),
            store_key: self.store_key.or(lower.store_key),
            store_prefix: self.store_prefix.or(lower.store_prefix),
            challenge: self.challenge.or(lower.challenge),
            key_type: self.key_type.or(lower.key_type),
            profile: self.profile.or(lower.profile),
            http_addr: self.http_addr.or(lower.http_addr),
            tls_addr: self.tls_addr.or(lower.tls_addr),
            https_port: self.https_port.or(lower.https_port),
            admin_addr: self.admin_addr.or(lower.admin_addr),
            hsts_max_age: self.hsts_max_age.or(lower.hsts_max_age),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
            skip_staging: self.skip_staging.or(lower.skip_staging),
            order_concurrency: self.order_concurrency.or(lower.order_concurrency),
            limits: self.limits.or(lower.limits),
            dns: self.dns.or(lower.dns),
        }
    }
}
