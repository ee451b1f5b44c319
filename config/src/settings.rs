//! The effective configuration of `berth run`: the layers resolved, every setting with
//! its value, defaults filled in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use berth_acme_core::{Ca, ChallengeKind, KeyType};
use berth_proxy::Limits;
use serde::Serialize;

use crate::dns::DnsSettings;
use crate::error::Error;
use crate::layer::{CertificateSettings, Layer, check_order_concurrency};

/// The default of each setting no layer sets (the limits' are [`Limits::DEFAULT`]).
/// Flag definitions show these in their help.
pub mod defaults {
    use super::*;

    /// `store`: `acme.json` in the working directory.
    pub const STORE: &str = "acme.json";
    /// `resolver`: the section of `acme.json` berth writes.
    pub const RESOLVER: &str = "berth";
    /// `store_prefix`.
    pub const STORE_PREFIX: &str = "berth/";
    /// `challenge`.
    pub const CHALLENGE: ChallengeKind = ChallengeKind::Http01;
    /// `key_type`.
    pub const KEY_TYPE: KeyType = KeyType::Ec256;
    /// `http_addr`: port 80, where HTTP-01 is validated.
    pub const HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
    /// `tls_addr`: port 443, where TLS-ALPN-01 is validated.
    pub const TLS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 443);
    /// `admin_addr`: loopback only, since the admin server has no authentication.
    pub const ADMIN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
    /// `order_concurrency`.
    pub const ORDER_CONCURRENCY: usize = berth_acme_core::DEFAULT_CONCURRENCY;

    /// `ca`: Let's Encrypt's staging CA, so a first try costs no production rate limit.
    pub fn ca() -> Ca {
        Ca::letsencrypt_staging()
    }
}

/// Everything `berth run` uses, merged from its layers. Holds no secret values, only the
/// paths secrets are read from. Serialises as a config file giving the same settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSettings {
    /// The config file the settings were read from, if any (set by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// The CA.
    #[serde(serialize_with = "ca_name")]
    pub ca: Ca,
    /// Staging counterpart of a custom CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_ca: Option<String>,
    /// Extra PEM roots to trust for the CA's API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_root: Option<PathBuf>,
    /// Contact email for the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the CA's terms of service are agreed.
    pub agree_tos: bool,
    /// External Account Binding key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
    /// File holding the EAB HMAC key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eab_hmac_file: Option<PathBuf>,
    /// The store: an `acme.json` path or a shared store's URL.
    pub store: PathBuf,
    /// The resolver section of `acme.json` berth writes to.
    pub resolver: String,
    /// File holding a shared store's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_password_file: Option<PathBuf>,
    /// A private CA that signed a TLS store's certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ca: Option<PathBuf>,
    /// Client certificate for a store that checks clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_cert: Option<PathBuf>,
    /// The file holding `store_cert`'s private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_key: Option<PathBuf>,
    /// Prefix of every key in a shared store.
    pub store_prefix: String,
    /// Challenge for domain sets that do not name one.
    #[serde(serialize_with = "crate::serde_text::value")]
    pub challenge: ChallengeKind,
    /// Key type for domain sets that do not name one.
    pub key_type: KeyType,
    /// Certificate profile for domain sets that do not name one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The one upstream every request goes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Routes, as written (parsed in the plan).
    pub routes: Vec<String>,
    /// The plain-HTTP listener.
    pub http_addr: SocketAddr,
    /// The HTTPS listener.
    pub tls_addr: SocketAddr,
    /// The port HTTP requests are redirected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_port: Option<u16>,
    /// The admin server.
    pub admin_addr: SocketAddr,
    /// `Strict-Transport-Security` max-age in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hsts_max_age: Option<u64>,
    /// CIDRs whose forwarding headers the proxy keeps (parsed in the plan).
    pub trusted_proxies: Vec<String>,
    /// Whether to skip proving new names on the staging CA.
    pub skip_staging: bool,
    /// Orders in flight at once.
    pub order_concurrency: usize,
    /// The proxy limits.
    #[serde(serialize_with = "crate::limits::serialize")]
    pub limits: Limits,
    /// DNS-01 provider and propagation settings.
    pub dns: DnsSettings,
    /// Every domain set: `domains` first, then `[[certificates]]`.
    pub certificates: Vec<CertificateSettings>,
}

/// A CA as it is written: its preset's name, or its directory URL (what `ca` reads back;
/// its `Display` adds the URL to a preset's name).
fn ca_name<S: serde::Serializer>(ca: &Ca, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(ca.name())
}

impl Layer {
    /// The effective settings: what this layer (the layers stacked with [`Layer::or`])
    /// sets, the defaults for the rest.
    pub fn resolve(self) -> Result<RunSettings, Error> {
        let order_concurrency = check_order_concurrency(
            self.order_concurrency
                .unwrap_or(defaults::ORDER_CONCURRENCY),
        )
        .map_err(|reason| Error::invalid("order_concurrency", reason))?;
        let domains = self.domains.unwrap_or_default();
        let mut certificates = Vec::with_capacity(self.certificates.len() + 1);
        if domains.iter().any(|d| !d.trim().is_empty()) {
            certificates.push(CertificateSettings {
                domains,
                challenge: None,
                key_type: None,
                profile: None,
            });
        }
        certificates.extend(self.certificates);
        Ok(RunSettings {
            config: None,
            ca: self.ca.unwrap_or_else(defaults::ca),
            staging_ca: self.staging_ca,
            ca_root: self.ca_root,
            email: self.email,
            agree_tos: self.agree_tos.unwrap_or(false),
            eab_kid: self.eab_kid,
            eab_hmac_file: self.eab_hmac_file,
            store: self.store.unwrap_or_else(|| defaults::STORE.into()),
            resolver: self.resolver.unwrap_or_else(|| defaults::RESOLVER.into()),
            store_password_file: self.store_password_file,
            store_ca: self.store_ca,
            store_cert: self.store_cert,
            store_key: self.store_key,
            store_prefix: self
                .store_prefix
                .unwrap_or_else(|| defaults::STORE_PREFIX.into()),
            challenge: self.challenge.unwrap_or(defaults::CHALLENGE),
            key_type: self.key_type.unwrap_or(defaults::KEY_TYPE),
            profile: self.profile,
            upstream: self.upstream,
            routes: self.routes.unwrap_or_default(),
            http_addr: self.http_addr.unwrap_or(defaults::HTTP_ADDR),
            tls_addr: self.tls_addr.unwrap_or(defaults::TLS_ADDR),
            https_port: self.https_port,
            admin_addr: self.admin_addr.unwrap_or(defaults::ADMIN_ADDR),
            hsts_max_age: self.hsts_max_age,
            trusted_proxies: self.trusted_proxies.unwrap_or_default(),
            skip_staging: self.skip_staging.unwrap_or(false),
            order_concurrency,
            limits: self.limits.resolve(),
            dns: self.dns,
            certificates,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use super::*;
    use crate::LimitsLayer;

    fn file(text: &str) -> Result<RunSettings, Error> {
        Layer::from_toml(text)?.resolve()
    }

    #[test]
    fn config_errors_name_position_and_key_never_the_value() {
        let planted = "PLANTED-CONFIG-SECRET-9f2e";
        // A syntax error on the secret's line (missing closing quote) and a type error
        // (a string where a number belongs) each quote the line or the value in toml's
        // own message.
        for text in [
            format!("domains = [\"a.example.com\"]\neab_hmac = \"{planted}\n"),
            format!("domains = [\"a.example.com\"]\n[limits]\nmax_connections = \"{planted}\"\n"),
        ] {
            let err = file(&text).err().unwrap().to_string();
            assert!(!err.contains(planted), "{err}");
            assert!(err.contains("line "), "{err}");
        }
        let err = file(&format!(
            "domains = [\"a.example.com\"]\n[limits]\nmax_connections = \"{planted}\"\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("line 3") && err.contains("limits.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn a_higher_layer_beats_the_file_and_the_file_beats_defaults() {
        let text = r#"
            domains = ["file.example.com"]
            ca = "letsencrypt"
            upstream = "http://file:1"
            http_addr = "127.0.0.1:8080"
            agree_tos = true
            [limits]
            drain_timeout = "3s"
            max_upstream_connections = 64
            [[certificates]]
            domains = ["extra.example.com"]
            challenge = "tls-alpn-01"
        "#;
        let flags = Layer {
            ca: Some("letsencrypt-staging".parse().unwrap()),
            domains: Some(vec!["flag.example.com".into()]),
            limits: LimitsLayer {
                max_upstream_connections: Some(32),
                ..LimitsLayer::default()
            },
            ..Layer::default()
        };
        let s = flags.or(Layer::from_toml(text).unwrap()).resolve().unwrap();
        assert_eq!(s.ca.name(), "letsencrypt-staging", "flag beats file");
        assert_eq!(s.limits.max_upstream_connections, 32, "flag beats file");
        assert_eq!(s.upstream.as_deref(), Some("http://file:1"));
        assert_eq!(
            s.http_addr,
            "127.0.0.1:8080".parse().unwrap(),
            "file beats default"
        );
        assert_eq!(
            s.limits.drain_timeout,
            Duration::from_secs(3),
            "file beats default"
        );
        assert_eq!(s.tls_addr, defaults::TLS_ADDR, "default stays");
        assert_eq!(s.limits.max_connections, 10_000, "default stays");
        assert!(s.agree_tos);
        assert_eq!(s.certificates.len(), 2);
        assert_eq!(s.certificates[0].domains, ["flag.example.com"]);
        assert_eq!(s.certificates[1].challenge, Some(ChallengeKind::TlsAlpn01));
    }

    #[test]
    fn nothing_set_gives_the_defaults() {
        let s = Layer::default().resolve().unwrap();
        assert_eq!(s.ca, defaults::ca());
        assert_eq!(s.store, PathBuf::from("acme.json"));
        assert_eq!(s.http_addr.to_string(), "0.0.0.0:80");
        assert_eq!(s.admin_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.order_concurrency, 8);
        assert_eq!(s.limits, Limits::default());
        assert!(s.certificates.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = file("upstrem = \"http://x:1\"").err().unwrap().to_string();
        assert!(err.contains("upstrem"), "{err}");
        let err = file("[limits]\ndrain_timeout = \"soon\"").err().unwrap();
        assert!(err.to_string().contains("limits.drain_timeout"), "{err}");
        // The proxy library's old names for three limits were never file keys.
        let err = file("[limits]\nshutdown_timeout = \"3s\"").err().unwrap();
        assert!(err.to_string().contains("shutdown_timeout"), "{err}");
    }

    #[test]
    fn order_concurrency_outside_1_to_256_is_refused_with_its_key() {
        let err = file("order_concurrency = 0\n").err().unwrap().to_string();
        assert!(
            err.contains("key order_concurrency") && err.contains("1 to 256"),
            "{err}"
        );
        assert_eq!(
            file("order_concurrency = 256\n").unwrap().order_concurrency,
            256
        );
        let flags = Layer {
            order_concurrency: Some(300),
            ..Layer::default()
        };
        assert!(flags.resolve().is_err());
    }

    #[test]
    fn a_bad_duration_names_the_key_never_the_value() {
        // Found by the fuzz test: the error quoted the value as written.
        let err = file("[limits]\nidle_timeout = \"Zq-PLANTED-4c1e-secret\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("PLANTED"), "{err}");
        assert!(err.contains("limits.idle_timeout"), "{err}");
    }

    #[test]
    fn a_value_with_an_escaped_quote_is_never_shown() {
        // Found by the fuzz test: serde quotes the value as "a\"b", and the redaction took
        // the escaped quote for the closing one, showing the rest of the value.
        let err = file("agree_tos = \"Zq\\\"PLANTED-9d0c-secret\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("PLANTED"), "{err}");
        assert!(err.contains("key agree_tos"), "{err}");
    }
}
