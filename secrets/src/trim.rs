//! The one trim policy: strip one leading UTF-8 BOM and every trailing `\r` / `\n`;
//! never spaces or tabs (they can be part of a password).

/// What trimming removed from a value (reported by `berth secrets check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trimmed {
    /// A leading UTF-8 byte order mark was removed (Windows editors add one).
    pub bom: bool,
    /// How many trailing `\r` / `\n` bytes were removed (Docker secrets created with
    /// `echo` end in one; Windows editors add `\r\n`).
    pub trailing_newline_bytes: usize,
}

/// How a value is read.
///
/// ```
/// use berth_secrets::{Loader, TrimMode};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("key");
/// std::fs::write(&path, "\u{feff}abc\r\n")?;
/// assert_eq!(Loader::new().read_file(&path)?.expose(), "abc");
/// let raw = Loader::new().with_mode(TrimMode::Raw).read_file_bytes(&path)?;
/// assert_eq!(raw.expose(), "\u{feff}abc\r\n".as_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrimMode {
    /// Apply the trim policy.
    #[default]
    Trim,
    /// Keep every byte (binary keys).
    Raw,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The range of `bytes` that remains after the trim policy, and what was removed.
pub(crate) fn trim(bytes: &[u8], mode: TrimMode) -> (std::ops::Range<usize>, Trimmed) {
    if mode == TrimMode::Raw {
        return (0..bytes.len(), Trimmed::default());
    }
    let start = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let mut end = bytes.len();
    while end > start && matches!(bytes[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    (
        start..end,
        Trimmed {
            bom: start > 0,
            trailing_newline_bytes: bytes.len() - end,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(input: &[u8]) -> (&[u8], Trimmed) {
        let (range, trimmed) = trim(input, TrimMode::Trim);
        (&input[range], trimmed)
    }

    #[test]
    fn strips_one_bom_and_all_trailing_cr_lf_only() {
        assert_eq!(apply(b"secret\n").0, b"secret");
        assert_eq!(
            apply(b"secret\r\n").1,
            Trimmed {
                bom: false,
                trailing_newline_bytes: 2
            }
        );
        assert_eq!(apply(b"secret\n\n\r\n").0, b"secret");
        assert_eq!(
            apply(b"\xEF\xBB\xBFsecret\r\n"),
            (
                &b"secret"[..],
                Trimmed {
                    bom: true,
                    trailing_newline_bytes: 2
                }
            )
        );
        assert_eq!(
            apply(b"\xEF\xBB\xBF\xEF\xBB\xBFx").0,
            b"\xEF\xBB\xBFx",
            "only one BOM is removed"
        );
        assert_eq!(
            apply(b" pass word \t\n").0,
            b" pass word \t",
            "spaces and tabs are kept"
        );
        assert_eq!(
            apply(b"line1\nline2\n").0,
            b"line1\nline2",
            "inner newlines are kept"
        );
        assert_eq!(apply(b"\n\n").0, b"");
    }

    #[test]
    fn raw_keeps_every_byte() {
        let input = b"\xEF\xBB\xBF\x00key\r\n";
        let (range, trimmed) = trim(input, TrimMode::Raw);
        assert_eq!(&input[range], input);
        assert_eq!(trimmed, Trimmed::default());
    }
}
