//! Traefik's `acme.json`: v1 (one top-level `{Account, Certificates, HTTPChallenges,
//! TLSChallenges}`, entries `{Domain{Main, SANs}, Certificate, Key}`) and v2/v3 (an object
//! of resolvers, each `{Account, Certificates}`, entries `{domain{main, sans}, certificate,
//! key, Store}`). Both keep the chain and key as base64 of PEM; Go's JSON decoder ignores
//! the case of keys, and so does the reader shared with the store.

use std::path::Path;
use std::time::SystemTime;

use berth_certs::acme_json::field;
use serde_json::Value;

use super::{Format, Found, ImportError, Scan, Skipped};
use crate::store::records::CertRecord;

/// Reads one `acme.json` and tells v1 from v2/v3 by its top level.
pub(super) fn scan_file(path: &Path, now: SystemTime) -> Result<Scan, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let not_acme_json = |reason: String| ImportError::NotAcmeJson {
        path: path.to_path_buf(),
        reason,
    };
    let root: Value = serde_json::from_slice(&bytes).map_err(|e| {
        not_acme_json(format!(
            "not JSON (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(object) = root.as_object() else {
        return Err(not_acme_json("the top level is not a JSON object".into()));
    };
    let mut scan = Scan {
        format: Format::Traefik,
        found: Vec::new(),
        skipped: Vec::new(),
    };
    if let Some(certificates) = field(&root, "Certificates") {
        scan.format = Format::TraefikV1;
        read_list(path, "", certificates, now, &mut scan);
        return Ok(scan);
    }
    for (resolver, section) in object {
        if !section.is_object() {
            return Err(not_acme_json(format!(
                "the top-level key {resolver:?} is not a resolver section (an object with Account and Certificates)"
            )));
        }
        if let Some(certificates) = field(section, "Certificates") {
            read_list(path, resolver, certificates, now, &mut scan);
        }
    }
    Ok(scan)
}

fn read_list(path: &Path, resolver: &str, list: &Value, now: SystemTime, scan: &mut Scan) {
    let Some(entries) = list.as_array() else {
        // Traefik writes `null` for a resolver that has no certificate yet.
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        let main = entry_main(entry);
        let label = match (resolver, &main) {
            ("", Some(main)) => main.clone(),
            ("", None) => format!("certificate {}", i + 1),
            (resolver, Some(main)) => format!("{resolver}/{main}"),
            (resolver, None) => format!("{resolver}/certificate {}", i + 1),
        };
        // The store's own entry reader: the same checks as a certificate berth stored.
        let checked = serde_json::to_vec(entry)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| e.to_string())
            .and_then(|bytes| CertRecord::decode(&bytes))
            .and_then(|r| super::check(&r.certificate, now).map(|()| r));
        match checked {
            Ok(record) => scan.found.push(Found {
                label,
                path: path.to_path_buf(),
                domains: record.domains,
                certificate: record.certificate,
                ca: None,
            }),
            Err(reason) => scan.skipped.push(Skipped {
                label,
                path: path.to_path_buf(),
                reason,
            }),
        }
    }
}

fn entry_main(entry: &Value) -> Option<String> {
    field(field(entry, "domain")?, "main")?
        .as_str()
        .map(str::to_owned)
}
