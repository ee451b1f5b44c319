//! Certificates come from `berth-certs` (the proxy serves them without the ACME client);
//! this module keeps `crate::certificate::…` paths working and reads their errors as
//! this crate's [`Error`], with the same variants and messages as before the split.

pub(crate) use berth_certs::{CertSet, Certificate};

use berth_certs::CertError;

use crate::error::Error;

impl From<CertError> for Error {
    fn from(error: CertError) -> Self {
        match error {
            CertError::KeyGeneration { reason } => Self::KeyGeneration { reason },
            CertError::InvalidKey { reason } => Self::InvalidKey { reason },
            CertError::InvalidCertificate { context, reason } => {
                Self::InvalidCertificate { context, reason }
            }
            // CertError is non-exhaustive: a variant added later still reads as a
            // certificate problem, in its own words.
            other => Self::InvalidCertificate {
                context: None,
                reason: other.to_string(),
            },
        }
    }
}
