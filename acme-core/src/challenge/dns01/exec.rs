//! The exec hook: any program becomes a DNS provider. It is run as
//! `<program> present <fqdn> <value>` and `<program> cleanup <fqdn> <value>` — lego's
//! `exec` convention, so existing lego hook scripts work unchanged. It also gets the
//! zone in `BERTH_DNS_HOOK_ZONE` and the TTL in `BERTH_DNS_HOOK_TTL`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::provider::{DnsProvider, ProviderError, ProviderFuture, TxtRecord};
use crate::Setting;

/// How much of the hook's stderr the debug log shows (the end, where the reason usually is).
const MAX_STDERR: usize = 2048;

/// Runs a user program to add and remove records.
#[derive(Debug, Clone)]
pub struct ExecProvider {
    program: PathBuf,
    timeout: Duration,
}

impl ExecProvider {
    /// Runs `program`, killing it after `timeout`.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            timeout,
        }
    }

    async fn run(&self, action: &'static str, record: &TxtRecord) -> Result<(), ProviderError> {
        let mut child = Command::new(&self.program)
            .args([action, record.fqdn.as_str(), record.value.as_str()])
            .env("BERTH_DNS_HOOK_ZONE", &record.zone)
            .env("BERTH_DNS_HOOK_TTL", record.ttl.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ProviderError::new(format!(
                    "cannot run {}: {e}; check the path and that it is executable",
                    self.program.display()
                ))
            })?;
        let mut stderr = child.stderr.take();
        let collect = async {
            let mut buf = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                // Bounded: a hook that floods stderr cannot exhaust memory.
                let _ = stderr.take(1 << 20).read_to_end(&mut buf).await;
            }
            buf
        };
        let waited = tokio::time::timeout(self.timeout, async {
            let (status, stderr) = tokio::join!(child.wait(), collect);
            (status, stderr)
        })
        .await;
        let Ok((status, stderr)) = waited else {
            let _ = child.kill().await;
            return Err(ProviderError::new(format!(
                "{} {action} did not finish within {}s and was killed",
                self.program.display(),
                self.timeout.as_secs()
            )));
        };
        let status =
            status.map_err(|e| ProviderError::new(format!("waiting for the hook: {e}")))?;
        if status.success() {
            return Ok(());
        }
        // The error goes into the ledger, and from there to /api/certs, the status page and
        // the logs; a hook's stderr may hold its API token, so it is logged at debug level
        // only, cut short and with key-like words removed.
        let logged = redact_hook_stderr(&stderr);
        if !logged.is_empty() {
            tracing::debug!(
                hook = %self.program.display(),
                action,
                stderr = %logged,
                "DNS hook failed"
            );
        }
        Err(ProviderError::new(format!(
            "{} {action} exited with {status}; its stderr is logged at debug level (target berth_acme_core)",
            self.program.display(),
        ))
        .with_setting(Setting::DebugLog))
    }
}

/// The end of a hook's stderr as the debug log shows it: at most [`MAX_STDERR`]
/// characters, redacted.
pub(crate) fn redact_hook_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let tail = match text.char_indices().rev().nth(MAX_STDERR) {
        Some((cut, _)) => &text[cut..],
        None => text,
    };
    redact(tail)
}

/// `text` with every word that could be a credential (16 or more characters of
/// base64/hex/token alphabet, also in quotes or brackets, or anything after `=` / `:` in
/// `key=value` form) replaced.
fn redact(text: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "+/=_-.".contains(c);
    text.split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end();
            let space = &piece[word.len()..];
            // `"token"`, `'token'`, `(token)`, `token,`: the token without what surrounds it.
            let core = word.trim_matches(|c: char| !token(c));
            let word = match word.find(['=', ':']) {
                Some(at) if at + 1 < word.len() => format!("{}[redacted]", &word[..=at]),
                _ if core.len() >= 16 && core.chars().all(token) => {
                    word.replacen(core, "[redacted]", 1)
                }
                _ => word.to_owned(),
            };
            format!("{word}{space}")
        })
        .collect()
}

impl DnsProvider for ExecProvider {
    fn describe(&self) -> String {
        format!("exec ({})", self.program.display())
    }

    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(self.run("present", record))
    }

    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(self.run("cleanup", record))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record() -> TxtRecord {
        TxtRecord {
            fqdn: "_acme-challenge.example.com.".into(),
            zone: "example.com.".into(),
            value: "v".repeat(43),
            ttl: 60,
        }
    }

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn passes_action_name_and_value_like_lego() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let hook = script(
            dir.path(),
            &format!(
                "echo \"$1 $2 $3 $BERTH_DNS_HOOK_ZONE\" >> {}",
                log.display()
            ),
        );
        let provider = ExecProvider::new(&hook, Duration::from_secs(10));
        provider.add_txt(&record()).await.unwrap();
        provider.remove_txt(&record()).await.unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        let value = "v".repeat(43);
        assert_eq!(
            calls,
            format!(
                "present _acme-challenge.example.com. {value} example.com.\ncleanup _acme-challenge.example.com. {value} example.com.\n"
            )
        );
    }

    #[tokio::test]
    async fn failure_names_the_exit_status_and_never_the_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let hook = script(
            dir.path(),
            "echo 'API token PLANTED-SECRET-5c1d expired' >&2; exit 3",
        );
        let err = ExecProvider::new(&hook, Duration::from_secs(10))
            .add_txt(&record())
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("PLANTED-SECRET"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("present"), "{err}");
    }

    #[test]
    fn redaction_removes_key_like_words_and_assigned_values() {
        let out = redact("auth failed token=abc key c2VjcmV0LXRva2VuLXZhbHVl for example.com\n");
        assert!(!out.contains("abc"), "{out}");
        assert!(!out.contains("c2VjcmV0"), "{out}");
        assert!(
            out.contains("auth failed token=[redacted] key [redacted] for example.com"),
            "{out}"
        );
    }

    #[test]
    fn redaction_removes_quoted_and_bracketed_tokens() {
        // Found by the fuzz test: a token in quotes was not key-like, so it was kept.
        let token = "c2VjcmV0LXRva2VuLXZhbHVl";
        for text in [
            format!("error: token \"{token}\" rejected"),
            format!("using key '{token}'"),
            format!("({token}),"),
        ] {
            let out = redact_hook_stderr(text.as_bytes());
            assert!(!out.contains(token), "{out}");
            assert!(out.contains("[redacted]"), "{out}");
        }
    }

    #[tokio::test]
    async fn a_hanging_hook_is_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let hook = script(dir.path(), "sleep 30");
        let err = ExecProvider::new(&hook, Duration::from_millis(300))
            .add_txt(&record())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not finish") && err.contains("killed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let err = ExecProvider::new("/nonexistent/hook", Duration::from_secs(1))
            .add_txt(&record())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/hook") && err.contains("executable"),
            "{err}"
        );
    }
}
