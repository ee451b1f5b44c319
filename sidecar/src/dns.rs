//! The DNS-01 settings (`--dns-*` flags over the config file's `[dns]`) turned into a
//! solver. The TSIG secret is read from its file here, once per start (and per SIGHUP),
//! and only from a file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::dns01::{
    Dns01Config, Dns01Solver, DnsProvider, ExecProvider, Rfc2136Provider, TsigKey, journal_path,
    parse_server,
};
use berth_config::DnsSettings;
use berth_secrets::Loader;

use crate::failure::Failure;

/// How long one run of the exec hook may take unless `--dns-exec-timeout` says otherwise.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one RFC 2136 update may wait for the server's answer.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `--challenge dns-01` needs, for error messages.
const HOW_TO_CONFIGURE: &str = "dns-01 needs a DNS provider: --dns-server IP --dns-tsig-secret-file FILE (RFC 2136 with a TSIG key) or --dns-exec PROGRAM";

/// The DNS-01 solver the flags describe, or `None` when no provider is configured.
/// `store` is the `acme.json` the record journal goes beside (none for a shared store).
pub(crate) fn solver(
    args: &DnsSettings,
    store: Option<&Path>,
) -> Result<Option<Arc<Dns01Solver>>, Failure> {
    let loader = crate::commands::secrets_loader();
    loader.refuse_plain_env("BERTH_DNS_TSIG_SECRET")?;
    let Some(provider) = provider(args, &loader)? else {
        return Ok(None);
    };
    let server = |flag: &str, text: &str| {
        parse_server(text).map_err(|e| Failure::usage(format!("{flag}: {e}")))
    };
    let defaults = Dns01Config::default();
    let config = Dns01Config {
        resolver: args
            .resolver
            .as_deref()
            .map(|r| server("--dns-resolver", r))
            .transpose()?,
        zone: args.zone.clone().filter(|z| !z.trim().is_empty()),
        propagation_servers: args
            .propagation_servers
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| server("--dns-propagation-servers", s))
            .collect::<Result<_, _>>()?,
        propagation_timeout: args
            .propagation_timeout
            .unwrap_or(defaults.propagation_timeout),
        propagation_interval: args
            .propagation_interval
            .unwrap_or(defaults.propagation_interval),
        ttl: args.ttl.unwrap_or(defaults.ttl),
        journal: store.map(journal_path),
        ..defaults
    };
    Ok(Some(Arc::new(Dns01Solver::new(provider, config))))
}

/// Refuses `--challenge dns-01` without a provider, with what to add.
pub(crate) fn require(solver: Option<Arc<Dns01Solver>>) -> Result<Arc<Dns01Solver>, Failure> {
    solver.ok_or_else(|| Failure::usage(HOW_TO_CONFIGURE))
}

fn provider(args: &DnsSettings, loader: &Loader) -> Result<Option<Arc<dyn DnsProvider>>, Failure> {
    let kind = match args.provider.as_deref().map(str::trim) {
        Some(kind) if !kind.is_empty() => kind.to_ascii_lowercase(),
        _ if args.exec.is_some() => "exec".into(),
        _ if args.server.is_some() || args.tsig_secret_file.is_some() => "rfc2136".into(),
        _ => return Ok(None),
    };
    match kind.as_str() {
        "rfc2136" => {
            let server = args.server.as_deref().ok_or_else(|| {
                Failure::usage(
                    "--dns-provider rfc2136 needs --dns-server (the zone's primary, IP[:port])",
                )
            })?;
            let server =
                parse_server(server).map_err(|e| Failure::usage(format!("--dns-server: {e}")))?;
            let file = args.tsig_secret_file.as_deref().ok_or_else(|| {
                Failure::usage("--dns-provider rfc2136 needs --dns-tsig-secret-file (the key file tsig-keygen wrote)")
            })?;
            let secret = loader.read_file(file)?;
            let key = TsigKey::parse(args.tsig_key.as_deref(), args.tsig_algorithm, &secret)
                .map_err(|e| {
                    Failure::usage(format!("--dns-tsig-secret-file {}: {e}", file.display()))
                        .with_setting(e.setting())
                })?;
            Ok(Some(Arc::new(Rfc2136Provider::new(
                server,
                key,
                UPDATE_TIMEOUT,
            ))))
        }
        "exec" => {
            let program = args.exec.as_deref().ok_or_else(|| {
                Failure::usage("--dns-provider exec needs --dns-exec (the hook program)")
            })?;
            let timeout = args.exec_timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT);
            Ok(Some(Arc::new(ExecProvider::new(program, timeout))))
        }
        other => Err(Failure::usage(format!(
            "--dns-provider {other:?} is not known; use rfc2136 or exec (more providers are planned, see the README)"
        ))),
    }
}
