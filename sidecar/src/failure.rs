//! Turning errors into one readable line, the cause chain, and an exit code; and the
//! one table that turns a library error's [`Setting`] into the flag a `berth` user
//! changes.

use std::borrow::Cow;
use std::fmt;
use std::process::ExitCode;

use berth_acme_core::{ChallengeKind, Setting};

/// Exit code for usage or configuration errors (what the user must change).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures (the CA, the network, the disk).
pub(crate) const EXIT_FAILURE: u8 = 1;

/// A command's failure: the error and the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    error: Box<dyn std::error::Error + Send + Sync>,
    /// The setting at fault when the error no longer carries it (flattened to text).
    setting: Option<Setting>,
}

impl Failure {
    /// A usage/configuration error: exit code 2.
    pub(crate) fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: EXIT_USAGE,
            error: error.into(),
            setting: None,
        }
    }

    /// A runtime failure: exit code 1.
    pub(crate) fn runtime(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: EXIT_FAILURE,
            error: error.into(),
            setting: None,
        }
    }

    /// Names the setting at fault, for an error that was turned into text on the way.
    pub(crate) fn with_setting(mut self, setting: Option<Setting>) -> Self {
        self.setting = setting.or(self.setting);
        self
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }

    /// The setting at fault: given, or found in the error's cause chain.
    fn setting(&self) -> Option<Setting> {
        let error: &(dyn std::error::Error + 'static) = &*self.error;
        self.setting.or_else(|| setting_of(error))
    }
}

/// The setting of the first error in `error`'s cause chain that names one.
fn setting_of(error: &(dyn std::error::Error + 'static)) -> Option<Setting> {
    Setting::of(error).or_else(|| {
        std::iter::successors(Some(error), |e| e.source())
            .find_map(|e| e.downcast_ref::<berth_stores::LocationError>())
            .and_then(berth_stores::LocationError::setting)
    })
}

/// A configuration finding as `berth` prints it: the finding, and the flag hint when a
/// library's refusal names the setting at fault.
pub(crate) fn finding_text(finding: &berth_config::lint::Finding) -> String {
    match finding_hint(finding) {
        Some(hint) => format!("{finding}\n  hint: {}", hint.advice),
        None => finding.to_string(),
    }
}

/// The flag hint for a configuration finding whose library refusal names the setting at
/// fault, or `None`.
pub(crate) fn finding_hint(finding: &berth_config::lint::Finding) -> Option<FlagHint> {
    let refusal = finding
        .refusal
        .as_deref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    finding
        .cause
        .and_then(|setting| flag_hint(setting, refusal))
}

/// The file name of a store refused as a single-file mount, from `error`'s chain.
fn store_file_name<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a str> {
    use berth_acme_core::store::StoreError;
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| {
        let store = match e.downcast_ref::<berth_acme_core::Error>() {
            Some(berth_acme_core::Error::Store(store)) => Some(store),
            _ => e.downcast_ref::<StoreError>(),
        };
        match store {
            Some(StoreError::SingleFileMount { name, .. }) => Some(name.as_str()),
            _ => None,
        }
    })
}

/// What a `berth` user changes for a library [`Setting`]: the flag (or variable) that
/// sets it, and how to change it. Library errors say what to do in the library's terms;
/// [`flag_hint`]'s tables are the only place their settings meet the binary's flag names.
pub(crate) struct FlagHint {
    /// The flag (or environment variable) that sets it.
    pub(crate) flag: &'static str,
    /// The advice, naming the flag.
    pub(crate) advice: Cow<'static, str>,
}

/// Logs the flag hint after each failed order whose error names a setting: the
/// manager's own log line speaks the library's terms. Runs until `stop`.
pub(crate) async fn log_hints(
    mut events: tokio::sync::broadcast::Receiver<berth_acme_core::CertEvent>,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(berth_acme_core::CertEvent::Failed {
                domains,
                setting: Some(setting),
                ..
            }) => {
                if let Some(hint) = flag_hint(setting, None) {
                    tracing::warn!(domains = %domains, flag = hint.flag, "hint: {}", hint.advice);
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// A flag and its advice, as one of the tables below gives them.
type Hint = (&'static str, Cow<'static, str>);

/// The [`FlagHint`] for `setting`; `None` for a setting this binary has no flag for.
/// `error`, when given, fills in details the advice quotes (the store's file name).
pub(crate) fn flag_hint(
    setting: Setting,
    error: Option<&(dyn std::error::Error + 'static)>,
) -> Option<FlagHint> {
    let (flag, advice) = account_hint(setting)
        .or_else(|| order_hint(setting))
        .or_else(|| dns_hint(setting))
        .or_else(|| store_hint(setting, error))?;
    Some(FlagHint { flag, advice })
}

/// The CA and account settings (`berth_acme_core::AccountConfig`).
fn account_hint(setting: Setting) -> Option<Hint> {
    Some(match setting {
        Setting::AgreeTos => (
            "--agree-tos",
            "read them, then pass --agree-tos (BERTH_AGREE_TOS=true)".into(),
        ),
        Setting::Eab => (
            "--eab-kid",
            "pass the key id with --eab-kid and a file holding the HMAC key with --eab-hmac-file"
                .into(),
        ),
        Setting::Ca => ("--ca", "check the --ca URL".into()),
        Setting::CaRoots => (
            "--ca-root",
            "pass the CA's root certificate (a PEM file) with --ca-root".into(),
        ),
        Setting::Email => (
            "--email",
            "pass --email with an address such as admin@example.com".into(),
        ),
        _ => return None,
    })
}

/// What an order asks for and how it is answered (`berth_acme_core::ManagedCert`,
/// the challenge listeners), and the log that shows its details.
fn order_hint(setting: Setting) -> Option<Hint> {
    Some(match setting {
        Setting::Challenge(Some(kind)) => ("--challenge", format!("use --challenge {kind}").into()),
        Setting::Challenge(None) => ("--challenge", "choose another one with --challenge".into()),
        Setting::Force => ("--force", "pass --force to order anyway".into()),
        Setting::Domains => (
            "-d/--domain",
            "pass at least one name with -d/--domain".into(),
        ),
        Setting::ListenAddr(ChallengeKind::TlsAlpn01) => (
            "--tls-addr",
            "use --tls-addr with a port that port 443 is forwarded to".into(),
        ),
        Setting::ListenAddr(_) => (
            "--http-addr",
            "use --http-addr with a port the CA reaches through a redirect".into(),
        ),
        Setting::DebugLog => (
            "BERTH_LOG",
            "BERTH_LOG=berth_acme_core=debug logs the details".into(),
        ),
        _ => return None,
    })
}

/// The DNS-01 settings (`berth_acme_core::challenge::dns01`).
fn dns_hint(setting: Setting) -> Option<Hint> {
    Some(match setting {
        Setting::DnsZone => (
            "--dns-zone",
            "set --dns-zone to the zone that holds the record, or leave it unset to detect it (check --dns-resolver then)".into(),
        ),
        Setting::DnsResolver => (
            "--dns-resolver",
            "set --dns-resolver to a DNS server that answers for the names".into(),
        ),
        Setting::DnsPropagationServers => (
            "--dns-propagation-servers",
            "name the servers to check with --dns-propagation-servers".into(),
        ),
        Setting::DnsPropagationTimeout => (
            "--dns-propagation-timeout",
            "raise --dns-propagation-timeout".into(),
        ),
        Setting::TsigKeyName => (
            "--dns-tsig-key",
            "set --dns-tsig-key (the name in the server's `key \"…\"` statement)".into(),
        ),
        Setting::TsigSecret => (
            "--dns-tsig-secret-file",
            "point --dns-tsig-secret-file at the file `tsig-keygen` wrote, or at the secret alone"
                .into(),
        ),
        _ => return None,
    })
}

/// The store settings (`berth_stores::OpenOptions`, the file store's path);
/// `error` gives the store's file name for the advice.
fn store_hint(setting: Setting, error: Option<&(dyn std::error::Error + 'static)>) -> Option<Hint> {
    Some(match setting {
        Setting::StorePath => (
            "--store",
            format!(
                "mount the directory instead: -v ./data:/data and --store /data/{}",
                error.and_then(store_file_name).unwrap_or("acme.json")
            )
            .into(),
        ),
        Setting::StoredName => (
            "--store",
            "`berth certs list` with the same --store lists the stored certificates".into(),
        ),
        Setting::StorePassword => (
            "--store-password-file",
            "put the password in a file and pass --store-password-file".into(),
        ),
        Setting::StoreIdentity => (
            "--store-cert",
            "pass --store-cert and --store-key (a certificate for client authentication, signed by a CA the store trusts)".into(),
        ),
        _ => return None,
    })
}

impl fmt::Display for Failure {
    /// `error: <message>` and one `  caused by: <source>` line per cause.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.error)?;
        let mut source = self.error.source();
        let mut last = self.error.to_string();
        while let Some(cause) = source {
            let text = cause.to_string();
            // `#[error(transparent)]` and `{source}`-in-message repeat the cause; skip echoes.
            if !last.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            last = text;
            source = cause.source();
        }
        if let Some(hint) = self
            .setting()
            .and_then(|s| flag_hint(s, Some(&*self.error)))
        {
            write!(f, "\n  hint: {}", hint.advice)?;
        }
        Ok(())
    }
}

/// Classifies library errors: what the user can fix by changing input exits 2.
impl From<berth_acme_core::Error> for Failure {
    fn from(error: berth_acme_core::Error) -> Self {
        use berth_acme_core::{CertError, Error as E};
        let usage = matches!(
            error,
            E::Domain(_)
                | E::Challenge(_)
                | E::Cert(CertError::InvalidKey { .. } | CertError::InvalidCertificate { .. })
                | E::ProfileUnavailable { .. }
        );
        if usage {
            Self::usage(error)
        } else {
            Self::runtime(error)
        }
    }
}

/// A store that cannot be written the way berth writes (single-file mount, unwritable
/// directory, readable by others, a symbolic link, not a regular file, too large) is the
/// user's to fix: exit 2, before any order.
impl From<berth_acme_core::store::StoreError> for Failure {
    fn from(error: berth_acme_core::store::StoreError) -> Self {
        use berth_acme_core::store::StoreError as S;
        let usage = matches!(
            error,
            S::SingleFileMount { .. }
                | S::NotWritable { .. }
                | S::Permissions { .. }
                | S::Symlink { .. }
                | S::NotRegular { .. }
                | S::TooLarge { .. }
        );
        let error = berth_acme_core::Error::from(error);
        if usage {
            Self::usage(error)
        } else {
            Self::runtime(error)
        }
    }
}

impl From<berth_secrets::Error> for Failure {
    fn from(error: berth_secrets::Error) -> Self {
        Self::usage(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::CommandFactory;

    use super::*;

    /// Every setting the libraries name today.
    const SETTINGS: &[Setting] = &[
        Setting::AgreeTos,
        Setting::Eab,
        Setting::Ca,
        Setting::CaRoots,
        Setting::Email,
        Setting::Challenge(Some(ChallengeKind::Dns01)),
        Setting::Challenge(None),
        Setting::Force,
        Setting::Domains,
        Setting::ListenAddr(ChallengeKind::Http01),
        Setting::ListenAddr(ChallengeKind::TlsAlpn01),
        Setting::DnsZone,
        Setting::DnsResolver,
        Setting::DnsPropagationServers,
        Setting::DnsPropagationTimeout,
        Setting::TsigKeyName,
        Setting::TsigSecret,
        Setting::StorePath,
        Setting::StoredName,
        Setting::StorePassword,
        Setting::StoreIdentity,
        Setting::DebugLog,
    ];

    /// Every long flag of every subcommand.
    fn long_flags(command: &clap::Command, into: &mut Vec<String>) {
        into.extend(
            command
                .get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}"))),
        );
        for sub in command.get_subcommands() {
            long_flags(sub, into);
        }
    }

    #[test]
    fn every_setting_has_a_hint_naming_a_flag_the_cli_has() {
        let mut flags = Vec::new();
        long_flags(&crate::cli::Cli::command(), &mut flags);
        for setting in SETTINGS {
            let hint =
                flag_hint(*setting, None).unwrap_or_else(|| panic!("no hint for {setting:?}"));
            let flag = hint.flag.trim_start_matches("-d/");
            assert!(hint.advice.contains(flag), "{setting:?}: {}", hint.advice);
            if flag.starts_with("--") {
                assert!(
                    flags.iter().any(|f| f == flag),
                    "{setting:?}: no {flag} flag"
                );
            }
        }
    }

    #[test]
    fn the_hint_follows_the_cause_chain_and_survives_flattening() {
        let wildcard = berth_acme_core::DomainSet::parse(["*.example.com"]).unwrap();
        let refused = ChallengeKind::Http01.check(&wildcard).unwrap_err();
        let shown = Failure::from(berth_acme_core::Error::from(refused)).to_string();
        assert!(
            shown.ends_with("\n  hint: use --challenge dns-01"),
            "{shown}"
        );

        let location = berth_stores::StoreLocation::parse("etcd://u:pw@127.0.0.1:2379");
        let error = location.unwrap_err();
        let flattened = Failure::usage(format!("--store: {error}"));
        assert!(!flattened.to_string().contains("hint"), "{flattened}");
        let shown = flattened.with_setting(error.setting()).to_string();
        assert!(
            shown.contains("hint: put the password in a file and pass --store-password-file"),
            "{shown}"
        );

        let plain = Failure::usage("--workers: not a number").to_string();
        assert_eq!(plain, "error: --workers: not a number");
    }
}
