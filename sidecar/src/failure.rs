//! Turning errors into one readable line, the cause chain, and an exit code.

use std::fmt;
use std::process::ExitCode;

/// Exit code for usage or configuration errors (what the user must change).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures (the CA, the network, the disk).
pub(crate) const EXIT_FAILURE: u8 = 1;

/// A command's failure: the error and the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    /// A usage/configuration error: exit code 2.
    pub(crate) fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }

    /// A runtime failure: exit code 1.
    pub(crate) fn runtime(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: EXIT_FAILURE,
            error: error.into(),
        }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
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
        Ok(())
    }
}

/// Classifies library errors: what the user can fix by changing input exits 2.
impl From<berth_acme_core::Error> for Failure {
    fn from(error: berth_acme_core::Error) -> Self {
        use berth_acme_core::Error as E;
        let usage = matches!(
            error,
            E::Domain(_)
                | E::Challenge(_)
                | E::InvalidKey { .. }
                | E::InvalidCertificate { .. }
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
