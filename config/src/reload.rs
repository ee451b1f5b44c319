//! What a reload of a running `berth run` cannot apply: settings that are read once, at
//! start, because the listeners are bound, the proxy is built and the store is open.
//! Everything else (certificates, routes, the account, the DNS solver) a reload swaps in.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::settings::RunSettings;

/// A setting that changed between the running settings and the reloaded ones but takes
/// effect only on restart; the running value stays in effect until then.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartOnly {
    /// A listener's address: the listener stays bound to `before`.
    Listener {
        /// The setting, as its flag is written (`--tls-addr`, `--http-addr`,
        /// `--admin-addr`).
        setting: &'static str,
        /// The address still in use.
        before: SocketAddr,
        /// The address asked for.
        after: SocketAddr,
    },
    /// One or more of the proxy limits.
    Limits,
    /// `--trusted-proxies`.
    TrustedProxies,
    /// The store or its resolver section: the open store stays in use.
    Store {
        /// The store still in use.
        before: PathBuf,
    },
}

impl RunSettings {
    /// The settings that differ in `new` but change only on restart, in this order: the
    /// listeners (TLS, HTTP, admin), the limits, the trusted proxies, the store. Empty
    /// when `new` can be applied whole.
    pub fn restart_only_changes(&self, new: &RunSettings) -> Vec<RestartOnly> {
        let mut changes = Vec::new();
        for (setting, before, after) in [
            ("--tls-addr", self.tls_addr, new.tls_addr),
            ("--http-addr", self.http_addr, new.http_addr),
            ("--admin-addr", self.admin_addr, new.admin_addr),
        ] {
            if before != after {
                changes.push(RestartOnly::Listener {
                    setting,
                    before,
                    after,
                });
            }
        }
        if self.limits != new.limits {
            changes.push(RestartOnly::Limits);
        }
        if self.trusted_proxies != new.trusted_proxies {
            changes.push(RestartOnly::TrustedProxies);
        }
        if self.store != new.store || self.resolver != new.resolver {
            changes.push(RestartOnly::Store {
                before: self.store.clone(),
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::Layer;

    fn settings(text: &str) -> RunSettings {
        Layer::from_toml(text).unwrap().resolve().unwrap()
    }

    const BASE: &str = r#"
        domains = ["app.example.com"]
        upstream = "http://app:3000"
    "#;

    #[test]
    fn what_a_reload_applies_is_no_restart_only_change() {
        let old = settings(BASE);
        let new = settings(
            r#"
            domains = ["app.example.com", "www.example.com"]
            upstream = "http://other:3000"
            routes = ["api.example.com=http://api:1"]
            email = "ops@example.com"
            order_concurrency = 2
            [[certificates]]
            domains = ["extra.example.com"]
        "#,
        );
        assert_eq!(old.restart_only_changes(&new), []);
        assert_eq!(old.restart_only_changes(&old.clone()), []);
    }

    #[test]
    fn listeners_limits_trusted_proxies_and_store_need_a_restart_in_order() {
        let old = settings(BASE);
        let new = settings(&format!(
            r#"{BASE}
            tls_addr = "127.0.0.1:8443"
            admin_addr = "127.0.0.1:9000"
            trusted_proxies = ["10.0.0.0/8"]
            store = "/data/acme.json"
            [limits]
            max_connections = 5
        "#
        ));
        assert_eq!(
            old.restart_only_changes(&new),
            [
                RestartOnly::Listener {
                    setting: "--tls-addr",
                    before: "0.0.0.0:443".parse().unwrap(),
                    after: "127.0.0.1:8443".parse().unwrap(),
                },
                RestartOnly::Listener {
                    setting: "--admin-addr",
                    before: "127.0.0.1:8081".parse().unwrap(),
                    after: "127.0.0.1:9000".parse().unwrap(),
                },
                RestartOnly::Limits,
                RestartOnly::TrustedProxies,
                RestartOnly::Store {
                    before: PathBuf::from("acme.json"),
                },
            ]
        );
    }

    #[test]
    fn another_resolver_section_is_another_store() {
        let old = settings(BASE);
        let new = settings(&format!("{BASE}\nresolver = \"le\"\n"));
        assert_eq!(
            old.restart_only_changes(&new),
            [RestartOnly::Store {
                before: PathBuf::from("acme.json"),
            }]
        );
        let new = settings(&format!("{BASE}\nhttp_addr = \"127.0.0.1:8080\"\n"));
        assert!(matches!(
            old.restart_only_changes(&new)[..],
            [RestartOnly::Listener {
                setting: "--http-addr",
                ..
            }]
        ));
    }
}
