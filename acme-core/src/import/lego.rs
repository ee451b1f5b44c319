//! lego's `certificates/` directory (in `.lego/`, or `--path`): per certificate
//! `<name>.crt` (the chain, leaf first, unless lego ran with `--no-bundle`), `<name>.key`,
//! `<name>.issuer.crt` and `<name>.json` (`domain`, `certUrl`). `<name>` is the main
//! domain with `*` written as `_`.

use std::path::Path;
use std::time::SystemTime;

use super::{Format, Found, ImportError, Scan, Skipped};

/// Whether `dir` holds a lego certificate file.
pub(super) fn has_crt(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| entries.flatten().any(|e| is_cert_file(&e.path())))
}

fn is_cert_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".crt") && !n.ends_with(".issuer.crt"))
}

pub(super) fn scan(dir: &Path, now: SystemTime) -> Result<Scan, ImportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_cert_file(p))
        .collect();
    files.sort();
    let mut scan = Scan {
        format: Format::Lego,
        found: Vec::new(),
        skipped: Vec::new(),
    };
    for crt in files {
        let stem = crt
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".crt"))
            .unwrap_or_default()
            .to_owned();
        let meta = metadata(&dir.join(format!("{stem}.json")));
        match certificate(dir, &stem, &crt, now) {
            Ok(certificate) => {
                let main = meta.as_ref().and_then(|m| m.domain.clone());
                scan.found.push(Found {
                    domains: super::domains_for(&certificate, main.as_deref()),
                    label: main.unwrap_or_else(|| stem.replace('_', "*")),
                    path: crt,
                    certificate,
                    ca: meta.and_then(|m| m.cert_url).and_then(|u| ca_of(&u)),
                });
            }
            Err(reason) => scan.skipped.push(Skipped {
                label: stem,
                path: crt,
                reason,
            }),
        }
    }
    Ok(scan)
}

fn certificate(
    dir: &Path,
    stem: &str,
    crt: &Path,
    now: SystemTime,
) -> Result<super::Certificate, String> {
    let key_path = dir.join(format!("{stem}.key"));
    if !key_path.exists() {
        return Err(format!("{} is missing", key_path.display()));
    }
    let mut chain = super::read_text(crt)?;
    // `--no-bundle` leaves the issuer out of `.crt`; it is always in `.issuer.crt`.
    let blocks = chain.matches("-----BEGIN CERTIFICATE-----").count();
    let issuer = dir.join(format!("{stem}.issuer.crt"));
    if blocks == 1 && issuer.exists() {
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(&super::read_text(&issuer)?);
    }
    super::verify(&chain, super::read_key(&key_path)?, now)
}

/// What berth reads from `<name>.json`.
struct LegoMeta {
    domain: Option<String>,
    cert_url: Option<String>,
}

fn metadata(path: &Path) -> Option<LegoMeta> {
    let bytes = std::fs::read(path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(LegoMeta {
        domain: text("domain"),
        cert_url: text("certUrl"),
    })
}

/// The CA's origin (`https://host[:port]`) from a certificate URL: lego does not record
/// the directory URL.
fn ca_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("https://{host}"))
}
