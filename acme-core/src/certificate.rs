//! Certificates come from `berth-certs` (the proxy serves them without the ACME client);
//! this module keeps `crate::certificate::…` paths working. Their errors are
//! [`Error::Cert`](crate::Error::Cert).

pub(crate) use berth_certs::{CertSet, Certificate};
