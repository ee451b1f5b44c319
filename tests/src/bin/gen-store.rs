//! Writes a large certificate store for `tests/bench/scale.sh`: a local CA and N leaf
//! certificates in Traefik's `acme.json`, with the `berth run --config` file naming them.
//!
//! ```text
//! gen-store new DIR COUNT      DIR/acme.json (0600), DIR/berth.toml, DIR/ca.pem, DIR/ca.key
//! gen-store replace DIR INDEX  a new certificate (new key, new serial) for c<INDEX>.scale.test
//!                              in DIR/acme.json, swapped in by rename; prints
//!                              "<serial hex> <unix time of the rename>"
//! ```
//!
//! Names are `c<i>.scale.test`, ECDSA P-256 keys, valid from a day ago until 60 days from
//! now, so no certificate is due for renewal and `berth run` serves the store without
//! asking a CA.

use std::error::Error;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// The resolver section of `acme.json` (berth's default `--resolver`).
const RESOLVER: &str = "berth";
const CA_NAME: &str = "berth scale benchmark CA";

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["new", dir, count] => count
            .parse()
            .map_err(|e| format!("COUNT {count:?}: {e}").into())
            .and_then(|count| generate(Path::new(dir), count)),
        ["replace", dir, index] => index
            .parse()
            .map_err(|e| format!("INDEX {index:?}: {e}").into())
            .and_then(|index| replace(Path::new(dir), index)),
        _ => {
            eprintln!("usage: gen-store new DIR COUNT | gen-store replace DIR INDEX");
            return ExitCode::from(2);
        }
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-store: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The leaf name of certificate `index`.
fn name(index: usize) -> String {
    format!("c{index}.scale.test")
}

/// The CA's parameters; `replace` rebuilds the same ones, so its certificate's issuer name
/// matches the root in `ca.pem`.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    Ok(params)
}

/// One generated leaf certificate.
struct Leaf {
    /// Leaf then CA, PEM.
    chain_pem: String,
    /// PKCS#8, PEM.
    key_pem: String,
    /// Upper-case hex without leading zeros, as the bench script normalises
    /// `openssl x509 -serial`.
    serial_hex: String,
}

/// Certificate `index`, valid from a day ago until `valid_days` from now. The serial is 0x01, the
/// creation time in nanoseconds and the index, so a replacement never repeats one (and
/// the leading 0x01 keeps the DER integer positive without a padding byte).
fn leaf(index: usize, valid_days: i64, issuer: &Issuer<'_, KeyPair>, ca_pem: &str) -> Result<Leaf> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![name(index)])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, name(index));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // OpenSSL's strict verification (Python >= 3.13 turns it on) wants the AKI.
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(valid_days);
    let mut serial = vec![0x01];
    serial.extend_from_slice(&(now.unix_timestamp_nanos() as u64).to_be_bytes());
    serial.extend_from_slice(&(index as u32).to_be_bytes());
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.signed_by(&key, issuer)?;
    Ok(Leaf {
        chain_pem: format!("{}{ca_pem}", cert.pem()),
        key_pem: key.serialize_pem(),
        serial_hex: serial
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
            .trim_start_matches('0')
            .to_owned(),
    })
}

/// An `acme.json` entry in Traefik's `CertAndStore` layout.
fn entry(index: usize, leaf: &Leaf) -> Value {
    json!({
        "domain": { "main": name(index), "sans": [] },
        "certificate": base64(leaf.chain_pem.as_bytes()),
        "key": base64(leaf.key_pem.as_bytes()),
        "Store": "default",
    })
}

fn generate(dir: &Path, count: usize) -> Result<()> {
    let started = Instant::now();
    fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let params = ca_params()?;
    let ca_pem = params.self_signed(&ca_key)?.pem();
    write_file(
        &dir.join("ca.key"),
        ca_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&dir.join("ca.pem"), ca_pem.as_bytes(), 0o644)?;
    let issuer = Issuer::new(params, ca_key);

    // Signing is the cost (10,000 keys and signatures); spread it over the cores.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    let chunks: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(per_thread)
            .map(|first| {
                let (issuer, ca_pem) = (&issuer, &ca_pem);
                scope.spawn(move || {
                    (first..count.min(first + per_thread))
                        .map(|i| leaf(i, 60, issuer, ca_pem).map(|l| entry(i, &l)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a signing thread panicked".into()))
            })
            .collect()
    });
    let mut entries = Vec::with_capacity(count);
    for chunk in chunks {
        entries.extend(chunk?);
    }
    let store = json!({ RESOLVER: { "Account": null, "Certificates": entries } });
    write_atomic(&dir.join("acme.json"), &serde_json::to_vec_pretty(&store)?)?;

    let mut config = String::with_capacity(count * 48);
    config.push_str(
        "# Written by gen-store: one [[certificates]] table per certificate in acme.json.\n",
    );
    for i in 0..count {
        config.push_str(&format!(
            "\n[[certificates]]\ndomains = [\"{}\"]\n",
            name(i)
        ));
    }
    write_file(&dir.join("berth.toml"), config.as_bytes(), 0o644)?;
    eprintln!(
        "gen-store: {count} certificates in {} ({:.2} s, {threads} threads)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn replace(dir: &Path, index: usize) -> Result<()> {
    let ca_pem = fs::read_to_string(dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&fs::read_to_string(dir.join("ca.key"))?)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    // A day longer than the original: berth serves the stored certificate that expires
    // last, and one made in the same second as the original would otherwise tie with it.
    let new = leaf(index, 61, &issuer, &ca_pem)?;

    let path = dir.join("acme.json");
    let mut store: Value = serde_json::from_slice(&fs::read(&path)?)?;
    let wanted = name(index);
    let slot = store
        .get_mut(RESOLVER)
        .and_then(|r| r.get_mut("Certificates"))
        .and_then(Value::as_array_mut)
        .and_then(|list| {
            list.iter_mut()
                .find(|e| e["domain"]["main"].as_str() == Some(wanted.as_str()))
        })
        .ok_or_else(|| format!("{wanted} is not in {}", path.display()))?;
    *slot = entry(index, &new);
    write_atomic(&path, &serde_json::to_vec_pretty(&store)?)?;
    let renamed_at = SystemTime::now().duration_since(UNIX_EPOCH)?;
    println!("{} {:.6}", new.serial_hex, renamed_at.as_secs_f64());
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600, like every `acme.json`
/// writer) and renames it over `path`, so a reader sees the old or the new file whole.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("json.tmp");
    write_file(&tmp, bytes, 0o600)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Standard base64 with padding (RFC 4648 §4), as Go encodes `[]byte` in JSON. Written
/// out here because the harness has no base64 crate and adding one changes Cargo.lock.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), encoded);
        }
    }
}
