//! Splitting PEM text into the certificate chain and the private key.

use berth_secrets::Secret;

/// The blocks of one PEM text: the `CERTIFICATE` blocks in order (leaf first) and the
/// private key block, if any. Other blocks (`EC PARAMETERS` from `openssl ecparam`)
/// are skipped.
pub(crate) struct PemParts {
    pub(crate) chain: String,
    pub(crate) certificates: usize,
    pub(crate) key: Option<Secret>,
}

/// Why a PEM text could not be split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PemSplitError {
    /// A `BEGIN` line without its `END` line: a truncated or half-written file.
    Unterminated,
    /// Two private keys; which one belongs to the certificate is ambiguous.
    SeveralKeys,
}

impl std::fmt::Display for PemSplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unterminated => "a PEM block has no END line (truncated or still being written?)",
            Self::SeveralKeys => "more than one private key; keep exactly one key per file",
        })
    }
}

/// Splits `text` line by line (RFC 7468 §2 encapsulation boundaries). The key block is
/// copied straight into a [`Secret`]; the caller zeroizes `text`.
pub(crate) fn split(text: &str) -> Result<PemParts, PemSplitError> {
    let mut chain = String::new();
    let mut certificates = 0;
    let mut key: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some((label, mut block)) = current.take() {
            block.push_str(line);
            block.push('\n');
            let end = line
                .strip_prefix("-----END ")
                .and_then(|l| l.strip_suffix("-----"));
            if end == Some(label.as_str()) {
                if label == "CERTIFICATE" {
                    chain.push_str(&block);
                    certificates += 1;
                } else if label.ends_with("PRIVATE KEY") {
                    if key.is_some() {
                        return Err(PemSplitError::SeveralKeys);
                    }
                    key = Some(block);
                }
            } else {
                current = Some((label, block));
            }
        } else if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            // Sized for the whole text so the block never reallocates: a key must not
            // leave copies behind in freed memory.
            let mut block = String::with_capacity(text.len() + 1);
            block.push_str(line);
            block.push('\n');
            current = Some((label.to_owned(), block));
        }
    }
    if current.is_some() {
        return Err(PemSplitError::Unterminated);
    }
    Ok(PemParts {
        chain,
        certificates,
        key: key.map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nKKKK\n-----END PRIVATE KEY-----\n";

    #[test]
    fn separates_chain_and_key_in_any_order_and_skips_other_blocks() {
        let text = format!(
            "{KEY}-----BEGIN EC PARAMETERS-----\nPP\n-----END EC PARAMETERS-----\n{CERT}{CERT}"
        );
        let parts = split(&text).unwrap();
        assert_eq!(parts.certificates, 2);
        assert_eq!(parts.chain, format!("{CERT}{CERT}"));
        assert!(!parts.chain.contains("KKKK"));
        assert_eq!(parts.key.unwrap().expose(), KEY);
    }

    #[test]
    fn crlf_files_split_the_same() {
        let parts = split(&format!("{CERT}{KEY}").replace('\n', "\r\n")).unwrap();
        assert_eq!(parts.chain, CERT);
        assert!(parts.key.is_some());
    }

    #[test]
    fn truncated_files_and_two_keys_are_refused() {
        assert_eq!(split(&CERT[..40]).err(), Some(PemSplitError::Unterminated));
        assert_eq!(
            split(&format!("{CERT}{KEY}{KEY}")).err(),
            Some(PemSplitError::SeveralKeys)
        );
        let empty = split("no pem here").unwrap();
        assert_eq!((empty.certificates, empty.key.is_none()), (0, true));
    }
}
