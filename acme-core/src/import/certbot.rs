//! certbot's configuration directory (`/etc/letsencrypt`, or `--config-dir`): one lineage
//! per `live/<name>/` (`cert.pem`, `chain.pem`, `fullchain.pem`, `privkey.pem`, symlinks
//! into `archive/<name>/`) and `renewal/<name>.conf`, whose `server` names the CA.

use std::path::Path;
use std::time::SystemTime;

use super::{Format, Found, ImportError, Scan, Skipped};

pub(super) fn scan(root: &Path, now: SystemTime) -> Result<Scan, ImportError> {
    let live = root.join("live");
    let entries = std::fs::read_dir(&live).map_err(|source| ImportError::Io {
        path: live.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    let mut scan = Scan {
        format: Format::Certbot,
        found: Vec::new(),
        skipped: Vec::new(),
    };
    for name in names {
        let dir = live.join(&name);
        let conf = renewal_conf(&root.join("renewal").join(format!("{name}.conf")));
        match lineage(&dir, &name, now) {
            Ok(certificate) => scan.found.push(Found {
                domains: super::domains_for(&certificate, Some(&name)),
                label: name,
                path: dir.join("fullchain.pem"),
                certificate,
                ca: conf.and_then(|c| c.server),
            }),
            Err(reason) => scan.skipped.push(Skipped {
                label: name,
                path: dir,
                reason,
            }),
        }
    }
    Ok(scan)
}

fn lineage(dir: &Path, name: &str, now: SystemTime) -> Result<super::Certificate, String> {
    let fullchain = dir.join("fullchain.pem");
    let privkey = dir.join("privkey.pem");
    for file in [&fullchain, &privkey] {
        if !file.exists() {
            return Err(format!(
                "{} is missing (or a broken link into archive/{name}/)",
                file.display()
            ));
        }
    }
    let chain = super::read_text(&fullchain)?;
    let key = super::read_key(&privkey)?;
    super::verify(&chain, key, now)
}

/// The parts of `renewal/<name>.conf` berth reports.
struct RenewalConf {
    server: Option<String>,
}

/// `key = value` lines (in any section: `server` is under `[renewalparams]`); a missing
/// or unreadable file is no reason to skip the certificate.
fn renewal_conf(path: &Path) -> Option<RenewalConf> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = |wanted: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == wanted).then(|| value.trim().to_owned())
        })
    };
    Some(RenewalConf {
        server: value("server").filter(|s| !s.is_empty()),
    })
}
