//! The effective configuration of `berth run`: flags > `BERTH_*` variables > the TOML
//! file given with `--config`, merged into one [`RunSettings`].
//!
//! The file uses the flag names with `_` for `-` (`eab_hmac_file`, `http_addr`), plus
//! `[[certificates]]` for more domain sets and `[limits]` for the proxy limits. Unknown
//! keys are errors, so a typo is caught instead of silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use berth_acme_core::{Ca, ChallengeKind, KeyType};

use crate::cli::{CaArgs, DnsArgs, LimitArgs, RunArgs, SharedStoreArgs, StoreArgs};
use crate::failure::Failure;

/// One domain set in the file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateSettings {
    /// Names, main first.
    pub(crate) domains: Vec<String>,
    /// Challenge for this set (default: the top-level `challenge`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::option"
    )]
    pub(crate) challenge: Option<ChallengeKind>,
    /// Key type for this set (default: the top-level `key_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_type: Option<KeyType>,
    /// Certificate profile for this set (default: the top-level `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
}

/// `[limits]` in the file; durations as "30s", "5m".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    #[serde(default, with = "crate::serde_text::duration_option")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "crate::serde_text::duration_option")]
    idle_timeout: Option<Duration>,
    max_header_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_upstream_connections: Option<usize>,
    max_body_bytes: Option<u64>,
    #[serde(default, with = "crate::serde_text::duration_option")]
    upstream_timeout: Option<Duration>,
    #[serde(default, with = "crate::serde_text::duration_option")]
    drain_timeout: Option<Duration>,
}

/// The `--config` file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    domains: Option<Vec<String>>,
    #[serde(default)]
    certificates: Vec<CertificateSettings>,
    upstream: Option<String>,
    routes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::serde_text::option::deserialize")]
    ca: Option<Ca>,
    staging_ca: Option<String>,
    ca_root: Option<PathBuf>,
    email: Option<String>,
    agree_tos: Option<bool>,
    eab_kid: Option<String>,
    eab_hmac_file: Option<PathBuf>,
    store: Option<PathBuf>,
    resolver: Option<String>,
    store_password_file: Option<PathBuf>,
    store_ca: Option<PathBuf>,
    store_cert: Option<PathBuf>,
    store_key: Option<PathBuf>,
    store_prefix: Option<String>,
    challenge: Option<ChallengeKind>,
    key_type: Option<KeyType>,
    profile: Option<String>,
    http_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    https_port: Option<u16>,
    admin_addr: Option<SocketAddr>,
    hsts_max_age: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    skip_staging: Option<bool>,
    order_concurrency: Option<usize>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    dns: DnsArgs,
}

/// Proxy limits after merging.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct LimitSettings {
    #[serde(with = "humantime_serde_text")]
    pub(crate) header_timeout: Duration,
    #[serde(with = "humantime_serde_text")]
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_upstream_connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_bytes: Option<u64>,
    #[serde(with = "humantime_serde_text")]
    pub(crate) upstream_timeout: Duration,
    #[serde(with = "humantime_serde_text")]
    pub(crate) drain_timeout: Duration,
}

/// Everything `berth run` uses, merged from flags, environment and file. Holds no secret
/// values, only the paths secrets are read from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct RunSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<PathBuf>,
    #[serde(serialize_with = "ca_name")]
    pub(crate) ca: Ca,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) staging_ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_root: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    pub(crate) agree_tos: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eab_kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eab_hmac_file: Option<PathBuf>,
    pub(crate) store: PathBuf,
    pub(crate) resolver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_key: Option<PathBuf>,
    pub(crate) store_prefix: String,
    #[serde(serialize_with = "crate::serde_text::value")]
    pub(crate) challenge: ChallengeKind,
    pub(crate) key_type: KeyType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<String>,
    pub(crate) routes: Vec<String>,
    pub(crate) http_addr: SocketAddr,
    pub(crate) tls_addr: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) https_port: Option<u16>,
    pub(crate) admin_addr: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hsts_max_age: Option<u64>,
    /// CIDRs whose forwarding headers the proxy keeps (parsed in the plan).
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) skip_staging: bool,
    /// Orders in flight at once.
    pub(crate) order_concurrency: usize,
    pub(crate) limits: LimitSettings,
    /// DNS-01 provider and propagation settings.
    pub(crate) dns: DnsArgs,
    /// Every domain set: `-d` (or the file's `domains`) first, then `[[certificates]]`.
    pub(crate) certificates: Vec<CertificateSettings>,
}

impl RunSettings {
    /// Merges `args` (parsed from `matches`, which says whether each value was given or
    /// defaulted) over the `--config` file, read now.
    pub(crate) fn resolve(args: &RunArgs, matches: &ArgMatches) -> Result<Self, Failure> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let pick = |id: &str, arg: &String, file: Option<String>| {
            if given(id) {
                arg.clone()
            } else {
                file.unwrap_or_else(|| arg.clone())
            }
        };
        let flag = |id: &str, arg: bool, file: Option<bool>| {
            if given(id) { arg } else { file.unwrap_or(arg) }
        };
        let RunArgs {
            config,
            domains,
            ca:
                CaArgs {
                    ca,
                    staging_ca,
                    ca_root,
                    email,
                    agree_tos,
                    eab_kid,
                    eab_hmac_file,
                },
            store:
                StoreArgs {
                    store,
                    resolver,
                    shared:
                        SharedStoreArgs {
                            store_password_file,
                            store_ca,
                            store_cert,
                            store_key,
                            store_prefix,
                        },
                },
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

        let domains = if given("domains") {
            domains.clone()
        } else {
            file.domains.unwrap_or_default()
        };
        let mut certificates = Vec::new();
        if domains.iter().any(|d| !d.trim().is_empty()) {
            certificates.push(CertificateSettings {
                domains: domains.clone(),
                challenge: None,
                key_type: None,
                profile: None,
            });
        }
        certificates.extend(file.certificates);

        Ok(Self {
            config: config.clone(),
            ca: choose(given("ca"), ca.clone(), file.ca),
            staging_ca: staging_ca.clone().or(file.staging_ca),
            ca_root: ca_root.clone().or(file.ca_root),
            email: email.clone().or(file.email),
            agree_tos: flag("agree_tos", *agree_tos, file.agree_tos),
            eab_kid: eab_kid.clone().or(file.eab_kid),
            eab_hmac_file: eab_hmac_file.clone().or(file.eab_hmac_file),
            store: if given("store") {
                store.clone()
            } else {
                file.store.unwrap_or_else(|| store.clone())
            },
            resolver: pick("resolver", resolver, file.resolver),
            store_password_file: store_password_file.clone().or(file.store_password_file),
            store_ca: store_ca.clone().or(file.store_ca),
            store_cert: store_cert.clone().or(file.store_cert),
            store_key: store_key.clone().or(file.store_key),
            store_prefix: pick("store_prefix", store_prefix, file.store_prefix),
            challenge: choose(given("challenge"), *challenge, file.challenge),
            key_type: choose(given("key_type"), *key_type, file.key_type),
            profile: profile.clone().or(file.profile),
            upstream: upstream.clone().or(file.upstream),
            routes: if given("routes") {
                routes.clone()
            } else {
                file.routes.unwrap_or_default()
            },
            http_addr: choose(given("http_addr"), *http_addr, file.http_addr),
            tls_addr: choose(given("tls_addr"), *tls_addr, file.tls_addr),
            https_port: https_port.or(file.https_port),
            admin_addr: choose(given("admin_addr"), *admin_addr, file.admin_addr),
            hsts_max_age: hsts_max_age.or(file.hsts_max_age),
            trusted_proxies: if given("trusted_proxies") {
                trusted_proxies.clone()
            } else {
                file.trusted_proxies.unwrap_or_default()
            },
            skip_staging: flag("skip_staging", *skip_staging, file.skip_staging),
            order_concurrency: match file.order_concurrency {
                Some(n) if !given("order_concurrency") => {
                    if !(1..=256).contains(&n) {
                        return Err(Failure::usage(format!(
                            "order_concurrency = {n} in the --config file: use 1 to 256"
                        )));
                    }
                    n
                }
                _ => *order_concurrency,
            },
            limits: merge_limits(limits, file.limits, &given),
            dns: dns.clone().or(file.dns),
            certificates,
        })
    }

    /// The store flags as the shared helpers take them.
    pub(crate) fn store_args(&self) -> StoreArgs {
        StoreArgs {
            store: self.store.clone(),
            resolver: self.resolver.clone(),
            shared: SharedStoreArgs {
                store_password_file: self.store_password_file.clone(),
                store_ca: self.store_ca.clone(),
                store_cert: self.store_cert.clone(),
                store_key: self.store_key.clone(),
                store_prefix: self.store_prefix.clone(),
            },
        }
    }

    /// The CA flags as the shared helpers take them.
    pub(crate) fn ca_args(&self) -> CaArgs {
        CaArgs {
            ca: self.ca.clone(),
            staging_ca: self.staging_ca.clone(),
            ca_root: self.ca_root.clone(),
            email: self.email.clone(),
            agree_tos: self.agree_tos,
            eab_kid: self.eab_kid.clone(),
            eab_hmac_file: self.eab_hmac_file.clone(),
        }
    }

    /// The proxy limits.
    pub(crate) fn proxy_limits(&self) -> berth_proxy::Limits {
        let l = &self.limits;
        let mut limits = berth_proxy::Limits::default();
        limits.header_read_timeout = l.header_timeout;
        limits.idle_timeout = l.idle_timeout;
        limits.max_header_bytes = l.max_header_bytes;
        limits.max_connections = l.max_connections;
        limits.max_upstream_connections = l.max_upstream_connections;
        limits.max_request_body = l.max_body_bytes;
        limits.upstream_timeout = l.upstream_timeout;
        limits.shutdown_timeout = l.drain_timeout;
        limits
    }
}

/// A CA as it is written: its preset name, or its directory URL (what `--ca` reads back;
/// its `Display` adds the URL to a preset's name).
fn ca_name<S: serde::Serializer>(ca: &Ca, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(ca.name())
}

/// The flag or variable when `given`, else the file's value, else the flag's default.
fn choose<T>(given: bool, arg: T, file: Option<T>) -> T {
    if given { arg } else { file.unwrap_or(arg) }
}

fn merge_limits(args: &LimitArgs, file: FileLimits, given: &dyn Fn(&str) -> bool) -> LimitSettings {
    let duration = |id: &str, arg: Duration, file: Option<Duration>| choose(given(id), arg, file);
    let number = |id: &str, arg: usize, file: Option<usize>| choose(given(id), arg, file);
    LimitSettings {
        header_timeout: duration("header_timeout", args.header_timeout, file.header_timeout),
        idle_timeout: duration("idle_timeout", args.idle_timeout, file.idle_timeout),
        max_header_bytes: number(
            "max_header_bytes",
            args.max_header_bytes,
            file.max_header_bytes,
        ),
        max_connections: number(
            "max_connections",
            args.max_connections,
            file.max_connections,
        ),
        max_upstream_connections: number(
            "max_upstream_connections",
            args.max_upstream_connections,
            file.max_upstream_connections,
        ),
        max_body_bytes: args.max_body_bytes.or(file.max_body_bytes),
        upstream_timeout: duration(
            "upstream_timeout",
            args.upstream_timeout,
            file.upstream_timeout,
        ),
        drain_timeout: duration("drain_timeout", args.drain_timeout, file.drain_timeout),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!(
            "--config {}: {e}; pass a readable TOML file",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "--config {}: {}",
            path.display(),
            toml_error(&text, &e)
        ))
    })
}

/// A TOML error as position, key and reason. toml's own `Display` quotes the offending line
/// and serde's reasons quote string values: either may be a secret (`eab_hmac = "…"`), and
/// this error is printed at start-up and on every SIGHUP reload.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let reason = redact_quoted(e.message().trim_end());
    let Some(at) = e.span().map(|span| span.start.min(text.len())) else {
        return reason;
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-. \"'".contains(c))
        });
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.split(']').next())
        .map(|l| l.trim_start_matches('['));
    match (key, table) {
        (Some(key), Some(table)) => {
            format!("line {line}, column {column}, key {table}.{key}: {reason}")
        }
        (Some(key), None) => format!("line {line}, column {column}, key {key}: {reason}"),
        (None, _) => format!("line {line}, column {column}: {reason}"),
    }
}

/// `text` with every double-quoted part replaced by `"…"`. A `\"` inside one (serde
/// quotes values with Rust's escapes) does not end it; an unclosed quote hides the rest.
fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => {
                quoted = false;
                out.push('"');
            }
            (true, false, _) => {}
            (false, _, '"') => {
                quoted = true;
                out.push_str("\"…");
            }
            (false, _, c) => out.push(c),
        }
    }
    out
}

/// Durations printed the way they are written in the file ("30s", "1m 30s").
mod humantime_serde_text {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    fn settings(argv: &[&str], file: &str) -> Result<RunSettings, Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, file).unwrap();
        let config = path.display().to_string();
        let mut full = vec!["berth", "run", "--config", &config];
        full.extend_from_slice(argv);
        let matches = Cli::command().try_get_matches_from(full).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let (_, sub) = matches.subcommand().unwrap();
        RunSettings::resolve(&args, sub)
    }

    #[test]
    fn config_errors_name_position_and_key_never_the_value() {
        let planted = "PLANTED-CONFIG-SECRET-9f2e";
        // A syntax error on the secret's line (missing closing quote) and a type error
        // (a string where a number belongs) each quote the line or the value in toml's
        // own message.
        for file in [
            format!("domains = [\"a.example.com\"]\neab_hmac = \"{planted}\n"),
            format!("domains = [\"a.example.com\"]\n[limits]\nmax_connections = \"{planted}\"\n"),
        ] {
            let err = settings(&[], &file).err().unwrap().to_string();
            assert!(!err.contains(planted), "{err}");
            assert!(err.contains("line "), "{err}");
        }
        let err = settings(
            &[],
            &format!("domains = [\"a.example.com\"]\n[limits]\nmax_connections = \"{planted}\"\n"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("line 3") && err.contains("limits.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn ten_thousand_certificates_plan_in_linear_time_and_a_reordered_duplicate_is_refused() {
        let mut file = String::from("agree_tos = true\nupstream = \"http://127.0.0.1:1\"\n");
        for i in 0..10_000 {
            file.push_str(&format!(
                "[[certificates]]\ndomains = [\"c{i}.example.com\", \"www.c{i}.example.com\"]\n"
            ));
        }
        let s = settings(&[], &file).unwrap();
        // Generous: the duplicate check compared every pair (50 million set keys, seconds
        // even in a release build); linear, it takes milliseconds.
        let started = std::time::Instant::now();
        let plan = crate::plan::Plan::build(&s).unwrap();
        assert_eq!(plan.managed.len(), 10_000);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        file.push_str("[[certificates]]\ndomains = [\"www.c5.example.com\", \"c5.example.com\"]\n");
        let err = crate::plan::Plan::build(&settings(&[], &file).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn profiles_come_from_the_set_then_the_top_level_and_a_malformed_one_is_refused() {
        let file = "agree_tos = true\nupstream = \"http://127.0.0.1:1\"\nprofile = \"tlsserver\"\n\
            [[certificates]]\ndomains = [\"a.example.com\"]\n\
            [[certificates]]\ndomains = [\"192.0.2.10\"]\nprofile = \"shortlived\"\n";
        let plan = crate::plan::Plan::build(&settings(&[], file).unwrap()).unwrap();
        let profiles: Vec<Option<&str>> =
            plan.managed.iter().map(|m| m.profile.as_deref()).collect();
        assert_eq!(profiles, [Some("tlsserver"), Some("shortlived")]);
        let flag =
            crate::plan::Plan::build(&settings(&["--profile", "classic"], file).unwrap()).unwrap();
        assert_eq!(flag.managed[0].profile.as_deref(), Some("classic"));
        let err = crate::plan::Plan::build(&settings(&["--profile", "short lived"], file).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is not a profile name"), "{err}");
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = r#"
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
        let s = settings(
            &["--ca", "letsencrypt-staging", "-d", "flag.example.com"],
            file,
        )
        .unwrap();
        assert_eq!(s.ca.name(), "letsencrypt-staging", "flag beats file");
        assert_eq!(
            s.upstream.as_deref(),
            Some("http://file:1"),
            "file beats nothing"
        );
        assert_eq!(
            s.http_addr,
            "127.0.0.1:8080".parse().unwrap(),
            "file beats default"
        );
        assert_eq!(s.tls_addr, "0.0.0.0:443".parse().unwrap(), "default stays");
        assert!(s.agree_tos);
        assert_eq!(s.limits.drain_timeout, Duration::from_secs(3));
        assert_eq!(s.proxy_limits().max_upstream_connections, 64);
        assert_eq!(s.proxy_limits().max_connections, 10_000);
        assert_eq!(s.certificates.len(), 2);
        assert_eq!(s.certificates[0].domains, ["flag.example.com"]);
        assert_eq!(s.certificates[1].challenge, Some(ChallengeKind::TlsAlpn01));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_key() {
        let Err(e) = settings(&[], "upstrem = \"http://x:1\"") else {
            panic!("typo accepted")
        };
        let text = e.to_string();
        assert!(
            text.contains("berth.toml") && text.contains("upstrem"),
            "{text}"
        );
        let Err(e) = settings(&[], "[limits]\ndrain_timeout = \"soon\"") else {
            panic!("bad duration accepted")
        };
        assert!(e.to_string().contains("limits.drain_timeout"), "{e}");
    }

    #[test]
    fn trusted_proxies_come_from_the_flag_or_the_file_and_bad_ones_stop_the_plan() {
        let file =
            "agree_tos = true\ndomains = [\"a.example.com\"]\nupstream = \"http://127.0.0.1:1\"\n";
        let none = settings(&[], file).unwrap();
        assert!(
            crate::plan::Plan::build(&none)
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let listed = format!("{file}trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
        let from_file = settings(&[], &listed).unwrap();
        let plan = crate::plan::Plan::build(&from_file).unwrap();
        assert_eq!(plan.trusted_proxies.to_string(), "10.0.0.0/8,2001:db8::/32");
        let flag = settings(&["--trusted-proxies", "192.0.2.0/24,::1"], &listed).unwrap();
        assert_eq!(
            flag.trusted_proxies,
            ["192.0.2.0/24", "::1"],
            "flag beats file"
        );
        let bad = settings(&["--trusted-proxies", "10.0.0.0/33"], file).unwrap();
        let err = crate::plan::Plan::build(&bad).err().unwrap().to_string();
        assert!(
            err.contains("--trusted-proxies") && err.contains("10.0.0.0/33"),
            "{err}"
        );
    }
}
