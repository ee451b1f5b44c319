//! PEM export for servers that cannot read `acme.json`: a certbot-like
//! `live/<name>/{cert,chain,fullchain,privkey}.pem` layout and HAProxy's combined
//! `<name>.pem` (chain then key).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::StoreError;
use super::atomic::{PRIVATE_MODE, refuse_symlink, write_atomic};
use crate::certificate::Certificate;

const PUBLIC_MODE: u32 = 0o644;

/// The files [`export_live`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePaths {
    /// The leaf certificate.
    pub cert: PathBuf,
    /// The intermediates.
    pub chain: PathBuf,
    /// Leaf and intermediates.
    pub fullchain: PathBuf,
    /// The private key (0600).
    pub privkey: PathBuf,
}

/// The directory name of a certificate: its main name, with a wildcard's `*` written as
/// `_wildcard` (`*.example.com` → `_wildcard.example.com`) because `*` is awkward in
/// shell paths.
pub fn export_name(certificate: &Certificate) -> String {
    let main = certificate.info().domains.main().as_str();
    match main.strip_prefix("*.") {
        Some(rest) => format!("_wildcard.{rest}"),
        None => main.replace(':', "_"),
    }
}

/// Writes `<dir>/live/<name>/{cert,chain,fullchain,privkey}.pem`, each atomically;
/// `privkey.pem` is 0600, the rest 0644. `dir` is the caller's; below it, a symbolic
/// link (`live`, `live/<name>` or one of the files, as certbot leaves them) is refused,
/// never followed or replaced.
pub fn export_live(certificate: &Certificate, dir: &Path) -> Result<LivePaths, StoreError> {
    let name = export_name(certificate);
    let live = create_below(dir, &["live", &name])?;
    let chain = certificate.chain_pem();
    let blocks = pem_blocks(&chain);
    let leaf = blocks.first().cloned().unwrap_or_default();
    let chain: String = blocks.iter().skip(1).cloned().collect();
    let paths = LivePaths {
        cert: live.join("cert.pem"),
        chain: live.join("chain.pem"),
        fullchain: live.join("fullchain.pem"),
        privkey: live.join("privkey.pem"),
    };
    write_atomic(
        &paths.privkey,
        certificate.key_pem().expose().as_bytes(),
        PRIVATE_MODE,
    )?;
    write_atomic(&paths.cert, leaf.as_bytes(), PUBLIC_MODE)?;
    write_atomic(&paths.chain, chain.as_bytes(), PUBLIC_MODE)?;
    write_atomic(&paths.fullchain, blocks.concat().as_bytes(), PUBLIC_MODE)?;
    Ok(paths)
}

/// Writes `<dir>/<name>.pem` with the full chain followed by the key (HAProxy's
/// `crt` format), mode 0600; refuses a symbolic link at that path.
pub fn export_combined(certificate: &Certificate, dir: &Path) -> Result<PathBuf, StoreError> {
    create_below(dir, &[])?;
    let path = dir.join(format!("{}.pem", export_name(certificate)));
    let chain = certificate.chain_pem();
    let mut combined = Zeroizing::new(pem_blocks(&chain).concat());
    combined.push_str(certificate.key_pem().expose());
    if !combined.ends_with('\n') {
        combined.push('\n');
    }
    write_atomic(&path, combined.as_bytes(), PRIVATE_MODE)?;
    Ok(path)
}

/// Creates `dir` and then each of `parts` below it, refusing a part that is a symbolic
/// link: keys are written there, and a link planted by someone who can write in `dir`
/// would choose where they go.
fn create_below(dir: &Path, parts: &[&str]) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
    let mut path = dir.to_path_buf();
    for part in parts {
        path.push(part);
        refuse_symlink(&path)?;
        match std::fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("creating", &path, e)),
        }
    }
    Ok(path)
}

/// Splits a PEM chain into its blocks, each ending in a newline.
fn pem_blocks(chain: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    chain
        .split_inclusive(END)
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| format!("{}\n", block.trim_start()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use berth_secrets::Secret;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    fn chained(names: &[&str]) -> Certificate {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        Certificate::from_pem(&chain, Secret::new(key.serialize_pem())).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn live_layout_parses_back_with_the_right_modes() {
        let dir = tempfile::tempdir().unwrap();
        let cert = chained(&["*.example.com", "example.com"]);
        let paths = export_live(&cert, dir.path()).unwrap();
        assert!(
            paths
                .cert
                .starts_with(dir.path().join("live/_wildcard.example.com"))
        );
        assert_eq!(mode(&paths.privkey), 0o600);
        assert_eq!(mode(&paths.fullchain), 0o644);
        let fullchain = fs::read_to_string(&paths.fullchain).unwrap();
        let key = fs::read_to_string(&paths.privkey).unwrap();
        let reparsed = Certificate::from_pem(&fullchain, Secret::new(key.clone())).unwrap();
        assert_eq!(reparsed.info(), cert.info());
        let leaf = fs::read_to_string(&paths.cert).unwrap();
        assert_eq!(leaf.matches("BEGIN CERTIFICATE").count(), 1);
        let chain = fs::read_to_string(&paths.chain).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(format!("{leaf}{chain}"), fullchain);
        assert!(Certificate::from_pem(&leaf, Secret::new(key)).is_ok());
    }

    #[test]
    fn combined_pem_is_chain_then_key_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cert = chained(&["app.example.com"]);
        let path = export_combined(&cert, dir.path()).unwrap();
        assert!(path.ends_with("app.example.com.pem"));
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2);
        let key_at = text.find("PRIVATE KEY").unwrap();
        assert!(key_at > text.rfind("END CERTIFICATE").unwrap());
        let (chain, key) = text.split_at(text.find("-----BEGIN PRIVATE KEY").unwrap());
        assert!(Certificate::from_pem(chain, Secret::new(key.into())).is_ok());
    }

    #[test]
    fn export_refuses_symlinks_it_did_not_create_and_writes_nothing_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let cert = chained(&["app.example.com"]);
        // Someone who can write in the export directory points live/<name> elsewhere.
        fs::create_dir_all(dir.path().join("live")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("live/app.example.com"))
            .unwrap();
        let err = export_live(&cert, dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        // certbot's layout: live/<name>/privkey.pem links into archive/.
        let other = tempfile::tempdir().unwrap();
        let target = other.path().join("privkey1.pem");
        fs::write(&target, b"certbot's key").unwrap();
        fs::create_dir_all(other.path().join("live/app.example.com")).unwrap();
        std::os::unix::fs::symlink(
            &target,
            other.path().join("live/app.example.com/privkey.pem"),
        )
        .unwrap();
        let err = export_live(&cert, other.path()).unwrap_err();
        assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"certbot's key");

        std::os::unix::fs::symlink(&target, dir.path().join("app.example.com.pem")).unwrap();
        let err = export_combined(&cert, dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"certbot's key");
    }
}
