//! `berth run`'s flags and `BERTH_*` variables as a [`Layer`] over the `--config` file's,
//! resolved by berth-config into the [`RunSettings`] the run uses.

use std::path::Path;

use berth_config::{DnsSettings, Layer, LimitsLayer, RunSettings};
use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::cli::{CaArgs, DnsArgs, LimitArgs, RunArgs, SharedStoreArgs, StoreArgs};
use crate::failure::Failure;

/// Stacks what the flags and variables set over the `--config` file (read now) and
/// resolves: flag > variable > file > default. `matches` says which values were given
/// and which are clap's display of the default.
pub(crate) fn resolve(args: &RunArgs, matches: &ArgMatches) -> Result<RunSettings, Failure> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => Layer::default(),
    };
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut settings = flags(args, &given)
        .or(file)
        .resolve()
        .map_err(Failure::usage)?;
    settings.config.clone_from(&args.config);
    Ok(settings)
}

/// The settings the flags and variables give; `given(id)` says whether one was given.
fn flags(args: &RunArgs, given: &dyn Fn(&str) -> bool) -> Layer {
    let RunArgs {
        config: _,
        domains,
        ca,
        store,
        upstream,
        routes,
        challenge,
        key_type,
        profile,
        http_addr,
        tls_addr,
        https_port,
        admin_addr,
        hsts_max_age,
        trusted_proxies,
        // Flag and env only; commands/run.rs hands it to the proxy.
        proxy_protocol: _,
        skip_staging,
        order_concurrency,
        limits,
        dns,
    } = args;
    let CaArgs {
        ca,
        staging_ca,
        ca_root,
        email,
        agree_tos,
        eab_kid,
        eab_hmac_file,
    } = ca;
    let StoreArgs {
        store,
        resolver,
        shared,
    } = store;
    Layer {
        domains: given("domains").then(|| domains.clone()),
        certificates: Vec::new(),
        upstream: upstream.clone(),
        routes: given("routes").then(|| routes.clone()),
        ca: given("ca").then(|| ca.clone()),
        staging_ca: staging_ca.clone(),
        ca_root: ca_root.clone(),
        email: email.clone(),
        agree_tos: given("agree_tos").then_some(*agree_tos),
        eab_kid: eab_kid.clone(),
        eab_hmac_file: eab_hmac_file.clone(),
        store: given("store").then(|| store.clone()),
        resolver: given("resolver").then(|| resolver.clone()),
        store_password_file: shared.store_password_file.clone(),
        store_ca: shared.store_ca.clone(),
        store_cert: shared.store_cert.clone(),
        store_key: shared.store_key.clone(),
        store_prefix: given("store_prefix").then(|| shared.store_prefix.clone()),
        challenge: given("challenge").then_some(*challenge),
        key_type: given("key_type").then_some(*key_type),
        profile: profile.clone(),
        http_addr: given("http_addr").then_some(*http_addr),
        tls_addr: given("tls_addr").then_some(*tls_addr),
        https_port: *https_port,
        admin_addr: given("admin_addr").then_some(*admin_addr),
        hsts_max_age: *hsts_max_age,
        trusted_proxies: given("trusted_proxies").then(|| trusted_proxies.clone()),
        skip_staging: given("skip_staging").then_some(*skip_staging),
        order_concurrency: given("order_concurrency").then_some(*order_concurrency),
        limits: limits_layer(limits, given),
        dns: dns_settings(dns),
    }
}

/// The limits the flags and variables set.
fn limits_layer(args: &LimitArgs, given: &dyn Fn(&str) -> bool) -> LimitsLayer {
    LimitsLayer {
        header_timeout: given("header_timeout").then_some(args.header_timeout),
        idle_timeout: given("idle_timeout").then_some(args.idle_timeout),
        max_header_bytes: given("max_header_bytes").then_some(args.max_header_bytes),
        max_connections: given("max_connections").then_some(args.max_connections),
        max_upstream_connections: given("max_upstream_connections")
            .then_some(args.max_upstream_connections),
        max_body_bytes: args.max_body_bytes,
        upstream_timeout: given("upstream_timeout").then_some(args.upstream_timeout),
        drain_timeout: given("drain_timeout").then_some(args.drain_timeout),
    }
}

/// The `--dns-*` flags as the `[dns]` settings (none has a default: unset is `None`).
pub(crate) fn dns_settings(args: &DnsArgs) -> DnsSettings {
    let DnsArgs {
        provider,
        server,
        tsig_key,
        tsig_algorithm,
        tsig_secret_file,
        exec,
        exec_timeout,
        zone,
        resolver,
        propagation_servers,
        propagation_timeout,
        propagation_interval,
        ttl,
    } = args.clone();
    DnsSettings {
        provider,
        server,
        tsig_key,
        tsig_algorithm,
        tsig_secret_file,
        exec,
        exec_timeout,
        zone,
        resolver,
        propagation_servers,
        propagation_timeout,
        propagation_interval,
        ttl,
    }
}

/// The store settings as the shared store helpers take them.
pub(crate) fn store_args(settings: &RunSettings) -> StoreArgs {
    StoreArgs {
        store: settings.store.clone(),
        resolver: settings.resolver.clone(),
        shared: SharedStoreArgs {
            store_password_file: settings.store_password_file.clone(),
            store_ca: settings.store_ca.clone(),
            store_cert: settings.store_cert.clone(),
            store_key: settings.store_key.clone(),
            store_prefix: settings.store_prefix.clone(),
        },
    }
}

/// The CA settings as the shared account helper takes them.
pub(crate) fn ca_args(settings: &RunSettings) -> CaArgs {
    CaArgs {
        ca: settings.ca.clone(),
        staging_ca: settings.staging_ca.clone(),
        ca_root: settings.ca_root.clone(),
        email: settings.email.clone(),
        agree_tos: settings.agree_tos,
        eab_kid: settings.eab_kid.clone(),
        eab_hmac_file: settings.eab_hmac_file.clone(),
    }
}

fn read_file(path: &Path) -> Result<Layer, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!(
            "--config {}: {e}; pass a readable TOML file",
            path.display()
        ))
    })?;
    Layer::from_toml(&text).map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use berth_proxy::Limits;
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    /// `berth run --config <file with text> argv…`, resolved as the binary does.
    fn settings(argv: &[&str], text: &str) -> Result<RunSettings, Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).unwrap();
        let config = path.display().to_string();
        let mut full = vec!["berth", "run", "--config", &config];
        full.extend_from_slice(argv);
        let matches = Cli::command().try_get_matches_from(full).unwrap();
        let Command::Run(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("not run")
        };
        resolve(&args, matches.subcommand().unwrap().1)
    }

    #[test]
    fn a_limit_comes_from_the_flag_then_the_file_then_the_default() {
        let file = "[limits]\ndrain_timeout = \"3s\"\nmax_connections = 500\n";
        let s = settings(&["--drain-timeout", "5s"], file).unwrap();
        assert_eq!(
            s.limits.drain_timeout,
            Duration::from_secs(5),
            "flag beats file"
        );
        assert_eq!(s.limits.max_connections, 500, "file beats default");
        assert_eq!(
            s.limits.idle_timeout,
            Limits::DEFAULT.idle_timeout,
            "default"
        );
        // A flag given with its default's value still beats the file.
        let s = settings(&["--drain-timeout", "8s"], file).unwrap();
        assert_eq!(s.limits.drain_timeout, Duration::from_secs(8));
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = r#"
            domains = ["file.example.com"]
            ca = "letsencrypt"
            upstream = "http://file:1"
            http_addr = "127.0.0.1:8080"
            agree_tos = true
            trusted_proxies = ["10.0.0.0/8"]
            [dns]
            server = "198.51.100.53"
            zone = "example.com"
            [[certificates]]
            domains = ["extra.example.com"]
        "#;
        let argv = [
            "--ca",
            "letsencrypt-staging",
            "-d",
            "flag.example.com",
            "--trusted-proxies",
            "192.0.2.0/24,::1",
            "--dns-server",
            "192.0.2.53",
        ];
        let s = settings(&argv, file).unwrap();
        assert_eq!(s.ca.name(), "letsencrypt-staging", "flag beats file");
        assert_eq!(
            s.trusted_proxies,
            ["192.0.2.0/24", "::1"],
            "flag beats file"
        );
        assert_eq!(
            s.dns.server.as_deref(),
            Some("192.0.2.53"),
            "flag beats file"
        );
        assert_eq!(s.dns.zone.as_deref(), Some("example.com"), "file fills in");
        assert_eq!(s.upstream.as_deref(), Some("http://file:1"));
        assert_eq!(
            s.http_addr,
            "127.0.0.1:8080".parse().unwrap(),
            "file beats default"
        );
        assert_eq!(s.tls_addr, "0.0.0.0:443".parse().unwrap(), "default stays");
        assert!(s.agree_tos);
        assert_eq!(s.certificates.len(), 2);
        assert_eq!(s.certificates[0].domains, ["flag.example.com"]);
        assert!(s.config.is_some());
    }

    #[test]
    fn a_bad_file_names_the_file_and_key() {
        let e = settings(&[], "upstrem = \"http://x:1\"").err().unwrap();
        let text = e.to_string();
        assert!(
            text.contains("--config") && text.contains("berth.toml"),
            "{text}"
        );
        assert!(text.contains("upstrem"), "{text}");
    }

    #[test]
    fn the_defaults_clap_shows_are_the_ones_berth_uses() {
        // Every `berth run` value taken as if given (clap's displayed defaults) resolves
        // to the same settings as nothing given (berth-config's defaults).
        let matches = Cli::command()
            .try_get_matches_from(["berth", "run"])
            .unwrap();
        let Command::Run(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("not run")
        };
        let shown = flags(&args, &|_| true).resolve().unwrap();
        let used = Layer::default().resolve().unwrap();
        assert_eq!(shown, used);
    }
}
