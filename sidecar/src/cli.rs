//! Command-line interface. Every flag also reads `BERTH_<FLAG>`; one name per concept
//! across all subcommands (README, "Configuration").

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use berth_acme_core::challenge::dns01::TsigAlgorithm;
use berth_acme_core::{Ca, ChallengeKind, KeyType, RevocationReason};
use berth_config::defaults;
use berth_proxy::Limits;
use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// berth gets and renews TLS certificates over ACME, loads secrets the way containers
/// hand them over, and terminates HTTPS in front of an application.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format: auto (JSON when not a terminal), json or text. Level: BERTH_LOG or RUST_LOG.
    #[arg(
        long,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    pub(crate) log_format: LogFormat,

    /// Threads that serve connections: a number, or auto (one per CPU the process may
    /// use, cgroup limits included). Each is a single-threaded event loop with its own
    /// upstream connections, like an nginx worker; the first also manages certificates
    /// and serves the admin endpoints.
    #[arg(long, env = "BERTH_WORKERS", default_value = "auto", value_parser = workers, global = true)]
    pub(crate) workers: Workers,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How many threads run connections (`--workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workers {
    /// One per CPU the process may use.
    Auto,
    /// Exactly this many.
    Count(NonZeroUsize),
}

impl Workers {
    /// The thread count: for `Auto`, tokio's `TOKIO_WORKER_THREADS` if the environment
    /// sets it, else what the OS reports (cgroup CPU quotas included), else one.
    pub(crate) fn resolve(self) -> NonZeroUsize {
        match self {
            Self::Count(n) => n,
            Self::Auto => std::env::var("TOKIO_WORKER_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
                .or_else(|| std::thread::available_parallelism().ok())
                .unwrap_or(NonZeroUsize::MIN),
        }
    }
}

fn workers(text: &str) -> Result<Workers, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(Workers::Auto);
    }
    match text.parse::<NonZeroUsize>() {
        Ok(n) => Ok(Workers::Count(n)),
        Err(_) => Err(format!(
            "{text:?} is not a thread count; use a number from 1, or auto"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run as a sidecar: keep certificates issued and renewed, terminate HTTPS and
    /// forward to the app, answer HTTP-01 and redirect to HTTPS on :80, serve the admin API.
    Run(RunArgs),
    /// Get one certificate now and store it.
    Issue(IssueArgs),
    /// List, show or export stored certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Revoke a stored certificate and mark it revoked.
    Revoke(RevokeArgs),
    /// Work on whole stores (moving to cluster mode and back).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Renew now: all certificates or those carrying a NAME, through the running `berth
    /// run` (admin API) or, with --standalone, on the store; --dry-run proves it on the
    /// staging CA and stores nothing.
    Renew(RenewArgs),
    /// Import certificates from Traefik (v1, v2/v3 acme.json), certbot (/etc/letsencrypt)
    /// or lego (.lego): each chain and key pair is checked; the source is only read.
    Import(ImportArgs),
    /// Check the configuration `berth run` would use.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect secrets without showing them.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Exit 0 when the admin server's /healthz answers (for HEALTHCHECK in images
    /// without curl).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and lint it: each finding
    /// with its fix. Exit 2 when there is an error. Takes the same flags as `berth run`.
    Check(ConfigCheckArgs),
}

/// `config check`: `berth run`'s flags, and `--json`.
#[derive(Debug, Args)]
pub(crate) struct ConfigCheckArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// For each NAME: where it came from (NAME, NAME_FILE or the Docker secret), its
    /// length after trimming and what was trimmed. Never the value.
    Check(SecretsCheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SecretsCheckArgs {
    /// Variable names, e.g. BERTH_EAB_HMAC (looked up as NAME, NAME_FILE, /run/secrets/name).
    #[arg(required = true)]
    pub(crate) names: Vec<String>,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

/// `--json`, for every command that prints a result.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct JsonOutput {
    /// Print the result as JSON.
    #[arg(long, env = "BERTH_JSON")]
    pub(crate) json: bool,
}

/// How `issue` and `renew` order: the key, staging first, and whether to order at all.
#[derive(Debug, Args)]
pub(crate) struct OrderArgs {
    /// Key type of the new certificates: ec256 (default), ec384, rsa2048, rsa4096 (renew:
    /// with --standalone).
    #[arg(long, env = "BERTH_KEY_TYPE", default_value_t = defaults::KEY_TYPE)]
    pub(crate) key_type: KeyType,
    /// Order from the production CA without proving the names on its staging CA first
    /// (renew: with --standalone).
    #[arg(long, env = "BERTH_SKIP_STAGING")]
    pub(crate) skip_staging: bool,
    /// Order even when a valid certificate is stored and not due, and even inside a
    /// backoff window after a failure (use sparingly: the CA's rate limits still apply,
    /// and berth's budget still checks).
    #[arg(long, env = "BERTH_FORCE")]
    pub(crate) force: bool,
    /// Order from the CA's staging endpoint (its preset's, or --staging-ca) into a
    /// throwaway store: validates for real, stores nothing, says whether the order would
    /// succeed.
    #[arg(long, env = "BERTH_DRY_RUN")]
    pub(crate) dry_run: bool,
}

/// Where the admin server of a running `berth run` is.
#[derive(Debug, Args, Clone)]
pub(crate) struct AdminTarget {
    /// The admin server's address (as given to `berth run`; 0.0.0.0 means this host).
    #[arg(long, env = "BERTH_ADMIN_ADDR", default_value_t = defaults::ADMIN_ADDR)]
    pub(crate) admin_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct HealthcheckArgs {
    #[command(flatten)]
    pub(crate) admin: AdminTarget,
    /// Full URL to check instead of http://<admin-addr>/healthz.
    #[arg(long, env = "BERTH_HEALTHCHECK_URL")]
    pub(crate) url: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub(crate) timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct RenewArgs {
    /// Renew only the certificates that carry one of these names (any of their names);
    /// all when none is given.
    pub(crate) names: Vec<String>,
    #[command(flatten)]
    pub(crate) admin: AdminTarget,
    #[command(flatten)]
    pub(crate) order: OrderArgs,
    /// Renew on --store directly instead of asking a running `berth run`, answering the
    /// challenges on this process's own listeners (--http-addr, --tls-addr, --dns-*).
    #[arg(long, env = "BERTH_STANDALONE")]
    pub(crate) standalone: bool,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
    /// --standalone: the CA and account.
    #[command(flatten)]
    pub(crate) ca: CaArgs,
    /// --standalone: the store whose certificates are renewed.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// --standalone: how the names are proven (the challenge flags of `issue`).
    #[command(flatten)]
    pub(crate) challenge: ChallengeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// What to import: a Traefik acme.json, certbot's config directory (holding live/ and
    /// renewal/) or lego's .lego directory (holding certificates/).
    pub(crate) source: PathBuf,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Say what would be imported, kept and skipped; write nothing (the store is only read).
    #[arg(long, env = "BERTH_DRY_RUN")]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

/// Parses `90s`, `5m`, `1h30m`, `250ms` (humantime), or a bare number of seconds.
/// The config file reads them the same way.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    berth_config::parse_duration(text)
}

/// The names of one certificate.
#[derive(Debug, Args, Clone)]
pub(crate) struct DomainArgs {
    /// A name to put on the certificate; repeat for more (the first is the main name).
    #[arg(
        short = 'd',
        long = "domain",
        env = "BERTH_DOMAINS",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) domains: Vec<String>,
}

/// Which CA, how to trust it, and the account there.
#[derive(Debug, Args, Clone)]
pub(crate) struct CaArgs {
    /// CA: letsencrypt-staging (default), letsencrypt, zerossl, google, google-staging, or
    /// an ACME directory URL.
    #[arg(long, env = "BERTH_CA", default_value = "letsencrypt-staging")]
    pub(crate) ca: Ca,
    /// Staging counterpart of a custom --ca, proven first for new domain sets.
    #[arg(long, env = "BERTH_STAGING_CA")]
    pub(crate) staging_ca: Option<String>,
    /// Extra PEM root(s) to trust for the CA's API (private CAs: Pebble, step-ca).
    #[arg(long, env = "BERTH_CA_ROOT")]
    pub(crate) ca_root: Option<PathBuf>,
    /// Contact email for the ACME account (expiry notices).
    #[arg(long, env = "BERTH_EMAIL")]
    pub(crate) email: Option<String>,
    /// Agree to the CA's terms of service (required to create an account).
    #[arg(long, env = "BERTH_AGREE_TOS")]
    pub(crate) agree_tos: bool,
    /// External Account Binding key id (ZeroSSL, Google).
    #[arg(long, env = "BERTH_EAB_KID")]
    pub(crate) eab_kid: Option<String>,
    /// File holding the EAB HMAC key (never pass it in an env var or flag).
    #[arg(long, env = "BERTH_EAB_HMAC_FILE")]
    pub(crate) eab_hmac_file: Option<PathBuf>,
}

/// Where certificates and berth's state live.
#[derive(Debug, Args, Clone)]
pub(crate) struct StoreArgs {
    /// The Traefik-compatible acme.json (berth's own state goes beside it).
    #[arg(long, env = "BERTH_STORE", default_value = defaults::STORE)]
    pub(crate) store: PathBuf,
    /// The resolver section of acme.json berth writes to.
    #[arg(long, env = "BERTH_RESOLVER", default_value = defaults::RESOLVER)]
    pub(crate) resolver: String,
    #[command(flatten)]
    pub(crate) shared: SharedStoreArgs,
}

/// How to reach a shared store (redis://, etcd://) besides its URL.
#[derive(Debug, Args, Clone)]
pub(crate) struct SharedStoreArgs {
    /// File holding the shared store's password (redis://, etcd://); never in the URL or an
    /// env var.
    #[arg(long, env = "BERTH_STORE_PASSWORD_FILE")]
    pub(crate) store_password_file: Option<PathBuf>,
    /// A private CA (PEM) that signed a TLS store's certificate (rediss://, etcds://).
    #[arg(long, env = "BERTH_STORE_CA")]
    pub(crate) store_ca: Option<PathBuf>,
    /// Client certificate (PEM file) for a TLS store that checks clients (rediss://,
    /// etcds://); with --store-key.
    #[arg(long, env = "BERTH_STORE_CERT")]
    pub(crate) store_cert: Option<PathBuf>,
    /// File holding the private key (PEM) of --store-cert; read like a secret file.
    #[arg(long, env = "BERTH_STORE_KEY")]
    pub(crate) store_key: Option<PathBuf>,
    /// Prefix of every key in a shared store, so several deployments can share one.
    #[arg(long, env = "BERTH_STORE_PREFIX", default_value = defaults::STORE_PREFIX)]
    pub(crate) store_prefix: String,
}

/// DNS-01: the provider that writes `_acme-challenge` TXT records and how propagation is
/// checked. The `--config` file's `[dns]` table has the same names (`_` for `-`, no
/// `dns-` prefix); berth-config's `DnsSettings` reads it.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub(crate) struct DnsArgs {
    /// DNS-01 provider: rfc2136 (dynamic update signed with TSIG) or exec (a hook
    /// program). Inferred from --dns-server or --dns-exec when unset.
    #[arg(id = "dns_provider", long = "dns-provider", env = "BERTH_DNS_PROVIDER")]
    pub(crate) provider: Option<String>,
    /// rfc2136: the zone's primary server, IP[:port] (port 53 by default).
    #[arg(id = "dns_server", long = "dns-server", env = "BERTH_DNS_SERVER")]
    pub(crate) server: Option<String>,
    /// rfc2136: TSIG key name (taken from the key file when it is a `tsig-keygen` file).
    #[arg(id = "dns_tsig_key", long = "dns-tsig-key", env = "BERTH_DNS_TSIG_KEY")]
    pub(crate) tsig_key: Option<String>,
    /// rfc2136: hmac-sha256 (default), hmac-sha384 or hmac-sha512.
    #[arg(
        id = "dns_tsig_algorithm",
        long = "dns-tsig-algorithm",
        env = "BERTH_DNS_TSIG_ALGORITHM"
    )]
    pub(crate) tsig_algorithm: Option<TsigAlgorithm>,
    /// rfc2136: file holding the TSIG secret, or the whole key file `tsig-keygen` wrote.
    /// Never pass the secret itself in a flag or variable.
    #[arg(
        id = "dns_tsig_secret_file",
        long = "dns-tsig-secret-file",
        env = "BERTH_DNS_TSIG_SECRET_FILE"
    )]
    pub(crate) tsig_secret_file: Option<PathBuf>,
    /// exec: program run as `<program> present|cleanup <fqdn> <value>` (lego's convention).
    #[arg(id = "dns_exec", long = "dns-exec", env = "BERTH_DNS_EXEC")]
    pub(crate) exec: Option<PathBuf>,
    /// exec: how long one run of the program may take (default 60s).
    #[arg(
        id = "dns_exec_timeout",
        long = "dns-exec-timeout",
        env = "BERTH_DNS_EXEC_TIMEOUT",
        value_parser = duration
    )]
    pub(crate) exec_timeout: Option<Duration>,
    /// The zone the records go in (default: found by SOA lookup).
    #[arg(id = "dns_zone", long = "dns-zone", env = "BERTH_DNS_ZONE")]
    pub(crate) zone: Option<String>,
    /// DNS server for berth's own lookups (CNAME, SOA, NS), IP[:port] (default: the
    /// first nameserver in /etc/resolv.conf).
    #[arg(id = "dns_resolver", long = "dns-resolver", env = "BERTH_DNS_RESOLVER")]
    pub(crate) resolver: Option<String>,
    /// Check propagation on these servers instead of the zone's authoritative
    /// nameservers (split horizon); comma-separated IP[:port].
    #[arg(
        id = "dns_propagation_servers",
        long = "dns-propagation-servers",
        env = "BERTH_DNS_PROPAGATION_SERVERS",
        value_delimiter = ','
    )]
    pub(crate) propagation_servers: Vec<String>,
    /// How long to wait for every nameserver to serve the record (default 2m).
    #[arg(
        id = "dns_propagation_timeout",
        long = "dns-propagation-timeout",
        env = "BERTH_DNS_PROPAGATION_TIMEOUT",
        value_parser = duration
    )]
    pub(crate) propagation_timeout: Option<Duration>,
    /// How often to ask while waiting (default 2s).
    #[arg(
        id = "dns_propagation_interval",
        long = "dns-propagation-interval",
        env = "BERTH_DNS_PROPAGATION_INTERVAL",
        value_parser = duration
    )]
    pub(crate) propagation_interval: Option<Duration>,
    /// TTL of the TXT records, in seconds (default 60).
    #[arg(id = "dns_ttl", long = "dns-ttl", env = "BERTH_DNS_TTL")]
    pub(crate) ttl: Option<u32>,
}

/// How `issue` and `renew --standalone` prove control of the names: the challenge and
/// where this process answers it (its own listeners, or the DNS provider).
#[derive(Debug, Args)]
pub(crate) struct ChallengeArgs {
    /// Challenge: http-01, tls-alpn-01 or dns-01 (with the --dns-* flags).
    #[arg(long, env = "BERTH_CHALLENGE", default_value_t = defaults::CHALLENGE)]
    pub(crate) challenge: ChallengeKind,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    /// Where to answer HTTP-01 (the CA connects to port 80).
    #[arg(long, env = "BERTH_HTTP_ADDR", default_value_t = defaults::HTTP_ADDR)]
    pub(crate) http_addr: SocketAddr,
    /// Where to answer TLS-ALPN-01 (the CA connects to port 443).
    #[arg(long, env = "BERTH_TLS_ADDR", default_value_t = defaults::TLS_ADDR)]
    pub(crate) tls_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    #[command(flatten)]
    pub(crate) domains: DomainArgs,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) challenge: ChallengeArgs,
    #[command(flatten)]
    pub(crate) order: OrderArgs,
    /// Certificate profile to request (shortlived, tlsserver, classic at Let's Encrypt);
    /// refused before ordering unless the CA's directory lists it.
    #[arg(long, env = "BERTH_PROFILE")]
    pub(crate) profile: Option<String>,
    /// Also write PEM files: <dir>/live/<name>/{cert,chain,fullchain,privkey}.pem and
    /// <dir>/<name>.pem (HAProxy).
    #[arg(long, env = "BERTH_EXPORT_DIR")]
    pub(crate) export_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// A table (or JSON) of stored certificates: names, issuer, expiry, days left.
    List(CertsListArgs),
    /// Details of one certificate.
    Show(CertsShowArgs),
    /// Write one certificate as PEM files, or every certificate as a Traefik acme.json.
    Export(CertsExportArgs),
    /// Remove stale certificates from the store: expired ones (--expired) and ones whose
    /// names the last `berth run` was not configured with (--unmanaged).
    Prune(CertsPruneArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy every certificate, account and berth's state from one store to another (a
    /// file and redis://, either way). Idempotent; never overwrites a key the target
    /// holds with a different value (those are listed). The source is only read.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy from (a file path or redis://…).
    #[arg(long)]
    pub(crate) from: PathBuf,
    /// The store to copy into.
    #[arg(long)]
    pub(crate) to: PathBuf,
    /// The resolver section of a file store berth reads and writes.
    #[arg(long, env = "BERTH_RESOLVER", default_value = defaults::RESOLVER)]
    pub(crate) resolver: String,
    /// For whichever side is a shared store.
    #[command(flatten)]
    pub(crate) shared: SharedStoreArgs,
}

impl MigrateArgs {
    /// The store flags for one side.
    pub(crate) fn side(&self, store: &std::path::Path) -> StoreArgs {
        StoreArgs {
            store: store.to_path_buf(),
            resolver: self.resolver.clone(),
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct CertsPruneArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Remove certificates past their expiry date.
    #[arg(long)]
    pub(crate) expired: bool,
    /// Remove certificates whose names the last `berth run` on this store was not
    /// configured with (it never renews them).
    #[arg(long)]
    pub(crate) unmanaged: bool,
    /// Print what would be removed and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Revoke each unexpired certificate (reason cessation-of-operation) before removing
    /// it; needs the --ca it was issued from and its account in the store.
    #[arg(long)]
    pub(crate) revoke: bool,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

#[derive(Debug, Args)]
pub(crate) struct CertsListArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

#[derive(Debug, Args)]
pub(crate) struct CertsShowArgs {
    /// The certificate's main name (or any name it covers).
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) output: JsonOutput,
}

#[derive(Debug, Args)]
pub(crate) struct CertsExportArgs {
    /// The certificate's main name (or any name it covers); not for --format traefik.
    #[arg(required_unless_present = "out")]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Directory to write to.
    #[arg(long, env = "BERTH_EXPORT_DIR", required_unless_present = "out")]
    pub(crate) dir: Option<PathBuf>,
    /// Layout: live (certbot-like live/<name>/*.pem), combined (HAProxy <name>.pem), both,
    /// or traefik (every certificate as one acme.json, to hand a cluster store to Traefik;
    /// needs --out).
    #[arg(long, value_enum, default_value_t = ExportFormat::Both)]
    pub(crate) format: ExportFormat,
    /// The acme.json to write with --format traefik (mode 0600, replaced atomically).
    #[arg(long, requires = "format")]
    pub(crate) out: Option<PathBuf>,
}

/// What `certs export` writes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// certbot's layout: live/<name>/{cert,chain,fullchain,privkey}.pem.
    Live,
    /// HAProxy's: <name>.pem, chain and key in one file.
    Combined,
    /// Both layouts.
    Both,
    /// Every certificate as one Traefik acme.json (with --out).
    Traefik,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The certificate's main name (or any name it covers).
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// RFC 5280 reason: unspecified, key-compromise, superseded, cessation-of-operation.
    #[arg(long, default_value = "unspecified")]
    pub(crate) reason: RevocationReason,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// TOML file with settings (and `[[certificates]]` / `routes` for many); flags and
    /// BERTH_* variables override it. Re-read on SIGHUP.
    #[arg(long, env = "BERTH_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// A name to put on the certificate; repeat for more (the first is the main name).
    /// More certificates: `[[certificates]]` in --config.
    #[arg(
        short = 'd',
        long = "domain",
        env = "BERTH_DOMAINS",
        value_delimiter = ','
    )]
    pub(crate) domains: Vec<String>,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The app to forward to, e.g. http://app:3000 (one route: everything).
    #[arg(long, env = "BERTH_UPSTREAM")]
    pub(crate) upstream: Option<String>,
    /// More routes: "[host][/prefix]=http://host:port"; repeatable (BERTH_ROUTES is
    /// comma-separated). Longest host+prefix match wins.
    #[arg(long = "route", env = "BERTH_ROUTES", value_delimiter = ',')]
    pub(crate) routes: Vec<String>,
    /// Challenge: http-01 (default, answered on --http-addr), tls-alpn-01 (on
    /// --tls-addr) or dns-01 (with the --dns-* flags).
    #[arg(long, env = "BERTH_CHALLENGE", default_value_t = defaults::CHALLENGE)]
    pub(crate) challenge: ChallengeKind,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    /// Certificate key: ec256 (default), ec384, rsa2048, rsa4096.
    #[arg(long, env = "BERTH_KEY_TYPE", default_value_t = defaults::KEY_TYPE)]
    pub(crate) key_type: KeyType,
    /// Certificate profile to request (shortlived, tlsserver, classic at Let's Encrypt);
    /// refused before ordering unless the CA's directory lists it.
    #[arg(long, env = "BERTH_PROFILE")]
    pub(crate) profile: Option<String>,
    /// Plain HTTP listener: HTTP-01 answers and redirects to HTTPS.
    #[arg(long, env = "BERTH_HTTP_ADDR", default_value_t = defaults::HTTP_ADDR)]
    pub(crate) http_addr: SocketAddr,
    /// HTTPS listener.
    #[arg(long, env = "BERTH_TLS_ADDR", default_value_t = defaults::TLS_ADDR)]
    pub(crate) tls_addr: SocketAddr,
    /// Port HTTP requests are redirected to (when the public HTTPS port differs from
    /// --tls-addr's, e.g. behind port mapping).
    #[arg(long, env = "BERTH_HTTPS_PORT")]
    pub(crate) https_port: Option<u16>,
    /// Admin server: /healthz, /readyz, /metrics, /api/certs and a status page.
    #[arg(long, env = "BERTH_ADMIN_ADDR", default_value_t = defaults::ADMIN_ADDR)]
    pub(crate) admin_addr: SocketAddr,
    /// Send Strict-Transport-Security with this max-age in seconds (off when unset).
    #[arg(long, env = "BERTH_HSTS_MAX_AGE")]
    pub(crate) hsts_max_age: Option<u64>,
    /// Load balancers in front of berth, as CIDRs or addresses (comma-separated): only
    /// their X-Forwarded-* / Forwarded / X-Real-IP headers are kept. Default: none;
    /// berth sets these headers from what it saw.
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Vec<String>,
    /// Read a PROXY protocol header (v1 or v2, as HAProxy and L4 load balancers send)
    /// at the start of TLS connections from --trusted-proxies: the client address it
    /// names is the one berth forwards. A header from any other peer closes the
    /// connection; connections without one are served as they are.
    #[arg(long, env = "BERTH_PROXY_PROTOCOL")]
    pub(crate) proxy_protocol: bool,
    /// Order from the production CA without proving the names on its staging CA first.
    #[arg(long, env = "BERTH_SKIP_STAGING")]
    pub(crate) skip_staging: bool,
    /// Orders in flight at once (at start-up with many new names; renewals spread out).
    #[arg(long, env = "BERTH_ORDER_CONCURRENCY", default_value_t = defaults::ORDER_CONCURRENCY, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=256), usize::from))]
    pub(crate) order_concurrency: usize,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// Proxy limits; defaults suit most apps. The names and defaults are
/// [`berth_proxy::Limits`]'s, which is also the config file's `[limits]` table.
#[derive(Debug, Args, Clone)]
pub(crate) struct LimitArgs {
    /// Time a client may take for the TLS handshake and request headers (slowloris).
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", default_value = seconds(Limits::DEFAULT.header_timeout), value_parser = duration)]
    pub(crate) header_timeout: Duration,
    /// Close connections idle this long.
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", default_value = seconds(Limits::DEFAULT.idle_timeout), value_parser = duration)]
    pub(crate) idle_timeout: Duration,
    /// Largest request head in bytes (larger: 431).
    #[arg(long, env = "BERTH_MAX_HEADER_BYTES", default_value_t = Limits::DEFAULT.max_header_bytes)]
    pub(crate) max_header_bytes: usize,
    /// Client connections served at once.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = Limits::DEFAULT.max_connections)]
    pub(crate) max_connections: usize,
    /// Connections to one upstream at once, split between the workers (more requests
    /// wait for a free one, up to --upstream-timeout).
    #[arg(long, env = "BERTH_MAX_UPSTREAM_CONNECTIONS", default_value_t = Limits::DEFAULT.max_upstream_connections)]
    pub(crate) max_upstream_connections: usize,
    /// Largest request body in bytes (larger: 413); unlimited when unset.
    #[arg(long, env = "BERTH_MAX_BODY_BYTES")]
    pub(crate) max_body_bytes: Option<u64>,
    /// Time to wait for the app's response headers (then 504).
    #[arg(long, env = "BERTH_UPSTREAM_TIMEOUT", default_value = seconds(Limits::DEFAULT.upstream_timeout), value_parser = duration)]
    pub(crate) upstream_timeout: Duration,
    /// On SIGTERM, time requests in flight get to finish (keep it below the
    /// orchestrator's stop timeout: Docker's is 10 s).
    #[arg(long, env = "BERTH_DRAIN_TIMEOUT", default_value = seconds(Limits::DEFAULT.drain_timeout), value_parser = duration)]
    pub(crate) drain_timeout: Duration,
}

/// A default duration as `--help` shows it: whole seconds as `90s`, else humantime's
/// form. Either reads back through [`duration`].
fn seconds(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        format!("{}s", value.as_secs())
    } else {
        humantime::format_duration(value).to_string()
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_subcommand_has_unique_argument_ids_and_valid_flags() {
        // clap checks this only when a subcommand is parsed; check all of them at once.
        Cli::command().debug_assert();
    }

    #[test]
    fn workers_are_auto_or_a_positive_count() {
        assert_eq!(workers("auto").unwrap(), Workers::Auto);
        let three = NonZeroUsize::new(3).unwrap();
        assert_eq!(workers(" 3 ").unwrap(), Workers::Count(three));
        assert_eq!(Workers::Count(three).resolve(), three);
        assert!(Workers::Auto.resolve() >= NonZeroUsize::MIN);
        let err = workers("0").unwrap_err();
        assert!(err.contains("\"0\"") && err.contains("auto"), "{err}");
        assert!(workers("many").is_err());
    }
}
