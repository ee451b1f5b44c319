//! Names a certificate covers. The types live in `berth-certs` (the proxy needs them
//! without the ACME client); this module keeps `crate::domain::…` paths working.

pub use berth_certs::{DomainError, DomainName, DomainSet, MAX_NAMES_PER_CERTIFICATE};
