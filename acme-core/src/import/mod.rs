//! Imports certificates from the tools people come to berth from: Traefik v1 and v2/v3
//! `acme.json`, certbot's `live/` + `renewal/` layout and lego's `.lego/certificates/`.
//!
//! [`scan`] reads a source (a file or a directory; the layout is recognised) and checks
//! every certificate found: the chain parses, each certificate names the next as its
//! issuer, the private key belongs to the leaf, and it has not expired. It only reads:
//! no file of the source is opened for writing, renamed or chmod-ed. [`import`] then puts
//! what passed into any [`Store`] through the store API, under the same key a certificate
//! berth ordered would have, so `berth run` serves it and renews it on its schedule.
//!
//! ```no_run
//! # async fn demo(store: &dyn berth_acme_core::store::Store) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_acme_core::import;
//!
//! let scan = import::scan(std::path::Path::new("/etc/letsencrypt"))?;
//! println!("{} layout", scan.format);
//! for skipped in &scan.skipped {
//!     println!("skipped {}: {}", skipped.label, skipped.reason);
//! }
//! for (found, outcome) in import::import(store, &scan.found).await? {
//!     println!("{}: {outcome}", found.domains);
//! }
//! # Ok(()) }
//! ```

mod certbot;
mod lego;
mod traefik;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_secrets::Secret;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::certificate::Certificate;
use crate::domain::DomainSet;
use crate::store::records::{self, CertRecord};
use crate::store::{Expect, Store, StoreError};

/// The layout a source was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Traefik v1 `acme.json`: one top-level `{Account, Certificates, HTTPChallenges,
    /// TLSChallenges}`.
    TraefikV1,
    /// Traefik v2/v3 `acme.json`: an object of resolvers, each `{Account, Certificates}`.
    Traefik,
    /// certbot's configuration directory (`/etc/letsencrypt`): `live/<name>/*.pem` and
    /// `renewal/<name>.conf`.
    Certbot,
    /// lego's `.lego` directory (or its `certificates/`): `<domain>.crt`, `.key`,
    /// `.issuer.crt`, `.json`.
    Lego,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TraefikV1 => "Traefik v1 acme.json",
            Self::Traefik => "Traefik v2/v3 acme.json",
            Self::Certbot => "certbot",
            Self::Lego => "lego",
        })
    }
}

/// A certificate that passed every check, ready to import.
#[derive(Debug, Clone)]
pub struct Found {
    /// What the source calls it: certbot's lineage name, lego's domain, Traefik's
    /// resolver and main name.
    pub label: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The names it is stored under (main first).
    pub domains: DomainSet,
    /// The chain and key.
    pub certificate: Certificate,
    /// The ACME directory that issued it, when the source records it (certbot's
    /// `server`, lego's `certUrl` host).
    pub ca: Option<String>,
}

/// A certificate (or a file) left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What the source calls it.
    pub label: String,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// Why it was left out; never key material.
    pub reason: String,
}

/// What [`scan`] found in a source.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The layout recognised.
    pub format: Format,
    /// Certificates that passed the checks.
    pub found: Vec<Found>,
    /// Certificates left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// A source that cannot be read at all (single certificates that fail are
/// [`Skipped`], not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The path cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path is none of the layouts berth imports.
    #[error(
        "{path} is not a layout berth imports; pass a Traefik acme.json, certbot's config directory (holding live/ and renewal/) or lego's .lego directory (holding certificates/)"
    )]
    UnknownLayout {
        /// The path.
        path: PathBuf,
    },
    /// A JSON file that is not an `acme.json`.
    #[error("{path} is not a Traefik acme.json: {reason}")]
    NotAcmeJson {
        /// The file.
        path: PathBuf,
        /// What is wrong (position, never content).
        reason: String,
    },
}

/// What [`import`] did with one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportOutcome {
    /// Stored; the store held nothing for these names.
    Imported,
    /// Stored in place of an older certificate for the same names.
    Replaced {
        /// When the replaced certificate expired.
        previous_not_after: SystemTime,
    },
    /// Not stored: the store already holds a certificate for these names that lasts at
    /// least as long.
    Kept {
        /// When the stored certificate expires.
        stored_not_after: SystemTime,
    },
}

impl fmt::Display for ImportOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Imported => f.write_str("imported"),
            Self::Replaced { .. } => f.write_str("imported (replaced an older certificate)"),
            Self::Kept { .. } => f.write_str(
                "not imported: the store already holds a certificate for these names that lasts at least as long",
            ),
        }
    }
}

/// Reads `path` (a file or a directory), recognises its layout and checks every
/// certificate in it. Never writes to the source.
pub fn scan(path: &Path) -> Result<Scan, ImportError> {
    scan_at(path, SystemTime::now())
}

fn scan_at(path: &Path, now: SystemTime) -> Result<Scan, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut scan = if meta.is_file() {
        traefik::scan_file(path, now)?
    } else if path.join("live").is_dir() {
        certbot::scan(path, now)?
    } else if path.join("certificates").is_dir() {
        lego::scan(&path.join("certificates"), now)?
    } else if path.file_name().is_some_and(|n| n == "certificates") && lego::has_crt(path) {
        lego::scan(path, now)?
    } else if path.join("acme.json").is_file() {
        traefik::scan_file(&path.join("acme.json"), now)?
    } else {
        return Err(ImportError::UnknownLayout {
            path: path.to_path_buf(),
        });
    };
    scan.found.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(scan)
}

/// Puts each certificate into `store` under its names' key, unless the store holds one
/// for the same names that expires no earlier. Stops at the first store error (what was
/// stored before it stays stored; running again is harmless).
pub async fn import<'a>(
    store: &dyn Store,
    found: &'a [Found],
) -> Result<Vec<(&'a Found, ImportOutcome)>, StoreError> {
    let mut done = Vec::with_capacity(found.len());
    for item in found {
        let key = records::cert_key(&item.domains.key());
        let (expect, outcome) = decide(store, &key, item).await?;
        if let Some(expect) = expect {
            let record = CertRecord {
                domains: item.domains.clone(),
                certificate: item.certificate.clone(),
            };
            store.put(&key, record.encode(), expect, None).await?;
            tracing::info!(domains = %item.domains, source = %item.path.display(), "certificate imported");
        }
        done.push((item, outcome));
    }
    Ok(done)
}

/// What [`import`] would do with each certificate, reading `store` only (a dry run).
pub async fn preview<'a>(
    store: &dyn Store,
    found: &'a [Found],
) -> Result<Vec<(&'a Found, ImportOutcome)>, StoreError> {
    let mut planned = Vec::with_capacity(found.len());
    for item in found {
        let key = records::cert_key(&item.domains.key());
        planned.push((item, decide(store, &key, item).await?.1));
    }
    Ok(planned)
}

/// Whether to write `item` under `key` (and on what condition), and what that means.
async fn decide(
    store: &dyn Store,
    key: &str,
    item: &Found,
) -> Result<(Option<Expect>, ImportOutcome), StoreError> {
    let Some(stored) = store.get(key).await? else {
        return Ok((Some(Expect::Absent), ImportOutcome::Imported));
    };
    // An entry berth cannot read is replaced: the manager would order anew anyway.
    let stored_not_after = CertRecord::decode(&stored.value)
        .ok()
        .map(|r| r.certificate.info().not_after);
    Ok(match stored_not_after {
        Some(at) if at >= item.certificate.info().not_after => (
            None,
            ImportOutcome::Kept {
                stored_not_after: at,
            },
        ),
        at => (
            Some(Expect::Version(stored.version)),
            ImportOutcome::Replaced {
                previous_not_after: at.unwrap_or(SystemTime::UNIX_EPOCH),
            },
        ),
    })
}

/// Parses a PEM chain and key and checks them as [`scan`] promises; the reason is one
/// line that never quotes key material.
pub(crate) fn verify(
    chain_pem: &str,
    key_pem: Secret,
    now: SystemTime,
) -> Result<Certificate, String> {
    let certificate = Certificate::from_pem(chain_pem, key_pem).map_err(|e| e.to_string())?;
    check(&certificate, now)?;
    Ok(certificate)
}

/// The checks of [`verify`] after the key was matched to the leaf: the chain, expiry.
pub(crate) fn check(certificate: &Certificate, now: SystemTime) -> Result<(), String> {
    check_chain(certificate)?;
    let info = certificate.info();
    if info.not_after <= now {
        return Err(format!(
            "expired on {}; nothing to import (order a new certificate instead)",
            crate::timestamp::rfc3339(info.not_after)
        ));
    }
    Ok(())
}

/// Every certificate of the chain parses, and each names the next as its issuer. A
/// lone leaf is refused: clients would not find the intermediate.
fn check_chain(certificate: &Certificate) -> Result<(), String> {
    let ders = &certificate.certified_key().cert;
    let mut parsed = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("certificate {} of the chain does not parse: {e}", i + 1))?;
        parsed.push(cert);
    }
    if parsed.len() < 2 {
        return Err(
            "the chain holds only the leaf certificate; clients need the intermediate too (import the full chain)"
                .into(),
        );
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        if pair[0].issuer() != pair[1].subject() {
            return Err(format!(
                "certificate {} of the chain is issued by {:?}, but the next one is {:?}; the chain is out of order or incomplete",
                i + 1,
                pair[0].issuer().to_string(),
                pair[1].subject().to_string()
            ));
        }
    }
    Ok(())
}

/// Reads a file's text for a certificate check; the error is a [`Skipped`] reason.
pub(crate) fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads a private key file into a [`Secret`] (the text is wiped when dropped).
pub(crate) fn read_key(path: &Path) -> Result<Secret, String> {
    read_text(path).map(Secret::new)
}

/// The names a certificate is stored under: the source's main name first when the
/// certificate covers it, then the certificate's own names.
pub(crate) fn domains_for(certificate: &Certificate, main: Option<&str>) -> DomainSet {
    let own = &certificate.info().domains;
    let Some(main) = main.and_then(|m| crate::domain::DomainName::parse(m).ok()) else {
        return own.clone();
    };
    if !own.names().contains(&main) {
        return own.clone();
    }
    let names =
        std::iter::once(main.clone()).chain(own.names().iter().filter(|n| **n != main).cloned());
    DomainSet::new(names).unwrap_or_else(|_| own.clone())
}

#[cfg(test)]
mod tests;
