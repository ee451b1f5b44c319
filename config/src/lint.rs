//! Checks on the effective configuration: the mistakes that cost people a weekend or a
//! rate-limit ban, each reported with the fix. `berth config check` prints them;
//! `berth run` logs them at start and refuses to start on an error.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::dns01::Dns01Solver;
use berth_acme_core::store::{FileStore, StateSnapshot, single_file_mount, state_path, symlinked};
use berth_acme_core::{AccountConfig, Ca, CaFamily, ChallengeKind, DomainSet, Setting};
use berth_proxy::Upstream;
use serde::Serialize;

use crate::plan::Plan;
use crate::settings::RunSettings;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing; nothing is wrong.
    Note,
    /// Probably a mistake; berth still runs.
    Warning,
    /// berth cannot work like this.
    Error,
}

/// One finding: the setting, what is wrong, and the fix.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is.
    pub level: Level,
    /// The setting to look at, as its flag is written (`--tls-addr`).
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The library setting at fault when the finding is a library's refusal
    /// ([`Setting::of`]); the binary adds the hint naming its flag.
    #[serde(skip)]
    pub cause: Option<Setting>,
    /// The library's refusal the finding reports, for a hint that quotes its details
    /// (the file name of a store mounted on its own).
    #[serde(skip)]
    pub refusal: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{level}: {}: {}", self.setting, self.message)
    }
}

/// Whether to try the network and the ports (`config check`), or only what can be
/// known without side effects (`berth run` binds the ports itself right after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Try binding the listeners and connecting to the upstreams.
    Live,
    /// Configuration and files only.
    Static,
}

/// The store as the caller found it. A file store is checked and read (read-only) by
/// [`check`]; a shared store is a network service with credentials, so the caller reads
/// it (only for a live check).
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreView {
    /// An `acme.json` at this path.
    File(PathBuf),
    /// A shared store's state as the caller read it, or why it could not; `None` when
    /// it was not asked.
    Shared(Option<Result<StateSnapshot, String>>),
    /// The store setting cannot be used; the reason.
    Unusable(String),
}

/// What the checks need besides the settings and the plan: what the caller built from
/// the same settings, reading the secret files.
#[derive(Debug)]
pub struct Context<'a> {
    /// The CA and account (trust roots read).
    pub account: &'a AccountConfig,
    /// The DNS-01 solver, when a provider is configured.
    pub dns: Option<&'a Dns01Solver>,
    /// The store.
    pub store: StoreView,
}

/// The findings as they are made.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, setting: &'static str, message: String) {
        self.add_caused(level, setting, message, None);
    }

    /// A finding about a library's refusal, with the setting the library names.
    fn add_caused(
        &mut self,
        level: Level,
        setting: &'static str,
        message: String,
        cause: Option<Setting>,
    ) {
        self.0.push(Finding {
            level,
            setting,
            message,
            cause,
            refusal: None,
        });
    }

    /// A finding that is a library's refusal: its message, the setting it names, and
    /// the refusal itself.
    fn add_refusal(
        &mut self,
        level: Level,
        setting: &'static str,
        refusal: impl std::error::Error + Send + Sync + 'static,
    ) {
        self.0.push(Finding {
            level,
            setting,
            message: refusal.to_string(),
            cause: Setting::of(&refusal),
            refusal: Some(Arc::new(refusal)),
        });
    }
}

/// Every finding for `settings` and the plan built from them, errors first.
pub async fn check(
    settings: &RunSettings,
    plan: &Plan,
    context: Context<'_>,
    probe: Probe,
) -> Vec<Finding> {
    let mut findings = Findings::default();
    addresses(settings, plan, &mut findings);
    let state = store_state(settings, context.store, &mut findings).await;
    staging(settings, plan, &context.account.ca, &state, &mut findings);
    ip_identifiers(plan, &context.account.ca, &mut findings);
    if probe == Probe::Live {
        live(settings, plan, context.account, context.dns, &mut findings).await;
    }
    let mut findings = findings.0;
    findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    findings
}

/// Ports that look mistyped or swapped, and listeners a challenge or the network reaches.
fn addresses(settings: &RunSettings, plan: &Plan, findings: &mut Findings) {
    for (setting, port) in [
        ("--tls-addr", Some(settings.tls_addr.port())),
        ("--https-port", settings.https_port),
    ] {
        if port == Some(433) {
            findings.add(
                Level::Warning,
                setting,
                "port 433 is not HTTPS (443 is); did you mean 443?".into(),
            );
        }
    }
    if settings.http_addr.port() == 443 || settings.tls_addr.port() == 80 {
        findings.add(
            Level::Warning,
            "--http-addr",
            format!(
                "plain HTTP on {} and HTTPS on {} look swapped; HTTP is :80, HTTPS is :443",
                settings.http_addr, settings.tls_addr
            ),
        );
    }
    if plan.uses(ChallengeKind::Http01) && settings.http_addr.port() != 80 {
        findings.add(
            Level::Note,
            "--http-addr",
            format!(
                "http-01 is validated on port 80 of each name; berth listens on {}, so port 80 must be forwarded there",
                settings.http_addr
            ),
        );
    }
    if plan.uses(ChallengeKind::TlsAlpn01) && settings.tls_addr.port() != 443 {
        findings.add(
            Level::Note,
            "--tls-addr",
            format!(
                "tls-alpn-01 is validated on port 443 of each name; berth listens on {}, so port 443 must be forwarded there",
                settings.tls_addr
            ),
        );
    }
    if !settings.admin_addr.ip().is_loopback() {
        findings.add(
            Level::Note,
            "--admin-addr",
            format!(
                "the admin server on {} is reachable from the network and has no authentication; it is read-only except /api/renew, which only loopback clients may call",
                settings.admin_addr
            ),
        );
    }
}

/// The store's state, read-only: a store that does not parse is reported here, never
/// moved.
async fn store_state(
    settings: &RunSettings,
    store: StoreView,
    findings: &mut Findings,
) -> StateSnapshot {
    match store {
        StoreView::Unusable(e) | StoreView::Shared(Some(Err(e))) => {
            findings.add(Level::Error, "--store", e);
            StateSnapshot::default()
        }
        StoreView::File(path) => {
            store_files(&path, findings);
            match FileStore::open_read_only(&path, &settings.resolver).await {
                Ok(store) => StateSnapshot::read(store.as_ref())
                    .await
                    .unwrap_or_default(),
                Err(e) => {
                    findings.add(Level::Error, "--store", e.to_string());
                    StateSnapshot::default()
                }
            }
        }
        StoreView::Shared(Some(Ok(state))) => state,
        StoreView::Shared(None) => StateSnapshot::default(),
    }
}

/// What only a live check tries: binding the listeners, the DNS-01 preflight, the CA's
/// profiles, reaching the upstreams.
async fn live(
    settings: &RunSettings,
    plan: &Plan,
    account: &AccountConfig,
    dns: Option<&Dns01Solver>,
    findings: &mut Findings,
) {
    for (setting, addr, needed) in [
        (
            "--http-addr",
            settings.http_addr,
            plan.uses(ChallengeKind::Http01),
        ),
        (
            "--tls-addr",
            settings.tls_addr,
            plan.uses(ChallengeKind::TlsAlpn01),
        ),
    ] {
        if let Err(e) = tokio::net::TcpListener::bind(addr).await {
            let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' on the binary, or cap_add in compose)".to_owned()
            } else {
                format!("{e}; is another server (nginx, Traefik, an old berth) on it?")
            };
            let level = if needed { Level::Error } else { Level::Warning };
            findings.add(level, setting, format!("cannot listen on {addr}: {why}"));
        }
    }
    if let Some(dns) = dns {
        dns_preflight(dns, plan, findings).await;
    }
    profiles(plan, account, findings).await;
    for upstream in &plan.upstreams {
        if let Err(e) = reachable(upstream).await {
            findings.add(
                Level::Warning,
                "--upstream",
                format!(
                    "{upstream} is not reachable now ({e}); requests get 502 until it is up — check the host name and port (in compose, the service name and its container port)"
                ),
            );
        }
    }
}

/// When a profile is configured: the CA's certificate profiles (its directory's
/// `meta.profiles`) with their descriptions, and an error for each configured profile
/// it does not list.
async fn profiles(plan: &Plan, account: &AccountConfig, findings: &mut Findings) {
    let ca = &account.ca;
    let wanted: Vec<&str> = plan
        .managed
        .iter()
        .filter_map(|m| m.profile.as_deref())
        .collect();
    if wanted.is_empty() {
        // Nothing to check: no request to the CA (config check stays off the network
        // unless a setting depends on it).
        return;
    }
    let offered = match berth_acme_core::ca_profiles(account).await {
        Ok(offered) => offered,
        Err(e) => {
            findings.add(
                Level::Warning,
                "--profile",
                format!("could not read the CA's directory to list its certificate profiles: {e}"),
            );
            return;
        }
    };
    if offered.is_empty() {
        findings.add(
            Level::Note,
            "--profile",
            format!(
                "the CA {ca} lists no certificate profiles; its certificates all have its default lifetime"
            ),
        );
    } else {
        let list: Vec<String> = offered
            .iter()
            .map(|(name, description)| format!("{name} ({description})"))
            .collect();
        findings.add(
            Level::Note,
            "--profile",
            format!(
                "the CA {ca} offers these certificate profiles: {}",
                list.join("; ")
            ),
        );
    }
    let mut reported = Vec::new();
    for profile in wanted {
        if reported.contains(&profile) {
            continue;
        }
        reported.push(profile);
        if let Err(e) = berth_acme_core::check_profile(ca, &offered, profile) {
            findings.add(Level::Error, "--profile", e.to_string());
        }
    }
}

/// What IP-address certificates (RFC 8738) need: the CA connects to the address itself,
/// and Let's Encrypt issues them only under its `shortlived` profile.
fn ip_identifiers(plan: &Plan, ca: &Ca, findings: &mut Findings) {
    for managed in &plan.managed {
        let ips: Vec<&str> = managed
            .domains
            .names()
            .iter()
            .filter(|n| n.is_ip())
            .map(|n| n.as_str())
            .collect();
        if ips.is_empty() {
            continue;
        }
        findings.add(
            Level::Note,
            "--domain",
            format!(
                "{} is an IP address: the CA validates it by connecting to that address ({} on port {}); clients connecting to it without a server name get this certificate",
                ips.join(", "),
                managed.challenge,
                if managed.challenge == ChallengeKind::TlsAlpn01 {
                    443
                } else {
                    80
                },
            ),
        );
        if ca.family() == CaFamily::LetsEncrypt && managed.profile.as_deref() != Some("shortlived")
        {
            findings.add(
                Level::Error,
                "--profile",
                format!(
                    "Let's Encrypt issues certificates for IP addresses ({}) only under the shortlived profile (6-day certificates); set profile = \"shortlived\" for {} (--profile shortlived)",
                    ips.join(", "),
                    managed.domains
                ),
            );
        }
    }
}

/// Where each dns-01 name's TXT record would go, found as an order would find it (CNAME,
/// zone) — nothing is written.
async fn dns_preflight(dns: &Dns01Solver, plan: &Plan, findings: &mut Findings) {
    let mut seen = Vec::new();
    for name in plan
        .managed
        .iter()
        .filter(|m| m.challenge == ChallengeKind::Dns01)
        .flat_map(|m| m.domains.names())
    {
        let base = name.base().to_owned();
        if seen.contains(&base) {
            continue;
        }
        seen.push(base.clone());
        match dns.preflight(name).await {
            Ok((record, zone)) => findings.add(
                Level::Note,
                "--dns-zone",
                format!("dns-01 for {base}: TXT {record} in zone {zone}"),
            ),
            Err(e) => findings.add_caused(
                Level::Error,
                "--dns-resolver",
                format!("dns-01 for {base}: {e}"),
                e.setting(),
            ),
        }
    }
}

/// Staging-first and terms-of-service findings.
fn staging(
    settings: &RunSettings,
    plan: &Plan,
    ca: &Ca,
    state: &StateSnapshot,
    findings: &mut Findings,
) {
    let unproven: Vec<&DomainSet> = plan
        .managed
        .iter()
        .filter(|m| {
            let cert = state.cert(&m.domains.key());
            let profile = m.profile.as_deref().or(cert.profile.as_deref());
            !cert.staging_proven_for(ca.directory(), profile)
        })
        .map(|m| &m.domains)
        .collect();
    match ca.staging_directory() {
        Some(staging) if !unproven.is_empty() => {
            let names = unproven
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            if settings.skip_staging {
                findings.add(
                    Level::Warning,
                    "--skip-staging",
                    format!(
                        "{names} never succeeded on staging and --skip-staging sends the first order straight to {}; a mistake there costs production rate limits — drop --skip-staging",
                        ca.directory()
                    ),
                );
            } else {
                findings.add(
                    Level::Note,
                    "--ca",
                    format!(
                        "the first order for {names} goes to the staging CA {staging}, then to {}",
                        ca.directory()
                    ),
                );
            }
        }
        None if ca.family() == CaFamily::Custom => findings.add(
            Level::Note,
            "--staging-ca",
            format!(
                "no staging CA is known for {}; set --staging-ca to prove new names there first",
                ca.directory()
            ),
        ),
        _ => {}
    }
    if !settings.agree_tos && !state.accounts.contains(ca.directory()) {
        findings.add(
            Level::Error,
            "--agree-tos",
            format!(
                "no account for {} is stored yet and creating one needs the CA's terms of service agreed: read them and pass --agree-tos (BERTH_AGREE_TOS=true)",
                ca.directory()
            ),
        );
    }
}

/// The store must be creatable, writable and private.
fn store_files(path: &Path, findings: &mut Findings) {
    let mounted = single_file_mount(path);
    let symlinks = [path.to_path_buf(), state_path(path)]
        .into_iter()
        .filter_map(|file| symlinked(&file));
    for refusal in mounted.into_iter().chain(symlinks) {
        findings.add_refusal(Level::Error, "--store", refusal);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let problem = match std::fs::metadata(dir) {
        Err(e) => Some(format!(
            "the directory {} cannot be used ({e}); create it (in a container, mount a volume there)",
            dir.display()
        )),
        Ok(meta) if !meta.is_dir() => Some(format!(
            "{} is not a directory; point --store at a file inside a directory",
            dir.display()
        )),
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        findings.add(Level::Error, "--store", problem);
        return;
    }
    if let Err(e) = tempfile::NamedTempFile::new_in(dir) {
        findings.add(
            Level::Error,
            "--store",
            format!(
                "cannot write in {} ({e}); berth writes acme.json and its state there atomically — make the directory writable for the user berth runs as",
                dir.display()
            ),
        );
    }
    for file in [path.to_path_buf(), state_path(path)] {
        store_file_mode(&file, findings);
    }
}

/// A store file others can read holds private keys in the open.
fn store_file_mode(file: &Path, findings: &mut Findings) {
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        findings.add(
            Level::Error,
            "--store",
            format!(
                "{} is readable by others (mode {mode:04o}) and holds private keys; run chmod 600 {}",
                file.display(),
                file.display()
            ),
        );
    } else if mode & 0o070 != 0 {
        // What Kubernetes fsGroup leaves; berth run sets it back to 0600.
        findings.add(
            Level::Warning,
            "--store",
            format!(
                "{} is readable by its group (mode {mode:04o}); berth run sets it back to 0600 at start. On Kubernetes set fsGroupChangePolicy: OnRootMismatch, elsewhere run chmod 600 {}",
                file.display(),
                file.display()
            ),
        );
    }
}

/// Connects to an upstream once, briefly.
async fn reachable(upstream: &Upstream) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect(upstream.authority());
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}
