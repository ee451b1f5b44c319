//! What can be wrong with a configuration: the file's text, or a setting's value.

use std::fmt;

/// A configuration that cannot be used. Messages name the setting and never a secret
/// value (a secret pasted into the wrong key stays hidden).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file is not TOML, has an unknown key, or a value of the wrong kind.
    #[error("{0}")]
    File(#[from] FileError),
    /// A setting's value cannot be used; `setting` names it (and the domain set, for a
    /// per-certificate setting).
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, as its flag or key is written.
        setting: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A library refused a setting's value; `source` says why (and, for the errors that
    /// know it, which setting to change: `berth_acme_core::Setting::of`).
    #[error("{setting}: {source}")]
    Refused {
        /// The setting, as its flag or key is written (with the domain set, for a
        /// per-certificate setting).
        setting: String,
        /// The library's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A secret file could not be read (or a secret was given another way than a file).
    #[error(transparent)]
    Secret(#[from] berth_secrets::Error),
    /// A setting needs another one that is not set.
    #[error("{setting} needs {needed}")]
    Needs {
        /// The setting given, with its value when that says why.
        setting: String,
        /// The setting it needs, and what it holds.
        needed: &'static str,
    },
    /// A DNS provider berth does not know.
    #[error(
        "--dns-provider {0:?} is not known; use rfc2136 or exec (more providers are planned, see the README)"
    )]
    UnknownDnsProvider(String),
    /// dns-01 is configured but no DNS provider is.
    #[error(
        "dns-01 needs a DNS provider: --dns-server IP --dns-tsig-secret-file FILE (RFC 2136 with a TSIG key) or --dns-exec PROGRAM"
    )]
    NoDnsProvider,
    /// No domain set is configured.
    #[error(
        "no domains to get certificates for; pass -d app.example.com (BERTH_DOMAINS) or add [[certificates]] to --config"
    )]
    NoDomains,
    /// No upstream or route is configured.
    #[error("nothing to forward to; pass --upstream http://app:3000 (BERTH_UPSTREAM) or --route")]
    NoRoutes,
    /// The same domain set appears twice.
    #[error("the domain set {0} is listed twice; list each certificate once")]
    Duplicate(String),
}

impl Error {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            setting: setting.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn refused(
        setting: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Refused {
            setting: setting.into(),
            source: Box::new(source),
        }
    }
}

/// A config file's TOML error as position, key and reason. toml's own `Display` quotes
/// the offending line and serde's reasons quote string values: either may be a secret
/// (`eab_hmac = "…"`), and this error is printed at start-up and on every SIGHUP reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 1-based line and column of the error, when toml knows where it is.
    pub position: Option<(usize, usize)>,
    /// The key on that line, with its table (`limits.max_connections`).
    pub key: Option<String>,
    /// The reason, every quoted part replaced by `"…"`.
    pub reason: String,
}

impl std::error::Error for FileError {}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.position, &self.key) {
            (Some((line, column)), Some(key)) => {
                write!(
                    f,
                    "line {line}, column {column}, key {key}: {}",
                    self.reason
                )
            }
            (Some((line, column)), None) => {
                write!(f, "line {line}, column {column}: {}", self.reason)
            }
            (None, _) => f.write_str(&self.reason),
        }
    }
}

impl FileError {
    /// Locates `e` in `text` and names its key, without repeating any value.
    pub(crate) fn new(text: &str, e: &toml::de::Error) -> Self {
        let reason = redact_quoted(e.message().trim_end());
        let Some(at) = e.span().map(|span| span.start.min(text.len())) else {
            return Self {
                position: None,
                key: None,
                reason,
            };
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
        let key = key.map(|key| match table {
            Some(table) => format!("{table}.{key}"),
            None => key.to_owned(),
        });
        Self {
            position: Some((line, column)),
            key,
            reason,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_are_hidden_and_an_escaped_quote_does_not_end_one() {
        assert_eq!(redact_quoted(r#"bad "a\"b" here"#), r#"bad "…" here"#);
        assert_eq!(redact_quoted(r#"unclosed "secret"#), r#"unclosed "…"#);
    }
}
