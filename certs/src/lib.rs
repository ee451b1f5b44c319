//! Certificates as a TLS server serves them, without an ACME client: the names a
//! certificate covers ([`DomainName`], [`DomainSet`]), a parsed chain with its key
//! ([`Certificate`]), the set a resolver swaps on reload ([`CertSet`]), the answering half
//! of HTTP-01 and TLS-ALPN-01 ([`challenge`]), the one rustls crypto provider
//! ([`crypto`]) and the certificate entries of Traefik's `acme.json` ([`acme_json`]).
//!
//! `berth-acme-core` orders certificates and re-exports all of this at the same paths;
//! `berth-proxy` serves them and depends on this crate only.
//!
//! ```
//! use berth_certs::{CertSet, Certificate, DomainSet};
//! use berth_secrets::Secret;
//!
//! # let generated = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()])?;
//! # let (chain_pem, key_pem) = (generated.cert.pem(), generated.signing_key.serialize_pem());
//! let certificate = Certificate::from_pem(&chain_pem, Secret::new(key_pem))?;
//! assert!(certificate.covers(&DomainSet::parse(["example.com"])?));
//!
//! let set = CertSet::new(vec![certificate]);
//! assert!(set.lookup("Example.COM.").is_some());
//! assert!(set.lookup("www.example.com").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod acme_json;
mod certificate;
mod certset;
pub mod challenge;
pub mod crypto;
mod domain;
mod error;

pub use certificate::{CertInfo, Certificate};
pub use certset::CertSet;
pub use domain::{DomainError, DomainName, DomainSet, MAX_NAMES_PER_CERTIFICATE};
pub use error::CertError;
