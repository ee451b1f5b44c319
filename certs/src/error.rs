//! Why a certificate, a key or a challenge certificate was refused.

/// A certificate or private key that cannot be used. Never carries key material: a
/// parser's message that could quote the input is replaced by what kind of problem it
/// is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A private key could not be generated or encoded.
    #[error("could not generate a key: {reason}")]
    KeyGeneration {
        /// What the key library said.
        reason: String,
    },
    /// A private key could not be loaded (wrong format, unsupported algorithm).
    #[error("invalid private key: {reason}")]
    InvalidKey {
        /// What was wrong, never the key itself.
        reason: String,
    },
    /// A certificate (chain) could not be parsed or does not fit its key or names.
    #[error("invalid certificate{}: {reason}", context.as_deref().map(|c| format!(" for {c}")).unwrap_or_default())]
    InvalidCertificate {
        /// Which certificate (main name or file), when known.
        context: Option<String>,
        /// What is wrong.
        reason: String,
    },
}

impl CertError {
    pub(crate) fn key_generation(err: impl std::fmt::Display) -> Self {
        Self::KeyGeneration {
            reason: err.to_string(),
        }
    }
}
