//! berth's ACME core: accounts, orders, challenges (HTTP-01, TLS-ALPN-01, DNS-01),
//! renewal, and a Traefik-compatible `acme.json` store.
//!
//! Parse user input into [`DomainSet`], [`ChallengeKind`], [`KeyType`] and [`Ca`] first;
//! the constructors refuse what no CA would accept (wildcards without DNS-01,
//! `tls-sni-01`, malformed names), so nothing reaches the network that cannot succeed.
//!
//! ```
//! use berth_acme_core::{Ca, ChallengeKind, DomainSet};
//!
//! let domains = DomainSet::parse(["example.com", "www.example.com"])?;
//! let challenge: ChallengeKind = "http-01".parse()?;
//! challenge.check(&domains)?;
//! assert!(Ca::default().is_staging());
//! assert!("tls-sni-01".parse::<ChallengeKind>().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod account;
pub mod budget;
mod ca;
mod certificate;
pub mod challenge;
mod domain;
mod error;
#[cfg(test)]
mod fuzz;
mod generation;
pub mod import;
mod issuer;
mod key;
pub mod ledger;
mod manager;
mod renewal;
pub mod revocation;
pub mod stale;
pub mod store;
pub mod timestamp;

pub use account::{AccountConfig, AcmeAccount, Eab, RevocationReason};
pub use berth_certs::crypto;
pub use berth_certs::{CertError, CertInfo, CertSet, Certificate};
pub use ca::{Ca, CaError, CaFamily, ca_profiles, check_profile};
pub use challenge::{ChallengeError, ChallengeKind};
pub use domain::{DomainError, DomainName, DomainSet, MAX_NAMES_PER_CERTIFICATE};
pub use error::{AcmeProblem, Error, Setting};
pub use generation::Generation;
pub use issuer::{DEFAULT_ORDER_TIMEOUT, Issuer, OrderJournal, OrderRequest};
pub use key::{KeyType, KeyTypeError};
pub use manager::{
    CertEvent, CertManager, CertStatus, DEFAULT_CONCURRENCY, DryRunError, DryRunResult,
    ManagedCert, ManagerConfig, Outcome,
};
pub use renewal::{ExpiryLevel, RenewalHint, RenewalWindow, due_at, renewal_due};
